"""Time our explanation metrics against Quantus 0.6.0 computing the same quantity on the same inputs.

Demo size by default: 50 images 3 x 16 x 16, the demo's CIFAR ResNet18 (width 1/8, random weights),
10 classes, random attributions; settings as tests/test_quantus_crosscheck.py matches them (same
number of samples/steps/runs). Each pair is warmed up once, then timed alternately --repeats times
(median). Prints a table, writes JSON. Quantus is a test-only dependency: pip install quantus==0.6.0.

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/bench_quantus.py --out benchmarks/results/quantus_cpu.json
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from robinterp import attribution_metrics, storage
from robinterp.attribution_metrics import faithfulness_correlation, local_lipschitz_estimate
from robinterp.models import build_model


def timed_pair(ours, reference, repeats):
    ours(), reference()
    times = [[], []]
    for _ in range(repeats):
        for k, fn in enumerate((ours, reference)):
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=50)
    p.add_argument("--size", type=int, default=16)
    p.add_argument("--samples", type=int, default=10, help="sensitivity / Lipschitz / infidelity draws")
    p.add_argument("--runs", type=int, default=100, help="faithfulness correlation subsets")
    p.add_argument("--steps", type=int, default=16, help="deletion steps")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()
    import quantus

    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    model = build_model("resnet18_cifar", 10, [0.5] * 3, [0.25] * 3, 0.125).eval()
    for q in model.parameters():
        q.requires_grad_(False)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(a.images, 3, a.size, a.size, generator=g)
    y = torch.randint(0, 10, (a.images,), generator=g)
    attr = torch.randn(x.shape, generator=g)
    x_np, y_np, a_np = x.numpy(), y.numpy(), attr.numpy()
    pixels = a.size * a.size
    common = dict(model=model, x_batch=x_np, y_batch=y_np, channel_first=True, device="cpu")

    def saliency(model, inputs, targets, **kw):
        return attribution_metrics.explainer_of("saliency", model, "logit", 16, None)(
            torch.as_tensor(inputs), torch.as_tensor(targets)
        ).numpy()

    q = dict(disable_warnings=True)
    pairs = {
        "gini vs Sparseness": (
            lambda: attribution_metrics.gini(attr),
            lambda: quantus.Sparseness(**q)(a_batch=a_np, **common),
        ),
        # Quantus wants features_in_step to divide H*W but steps over C*H*W values: 3x our steps
        "deletion+insertion (17 points each) vs PixelFlipping (48 steps)": (
            lambda: attribution_metrics.deletion_insertion(
                model, x, attr, y, a.steps, "zero", "probability", 256, "absolute"
            ),
            lambda: quantus.PixelFlipping(features_in_step=pixels // a.steps, perturb_baseline=0.0, **q)(
                a_batch=a_np, softmax=True, **common
            ),
        ),
        "sensitivity_max vs MaxSensitivity (saliency)": (
            lambda: attribution_metrics.sensitivity_max(model, x, y, "saliency", 16, 0.02, a.samples, "logit"),
            lambda: quantus.MaxSensitivity(nr_samples=a.samples, lower_bound=0.02, **q)(
                a_batch=saliency(model, x_np, y_np), explain_func=saliency, **common
            ),
        ),
        "infidelity vs Infidelity": (
            lambda: attribution_metrics.infidelity(model, x, attr, y, 0.1, a.samples, "logit", normalize=False),
            lambda: quantus.Infidelity(n_perturb_samples=a.samples, **q)(a_batch=a_np, softmax=False, **common),
        ),
        "faithfulness_correlation vs FaithfulnessCorrelation": (
            lambda: faithfulness_correlation(model, x, attr, y, a.runs, 0.2, "zero", "logit", g, 256),
            lambda: quantus.FaithfulnessCorrelation(
                nr_runs=a.runs, subset_size=round(0.2 * 3 * pixels), perturb_baseline=0.0, return_aggregate=False, **q
            )(a_batch=a_np, softmax=False, **common),
        ),
        "local_lipschitz vs LocalLipschitzEstimate (saliency)": (
            lambda: local_lipschitz_estimate(model, x, y, "saliency", 16, 0.1, a.samples, "logit", g),
            lambda: quantus.LocalLipschitzEstimate(nr_samples=a.samples, normalise=False, **q)(
                a_batch=saliency(model, x_np, y_np), explain_func=saliency, **common
            ),
        ),
    }
    rows = []
    print(f"{'pair':<55} {'ours s':>8} {'quantus s':>10} {'ratio':>6}")
    for name, (ours, ref) in pairs.items():
        t_ours, t_ref = timed_pair(ours, ref, a.repeats)
        rows.append(
            {
                "pair": name,
                "ours_s": round(t_ours, 4),
                "quantus_s": round(t_ref, 4),
                "quantus_over_ours": round(t_ref / t_ours, 2),
            }
        )
        print(f"{name:<55} {t_ours:8.3f} {t_ref:10.3f} {t_ref / t_ours:6.1f}")
    if a.out:
        storage.write_json(
            a.out,
            {
                "rows": rows,
                "settings": vars(a) | {"out": str(a.out)},
                "torch_threads": torch.get_num_threads(),
                "cpu": platform.processor(),
                "machine": platform.machine(),
                "torch": torch.__version__,
                "quantus": quantus.__version__,
                "numpy": np.__version__,
                "date": time.strftime("%Y-%m-%d"),
            },
        )


if __name__ == "__main__":
    main()
