"""Tables, the robustness curve and summary.md from per-variant JSON (no model, no Inception)."""

import json
from pathlib import Path

import pandas as pd
import pytest

from robinterp.cli import main

VARIANTS = [
    {"name": "standard", "attack": None},
    {"name": "small", "attack": {"eps": 0.5}},
    {"name": "large", "attack": {"eps": 1.5}},
]
REFERENCE = {
    "real": {"fid": 5.39},
    "standard": {"fid": 152.29, "inversion_distance": [30.1, 30.07], "clean_acc": 93.2},
    "large": {"fid": 88.25, "inversion_distance": [20.05, 21.18]},
}


def _write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return str(path)


@pytest.fixture
def results(tmp_path):
    """JSON results shaped as the fid / inversion-distance / interpretability-metrics / evaluate verbs write them."""
    out = {"fid": [], "inv": [], "metrics": [], "acc": []}
    out["fid"].append(
        _write(
            tmp_path / "fid/real.json",
            {
                "variant": "real",
                "fid": 4.0,
                "n_real": 100,
                "n_fake": 50,
                "interval": {"rounds": 10, "low": 3.0, "high": 5.0},
            },
        )
    )
    for i, (v, fid) in enumerate([("standard", 150.0), ("small", 120.0), ("large", 90.0)]):
        out["fid"].append(
            _write(
                tmp_path / f"fid/{v}.json",
                {
                    "variant": v,
                    "fid": fid,
                    "n_real": 100,
                    "n_fake": 50,
                    "kid": 0.1 / (i + 1),
                    "kid_std": 0.01,
                    "interval": {"rounds": 10, "low": fid - 2, "high": fid + 9},
                },
            )
        )
        out["inv"].append(
            _write(
                tmp_path / f"inv/{v}.json",
                {
                    "variant": v,
                    "n": 8,
                    "mean": 30 - 5 * i,
                    "low": 29 - 5 * i,
                    "high": 31 - 5 * i,
                    "source_distance": {"mean": 40.0},
                    "by_start": {
                        "image": {"n": 4, "mean": 28 - 5 * i, "low": 27 - 5 * i, "high": 29 - 5 * i},
                        "noise": {"n": 4, "mean": 32 - 5 * i, "low": 31 - 5 * i, "high": 33 - 5 * i},
                    },
                },
            )
        )
        out["metrics"].append(
            _write(
                tmp_path / f"m/{v}.json",
                {
                    "variant": v,
                    "metrics": [
                        {
                            "metric": "gradient_alignment",
                            "method": "input_gradient",
                            "direction": "higher",
                            "n": 50,
                            "mean": 0.1 + 0.1 * i,
                            "low": 0.09 + 0.1 * i,
                            "high": 0.11 + 0.1 * i,
                        },
                        {
                            "metric": "deletion_auc",
                            "method": "ig",
                            "direction": "lower",
                            "n": 20,
                            "output": "probability",
                            "mean": 0.3,
                            "low": 0.2,
                            "high": 0.4,
                        },
                    ],
                },
            )
        )
        out["acc"].append(
            _write(
                tmp_path / f"acc/{v}.json",
                {"variant": v, "clean_acc": 0.95 - 0.05 * i, "adv_acc": 0.1 + 0.3 * i, "n": 100},
            )
        )
    return out


def _table(verb: str, inputs: list, stem: Path, *flags: str) -> int:
    """`robinterp <verb>` over `inputs`, writing <stem>.csv, .md and .notes.json; its exit status."""
    outs = {"--out-csv": ".csv", "--out-md": ".md", "--out-notes": ".notes.json"}
    return main([verb, "--inputs", *map(str, inputs), *flags, *(x for f, e in outs.items() for x in (f, f"{stem}{e}"))])


def test_tables_hold_intervals_directions_and_the_papers_values(results, tmp_path):
    t = tmp_path / "tables"
    ref = json.dumps({"reference": REFERENCE})
    assert _table("fid-table", results["fid"], t / "fid", "--settings", ref, "--dataset", "d") == 0
    assert _table("inversion-table", results["inv"], t / "inversion_distance", "--settings", ref) == 0
    assert _table("interpretability-table", results["metrics"], t / "interpretability") == 0
    fid = pd.read_csv(t / "fid.csv").set_index("variant")
    assert fid.loc["real", "paper_fid"] == 5.39 and fid.loc["large", "paper_fid"] == 88.25
    assert pd.isna(fid.loc["small", "paper_fid"]) and set(fid["better"]) == {"lower"}
    assert fid.loc["standard", "ci_high"] == 159.0 and fid.loc["standard", "n_fake"] == 50
    inv = pd.read_csv(t / "inversion_distance.csv").set_index("variant")
    assert (inv.loc["standard", "paper_inv1"], inv.loc["standard", "paper_inv2"]) == (30.1, 30.07)
    assert inv.loc["large", "distance"] == 20 and inv.loc["large", "start_distance"] == 40
    assert (inv.loc["large", "image_distance"], inv.loc["large", "noise_distance"]) == (18, 22)  # per start kind
    assert inv.loc["large", "noise_ci_high"] == 23
    interp = pd.read_csv(t / "interpretability.csv")
    assert len(interp) == 6 and set(interp["better"]) == {"higher", "lower"}
    assert set(interp.loc[interp["metric"] == "deletion_auc", "output"]) == {"probability"}
    assert "ranked by |attribution|" in (t / "interpretability.md").read_text()
    assert "lower is better" in (t / "fid.md").read_text()


def test_curve_and_summary_from_json_only(results, tmp_path):
    t = tmp_path / "tables"
    assert _table("accuracy-table", results["acc"], t / "accuracy") == 0
    assert _table("interpretability-table", results["metrics"], t / "interpretability") == 0
    png, csv = tmp_path / "fig" / "curve.png", t / "robustness_curve.csv"
    corr = [
        "--out-correlation-csv",
        str(t / "robustness_correlation.csv"),
        "--out-correlation-md",
        str(t / "robustness_correlation.md"),
        "--out-correlation-notes",
        str(t / "robustness_correlation.notes.json"),
    ]
    assert (
        main(
            [
                "robustness-curve",
                "--settings",
                json.dumps({"variants": VARIANTS}),
                "--accuracy",
                *results["acc"],
                "--fid",
                *results["fid"][1:],
                "--metrics",
                *results["metrics"],
                "--dataset",
                "d",
                "--out-csv",
                str(csv),
                "--out-png",
                str(png),
                *corr,
            ]
        )
        == 0
    )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    curve = pd.read_csv(csv)
    assert sorted(curve["eps"].unique()) == [0.0, 0.5, 1.5]
    assert len(curve) == 3 * 5  # clean, adversarial, FID, two metrics per variant
    summary = tmp_path / "summary.md"
    notes = [str(t / "accuracy.notes.json"), str(t / "interpretability.notes.json")]
    assert (
        main(
            [
                "summary",
                "--tables",
                f"d={t / 'accuracy.csv'}",
                f"d={t / 'interpretability.csv'}",
                "--notes",
                *notes,
                "--curves",
                f"d={csv}",
                "--out",
                str(summary),
            ]
        )
        == 0
    )
    text = summary.read_text()
    assert "## d" in text and "gradient_alignment (input_gradient, higher)" in text
    assert "FID of class generations (lower better): standard (eps 0) 150 [148, 159] vs large (eps 1.5) 90" in text
    assert "-> eps 1.5 better, intervals disjoint" in text
    # a result without an eps for its variant is an error, not a silent gap
    assert (
        main(
            [
                "robustness-curve",
                "--settings",
                json.dumps({"variants": VARIANTS[:1]}),
                "--accuracy",
                *results["acc"],
                "--out-csv",
                str(csv),
                "--out-png",
                str(png),
                *corr,
            ]
        )
        == 2
    )


def test_fid_table_refuses_rows_at_different_n(results, tmp_path):
    real = json.loads(open(results["fid"][0]).read())
    real["n_fake"] = 300  # a baseline against every train image, variants against 50 generations
    _write(tmp_path / "fid/real.json", real)
    out = tmp_path / "fid.csv"
    assert (
        main(
            [
                "fid-table",
                "--inputs",
                *results["fid"],
                "--out-csv",
                str(out),
                "--out-md",
                str(tmp_path / "fid.md"),
                "--out-notes",
                str(tmp_path / "fid.notes.json"),
            ]
        )
        == 2
    )
    assert not out.exists()


def test_tables_refuse_an_interval_that_misses_its_estimate(results, tmp_path):
    bad = json.loads(open(results["inv"][0]).read())
    bad["low"], bad["high"] = bad["mean"] + 1, bad["mean"] + 2  # what resampling FID with replacement produced
    _write(tmp_path / "inv/standard.json", bad)
    out = tmp_path / "inv.csv"
    assert (
        main(
            [
                "inversion-table",
                "--inputs",
                *results["inv"],
                "--out-csv",
                str(out),
                "--out-md",
                str(tmp_path / "inv.md"),
                "--out-notes",
                str(tmp_path / "inv.notes.json"),
            ]
        )
        == 2
    )
    assert not out.exists()


def test_summary_keeps_notes_drops_empty_reference_columns_and_calls_a_tie_a_tie(results, tmp_path):
    from robinterp.curve import compare_ends
    from robinterp.tables import INTERPRETABILITY_NOTES

    t = tmp_path / "tables"
    assert (
        main(
            [
                "accuracy-table",
                "--inputs",
                *results["acc"],
                "--out-csv",
                str(t / "accuracy.csv"),
                "--out-md",
                str(t / "accuracy.md"),
                "--out-notes",
                str(t / "accuracy.notes.json"),
            ]
        )
        == 0
    )  # no reference values: paper_* columns empty
    assert _table("interpretability-table", results["metrics"], t / "interpretability") == 0
    assert "paper_clean_acc" in pd.read_csv(t / "accuracy.csv").columns  # the CSV keeps its columns
    assert "paper_" not in (t / "accuracy.md").read_text()  # neither the columns nor their note
    summary = tmp_path / "summary.md"
    for md in t.glob("*.md"):
        md.unlink()  # the summary reads the notes as data, never the rendered Markdown
    notes = [str(t / "accuracy.notes.json"), str(t / "interpretability.notes.json")]
    assert (
        main(
            [
                "summary",
                "--tables",
                f"d={t / 'accuracy.csv'}",
                f"d={t / 'interpretability.csv'}",
                "--notes",
                *notes,
                "--curves",
                "--out",
                str(summary),
            ]
        )
        == 0
    )
    text = summary.read_text()
    assert json.loads((t / "interpretability.notes.json").read_text())["notes"] in text
    assert main(["summary", "--tables", f"d={t / 'accuracy.csv'}", "--notes", *notes, "--out", str(summary)]) == 2
    assert "paper_" not in text
    assert "report (`report.html`)" not in text and "a plain run does not make" in text
    assert INTERPRETABILITY_NOTES.split(".")[0] in text
    df = pd.DataFrame(
        [
            {
                "variant": "standard",
                "eps": 0.0,
                "quantity": "clean accuracy (%)",
                "better": "higher",
                "mean": 27 / 32 * 100,
                "low": None,
                "high": None,
            },
            {
                "variant": "robust",
                "eps": 1.0,
                "quantity": "clean accuracy (%)",
                "better": "higher",
                "mean": 27 / 32 * 100,
                "low": None,
                "high": None,
            },
        ]
    )
    assert compare_ends(df) == [
        "clean accuracy (%) (higher better): standard (eps 0) 84.38 vs robust (eps 1) 84.38 -> a tie"
    ]
    df.loc[1, "mean"] = 84.0
    assert compare_ends(df)[0].endswith("-> eps 1 worse")
