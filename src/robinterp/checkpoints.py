"""Self-describing checkpoints: plain tensors and plain data, one loader for every verb.

A checkpoint is a dict::

    {"format": "robinterp-checkpoint/1", "model": state_dict, "arch": {...}, "classes": [...],
     "config": resolved variant config, "metrics": {...}, "epoch": int,
     "data_sha256": {...}, "provenance": {...}}

It is written atomically and read with `torch.load(weights_only=True)` and `strict=True`;
nothing is pickled, so a checkpoint from an untrusted source cannot run code.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import torch

from . import storage
from .errors import RobinterpError
from .models import Classifier, build_model
from .safe_unpickle import is_safetensors, printable, refuse_zip_bomb

FORMAT = "robinterp-checkpoint/1"


def save_checkpoint(path: str | Path, model: Classifier, arch: dict, classes: list[str], **meta) -> None:
    """`arch` = {"name", "width", "num_classes", "mean", "std"}: enough to rebuild the model (a zoo
    network's: {"name": "robustbench", "zoo", "head", "num_classes"}, zoo_model.py)."""
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    payload = {"format": FORMAT, "model": state, "arch": dict(arch), "classes": list(classes), **meta}
    with storage.atomic_path(path) as tmp:
        torch.save(payload, tmp)


def read_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise RobinterpError(f"{path}: checkpoint not found; train it first (rule train)")
    if is_safetensors(path):
        raise RobinterpError(
            f"{path}: a safetensors file (weights only, without robinterp's record of the "
            "architecture and classes); import it first: robinterp import-checkpoint --format "
            "robustbench|torchvision|madrylab --arch ... --input FILE --out model.pt "
            "(docs/published_models.md)"
        )
    refuse_zip_bomb(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:  # torch's weights_only loader refused it before calling anything
        called = re.search(r"GLOBAL (\S+) was not an allowed global", str(e))
        reason = re.search(r"WeightsUnpickler error: ([^\n]*)", str(e))  # not its advice to load it unsafely
        what = (
            f"calls {printable(called.group(1))}"
            if called
            else f"holds more than tensors and plain data ({printable(reason.group(1) if reason else '')[:120]})"
        )
        raise RobinterpError(
            f"{path}: refused: the pickle {what}, which a robinterp checkpoint never holds; nothing "
            "was run. A published checkpoint is read by robinterp import-checkpoint "
            "(docs/published_models.md)"
        ) from None
    except Exception as e:  # truncated zip, wrong file type
        raise RobinterpError(
            f"{path}: cannot read checkpoint ({type(e).__name__}: {printable(str(e))[:200]}); "
            "it is corrupt or not a robinterp checkpoint: delete it and retrain"
        ) from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise RobinterpError(
            f"{path}: not a robinterp checkpoint (no format {FORMAT!r}); "
            "import published ones first: robinterp import-checkpoint (docs/published_models.md)"
        )
    return payload


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[Classifier, dict]:
    """Rebuild the model of a checkpoint in eval mode; return it with the checkpoint's metadata."""
    payload = read_checkpoint(path)
    arch = payload["arch"]
    model = _untrained(arch)
    try:
        model.load_state_dict(payload["model"], strict=True)
    except RuntimeError as e:
        raise RobinterpError(
            f"{path}: weights do not match architecture {arch['name']} "
            f"({arch.get('zoo') or 'width ' + str(arch.get('width', 1.0))}): {str(e)[:400]}"
        ) from e
    check_weights(payload["model"], path)
    meta = {k: v for k, v in payload.items() if k != "model"}
    return model.to(device).eval(), meta


def load_fitting(path: str | Path, device: str | torch.device, *split_paths) -> tuple[Classifier, dict, list]:
    """The model of a checkpoint (`load_model`) and the packed splits it runs on, each checked to fit it."""
    from .data import load_split

    model, meta = load_model(path, device)
    splits = [load_split(p) for p in split_paths]
    for split in splits:
        check_fits(meta, split, path)
    return model, meta, splits


def _untrained(arch: dict) -> torch.nn.Module:
    """The network `arch` describes: a registered architecture, or a RobustBench zoo entry (its
    constructor, from the robustbench package)."""
    if arch["name"] == "robustbench":
        from .zoo_model import zoo_classifier

        return zoo_classifier(arch)
    return build_model(arch["name"], arch["num_classes"], arch["mean"], arch["std"], arch.get("width", 1.0))


def check_weights(state: dict, where) -> None:
    """Refuse weights that hold NaN or infinite values, and a normaliser std that is not > 0:
    such a model evaluates to chance accuracy without a word."""
    bad = [k for k, v in state.items() if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise RobinterpError(
            f"{where}: {len(bad)} weight tensor(s) hold NaN or infinite values ({', '.join(bad[:3])}"
            f"{', ...' if len(bad) > 3 else ''}): a diverged training run or a damaged file; "
            "retrain it, or download it again"
        )
    std = state.get("normalizer.std")
    if std is not None and not bool((std > 0).all()):
        raise RobinterpError(
            f"{where}: input normalisation std {[round(float(v), 6) for v in std.reshape(-1)]} has a "
            "value <= 0 (division by zero); give the std of each channel (model.std, --std)"
        )


def check_fits(meta: dict, split, checkpoint) -> None:
    """Refuse a split the model was not made for: another class count or class names, other
    image channels, or (for a trained model) another image size. Else the numbers are wrong
    without a word (a 10-class model on 3-class data scores 0)."""
    arch = meta["arch"]
    n, classes = arch["num_classes"], list(meta.get("classes") or [])
    named = (meta.get("source") or {}).get("classes_given", True)  # imported without --classes: numbered
    trained_shape = arch.get("image_shape")  # imported models record none: they take any size
    size = lambda shape: "x".join(map(str, shape))  # C x H x W
    problems = []
    if n != split.num_classes:
        problems.append(f"the model has {n} classes, the data {split.num_classes}")
    elif named and classes != split.classes:
        diff = [f"{a!r} vs {b!r}" for a, b in zip(classes, split.classes) if a != b]
        problems.append(f"other class names ({', '.join(diff[:3])}{', ...' if len(diff) > 3 else ''})")
    # channels: the normaliser's, or a zoo model's fixed input shape (its normalisation is inside its network)
    channels = len(arch["mean"]) if arch.get("mean") is not None else (trained_shape or split.image_shape)[0]
    if channels != split.image_shape[0]:
        problems.append(f"the model takes {channels}-channel images, the data has {split.image_shape[0]}")
    elif trained_shape and list(trained_shape) != list(split.image_shape):
        problems.append(f"the model was trained on {size(trained_shape)} images, the data is {size(split.image_shape)}")
    if problems:
        raise RobinterpError(
            f"{checkpoint} does not fit {split.path}: {'; '.join(problems)}. Give the split of the "
            "dataset the model was made for, or the model of this dataset"
        )


def remap_madry_state_dict(state: dict) -> dict:
    """MadryLab robustness checkpoint['model'] -> our Classifier state_dict keys.

    robustness stores `module.normalizer.new_mean/new_std`, `module.model.*` and a duplicate
    `module.attacker.normalize.*` / `module.attacker.model.*` copy. Every key is used or dropped on
    purpose: the attacker copy must equal the model's (else the file is not what it claims), then
    it is dropped; any other key is an error.
    """
    out, attacker = {}, {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        if key.startswith("attacker."):
            key = key.removeprefix("attacker.")
            attacker[key.replace("normalize.", "normalizer.", 1) if key.startswith("normalize.") else key] = value
        elif key.startswith("normalizer.new_"):
            out["normalizer." + key.removeprefix("normalizer.new_")] = value.reshape(1, -1, 1, 1)
        elif key.startswith("model."):
            out[key] = value
        else:
            raise RobinterpError(
                f"MadryLab state dict: unexpected key {key!r}; expected module.model.*, "
                "module.normalizer.new_mean/new_std and the module.attacker.* copy"
            )
    for key, value in attacker.items():
        mine = "normalizer." + key.removeprefix("normalizer.new_") if key.startswith("normalizer.new_") else key
        if mine not in out or not torch.equal(value.reshape(out[mine].shape), out[mine]):
            raise RobinterpError(
                f"MadryLab state dict: module.attacker.{key} "
                f"{'has no model copy' if mine not in out else 'differs from the model copy'}; "
                "the attacker duplicate must equal the model (is the file edited or corrupt?)"
            )
    return out
