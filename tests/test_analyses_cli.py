"""Every analysis verb writes exactly its declared outputs; plot verbs need only those arrays."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from analysis_inputs import CLASSES, COMPUTE, make_inputs, run_verb

from robinterp.cli import main

SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return make_inputs(tmp_path_factory.mktemp("inputs"))


def _files(folder):
    return sorted(p.name for p in Path(folder).iterdir())


@pytest.fixture(scope="module")
def arrays(inputs, tmp_path_factory):
    """Run every compute verb for two variants (the same checkpoint) into its own folder."""
    root = tmp_path_factory.mktemp("results")
    for method in COMPUTE:
        for variant in ("standard", "robust"):
            assert run_verb(method, inputs, root / method / variant, variant) == 0
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
        assert str(f["output"]) == "probability"  # what the metrics score it on (the analyses' default for IG)
    with np.load(arrays / "shap" / "standard" / "attributions.npz") as f:
        assert str(f["output"]) == "logit"
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
        small = [
            "--settings",
            json.dumps({"analyses.plots": {"dpi": 50, "grid_columns": 3, "class_generation_samples": 2}}),
        ]
        d = lambda m, name: [str(arrays / m / s / name) for s in ("standard", "robust")]  # noqa: E731
        for method in ("ig", "shap"):
            for layout in ("compare", "grid"):
                out = tmp_path / f"{method}_{layout}"
                out.mkdir()
                _plot(
                    [
                        "plot-attributions",
                        *v,
                        "--inputs",
                        *d(method, "attributions.npz"),
                        "--meta",
                        *d(method, "meta.json"),
                        "--method",
                        method,
                        "--layout",
                        layout,
                        *small,
                    ],
                    out,
                )
        for name, argv in {
            "cg": [
                "plot-class-generation",
                "--images",
                *d("class-generation", "images.npy"),
                "--seeds",
                *d("class-generation", "seeds.npy"),
                "--labels",
                *d("class-generation", "labels.npy"),
                "--meta",
                *d("class-generation", "meta.json"),
            ],
            "inv": [
                "plot-inversion",
                "--targets",
                *d("inversion", "targets.npy"),
                "--sources",
                *d("inversion", "sources.npy"),
                "--inverted",
                *d("inversion", "inverted.npy"),
                "--meta",
                *d("inversion", "meta.json"),
            ],
            "fv": [
                "plot-feature-vis",
                "--inputs",
                *d("feature-vis", "features.npz"),
                "--meta",
                *d("feature-vis", "meta.json"),
                "--set",
                "analyses.plots.dpi=60",
            ],
        }.items():
            out = tmp_path / name
            out.mkdir()
            _plot([argv[0], *v, *small, *argv[1:]], out)
    finally:
        shutil.move(str(gone), inputs)


def test_plot_verb_rejects_misaligned_inputs(arrays, tmp_path, capsys):
    argv = [
        "plot-feature-vis",
        "--variants",
        "standard",
        "robust",
        "--inputs",
        str(arrays / "feature-vis" / "standard" / "features.npz"),
        "--meta",
        str(arrays / "feature-vis" / "standard" / "meta.json"),
        "--out-png",
        str(tmp_path / "f.png"),
        "--out-pdf",
        str(tmp_path / "f.pdf"),
    ]
    assert main(argv) == 2
    assert "one per variant" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_plot_module_does_not_import_torch():
    code = (
        "import sys, robinterp.figures, robinterp.commands.figures; assert 'torch' not in sys.modules, 'torch imported'"
    )
    env = {**os.environ, "PYTHONPATH": SRC}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
