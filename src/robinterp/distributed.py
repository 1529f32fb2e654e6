"""Data-parallel training under `torchrun`: process group, per-rank batch shards, reductions.

`robinterp train` runs as one process per GPU when started by `torchrun` (WORLD_SIZE > 1; the
Snakemake rule does this when the job gets `resources: gpu=N` with N > 1). Every rank keeps
the whole packed split on its device as uint8, draws the same per-epoch permutation and
augmentation (one shared seed), and trains on its contiguous slice of each global batch. With
`sync_batchnorm` (default) BatchNorm normalises over the global batch, so an N-rank run computes
the same updates as a 1-process run with the same `batch_size` (up to float summation order).

torch's SyncBatchNorm runs on GPUs only; on CPU (gloo) `GlobalBatchNorm2d` does the same with a
differentiable all-reduce of the per-channel sums, so the multi-process path is testable on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
from torch import nn

from .errors import RobinterpError


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def shard(self, n: int) -> slice:
        """This rank's contiguous slice of a global batch of n samples."""
        return slice(self.rank * n // self.world_size, (self.rank + 1) * n // self.world_size)


def ranks_from_env() -> Ranks:
    """The torchrun environment (RANK, WORLD_SIZE, LOCAL_RANK); a single process without it."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return Ranks(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def setup(ranks: Ranks, device: torch.device) -> torch.device:
    """Join the process group (nccl on CUDA, gloo on CPU); return this rank's device."""
    if not ranks.distributed:
        return device
    if device.type == "cuda":
        if torch.cuda.device_count() < ranks.world_size:
            raise RobinterpError(
                f"torchrun started {ranks.world_size} ranks but only "
                f"{torch.cuda.device_count()} GPU(s) are visible; lower resources.gpu"
            )
        device = torch.device("cuda", ranks.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(
            "nccl" if device.type == "cuda" else "gloo", **process_group_options(device, dist.init_process_group)
        )
    return device


def process_group_options(device: torch.device, init_process_group) -> dict:
    """`device_id` binds NCCL to this rank's GPU up front; `init_process_group` takes it only
    from torch 2.3 on, so older versions (pyproject allows 2.2) start without it."""
    import inspect

    if device.type != "cuda" or "device_id" not in inspect.signature(init_process_group).parameters:
        return {}
    return {"device_id": device}


def teardown(ranks: Ranks) -> None:
    if ranks.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def all_reduce_sums(values: dict, ranks: Ranks, device: torch.device) -> dict:
    """Sum a dict of numbers over ranks (identity in a single process)."""
    if not ranks.distributed:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return {k: (int(v) if isinstance(values[k], int) else v) for k, v in zip(keys, t.tolist())}


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics cover the batch of every rank (any backend).

    Same parameters and buffers as BatchNorm2d (checkpoints are interchangeable); in eval mode,
    or without a process group, it is BatchNorm2d.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        c = x.shape[1]
        count = torch.full((1,), x.numel() / c, dtype=x.dtype, device=x.device)
        stats = dist_fn.all_reduce(torch.cat([x.sum((0, 2, 3)), count]))
        n = stats[-1]
        mean = stats[:c] / n
        # two passes (centred squares), as BatchNorm2d: E[x^2] - E[x]^2 loses digits when |mean| >> std
        var = dist_fn.all_reduce((x - mean.view(1, c, 1, 1)).square().sum((0, 2, 3))) / n
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum
                self.running_mean.mul_(1 - m).add_(m * mean.detach())
                self.running_var.mul_(1 - m).add_(m * var.detach() * n / (n - 1))
        scale = self.weight * torch.rsqrt(var + self.eps)
        return x * scale.view(1, c, 1, 1) + (self.bias - mean * scale).view(1, c, 1, 1)


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """BatchNorm -> torch SyncBatchNorm on CUDA, GlobalBatchNorm2d elsewhere (same state_dict)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, child in model.named_children():
        if type(child) is nn.BatchNorm2d:
            new = GlobalBatchNorm2d(
                child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats
            ).to(child.weight.device)
            new.load_state_dict(child.state_dict())
            setattr(model, name, new)
        else:
            convert_sync_batchnorm(child, device)
    return model
