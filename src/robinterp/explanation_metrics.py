"""Faithfulness correlation and a local Lipschitz estimate: the two measures the robust-vs-standard
explanation literature reports beside deletion, infidelity and sensitivity.

- faithfulness correlation (Bhatt et al. 2020): over `runs` random pixel subsets, the Pearson
  correlation between the attribution summed over the subset and the drop of the class score when
  the subset is set to the baseline. Higher = the attribution predicts what removing pixels does.
- local Lipschitz estimate (Alvarez-Melis & Jaakkola 2018): the largest ratio
  ||e(x) - e(x')|| / ||x - x'|| over Gaussian neighbours x' = x + N(0, sigma^2) (pixel units, not
  clipped). Lower = a more stable explanation.

Both follow Quantus 0.6.0's definitions (tests/test_quantus_crosscheck.py checks them on the same
draws); one difference is documented there: a subset here is whole pixels (every channel), Quantus
draws single channel values when the attribution has one channel and the image three.
"""

from __future__ import annotations

import torch

from .errors import RobinterpError
from .metrics import EXPLAINERS, _baseline, _batched_scores, class_score


def random_pixel_subsets(n: int, runs: int, pixels: int, size: int, generator: torch.Generator | None) -> torch.Tensor:
    """n x runs x size pixel indices, each row drawn without replacement."""
    if not 1 <= size <= pixels:
        raise RobinterpError(f"faithfulness subset of {size} pixels: choose 1..{pixels} (faithfulness_fraction)")
    return torch.rand(n, runs, pixels, generator=generator).argsort(-1)[..., :size]


def pearson_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-row Pearson correlation (NaN where a row is constant)."""
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))


def faithfulness_correlation(model: torch.nn.Module, x: torch.Tensor, attributions: torch.Tensor,
                             target: torch.Tensor, runs: int = 100, fraction: float = 0.2, baseline: str = "zero",
                             output: str = "probability", generator: torch.Generator | None = None,
                             batch_size: int = 256, subsets: torch.Tensor | None = None) -> torch.Tensor:
    """Per-image faithfulness correlation; `subsets` (n x runs x size) overrides the seeded draw."""
    if x.shape != attributions.shape:
        raise RobinterpError(f"images {tuple(x.shape)} and attributions {tuple(attributions.shape)} differ")
    n, _, h, w = x.shape
    if subsets is None:
        subsets = random_pixel_subsets(n, runs, h * w, round(fraction * h * w), generator)
    subsets = subsets.to(x.device)
    masks = torch.zeros(*subsets.shape[:2], h * w, device=x.device).scatter_(2, subsets, 1.0)  # n x runs x pixels
    attribution_sums = (masks * attributions.sum(1).flatten(1)[:, None]).sum(2).double()  # signed, every channel
    score, base = class_score(model, output), _baseline(x, baseline)
    with torch.no_grad():
        f_x = _batched_scores(score, x, target, batch_size)
        drops = torch.stack([f_x - _batched_scores(score, x + (base - x) * m.view(n, 1, h, w), target, batch_size)
                             for m in masks.unbind(1)], 1).double()
    return pearson_rows(attribution_sums, drops)


def local_lipschitz_estimate(model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor,
                             explainer: str = "integrated_gradients", noise_std: float = 0.1, samples: int = 10,
                             output: str = "probability", generator: torch.Generator | None = None,
                             batch_size: int | None = None) -> torch.Tensor:
    """Per-image max over `samples` Gaussian neighbours of ||e(x) - e(x')||_2 / ||x - x'||_2;
    `batch_size`: the explainer's images or path points per pass (None = all at once)."""
    if explainer not in EXPLAINERS:
        raise RobinterpError(f"explainer {explainer!r}: choose one of {sorted(EXPLAINERS)}")
    explain = EXPLAINERS[explainer](model, output, batch_size=batch_size)
    x = x.contiguous()
    a = explain(x, target).detach().flatten(1)
    best = torch.full((len(x),), float("-inf"), dtype=torch.float64, device=x.device)
    for _ in range(samples):
        noise = (torch.randn(x.shape, generator=generator) * noise_std).to(x)
        moved = explain((x + noise).contiguous(), target).detach().flatten(1)
        ratio = (a - moved).double().norm(dim=1) / noise.flatten(1).double().norm(dim=1)
        best = torch.maximum(best, ratio)
    return best
