"""No pass through the network holds more images than the configured batch size.

A hook on the model's first convolution records every pass's batch; each method runs on more
images than its batch size. tests/test_peak_memory.py checks the same through peak RSS.
"""

import numpy as np
import pytest
import torch

from robinterp.attributions import IGConfig, NoGradChunks, ShapConfig, explain_ig, explain_shap
from robinterp.interpretability import InterpretabilityConfig, evaluate_interpretability
from robinterp.models import build_model
from robinterp.synthesis import ClassGenerationConfig, generate_classes, target_logits

BATCH = 4


@pytest.fixture
def model_and_passes():
    torch.manual_seed(0)
    model = build_model("resnet18_cifar", 4, [0.5] * 3, [0.25] * 3, width=0.0625).eval()
    passes = []
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    conv.register_forward_pre_hook(lambda mod, args: passes.append(args[0].shape[0]))
    return model, passes


def _images(n, seed=0):
    return torch.rand((n, 3, 8, 8), generator=torch.Generator().manual_seed(seed))


def test_class_generation_and_its_logits_run_in_batches(model_and_passes):
    model, passes = model_and_passes
    cfg = ClassGenerationConfig.from_dict(
        {"per_class": 3, "downsample": 2, "eps": 3, "step_size": 0.5, "steps": 2, "batch_size": BATCH}
    )
    seeds, images, targets = generate_classes(model, lambda k: _images(5, k), 4, cfg)
    assert len(images) == 12 and targets.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    logit, hit = target_logits(model, images, targets, BATCH)
    assert max(passes) <= BATCH
    with torch.no_grad():
        whole = model(images)
    torch.testing.assert_close(logit, whole.gather(1, targets[:, None]).squeeze(1))
    assert hit.tolist() == (whole.argmax(1) == targets).tolist()


def test_ig_and_shap_scores_run_in_batches(model_and_passes):
    model, passes = model_and_passes
    x, target = _images(6), torch.tensor([0, 1, 2, 3, 0, 1])
    explain_ig(
        model,
        x,
        target,
        IGConfig.from_dict({"steps": 3, "trials": 2, "batch_size": BATCH}),
        torch.Generator().manual_seed(0),
    )
    assert max(passes) <= BATCH
    passes.clear()
    values, explained, _ = explain_shap(
        model, x, _images(12, 1), ShapConfig.from_dict({"background": 12, "nsamples": 4, "batch_size": BATCH})
    )
    assert values.shape == x.shape and len(explained) == 6
    assert max(passes) <= BATCH


def test_no_grad_chunks_split_only_passes_without_gradients():
    seen = []
    chunks = NoGradChunks(torch.nn.Identity(), 3)
    chunks.module.register_forward_pre_hook(lambda mod, args: seen.append(len(args[0])))
    x = torch.arange(8.0)[:, None]
    with torch.no_grad():
        assert torch.equal(chunks(x), x)
    assert seen == [3, 3, 2]
    seen.clear()
    chunks(x.clone().requires_grad_(True)).sum().backward()
    assert seen == [8]


def test_interpretability_metrics_run_in_batches(model_and_passes):
    model, passes = model_and_passes
    x, y = _images(10), torch.arange(10) % 4
    att = {
        "images": x[:6].numpy(),
        "attributions": np.random.default_rng(0).normal(size=(6, 3, 8, 8)),
        "labels": y[:6].numpy(),
        "preds": y[:6].numpy(),
        "output": np.array("probability"),
    }
    cfg = InterpretabilityConfig.from_dict(
        {
            "sample": 6,
            "steps": 2,
            "infidelity_samples": 3,
            "sensitivity_images": 6,
            "sensitivity_samples": 3,
            "explainer": "saliency",
            "batch_size": BATCH,
            "bootstrap": 0,
            "faithfulness_runs": 4,
            "lipschitz_samples": 2,
        }
    )
    entries = evaluate_interpretability(model, x, y, {"ig": att}, cfg, torch.device("cpu"))
    assert {e["metric"] for e in entries} >= {
        "gradient_alignment",
        "infidelity",
        "sensitivity_max",
        "faithfulness_correlation",
        "local_lipschitz",
    }
    assert all(e["n"] > 0 for e in entries)
    assert max(passes) <= BATCH
