# Config validation, variant resolution and the target lists. No torch here: parsing the DAG
# stays fast, and the same helpers (robinterp.config) are unit-tested.
import json
import shlex
import shutil
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

SRC = str(Path(workflow.basedir) / "src")
sys.path.insert(0, SRC)

from robinterp.config import (
    check,
    check_variant_names,
    check_variants,
    load_schema,
    resolve_variant,
    result_settings,
    selection_split,
    variant_names,
)
from robinterp.image_folder import listing_digest
from robinterp.errors import RobinterpError

SCHEMA_PATH = Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"
SCHEMA = load_schema(SCHEMA_PATH)
try:
    check(config, SCHEMA)  # readable messages first (key + allowed values) ...
    validate(config, str(SCHEMA_PATH))  # ... then Snakemake's validation fills the defaults
    check_variant_names(config)
    check_variants(config, SCHEMA)  # each variant's model/train overrides, merged
except RobinterpError as e:
    raise WorkflowError(str(e))

R = config["results"]
CONDA_ENV = str(Path(workflow.basedir) / "envs" / "robinterp.yaml")
# Our own code is found through PYTHONPATH set in each command: conda strips the variable from
# the job environment and installs pip deps from a copied env file, so neither path is relied on.
# Without conda, the Python that runs Snakemake (the venv's) runs the jobs too.
_USE_CONDA = "conda" in str(workflow.deployment_settings.deployment_method).lower()
_PATH = "" if _USE_CONDA else f"export PATH={shlex.quote(str(Path(sys.executable).parent))}:$PATH; "
shell.prefix(f"set -euo pipefail; {_PATH}export PYTHONPATH={shlex.quote(SRC)}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; ")
# Resource request per GPU job. `device: auto` asks for a GPU only where this machine has one,
# so CPU-only demo runs are not serialised by the default profile's `gpu: 1` limit; cluster
# profiles set the GPU rules' resources themselves (workflow/profiles/slurm).
_HAS_GPU = shutil.which("nvidia-smi") is not None  # the NVIDIA driver ships it
GPU = {"cpu": 0, "cuda": 1}.get(config["device"], int(_HAS_GPU))


def python_launcher(gpus):
    """`python`, or torchrun with one process per GPU when a job holds more than one (train)."""
    if int(gpus or 0) > 1:
        return f"python -m torch.distributed.run --standalone --nproc_per_node={int(gpus)}"
    return "python"


def enabled_datasets():
    names = [d for d, c in config["datasets"].items() if c["enabled"]]
    wanted = config["run_datasets"]
    unknown = sorted(set(wanted) - set(config["datasets"]))
    if unknown:
        raise WorkflowError(f"run_datasets: unknown dataset(s) {unknown}; known: {sorted(config['datasets'])}")
    return [d for d in names if not wanted or d in wanted]


def dataset_cfg(dataset):
    return config["datasets"][dataset]


def variants(dataset):
    names = variant_names(dataset_cfg(dataset))
    wanted = config["run_variants"]
    return [v for v in names if not wanted or v in wanted]


def json_arg(obj):
    """A config block as one shell-quoted JSON argument (the CLI's --*-json flags)."""
    return shlex.quote(json.dumps(obj, sort_keys=True))


def cli_flags(block, skip=()):
    """A config block as shell-quoted `--key value` flags (`_` -> `-`; null values left out)."""
    return " ".join(
        f"--{k.replace('_', '-')} {shlex.quote(str(v))}" for k, v in block.items() if k not in skip and v is not None
    )


def train_config(dataset, variant):
    try:
        resolved = resolve_variant(dataset_cfg(dataset), variant, SCHEMA, where=f"datasets.{dataset}.")
    except RobinterpError as e:
        raise WorkflowError(str(e))
    return {**resolved, "device": config["device"]}


# A rule's params hold what its outputs depend on: Snakemake reruns a job when they change.
# How a job runs (device, batch sizes kept for throughput, channels_last, compile: the
# EXECUTION_ONLY keys of robinterp.config) must rerun nothing, so the flags carrying them are
# params functions that take `resources`: Snakemake counts such "derived" params out of its
# rerun check. Each rule then has `settings` (what the results depend on; the rerun trigger)
# and flags built by `run_settings` (the full block the verb reads).


def run_settings(fn):
    """A params entry read by the job but never a reason to rerun it (see above)."""
    return lambda wildcards, resources: fn(wildcards)


def settings_param(block_of, kind):
    """The rerun trigger: `block_of(wildcards)` without its execution-only keys."""
    return lambda w: json_arg(result_settings(block_of(w), kind))


SOURCE_PATH_KEYS = {
    "image_folder": ("root",),
    "small_imagenet150": ("train_dir", "val_dir", "val_labels", "imagenetv2_dir", "synset_mapping", "class_list"),
}


def check_sources():
    """Fail before any job runs when a dataset's input folders or files are missing."""
    for ds in enabled_datasets():
        src = dataset_cfg(ds)["source"]
        for key in SOURCE_PATH_KEYS.get(src["kind"], ()):
            path = src.get(key)
            if path and not Path(path).exists():
                raise WorkflowError(
                    f"datasets.{ds}.source.{key}: {path} does not exist. Point it at your copy "
                    f"(docs/data.md), or set datasets.{ds}.enabled: false."
                )


check_sources()


def source_listing(wildcards):
    """image_folder: the digest of the folder's listing (path, size, time of every image). As a
    param of prepare_data it reruns the job, and everything downstream, when the folder changes."""
    src = dataset_cfg(wildcards.dataset)["source"]
    return listing_digest(src["root"]) if src["kind"] == "image_folder" else ""


# Each stage's .smk appends a function dataset -> [final outputs]; `rule all` asks for them all.
TARGETS = []


def all_targets():
    return [path for ds in enabled_datasets() for stage in TARGETS for path in stage(ds)]


wildcard_constraints:
    dataset="|".join(map(str, config["datasets"])) or "NONE",
    variant="[A-Za-z0-9][A-Za-z0-9_.-]*",
