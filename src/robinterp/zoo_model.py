"""RobustBench networks as robinterp classifiers, rebuilt from a checkpoint.

A zoo file imported by `published.import_zoo` becomes a robinterp checkpoint whose `arch` names
the entry ({"name": "robustbench", "zoo": {name, dataset, threat_model, stand_in}, "head", ...}),
so `checkpoints.load_model` rebuilds it offline (`zoo_classifier`) from the checkpoint and the
robustbench package.

The network is robustbench's module unchanged: pixels in [0, 1] in, logits out, its publisher's
normalisation inside. `ZooClassifier` adds robinterp's interface: `features(x)` = R(x), the input
of the linear layer whose output is the network's output (found at import by one probe pass and
recorded as `head`). Randomisation cascades over the network's top-level modules
(randomisation.cascade_stages).
"""

from __future__ import annotations

import torch
from torch import nn

from .errors import RobinterpError
from .zoo import ZooCheckpoint, entry_of

ZOO_ARCH = "robustbench"  # arch["name"] of a checkpoint imported from the zoo


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
            raise RobinterpError(
                f"{type(self.net).__name__} fails on {tuple(x.shape[1:])} images ({one_line(e)[:120]}); "
                f"it was imported for {self.image_shape}: use its dataset's image size"
            ) from None
        if out.shape[0] != x.shape[0]:
            raise RobinterpError(
                f"{type(self.net).__name__} returned {out.shape[0]} rows for {x.shape[0]} images of "
                f"{tuple(x.shape[1:])}; it was imported for {self.image_shape}: use its dataset's "
                "image size"
            )
        return out


def one_line(e: Exception) -> str:
    return " ".join(str(e).split())


def find_head(net: nn.Module, image_shape: tuple[int, ...]) -> tuple[str, int]:
    """(name of the linear layer whose output is the network's output, number of outputs), from
    one pass of a blank image; refused where the output is not a linear layer's."""
    calls = []
    hooks = [
        m.register_forward_hook(lambda mod, args, out, name=name: calls.append((name, out)))
        for name, m in net.named_modules()
        if isinstance(m, nn.Linear)
    ]
    x = torch.zeros(1, *image_shape)
    try:
        with torch.no_grad():
            out = net(x)
    except RuntimeError as e:  # a pooling window larger than the image, a wrong channel count
        raise RobinterpError(
            f"{type(net).__name__} cannot take the dataset's {tuple(image_shape)} images "
            f"({one_line(e)[:160]}); CIFAR entries need 32 x 32"
        ) from None
    finally:
        for h in hooks:
            h.remove()
    if out.shape[0] != 1:
        raise RobinterpError(
            f"{type(net).__name__} returned {out.shape[0]} rows for one {tuple(image_shape)} image: "
            "it pools with a fixed window; CIFAR entries need 32 x 32"
        )
    if not calls or calls[-1][1] is not out:
        raise RobinterpError(
            f"{type(net).__name__}: its output is not a linear layer's, so R(x) (the input of the "
            "final linear layer) is undefined; not supported"
        )
    return calls[-1][0], int(out.shape[1])


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


def zoo_classifier(arch: dict) -> ZooClassifier:
    """The untrained network a zoo checkpoint's `arch` names (checkpoints.load_model fills its weights)."""
    zoo = arch["zoo"]
    block = ZooCheckpoint(zoo["name"], zoo["dataset"], zoo["threat_model"], None, None, zoo.get("stand_in"))
    net = entry_of(block, arch["num_classes"]).build()
    head = net.get_submodule(arch["head"])
    if head.out_features != arch["num_classes"]:  # imported with class_subset: the kept rows are in the checkpoint
        _replace(net, arch["head"], nn.Linear(head.in_features, arch["num_classes"], bias=head.bias is not None))
    return ZooClassifier(net, arch["head"], arch["image_shape"])
