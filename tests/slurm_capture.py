"""Run the real workflow through the real SLURM executor plugin against a fake cluster, and
record every sbatch call it makes.

    python tests/slurm_capture.py CALLS.jsonl -- <snakemake arguments>

A fake `sbatch` on PATH records its arguments (one JSON list per line) and answers a job id;
fake `sinfo`/`sacctmgr`/`sacct`/`squeue` make the plugin believe it talks to a cluster. No job
runs: when the plugin asks for the status of a submitted job, this script creates the job's
declared outputs and reports it finished, so Snakemake submits the whole DAG, wave after wave,
exactly as it would on a cluster. Jobs Snakemake keeps on the submitting node (localrules, such
as downloads) are recorded in a second file (CALLS.local.jsonl) and completed the same way.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import tempfile
from pathlib import Path

FAKE_SBATCH = """#!{python}
import json, sys
with open({calls!r}, "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
n = sum(1 for _ in open({calls!r}))
print(1000 + n)
"""


def _fake_bin(folder: Path, calls: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    scripts = {
        "sbatch": FAKE_SBATCH.format(python=sys.executable, calls=str(calls)),
        "sinfo": "#!/bin/sh\necho 'fake'\n",
        "sacctmgr": "#!/bin/sh\nprintf 'x\\nmyproj\\n'\n",
        "sshare": "#!/bin/sh\nprintf 'x\\n'\n",
        "sacct": "#!/bin/sh\nexit 0\n",
        "squeue": "#!/bin/sh\nexit 0\n",
        "scontrol": "#!/bin/sh\nexit 0\n",
    }
    for name, text in scripts.items():
        path = folder / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)


def _complete(job) -> None:
    """Create a job's declared outputs and log, as if it had run."""
    for f in list(job.output) + list(job.log):
        Path(f).parent.mkdir(parents=True, exist_ok=True)
        Path(f).touch()


def _patch(local_calls: Path) -> None:
    import snakemake.executors.local as local
    import snakemake_executor_plugin_slurm as slurm

    async def check_active_jobs(self, active_jobs):
        for info in active_jobs:
            _complete(info.job)
            self.report_job_success(info)
        return
        yield  # an async generator that yields no running job

    slurm.Executor.check_active_jobs = check_active_jobs

    def run_local(self, job):
        from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo

        with open(local_calls, "a") as f:
            f.write(
                json.dumps(
                    {
                        "rule": job.name,
                        "wildcards": dict(job.wildcards),
                        "threads": job.threads,
                        "resources": {k: v for k, v in job.resources.items() if not k.startswith("_")},
                    },
                    default=str,
                )
                + "\n"
            )
        _complete(job)
        info = SubmittedJobInfo(job=job)
        self.report_job_submission(info)
        self.report_job_success(info)

    local.Executor.run_job = run_local


def main(argv: list[str]) -> int:
    calls = Path(argv[0]).resolve()
    snakemake_args = argv[argv.index("--") + 1 :]
    bin_dir = Path(tempfile.mkdtemp(prefix="fake-slurm-"))
    _fake_bin(bin_dir, calls)
    os.environ["PATH"] = f"{bin_dir}:{os.environ['PATH']}"
    _patch(calls.with_suffix(".local.jsonl"))
    from snakemake.cli import main as snakemake_main

    try:
        snakemake_main(snakemake_args)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
