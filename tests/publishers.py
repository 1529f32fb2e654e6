"""Genuine-format published checkpoints, written by the publishers' own code (random weights).

MadryLab files come from robustness's `AttackerModel` saved the way its train.py saves them
(`torch.save(sd_info, path, pickle_module=dill)`) and are read back by its own
`make_and_restore_model`; RobustBench files from its model-zoo classes, read back by its own
`load_model`; torchvision files from `torchvision.models`. The reference logits are those of the
publisher's model as the publisher's loader builds it.

robustness 1.2.1 imports `torchvision.models.utils`, which newer torchvision lacks (only its
`load_state_dict_from_url` is used, which torch.hub has), so `import_publishers()` puts that in
`sys.modules` first; robustbench 1.1.1 is imported through robinterp's own shim
(`robinterp.zoo.import_robustbench`: `autoattack` = pyautoattack, `pkg_resources.resource_filename`).
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import torch

CIFAR_MEAN, CIFAR_STD = [0.4914, 0.4822, 0.4465], [0.2023, 0.1994, 0.2010]  # robustness / Engstrom2019
RICE_STD = [0.2471, 0.2435, 0.2616]  # RobustBench Rice2020OverfittingNetL2
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def import_publishers():
    if "torchvision.models.utils" not in sys.modules:
        sys.modules["torchvision.models.utils"] = types.SimpleNamespace(
            load_state_dict_from_url=torch.hub.load_state_dict_from_url
        )
    pytest.importorskip("robustness.attacker", reason="test dependency: pip install -e '.[dev]'")
    from robinterp.zoo import import_robustbench

    import_robustbench()


def checkpoint_settings(**block) -> list[str]:
    """import-checkpoint's --settings for the variant's checkpoint block `block`."""
    import json

    return ["--settings", json.dumps({"variant.checkpoint": block})]


def import_file(fmt: str, arch: str, path, out, **given) -> dict:
    """`published.import_published` with the checkpoint block's schema defaults for the keys a test leaves out."""
    from robinterp.published import import_published
    from robinterp.settings import default

    block = {key: default(f"checkpoint.{key}") for key in ("sha256", "mean", "std", "num_classes", "width")}
    return import_published(fmt, arch, path, out, **{**block, **given})


def perturb(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random BatchNorm statistics and affine weights, so a wrong mapping shows in the logits."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.2)
            elif isinstance(m, torch.nn.Linear):
                m.weight.mul_(10)
    return net.eval()


def _robustness_dataset(kind: str):
    from robustness import datasets

    return datasets.CIFAR("/unused") if kind == "cifar" else datasets.ImageNet("/unused")


def madrylab_file(path: Path, kind: str, arch: str, key: str = "model", schedule=None, legacy: bool = False) -> Path:
    """robustness train.py's checkpoint of `arch` (its name in robustness: resnet18, resnet50, ...);
    `legacy`: torch's pre-1.6 file layout, as the CIFAR files (saved with torch 1.1) have."""
    import dill
    from robustness.attacker import AttackerModel

    ds = _robustness_dataset(kind)
    model = AttackerModel(perturb(ds.get_model(arch, False)), ds)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sd_info = {
        key: torch.nn.DataParallel(model).state_dict(),
        "optimizer": opt.state_dict(),
        "schedule": schedule if schedule is not None else torch.optim.lr_scheduler.StepLR(opt, 50).state_dict(),
        "epoch": 150,
        "amp": None,
    }
    torch.save(sd_info, path, pickle_module=dill, _use_new_zipfile_serialization=not legacy)
    return path


def madrylab_reference(path: Path, kind: str, arch: str, monkeypatch):
    """The model robustness's own loader restores from `path` (its .cuda() made a no-op on CPU)."""
    from robustness.model_utils import make_and_restore_model

    monkeypatch.setattr(torch.nn.Module, "cuda", lambda self, *a, **k: self)
    model, _ = make_and_restore_model(arch=arch, dataset=_robustness_dataset(kind), resume_path=str(path))
    model.eval()
    return lambda x: model(x, with_image=False)


def robustbench_file(
    model_dir: Path,
    name: str,
    net: torch.nn.Module,
    wrap: bool,
    keep_norm: bool,
    dataset: str = "cifar10",
    threat: str = "L2",
) -> Path:
    """A RobustBench model-zoo file where robustbench's load_model looks for it."""
    path = model_dir / dataset / threat / f"{name}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    state = torch.nn.DataParallel(net).state_dict()
    if (
        not keep_norm
    ):  # Engstrom2019Robustness / Rice2020Overfitting files lack mu/sigma (robustbench loads them non-strictly)
        state = {
            k: v
            for k, v in state.items()
            if k.rsplit(".", 1)[-1] not in ("mu", "sigma") and not k.startswith("module.normalize.")
        }
    torch.save({"state_dict": state} if wrap else state, path)
    return path


def robustbench_reference(model_dir: Path, name: str, dataset: str = "cifar10", threat: str = "L2"):
    from robustbench.utils import load_model

    return load_model(name, model_dir=str(model_dir), dataset=dataset, threat_model=threat).eval()


# --- RobustBench model-zoo files, named as the zoo names them -----------------------------------

ZOO_LAYOUTS = {  # how the zoo's files hold a network's tensors; robustbench.utils.load_model reads each
    "plain": lambda sd: sd,
    "state_dict": lambda sd: {"state_dict": sd},
    "module": lambda sd: {f"module.{k}": v for k, v in sd.items()},  # saved from DataParallel
    "state_dict_module": lambda sd: {"state_dict": {f"module.{k}": v for k, v in sd.items()}},
    "module_model": lambda sd: {"state_dict": {f"module.model.{k}": v for k, v in sd.items()}},
}


def zoo_file(
    cache: Path,
    name: str,
    net: torch.nn.Module,
    layout: str,
    dataset: str = "cifar10",
    threat: str = "L2",
    drop_normalisation: bool = False,
) -> Path:
    """`net`'s tensors in one of the zoo's layouts, at cache/<dataset>/<threat>/<name>.pt, where both
    robustbench's load_model and robinterp's cache look. `drop_normalisation`: without the mu/sigma
    buffers (the Engstrom2019Robustness / Rice2020Overfitting files lack them)."""
    path = cache / dataset / threat / f"{name}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        k: v
        for k, v in net.state_dict().items()
        if not (drop_normalisation and k.rsplit(".", 1)[-1] in ("mu", "sigma"))
    }
    torch.save(ZOO_LAYOUTS[layout](state), path)
    return path


def stand_in_block(name: str, architecture: str, **spec) -> dict:
    """A variant's checkpoint block for a tiny stand-in of a zoo architecture family."""
    return {
        "source": "robustbench",
        "name": name,
        "dataset": "cifar10",
        "threat_model": "L2",
        "stand_in": {"architecture": architecture, **spec},
    }


def stand_in_file(cache: Path, block: dict, num_classes: int = 10, seed: int = 0) -> tuple[Path, Path]:
    """What rule download_robustbench leaves in the cache for a stand-in: its file (random weights,
    the zoo's `state_dict` + `module.` layout) and its sidecar. Returns (file, sidecar)."""
    from robinterp.config import robustbench_file
    from robinterp.zoo import ZooCheckpoint, entry_of, write_sidecar

    entry = entry_of(ZooCheckpoint.from_dict(block, "checkpoint"), num_classes)
    path = Path(robustbench_file({"robustbench_cache": str(cache)}, block))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    torch.save(ZOO_LAYOUTS["state_dict_module"](perturb(entry.build(), seed).state_dict()), path)
    sidecar = Path(f"{path}.json")
    write_sidecar(entry, path, sidecar, url=None, via="written by tests/publishers.py (a stand-in)")
    return path, sidecar
