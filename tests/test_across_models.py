"""The paper's question across many models (robinterp.across_models): rank correlation of each
quantity with robust accuracy, its interval over the models, the verdict and the figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from robinterp.across_models import correlation_lines, rank_correlations, robust_accuracy, verdict, wilson


def _frame(robust: list[float], metric: list[float], better: str = "higher") -> pd.DataFrame:
    rows = [
        {
            "variant": f"m{i}",
            "quantity": "alignment (ig)",
            "better": better,
            "mean": m,
            "low": m - 1,
            "high": m + 1,
            "robust_acc": r,
            "robust_low": r - 2,
            "robust_high": r + 2,
            "robust_attack": "AutoAttack",
        }
        for i, (r, m) in enumerate(zip(robust, metric))
    ]
    return pd.DataFrame(rows)


def test_a_monotone_relation_is_found_and_a_flat_one_is_not():
    robust = [10.0, 25.0, 40.0, 55.0, 70.0, 72.0]
    up = rank_correlations(_frame(robust, [0.1, 0.2, 0.35, 0.4, 0.6, 0.65]), rounds=200, seed=0).iloc[0]
    assert up["spearman"] == pytest.approx(1.0) and up["models"] == 6 and up["ci_low"] == pytest.approx(1.0)
    assert up["verdict"] == "robustness predicts better values, strongly"
    down = rank_correlations(_frame(robust, [6, 5, 4, 3, 2, 1], better="lower"), 200, 0).iloc[0]
    assert down["spearman"] == pytest.approx(-1.0) and down["verdict"].startswith("robustness predicts better")
    noise = np.random.default_rng(0).permutation([0.3, 0.1, 0.5, 0.2, 0.4, 0.6])
    flat = rank_correlations(_frame(robust, list(noise)), 500, 0).iloc[0]
    assert flat["ci_low"] <= 0 <= flat["ci_high"] and flat["verdict"].startswith("no clear relation")
    four = rank_correlations(_frame(robust[:4], [0.1, 0.2, 0.3, 0.4]), 200, 0).iloc[0]
    assert (
        four["spearman"] == 1.0 and np.isnan(four["ci_low"]) and four["verdict"] == "not estimated (4 models; 5 needed)"
    )
    assert (
        "Spearman 1.00 [1.00, 1.00] over 6 models -> robustness predicts better"
        in correlation_lines(rank_correlations(_frame(robust, robust), 100, 0))[0]
    )


def test_robust_accuracy_prefers_autoattack_and_has_a_wilson_interval():
    low, high = wilson(0.5, 100)
    assert (round(low, 1), round(high, 1)) == (40.4, 59.6) and wilson(0.0, 50)[0] == 0.0
    placed = robust_accuracy({"variant": "v", "n": 1000, "adv_acc": 0.7, "autoattack_acc": 0.6, "autoattack_n": 100})
    assert (
        placed["robust_acc"] == pytest.approx(60.0)
        and placed["robust_n"] == 100
        and placed["robust_attack"] == "AutoAttack"
    )
    assert robust_accuracy({"variant": "v", "n": 10, "adv_acc": 0.3})["robust_attack"] == "PGD"
    assert verdict(0.9, 0.5, 1.0, "lower", 5) == "robustness predicts worse values, strongly"
