# Every helper function of the rules (Snakemake's lint wants functions apart from rules): config
# validation, variant resolution, params builders and each stage's target list. No torch here:
# parsing the DAG stays fast, and the same helpers (robinterp.config) are unit-tested.
import json
import re
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

SRC = str(Path(workflow.basedir) / "src")
sys.path.insert(0, SRC)

from robinterp.config import (
    SCHEMA_PATH,
    check,
    check_run,
    check_variant_names,
    check_variants,
    get_variant,
    imported_variants,
    resolve_variant,
    result_settings,
    schema,
    selection_split,
    variant_names,
)
from robinterp.fid_weights import fid_weights_path
from robinterp.gpus import local_gpu_limit
from robinterp.image_folder import listing_digest
from robinterp.errors import RobinterpError
from robinterp.resources import job_resources, resource_keys
from robinterp.sources import needs_download

SCHEMA = schema()  # workflow/schemas/config.schema.yaml, as the verbs read it
try:
    check(config, SCHEMA)  # readable messages first (key + allowed values) ...
    validate(config, str(SCHEMA_PATH))  # ... then Snakemake's validation fills the defaults
    check_variant_names(config)
    check_variants(config, SCHEMA)  # each variant's model/train overrides, merged
    check_run(config)  # results: names a folder; run_variants names variants of each dataset run
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
# GPUs (docs/scale.md, "GPUs on one machine"). A GPU rule asks for one GPU unless `device: cpu`,
# and its command starts through `python -m robinterp.gpus {resources.gpu} --`, which gives the job
# GPUs no other running job holds (or steps aside on a machine without GPUs, and under SLURM).
# Locally, Snakemake runs as many GPU jobs at once as this machine shows GPUs (honouring
# CUDA_VISIBLE_DEVICES), unless `--resources gpu=N` says otherwise.
_GPUS = local_gpu_limit(workflow.global_resources, workflow.remote_exec)
if _GPUS:
    workflow.register_resource("gpu", _GPUS)


def resources_of(rule):
    """The rule's resources, computed per job from its dataset's size (robinterp.resources). They
    live in the rule, so `--set-resources rule:key=v` changes that key alone."""

    def value(key):
        def of(wildcards, threads):
            ds = wildcards.get("dataset")
            variant = train_config(ds, wildcards.variant) if rule == "train" else None
            return job_resources(rule, ds and dataset_cfg(ds), variant, config["device"], threads)[key]

        return of

    return {key: value(key) for key in resource_keys(rule, config["device"])}


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
    """A config block as shell-quoted flags named after its keys (`_` -> `-`): `--key value`, a list
    as `--key a b`, a boolean as `--key` / `--no-key`; null values and empty lists left out."""
    out = []
    for k, v in block.items():
        name = k.replace("_", "-")
        if k in skip or v is None or v == []:
            continue
        if isinstance(v, bool):
            out.append(f"--{name}" if v else f"--no-{name}")
        elif isinstance(v, list):
            out.append(f"--{name} " + " ".join(shlex.quote(str(x)) for x in v))
        else:
            out.append(f"--{name} {shlex.quote(str(v))}")
    return " ".join(out)


def block(*keys):
    """Params helper: wildcards -> the dataset's config block at `keys` (block("metrics", "fid"))."""

    def of(w):
        out = dataset_cfg(w.dataset)
        for k in keys:
            out = out[k]
        return out

    return of


def flag(block_of, key):
    """Params function: `block_of(wildcards)[key]` as one flag (cli_flags); nothing when null, so
    the verb's flag stays unset."""
    return lambda w: cli_flags({key: block_of(w)[key]})


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


# Sources whose data comes from the internet: {root folder: a dataset that uses it} (rule download_data).
DOWNLOADS = {src["root"]: ds for ds, c in config["datasets"].items() for src in [c["source"]] if needs_download(src)}
CIFAR10_FETCHED = "{cifar_root}/cifar-10-batches-py/batches.meta"  # present once CIFAR-10 is unpacked


def downloaded_input(dataset):
    """prepare_data's input: the unpacked download, for a source that needs one."""
    src = dataset_cfg(dataset)["source"]
    return [CIFAR10_FETCHED.format(cifar_root=src["root"])] if needs_download(src) else []


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

# --- analyses and figures (analyses.smk, figures.smk) ------------------------------------------------


ANALYSIS_FIGURES = ["ig_compare", "ig_grid", "shap_compare", "shap_grid", "class_generation", "inversion", "feature_vis"]


def analyses_cfg(dataset):
    return dataset_cfg(dataset)["analyses"]


def analysis_params(method):
    """`settings` (the method's block less its batch size) decides reruns; `config` is what the verb reads."""
    return {
        "settings": settings_param(lambda w: analyses_cfg(w.dataset)[method], "analyses"),
        "config": run_settings(lambda w: json_arg(analyses_cfg(w.dataset)[method])),
        "device": run_settings(lambda w: config["device"]),
    }


def per_variant(pattern):
    """Input function: `pattern` ({R}, {variant} and the rule's wildcards) for every variant."""
    return lambda w: [pattern.format(R=R, variant=v, **dict(w.items())) for v in variants(w.dataset)]


def plot_params():
    return {
        "plots": lambda w: json_arg(analyses_cfg(w.dataset)["plots"]),
        "variants": lambda w: " ".join(variants(w.dataset)),
    }


# --- metrics (metrics.smk) ---------------------------------------------------------------------------


FID_WEIGHTS = str(fid_weights_path())  # pytorch-fid's torch.hub cache file ($TORCH_HOME)


def metrics_cfg(dataset):
    return dataset_cfg(dataset)["metrics"]


def ladder(dataset):
    """The curve's variants: metrics.curve.variants (in that order) or every variant."""
    wanted = metrics_cfg(dataset)["curve"]["variants"]
    unknown = sorted(set(wanted) - set(variant_names(dataset_cfg(dataset))))
    if unknown:
        raise WorkflowError(f"datasets.{dataset}.metrics.curve.variants: unknown variant(s) {unknown}")
    return [v for v in wanted if v in variants(dataset)] or variants(dataset)  # run_variants may narrow it


def ladder_eps(dataset):
    """{variant: training attack block} - the curve reads eps from it (null = standard, eps 0)."""
    return {v: train_config(dataset, v)["attack"] for v in ladder(dataset)}


def _enabled(dataset, block):
    return metrics_cfg(dataset)[block]["enabled"]


TABLE_BLOCKS = {"fid": "fid", "inversion_distance": "inversion", "interpretability": "interpretability"}


def metric_tables(ds):
    """The metric tables a dataset's config switches on (name -> its metrics block)."""
    return [name for name, block in TABLE_BLOCKS.items() if _enabled(ds, block)]


def randomisation_on(ds):
    return _enabled(ds, "interpretability") and _enabled(ds, "randomisation")


def randomisation_results(ds):
    """The interpretability table's randomisation inputs (one JSON per variant) when switched on."""
    return [f"{R}/{ds}/interpretability/randomisation/{v}.json" for v in variants(ds)] if randomisation_on(ds) else []


def metrics_targets(ds):
    out = [f"{R}/{ds}/tables/{name}.{ext}" for name in metric_tables(ds) for ext in ("csv", "md")]
    if randomisation_on(ds):
        out.append(f"{R}/{ds}/figures/parameter_randomisation.png")
    if _enabled(ds, "curve"):
        out.append(f"{R}/{ds}/figures/robustness_curve.png")
    return out + [f"{R}/summary.md"]


TARGETS.append(metrics_targets)


def summary_tables():
    """{dataset: [table csv, ...]}: accuracy first, then the enabled metric tables."""
    return {ds: [f"{R}/{ds}/tables/{n}.csv" for n in ["accuracy"] + metric_tables(ds)] for ds in enabled_datasets()}


def fid_params(variant_of, match_n=lambda w, input: ""):
    """Shared params of the two FID rules; `variant_of(wildcards)` names the row, `match_n` sets
    the baseline's generated-set size (FID rows compare at equal n only)."""
    return dict(
        match_n=match_n,
        settings=settings_param(lambda w: metrics_cfg(w.dataset)["fid"], "metrics.fid"),
        fid=run_settings(lambda w: metrics_cfg(w.dataset)["fid"]),
        max_images=flag(block("metrics", "fid"), "max_images"),
        kid=flag(block("metrics", "fid"), "kid"),
        variant=variant_of,
        device=run_settings(lambda w: config["device"]),
    )


# --- published models (published.smk) ----------------------------------------------------------------


try:
    IMPORTED = imported_variants(config)
except RobinterpError as e:
    raise WorkflowError(str(e))


def checkpoint_cfg(dataset, variant):
    return get_variant(dataset_cfg(dataset), variant)["checkpoint"]


def import_flags(dataset, variant):
    """The checkpoint block as import-checkpoint flags (path and class_subset travel as inputs)."""
    block = checkpoint_cfg(dataset, variant)
    keys = ("format", "arch", "sha256", "width", "num_classes", "mean", "std", "class_subset")
    return cli_flags({k: block.get(k) for k in keys})


def imagenet_index_input(dataset, variant):
    """class_subset: wnids reads the wnid of every ImageNet output from LOC_synset_mapping.txt, or
    from the sorted class folders of the ILSVRC train folder."""
    if not checkpoint_cfg(dataset, variant).get("class_subset"):
        return []
    src = dataset_cfg(dataset)["source"]
    return [src.get("synset_mapping") or src["train_dir"]]


def check_checkpoint_files():
    """Fail before any job runs when an imported variant's file is missing."""
    for ds in enabled_datasets():
        for v in variants(ds):
            block = get_variant(dataset_cfg(ds), v).get("checkpoint")
            if block and not Path(block["path"]).is_file():
                raise WorkflowError(
                    f"datasets.{ds}.variants[{v}].checkpoint.path: {block['path']} does not exist. Download it "
                    f"(docs/published_models.md lists where), or leave the variant out with run_variants."
                )


check_checkpoint_files()
