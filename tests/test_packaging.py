"""robinterp as a package: a wheel built from the repository, installed in a fresh virtual
environment outside the checkout, runs its verbs (the schema ships inside it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_a_wheel_outside_the_checkout_runs_its_verbs(tmp_path, digits_dir):
    import shutil

    source = tmp_path / "source"  # what the repository ships, built away from the checkout (no build/ in it)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    wheels = tmp_path / "dist"
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheels),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = wheels.glob("robinterp-*.whl")
    env_dir = tmp_path / "env"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    # the third-party packages come from this environment's site-packages (a path line, so its
    # editable robinterp, installed through a .pth hook, is not seen); robinterp from the wheel
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", site, str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr[-2000:]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    run = lambda *args: subprocess.run(
        [str(python), "-m", "robinterp", *map(str, args)],
        cwd=outside,
        env=env,  # noqa: E731
        capture_output=True,
        text=True,
        timeout=300,
    )
    where = subprocess.run(
        [str(python), "-c", "import robinterp; print(robinterp.__file__)"],
        cwd=outside,
        env=env,
        capture_output=True,
        text=True,
    ).stdout
    assert where.startswith(site), where  # the wheel's copy, not the checkout's
    helped = run("ig", "--help")
    assert helped.returncode == 0 and "analyses.ig" in helped.stdout, helped.stderr
    done = run(
        "prepare-data",
        "--settings",
        json.dumps({"source": {"kind": "digits", "image_size": 8}}),
        "--out-dir",
        outside / "data",
    )
    assert done.returncode == 0, done.stderr
    trained = run(
        "train",
        "--train",
        outside / "data/train",
        "--val",
        outside / "data/val",
        "--settings",
        json.dumps({"model": {"width": 0.0625}, "train": {"epochs": 1}, "device": "cpu"}),
        "--out",
        outside / "m.pt",
        "--log-csv",
        outside / "log.csv",
        "--state-dir",
        outside / "state",
    )
    assert trained.returncode == 0, trained.stderr
    ig = run(
        "ig",
        "--checkpoint",
        outside / "m.pt",
        "--data",
        outside / "data/test",
        "--set",
        "analyses.ig.num_images=2",
        "--set",
        "analyses.ig.steps=4",
        "--set",
        "analyses.ig.trials=1",
        "--set",
        "device=cpu",
        "--out",
        outside / "ig.npz",
        "--meta",
        outside / "ig.json",
    )
    assert ig.returncode == 0, ig.stderr
    assert json.loads((outside / "ig.json").read_text())["settings"]["steps"] == 4
