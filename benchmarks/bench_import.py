"""Time `import-checkpoint` on ResNet50-sized files in the published layouts.

Writes (random weights, publisher key layout) a MadryLab ImageNet ResNet50 checkpoint (dill,
model + attacker copy + SGD momentum, like robustness's train.py), the same in torch's legacy
file layout (the published CIFAR files), a MadryLab CIFAR ResNet50, and a torchvision ResNet50
state dict; then imports each --repeats times (median): file checks + sha256 + allow-list
unpickling + strict mapping + writing the robinterp checkpoint. Prints a table, writes JSON.

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/bench_import.py --out benchmarks/results/import_cpu.json
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from robinterp import storage
from robinterp.models import build_model
from robinterp.published import import_published

IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
CIFAR = ([0.4914, 0.4822, 0.4465], [0.2023, 0.1994, 0.2010])


def madrylab_layout(arch: str, classes: int, stats) -> dict:
    """{"model": DataParallel(AttackerModel).state_dict(), "optimizer" (with momentum), ...}."""
    import torch.nn.functional as F

    model = build_model(arch, classes, *stats, 1.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    F.cross_entropy(model(torch.rand(2, 3, 32, 32)), torch.tensor([0, 1])).backward()
    opt.step()  # fills the momentum buffers, as a real checkpoint has them
    state = {
        "module.normalizer.new_mean": torch.tensor(stats[0]).view(3, 1, 1),
        "module.normalizer.new_std": torch.tensor(stats[1]).view(3, 1, 1),
    }
    for key, value in model.model.state_dict().items():
        state[f"module.model.{key}"] = value
    state["module.attacker.normalize.new_mean"] = state["module.normalizer.new_mean"]
    state["module.attacker.normalize.new_std"] = state["module.normalizer.new_std"]
    for key, value in model.model.state_dict().items():
        state[f"module.attacker.model.{key}"] = value
    return {"model": state, "optimizer": opt.state_dict(), "schedule": None, "epoch": 90, "amp": None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    try:
        import dill as pickle_module
    except ImportError:
        import pickle as pickle_module
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cases = [
            ("madrylab", "resnet50", "imagenet ResNet50 (zip)", madrylab_layout("resnet50", 1000, IMAGENET), True, {}),
            (
                "madrylab",
                "resnet50",
                "imagenet ResNet50 (legacy)",
                madrylab_layout("resnet50", 1000, IMAGENET),
                False,
                {},
            ),
            (
                "madrylab",
                "resnet50_cifar",
                "CIFAR ResNet50 (legacy)",
                madrylab_layout("resnet50_cifar", 10, CIFAR),
                False,
                {},
            ),
            (
                "torchvision",
                "resnet50",
                "torchvision ResNet50",
                build_model("resnet50", 1000, *IMAGENET, 1.0).model.state_dict(),
                True,
                {"mean": IMAGENET[0], "std": IMAGENET[1]},
            ),
        ]
        for fmt, arch, label, payload, zipped, norm in cases:
            src = tmp / "src.pt"
            torch.save(payload, src, pickle_module=pickle_module, _use_new_zipfile_serialization=zipped)
            times = []
            for _ in range(a.repeats):
                t0 = time.perf_counter()
                import_published(
                    fmt,
                    arch,
                    src,
                    tmp / "model.pt",
                    log=lambda s: None,
                    **{"sha256": None, "num_classes": None, "width": 1.0, "mean": None, "std": None, **norm},
                )
                times.append(time.perf_counter() - t0)
            rows.append(
                {
                    "format": fmt,
                    "arch": arch,
                    "file": label,
                    "mb": round(src.stat().st_size / 2**20, 1),
                    "seconds_median": round(statistics.median(times), 2),
                    "seconds": [round(t, 2) for t in times],
                }
            )
            print(f"{label:32s} {rows[-1]['mb']:7.1f} MB  {rows[-1]['seconds_median']:6.2f} s")
    out = {
        "rows": rows,
        "repeats": a.repeats,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor(),
        "provenance": storage.provenance(),
    }
    if a.out:
        storage.write_json(a.out, out)


if __name__ == "__main__":
    main()
