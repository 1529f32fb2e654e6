"""The packed on-disk format every dataset and split is stored in, and its reader.

One folder per split::

    images.npy     uint8, N x H x W x C (memory-mappable)
    labels.npy     int64, N
    classes.json   list of class names, index = label
    manifest.json  shapes, sha256 of both arrays, counts per class, source, provenance (with
                   the arrays' size and time when written)

Training and analysis verbs read only this format (`load_split`), so a user's own data set
works once it is packed (see `sources.py` for the writers).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import storage
from .errors import RobinterpError

FORMAT = "robinterp-packed/1"
FILES = ("images.npy", "labels.npy", "classes.json", "manifest.json")


@dataclass(frozen=True)
class Split:
    """One packed split: images stay memory-mapped until a batch is taken."""

    path: Path
    images: np.ndarray  # uint8 N x H x W x C
    labels: np.ndarray  # int64 N
    classes: list[str]
    manifest: dict

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W), as the model sees it."""
        _, h, w, c = self.images.shape
        return c, h, w

    @property
    def class_names(self) -> list[str]:
        """Names for figures: the manifest's class entries where it has them (Small ImageNet:
        WordNet names such as 'tench, Tinca tinca'), else the class list itself."""
        entries = self.manifest.get("classes")
        if (
            isinstance(entries, list)
            and len(entries) == len(self.classes)
            and all(isinstance(e, dict) for e in entries)
        ):
            return [e.get("name") or c for e, c in zip(entries, self.classes)]
        return list(self.classes)

    @property
    def sha256(self) -> str:
        return self.manifest["images_sha256"]

    def tensors(self, index=None):
        """Float images in [0, 1] (N x C x H x W) and int64 labels as torch tensors."""
        import torch

        idx = slice(None) if index is None else index
        x = torch.from_numpy(np.array(self.images[idx])).permute(0, 3, 1, 2).float().div_(255)
        y = torch.from_numpy(np.array(self.labels[idx]))
        return x, y


def write_split(
    out_dir: str | Path,
    images: np.ndarray,
    labels: np.ndarray,
    classes: list[str],
    source: dict,
    extra: dict | None = None,
) -> dict:
    """Validate and write one split in the packed format; return its manifest."""
    out_dir = Path(out_dir)
    images = np.ascontiguousarray(images)
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    _check_arrays(out_dir, images, labels, classes)
    counts = np.bincount(labels, minlength=len(classes)).tolist()
    manifest = {
        "format": FORMAT,
        "shape": list(images.shape),
        "dtype": "uint8",
        "num_classes": len(classes),
        "counts_per_class": counts,
        "images_sha256": storage.sha256_array(images),
        "labels_sha256": storage.sha256_array(labels),
        "source": source,
        **(extra or {}),
        "provenance": storage.provenance(),
    }
    storage.save_npy(out_dir / "images.npy", images)
    storage.save_npy(out_dir / "labels.npy", labels)
    # size and time of the files as written (provenance: it differs between identical builds)
    manifest["provenance"]["written"] = {name: _stat(out_dir / name) for name in ("images.npy", "labels.npy")}
    storage.write_json(out_dir / "classes.json", list(classes))
    storage.write_json(out_dir / "manifest.json", manifest)
    return manifest


# Every read re-hashes an images.npy up to this size (~1 s at 0.7 GB/s); a larger one when its
# size or modification time differs from the manifest's, or when asked (`verify=True`).
HASH_ON_EVERY_READ = 512 << 20


def _stat(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def load_split(path: str | Path, verify: bool = False) -> Split:
    """Open a packed split, checking shapes, labels and the arrays' sha256 against the manifest.

    The hash is checked on every read where it costs little against any job (labels; images up
    to HASH_ON_EVERY_READ bytes), else when the file's size or modification time is not what the
    manifest recorded, and always with `verify`: a split edited in place is never read silently."""
    path = Path(path)
    if path.name in FILES:  # accept a path to one of the files (e.g. a rule's manifest input)
        path = path.parent
    missing = [f for f in FILES if not (path / f).is_file()]
    if missing:
        raise RobinterpError(
            f"{path}: not a packed split, missing {', '.join(missing)}; "
            "create it with `robinterp prepare-data` (rule prepare_data)"
        )
    manifest = storage.read_json(path / "manifest.json")
    if manifest.get("format") != FORMAT:
        raise RobinterpError(f"{path}/manifest.json: format {manifest.get('format')!r}, expected {FORMAT!r}")
    try:
        images = np.load(path / "images.npy", mmap_mode="r")
        labels = np.load(path / "labels.npy")
        classes = json.loads((path / "classes.json").read_text())
    except (ValueError, OSError, json.JSONDecodeError) as e:
        raise RobinterpError(f"{path}: cannot read packed arrays ({e}); rebuild the split") from e
    if list(images.shape) != manifest["shape"]:
        raise RobinterpError(
            f"{path}/images.npy: shape {list(images.shape)} does not match manifest "
            f"{manifest['shape']}; the split is corrupt, rebuild it"
        )
    _check_arrays(path, images, labels, classes)
    for name, arr in (("images", images), ("labels", labels)):
        checked = verify or _worth_hashing(path / f"{name}.npy", manifest)
        if checked and storage.sha256_array(np.asarray(arr)) != manifest[f"{name}_sha256"]:
            raise RobinterpError(
                f"{path}/{name}.npy: sha256 differs from the manifest's: the file was changed after "
                "it was written (or is damaged); rebuild the split (delete the folder and rerun rule "
                "prepare_data)"
            )
    return Split(path, images, labels, list(classes), manifest)


def _worth_hashing(path: Path, manifest: dict) -> bool:
    """Hash a small file always; a large one when its size or time differs from when it was written."""
    now = _stat(path)
    return now[0] <= HASH_ON_EVERY_READ or manifest.get("provenance", {}).get("written", {}).get(path.name) != now


def _check_arrays(where: Path, images: np.ndarray, labels: np.ndarray, classes: list) -> None:
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise RobinterpError(
            f"{where}/images.npy: expected uint8 N x H x W x C with C in (1, 3), "
            f"got {images.dtype} {tuple(images.shape)}"
        )
    if labels.ndim != 1 or len(labels) != len(images):
        raise RobinterpError(f"{where}/labels.npy: expected {len(images)} labels, got shape {labels.shape}")
    if not classes or not all(isinstance(c, str) for c in classes):
        raise RobinterpError(f"{where}/classes.json: expected a non-empty list of class names")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
        raise RobinterpError(
            f"{where}/labels.npy: labels must lie in [0, {len(classes) - 1}], found [{labels.min()}, {labels.max()}]"
        )
    empty = [classes[i] for i, n in enumerate(np.bincount(labels, minlength=len(classes))) if n == 0]
    if empty:
        raise RobinterpError(
            f"{where}: class(es) with no images: {', '.join(empty[:10])}; remove them from classes.json or add images"
        )
