"""Verbs of workflow/rules/data.smk: prepare-data."""

from __future__ import annotations

from pathlib import Path

from ..cli import json_arg as _json, verb


@verb("prepare-data", "write train/val/test in the packed format from a data source")
def prepare_data(a):
    from ..sources import prepare

    prepare(a.source_json, a.out_dir)
    print(f"prepare-data: wrote {a.out_dir}/{{train,val,test}}")


prepare_data.flags = lambda p: (
    p.add_argument("--source-json", type=_json, required=True, help="the dataset's source block as JSON; its keys depend on `kind` ($defs digits_source, cifar10_source, image_folder_source in workflow/schemas/config.schema.yaml)"),
    p.add_argument("--out-dir", type=Path, required=True),
)
