"""Training-step and attack throughput: robinterp vs MadryLab robustness vs torchattacks.

    PYTHONPATH=src python benchmarks/bench_train.py            # device auto (CUDA if present)
    PYTHONPATH=src python benchmarks/bench_train.py --device cpu
    PYTHONPATH=src python benchmarks/bench_train.py --no-peers --compile --out X.json   # an ablation

For `resnet18_cifar` at 32x32 and `resnet50` at 128x128 on synthetic data it measures images/s
of a standard and a PGD-k (L2) adversarial training step (robinterp's `train_step`, the code the
training loop runs), the same steps through robustness's own training loop
(`robustness.train._model_loop` with an `AttackerModel` around the same network), and the
attack alone against torchattacks `PGDL2` at equal steps. FLOPs per step come from
torch.utils.flop_counter; MFU = achieved FLOP/s over the measured dense matmul rate (bf16 on
CUDA, fp32 on CPU). Methods are timed in interleaved blocks and each keeps its fastest block,
in alternating order, so a shared, busy machine penalises all of them alike. CPU runs use width-reduced models, small
batches and few PGD steps (the JSON says which); the model and attack are the same for all.
Writes a table to stdout and JSON to benchmarks/results/train_<device>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import sys
import time
import types
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from robinterp import storage
from robinterp.attacks import AttackConfig, adversarial_examples
from robinterp.device import resolve_device
from robinterp.models import build_model
from robinterp.train import TrainConfig, make_optimizer, train_step

RESULTS = Path(__file__).resolve().parent / "results"
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
# (arch, image size, eps, step) as in the paper's CIFAR-10 / Small ImageNet robust training
CASES = [("resnet18_cifar", 32, 0.5, 0.1), ("resnet50", 128, 1.5, 2.5 * 1.5 / 20)]
SETTINGS = {  # per device: width, batch, PGD steps, timed steps per block
    "cpu": {"resnet18_cifar": (0.25, 64, 3, 2), "resnet50": (0.125, 8, 2, 2)},
    "cuda": {"resnet18_cifar": (1.0, 512, 20, 5), "resnet50": (1.0, 128, 20, 3)},
}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_rate(device) -> dict:
    """Dense matmul FLOP/s: bf16 on CUDA (the tensor-core peak MFU refers to), fp32 on CPU."""
    n, dtype = (8192, torch.bfloat16) if device.type == "cuda" else (1024, torch.float32)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(5):
        sync(device)
        t = time.perf_counter()
        for _ in range(4):
            a @ b
        sync(device)
        best = min(best, (time.perf_counter() - t) / 4)
    return {"dtype": str(dtype).removeprefix("torch."), "n": n, "flops_per_s": 2 * n**3 / best}


def fastest(blocks: dict, repeats: int, device) -> dict:
    """Seconds of each callable's fastest run, timed interleaved in alternating order (after one
    warm-up each): load from other processes then hits every method alike."""
    for fn in blocks.values():
        fn()
    sync(device)
    best = {k: float("inf") for k in blocks}
    for r in range(repeats):
        for k, fn in list(blocks.items()) if r % 2 == 0 else list(blocks.items())[::-1]:
            sync(device)
            t = time.perf_counter()
            fn()
            sync(device)
            best[k] = min(best[k], time.perf_counter() - t)
    return best


class Backbone(torch.nn.Module):
    """Our network under robustness's calling convention (it passes with_latent/fake_relu flags)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x, with_latent=False, fake_relu=False, no_relu=False):
        return self.net.head(self.net.features(x))


@contextlib.contextmanager
def cpu_shim(device):
    """robustness calls `.cuda()` on targets and inputs; on CPU make that the identity."""
    if device.type == "cuda":
        yield
        return
    real = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *a, **k: self
    try:
        yield
    finally:
        torch.Tensor.cuda = real


def robustness_blocks(arch, width, x, y, eps, step, steps, iters, device):
    """robustness's own epoch loop over `iters` copies of the batch, standard and PGD-k."""
    from robustness.attacker import AttackerModel
    from robustness.train import _model_loop

    torch.manual_seed(0)
    net = build_model(arch, 10, MEAN, STD, width).model.to(device)
    ds = types.SimpleNamespace(mean=torch.tensor(MEAN), std=torch.tensor(STD))
    model = AttackerModel(Backbone(net), ds).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    args = types.SimpleNamespace(
        eps=eps,
        constraint="2",
        attack_lr=step,
        attack_steps=steps,
        random_start=False,
        random_restarts=0,
        use_best=False,
        custom_eps_multiplier=None,
        mixed_precision=False,
    )
    loader = [(x, y)] * iters

    def run(adv):
        with cpu_shim(device), contextlib.redirect_stderr(io.StringIO()):  # its tqdm bar
            _model_loop(args, "train", loader, model, opt, 0, adv, None)

    return {"robustness standard": lambda: run(False), f"robustness PGD-{steps}": lambda: run(True)}


def ours_blocks(arch, width, x, y, eps, step, steps, iters, device, speed):
    """robinterp's train_step, set up as the training loop does it (`speed`: amp, channels_last,
    fused, compile)."""
    torch.manual_seed(0)
    attack = AttackConfig.of(norm="l2", eps=eps, step_size=step, steps=steps)
    out, flops = {}, {}
    for name, atk in (("standard", None), (f"PGD-{steps}", attack)):
        cfg = TrainConfig.of(arch=arch, width=width, attack=atk, **speed)
        model = build_model(arch, 10, MEAN, STD, width).to(device)
        xs = x.contiguous(memory_format=torch.channels_last) if cfg.channels_last else x
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        opt = make_optimizer(cfg, model, device)
        sums = torch.zeros(3, dtype=torch.float64, device=device)
        counter = FlopCounterMode(display=False)  # eager: the FLOPs are the same compiled or not
        with counter:
            train_step(cfg, model, model, model, opt, xs, y, len(y), None, sums)
        flops[name] = counter.get_total_flops()
        # as in train._train: the step and the attack each run a compiled wrapper of the model
        step_model, attack_model = (torch.compile(model), torch.compile(model)) if cfg.compile else (model, model)

        def run(cfg=cfg, model=model, step_model=step_model, attack_model=attack_model, opt=opt, sums=sums, xs=xs):
            for _ in range(iters):
                train_step(cfg, model, step_model, attack_model, opt, xs, y, len(y), None, sums)

        out[f"robinterp {name}"] = run
    return out, flops


def attack_blocks(arch, width, x, y, eps, step, steps, device, with_peers=True):
    """The attack alone, fp32 eval mode (as `robinterp evaluate` runs it without amp)."""
    torch.manual_seed(0)
    model = build_model(arch, 10, MEAN, STD, width).to(device).eval()
    cfg = AttackConfig.of(norm="l2", eps=eps, step_size=step, steps=steps)
    out = {f"robinterp attack PGD-{steps}": lambda: adversarial_examples(model, x, y, cfg)}
    if with_peers:
        import torchattacks

        ta = torchattacks.PGDL2(model, eps=eps, alpha=step, steps=steps, random_start=False)
        out[f"torchattacks PGDL2-{steps}"] = lambda: ta(x, y)
    return out


def bench_case(arch, size, eps, step, device, speed, repeats, settings, with_peers=True):
    width, batch, steps, iters = settings[arch]
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, size, size, generator=gen).to(device)
    y = torch.randint(0, 10, (batch,), generator=gen).to(device)
    blocks, flops = ours_blocks(arch, width, x, y, eps, step, steps, iters, device, speed)
    peers = {}
    if with_peers:
        try:
            blocks.update(robustness_blocks(arch, width, x, y, eps, step, steps, iters, device))
        except Exception as e:  # record why, keep benchmarking the rest
            peers["robustness_error"] = f"{type(e).__name__}: {e}"
    attack = attack_blocks(arch, width, x, y, eps, step, steps, device, with_peers)
    seconds = fastest(blocks, repeats, device)
    attack_seconds = fastest(attack, 2 * repeats, device)  # short blocks: more draws against noise
    rows = []
    for name, s in seconds.items():
        rows.append(
            {
                "case": f"{arch} {size}px",
                "method": name,
                "images_per_s": batch * iters / s,
                "seconds_per_step": s / iters,
            }
        )
    for name, s in attack_seconds.items():
        rows.append({"case": f"{arch} {size}px", "method": name, "images_per_s": batch / s, "seconds_per_step": s})
    return {
        "arch": arch,
        "image_size": size,
        "width": width,
        "batch": batch,
        "pgd_steps": steps,
        "eps": eps,
        "step_size": step,
        "timed_steps_per_block": iters,
        "flops_per_step": flops,
        "rows": rows,
        **peers,
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-amp", action="store_true", help="CUDA: fp32 (bf16 autocast otherwise)")
    p.add_argument("--no-channels-last", action="store_true", help="CUDA: contiguous NCHW (channels_last otherwise)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (train.compile: true)")
    p.add_argument("--no-peers", action="store_true", help="robinterp only (no robustness / torchattacks rows)")
    p.add_argument("--cases", nargs="+", choices=[c[0] for c in CASES], default=[c[0] for c in CASES])
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)
    device = resolve_device(a.device)
    cuda = device.type == "cuda"
    speed = {
        "amp": cuda and not a.no_amp,
        "channels_last": cuda and not a.no_channels_last,
        "fused": cuda,
        "compile": a.compile,
    }
    settings = SETTINGS["cuda" if cuda else "cpu"]
    peak = matmul_rate(device)
    cases = [
        bench_case(arch, size, eps, step, device, speed, a.repeats, settings, not a.no_peers)
        for arch, size, eps, step in CASES
        if arch in a.cases
    ]
    for case in cases:  # MFU of our steps
        for row in case["rows"]:
            kind = row["method"].removeprefix("robinterp ").removeprefix("robustness ")
            if kind in case["flops_per_step"]:
                achieved = case["flops_per_step"][kind] / row["seconds_per_step"]
                row["tflops_per_s"] = achieved / 1e12
                row["mfu"] = achieved / peak["flops_per_s"]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.processor() or 'cpu'}"
    result = {
        "device": str(device),
        "device_name": name,
        "threads": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "amp_bf16": speed["amp"],
        "channels_last": speed["channels_last"],
        "fused_optimizer": speed["fused"],
        "compile": speed["compile"],
        "matmul_peak": peak,
        "cases": cases,
        "notes": (
            "CPU: width-reduced models, small batches, few PGD steps (see each case); robustness runs "
            "its unchanged training loop with `.cuda()` made the identity on CPU. robustness has no "
            "bf16 path (apex amp only), so on CUDA it runs fp32 while robinterp runs its defaults "
            "(bf16 autocast, channels_last, fused SGD); rerun with --no-amp for fp32 vs fp32. "
            "MFU counts FLOPs from torch.utils.flop_counter (conv/matmul only) and for peer rows "
            "uses the same FLOPs (same model and attack)."
        ),
        "provenance": storage.provenance(argv=sys.argv[1:]),
    }
    out = a.out or RESULTS / f"train_{device.type}.json"
    storage.write_json(out, result)
    print(
        f"device {name}  threads {torch.get_num_threads()}  matmul {peak['dtype']} "
        f"{peak['flops_per_s'] / 1e12:.3f} TFLOP/s"
    )
    print(f"{'case':<22}{'method':<30}{'images/s':>12}{'s/step':>10}{'MFU':>8}")
    for case in cases:
        print(
            f"# {case['arch']} width {case['width']} batch {case['batch']} PGD-{case['pgd_steps']} "
            f"GFLOP/step {', '.join(f'{k} {v / 1e9:.2f}' for k, v in case['flops_per_step'].items())}"
        )
        for r in case["rows"]:
            mfu = f"{100 * r['mfu']:.1f}%" if "mfu" in r else ""
            print(f"{r['case']:<22}{r['method']:<30}{r['images_per_s']:>12.1f}{r['seconds_per_step']:>10.3f}{mfu:>8}")
        if "robustness_error" in case:
            print(f"  robustness: {case['robustness_error']}")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
