"""Every attribution metric of one model (the dataset's `metrics.interpretability` block): the
input-gradient alignment on test images, then for each attribution file (ig, shap) the metrics
that score it, and the explainer's sensitivity and Lipschitz estimate, each with its mean and 95%
bootstrap interval. Run: `robinterp interpretability-metrics` (commands/attribution_metrics.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .attribution_metrics import (
    DIRECTION,
    deletion_insertion,
    faithfulness_correlation,
    gini,
    gradient_alignment,
    infidelity,
    local_lipschitz_estimate,
    sensitivity_max,
)
from .attributions import OUTPUTS
from .errors import RobinterpError
from .settings import Settings
from .stats import bootstrap_mean


@dataclass(frozen=True)
class InterpretabilityConfig(Settings):
    """The dataset's `metrics.interpretability` block (defaults: robinterp/config.schema.yaml)."""

    SECTION = "metrics.interpretability"

    sample: int  # attributed images used (the first rows of each attributions file)
    target: str  # class the attributions explain (analyses default: pred) - or label
    output: str  # what `explainer` explains (sensitivity, Lipschitz); attribution files say their own
    steps: int  # deletion/insertion: steps + 1 pixel fractions
    ranking: str  # deletion/insertion order: absolute (|attribution|) or signed
    baseline: str  # what deleted pixels become / insertion starts from: zero, mean, blur
    infidelity_samples: int
    infidelity_noise: float  # std of the Gaussian pixel perturbation
    alignment_max_images: int | None  # null = whole test split
    sensitivity_images: int
    sensitivity_samples: int
    sensitivity_radius: float  # L-inf radius (pixel units)
    explainer: str  # key of attribution_metrics.EXPLAINERS
    explainer_steps: int  # path steps of the integrated_gradients and paper_ig explainers
    faithfulness_runs: int  # random pixel subsets per image (Quantus: 100)
    faithfulness_fraction: float  # share of the pixels in each subset
    lipschitz_samples: int  # Gaussian neighbours per image (on the sensitivity images)
    lipschitz_noise: float  # their std (pixel units; Quantus: 0.1)
    batch_size: int
    bootstrap: int
    seed: int


def load_attributions(path) -> dict:
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise RobinterpError(f"{path}: file not found (made by the analyses' attribution rules)")
    with np.load(path) as z:
        missing = [k for k in ("images", "attributions", "labels", "preds") if k not in z]
        if missing:
            raise RobinterpError(f"{path}: missing array(s) {missing}; expected images, attributions, labels, preds")
        return {k: z[k] for k in z.files}


def explained_output(attributions: dict, method: str) -> str:
    """What an attributions file explains: probability or logit (the metrics score the same)."""
    if "output" not in attributions:
        raise RobinterpError(
            f"{method} attributions do not say what they explain (array 'output', written since the "
            f"metrics score it): rerun the analysis, e.g. snakemake --forcerun ig shap"
        )
    output = str(attributions["output"])
    if output not in OUTPUTS:
        raise RobinterpError(
            f"{method} attributions: output {output!r}, expected one of {list(OUTPUTS)}; rerun the "
            "analysis, e.g. snakemake --forcerun ig shap"
        )
    return output


def evaluate_interpretability(
    model,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    attributions: dict[str, dict],
    cfg: InterpretabilityConfig,
    device,
) -> list[dict]:
    """Every metric for one model: a list of {metric, method, direction, values, mean, low, high}.
    The model's parameters are frozen and BatchNorm in eval mode meanwhile (restored after): the
    metrics differentiate with respect to the input only."""
    from .attacks import attack_mode

    with attack_mode(model):
        return _metrics(model, test_x, test_y, attributions, cfg, device)


def _metrics(model, test_x, test_y, attributions, cfg, device) -> list[dict]:
    gen = torch.Generator().manual_seed(cfg.seed)  # one stream, drawn in this order
    scores = [_alignment(model, test_x, test_y, cfg, device, gen)]
    for method, att in attributions.items():
        scores += _attribution_scores(model, method, att, cfg, device, gen)
    scores += _explainer_scores(model, test_x, test_y, cfg, device, gen)
    return [_entry(metric, method, output, values, cfg) for metric, method, output, values in scores]


def _entry(metric: str, method: str, output: str, values, cfg: InterpretabilityConfig) -> dict:
    """One metric's entry: its per-image values with their mean and bootstrap interval."""
    v = values.detach().cpu().double().numpy() if torch.is_tensor(values) else np.asarray(values)
    return {
        "metric": metric,
        "method": method,
        "direction": DIRECTION[metric],
        "output": output,
        **bootstrap_mean(v, cfg.bootstrap, cfg.seed),
        "values": v.tolist(),
    }


def _alignment(model, test_x, test_y, cfg, device, gen) -> tuple:
    """The input gradient's alignment with the image, on a seeded sample of the test split."""
    n_align = len(test_x) if cfg.alignment_max_images is None else min(cfg.alignment_max_images, len(test_x))
    idx = torch.randperm(len(test_x), generator=gen)[:n_align].sort().values
    return (
        "gradient_alignment",
        "input_gradient",
        "logit",
        torch.cat(
            [gradient_alignment(model, test_x[i].to(device), test_y[i].to(device)) for i in idx.split(cfg.batch_size)]
        ),
    )


def _attribution_scores(model, method: str, att: dict, cfg, device, gen) -> list[tuple]:
    """The metrics that score one attributions file, each on the score it explains."""
    output = explained_output(att, method)
    x = torch.from_numpy(att["images"][: cfg.sample]).float().to(device)
    a = torch.from_numpy(att["attributions"][: cfg.sample]).float().to(device)
    t = torch.from_numpy(att["labels" if cfg.target == "label" else "preds"][: cfg.sample]).long().to(device)
    deletion, insertion = deletion_insertion(
        model, x, a, t, cfg.steps, cfg.baseline, output, cfg.batch_size, cfg.ranking
    )
    infidelities = torch.cat(
        [
            infidelity(
                model,
                x[i : i + cfg.batch_size],
                a[i : i + cfg.batch_size],
                t[i : i + cfg.batch_size],
                cfg.infidelity_noise,
                cfg.infidelity_samples,
                output,
                gen,
                batch_size=cfg.batch_size,
            )
            for i in range(0, len(x), cfg.batch_size)
        ]
    )
    faithfulness = faithfulness_correlation(
        model, x, a, t, cfg.faithfulness_runs, cfg.faithfulness_fraction, cfg.baseline, output, gen, cfg.batch_size
    )
    return [
        ("gini", method, output, gini(a)),
        ("deletion_auc", method, output, deletion),
        ("insertion_auc", method, output, insertion),
        ("infidelity", method, output, infidelities),
        ("faithfulness_correlation", method, output, faithfulness),
    ]


def _explainer_scores(model, test_x, test_y, cfg, device, gen) -> list[tuple]:
    """How stable the explainer is: sensitivity_max and the local Lipschitz estimate, on the same images."""
    torch.manual_seed(cfg.seed)  # captum's sensitivity perturbations use the global generator
    sidx = torch.randperm(len(test_x), generator=gen)[: cfg.sensitivity_images].sort().values
    batches = [(test_x[i].contiguous().to(device), test_y[i].to(device)) for i in sidx.split(cfg.batch_size)]
    sensitivity = torch.cat(
        [
            sensitivity_max(
                model,
                x,
                y,
                cfg.explainer,
                cfg.explainer_steps,
                cfg.sensitivity_radius,
                cfg.sensitivity_samples,
                cfg.output,
                cfg.batch_size,
            )
            for x, y in batches
        ]
    )
    lipschitz = torch.cat(
        [
            local_lipschitz_estimate(
                model,
                x,
                y,
                cfg.explainer,
                cfg.explainer_steps,
                cfg.lipschitz_noise,
                cfg.lipschitz_samples,
                cfg.output,
                gen,
                cfg.batch_size,
            )
            for x, y in batches
        ]
    )
    return [
        ("sensitivity_max", cfg.explainer, cfg.output, sensitivity),
        ("local_lipschitz", cfg.explainer, cfg.output, lipschitz),
    ]
