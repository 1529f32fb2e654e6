"""Square Attack (Andriushchenko et al., ECCV 2020): a score-based black-box attack, L2 and Linf.

Random search on the margin loss (true logit minus the best other logit): each query changes
the perturbation inside one random square window (Linf: the window is set to +-eps per channel;
L2: mass moves from a second window into the first, shaped as two opposite concentric bumps) and
is kept when the margin falls. The window's area shrinks on a fixed schedule of the query index.
Only samples still classified correctly are queried; with its gradient-free search it checks
that the gradient attacks of AutoAttack (`robinterp.autoattack`) were not fooled by masking.
Windows, signs and orientations are drawn per sample from the given generator.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import nn

# Fraction of the image a window covers, p_init / 2^j after the j-th of these query indices
# (the schedule of the paper's code for 10,000 queries, used unscaled as AutoAttack does).
_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def window_fraction(query: int, p_init: float = 0.8) -> float:
    return p_init / 2 ** sum(query > q for q in _HALVINGS)


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """True logit minus the largest other one; <= 0 means misclassified."""
    logits = logits.float()
    true = logits.gather(1, y[:, None]).squeeze(1)
    return true - logits.scatter(1, y[:, None], float("-inf")).amax(1)


def _signs(shape, gen, like):
    return torch.randint(0, 2, shape, generator=gen, device=like.device).to(like.dtype) * 2 - 1


def _l2(d: torch.Tensor) -> torch.Tensor:
    return d.flatten(1).norm(dim=1).view(-1, *[1] * (d.dim() - 1))


@functools.lru_cache(maxsize=32)  # the window side changes 9 times over 5,000 queries
def bump(s: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """The L2 window's pattern: +concentric squares over the top half, - over the bottom, unit L2.

    A half of a x b pixels holds sum_{k >= r}^{K-1} 1/(k+1)^2 at Chebyshev distance r from its
    centre (a // 2, b // 2), K = max(a, b) // 2 + 1: nested squares with weights 1/(k+1)^2.
    """
    def half(a, b):
        r = torch.maximum((torch.arange(a, device=device) - a // 2).abs()[:, None],
                          (torch.arange(b, device=device) - b // 2).abs()[None, :])
        tail = (1.0 / torch.arange(1, max(a, b) // 2 + 2, device=device, dtype=torch.float64) ** 2).flip(0).cumsum(0).flip(0)
        h = tail[r]
        return h / h.norm()

    pattern = torch.cat([half(s // 2, s), -half(s - s // 2, s)]) if s > 1 else torch.ones(1, 1, dtype=torch.float64, device=device)
    return (pattern / pattern.norm()).to(dtype)


def _windows(n, c, h, w, s, gen, device):
    """Index tuples of one random s x s window per sample (all channels)."""
    top = torch.randint(0, h - s + 1, (n,), generator=gen, device=device)
    left = torch.randint(0, w - s + 1, (n,), generator=gen, device=device)
    ar = torch.arange(s, device=device)
    return (torch.arange(n, device=device)[:, None, None, None], torch.arange(c, device=device)[None, :, None, None],
            (top[:, None] + ar)[:, None, :, None], (left[:, None] + ar)[:, None, None, :])


def _init(x, norm, eps, gen):
    n, c, h, w = x.shape
    if norm == "linf":  # vertical stripes of +-eps
        return (x + eps * _signs((n, c, 1, w), gen, x)).clamp(0, 1)
    s = max(h // 5, 1)  # a 5 x 5 grid of bumps with random signs per channel
    start = (h - 5 * s) // 2
    delta = torch.zeros_like(x)
    pattern = bump(s, x.device, x.dtype)
    for top in range(start, start + s * (h // s), s):
        for left in range(start, start + s * (w // s), s):
            if top + s <= h and left + s <= w:
                delta[:, :, top:top + s, left:left + s] += pattern * _signs((n, c, 1, 1), gen, x)
    return (x + eps * delta / (_l2(delta) + 1e-12)).clamp(0, 1)


def _propose(x, best, norm, eps, query, gen):
    n, c, h, w = x.shape
    p = window_fraction(query)
    side = math.sqrt(p * h * w)
    if norm == "linf":
        s = min(max(int(round(side)), 1), h, w)
        win = _windows(n, c, h, w, s, gen, x.device)
        new = best.clone()
        new[win] = (x[win] + eps * _signs((n, c, 1, 1), gen, x)).clamp(0, 1)  # a corner of the ball
        return new
    s = max(int(round(side)), 3)
    s = min(s + (s % 2 == 0), h, w)
    delta = best - x
    win, win2 = _windows(n, c, h, w, s, gen, x.device), _windows(n, c, h, w, s, gen, x.device)
    mask = torch.zeros_like(x)
    mask[win], mask[win2] = 1, 1
    room = (eps ** 2 - _l2(delta) ** 2).clamp_min(0) / c  # budget left, per channel
    in_windows = (delta * mask).pow(2).sum((2, 3), keepdim=True)  # mass both windows release
    old = delta[win]
    pattern = bump(s, x.device, x.dtype).expand(n, s, s)
    flip = torch.randint(0, 2, (n, 1, 1), generator=gen, device=x.device).bool()
    pattern = torch.where(flip, pattern.transpose(1, 2), pattern)[:, None]
    new = pattern * _signs((n, c, 1, 1), gen, x) + old / (old.pow(2).sum((2, 3), keepdim=True).sqrt() + 1e-12)
    new = new / (new.pow(2).sum((2, 3), keepdim=True).sqrt() + 1e-12) * (room + in_windows).sqrt()
    delta[win2] = 0
    delta[win] = new
    return (x + eps * delta / (_l2(delta) + 1e-12)).clamp(0, 1)


@torch.no_grad()
def square_attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, norm: str, eps: float,
                  queries: int = 5000, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random-search adversarial points (the best point found where the search did not succeed)."""
    best = _init(x, norm, eps, generator)
    best_margin = margin(model(best), y)
    active = (best_margin > 0).nonzero().squeeze(1)
    for query in range(1, queries):
        if len(active) == 0:
            break
        cand = _propose(x[active], best[active], norm, eps, query - 1, generator)
        m = margin(model(cand), y[active])
        better = m < best_margin[active]
        best[active[better]] = cand[better]
        best_margin[active[better]] = m[better]
        active = active[best_margin[active] > 0]
    return best
