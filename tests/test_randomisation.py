"""Model parameter randomisation (Adebayo et al. 2018): stages, the cascade's invariants, the verbs."""

import json

import numpy as np
import torch

from robinterp.cli import main
from robinterp.models import build_model
from robinterp.randomisation import cascade_stages, randomisation_cascade, reinitialise
from robinterp.stats import spearman_rows


def _resnet(classes=3, seed=0):
    torch.manual_seed(seed)
    return build_model("resnet18_cifar", classes, [0.5] * 3, [0.25] * 3, 0.0625).eval()


def _gradient(x, target):
    def explain(model):
        z = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(model(z).gather(1, target[:, None]).sum(), z)
        return g

    return explain


def test_stages_run_top_down_through_the_resnet():
    names = [n for n, _ in cascade_stages(_resnet())]
    assert names == ["linear", "layer4", "layer3", "layer2", "layer1", "bn1", "conv1"]


def test_reinitialise_is_seeded_and_changes_the_weights():
    a, b = _resnet(), _resnet()
    before = a.model.linear.weight.clone()
    reinitialise(a.model.linear, 5)
    reinitialise(b.model.linear, 5)
    assert torch.equal(a.model.linear.weight, b.model.linear.weight)
    assert not torch.equal(a.model.linear.weight, before)


def test_spearman_rows_matches_scipy():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4, 30)), rng.normal(size=(4, 30))
    b[:, :5] = 0.0  # ties
    want = [spearmanr(x, y).statistic for x, y in zip(a, b)]
    np.testing.assert_allclose(spearman_rows(a, b), want)


def test_the_gradient_loses_its_structure_and_an_input_only_map_survives():
    model = _resnet()
    x = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([0, 1, 2, 0, 1, 2])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    grad = randomisation_cascade(model, _gradient(x, t), seed=0)
    assert len(grad["stages"]) == 7 and grad["spearman"].shape == (7, 6)
    assert grad["spearman"][-1].mean() < min(0.8, grad["spearman"][0].mean())  # the gradient follows the weights
    input_only = randomisation_cascade(model, lambda m: x * 1.0, seed=0)  # ignores the model entirely
    np.testing.assert_allclose(input_only["spearman"], 1.0)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the caller's model is untouched


def test_parameter_randomisation_and_plot_verbs(tmp_path):
    from robinterp.checkpoints import save_checkpoint
    from robinterp.data import write_split

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (30, 8, 8, 3), dtype=np.uint8)
    labels = np.arange(30) % 3
    write_split(tmp_path / "train", images, labels, ["a", "b", "c"], {"kind": "train"})
    arch = {"name": "resnet18_cifar", "num_classes": 3, "mean": [0.5] * 3, "std": [0.25] * 3, "width": 0.0625}
    save_checkpoint(tmp_path / "model.pt", _resnet(), arch, ["a", "b", "c"])
    x = images[:4].transpose(0, 3, 1, 2).astype(np.float32) / 255
    for m in ("ig", "shap"):
        np.savez(tmp_path / f"{m}.npz", images=x, attributions=np.zeros_like(x), labels=labels[:4], preds=labels[:4])
    paths = []
    for v in ("standard", "robust"):
        paths.append(tmp_path / f"{v}.json")
        assert (
            main(
                [
                    "parameter-randomisation",
                    "--checkpoint",
                    str(tmp_path / "model.pt"),
                    "--attributions",
                    f"ig={tmp_path / 'ig.npz'}",
                    f"shap={tmp_path / 'shap.npz'}",
                    "--train",
                    str(tmp_path / "train"),
                    "--settings",
                    json.dumps(
                        {
                            "analyses.ig": {"steps": 4, "trials": 2},
                            "analyses.shap": {"background": 8, "nsamples": 8},
                            "metrics.randomisation": {"images": 3, "bootstrap": 20},
                            "device": "cpu",
                        }
                    ),
                    "--variant",
                    v,
                    "--out",
                    str(paths[-1]),
                ]
            )
            == 0
        )
    res = json.loads(paths[0].read_text())
    assert {e["method"] for e in res["metrics"]} == {"ig", "shap"}
    assert all(
        e["metric"] == "randomisation_spearman" and e["n"] == 3 and e["low"] <= e["mean"] <= e["high"]
        for e in res["metrics"]
    )
    assert res["cascade"]["shap"]["stages"][0] == "linear" and len(res["cascade"]["ig"]["mean"]) == 7
    png = tmp_path / "fig" / "cascade.png"
    assert main(["randomisation-plot", "--inputs", *map(str, paths), "--dataset", "d", "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (
        main(
            [
                "parameter-randomisation",
                "--checkpoint",
                str(tmp_path / "model.pt"),
                "--attributions",
                f"shap={tmp_path / 'shap.npz'}",
                "--out",
                str(tmp_path / "x.json"),
            ]
        )
        == 2
    )  # no --train
    assert not (tmp_path / "x.json").exists()
