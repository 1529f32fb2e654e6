"""`results/summary.md`: one page of text with every table, per dataset, and the verdicts of the
robustness-interpretability curve (smallest vs largest training eps, with 95% intervals)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import storage
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


def summary_markdown(tables: list[tuple[str, Path]], curves: list[tuple[str, Path]], notes: list[Path]) -> str:
    """The page: per dataset, its tables (`tables`: (dataset, CSV), with `notes`: each one's notes
    JSON, in the same order) and the verdicts of its curves."""
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
                verdicts = compare_ends(_read(path))
                lines += ["### Robustness vs interpretability (smallest vs largest training eps)", ""]
                lines += [f"- {v}" for v in verdicts] or ["- (one variant only: nothing to compare)"]
                lines += [""]
    return "\n".join(lines)
