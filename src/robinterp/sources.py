"""Writers of the packed format for each data source: digits, CIFAR-10, an image folder.

`prepare(source, out_dir)` writes `train/`, `val/` and `test/` under `out_dir`. Validation
is always held out from the training data (stratified, seeded): model selection never sees
the test split unless the config asks for the author's protocol (`selection.split: test`).
Small ImageNet 150 has its own builder (`small_imagenet.py`).
"""

from __future__ import annotations

import socket
import urllib.error
from pathlib import Path

import numpy as np

from .data import write_split
from .errors import RobinterpError
from .image_folder import (
    IMAGE_SUFFIXES,
    SPLIT_FOLDERS,
    ImageError,
    Listing,
    class_folders,
    decode_image,
    list_images,
    split_layout,
)


def stratified_split(labels: np.ndarray, fraction_or_count: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, held_out): held out = `fraction` of each class, or `count` spread evenly."""
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    held = []
    for c in classes:
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        if fraction_or_count >= 1:
            k = int(round(fraction_or_count / len(classes)))
        else:
            k = int(round(fraction_or_count * len(idx)))
        k = min(max(k, 1), len(idx) - 1)
        held.append(idx[:k])
    held = np.sort(np.concatenate(held))
    kept = np.setdiff1d(np.arange(len(labels)), held)
    return kept, held


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 NHWC images in [0, 1] units (streamed in chunks)."""
    c = images.shape[-1]
    s = np.zeros(c)
    s2 = np.zeros(c)
    n = 0
    step = max(1, (1 << 22) // max(1, images[0].size))  # ~32 MB of float64 per chunk
    for start in range(0, len(images), step):
        chunk = images[start : start + step].reshape(-1, c).astype(np.float64) / 255
        s += chunk.sum(0)
        s2 += (chunk**2).sum(0)
        n += len(chunk)
    mean = s / n
    std = np.sqrt(np.maximum(s2 / n - mean**2, 1e-12))
    return [round(float(v), 6) for v in mean], [round(float(v), 6) for v in std]


def write_splits(out_dir: Path, splits: dict, classes: list[str], source: dict) -> None:
    """Write train/val/test; every manifest carries the training split's channel statistics."""
    mean, std = channel_stats(splits["train"][0])
    for name, (x, y) in splits.items():
        write_split(Path(out_dir) / name, x, y, classes, {**source, "split": name}, extra={"mean": mean, "std": std})


def resize_uint8(images: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of uint8 NHWC images to size x size."""
    import torch
    import torch.nn.functional as F

    if images.shape[1] == size and images.shape[2] == size:
        return images
    t = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
    return t.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def check_fractions(val_fraction: float, test_fraction: float | None = None) -> None:
    """Validation (and test) must each get a share of the images, and train the rest."""
    if not 0 < val_fraction < 1:
        raise RobinterpError(
            f"source.val_fraction: {val_fraction} must lie in (0, 1); the validation split "
            "selects the best epoch, so it needs images (e.g. 0.1)"
        )
    if test_fraction is not None and not (0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise RobinterpError(
            f"source.test_fraction: {test_fraction} must lie in (0, 1) and leave images for "
            f"training (val_fraction + test_fraction = {val_fraction + test_fraction:g} < 1)"
        )


def report_sizes(splits: dict, classes: list[str], few: int = 5) -> None:
    """Print the split sizes, and say so when best-epoch selection rests on few images per class."""
    print(
        "prepare-data: "
        + ", ".join(f"{k} {len(y)}" for k, (_, y) in splits.items())
        + f" images, {len(classes)} classes"
    )
    counts = np.bincount(splits["val"][1], minlength=len(classes))
    if counts.min() < few:
        print(
            f"prepare-data: note: validation has only {counts.min()} image(s) for class "
            f"{classes[int(counts.argmin())]!r} ({len(splits['val'][1])} in all; every class gets at least 1); "
            "the best epoch is chosen on it, so with this few images that choice is noisy. Raise "
            "val_fraction, or give a root/val/<class>/ folder"
        )


def prepare_digits(out_dir: Path, image_size: int, val_fraction: float, test_fraction: float, seed: int) -> None:
    """scikit-learn's 8x8 digits (1797 images, shipped offline) as 3-channel images."""
    from sklearn.datasets import load_digits

    check_fractions(val_fraction, test_fraction)

    d = load_digits()
    x = (d.images / 16.0 * 255).round().astype(np.uint8)[..., None].repeat(3, axis=-1)
    x = resize_uint8(x, image_size)
    y = d.target.astype(np.int64)
    rest, test = stratified_split(y, test_fraction, seed)
    tr, va = stratified_split(y[rest], val_fraction / (1 - test_fraction), seed + 1)
    train, val = rest[tr], rest[va]
    write_splits(
        out_dir,
        {"train": (x[train], y[train]), "val": (x[val], y[val]), "test": (x[test], y[test])},
        [str(i) for i in range(10)],
        {"kind": "digits", "image_size": image_size, "seed": seed},
    )


CIFAR10_BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


def prepare_cifar10(out_dir: Path, root: str, download: bool, val_size: int, seed: int, verify_md5: bool) -> None:
    """CIFAR-10's python batches under `root`/cifar-10-batches-py; `val_size` training images held out.

    torchvision downloads the archive (`download`) and checks the md5 of every batch file
    (`verify_md5`); switch the check off only for a copy you made yourself (e.g. test fixtures
    in the CIFAR format), whose files cannot carry the published checksums.
    """
    if download or verify_md5:
        fetch_cifar10(root, download)
    folder = Path(root) / "cifar-10-batches-py"
    classes = read_cifar10_file(folder / "batches.meta")["label_names"]
    (x, y), (x_test, y_test) = (read_cifar10_batches(folder, CIFAR10_BATCHES[s]) for s in ("train", "test"))
    if val_size < len(classes):
        raise RobinterpError(
            f"source.val_size: {val_size}; hold out at least one training image per class "
            f"({len(classes)}) for best-epoch selection (default 5000)"
        )
    keep, val = stratified_split(y, val_size, seed)
    splits = {"train": (x[keep], y[keep]), "val": (x[val], y[val]), "test": (x_test, y_test)}
    write_splits(
        out_dir, splits, list(classes), {"kind": "cifar10", "root": str(root), "seed": seed, "verify_md5": verify_md5}
    )


def fetch_cifar10(root: str, download: bool = True) -> None:
    """torchvision's CIFAR-10 under `root`: downloaded when `download` and absent (an archive put
    there by hand is used), md5-checked and unpacked; every failure is one line saying the fix."""
    from torchvision.datasets import CIFAR10

    try:
        for train in (True, False):
            CIFAR10(root, train=train, download=download)
    except RuntimeError as e:
        raise RobinterpError(
            f"CIFAR-10 not found or corrupt under {root!r} ({e}); set "
            f"datasets.<name>.source.download: true, or put cifar-10-batches-py there"
        ) from e
    except (urllib.error.URLError, ConnectionError, TimeoutError, socket.gaierror) as e:  # off-line
        raise RobinterpError(
            f"CIFAR-10 download failed ({getattr(e, 'reason', e)}); download {CIFAR10.url} "
            f"(md5 {CIFAR10.tgz_md5}) by hand and put {CIFAR10.filename} in {root}/ (keep "
            "download: true): it is checked and unpacked from there"
        ) from None


def needs_download(source: dict) -> bool:
    """Whether preparing `source` may need the internet (rule download_data runs it where it is)."""
    return source["kind"] == "cifar10" and bool(source.get("download"))


def read_cifar10_file(path: Path) -> dict:
    """One pickled CIFAR-10 batch or metadata file (the format's own encoding, as torchvision reads it)."""
    import pickle

    if not path.is_file():
        raise RobinterpError(
            f"{path}: missing; expected CIFAR-10's python batches (data_batch_1..5, "
            "test_batch, batches.meta) there, or set source.download: true"
        )
    with open(path, "rb") as f:
        return pickle.load(f, encoding="latin1")


def read_cifar10_batches(folder: Path, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Images (uint8 N x 32 x 32 x 3) and labels of the named batch files, in order."""
    xs, ys = [], []
    for name in names:
        entry = read_cifar10_file(folder / name)
        xs.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        ys.append(np.asarray(entry.get("labels", entry.get("fine_labels")), dtype=np.int64))
    return np.ascontiguousarray(np.concatenate(xs)), np.concatenate(ys)


def read_part(
    folder: Path,
    listed: dict[str, list[Path]],
    size: int,
    bad: list[str],
    min_per_class: int = 1,
    classes: list[str] | None = None,
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Decode one part of an image folder (`listed`: {class: files}); every class with too few
    images is named at once, undecodable files go to `bad`."""
    found = sorted(listed)
    if not found:
        raise RobinterpError(f"{folder}: no class sub-folders; expected {folder}/<class>/<image files>")
    if classes is not None and found != classes:
        raise RobinterpError(
            f"{folder}: classes {sorted(set(found) ^ set(classes))} are not in both {folder} and "
            "the training folder; every split needs the same class folders"
        )
    short = [
        f"{folder / c}: class {c!r} has {len(listed[c])} image(s)" for c in found if len(listed[c]) < min_per_class
    ]
    if short:
        need = (
            "no images"
            if min_per_class == 1
            else f"fewer than {min_per_class} images (train, val and test each need one)"
        )
        raise RobinterpError(
            f"{len(short)} class folder(s) with {need}; add images "
            f"({', '.join(sorted(IMAGE_SUFFIXES))}) or remove the folder:\n  " + "\n  ".join(short)
        )
    items = [(path, label) for label, c in enumerate(found) for path in listed[c]]
    x = np.zeros((len(items), size, size, 3), dtype=np.uint8)
    for k, (path, _) in enumerate(items):
        try:
            x[k] = decode_image(path, size)
        except ImageError as e:
            bad.append(f"{path}: {e}")
    return found, x, np.array([label for _, label in items], dtype=np.int64)


def raise_bad(bad: list[str]) -> None:
    if bad:
        raise RobinterpError(
            f"{len(bad)} image file(s) cannot be decoded; remove or replace them:\n  " + "\n  ".join(bad)
        )


def image_folder_listing(root: Path) -> Listing:
    """The folder's listing, refused when its layout is ambiguous or a file would be filed twice."""
    if not root.is_dir():
        raise RobinterpError(f"{root}: image folder not found; expected one sub-folder per class")
    folders = class_folders(root)
    if split_layout(root) and "test" not in folders:
        raise RobinterpError(f"{root}: has train/ but no test/; add test/<class>/ or use a flat class tree")
    if not split_layout(root) and {"train", "test"} <= set(folders):
        others = sorted(set(folders) - set(SPLIT_FOLDERS))
        raise RobinterpError(
            f"{root}: has train/ and test/ beside other folders {others}; put every class under "
            "train/ and test/ (split layout), or rename the classes called train and test (flat "
            "layout)"
        )
    listing = list_images(root)
    if listing.shared:
        more = len(listing.shared) - 10
        raise RobinterpError(
            f"{len(listing.shared)} image file(s) reached from two classes or splits through a link; "
            "an image belongs to one class of one split: remove the link, or copy the file:\n  "
            + "\n  ".join(listing.shared[:10])
            + (f"\n  ... and {more} more" if more > 0 else "")
        )
    return listing


def prepare_image_folder(
    out_dir: Path, root: str, image_size: int, val_fraction: float, test_fraction: float, seed: int
) -> None:
    """A class-per-sub-folder tree: either `root/{train,test[,val]}/<class>/` or `root/<class>/`
    (image_folder.py: which files are read, and how)."""
    root = Path(root)
    listing = image_folder_listing(root)
    bad = list(listing.unreadable)  # every split's unreadable files, reported together
    parts, flat = listing.parts, "" in listing.parts
    check_fractions(val_fraction, test_fraction if flat else None)
    if not flat:
        has_val = "val" in parts
        classes, x, y = read_part(root / "train", parts["train"], image_size, bad, min_per_class=1 if has_val else 2)
        _, xt, yt = read_part(root / "test", parts["test"], image_size, bad, classes=classes)
        if has_val:
            _, xv, yv = read_part(root / "val", parts["val"], image_size, bad, classes=classes)
            splits = {"train": (x, y), "val": (xv, yv), "test": (xt, yt)}
        else:
            keep, val = stratified_split(y, val_fraction, seed)
            splits = {"train": (x[keep], y[keep]), "val": (x[val], y[val]), "test": (xt, yt)}
    else:
        classes, x, y = read_part(root, parts[""], image_size, bad, min_per_class=3)
        rest, test = stratified_split(y, test_fraction, seed)
        tr, va = stratified_split(y[rest], val_fraction / (1 - test_fraction), seed + 1)
        splits = {"train": (x[rest[tr]], y[rest[tr]]), "val": (x[rest[va]], y[rest[va]]), "test": (x[test], y[test])}
    raise_bad(bad)
    report_sizes(splits, classes)
    write_splits(out_dir, splits, classes, {"kind": "image_folder", "root": str(root), "seed": seed})


SOURCES = {"digits": prepare_digits, "cifar10": prepare_cifar10, "image_folder": prepare_image_folder}


def prepare(source: dict, out_dir: str | Path) -> None:
    """Write the packed splits of a `source:` block; keys it leaves out take the schema's defaults
    ($defs <kind>_source), and a wrong key or value is named. (The prepare-data verb hands
    `write_source` a block its settings check has filled already.)"""
    from .settings import node, problems, raise_problems

    block = dict(source)
    raise_problems(problems(block, node("dataset.source"), "source"))
    write_source(block, out_dir)


def write_source(source: dict, out_dir: str | Path) -> None:
    """Write the packed splits of a validated, filled `source:` block."""
    kind = source["kind"]
    if kind not in SOURCES:
        raise RobinterpError(
            f"source.kind {kind!r}: choose one of {sorted(SOURCES)} "
            "(small_imagenet150 is built by `robinterp build-small-imagenet`)"
        )
    SOURCES[kind](Path(out_dir), **{k: v for k, v in source.items() if k != "kind"})
