"""Tables: per-variant JSON results merged into CSV + Markdown, with the paper's numbers beside ours.

Accuracy (the `evaluate` verb's JSON), FID, inversion distance and the attribution metrics (the
`fid`, `inversion-distance` and `interpretability-metrics` verbs' JSON): each table has one row per
variant (per metric and method for the attribution metrics) with mean, 95% interval, N, the
direction that is better and the paper's reference values (config `reference:`) where it has them.
`write_table` writes the CSV (every column, stable for scripts) and the Markdown (with notes).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import storage
from .errors import RobinterpError


def accuracy_table(results: list[dict], reference: dict | None) -> pd.DataFrame:
    """One row per variant: our clean/adversarial accuracy (%) and the paper's, where it has one."""
    rows = []
    for r in results:
        ref = (reference or {}).get(r["variant"], {})
        rows.append(
            {
                "variant": r["variant"],
                "n": r["n"],
                "clean_acc": round(100 * r["clean_acc"], 2),
                "adv_acc": None if r["adv_acc"] is None else round(100 * r["adv_acc"], 2),
                "attack": r.get("attack_label", ""),
                **autoattack_columns(r),
                **reference_columns(ref),
            }
        )
    return pd.DataFrame(rows)


def reference_columns(ref: dict) -> dict:
    """The paper's numbers (paper_*), or a published model's as its leaderboard reports them
    (reference_*, with `source`: the RobustBench zoo's clean and AutoAttack accuracy)."""
    if "source" in ref:
        return {
            "reference_clean_acc": ref.get("clean_acc"),
            "reference_autoattack_acc": ref.get("autoattack_acc"),
            "reference_source": ref["source"],
        }
    return {"paper_clean_acc": ref.get("clean_acc"), "paper_adv_acc": ref.get("adv_acc")}


def without_empty_reference(df: pd.DataFrame) -> pd.DataFrame:
    """Drop `paper_*` and `reference_*` columns with no value (no published numbers for the rows)."""
    empty = [c for c in df.columns if str(c).startswith(("paper_", "reference_")) and df[c].isna().all()]
    return df.drop(columns=empty)


def autoattack_columns(r: dict) -> dict:
    """AutoAttack (%) with the PGD accuracy on the same images: equal ground even on a subset."""
    if "autoattack_acc" not in r:
        return {}
    return {
        "autoattack_n": r["autoattack_n"],
        "pgd_acc_same_images": round(100 * r["autoattack_pgd_acc"], 2),
        "autoattack_acc": round(100 * r["autoattack_acc"], 2),
    }


def write_table(
    df: pd.DataFrame, csv_path: str | Path, md_path: str | Path, notes_path: str | Path, title: str, notes: str
) -> None:
    """CSV with every column (stable for scripts); Markdown without empty reference columns, with the
    notes under it; the title and notes as data (JSON: what the summary reads)."""
    storage.write_text(csv_path, df.to_csv(index=False))
    md = f"# {title}\n\n{to_markdown(without_empty_reference(df))}\n"
    if notes:
        md += f"\n{notes}\n"
    storage.write_text(md_path, md)
    storage.write_json(notes_path, {"title": title, "notes": notes})


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub-style table without the optional `tabulate` dependency."""
    cols = list(df.columns)
    fmt = lambda v: "" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


# --- measured interpretability: FID, inversion distance, attribution metrics ---------------------


def _round(v, digits=3):
    return None if v is None else round(float(v), digits)


def _check_brackets(
    df: pd.DataFrame, estimate: str, table: str, low: str = "ci_low", high: str = "ci_high"
) -> pd.DataFrame:
    """Refuse a table in which a 95% interval does not hold its own estimate."""
    have = df[low].notna() & df[high].notna() & df[estimate].notna()
    bad = df[have & ((df[low] > df[estimate]) | (df[estimate] > df[high]))]
    if len(bad):
        rows = "; ".join(f"{r['variant']} {r[estimate]} [{r[low]}, {r[high]}]" for _, r in bad.iterrows())
        raise RobinterpError(
            f"{table} table: interval(s) that miss their estimate: {rows}; recompute these "
            f"results with this version (docs/interpretability.md, intervals)"
        )
    return df


def fid_table(results: list[dict], reference: dict | None) -> pd.DataFrame:
    """One row per FID JSON: FID, its interval at this n, N of both sets, KID, the paper's FID.

    FID falls as either set grows, so rows at different N are not comparable: the table refuses them.
    """
    sizes = {(r["n_real"], r["n_fake"]) for r in results}
    if len(sizes) > 1:
        rows = ", ".join(f"{r['variant']} ({r['n_real']} vs {r['n_fake']})" for r in results)
        raise RobinterpError(
            f"FID rows at different n (real vs generated images): {rows}; FID falls with n, so "
            f"recompute them at one size (the fid rules match the baseline to the generated set; "
            f"metrics.fid.max_images caps both)"
        )
    rows = []
    for r in results:
        ref = (reference or {}).get(r["variant"], {})
        b = r.get("interval") or {}
        rows.append(
            {
                "variant": r["variant"],
                "fid": _round(r["fid"], 2),
                "ci_low": _round(b.get("low"), 2),
                "ci_high": _round(b.get("high"), 2),
                "n_real": r["n_real"],
                "n_fake": r["n_fake"],
                "kid": _round(r.get("kid"), 5),
                "kid_std": _round(r.get("kid_std"), 5),
                "better": "lower",
                "paper_fid": ref.get("fid"),
            }
        )
    return _check_brackets(pd.DataFrame(rows), "fid", "FID")


START_KINDS = ("image", "noise")  # analyses.inversion.sources


def inversion_table(results: list[dict], reference: dict | None) -> pd.DataFrame:
    """One row per variant: mean 192-d Inception L2 distance target vs inverted over every inversion
    and per start kind (image-started, noise-started), with intervals, the distance the inversion
    started from, and the paper's two inversions (Tables 3 / 6) beside them."""
    rows = []
    for r in results:
        ref = list((reference or {}).get(r["variant"], {}).get("inversion_distance") or [])
        src = r.get("source_distance") or {}
        row = {
            "variant": r["variant"],
            "n": r["n"],
            "distance": _round(r["mean"]),
            "ci_low": _round(r["low"]),
            "ci_high": _round(r["high"]),
        }
        for kind in START_KINDS:
            k = (r.get("by_start") or {}).get(kind) or {}
            row.update(
                {
                    f"{kind}_distance": _round(k.get("mean")),
                    f"{kind}_ci_low": _round(k.get("low")),
                    f"{kind}_ci_high": _round(k.get("high")),
                }
            )
        rows.append(
            {
                **row,
                "start_distance": _round(src.get("mean")),
                "better": "lower",
                "paper_inv1": ref[0] if len(ref) > 0 else None,
                "paper_inv2": ref[1] if len(ref) > 1 else None,
            }
        )
    df = pd.DataFrame(rows)
    for kind in START_KINDS:
        _check_brackets(df, f"{kind}_distance", f"inversion distance ({kind})", f"{kind}_ci_low", f"{kind}_ci_high")
    return _check_brackets(df, "distance", "inversion distance")


def interpretability_table(results: list[dict]) -> pd.DataFrame:
    """One row per variant x metric x method: mean and 95% bootstrap interval over images."""
    rows = [
        {
            "variant": r["variant"],
            "metric": e["metric"],
            "method": e["method"],
            "output": e.get("output"),
            "better": e["direction"],
            "n": e["n"],
            "mean": _round(e["mean"], 4),
            "ci_low": _round(e["low"], 4),
            "ci_high": _round(e["high"], 4),
        }
        for r in results
        for e in r["metrics"]
    ]
    df = (
        pd.DataFrame(rows).sort_values(["metric", "method"], kind="stable").reset_index(drop=True)
    )  # variants in input order
    return _check_brackets(df, "mean", "interpretability")


FID_NOTES = (
    "FID (lower is better) with pytorch-fid's InceptionV3 (2048-d pool features). `real` = test vs train "
    "split (the author's real-vs-real baseline); variants = generated class images vs the test split. "
    "ci = 95% interval of FID at this N, centred on the estimate (estimate +- 1.96 sd; sd from half-samples "
    "drawn without replacement; docs/interpretability.md). Every row has the same N (the real baseline "
    "uses as many train images as each variant generated): FID falls with N, so the paper's 10k-image "
    "values compare with ours only in ordering. paper_fid: Table 2 "
    "(CIFAR-10, 10k images) / Table 5 (Small ImageNet 150, 9k)."
)
INVERSION_NOTES = (
    "L2 distance between 192-d Inception features (pytorch-fid block 1, average-pooled: robinterp's "
    'reading of the paper\'s "middle feature vector, containing 192 features", so absolute values '
    "do not compare with the paper's, only the ordering of the variants) of each target image and "
    "its inversion; lower = the inversion looks more like the target to an independent network. "
    "distance: every inversion; image_distance / noise_distance: those started from a test image of "
    "another class / from uniform noise. start_distance: the same distance for the image the "
    "inversion started from. ci = 95% bootstrap interval of the mean. paper_inv1/2: Tables 3 / 6, "
    "the paper's two image sets (Figures 4 and 11 on CIFAR-10, 8 and 18 on Small ImageNet), whose "
    "start kinds it does not state."
)
INTERPRETABILITY_NOTES = (
    "Per image, on a fixed seeded sample of test images; ci = 95% bootstrap interval of the mean. "
    "output: the class score a row's metric scores, which is the one its attribution explains (IG: the softmax "
    "probability, as the paper; SHAP: the logit, as the author's code; analyses.<method>.output), so rows of "
    "different outputs compare across variants, not with each other. "
    "gradient_alignment |<x, grad logit_y>|/(|x||grad|): higher = the gradient looks like the image (Etmann et "
    "al. 2019). gini: sparseness of |attribution| per pixel (0 uniform, ~1 one pixel). deletion_auc (lower "
    "better) / insertion_auc (higher better): the class score while pixels are removed from / inserted into a "
    "black image, most important first, RANKED. "
    "infidelity (captum, lower better): squared error of attributions "
    "predicting the output change under Gaussian pixel noise. sensitivity_max (captum, lower better): largest "
    "change of the explanation, relative to its norm, under small uniform input noise. "
    "faithfulness_correlation (higher better): Pearson "
    "over random pixel subsets between the attribution in the subset and the score drop when it is set to the "
    "baseline (Bhatt et al. 2020). local_lipschitz (lower better): max ||e(x) - e(x')|| / ||x - x'|| over Gaussian "
    "neighbours (Alvarez-Melis & Jaakkola 2018). randomisation_spearman (lower better): Spearman of |attribution| "
    "between the trained model and the model with every layer re-initialised, top first (Adebayo et al. 2018; "
    "the cascade is figures/parameter_randomisation.png): near 1 = the map does not depend on the weights. "
    "deletion/insertion AUC and infidelity "
    "degenerate for a near-constant classifier (flat scores): read them next to clean accuracy. "
    "Not in the paper (no reference values)."
)
RANKED = {
    "absolute": "ranked by |attribution| summed over channels (strongly negative pixels go early too; "
    "metrics.interpretability.ranking: signed ranks the pixels that raise the score first)",
    "signed": "ranked by the attribution summed over channels, pixels that raise the score first "
    "(metrics.interpretability.ranking: signed; the default, absolute, ranks by |attribution|)",
}


def interpretability_notes(results: list[dict]) -> str:
    """The table's notes, naming the deletion/insertion ranking the results were computed with."""
    rankings = sorted({(r.get("config") or {}).get("ranking", "absolute") for r in results})
    return INTERPRETABILITY_NOTES.replace("RANKED", "; ".join(RANKED[k] for k in rankings))
