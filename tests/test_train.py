"""Training: a killed run resumes to the same weights; selection, logs and determinism."""

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from robinterp.checkpoints import load_model, read_checkpoint
from robinterp.errors import RobinterpError

ROOT = Path(__file__).resolve().parents[1]
CONFIG = {
    "arch": "resnet18_cifar",
    "width": 0.0625,
    "epochs": 6,
    "batch_size": 128,
    "lr": 0.05,
    "augment": {"crop_padding": 1, "flip": True},
    "attack": {"norm": "l2", "eps": 1.0, "step_size": 0.25, "steps": 3, "random_start": True},
    "selection_attack": {"norm": "l2", "eps": 1.0, "step_size": 0.25, "steps": 2},
    "selection_max_images": 64,
    "eval_batch_size": 256,
    "seed": 7,
    "device": "cpu",
}


def settings(cfg: dict) -> dict:
    """The train verb's settings object from CONFIG-style keys (each key to its section)."""
    own = {"attack": "variant.attack", "seed": "variant.seed", "device": "device"}
    out = {section: cfg[k] for k, section in own.items() if k in cfg}
    out["model"] = {k: cfg[k] for k in ("arch", "width", "mean", "std") if k in cfg}
    out["train"] = {k: v for k, v in cfg.items() if k not in own and k not in out["model"]}
    return out


def _cmd(digits_dir, out: Path, cfg=CONFIG):
    return [
        sys.executable,
        "-m",
        "robinterp",
        "train",
        "--train",
        str(digits_dir / "train"),
        "--val",
        str(digits_dir / "val"),
        "--settings",
        json.dumps(settings(cfg)),
        "--variant",
        "v",
        "--out",
        str(out / "model.pt"),
        "--log-csv",
        str(out / "train_log.csv"),
        "--state-dir",
        str(out / "state"),
    ]


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}


def _epoch_of(state: Path) -> int:
    try:
        return torch.load(state, map_location="cpu", weights_only=True)["epoch"]
    except Exception:
        return 0


@pytest.mark.slow
def test_killed_run_resumes_to_identical_weights(digits_dir, tmp_path):
    ref = subprocess.run(_cmd(digits_dir, tmp_path / "ref"), env=_env(), capture_output=True, text=True, timeout=300)
    assert ref.returncode == 0, ref.stderr

    proc = subprocess.Popen(
        _cmd(digits_dir, tmp_path / "run"), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    state = tmp_path / "run" / "state" / "state.pt"
    deadline = time.time() + 240
    while time.time() < deadline and _epoch_of(state) < 2 and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    killed_at = _epoch_of(state)
    assert 2 <= killed_at < CONFIG["epochs"], "the run must be killed mid-way"
    assert not (tmp_path / "run" / "model.pt").exists()

    resumed = subprocess.run(
        _cmd(digits_dir, tmp_path / "run"), env=_env(), capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed at epoch {killed_at}/{CONFIG['epochs']}" in resumed.stdout
    # the job log holds every epoch: the earlier ones replayed from the state, then the resume line
    untimed = lambda out: [line.rsplit(" ", 1)[0] for line in out.splitlines() if line.startswith(("epoch", "resumed"))]
    lines = untimed(resumed.stdout)
    assert lines[killed_at].startswith(f"resumed at epoch {killed_at}/")
    assert lines[:killed_at] + lines[killed_at + 1 :] == untimed(ref.stdout)
    a, b = read_checkpoint(tmp_path / "ref" / "model.pt"), read_checkpoint(tmp_path / "run" / "model.pt")
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    timeless = lambda m: {k: v for k, v in m.items() if k != "seconds"}
    assert a["epoch"] == b["epoch"] and timeless(a["metrics"]) == timeless(b["metrics"])
    rows = list(csv.DictReader(open(tmp_path / "run" / "train_log.csv")))
    assert [int(r["epoch"]) for r in rows] == list(range(1, CONFIG["epochs"] + 1))


def test_auto_selection_is_the_papers_for_each_kind_of_model():
    from robinterp.train import TrainConfig, selection_score

    robust, standard = TrainConfig.from_dict(CONFIG), TrainConfig.from_dict({**CONFIG, "attack": None})
    assert robust.selection_metric == standard.selection_metric == "auto"  # the schema's default
    assert robust.selection == "mean" and standard.selection == "clean"
    assert TrainConfig.from_dict({**CONFIG, "attack": None, "selection_metric": "mean"}).selection == "mean"
    assert TrainConfig.from_dict({**CONFIG, "selection_metric": "clean"}).selection == "clean"
    assert selection_score("mean", 0.9, 0.5) == 0.7 and selection_score("clean", 0.9, 0.5) == 0.9


def test_selection_logs_and_metadata(digits_dir, tmp_path):
    from robinterp.data import load_split
    from robinterp.train import TrainConfig, train

    cfg = TrainConfig.from_dict({**CONFIG, "epochs": 3, "attack": None})
    meta = train(
        cfg,
        load_split(digits_dir / "train"),
        load_split(digits_dir / "val"),
        tmp_path / "m.pt",
        tmp_path / "state",
        tmp_path / "log.csv",
        extra_meta={"variant": "s"},
    )
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert len(rows) == 3
    assert {
        "epoch",
        "lr",
        "train_loss",
        "train_clean_acc",
        "train_adv_acc",
        "val_clean_acc",
        "val_adv_acc",
        "val_score",
        "seconds",
    } <= set(rows[0])
    scores = [float(r["val_score"]) for r in rows]
    best = max(range(3), key=lambda i: scores[i]) + 1
    assert meta["epoch"] == best  # selected = best clean accuracy on validation (standard training, auto)
    assert all(r["val_score"] == r["val_clean_acc"] and r["val_adv_acc"] == "" for r in rows)  # no PGD spent
    model, m = load_model(tmp_path / "m.pt")
    assert m["data_sha256"]["train"] == load_split(digits_dir / "train").sha256
    assert m["config"]["epochs"] == 3 and "commit" in m["provenance"]["git"]
    assert m["provenance"]["variant"] == "s"
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])  # it learns


def _weights(path):
    return read_checkpoint(path)["model"]


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_changed_config_does_not_resume_stale_state(digits_dir, tmp_path):
    """A state saved under another lr is not resumed: the run equals a fresh run with the new lr."""
    from robinterp.data import load_split
    from robinterp.train import TrainConfig, train

    tr, va = load_split(digits_dir / "train"), load_split(digits_dir / "val")
    base = {**CONFIG, "epochs": 2, "attack": None, "selection_attack": None}
    train(TrainConfig.from_dict(base), tr, va, tmp_path / "a.pt", tmp_path / "state", tmp_path / "a.csv")
    changed = TrainConfig.from_dict({**base, "lr": 0.01})
    train(changed, tr, va, tmp_path / "b.pt", tmp_path / "state", tmp_path / "b.csv")
    train(changed, tr, va, tmp_path / "fresh.pt", tmp_path / "fresh_state", tmp_path / "fresh.csv")
    assert _same(_weights(tmp_path / "b.pt"), _weights(tmp_path / "fresh.pt"))
    assert not _same(_weights(tmp_path / "b.pt"), _weights(tmp_path / "a.pt"))


def test_changed_validation_split_does_not_resume_stale_state(digits_dir, tmp_path):
    """Selection reads the validation split: a state made with another one is not resumed."""
    from robinterp.data import load_split
    from robinterp.train import TrainConfig, train

    tr, va, te = (load_split(digits_dir / s) for s in ("train", "val", "test"))
    cfg = TrainConfig.from_dict({**CONFIG, "epochs": 2, "attack": None, "selection_attack": None})
    train(cfg, tr, va, tmp_path / "a.pt", tmp_path / "state", tmp_path / "a.csv")
    meta = train(cfg, tr, te, tmp_path / "b.pt", tmp_path / "state", tmp_path / "b.csv")
    fresh = train(cfg, tr, te, tmp_path / "c.pt", tmp_path / "fresh_state", tmp_path / "c.csv")
    timeless = lambda m: {k: v for k, v in m.items() if k != "seconds"}
    assert timeless(meta["metrics"]) == timeless(fresh["metrics"])  # validated on the new split
    assert meta["data_sha256"]["val"] == te.sha256


def test_execution_settings_resume_the_saved_state(digits_dir, tmp_path, capsys):
    """Device, validation batch size, channels_last, fused and compile only change how training
    runs: a finished run with other such settings is resumed, not redone."""
    from robinterp.data import load_split
    from robinterp.train import TrainConfig, train

    tr, va = load_split(digits_dir / "train"), load_split(digits_dir / "val")
    base = {**CONFIG, "epochs": 1, "selection_max_images": 32}
    train(TrainConfig.from_dict(base), tr, va, tmp_path / "a.pt", tmp_path / "state", tmp_path / "a.csv")
    capsys.readouterr()
    moved = {**base, "device": "auto", "eval_batch_size": 7, "channels_last": True, "fused": False}
    train(TrainConfig.from_dict(moved), tr, va, tmp_path / "b.pt", tmp_path / "state", tmp_path / "b.csv")
    assert "at epoch 1/1" in capsys.readouterr().out
    assert _same(_weights(tmp_path / "a.pt"), _weights(tmp_path / "b.pt"))


def test_training_is_deterministic_on_cpu(digits_dir, tmp_path):
    from robinterp.data import load_split
    from robinterp.train import TrainConfig, train

    tr, va = load_split(digits_dir / "train"), load_split(digits_dir / "val")
    cfg = TrainConfig.from_dict({**CONFIG, "epochs": 1, "selection_max_images": 32})
    for name in ("a", "b"):
        train(cfg, tr, va, tmp_path / f"{name}.pt", tmp_path / f"s{name}", tmp_path / f"{name}.csv")
    a, b = read_checkpoint(tmp_path / "a.pt")["model"], read_checkpoint(tmp_path / "b.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_non_finite_loss_stops_training_with_one_line(digits_dir, tmp_path, capsys):
    """`lr: 1e4` logged `loss nan` every epoch, exited 0 and saved a model evaluating to 10%."""
    from robinterp.cli import main

    cfg = {**CONFIG, "epochs": 3, "lr": 1e4, "attack": None, "selection_attack": None}
    rc = main(_cmd(digits_dir, tmp_path, cfg)[3:])
    err = capsys.readouterr().err
    assert rc == 2 and [x for x in err.splitlines() if not x.startswith("device: ")] == [err.splitlines()[-1]], err
    assert re.search(
        r"error: train: the loss is (nan|inf) at epoch 1, batch \d+ of \d+; stopped.* "
        r"a learning rate too high \(train.lr 10000.0",
        err,
    ), err
    assert not (tmp_path / "model.pt").exists()


def test_mean_and_std_need_one_value_per_channel(digits_dir, tmp_path):
    from robinterp.data import load_split, write_split
    from robinterp.train import TrainConfig, train

    gray = load_split(digits_dir / "train")
    write_split(tmp_path / "gray", gray.images[..., :1], gray.labels, gray.classes, {})  # 1-channel packed data
    with pytest.raises(
        RobinterpError,
        match=r"train config: model.mean \[.*\] has 3 value\(s\), the images of .*gray "
        r"have 1 channels",
    ):
        train(
            TrainConfig.from_dict({**CONFIG, "mean": [0.5] * 3, "std": [0.2] * 3}),
            load_split(tmp_path / "gray"),
            load_split(tmp_path / "gray"),
            tmp_path / "m.pt",
            tmp_path / "state",
            tmp_path / "log.csv",
        )
