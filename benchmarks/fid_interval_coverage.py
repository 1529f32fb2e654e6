"""Simulated coverage of the FID interval (fid.fid_interval) on Gaussian features of known law.

For each regime: two Gaussian feature laws with a known population Frechet distance (FD); E[FID_n],
the expectation of FID at the sample sizes, by Monte Carlo; then --reps simulated data sets, each
with its estimate and 95% interval (--rounds half-samples). Reports how often the interval holds
its own estimate, E[FID_n] (what it targets: FID at this n) and the population FD (which it does
not target: FID's bias pushes FID_n above FD when n is small against the dimension).

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/fid_interval_coverage.py \
        --out benchmarks/results/fid_interval_coverage.json
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np

from robinterp import storage
from robinterp.fid import fid_from_features, fid_interval, frechet_distance

# (dimension, n1, n2, mean shift, same covariance): small d; n < d as in the demo (100 images, 2048-d);
# unequal n; two samples of one law (FD = 0, the real-vs-real row)
REGIMES = [(8, 60, 60, 0.3, False), (64, 40, 40, 0.3, False), (32, 100, 80, 0.2, False), (16, 100, 100, 0.0, True)]


def regime(d, n1, n2, shift, same, reps, rounds, mc, seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(d, d)) / np.sqrt(d)
    b = a if same else rng.normal(size=(d, d)) / np.sqrt(d)
    mu = np.full(d, shift)
    fd = frechet_distance(np.zeros(d), a @ a.T, mu, b @ b.T)
    draw = lambda: (rng.normal(size=(n1, d)) @ a.T, rng.normal(size=(n2, d)) @ b.T + mu)
    expected = float(np.mean([fid_from_features(*draw()) for _ in range(mc)]))
    inside = covers_expected = covers_fd = 0
    widths = []
    for rep in range(reps):
        f1, f2 = draw()
        est, iv = fid_from_features(f1, f2), fid_interval(f1, f2, rounds, rep)
        inside += iv["low"] <= est <= iv["high"]
        covers_expected += iv["low"] <= expected <= iv["high"]
        covers_fd += iv["low"] <= fd <= iv["high"]
        widths.append(iv["high"] - iv["low"])
    return {
        "dims": d,
        "n1": n1,
        "n2": n2,
        "population_fd": round(fd, 4),
        "expected_fid_n": round(expected, 4),
        "estimate_inside": inside / reps,
        "coverage_expected_fid_n": covers_expected / reps,
        "coverage_population_fd": covers_fd / reps,
        "mean_width": round(float(np.mean(widths)), 4),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=500)
    p.add_argument("--rounds", type=int, default=50, help="half-samples per interval")
    p.add_argument("--mc", type=int, default=2000, help="draws for E[FID_n]")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()
    start, rows = time.time(), []
    print(f"{'d':>4} {'n1':>4} {'n2':>4} {'FD':>8} {'E[FID_n]':>9} {'inside':>7} {'cov E':>6} {'cov FD':>7}")
    for i, r in enumerate(REGIMES):
        row = regime(*r, a.reps, a.rounds, a.mc, seed=i)
        rows.append(row)
        print(
            f"{row['dims']:4d} {row['n1']:4d} {row['n2']:4d} {row['population_fd']:8.3f} {row['expected_fid_n']:9.3f} "
            f"{row['estimate_inside']:7.3f} {row['coverage_expected_fid_n']:6.3f} {row['coverage_population_fd']:7.3f}"
        )
    if a.out:
        storage.write_json(
            a.out,
            {
                "level": 0.95,
                "rows": rows,
                "settings": vars(a) | {"out": str(a.out)},
                "seconds": round(time.time() - start, 1),
                "machine": platform.machine(),
                "numpy": np.__version__,
                "date": time.strftime("%Y-%m-%d"),
            },
        )


if __name__ == "__main__":
    main()
