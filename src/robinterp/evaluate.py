"""Accuracy on clean inputs and under attack, batched on the model's device.

Run: `robinterp evaluate --checkpoint M --data D --settings '{"eval_attack": {...}}' --out accuracy.json`.
"""

from __future__ import annotations

import contextlib

import torch

from .attacks import AttackConfig, SampleNoise, adversarial_examples, sample_keys
from .device import DeviceData, autocast
from .distributed import Ranks, all_reduce_sums
from .progress import progress


def accuracy(
    model: torch.nn.Module,
    data: DeviceData,
    attack: AttackConfig | None,
    batch_size: int,
    max_images: int | None,
    amp: bool,
    seed: int,
    ranks: Ranks = Ranks(),
) -> dict:
    """Clean and adversarial accuracy (fractions) over the first `max_images` of `data`.

    Each image's random start is drawn from (seed, its index), so the result does not depend on
    the batch size or the rank count. Under torchrun each rank scores its slice of every batch
    and the counts are summed; a rank whose slice of the last batch is empty still runs that
    batch (on one image it does not count), so every rank enters the same collective operations
    (SyncBatchNorm in an attack with `bn_mode: train`).
    """
    device = next(model.parameters()).device
    n = len(data) if max_images is None else min(max_images, len(data))
    counts = torch.zeros(2, dtype=torch.int64, device=device)  # clean, adv: one sync at the end
    model.eval()
    for start in progress(range(0, n, batch_size), "accuracy", unit="batches", silent=not ranks.is_main):
        m = min(batch_size, n - start)
        idx = torch.arange(start, start + m)[ranks.shard(m)]
        counted = len(idx)
        if counted == 0:
            idx = torch.tensor([start + m - 1])
        x, y = data.batch(idx)
        with autocast(device, amp):
            with torch.inference_mode():
                clean_pred = model(x).argmax(1)
            counts[0] += (clean_pred == y)[:counted].sum()
            if attack is not None:
                counts[1] += pgd_correct(model, x, y, idx, attack, seed)[:counted].sum()
    total = all_reduce_sums({"clean": int(counts[0]), "adv": int(counts[1])}, ranks, device)
    return {"n": n, "clean_acc": total["clean"] / max(n, 1), "adv_acc": total["adv"] / max(n, 1) if attack else None}


def pgd_correct(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    indices: torch.Tensor,
    attack: AttackConfig,
    seed: int,
    amp: bool | None = None,
) -> torch.Tensor:
    """Per image: still classified correctly after PGD from the random start keyed by (seed, its
    index in the split), so an image meets the same start in every batch that holds it. `amp`:
    bf16 autocast on CUDA; None = the caller's autocast state."""
    noise = SampleNoise(sample_keys(seed, indices.tolist()))
    with contextlib.nullcontext() if amp is None else autocast(x.device, amp):
        xa = adversarial_examples(model, x, y, attack, generator=noise)
        with torch.inference_mode():
            return model(xa).argmax(1) == y
