"""The demo's promise: on digits the standard model is accurate but collapses under attack,
and the robust L2 model keeps most of its accuracy (the paper's Table 1 pattern)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_accuracy_pattern(tmp_path):
    cfg = yaml.safe_load((ROOT / "workflow/configs/demo.yaml").read_text())
    cfg["results"] = str(tmp_path / "results")
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(cfg))
    table = tmp_path / "results/digits/tables/accuracy.csv"
    r = subprocess.run(
        [sys.executable, "-m", "snakemake", str(table), "--cores", "2", "--configfile", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert r.returncode == 0, r.stderr[-4000:]
    acc = {
        v: json.loads((tmp_path / f"results/digits/eval/{v}/accuracy.json").read_text())
        for v in ("standard", "robust_l2")
    }
    assert acc["standard"]["clean_acc"] >= 0.90
    assert acc["robust_l2"]["adv_acc"] >= acc["standard"]["adv_acc"] + 0.30
    for a in acc.values():  # AutoAttack, on the seeded subset, never above PGD on the same images
        assert a["autoattack_n"] == cfg["datasets"]["digits"]["evaluation"]["autoattack_max_images"]
        assert a["autoattack_acc"] <= a["autoattack_pgd_acc"]
