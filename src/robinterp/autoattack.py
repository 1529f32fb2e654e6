"""AutoAttack, standard version (Croce & Hein, ICML 2020): the field's reference robust accuracy.

Four attacks run in turn on the images no earlier one has broken, at the threat model of the
dataset's `eval_attack` (L2 or Linf, its eps); an image counts as robust only if it survives all
of them (the per-sample worst case):

- APGD-CE: step-size-free PGD on the cross-entropy, 100 iterations, no restarts;
- APGD-T: the same on the targeted DLR loss, once per target class (the 9 highest other logits);
- FAB-T: minimal-norm boundary attack towards the same 9 targets (`robinterp.fab`);
- Square: 5,000-query black-box random search (`robinterp.square`).

Every adversarial point is checked here (in the eps-ball, in [0, 1], misclassified) before it
counts. Random draws come from one generator seeded from the evaluation seed. An image leaves an
attack once broken, which changes no result and saves most of the cost on weak models. Runs in
the model's dtype (fp32 unless the caller casts it), never under autocast.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .attacks import AttackConfig, adversarial_examples, attack_mode
from .errors import RobinterpError
from .fab import fab_targeted
from .square import square_attack

ATTACKS = ("apgd-ce", "apgd-t", "fab-t", "square")


@dataclass(frozen=True)
class AutoAttackConfig:
    norm: str  # "l2" or "linf", as the PGD evaluation
    eps: float  # radius in [0, 1] pixel space
    seed: int = 0
    steps: int = 100  # APGD and FAB iterations
    targets: int = 9  # target classes of APGD-T and FAB-T
    queries: int = 5000  # Square
    attacks: tuple = ATTACKS

    def __post_init__(self):
        if self.norm not in ("l2", "linf"):
            raise RobinterpError(f"AutoAttack: norm must be 'l2' or 'linf', got {self.norm!r}")
        unknown = set(self.attacks) - set(ATTACKS)
        if unknown:
            raise RobinterpError(f"AutoAttack: unknown attacks {sorted(unknown)}; choose from {list(ATTACKS)}")


def _view(v, x):
    return v.view(-1, *[1] * (x.dim() - 1))


def _unit(g, norm):
    """The steepest-ascent direction of unit norm: sign for Linf, g / ||g|| for L2."""
    if norm == "linf":
        return g.sign()
    return g / (_view(g.flatten(1).norm(dim=1), g) + 1e-12)


def _project(x, xa, norm, eps):
    d = xa - x
    if norm == "linf":
        d = d.clamp(-eps, eps)
    else:
        d = d * _view(torch.clamp(eps / (d.flatten(1).norm(dim=1) + 1e-12), max=1.0), d)
    return (x + d).clamp(0, 1)


def ce_loss(logits, y, target):
    return F.cross_entropy(logits.float(), y, reduction="none")


def dlr_targeted_loss(logits, y, target):
    """-(z_y - z_t) / (z_1 - (z_3 + z_4) / 2): the targeted Difference of Logits Ratio."""
    z = logits.float()
    top = z.sort(1, descending=True).values
    zy, zt = z.gather(1, y[:, None]).squeeze(1), z.gather(1, target[:, None]).squeeze(1)
    return -(zy - zt) / (top[:, 0] - 0.5 * (top[:, 2] + top[:, 3]) + 1e-12)


def apgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, norm: str, eps: float, loss=ce_loss,
         target: torch.Tensor | None = None, steps: int = 100, rho: float = 0.75,
         generator: torch.Generator | None = None) -> torch.Tensor:
    """Auto-PGD (one run): momentum 0.75, step 2 eps halved at checkpoints where the loss
    stalled; returns misclassified points where found, else x. Model in attack mode."""
    out = x.detach().clone()
    target = y if target is None else target
    x0 = x.detach()
    if norm == "linf":  # a random point on the ball's surface, as in the paper's code
        noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) * 2 - 1
        noise = noise / _view(noise.flatten(1).abs().amax(1) + 1e-12, x)
    else:
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        noise = noise / _view(noise.flatten(1).norm(dim=1) + 1e-12, x)
    xa = (x0 + eps * noise).clamp(0, 1)

    def evaluate(xa, y, target):
        xa = xa.detach().requires_grad_(True)
        logits = model(xa)
        value = loss(logits, y, target)
        (grad,) = torch.autograd.grad(value.sum(), xa)
        return value.detach(), grad, logits.detach().argmax(1) != y

    value, grad, fooled = evaluate(xa, y, target)
    # per-sample state; samples leave it once fooled
    s = {"idx": torch.arange(len(x), device=x.device), "x0": x0, "y": y, "target": target, "xa": xa.detach(),
         "prev": xa.detach(), "grad": grad, "best_x": xa.detach(), "best_grad": grad, "best": value,
         "last": value, "step": torch.full((len(x),), 2.0 * eps, device=x.device, dtype=x.dtype),
         "rises": torch.zeros(len(x), device=x.device), "reduced": torch.ones(len(x), dtype=torch.bool, device=x.device),
         "best_at_check": value}

    def drop(fooled):
        nonlocal s
        out[s["idx"][fooled]] = s["xa"][fooled]
        s = {k: v[~fooled] for k, v in s.items()}

    drop(fooled)
    window, since = max(int(0.22 * steps), 1), 0
    shrink, min_window = max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)
    for i in range(steps):
        if len(s["idx"]) == 0:
            break
        with torch.no_grad():
            momentum = 0.75 if i > 0 else 1.0
            xa, x0 = s["xa"], s["x0"]
            z = _project(x0, xa + _view(s["step"], xa) * _unit(s["grad"], norm), norm, eps)
            new = _project(x0, xa + momentum * (z - xa) + (1 - momentum) * (xa - s["prev"]), norm, eps)
            s["prev"], s["xa"] = xa, new
        value, s["grad"], fooled = evaluate(s["xa"], s["y"], s["target"])
        drop(fooled)  # keeps the iterate that fooled the model, before any restart from the best
        value = value[~fooled]
        with torch.no_grad():
            better = _view(value > s["best"], x0)
            s["best_x"] = torch.where(better, s["xa"], s["best_x"])
            s["best_grad"] = torch.where(better, s["grad"], s["best_grad"])
            s["best"] = torch.where(better.flatten(), value, s["best"])
            s["rises"] += (value > s["last"]).float()
            s["last"] = value
            since += 1
            if since == window:  # checkpoint: halve the step where the loss stalled, restart from the best
                halve = (s["rises"] <= rho * window) | (~s["reduced"] & (s["best_at_check"] >= s["best"]))
                s["reduced"], s["best_at_check"] = halve, s["best"].clone()
                s["step"] = torch.where(halve, s["step"] / 2, s["step"])
                s["xa"] = torch.where(_view(halve, x0), s["best_x"], s["xa"])
                s["grad"] = torch.where(_view(halve, x0), s["best_grad"], s["grad"])
                s["rises"] = torch.zeros_like(s["rises"])
                since, window = 0, max(window - shrink, min_window)
    return out


def broken(model: nn.Module, x: torch.Tensor, xa: torch.Tensor, y: torch.Tensor, norm: str, eps: float) -> torch.Tensor:
    """Which adversarial points are valid: misclassified, in [0, 1], within eps (float slack)."""
    d = (xa - x).flatten(1)
    size = d.abs().amax(1) if norm == "linf" else d.norm(dim=1)
    with torch.no_grad():
        wrong = model(xa).argmax(1) != y
    inside = (size <= eps * (1 + 1e-5) + 1e-7) & (xa.flatten(1).amin(1) >= 0) & (xa.flatten(1).amax(1) <= 1)
    return wrong & inside


def autoattack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: AutoAttackConfig,
               generator: torch.Generator | None = None) -> dict:
    """Per-sample robustness of one batch: {"clean": bool[n], "robust": bool[n], "<attack>": bool[n]
    (robust after that attack and every earlier one)}."""
    x = x.detach()
    out = {}
    with attack_mode(model, "eval"):
        with torch.no_grad():
            logits = model(x)
        robust = logits.argmax(1) == y
        out["clean"] = robust.clone()
        ranked = logits.argsort(1, descending=True)  # targets: 2nd .. (targets+1)-th highest logit
        n_targets = min(cfg.targets, logits.shape[1] - 1)
        if "apgd-t" in cfg.attacks and logits.shape[1] < 4:
            raise RobinterpError("AutoAttack: APGD-T's DLR loss needs at least 4 classes; drop 'apgd-t'")
        for name in ATTACKS:
            if name not in cfg.attacks:
                continue
            for rank in range(1, n_targets + 1) if name.endswith("-t") else [None]:
                idx = robust.nonzero().squeeze(1)
                if len(idx) == 0:
                    break
                xi, yi = x[idx], y[idx]
                ti = None if rank is None else ranked[idx, rank]
                if name == "apgd-ce":
                    xa = apgd(model, xi, yi, norm=cfg.norm, eps=cfg.eps, steps=cfg.steps, generator=generator)
                elif name == "apgd-t":
                    xa = apgd(model, xi, yi, norm=cfg.norm, eps=cfg.eps, loss=dlr_targeted_loss, target=ti,
                              steps=cfg.steps, generator=generator)
                elif name == "fab-t":
                    xa = fab_targeted(model, xi, yi, ti, norm=cfg.norm, eps=cfg.eps, steps=cfg.steps)
                else:
                    xa = square_attack(model, xi, yi, norm=cfg.norm, eps=cfg.eps, queries=cfg.queries,
                                       generator=generator)
                robust[idx[broken(model, xi, xa, yi, cfg.norm, cfg.eps)]] = False
            out[name] = robust.clone()
    out["robust"] = robust
    return out


def subset_indices(n: int, max_images: int | None, seed: int) -> torch.Tensor:
    """All of range(n), or a seeded random subset of max_images of them (sorted)."""
    if max_images is not None and max_images < 1:
        raise RobinterpError(f"evaluation.autoattack_max_images must be >= 1 or null, got {max_images}")
    if max_images is None or max_images >= n:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:max_images].sort().values


def evaluate_autoattack(model: nn.Module, data, indices: torch.Tensor, pgd: AttackConfig, batch_size: int,
                        seed: int = 0) -> dict:
    """AutoAttack at the threat model of `pgd` on data[indices], with the clean and the PGD
    accuracy on the same images; the fields `robinterp evaluate` writes to accuracy.json."""
    device = next(model.parameters()).device
    cfg = AutoAttackConfig(norm=pgd.norm, eps=pgd.eps, seed=seed)
    gen = torch.Generator(device=device).manual_seed(seed)
    pgd_gen = torch.Generator().manual_seed(seed)
    model.eval()
    counts = {k: 0 for k in ("clean", "pgd", *cfg.attacks)}
    start = time.perf_counter()
    for b in range(0, len(indices), batch_size):
        x, y = data.batch(indices[b:b + batch_size])
        res = autoattack(model, x, y, cfg, generator=gen)
        xp = adversarial_examples(model, x, y, pgd, generator=pgd_gen)
        with torch.no_grad():
            counts["pgd"] += int((model(xp).argmax(1) == y).sum())
        for k in ("clean", *cfg.attacks):
            counts[k] += int(res[k].sum())
        print(f"autoattack: {min(b + batch_size, len(indices))}/{len(indices)} images, robust so far "
              f"{counts[cfg.attacks[-1]]}, {time.perf_counter() - start:.0f} s", flush=True)
    n = max(len(indices), 1)
    return {"autoattack": {**asdict(cfg), "attacks": list(cfg.attacks), "version": "standard"},
            "autoattack_n": len(indices), "autoattack_indices": [int(i) for i in indices],
            "autoattack_acc": counts[cfg.attacks[-1]] / n, "autoattack_clean_acc": counts["clean"] / n,
            "autoattack_pgd_acc": counts["pgd"] / n,
            "autoattack_after": {k: counts[k] / n for k in cfg.attacks},
            "autoattack_seconds": time.perf_counter() - start}
