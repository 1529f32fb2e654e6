"""Drop a folder from a wheel (and from its RECORD), in place.

    python scripts/slim_wheel.py .whl/pyautoattack-0.2.0-py3-none-any.whl pyautoattack/examples/

pyautoattack's wheel carries 45 MB of example model files that robinterp never reads; without
them the wheels an offline GPU machine needs (`make gpu-wheels`) fit in one small transfer.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path


def slim(wheel: Path, folder: str) -> int:
    tmp = wheel.with_suffix(".tmp")
    dropped = 0
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            if item.filename.startswith(folder):
                dropped += 1
                continue
            data = src.read(item)
            if item.filename.endswith(".dist-info/RECORD"):
                data = b"".join(line for line in data.splitlines(keepends=True) if not line.startswith(folder.encode()))
            dst.writestr(item, data)
    tmp.replace(wheel)
    return dropped


if __name__ == "__main__":
    wheel, folder = Path(sys.argv[1]), sys.argv[2]
    print(f"{wheel.name}: dropped {slim(wheel, folder)} file(s) under {folder}")
