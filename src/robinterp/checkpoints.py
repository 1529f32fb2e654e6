"""Self-describing checkpoints: plain tensors and plain data, one loader for every verb.

A checkpoint is a dict::

    {"format": "robinterp-checkpoint/1", "model": state_dict, "arch": {...}, "classes": [...],
     "config": resolved variant config, "metrics": {...}, "epoch": int,
     "data_sha256": {...}, "provenance": {...}}

It is written atomically and read with `torch.load(weights_only=True)` and `strict=True`;
nothing is pickled, so a checkpoint from an untrusted source cannot run code.
"""

from __future__ import annotations

from pathlib import Path

import torch

from . import storage
from .errors import RobinterpError
from .models import Classifier, build_model

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
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, pickle of objects, wrong file type
        raise RobinterpError(f"{path}: cannot read checkpoint ({type(e).__name__}: {str(e)[:200]}); "
                             "it is corrupt or not a robinterp checkpoint: delete it and retrain") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise RobinterpError(f"{path}: not a robinterp checkpoint (no format {FORMAT!r}); "
                             "import published ones first: robinterp import-checkpoint (docs/published_models.md)")
    return payload


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[Classifier, dict]:
    """Rebuild the model of a checkpoint in eval mode; return it with the checkpoint's metadata."""
    payload = read_checkpoint(path)
    arch = payload["arch"]
    model = _untrained(arch)
    try:
        model.load_state_dict(payload["model"], strict=True)
    except RuntimeError as e:
        raise RobinterpError(f"{path}: weights do not match architecture {arch['name']} "
                             f"({arch.get('zoo') or 'width ' + str(arch.get('width', 1.0))}): {str(e)[:400]}") from e
    meta = {k: v for k, v in payload.items() if k != "model"}
    return model.to(device).eval(), meta


def _untrained(arch: dict) -> torch.nn.Module:
    """The network `arch` describes: a registered architecture, or a RobustBench zoo entry (its
    constructor, from the robustbench package)."""
    if arch["name"] == "robustbench":
        from .zoo_model import zoo_classifier

        return zoo_classifier(arch)
    return build_model(arch["name"], arch["num_classes"], arch["mean"], arch["std"], arch.get("width", 1.0))


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
            raise RobinterpError(f"MadryLab state dict: unexpected key {key!r}; expected module.model.*, "
                                 "module.normalizer.new_mean/new_std and the module.attacker.* copy")
    for key, value in attacker.items():
        mine = "normalizer." + key.removeprefix("normalizer.new_") if key.startswith("normalizer.new_") else key
        if mine not in out or not torch.equal(value.reshape(out[mine].shape), out[mine]):
            raise RobinterpError(f"MadryLab state dict: module.attacker.{key} "
                                 f"{'has no model copy' if mine not in out else 'differs from the model copy'}; "
                                 "the attacker duplicate must equal the model (is the file edited or corrupt?)")
    return out
