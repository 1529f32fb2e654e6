# Helpers of metrics.smk (kept apart: Snakemake's lint wants rules and functions in separate files).
from robinterp.fid_weights import fid_weights_path

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


FID_SHELL = (
    "OMP_NUM_THREADS={threads} python -m robinterp fid --real {input.real} --fake {input.fake}"
    " --dims {params.fid[dims]} {params.max_images} --seed {params.fid[seed]} --batch-size {params.fid[batch_size]}"
    " --interval-rounds {params.fid[interval_rounds]} {params.match_n} {params.kid} --kid-subsets {params.fid[kid_subsets]}"
    " --kid-subset-size {params.fid[kid_subset_size]} --variant {params.variant} --device {params.device}"
    " --out {output} > {log} 2>&1"
)


def fid_params(variant_of, match_n=lambda w, input: ""):
    """Shared params of the two FID rules; `variant_of(wildcards)` names the row, `match_n` sets
    the baseline's generated-set size (FID rows compare at equal n only)."""
    return dict(
        match_n=match_n,
        settings=settings_param(lambda w: metrics_cfg(w.dataset)["fid"], "metrics.fid"),
        fid=run_settings(lambda w: metrics_cfg(w.dataset)["fid"]),
        max_images=lambda w: (
            f"--max-images {metrics_cfg(w.dataset)['fid']['max_images']}"
            if metrics_cfg(w.dataset)["fid"]["max_images"]
            else ""
        ),
        kid=lambda w: "--kid" if metrics_cfg(w.dataset)["fid"]["kid"] else "",
        variant=variant_of,
        device=run_settings(lambda w: config["device"]),
    )
