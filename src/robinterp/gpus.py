"""GPU slots: each job of a local run gets GPUs that no other running job holds.

Snakemake limits how many GPU jobs run at once (the `gpu` resource) but never says which GPU a
job should use, so without this every job would land on GPU 0. A GPU rule therefore starts its
command through this launcher:

    python -m robinterp.gpus K -- python -m robinterp ig ...

which takes K free GPUs of those this machine shows (honouring a `CUDA_VISIBLE_DEVICES` the
user set), sets `CUDA_VISIBLE_DEVICES` to them and replaces itself with the command. A GPU is
taken by an exclusive `flock` on a per-GPU lock file; the lock's file descriptor is inherited
by the command, so the kernel releases it when the command ends, however it ends (a `kill -9`
included): no slot is ever leaked, and two Snakemake runs on one machine share the same locks.
Jobs wait (with a log line) while every GPU is taken, and take all K GPUs at once or none, so
two multi-GPU jobs never deadlock.

The launcher steps aside (runs the command as it is) when K is 0 (a CPU job), when the machine
shows no GPU (`device: auto` then runs on the CPU; `device: cuda` stops with a message), under
SLURM (the scheduler assigned the job's GPUs already) and when `ROBINTERP_GPU_SLOTS=off`.
No torch here: it must run before anything touches CUDA.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import RobinterpError

LOCK_DIR_ENV = "ROBINTERP_GPU_LOCK_DIR"  # where the per-GPU lock files live (shared by every run of this machine)
SWITCH_ENV = "ROBINTERP_GPU_SLOTS"  # "off": run GPU jobs without taking a slot


@dataclass(frozen=True)
class Gpu:
    index: int  # nvidia-smi's index (PCI bus order)
    uuid: str  # "GPU-..." (the lock key, and what CUDA_VISIBLE_DEVICES is set to)
    name: str
    driver: str
    capability: str  # "9.0"; "" where the driver cannot report it


def query_nvidia_smi(timeout: float = 30) -> list[Gpu] | None:
    """Every GPU the NVIDIA driver shows (ignoring CUDA_VISIBLE_DEVICES); None without nvidia-smi."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    fields = ["index", "uuid", "name", "driver_version", "compute_cap"]
    for query in (fields, fields[:-1]):  # drivers before R510 cannot report compute_cap
        try:
            out = subprocess.run(
                [exe, f"--query-gpu={','.join(query)}", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        if out.returncode == 0:
            break
    else:
        return []  # nvidia-smi present but the driver answers nothing (no GPU, or driver not loaded)
    gpus = []
    for line in out.stdout.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 4 or not parts[0].isdigit():
            continue
        gpus.append(Gpu(int(parts[0]), parts[1], parts[2], parts[3], parts[4] if len(parts) > 4 else ""))
    return gpus


def visible_gpus(env: dict | None = None, smi: list[Gpu] | None = None) -> list[Gpu]:
    """The GPUs a process started with `env` may use: all of nvidia-smi's, or those named by
    CUDA_VISIBLE_DEVICES (indices or UUIDs, in its order; CUDA stops at the first unknown entry,
    and so does this)."""
    env = os.environ if env is None else env
    gpus = query_nvidia_smi() if smi is None else smi
    if not gpus:
        return []
    wanted = env.get("CUDA_VISIBLE_DEVICES")
    if wanted is None:
        return list(gpus)
    out = []
    for token in (t.strip() for t in wanted.split(",")):
        match = [
            g
            for g in gpus
            if (token.isdigit() and g.index == int(token)) or (token.startswith("GPU-") and g.uuid.startswith(token))
        ]
        if not match or match[0] in out:
            break
        out.append(match[0])
    return out


def local_gpu_limit(global_resources, remote: bool) -> int:
    """How many GPU jobs a local Snakemake run may start at once: the GPUs this machine shows,
    unless `--resources gpu=N` set it (0 = leave the limit alone; also inside a cluster job)."""
    if remote or "gpu" in global_resources:
        return 0
    return len(visible_gpus())


def lock_dir() -> Path:
    return Path(os.environ.get(LOCK_DIR_ENV) or Path(tempfile.gettempdir()) / "robinterp-gpu-slots")


def _open_lock(directory: Path, gpu: Gpu) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    try:
        os.chmod(directory, 0o1777)  # every user of the machine shares the slots
    except PermissionError:
        pass  # made by another user, who set it
    path = directory / f"{gpu.uuid}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        os.fchmod(fd, 0o666)
    except PermissionError:
        pass
    return fd


def _holder(fd: int) -> str:
    try:
        return os.pread(fd, 200, 0).decode(errors="replace").strip() or "another job"
    except OSError:
        return "another job"


def acquire(
    count: int,
    gpus: list[Gpu],
    directory: Path | None = None,
    poll: float = 1.0,
    log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True),
    sleep: Callable[[float], None] = time.sleep,
) -> list[tuple[Gpu, int]]:
    """Take `count` of `gpus` (all at once), waiting while too few are free; returns (gpu, locked fd)."""
    if count > len(gpus):
        shown = ", ".join(f"{g.index}" for g in gpus) or "none"
        raise RobinterpError(
            f"this job asks for {count} GPUs but only {len(gpus)} are visible (GPU {shown}); "
            "lower the rule's gpu resource (--set-resources RULE:gpu=N) or widen CUDA_VISIBLE_DEVICES"
        )
    directory = directory or lock_dir()
    waited = False
    while True:
        held, busy = [], []
        for gpu in gpus:
            fd = _open_lock(directory, gpu)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
                busy.append(f"GPU {gpu.index}: {_holder(fd)}")
                os.close(fd)
                continue
            held.append((gpu, fd))
            if len(held) == count:
                for _, f in held:
                    os.ftruncate(f, 0)
                    os.pwrite(f, f"pid {os.getpid()} on {os.uname().nodename}\n".encode(), 0)
                return held
        for _, fd in held:  # all or nothing: never sit on some GPUs while waiting for more
            os.close(fd)
        if not waited:
            log(f"gpus: waiting for {count} free GPU(s) of {len(gpus)}; taken: {'; '.join(busy)}")
            waited = True
        sleep(poll)


def _steps_aside(count: int, env: dict) -> str | None:
    """Why the launcher runs the command without taking a slot, or None."""
    if count == 0:
        return "a CPU job"
    if env.get(SWITCH_ENV, "").lower() in ("off", "0", "false", "no"):
        return f"{SWITCH_ENV}={env[SWITCH_ENV]}"
    if env.get("SLURM_JOB_ID"):
        return "SLURM assigned this job's GPUs"
    return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    usage = "usage: python -m robinterp.gpus COUNT -- COMMAND [ARG ...]"
    if len(argv) < 2 or not argv[0].isdigit():
        print(f"error: {usage}", file=sys.stderr)
        return 2
    count, command = int(argv[0]), argv[1:]
    if command[0] == "--":
        command = command[1:]
    if not command:
        print(f"error: {usage}", file=sys.stderr)
        return 2
    env = dict(os.environ)
    reason = _steps_aside(count, env)
    gpus = [] if reason else visible_gpus(env)
    if not reason and not gpus:
        reason = "no GPU visible"
    if reason is None:
        try:
            held = acquire(count, gpus)
        except RobinterpError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        for _, fd in held:
            os.set_inheritable(fd, True)  # the command holds the lock until it ends
        env["CUDA_VISIBLE_DEVICES"] = ",".join(g.uuid for g, _ in held)
        print(
            "gpus: this job holds " + ", ".join(f"GPU {g.index} ({g.name}, {g.uuid})" for g, _ in held),
            file=sys.stderr,
            flush=True,
        )
    try:
        os.execvpe(command[0], command, env)
    except OSError as e:
        print(f"error: cannot start {command[0]}: {e.strerror}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main())
