"""Which files of a user's image folder (`source.kind: image_folder`) are read, and in what order.

Shared by the writer (`sources.prepare_image_folder`) and the workflow: rule prepare_data takes
the digest of this listing (path, size and time of every image) as a param, so adding, deleting
or editing an image reruns it and everything downstream, without listing thousands of files as
job inputs. Pure pathlib (the Snakefile imports it at parse time).

Skipped everywhere: entries whose name starts with '.' (`.ipynb_checkpoints/`, `.DS_Store`,
AppleDouble `._img.png`) and `__MACOSX/` folders that zip tools add.
"""

from __future__ import annotations

from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm"}
SPLIT_FOLDERS = ("train", "val", "test")  # root/{train,test[,val]}/<class>/ layout


def skipped(name: str) -> bool:
    """Hidden entries and macOS archive debris are never classes or images."""
    return name.startswith(".") or name == "__MACOSX"


def class_folders(root: Path) -> list[str]:
    """Sorted class names: the visible sub-folders of `root`."""
    return sorted(p.name for p in Path(root).iterdir() if p.is_dir() and not skipped(p.name))


def image_files(folder: Path) -> list[Path]:
    """Image files under one class folder (any depth), sorted, hidden entries skipped."""
    import os

    out = []
    for parent, dirs, files in os.walk(folder, followlinks=True):  # symlinked folders count, as before
        dirs[:] = [d for d in dirs if not skipped(d)]  # never descend into hidden folders
        out += [Path(parent, f) for f in files if not skipped(f) and Path(f).suffix.lower() in IMAGE_SUFFIXES]
    return sorted(out)


def split_layout(root: Path) -> bool:
    """True for root/{train,test[,val]}/<class>/, False for a flat root/<class>/ tree."""
    return (Path(root) / "train").is_dir()


def source_files(root: str | Path) -> list[str]:
    """Every image file the writer reads from `root` (empty when `root` is missing)."""
    root = Path(root)
    if not root.is_dir():
        return []
    parts = [root / s for s in SPLIT_FOLDERS if (root / s).is_dir()] if split_layout(root) else [root]
    return [str(f) for part in parts for c in class_folders(part) for f in image_files(part / c)]


def listing_digest(root: str | Path) -> str:
    """sha256 of the folder's listing (relative path, size, modification time of every image the
    writer reads): adding, deleting, renaming or editing an image changes it."""
    import hashlib

    h = hashlib.sha256()
    for f in source_files(root):
        st = Path(f).stat()
        h.update(f"{Path(f).relative_to(root)}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()
