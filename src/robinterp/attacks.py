"""Projected gradient ascent in pixel space under an L2 or Linf threat model.

A threat model is three pure functions over a batch (`random_init`, `step`, `project`);
`pgd` maximises any per-sample objective with them, so the adversarial attack (cross-entropy),
class generation (a logit), representation inversion (minus a distance) and feature
visualisation (an activation) are all the same loop.

Images stay in [0, 1]; the perturbation never leaves the eps-ball (per sample). During the loop
the model's parameters are frozen (no parameter gradients are computed or accumulated) and
BatchNorm runs in eval mode unless `bn_mode="train"` reproduces the author's code.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .errors import RobinterpError
from .settings import Settings

_TINY = 1e-12


def _norms(t: torch.Tensor) -> torch.Tensor:
    """Per-sample L2 norms shaped to broadcast against t."""
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.dim() - 1)))


class BatchNoise:
    """Random starts drawn for the whole batch from one generator (None: torch's global one)."""

    def __init__(self, generator: torch.Generator | None = None):
        self.generator = generator

    def normal(self, n: int, shape: tuple, device) -> torch.Tensor:
        return torch.randn((n, *shape), generator=self.generator).to(device)

    def uniform(self, n: int, shape: tuple, device) -> torch.Tensor:
        return torch.rand((n, *shape), generator=self.generator).to(device)


class SampleNoise:
    """Random starts drawn per sample, each from a generator seeded by that sample's key.

    A sample's start then depends on its key alone (e.g. seed and test index), not on the batch
    size, the number of ranks or the device: those stay settings of how a job runs. The numbers
    are drawn on the CPU (~10 us per 3x32x32 sample) and copied to the batch's device.
    """

    def __init__(self, keys):
        self.generators = [torch.Generator().manual_seed(int(k)) for k in keys]

    def normal(self, n: int, shape: tuple, device) -> torch.Tensor:
        self._check(n)
        return _to_device(torch.stack([torch.randn(shape, generator=g) for g in self.generators]), device)

    def uniform(self, n: int, shape: tuple, device) -> torch.Tensor:
        self._check(n)
        return _to_device(torch.stack([torch.rand(shape, generator=g) for g in self.generators]), device)

    def _check(self, n: int) -> None:
        if n != len(self.generators):
            raise RobinterpError(f"SampleNoise holds {len(self.generators)} keys for a batch of {n}")


def _to_device(t: torch.Tensor, device) -> torch.Tensor:
    """Copy host numbers to the device without waiting for the GPU (pinned, asynchronous)."""
    if torch.device(device).type != "cuda":
        return t
    return t.pin_memory().to(device, non_blocking=True)


def sample_keys(seed: int, indices) -> list[int]:
    """Generator seeds of samples `indices` under `seed`: a hash of (seed, index).

    torch's CPU generator keeps 32 bits of a seed, so (seed, index) pairs are hashed into 32
    bits rather than packed side by side (which would give every seed the same streams).
    """
    return [
        int.from_bytes(hashlib.blake2b(f"{seed}:{int(i)}".encode(), digest_size=4).digest(), "little") for i in indices
    ]


def _noise(source) -> "BatchNoise | SampleNoise":
    return source if isinstance(source, (BatchNoise, SampleNoise)) else BatchNoise(source)


@dataclass(frozen=True)
class ThreatModel:
    random_init: Callable[[torch.Tensor, float, "BatchNoise | SampleNoise"], torch.Tensor]
    step: Callable[[torch.Tensor, float], torch.Tensor]
    project: Callable[[torch.Tensor, float], torch.Tensor]


def _l2_random_init(x, eps, noise):
    """Uniform in the L2 ball: a Gaussian direction, radius eps * u^(1/d)."""
    direction = noise.normal(len(x), x.shape[1:], x.device)
    direction = direction / (_norms(direction) + _TINY)
    d = x[0].numel()
    u = noise.uniform(len(x), (), x.device)
    return direction * (eps * u.pow(1.0 / d)).view(-1, *([1] * (x.dim() - 1)))


def _linf_random_init(x, eps, noise):
    u = noise.uniform(len(x), x.shape[1:], x.device)
    return (2 * u - 1) * eps


THREAT_MODELS: dict[str, ThreatModel] = {
    "l2": ThreatModel(
        random_init=_l2_random_init,
        step=lambda g, size: size * g / (_norms(g) + _TINY),
        project=lambda d, eps: d * torch.clamp(eps / (_norms(d) + _TINY), max=1.0),
    ),
    "linf": ThreatModel(
        random_init=_linf_random_init,
        step=lambda g, size: size * g.sign(),
        project=lambda d, eps: d.clamp(-eps, eps),
    ),
}


def threat_model(norm: str) -> ThreatModel:
    if norm not in THREAT_MODELS:
        raise RobinterpError(f"unknown threat model {norm!r}; choose one of {sorted(THREAT_MODELS)}")
    return THREAT_MODELS[norm]


@contextlib.contextmanager
def attack_mode(model: nn.Module, bn_mode: str = "eval"):
    """Freeze parameters and set BatchNorm mode for the duration of an attack; restore after."""
    if bn_mode not in ("eval", "train"):
        raise RobinterpError(f"attack.bn_mode must be 'eval' or 'train', got {bn_mode!r}")
    want = bn_mode == "train"
    was_training = model.training
    # Module.train walks every module (~0.3 ms for a ResNet50): only when a flag must change
    switch = any(m.training != want for m in model.modules())
    frozen = [p for p in model.parameters() if p.requires_grad]
    if switch:
        model.train(want)
    for p in frozen:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p in frozen:
            p.requires_grad_(True)
        if switch:
            model.train(was_training)


def pgd(
    objective: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    *,
    norm: str,
    eps: float,
    step_size: float,
    steps: int,
    random_start: bool = False,
    best: bool = False,
    generator: "torch.Generator | SampleNoise | None" = None,
) -> torch.Tensor:
    """Maximise `objective(x_adv)` (one value per sample) over x_adv in the eps-ball around x.

    The caller puts the model into attack mode (`attack_mode`). With `best`, each sample keeps
    its highest-scoring iterate, the final one included; otherwise the last iterate is returned.
    `generator` draws the random start: a torch.Generator for the batch, or per-sample `SampleNoise`.
    """
    tm = threat_model(norm)
    x = x.detach()
    if random_start and eps > 0:
        delta = (x + tm.project(tm.random_init(x, eps, _noise(generator)), eps)).clamp(0, 1) - x
    else:
        delta = torch.zeros_like(x)
    best_x, best_score = x.clone(), None

    def keep_best(x_adv, score):
        nonlocal best_score
        score = score.detach().float()
        if best_score is None:
            best_x.copy_(x_adv.detach())
            best_score = score.clone()
            return
        better = score > best_score
        best_x[better] = x_adv.detach()[better]
        best_score = torch.where(better, score, best_score)

    for _ in range(steps):
        delta.requires_grad_(True)
        score = objective(x + delta)
        (grad,) = torch.autograd.grad(score.sum(), delta)
        with torch.no_grad():
            if best:
                keep_best(x + delta, score)
            delta = delta + tm.step(grad.float(), step_size)
            delta = tm.project(delta, eps)
            delta = (x + delta).clamp(0, 1) - x
    x_adv = (x + delta).detach()
    if best:
        with torch.no_grad():
            keep_best(x_adv, objective(x_adv))
        return best_x
    return x_adv


@dataclass(frozen=True)
class AttackConfig(Settings):
    """An attack as configured (`attack:` / `eval_attack:` blocks of the config)."""

    SECTION = "attack"

    norm: str
    eps: float  # radius in [0, 1] pixel space
    step_size: float
    steps: int
    random_start: bool  # the paper's Algorithm 1; false = the author's code
    best: bool  # keep each sample's highest-loss iterate (the last one scored too)
    bn_mode: str  # "train" reproduces the author's code (BatchNorm stats move in PGD)

    @classmethod
    def from_dict(cls, d: dict | None, where: str | None = None) -> "AttackConfig | None":
        """None (no attack) for an empty or null block."""
        return super().from_dict(d, where) if d else None

    @classmethod
    def from_block(cls, d: dict | None, where: str | None = None) -> "AttackConfig | None":
        return super().from_block(d, where) if d else None


def adversarial_examples(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: AttackConfig,
    generator: "torch.Generator | SampleNoise | None" = None,
) -> torch.Tensor:
    """Untargeted PGD on the cross-entropy loss: the attack used for training and evaluation."""
    with attack_mode(model, cfg.bn_mode):
        return pgd(
            lambda xa: F.cross_entropy(model(xa), y, reduction="none"),
            x,
            norm=cfg.norm,
            eps=cfg.eps,
            step_size=cfg.step_size,
            steps=cfg.steps,
            random_start=cfg.random_start,
            best=cfg.best,
            generator=generator,
        )
