"""What each job needs (GPUs, CPUs, memory, runtime), computed from the data it processes.

Every rule takes its `resources:` from `job_resources(rule, dataset config, device)`, so the
values live in the rules themselves: a command-line `--set-resources rule:key=value` changes
that one key, and `--default-resources slurm_partition=... slurm_account=...` leaves memory and
runtime alone. The SLURM profile adds only what is site-specific (partition, account, GPU type).

The model, per job:

- **memory** (host): a process with torch (`PROCESS_MB`), plus the CUDA runtime's own host
  memory when the job holds a GPU (`CUDA_HOST_MB`), plus the arrays the verb holds at the
  dataset's counts (bytes of its images as uint8 or float32, features; docs/scale.md
  "What each verb batches"), plus, on a CPU run only, one batch's activations (MB per batch
  element, measured at the paper's shapes, `ACTIVATION_MB`); times 1.25, in whole GB, at least
  2 GB. Training under torchrun holds that per rank, so on a GPU it asks memory per CPU
  (`mem_mb_per_cpu`, times `cpus_per_gpu` CPUs per GPU): it follows `--set-resources train:gpu=N`.
- **runtime**: the forward and backward passes the job makes, counted from the config (each
  PGD step is one forward and one input-gradient backward, about 3 forward passes), times the
  network's multiply-accumulates per image (`MACS`, scaled by pixels and width^2), at an assumed
  sustained `GPU_MACS_PER_S` (or `CPU_MACS_PER_S` per thread); 1.5 times that plus 10 minutes,
  rounded up to 15 minutes. The throughputs are conservative assumptions, not measurements.

No torch here: the workflow computes these while it builds the DAG.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

PROCESS_MB = 1000  # python + torch + the CLI, measured ~0.7-0.9 GB (docs/scale.md)
CUDA_HOST_MB = 3000  # host memory of the CUDA runtime (cuDNN, cuBLAS), assumed
GPU_MACS_PER_S = 5e12  # sustained fp32/TF32 on a data-centre GPU (~10 TFLOP/s), assumed
CPU_MACS_PER_S = 1e10  # per thread; measured 3e10 for a CIFAR ResNet18 on x86 (docs/benchmarks.md)
DECODED = ("image_folder", "small_imagenet150")  # sources whose images are decoded one by one
DECODE_S_PER_IMAGE = 0.015  # decode, resize and write one image on one core (measured 10-14 ms, docs/benchmarks.md)
INCEPTION_MACS = 5.7e9  # pytorch-fid's InceptionV3 at 299 px, per image
INCEPTION_MB = 500  # its weights and one batch of 299 px activations beside them
FEATURE_MB = 2048 * 8 / 1e6  # one 2048-d float64 Inception feature vector
CPUS_PER_GPU = {"train": 8}  # torchrun ranks, pinned copies; every other GPU rule 4 (a quarter on small data)
GPU_RULES = (
    "train",
    "evaluate",
    "ig",
    "shap",
    "class_generation",
    "inversion",
    "feature_vis",
    "interpretability_metrics",
    "parameter_randomisation",
    "inception_features",
    "fid_class_generation",
    "inversion_distance",
)

# multiply-accumulates per image at (reference size, width 1) and MB of activations per batch
# element with gradients (measured on the CPU, benchmarks/results/peak_memory_*_cpu.json)
MACS = {
    "resnet18_cifar": (32, 0.56e9),
    "preact_resnet18": (32, 0.56e9),
    "resnet50_cifar": (32, 1.30e9),
    "resnet18": (224, 1.82e9),
    "resnet50": (224, 4.11e9),
    "wide_resnet50_2": (224, 11.4e9),
}
ACTIVATION_MB = {
    "resnet18_cifar": (32, 6.1),
    "preact_resnet18": (32, 6.1),
    "resnet50_cifar": (32, 36.3),
    "resnet18": (224, 18.7),
    "resnet50": (128, 36.3),
    "wide_resnet50_2": (224, 222.0),
}
UNKNOWN_ARCH = "wide_resnet50_2"  # an architecture not in the tables is costed as the largest


def split_sizes(dataset: dict) -> dict:
    """{"train", "val", "test": image counts, "px": side, "classes"} of a dataset, from its config."""
    src = dataset["source"]
    kind = src["kind"]
    if kind == "cifar10":
        val = src["val_size"]
        return {"train": 50000 - val, "val": val, "test": 10000, "px": 32, "classes": 10}
    if kind == "small_imagenet150":
        k = src["classes"]
        return {
            "train": k * src["train_per_class"],
            "val": k * src["val_per_class"],
            "test": k * (src["test_per_class"] + src["imagenetv2_per_class"] * bool(src["imagenetv2_dir"])),
            "px": src["image_size"],
            "classes": k,
        }
    total = 1797 if kind == "digits" else _count_images(src["root"])
    test = round(total * src["test_fraction"])
    val = round(total * src["val_fraction"])
    return {
        "train": max(total - test - val, 0),
        "val": val,
        "test": test,
        "px": src["image_size"],
        "classes": 10,
    }


def _count_images(root) -> int:
    """Files under an image folder (a cheap upper bound on its images); 0 when it is missing."""
    try:
        return sum(len(files) for _, _, files in os.walk(root)) if root and Path(root).is_dir() else 0
    except OSError:
        return 0


def _scaled(table: dict, arch: str, px: int, width: float, power: int) -> float:
    ref, value = table.get(arch, table[UNKNOWN_ARCH])
    return value * (px / ref) ** 2 * width**power


def _steps(attack) -> int:
    return int(attack["steps"]) if attack else 0


def passes(rule: str, d: dict, variant: dict, sizes: dict) -> tuple[float, float]:
    """(forward-pass equivalents through the classifier, through Inception) of one job."""
    a, m = d["analyses"], d["metrics"]
    test = min(sizes["test"], d["evaluation"]["max_images"] or sizes["test"])
    if rule == "train":
        t = d["train"]
        sel = min(sizes["val"], t["selection_max_images"] or sizes["val"])
        per_epoch = sizes["train"] * 3 * (_steps(variant.get("attack")) + 1)
        per_epoch += sel * (1 + 3 * _steps(t["selection_attack"]))
        return t["epochs"] * per_epoch, 0
    if rule == "evaluate":
        ev = d["evaluation"]
        aa = min(test, ev["autoattack_max_images"] or test) if ev["autoattack"] else 0
        # AutoAttack's worst case per image: APGD-CE 100 + APGD-T 9 x 100 + FAB-T 9 x 100 steps, Square 5,000 queries
        return test * (1 + 3 * _steps(d["eval_attack"])) + aa * (3 * 1900 + 5000), 0
    if rule == "ig":
        ig = a["ig"]
        return ig["num_images"] * ig["trials"] * (ig["steps"] + 1) * 3, 0
    if rule == "shap":
        sh = a["shap"]
        return sh["num_images"] * sh["nsamples"] * 3 + sh["background"], 0
    if rule == "class_generation":
        cg = a["class_generation"]
        return sizes["classes"] * cg["per_class"] * (cg["steps"] * 3 + 2), 0
    if rule == "inversion":
        inv = a["inversion"]
        return inv["num_images"] * len(inv["sources"]) * inv["steps"] * 3, 0
    if rule == "feature_vis":
        fv = a["feature_vis"]
        return fv["num_neurons"] * fv["steps"] * 3 + sizes["test"], 0
    if rule == "interpretability_metrics":
        im = m["interpretability"]
        per_image = (2 * im["steps"] + im["infidelity_samples"] + im["faithfulness_runs"]) * 2
        sens = im["sensitivity_images"] * (im["sensitivity_samples"] + im["lipschitz_samples"])
        return test * 3 + im["sample"] * per_image + sens * 3 * 32, 0
    if rule == "parameter_randomisation":
        r, ig, sh = m["randomisation"], a["ig"], a["shap"]
        per_image = ig["trials"] * (ig["steps"] + 1) * 3 + sh["nsamples"] * 3
        return 8 * r["images"] * per_image, 0  # up to 8 cascade stages
    fid = min(sizes["train"], m["fid"]["max_images"] or sizes["train"])
    if rule == "inception_features":
        return 0, fid
    if rule == "fid_class_generation":
        return 0, sizes["classes"] * a["class_generation"]["per_class"]
    if rule == "inversion_distance":
        inv = a["inversion"]
        return 0, 3 * inv["num_images"] * len(inv["sources"])
    return 0, 0


def held_mb(rule: str, d: dict, sizes: dict) -> float:
    """MB of arrays the verb holds at the dataset's counts, beside the model (docs/scale.md)."""
    image = sizes["px"] ** 2 * 3 / 1e6  # MB per uint8 image
    cg = d["analyses"]["class_generation"]
    held = {
        "train": 2 * (sizes["train"] + sizes["val"]) * image,  # the mapped split and its copy on the way to the device
        "evaluate": 2 * sizes["test"] * image,
        "class_generation": 12 * sizes["classes"] * cg["per_class"] * image,  # 3 float copies
        "feature_vis": 2 * sizes["test"] * image,
        "interpretability_metrics": 5 * sizes["test"] * image,  # the test split as floats
        # the Inception network (~0.5 GB), images twice and float64 features twice
        "inception_features": INCEPTION_MB + sizes["train"] * (2 * image + 2 * FEATURE_MB),
        "fid_real_baseline": (sizes["train"] + sizes["test"]) * 3 * FEATURE_MB,
        "fid_class_generation": INCEPTION_MB + sizes["classes"] * cg["per_class"] * (image + 3 * FEATURE_MB),
        "inversion_distance": INCEPTION_MB,
        "prepare_data": 3 * (sizes["train"] + sizes["val"] + sizes["test"]) * image,
        "build_small_imagenet": 2000,  # decoding workers stream into memory-mapped arrays
    }
    return held.get(rule, 0.0)


def batch(rule: str, d: dict) -> int:
    """Images (or path points) per pass: what a CPU run holds activations for."""
    a, m = d["analyses"], d["metrics"]
    sizes = {
        "train": d["train"]["batch_size"],
        "evaluate": d["evaluation"]["batch_size"],
        "interpretability_metrics": m["interpretability"]["batch_size"],
        "parameter_randomisation": a["ig"]["batch_size"],
    }
    if rule in a and isinstance(a[rule], dict):
        return a[rule]["batch_size"]
    return sizes.get(rule, 0)


def _gb(mb: float) -> int:
    return max(2, math.ceil(1.25 * mb / 1000)) * 1000


def _minutes(work: float, rate: float) -> int:
    """Minutes to ask for `work` done at `rate` per second: 1.5x, plus 10 min of start-up, in 15 min steps."""
    return max(15, math.ceil((1.5 * work / rate / 60 + 10) / 15) * 15)


def resource_keys(rule: str, device: str) -> tuple[str, ...]:
    """The keys `job_resources` returns for a rule (the same for every job of it)."""
    if rule not in GPU_RULES:
        return ("mem_mb", "runtime")
    memory = "mem_mb_per_cpu" if rule == "train" and device != "cpu" else "mem_mb"
    return ("gpu", "cpus_per_gpu", memory, "runtime")


def job_resources(rule: str, dataset: dict | None, variant: dict | None, device: str, threads: int) -> dict:
    """{gpu, cpus_per_gpu, mem_mb (mem_mb_per_cpu for train on a GPU), runtime} of one job of `rule`
    on `dataset` (its config block, defaults filled; None for a job over every dataset, such as
    the summary); `variant` only matters for `train`."""
    if dataset is None:
        return {"mem_mb": 2000, "runtime": 15}
    sizes = split_sizes(dataset)
    arch, width = dataset["model"]["arch"], dataset["model"]["width"]
    gpu = int(rule in GPU_RULES and device != "cpu")
    fwd, inception = passes(rule, dataset, variant or {}, sizes)
    macs = fwd * _scaled(MACS, arch, sizes["px"], width, 2) + inception * INCEPTION_MACS
    mem = PROCESS_MB + held_mb(rule, dataset, sizes)
    if gpu:
        mem += CUDA_HOST_MB
    elif rule in GPU_RULES:  # a CPU run holds one batch's activations in host memory
        mem += batch(rule, dataset) * (_scaled(ACTIVATION_MB, arch, sizes["px"], width, 1) if fwd else 13.3)
    big = sizes["train"] >= 10000
    runtime = _minutes(macs, GPU_MACS_PER_S if gpu else CPU_MACS_PER_S * threads)
    if rule in ("prepare_data", "build_small_imagenet") and dataset["source"]["kind"] in DECODED:
        runtime = _minutes((sizes["train"] + sizes["val"] + sizes["test"]) * DECODE_S_PER_IMAGE, threads)
    out = {
        "gpu": gpu,
        "cpus_per_gpu": CPUS_PER_GPU.get(rule, 4) if big else CPUS_PER_GPU.get(rule, 4) // 4,
        "mem_mb": _gb(mem),
        "runtime": runtime,
    }
    if "mem_mb_per_cpu" in resource_keys(rule, device):  # torchrun: every rank holds its own copy
        out["mem_mb_per_cpu"] = math.ceil(out.pop("mem_mb") / out["cpus_per_gpu"])
    return {k: out[k] for k in resource_keys(rule, device)}


def _cell(res: dict) -> str:
    mem = res.get("mem_mb") or res["mem_mb_per_cpu"] * res["cpus_per_gpu"]
    per = " (per CPU: follows the GPUs)" if "mem_mb_per_cpu" in res else ""
    hours = f"{res['runtime'] / 60:.4g} h" if res["runtime"] >= 120 else f"{res['runtime']} min"
    cpus = res.get("cpus_per_gpu", 1)
    gpu = f"{res['gpu']} GPU + {cpus} CPU{'s' if cpus > 1 else ''}, " if res.get("gpu") else ""
    return f"{gpu}{mem / 1000:g} GB{per}, {hours}"


def _applies(rule: str, dataset: dict) -> bool:
    built = dataset["source"]["kind"] == "small_imagenet150"
    return {"prepare_data": not built, "build_small_imagenet": built}.get(rule, True)


def table(columns: dict[str, tuple[dict, dict, str]]) -> str:
    """Markdown: one row per rule, one column per (dataset config, variant, device) in `columns`."""
    rules = GPU_RULES + ("prepare_data", "build_small_imagenet", "fid_real_baseline", "accuracy_table")
    lines = ["| rule | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for rule in rules:
        cells = [
            _cell(job_resources(rule, d, v, device, 1)) if _applies(rule, d) else ""
            for d, v, device in columns.values()
        ]
        lines.append(f"| {rule} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """`python -m robinterp.resources config.yaml [more.yaml ...]`: the table of docs/scale.md."""
    import sys

    import yaml

    from .config import check_config

    columns = {}
    for path in argv if argv is not None else sys.argv[1:]:
        cfg = yaml.safe_load(Path(path).read_text())
        check_config(cfg)
        for name, d in cfg["datasets"].items():
            robust = [v for v in d["variants"] if v.get("attack")] or d["variants"]
            columns[f"{name} ({Path(path).name})"] = (d, robust[0], cfg["device"])
    print(table(columns))


if __name__ == "__main__":
    main()
