"""The schema's `analyses` defaults (the one source of defaults) match the settings dataclasses,
and every config file's analyses block is accepted by them."""

import dataclasses
from pathlib import Path

import pytest
import yaml

from robinterp.attributions import IGConfig, ShapConfig
from robinterp.plots import PlotConfig
from robinterp.visualise import ClassGenerationConfig, FeatureVisConfig, InversionConfig

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = {"ig": IGConfig, "shap": ShapConfig, "class_generation": ClassGenerationConfig,
          "inversion": InversionConfig, "feature_vis": FeatureVisConfig, "plots": PlotConfig}


@pytest.mark.parametrize("block", list(BLOCKS))
def test_schema_defaults_equal_dataclass_defaults(block):
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    props = schema["$defs"]["analyses"]["properties"][block]["properties"]
    cls = BLOCKS[block]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    assert set(props) == set(fields)
    defaults = cls()
    for name, spec in props.items():
        assert getattr(defaults, name) == spec["default"], (block, name)


@pytest.mark.parametrize("config", ["config.yaml", "workflow/configs/demo.yaml", "workflow/configs/tiny.yaml"])
def test_config_files_analyses_blocks_parse(config):
    cfg = yaml.safe_load((ROOT / config).read_text())
    for name, ds in cfg["datasets"].items():
        for block, cls in BLOCKS.items():
            cls.from_dict(ds.get("analyses", {}).get(block))
