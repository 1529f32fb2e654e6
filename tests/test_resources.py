"""What each job asks for (robinterp.resources): computed from its dataset, and what docs/scale.md shows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from robinterp.resources import MACS, job_resources, resource_keys

ROOT = Path(__file__).resolve().parents[1]


def _filled(name: str) -> dict:
    from robinterp.config import check_config

    cfg = yaml.safe_load((ROOT / name).read_text())
    check_config(cfg)
    return cfg


def test_the_table_in_docs_is_what_the_rules_compute():
    out = subprocess.run(
        [sys.executable, "-m", "robinterp.resources", "config.yaml", "workflow/configs/demo.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.strip()
    assert out in (ROOT / "docs" / "scale.md").read_text(), "regenerate the table in docs/scale.md:\n" + out


def test_resources_grow_with_the_data_and_the_attack():
    paper, demo = _filled("config.yaml")["datasets"], _filled("workflow/configs/demo.yaml")["datasets"]
    cifar, imagenet, digits = paper["cifar10"], paper["small_imagenet150"], demo["digits"]
    robust = lambda d: next(v for v in d["variants"] if v.get("attack"))
    standard = lambda d: next(v for v in d["variants"] if not v.get("attack"))
    for rule in ("train", "evaluate", "inception_features", "class_generation"):
        small, big = (
            job_resources(rule, digits, robust(digits), "auto", 1),
            job_resources(rule, cifar, robust(cifar), "auto", 1),
        )
        assert small["runtime"] <= big["runtime"] and _memory(small) <= _memory(big), rule
    assert (
        job_resources("train", cifar, robust(cifar), "auto", 1)["runtime"]
        > 5 * job_resources("train", cifar, standard(cifar), "auto", 1)["runtime"]
    )
    assert (
        job_resources("train", imagenet, robust(imagenet), "auto", 1)["runtime"]
        > job_resources("train", cifar, robust(cifar), "auto", 1)["runtime"]
    )
    assert all(
        _memory(job_resources(r, digits, robust(digits), "auto", 1)) <= 8000 for r in ("train", "evaluate", "ig")
    )


def _memory(res: dict) -> int:
    return res.get("mem_mb") or res["mem_mb_per_cpu"] * res["cpus_per_gpu"]


def test_every_rule_declares_memory_and_runtime_and_cpu_jobs_no_gpu():
    digits = _filled("workflow/configs/demo.yaml")["datasets"]["digits"]
    assert job_resources("evaluate", digits, None, "cpu", 1)["gpu"] == 0
    assert resource_keys("train", "auto") == ("gpu", "cpus_per_gpu", "mem_mb_per_cpu", "runtime")
    assert resource_keys("train", "cpu") == ("gpu", "cpus_per_gpu", "mem_mb", "runtime")
    assert set(resource_keys("accuracy_table", "auto")) == {"mem_mb", "runtime"}
    text = "".join(p.read_text() for p in (ROOT / "workflow" / "rules").glob("*.smk"))
    jobs = [rule for rule in text.split("\nrule ")[1:] if "    shell:" in rule]  # not the target-only rules
    assert all("**resources_of(" in rule for rule in jobs), "every rule takes its resources from resources_of"


@pytest.mark.parametrize("arch,px", [("resnet18_cifar", 32), ("resnet50", 224)])
def test_the_macs_table_matches_the_networks(arch, px):
    """Multiply-accumulates of one image counted on the real network, within 5% of the table."""
    from robinterp.models import build_model

    model = build_model(arch, 10 if px == 32 else 1000, [0.5] * 3, [0.25] * 3, 1.0).eval()
    macs = []

    def count(module, inputs, output):
        if isinstance(module, torch.nn.Conv2d):
            macs.append(
                output.numel() * module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            )
        elif isinstance(module, torch.nn.Linear):
            macs.append(module.in_features * module.out_features)

    for m in model.modules():
        m.register_forward_hook(count)
    with torch.no_grad():
        model(torch.rand(1, 3, px, px))
    ref, table = MACS[arch]
    assert ref == px and abs(sum(macs) - table) / table < 0.05, sum(macs)
