"""One source of defaults: the config schema. The settings dataclasses have no defaults of their
own, no CLI flag carries a config key (settings travel as one object, filled from the schema),
and errors name keys."""

import argparse
import dataclasses
import importlib
import pkgutil

import pytest

import robinterp
from robinterp import settings as config
from robinterp.cli import VERBS, build_parser
from robinterp.errors import RobinterpError
from robinterp.settings import Settings, check_settings

# Dataclasses that may keep defaults, and why: none of them is a config block.
NOT_SETTINGS = {
    "Ranks": "the torchrun process layout, read from the environment",
    "Source": "a record of what a published file holds",
}
# Flags with a literal default, and why: none of them is a config key.
LITERAL_DEFAULTS = {
    ("build-small-imagenet", "--workers"): "decoding processes, how the job runs; the rule passes its threads",
}


def _dataclasses():
    for m in pkgutil.iter_modules(robinterp.__path__):
        if m.name == "__main__":
            continue
        mod = importlib.import_module(f"robinterp.{m.name}")
        for obj in vars(mod).values():
            if isinstance(obj, type) and dataclasses.is_dataclass(obj) and obj.__module__ == mod.__name__:
                yield obj


def _has_default(f):
    return f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING


def test_settings_dataclasses_have_no_defaults_and_the_schema_has_one_for_each_field():
    seen = []
    for cls in _dataclasses():
        with_default = [f.name for f in dataclasses.fields(cls) if _has_default(f)]
        if not issubclass(cls, Settings):
            assert not with_default or cls.__name__ in NOT_SETTINGS, (cls, with_default)
            continue
        seen.append(cls.__name__)
        assert not with_default, f"{cls.__name__}: defaults {with_default} belong in the schema"
        if not cls.SECTION:
            continue  # no SECTION: fields shared by subclasses
        required = set(config.node(cls.SECTION).get("required", ())) - {"kind"}
        missing = {f.name for f in dataclasses.fields(cls)} - set(config.defaults(cls.SECTION)) - required
        assert not missing, f"{cls.__name__}: fields {missing} have no default in schema {cls.SECTION}"
    assert len(seen) >= 11, seen


def test_settings_take_the_schema_defaults():
    from robinterp.attributions import IGConfig
    from robinterp.train import TrainConfig

    ig = IGConfig.from_dict(None)
    assert dataclasses.asdict(ig) == {k: v for k, v in config.defaults("analyses.ig").items()}
    tc = TrainConfig.from_dict({"epochs": 3})
    assert tc.epochs == 3 and tc.lr == config.default("train.lr") and tc.width == config.default("model.width")
    assert tc.device == config.schema()["properties"]["device"]["default"]
    assert tc.eval_amp == config.default("dataset.evaluation.amp")
    assert tc.augment.crop_padding == config.default("augment.crop_padding") and tc.attack is None


@pytest.mark.parametrize(
    "block, where",
    [
        ({"steps": 0}, "analyses.ig.steps"),
        ({"baseline": "grey"}, "analyses.ig.baseline"),
        ({"stepz": 3}, "analyses.ig"),
    ],
)
def test_bad_settings_name_the_key_not_a_dataclass(block, where):
    from robinterp.attributions import IGConfig

    with pytest.raises(RobinterpError) as e:
        IGConfig.from_dict(block)
    assert where in str(e.value) and "IGConfig(" not in str(e.value)
    if "stepz" in block:
        assert "'stepz'" in str(e.value) and "allowed" in str(e.value)


def test_python_and_numpy_values_validate_as_their_json_would():
    import numpy as np

    from robinterp.attributions import IGConfig
    from robinterp.train import TrainConfig

    assert IGConfig.of(steps=np.int64(8), blur_sigma=np.float32(1.5)).steps == 8
    assert TrainConfig.of(milestones=(3, 6), mean=(0.5, 0.5, 0.5)).milestones == (3, 6)
    with pytest.raises(RobinterpError, match=r"analyses.ig.steps: 2.5 is not of type 'integer'"):
        IGConfig.of(steps=np.float64(2.5))


def test_train_config_errors_name_the_block_and_key():
    from robinterp.train import TrainConfig

    with pytest.raises(RobinterpError, match=r"train settings.train.lr"):
        TrainConfig.from_dict({"lr": -1})
    with pytest.raises(RobinterpError, match=r"unknown key\(s\) \['lrr'\]"):
        TrainConfig.from_dict({"lrr": 0.1})


def _verbs():
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices.items()


def test_no_flag_carries_a_config_key():
    """Settings reach a verb as one object (--settings); a flag's default is None, empty or off,
    but for the listed execution flags."""
    for verb, p in _verbs():
        for a in p._actions:
            if not a.option_strings or a.dest in ("help", "set"):
                continue
            empty = a.default in (None, "", []) or (a.default is False and isinstance(a, argparse._StoreTrueAction))
            assert empty or (verb, a.option_strings[0]) in LITERAL_DEFAULTS, (verb, a.option_strings[0], a.default)


def test_every_verb_with_settings_names_them_and_fills_them_from_the_schema():
    from robinterp.settings import section_node

    checked = 0
    for verb, p in _verbs():
        sections = VERBS[verb][2]
        flags = {a.option_strings[0]: a for a in p._actions if a.option_strings}
        if not sections:
            assert "--settings" not in flags, verb
            continue
        assert all(s in flags["--settings"].help for s in sections), (verb, flags["--settings"].help)
        with_defaults = tuple(s for s in sections if "default" in section_node(s))
        filled = check_settings(with_defaults, {})
        for s in with_defaults:
            default = section_node(s)["default"]
            assert filled[s] == default or (isinstance(default, dict) and set(default) <= set(filled[s])), (verb, s)
        checked += 1
    assert checked >= 20


def test_a_missing_schema_is_one_line(monkeypatch, tmp_path, capsys):
    from robinterp import cli

    monkeypatch.setattr(config, "SCHEMA_PATH", tmp_path / "config.schema.yaml")
    monkeypatch.setattr(config, "_SCHEMA", {})
    assert cli.main(["evaluate", "--help"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "config.schema.yaml" in err and "Traceback" not in err
