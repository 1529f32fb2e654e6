"""The paper's models at full width and the paper's input sizes, through the whole DAG on CPU
(workflow/configs/paper_smoke.yaml): CIFAR-10 through the real cifar10 source, Small ImageNet
150 through the real builder, every analysis and metric at the paper's settings but counts."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from paper_inputs import write_paper_inputs

ROOT = Path(__file__).resolve().parents[1]
SHAPES = {"cifar10": (32, "resnet18_cifar", 10), "small_imagenet150": (128, "resnet50", 4)}


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("paper_smoke")
    inputs = write_paper_inputs(out / "inputs")
    cfg = yaml.safe_load((ROOT / "workflow/configs/paper_smoke.yaml").read_text())
    cfg["results"] = str(out / "results")
    cfg["device"] = "cpu"
    cfg["datasets"]["cifar10"]["source"]["root"] = inputs["cifar10_root"]
    src = cfg["datasets"]["small_imagenet150"]["source"]
    for key in ("train_dir", "val_dir", "imagenetv2_dir", "synset_mapping"):
        src[key] = inputs[key]
    path = out / "paper_smoke.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=40 * 60,
    )
    assert r.returncode == 0, (r.stdout + r.stderr)[-5000:]
    return out / "results", cfg


@pytest.mark.slow
@pytest.mark.parametrize("dataset", list(SHAPES))
def test_paper_shapes_run_through_every_stage(smoke_run, dataset):
    import torch

    results, cfg = smoke_run
    size, arch, classes = SHAPES[dataset]
    for variant in ("standard", "robust_l2"):
        ckpt = torch.load(results / dataset / "models" / variant / "model.pt", map_location="cpu", weights_only=True)
        assert ckpt["arch"]["name"] == arch and ckpt["arch"]["width"] == 1.0
        assert ckpt["arch"]["image_shape"] == [3, size, size] and ckpt["arch"]["num_classes"] == classes
        acc = json.loads((results / dataset / "eval" / variant / "accuracy.json").read_text())
        assert 0 <= acc["adv_acc"] <= acc["clean_acc"] <= 1
        images = np.load(results / dataset / "class_generation" / variant / "images.npy")
        per_class = cfg["datasets"][dataset]["analyses"]["class_generation"]["per_class"]
        assert images.shape[0] == classes * per_class and images.shape[1:] in ((size, size, 3), (3, size, size))
        assert (results / dataset / "inversion_distance" / f"{variant}.json").is_file()
    for name in ("accuracy", "fid", "inversion_distance", "interpretability"):
        assert (results / dataset / "tables" / f"{name}.md").read_text().strip()
    for fig in (
        "ig_compare",
        "ig_grid",
        "shap_compare",
        "shap_grid",
        "class_generation",
        "inversion",
        "feature_vis",
        "robustness_curve",
    ):
        assert (results / dataset / "figures" / f"{fig}.png").stat().st_size > 1000
    assert dataset in (results / "summary.md").read_text()
