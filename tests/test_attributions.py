"""Integrated Gradients (our trapezoid) and SHAP (shap.GradientExplainer) invariants."""

import numpy as np
import pytest
import torch
from torch import nn

from robinterp.attributions import (
    IGConfig,
    ScalarOutput,
    ShapConfig,
    choose_images,
    explain_ig,
    explain_shap,
    gaussian_blur,
    integrated_gradients,
    make_baselines,
    trapezoid_weights,
)
from robinterp.errors import RobinterpError
from robinterp.models import build_model


class SmoothNet(nn.Module):
    """A small smooth (tanh) convnet: IG's quadrature error then falls like 1/m^2."""

    def __init__(self, classes=4):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.head = nn.Linear(6 * 6 * 6, classes)

    def forward(self, x):
        return self.head(torch.tanh(3 * self.conv(x)).flatten(1))


def test_trapezoid_weights_sum_to_one_or_the_papers_m_over_m_plus_1():
    for m in (1, 7, 50):
        assert trapezoid_weights(m, "exact").sum().item() == pytest.approx(1.0)
        assert trapezoid_weights(m, "paper").sum().item() == pytest.approx(m / (m + 1))


@pytest.mark.parametrize("output", ["probability", "logit"])
def test_ig_completeness_gap_shrinks_with_steps(output):
    model = SmoothNet().eval()
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(3, 3, 6, 6, generator=gen)
    base = torch.rand(3, 3, 6, 6, generator=gen)
    target = torch.tensor([0, 1, 2])
    f = ScalarOutput(model, output)
    with torch.no_grad():
        expected = (f(x) - f(base)).gather(1, target[:, None]).squeeze(1)
    gaps = []
    for m in (2, 8, 32, 128):
        attr = integrated_gradients(model, x, target, base, steps=m, output=output, batch_size=37, delta_alpha="exact")
        gaps.append((attr.flatten(1).sum(1) - expected).abs().max().item())
    assert gaps[0] > gaps[1] > gaps[2] > gaps[3]
    assert gaps[3] < 1e-3 * expected.abs().max().item() + 1e-6
    assert all(p.grad is None for p in model.parameters())  # no parameter gradients were built


def test_ig_does_not_depend_on_batch_size_and_paper_delta_alpha_scales():
    model = SmoothNet().eval()
    x, base, t = torch.rand(2, 3, 6, 6), torch.zeros(2, 3, 6, 6), torch.tensor([1, 3])
    a = integrated_gradients(model, x, t, base, steps=10, output="probability", batch_size=1, delta_alpha="exact")
    b = integrated_gradients(model, x, t, base, steps=10, output="probability", batch_size=1000, delta_alpha="exact")
    c = integrated_gradients(model, x, t, base, steps=10, output="probability", batch_size=1000, delta_alpha="paper")
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(c, a * 10 / 11, rtol=1e-4, atol=1e-7)


def test_explain_ig_averages_noise_baselines_and_reports_completeness():
    model = SmoothNet().eval()
    x, t = torch.rand(2, 3, 6, 6), torch.tensor([0, 1])
    cfg = IGConfig.of(steps=64, trials=3, baseline="uniform", output="probability")
    attr, check = explain_ig(model, x, t, cfg, torch.Generator().manual_seed(0))
    assert attr.shape == x.shape and torch.isfinite(attr).all()
    assert check["num_baselines"] == 3
    assert max(map(abs, check["completeness_gap"])) < 1e-3


def test_baselines_and_blur():
    x = torch.rand(2, 3, 8, 8)
    assert make_baselines(x, "black", 5, 1.0, None)[0].abs().sum() == 0
    noise = make_baselines(x, "uniform", 4, 1.0, torch.Generator().manual_seed(0))
    assert len(noise) == 4 and all(0 <= n.min() and n.max() <= 1 for n in noise)
    blurred = gaussian_blur(x, 1.5)
    assert blurred.shape == x.shape
    assert blurred.var() < x.var()  # smoothing lowers the pixel variance
    torch.testing.assert_close(blurred.mean((2, 3)), x.mean((2, 3)), atol=0.05, rtol=0)
    with pytest.raises(RobinterpError):
        IGConfig.from_dict({"baseline": "gray"})
    with pytest.raises(RobinterpError, match="unknown key"):
        IGConfig.from_dict({"stepz": 3})


class NearLinear(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(3 * 4 * 4, 3)

    def forward(self, x):
        z = self.lin(x.flatten(1))
        return z + 0.05 * torch.tanh(z)


def test_shap_values_finite_shaped_and_sum_to_output_minus_background_mean():
    model = NearLinear().eval()
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 4, 4, generator=gen)
    background = (0.5 + 0.05 * torch.randn(24, 3, 4, 4, generator=gen)).clamp(0, 1)
    values, explained, check = explain_shap(
        model, x, background, ShapConfig.of(nsamples=300, batch_size=50, output="logit")
    )
    assert values.shape == x.shape and torch.isfinite(values).all()
    with torch.no_grad():
        top = model(x).argmax(1)
        expected = model(x).gather(1, top[:, None]).squeeze(1) - model(background).mean(0)[top]
    assert torch.equal(explained, top)
    np.testing.assert_allclose(
        values.flatten(1).sum(1).numpy(), expected.numpy(), atol=0.03 + 0.05 * expected.abs().max().item()
    )
    assert max(map(abs, check["completeness_gap"])) < 0.03 + 0.05 * expected.abs().max().item()
    assert all(p.requires_grad and p.grad is None for p in model.parameters())  # restored, none accumulated


def test_shap_background_pass_keeps_no_graph():
    """The background forward inside GradientExplainer.__init__ runs under no_grad."""
    model = build_model("resnet18_cifar", 3, [0.5] * 3, [0.25] * 3, width=0.0625).eval()
    seen = []
    model.register_forward_hook(lambda m, i, o: seen.append(o.requires_grad))
    x, background = torch.rand(1, 3, 8, 8), torch.rand(6, 3, 8, 8)
    explain_shap(model, x, background, ShapConfig.of(nsamples=4, batch_size=4))
    assert seen[0] is False  # the explainer's first call is the background pass


def test_choose_images_is_seeded_and_sorted():
    labels = np.arange(100) % 10
    a, b = choose_images(24, labels, 0), choose_images(24, labels, 0)
    assert np.array_equal(a, b) and len(a) == 24 and np.all(np.diff(a) > 0)
    assert not np.array_equal(a, choose_images(24, labels, 1))


class _DeviceTensor:
    """Stands in for a CUDA tensor: numpy cannot read it until it is copied to the host."""

    def __init__(self, t):
        self.t = t

    def __array__(self, *a, **k):
        raise TypeError("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() first.")

    def detach(self):
        return self

    def cpu(self):
        return self.t


def test_shap_reads_ranks_and_values_returned_as_device_tensors(monkeypatch):
    """shap 0.51 returns the ranks as a tensor on the model's device (CUDA on a GPU run)."""
    import shap

    real = shap.GradientExplainer.shap_values

    def on_device(self, *a, **k):
        values, ranks = real(self, *a, **k)
        return _DeviceTensor(torch.as_tensor(np.asarray(values))), _DeviceTensor(torch.as_tensor(np.asarray(ranks)))

    monkeypatch.setattr(shap.GradientExplainer, "shap_values", on_device)
    model = NearLinear().eval()
    x, background = torch.rand(2, 3, 4, 4), torch.rand(8, 3, 4, 4)
    values, explained, _ = explain_shap(model, x, background, ShapConfig.of(nsamples=8, batch_size=8))
    with torch.no_grad():
        assert torch.equal(explained, model(x).argmax(1))
    assert values.shape == x.shape


def test_explain_ig_restores_the_callers_training_mode():
    model = build_model("resnet18_cifar", 3, [0.5] * 3, [0.25] * 3, width=0.0625).train()
    x = torch.rand(2, 3, 8, 8)
    explain_ig(model, x, torch.tensor([0, 1]), IGConfig.of(steps=2, trials=1), torch.Generator().manual_seed(0))
    assert all(m.training for m in model.modules())
    assert all(p.requires_grad for p in model.parameters())
