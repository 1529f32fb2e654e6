"""Inputs at the paper's shapes that the tests (and `make paper-smoke`) generate: CIFAR-10's
python batch files with random images, and a small ILSVRC-like tree for Small ImageNet 150.

Run: `python tests/paper_inputs.py OUT` writes OUT/cifar10/cifar-10-batches-py/ and OUT/ilsvrc/.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ilsvrc_fake import make_ilsvrc  # noqa: E402

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_cifar10(root: Path, n_train: int = 100, n_test: int = 20, seed: int = 0) -> Path:
    """CIFAR-10's on-disk format (5 training batches, a test batch, batches.meta); images carry a
    class-dependent colour so that a model can learn a little."""
    d = Path(root) / "cifar-10-batches-py"
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    def batch(n, offset):
        labels = [(offset + j) % 10 for j in range(n)]
        tint = np.array([[(40 * c) % 256, (90 * c) % 256, (150 * c) % 256] for c in labels], dtype=np.int64)
        noise = rng.integers(0, 120, (n, 3, 1024))
        data = np.clip(noise + tint[:, :, None], 0, 255).astype(np.uint8).reshape(n, 3072)
        return {
            "batch_label": "fake",
            "labels": labels,
            "data": data,
            "filenames": [f"{offset + j}.png" for j in range(n)],
        }

    per = n_train // 5
    for i in range(1, 6):
        with open(d / f"data_batch_{i}", "wb") as f:
            pickle.dump(batch(per, i * per), f)
    with open(d / "test_batch", "wb") as f:
        pickle.dump(batch(n_test, 0), f)
    with open(d / "batches.meta", "wb") as f:
        pickle.dump({"label_names": CIFAR10_CLASSES, "num_cases_per_batch": per, "num_vis": 3072}, f)
    return Path(root)


def write_paper_inputs(out: Path) -> dict:
    out = Path(out)
    cifar = write_cifar10(out / "cifar10")
    ilsvrc = make_ilsvrc(out / "ilsvrc", n_classes=4, train_images=7, val_images=2, v2_images=1, corrupt_train=0)
    return {"cifar10_root": str(cifar), **ilsvrc}


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/paper_inputs.py OUT_DIR")
    for k, v in write_paper_inputs(Path(sys.argv[1])).items():
        print(f"{k}: {v}")
