"""Each `analyses` block of the schema is one settings dataclass, and every config file's analyses
block is accepted by them."""

import dataclasses
from pathlib import Path

import pytest
import yaml

from robinterp.attributions import IGConfig, ShapConfig
from robinterp.figures import PlotConfig
from robinterp.synthesis import ClassGenerationConfig, FeatureVisConfig, InversionConfig

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = {
    "ig": IGConfig,
    "shap": ShapConfig,
    "class_generation": ClassGenerationConfig,
    "inversion": InversionConfig,
    "feature_vis": FeatureVisConfig,
    "plots": PlotConfig,
}


@pytest.mark.parametrize("block", list(BLOCKS))
def test_each_analyses_block_is_one_settings_class(block):
    """The schema block and its dataclass hold the same keys (the schema alone holds defaults)."""
    from robinterp.settings import schema

    props = schema()["$defs"]["analyses"]["properties"][block]["properties"]
    cls = BLOCKS[block]
    assert cls.SECTION == f"analyses.{block}"
    assert set(props) == {f.name for f in dataclasses.fields(cls)}
    assert dataclasses.asdict(cls.from_dict(None)) == {k: spec["default"] for k, spec in props.items()}


@pytest.mark.parametrize("config", ["config.yaml", "workflow/configs/demo.yaml", "workflow/configs/tiny.yaml"])
def test_config_files_analyses_blocks_parse(config):
    cfg = yaml.safe_load((ROOT / config).read_text())
    for ds in cfg["datasets"].values():
        for block, cls in BLOCKS.items():
            cls.from_dict(ds.get("analyses", {}).get(block))
