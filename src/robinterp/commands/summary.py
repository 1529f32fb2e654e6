"""Verbs of workflow/rules/summary.smk: the robustness-interpretability curve of a dataset and
results/summary.md (every table and curve on one page)."""

from __future__ import annotations

from pathlib import Path

from ..verbs import named_paths, verb


@verb(
    "robustness-curve",
    "plot accuracy, FID and every metric against the training eps (reads JSON only)",
    settings=("variants",),
)
def robustness_curve_verb(a):
    from .. import storage
    from ..curve import compare_ends, curve_frame, plot_curve, training_eps

    read = lambda paths: [storage.read_json(p) for p in paths or []]
    df = curve_frame(training_eps(a.settings["variants"]), read(a.accuracy), read(a.fid), read(a.metrics))
    storage.write_text(a.out_csv, df.to_csv(index=False))
    plot_curve(df, a.out_png, f"{a.dataset}: robustness vs interpretability")
    print("\n".join(compare_ends(df)))


robustness_curve_verb.flags = lambda p: (
    p.add_argument(
        "--accuracy", type=Path, nargs="*", default=[], help="eval/<variant>/accuracy.json of the curve's variants"
    ),
    p.add_argument("--fid", type=Path, nargs="*", default=[], help="fid/<variant>.json"),
    p.add_argument("--metrics", type=Path, nargs="*", default=[], help="interpretability/<variant>.json"),
    p.add_argument("--dataset", default=""),
    p.add_argument("--out-csv", type=Path, required=True),
    p.add_argument("--out-png", type=Path, required=True),
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
    storage.write_text(a.out, summary_markdown(tables, named_paths(a.curves, "--curves", "DATASET"), a.notes))
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
    p.add_argument("--out", type=Path, required=True),
)
