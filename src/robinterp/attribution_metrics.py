"""Attribution metrics: one number per image for each claim the paper makes by picture.

- gradient-image alignment |<x, grad_x logit_y>| / (||x|| ||grad||) (Etmann et al. 2019): how
  much the input gradient looks like the image. Higher = more aligned.
- Gini sparseness of an attribution map (Hurley & Rickard 2009; Chalasani et al. 2020), over
  per-pixel |attribution| summed over channels: 0 for a uniform map, 1 - 1/P for one pixel.
- deletion / insertion AUC (Petsiuka et al. 2018): the class score while pixels are removed
  from the image (deletion, lower = more faithful) or inserted into the baseline (insertion,
  higher = more faithful), most important pixel first: by |attribution| summed over channels
  (`ranking: absolute`, so strongly negative pixels go early too) or by the signed sum
  (`signed`: the pixels that raise the score first); trapezoid over the removed fraction.
- captum `infidelity` (Yeh et al. 2019; lower better) and `sensitivity_max` (lower better).
- faithfulness correlation (Bhatt et al. 2020): over `runs` random pixel subsets, the Pearson
  correlation between the attribution summed over the subset and the drop of the class score when
  the subset is set to the baseline. Higher = the attribution predicts what removing pixels does.
- local Lipschitz estimate (Alvarez-Melis & Jaakkola 2018): the largest ratio
  ||e(x) - e(x')|| / ||x - x'|| over Gaussian neighbours x' = x + N(0, sigma^2) (pixel units, not
  clipped). Lower = a more stable explanation.

Faithfulness correlation and the Lipschitz estimate follow Quantus 0.6.0's definitions
(tests/test_quantus_crosscheck.py checks them on the same draws); one difference is documented
there: a subset here is whole pixels (every channel), Quantus draws single channel values when the
attribution has one channel and the image three.

Every metric that scores the model's output scores the quantity the attribution explains (the
caller passes it: `output`, probability or logit). Inputs are float [0, 1] NCHW tensors; the model
takes pixels and normalises inside. `EXPLAINERS` is the seam for sensitivity_max and the Lipschitz
estimate: name -> builder(model, output, batch_size) -> explanation function; `interpretability.py`
runs every metric on one model.
"""

from __future__ import annotations

from typing import Callable

import torch

from .attributions import OUTPUTS
from .errors import RobinterpError
from .stats import pearson_rows

DIRECTION = {
    "gradient_alignment": "higher",
    "gini": "higher",
    "deletion_auc": "lower",
    "insertion_auc": "higher",
    "infidelity": "lower",
    "sensitivity_max": "lower",
    "faithfulness_correlation": "higher",
    "local_lipschitz": "lower",
    "randomisation_spearman": "lower",
}


RANKINGS = ("absolute", "signed")


def class_score(model: torch.nn.Module, output: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """Forward function whose columns the metrics read: softmax probability or logit."""
    if output == "probability":
        return lambda x: torch.softmax(model(x), dim=1)
    if output == "logit":
        return model
    raise RobinterpError(f"output {output!r}: choose one of {list(OUTPUTS)}")


# --- gradient-image alignment -------------------------------------------------------------------


def gradient_alignment(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image |<x, d logit_y / dx>| / (||x|| ||grad||)."""
    x = x.detach().clone().requires_grad_(True)
    logits = model(x)
    (grad,) = torch.autograd.grad(logits.gather(1, y[:, None]).sum(), x)
    xf, gf = x.detach().flatten(1), grad.flatten(1)
    return (xf * gf).sum(1).abs() / (xf.norm(dim=1) * gf.norm(dim=1)).clamp_min(1e-12)


# --- sparseness ----------------------------------------------------------------------------------


def pixel_importance(attributions: torch.Tensor) -> torch.Tensor:
    """N x (H*W) per-pixel importance: |attribution| summed over channels."""
    if attributions.ndim != 4:
        raise RobinterpError(f"attributions must be N x C x H x W, got shape {tuple(attributions.shape)}")
    return attributions.abs().sum(1).flatten(1)


def gini(attributions: torch.Tensor) -> torch.Tensor:
    """Per-map Gini index of per-pixel importance; an all-zero map counts as uniform (0)."""
    a = pixel_importance(attributions).double().sort(dim=1).values
    p = a.shape[1]
    total = a.sum(1, keepdim=True)
    k = torch.arange(1, p + 1, dtype=a.dtype, device=a.device)
    g = 1 - 2 * ((a / total.clamp_min(1e-300)) * (p - k + 0.5) / p).sum(1)
    return torch.where(total.squeeze(1) > 0, g, torch.zeros_like(g))


# --- deletion / insertion --------------------------------------------------------------------------


def deletion_insertion(
    model: torch.nn.Module,
    x: torch.Tensor,
    attributions: torch.Tensor,
    target: torch.Tensor,
    steps: int,
    baseline: str,
    output: str,
    batch_size: int,
    ranking: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image (deletion AUC, insertion AUC) over steps + 1 equally spaced pixel fractions; pixels
    ranked by |attribution| (absolute) or by the signed attribution (signed), summed over channels."""
    if x.shape != attributions.shape:
        raise RobinterpError(f"images {tuple(x.shape)} and attributions {tuple(attributions.shape)} differ")
    if ranking not in RANKINGS:
        raise RobinterpError(f"ranking {ranking!r}: choose one of {list(RANKINGS)}")
    score = class_score(model, output)
    base = _baseline(x, baseline)
    n, c, h, w = x.shape
    importance = pixel_importance(attributions) if ranking == "absolute" else attributions.sum(1).flatten(1)
    order = importance.argsort(dim=1, descending=True)  # most important first
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(h * w, device=x.device).expand(n, -1))
    fractions = torch.linspace(0, 1, steps + 1, device=x.device)
    counts = (fractions * h * w).round().long()
    curves = {"deletion": [], "insertion": []}
    with torch.no_grad():
        for k in counts:
            changed = (rank < k).view(n, 1, h, w).to(x.dtype)  # the k most important pixels
            for kind, img in (
                ("deletion", x * (1 - changed) + base * changed),
                ("insertion", base * (1 - changed) + x * changed),
            ):
                curves[kind].append(_batched_scores(score, img, target, batch_size))
    dx = 1.0 / steps
    auc = lambda ys: torch.trapezoid(torch.stack(ys, 1), dx=dx, dim=1)
    return auc(curves["deletion"]), auc(curves["insertion"])


def _baseline(x: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "zero":
        return torch.zeros_like(x)
    if kind == "mean":  # per-image, per-channel mean colour
        return x.mean(dim=(2, 3), keepdim=True).expand_as(x)
    if kind == "blur":  # RISE's insertion baseline
        import torchvision.transforms.functional as TF

        k = max(3, (min(x.shape[2:]) // 4) | 1)
        return TF.gaussian_blur(x, [k, k], [k / 3, k / 3])
    raise RobinterpError(f"baseline {kind!r}: choose zero, mean or blur")


def _batched_scores(score, x, target, batch_size):
    return torch.cat(
        [
            score(x[i : i + batch_size]).gather(1, target[i : i + batch_size, None]).squeeze(1)
            for i in range(0, len(x), batch_size)
        ]
    )


# --- captum's infidelity and sensitivity -----------------------------------------------------------


def infidelity(
    model: torch.nn.Module,
    x: torch.Tensor,
    attributions: torch.Tensor,
    target: torch.Tensor,
    noise_std: float,
    samples: int,
    output: str,
    generator: torch.Generator | None = None,
    normalize: bool = True,
    batch_size: int | None = None,
) -> torch.Tensor:
    """captum infidelity with Gaussian perturbations I ~ N(0, noise_std^2) of the pixels.

    normalize=True fits the attribution scale (captum's beta): methods explaining logits and
    probabilities become comparable. `batch_size`: perturbed images per forward pass (at least
    len(x); None = all len(x) * samples at once).
    """
    from captum.metrics import infidelity as captum_infidelity

    def perturb(inputs):
        noise = torch.randn(inputs.shape, generator=generator, device="cpu").to(inputs) * noise_std
        return noise, inputs - noise

    with torch.no_grad():
        return captum_infidelity(
            class_score(model, output),
            perturb,
            x,
            attributions,
            target=target,
            n_perturb_samples=samples,
            normalize=normalize,
            max_examples_per_batch=_examples_per_batch(len(x), samples, batch_size),
        ).detach()


def _examples_per_batch(n: int, samples: int, batch_size: int | None) -> int | None:
    """captum's max_examples_per_batch: a whole number of perturbations of all n inputs, in range."""
    return None if batch_size is None else max(n, min(batch_size, n * samples))


def saliency_explainer(model, output: str, steps: int, batch_size: int | None):
    """captum's saliency (the input gradient; `steps` unused: no path)."""
    from captum.attr import Saliency

    sal = Saliency(class_score(model, output))
    return lambda inputs, target: _contiguous(sal.attribute(inputs, target=target, abs=False))


def integrated_gradients_explainer(model, output: str, steps: int, batch_size: int | None):
    """captum IG from a black baseline over `steps` path points (riemann_trapezoid sums to (n-1)/n:
    scale-free metrics only); `batch_size` path points per pass (captum takes at least 2 per input)."""
    from captum.attr import IntegratedGradients

    ig = IntegratedGradients(class_score(model, output))
    return lambda inputs, target: _contiguous(
        ig.attribute(inputs, target=target, n_steps=steps, internal_batch_size=batch_size)
    )


def _contiguous(attr):
    return tuple(a.contiguous() for a in attr) if isinstance(attr, tuple) else attr.contiguous()


def paper_ig_explainer(model, output: str, steps: int, batch_size: int | None):
    """The analyses' IG (`robinterp.attributions.explain_ig`, paper eq. 11 with exact
    completeness) from a black baseline, `steps` path steps, one trial: deterministic, so only the
    input moves."""
    from .attributions import IGConfig, explain_ig

    cfg = IGConfig.from_dict(
        {
            "steps": steps,
            "baseline": "black",
            "trials": 1,
            "output": output,
            **({"batch_size": batch_size} if batch_size else {}),
        }
    )

    def explain(x, target):
        with torch.enable_grad():  # captum's sensitivity_max calls explanations under no_grad
            return explain_ig(model, x, target, cfg)[0].contiguous()

    return lambda inputs, target: (
        tuple(explain(x, target) for x in inputs) if isinstance(inputs, tuple) else explain(inputs, target)
    )


# name -> builder(model, output, steps, batch_size) -> fn(inputs, target) -> attributions: the seam for
# sensitivity_max and the Lipschitz estimate. paper_ig is the analyses' own IG, integrated_gradients captum's.
EXPLAINERS = {
    "saliency": saliency_explainer,
    "integrated_gradients": integrated_gradients_explainer,
    "paper_ig": paper_ig_explainer,
}


def explainer_of(name: str, model, output: str, steps: int, batch_size: int | None):
    """The explanation function fn(inputs, target) of the explainer `name` (a key of EXPLAINERS)."""
    if name not in EXPLAINERS:
        raise RobinterpError(f"explainer {name!r}: choose one of {sorted(EXPLAINERS)}")
    return EXPLAINERS[name](model, output, steps, batch_size)


def sensitivity_max(
    model: torch.nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    explainer: str,
    steps: int,
    radius: float,
    samples: int,
    output: str,
    batch_size: int | None = None,
) -> torch.Tensor:
    """captum sensitivity_max: largest change of the explanation ||e(x) - e(x')|| / ||e(x)|| (Frobenius,
    relative: equal to Quantus's MaxSensitivity) under uniform L-inf noise of `radius` (pixel units),
    over `samples` draws, of `explainer` (`steps`: its path steps). Seed torch's global RNG first.
    `batch_size`: perturbed images explained together (at least len(x); None = all at once), and the
    explainer's images or path points per pass."""
    from captum.metrics import sensitivity_max as captum_sensitivity

    explain = explainer_of(explainer, model, output, steps, batch_size)
    x = x.contiguous()  # captum views the explanations flat
    return captum_sensitivity(
        explain,
        x,
        perturb_radius=radius,
        n_perturb_samples=samples,
        target=target,
        max_examples_per_batch=_examples_per_batch(len(x), samples, batch_size),
    ).detach()


# --- faithfulness correlation and local Lipschitz estimate ---------------------------------------


def random_pixel_subsets(n: int, runs: int, pixels: int, size: int, generator: torch.Generator | None) -> torch.Tensor:
    """n x runs x size pixel indices, each row drawn without replacement."""
    if not 1 <= size <= pixels:
        raise RobinterpError(f"faithfulness subset of {size} pixels: choose 1..{pixels} (faithfulness_fraction)")
    return torch.rand(n, runs, pixels, generator=generator).argsort(-1)[..., :size]


def faithfulness_correlation(
    model: torch.nn.Module,
    x: torch.Tensor,
    attributions: torch.Tensor,
    target: torch.Tensor,
    runs: int,
    fraction: float,
    baseline: str,
    output: str,
    generator: torch.Generator | None,
    batch_size: int,
    subsets: torch.Tensor | None = None,
) -> torch.Tensor:
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
        drops = torch.stack(
            [
                f_x - _batched_scores(score, x + (base - x) * m.view(n, 1, h, w), target, batch_size)
                for m in masks.unbind(1)
            ],
            1,
        ).double()
    return pearson_rows(attribution_sums, drops)


def local_lipschitz_estimate(
    model: torch.nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    explainer: str,
    steps: int,
    noise_std: float,
    samples: int,
    output: str,
    generator: torch.Generator | None,
    batch_size: int | None = None,
) -> torch.Tensor:
    """Per-image max over `samples` Gaussian neighbours of ||e(x) - e(x')||_2 / ||x - x'||_2 of
    `explainer` (`steps`: its path steps); `batch_size`: the explainer's images or path points per
    pass (None = all at once)."""
    explain = explainer_of(explainer, model, output, steps, batch_size)
    x = x.contiguous()
    a = explain(x, target).detach().flatten(1)
    best = torch.full((len(x),), float("-inf"), dtype=torch.float64, device=x.device)
    for _ in range(samples):
        noise = (torch.randn(x.shape, generator=generator) * noise_std).to(x)
        moved = explain((x + noise).contiguous(), target).detach().flatten(1)
        ratio = (a - moved).double().norm(dim=1) / noise.flatten(1).double().norm(dim=1)
        best = torch.maximum(best, ratio)
    return best
