"""Time our IG and SHAP against captum's IntegratedGradients and shap.GradientExplainer (defaults).

Same model (CIFAR ResNet18 at --width, random weights or --checkpoint), same test-like images,
same target; warmed up once, then timed alternately --repeats times (median). Prints a table, writes JSON.

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/bench_attributions.py \
        --out benchmarks/results/attributions_cpu.json
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from functools import partial
from pathlib import Path

import torch

from robinterp import storage
from robinterp.attributions import ScalarOutput, ShapConfig, explain_shap, integrated_gradients
from robinterp.checkpoints import load_model
from robinterp.models import build_model


def sync():
    if torch.cuda.is_initialized():
        torch.cuda.synchronize()  # CUDA kernels run asynchronously: time them to completion


def timed_pair(ours, reference, repeats):
    """Median wall times of two functions, run alternately (so load changes hit both) after one
    untimed warm-up run each (allocator, kernel selection)."""
    outs = [ours(), reference()]
    times = [[], []]
    for _ in range(repeats):
        for k, fn in enumerate((ours, reference)):
            sync()
            t0 = time.perf_counter()
            outs[k] = fn()
            sync()
            times[k].append(time.perf_counter() - t0)
    return statistics.median(times[0]), statistics.median(times[1]), outs


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, default=None)
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--images", type=int, default=8)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--background", type=int, default=32)
    p.add_argument("--nsamples", type=int, default=200)
    p.add_argument("--ig-batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()

    import captum
    import shap
    from captum.attr import IntegratedGradients

    torch.manual_seed(0)
    device = torch.device(a.device)
    if a.checkpoint:
        model, _ = load_model(a.checkpoint, device)
        c = len(model.normalizer.mean.flatten())
    else:
        c = 3
        model = build_model("resnet18_cifar", 10, [0.5] * c, [0.25] * c, width=a.width).to(device).eval()
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(a.images, c, a.size, a.size, generator=gen).to(device)
    background = torch.rand(a.background, c, a.size, a.size, generator=gen).to(device)
    prob = ScalarOutput(model, "probability")
    with torch.no_grad():
        target = model(x).argmax(1)
        expected = (prob(x) - prob(torch.zeros_like(x))).gather(1, target[:, None]).squeeze(1)

    rows = []

    # Integrated Gradients: black baseline, softmax probability of the predicted class, 50 steps
    ig = IntegratedGradients(prob)
    ours_ig = partial(
        integrated_gradients,
        model,
        x,
        target,
        torch.zeros_like(x),
        steps=a.steps,
        output="probability",
        batch_size=a.ig_batch_size,
        delta_alpha="exact",
    )
    t_ours, t_cap, (ours, cap) = timed_pair(
        ours_ig,
        lambda: ig.attribute(x, baselines=0.0, target=target, n_steps=a.steps),
        a.repeats,
    )
    gap = lambda attr: (attr.flatten(1).sum(1) - expected).abs().max().item()  # noqa: E731
    rows.append(
        {
            "method": "integrated_gradients",
            "ours_s": t_ours,
            "reference": f"captum {captum.__version__} "
            f"IntegratedGradients.attribute (defaults: gausslegendre, one batch), n_steps={a.steps}",
            "reference_s": t_cap,
            "ratio_reference_over_ours": t_cap / t_ours,
            "ours_max_completeness_gap": gap(ours),
            "reference_max_completeness_gap": gap(cap),
        }
    )
    # ours evaluates steps + 1 gradients (eq. 10); captum's n_steps = steps + 1 is the same work
    t_ours, t_cap, _ = timed_pair(
        ours_ig,
        lambda: ig.attribute(x, baselines=0.0, target=target, n_steps=a.steps + 1),
        a.repeats,
    )
    rows.append(
        {
            "method": "integrated_gradients_equal_work",
            "ours_s": t_ours,
            "reference": f"captum, n_steps={a.steps + 1} (as many gradients as ours)",
            "reference_s": t_cap,
            "ratio_reference_over_ours": t_cap / t_ours,
        }
    )

    # SHAP: expected gradients over the same background, nsamples per image
    cfg = ShapConfig.of(num_images=a.images, background=a.background, nsamples=a.nsamples)

    def shap_defaults():
        return shap.GradientExplainer(model, background).shap_values(x, nsamples=a.nsamples)

    t_ours, t_ref, _ = timed_pair(lambda: explain_shap(model, x, background, cfg), shap_defaults, a.repeats)
    rows.append(
        {
            "method": "shap_expected_gradients",
            "ours_s": t_ours,
            "reference": f"shap {shap.__version__} GradientExplainer(model, background).shap_values "
            "(defaults: every class, background pass with autograd)",
            "reference_s": t_ref,
            "ratio_reference_over_ours": t_ref / t_ours,
        }
    )

    result = {
        "settings": vars(a) | {"out": str(a.out), "checkpoint": str(a.checkpoint) if a.checkpoint else None},
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"device {device}",
        "rows": rows,
        "provenance": storage.provenance(device=str(device)),
    }
    storage.write_json(a.out, result)
    print(f"{'method':32} {'ours (s)':>10} {'reference (s)':>14} {'reference/ours':>15}")
    for r in rows:
        print(f"{r['method']:32} {r['ours_s']:10.3f} {r['reference_s']:14.3f} {r['ratio_reference_over_ours']:15.2f}")
    print(
        f"IG max |sum - (F(x) - F(0))|: ours {rows[0]['ours_max_completeness_gap']:.2e}, "
        f"captum {rows[0]['reference_max_completeness_gap']:.2e}"
    )


if __name__ == "__main__":
    main()
