"""GPU slots on one machine (robinterp.gpus) and where a job says it runs (robinterp.device).

A fake `nvidia-smi` on PATH shows four GPUs; real Snakemake runs start jobs through the same
launcher the workflow's GPU rules use, each job recording the CUDA_VISIBLE_DEVICES it was given.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from robinterp import gpus
from robinterp.errors import RobinterpError

ROOT = Path(__file__).resolve().parents[1]
FAKE = [gpus.Gpu(i, f"GPU-fake-{i}", "NVIDIA Fake 80GB", "535.104.05", "9.0") for i in range(4)]


@pytest.fixture
def fake_box(tmp_path, monkeypatch):
    """PATH with an nvidia-smi that shows FAKE, a private lock folder, the repository's src first."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    rows = "\\n".join(f"{g.index}, {g.uuid}, {g.name}, {g.driver}, {g.capability}" for g in FAKE)
    (bin_dir / "nvidia-smi").write_text(f"#!/bin/sh\nprintf '{rows}\\n'\n")
    (bin_dir / "nvidia-smi").chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        gpus.LOCK_DIR_ENV: str(tmp_path / "locks"),
        "PYTHONPATH": str(ROOT / "src"),
    }
    env.pop("CUDA_VISIBLE_DEVICES", None)
    env.pop("SLURM_JOB_ID", None)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return env


def test_nvidia_smi_listing_and_cuda_visible_devices(fake_box):
    assert gpus.query_nvidia_smi() == FAKE
    assert gpus.visible_gpus({}) == FAKE
    assert [g.index for g in gpus.visible_gpus({"CUDA_VISIBLE_DEVICES": "3,1"})] == [3, 1]
    assert [g.index for g in gpus.visible_gpus({"CUDA_VISIBLE_DEVICES": "GPU-fake-2"})] == [2]
    assert [g.index for g in gpus.visible_gpus({"CUDA_VISIBLE_DEVICES": "0,7,1"})] == [0]  # CUDA stops at 7
    assert gpus.visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []


def test_acquire_takes_all_or_nothing_and_waits(tmp_path):
    first = gpus.acquire(3, FAKE, tmp_path)
    waits = []

    def sleep(s):  # a fake clock: release the first holder after the second job has waited once
        waits.append(s)
        for _, fd in first:
            os.close(fd)

    second = gpus.acquire(2, FAKE, tmp_path, log=waits.append, sleep=sleep)
    assert len(waits) == 2 and "waiting for 2 free GPU(s) of 4" in waits[0]
    assert len({g.uuid for g, _ in second}) == 2
    with pytest.raises(RobinterpError, match="asks for 5 GPUs but only 4 are visible"):
        gpus.acquire(5, FAKE, tmp_path)


def _launch(env, count, *command, **kw):
    return subprocess.Popen([sys.executable, "-m", "robinterp.gpus", str(count), "--", *command], env=env, **kw)


def test_a_killed_job_gives_its_gpus_back(fake_box, tmp_path):
    holder = _launch(fake_box, 4, "sleep", "60", stderr=subprocess.PIPE, text=True)
    assert "this job holds GPU 0" in holder.stderr.readline()
    with pytest.raises(subprocess.TimeoutExpired):  # every GPU is taken: a second job waits
        subprocess.run(
            [sys.executable, "-m", "robinterp.gpus", "1", "--", "true"], env=fake_box, timeout=3, capture_output=True
        )
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    done = subprocess.run(
        [sys.executable, "-m", "robinterp.gpus", "4", "--", "sh", "-c", "echo $CUDA_VISIBLE_DEVICES"],
        env=fake_box,
        timeout=20,
        capture_output=True,
        text=True,
    )
    assert done.stdout.strip() == ",".join(g.uuid for g in FAKE)


def test_the_launcher_steps_aside_for_cpu_jobs_slurm_and_machines_without_gpus(fake_box):
    show = ["sh", "-c", "echo ${CUDA_VISIBLE_DEVICES-unset}"]
    run = lambda count, **env: subprocess.run(
        [sys.executable, "-m", "robinterp.gpus", str(count), "--", *show],
        env={**fake_box, **env},
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert run(0).stdout.strip() == "unset"
    assert run(1, SLURM_JOB_ID="7", CUDA_VISIBLE_DEVICES="0").stdout.strip() == "0"
    assert run(1, ROBINTERP_GPU_SLOTS="off").stdout.strip() == "unset"
    assert run(1, PATH="/usr/bin:/bin").stdout.strip() == "unset"  # no nvidia-smi: a CPU machine
    assert run(1, CUDA_VISIBLE_DEVICES="2").stdout.strip() == "GPU-fake-2"  # a user's subset is respected
    too_many = run(2, CUDA_VISIBLE_DEVICES="1")
    assert too_many.returncode == 2 and "asks for 2 GPUs but only 1 are visible" in too_many.stderr


SNAKEFILE = """
from robinterp.gpus import local_gpu_limit
_GPUS = local_gpu_limit(workflow.global_resources, workflow.remote_exec)  # as workflow/rules/common.smk
if _GPUS:
    workflow.register_resource("gpu", _GPUS)
JOBS = {jobs}

rule all:
    input: expand("out/{{name}}.json", name=JOBS)

rule job:
    output: "out/{{name}}.json"
    resources: gpu=lambda w: JOBS[w.name]
    shell:
        "python -m robinterp.gpus {{resources.gpu}} -- python -c "
        "'import json, os, sys, time; start = time.time(); time.sleep({sleep}); "
        "json.dump(dict(gpus=os.environ[\\"CUDA_VISIBLE_DEVICES\\"].split(\\",\\"), start=start, end=time.time()), "
        "open(sys.argv[1], \\"w\\"))' {{output}}"
"""


def _workflow(folder: Path, jobs: dict, sleep: float = 2) -> Path:
    folder.mkdir()
    (folder / "Snakefile").write_text(textwrap.dedent(SNAKEFILE.format(jobs=jobs, sleep=sleep)))
    return folder


def _snakemake(folder: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--cores", "8", "-d", str(folder), "-s", str(folder / "Snakefile")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _records(folder: Path, jobs: dict) -> dict:
    return {name: json.loads((folder / "out" / f"{name}.json").read_text()) for name in jobs}


def _overlap(a: dict, b: dict) -> bool:
    return a["start"] < b["end"] and b["start"] < a["end"]


def _run_together(env, *runs):
    procs = [_snakemake(folder, env) for folder, _ in runs]
    for p in procs:
        out, _ = p.communicate(timeout=180)
        assert p.returncode == 0, out[-3000:]
    records = {f"{folder.name}/{name}": r for folder, jobs in runs for name, r in _records(folder, jobs).items()}
    for folder, jobs in runs:
        assert all(len(records[f"{folder.name}/{n}"]["gpus"]) == k for n, k in jobs.items())
    names = sorted(records)
    for i, a in enumerate(names):  # no two jobs that ran at the same time shared a GPU
        for b in names[i + 1 :]:
            if _overlap(records[a], records[b]):
                assert not set(records[a]["gpus"]) & set(records[b]["gpus"]), (a, b, records[a], records[b])
    return records


@pytest.mark.slow
def test_concurrent_jobs_of_one_and_two_runs_get_disjoint_gpus(fake_box, tmp_path):
    """4 single-GPU jobs run at once on 4 GPUs, each on its own; a 2-GPU (torchrun-style) job
    beside two 1-GPU jobs; two Snakemake runs on the same machine never share a GPU."""
    singles = {f"s{i}": 1 for i in range(4)}
    records = _run_together(fake_box, (_workflow(tmp_path / "singles", singles), singles))
    assert sorted(g for r in records.values() for g in r["gpus"]) == [g.uuid for g in FAKE]  # all four used
    assert all(_overlap(a, b) for a in records.values() for b in records.values() if a is not b)  # at once

    mixed = {"train": 2, "a": 1, "b": 1}
    records = _run_together(fake_box, (_workflow(tmp_path / "mixed", mixed), mixed))
    assert sorted(g for r in records.values() for g in r["gpus"]) == [g.uuid for g in FAKE]
    assert all(_overlap(a, b) for a in records.values() for b in records.values() if a is not b)

    one, two = {"c": 1, "d": 1, "e": 1}, {"f": 1, "g": 1, "h": 1}  # 6 jobs of two runs on 4 GPUs: some wait
    records = _run_together(fake_box, (_workflow(tmp_path / "one", one), one), (_workflow(tmp_path / "two", two), two))
    assert len(records) == 6


def test_auto_stops_where_the_driver_is_too_old_for_torch(fake_box, monkeypatch):
    from robinterp import device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    with pytest.raises(RobinterpError) as e:
        device.resolve_device("auto")
    msg = str(e.value)
    assert "nvidia-smi shows 4 GPU(s) (NVIDIA Fake 80GB)" in msg and "CUDA 13.0" in msg and ">= 580" in msg
    assert "driver 535.104.05" in msg and "docs/scale.md" in msg and "\n" not in msg
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # the user hid the GPUs: the CPU on purpose
    assert device.resolve_device("auto").type == "cpu"


def test_a_gpu_without_kernels_in_this_torch_is_named(monkeypatch):
    from robinterp import device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=0: (7, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "Tesla V100-SXM2-32GB")
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"])
    with pytest.raises(RobinterpError, match=r"Tesla V100-SXM2-32GB has compute capability 7.0 \(sm_70\)"):
        device.resolve_device("auto")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=0: (8, 9))  # sm_86 kernels run on sm_89
    assert device.resolve_device("cuda").type == "cuda"


@pytest.mark.parametrize("name", ["mps", "foo", "cuda"])
def test_unusable_device_names_are_one_line(name, monkeypatch):
    from robinterp.device import resolve_device

    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no nvidia-smi
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RobinterpError, match="device: auto or cpu|choose auto, cpu or cuda"):
        resolve_device(name)


def test_the_resolved_device_is_logged_and_recorded(capsys):
    from robinterp.device import select

    device, record = select("cpu")
    assert device.type == "cpu" and record["type"] == "cpu" and record["torch"] == str(torch.__version__)
    assert capsys.readouterr().err.startswith("device: cpu (")
