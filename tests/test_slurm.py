"""A real single-node SLURM (Debian's packages) with a fake GPU runs part of the tiny DAG.

The test installs `slurmctld slurmd slurm-client munge` (apt, bounded time), starts munged,
slurmctld and slurmd on loopback from a temporary folder, submits `prepare_data` and one `train`
job through `workflow/profiles/slurm` (the train job asks for `--gpus=1`; the node's only GPU
is `File=/dev/null`, so torch still runs on CPU), checks the outputs and that SLURM gave the
train job the GPU, and stops every daemon it started by PID. It skips when not root, without
apt-get, or when the packages cannot be installed. Every wait has a timeout.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]
DAEMONS = ["munged", "slurmctld", "slurmd", "sinfo", "sbatch", "srun", "squeue", "scontrol", "mungekey"]
pytestmark = pytest.mark.slow


def _need_slurm():
    if os.name != "posix" or os.geteuid() != 0:
        pytest.skip("SLURM test needs root (installs Debian packages and starts slurmd)")
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        pytest.skip("snakemake-executor-plugin-slurm is not installed (pip install -e '.[dev]')")
    missing = [d for d in DAEMONS if not _which(d)]
    if not missing:
        return
    if not shutil.which("apt-get"):
        pytest.skip(f"SLURM binaries {missing} missing and apt-get is unavailable")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd, limit in (
        (["apt-get", "update", "-q"], 180),
        (["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES], 300),
    ):
        try:
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=limit)
        except subprocess.TimeoutExpired:
            pytest.skip(f"`{' '.join(cmd)}` took over {limit} s (no package mirror reachable?)")
        if done.returncode != 0:
            pytest.skip(f"`{' '.join(cmd)}` failed: {done.stderr.strip()[-300:]}")
    missing = [d for d in DAEMONS if not _which(d)]
    if missing:
        pytest.skip(f"SLURM binaries {missing} still missing after apt-get install")


def _which(name):
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(what: str, check, timeout: float, logs=()):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.5)
    tails = "\n".join(f"--- {p}:\n{Path(p).read_text()[-1500:]}" for p in logs if Path(p).exists())
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{tails}")


def _slurm_conf(d: Path, host: str, cpus: int, mem_mb: int) -> str:
    return (
        "\n".join(
            [
                "ClusterName=robinterp-test",
                f"SlurmctldHost={host}(127.0.0.1)",
                f"SlurmctldPort={_free_port()}",
                f"SlurmdPort={_free_port()}",
                "SlurmUser=root",
                "SlurmdUser=root",
                "AuthType=auth/munge",
                f"AuthInfo=socket={d}/munge/munge.socket",
                "CredType=cred/munge",
                f"StateSaveLocation={d}/state",
                f"SlurmdSpoolDir={d}/spool",
                f"SlurmctldPidFile={d}/slurmctld.pid",
                f"SlurmdPidFile={d}/slurmd.pid",
                f"SlurmctldLogFile={d}/slurmctld.log",
                f"SlurmdLogFile={d}/slurmd.log",
                "SelectType=select/cons_tres",
                "SelectTypeParameters=CR_CPU_Memory",
                "ProctrackType=proctrack/linuxproc",
                "TaskPlugin=task/none",
                "MpiDefault=none",
                "AccountingStorageType=accounting_storage/none",
                "JobAcctGatherType=jobacct_gather/none",
                "MinJobAge=300",
                "ReturnToService=2",
                "SchedulerType=sched/builtin",
                "GresTypes=gpu",
                f"NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem_mb} Gres=gpu:1 State=UNKNOWN",
                f"PartitionName=test Nodes={host} Default=YES MaxTime=60 State=UP",
            ]
        )
        + "\n"
    )


@pytest.fixture
def slurm_cluster(tmp_path):
    """Start munged + slurmctld + slurmd; yield the environment that reaches them; stop them."""
    _need_slurm()
    d = tmp_path / "slurm"
    for sub in ("munge", "state", "spool", "bin"):
        (d / sub).mkdir(parents=True)
    (d / "munge").chmod(0o755)  # munged refuses a socket folder others cannot traverse
    host = socket.gethostname().split(".")[0]
    mem_mb = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20 * 0.8)
    conf = d / "slurm.conf"
    conf.write_text(_slurm_conf(d, host, os.cpu_count() or 1, mem_mb))
    (d / "gres.conf").write_text(f"NodeName={host} Name=gpu File=/dev/null\n")
    # the executor plugin strips SLURM_CONF inside jobs; srun there must still find ours
    srun = d / "bin" / "srun"
    srun.write_text(f'#!/bin/sh\nexport SLURM_CONF={conf}\nexec {_which("srun")} "$@"\n')
    srun.chmod(0o755)
    env = {**os.environ, "SLURM_CONF": str(conf), "PATH": f"{d / 'bin'}:{os.environ['PATH']}:/usr/sbin"}
    subprocess.run([_which("mungekey"), "-c", "-k", str(d / "munge.key")], check=True, timeout=30)
    (d / "munge.key").chmod(0o600)

    procs = []
    try:
        procs.append(
            subprocess.Popen(
                [
                    _which("munged"),
                    "-F",
                    "-f",
                    f"--key-file={d}/munge.key",
                    f"--socket={d}/munge/munge.socket",
                    f"--pid-file={d}/munged.pid",
                    f"--log-file={d}/munged.log",
                    f"--seed-file={d}/munged.seed",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
            )
        )
        _wait("the munge socket", (d / "munge" / "munge.socket").exists, 20, [d / "munged.log"])
        # -D: stay in the foreground, so the PID we hold is the daemon's
        for daemon in ("slurmctld", "slurmd"):
            procs.append(
                subprocess.Popen(
                    [_which(daemon), "-D", "-f", str(conf)],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.STDOUT,
                )
            )
            time.sleep(1)
        logs = [d / "slurmctld.log", d / "slurmd.log"]

        def node_idle():
            assert all(p.poll() is None for p in procs), "a SLURM daemon exited early"
            out = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True, timeout=10)
            return out.stdout.strip() == "idle"

        _wait("the node to come up idle", node_idle, 60, logs)
        yield env, d
    finally:
        subprocess.run(["scancel", "--full", "--partition=test"], env=env, capture_output=True, timeout=20)
        for p in reversed(procs):  # slurmd, slurmctld, munged
            p.terminate()
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)


def test_tiny_dag_through_the_slurm_profile(slurm_cluster, tmp_path):
    env, d = slurm_cluster
    work = tmp_path / "work"
    work.mkdir()
    results = work / "results"
    target = results / "digits" / "models" / "standard" / "model.pt"
    env = {**env, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        str(target),
        "-s",
        str(ROOT / "Snakefile"),
        "--directory",
        str(work),
        "--workflow-profile",
        str(ROOT / "workflow" / "profiles" / "slurm"),
        "--configfile",
        str(ROOT / "workflow" / "configs" / "tiny.yaml"),
        # device auto: the job runs on whatever the node has; the profile's gpu=1 gets the fake GPU
        "--config",
        f"results={results}",
        "device=auto",
        "--jobs",
        "2",
        "--latency-wait",
        "5",
        "--retries",
        "0",
        "--seconds-between-status-checks",
        "2",
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "2",
        "--slurm-no-account",
        "--slurm-logdir",
        str(work / "slurm_logs"),
        # a 2-CPU test node: the profile's cluster-sized requests would never be scheduled
        "--default-resources",
        "mem_mb=1000",
        "runtime=10",
        "--set-resources",
        "train:gpu=1",
        "train:mem_mb=2000",
        "train:cpus_per_gpu=1",
        "train:runtime=10",
        "prepare_data:mem_mb=1000",
        "prepare_data:cpus_per_task=1",
        "prepare_data:runtime=10",
    ]
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=work)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"snakemake through SLURM did not finish in 600 s:\n{(e.stdout or '')[-3000:]}") from None
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]

    # --- the outputs: packed data and a loadable checkpoint from the train job ---
    for split in ("train", "val", "test"):
        assert json.loads((results / "digits" / "data" / split / "manifest.json").read_text())["shape"][0] > 0
    from robinterp.checkpoints import load_model

    model, meta = load_model(target)
    assert meta["arch"]["name"] == "resnet18_cifar" and meta["epoch"] >= 1
    assert "train: best epoch" in (results / "logs" / "train" / "digits" / "standard.log").read_text()

    # --- SLURM ran both jobs, and the train job held the (fake) GPU ---
    jobs = subprocess.run(
        ["scontrol", "show", "job", "-o"], env=env, capture_output=True, text=True, timeout=20
    ).stdout.splitlines()
    by_rule = {rule: [j for j in jobs if f"/rule_{rule}/" in j] for rule in ("prepare_data", "train")}
    assert all(len(found) == 1 for found in by_rule.values()), jobs
    assert all("JobState=COMPLETED" in found[0] for found in by_rule.values()), jobs
    assert "gres:gpu:1" in by_rule["train"][0] and "gpu" not in by_rule["prepare_data"][0], jobs
