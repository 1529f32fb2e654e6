"""Published checkpoints (MadryLab robustness, RobustBench, torchvision, a RobustBench zoo entry)
as robinterp checkpoints.

`import_published(...)` reads a file with the allow-list unpickler (`safe_unpickle`; a
safetensors file with the safetensors library), maps its keys onto a registered architecture
strictly (every tensor used, or dropped on purpose and said so), refuses NaN or infinite
weights, loads them with `strict=True`, and writes the usual self-describing checkpoint: the model
takes pixels in [0, 1] and normalises inside, with the normalisation read from the file where it
holds it (MadryLab `normalizer.new_mean/new_std`, RobustBench `mu`/`sigma`) and given by the user
otherwise. An ImageNet model can be restricted to a subset of its classes (the wnids of Small
ImageNet 150): the head keeps only those rows, which is exactly restricting the logits.
Run: `robinterp import-checkpoint --format madrylab --arch resnet50_cifar --input F --out model.pt`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from . import storage
from .checkpoints import check_weights, remap_madry_state_dict, save_checkpoint
from .errors import RobinterpError
from .models import build_model
from .safe_unpickle import load_untrusted
from .zoo import ZooCheckpoint, entry_of, read_sidecar, robustbench_version
from .zoo_model import ZOO_ARCH, ZooClassifier, find_head, keep_rows, normalisation_of, one_line

CIFAR_ARCHS = ("resnet18_cifar", "resnet50_cifar", "preact_resnet18")
IMAGENET_ARCHS = ("resnet18", "resnet50", "wide_resnet50_2")
PUBLISHED_ARCHS = {  # format (schema: checkpoint.format) -> the architectures its files can hold
    "madrylab": ("resnet18_cifar", "resnet50_cifar") + IMAGENET_ARCHS,
    "robustbench": CIFAR_ARCHS + IMAGENET_ARCHS,
    "torchvision": IMAGENET_ARCHS,
}


@dataclass
class Source:
    """What a file holds: the network's tensors under our backbone names, and its normalisation."""

    net: dict
    mean: list[float] | None = None
    std: list[float] | None = None
    dropped: list[str] = field(default_factory=list)  # "key(s): why", for the checkpoint's record


def state_dict_of(obj, path, keys: tuple[str, ...]) -> tuple[dict, list[str]]:
    """The tensor dict inside a checkpoint: under one of `keys`, or the object itself."""
    if not isinstance(obj, dict):
        raise RobinterpError(f"{path}: holds a {type(obj).__name__}, not a dict of tensors or a checkpoint dict")
    for k in keys:
        if k in obj and isinstance(obj[k], dict):
            others = sorted(str(o) for o in obj if o != k)
            return obj[k], ([f"{', '.join(others)}: training state, not the model"] if others else [])
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj, []
    raise RobinterpError(
        f"{path}: no state dict found (looked for keys {list(keys)} or a dict of tensors; "
        f"top-level keys: {sorted(map(str, obj))[:10]}); is --format right?"
    )


def _strip(key: str, prefix: str) -> str:
    return key[len(prefix) :] if key.startswith(prefix) else key


def _stats(t: torch.Tensor) -> list[float]:
    return [float(v) for v in t.detach().reshape(-1)]


def read_madrylab(obj, path) -> Source:
    """robustness train.py: {"model" (or "state_dict"): DataParallel(AttackerModel).state_dict(), ...}."""
    state, dropped = state_dict_of(obj, path, ("model", "state_dict"))
    try:
        ours = remap_madry_state_dict(state)
    except RobinterpError as e:
        raise RobinterpError(f"{path}: {e}") from None
    if "normalizer.mean" not in ours or "normalizer.std" not in ours:
        raise RobinterpError(
            f"{path}: no module.normalizer.new_mean/new_std; not a robustness checkpoint "
            "(try --format robustbench or torchvision)"
        )
    net = {_strip(k, "model."): v for k, v in ours.items() if k.startswith("model.")}
    n_attacker = sum(1 for k in state if k.removeprefix("module.").startswith("attacker."))
    if n_attacker:
        dropped.append(f"module.attacker.* ({n_attacker} tensors): checked equal to the model copy")
    return Source(net, _stats(ours["normalizer.mean"]), _stats(ours["normalizer.std"]), dropped)


def read_robustbench(obj, path) -> Source:
    """RobustBench model-zoo files: a state dict, maybe under "state_dict", with `module.` / `model.`
    prefixes; normalisation as `mu`/`sigma` (or `normalize.mean/std`) where the file holds it."""
    state, dropped = state_dict_of(obj, path, ("state_dict",))
    net, norm = {}, {}
    for key, value in state.items():
        key = _strip(_strip(key, "module."), "model.")
        if key in ("mu", "sigma", "normalize.mean", "normalize.std", "mean", "std"):
            norm[{"mu": "mean", "sigma": "std"}.get(key, key.rsplit(".", 1)[-1])] = _stats(value)
        else:
            net[key] = value
    return Source(net, norm.get("mean"), norm.get("std"), dropped)


def read_torchvision(obj, path) -> Source:
    """torchvision's published weights: a plain state dict (e.g. resnet50-0676ba61.pth)."""
    state, dropped = state_dict_of(obj, path, ("state_dict", "model"))
    return Source({_strip(k, "module."): v for k, v in state.items()}, dropped=dropped)


READERS = {"madrylab": read_madrylab, "robustbench": read_robustbench, "torchvision": read_torchvision}


def _head_rows(net: dict, path) -> int:
    for key in ("linear.weight", "fc.weight"):
        if key in net:
            return int(net[key].shape[0])
    raise RobinterpError(f"{path}: no classifier head (linear.weight or fc.weight) among the weights; is --arch right?")


def imagenet_index(path: str | Path) -> list[str]:
    """The wnid of each ImageNet output: sorted wnids of LOC_synset_mapping.txt or of an ILSVRC train folder."""
    from .small_imagenet import WNID, read_synset_mapping

    path = Path(path)
    wnids = (
        sorted(p.name for p in path.iterdir() if WNID.match(p.name))
        if path.is_dir()
        else sorted(read_synset_mapping(path))
    )
    if len(wnids) != 1000:
        raise RobinterpError(
            f"{path}: {len(wnids)} wnids, expected ILSVRC's 1000 (LOC_synset_mapping.txt or "
            "the ILSVRC train folder) to know which output is which class"
        )
    return wnids


def import_published(
    fmt: str,
    arch: str,
    path: str | Path,
    out: str | Path,
    *,
    sha256: str | None,
    mean: list[float] | None,
    std: list[float] | None,
    num_classes: int | None,
    width: float,
    classes: list[str] | None = None,
    class_subset: list[str] | None = None,
    index_wnids: list[str] | None = None,
    log=print,
) -> dict:
    """Convert one published file (`sha256`, `mean`, `std`, `num_classes`, `width`: the keys of its
    checkpoint block); return what was done (the checkpoint's `source` record)."""
    if fmt not in READERS:
        raise RobinterpError(f"--format {fmt!r}: choose one of {list(PUBLISHED_ARCHS)}")
    if arch not in PUBLISHED_ARCHS[fmt]:
        raise RobinterpError(
            f"--arch {arch!r} is not published in the {fmt} format; choose one of {list(PUBLISHED_ARCHS[fmt])}"
        )
    t0 = time.perf_counter()
    obj, digest = load_untrusted(path, sha256)
    log(f"import-checkpoint: {path} sha256 {digest}")
    src = READERS[fmt](obj, path)
    mean, std = _normalisation(src, mean, std, path)
    n = _head_rows(src.net, path)
    if num_classes is not None and num_classes != n:
        raise RobinterpError(f"{path}: the head has {n} classes, --num-classes says {num_classes}")
    model = build_model(arch, n, mean, std, width)
    state = {f"model.{k}": v for k, v in src.net.items()}
    state["normalizer.mean"] = torch.tensor(mean).view(1, -1, 1, 1)
    state["normalizer.std"] = torch.tensor(std).view(1, -1, 1, 1)
    check_weights(state, path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise RobinterpError(
            f"{path}: its {fmt} weights do not fit --arch {arch} (width {width}): {_short_mismatch(e)}"
        ) from None
    if class_subset is not None:
        model, n = _restrict(model, arch, n, class_subset, index_wnids, mean, std, width, path), len(class_subset)
        classes = list(class_subset)
    if classes is not None and len(classes) != n:
        raise RobinterpError(
            f"{path}: the model has {n} classes but the dataset has {len(classes)}; "
            "for an ImageNet model on Small ImageNet set class_subset: wnids"
        )
    record = {
        "format": fmt,
        "arch": arch,
        "file": str(path),
        "sha256": digest,
        "dropped": src.dropped,
        "classes_given": classes is not None,  # else numbered: evaluation compares no class names
        "normalisation": "file" if src.mean is not None else "given",
        "class_subset": class_subset is not None,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    _save_imported(
        out, model, {"name": arch, "width": width, "num_classes": n, "mean": mean, "std": std}, classes, n, record
    )
    log(f"import-checkpoint: {fmt} {arch}, {n} classes, mean {mean} std {std} -> {out} ({record['seconds']} s)")
    return record


def _save_imported(out, model: torch.nn.Module, arch: dict, classes: list[str] | None, n: int, record: dict) -> None:
    """The robinterp checkpoint of an imported model (classes numbered when not given): no training
    epoch or metrics; `record` says where it came from."""
    save_checkpoint(
        out,
        model.eval(),
        arch,
        classes or [str(i) for i in range(n)],
        epoch=None,
        metrics={},
        config={"imported": record},
        source=record,
        provenance=storage.provenance(),
    )


def _normalisation(src: Source, mean, std, path) -> tuple[list[float], list[float]]:
    if (mean is None) != (std is None):
        raise RobinterpError("give --mean and --std together")
    if src.mean is not None and src.std is not None:
        if mean is not None and not (
            torch.allclose(torch.tensor(mean), torch.tensor(src.mean), atol=1e-6)
            and torch.allclose(torch.tensor(std), torch.tensor(src.std), atol=1e-6)
        ):
            raise RobinterpError(
                f"{path}: the file normalises with mean {src.mean} std {src.std}, "
                f"but --mean {mean} --std {std} were given; drop the flags (the file's are used)"
            )
        return src.mean, src.std
    if mean is None:
        raise RobinterpError(
            f"{path}: the file does not hold its input normalisation; give the publisher's "
            "--mean and --std (docs/published_models.md lists them per model)"
        )
    for flag, values in (("--mean", mean), ("--std", std)):
        if len(values) != 3:
            raise RobinterpError(
                f"{flag} {' '.join(map(str, values))}: {len(values)} value(s); give one per RGB "
                "channel (3 values), as the publisher lists them (docs/published_models.md)"
            )
    return [float(m) for m in mean], [float(s) for s in std]


def _short_mismatch(e: RuntimeError) -> str:
    text = str(e).replace("\n\t", " ").replace("\n", " ")
    return text[:600] + ("..." if len(text) > 600 else "")


def _restrict(model, arch, n, wnids, index_wnids, mean, std, width, path):
    """The same network with only the rows of `wnids` in its head: logits restricted to those classes."""
    rows = torch.tensor(_subset_rows(wnids, index_wnids, n, path))
    state = model.state_dict()
    head = "model.fc" if "model.fc.weight" in state else "model.linear"
    state[f"{head}.weight"] = state[f"{head}.weight"][rows].clone()
    state[f"{head}.bias"] = state[f"{head}.bias"][rows].clone()
    sub = build_model(arch, len(wnids), mean, std, width)
    sub.load_state_dict(state, strict=True)
    return sub


# --- a RobustBench zoo entry's file -----------------------------------------------------------------
# `import_zoo` reads a cached zoo file with the allow-list unpickler (robustbench's own loader calls
# `torch.load` without `weights_only`), fits its tensors to the network robustbench's own
# constructor builds (zoo_model.py), and writes a robinterp checkpoint whose `arch` names the entry.
# Fitting follows robustbench's `load_model` / `_safe_load_state_dict`: the tensors may sit under
# `state_dict` (or `last`, then `state_dict`), keys may carry `module.` and `model.` prefixes
# (stripped), and an ImageNet network wrapped with its normaliser takes them under `model.`. A
# normalisation buffer the file lacks (`mu`/`sigma`, `mean`/`std`, `normalize.mean/std`) keeps the
# constructor's value, as robustbench's non-strict load does; any other missing or unknown key is an
# error naming it (robustbench's non-strict load would drop it silently).

INPUT_SIZE = {"cifar10": 32, "cifar100": 32, "imagenet": 224}  # the probe's image side without --classes
NORMALISATION = ("mu", "sigma", "mean", "std")  # buffer names a file may lack (robustbench: non-strict load)


def fit_state_dict(obj, net: nn.Module, path) -> tuple[dict, list[str]]:
    """The file's tensors under `net`'s names, and notes on what was dropped or kept."""
    state, notes = state_dict_of(obj, path, ("state_dict", "last"))
    if "state_dict" in state and isinstance(state["state_dict"], dict):  # robustbench: ['last'] then ['state_dict']
        state, more = state_dict_of(state, path, ("state_dict",))
        notes += more
    ours = net.state_dict()
    fitted, unknown = {}, []
    for key, value in state.items():
        bare = key.removeprefix("module.").removeprefix("model.")
        name = next((k for k in (bare, "model." + bare, key.removeprefix("module.")) if k in ours), None)
        if name is None:
            unknown.append(key)
        elif name in fitted:
            raise RobinterpError(f"{path}: two tensors for {name!r} (one is {key!r}); the file is not a zoo file")
        else:
            fitted[name] = value
    buffers = dict(net.named_buffers())
    missing = [k for k in ours if k not in fitted]
    kept = [k for k in missing if k in buffers and k.rsplit(".", 1)[-1] in NORMALISATION]
    absent = [k for k in missing if k not in kept]
    if unknown or absent:
        problems = [
            f"{what} {keys[:5]}{' ...' if len(keys) > 5 else ''}"
            for what, keys in (("unknown keys", unknown), ("missing keys", absent))
            if keys
        ]
        raise RobinterpError(
            f"{path}: does not fit {type(net).__name__}: {'; '.join(problems)}"
            + "; is it this entry's file (checkpoint.name, dataset, threat_model)?"
        )
    if kept:
        fitted.update({k: ours[k] for k in kept})
        notes.append(f"{', '.join(kept)}: not in the file; the constructor's normalisation, as robustbench loads it")
    return fitted, notes


def _load(net: nn.Module, state: dict, path) -> None:
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:  # shapes: another width or depth than the entry's
        raise RobinterpError(f"{path}: its tensors do not fit {type(net).__name__}: {one_line(e)[:500]}") from None


def _subset_rows(classes, index_wnids, n, path) -> list[int]:
    """The head rows of the dataset's wnids, in its label order (class_subset: wnids)."""
    if classes is None or index_wnids is None or len(index_wnids) != n:
        raise RobinterpError(
            f"{path}: class_subset needs the dataset's classes and the wnid of each of the "
            f"model's {n} outputs (--classes, --imagenet-index: LOC_synset_mapping.txt or the "
            "ILSVRC train folder)"
        )
    where = {w: i for i, w in enumerate(index_wnids)}
    missing = [w for w in classes if w not in where]
    if missing:
        raise RobinterpError(f"{path}: class(es) {missing[:5]} are not among the model's ImageNet classes")
    return [where[w] for w in classes]


def import_zoo(
    block: ZooCheckpoint,
    path: str | Path,
    out: str | Path,
    *,
    sidecar: str | Path | None = None,
    classes: list[str] | None = None,
    image_shape: tuple[int, int, int] | None = None,
    index_wnids: list[str] | None = None,
    log=print,
) -> dict:
    """Convert one cached zoo file into a robinterp checkpoint; return its `source` record."""
    t0 = time.perf_counter()
    entry = entry_of(block, len(classes) if classes else None)
    fetched = read_sidecar(sidecar, block) if sidecar else None
    obj, digest = load_untrusted(path, block.sha256)
    if fetched and fetched["sha256"] != digest:
        raise RobinterpError(
            f"{path}: sha256 {digest} differs from {fetched['sha256']} recorded when it was fetched "
            f"({sidecar}); the file changed since: fetch it again"
        )
    log(f"import-checkpoint: {path} sha256 {digest}")
    net = entry.build().eval()
    state, notes = fit_state_dict(obj, net, path)
    _load(net, state, path)
    shape = tuple(image_shape or (3, INPUT_SIZE[block.dataset], INPUT_SIZE[block.dataset]))
    head, n = find_head(net, shape)
    if block.class_subset == "wnids":
        keep_rows(net, head, _subset_rows(classes, index_wnids, n, path))
        n = len(classes)
    if classes is not None and len(classes) != n:
        raise RobinterpError(
            f"{path}: {block.name} has {n} classes but the dataset has {len(classes)}; use a "
            f"{block.dataset} dataset (an ImageNet entry on Small ImageNet: class_subset: wnids)"
        )
    record = {
        "source": "robustbench",
        "name": block.name,
        "dataset": block.dataset,
        "threat_model": block.threat_model,
        "stand_in": entry.stand_in,
        "file": str(path),
        "sha256": digest,
        "fetched": fetched,
        "robustbench_version": robustbench_version(),
        "architecture": type(net).__name__,
        "head": head,
        "normalisation": normalisation_of(net),
        "preprocessing": entry.preprocessing,
        "class_subset": block.class_subset,
        "notes": notes,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    arch = {
        "name": ZOO_ARCH,
        "zoo": {k: record[k] for k in ("name", "dataset", "threat_model", "stand_in")},
        "head": head,
        "num_classes": n,
        "image_shape": list(shape),
    }
    _save_imported(out, ZooClassifier(net, head, shape), arch, classes, n, record)
    log(
        f"import-checkpoint: robustbench {block.dataset} {block.threat_model} {block.name} ({record['architecture']}, "
        f"head {head}, {n} classes) -> {out} ({record['seconds']} s)"
    )
    return record
