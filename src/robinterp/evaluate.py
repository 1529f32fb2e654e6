"""Accuracy on clean inputs and under attack, batched on the model's device.

Run: `robinterp evaluate --checkpoint M --data D --attack-json '{...}' --out accuracy.json`.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from .attacks import AttackConfig, adversarial_examples
from .data import Split


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on CUDA when enabled; a no-op on CPU (runs stay exact and deterministic)."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


class DeviceData:
    """A packed split moved to the device once as uint8; batches become float [0, 1] NCHW there."""

    def __init__(self, split: Split, device: torch.device, channels_last: bool = False):
        self.images = torch.from_numpy(np.array(split.images)).to(device)  # copy out of the read-only memmap
        self.labels = torch.from_numpy(split.labels).to(device)
        self.channels_last = channels_last

    def __len__(self):
        return len(self.labels)

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        idx = idx.to(self.images.device)
        x = self.images[idx].permute(0, 3, 1, 2).float().div_(255)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        else:
            x = x.contiguous()
        return x, self.labels[idx]


def accuracy(model: torch.nn.Module, data: DeviceData, attack: AttackConfig | None, batch_size: int,
             max_images: int | None = None, amp: bool = False, seed: int = 0) -> dict:
    """Clean and adversarial accuracy (fractions) over the first `max_images` of `data`."""
    device = next(model.parameters()).device
    n = len(data) if max_images is None else min(max_images, len(data))
    gen = torch.Generator().manual_seed(seed)
    clean = adv = 0
    model.eval()
    for start in range(0, n, batch_size):
        x, y = data.batch(torch.arange(start, min(start + batch_size, n)))
        with autocast(device, amp):
            with torch.inference_mode():
                clean += (model(x).argmax(1) == y).sum().item()
            if attack is not None:
                xa = adversarial_examples(model, x, y, attack, generator=gen)
                with torch.inference_mode():
                    adv += (model(xa).argmax(1) == y).sum().item()
    return {"n": n, "clean_acc": clean / max(n, 1), "adv_acc": adv / max(n, 1) if attack else None}
