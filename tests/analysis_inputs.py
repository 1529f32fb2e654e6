"""Shared inputs for the analysis-verb tests: a 4-class synthetic split pair, a tiny checkpoint,
and each compute verb's settings and outputs (used by test_analyses_cli and test_cuda)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from robinterp.checkpoints import save_checkpoint
from robinterp.cli import main
from robinterp.data import write_split
from robinterp.models import build_model

CLASSES = ["zero", "one", "two", "three"]

# verb -> (its config block, {output flag: file name})
COMPUTE = {
    "ig": ({"num_images": 3, "steps": 4, "trials": 2}, {"--out": "attributions.npz"}),
    "shap": ({"num_images": 3, "background": 8, "nsamples": 8}, {"--out": "attributions.npz"}),
    "class-generation": (
        {"per_class": 2, "downsample": 2, "eps": 3, "step_size": 0.5, "steps": 3},
        {"--out-images": "images.npy", "--out-seeds": "seeds.npy", "--out-labels": "labels.npy"},
    ),
    "inversion": (
        {"num_images": 2, "steps": 3, "step_size": 0.2},
        {"--out-targets": "targets.npy", "--out-sources": "sources.npy", "--out-inverted": "inverted.npy"},
    ),
    "feature-vis": ({"num_neurons": 2, "steps": 3, "step_size": 0.2, "top_k": 2}, {"--out": "features.npz"}),
}


def make_inputs(root: Path) -> Path:
    """train/ and test/ packed splits (class k brighter by 60 levels) and an untrained model.pt."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("test", 24)):
        labels = np.arange(n) % 4
        images = (rng.integers(0, 60, (n, 8, 8, 3)) + 60 * labels[:, None, None, None]).astype(np.uint8)
        write_split(root / split, images, labels, CLASSES, {"kind": "synthetic"})
    torch.manual_seed(0)
    arch = {"name": "resnet18_cifar", "width": 0.0625, "num_classes": 4, "mean": [0.5] * 3, "std": [0.25] * 3}
    model = build_model(arch["name"], 4, arch["mean"], arch["std"], arch["width"]).eval()
    save_checkpoint(root / "model.pt", model, arch, CLASSES, epoch=0, metrics={})
    return root


def run_verb(method: str, inputs: Path, out: Path, variant: str = "v", device: str = "cpu") -> int:
    """`robinterp <method>` on the inputs, every output into `out`; returns the exit status."""
    cfg, outs = COMPUTE[method]
    argv = [
        method,
        "--checkpoint",
        str(inputs / "model.pt"),
        "--data",
        str(inputs / "test"),
        "--settings",
        json.dumps({f"analyses.{method.replace('-', '_')}": cfg, "device": device}),
        "--variant",
        variant,
        "--meta",
        str(out / "meta.json"),
    ]
    argv += ["--train", str(inputs / "train")] if method == "shap" else []
    for flag, name in outs.items():
        argv += [flag, str(out / name)]
    return main(argv)
