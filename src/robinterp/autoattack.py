"""AutoAttack (Croce & Hein, ICML 2020) through its authors' code, `pyautoattack`: the robust
accuracy a reviewer compares across papers (RobustBench requires the same package).

The attacks are the reference's; what robinterp adds around them:

- the attacks that fit the class count (`attacks_for`): the standard version (APGD-CE, APGD-T
  and FAB-T over the 9 highest other classes, Square with 5,000 queries) with 10 or more
  classes; with 4-9 classes the targeted attacks take every other class; with 2-3 classes
  APGD-T's targeted DLR loss is undefined and APGD-CE, FAB-T and Square run. accuracy.json
  records which ran.
- one attack at a time, each on the images every earlier one left robust, through the
  reference's own `run_standard_evaluation`: the same batches and seeds as one call with every
  attack, and the robust accuracy after each attack becomes known.
- every adversarial point is checked here (misclassified, inside the eps-ball, in [0, 1]) before
  it counts; a point that fails stays robust and is counted as rejected.
- the reference reseeds torch's global generators at every attack: it runs inside
  `torch.random.fork_rng`, so the caller's random state is what it was.
- the reference's flag checks (randomised or dynamic defence, probability outputs, too many
  target classes, Square beating the gradient attacks) are collected as warnings.

Runs in the model's dtype (fp32 unless the caller casts it), never under autocast.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from importlib.metadata import version as package_version

import torch
from torch import nn

from .attacks import AttackConfig, attack_mode
from .device import DeviceData
from .errors import RobinterpError

IMPLEMENTATION = "pyautoattack"
STANDARD = ("apgd-ce", "apgd-t", "fab-t", "square")
TARGETS = 9  # target classes of APGD-T and FAB-T in the standard version
NORMS = {"l2": "L2", "linf": "Linf"}


def attacks_for(num_classes: int) -> tuple[tuple[str, ...], int]:
    """(attacks, target classes) of the standard version that a `num_classes` model admits."""
    if num_classes < 2:
        raise RobinterpError(f"AutoAttack needs a classifier with at least 2 classes, got {num_classes}")
    targets = min(TARGETS, num_classes - 1)
    if num_classes < 4:  # the targeted DLR loss divides by z_1 - (z_3 + z_4) / 2
        return ("apgd-ce", "fab-t", "square"), targets
    return STANDARD, targets


@dataclass
class AutoAttackResult:
    """Per image: clean-correct, robust after each attack (and every earlier one), the final
    worst case, and the adversarial point that broke it (else the clean image)."""

    clean: torch.Tensor
    after: dict[str, torch.Tensor]
    x_adv: torch.Tensor | None  # with keep_points: the point that broke each image, else the clean image
    num_classes: int
    targets: int  # target classes of APGD-T and FAB-T
    rejected: int  # points the reference returned as adversarial that failed the check here
    warnings: list[str]  # the reference's flag checks

    @property
    def version(self) -> str:
        """ "standard", or "standard-fitted" where the class count changed the attacks or targets."""
        return "standard" if attacks_for(self.num_classes) == (STANDARD, TARGETS) else "standard-fitted"

    @property
    def robust(self) -> torch.Tensor:
        return list(self.after.values())[-1] if self.after else self.clean


def predictions(model: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The model's logits for x, `batch_size` images at a time on the model's device, returned on
    x's device (x may stay on the host: the reference moves each batch itself)."""
    device = next(model.parameters()).device
    with torch.no_grad():
        return torch.cat([model(c.to(device)).to(x.device) for c in x.split(batch_size)])


def broken(
    model: nn.Module, x: torch.Tensor, xa: torch.Tensor, y: torch.Tensor, norm: str, eps: float, batch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(valid, claimed): claimed = misclassified; valid = claimed, in [0, 1] and within eps
    (relative float slack 1e-5)."""
    size = torch.cat(
        [
            (b - a).flatten(1).abs().amax(1) if norm == "linf" else (b - a).flatten(1).norm(dim=1)
            for a, b in zip(x.split(batch_size), xa.split(batch_size))
        ]
    )  # no full-size difference
    claimed = predictions(model, xa, batch_size).argmax(1) != y
    inside = (size <= eps * (1 + 1e-5) + 1e-7) & (xa.flatten(1).amin(1) >= 0) & (xa.flatten(1).amax(1) <= 1)
    return claimed & inside, claimed


class _Warnings(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def reference(model: nn.Module, norm: str, eps: float, seed: int, num_classes: int):
    """The reference's standard version, its target-class count fitted to `num_classes`."""
    from pyautoattack import AutoAttack

    if norm not in NORMS:
        raise RobinterpError(f"AutoAttack: norm must be one of {sorted(NORMS)}, got {norm!r}")
    attacks, targets = attacks_for(num_classes)
    aa = AutoAttack(
        model, norm=NORMS[norm], eps=eps, version="standard", seed=seed, device=next(model.parameters()).device
    )
    aa.apgd_targeted.n_target_classes = aa.fab.n_target_classes = targets
    aa.attacks_to_run = list(attacks)
    return aa


def autoattack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    norm: str,
    eps: float,
    seed: int,
    batch_size: int,
    keep_points: bool = False,
) -> AutoAttackResult:
    """AutoAttack on (x, y), `batch_size` images per pass on the model's device (x, y may stay on
    the host), the model in eval mode with frozen parameters; torch's global random state is left
    as it was. `keep_points`: also return the adversarial points (one more copy of x)."""
    x, y = x.detach().float().contiguous(), y.detach().to(x.device)  # the reference reshapes with .view
    with attack_mode(model, "eval"):
        logits = predictions(model, x, batch_size)
    robust = logits.argmax(1) == y
    num_classes = logits.shape[1]
    res = AutoAttackResult(
        robust.clone(), {}, x.clone() if keep_points else None, num_classes, attacks_for(num_classes)[1], 0, []
    )
    aa = reference(model, norm, eps, seed, num_classes)
    log = logging.getLogger("auto-attack")
    handler, level = _Warnings(), log.level
    log.addHandler(handler)
    log.setLevel(logging.WARNING)  # the reference logs every batch at debug level
    device = next(model.parameters()).device
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices), attack_mode(model, "eval"):
            for name in list(aa.attacks_to_run):
                idx = robust.nonzero().squeeze(1)
                if len(idx):
                    aa.attacks_to_run = [name]
                    xs, ys = (x, y) if len(idx) == len(x) else (x[idx], y[idx])  # no copy while all survive
                    xa, _ = aa.run_standard_evaluation(xs, ys, batch_size=batch_size)
                    valid, claimed = broken(model, xs, xa.to(x.device), ys, norm, eps, batch_size)
                    res.rejected += int((claimed & ~valid).sum())
                    robust[idx[valid]] = False
                    if keep_points:
                        res.x_adv[idx[valid]] = xa[valid].to(x.device)
                    del xs, xa
                res.after[name] = robust.clone()
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    res.warnings = list(dict.fromkeys(handler.messages))  # the checks repeat once per attack
    return res


def subset_indices(n: int, max_images: int | None, seed: int) -> torch.Tensor:
    """All of range(n), or a seeded random subset of max_images of them (sorted)."""
    if max_images is not None and max_images < 1:
        raise RobinterpError(f"evaluation.autoattack_max_images must be >= 1 or null, got {max_images}")
    if max_images is None or max_images >= n:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:max_images].sort().values


def evaluate_autoattack(
    model: nn.Module, data: DeviceData, indices: torch.Tensor, pgd: AttackConfig, batch_size: int, seed: int, amp: bool
) -> dict:
    """AutoAttack at the threat model of `pgd` on data[indices], beside the clean accuracy and the
    PGD accuracy on the same images (each image's PGD start as in the headline adv_acc); the
    fields `robinterp evaluate` writes to accuracy.json."""
    from .evaluate import pgd_correct

    start = time.perf_counter()
    model.eval()
    x, y = (t.cpu() for t in data.batch(indices))  # on the host: the reference moves each batch
    res = autoattack(model, x, y, pgd.norm, pgd.eps, seed, batch_size)
    seconds = time.perf_counter() - start
    pgd_ok = torch.cat(
        [pgd_correct(model, *data.batch(chunk), chunk, pgd, seed, amp) for chunk in indices.split(batch_size)]
    )
    n = max(len(indices), 1)
    for w in res.warnings:
        print(f"autoattack: reference check: {w}", flush=True)
    return {
        "autoattack": {
            "implementation": IMPLEMENTATION,
            "implementation_version": package_version(IMPLEMENTATION),
            "version": res.version,
            "norm": pgd.norm,
            "eps": pgd.eps,
            "seed": seed,
            "attacks": list(res.after),
            "target_classes": res.targets,
            "num_classes": res.num_classes,
        },
        "autoattack_n": len(indices),
        "autoattack_indices": [int(i) for i in indices],
        "autoattack_acc": int(res.robust.sum()) / n,
        "autoattack_clean_acc": int(res.clean.sum()) / n,
        "autoattack_pgd_acc": int(pgd_ok.sum()) / n,
        "autoattack_after": {k: int(v.sum()) / n for k, v in res.after.items()},
        "autoattack_rejected": res.rejected,
        "autoattack_warnings": res.warnings,
        "autoattack_seconds": seconds,
    }
