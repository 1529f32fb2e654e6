"""How the local Lipschitz estimate settles with its sample count: the measurement behind the
default of `metrics.interpretability.lipschitz_samples`.

    PYTHONPATH=src python benchmarks/lipschitz_samples.py --test results/demo/digits/data/test \
        --checkpoints standard=results/demo/digits/models/standard/model.pt \
                      robust_l2=results/demo/digits/models/robust_l2/model.pt

The estimate is a maximum over k Gaussian neighbours x' = x + N(0, sigma^2) of
||e(x) - e(x')|| / ||x - x'|| (`attribution_metrics.local_lipschitz_estimate`), so it grows with
k and a small k is biased low and noisy. For each model it draws `--max-samples` neighbours per
image once (the pool; Quantus uses 200), then for each k in `--counts` takes `--rounds` random
k-subsets of the pool and reports, averaged over the images: the estimate (the mean of the
per-image maxima, as the interpretability table reports it), its share of the estimate at the
full pool, its spread over the rounds (how much the table's number moves with another draw), and
how often the order of the models' estimates is the order at the full pool. The images are a
seeded sample of the test split; the explainer, noise and output are the metric's defaults.
Writes a table to stdout and JSON to benchmarks/results/lipschitz_samples_<device>.json.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from robinterp import storage
from robinterp.attacks import attack_mode
from robinterp.attribution_metrics import explainer_of
from robinterp.checkpoints import load_model
from robinterp.config import default
from robinterp.data import load_split
from robinterp.device import resolve_device

RESULTS = Path(__file__).resolve().parent / "results"
KEY = "dataset.metrics.interpretability"


def ratio_pool(
    model,
    x,
    y,
    explainer: str,
    steps: int,
    output: str,
    noise_std: float,
    samples: int,
    batch: int,
    gen: torch.Generator,
) -> np.ndarray:
    """images x samples of ||e(x) - e(x')|| / ||x - x'||, each column one Gaussian neighbour per image."""
    explain = explainer_of(explainer, model, output, steps, batch)
    with attack_mode(model):
        a = explain(x.contiguous(), y).detach().flatten(1).double()
        cols = []
        per_call = max(1, batch // len(x))  # neighbours explained together
        for start in range(0, samples, per_call):
            m = min(per_call, samples - start)
            noise = torch.randn((m, *x.shape), generator=gen).to(x) * noise_std
            moved = explain((x[None] + noise).flatten(0, 1).contiguous(), y.repeat(m)).detach()
            moved = moved.view(m, len(x), -1).double()
            cols.append(((a[None] - moved).norm(dim=2) / noise.flatten(2).double().norm(dim=2)).T)
    return torch.cat(cols, 1).cpu().numpy()


def settle(pools: dict[str, np.ndarray], counts: list[int], rounds: int, seed: int) -> dict:
    """Per model and k: the estimate's mean over rounds, its sd, its share of the full-pool value;
    per k: how often the models' order equals the order at the full pool."""
    rng = np.random.default_rng(seed)
    full = {name: pool.max(1).mean() for name, pool in pools.items()}
    order = sorted(full, key=full.get)
    out = {"models": {name: [] for name in pools}, "order_at_pool": order, "order_agreement": []}
    for k in counts:
        est = {}
        for name, pool in pools.items():
            n, size = pool.shape
            picks = np.argsort(rng.random((rounds, n, size)), axis=2)[..., :k]  # k of the pool, per round and image
            est[name] = np.take_along_axis(pool[None].repeat(rounds, 0), picks, 2).max(2).mean(1)  # rounds
            out["models"][name].append(
                {
                    "k": k,
                    "mean": float(est[name].mean()),
                    "sd": float(est[name].std()),
                    "share_of_pool": float(est[name].mean() / full[name]),
                }
            )
        stacked = np.stack([est[name] for name in order], 1)  # rounds x models, in the pool's order
        out["order_agreement"].append({"k": k, "share": float((np.diff(stacked, axis=1) > 0).all(1).mean())})
    out["pool_estimate"] = {name: float(v) for name, v in full.items()}
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--test", type=Path, required=True, help="packed test split")
    p.add_argument("--checkpoints", nargs="+", required=True, help="NAME=model.pt, e.g. standard=... robust_l2=...")
    p.add_argument("--images", type=int, default=10, help="test images (the demo's sensitivity_images)")
    p.add_argument("--max-samples", type=int, default=200, help="neighbours per image in the pool (Quantus: 200)")
    p.add_argument("--counts", type=int, nargs="+", default=[1, 2, 5, 10, 20, 50, 100, 200])
    p.add_argument("--rounds", type=int, default=500, help="k-subsets of the pool per k")
    p.add_argument("--batch-size", type=int, default=256, help="images or path points per pass")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)
    if max(a.counts) > a.max_samples:
        p.error("--counts above --max-samples")
    device = resolve_device(a.device)
    explainer, output = default(f"{KEY}.explainer"), default(f"{KEY}.output")
    steps = default(f"{KEY}.explainer_steps")
    noise_std = default(f"{KEY}.lipschitz_noise")
    split = load_split(a.test)
    idx = np.sort(np.random.default_rng(a.seed).permutation(len(split.labels))[: a.images])
    x, y = (t.to(device) for t in split.tensors(idx))
    pools, seconds = {}, {}
    for item in a.checkpoints:
        name, _, path = item.partition("=")
        model, _ = load_model(Path(path), device)
        start = time.perf_counter()
        pools[name] = ratio_pool(
            model,
            x,
            y,
            explainer,
            steps,
            output,
            noise_std,
            a.max_samples,
            a.batch_size,
            torch.Generator().manual_seed(a.seed),
        )
        seconds[name] = time.perf_counter() - start
    result = {
        "device": str(device),
        "device_name": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "test": str(a.test),
        "checkpoints": a.checkpoints,
        "images": len(idx),
        "explainer": explainer,
        "output": output,
        "noise_std": noise_std,
        "max_samples": a.max_samples,
        "rounds": a.rounds,
        "seconds_for_pool": seconds,
        **settle(pools, a.counts, a.rounds, a.seed),
        "provenance": storage.provenance(argv=sys.argv[1:]),
    }
    out = a.out or RESULTS / f"lipschitz_samples_{device.type}.json"
    storage.write_json(out, result)
    names = list(pools)
    print(
        f"{len(idx)} images, {explainer} on the {output}, noise sd {noise_std}, pool {a.max_samples} neighbours, "
        f"{a.rounds} rounds per k; order at the pool: {' < '.join(result['order_at_pool'])}"
    )
    print(f"{'k':>5}" + "".join(f"{n + ' mean (sd, % of pool)':>38}" for n in names) + f"{'order kept':>12}")
    for i, k in enumerate(a.counts):
        cells = "".join(
            f"{r['mean']:>18.4f} ({r['sd']:.4f}, {100 * r['share_of_pool']:5.1f}%)"
            for r in (result["models"][n][i] for n in names)
        )
        print(f"{k:>5}{cells}{100 * result['order_agreement'][i]['share']:>11.1f}%")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
