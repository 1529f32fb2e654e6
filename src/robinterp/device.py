"""Where tensors live and in which precision: the device a job runs on, bf16 autocast, and a
packed split held on the device as uint8 (DeviceData).

How a job runs, never what it computes: every verb takes `--device auto|cpu|cuda`. `auto` is
CUDA when torch can use a GPU and the CPU when the machine has none; a machine whose GPUs torch
cannot use (a driver older than the CUDA the installed torch needs, a GPU architecture it has
no kernels for) stops the job with one line instead of running for days on the CPU.
"""

from __future__ import annotations

import contextlib
import platform
import re
import sys

import numpy as np
import torch

from . import gpus
from .data import Split
from .errors import RobinterpError

# Oldest Linux driver each CUDA major version of torch's wheels needs (NVIDIA's release notes).
MIN_DRIVER = {13: "580", 12: "525", 11: "450"}
FIX = 'docs/scale.md, "GPU drivers and torch builds"'


def resolve_device(name: str) -> torch.device:
    """The torch device of `name` (auto | cpu | cuda | cuda:N); RobinterpError where it cannot run."""
    if name not in ("auto", "cpu", "cuda") and not re.fullmatch(r"cuda:\d+", str(name)):
        raise RobinterpError(
            f"device {name!r} is not supported; choose auto, cpu or cuda (config key `device`, flag --device)"
        )
    if name == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        device = torch.device("cuda" if name == "auto" else name)
        _check_kernels(device)
        return device
    smi = gpus.visible_gpus()
    if smi:
        raise RobinterpError(_unusable(smi))
    if name != "auto":
        raise RobinterpError(
            f"device: {name}, but this machine shows no GPU torch can use (nvidia-smi "
            f"{'finds none' if gpus.query_nvidia_smi() is not None else 'is not installed'}); "
            "set device: auto or cpu, or run on a GPU machine"
        )
    return torch.device("cpu")


def _unusable(smi: list) -> str:
    """Why nvidia-smi's GPUs are out of torch's reach, and the fix."""
    g = smi[0]
    built = torch.version.cuda
    if built is None:
        why = f"the installed torch {torch.__version__} is a CPU-only build"
    else:
        need = MIN_DRIVER.get(int(built.split(".")[0]))
        why = (
            f"the installed torch {torch.__version__} is built for CUDA {built}"
            + (f", which needs NVIDIA driver >= {need}" if need else "")
            + f"; this machine has driver {g.driver}"
        )
    return (
        f"nvidia-smi shows {len(smi)} GPU(s) ({g.name}) but torch cannot use them: {why}. Update the "
        f"driver or install a torch built for an older CUDA ({FIX}); device: cpu runs on the CPU on purpose"
    )


def _check_kernels(device: torch.device) -> None:
    """Stop when torch has no kernels for the GPU's compute capability (e.g. sm_70 in a CUDA 13 build)."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    major, minor = torch.cuda.get_device_capability(index)
    archs = torch.cuda.get_arch_list()
    if not archs:
        return
    cap = major * 10 + minor
    # binary kernels run on later GPUs of the same major version (sm_80 on sm_86), PTX on any later GPU
    native = any(a.startswith(f"sm_{major}") and _arch_number(a, "sm_") <= cap for a in archs)
    ptx = any(a.startswith("compute_") and _arch_number(a, "compute_") <= cap for a in archs)
    if not (native or ptx):
        raise RobinterpError(
            f"GPU {torch.cuda.get_device_name(index)} has compute capability {major}.{minor} "
            f"(sm_{cap}); the installed torch {torch.__version__} (CUDA {torch.version.cuda}) has "
            f"kernels for {', '.join(archs)} only. Install a torch built for it ({FIX}), or set "
            "device: cpu"
        )


def _arch_number(arch: str, prefix: str) -> int:
    digits = arch[len(prefix) :].rstrip("af")  # sm_90a, sm_100f: arch-specific variants
    return int(digits) if digits.isdigit() else 10**6


def describe(device: torch.device) -> dict:
    """The resolved device as recorded in every output's provenance and printed in every job's log."""
    if device.type != "cuda":
        return {"type": "cpu", "name": _cpu_name(), "torch": str(torch.__version__)}
    index = device.index if device.index is not None else torch.cuda.current_device()
    major, minor = torch.cuda.get_device_capability(index)
    return {
        "type": "cuda",
        "name": torch.cuda.get_device_name(index),
        "capability": f"{major}.{minor}",
        "index": index,
        "torch": str(torch.__version__),
        "cuda": torch.version.cuda,
    }


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def announce(record: dict) -> None:
    """The job's log line about where it runs."""
    if record["type"] == "cuda":
        where = (
            f"cuda:{record['index']} = {record['name']} (compute capability {record['capability']}), "
            f"torch {record['torch']}, CUDA {record['cuda']}"
        )
    else:
        where = f"cpu ({record['name']}), torch {record['torch']}"
    print(f"device: {where}", file=sys.stderr, flush=True)


def select(name: str) -> tuple[torch.device, dict]:
    """resolve_device + describe + announce: the device of a verb, and its provenance record."""
    device = resolve_device(name)
    record = describe(device)
    announce(record)
    return device, record


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
