"""A fake ILSVRC copy for tests: class folders of tiny images in the modes and formats ImageNet
has (RGB, grayscale, CMYK JPEGs, palette/alpha PNGs, a PNG named .JPEG), unreadable files, both
validation layouts, ImageNetV2 TopImages folders and LOC_synset_mapping.txt."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

MODES = ("RGB", "L", "CMYK", "P", "RGBA", "RGB_AS_PNG")


def wnid(i: int) -> str:
    return f"n{1440764 + 37 * i:08d}"


def write_image(path: Path, rng: np.random.Generator, k: int) -> None:
    w, h = int(rng.integers(12, 40)), int(rng.integers(12, 40))
    rgb = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    mode = MODES[k % len(MODES)]
    if mode == "RGB_AS_PNG":  # ImageNet has a PNG with a .JPEG name
        rgb.save(path, format="PNG")
    elif mode in ("P", "RGBA"):
        im = rgb.convert(mode) if mode == "RGBA" else rgb.quantize(16)
        if mode == "P":
            im.info["transparency"] = 0
        im.save(path.with_suffix(".png"), format="PNG", **({"transparency": 0} if mode == "P" else {}))
    else:
        rgb.convert(mode).save(path, format="JPEG", quality=90)


def write_corrupt(path: Path, kind: int) -> None:
    if kind % 2:
        path.write_bytes(b"this is not an image" * 10)
    else:  # a truncated JPEG: the header parses, the data stops half-way
        buf = Path(str(path) + ".full")
        Image.fromarray(np.full((30, 30, 3), 128, np.uint8)).save(buf, format="JPEG")
        path.write_bytes(buf.read_bytes()[:200])
        buf.unlink()


def make_ilsvrc(
    root: Path,
    n_classes: int = 160,
    train_images: int = 8,
    val_images: int = 3,
    v2_images: int = 2,
    corrupt_train: int = 1,
    seed: int = 0,
) -> dict:
    """Write the tree under `root`; return the paths a source block needs."""
    rng = np.random.default_rng(seed)
    train, val_folders, val_flat = root / "train", root / "val_folders", root / "val_flat"
    v2 = root / "imagenetv2-top-images"
    rows, k = ["ImageId,PredictionString"], 0
    for c in range(n_classes):
        w = wnid(c)
        for d in (train / w, val_folders / w, v2 / str(c)):
            d.mkdir(parents=True)
        for i in range(train_images):
            write_image(train / w / f"{w}_{i}.JPEG", rng, k := k + 1)
        for i in range(corrupt_train):
            write_corrupt(train / w / f"{w}_bad{i}.JPEG", c + i)
        for i in range(val_images):
            name = f"ILSVRC2012_val_{c * val_images + i + 1:08d}"
            val_flat.mkdir(exist_ok=True)
            write_image(val_flat / f"{name}.JPEG", rng, k := k + 1)
            flat = next(val_flat.glob(f"{name}.*"))
            (val_folders / w / flat.name).write_bytes(flat.read_bytes())
            rows.append(f"{name},{w} 1 2 10 12 {w} 3 4 8 9")
        for i in range(v2_images):
            write_image(v2 / str(c) / f"{i:040x}.jpeg", rng, k := k + 1)
    (root / "LOC_val_solution.csv").write_text("\n".join(rows) + "\n")
    (root / "LOC_synset_mapping.txt").write_text("".join(f"{wnid(c)} class {c}, fake\n" for c in range(n_classes)))
    return {
        "train_dir": str(train),
        "val_dir": str(val_folders),
        "val_flat": str(val_flat),
        "val_labels": str(root / "LOC_val_solution.csv"),
        "imagenetv2_dir": str(v2),
        "synset_mapping": str(root / "LOC_synset_mapping.txt"),
    }
