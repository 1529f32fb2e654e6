"""The real Snakemake DAG on the tiny config, start to finish, plus lint and partial reruns."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def snakemake(*args, timeout=900):
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    cfg = yaml.safe_load((ROOT / "workflow/configs/tiny.yaml").read_text())
    cfg["results"] = str(out / "results")
    path = out / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = snakemake("--cores", "2", "--configfile", str(path))
    assert r.returncode == 0, r.stderr[-4000:]
    return out / "results", path


@pytest.mark.slow
def test_whole_dag_runs_on_the_tiny_config(tiny_run):
    results, _ = tiny_run
    for v in ("standard", "robust_l2"):
        assert (results / f"digits/models/{v}/model.pt").is_file()
        assert (results / f"digits/models/{v}/train_log.csv").is_file()
        acc = json.loads((results / f"digits/eval/{v}/accuracy.json").read_text())
        assert acc["variant"] == v and 0 <= acc["adv_acc"] <= acc["clean_acc"]
        assert (results / f"logs/train/digits/{v}.log").is_file()
    table = (results / "digits/tables/accuracy.csv").read_text()
    assert table.startswith("variant,n,clean_acc,adv_acc") and "robust_l2" in table
    import pandas as pd

    fid = pd.read_csv(results / "digits/tables/fid.csv")  # every row at one n, each interval around its FID
    assert len(fid[["n_real", "n_fake"]].drop_duplicates()) == 1 and set(fid["variant"]) >= {"real", "standard"}
    assert ((fid["ci_low"] <= fid["fid"]) & (fid["fid"] <= fid["ci_high"])).all()
    interp = pd.read_csv(results / "digits/tables/interpretability.csv")
    assert {"randomisation_spearman", "faithfulness_correlation", "local_lipschitz"} <= set(interp["metric"])
    assert ((interp["ci_low"] <= interp["mean"]) & (interp["mean"] <= interp["ci_high"])).all()
    scored = interp[interp["metric"] == "deletion_auc"]
    assert set(zip(scored["method"], scored["output"])) == {("ig", "probability"), ("shap", "logit")}
    inv = pd.read_csv(results / "digits/tables/inversion_distance.csv")
    assert inv[["image_distance", "noise_distance"]].notna().all().all()  # per start kind, from the meta
    assert (results / "digits/figures/parameter_randomisation.png").is_file()


@pytest.mark.slow
def test_nothing_reruns_and_eval_change_does_not_retrain(tiny_run, tmp_path):
    results, path = tiny_run
    r = snakemake("-n", "--cores", "1", "--configfile", str(path))
    assert r.returncode == 0 and "Nothing to be done" in r.stdout + r.stderr
    cfg = yaml.safe_load(path.read_text())
    cfg["datasets"]["digits"]["eval_attack"]["eps"] = 0.5
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(cfg))
    r = snakemake("-n", "--cores", "1", "--configfile", str(changed))
    assert r.returncode == 0, r.stderr
    jobs = r.stdout.split("Job stats:")[1].split("total")[0]
    assert "evaluate" in jobs and "accuracy_table" in jobs
    assert "train" not in jobs and "prepare_data" not in jobs


EXECUTION_ONLY_CHANGES = {  # how jobs run, never what they compute: a finished run replans nothing
    "device": "auto",
    "threads": {"train": 2, "analysis": 2},
    "train": {"eval_batch_size": 7, "channels_last": True, "fused": False, "compile": True},
    "evaluation": {"batch_size": 9},
    "analyses": {m: {"batch_size": 3} for m in ("ig", "shap", "class_generation", "inversion", "feature_vis")},
    "metrics": {"fid": {"batch_size": 5}, "inversion": {"batch_size": 5}},
}


@pytest.mark.slow
def test_execution_only_settings_replan_no_job(tiny_run, tmp_path):
    from robinterp.config import deep_merge

    results, path = tiny_run
    cfg = yaml.safe_load(path.read_text())
    change = dict(EXECUTION_ONLY_CHANGES)
    cfg["device"], cfg["threads"] = change.pop("device"), change.pop("threads")
    cfg["datasets"]["digits"] = deep_merge(cfg["datasets"]["digits"], change)
    moved = tmp_path / "moved.yaml"
    moved.write_text(yaml.safe_dump(cfg))
    r = snakemake("-n", "--cores", "1", "--configfile", str(moved))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Nothing to be done" in r.stdout + r.stderr, r.stdout[-3000:]


@pytest.mark.slow
def test_lint_is_clean():
    r = snakemake("--lint", "--configfile", "workflow/configs/demo.yaml", timeout=120)
    assert r.returncode == 0 and "Congratulations" in r.stdout + r.stderr, r.stdout[-3000:]


@pytest.mark.slow
def test_jobs_import_this_checkouts_src_not_an_installed_copy(tmp_path):
    """Under --use-conda nothing of ours is installed and PYTHONPATH is stripped: each rule puts its
    checkout's src/ on the path itself. A copy of the checkout must run its own code."""
    copy = tmp_path / "checkout"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".venv", "results", ".snakemake", ".git", "*.pyc"))
    cfg = yaml.safe_load((ROOT / "workflow/configs/tiny.yaml").read_text())
    (copy / "c.yaml").write_text(yaml.safe_dump(cfg))
    target = "results/tiny/digits/data/test/manifest.json"
    r = subprocess.run(
        [sys.executable, "-m", "snakemake", target, "--cores", "1", "--configfile", "c.yaml"],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in __import__("os").environ.items() if k != "PYTHONPATH"},
    )
    assert r.returncode == 0, r.stderr[-3000:]
    manifest = json.loads((copy / target).read_text())
    assert manifest["provenance"]["code"] == str((copy / "src" / "robinterp").resolve())


@pytest.mark.slow
def test_the_documented_rerun_of_one_figure_reruns_only_that_figure(tiny_run):
    results, path = tiny_run
    fig = str(results / "digits/figures/ig_compare.png")
    r = snakemake("-n", "--cores", "1", "--configfile", str(path), "--forcerun", "plot_attributions", "--", fig)
    assert r.returncode == 0, r.stderr[-2000:]
    stats = r.stdout.split("Job stats:")[1].split("Reasons:")[0]
    assert [line.split() for line in stats.splitlines() if line.split()[:1] in (["plot_attributions"], ["total"])] == [
        ["plot_attributions", "1"],
        ["total", "1"],
    ]
