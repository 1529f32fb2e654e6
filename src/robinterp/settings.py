"""The settings a job runs with: the config schema, the settings object every verb takes, and
which of its keys decide results.

The schema (`config.schema.yaml`, shipped inside the package) is the only place a default is
written. A verb's settings are one JSON object whose keys are the config sections it reads, by
their path in a dataset's config (`analyses.ig`, `eval_attack`, `evaluation.amp`, `model`), in a
variant (`variant.attack`, `variant.checkpoint`) or at the top (`device`); for `robinterp ig`:

    {"analyses.ig": {"steps": 50, "baseline": "uniform", ...}, "device": "auto"}

The workflow hands each job the sections of its verb as they stand in the filled config; by hand
the object is a JSON string, a .json or .yaml file, or `--set SECTION.KEY=VALUE` flags.
`check_settings` validates it against the schema's nodes and fills what it leaves out from their
defaults, before the verb runs. Keys the schema marks `x-execution: true` change how a job runs
(device, batch sizes kept for throughput, speed switches), never what it computes:
`result_settings` drops them, and what remains is every rule's rerun trigger and training's
resume key.

No torch here: the Snakefile imports this module while it builds the DAG.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path
from typing import Any, ClassVar

import yaml

from .errors import RobinterpError

SCHEMA_PATH = Path(__file__).with_name("config.schema.yaml")
# What a training job reads: the dataset's model and train blocks with the variant's overrides,
# the variant's attack and seed, model selection's precision and the device.
TRAIN_SETTINGS = ("model", "train", "variant.attack", "variant.seed", "evaluation.amp", "device")
_SCHEMA: dict = {}


def schema() -> dict:
    """The config schema: every key, its default and its description."""
    if not _SCHEMA:
        if not SCHEMA_PATH.is_file():
            raise RobinterpError(
                f"{SCHEMA_PATH}: the config schema is missing from the installed package; reinstall robinterp"
            )
        _SCHEMA.update(yaml.safe_load(SCHEMA_PATH.read_text()))
    return _SCHEMA


def _deref(node: dict) -> dict:
    ref = node.get("$ref")
    return schema()["$defs"][ref.rsplit("/", 1)[1]] if ref else node


def node(path: str) -> dict:
    """The schema node at a dotted path: a $defs entry or a top-level key, then properties
    ("attack", "analyses.ig", "metrics.fid", "dataset.evaluation", "checkpoint.width")."""
    head, *rest = path.split(".")
    found = schema()["$defs"].get(head) or schema()["properties"].get(head)
    if found is None:
        raise KeyError(f"no schema node {path!r}")
    for part in rest:
        found = _deref(found)["properties"][part]
    return found


def default(path: str) -> Any:
    """The schema's default of one key ("metrics.fid.batch_size")."""
    found = node(path)
    if "default" not in found:
        raise KeyError(f"schema key {path!r} has no default")
    return copy.deepcopy(found["default"])


def defaults(path: str) -> dict:
    """{key: default} of every key of a schema block that has one."""
    return {k: copy.deepcopy(v["default"]) for k, v in properties(path).items() if "default" in v}


def properties(path: str) -> dict:
    """{key: its schema} of a schema block."""
    return _deref(node(path)).get("properties", {})


# --- validation, with defaults filled as it goes ---------------------------------------------------


def _filling_validator(root: dict, schema_node: dict):
    """A Draft 2020-12 validator of `schema_node` that writes each missing key's default into the
    instance as it validates (as Snakemake's `validate` does for the whole config)."""
    import jsonschema

    base = jsonschema.Draft202012Validator
    check_properties = base.VALIDATORS["properties"]

    def properties_with_defaults(validator, props, instance, sub):
        if isinstance(instance, dict):
            for key, spec in props.items():
                if "default" in spec and key not in instance:
                    instance[key] = copy.deepcopy(spec["default"])
        yield from check_properties(validator, props, instance, sub)

    filling = jsonschema.validators.extend(base, {"properties": properties_with_defaults})
    return filling({"$defs": root["$defs"], **schema_node})


def problems(value: Any, schema_node: dict, where: str) -> list[str]:
    """Fill `value`'s defaults in place and return one readable line per violation of `schema_node`."""
    validator = _filling_validator(schema(), schema_node)
    errors = sorted(validator.iter_errors(value), key=lambda e: list(map(str, e.path)))
    lines = [line for e in errors for line in _lines(_join(where, e.absolute_path), e)]
    return list(dict.fromkeys(lines + non_finite(value, where)))


def _join(where: str, path) -> str:
    out = where
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "<top level>"


def _lines(where: str, err) -> list[str]:
    """One readable line per schema violation at `where` (a dotted key)."""
    if err.validator == "oneOf" and isinstance(err.instance, dict):
        # the alternatives' own type errors ("not null") say nothing; a key's wrong type does
        sub = [e for e in err.context if e.validator != "type" or e.path]
        return [f"{_join(where, e.path)}: {_short(e)}" for e in sub] or [f"{where}: {err.message}"]
    return [f"{where}: {_short(err)}"]


def _short(err) -> str:
    if err.validator == "pattern" and (
        "propertyNames" in err.relative_schema_path or list(err.absolute_path)[-1:] == ["name"]
    ):
        return (
            f"name {err.instance!r} does not match {err.validator_value}: it names folders and files, "
            "so use letters, digits and _ . - (not starting with . or -)"
        )
    if err.validator == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        return f"unknown key(s) {sorted(set(err.instance) - set(allowed))}; allowed: {allowed}"
    if err.validator == "enum":
        return f"{err.instance!r} is not allowed; choose one of {err.validator_value}"
    return err.message


def non_finite(value: Any, where: str) -> list[str]:
    """One line per NaN or infinite number: JSON schema's `number` takes YAML's .nan and .inf,
    and a NaN setting trains and evaluates to numbers that look fine."""
    if isinstance(value, float) and not math.isfinite(value):
        return [f"{where or '<top level>'}: {value} is not a finite number; give a number"]
    if isinstance(value, dict):
        return [line for k, v in value.items() for line in non_finite(v, f"{where}.{k}" if where else str(k))]
    if isinstance(value, (list, tuple)):
        return [line for i, v in enumerate(value) for line in non_finite(v, f"{where}[{i}]")]
    return []


def plain(value: Any) -> Any:
    """Tuples as lists and numpy scalars as Python numbers: a block built in Python validates as its JSON would."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value.item() if type(value).__module__ == "numpy" and hasattr(value, "item") else value


def raise_problems(lines: list[str], what: str = "invalid settings") -> None:
    if lines:
        raise RobinterpError(f"{what}:\n  " + "\n  ".join(dict.fromkeys(lines)))


# --- a verb's settings -------------------------------------------------------------------------------


def section_node(key: str) -> dict:
    """The schema node of a settings key: `device` (top level), `variant.<key>`, or a path in a dataset."""
    if key == "device":
        return schema()["properties"]["device"]
    if key.startswith("variant."):
        return node(key)
    return node(key if key in ("model", "train") else f"dataset.{key}")


def check_settings(keys: tuple[str, ...], raw: dict | None, where: str = "settings") -> dict:
    """The settings object of a verb that reads `keys`: each section validated against its schema
    node with its defaults filled (a section left out takes the node's default); unknown keys and
    sections without a default that are missing are errors naming them."""
    raw = plain(dict(raw or {}))
    unknown = sorted(set(raw) - set(keys))
    lines = [f"{where}: unknown section(s) {unknown}; this verb reads {list(keys)}"] if unknown else []
    out = {}
    for key in keys:
        spec = section_node(key)
        if key in raw:
            value = copy.deepcopy(raw[key])
        elif "default" in spec:
            value = copy.deepcopy(spec["default"])
        else:
            lines.append(f"{where}: section {key!r} is missing (it has no default)")
            continue
        lines += problems(value, spec, f"{where}.{key}" if where else key)
        out[key] = value
    raise_problems(lines)
    return out


def result_settings(settings: dict) -> dict:
    """`settings` without what only changes how a job runs (the schema's `x-execution` keys): the
    rerun trigger of every rule and the resume key of training."""
    return {
        key: _results(value, section_node(key))
        for key, value in settings.items()
        if not section_node(key).get("x-execution")
    }


def _results(value: Any, spec: dict) -> Any:
    spec = _deref(spec)
    if not isinstance(value, dict) or "properties" not in spec:
        return value
    props = spec["properties"]
    return {
        k: _results(v, props[k]) if k in props else v
        for k, v in value.items()
        if not (k in props and _deref(props[k]).get("x-execution"))
    }


class Settings:
    """Mixin of the frozen settings dataclasses: each is one config block (`SECTION`, a schema
    path) and has no defaults of its own. `from_block` keeps the fields of a block that
    `check_settings` has validated and filled (what every verb does); `of(**values)` and
    `from_dict(block)` validate and fill first (library callers and tests). Keys the schema has
    and the dataclass lacks (`enabled`, ...) are the workflow's."""

    SECTION: ClassVar[str] = ""

    @classmethod
    def from_block(cls, block: dict, where: str | None = None):
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names if n not in block]
        if missing:
            raise RobinterpError(f"{where or cls.SECTION}: missing key(s) {missing} (they have no default)")
        return cls(**{n: block[n] for n in names})

    @classmethod
    def from_dict(cls, block: dict | None, where: str | None = None):
        block = plain(dict(block or {}))
        spec = _deref(node(cls.SECTION))
        consts = {k: v["const"] for k, v in spec.get("properties", {}).items() if "const" in v}  # a source's kind
        block = {**consts, **block}
        raise_problems(problems(block, spec, where or cls.SECTION))
        return cls.from_block(block, where)

    @classmethod
    def of(cls, **values):
        return cls.from_dict(values)
