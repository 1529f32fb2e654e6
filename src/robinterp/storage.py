"""How robinterp writes files: atomically, with hashes and provenance.

A job that is killed half-way never leaves a truncated output behind: everything is written
to a temporary file in the same folder and renamed into place. A write that fails on a full
disk says "no space left on <path>" in one line.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import hashlib
import json
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` if the block succeeds. A write
    that fails on a full disk says so (RobinterpError), whatever the writer's own words."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        _raise_if_full(e, path)
        raise
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual permissions
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:  # numpy: "N requested and M written"; torch: "unexpected pos"
        _raise_if_full(e, path)
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def _raise_if_full(e: Exception, path: Path) -> None:
    """Raise "no space left" when `e` came from a full disk (or quota): its errno says so, or the
    writer gave none (numpy, torch) and the folder has next to no free space."""
    from .errors import RobinterpError

    full = isinstance(e, OSError) and e.errno in DISK_FULL_ERRNOS
    if not full and getattr(e, "errno", None) is None:
        try:
            full = shutil.disk_usage(path.parent).free < (1 << 20)
        except OSError:
            pass
    if full:
        raise RobinterpError(no_space_message(path)) from None


def no_space_message(path) -> str:
    return f"no space left on {path} (the disk or your quota is full); free space there, or point results: elsewhere"


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode())


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(path: str | os.PathLike, needs: tuple[str, ...] = ()) -> Any:
    """A JSON file; with `needs`, an object holding those keys (a verb's result read by a table)."""
    from .errors import RobinterpError

    path = Path(path)
    if not path.is_file():
        raise RobinterpError(f"{path}: file not found")
    try:
        obj = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise RobinterpError(f"{path}: not valid JSON ({e}); delete it and rerun the rule that makes it") from None
    missing = [k for k in needs if not isinstance(obj, dict) or k not in obj]
    if missing:
        raise RobinterpError(
            f"{path}: no {', '.join(map(repr, missing))} in it; not the result this table reads: "
            "delete it and rerun the rule that makes it"
        )
    return obj


def load_npy(path: str | os.PathLike) -> np.ndarray:
    """A .npy array a verb reads; a missing or unreadable one is named."""
    from .errors import RobinterpError

    path = Path(path)
    if not path.is_file():
        raise RobinterpError(f"{path}: file not found; run the rule that makes it first")
    try:
        return np.load(path)
    except (ValueError, OSError, EOFError) as e:
        raise RobinterpError(
            f"{path}: not a readable .npy array ({e}); delete it and rerun the rule that makes it"
        ) from None


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


class _HashWriter:
    """A write-only file object that hashes what np.save writes (in 16 MiB chunks)."""

    def __init__(self):
        self.hash = hashlib.sha256()

    def write(self, data) -> int:
        self.hash.update(data)
        return len(data)


def sha256_array(array: np.ndarray) -> str:
    """sha256 of the array's .npy bytes, streamed: a memory-mapped array is never copied to RAM."""
    writer = _HashWriter()
    np.save(writer, np.ascontiguousarray(array))
    return writer.hash.hexdigest()


def git_state(repo: str | os.PathLike | None = None) -> dict:
    """Commit and dirty flag of the checkout robinterp runs from (None outside git)."""
    repo = Path(repo) if repo else Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = (
            subprocess.run(
                ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout.strip()
            != ""
        )
        return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def provenance(**extra: Any) -> dict:
    """What every output records about how it was made."""
    import torch

    from . import __version__

    return {
        "robinterp": __version__,
        "code": str(Path(__file__).resolve().parent),  # which checkout's src/ ran (PYTHONPATH wins)
        "git": git_state(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        **extra,
    }


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
