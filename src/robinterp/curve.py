"""The robustness-interpretability curve: every measured quantity against the training eps.

Reads only JSON results (accuracy, FID, interpretability metrics) of a ladder of variants and
the eps of each variant (from its config: 0 for standard training); never loads a model.
`curve_frame` gives the long table, `plot_curve` one panel per quantity with 95% intervals.
"""

from __future__ import annotations

import contextlib
import math

import pandas as pd

from .errors import RobinterpError


def training_eps(variants: list[dict]) -> dict[str, float]:
    """{variant name: the eps it was trained at} of the dataset's variant entries (no attack: 0)."""
    return {v["name"]: float(v["attack"]["eps"]) if v.get("attack") else 0.0 for v in variants}


def curve_axis(variants: list[dict], x: str) -> str:
    """What places the variants on the figure: `x` (metrics.curve.x), with auto = robust accuracy
    when one of them is a RobustBench zoo entry (models that differ in more than eps), else eps."""
    if x != "auto":
        return x
    zoo = any((v.get("checkpoint") or {}).get("source") == "robustbench" for v in variants)
    return "robust_accuracy" if zoo else "eps"


def curve_frame(eps: dict[str, float], accuracy: list[dict], fid: list[dict], metrics: list[dict]) -> pd.DataFrame:
    """Long table: variant, eps, quantity, better, mean, low, high (accuracies in %)."""
    rows = []

    def add(variant, quantity, better, mean, low=None, high=None):
        if variant not in eps:
            raise RobinterpError(f"result for variant {variant!r} but no eps given for it; eps known for {sorted(eps)}")
        rows.append(
            {
                "variant": variant,
                "eps": float(eps[variant]),
                "quantity": quantity,
                "better": better,
                "mean": mean,
                "low": low,
                "high": high,
            }
        )

    for r in accuracy:
        add(r["variant"], "clean accuracy (%)", "higher", 100 * r["clean_acc"])
        if r.get("adv_acc") is not None:
            add(r["variant"], "adversarial accuracy (%)", "higher", 100 * r["adv_acc"])
        if r.get("autoattack_acc") is not None:
            add(r["variant"], "AutoAttack accuracy (%)", "higher", 100 * r["autoattack_acc"])
    for r in fid:
        b = r.get("interval") or {}
        add(r["variant"], "FID of class generations", "lower", r["fid"], b.get("low"), b.get("high"))
    for r in metrics:
        for e in r["metrics"]:
            add(r["variant"], f"{e['metric']} ({e['method']})", e["direction"], e["mean"], e["low"], e["high"])
    df = pd.DataFrame(rows, columns=["variant", "eps", "quantity", "better", "mean", "low", "high"])
    return df.sort_values(["quantity", "eps"], kind="stable").reset_index(drop=True)


@contextlib.contextmanager
def quantity_panels(quantities: list[str], path, title: str, cols: int, size: tuple[float, float]):
    """A grid of one panel per quantity, yielded as [(axes, quantity)], then titled and saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .storage import atomic_path

    if not quantities:
        raise RobinterpError("robustness curve: no results to plot")
    cols = min(cols, len(quantities))
    rows = math.ceil(len(quantities) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size[0] * cols, size[1] * rows), squeeze=False)
    yield list(zip(axes.flat, quantities))
    for ax in list(axes.flat)[len(quantities) :]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()) if title else None)  # room for the title
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def plot_curve(df: pd.DataFrame, path, title: str = "") -> None:
    """One panel per quantity against the training eps, with vertical 95% interval bars."""
    with quantity_panels(list(dict.fromkeys(df["quantity"])), path, title, 4, (3.4, 2.8)) as panels:
        for ax, q in panels:
            d = df[df["quantity"] == q].sort_values("eps")
            ax.plot(d["eps"], d["mean"], "o-", color="C0")
            e = d[d["low"].notna() & d["high"].notna()]
            if len(e):  # vertical bars: intervals need not be symmetric
                ax.vlines(e["eps"], e["low"], e["high"], color="C0", alpha=0.5, linewidth=3)
            ax.set_title(f"{q}\n({d['better'].iloc[0]} is better)", fontsize=9)
            ax.set_xlabel("training eps (L2)")
            ax.grid(alpha=0.3)


def compare_ends(df: pd.DataFrame, by: str = "eps") -> list[str]:
    """One line per quantity: the variant with the smallest `by` (training eps, or robust
    accuracy across models) vs the largest, and whether the latter is better, with 'intervals
    overlap' when the 95% intervals do not separate them."""
    lines = []
    place = (lambda r: f"eps {r['eps']:g}") if by == "eps" else (lambda r: f"robust {r['robust_acc']:.3g}%")
    for q, d in df.groupby("quantity", sort=False):
        d = d.sort_values(by)
        lo, hi = d.iloc[0], d.iloc[-1]
        if lo["variant"] == hi["variant"]:
            continue
        fmt = lambda r: f"{r['mean']:.4g}" + (f" [{r['low']:.4g}, {r['high']:.4g}]" if pd.notna(r["low"]) else "")
        better = hi["mean"] > lo["mean"] if lo["better"] == "higher" else hi["mean"] < lo["mean"]
        tie = f"{hi['mean']:.4g}" == f"{lo['mean']:.4g}"  # equal at the precision shown
        sep = pd.notna(lo["low"]) and pd.notna(hi["low"]) and (hi["low"] > lo["high"] or lo["low"] > hi["high"])
        verdict = ("a tie" if tie else f"{place(hi)} " + ("better" if better else "worse")) + (
            "" if pd.isna(lo["low"]) else (", intervals disjoint" if sep else ", intervals overlap")
        )
        lines.append(
            f"{q} ({lo['better']} better): {lo['variant']} ({place(lo)}) {fmt(lo)} vs "
            f"{hi['variant']} ({place(hi)}) {fmt(hi)} -> {verdict}"
        )
    return lines
