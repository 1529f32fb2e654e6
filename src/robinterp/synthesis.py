"""What a model's representation encodes, made visible by optimising the input (paper 2.3.2).

- Class-specific image generation (eq. 16, section 2.4): a seed drawn from a multivariate normal
  fitted to the class's (downsampled) test images, then PGD L2 maximising the class logit.
- Representation inversion (eq. 15): from a source image (another class, or noise), minimise
  ||R(x_src + d) - R(x_targ)|| / ||R(x_targ)|| per sample.
- Direct feature visualisation (eq. 13-14): maximise one coordinate of R(x); plus the test
  images that activate it most and least.

All three are `attacks.pgd` with another objective, inside `attack_mode` (eval BatchNorm, frozen
parameters). Run: `robinterp class-generation | inversion | feature-vis ...`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .attacks import attack_mode, pgd
from .device import DeviceData
from .errors import RobinterpError
from .progress import counting, progress
from .settings import Settings


@dataclass(frozen=True)
class InputOptimisation(Settings):
    """What the three methods share: PGD on the input within an `eps` ball of `norm`, `steps` steps
    of `step_size`, `batch_size` images per pass, and a seed."""

    norm: str
    eps: float
    step_size: float
    steps: int
    batch_size: int
    seed: int


@dataclass(frozen=True)
class ClassGenerationConfig(InputOptimisation):
    SECTION = "analyses.class_generation"

    per_class: int  # generated images per class (the FID table needs ~1000 on CIFAR)
    downsample: int  # seed resolution factor (author: 4)
    cov_eps: float  # added to the covariance diagonal
    upsample: str  # nearest | bilinear


@dataclass(frozen=True)
class InversionConfig(InputOptimisation):
    SECTION = "analyses.inversion"

    num_images: int  # targets per source kind
    sources: list  # image: a test image of another class; noise


@dataclass(frozen=True)
class FeatureVisConfig(InputOptimisation):
    SECTION = "analyses.feature_vis"

    neurons: list | None  # coordinates of R(x); null = `num_neurons` drawn at random (seeded)
    num_neurons: int
    start: str  # noise (uniform) | gray (author's code)
    top_k: int  # most and least activating test images per neuron


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """N x C x H x W floats in [0, 1] -> N x H x W x C uint8 (rounded, not truncated)."""
    # in place after clamp: one float temporary of all N images (out-of-place ops held two)
    return x.detach().clamp(0, 1).mul_(255).round_().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def _pgd_bar(desc: str, n: int, cfg):
    """Progress over every PGD step of every batch (one long batch still reports as it goes)."""
    return progress(None, desc, total=-(-n // cfg.batch_size) * cfg.steps, unit="steps")


def _batched(fn, *tensors, batch_size: int):
    """fn over `batch_size` rows at a time, written into one output (no list-then-cat copy)."""
    n, out = len(tensors[0]), None
    for s in range(0, n, batch_size):
        part = fn(*(t[s : s + batch_size] for t in tensors))
        if out is None:
            out = part.new_empty((n, *part.shape[1:]))
        out[s : s + len(part)] = part
    return out if out is not None else torch.empty(0)


# --- class generation -----------------------------------------------------------------------


def class_conditional_seeds(
    images: torch.Tensor, n: int, downsample: int, cov_eps: float, upsample: str, generator: torch.Generator
) -> torch.Tensor:
    """n seeds from N(mean, cov + eps I) fitted to `images` (one class, N x C x H x W in [0, 1])
    at 1/downsample resolution, upsampled back and clipped to [0, 1]."""
    c, h, w = images.shape[1:]
    if h % downsample or w % downsample:
        raise RobinterpError(
            f"analyses.class_generation.downsample: {downsample} does not divide the image size {h}x{w}"
        )
    small = F.avg_pool2d(images.double(), downsample) if downsample > 1 else images.double()
    flat = small.flatten(1)
    mean = flat.mean(0)
    centred = flat - mean
    cov = centred.T @ centred / max(len(flat) - 1, 1) + cov_eps * torch.eye(flat.shape[1], dtype=torch.float64)
    chol = torch.linalg.cholesky(cov)
    z = torch.randn(n, flat.shape[1], generator=generator, dtype=torch.float64)
    seeds = (mean + z @ chol.T).view(n, *small.shape[1:]).clamp(0, 1).float()
    if downsample > 1:
        seeds = F.interpolate(
            seeds, size=(h, w), mode=upsample, **({} if upsample == "nearest" else {"align_corners": False})
        )
    return seeds.clamp(0, 1)


def class_logit_ascent(
    model: nn.Module, seeds: torch.Tensor, labels: torch.Tensor, cfg: ClassGenerationConfig
) -> torch.Tensor:
    """Eq. 16: PGD maximising the target class's logit from each seed."""
    bar = _pgd_bar("class generation", len(seeds), cfg)

    def run(x, y):
        return pgd(
            counting(lambda xa: model(xa).gather(1, y[:, None]).squeeze(1), bar),
            x,
            norm=cfg.norm,
            eps=cfg.eps,
            step_size=cfg.step_size,
            steps=cfg.steps,
        )

    with attack_mode(model):
        return _batched(run, seeds, labels, batch_size=cfg.batch_size)


def target_logits(
    model: nn.Module, images: torch.Tensor, targets: torch.Tensor, batch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image, `batch_size` images per forward pass: the target class's logit and whether the
    model predicts the target."""
    logit, hit = [], []
    with torch.inference_mode():
        for s in range(0, len(images), batch_size):
            out, t = model(images[s : s + batch_size]), targets[s : s + batch_size]
            logit.append(out.gather(1, t[:, None]).squeeze(1))
            hit.append(out.argmax(1) == t)
    return torch.cat(logit), torch.cat(hit)


def generate_classes(
    model: nn.Module, class_images: Callable[[int], torch.Tensor], num_classes: int, cfg: ClassGenerationConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Seeds, generated images and target classes for `per_class` images of every class.

    `class_images(k)`: the images of class k (N x C x H x W in [0, 1], on the CPU), loaded one
    class at a time so a large test split never sits in memory as floats.
    """
    gen = torch.Generator().manual_seed(cfg.seed)
    device = next(model.parameters()).device
    seeds, n = None, cfg.per_class
    for k in range(num_classes):
        own = class_images(k)
        if len(own) == 0:
            raise RobinterpError(f"class {k} has no test images to fit a seed distribution to")
        class_seeds = class_conditional_seeds(own, n, cfg.downsample, cfg.cov_eps, cfg.upsample, gen)
        if seeds is None:  # one tensor on the device, filled class by class (no list-then-cat copy)
            seeds = torch.empty((num_classes * n, *class_seeds.shape[1:]), device=device)
        seeds[k * n : (k + 1) * n] = class_seeds
    targets = torch.arange(num_classes, device=device).repeat_interleave(n)
    return seeds, class_logit_ascent(model, seeds, targets, cfg), targets


# --- representation inversion ---------------------------------------------------------------


def normalised_distance(model: nn.Module, x: torch.Tensor, r_target: torch.Tensor) -> torch.Tensor:
    """Eq. 15 per sample: ||R(x) - R(x_targ)|| / ||R(x_targ)||."""
    return (model.features(x) - r_target).flatten(1).norm(dim=1) / r_target.flatten(1).norm(dim=1).clamp_min(1e-12)


def invert_representation(
    model: nn.Module, sources: torch.Tensor, targets: torch.Tensor, cfg: InversionConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Minimise eq. 15 from each source; returns (inverted, distance before, distance after)."""
    bar = _pgd_bar("inversion", len(sources), cfg)

    def run(src, r_t):
        return pgd(
            counting(lambda xa: -normalised_distance(model, xa, r_t), bar),
            src,
            norm=cfg.norm,
            eps=cfg.eps,
            step_size=cfg.step_size,
            steps=cfg.steps,
        )

    def distance(x, r_t):
        with torch.no_grad():
            return normalised_distance(model, x, r_t)

    with attack_mode(model):
        with torch.no_grad():  # R(x_targ), once for the optimisation and both distances
            r_targets = _batched(model.features, targets, batch_size=cfg.batch_size)
        inverted = _batched(run, sources, r_targets, batch_size=cfg.batch_size)
        before = _batched(distance, sources, r_targets, batch_size=cfg.batch_size)
        after = _batched(distance, inverted, r_targets, batch_size=cfg.batch_size)
    return inverted, before, after


def inversion_pairs(
    labels: np.ndarray, image_shape: tuple, cfg: InversionConfig
) -> tuple[np.ndarray, np.ndarray, list[str], torch.Tensor]:
    """Target indices, source indices (-1 for noise), source kinds and the noise images.

    For `image` sources each target gets a test image of a different class (seeded)."""
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    n = min(cfg.num_images, len(labels))
    targets, sources, kinds = [], [], []
    for kind in cfg.sources:
        t = rng.permutation(len(labels))[:n]
        if kind == "image":
            s = np.array([rng.choice(np.flatnonzero(labels != labels[i])) for i in t])
        else:
            s = np.full(n, -1)
        targets.append(t)
        sources.append(s)
        kinds += [kind] * n
    noise = torch.rand((kinds.count("noise"), *image_shape), generator=gen)
    return np.concatenate(targets).astype(np.int64), np.concatenate(sources).astype(np.int64), kinds, noise


def inversion_inputs(split, cfg: InversionConfig) -> dict:
    """The inversion's pairs from a packed split: target and source indices (-1 = noise), source
    kinds, and the float target and source images (CPU)."""
    t_idx, s_idx, kinds, noise = inversion_pairs(split.labels, split.image_shape, cfg)
    targets = split.tensors(t_idx)[0]
    sources = targets.clone()
    is_image = torch.as_tensor(s_idx >= 0)
    if is_image.any():
        sources[is_image] = split.tensors(s_idx[s_idx >= 0])[0]
    sources[~is_image] = noise
    return {
        "target_indices": t_idx,
        "source_indices": s_idx,
        "source_kind": kinds,
        "targets": targets,
        "sources": sources,
    }


# --- feature visualisation ------------------------------------------------------------------


def choose_neurons(feature_dim: int, cfg: FeatureVisConfig) -> list[int]:
    if cfg.neurons is not None:
        bad = [i for i in cfg.neurons if not 0 <= i < feature_dim]
        if bad:
            raise RobinterpError(
                f"analyses.feature_vis.neurons: {bad} outside [0, {feature_dim - 1}] "
                f"(the representation has {feature_dim} coordinates)"
            )
        return list(cfg.neurons)
    rng = np.random.default_rng(cfg.seed)
    return sorted(rng.choice(feature_dim, size=min(cfg.num_neurons, feature_dim), replace=False).tolist())


def visualise_features(
    model: nn.Module,
    neurons: list[int],
    image_shape: tuple,
    cfg: FeatureVisConfig,
    fallback: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eq. 13-14: maximise R(x)[neuron] from noise or gray; returns (start, result, act. before, after).

    A coordinate is post-ReLU: where it is exactly 0 at the start its gradient is 0 and PGD cannot
    move. Such neurons start from `fallback` (their top activating test image) when given."""
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(cfg.seed)
    n = len(neurons)
    start = (
        torch.rand((n, *image_shape), generator=gen) if cfg.start == "noise" else torch.full((n, *image_shape), 0.5)
    ).to(device)
    idx = torch.as_tensor(neurons, dtype=torch.int64, device=device)

    bar = _pgd_bar("feature visualisation", n, cfg)

    def run(x, i):
        return pgd(
            counting(lambda xa: model.features(xa).gather(1, i[:, None]).squeeze(1), bar),
            x,
            norm=cfg.norm,
            eps=cfg.eps,
            step_size=cfg.step_size,
            steps=cfg.steps,
        )

    def act(x, i):
        with torch.no_grad():
            return model.features(x).gather(1, i[:, None]).squeeze(1)

    if fallback is not None:
        with attack_mode(model):
            dead = _batched(act, start, idx, batch_size=cfg.batch_size) <= 0
        start[dead] = fallback.to(device)[dead]
    with attack_mode(model):
        result = _batched(run, start, idx, batch_size=cfg.batch_size)
        before = _batched(act, start, idx, batch_size=cfg.batch_size)
        after = _batched(act, result, idx, batch_size=cfg.batch_size)
    return start, result, before, after


def representations(model: nn.Module, images: torch.Tensor | DeviceData, batch_size: int) -> torch.Tensor:
    """R(x) for a whole split (N x k, on the CPU), without autograd. `images`: float tensor, or a
    DeviceData (uint8 on the device, converted batch by batch as in evaluation)."""
    device = next(model.parameters()).device

    def chunk(s):
        if isinstance(images, DeviceData):
            return images.batch(torch.arange(s, min(s + batch_size, len(images))))[0]
        return images[s : s + batch_size].to(device)

    with torch.inference_mode():
        return torch.cat([model.features(chunk(s)).float().cpu() for s in range(0, len(images), batch_size)])


def extreme_activations(features: torch.Tensor, neurons: list[int], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Test indices of the k most (descending) and k least (ascending) activating images per neuron."""
    acts = features[:, neurons].T  # neurons x N
    k = min(k, acts.shape[1])
    top = acts.topk(k, dim=1).indices
    bottom = acts.topk(k, dim=1, largest=False).indices
    return top.numpy().astype(np.int64), bottom.numpy().astype(np.int64)


def feature_vis(model: nn.Module, split, cfg: FeatureVisConfig) -> tuple[dict, dict]:
    """Direct feature visualisation of a model over a packed split: (arrays of features.npz,
    the per-neuron record of meta.json). Neurons dead at the start begin from their top image."""
    device = next(model.parameters()).device
    data = DeviceData(split, device)  # uint8 on the device, batches converted there
    feats = representations(model, data, cfg.batch_size)
    neurons = choose_neurons(feats.shape[1], cfg)
    top, bottom = extreme_activations(feats, neurons, cfg.top_k)
    top_images = data.batch(torch.as_tensor(top[:, 0]))[0]
    start, result, before, after = visualise_features(model, neurons, split.image_shape, cfg, fallback=top_images)
    acts = feats[:, neurons].T.numpy()

    def images_at(idx):
        return split.images[idx.ravel()].reshape(*idx.shape, *split.images.shape[1:])

    arrays = dict(
        neurons=np.asarray(neurons, dtype=np.int64),
        start=to_uint8(start),
        visualisations=to_uint8(result),
        top_indices=top,
        bottom_indices=bottom,
        top_images=images_at(top),
        bottom_images=images_at(bottom),
        top_labels=split.labels[top],
        bottom_labels=split.labels[bottom],
        top_activations=np.take_along_axis(acts, top, 1),
        bottom_activations=np.take_along_axis(acts, bottom, 1),
        activation_before=before.cpu().numpy(),
        activation_after=after.cpu().numpy(),
    )
    record = {
        "neurons": neurons,
        "feature_dim": int(feats.shape[1]),
        "started_from_top_image": [bool(v) for v in (start == top_images).flatten(1).all(1)],
        "activation_before": before.tolist(),
        "activation_after": after.tolist(),
        "max_test_activation": feats[:, neurons].max(0).values.tolist(),
    }
    return arrays, record
