"""benchmarks/gpu_session.sh: the one command a GPU machine runs (its steps run there, not here)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_session_logs_its_setup_and_rejects_unknown_steps(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PY": sys.executable, "DEVICE": "cpu", "WHEELS": ""}
    r = subprocess.run(
        ["bash", "benchmarks/gpu_session.sh", "bogus"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 2
    assert "unknown step 'bogus': choose from test workflow train ablation attributions amp" in r.stdout
    log = (tmp_path / "session.log").read_text()
    assert "torch " in log and "unknown step" in log  # versions recorded before any step
