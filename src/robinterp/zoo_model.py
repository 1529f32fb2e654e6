"""RobustBench networks as robinterp classifiers: import a zoo file, rebuild it from a checkpoint.

`import_zoo` reads a cached zoo file with the allow-list unpickler (robustbench's own loader
calls `torch.load` without `weights_only`), fits its tensors to the network robustbench's own
constructor builds, and writes a robinterp checkpoint whose `arch` names the entry
({"name": "robustbench", "zoo": {name, dataset, threat_model, stand_in}, "head", ...}), so
`checkpoints.load_model` rebuilds it offline from the checkpoint and the robustbench package.

Fitting follows robustbench's `load_model` / `_safe_load_state_dict`: the tensors may sit under
`state_dict` (or `last`, then `state_dict`), keys may carry `module.` and `model.` prefixes
(stripped), and an ImageNet network wrapped with its normaliser takes them under `model.`. A
normalisation buffer the file lacks (`mu`/`sigma`, `mean`/`std`, `normalize.mean/std`) keeps the
constructor's value, as robustbench's non-strict load does; any other missing or unknown key is
an error naming it (robustbench's non-strict load would drop it silently).

The network is robustbench's module unchanged: pixels in [0, 1] in, logits out, its publisher's
normalisation inside. `ZooClassifier` adds robinterp's interface: `features(x)` = R(x), the input
of the linear layer whose output is the network's output (found at import by one probe pass and
recorded as `head`). Randomisation cascades over the network's top-level modules
(randomisation.cascade_stages).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import nn

from . import storage
from .checkpoints import save_checkpoint
from .errors import RobinterpError
from .published import state_dict_of
from .safe_unpickle import load_untrusted
from .zoo import ZooCheckpoint, entry_of, read_sidecar, robustbench_version

ZOO_ARCH = "robustbench"  # arch["name"] of a checkpoint imported from the zoo
INPUT_SIZE = {"cifar10": 32, "cifar100": 32, "imagenet": 224}  # the probe's image side without --classes
NORMALISATION = ("mu", "sigma", "mean", "std")  # buffer names a file may lack (robustbench: non-strict load)


class ZooClassifier(nn.Module):
    """A zoo network with robinterp's interface: forward = its logits, `features(x)` = R(x)."""

    def __init__(self, net: nn.Module, head: str, image_shape: tuple[int, ...]):
        super().__init__()
        self.net = net
        self.head_name = head  # the final linear layer, by its module name in `net`
        self.image_shape = tuple(image_shape)  # (C, H, W) it was imported for

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._logits(x)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """R(x): what the final linear layer receives (the penultimate representation), N x k."""
        seen = []
        hook = self.net.get_submodule(self.head_name).register_forward_pre_hook(lambda m, args: seen.append(args[0]))
        try:
            self._logits(x)
        finally:
            hook.remove()
        return seen[-1]

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        """The network's output, or a one-line error where another image size than its own breaks it
        (a CIFAR WideResNet pools with a fixed 8 x 8 window: too small fails, too large mixes rows)."""
        other = tuple(x.shape[1:]) != self.image_shape
        try:
            out = self.net(x)
        except RuntimeError as e:
            if not other:
                raise
            raise RobinterpError(f"{type(self.net).__name__} fails on {tuple(x.shape[1:])} images ({_line(e)[:120]}); "
                                 f"it was imported for {self.image_shape}: use its dataset's image size") from None
        if out.shape[0] != x.shape[0]:
            raise RobinterpError(f"{type(self.net).__name__} returned {out.shape[0]} rows for {x.shape[0]} images of "
                                 f"{tuple(x.shape[1:])}; it was imported for {self.image_shape}: use its dataset's "
                                 "image size")
        return out


def _line(e: Exception) -> str:
    return " ".join(str(e).split())


def find_head(net: nn.Module, image_shape: tuple[int, ...]) -> tuple[str, int]:
    """(name of the linear layer whose output is the network's output, number of outputs), from
    one pass of a blank image; refused where the output is not a linear layer's."""
    calls = []
    hooks = [m.register_forward_hook(lambda mod, args, out, name=name: calls.append((name, out)))
             for name, m in net.named_modules() if isinstance(m, nn.Linear)]
    x = torch.zeros(1, *image_shape)
    try:
        with torch.no_grad():
            out = net(x)
    except RuntimeError as e:  # a pooling window larger than the image, a wrong channel count
        raise RobinterpError(f"{type(net).__name__} cannot take the dataset's {tuple(image_shape)} images "
                             f"({_line(e)[:160]}); CIFAR entries need 32 x 32") from None
    finally:
        for h in hooks:
            h.remove()
    if out.shape[0] != 1:
        raise RobinterpError(f"{type(net).__name__} returned {out.shape[0]} rows for one {tuple(image_shape)} image: "
                             "it pools with a fixed window; CIFAR entries need 32 x 32")
    if not calls or calls[-1][1] is not out:
        raise RobinterpError(f"{type(net).__name__}: its output is not a linear layer's, so R(x) (the input of the "
                             "final linear layer) is undefined; not supported")
    return calls[-1][0], int(out.shape[1])


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
        problems = [f"{what} {keys[:5]}{' ...' if len(keys) > 5 else ''}"
                    for what, keys in (("unknown keys", unknown), ("missing keys", absent)) if keys]
        raise RobinterpError(f"{path}: does not fit {type(net).__name__}: {'; '.join(problems)}"
                             + "; is it this entry's file (checkpoint.name, dataset, threat_model)?")
    if kept:
        fitted.update({k: ours[k] for k in kept})
        notes.append(f"{', '.join(kept)}: not in the file; the constructor's normalisation, as robustbench loads it")
    return fitted, notes


def _load(net: nn.Module, state: dict, path) -> None:
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:  # shapes: another width or depth than the entry's
        raise RobinterpError(f"{path}: its tensors do not fit {type(net).__name__}: {_line(e)[:500]}") from None


def normalisation_of(net: nn.Module) -> dict | None:
    """The mean/std buffers the network normalises with (for the record), or None."""
    buffers = {name.rsplit(".", 1)[-1]: b for name, b in net.named_buffers()}
    for mean, std in (("mu", "sigma"), ("mean", "std")):
        if mean in buffers and std in buffers:
            return {k: [float(v) for v in buffers[b].reshape(-1)] for k, b in (("mean", mean), ("std", std))}
    return None


def keep_rows(net: nn.Module, head: str, rows: list[int]) -> None:
    """Replace the head by one holding only `rows` of its outputs (restricting the logits to them)."""
    old = net.get_submodule(head)
    new = nn.Linear(old.in_features, len(rows), bias=old.bias is not None)
    if rows:
        with torch.no_grad():
            new.weight.copy_(old.weight[rows])
            if old.bias is not None:
                new.bias.copy_(old.bias[rows])
    _replace(net, head, new)


def _replace(net: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(net.get_submodule(parent) if parent else net, child, module)


def _subset_rows(classes, index_wnids, n, path) -> list[int]:
    """The head rows of the dataset's wnids, in its label order (class_subset: wnids)."""
    if classes is None or index_wnids is None or len(index_wnids) != n:
        raise RobinterpError(f"{path}: class_subset needs the dataset's classes and the wnid of each of the "
                             f"model's {n} outputs (--classes, --imagenet-index)")
    where = {w: i for i, w in enumerate(index_wnids)}
    missing = [w for w in classes if w not in where]
    if missing:
        raise RobinterpError(f"{path}: class(es) {missing[:5]} are not among the model's ImageNet classes")
    return [where[w] for w in classes]


def import_zoo(block: ZooCheckpoint, path: str | Path, out: str | Path, *, sidecar: str | Path | None = None,
               classes: list[str] | None = None, image_shape: tuple[int, int, int] | None = None,
               index_wnids: list[str] | None = None, log=print) -> dict:
    """Convert one cached zoo file into a robinterp checkpoint; return its `source` record."""
    t0 = time.perf_counter()
    entry = entry_of(block, len(classes) if classes else None)
    fetched = read_sidecar(sidecar, block) if sidecar else None
    obj, digest = load_untrusted(path, block.sha256)
    if fetched and fetched["sha256"] != digest:
        raise RobinterpError(f"{path}: sha256 {digest} differs from {fetched['sha256']} recorded when it was fetched "
                             f"({sidecar}); the file changed since: fetch it again")
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
        raise RobinterpError(f"{path}: {block.name} has {n} classes but the dataset has {len(classes)}; use a "
                             f"{block.dataset} dataset (an ImageNet entry on Small ImageNet: class_subset: wnids)")
    record = {"source": "robustbench", "name": block.name, "dataset": block.dataset, "threat_model": block.threat_model,
              "stand_in": entry.stand_in, "file": str(path), "sha256": digest, "fetched": fetched,
              "robustbench_version": robustbench_version(), "architecture": type(net).__name__, "head": head,
              "normalisation": normalisation_of(net), "preprocessing": entry.preprocessing,
              "class_subset": block.class_subset, "notes": notes,
              "seconds": round(time.perf_counter() - t0, 2)}
    arch = {"name": ZOO_ARCH, "zoo": {k: record[k] for k in ("name", "dataset", "threat_model", "stand_in")},
            "head": head, "num_classes": n, "image_shape": list(shape)}
    save_checkpoint(out, ZooClassifier(net, head, shape).eval(), arch, classes or [str(i) for i in range(n)],
                    epoch=None, metrics={}, config={"imported": record}, source=record, provenance=storage.provenance())
    log(f"import-checkpoint: robustbench {block.dataset} {block.threat_model} {block.name} ({record['architecture']}, "
        f"head {head}, {n} classes) -> {out} ({record['seconds']} s)")
    return record


def zoo_classifier(arch: dict) -> ZooClassifier:
    """The untrained network a zoo checkpoint's `arch` names (checkpoints.load_model fills its weights)."""
    zoo = arch["zoo"]
    block = ZooCheckpoint(zoo["name"], zoo["dataset"], zoo["threat_model"], None, None, zoo.get("stand_in"))
    net = entry_of(block, arch["num_classes"]).build()
    head = net.get_submodule(arch["head"])
    if head.out_features != arch["num_classes"]:  # imported with class_subset: the kept rows are in the checkpoint
        _replace(net, arch["head"], nn.Linear(head.in_features, arch["num_classes"], bias=head.bias is not None))
    return ZooClassifier(net, arch["head"], arch["image_shape"])
