"""The report check renders a real Snakemake report in headless chromium and catches blank
pages and broken images. Skips when chromium is not installed."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("check_report", ROOT / "scripts" / "check_report.py")
check_report = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_report)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        check_report.find_chromium() is None,
        reason="chromium not installed (apt-get install -y chromium); report render not checked",
    ),
]

SNAKEFILE = """
rule all:
    input: "curve.png", "table.csv"
rule curve:
    output: report("curve.png", caption="caption.rst", category="digits", subcategory="curve")
    shell: "{python} -c 'from PIL import Image; Image.new(\\"RGB\\", (64, 48), (200, 30, 30)).save(\\"{{output}}\\")'"
rule table:
    output: report("table.csv", caption="caption.rst", category="digits", subcategory="table")
    shell: "printf 'variant,fid\\\\nstandard,1.0\\\\n' > {{output}}"
"""


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A two-result Snakemake report (one PNG, one CSV) built by the real snakemake."""
    work = tmp_path_factory.mktemp("report")
    (work / "Snakefile").write_text(SNAKEFILE.format(python=sys.executable))
    (work / "caption.rst").write_text("What to look for: *nothing* in particular.\n")
    snakemake = [
        sys.executable,
        "-m",
        "snakemake",
        "--cores",
        "1",
        "--directory",
        str(work),
        "-s",
        str(work / "Snakefile"),
    ]
    subprocess.run(snakemake + ["-q"], check=True, capture_output=True, timeout=300)
    subprocess.run(snakemake + ["--report", str(work / "report.html")], check=True, capture_output=True, timeout=300)
    return work / "report.html"


def test_a_real_report_passes(report):
    seen = check_report.check_report(report)
    assert seen["images"] == 1 and seen["screenshot_colours"] >= 8


def test_a_broken_image_fails(report, tmp_path):
    text = report.read_text()
    broken = tmp_path / "broken.html"
    broken.write_text(text.replace("base64,iVBORw0KGgo", "base64,AAAAAAAAAA", 1))
    with pytest.raises(check_report.ReportError, match="do not decode"):
        check_report.check_report(broken)


def test_a_blank_page_fails(tmp_path):
    blank = tmp_path / "blank.html"
    blank.write_text("<!doctype html><html><body><div id='root'></div></body></html>")
    with pytest.raises(check_report.ReportError, match="blank"):
        check_report.check_report(blank)
    assert check_report.main([str(blank)]) == 1
