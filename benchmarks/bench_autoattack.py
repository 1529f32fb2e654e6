"""AutoAttack (standard version) time, model passes and robust accuracy: robinterp's wrapper around
the reference code, the reference called directly, and (from an earlier run's JSON) a former
implementation.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_autoattack.py      # CPU, demo-sized models
    PYTHONPATH=src python benchmarks/bench_autoattack.py --images 359 --out X.json
    PYTHONPATH=src python benchmarks/bench_autoattack.py --before old.json      # add its rows, labelled

The reference is the authors' code as packaged on PyPI (`pyautoattack`, torch only), which
`robinterp.autoattack` runs one attack at a time and checks point by point. On the demo's digits
(16x16x3, `resnet18_cifar` width 1/8) it trains a standard and an L2 PGD-trained model for a few
epochs (seeded), then runs AutoAttack on the same test images at the demo's threat model (L2,
eps 1.5), through robinterp and directly, one after the other in alternating order, and reports
wall and CPU seconds (with one thread the CPU time moves less with other work on a shared
machine), seconds per image, clean / PGD-10 / AutoAttack accuracy, and the images each passed
through the model (forward only; forward + backward), which scale the cost to other models.
Each run is long (tens of seconds), so it is timed once. `--before` merges the rows of a JSON
this script wrote at an earlier commit (its method renamed `<method> @ <commit>`): the same
seeded models, so the accuracies compare image for image. Writes a table to stdout and JSON to
benchmarks/results/autoattack_<device>.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from robinterp import storage
from robinterp.attacks import AttackConfig, adversarial_examples
from robinterp.autoattack import autoattack
from robinterp.data import load_split
from robinterp.device import DeviceData, resolve_device
from robinterp.models import build_model
from robinterp.sources import prepare

RESULTS = Path(__file__).resolve().parent / "results"
NORM, EPS = "l2", 1.5  # the demo's eval_attack
PGD = AttackConfig.of(norm=NORM, eps=EPS, step_size=0.375, steps=10)
TRAIN_ATTACK = AttackConfig.of(norm=NORM, eps=EPS, step_size=0.375, steps=7)


def train_model(train: DeviceData, split, adversarial: bool, epochs: int, device) -> torch.nn.Module:
    """The demo's model, trained briefly (SGD 0.05, batch 64), standard or PGD-7 adversarial."""
    torch.manual_seed(0)
    model = build_model("resnet18_cifar", 10, split.manifest["mean"], split.manifest["std"], width=0.125).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        perm = torch.randperm(len(train), generator=gen)
        for i in range(0, len(train), 64):
            x, y = train.batch(perm[i : i + 64])
            if adversarial:
                x = adversarial_examples(model, x, y, TRAIN_ATTACK)
            model.train()
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


class PassCounter:
    """Images through the model: forward only, and forward + backward (input gradient)."""

    def __init__(self, model):
        self.forward = self.backward = 0
        self.handle = model.register_forward_pre_hook(self)

    def __call__(self, module, args):
        if torch.is_grad_enabled() and args[0].requires_grad:
            self.backward += len(args[0])
        else:
            self.forward += len(args[0])


def run_ours(model, x, y):
    return autoattack(model, x, y, NORM, EPS, seed=0, batch_size=len(x)).robust.float().mean().item()


def run_reference(model, x, y):
    import pyautoattack

    aa = pyautoattack.AutoAttack(model, norm="L2", eps=EPS, version="standard", seed=0, device=x.device)
    xa, _ = aa.run_standard_evaluation(x, y, batch_size=len(x))
    with torch.no_grad():
        return (model(xa).argmax(1) == y).float().mean().item()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--images", type=int, default=100, help="test images per model (the first ones)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--models", nargs="+", choices=["standard", "robust_l2"], default=["standard", "robust_l2"])
    p.add_argument("--no-reference", action="store_true", help="robinterp only (size a subset)")
    p.add_argument(
        "--before", type=Path, default=None, help="JSON of this benchmark at an earlier commit: add its rows"
    )
    p.add_argument(
        "--before-label",
        default=None,
        help="their method label (default: '<method> @ <commit>' from the JSON's provenance)",
    )
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)
    device = resolve_device(a.device)
    with tempfile.TemporaryDirectory() as tmp:
        prepare({"kind": "digits", "image_size": 16, "val_fraction": 0.1, "test_fraction": 0.2, "seed": 0}, tmp)
        split = load_split(Path(tmp) / "train")
        train = DeviceData(split, device)
        test = DeviceData(load_split(Path(tmp) / "test"), device)
    x, y = test.batch(torch.arange(min(a.images, len(test))))
    rows = []
    models = [
        (name, adversarial) for name, adversarial in [("standard", False), ("robust_l2", True)] if name in a.models
    ]
    for i, (name, adversarial) in enumerate(models):
        model = train_model(train, split, adversarial, a.epochs, device)
        xp = adversarial_examples(model, x, y, PGD)
        with torch.no_grad():
            clean = (model(x).argmax(1) == y).float().mean().item()
            pgd = (model(xp).argmax(1) == y).float().mean().item()
        runs = {"robinterp": run_ours} if a.no_reference else {"robinterp": run_ours, "pyautoattack": run_reference}
        order = list(runs) if i % 2 == 0 else list(runs)[::-1]  # alternate who goes first
        for method in order:
            counter = PassCounter(model)
            start, cpu = time.perf_counter(), time.process_time()
            acc = runs[method](model, x, y)
            seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
            counter.handle.remove()
            rows.append(
                {
                    "model": name,
                    "method": method,
                    "images": len(y),
                    "seconds": seconds,
                    "seconds_per_image": seconds / len(y),
                    "cpu_seconds": cpu_seconds,
                    "clean_acc": clean,
                    "pgd10_acc": pgd,
                    "autoattack_acc": acc,
                    "forward_per_image": counter.forward / len(y),
                    "forward_backward_per_image": counter.backward / len(y),
                }
            )
    result = {
        "device": str(device),
        "device_name": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "norm": NORM,
        "eps": EPS,
        "train_epochs": a.epochs,
        "rows": rows,
        "provenance": storage.provenance(argv=sys.argv[1:]),
    }
    if a.before:
        before = storage.read_json(a.before)
        commit = (before["provenance"]["git"]["commit"] or "?")[:7]
        rows += [{**r, "method": a.before_label or f"{r['method']} @ {commit}"} for r in before["rows"]]
        result["before"] = {"label": a.before_label, "provenance": before["provenance"]}
    out = a.out or RESULTS / f"autoattack_{device.type}.json"
    storage.write_json(out, result)
    print(f"device {result['device_name']}  threads {result['threads']}  L2 eps {EPS}")
    print(
        f"{'model':<11}{'method':<30}{'images':>7}{'seconds':>9}{'CPU s':>8}{'s/image':>9}{'clean':>7}{'PGD-10':>8}"
        f"{'AA':>7}{'fwd/img':>9}{'f+b/img':>9}"
    )
    for r in rows:
        print(
            f"{r['model']:<11}{r['method']:<30}{r['images']:>7}{r['seconds']:>9.1f}{r.get('cpu_seconds', 0):>8.1f}"
            f"{r['seconds_per_image']:>9.3f}"
            f"{100 * r['clean_acc']:>7.1f}{100 * r['pgd10_acc']:>8.1f}{100 * r['autoattack_acc']:>7.1f}"
            f"{r['forward_per_image']:>9.0f}{r['forward_backward_per_image']:>9.0f}"
        )
    print(f"-> {out}")


if __name__ == "__main__":
    main()
