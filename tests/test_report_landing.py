"""The report's landing page (workflow/report/workflow.rst) shows the run's summary.md as HTML,
built by the real `snakemake --report`; without a summary it says where the results are."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

SUMMARY = """# robinterp: summary

Numbers from the tables (`<dataset>/tables/*.md`) & the report.

## digits

### Accuracy (%)

| variant | clean_acc | adv_acc |
|---|---|---|
| standard | 93.59 | 10.31 |
| robust_l2 | 95.54 | 67.13 |

- FID (lower better): standard 289.4 vs robust_l2 223.1 -> eps 1.5 better, intervals disjoint
"""

SNAKEFILE = """
report: "{landing}"
rule all:
    input: {targets}
rule summary:
    output: report("results/summary.md", category="summary")
    shell: "cp summary_source.md {{output}}"
rule table:
    output: report("results/digits/tables/accuracy.csv", category="digits")
    shell: "printf 'variant,clean_acc\\\\nstandard,93.59\\\\n' > {{output}}"
"""


def landing_page(tmp_path: Path, with_summary: bool) -> str:
    """Run a two-rule workflow with the real landing page, build its report, return the page's HTML."""
    targets = ['"results/digits/tables/accuracy.csv"'] + (['"results/summary.md"'] if with_summary else [])
    (tmp_path / "Snakefile").write_text(
        SNAKEFILE.format(landing=ROOT / "workflow/report/workflow.rst", targets=", ".join(targets))
    )
    (tmp_path / "summary_source.md").write_text(SUMMARY)
    snakemake = [
        sys.executable,
        "-m",
        "snakemake",
        "--cores",
        "1",
        "--directory",
        str(tmp_path),
        "-s",
        str(tmp_path / "Snakefile"),
    ]
    subprocess.run(snakemake + ["-q"], check=True, capture_output=True, timeout=300)
    subprocess.run(
        snakemake + ["--report", str(tmp_path / "report.html")], check=True, capture_output=True, timeout=300
    )
    page = (tmp_path / "report.html").read_text()
    return json.loads(re.search(r"var workflow_desc = (\".*?\");\n", page, re.S).group(1))


def test_the_landing_page_shows_the_summary(tmp_path):
    html = landing_page(tmp_path, with_summary=True)
    assert "Boychev" in html
    assert "<h3>digits</h3>" in html and "<h4>Accuracy (%)</h4>" in html
    assert "<tr><th>variant</th><th>clean_acc</th><th>adv_acc</th></tr>" in html
    assert "<tr><td>robust_l2</td><td>95.54</td><td>67.13</td></tr>" in html
    assert "---" not in html  # the Markdown separator row is not a table row
    assert "<li>FID (lower better): standard 289.4 vs robust_l2 223.1 -&gt; eps 1.5 better" in html
    assert "<code>&lt;dataset&gt;/tables/*.md</code>" in html and "&amp; the report" in html
    assert "System Message" not in html  # docutils found nothing to complain about


def test_without_a_summary_the_landing_page_says_where_to_look(tmp_path):
    html = landing_page(tmp_path, with_summary=False)
    assert "Boychev" in html and "no summary" in html and "<table" not in html
