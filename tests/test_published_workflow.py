"""Imported variants in the workflow: config checks, the DAG mixing trained and imported variants,
and the whole DAG run on digits with a MadryLab-format model written by robustness itself."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from publishers import import_publishers, perturb

from robinterp.config import check_config, imported_variants
from robinterp.errors import RobinterpError

ROOT = Path(__file__).resolve().parents[1]


def snakemake(*args, timeout=900):
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def madrylab_tiny(path: Path) -> Path:
    """robustness's own CIFAR ResNet18 at width 1/16 (its `wm`), saved the way its train.py saves."""
    import_publishers()
    import dill
    from robustness import datasets
    from robustness.attacker import AttackerModel
    from robustness.cifar_models.resnet import BasicBlock, ResNet

    ds = datasets.CIFAR("/unused")
    model = AttackerModel(perturb(ResNet(BasicBlock, [2, 2, 2, 2], num_classes=10, wm=0.0625)), ds)
    torch.save({"model": torch.nn.DataParallel(model).state_dict(), "epoch": 1}, path, pickle_module=dill)
    return path


def tiny_config(tmp_path, variants) -> Path:
    cfg = yaml.safe_load((ROOT / "workflow/configs/tiny.yaml").read_text())
    cfg["results"] = str(tmp_path / "results")
    cfg["datasets"]["digits"]["variants"] = variants
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def imported(path, **extra):
    return {
        "name": "madry",
        "attack": {"norm": "l2", "eps": 0.5},
        "checkpoint": {"format": "madrylab", "arch": "resnet18_cifar", "path": str(path), "width": 0.0625, **extra},
    }


def test_config_checks_of_imported_variants():
    base = {"source": {"kind": "digits"}}
    ok = {"datasets": {"d": {**base, "variants": [{"name": "std"}, imported("f.pt")]}}}
    check_config(ok)
    assert set(imported_variants(ok)) == {"madry"}
    bad = {"datasets": {"d": {**base, "variants": [{**imported("f.pt"), "train": {"epochs": 3}}]}}}
    with pytest.raises(RobinterpError, match=r"variants\[madry\]: \['train'\] set on an imported variant"):
        imported_variants(bad)
    clash = {
        "datasets": {"a": {**base, "variants": [imported("f.pt")]}, "b": {**base, "variants": [{"name": "madry"}]}}
    }
    with pytest.raises(RobinterpError, match="imported in one dataset and trained in another"):
        imported_variants(clash)
    subset = {"datasets": {"d": {**base, "variants": [imported("f.pt", class_subset="wnids")]}}}
    with pytest.raises(RobinterpError, match="class_subset: wnids needs a small_imagenet150 dataset"):
        imported_variants(subset)
    with pytest.raises(RobinterpError, match="sha256"):
        check_config({"datasets": {"d": {**base, "variants": [imported("f.pt", sha256="abc")]}}})


def test_published_cifar10_config_is_valid_and_pins_nothing_unverified():
    cfg = yaml.safe_load((ROOT / "workflow/configs/published_cifar10.yaml").read_text())
    check_config(cfg)
    variants = cfg["datasets"]["cifar10"]["variants"]
    assert {v["checkpoint"]["path"].rsplit("/", 1)[-1] for v in variants} == {
        "cifar_nat.pt",
        "cifar_l2_0_25.pt",
        "cifar_l2_0_5.pt",
        "cifar_l2_1_0.pt",
    }
    assert all(v["checkpoint"]["sha256"] is None for v in variants)  # the user pins what they downloaded
    assert set(cfg["datasets"]["cifar10"]["reference"]) == {v["name"] for v in variants}


def test_trained_and_imported_variants_share_the_dag(tmp_path):
    cfg = tiny_config(tmp_path, [{"name": "standard", "attack": None}, imported(tmp_path / "madry.pt")])
    r = snakemake("-n", "--cores", "1", "--configfile", str(cfg))
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "checkpoint.path" in out and "does not exist" in out
    (tmp_path / "madry.pt").write_bytes(b"placeholder")  # a dry run only needs the file to exist
    r = snakemake("-n", "--cores", "1", "--configfile", str(cfg))
    assert r.returncode == 0, r.stderr[-3000:]
    jobs = dict(line.split() for line in r.stdout.split("Job stats:")[1].split("total")[0].splitlines()[3:] if line)
    assert jobs["import_checkpoint"] == "1" and jobs["train"] == "1"
    assert all(
        jobs[rule] == "2"
        for rule in (
            "evaluate",
            "ig",
            "shap",
            "class_generation",
            "inversion",
            "feature_vis",
            "interpretability_metrics",
            "fid_class_generation",
        )
    )


@pytest.mark.slow
def test_whole_dag_runs_on_an_imported_variant(tmp_path):
    cfg = tiny_config(tmp_path, [imported(madrylab_tiny(tmp_path / "madry.pt"))])
    r = snakemake("--cores", "2", "--configfile", str(cfg))
    assert r.returncode == 0, r.stderr[-4000:]
    results = tmp_path / "results"
    acc = json.loads((results / "digits/eval/madry/accuracy.json").read_text())
    assert acc["variant"] == "madry" and 0 <= acc["adv_acc"] <= acc["clean_acc"]
    assert "madry" in (results / "digits/tables/accuracy.csv").read_text()
    for out in (
        "ig/madry/attributions.npz",
        "interpretability/madry.json",
        "figures/robustness_curve.png",
        "figures/feature_vis.png",
        "tables/fid.csv",
    ):
        assert (results / "digits" / out).is_file(), out
    assert not (results / "digits/models/madry/train_log.csv").exists()  # imported, not trained
    assert "sha256" in (results / "logs/import_checkpoint/digits/madry.log").read_text()
