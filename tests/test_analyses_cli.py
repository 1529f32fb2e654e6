"""Every analysis verb writes exactly its declared outputs; plot verbs need only those arrays."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from robinterp.checkpoints import save_checkpoint
from robinterp.cli import main
from robinterp.data import write_split
from robinterp.models import build_model

SRC = str(Path(__file__).resolve().parents[1] / "src")
CLASSES = ["zero", "one", "two", "three"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("test", 24)):
        labels = np.arange(n) % 4
        images = (rng.integers(0, 60, (n, 8, 8, 3)) + 60 * labels[:, None, None, None]).astype(np.uint8)
        write_split(root / split, images, labels, CLASSES, {"kind": "synthetic"})
    torch.manual_seed(0)
    arch = {"name": "resnet18_cifar", "width": 0.0625, "num_classes": 4, "mean": [0.5] * 3, "std": [0.25] * 3}
    model = build_model(arch["name"], 4, arch["mean"], arch["std"], arch["width"]).eval()
    save_checkpoint(root / "model.pt", model, arch, CLASSES, epoch=0, metrics={})
    return root


def _files(folder):
    return sorted(p.name for p in Path(folder).iterdir())


COMPUTE = {
    "ig": ({"num_images": 3, "steps": 4, "trials": 2}, {"--out": "attributions.npz"}),
    "shap": ({"num_images": 3, "background": 8, "nsamples": 8}, {"--out": "attributions.npz"}),
    "class-generation": ({"per_class": 2, "downsample": 2, "eps": 3, "step_size": 0.5, "steps": 3},
                         {"--out-images": "images.npy", "--out-seeds": "seeds.npy", "--out-labels": "labels.npy"}),
    "inversion": ({"num_images": 2, "steps": 3, "step_size": 0.2},
                  {"--out-targets": "targets.npy", "--out-sources": "sources.npy", "--out-inverted": "inverted.npy"}),
    "feature-vis": ({"num_neurons": 2, "steps": 3, "step_size": 0.2, "top_k": 2}, {"--out": "features.npz"}),
}


@pytest.fixture(scope="module")
def arrays(inputs, tmp_path_factory):
    """Run every compute verb for two variants (the same checkpoint) into its own folder."""
    root = tmp_path_factory.mktemp("results")
    for method, (cfg, outs) in COMPUTE.items():
        for variant in ("standard", "robust"):
            out = root / method / variant
            argv = [method, "--checkpoint", str(inputs / "model.pt"), "--data", str(inputs / "test"),
                    "--config-json", json.dumps(cfg), "--variant", variant, "--device", "cpu",
                    "--meta", str(out / "meta.json")]
            argv += ["--train", str(inputs / "train")] if method == "shap" else []
            for flag, name in outs.items():
                argv += [flag, str(out / name)]
            assert main(argv) == 0
    return root


@pytest.mark.parametrize("method", list(COMPUTE))
def test_compute_verbs_write_exactly_their_outputs(arrays, method):
    folder = arrays / method / "standard"
    assert _files(folder) == sorted(["meta.json", *COMPUTE[method][1].values()])
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["classes"] == CLASSES and meta["provenance"]["git"] and meta["checkpoint_sha256"]


def test_output_contract(arrays):
    with np.load(arrays / "ig" / "standard" / "attributions.npz") as f:
        assert f["images"].dtype == np.float32 and f["images"].shape == (3, 3, 8, 8)
        assert f["attributions"].shape == f["images"].shape and f["attributions"].dtype == np.float32
        assert f["labels"].dtype == f["preds"].dtype == f["indices"].dtype == np.int64
        assert 0 <= f["images"].min() and f["images"].max() <= 1
    for name in ("images", "seeds"):
        a = np.load(arrays / "class-generation" / "standard" / f"{name}.npy")
        assert a.dtype == np.uint8 and a.shape == (8, 8, 8, 3)
    assert np.load(arrays / "class-generation" / "standard" / "labels.npy").tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    meta = json.loads((arrays / "inversion" / "standard" / "meta.json").read_text())
    assert meta["source_kind"] == ["image", "image", "noise", "noise"]
    assert len(meta["distance_before"]) == len(meta["distance_after"]) == 4
    assert np.load(arrays / "inversion" / "standard" / "inverted.npy").shape == (4, 8, 8, 3)


def _plot(argv, out):
    assert main([*argv, "--out-png", str(out / "f.png"), "--out-pdf", str(out / "f.pdf")]) == 0
    assert _files(out) == ["f.pdf", "f.png"]
    assert (out / "f.png").read_bytes()[:4] == b"\x89PNG" and (out / "f.pdf").read_bytes()[:4] == b"%PDF"


def test_plot_verbs_run_from_arrays_alone(arrays, inputs, tmp_path):
    """The checkpoint and data are gone: the plot verbs still draw every figure."""
    gone = tmp_path / "moved"
    shutil.move(str(inputs), gone)
    try:
        v = ["--variants", "standard", "robust"]
        small = ["--plots-json", json.dumps({"dpi": 40, "grid_columns": 3, "class_generation_samples": 2})]
        d = lambda m, name: [str(arrays / m / s / name) for s in ("standard", "robust")]  # noqa: E731
        for method in ("ig", "shap"):
            for layout in ("compare", "grid"):
                out = tmp_path / f"{method}_{layout}"
                out.mkdir()
                _plot(["plot-attributions", *v, "--inputs", *d(method, "attributions.npz"), "--meta",
                       *d(method, "meta.json"), "--method", method, "--layout", layout, *small], out)
        for name, argv in {
            "cg": ["plot-class-generation", "--images", *d("class-generation", "images.npy"), "--seeds",
                   *d("class-generation", "seeds.npy"), "--labels", *d("class-generation", "labels.npy"),
                   "--meta", *d("class-generation", "meta.json")],
            "inv": ["plot-inversion", "--targets", *d("inversion", "targets.npy"), "--sources",
                    *d("inversion", "sources.npy"), "--inverted", *d("inversion", "inverted.npy"),
                    "--meta", *d("inversion", "meta.json")],
            "fv": ["plot-feature-vis", "--inputs", *d("feature-vis", "features.npz"), "--meta",
                   *d("feature-vis", "meta.json"), "--plots-json", json.dumps({"dpi": 60})],
        }.items():
            out = tmp_path / name
            out.mkdir()
            _plot([argv[0], *v, *small, *argv[1:]], out)
    finally:
        shutil.move(str(gone), inputs)


def test_plot_verb_rejects_misaligned_inputs(arrays, tmp_path, capsys):
    argv = ["plot-feature-vis", "--variants", "standard", "robust", "--inputs",
            str(arrays / "feature-vis" / "standard" / "features.npz"), "--meta",
            str(arrays / "feature-vis" / "standard" / "meta.json"), "--out-png", str(tmp_path / "f.png"),
            "--out-pdf", str(tmp_path / "f.pdf")]
    assert main(argv) == 2
    assert "one per variant" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_plot_module_does_not_import_torch():
    code = "import sys, robinterp.plots, robinterp.commands.plots; assert 'torch' not in sys.modules, 'torch imported'"
    env = {**os.environ, "PYTHONPATH": SRC}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
