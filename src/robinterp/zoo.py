"""The RobustBench model zoo by name: which entry a variant names, and fetching its file once.

A variant's `checkpoint: {source: robustbench, name, dataset, threat_model}` names an entry of
robustbench's model zoo (`robustbench.model_zoo`, the zoo's own code). `lookup` finds it: the
constructor of its network and the Google Drive file its weights are published in. `fetch`
downloads that file once into the cache (`robustbench_cache/<dataset>/<threat_model>/<name>.pt`,
robustbench's own layout), resumably (`download.py`), and writes a sidecar JSON beside it with
the file's sha256 (computed from the file) and the robustbench version whose zoo pointed at it.
`published.import_zoo` turns the file into a robinterp checkpoint (`zoo_model.py`: its network).

Refused with one line each: a name the zoo lacks (close matches are listed); entries whose
weights come from the Hugging Face hub through timm (robinterp downloads and checks files
itself); ensembles of several files; entries without a file (ImageNet `Standard_R50` is
torchvision's weights: import that file with `format: torchvision`). robustbench 1.1.1 publishes
every other entry on Google Drive; it has no Zenodo-hosted models.

Tiny stand-ins: a block with `stand_in: {architecture, depth, width, activation}` builds one of
the allow-listed robustbench architecture classes at a tiny size instead of a zoo entry, and is
never downloaded (tests write its file); it goes through the same import and load code.

Run: `robinterp download-robustbench --name Standard --dataset cifar10 --threat-model L2
--out data/robustbench/cifar10/L2/Standard.pt --sidecar data/robustbench/cifar10/L2/Standard.pt.json`.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import importlib.resources
import importlib.util
import shutil
import sys
import types
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from . import storage
from .download import download_file, part_path
from .errors import RobinterpError
from .safe_unpickle import check_file
from .settings import Settings

INSTALL = "pip install robustbench==1.1.1 pyautoattack"


@dataclass(frozen=True)
class ZooCheckpoint(Settings):
    """A variant's `checkpoint:` block naming a RobustBench entry (schema $defs robustbench_checkpoint)."""

    SECTION = "robustbench_checkpoint"

    name: str  # the entry's name in robustbench's model zoo (a stand-in's: its file's name)
    dataset: str  # cifar10 | cifar100 | imagenet: the zoo's track
    threat_model: str  # L2 | Linf | corruptions
    sha256: str | None  # pin of the file; None = whatever the sidecar recorded at download
    class_subset: str | None  # "wnids": keep the logits of the dataset's wnids (ImageNet entries)
    stand_in: dict | None  # tests only: a tiny network of an allow-listed architecture class


def import_robustbench() -> types.ModuleType:
    """robustbench as installed from PyPI, importable. Its `eval.py` imports `autoattack`, the
    reference AutoAttack that PyPI installs under the name `pyautoattack` (its declared
    dependency), and its `loaders.py` imports `pkg_resources` (gone from setuptools >= 81) for
    `resource_filename` alone. Where those names are missing they are put in sys.modules:
    `autoattack` as pyautoattack itself, `pkg_resources` as a module holding that one function
    (importlib.resources does the same). Nothing is changed where the real modules exist."""
    if importlib.util.find_spec("robustbench") is None:
        raise RobinterpError(f"the robustbench package is not installed; {INSTALL}")
    if "autoattack" not in sys.modules and importlib.util.find_spec("autoattack") is None:
        import pyautoattack
        import pyautoattack.state

        sys.modules["autoattack"], sys.modules["autoattack.state"] = pyautoattack, pyautoattack.state
    if "pkg_resources" not in sys.modules and importlib.util.find_spec("pkg_resources") is None:
        shim = types.ModuleType("pkg_resources", "robinterp's stand-in: resource_filename only")
        shim.resource_filename = lambda package, resource: str(importlib.resources.files(package) / resource)
        sys.modules["pkg_resources"] = shim
    with warnings.catch_warnings():  # its imports use APIs torch and timm deprecate (torch.jit.interface, ...)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        import robustbench
        import robustbench.model_zoo
    return robustbench


def robustbench_version() -> str:
    return metadata.version("robustbench")


@dataclass(frozen=True)
class Entry:
    """One network robinterp can build: a zoo entry (with its file's Google Drive id) or a stand-in."""

    name: str
    dataset: str
    threat_model: str
    build: Callable[[], object]  # () -> the network (torch.nn.Module), robustbench's own class
    gdrive_id: str | None  # its file on Google Drive; None for a stand-in
    preprocessing: str | None  # robustbench's test-time resize/crop of ImageNet entries
    stand_in: dict | None  # the stand-in's spec, or None for a zoo entry


def lookup(name: str, dataset: str, threat_model: str) -> Entry:
    """The zoo entry `name` of the track (dataset, threat model); one-line errors otherwise."""
    import_robustbench()
    import timm
    from robustbench.model_zoo import model_dicts

    where = f"robustbench {robustbench_version()}'s {dataset} {threat_model} track"
    tracks = {(d.value, t.value): models for d, ts in model_dicts.items() for t, models in ts.items()}
    track = tracks.get((dataset, threat_model))
    if track is None:
        raise RobinterpError(
            f"checkpoint: robustbench has no {dataset} {threat_model} track; its tracks: "
            f"{sorted(f'{d} {t}' for d, t in tracks)}"
        )
    if name not in track:
        close = difflib.get_close_matches(name, list(track), n=5, cutoff=0.5)
        elsewhere = sorted(f"{d} {t}" for (d, t), models in tracks.items() if name in models)
        raise RobinterpError(
            f"checkpoint.name {name!r} is not in {where} ({len(track)} models)"
            + (f"; it is in the {', '.join(elsewhere)} track(s)" if elsewhere else "")
            + (f"; close matches: {close}" if close else "")
            + "; the names are robustbench.model_zoo's (the RobustBench leaderboard's)"
        )
    entry = track[name]
    gdrive_id = entry["gdrive_id"]
    timm_name = f"{name.lower().replace('-', '_')}_{dataset}_{threat_model.lower()}"
    if timm.is_model(timm_name):  # robustbench's load_model checks this first too
        raise RobinterpError(
            f"checkpoint.name {name!r}: its weights come from the Hugging Face hub through timm "
            f"({timm_name}), not from a file robinterp downloads and checks; not supported"
        )
    if isinstance(gdrive_id, (list, tuple)):
        raise RobinterpError(
            f"checkpoint.name {name!r}: an ensemble of {len(gdrive_id)} files; not supported "
            "(robinterp imports one network per variant)"
        )
    if not gdrive_id:
        raise RobinterpError(
            f"checkpoint.name {name!r}: robustbench publishes no file for it (its constructor "
            "loads torchvision's pretrained weights); import that file with format: torchvision"
        )
    return Entry(name, dataset, threat_model, entry["model"], gdrive_id, entry.get("preprocessing"), None)


# --- tiny stand-ins (tests): robustbench architecture classes at small sizes ----------------------


def _stand_in_builders() -> dict:
    """Architecture class -> (num_classes, stand_in block) -> network; the allow-list (the schema's
    robustbench_stand_in.architecture enum names the same classes)."""
    import_robustbench()
    from robustbench.model_zoo.architectures.dm_wide_resnet import DMWideResNet, Swish
    from robustbench.model_zoo.architectures.wide_resnet import WideResNet
    from torch import nn

    activations = {"relu": nn.ReLU, "swish": Swish, "silu": nn.SiLU}
    return {
        "WideResNet": lambda n, s: WideResNet(depth=s["depth"], widen_factor=s["width"], num_classes=n),
        "DMWideResNet": lambda n, s: DMWideResNet(
            num_classes=n, depth=s["depth"], width=s["width"], activation_fn=activations[s["activation"]]
        ),
    }


def stand_in_entry(block: ZooCheckpoint, num_classes: int) -> Entry:
    from .settings import node, problems, raise_problems

    spec = dict(block.stand_in)
    raise_problems(problems(spec, node("robustbench_stand_in"), "checkpoint.stand_in"))  # fills its defaults
    if (spec["depth"] - 4) % 6:
        raise RobinterpError(
            f"checkpoint.stand_in.depth {spec['depth']}: these wide ResNets need depth = 6k + 4 (10, 16, 22, 28, ...)"
        )
    build = _stand_in_builders()[spec["architecture"]]
    return Entry(block.name, block.dataset, block.threat_model, lambda: build(num_classes, spec), None, None, spec)


def entry_of(block: ZooCheckpoint, num_classes: int | None = None) -> Entry:
    """The zoo entry a block names, or its stand-in (which needs the dataset's class count)."""
    if block.stand_in is None:
        return lookup(block.name, block.dataset, block.threat_model)
    if num_classes is None:
        raise RobinterpError(f"checkpoint {block.name!r}: a stand-in needs the dataset's classes (--classes)")
    return stand_in_entry(block, num_classes)


# --- the cached file and its sidecar --------------------------------------------------------------

GDRIVE_URL = "https://drive.google.com/uc?export=download&id={id}"  # where the zoo's gdrive ids point


def fetch(
    name: str,
    dataset: str,
    threat_model: str,
    out: str | Path,
    sidecar: str | Path,
    *,
    from_file: str | Path | None = None,
    log=print,
) -> dict:
    """Download the entry's file to `out` (resuming `<out>.part`), or take `from_file` (a copy
    fetched by hand); check it is a whole torch.save file; write and return the sidecar record."""
    entry = lookup(name, dataset, threat_model)
    out, url = Path(out), GDRIVE_URL.format(id=entry.gdrive_id)
    fix = (
        f"download it in a browser from {url} and run: robinterp download-robustbench --name {name} "
        f"--dataset {dataset} --threat-model {threat_model} --out {out} --sidecar {sidecar} --from-file <that file>"
    )
    if from_file is not None:
        check_file(from_file)
        part = part_path(out)
        part.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(from_file, part)
        part.replace(out)
    else:
        download_file(url, out, fix=fix, log=log)
    try:
        via = f"copied from {from_file}" if from_file else "downloaded"
        record = write_sidecar(entry, out, sidecar, url=url, via=via)
    except RobinterpError:
        out.unlink()  # a whole download that is no torch file (a zip without its end record) is of no use
        raise
    log(
        f"download-robustbench: {dataset} {threat_model} {name}: {record['bytes']} bytes, sha256 {record['sha256']} "
        f"-> {out}"
    )
    return record


def write_sidecar(entry: Entry, file: str | Path, sidecar: str | Path, *, url: str | None, via: str) -> dict:
    """Record what `file` is: the entry, its sha256 (computed here, after checking the file is a
    whole torch.save file), size, origin and the robustbench version whose zoo named it."""
    record = {
        "name": entry.name,
        "dataset": entry.dataset,
        "threat_model": entry.threat_model,
        "url": url,
        "gdrive_id": entry.gdrive_id,
        "via": via,
        "sha256": check_file(file),
        "bytes": Path(file).stat().st_size,
        "robustbench_version": robustbench_version(),
        "fetched": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    storage.write_json(sidecar, record)
    return record


def read_sidecar(path: str | Path, block: ZooCheckpoint) -> dict:
    """The sidecar of a cached file, checked to describe the entry `block` names."""
    path = Path(path)
    if not path.is_file():
        raise RobinterpError(
            f"{path}: no sidecar; fetch the file with robinterp download-robustbench "
            "(rule download_robustbench), which writes it"
        )
    record = storage.read_json(path)
    named = {k: record.get(k) for k in ("name", "dataset", "threat_model")}
    if named != {"name": block.name, "dataset": block.dataset, "threat_model": block.threat_model}:
        raise RobinterpError(
            f"{path}: describes {named}, not the variant's checkpoint {block.name!r} "
            f"({block.dataset} {block.threat_model}); fetch the file again"
        )
    return record
