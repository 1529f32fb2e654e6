"""Verbs of workflow/rules/attribution_metrics.smk: the attribution metrics of one model, the
parameter randomisation check (Adebayo et al. 2018), its figure, and the interpretability table."""

from __future__ import annotations

from pathlib import Path

from ..verbs import named_paths, table_flags, verb


@verb(
    "interpretability-metrics",
    "alignment, Gini, deletion/insertion, infidelity, sensitivity of one model -> JSON",
    settings=("metrics.interpretability", "device"),
)
def interpretability_metrics_verb(a):
    import time

    from .. import storage
    from ..checkpoints import load_fitting
    from ..device import select
    from ..interpretability import InterpretabilityConfig, evaluate_interpretability, load_attributions

    cfg = InterpretabilityConfig.from_block(a.settings["metrics.interpretability"])
    device, where = select(a.settings["device"])
    model, _, (split,) = load_fitting(a.checkpoint, device, a.test)
    x, y = split.tensors()
    paths = dict(named_paths(a.attributions, "--attributions", "METHOD"))
    start = time.time()
    entries = evaluate_interpretability(model, x, y, {m: load_attributions(p) for m, p in paths.items()}, cfg, device)
    storage.write_json(
        a.out,
        {
            "variant": a.variant,
            "metrics": entries,
            "config": cfg.__dict__,
            "checkpoint": str(a.checkpoint),
            "test": str(a.test),
            "test_sha256": split.sha256,
            "attributions": {m: str(p) for m, p in paths.items()},
            "seconds": round(time.time() - start, 2),
            "provenance": storage.provenance(device=where),
        },
    )
    for e in entries:
        print(
            f"interpretability-metrics: {a.variant} {e['metric']}/{e['method']} {e['mean']:.4f} "
            f"[{e['low']:.4f}, {e['high']:.4f}] n={e['n']} ({e['direction']} is better)"
        )


interpretability_metrics_verb.flags = lambda p: (
    p.add_argument("--checkpoint", type=Path, required=True),
    p.add_argument("--test", type=Path, required=True, help="packed test split (alignment, sensitivity)"),
    p.add_argument("--attributions", nargs="*", default=[], help="METHOD=attributions.npz (ig=..., shap=...)"),
    p.add_argument("--variant", default=""),
    p.add_argument("--out", type=Path, required=True),
)


# --- model parameter randomisation (sanity check of the attributions) ----------------------------


@verb(
    "parameter-randomisation",
    "rank correlation of |attribution| between the trained and cascading randomised "
    "models (Adebayo et al. 2018) -> JSON",
    settings=("metrics.randomisation", "analyses.ig", "analyses.shap", "device"),
)
def parameter_randomisation_verb(a):
    import time

    from .. import storage
    from ..attributions import IGConfig, ShapConfig
    from ..checkpoints import load_fitting
    from ..device import select
    from ..interpretability import load_attributions
    from ..randomisation import RandomisationConfig, randomisation_check

    cfg = RandomisationConfig.from_block(a.settings["metrics.randomisation"])
    device, where = select(a.settings["device"])
    model, _, splits = load_fitting(a.checkpoint, device, *([a.train] if a.train else []))
    train = splits[0] if splits else None
    paths = dict(named_paths(a.attributions, "--attributions", "METHOD"))
    start = time.time()
    entries, cascades = randomisation_check(
        model,
        {m: load_attributions(p) for m, p in paths.items()},
        cfg,
        IGConfig.from_block(a.settings["analyses.ig"]),
        ShapConfig.from_block(a.settings["analyses.shap"]),
        train,
    )
    for entry in entries:
        c = cascades[entry["method"]]
        print(
            f"parameter-randomisation: {a.variant} {entry['method']} Spearman after {c['stages'][0]} "
            f"{c['mean'][0]:.3f}, after all {len(c['stages'])} stages {entry['mean']:.3f} "
            f"[{entry['low']:.3f}, {entry['high']:.3f}] (n={entry['n']})"
        )
    storage.write_json(
        a.out,
        {
            "variant": a.variant,
            "metrics": entries,
            "cascade": cascades,
            "config": cfg.__dict__,
            "checkpoint": str(a.checkpoint),
            "attributions": list(a.attributions),
            "seconds": round(time.time() - start, 2),
            "provenance": storage.provenance(device=where),
        },
    )


parameter_randomisation_verb.flags = lambda p: (
    p.add_argument("--checkpoint", type=Path, required=True),
    p.add_argument(
        "--attributions",
        nargs="+",
        required=True,
        help="METHOD=attributions.npz (ig, shap): the images and classes explained",
    ),
    p.add_argument("--train", type=Path, default=None, help="packed training split (SHAP background)"),
    p.add_argument("--variant", default=""),
    p.add_argument("--out", type=Path, required=True),
)


@verb("randomisation-plot", "the cascading randomisation figure from parameter-randomisation JSON (no model)")
def randomisation_plot_verb(a):
    from .. import storage
    from ..figures import plot_randomisation_cascade

    results = [storage.read_json(p) for p in a.inputs]
    plot_randomisation_cascade(results, a.out, f"{a.dataset}: model parameter randomisation (cascading, top first)")
    print(f"randomisation-plot: {len(results)} variants -> {a.out}")


randomisation_plot_verb.flags = lambda p: (
    p.add_argument(
        "--inputs", type=Path, nargs="+", required=True, help="interpretability/randomisation/<variant>.json"
    ),
    p.add_argument("--dataset", default=""),
    p.add_argument("--out", type=Path, required=True, help="PNG"),
)


# --- the table ------------------------------------------------------------------------------------------


@verb("interpretability-table", "merge interpretability-metrics JSON into interpretability.csv/.md")
def interpretability_table_verb(a):
    from .. import storage
    from ..tables import interpretability_notes, interpretability_table, write_table

    results = [storage.read_json(p) for p in a.inputs]
    df = interpretability_table(results)
    write_table(
        df,
        a.out_csv,
        a.out_md,
        a.out_notes,
        f"Quantitative interpretability on {a.dataset} (mean, 95% CI)",
        interpretability_notes(results),
    )
    print(df.to_string(index=False))


interpretability_table_verb.flags = table_flags
