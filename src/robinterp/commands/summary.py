"""Verbs of workflow/rules/summary.smk: the robustness-interpretability curve of a dataset and
results/summary.md (every table and curve on one page)."""

from __future__ import annotations

from pathlib import Path

from ..verbs import named_paths, verb


@verb(
    "robustness-curve",
    "every quantity against the training eps or, across published models, robust accuracy; "
    "its rank correlation with robust accuracy (reads JSON only)",
    settings=("variants", "metrics.curve"),
)
def robustness_curve_verb(a):
    from .. import storage
    from ..across_models import plot_models, rank_correlations, with_robustness
    from ..curve import compare_ends, curve_axis, curve_frame, plot_curve, training_eps
    from ..tables import write_table

    read = lambda paths: [storage.read_json(p) for p in paths or []]
    accuracy, curve = read(a.accuracy), a.settings["metrics.curve"]
    frame = curve_frame(training_eps(a.settings["variants"]), accuracy, read(a.fid), read(a.metrics))
    df = with_robustness(frame, accuracy)
    axis = curve_axis([v for v in a.settings["variants"] if v["name"] in set(df["variant"])], curve["x"])
    df["placed_by"] = axis
    table = rank_correlations(df, curve["bootstrap"], curve["seed"])
    storage.write_text(a.out_csv, df.to_csv(index=False))
    write_table(
        table,
        a.out_correlation_csv,
        a.out_correlation_md,
        a.out_correlation_notes,
        f"Rank correlation of each quantity with robust accuracy over the models of {a.dataset}",
        CORRELATION_NOTES,
    )
    title = f"{a.dataset}: robustness vs interpretability"
    if axis == "eps":
        plot_curve(df, a.out_png, title)
    else:
        plot_models(df, table, a.out_png, f"{title} across {df['variant'].nunique()} models")
    print("\n".join(compare_ends(df, "eps" if axis == "eps" else "robust_acc")))


CORRELATION_NOTES = (
    "spearman: Spearman's rank correlation over the models between robust accuracy (AutoAttack where it ran, else "
    "the eval attack's PGD) and the quantity's estimate; ci_low/ci_high: its 95% percentile bootstrap interval, the "
    "models resampled with replacement (metrics.curve.bootstrap rounds). Below 5 models no rank correlation "
    "reaches the 95% level: no interval or verdict then. A positive rho with "
    "`better` higher (a negative one with lower) means more robust models score better; the verdict says so only "
    "when the interval excludes 0. The models differ in more than robustness (architecture, data, recipe): a "
    "correlation, not an effect of robustness alone."
)


robustness_curve_verb.flags = lambda p: (
    p.add_argument(
        "--accuracy", type=Path, nargs="*", default=[], help="eval/<variant>/accuracy.json of the curve's variants"
    ),
    p.add_argument("--fid", type=Path, nargs="*", default=[], help="fid/<variant>.json"),
    p.add_argument("--metrics", type=Path, nargs="*", default=[], help="interpretability/<variant>.json"),
    p.add_argument("--dataset", default=""),
    p.add_argument(
        "--out-csv", type=Path, required=True, help="the long table: variant, eps, robust accuracy, quantity"
    ),
    p.add_argument("--out-png", type=Path, required=True),
    p.add_argument("--out-correlation-csv", type=Path, required=True, help="rank correlation with robust accuracy"),
    p.add_argument("--out-correlation-md", type=Path, required=True, help="the same, Markdown with notes"),
    p.add_argument("--out-correlation-notes", type=Path, required=True, help="its notes (.notes.json)"),
)


@verb("summary", "one-page results/summary.md from every table and curve")
def summary_verb(a):
    from .. import storage
    from ..errors import RobinterpError
    from ..summary import summary_markdown

    tables = named_paths(a.tables, "--tables", "DATASET")
    if len(a.notes) != len(tables):
        raise RobinterpError(
            f"--notes: {len(a.notes)} file(s) for {len(tables)} table(s); give each table's "
            "<name>.notes.json, in the order of --tables"
        )
    curves = named_paths(a.curves, "--curves", "DATASET")
    correlations = named_paths(a.correlations, "--correlations", "DATASET")
    storage.write_text(a.out, summary_markdown(tables, curves, a.notes, correlations))
    print(f"summary: -> {a.out}")


summary_verb.flags = lambda p: (
    p.add_argument("--tables", nargs="+", required=True, help="DATASET=tables/<name>.csv, in display order"),
    p.add_argument(
        "--notes",
        type=Path,
        nargs="+",
        required=True,
        help="each table's notes (tables/<name>.notes.json, written with it), in the order of --tables",
    ),
    p.add_argument("--curves", nargs="*", default=[], help="DATASET=robustness_curve.csv"),
    p.add_argument("--correlations", nargs="*", default=[], help="DATASET=robustness_correlation.csv"),
    p.add_argument("--out", type=Path, required=True),
)
