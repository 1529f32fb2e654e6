"""Batched data augmentation on whatever device the batch lives on (no per-image Python).

`crop_flip`: random crop with zero padding + horizontal flip (CIFAR-10).
`random_affine`: RandomResizedCrop + rotation + flip as one affine warp per sample
(Small ImageNet), done with `affine_grid`/`grid_sample`.
All randomness comes from the `torch.Generator` passed in, so a resumed epoch repeats exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .settings import Settings


@dataclass(frozen=True)
class AugmentConfig(Settings):
    SECTION = "augment"

    crop_padding: int  # pixels of zero padding before the random crop (CIFAR: 4)
    flip: bool
    random_resized_crop: bool  # scale (0.08, 1), ratio (3/4, 4/3) as torchvision
    rotation: float  # max degrees, uniform in [-rotation, rotation]


def _rand(n, gen, device):
    return torch.rand(n, generator=gen).to(device)


def crop_flip(x: torch.Tensor, padding: int, flip: bool, gen: torch.Generator) -> torch.Tensor:
    n, c, h, w = x.shape
    if padding:
        xp = F.pad(x, (padding,) * 4)
        dy = torch.randint(0, 2 * padding + 1, (n,), generator=gen).to(x.device)
        dx = torch.randint(0, 2 * padding + 1, (n,), generator=gen).to(x.device)
        iy = (torch.arange(h, device=x.device)[None, :] + dy[:, None])[:, None, :, None]
        ix = (torch.arange(w, device=x.device)[None, :] + dx[:, None])[:, None, None, :]
        x = xp[
            torch.arange(n, device=x.device)[:, None, None, None],
            torch.arange(c, device=x.device)[None, :, None, None],
            iy,
            ix,
        ]
    if flip:
        mask = (_rand(n, gen, x.device) < 0.5).view(-1, 1, 1, 1)
        x = torch.where(mask, x.flip(3), x)
    return x


def random_affine(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    dev = x.device
    scale = torch.ones(n, device=dev)
    log_ratio = torch.zeros(n, device=dev)
    if cfg.random_resized_crop:
        scale = 0.08 + (1 - 0.08) * _rand(n, gen, dev)  # area fraction
        log_ratio = math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * _rand(n, gen, dev)
    ratio = log_ratio.exp()
    sw = torch.sqrt(scale * ratio).clamp(max=1.0)  # crop width / image width
    sh = torch.sqrt(scale / ratio).clamp(max=1.0)
    tx = (2 * _rand(n, gen, dev) - 1) * (1 - sw)  # crop centre, within the image
    ty = (2 * _rand(n, gen, dev) - 1) * (1 - sh)
    angle = (2 * _rand(n, gen, dev) - 1) * math.radians(cfg.rotation)
    flip = torch.where(_rand(n, gen, dev) < 0.5, -1.0, 1.0) if cfg.flip else torch.ones(n, device=dev)
    cos, sin = angle.cos(), angle.sin()
    theta = torch.stack(
        [
            torch.stack([sw * cos * flip, -sh * sin, tx], 1),
            torch.stack([sw * sin * flip, sh * cos, ty], 1),
        ],
        1,
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def augment(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    if cfg.random_resized_crop or cfg.rotation:
        return random_affine(x, cfg, gen)
    if cfg.crop_padding or cfg.flip:
        return crop_flip(x, cfg.crop_padding, cfg.flip, gen)
    return x
