"""bf16 vs fp32 adversarial training: the robust accuracy and the time that `train.amp` trades.

    PYTHONPATH=src python benchmarks/bench_amp.py --device cuda                 # a few epochs, GPU
    PYTHONPATH=src python benchmarks/bench_amp.py --device cpu                  # a check of this script
    PYTHONPATH=src python benchmarks/bench_amp.py --device cuda --epochs 10 --out X.json

Trains the CIFAR-10 robust variant's recipe (ResNet18 with the CIFAR stem, SGD 0.01, momentum
0.9, weight decay 5e-4, batch 128, crop + flip, PGD L2 eps 0.5 step 0.1 at every batch) twice
from the same seed through robinterp's own training loop, once with `amp: true` (bf16 autocast of
the steps and of the training attack) and once in fp32, then evaluates both the same way, in
fp32: clean accuracy and accuracy under PGD-20 (L2 eps 0.5, step 0.1, random start) on the test
split. Data: CIFAR-10 from `--cifar-root` (cifar-10-batches-py) when it is there, else the
offline digits at 32x32x3 (nothing is downloaded). bf16 autocast is CUDA-only: on a CPU both
runs are fp32 and must agree, which checks the script. Few epochs on CUDA and a tiny model on a
CPU: the JSON says which. Writes a table to stdout and JSON to benchmarks/results/amp_<device>.json.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from robinterp import storage
from robinterp.attacks import AttackConfig
from robinterp.checkpoints import load_model
from robinterp.data import load_split
from robinterp.device import DeviceData, resolve_device
from robinterp.evaluate import accuracy
from robinterp.sources import prepare
from robinterp.train import TrainConfig, train

RESULTS = Path(__file__).resolve().parent / "results"
EVAL = {"norm": "l2", "eps": 0.5, "step_size": 0.1, "steps": 20}  # paper Table 1
SETTINGS = {  # per device: width, epochs, training PGD steps, evaluation PGD steps, test images
    "cuda": {"width": 1.0, "epochs": 5, "train_steps": 20, "eval_steps": 20, "test_images": None},
    "cpu": {"width": 0.125, "epochs": 1, "train_steps": 2, "eval_steps": 5, "test_images": 100},
}


def data(root: Path, cifar_root: Path) -> str:
    """Packed train/val/test splits under root: CIFAR-10 when present (5,000 held out), else digits."""
    if (cifar_root / "cifar-10-batches-py").is_dir():
        prepare({"kind": "cifar10", "root": str(cifar_root), "download": False, "val_size": 5000, "seed": 0}, root)
        return "cifar10"
    prepare({"kind": "digits", "image_size": 32, "seed": 0}, root)
    return "digits (32x32x3, CIFAR-10 not found)"


def run(amp: bool, splits: dict, s: dict, device: torch.device, work: Path) -> dict:
    cfg = TrainConfig.from_dict(
        {
            "arch": "resnet18_cifar",
            "width": s["width"],
            "epochs": s["epochs"],
            "batch_size": 128,
            "lr": 0.01,
            "momentum": 0.9,
            "weight_decay": 5e-4,
            "augment": {"crop_padding": 4, "flip": True},
            "attack": {"norm": "l2", "eps": 0.5, "step_size": 0.1, "steps": s["train_steps"]},
            "selection_metric": "clean",
            "seed": 0,
            "amp": amp,
            "channels_last": device.type == "cuda",
            "device": str(device),
            "mean": [0.4914, 0.4822, 0.4465],
            "std": [0.2023, 0.1994, 0.2010],
        }
    )
    out = work / ("bf16" if amp else "fp32")
    start = time.perf_counter()
    meta = train(cfg, splits["train"], splits["val"], out / "model.pt", out / "state", out / "log.csv")
    seconds = time.perf_counter() - start
    model, _ = load_model(out / "model.pt", device)
    attack = AttackConfig.of(**{**EVAL, "steps": s["eval_steps"]})
    res = accuracy(model, DeviceData(splits["test"], device), attack, 250, s["test_images"], amp=False, seed=0)
    return {
        "precision": "bf16" if amp else "fp32",
        "amp": amp,
        "selected_epoch": meta["epoch"],
        "train_seconds": seconds,
        "seconds_per_epoch": seconds / s["epochs"],
        "test_images": res["n"],
        "clean_acc": res["clean_acc"],
        "pgd_acc": res["adv_acc"],
        "val_clean_acc": meta["metrics"]["val_clean_acc"],
        "train_loss": meta["metrics"]["train_loss"],
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--cifar-root", type=Path, default=Path("data/cifar10"))
    p.add_argument("--epochs", type=int, default=None, help="default: 5 on CUDA, 1 on CPU")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)
    device = resolve_device(a.device)
    s = dict(SETTINGS["cuda" if device.type == "cuda" else "cpu"])
    if a.epochs:
        s["epochs"] = a.epochs
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        source = data(tmp / "data", a.cifar_root)
        splits = {k: load_split(tmp / "data" / k) for k in ("train", "val", "test")}
        runs = [run(amp, splits, s, device, tmp) for amp in (True, False)]
        n_train = len(splits["train"].labels)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine())
    result = {
        "device": str(device),
        "device_name": name,
        "threads": torch.get_num_threads(),
        "data": source,
        "train_images": n_train,
        "settings": s,
        "eval_attack": {**EVAL, "steps": s["eval_steps"]},
        "bf16_on_this_device": device.type == "cuda",
        "runs": runs,
        "provenance": storage.provenance(argv=sys.argv[1:]),
    }
    out = a.out or RESULTS / f"amp_{device.type}.json"
    storage.write_json(out, result)
    print(
        f"{name}: {source}, {n_train} training images, width {s['width']}, {s['epochs']} epochs, "
        f"PGD-{s['train_steps']} training, PGD-{s['eval_steps']} evaluation (fp32) on {runs[0]['test_images']} images"
    )
    print(f"{'precision':<10}{'epoch':>6}{'clean %':>9}{'PGD %':>8}{'s/epoch':>9}")
    for r in runs:
        print(
            f"{r['precision']:<10}{r['selected_epoch']:>6}{100 * r['clean_acc']:>9.2f}{100 * r['pgd_acc']:>8.2f}"
            f"{r['seconds_per_epoch']:>9.1f}"
        )
    print(f"-> {out}")


if __name__ == "__main__":
    main()
