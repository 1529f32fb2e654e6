"""The metrics rules are wired to the analyses' output paths: a dry run of the demo config over
placeholder analyses outputs plans every metric job once per variant of the eps ladder."""

import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_demo_dry_run_plans_every_metric_job_per_variant(tmp_path):
    demo = yaml.safe_load((ROOT / "workflow/configs/demo.yaml").read_text())
    names = [v["name"] for v in demo["datasets"]["digits"]["variants"]]
    assert len(names) >= 3  # a ladder, not two points
    d = tmp_path / "digits"
    for v in names:  # what the analyses stage writes
        for rel in (
            "class_generation/{v}/images.npy",
            "inversion/{v}/targets.npy",
            "inversion/{v}/sources.npy",
            "inversion/{v}/inverted.npy",
            "ig/{v}/attributions.npz",
            "shap/{v}/attributions.npz",
        ):
            path = d / rel.format(v=v)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-n",
            "--cores",
            "1",
            "--configfile",
            "workflow/configs/demo.yaml",
            "--config",
            f"results={tmp_path}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", res.stdout, flags=re.M))
    for rule in ("fid_class_generation", "inversion_distance", "interpretability_metrics", "parameter_randomisation"):
        assert int(counts[rule]) == len(names), (rule, counts)
    for rule in (
        "fid_real_baseline",
        "fid_table",
        "inversion_table",
        "interpretability_table",
        "robustness_curve",
        "randomisation_figure",
        "summary",
    ):
        assert int(counts[rule]) == 1, (rule, counts)
    assert int(counts["inception_features"]) == 2  # test and train, computed once, shared by every FID
