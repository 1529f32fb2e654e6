"""Local attributions: Integrated Gradients (paper eq. 6-12) and SHAP expected gradients (eq. 18).

Both explain one scalar output per image, F(x) = the softmax probability (paper) or the logit
of a target class, and return attributions shaped like the input (N x C x H x W) whose sum
approximates F(x) - F(baseline) (IG) or F(x) - E[F(background)] (SHAP).

Integrated Gradients is computed here, not with captum: the path points of all images are
flattened into one list and pushed through the model `batch_size` points at a time (bounded
memory), the model's parameters are frozen (`attack_mode`: no parameter gradients), and the
trapezoid weights sum to exactly 1 (captum's `riemann_trapezoid` weights sum to (n-1)/n).

Run: `robinterp ig ...` / `robinterp shap ...` (commands/analyses.py); rules in
workflow/rules/analyses.smk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .attacks import attack_mode
from .errors import RobinterpError
from .progress import progress
from .settings import Settings

OUTPUTS = ("probability", "logit")  # the explained score of a class: softmax probability or logit
BASELINES = ("black", "uniform", "blur")


@dataclass(frozen=True)
class IGConfig(Settings):
    """The `analyses.ig` config block (defaults = the author's code)."""

    SECTION = "analyses.ig"

    num_images: int  # test images explained (Fig. 10 grid: A-H x 1-3)
    steps: int  # m: the path has m + 1 points (eq. 9-10)
    baseline: str  # black | uniform (noise, averaged over `trials`) | blur
    trials: int  # uniform-noise baselines averaged (author: 10)
    blur_sigma: float  # Gaussian blur baseline, pixels
    output: str  # probability (paper) | logit
    target: str  # pred | true class
    delta_alpha: str  # exact: 1/m (completeness holds); paper: eq. 9's 1/(m+1)
    batch_size: int  # path points per forward/backward pass (memory bound)
    seed: int  # image choice and noise baselines


@dataclass(frozen=True)
class ShapConfig(Settings):
    """The `analyses.shap` config block (defaults = the author's notebook)."""

    SECTION = "analyses.shap"

    num_images: int
    background: int  # training images drawn as the expectation's baselines
    nsamples: int  # (background, alpha) samples per explained image
    batch_size: int  # samples per gradient pass inside shap (author: 10)
    output: str  # the author passed the classifier itself (logits) to shap
    seed: int  # image choice (same as IG's with equal seeds), background and shap's rseed


class ScalarOutput(nn.Module):
    """The model's outputs as explained: softmax probabilities or logits (all classes)."""

    def __init__(self, model: nn.Module, output: str):
        super().__init__()
        if output not in OUTPUTS:
            raise RobinterpError(f"output must be one of {OUTPUTS}, got {output!r}")
        self.model, self.output = model, output

    def forward(self, x):
        logits = self.model(x)
        return logits.softmax(1) if self.output == "probability" else logits


class NoGradChunks(nn.Module):
    """`module` applied `batch_size` inputs at a time whenever no gradient is being taken.

    shap's GradientExplainer pushes the whole background (when built) and every explained image
    (to rank the outputs) through the model in one call; its gradient passes are already batched.
    """

    def __init__(self, module: nn.Module, batch_size: int):
        super().__init__()
        self.module, self.batch_size = module, batch_size

    def forward(self, x):
        if torch.is_grad_enabled() and x.requires_grad:
            return self.module(x)
        return torch.cat([self.module(c) for c in x.split(self.batch_size)])


def scores(f: nn.Module, x: torch.Tensor, target: torch.Tensor, batch_size: int) -> torch.Tensor:
    """f(x)[i, target[i]] in float64 without autograd, `batch_size` images per forward pass."""
    with torch.inference_mode():
        return torch.cat(
            [
                f(xb).gather(1, tb[:, None]).squeeze(1).double()
                for xb, tb in zip(x.split(batch_size), target.split(batch_size))
            ]
        )


def trapezoid_weights(steps: int, delta_alpha: str) -> torch.Tensor:
    """Weights of g_0..g_m in eq. 11: IG = da/2 * sum_i (g_i + g_{i-1}), points alpha_i = i/m.

    exact: da = 1/m, so the weights sum to 1 and sum(IG) = F(x) - F(x') up to quadrature error.
    paper: da = 1/(m+1) as eq. 9 writes it: every attribution is scaled by m/(m+1).
    """
    da = 1.0 / steps if delta_alpha == "exact" else 1.0 / (steps + 1)
    w = torch.full((steps + 1,), da, dtype=torch.float64)
    w[0] = w[-1] = da / 2
    return w


def integrated_gradients(
    model: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    baseline: torch.Tensor,
    *,
    steps: int,
    output: str,
    batch_size: int,
    delta_alpha: str,
) -> torch.Tensor:
    """IG of F_target along the straight path baseline -> x (eq. 12), trapezoid rule (eq. 9-11).

    `baseline` is one image per input (N x C x H x W). Path points of all images are batched
    together, `batch_size` at a time.
    """
    f = ScalarOutput(model, output)
    n = x.shape[0]
    alphas = torch.linspace(0, 1, steps + 1, device=x.device, dtype=x.dtype)
    weights = trapezoid_weights(steps, delta_alpha).to(x.device, x.dtype)
    img = torch.arange(n, device=x.device).repeat_interleave(steps + 1)  # (image, point) pairs
    point = torch.arange(steps + 1, device=x.device).repeat(n)
    total = torch.zeros_like(x)
    delta = x - baseline
    with attack_mode(model):
        for start in progress(range(0, len(img), batch_size), "ig path", unit="batches"):
            i, p = img[start : start + batch_size], point[start : start + batch_size]
            a = alphas[p].view(-1, *([1] * (x.dim() - 1)))
            path = (baseline[i] + a * delta[i]).requires_grad_(True)
            score = f(path).gather(1, target[i, None]).sum()
            (grad,) = torch.autograd.grad(score, path)
            total.index_add_(0, i, grad * weights[p].view_as(a))
    return delta * total


def make_baselines(
    x: torch.Tensor, kind: str, trials: int, blur_sigma: float, generator: torch.Generator | None
) -> list[torch.Tensor]:
    """The baselines IG is averaged over: black (1), uniform noise (`trials`), blurred x (1)."""
    if kind == "black":
        return [torch.zeros_like(x)]
    if kind == "uniform":
        return [torch.rand(x.shape, generator=generator).to(x.device, x.dtype) for _ in range(trials)]
    if kind == "blur":
        return [gaussian_blur(x, blur_sigma)]
    raise RobinterpError(f"analyses.ig.baseline must be one of {BASELINES}, got {kind!r}")


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with reflect padding (kernel radius 3 sigma, capped by the image)."""
    radius = max(1, min(math.ceil(3 * sigma), x.shape[-1] - 1, x.shape[-2] - 1))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = (k / k.sum()).view(1, 1, 1, -1).repeat(x.shape[1], 1, 1, 1)
    out = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), k, groups=x.shape[1])
    return F.conv2d(F.pad(out, (0, 0, radius, radius), mode="reflect"), k.transpose(2, 3), groups=x.shape[1])


def explain_ig(
    model: nn.Module, x: torch.Tensor, target: torch.Tensor, cfg: IGConfig, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, dict]:
    """IG averaged over the configured baselines, plus the completeness check per image."""
    baselines = make_baselines(x, cfg.baseline, cfg.trials, cfg.blur_sigma, generator)
    f = ScalarOutput(model, cfg.output)
    attr = torch.zeros_like(x)
    f_base = torch.zeros(x.shape[0], device=x.device, dtype=torch.float64)
    with attack_mode(model):  # eval-mode BatchNorm, frozen parameters; the caller's mode comes back
        for b in progress(baselines, "ig baselines", unit="baselines"):
            attr += integrated_gradients(
                model,
                x,
                target,
                b,
                steps=cfg.steps,
                output=cfg.output,
                batch_size=cfg.batch_size,
                delta_alpha=cfg.delta_alpha,
            )
            f_base += scores(f, b, target, cfg.batch_size)
        attr /= len(baselines)
        f_x = scores(f, x, target, cfg.batch_size)
    expected = f_x - f_base / len(baselines)
    gap = attr.flatten(1).sum(1).double() - expected
    return attr, {
        "f_x": f_x.tolist(),
        "f_x_minus_f_baseline": expected.tolist(),
        "completeness_gap": gap.tolist(),
        "num_baselines": len(baselines),
    }


def explain_shap(
    model: nn.Module, x: torch.Tensor, background: torch.Tensor, cfg: ShapConfig
) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """shap.GradientExplainer (expected gradients) for the top class of each image.

    Returns (values N x C x H x W, explained class N, check). The explainer's background pass
    runs under `no_grad` and the parameters are frozen, so no autograd graph is kept for it.
    """
    import shap

    f = ScalarOutput(model, cfg.output)
    with attack_mode(model), torch.no_grad():
        chunked = NoGradChunks(f, cfg.batch_size)
        explainer = shap.GradientExplainer(chunked, background, batch_size=cfg.batch_size)
    bar = progress(None, "shap", total=1 + len(x) * -(-cfg.nsamples // cfg.batch_size), unit="batches")
    counter = chunked.register_forward_hook(lambda *_: bar.update())  # shap: one call per batch of samples
    with attack_mode(model):
        values, ranks = explainer.shap_values(x, nsamples=cfg.nsamples, ranked_outputs=1, rseed=cfg.seed)
    counter.remove()
    values = host_array(values[0] if isinstance(values, list) else values)
    if values.ndim == x.dim() + 1:  # shap >= 0.45 stacks the ranked outputs on the last axis
        values = values[..., 0]
    explained = torch.as_tensor(host_array(ranks)[:, 0], dtype=torch.int64)
    with torch.inference_mode():
        f_x = scores(f, x, explained.to(x.device), cfg.batch_size)
        f_bg = torch.cat([f(b).double() for b in background.split(cfg.batch_size)]).mean(0)[explained.to(x.device)]
    values = torch.as_tensor(values, dtype=torch.float32)
    gap = values.flatten(1).sum(1).double() - (f_x - f_bg).cpu()
    return (
        values,
        explained,
        {"f_x": f_x.tolist(), "f_x_minus_mean_f_background": (f_x - f_bg).tolist(), "completeness_gap": gap.tolist()},
    )


def host_array(a) -> np.ndarray:
    """A numpy array of shap's output: shap >= 0.51 returns the ranks as a tensor on the model's
    device, which numpy cannot read while it lies on a GPU."""
    if hasattr(a, "detach"):
        a = a.detach().cpu()
    return np.asarray(a)


def choose_images(num_images: int, labels: np.ndarray, seed: int) -> np.ndarray:
    """The explained test indices: a seeded permutation, so every variant explains the same images."""
    if num_images < 1:
        raise RobinterpError("analyses: num_images must be >= 1")
    rng = np.random.default_rng(seed)
    return np.sort(rng.permutation(len(labels))[: min(num_images, len(labels))]).astype(np.int64)


def shap_background(train, cfg: ShapConfig) -> tuple[np.ndarray, torch.Tensor]:
    """The `cfg.background` training images of SHAP's expectation (seeded; sorted indices, CPU floats)."""
    idx = np.sort(np.random.default_rng(cfg.seed).permutation(len(train))[: cfg.background])
    return idx, train.tensors(idx)[0]


def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    with torch.inference_mode():
        return torch.cat([model(x[s : s + batch_size]).argmax(1) for s in range(0, len(x), batch_size)])
