"""Interpretability metrics on cases with known answers, and the interpretability-metrics verb."""

import json

import numpy as np
import pytest
import torch

from robinterp import attribution_metrics, interpretability, stats
from robinterp.cli import main
from robinterp.errors import RobinterpError


class Linear(torch.nn.Module):
    """logits = W x (+ b) on flattened pixels: gradients and optimal orderings are known."""

    def __init__(self, weight, bias=None):
        super().__init__()
        self.weight = torch.nn.Parameter(weight, requires_grad=False)
        self.bias = torch.nn.Parameter(torch.zeros(len(weight)) if bias is None else bias, requires_grad=False)

    def forward(self, x):
        return x.flatten(1) @ self.weight.T + self.bias


def _linear_case(n=12, c=3, h=6, w=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(2, c * h * w, generator=g)
    x = torch.rand(n, c, h, w, generator=g)
    return Linear(weight), x, torch.zeros(n, dtype=torch.long)


def test_gradient_alignment_of_a_linear_model_is_the_cosine_of_x_and_w():
    model, x, y = _linear_case()
    y[::2] = 1
    got = attribution_metrics.gradient_alignment(model, x, y)
    w = model.weight[y]
    want = (x.flatten(1) * w).sum(1).abs() / (x.flatten(1).norm(dim=1) * w.norm(dim=1))
    torch.testing.assert_close(got, want)


def test_gini_is_maximal_for_one_pixel_and_zero_for_uniform_maps():
    p = 8 * 8
    one_hot = torch.zeros(1, 3, 8, 8)
    one_hot[0, 1, 2, 5] = -4.0  # sign and channel do not matter
    uniform = torch.ones(1, 3, 8, 8) * 0.3
    half = torch.zeros(1, 3, 8, 8)
    half[..., :4, :] = 1.0
    g = attribution_metrics.gini(torch.cat([one_hot, uniform, half, torch.zeros(1, 3, 8, 8)]))
    assert g[0].item() == pytest.approx(1 - 1 / p)
    assert abs(g[1].item()) < 1e-12 and abs(g[3].item()) < 1e-12
    assert g[0] > g[2] > g[1]
    assert g[2].item() == pytest.approx(0.5)
    rand = attribution_metrics.gini(torch.rand(50, 3, 8, 8, generator=torch.Generator().manual_seed(0)))
    assert (rand < g[0]).all() and (rand > 0).all()


def test_a_perfect_attribution_beats_a_random_one_on_deletion_and_insertion():
    model, x, y = _linear_case(n=16)
    perfect = x * model.weight[0].view(1, *x.shape[1:])  # exact contribution of each pixel to logit 0
    # pixel importance sums |attribution| over channels: give signed contributions per pixel instead
    per_pixel = perfect.sum(1, keepdim=True).clamp_min(0).expand_as(x).contiguous()
    random = torch.rand(x.shape, generator=torch.Generator().manual_seed(1))
    d_perfect, i_perfect = attribution_metrics.deletion_insertion(
        model, x, per_pixel, y, 20, "zero", "probability", 256, "absolute"
    )
    d_random, i_random = attribution_metrics.deletion_insertion(
        model, x, random, y, 20, "zero", "probability", 256, "absolute"
    )
    assert d_perfect.mean() < d_random.mean()
    assert i_perfect.mean() > i_random.mean()
    assert ((d_perfect >= 0) & (d_perfect <= 1)).all()


def test_signed_ranking_deletes_the_evidence_for_the_class_first():
    model, x, y = _linear_case(n=16)
    contributions = x * model.weight[0].view(1, *x.shape[1:])  # logit 0 = their sum: exact, signed
    d_abs, _ = attribution_metrics.deletion_insertion(model, x, contributions, y, 20, "zero", "logit", 256, "absolute")
    d_signed, _ = attribution_metrics.deletion_insertion(model, x, contributions, y, 20, "zero", "logit", 256, "signed")
    # deleting the largest positive contributions first lowers an additive logit fastest at every step
    assert (d_signed <= d_abs + 1e-6).all() and d_signed.mean() < d_abs.mean()
    with pytest.raises(RobinterpError, match="ranking"):
        attribution_metrics.deletion_insertion(model, x, contributions, y, 20, "zero", "probability", 256, "sorted")


def test_every_metric_scores_what_its_attribution_explains():
    """An attribution of the logit is scored on the logit, one of the probability on the probability:
    a metric scoring another output than its attribution explains fails here."""
    model, x, y = _linear_case(n=8)
    a = x * model.weight[0].view(1, *x.shape[1:])
    arrays = {"images": x.numpy(), "attributions": a.numpy(), "labels": y.numpy(), "preds": y.numpy()}
    files = {"shap": {**arrays, "output": np.array("logit")}, "ig": {**arrays, "output": np.array("probability")}}
    cfg = interpretability.InterpretabilityConfig.from_dict(
        {
            "sample": 8,
            "steps": 5,
            "infidelity_samples": 2,
            "sensitivity_images": 2,
            "sensitivity_samples": 2,
            "explainer": "saliency",
            "bootstrap": 0,
            "faithfulness_runs": 4,
            "lipschitz_samples": 2,
            "output": "logit",
        }
    )
    entries = interpretability.evaluate_interpretability(model, x, y, files, cfg, "cpu")
    scored = {"gini", "deletion_auc", "insertion_auc", "infidelity", "faithfulness_correlation"}
    for method, output in (("shap", "logit"), ("ig", "probability")):
        got = {e["metric"]: e for e in entries if e["method"] == method}
        assert set(got) == scored and {e["output"] for e in got.values()} == {output}
        deletion, insertion = attribution_metrics.deletion_insertion(model, x, a, y, 5, "zero", output, 256, "absolute")
        assert got["deletion_auc"]["values"] == pytest.approx(deletion.double().tolist())
        assert got["insertion_auc"]["values"] == pytest.approx(insertion.double().tolist())
    assert {e["output"] for e in entries if e["metric"] in ("sensitivity_max", "local_lipschitz")} == {"logit"}
    with pytest.raises(RobinterpError, match="rerun the analysis"):
        interpretability.evaluate_interpretability(model, x, y, {"ig": arrays}, cfg, "cpu")


def test_infidelity_is_zero_for_the_gradient_of_a_linear_logit():
    model, x, y = _linear_case(n=6)
    grad = model.weight[0].view(1, *x.shape[1:]).expand_as(x).contiguous()
    gen = torch.Generator().manual_seed(0)
    exact = attribution_metrics.infidelity(model, x, grad, y, 0.1, 10, "logit", generator=gen, normalize=False)
    noisy = attribution_metrics.infidelity(
        model, x, torch.rand(x.shape, generator=gen), y, 0.1, 10, "logit", generator=gen, normalize=False
    )
    assert exact.abs().max() < 1e-8 and (noisy > 1e-3).all()


def test_sensitivity_max_is_zero_for_saliency_of_a_linear_model_and_positive_otherwise():
    model, x, y = _linear_case(n=4)
    torch.manual_seed(0)
    assert (
        attribution_metrics.sensitivity_max(model, x, y, "saliency", 16, radius=0.02, samples=3, output="logit")
        .abs()
        .max()
        < 1e-6
    )
    mlp = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(108, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
    assert (
        attribution_metrics.sensitivity_max(mlp, x, y, "saliency", 16, radius=0.02, samples=3, output="logit") > 0
    ).all()


def test_bootstrap_mean_interval_brackets_the_mean_and_is_seeded():
    v = np.random.default_rng(0).normal(size=200)
    a, b = stats.bootstrap_mean(v, 500, seed=1), stats.bootstrap_mean(v, 500, seed=1)
    assert a == b and a["low"] < a["mean"] < a["high"] and a["n"] == 200


def test_faithfulness_correlation_is_one_for_the_exact_contributions_of_a_linear_logit():
    from robinterp.attribution_metrics import faithfulness_correlation

    model, x, y = _linear_case(n=8)
    exact = x * model.weight[0].view(1, *x.shape[1:])  # what zeroing each value removes from logit 0
    gen = torch.Generator().manual_seed(0)
    got = faithfulness_correlation(model, x, exact, y, 30, 0.2, "zero", "logit", gen, 256)
    torch.testing.assert_close(got, torch.ones(8, dtype=torch.float64))
    rand = faithfulness_correlation(
        model, x, torch.randn(x.shape, generator=gen), y, 30, 0.2, "zero", "logit", gen, 256
    )
    assert rand.abs().mean() < 0.5


def test_local_lipschitz_of_saliency_is_zero_for_a_linear_model_and_c_for_a_quadratic():
    from robinterp.attribution_metrics import local_lipschitz_estimate

    model, x, y = _linear_case(n=4)
    gen = torch.Generator().manual_seed(0)
    assert local_lipschitz_estimate(model, x, y, "saliency", 16, 0.1, 3, "logit", gen).max() < 1e-6

    class Quadratic(torch.nn.Module):  # logit_k = 1.5 ||x||^2 + k: the saliency 3 x moves 3x as far as x
        def forward(self, z):
            return 1.5 * z.flatten(1).pow(2).sum(1, keepdim=True) + torch.arange(2.0)

    got = local_lipschitz_estimate(Quadratic(), x, y, "saliency", 16, 0.1, 3, "logit", gen)
    torch.testing.assert_close(got, torch.full((4,), 3.0, dtype=torch.float64))


def test_bootstrap_mean_brackets_skewed_samples_and_covers_the_true_mean():
    """The inversion-distance and attribution-metric intervals: the mean inside its interval even for
    one outlier or two values, and coverage of a known mean (exponential, n = 40) near 95%."""
    rng = np.random.default_rng(0)
    cases = [np.r_[np.zeros(49), 1000.0], np.array([0.0, 5.0]), rng.lognormal(0, 2, 12), np.ones(7)]
    for seed, v in enumerate(cases):
        r = stats.bootstrap_mean(v, 200, seed=seed)
        assert r["low"] <= r["mean"] <= r["high"]
    covered = [
        (lambda r: r["low"] <= 1.0 <= r["high"])(stats.bootstrap_mean(rng.exponential(1.0, 40), 300, seed=i))
        for i in range(200)
    ]
    assert 0.88 <= np.mean(covered) <= 0.99
    with pytest.raises(RobinterpError, match="rounds"):
        stats.bootstrap_mean(np.ones(5), 3, seed=0)


def test_interpretability_metrics_verb_writes_every_metric(tmp_path):
    from robinterp.checkpoints import save_checkpoint
    from robinterp.data import write_split
    from robinterp.models import build_model

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 8, 8, 3), dtype=np.uint8)
    labels = np.arange(40) % 3
    write_split(tmp_path / "test", images, labels, ["a", "b", "c"], {"kind": "test"})
    torch.manual_seed(0)
    arch = {"name": "resnet18_cifar", "num_classes": 3, "mean": [0.5] * 3, "std": [0.25] * 3, "width": 0.0625}
    model = build_model(arch["name"], 3, arch["mean"], arch["std"], arch["width"])
    save_checkpoint(tmp_path / "model.pt", model.eval(), arch, ["a", "b", "c"])
    x = images[:10].transpose(0, 3, 1, 2).astype(np.float32) / 255
    np.savez(
        tmp_path / "ig.npz",
        images=x,
        attributions=rng.normal(size=x.shape).astype(np.float32),
        labels=labels[:10],
        preds=labels[:10],
        indices=np.arange(10),
        output=np.array("probability"),
    )
    cfg = {
        "sample": 8,
        "steps": 5,
        "infidelity_samples": 3,
        "sensitivity_images": 3,
        "sensitivity_samples": 2,
        "explainer": "saliency",
        "bootstrap": 50,
        "faithfulness_runs": 10,
        "lipschitz_samples": 2,
    }
    out = tmp_path / "metrics.json"
    assert (
        main(
            [
                "interpretability-metrics",
                "--checkpoint",
                str(tmp_path / "model.pt"),
                "--test",
                str(tmp_path / "test"),
                "--attributions",
                f"ig={tmp_path / 'ig.npz'}",
                "--settings",
                json.dumps({"metrics.interpretability": cfg, "device": "cpu"}),
                "--variant",
                "v",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    res = json.loads(out.read_text())
    got = {(e["metric"], e["method"]): e for e in res["metrics"]}
    assert set(got) == {
        ("gradient_alignment", "input_gradient"),
        ("gini", "ig"),
        ("deletion_auc", "ig"),
        ("insertion_auc", "ig"),
        ("infidelity", "ig"),
        ("sensitivity_max", "saliency"),
        ("faithfulness_correlation", "ig"),
        ("local_lipschitz", "saliency"),
    }
    assert got["gradient_alignment", "input_gradient"]["n"] == 40 and got["gini", "ig"]["n"] == 8
    assert got["sensitivity_max", "saliency"]["n"] == 3
    assert all(e["direction"] in ("higher", "lower") for e in res["metrics"]) and "provenance" in res
    assert got["deletion_auc", "ig"]["output"] == "probability"  # what the file says IG explains
    bad = main(
        [
            "interpretability-metrics",
            "--checkpoint",
            str(tmp_path / "model.pt"),
            "--test",
            str(tmp_path / "test"),
            "--attributions",
            "ig",
            "--out",
            str(tmp_path / "x.json"),
        ]
    )
    assert bad == 2 and not (tmp_path / "x.json").exists()


def test_the_paper_ig_explainer_seam_uses_the_analyses_ig():
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    x, y = torch.rand(4, 3, 4, 4), torch.tensor([0, 1, 2, 0])
    attr = attribution_metrics.explainer_of("paper_ig", mlp, "probability", 16, None)(x, y)
    prob = lambda z: torch.softmax(mlp(z), 1).gather(1, y[:, None]).squeeze(1)
    torch.testing.assert_close(attr.flatten(1).sum(1), prob(x) - prob(torch.zeros_like(x)), atol=1e-4, rtol=0)
    assert torch.isfinite(
        attribution_metrics.sensitivity_max(mlp, x, y, "paper_ig", 16, radius=0.02, samples=2, output="probability")
    ).all()
