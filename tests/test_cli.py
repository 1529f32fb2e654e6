"""Every core verb writes exactly its declared outputs; bad input exits 2 with one clear line."""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "robinterp", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_core_verbs_write_exactly_their_outputs(tmp_path):
    r = run(
        "prepare-data",
        "--settings",
        '{"source": {"kind": "digits", "image_size": 8}}',
        "--out-dir",
        "data",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert files(tmp_path) == {
        f"data/{s}/{f}"
        for s in ("train", "val", "test")
        for f in ("images.npy", "labels.npy", "classes.json", "manifest.json")
    }
    before = files(tmp_path)
    cfg = {"model": {"width": 0.0625}, "train": {"epochs": 1, "batch_size": 256}, "device": "cpu"}
    r = run(
        "train",
        "--train",
        "data/train",
        "--val",
        "data/val",
        "--settings",
        json.dumps(cfg),
        "--out",
        "m/model.pt",
        "--log-csv",
        "m/log.csv",
        "--state-dir",
        "st",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert files(tmp_path) - before == {"m/model.pt", "m/log.csv", "st/state.pt", "st/best_model.pt"}
    before = files(tmp_path)
    attack = {"norm": "l2", "eps": 0.5, "step_size": 0.2, "steps": 2}
    (tmp_path / "eval.yaml").write_text(f"eval_attack: {json.dumps(attack)}\ndevice: cpu\n")  # a YAML file ...
    r = run(
        "evaluate",
        "--checkpoint",
        "m/model.pt",
        "--data",
        "data/test",
        "--settings",
        "eval.yaml",
        "--set",
        "evaluation.max_images=50",
        "--variant",
        "s",
        "--out",
        "e/acc.json",
        cwd=tmp_path,
    )  # ... and a flag
    assert r.returncode == 0, r.stderr
    assert files(tmp_path) - before == {"e/acc.json", "eval.yaml"}
    acc = json.loads((tmp_path / "e/acc.json").read_text())
    assert acc["n"] == 50 and 0 <= acc["adv_acc"] <= acc["clean_acc"] <= 1
    assert acc["provenance"]["git"]["commit"] and acc["data_sha256"]
    before = files(tmp_path)
    r = run(
        "accuracy-table",
        "--inputs",
        "e/acc.json",
        "--settings",
        '{"reference": {"s": {"clean_acc": 93.2}}}',
        "--out-csv",
        "t/a.csv",
        "--out-md",
        "t/a.md",
        "--out-notes",
        "t/a.notes.json",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert files(tmp_path) - before == {"t/a.csv", "t/a.md", "t/a.notes.json"}
    assert "93.2" in (tmp_path / "t/a.md").read_text()


def test_bad_input_exits_2_with_a_clear_message(tmp_path):
    r = run("evaluate", "--checkpoint", "missing.pt", "--data", "nowhere", "--out", "x.json", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == "error: missing.pt: checkpoint not found; train it first (rule train)"
    assert "Traceback" not in r.stderr
    train = ["train", "--train", "a", "--val", "b", "--out", "m.pt", "--log-csv", "l", "--state-dir", "s"]
    r = run(*train, "--settings", "{bad", cwd=tmp_path)
    assert r.returncode == 2 and "--settings: not valid JSON" in r.stderr
    r = run(*train, "--settings", '{"train": {"lrr": 0.1}, "mdoel": {}}', cwd=tmp_path)
    assert (
        r.returncode == 2
        and "unknown section(s) ['mdoel']" in r.stderr
        and "settings.train: unknown key(s) ['lrr']" in r.stderr
    )
    assert not any(tmp_path.iterdir())


def test_every_flag_has_help_and_verbs_are_listed_by_stage():
    from robinterp.cli import STAGES, build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = [
        f"{name} {a.option_strings[0]}"
        for name, p in sub.choices.items()
        for a in p._actions
        if a.option_strings and not a.help
    ]
    assert not missing, missing
    assert list(sub.choices) == [v for verbs in STAGES.values() for v in verbs]  # pipeline order
    stages = parser.format_help().split("verbs by workflow stage")[1]
    assert stages.index("  data ") < stages.index("  train ") < stages.index("  fid ") < stages.index("  summary ")


def test_each_rule_finds_its_verb_in_one_hop():
    """Stage X: its rules are workflow/rules/X.smk, the verbs they call live in commands/X.py and
    cli.STAGES lists exactly those verbs under X."""
    import re

    from robinterp.cli import STAGES, VERBS, build_parser

    build_parser()
    rules = Path(__file__).resolve().parents[1] / "workflow" / "rules"
    called = {}
    for smk in sorted(rules.glob("*.smk")):
        verbs = re.findall(r"-m robinterp ([a-z-]+)", smk.read_text())
        if verbs:
            called[smk.stem] = set(verbs)
    assert set(called) == set(STAGES), "every stage with rules has a STAGES entry and a commands module"
    for stage, verbs in called.items():
        assert verbs <= set(STAGES[stage]), (stage, verbs - set(STAGES[stage]))
        for name in STAGES[stage]:
            assert VERBS[name][0].__module__ == f"robinterp.commands.{stage}", (name, VERBS[name][0].__module__)
    assert {v for vs in STAGES.values() for v in vs} == set(VERBS)


def test_a_full_disk_is_one_line_naming_the_path(tmp_path, monkeypatch, capsys):
    """numpy said "137472 requested and 57216 written", torch "inline_container.cc ... unexpected pos"."""
    import errno
    import shutil
    from collections import namedtuple

    import numpy as np
    import pytest
    import torch

    from robinterp import storage
    from robinterp.cli import main
    from robinterp.errors import RobinterpError

    def fails(error):
        def write(*args, **kwargs):
            raise error

        return write

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10 << 30, 10 << 30, 4096))  # 4 kB free
    monkeypatch.setattr(np, "save", fails(OSError("137472 requested and 57216 written")))
    with pytest.raises(RobinterpError, match=r"no space left on .*out/images.npy \(the disk or your quota is full\)"):
        storage.save_npy(tmp_path / "out" / "images.npy", np.zeros(3))
    monkeypatch.setattr(torch, "save", fails(RuntimeError("[enforce fail at inline_container.cc:664] unexpected pos")))
    model = tmp_path / "model.pt"
    with pytest.raises(RobinterpError, match=r"no space left on .*model.pt"), storage.atomic_path(model) as tmp:
        torch.save({}, tmp)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and not any((tmp_path / "out").iterdir())

    import robinterp.sources

    staging = tmp_path / "data" / ".staging" / "train.npy"  # a write outside the atomic helpers
    monkeypatch.setattr(robinterp.sources, "write_source", fails(OSError(errno.ENOSPC, "No space left", str(staging))))
    assert (
        main(["prepare-data", "--settings", '{"source": {"kind": "digits"}}', "--out-dir", str(tmp_path / "data")]) == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("error: no space left on ") and "staging/train.npy" in err and err.count("\n") == 1


def test_numbers_below_the_schema_minimum_and_broken_inputs_are_one_line(tmp_path, capsys):
    """`--max-images -5` wrote "n": -5; `--batch-size 0` raised ValueError; accuracy-table on {} a KeyError;
    inversion-distance with a missing input a FileNotFoundError."""
    from robinterp.cli import main

    base = ["evaluate", "--checkpoint", "m.pt", "--data", "d", "--out", str(tmp_path / "a.json")]
    for key, value in (("evaluation.max_images", "-5"), ("evaluation.batch_size", "0")):
        assert main(base + ["--set", f"{key}={value}"]) == 2
        err = capsys.readouterr().err
        assert err == f"error: invalid settings:\n  settings.{key}: {value} is less than the minimum of 1\n", err
    (tmp_path / "empty.json").write_text("{}")
    assert (
        main(
            [
                "accuracy-table",
                "--inputs",
                str(tmp_path / "empty.json"),
                "--out-csv",
                str(tmp_path / "t.csv"),
                "--out-md",
                str(tmp_path / "t.md"),
                "--out-notes",
                str(tmp_path / "t.notes.json"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "empty.json: no 'variant', 'n', 'clean_acc', 'adv_acc' in it" in err and err.count("\n") == 1
    assert (
        main(
            [
                "inversion-distance",
                "--targets",
                str(tmp_path / "t.npy"),
                "--inverted",
                str(tmp_path / "i.npy"),
                "--out",
                str(tmp_path / "d.json"),
            ]
        )
        == 2
    )
    assert capsys.readouterr().err == f"error: {tmp_path / 't.npy'}: file not found; run the rule that makes it first\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.json"]
