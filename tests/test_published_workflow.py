"""Imported variants in the workflow: config checks, the DAG mixing trained and imported variants,
and the whole DAG run on digits with a MadryLab-format model written by robustness itself."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
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
    from robinterp.resources import GPU_RULES

    assert all(jobs[rule] == "2" for rule in set(GPU_RULES) - {"train", "inception_features"})


@pytest.mark.slow
def test_whole_dag_runs_on_imported_and_zoo_variants(tmp_path):
    """The zoo study's shape on digits at 32 px (the zoo's wide ResNets pool a fixed 8 x 8 map):
    a MadryLab file and two RobustBench stand-ins (DeepMind's and Standard's WideResNet families)
    through every rule, the models placed by robust accuracy and correlated with it, RobustBench's
    numbers beside ours."""
    from publishers import stand_in_block, stand_in_file

    cache = tmp_path / "rb"
    zoo = {"wrn": stand_in_block("tiny_wrn", "WideResNet"), "dmwrn": stand_in_block("tiny_dmwrn", "DMWideResNet")}
    for block in zoo.values():
        stand_in_file(cache, block)
    variants = [imported(madrylab_tiny(tmp_path / "madry.pt"))] + [
        {"name": name, "checkpoint": block} for name, block in zoo.items()
    ]
    cfg = yaml.safe_load(tiny_config(tmp_path, variants).read_text())
    cfg["robustbench_cache"] = str(cache)
    digits = cfg["datasets"]["digits"]
    digits["source"]["image_size"] = 32
    digits["reference"] = {
        name: {"clean_acc": 90.0, "autoattack_acc": 70.0 - 10 * i, "source": "a leaderboard"}
        for i, name in enumerate(zoo)
    }
    path = tmp_path / "zoo.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = snakemake("--cores", "2", "--configfile", str(path))
    assert r.returncode == 0, r.stderr[-4000:]
    results = tmp_path / "results" / "digits"
    for v in ("madry", "wrn", "dmwrn"):
        acc = json.loads((results / f"eval/{v}/accuracy.json").read_text())
        assert acc["variant"] == v and 0 <= acc["adv_acc"] <= acc["clean_acc"] and "autoattack_acc" in acc
        assert (results / f"interpretability/{v}.json").is_file() and (results / f"ig/{v}/attributions.npz").is_file()
    for out in ("figures/robustness_curve.png", "figures/feature_vis.png", "tables/fid.csv"):
        assert (results / out).is_file(), out
    assert not (results / "models/madry/train_log.csv").exists()  # imported, not trained
    assert "sha256" in (tmp_path / "results/logs/import_checkpoint/digits/madry.log").read_text()
    accuracy = pd.read_csv(results / "tables/accuracy.csv").set_index("variant")
    assert (
        accuracy.loc["dmwrn", "reference_autoattack_acc"] == 60.0
        and accuracy.loc["wrn", "reference_source"] == "a leaderboard"
    )
    curve = pd.read_csv(results / "tables/robustness_curve.csv")
    assert set(curve["placed_by"]) == {"robust_accuracy"} and curve["robust_acc"].notna().all()
    correlation = pd.read_csv(results / "tables/robustness_correlation.csv")
    assert (correlation["models"] == 3).all() and correlation["spearman"].between(-1, 1).any()
    summary = (tmp_path / "results" / "summary.md").read_text()
    assert "Does robustness predict interpretability? (rank correlation over 3 models)" in summary
    assert "least vs most robust model" in summary
