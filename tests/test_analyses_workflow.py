"""End to end on the tiny config: every figure is made; then dry runs after config changes show
that a plot-only change reruns only plot jobs, and a method change only that method and its
plots (never training)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
FIGURES = ["ig_compare", "ig_grid", "shap_compare", "shap_grid", "class_generation", "inversion", "feature_vis"]


def _snakemake(workdir, config, *args):
    cfg_path = workdir / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        *SNAKEMAKE,
        "--snakefile",
        str(ROOT / "Snakefile"),
        "-d",
        str(workdir),
        "--configfile",
        str(cfg_path),
        "--cores",
        "2",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=workdir)


def _planned_rules(workdir, config) -> set[str]:
    """Rule names a dry run would execute (from Snakemake's job-stats table)."""
    res = _snakemake(workdir, config, "-n")
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout + res.stderr
    if "Nothing to be done" in out:
        return set()
    table = out.split("Job stats:")[1].split("total")[0]
    return {m.group(1) for m in re.finditer(r"^(\w+)\s+\d+\s*$", table, re.M)}


@pytest.mark.slow
def test_tiny_dag_figures_and_config_change_reruns(tmp_path):
    config = yaml.safe_load((ROOT / "workflow" / "configs" / "tiny.yaml").read_text())
    config["results"] = str(tmp_path / "results")
    res = _snakemake(tmp_path, config)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    for name in FIGURES:
        for ext in ("png", "pdf"):
            assert (tmp_path / "results" / "digits" / "figures" / f"{name}.{ext}").stat().st_size > 0
    assert _planned_rules(tmp_path, config) == set()

    analyses = config["datasets"]["digits"]["analyses"]
    plots_changed = yaml.safe_load(yaml.safe_dump(config))
    plots_changed["datasets"]["digits"]["analyses"]["plots"] = {**analyses["plots"], "percentile": 95}
    planned = _planned_rules(tmp_path, plots_changed)
    assert planned and planned <= {
        "plot_attributions",
        "plot_class_generation",
        "plot_inversion",
        "plot_feature_vis",
        "all",
    }, planned

    ig_changed = yaml.safe_load(yaml.safe_dump(config))
    ig_changed["datasets"]["digits"]["analyses"]["ig"] = {**analyses["ig"], "steps": analyses["ig"]["steps"] + 1}
    # IG and what reads IG (its figures; the attribution metrics and the randomisation check, which
    # explains with IG's settings, their table and figure, the curve, the summary)
    planned = _planned_rules(tmp_path, ig_changed)
    assert (
        {"ig", "plot_attributions"}
        <= planned
        <= {
            "ig",
            "plot_attributions",
            "interpretability_metrics",
            "parameter_randomisation",
            "randomisation_figure",
            "interpretability_table",
            "robustness_curve",
            "summary",
            "all",
        }
    ), planned

    inv_changed = yaml.safe_load(yaml.safe_dump(config))
    inv_changed["datasets"]["digits"]["analyses"]["inversion"] = {**analyses["inversion"], "steps": 11}
    planned = _planned_rules(tmp_path, inv_changed)
    assert (
        {"inversion", "plot_inversion"}
        <= planned
        <= {
            "inversion",
            "plot_inversion",
            "inversion_distance",
            "inversion_table",
            "robustness_curve",
            "summary",
            "all",
        }
    ), planned
    assert "train" not in planned and "prepare_data" not in planned
