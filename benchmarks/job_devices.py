"""Which device every GPU job of a finished workflow run used, read from its log's `device:` line.

    python benchmarks/job_devices.py RESULTS/logs --expect cuda [--out devices.json]

Prints one line per GPU job (rule, job, the line) and exits 1 when a GPU rule's log lacks the
line or names another device type than --expect: a run meant for the GPU that fell back to the
CPU, or a job that never logged where it ran, fails here (benchmarks/gpu_session.sh, step
`workflow`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from robinterp.resources import GPU_RULES  # noqa: E402


def job_devices(logs: Path) -> list[dict]:
    rows = []
    for rule in GPU_RULES:
        for log in sorted((logs / rule).rglob("*.log")):
            lines = [x for x in log.read_text(errors="replace").splitlines() if x.startswith("device: ")]
            rows.append({"rule": rule, "job": str(log.relative_to(logs / rule)), "device": lines[0] if lines else None})
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("logs", type=Path, help="the run's logs folder (RESULTS/logs)")
    p.add_argument("--expect", choices=["cuda", "cpu"], required=True, help="the device type every GPU job must report")
    p.add_argument("--out", type=Path, help="JSON of the rows")
    a = p.parse_args()
    rows = job_devices(a.logs)
    bad = [r for r in rows if not (r["device"] or "").startswith(f"device: {a.expect}")]
    for r in rows:
        print(f"{r['rule']:<26} {r['job']:<32} {r['device'] or 'NO device LINE'}")
    if a.out:
        a.out.write_text(json.dumps({"expect": a.expect, "jobs": rows, "bad": bad}, indent=2) + "\n")
    if not rows:
        print(f"no GPU job logs under {a.logs}")
        return 1
    print(f"{len(rows) - len(bad)}/{len(rows)} GPU jobs ran on {a.expect}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
