"""Model parameter randomisation (sanity check of the attributions): the compute verb writes each
variant's cascade as JSON, the plot verb draws every variant's cascade from those files."""

from __future__ import annotations

from pathlib import Path

from ..cli import json_arg as _json, verb


@verb("parameter-randomisation", "rank correlation of |attribution| between the trained and cascading randomised "
                                 "models (Adebayo et al. 2018) -> JSON")
def parameter_randomisation_verb(a):
    import time

    import numpy as np
    import torch

    from .. import storage
    from ..attributions import IGConfig, ShapConfig
    from ..checkpoints import load_model
    from ..data import load_split
    from ..errors import RobinterpError
    from ..evaluate import resolve_device
    from ..metrics import load_attributions
    from ..randomisation import (RandomisationConfig, ig_for_target, randomisation_cascade, shap_for_target,
                                 summarise_cascade)

    cfg = RandomisationConfig.from_dict(a.config_json)
    device = resolve_device(a.device)
    model, _ = load_model(a.checkpoint, device)
    start, entries, cascades = time.time(), [], {}
    for item in a.attributions:
        method, sep, path = item.partition("=")
        if method not in ("ig", "shap") or not sep:
            raise RobinterpError(f"--attributions {item!r}: expected ig=PATH or shap=PATH")
        att = load_attributions(path)
        x = torch.from_numpy(att["images"][:cfg.images]).float().to(device)
        t = torch.from_numpy(att["labels" if cfg.target == "label" else "preds"][:cfg.images]).long().to(device)
        if method == "ig":
            explain = ig_for_target(x, t, IGConfig.from_dict(a.ig_json))
        else:
            if a.train is None:
                raise RobinterpError("--attributions shap=...: give --train (the SHAP background split)")
            shap_cfg = ShapConfig.from_dict(a.shap_json)
            train = load_split(a.train)
            bg = np.sort(np.random.default_rng(shap_cfg.seed).permutation(len(train))[:shap_cfg.background])
            explain = shap_for_target(x, t, train.tensors(bg)[0].to(device), shap_cfg)
        cascades[method], entry = summarise_cascade(randomisation_cascade(model, explain, cfg.seed), method, cfg)
        entries.append(entry)
        c = cascades[method]
        print(f"parameter-randomisation: {a.variant} {method} Spearman after {c['stages'][0]} {c['mean'][0]:.3f}, "
              f"after all {len(c['stages'])} stages {entry['mean']:.3f} [{entry['low']:.3f}, {entry['high']:.3f}] "
              f"(n={entry['n']})")
    storage.write_json(a.out, {
        "variant": a.variant, "metrics": entries, "cascade": cascades, "config": cfg.__dict__,
        "checkpoint": str(a.checkpoint), "attributions": list(a.attributions), "seconds": round(time.time() - start, 2),
        "provenance": storage.provenance(device=str(device))})


parameter_randomisation_verb.flags = lambda p: (
    p.add_argument("--checkpoint", type=Path, required=True),
    p.add_argument("--attributions", nargs="+", required=True,
                   help="METHOD=attributions.npz (ig, shap): the images and classes explained"),
    p.add_argument("--train", type=Path, default=None, help="packed training split (SHAP background)"),
    p.add_argument("--ig-json", type=_json, default=None, help="the dataset's analyses.ig block"),
    p.add_argument("--shap-json", type=_json, default=None, help="the dataset's analyses.shap block"),
    p.add_argument("--config-json", type=_json, default=None, help="the dataset's metrics.randomisation block"),
    p.add_argument("--variant", default=""),
    p.add_argument("--device", default="auto"),
    p.add_argument("--out", type=Path, required=True),
)


@verb("randomisation-plot", "the cascading randomisation figure from parameter-randomisation JSON (no model)")
def randomisation_plot_verb(a):
    from .. import storage
    from ..plots import plot_randomisation_cascade

    results = [storage.read_json(p) for p in a.inputs]
    plot_randomisation_cascade(results, a.out, f"{a.dataset}: model parameter randomisation (cascading, top first)")
    print(f"randomisation-plot: {len(results)} variants -> {a.out}")


randomisation_plot_verb.flags = lambda p: (
    p.add_argument("--inputs", type=Path, nargs="+", required=True, help="interpretability/randomisation/<variant>.json"),
    p.add_argument("--dataset", default=""),
    p.add_argument("--out", type=Path, required=True, help="PNG"),
)
