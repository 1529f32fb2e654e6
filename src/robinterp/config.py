"""Config validation and variant resolution, shared by the workflow and the tests.

No torch here: the Snakefile imports this module at parse time. `check` turns JSON-schema
errors into one line per problem naming the key and the allowed values; `resolve_variant`
merges a variant's overrides over its dataset's `model`/`train` blocks and returns the flat
dict that `robinterp train --config-json` takes.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import ClassVar

import yaml

from .errors import RobinterpError

TRAIN_ONLY_FOR_WORKFLOW = ("selection_split",)  # read by the workflow (which split), not by train()

# Settings that change how a job runs (where, how fast, in how much memory) but not what it
# computes beyond float rounding. The workflow keeps them out of the params that decide reruns,
# and training keeps them out of its resume key: moving a finished run to another machine or
# raising a batch size recomputes nothing. Every other setting changes results.
# (Random starts are drawn per image, so evaluation batch sizes do not change them; the
# attribution metrics draw their noise per batch, so their batch size is a result setting.)
EXECUTION_ONLY = {
    "train": ("device", "eval_batch_size", "channels_last", "fused", "compile"),
    "evaluation": ("batch_size",),
    "analyses": ("batch_size",),  # every method block of `analyses:`
    "metrics.fid": ("batch_size",),
    "metrics.inversion": ("batch_size",),
}


def result_settings(block: dict, kind: str) -> dict:
    """`block` without its execution-only keys (EXECUTION_ONLY[kind]): what its results depend on."""
    return {k: v for k, v in block.items() if k not in EXECUTION_ONLY[kind]}


def load_schema(path: str | Path) -> dict:
    return yaml.safe_load(Path(path).read_text())


def _key(path) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "<top level>"


def check(config: dict, schema: dict) -> None:
    """Raise RobinterpError listing every schema violation, one readable line each."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    problems = []
    for err in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.path))):
        problems += _lines(_key(err.absolute_path), err)
    problems += non_finite(config, "")
    if problems:
        raise RobinterpError("invalid config:\n  " + "\n  ".join(dict.fromkeys(problems)))


def _lines(where: str, err) -> list[str]:
    """One readable line per schema violation at `where` (a dotted key)."""
    if err.validator == "oneOf" and isinstance(err.instance, dict):
        # the alternatives' own type errors ("not null") say nothing; a key's wrong type does
        sub = [e for e in err.context if e.validator != "type" or e.path]
        return [f"{where}{'.' + _key(e.path) if e.path else ''}: {_short(e)}" for e in sub] or [
            f"{where}: {err.message}"]
    return [f"{where}: {_short(err)}"]


def _problems(value, node: dict, where: str, root: dict) -> list[str]:
    """One readable line per violation of the schema `node` (of the schema `root`) by `value`."""
    import jsonschema

    validator = jsonschema.Draft202012Validator({"$defs": root["$defs"], **node})
    return [line for e in sorted(validator.iter_errors(value), key=lambda e: list(map(str, e.path)))
            for line in _lines(".".join([where] + [str(p) for p in e.absolute_path]), e)]


def non_finite(value, where: str) -> list[str]:
    """One line per NaN or infinite number in a config value: JSON schema's `number` takes them
    (YAML's .nan and .inf), and a NaN setting trains and evaluates to numbers that look fine."""
    if isinstance(value, float) and not math.isfinite(value):
        return [f"{where or '<top level>'}: {value} is not a finite number; give a number"]
    if isinstance(value, dict):
        return [line for k, v in value.items() for line in non_finite(v, f"{where}.{k}" if where else str(k))]
    if isinstance(value, (list, tuple)):
        return [line for i, v in enumerate(value) for line in non_finite(v, f"{where}[{i}]")]
    return []


def _short(err) -> str:
    if err.validator == "pattern" and ("propertyNames" in err.relative_schema_path
                                       or list(err.absolute_path)[-1:] == ["name"]):
        return (f"name {err.instance!r} does not match {err.validator_value}: it names folders and files, "
                "so use letters, digits and _ . - (not starting with . or -)")
    if err.validator == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        return f"unknown key(s) {sorted(set(err.instance) - set(allowed))}; allowed: {allowed}"
    if err.validator == "enum":
        return f"{err.instance!r} is not allowed; choose one of {err.validator_value}"
    return err.message


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


def _merged_variant(dataset_cfg: dict, name: str, schema: dict, where: str) -> tuple[dict, dict, dict, list[str]]:
    """The variant, its dataset's model/train blocks with its overrides, and what is wrong with them."""
    v = get_variant(dataset_cfg, name)
    model = deep_merge(dataset_cfg["model"], v.get("model") or {})
    train = deep_merge(dataset_cfg["train"], v.get("train") or {})
    problems = [line for block, value in (("model", model), ("train", train))
                for line in _problems(value, schema["$defs"][block], f"{where}variants[{name}].{block}", schema)]
    return v, model, train, problems


def resolve_variant(dataset_cfg: dict, name: str, schema: dict, where: str = "") -> dict:
    """The variant's full training config: dataset model/train blocks + the variant's overrides."""
    v, model, train, problems = _merged_variant(dataset_cfg, name, schema, where)
    if problems:
        raise RobinterpError("invalid config:\n  " + "\n  ".join(dict.fromkeys(problems)))
    resolved = {"arch": model["arch"], "width": model["width"], "mean": model.get("mean"), "std": model.get("std"),
                **{k: val for k, val in train.items() if k not in TRAIN_ONLY_FOR_WORKFLOW},
                "attack": v.get("attack"), "seed": v.get("seed", default("variant.seed")),
                "eval_amp": dataset_cfg.get("evaluation", {}).get("amp", default("dataset.evaluation.amp"))}
    return resolved


def selection_split(dataset_cfg: dict, name: str) -> str:
    v = get_variant(dataset_cfg, name)
    return deep_merge(dataset_cfg["train"], v.get("train") or {}).get("selection_split",
                                                                       default("train.selection_split"))


def check_variants(config: dict, schema: dict) -> None:
    """Each variant's overrides merged over its dataset's blocks must be valid: a typo in a
    variant's `train:` or `model:` stops the run before any job, naming the key."""
    problems = [line for ds, dcfg in config["datasets"].items() for name in variant_names(dcfg)
                for line in dict.fromkeys(_merged_variant(dcfg, name, schema, f"datasets.{ds}.")[3])]
    if problems:
        raise RobinterpError("invalid config:\n  " + "\n  ".join(problems))


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
        raise RobinterpError(f"results: {results!r} puts every output at the top of the filesystem; name the "
                             "output folder (e.g. results: results)")
    wanted = config.get("run_variants") or []
    if not wanted:
        return
    names = {ds: variant_names(c) for ds, c in config["datasets"].items()
             if c.get("enabled", True) and ds in (config.get("run_datasets") or [ds])}
    known = sorted({n for ns in names.values() for n in ns})
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise RobinterpError(f"run_variants: {unknown} name no variant of the datasets that run "
                             f"({sorted(names)}); known: {known}")
    unselected = [ds for ds, ns in names.items() if not set(wanted) & set(ns)]
    if unselected:
        raise RobinterpError(f"run_variants: {wanted} selects no variant of dataset(s) {unselected}; add one of "
                             "theirs, or leave those datasets out with run_datasets")


SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"
_SCHEMA: dict = {}


def schema() -> dict:
    """workflow/schemas/config.schema.yaml: every key, its default and its description; the only
    place a default is written (the workflow fills them, the verbs read them from here)."""
    if not _SCHEMA:
        if not SCHEMA_PATH.is_file():
            raise RobinterpError(f"{SCHEMA_PATH}: the config schema is missing; robinterp runs from its repository "
                                 "(pip install -e . or PYTHONPATH=src)")
        _SCHEMA.update(load_schema(SCHEMA_PATH))
    return _SCHEMA


def _deref(node: dict) -> dict:
    ref = node.get("$ref")
    return schema()["$defs"][ref.rsplit("/", 1)[1]] if ref else node


def section(path: str) -> dict:
    """The schema node at a dotted path: a $defs entry or a top-level key, then properties
    ("attack", "analyses.ig", "metrics.fid", "dataset.evaluation", "checkpoint.width")."""
    head, *rest = path.split(".")
    node = schema()["$defs"].get(head) or schema()["properties"].get(head)
    if node is None:
        raise KeyError(f"no schema section {path!r}")
    for part in rest:
        node = _deref(node)["properties"][part]
    return node


def default(path: str):
    """The schema's default of one key ("metrics.fid.batch_size")."""
    node = section(path)
    if "default" not in node:
        raise KeyError(f"schema key {path!r} has no default")
    return copy.deepcopy(node["default"])


def defaults(path: str) -> dict:
    """{key: default} of every key of a schema block that has one."""
    return {k: copy.deepcopy(v["default"]) for k, v in properties(path).items() if "default" in v}


def properties(path: str) -> dict:
    """{key: its schema} of a schema block."""
    return _deref(section(path)).get("properties", {})


def check_block(block: dict, path: str, where: str) -> None:
    """Raise RobinterpError naming each key of `block` that breaks the schema block at `path`."""
    problems = _problems(_plain(block), _deref(section(path)), where, schema()) + non_finite(_plain(block), where)
    if problems:
        raise RobinterpError("invalid settings:\n  " + "\n  ".join(dict.fromkeys(problems)))


def _plain(value):
    """Tuples as lists and numpy scalars as Python numbers, so that a block built in Python
    validates as its JSON would."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value.item() if type(value).__module__ == "numpy" and hasattr(value, "item") else value


class Settings:
    """Mixin of the frozen settings dataclasses: each is one config block (`SECTION`, a schema
    path) and has no defaults of its own. `from_dict` checks the block against the schema (errors
    name the key), fills what it leaves out from the schema's defaults and keeps the fields;
    `of(**values)` is the same from keywords. Keys the schema has and the dataclass lacks
    (`enabled`, ...) are read by the workflow, not by the library."""

    SECTION: ClassVar[str] = ""

    @classmethod
    def build(cls, block: dict | None, where: str | None = None):
        import dataclasses

        where = where or cls.SECTION
        block = dict(block or {})
        consts = {k: v["const"] for k, v in properties(cls.SECTION).items() if "const" in v}  # source `kind`
        check_block({**consts, **block}, cls.SECTION, where)
        values = {**defaults(cls.SECTION), **block}
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names if n not in values]
        if missing:
            raise RobinterpError(f"{where}: missing key(s) {missing} (they have no default)")
        return cls(**{n: values[n] for n in names})

    @classmethod
    def from_dict(cls, block: dict | None):
        return cls.build(block)

    @classmethod
    def of(cls, **values):
        return cls.build(values)


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
                raise RobinterpError(f"{where}: {extra} set on an imported variant (it has `checkpoint:`, so it is "
                                     "not trained); remove them, or set width/mean/std in its checkpoint block")
            if block.get("class_subset") == "wnids":
                src = dcfg["source"]
                if src["kind"] != "small_imagenet150":
                    raise RobinterpError(f"{where}.checkpoint.class_subset: wnids needs a small_imagenet150 dataset "
                                         f"(this one is {src['kind']!r}); remove class_subset")
            out.setdefault(v["name"], where)
    clash = sorted(set(out) & set(trained))
    if clash:
        raise RobinterpError(f"variant name(s) {clash} are imported in one dataset and trained in another "
                             f"({out[clash[0]]}, {trained[clash[0]]}); give them different names")
    return out


def is_robustbench(block: dict | None) -> bool:
    """Whether a variant's checkpoint block names a RobustBench zoo entry (else it is a file)."""
    return bool(block) and block.get("source") == "robustbench"


def robustbench_file(config: dict, block: dict) -> str:
    """Where a RobustBench entry's file is cached (robustbench's own layout under
    robustbench_cache); its sidecar is this path + ".json". Stand-ins lie there too (tests write them)."""
    cache = config.get("robustbench_cache") or default("robustbench_cache")
    return f"{cache}/{block['dataset']}/{block['threat_model']}/{block['name']}.pt"
