"""Verbs of workflow/rules/data.smk: download-data, prepare-data."""

from __future__ import annotations

from pathlib import Path

from ..cli import json_arg as _json, verb


@verb("download-data", "fetch what a data source needs from the internet (CIFAR-10's archive: md5-checked, unpacked)")
def download_data(a):
    from ..errors import RobinterpError
    from ..sources import fetch_cifar10, needs_download

    if not needs_download(a.source_json):
        raise RobinterpError(f"source kind {a.source_json['kind']!r} with these keys downloads nothing")
    fetch_cifar10(a.source_json["root"], download=True)
    print(f"download-data: CIFAR-10 in {a.source_json['root']}")


download_data.flags = lambda p: (
    p.add_argument("--source-json", type=_json, required=True, help="the dataset's source block as JSON ($defs cifar10_source, with download: true)"),
)


@verb("prepare-data", "write train/val/test in the packed format from a data source")
def prepare_data(a):
    from ..sources import prepare

    prepare(a.source_json, a.out_dir)
    print(f"prepare-data: wrote {a.out_dir}/{{train,val,test}}")


prepare_data.flags = lambda p: (
    p.add_argument("--source-json", type=_json, required=True, help="the dataset's source block as JSON; its keys depend on `kind` ($defs digits_source, cifar10_source, image_folder_source in workflow/schemas/config.schema.yaml)"),
    p.add_argument("--out-dir", type=Path, required=True),
)
