"""Model parameter randomisation test (Adebayo et al. 2018, "Sanity checks for saliency maps").

Cascading from the top: the trained model's stages are re-initialised one after another, output
layer first, and after each step the same images are explained again with the same method and
settings. Per image, the Spearman rank correlation of per-pixel |attribution| (summed over
channels) between the trained model and the randomised one says how much the explanation still
looks like the trained model's. An explanation that survives randomisation (correlation near 1
with every layer re-initialised) reflects the input, not what the model learned.

Stages: the top-level parameterised modules of the network (single-child wrappers such as the
input normaliser's `Classifier` are looked through); for the CIFAR ResNet18: linear, layer4,
layer3, layer2, layer1, bn1, conv1 (a ResNet stage of two blocks is one step: every step
re-explains the images, so the demo's cost grows with the number of steps). A network that keeps
all its blocks in one container (RobustBench's DeepMind WideResNet: `layer`) is cascaded over
that container's items, its block groups: logits, batchnorm, layer.2, layer.1, layer.0, init_conv. A stage is
re-initialised with every sub-module's own `reset_parameters()` (BatchNorm too, as Quantus's
MPRT does), seeded per stage. Method explainers: `ig` (the analyses' `explain_ig`, its noise
baselines re-seeded identically at every step) and `shap` (shap's GradientExplainer for the
trained model's class). Run: `robinterp parameter-randomisation` (commands/attribution_metrics.py).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from .attribution_metrics import DIRECTION, pixel_importance
from .errors import RobinterpError
from .settings import Settings
from .stats import bootstrap_mean, spearman_rows


@dataclass(frozen=True)
class RandomisationConfig(Settings):
    """The dataset's `metrics.randomisation` block (defaults: robinterp/config.schema.yaml)."""

    SECTION = "metrics.randomisation"

    images: int  # explained images per variant (the first rows of each attributions file)
    target: str  # class explained at every step: the trained model's prediction, or label
    bootstrap: int  # rounds for the 95% interval of the mean correlation
    seed: int  # re-initialisation and explainer noise


def cascade_stages(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) stages in top-down order (output layer first)."""
    has_params = lambda m: next(m.parameters(), None) is not None
    root, prefix = model, ""
    while True:  # look through wrappers with a single parameterised child
        children = [(n, c) for n, c in root.named_children() if has_params(c)]
        if len(children) != 1 or next(root.parameters(recurse=False), None) is not None:
            break
        prefix, root = prefix + children[0][0] + ".", children[0][1]
    stages = list(children)
    containers = [i for i, (_, c) in enumerate(stages) if type(c) in (nn.Sequential, nn.ModuleList)]
    if len(containers) == 1:  # every block in one container (DeepMind's WideResNet `layer`): its items are the stages
        i = containers[0]
        name, container = stages[i]
        items = [(f"{name}.{n}", c) for n, c in container.named_children() if has_params(c)]
        stages[i : i + 1] = items if len(items) > 1 else [(name, container)]
    if not stages:
        raise RobinterpError("parameter randomisation: the model has no parameterised layers")
    return stages[::-1]


def reinitialise(module: nn.Module, seed: int) -> None:
    """Every sub-module's own `reset_parameters()` under a fixed seed (global RNG restored after)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in module.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()


def _importance(attributions: torch.Tensor) -> np.ndarray:
    """Per-pixel |attribution| summed over channels, N x (H*W) float64 on the host."""
    return pixel_importance(attributions).detach().double().cpu().numpy()


def randomisation_cascade(model: nn.Module, explain: Callable[[nn.Module], torch.Tensor], seed: int) -> dict:
    """Explain with the trained model, then after each top-down re-initialisation step.

    `explain(model)` returns N x C x H x W attributions of fixed images and classes. Returns
    {"stages": names, "spearman": stages x N}; the model passed in is left untouched.
    """
    work = copy.deepcopy(model).eval()
    for p in work.parameters():
        p.requires_grad_(False)
    trained = _importance(explain(work))
    names, rows = [], []
    for i, (name, module) in enumerate(cascade_stages(work)):
        reinitialise(module, seed + i)
        names.append(name)
        rows.append(spearman_rows(trained, _importance(explain(work))))
    return {"stages": names, "spearman": np.stack(rows)}


def summarise_cascade(result: dict, method: str, cfg: RandomisationConfig) -> tuple[dict, dict]:
    """(cascade for the JSON and the figure: mean and 95% interval per step; the table entry: the
    correlation with every stage re-initialised)."""
    steps = [bootstrap_mean(row, cfg.bootstrap, cfg.seed) for row in result["spearman"]]
    cascade = {
        "stages": result["stages"],
        "spearman": result["spearman"].tolist(),
        "mean": [s["mean"] for s in steps],
        "low": [s["low"] for s in steps],
        "high": [s["high"] for s in steps],
    }
    entry = {
        "metric": "randomisation_spearman",
        "method": method,
        "direction": DIRECTION["randomisation_spearman"],
        **steps[-1],
        "values": result["spearman"][-1].tolist(),
    }
    return cascade, entry


# --- the analyses' explainers at a fixed class -----------------------------------------------------


def ig_for_target(x: torch.Tensor, target: torch.Tensor, cfg) -> Callable[[nn.Module], torch.Tensor]:
    """The analyses' IG (settings `cfg`: attributions.IGConfig) with the same noise baselines every call."""
    from .attributions import explain_ig

    return lambda model: explain_ig(model, x, target, cfg, torch.Generator().manual_seed(cfg.seed))[0]


def shap_for_target(
    x: torch.Tensor, target: torch.Tensor, background: torch.Tensor, cfg
) -> Callable[[nn.Module], torch.Tensor]:
    """shap's GradientExplainer (settings `cfg`: attributions.ShapConfig) for the given class of each
    image: one single-output explainer per image, so a randomised model explains the same class."""
    import shap

    from .attacks import attack_mode
    from .attributions import ScalarOutput

    class Column(nn.Module):
        def __init__(self, f, k):
            super().__init__()
            self.f, self.k = f, k

        def forward(self, z):
            return self.f(z)[:, self.k : self.k + 1]

    def explain(model):
        out = []
        for i in range(len(x)):
            f = Column(ScalarOutput(model, cfg.output), int(target[i]))
            with attack_mode(model), torch.no_grad():
                explainer = shap.GradientExplainer(f, background, batch_size=cfg.batch_size)
            with attack_mode(model):
                values = explainer.shap_values(x[i : i + 1], nsamples=cfg.nsamples, rseed=cfg.seed)
            values = np.asarray(values[0] if isinstance(values, list) else values)
            out.append(torch.as_tensor(values.reshape(x[i : i + 1].shape), dtype=torch.float32))
        return torch.cat(out)

    return explain


def randomisation_check(
    model: nn.Module, attributions: dict[str, dict], cfg: RandomisationConfig, ig_cfg, shap_cfg, train=None
) -> tuple[list[dict], dict]:
    """The cascade for each method's explained images ({method: attributions.npz contents}; the
    first `cfg.images` rows, their true or predicted class): (one summary entry per method,
    {method: the cascade}). SHAP draws its background from `train` as the `shap` verb does."""
    from .attributions import shap_background

    device = next(model.parameters()).device
    entries, cascades = [], {}
    for method, att in attributions.items():
        x = torch.from_numpy(att["images"][: cfg.images]).float().to(device)
        t = torch.from_numpy(att["labels" if cfg.target == "label" else "preds"][: cfg.images]).long().to(device)
        if method == "ig":
            explain = ig_for_target(x, t, ig_cfg)
        elif method == "shap":
            if train is None:
                raise RobinterpError("--attributions shap=...: give --train (the SHAP background split)")
            explain = shap_for_target(x, t, shap_background(train, shap_cfg)[1].to(device), shap_cfg)
        else:
            raise RobinterpError(f"--attributions {method}=...: the randomisation check explains ig or shap")
        cascades[method], entry = summarise_cascade(randomisation_cascade(model, explain, cfg.seed), method, cfg)
        entries.append(entry)
    return entries, cascades
