"""`results/summary.md`: one page of text with every table, per dataset, and the verdicts of the
robustness-interpretability curve (smallest vs largest training eps, with 95% intervals)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import storage
from .across_models import correlation_lines
from .curve import compare_ends
from .errors import RobinterpError
from .tables import to_markdown, without_empty_reference

TITLES = {
    "accuracy": "Accuracy (%)",
    "fid": "FID of class generations (lower is better)",
    "inversion_distance": "Inversion distance, 192-d Inception L2 (lower is better)",
    "interpretability": "Quantitative interpretability (mean [95% CI])",
}


def _read(path: Path) -> pd.DataFrame:
    if not Path(path).is_file():
        raise RobinterpError(f"{path}: table not found (its table rule makes it)")
    return pd.read_csv(path)


def compact(name: str, df: pd.DataFrame) -> pd.DataFrame:
    """The interpretability table pivoted to one row per metric, one column per variant."""
    if name != "interpretability" or df.empty:
        return df
    cell = lambda r: f"{r['mean']:.4g} [{r['ci_low']:.3g}, {r['ci_high']:.3g}]"
    df = df.assign(value=df.apply(cell, axis=1), row=df["metric"] + " (" + df["method"] + ", " + df["better"] + ")")
    wide = df.pivot(index="row", columns="variant", values="value")
    wide = wide[list(dict.fromkeys(df["variant"]))]  # variant order as in the table
    return wide.reset_index().rename(columns={"row": "metric (method, better)"})


def table_notes(path: Path) -> str:
    """A table's notes, as its table verb wrote them (`--out-notes`: <name>.notes.json)."""
    return storage.read_json(path, needs=("notes",))["notes"]


def summary_markdown(
    tables: list[tuple[str, Path]],
    curves: list[tuple[str, Path]],
    notes: list[Path],
    correlations: list[tuple[str, Path]] = (),
) -> str:
    """The page: per dataset, its tables (`tables`: (dataset, CSV), with `notes`: each one's notes
    JSON, in the same order), the verdicts of its curves and of its rank correlations with
    robust accuracy (`correlations`)."""
    lines = [
        "# robinterp: summary",
        "",
        "Every number below comes from the tables in `<dataset>/tables/` (CSV and Markdown); each "
        "table's notes follow it. The figures are in `<dataset>/figures/`; "
        "a browsable report of both is a separate command that a plain run does not make: "
        "`snakemake --report report.html` with the run's `--configfile`.",
        "",
    ]
    datasets = list(dict.fromkeys([d for d, _ in tables] + [d for d, _ in curves]))
    for ds in datasets:
        lines += [f"## {ds}", ""]
        for (d, path), notes_path in zip(tables, notes, strict=True):
            if d != ds:
                continue
            name = Path(path).stem
            table = without_empty_reference(compact(name, _read(path)))
            lines += [f"### {TITLES.get(name, name)}", "", to_markdown(table), ""]
            text = table_notes(notes_path)
            lines += [text, ""] if text else []
        for d, path in curves:
            if d == ds:
                curve = _read(path)
                by_eps = "placed_by" not in curve or (curve["placed_by"] == "eps").all()
                verdicts = compare_ends(curve, "eps" if by_eps else "robust_acc")
                ends = "smallest vs largest training eps" if by_eps else "least vs most robust model"
                lines += [f"### Robustness vs interpretability ({ends})", ""]
                lines += [f"- {v}" for v in verdicts] or ["- (one variant only: nothing to compare)"]
                lines += [""]
        for d, path in correlations:
            if d == ds:
                table = _read(path)
                lines += [
                    f"### Does robustness predict interpretability? (rank correlation over "
                    f"{int(table['models'].max()) if len(table) else 0} models)",
                    "",
                ]
                lines += [f"- {v}" for v in correlation_lines(table)] or ["- (no quantities)"]
                lines += [""]
    return "\n".join(lines)
