"""Resumable and data-parallel training on CPU.

What "matches" means for 2 ranks vs 1 process: both see the same global batches (one shared
permutation and augmentation, each rank takes half of every batch), BatchNorm normalises over
the global batch (`sync_batchnorm`, GlobalBatchNorm2d on gloo), and the loss is scaled so DDP's
gradient average equals the global-batch mean. The updates are then the same up to float
summation order. Small nets at a high learning rate are chaotic (a 1e-6 change in the weights
grows to 1e-1 within 10 SGD steps here), so the comparison uses few steps at a low rate, where
float noise stays ~1e-7, and a tolerance of 1e-5.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from robinterp import train as train_module
from robinterp.data import load_split
from robinterp.settings import schema
from robinterp.sources import prepare
from robinterp.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
CONFIG = {
    "arch": "resnet18_cifar",
    "width": 0.0625,
    "epochs": 2,
    "batch_size": 512,
    "lr": 0.01,
    "device": "cpu",
    "augment": {"crop_padding": 1, "flip": True},
    "attack": {"norm": "l2", "eps": 1.0, "step_size": 0.25, "steps": 2},
    "selection_attack": {"norm": "l2", "eps": 1.0, "step_size": 0.25, "steps": 2},
    "selection_max_images": 64,
}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits")
    prepare({"kind": "digits", "image_size": 8, "val_fraction": 0.1, "test_fraction": 0.2, "seed": 0}, out)
    return out


class Killed(Exception):
    pass


def run_in_process(data, out: Path, kill_after_epoch: int | None = None, monkeypatch=None):
    """Train CONFIG in this process; with kill_after_epoch, die right after that epoch's state is saved."""
    if kill_after_epoch is not None:
        real = train_module._write_log

        def write_then_die(path, rows):
            real(path, rows)
            if len(rows) == kill_after_epoch:
                raise Killed

        monkeypatch.setattr(train_module, "_write_log", write_then_die)
    try:
        train(
            TrainConfig.from_dict(CONFIG),
            load_split(data / "train"),
            load_split(data / "val"),
            out / "model.pt",
            out / "state",
            out / "log.csv",
        )
    except Killed:
        monkeypatch.undo()
        return False
    return True


def settings(cfg: dict) -> dict:
    """The train verb's settings object from CONFIG-style keys (each key to its section)."""
    from test_train import settings as train_settings

    return train_settings(cfg)


def run_torchrun(data, out: Path) -> str:
    import json

    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "robinterp",
        "train",
        "--train",
        str(data / "train"),
        "--val",
        str(data / "val"),
        "--settings",
        json.dumps(settings(CONFIG)),
        "--out",
        str(out / "model.pt"),
        "--log-csv",
        str(out / "log.csv"),
        "--state-dir",
        str(out / "state"),
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def weights(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def log_rows(path: Path) -> list[dict]:
    head, *rows = path.read_text().splitlines()
    return [dict(zip(head.split(","), r.split(","))) for r in rows]


@pytest.fixture(scope="module")
def single(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    assert run_in_process(data, out)
    return out


def test_schema_train_keys_are_train_config_fields():
    train_block = {k: v["default"] for k, v in schema()["$defs"]["train"]["properties"].items()}
    cfg = TrainConfig.from_dict({"arch": "resnet18_cifar", "width": 1.0, **train_block})
    assert cfg.fused and not cfg.compile and cfg.sync_batchnorm  # the documented defaults


def test_killed_run_resumes_to_identical_weights(data, single, tmp_path, monkeypatch):
    assert not run_in_process(data, tmp_path, kill_after_epoch=1, monkeypatch=monkeypatch)
    assert not (tmp_path / "model.pt").exists()
    assert run_in_process(data, tmp_path)
    a, b = weights(single / "model.pt"), weights(tmp_path / "model.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert log_rows(single / "log.csv") == [
        {**r, "seconds": s["seconds"]} for r, s in zip(log_rows(tmp_path / "log.csv"), log_rows(single / "log.csv"))
    ]


def assert_same_run(single: Path, ddp: Path):
    a, b = weights(single / "model.pt"), weights(ddp / "model.pt")
    assert a.keys() == b.keys()  # SyncBatchNorm / GlobalBatchNorm2d keep BatchNorm2d's keys
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-5, msg=k)
    for r1, r2 in zip(log_rows(single / "log.csv"), log_rows(ddp / "log.csv"), strict=True):
        for col in ("val_clean_acc", "val_adv_acc"):
            assert r1[col] == r2[col], col  # counts summed over ranks: exact
        for col in ("train_clean_acc", "train_adv_acc"):
            # counts summed over ranks (~1,260 samples); the weights differ by float summation order
            # (GlobalBatchNorm), which may flip the prediction of a sample at a near-tie
            assert abs(float(r1[col]) - float(r2[col])) <= 2 / 1000, col
        # L2 PGD normalises each sample's gradient; where it is ~0 its direction is float noise,
        # so the adversarial loss of a resumed run moves in the 5th digit (weights do not)
        assert float(r1["train_loss"]) == pytest.approx(float(r2["train_loss"]), rel=1e-4)


@pytest.mark.slow
def test_two_ranks_match_one_process(data, single, tmp_path):
    stdout = run_torchrun(data, tmp_path)
    assert_same_run(single, tmp_path)
    assert stdout.count("epoch   2/2") == 1  # rank 0 alone prints and writes
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == ["best_model.pt", "state.pt"]


@pytest.mark.slow
def test_two_ranks_resume_a_killed_run(data, single, tmp_path, monkeypatch):
    assert not run_in_process(data, tmp_path, kill_after_epoch=1, monkeypatch=monkeypatch)
    stdout = run_torchrun(data, tmp_path)
    assert "resumed at epoch 1/2" in stdout
    assert_same_run(single, tmp_path)
    shutil.rmtree(tmp_path / "state")
