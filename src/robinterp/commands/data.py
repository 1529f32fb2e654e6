"""Verbs of workflow/rules/data.smk: download-data, prepare-data. Both read the dataset's
`source` block (its keys depend on `kind`: $defs digits_source, cifar10_source, image_folder_source)."""

from __future__ import annotations

from pathlib import Path

from ..verbs import verb


@verb(
    "download-data",
    "fetch what a data source needs from the internet (CIFAR-10's archive: md5-checked, unpacked)",
    settings=("source",),
)
def download_data(a):
    from ..errors import RobinterpError
    from ..sources import fetch_cifar10, needs_download

    source = a.settings["source"]
    if not needs_download(source):
        raise RobinterpError(f"source kind {source['kind']!r} with these keys downloads nothing")
    fetch_cifar10(source["root"], download=True)
    print(f"download-data: CIFAR-10 in {source['root']}")


download_data.flags = lambda p: None


@verb("prepare-data", "write train/val/test in the packed format from a data source", settings=("source",))
def prepare_data(a):
    from ..sources import write_source

    write_source(a.settings["source"], a.out_dir)
    print(f"prepare-data: wrote {a.out_dir}/{{train,val,test}}")


prepare_data.flags = lambda p: p.add_argument("--out-dir", type=Path, required=True)
