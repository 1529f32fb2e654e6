"""What the SLURM profile submits: the real plugin's sbatch calls for every job of the demo and of
config.yaml, with and without command-line overrides, against a fake cluster
(tests/slurm_capture.py). Each job's flags must be what its rule computes from its dataset
(robinterp.resources), and an override must change the key it names and nothing else.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from robinterp.resources import GPU_RULES, job_resources

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(
    subprocess.run([sys.executable, "-c", "import snakemake_executor_plugin_slurm"]).returncode != 0,
    reason="test dependency: pip install -e '.[dev]' (snakemake-executor-plugin-slurm)",
)


def _filled(configfile: Path) -> dict:
    from robinterp.config import check_config

    cfg = yaml.safe_load(configfile.read_text())
    check_config(cfg)
    return cfg


def _submit(tmp_path: Path, configfile: Path, *extra: str) -> tuple[dict, list[dict]]:
    """{(rule, wildcards): sbatch flags} of every submitted job, and the jobs kept on this node."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    calls = tmp_path / "calls.jsonl"
    cmd = [
        sys.executable,
        str(ROOT / "tests" / "slurm_capture.py"),
        str(calls),
        "--",
        "-s",
        str(ROOT / "Snakefile"),
        "-d",
        str(tmp_path),
        "--workflow-profile",
        str(ROOT / "workflow" / "profiles" / "slurm"),
        "--configfile",
        str(configfile),
        "--config",
        f"results={tmp_path / 'results'}",
        "--seconds-between-status-checks",
        "1",
        "--slurm-init-seconds-before-status-checks",
        "1",
        "--latency-wait",
        "1",
        *extra,
    ]
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "torch"), "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    jobs = {}
    for line in calls.read_text().splitlines():
        argv = json.loads(line)
        log = Path(argv[argv.index("--output") + 1])  # .snakemake/slurm_logs/rule_<rule>/<wildcards>/%j.log
        jobs[(log.parent.parent.name.removeprefix("rule_"), log.parent.name)] = _flags(argv)
    local = calls.with_suffix(".local.jsonl")
    return jobs, [json.loads(x) for x in local.read_text().splitlines()] if local.exists() else []


def _flags(argv: list[str]) -> dict:
    out = {}
    for i, arg in enumerate(argv):
        if arg in ("-t", "--mem", "--mem-per-cpu", "-p", "-A"):
            out[arg] = argv[i + 1]
        elif m := re.fullmatch(r"--(gpus|cpus-per-gpu|cpus-per-task)=(.+)", arg):
            out[m.group(1)] = m.group(2)
    return out


def _expected(cfg: dict, rule: str, wildcards: str, threads: int) -> dict:
    """The flags `rule`'s resources map to, computed here from the config as the rule computes them."""
    dataset = next((d for name, d in cfg["datasets"].items() if wildcards.startswith(name)), None)
    variant = None
    if rule == "train":
        name = wildcards.split("_", 1)[1]
        variant = next(v for v in dataset["variants"] if v["name"] == name)
    res = job_resources(rule, dataset if rule != "summary" else None, variant, cfg.get("device", "auto"), threads)
    flags = {"-t": str(res["runtime"])}
    if res.get("gpu"):
        flags.update({"gpus": str(res["gpu"]), "cpus-per-gpu": str(res["cpus_per_gpu"])})
    else:
        flags["cpus-per-task"] = str(threads)
    flags.update(
        {"--mem-per-cpu": str(res["mem_mb_per_cpu"])} if "mem_mb_per_cpu" in res else {"--mem": str(res["mem_mb"])}
    )
    return flags


def _threads(cfg: dict, rule: str) -> int:
    threads = {"train": "train", "build_small_imagenet": "data"}.get(rule, "analysis")
    return cfg.get("threads", {}).get(threads, 1) if rule in GPU_RULES or rule.startswith("fid_real") else 1


def _check_against_rules(cfg: dict, jobs: dict, override: dict | None = None) -> None:
    for (rule, wildcards), flags in jobs.items():
        want = {**_expected(cfg, rule, wildcards, _threads(cfg, rule)), **(override or {}).get(rule, {})}
        assert {k: flags.get(k) for k in want} == want, (rule, wildcards, flags)


def test_the_demo_asks_a_cluster_for_little(tmp_path):
    cfg = _filled(ROOT / "workflow" / "configs" / "demo.yaml")
    jobs, local = _submit(tmp_path, ROOT / "workflow" / "configs" / "demo.yaml")
    _check_against_rules(cfg, jobs)
    rules = {rule for rule, _ in jobs}
    assert set(GPU_RULES) <= rules  # every GPU rule reached the cluster ...
    for (rule, _), flags in jobs.items():
        assert flags.get("gpus") == ("1" if rule in GPU_RULES else None), (rule, flags)  # ... with its GPU
        total = int(flags.get("--mem") or int(flags["--mem-per-cpu"]) * int(flags["cpus-per-gpu"]))
        assert total <= 8000 and int(flags["-t"]) <= 30, (rule, flags)  # a few GB and minutes
    assert {j["rule"] for j in local} <= {"install_fid_weights", "all"}


@pytest.mark.slow
def test_config_yaml_and_its_overrides_keep_every_other_key(tmp_path):
    paper = ROOT / "config.yaml"
    cfg = _filled(paper)
    plain, local = _submit(tmp_path / "plain", paper)
    _check_against_rules(cfg, plain)
    train = plain[("train", "cifar10_robust_l2")]
    assert train["gpus"] == "1" and train["cpus-per-gpu"] == "8" and "--mem-per-cpu" in train
    assert plain[("parameter_randomisation", "cifar10_robust_l2")]["gpus"] == "1"
    # the download runs on the submitting node (it has the internet), the packing on the cluster
    assert "download_data" not in {r for r, _ in plain} and "download_data" in {j["rule"] for j in local}
    assert ("prepare_data", "cifar10") in plain

    over, _ = _submit(
        tmp_path / "over",
        paper,
        "--set-resources",
        "train:gpu=4",
        "--default-resources",
        "slurm_partition=gpu",
        "slurm_account=x",
    )
    assert over.keys() == plain.keys()
    for key, flags in over.items():
        want = {**plain[key], "-p": "gpu", "-A": "x", **({"gpus": "4"} if key[0] == "train" else {})}
        assert flags == want, (key, flags, want)
