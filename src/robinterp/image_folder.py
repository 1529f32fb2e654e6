"""Which image files a source reads, and how one is decoded: the rules every source shares
(`source.kind: image_folder` and Small ImageNet's ILSVRC folders).

Listing (`walk_images`, `list_images`):
- entries whose name starts with '.' (`.ipynb_checkpoints/`, `.DS_Store`, AppleDouble
  `._img.png`) and `__MACOSX/` folders that zip tools add are not data;
- symlinked folders are followed, each real folder once (by device and inode), so a link loop
  (`cat/loop -> .`) adds nothing;
- regular files only: a named pipe called `x.png` would block the reader;
- one file (by device and inode: a link, a hard link, a linked folder) in two classes or two
  splits is refused by the writer, never filed twice.

Decoding (`decode_image`): EXIF orientation applied (phone photos); 16-bit images scaled to 8
bits, float images in [0, 1] scaled, other float or 32-bit integer images refused by name; RGB;
the shorter side resized, then a centre crop. Every failure is an `ImageError` whose message
says what is wrong with the file, so a writer can name every bad file at once.

The workflow: rule prepare_data takes the digest of an image folder's listing (path, size and
time of every image) as a param, so adding, deleting or editing an image reruns it and
everything downstream, without listing thousands of files as job inputs. No PIL or torch at
module level (the Snakefile imports this module at parse time).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm"}
SPLIT_FOLDERS = ("train", "val", "test")  # root/{train,test[,val]}/<class>/ layout


def hidden(name: str) -> bool:
    """Hidden entries and macOS archive debris are never classes or images."""
    return name.startswith(".") or name == "__MACOSX"


def file_id(path: str | Path) -> tuple[int, int] | None:
    """(device, inode) of what `path` leads to; None for a broken link."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _not_a_file(path: Path) -> str | None:
    """Why `path` is no image file to read (None when it is a regular file, or a link to one)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        return "a broken link" if os.path.islink(path) else f"cannot be read ({e.strerror})"
    if stat.S_ISREG(mode):
        return None
    return "a named pipe" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a regular file"


def walk_images(folder: str | Path, recursive: bool = True) -> tuple[list[Path], list[str]]:
    """The image files under `folder` (sorted; any depth when `recursive`; a file reached twice,
    through a link, once), and "path: why" for what looks like an image or a folder but cannot
    be read: not a regular file, a broken link, a folder that cannot be listed."""
    files, problems, seen = [], [], set()

    def unlistable(e: OSError):
        problems.append(f"{e.filename}: cannot be listed ({e.strerror})")

    for parent, dirs, names in os.walk(folder, onerror=unlistable, followlinks=True):
        real = file_id(parent)
        if real in seen:  # a link back to a folder already read (a loop), or a second link to one
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not hidden(d)) if recursive else []
        for name in names:
            if hidden(name) or Path(name).suffix.lower() not in IMAGE_SUFFIXES:
                continue
            path = Path(parent, name)
            why = _not_a_file(path)
            if why:
                problems.append(f"{path}: {why}, not an image file; remove it")
            else:
                files.append(path)
    ids = {}
    for path in sorted(files):
        ids.setdefault(file_id(path), path)  # the first path (in sorted order) of each file
    return sorted(ids.values()), sorted(problems)


def class_folders(root: Path) -> list[str]:
    """Sorted class names: the visible sub-folders of `root`."""
    return sorted(p.name for p in Path(root).iterdir() if p.is_dir() and not hidden(p.name))


def split_layout(root: Path) -> bool:
    """True for root/{train,test[,val]}/<class>/: every visible folder of `root` is a split folder
    and train/ is one. A flat root/<class>/ tree may have a class called `train` (bus/car/train)."""
    folders = class_folders(root) if Path(root).is_dir() else []
    return "train" in folders and set(folders) <= set(SPLIT_FOLDERS)


@dataclass
class Listing:
    """An image folder as the writer reads it: {part: {class: files}} (part = a split folder's
    name, or "" for a flat tree) and what is wrong with it."""

    parts: dict[str, dict[str, list[Path]]]
    unreadable: list[str]  # "path: why", from walk_images
    shared: list[str]  # one file reached from two classes or splits

    def files(self) -> list[Path]:
        return [f for classes in self.parts.values() for files in classes.values() for f in files]


def list_images(root: str | Path) -> Listing:
    """Every image file of an image folder, per split folder and class; empty when `root` is missing.

    A file reached twice within one class (a link to a sibling) counts once (walk_images); one
    reached from two classes or two splits (a link or hard link across them) is kept where it is
    first met and named in `shared`, which the writer refuses."""
    root = Path(root)
    out = Listing(parts={}, unreadable=[], shared=[])
    if not root.is_dir():
        return out
    parts = {s: root / s for s in SPLIT_FOLDERS if (root / s).is_dir()} if split_layout(root) else {"": root}
    owner: dict = {}
    for part, folder in parts.items():
        out.parts[part] = {}
        for c in class_folders(folder):
            files, problems = walk_images(folder / c)
            out.unreadable += problems
            kept = []
            for f in files:
                first_part, first_class, first = owner.setdefault(file_id(f), (part, c, f))
                if (first_part, first_class) == (part, c):
                    kept.append(f)
                else:
                    where = "splits" if first_part != part else "classes"
                    out.shared.append(f"{f} is {first} (a link or a hard link) in two {where}")
            out.parts[part][c] = kept
    return out


def source_files(root: str | Path) -> list[str]:
    """Every image file the writer reads from `root` (empty when `root` is missing)."""
    return [str(f) for f in list_images(root).files()]


def listing_digest(root: str | Path) -> str:
    """sha256 of the folder's listing (relative path, size, modification time of every image the
    writer reads): adding, deleting, renaming or editing an image changes it. File names are
    hashed as bytes, so a name that is not valid UTF-8 hashes like any other."""
    import hashlib

    h = hashlib.sha256()
    for f in list_images(root).files():
        st = f.stat()
        h.update(os.fsencode(f.relative_to(root)) + f"\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


# --- decoding ----------------------------------------------------------------------------------


class ImageError(ValueError):
    """A file that is not an image this pipeline can read; the message says why (not the path)."""


def decode_image(path: str | Path, size: int) -> np.ndarray:
    """RGB uint8 size x size: EXIF orientation applied, shorter side resized to `size`
    (bilinear), centre crop. Raises ImageError for anything that is not such an image."""
    from PIL import Image, ImageOps

    why = _not_a_file(Path(path))
    if why:
        raise ImageError(f"{why}, not an image file")
    try:
        with Image.open(path) as im:
            im.draft(None, (size, size))  # JPEG: decode at 1/2, 1/4, 1/8 scale when still >= size
            sixteen_bit = im.mode.startswith("I;16") or (im.mode == "I" and "16" in _raw_mode(im))
            im = _eight_bit(ImageOps.exif_transpose(im), sixteen_bit)
            if im.mode == "P" and "transparency" in im.info:
                im = im.convert("RGBA")  # palette transparency must go through RGBA
            im = im.convert("RGB")  # L, CMYK, P, RGBA ... -> RGB (alpha dropped, as torchvision)
            w, h = im.size
            scale = size / min(w, h)
            nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
            im = im.resize((nw, nh), Image.BILINEAR)
            left, top = (nw - size) // 2, (nh - size) // 2
            return np.asarray(im.crop((left, top, left + size, top + size)), dtype=np.uint8)
    except Image.DecompressionBombError as e:
        raise ImageError(
            f"{_pixels(str(e))} pixels, more than Pillow's limit against decompression bombs; "
            "downscale the image or remove it"
        ) from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:  # PIL's ways to say "not an image"
        raise ImageError(str(e).replace(repr(str(path)), "").strip() or type(e).__name__) from None


def _pixels(message: str) -> str:
    import re

    m = re.search(r"\((\d+) pixels\)", message)
    return m.group(1) if m else "too many"


def _eight_bit(im, sixteen_bit: bool):
    """8-bit modes as they are; 16-bit grayscale scaled by 255/65535 (Pillow's convert clips it to
    white; older Pillow opens 16-bit PNGs as mode I); float in [0, 1] scaled by 255; other float
    or 32-bit integer images refused."""
    from PIL import Image

    if sixteen_bit:
        return Image.fromarray((np.asarray(im, dtype=np.float64) / 257).round().clip(0, 255).astype(np.uint8))
    if im.mode == "F":
        x = np.asarray(im, dtype=np.float64)
        if not (np.isfinite(x).all() and x.min() >= 0 and x.max() <= 1):
            raise ImageError(
                f"a float image with values in [{x.min():g}, {x.max():g}], not [0, 1]; save it as an 8-bit image"
            )
        return Image.fromarray((x * 255).round().astype(np.uint8))
    if im.mode == "I":
        raise ImageError("a 32-bit integer image; save it as an 8- or 16-bit image")
    return im


def _raw_mode(im) -> str:
    tile = getattr(im, "tile", None) or []
    return str(tile[0].args if hasattr(tile[0], "args") else tile[0][3]) if tile else ""
