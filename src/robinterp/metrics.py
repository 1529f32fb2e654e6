"""Quantitative interpretability: one number per image for each claim the paper makes by picture.

- gradient-image alignment |<x, grad_x logit_y>| / (||x|| ||grad||) (Etmann et al. 2019): how
  much the input gradient looks like the image. Higher = more aligned.
- Gini sparseness of an attribution map (Hurley & Rickard 2009; Chalasani et al. 2020), over
  per-pixel |attribution| summed over channels: 0 for a uniform map, 1 - 1/P for one pixel.
- deletion / insertion AUC (Petsiuka et al. 2018): the class score while pixels are removed
  from the image (deletion, lower = more faithful) or inserted into the baseline (insertion,
  higher = more faithful), most important pixel first: by |attribution| summed over channels
  (`ranking: absolute`, so strongly negative pixels go early too) or by the signed sum
  (`signed`: the pixels that raise the score first); trapezoid over the removed fraction.

Every metric that scores the model's output scores the quantity the attribution explains: an
attributions file says which (`output`: prob or logit, written by the ig and shap verbs), and the
entry of every metric records it (`output`: probability or logit).
- captum `infidelity` (Yeh et al. 2019; lower better) and `sensitivity_max` (lower better).
- faithfulness correlation and a local Lipschitz estimate (`explanation_metrics.py`).

Inputs are float [0, 1] NCHW tensors; the model takes pixels and normalises inside.
`EXPLAINERS` is the seam for sensitivity_max: name -> fn(model, output) -> explanation function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .settings import Settings
from .errors import RobinterpError

DIRECTION = {"gradient_alignment": "higher", "gini": "higher", "deletion_auc": "lower",
             "insertion_auc": "higher", "infidelity": "lower", "sensitivity_max": "lower",
             "faithfulness_correlation": "higher", "local_lipschitz": "lower", "randomisation_spearman": "lower"}


EXPLAINED = {"prob": "probability", "logit": "logit"}  # attributions' `output` -> the metrics' name for it
RANKINGS = ("absolute", "signed")


def class_score(model: torch.nn.Module, output: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """Forward function whose columns the metrics read: softmax probability or logit."""
    if output == "probability":
        return lambda x: torch.softmax(model(x), dim=1)
    if output == "logit":
        return model
    raise RobinterpError(f"output {output!r}: choose probability or logit")


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

def deletion_insertion(model: torch.nn.Module, x: torch.Tensor, attributions: torch.Tensor, target: torch.Tensor,
                       steps: int = 20, baseline: str = "zero", output: str = "probability",
                       batch_size: int = 256, ranking: str = "absolute") -> tuple[torch.Tensor, torch.Tensor]:
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
            for kind, img in (("deletion", x * (1 - changed) + base * changed),
                              ("insertion", base * (1 - changed) + x * changed)):
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
    return torch.cat([score(x[i:i + batch_size]).gather(1, target[i:i + batch_size, None]).squeeze(1)
                      for i in range(0, len(x), batch_size)])


# --- captum's infidelity and sensitivity -----------------------------------------------------------

def infidelity(model: torch.nn.Module, x: torch.Tensor, attributions: torch.Tensor, target: torch.Tensor,
               noise_std: float = 0.1, samples: int = 10, output: str = "probability",
               generator: torch.Generator | None = None, normalize: bool = True,
               batch_size: int | None = None) -> torch.Tensor:
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
        return captum_infidelity(class_score(model, output), perturb, x, attributions, target=target,
                                 n_perturb_samples=samples, normalize=normalize,
                                 max_examples_per_batch=_examples_per_batch(len(x), samples, batch_size)).detach()


def _examples_per_batch(n: int, samples: int, batch_size: int | None) -> int | None:
    """captum's max_examples_per_batch: a whole number of perturbations of all n inputs, in range."""
    return None if batch_size is None else max(n, min(batch_size, n * samples))


def saliency_explainer(model, output, batch_size: int | None = None):
    from captum.attr import Saliency

    sal = Saliency(class_score(model, output))
    return lambda inputs, target: _contiguous(sal.attribute(inputs, target=target, abs=False))


def integrated_gradients_explainer(model, output, n_steps: int = 16, batch_size: int | None = None):
    """captum IG from a black baseline (riemann_trapezoid sums to (n-1)/n: scale-free metrics only);
    `batch_size` path points per pass (captum takes at least 2 per input)."""
    from captum.attr import IntegratedGradients

    ig = IntegratedGradients(class_score(model, output))
    return lambda inputs, target: _contiguous(ig.attribute(inputs, target=target, n_steps=n_steps,
                                                           internal_batch_size=batch_size))


def _contiguous(attr):
    return tuple(a.contiguous() for a in attr) if isinstance(attr, tuple) else attr.contiguous()


def paper_ig_explainer(model, output, n_steps: int = 16, batch_size: int | None = None):
    """The analyses' IG (`robinterp.attributions.explain_ig`, paper eq. 11 with exact
    completeness) from a black baseline, one trial: deterministic, so only the input moves."""
    try:
        from .attributions import IGConfig, explain_ig
    except ImportError as e:
        raise RobinterpError("explainer paper_ig needs robinterp.attributions (the analyses issue); "
                             "use integrated_gradients or saliency meanwhile") from e
    cfg = IGConfig.from_dict({"steps": n_steps, "baseline": "black", "trials": 1,
                              "output": {"probability": "prob", "logit": "logit"}[output],
                              **({"batch_size": batch_size} if batch_size else {})})

    def explain(x, target):
        with torch.enable_grad():  # captum's sensitivity_max calls explanations under no_grad
            return explain_ig(model, x, target, cfg)[0].contiguous()

    return lambda inputs, target: (tuple(explain(x, target) for x in inputs) if isinstance(inputs, tuple)
                                   else explain(inputs, target))


# name -> builder(model, output, batch_size=None) -> fn(inputs, target) -> attributions: the seam for
# sensitivity_max. paper_ig is the analyses' own IG; captum's IG works without it.
EXPLAINERS = {"saliency": saliency_explainer, "integrated_gradients": integrated_gradients_explainer,
              "paper_ig": paper_ig_explainer}


def sensitivity_max(model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor, explainer: str, radius: float,
                    samples: int, output: str, batch_size: int | None = None) -> torch.Tensor:
    """captum sensitivity_max: largest change of the explanation ||e(x) - e(x')|| / ||e(x)|| (Frobenius,
    relative: equal to Quantus's MaxSensitivity) under uniform L-inf noise of `radius` (pixel units),
    over `samples` draws. Seed torch's global RNG first. `batch_size`: perturbed images explained
    together (at least len(x); None = all at once), and the explainer's images or path points per pass."""
    from captum.metrics import sensitivity_max as captum_sensitivity

    if explainer not in EXPLAINERS:
        raise RobinterpError(f"explainer {explainer!r}: choose one of {sorted(EXPLAINERS)}")
    explain = EXPLAINERS[explainer](model, output, batch_size=batch_size)
    x = x.contiguous()  # captum views the explanations flat
    return captum_sensitivity(explain, x, perturb_radius=radius, n_perturb_samples=samples, target=target,
                              max_examples_per_batch=_examples_per_batch(len(x), samples, batch_size)).detach()


# --- summaries -------------------------------------------------------------------------------------

MIN_BOOTSTRAP_ROUNDS = 20


def bootstrap_mean(values, rounds: int, seed: int, level: float = 0.95) -> dict:
    """Mean and percentile bootstrap interval of the mean (resampling images).

    Resampling with replacement leaves the mean unbiased, so the interval is centred on it (unlike
    FID's, see fid.fid_interval); too few rounds would make the percentiles single draws.
    """
    if 0 < rounds < MIN_BOOTSTRAP_ROUNDS:
        raise RobinterpError(f"bootstrap rounds {rounds}: use 0 (no interval) or >= {MIN_BOOTSTRAP_ROUNDS} "
                             f"so the 95% percentiles are not single draws")
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return {"n": 0, "mean": None, "low": None, "high": None}
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), (rounds, len(v)))].mean(1) if rounds > 0 else v.mean()[None]
    low, high = np.percentile(means, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return {"n": int(len(v)), "mean": float(v.mean()), "low": float(low), "high": float(high), "level": level}


# --- one variant, every metric ---------------------------------------------------------------------

@dataclass(frozen=True)
class InterpretabilityConfig(Settings):
    """The dataset's `metrics.interpretability` block (defaults: robinterp/config.schema.yaml)."""

    SECTION = "metrics.interpretability"

    sample: int  # attributed images used (the first rows of each attributions file)
    target: str  # class the attributions explain (analyses default: pred) - or label
    output: str  # what `explainer` explains (sensitivity, Lipschitz); attribution files say their own
    steps: int  # deletion/insertion: steps + 1 pixel fractions
    ranking: str  # deletion/insertion order: absolute (|attribution|) or signed
    baseline: str  # what deleted pixels become / insertion starts from: zero, mean, blur
    infidelity_samples: int
    infidelity_noise: float  # std of the Gaussian pixel perturbation
    alignment_max_images: int | None  # null = whole test split
    sensitivity_images: int
    sensitivity_samples: int
    sensitivity_radius: float  # L-inf radius (pixel units)
    explainer: str  # key of EXPLAINERS
    faithfulness_runs: int  # random pixel subsets per image (Quantus: 100)
    faithfulness_fraction: float  # share of the pixels in each subset
    lipschitz_samples: int  # Gaussian neighbours per image (on the sensitivity images)
    lipschitz_noise: float  # their std (pixel units; Quantus: 0.1)
    batch_size: int
    bootstrap: int
    seed: int


def load_attributions(path) -> dict:
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise RobinterpError(f"{path}: file not found (made by the analyses' attribution rules)")
    with np.load(path) as z:
        missing = [k for k in ("images", "attributions", "labels", "preds") if k not in z]
        if missing:
            raise RobinterpError(f"{path}: missing array(s) {missing}; expected images, attributions, labels, preds")
        return {k: z[k] for k in z.files}


def explained_output(attributions: dict, method: str) -> str:
    """What an attributions file explains, in the metrics' words (probability or logit)."""
    if "output" not in attributions:
        raise RobinterpError(f"{method} attributions do not say what they explain (array 'output', written since the "
                             f"metrics score it): rerun the analysis, e.g. snakemake --forcerun ig shap")
    output = str(attributions["output"])
    if output not in EXPLAINED:
        raise RobinterpError(f"{method} attributions: output {output!r}, expected one of {sorted(EXPLAINED)}")
    return EXPLAINED[output]


def evaluate_interpretability(model, test_x: torch.Tensor, test_y: torch.Tensor, attributions: dict[str, dict],
                              cfg: InterpretabilityConfig, device) -> list[dict]:
    """Every metric for one model: a list of {metric, method, direction, values, mean, low, high}.
    The model's parameters are frozen and BatchNorm in eval mode meanwhile (restored after): the
    metrics differentiate with respect to the input only."""
    from .attacks import attack_mode

    with attack_mode(model):
        return _metrics(model, test_x, test_y, attributions, cfg, device)


def _metrics(model, test_x, test_y, attributions, cfg, device) -> list[dict]:
    from .explanation_metrics import faithfulness_correlation, local_lipschitz_estimate

    entries = []

    def add(metric, method, output, values):
        v = values.detach().cpu().double().numpy() if torch.is_tensor(values) else np.asarray(values)
        entries.append({"metric": metric, "method": method, "direction": DIRECTION[metric], "output": output,
                        **bootstrap_mean(v, cfg.bootstrap, cfg.seed), "values": v.tolist()})

    gen = torch.Generator().manual_seed(cfg.seed)
    n_align = len(test_x) if cfg.alignment_max_images is None else min(cfg.alignment_max_images, len(test_x))
    idx = torch.randperm(len(test_x), generator=gen)[:n_align].sort().values
    add("gradient_alignment", "input_gradient", "logit", torch.cat([
        gradient_alignment(model, test_x[i].to(device), test_y[i].to(device))
        for i in idx.split(cfg.batch_size)]))

    for method, att in attributions.items():
        output = explained_output(att, method)  # every score below is the one the attribution explains
        x = torch.from_numpy(att["images"][:cfg.sample]).float().to(device)
        a = torch.from_numpy(att["attributions"][:cfg.sample]).float().to(device)
        t = torch.from_numpy(att["labels" if cfg.target == "label" else "preds"][:cfg.sample]).long().to(device)
        add("gini", method, output, gini(a))
        deletion, insertion = deletion_insertion(model, x, a, t, cfg.steps, cfg.baseline, output, cfg.batch_size,
                                                 cfg.ranking)
        add("deletion_auc", method, output, deletion)
        add("insertion_auc", method, output, insertion)
        add("infidelity", method, output, torch.cat([
            infidelity(model, x[i:i + cfg.batch_size], a[i:i + cfg.batch_size], t[i:i + cfg.batch_size],
                       cfg.infidelity_noise, cfg.infidelity_samples, output, gen, batch_size=cfg.batch_size)
            for i in range(0, len(x), cfg.batch_size)]))
        add("faithfulness_correlation", method, output, faithfulness_correlation(
            model, x, a, t, cfg.faithfulness_runs, cfg.faithfulness_fraction, cfg.baseline, output, gen,
            cfg.batch_size))

    torch.manual_seed(cfg.seed)  # captum's sensitivity perturbations use the global generator
    sidx = torch.randperm(len(test_x), generator=gen)[:cfg.sensitivity_images].sort().values
    add("sensitivity_max", cfg.explainer, cfg.output, torch.cat([
        sensitivity_max(model, test_x[i].contiguous().to(device), test_y[i].to(device), cfg.explainer,
                        cfg.sensitivity_radius, cfg.sensitivity_samples, cfg.output, cfg.batch_size)
        for i in sidx.split(cfg.batch_size)]))
    add("local_lipschitz", cfg.explainer, cfg.output, torch.cat([
        local_lipschitz_estimate(model, test_x[i].contiguous().to(device), test_y[i].to(device), cfg.explainer,
                                 cfg.lipschitz_noise, cfg.lipschitz_samples, cfg.output, gen, cfg.batch_size)
        for i in sidx.split(cfg.batch_size)]))
    return entries
