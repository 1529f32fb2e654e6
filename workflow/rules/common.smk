# Every helper function of the rules (Snakemake's lint wants functions apart from rules): the config
# check, the settings each job gets, its resources, and each stage's target list. No torch here:
# parsing the DAG stays fast, and the same helpers (robinterp.config, robinterp.settings) are
# unit-tested.
import json
import re
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

SRC = str(Path(workflow.basedir) / "src")
sys.path.insert(0, SRC)

from robinterp.cli import verb_settings
from robinterp.config import (
    check_config,
    get_variant,
    imported_variants,
    is_robustbench,
    robustbench_file,
    selection_split,
    settings_value,
    variant_names,
)
from robinterp.errors import RobinterpError
from robinterp.fid_weights import fid_weights_path
from robinterp.gpus import local_gpu_limit
from robinterp.image_folder import listing_digest
from robinterp.resources import job_resources, resource_keys
from robinterp.settings import result_settings
from robinterp.sources import needs_download

# The config is checked and its defaults filled once, here, before any job: one line per problem,
# naming the key (robinterp/config.schema.yaml holds every key, its default and its description).
try:
    check_config(config)
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


# --- the settings of a job ------------------------------------------------------------------------
# A verb reads one settings object: the config sections it declares (robinterp.cli.verb_settings),
# as the filled config has them for the job's dataset and variant. The rule passes it whole
# (`{params.settings}`) through a params function that takes `resources`, which Snakemake leaves
# out of its rerun check; `trigger`, the same object without the keys the schema marks
# `x-execution` (device, batch sizes kept for throughput, speed switches), is what Snakemake
# compares: a job reruns when a setting that changes its results changes, and only then.


def job_settings(verb, dataset, variant=None):
    """The settings object of `verb`'s job on `dataset` (and `variant`)."""
    try:
        return {key: settings_value(config, dataset, variant, key) for key in verb_settings(verb)}
    except RobinterpError as e:
        raise WorkflowError(str(e))


def verb_params(verb, dataset_of=lambda w: w.dataset):
    """`settings` (the flag the verb reads) and `trigger` (its rerun trigger) of a rule calling `verb`."""
    of = lambda w: job_settings(verb, dataset_of(w), w.get("variant"))
    return {
        "trigger": lambda w: json.dumps(result_settings(of(w)), sort_keys=True),
        "settings": lambda w, resources: f"--settings {shlex.quote(json.dumps(of(w), sort_keys=True))}",
    }


# --- GPUs and resources (docs/scale.md) --------------------------------------------------------------
# Each GPU rule asks for one GPU (none with device cpu), and its command starts through
# `python -m robinterp.gpus {resources.gpu} --`, which gives the job GPUs no other running job holds
# (or steps aside on a machine without GPUs, and under SLURM). Locally, Snakemake runs as many GPU
# jobs at once as this machine shows GPUs (honouring CUDA_VISIBLE_DEVICES), unless
# `--resources gpu=N` says otherwise.
_GPUS = local_gpu_limit(workflow.global_resources, workflow.remote_exec)
if _GPUS:
    workflow.register_resource("gpu", _GPUS)


def resources_of(rule, **computed_here):
    """The rule's resources, computed per job from its dataset's size (robinterp.resources), and
    the ones a rule computes from its inputs (`computed_here`). They live in the rule, so
    `--set-resources rule:key=v` changes that key alone."""

    def value(key):
        def of(wildcards, threads):
            ds = wildcards.get("dataset")
            variant = get_variant(dataset_cfg(ds), wildcards.variant) if rule == "train" else None
            return job_resources(rule, ds and dataset_cfg(ds), variant, config["device"], threads)[key]

        return of

    return {**{key: value(key) for key in resource_keys(rule, config["device"])}, **computed_here}


def python_launcher(gpus):
    """`python`, or torchrun with one process per GPU when a job holds more than one (train)."""
    if int(gpus or 0) > 1:
        return f"python -m torch.distributed.run --standalone --nproc_per_node={int(gpus)}"
    return "python"


# --- data (data.smk, small_imagenet.smk) ---------------------------------------------------------------


def check_sources():
    """Fail before any job runs when a dataset's input folders or files are missing."""
    for ds in enabled_datasets():
        src = dataset_cfg(ds)["source"]
        for key in SOURCE_PATHS.get(src["kind"], ()):
            path = src.get(key)
            if path and not Path(path).exists():
                raise WorkflowError(
                    f"datasets.{ds}.source.{key}: {path} does not exist. Point it at your copy "
                    f"(docs/data.md), or set datasets.{ds}.enabled: false."
                )


# The source keys that name input files or folders, per kind (declared as rule inputs too).
SOURCE_PATHS = {
    "image_folder": ("root",),
    "small_imagenet150": ("train_dir", "val_dir", "val_labels", "imagenetv2_dir", "synset_mapping", "class_list"),
}
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


ANALYSIS_FIGURES = [
    "ig_compare", "ig_grid", "shap_compare", "shap_grid", "class_generation", "inversion", "feature_vis",
]


def analyses_cfg(dataset):
    return dataset_cfg(dataset)["analyses"]


def per_variant(pattern):
    """Input function: `pattern` ({R}, {variant} and the rule's wildcards) for every variant."""
    return lambda w: [pattern.format(R=R, variant=v, **dict(w.items())) for v in variants(w.dataset)]


def variant_list(w):
    """The variants of a figure or table, in the config's order (a name is one shell word)."""
    return " ".join(variants(w.dataset))


# --- metrics (fid.smk, attribution_metrics.smk, summary.smk) -----------------------------------------


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


def attribution_inputs(w):
    """The attribution files the metric rules score, one per method of metrics.interpretability.methods."""
    methods = metrics_cfg(w.dataset)["interpretability"]["methods"]
    return {m: f"{R}/{w.dataset}/{m}/{w.variant}/attributions.npz" for m in methods}


def named_attributions(w, input):
    """`--attributions ig=PATH shap=PATH`: each method with its file."""
    return " ".join(shlex.quote(f"{m}={input[m]}") for m in metrics_cfg(w.dataset)["interpretability"]["methods"])


def metrics_targets(ds):
    out = [f"{R}/{ds}/tables/{name}.{ext}" for name in metric_tables(ds) for ext in ("csv", "md")]
    if randomisation_on(ds):
        out.append(f"{R}/{ds}/figures/parameter_randomisation.png")
    if _enabled(ds, "curve"):
        out.append(f"{R}/{ds}/figures/robustness_curve.png")
    return out + [f"{R}/summary.md"]


TARGETS.append(metrics_targets)


def curve_tables():
    """{dataset: [robustness_curve.csv, robustness_correlation.csv]} of the datasets with a curve."""
    return {ds: [f"{R}/{ds}/tables/robustness_{t}.csv" for t in ("curve", "correlation")]
            for ds in enabled_datasets() if _enabled(ds, "curve")}


def summary_tables():
    """{dataset: [table csv, ...]}: accuracy first, then the enabled metric tables."""
    return {ds: [f"{R}/{ds}/tables/{n}.csv" for n in ["accuracy"] + metric_tables(ds)] for ds in enabled_datasets()}


# --- published models (published.smk) ----------------------------------------------------------------


try:
    IMPORTED = imported_variants(config)
except RobinterpError as e:
    raise WorkflowError(str(e))


def checkpoint_cfg(dataset, variant):
    return get_variant(dataset_cfg(dataset), variant)["checkpoint"]


ZOO_FILE = f"{config['robustbench_cache']}/{{zoo_dataset}}/{{threat}}/{{zoo_name}}.pt"  # robustbench's own layout


def import_inputs(dataset, variant):
    """import_checkpoint's inputs: the file (and a zoo entry's sidecar), and with class_subset:
    wnids the wnid of every ImageNet output (LOC_synset_mapping.txt, or the ILSVRC train folder's
    sorted class folders)."""
    block = checkpoint_cfg(dataset, variant)
    if is_robustbench(block):
        path = robustbench_file(config, block)
        out = {"file": path, "sidecar": f"{path}.json"}
    else:
        out = {"file": block["path"]}
    if block.get("class_subset"):
        src = dataset_cfg(dataset)["source"]
        out["index"] = src.get("synset_mapping") or src["train_dir"]
    return out


def zoo_files():
    """The RobustBench files of the variants that run (rule robustbench_downloads)."""
    return sorted({robustbench_file(config, block) for ds in enabled_datasets() for v in variants(ds)
                   for block in [get_variant(dataset_cfg(ds), v).get("checkpoint")] if is_robustbench(block)})


ZOO_FILES = zoo_files()


def check_checkpoint_files():
    """Fail before any job runs when an imported variant's downloaded file is missing (a zoo entry's
    is downloaded by the workflow; a stand-in's, used by tests, is written by them)."""
    for ds in enabled_datasets():
        for v in variants(ds):
            block = get_variant(dataset_cfg(ds), v).get("checkpoint")
            where = f"datasets.{ds}.variants[{v}].checkpoint"
            if block and not is_robustbench(block) and not Path(block["path"]).is_file():
                raise WorkflowError(
                    f"{where}.path: {block['path']} does not exist. Download it "
                    f"(docs/published_models.md lists where), or leave the variant out with run_variants."
                )
            if is_robustbench(block) and block.get("stand_in") and not Path(robustbench_file(config, block)).is_file():
                raise WorkflowError(f"{where}.stand_in: {robustbench_file(config, block)} does not exist; a stand-in "
                                    "is never downloaded (tests write its file)")


check_checkpoint_files()
