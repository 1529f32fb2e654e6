"""Build rate of `robinterp build-small-imagenet` on synthetic ImageNet-sized JPEGs.

Writes a fake ILSVRC tree of 500x375 JPEGs (quality 90, ~ImageNet's typical size and file
size), builds Small ImageNet at 128x128 from it with `--workers` processes, and extrapolates
the measured images/s to the paper's 99,000 images. Run:
    PYTHONPATH=src python benchmarks/small_imagenet_build.py --images 400 --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from robinterp import storage
from robinterp.small_imagenet import BuildConfig, build, decode_image

PAPER_IMAGES = 90_000 + 7_500 + 9_000  # decoded: train + val held out of train + test (ILSVRC val + V2)
PAPER_BYTES = 99_000 * 128 * 128 * 3  # train + test as written (val = 7,500 more in train_holdout mode)


def photo_like(rng: np.random.Generator, w: int = 500, h: int = 375) -> Image.Image:
    """Smooth colour blobs + fine texture: compresses like a photo (~100 kB at quality 90, as ImageNet)."""
    small = Image.fromarray(rng.integers(0, 256, (h // 25, w // 25, 3), dtype=np.uint8)).resize((w, h), Image.BICUBIC)
    noise = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).filter(ImageFilter.GaussianBlur(0.7))
    return Image.blend(small, noise, 0.4)


def make_tree(root: Path, classes: int, per_class: int, val_per_class: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for c in range(classes):
        wnid = f"n{1440764 + c:08d}"
        for sub, n in (("train", per_class), ("val", val_per_class)):
            d = root / sub / wnid
            d.mkdir(parents=True)
            for i in range(n):
                photo_like(rng).save(d / f"{wnid}_{i}.JPEG", quality=90)


def write_cost(tmp: Path, n: int) -> float:
    """Seconds per 128x128 image to hash, take statistics of and copy a memory-mapped split."""
    from robinterp.sources import channel_stats

    staged = np.lib.format.open_memmap(tmp / "staged.npy", mode="w+", dtype=np.uint8, shape=(n, 128, 128, 3))
    staged[:] = np.random.default_rng(0).integers(0, 256, staged.shape[1:], dtype=np.uint8)
    staged.flush()
    t0 = time.perf_counter()
    storage.sha256_array(staged)
    channel_stats(staged)
    storage.save_npy(tmp / "copy.npy", staged)
    return (time.perf_counter() - t0) / n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=400, help="synthetic JPEGs in all")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/small_imagenet_build.json"))
    a = p.parse_args()
    import torch  # noqa: F401  (imported once here, so the timed writes do not include loading torch)

    classes, val_per_class = 10, 4  # 30 jobs: the 2 workers stay busy
    per_class = a.images // classes - val_per_class
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_tree(tmp / "ilsvrc", classes, per_class, val_per_class)
        files = list((tmp / "ilsvrc").rglob("*.JPEG"))
        mean_kb = sum(f.stat().st_size for f in files) / len(files) / 1024
        cfg = BuildConfig.of(
            train_dir=str(tmp / "ilsvrc/train"),
            val_dir=str(tmp / "ilsvrc/val"),
            classes=classes,
            train_per_class=per_class - 4,
            val_per_class=4,
            test_per_class=val_per_class,
            imagenetv2_per_class=0,
            image_size=128,
        )
        n = classes * (per_class + val_per_class)
        t0 = time.perf_counter()  # one process, no pool: the cost of one image on one core
        for f in files[:50]:
            decode_image(f, 128)
        ms_per_image_core = (time.perf_counter() - t0) / 50 * 1000
        stamps = []

        def log(line):
            stamps.append(time.perf_counter())
            print(line, flush=True)

        t0 = time.perf_counter()
        build(cfg, tmp / "out", workers=a.workers, log=log)
        seconds = time.perf_counter() - t0
        decode_s = stamps[-4] - stamps[0]  # from the plan line to the last progress line (pool start included)
        out_bytes = sum(f.stat().st_size for f in (tmp / "out").rglob("images.npy"))
        write_s_per_image = write_cost(tmp, 4000)
    rate = n / decode_s
    decode_min = {f"{k}_cores": round(PAPER_IMAGES * ms_per_image_core / k / 60_000, 1) for k in (2, 8, 16)}
    result = {
        "images": n,
        "workers": a.workers,
        "source_jpeg_kb_mean": round(mean_kb, 1),
        "source_size": [500, 375],
        "image_size": 128,
        "ms_per_image_one_core": round(ms_per_image_core, 2),
        "seconds_total": round(seconds, 2),
        "seconds_decoding": round(decode_s, 2),
        "images_per_s": round(rate, 1),
        "seconds_writing": round(seconds - decode_s, 2),  # mostly fixed: git for provenance, 3 splits
        "write_ms_per_image": round(write_s_per_image * 1000, 3),
        "extrapolated_minutes_for_paper_at_this_rate": round(PAPER_IMAGES * (1 / rate + write_s_per_image) / 60, 1),
        "extrapolated_decode_minutes_for_paper_on_idle_cores": decode_min,
        "extrapolated_write_minutes_for_paper": round(PAPER_IMAGES * write_s_per_image / 60, 1),
        "paper_images_decoded": PAPER_IMAGES,
        "paper_output_gb": round(PAPER_BYTES / 1e9, 2),
        "output_bytes_per_image": out_bytes / n,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}",
        "provenance": storage.provenance(),
    }
    storage.write_json(a.out, result)
    print(json.dumps({k: v for k, v in result.items() if k != "provenance"}, indent=1))


if __name__ == "__main__":
    main()
