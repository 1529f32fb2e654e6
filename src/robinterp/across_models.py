"""The paper's question across many models: does robustness predict interpretability, and how strongly?

The paper compares two models that differ only in their training eps; the robustness curve
(curve.py) plots every quantity against that eps. Published models (the RobustBench zoo) differ
in much more: architecture, data, recipe. For them each model is placed at its measured robust
accuracy (AutoAttack where it ran, else the eval attack's PGD; its Wilson 95% interval across),
every quantity at its own estimate and interval (up), one labelled point per model; and
`rank_correlations` gives, per quantity, Spearman's rank correlation with robust accuracy over
the models, with a percentile bootstrap interval (models resampled with replacement).
`correlation_lines` says per quantity whether robustness predicts it and how strongly.

Reads only the JSON results and the curve's long table; never loads a model.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .errors import RobinterpError

ROBUSTNESS = ("adversarial accuracy (%)", "AutoAttack accuracy (%)")  # the x axis itself, not a y quantity
# Below 5 models no rank correlation reaches the 95% level (n = 4: the smallest two-sided p of
# Spearman's rho is 0.083), so a verdict or an interval would say more than the models can.
MIN_MODELS = 5


def robust_accuracy(result: dict) -> dict:
    """{robust_acc, robust_low, robust_high (Wilson 95%, %), robust_n, robust_attack} of one accuracy.json."""
    if result.get("autoattack_acc") is not None:
        p, n, attack = result["autoattack_acc"], result["autoattack_n"], "AutoAttack"
    elif result.get("adv_acc") is not None:
        p, n, attack = result["adv_acc"], result["n"], "PGD"
    else:
        raise RobinterpError(
            f"accuracy of {result.get('variant')!r}: no adversarial accuracy to place it by "
            "(evaluation without an eval_attack)"
        )
    low, high = wilson(p, n)
    return {"robust_acc": 100 * p, "robust_low": low, "robust_high": high, "robust_n": n, "robust_attack": attack}


def wilson(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (%) of a proportion p measured on n images."""
    if n <= 0:
        return math.nan, math.nan
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return 100 * max(0.0, centre - half), 100 * min(1.0, centre + half)


def with_robustness(curve: pd.DataFrame, accuracy: list[dict]) -> pd.DataFrame:
    """The curve's long table with each row's model placed at its robust accuracy."""
    placed = pd.DataFrame([{"variant": r["variant"], **robust_accuracy(r)} for r in accuracy])
    return curve.merge(placed, on="variant", how="left")


def rank_correlations(frame: pd.DataFrame, rounds: int, seed: int, level: float = 0.95) -> pd.DataFrame:
    """Per quantity: Spearman's rho between robust accuracy and the quantity over the models, its
    bootstrap interval (`rounds` resamples of the models; none below MIN_MODELS models), n."""
    from scipy.stats import spearmanr

    from .stats import MIN_BOOTSTRAP_ROUNDS

    if 0 < rounds < MIN_BOOTSTRAP_ROUNDS:
        raise RobinterpError(f"metrics.curve.bootstrap {rounds}: use 0 (no interval) or >= {MIN_BOOTSTRAP_ROUNDS}")
    rng = np.random.default_rng(seed)
    rows = []
    for quantity, d in frame[~frame["quantity"].isin(ROBUSTNESS)].groupby("quantity", sort=False):
        d = d.dropna(subset=["robust_acc", "mean"])
        x, y = d["robust_acc"].to_numpy(float), d["mean"].to_numpy(float)
        rho = _spearman(spearmanr, x, y)
        low = high = math.nan
        if len(d) >= MIN_MODELS and rounds > 0:
            draws = rng.integers(0, len(d), (rounds, len(d)))
            boot = np.array([_spearman(spearmanr, x[i], y[i]) for i in draws])
            if np.isfinite(boot).any():
                low, high = np.nanpercentile(boot, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
        better = d["better"].iloc[0] if len(d) else ""
        rows.append(
            {
                "quantity": quantity,
                "better": better,
                "models": len(d),
                "spearman": rho,
                "ci_low": low,
                "ci_high": high,
                "verdict": verdict(rho, low, high, better, len(d)),
            }
        )
    return pd.DataFrame(rows, columns=["quantity", "better", "models", "spearman", "ci_low", "ci_high", "verdict"])


def _round(value: float) -> float:
    return value if math.isnan(value) else round(float(value), 3)


def _spearman(spearmanr, x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan  # constant ranks: no correlation is defined
    return float(spearmanr(x, y).statistic)


def verdict(rho: float, low: float, high: float, better: str, models: int) -> str:
    """Whether robustness predicts the quantity across the models, and how strongly (|rho|)."""
    if models < MIN_MODELS:
        return f"not estimated ({models} models; {MIN_MODELS} needed)"
    if math.isnan(rho):
        return "not estimated (a constant quantity)"
    strength = "strongly" if abs(rho) >= 0.7 else "moderately" if abs(rho) >= 0.4 else "weakly"
    good = (rho > 0) == (better == "higher")
    if math.isnan(low) or low <= 0 <= high:
        return f"no clear relation (interval includes 0; {strength} {'better' if good else 'worse'} at the estimate)"
    return f"robustness predicts {'better' if good else 'worse'} values, {strength}"


def correlation_lines(table: pd.DataFrame) -> list[str]:
    """One line per quantity for summary.md."""
    lines = []
    for r in table.itertuples(index=False):
        interval = "" if pd.isna(r.ci_low) else f" [{r.ci_low:.2f}, {r.ci_high:.2f}]"
        rho = "n/a" if pd.isna(r.spearman) else f"{r.spearman:.2f}"
        lines.append(
            f"{r.quantity} ({r.better} better): Spearman {rho}{interval} over {r.models} models -> {r.verdict}"
        )
    return lines


def plot_models(frame: pd.DataFrame, table: pd.DataFrame, path, title: str = "") -> None:
    """One panel per quantity: each model at its robust accuracy (x, Wilson interval) and the
    quantity (y, its interval), labelled; the panel's title gives Spearman's rho and its interval."""
    from .curve import quantity_panels

    frame = frame[~frame["quantity"].isin(ROBUSTNESS)]
    rho = table.set_index("quantity")
    with quantity_panels(list(dict.fromkeys(frame["quantity"])), path, title, 3, (3.8, 3.2)) as panels:
        for ax, q in panels:
            d = frame[frame["quantity"] == q].sort_values("robust_acc")
            xerr = [d["robust_acc"] - d["robust_low"], d["robust_high"] - d["robust_acc"]]
            has = d["low"].notna() & d["high"].notna()
            yerr = [(d["mean"] - d["low"]).where(has, 0), (d["high"] - d["mean"]).where(has, 0)]
            ax.errorbar(
                d["robust_acc"],
                d["mean"],
                xerr=xerr,
                yerr=yerr,
                fmt="o",
                color="C0",
                ecolor="C0",
                alpha=0.8,
                capsize=2,
                markersize=4,
            )
            for r in d.itertuples(index=False):
                ax.annotate(r.variant, (r.robust_acc, r.mean), fontsize=6, xytext=(3, 3), textcoords="offset points")
            ax.set_title(f"{q}\n({d['better'].iloc[0]} is better{_rho_text(rho, q)})", fontsize=8)
            ax.set_xlabel(f"robust accuracy (%, {d['robust_attack'].iloc[0]})", fontsize=8)
            ax.grid(alpha=0.3)


def _rho_text(rho: pd.DataFrame, quantity: str) -> str:
    """', Spearman 0.71 [0.32, 0.93]' for a panel title, or '' where there is none."""
    if quantity not in rho.index or pd.isna(rho.loc[quantity, "spearman"]):
        return ""
    s = rho.loc[quantity]
    interval = "" if pd.isna(s["ci_low"]) else f" [{s['ci_low']:.2f}, {s['ci_high']:.2f}]"
    return f", Spearman {s['spearman']:.2f}{interval}"
