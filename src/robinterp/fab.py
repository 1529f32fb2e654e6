"""FAB-T: the targeted Fast Adaptive Boundary attack (Croce & Hein, ICML 2020), L2 and Linf.

Each step linearises the decision boundary between the true class and a target class at the
current iterate, projects both the iterate and the original image onto that hyperplane inside
the [0, 1] box (the minimal-norm step), moves to a convex combination of the two projections with
a small overshoot, and steps back towards the original image whenever the iterate is adversarial.
Part of AutoAttack (`robinterp.autoattack`): a sample counts as broken once FAB has found an
adversarial point within the eps-ball, so it leaves the batch then (later steps would only make
its perturbation smaller).
"""

from __future__ import annotations

import torch
from torch import nn

_BIG = 1e30  # a breakpoint that is never reached (its coordinate has a zero hyperplane weight)
_TINY_W = 1e-12  # weights below this count as zero: the coordinate cannot move the margin


def _oriented(t, w, b):
    """Flip each hyperplane so that the point lies on its non-negative side: w.t - b = c >= 0,
    and the step d must satisfy w.d = -c."""
    c = (w * t).sum(1) - b
    sign = torch.where(c >= 0, 1.0, -1.0).to(w.dtype)
    return w * sign[:, None], c * sign


def project_l2(t: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Minimal-L2 step d with w.(t + d) = b and t + d in [0, 1] (rows are points; flat).

    KKT: d = clip(-lam * w, -t, 1 - t) for one lam >= 0 per row; w.d is piecewise linear and
    non-increasing in lam, with a kink where a coordinate reaches its bound. Sorting the kinks
    gives the linear piece that reaches -c, and lam in closed form. Where the box makes the
    hyperplane unreachable, every coordinate goes to its bound (the closest the box allows).
    """
    w, c = _oriented(t, w, b)
    live = w.abs() > _TINY_W
    w = torch.where(live, w, torch.zeros_like(w))
    bound = torch.where(w > 0, -t, 1 - t)  # where -lam * w runs into the box
    safe = torch.where(live, w, torch.ones_like(w))
    kink = torch.where(live, bound / -safe, torch.full_like(w, _BIG))  # lam at which coordinate i saturates
    kink, order = kink.clamp_min(0).sort(1)
    ws, bs = w.gather(1, order), bound.gather(1, order)
    zero = torch.zeros_like(c)[:, None]
    saturated = torch.cat([zero, (ws * bs).cumsum(1)], 1)  # w.d of the coordinates before kink k
    free = torch.cat([(ws * ws).flip(1).cumsum(1).flip(1), zero], 1)  # sum w^2 from kink k on
    at_kink = saturated[:, :-1] - kink * free[:, :-1]  # w.d at each kink (non-increasing)
    k = (at_kink > -c[:, None]).sum(1, keepdim=True)
    f = free.gather(1, k).squeeze(1)
    lam = torch.where(f > 0, (saturated.gather(1, k).squeeze(1) + c) / f.clamp_min(1e-30), _BIG)
    return torch.minimum(torch.maximum(-lam[:, None] * w, -t), 1 - t) * live


def project_linf(t: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Minimal-Linf step d with w.(t + d) = b and t + d in [0, 1] (rows are points; flat).

    At radius r the most w.d can fall is sum |w_i| min(r, room_i), room_i being how far
    coordinate i can move against w_i inside the box: piecewise linear and increasing in r, so
    sorting the rooms gives r in closed form; d_i = -sign(w_i) min(r, room_i).
    """
    w, c = _oriented(t, w, b)
    live = w.abs() > _TINY_W
    aw = torch.where(live, w.abs(), torch.zeros_like(w))
    room = torch.where(live, torch.where(w > 0, t, 1 - t), torch.full_like(w, _BIG))
    rooms, order = room.sort(1)
    aws = aw.gather(1, order)
    zero = torch.zeros_like(c)[:, None]
    capped = torch.cat([zero, (aws * rooms).cumsum(1)], 1)  # drop of the coordinates already at their room
    slope = torch.cat([aws.flip(1).cumsum(1).flip(1), zero], 1)  # sum |w| of those still free
    at_kink = capped[:, :-1] + rooms * slope[:, :-1]
    k = (at_kink < c[:, None]).sum(1, keepdim=True)
    s = slope.gather(1, k).squeeze(1)
    r = torch.where(s > 0, (c - capped.gather(1, k).squeeze(1)) / s.clamp_min(1e-30), _BIG)
    return -torch.sign(w) * torch.minimum(r[:, None], room) * live


def _dist(d: torch.Tensor, norm: str) -> torch.Tensor:
    d = d.flatten(1)
    return d.abs().amax(1) if norm == "linf" else d.norm(dim=1)


def fab_targeted(model: nn.Module, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor, *, norm: str,
                 eps: float, steps: int = 100, alpha_max: float = 0.1, eta: float = 1.05,
                 beta: float = 0.9) -> torch.Tensor:
    """Adversarial points towards `target` (x itself where FAB found none within eps).

    The caller puts the model into attack mode (`robinterp.attacks.attack_mode`).
    """
    project = project_linf if norm == "linf" else project_l2
    out = x.detach().clone()
    active = torch.arange(len(x), device=x.device)
    x0 = x.detach()
    x1 = x0.clone()
    for _ in range(steps):
        if len(active) == 0:
            break
        x1.requires_grad_(True)
        logits = model(x1)
        rows = torch.arange(len(x1), device=x1.device)
        diff = (logits[rows, target] - logits[rows, y]).float()  # > 0 once the target wins
        (grad,) = torch.autograd.grad(diff.sum(), x1)
        with torch.no_grad():
            x1 = x1.detach()
            w = grad.flatten(1).to(x1.dtype)
            b = (w * x1.flatten(1)).sum(1) - diff.to(x1.dtype)  # the linearised boundary w.x = b
            both = project(torch.cat([x1.flatten(1), x0.flatten(1)]), torch.cat([w, w]), torch.cat([b, b]))
            size = _dist(both, norm).clamp_min(1e-8)
            n = len(x1)
            d1, d2 = both[:n].view_as(x1), both[n:].view_as(x1)
            alpha = (size[:n] / (size[:n] + size[n:])).clamp(0, alpha_max).view(-1, *[1] * (x1.dim() - 1))
            x1 = ((x1 + eta * d1) * (1 - alpha) + (x0 + eta * d2) * alpha).clamp(0, 1)
            adv = model(x1).argmax(1) != y
            done = adv & (_dist(x1 - x0, norm) <= eps)
            out[active[done]] = x1[done]
            x1 = torch.where(adv.view(-1, *[1] * (x1.dim() - 1)), x0 + (x1 - x0) * beta, x1)
            keep = ~done
            active, x0, x1, y, target = active[keep], x0[keep], x1[keep], y[keep], target[keep]
    return out
