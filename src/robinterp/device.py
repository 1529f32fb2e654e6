"""Where tensors live and in which precision: the device a job runs on, bf16 autocast, and a
packed split held on the device as uint8 (DeviceData).

How a job runs, never what it computes: every verb takes `--device auto|cpu|cuda`.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

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
