"""Tables: merge per-variant JSON results into CSV + Markdown with the paper's numbers beside ours."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import storage


def accuracy_table(results: list[dict], reference: dict | None) -> pd.DataFrame:
    """One row per variant: our clean/adversarial accuracy (%) and the paper's, where it has one."""
    rows = []
    for r in results:
        ref = (reference or {}).get(r["variant"], {})
        rows.append({
            "variant": r["variant"],
            "n": r["n"],
            "clean_acc": round(100 * r["clean_acc"], 2),
            "adv_acc": None if r["adv_acc"] is None else round(100 * r["adv_acc"], 2),
            "attack": r.get("attack_label", ""),
            **autoattack_columns(r),
            **reference_columns(ref),
        })
    return pd.DataFrame(rows)


def reference_columns(ref: dict) -> dict:
    """The paper's numbers (paper_*), or a published model's as its leaderboard reports them
    (reference_*, with `source`: the RobustBench zoo's clean and AutoAttack accuracy)."""
    if "source" in ref:
        return {"reference_clean_acc": ref.get("clean_acc"), "reference_autoattack_acc": ref.get("autoattack_acc"),
                "reference_source": ref["source"]}
    return {"paper_clean_acc": ref.get("clean_acc"), "paper_adv_acc": ref.get("adv_acc")}


def without_empty_reference(df: pd.DataFrame) -> pd.DataFrame:
    """Drop `paper_*` and `reference_*` columns with no value (no published numbers for the rows)."""
    empty = [c for c in df.columns if str(c).startswith(("paper_", "reference_")) and df[c].isna().all()]
    return df.drop(columns=empty)


def autoattack_columns(r: dict) -> dict:
    """AutoAttack (%) with the PGD accuracy on the same images: equal ground even on a subset."""
    if "autoattack_acc" not in r:
        return {}
    return {"autoattack_n": r["autoattack_n"], "pgd_acc_same_images": round(100 * r["autoattack_pgd_acc"], 2),
            "autoattack_acc": round(100 * r["autoattack_acc"], 2)}


def write_table(df: pd.DataFrame, csv_path: str | Path, md_path: str | Path, title: str, notes: str = "") -> None:
    """CSV with every column (stable for scripts); Markdown without empty reference columns."""
    storage.write_text(csv_path, df.to_csv(index=False))
    md = f"# {title}\n\n{to_markdown(without_empty_reference(df))}\n"
    if notes:
        md += f"\n{notes}\n"
    storage.write_text(md_path, md)


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub-style table without the optional `tabulate` dependency."""
    cols = list(df.columns)
    fmt = lambda v: "" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)
