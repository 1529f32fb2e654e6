"""The config file: validated and filled once, before any job, and read by the workflow.

`check_config` checks a whole config against the schema (robinterp/config.schema.yaml) and fills
every default into it, one readable line per problem naming the key; the checks that span keys
follow (variant names, each variant's overrides merged over its dataset's blocks, what a run
selects, imported variants). `settings_value` reads one section of a job's settings from the
filled config, so the workflow hands each verb exactly what the config says.

No torch here: the Snakefile imports this module while it builds the DAG.
"""

from __future__ import annotations

import copy
from pathlib import Path

from .errors import RobinterpError
from .settings import default, problems, raise_problems, schema


def check_config(config: dict) -> None:
    """Validate `config` against the schema, filling its defaults in place; then the checks
    across keys. Raises RobinterpError with one line per problem."""
    raise_problems(problems(config, schema(), ""), "invalid config")
    check_variant_names(config)
    raise_problems(
        [
            line
            for ds, dcfg in config["datasets"].items()
            for name in variant_names(dcfg)
            for line in merged_variant(dcfg, name, f"datasets.{ds}.")[2]
        ],
        "invalid config",
    )
    check_run(config)
    imported_variants(config)


def deep_merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in (override or {}).items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def variant_names(dataset_cfg: dict) -> list[str]:
    return [v["name"] for v in dataset_cfg["variants"]]


def get_variant(dataset_cfg: dict, name: str) -> dict:
    for v in dataset_cfg["variants"]:
        if v["name"] == name:
            return v
    raise RobinterpError(f"variant {name!r} not in config; known: {variant_names(dataset_cfg)}")


def merged_variant(dataset_cfg: dict, name: str, where: str = "") -> tuple[dict, dict, list[str]]:
    """A variant's model and train blocks (its dataset's, with the variant's overrides, defaults
    filled) and what is wrong with them."""
    v = get_variant(dataset_cfg, name)
    blocks = {block: deep_merge(dataset_cfg.get(block) or {}, v.get(block) or {}) for block in ("model", "train")}
    lines = [
        line
        for block, value in blocks.items()
        for line in problems(value, schema()["$defs"][block], f"{where}variants[{name}].{block}")
    ]
    return blocks["model"], blocks["train"], lines


def settings_value(config: dict, dataset: str, variant: str | None, key: str):
    """One section of a job's settings (robinterp.settings) as the filled config has it: `device`,
    `variant.<key>` (of `variant`), `model`/`train` (merged with `variant`'s overrides), or a
    dotted path in the dataset ("analyses.ig", "evaluation.amp")."""
    dcfg = config["datasets"][dataset]
    if key == "device":
        return config["device"]
    if key.startswith("variant."):
        return copy.deepcopy(get_variant(dcfg, variant).get(key.removeprefix("variant.")))
    if key in ("model", "train") and variant is not None:
        model, train, lines = merged_variant(dcfg, variant)
        raise_problems(lines, "invalid config")
        return {"model": model, "train": train}[key]
    value = dcfg
    for part in key.split("."):
        value = value[part]
    return copy.deepcopy(value)


def selection_split(dataset_cfg: dict, name: str) -> str:
    """Which split selects the variant's best epoch (train.selection_split, with its overrides)."""
    return merged_variant(dataset_cfg, name)[1]["selection_split"]


def check_variant_names(config: dict) -> None:
    for ds, dcfg in config["datasets"].items():
        names = variant_names(dcfg)
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise RobinterpError(f"datasets.{ds}.variants: duplicate name(s) {dup}; each variant needs its own name")


def check_run(config: dict) -> None:
    """What a run plans must make sense before any job: `results:` names a folder (an empty one or
    the filesystem root would put every output at the top of the disk), and `run_variants` names
    variants of the datasets that run, at least one of each (else their tables have no rows)."""
    results = str(config.get("results", ""))
    if not results.strip() or Path(results).resolve() == Path(Path(results).resolve().anchor):
        raise RobinterpError(
            f"results: {results!r} puts every output at the top of the filesystem; name the "
            "output folder (e.g. results: results)"
        )
    wanted = config.get("run_variants") or []
    if not wanted:
        return
    names = {
        ds: variant_names(c)
        for ds, c in config["datasets"].items()
        if c.get("enabled", True) and ds in (config.get("run_datasets") or [ds])
    }
    known = sorted({n for ns in names.values() for n in ns})
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise RobinterpError(
            f"run_variants: {unknown} name no variant of the datasets that run ({sorted(names)}); known: {known}"
        )
    unselected = [ds for ds, ns in names.items() if not set(wanted) & set(ns)]
    if unselected:
        raise RobinterpError(
            f"run_variants: {wanted} selects no variant of dataset(s) {unselected}; add one of "
            "theirs, or leave those datasets out with run_datasets"
        )


def imported_variants(config: dict) -> dict[str, dict]:
    """{imported variant name: where the config sets it}, over every dataset; checks them.

    An imported variant (a downloaded file, or a RobustBench entry by name) is not trained, so
    `model`/`train` overrides are an error; its name must not name a trained variant of another
    dataset (the workflow picks the import rule by name); an ImageNet model restricted to Small
    ImageNet's wnids needs that dataset's list of all wnids.
    """
    out, trained = {}, {}
    for ds, dcfg in config["datasets"].items():
        for v in dcfg["variants"]:
            where = f"datasets.{ds}.variants[{v['name']}]"
            block = v.get("checkpoint")
            if block is None:
                trained.setdefault(v["name"], where)
                continue
            extra = sorted(k for k in ("model", "train") if v.get(k))
            if extra:
                raise RobinterpError(
                    f"{where}: {extra} set on an imported variant (it has `checkpoint:`, so it is "
                    "not trained); remove them, or set width/mean/std in its checkpoint block"
                )
            if block.get("class_subset") == "wnids":
                src = dcfg["source"]
                if src["kind"] != "small_imagenet150":
                    raise RobinterpError(
                        f"{where}.checkpoint.class_subset: wnids needs a small_imagenet150 dataset "
                        f"(this one is {src['kind']!r}); remove class_subset"
                    )
            out.setdefault(v["name"], where)
    clash = sorted(set(out) & set(trained))
    if clash:
        raise RobinterpError(
            f"variant name(s) {clash} are imported in one dataset and trained in another "
            f"({out[clash[0]]}, {trained[clash[0]]}); give them different names"
        )
    return out


def is_robustbench(block: dict | None) -> bool:
    """Whether a variant's checkpoint block names a RobustBench zoo entry (else it is a file)."""
    return bool(block) and block.get("source") == "robustbench"


def robustbench_file(config: dict, block: dict) -> str:
    """Where a RobustBench entry's file is cached (robustbench's own layout under
    robustbench_cache); its sidecar is this path + ".json". Stand-ins lie there too (tests write them)."""
    cache = config.get("robustbench_cache") or default("robustbench_cache")
    return f"{cache}/{block['dataset']}/{block['threat_model']}/{block['name']}.pt"
