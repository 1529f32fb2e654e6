"""The hand-written explanation metrics against Quantus 0.6.0 on the same inputs and the same random draws.

Documented definition differences (docs/interpretability.md, "Cross-checks against Quantus"):
- gini == Sparseness on per-pixel |attribution| (channels summed; Quantus reads the map it is given).
- deletion_auc == the trapezoid over [f(x)] + PixelFlipping's curve at x spacing 1/steps, on one-channel
  images (on three, Quantus orders and flips single channel values where we flip whole pixels). Quantus's
  curve omits the unperturbed point and its AUC helper uses unit spacing (and calls np.trapz, which
  NumPy 2.4 removed, so its `return_auc_per_sample` fails here; the test integrates the curve).
- sensitivity_max (captum) == MaxSensitivity: both max ||a(x) - a(x')|| / ||a(x)|| over the same draws.
- Quantus's "black" baseline is each image's minimum, not 0: the tests pass perturb_baseline=0.0.
- infidelity (captum, normalize=False) == Infidelity with Gaussian noise as its perturbation and one
  patch covering the image; Quantus's default perturbs square patches to black instead.
- faithfulness_correlation == FaithfulnessCorrelation on one-channel images; on three channels
  Quantus draws single channel values where we draw whole pixels.
- local_lipschitz == LocalLipschitzEstimate with normalise=False (Quantus max-normalises by default).
"""

import warnings

import numpy as np
import pytest
import torch

quantus = pytest.importorskip("quantus", reason="test-only dependency: pip install quantus==0.6.0")

from robinterp import attribution_metrics  # noqa: E402
from robinterp.attribution_metrics import faithfulness_correlation, local_lipschitz_estimate, random_pixel_subsets  # noqa: E402


def _net(channels=3, seed=0):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(channels, 4, 3, padding=1),
        torch.nn.Softplus(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 8 * 8, 3),
    ).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def _case(n=5, channels=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, channels, 8, 8, generator=g), torch.randint(0, 3, (n,), generator=g), g


def _saliency(model, inputs, targets, **kwargs):
    """Quantus explain_func: our saliency explainer (logit) as numpy."""
    x = torch.as_tensor(inputs, dtype=torch.float32)
    return (
        attribution_metrics.explainer_of("saliency", model, "logit", 16, None)(x, torch.as_tensor(targets))
        .detach()
        .numpy()
    )


def _np(*tensors):
    return [t.detach().numpy() for t in tensors]


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def test_gini_equals_quantus_sparseness():
    model, (x, y, g) = _net(), _case()
    a = torch.randn(x.shape, generator=g)
    per_pixel = attribution_metrics.pixel_importance(a).view(len(x), 1, 8, 8)
    x_np, y_np, a_np = _np(x, y, per_pixel)
    got = quantus.Sparseness(disable_warnings=True)(
        model=model, x_batch=x_np, y_batch=y_np, a_batch=a_np, channel_first=True, device="cpu"
    )
    np.testing.assert_allclose(attribution_metrics.gini(a).numpy(), got, rtol=1e-6)


def test_deletion_auc_equals_pixel_flipping_curve_with_the_start_point():
    model, (x, y, g) = _net(channels=1), _case(channels=1)  # 3 channels: Quantus flips channel values
    a = torch.rand(x.shape, generator=g)
    steps, per_step = 16, 4  # 64 pixels, 4 per step
    ours, _ = attribution_metrics.deletion_insertion(model, x, a, y, steps, "zero", "probability", 256, "absolute")
    per_pixel = attribution_metrics.pixel_importance(a).view(len(x), 1, 8, 8)
    x_np, y_np, a_np = _np(x, y, per_pixel)
    curves = quantus.PixelFlipping(features_in_step=per_step, perturb_baseline=0.0, disable_warnings=True)(
        model=model, x_batch=x_np, y_batch=y_np, a_batch=a_np, channel_first=True, device="cpu", softmax=True
    )
    start = torch.softmax(model(x), 1).gather(1, y[:, None]).squeeze(1).numpy()
    auc = np.trapezoid(np.c_[start, np.asarray(curves)], dx=1 / steps, axis=1)
    np.testing.assert_allclose(ours.numpy(), auc, rtol=1e-5)


def test_sensitivity_max_equals_max_sensitivity():
    model, (x, y, _) = _net(), _case()
    samples, radius = 6, 0.05
    torch.manual_seed(0)
    ours = attribution_metrics.sensitivity_max(
        model, x, y, "saliency", 16, radius=radius, samples=samples, output="logit"
    )
    torch.manual_seed(0)  # captum draws one batch: image i's sample s is row i * samples + s
    noise = torch.FloatTensor(len(x) * samples, *x.shape[1:]).uniform_(-radius, radius)
    noise = noise.view(len(x), samples, -1).numpy()
    step = iter(range(samples))

    def same_noise(arr, indices, **kwargs):
        return arr + noise[:, next(step)]

    x_np, y_np = _np(x, y)
    a_np = _saliency(model, x_np, y_np)
    got = quantus.MaxSensitivity(nr_samples=samples, perturb_func=same_noise, disable_warnings=True)(
        model=model, x_batch=x_np, y_batch=y_np, a_batch=a_np, channel_first=True, device="cpu", explain_func=_saliency
    )
    np.testing.assert_allclose(ours.numpy(), got, rtol=1e-4)  # both relative to ||a(x)||


def test_infidelity_equals_quantus_infidelity_with_gaussian_noise_on_one_patch():
    model, (x, y, g) = _net(), _case()
    a = torch.randn(x.shape, generator=g)
    samples, std = 7, 0.1
    ours = attribution_metrics.infidelity(
        model, x, a, y, std, samples, "logit", torch.Generator().manual_seed(3), normalize=False
    )
    # captum perturbs one batch of repeat_interleave'd inputs: image i's sample s is row i * samples + s
    noise = torch.randn((len(x) * samples, *x.shape[1:]), generator=torch.Generator().manual_seed(3)) * std
    noise = noise.view(len(x), samples, -1).numpy()
    step = iter(range(samples))

    def same_noise(arr, indices, **kwargs):
        return arr - noise[:, next(step)]

    x_np, y_np, a_np = _np(x, y, a)
    got = quantus.Infidelity(
        n_perturb_samples=samples, perturb_patch_sizes=[8], perturb_func=same_noise, disable_warnings=True
    )(model=model, x_batch=x_np, y_batch=y_np, a_batch=a_np, channel_first=True, device="cpu", softmax=False)
    np.testing.assert_allclose(ours.numpy(), got, rtol=1e-4)


def test_faithfulness_correlation_equals_quantus_on_one_channel_images(monkeypatch):
    model, (x, y, g) = _net(channels=1), _case(channels=1)
    a = torch.randn(x.shape, generator=g)
    runs, size = 12, 13
    subsets = random_pixel_subsets(len(x), runs, 64, size, torch.Generator().manual_seed(4))
    ours = faithfulness_correlation(model, x, a, y, subsets.shape[1], 0.2, "zero", "logit", None, 256, subsets=subsets)
    draws = iter(subsets.transpose(0, 1).reshape(-1, size).numpy())  # Quantus: run-major, image-minor
    monkeypatch.setattr(np.random, "choice", lambda *args, **kwargs: next(draws))
    x_np, y_np, a_np = _np(x, y, a)
    got = quantus.FaithfulnessCorrelation(
        nr_runs=runs, subset_size=size, perturb_baseline=0.0, return_aggregate=False, disable_warnings=True
    )(model=model, x_batch=x_np, y_batch=y_np, a_batch=a_np, channel_first=True, device="cpu", softmax=False)
    np.testing.assert_allclose(ours.numpy(), got, rtol=1e-5)


def test_local_lipschitz_equals_quantus_without_its_normalisation():
    model, (x, y, _) = _net(), _case()
    samples, std = 5, 0.1
    ours = local_lipschitz_estimate(
        model, x, y, "saliency", 16, std, samples, "logit", torch.Generator().manual_seed(5)
    )
    g = torch.Generator().manual_seed(5)
    noise = [(torch.randn(x.shape, generator=g) * std).flatten(1).numpy() for _ in range(samples)]
    step = iter(noise)

    def same_noise(arr, indices, **kwargs):
        return arr + next(step)

    x_np, y_np = _np(x, y)
    got = quantus.LocalLipschitzEstimate(
        nr_samples=samples, perturb_func=same_noise, normalise=False, disable_warnings=True
    )(
        model=model,
        x_batch=x_np,
        y_batch=y_np,
        a_batch=_saliency(model, x_np, y_np),
        channel_first=True,
        device="cpu",
        explain_func=_saliency,
    )
    np.testing.assert_allclose(ours.numpy(), got, rtol=1e-4)
