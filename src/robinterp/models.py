"""Model registry: name -> constructor. Every model takes pixels in [0, 1] and normalises inside.

`resnet18_cifar` is the CIFAR ResNet18 (3x3 stride-1 stem, no max-pool) with the parameter
names of MadryLab robustness's `cifar_models/resnet.py` (under the `model.` prefix), so its
checkpoints load after stripping `module.` (see `checkpoints.remap_madry_state_dict`).
`resnet50` is the ImageNet ResNet50 with torchvision's parameter names.
`width` multiplies every channel count (0.125 gives tiny demo models).

Architectures of published checkpoints (`robinterp import-checkpoint`, docs/published_models.md),
each with its publisher's parameter names so the weights load with `strict=True`:
`resnet50_cifar` (robustness `cifar_models` ResNet50), `preact_resnet18` (RobustBench's
PreActResNet18), and torchvision's `resnet18`, `resnet50`, `wide_resnet50_2`.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .errors import RobinterpError


class Normalize(nn.Module):
    """(x - mean) / std with per-dataset buffers, so attacks work in [0, 1] pixel space."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


class Classifier(nn.Module):
    """normaliser -> backbone (R(x), the penultimate representation) -> linear head."""

    def __init__(self, backbone: nn.Module, mean, std):
        super().__init__()
        self.normalizer = Normalize(mean, std)
        self.model = backbone

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """R(x): the penultimate representation (after global average pooling), N x k."""
        return self.model.features(self.normalizer(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.head(self.features(x))


# --- CIFAR ResNet (names as MadryLab robustness cifar_models/resnet.py) ---------------------


def _projection(in_planes: int, out: int, stride: int) -> nn.Sequential | None:
    """A residual block's projection shortcut (1x1 conv + BatchNorm) where the shape changes, else None."""
    if stride == 1 and in_planes == out:
        return None
    return nn.Sequential(nn.Conv2d(in_planes, out, 1, stride, bias=False), nn.BatchNorm2d(out))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions and the residual connection (ResNet18/34). Publishers name the
    projection shortcut differently: `shortcut` in the CIFAR ResNets (robustness, RobustBench),
    `downsample` in torchvision (ImageNetBasicBlock); the weights are the same."""

    expansion = 1
    shortcut_name = "shortcut"

    def __init__(self, in_planes, planes, stride=1, base_width=64):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        setattr(self, self.shortcut_name, _projection(in_planes, planes * self.expansion, stride))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + _identity(self, x))


class Bottleneck(nn.Module):
    """1x1, 3x3 (carrying the stride), 1x1 convolutions and the residual connection (ResNet50);
    the middle width scales with `base_width` (wide_resnet50_2: 128). torchvision's names."""

    expansion = 4
    shortcut_name = "downsample"

    def __init__(self, in_planes, planes, stride=1, base_width=64):
        super().__init__()
        out = planes * self.expansion
        mid = int(planes * base_width / 64)
        self.conv1 = nn.Conv2d(in_planes, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        setattr(self, self.shortcut_name, _projection(in_planes, out, stride))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        return F.relu(self.bn3(self.conv3(out)) + _identity(self, x))


class CifarBottleneck(Bottleneck):
    """robustness `cifar_models/resnet.py` Bottleneck: the same block, its projection named `shortcut`."""

    shortcut_name = "shortcut"


def _identity(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The residual branch's input: x, or its projection where the block has one."""
    projection = getattr(block, block.shortcut_name)
    return x if projection is None else projection(x)


class CifarResNet(nn.Module):
    def __init__(self, num_blocks, num_classes, width=1.0, in_channels=3, block=BasicBlock):
        super().__init__()
        self.block = block
        widths = [max(1, int(w * width)) for w in (64, 128, 256, 512)]
        self.in_planes = widths[0]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.layer1 = self._layer(widths[0], num_blocks[0], 1)
        self.layer2 = self._layer(widths[1], num_blocks[1], 2)
        self.layer3 = self._layer(widths[2], num_blocks[2], 2)
        self.layer4 = self._layer(widths[3], num_blocks[3], 2)
        self.linear = nn.Linear(widths[3] * block.expansion, num_classes)
        self.feature_dim = widths[3] * block.expansion

    def _layer(self, planes, n, stride):
        layers = []
        for s in [stride] + [1] * (n - 1):
            layers.append(self.block(self.in_planes, planes, s))
            self.in_planes = planes * self.block.expansion
        return nn.Sequential(*layers)

    def features(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return F.adaptive_avg_pool2d(out, 1).flatten(1)  # = avg_pool2d(out, 4) at 32x32

    def head(self, r):
        return self.linear(r)


# --- PreAct ResNet18 (names as RobustBench's model_zoo/architectures/resnet.py) ------------


class PreActBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        if stride != 1 or in_planes != planes:  # no attribute otherwise, as in RobustBench
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False))

    def forward(self, x):
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if hasattr(self, "shortcut") else x
        out = self.conv2(F.relu(self.bn2(self.conv1(out))))
        return out + shortcut


class PreActResNet(nn.Module):
    """Pre-activation ResNet: 3x3 stem, blocks BN-ReLU-conv, a final BN + ReLU before pooling."""

    def __init__(self, num_blocks, num_classes, width=1.0, in_channels=3):
        super().__init__()
        widths = [max(1, int(w * width)) for w in (64, 128, 256, 512)]
        self.in_planes = widths[0]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.layer1 = self._layer(widths[0], num_blocks[0], 1)
        self.layer2 = self._layer(widths[1], num_blocks[1], 2)
        self.layer3 = self._layer(widths[2], num_blocks[2], 2)
        self.layer4 = self._layer(widths[3], num_blocks[3], 2)
        self.bn = nn.BatchNorm2d(widths[3])
        self.linear = nn.Linear(widths[3], num_classes)
        self.feature_dim = widths[3]

    def _layer(self, planes, n, stride):
        layers = []
        for s in [stride] + [1] * (n - 1):
            layers.append(PreActBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def features(self, x):
        out = self.layer4(self.layer3(self.layer2(self.layer1(self.conv1(x)))))
        return F.adaptive_avg_pool2d(F.relu(self.bn(out)), 1).flatten(1)  # = avg_pool2d(out, 4) at 32x32

    def head(self, r):
        return self.linear(r)


# --- ImageNet ResNets (names as torchvision.models.resnet*) ---------------------------------


class ImageNetBasicBlock(BasicBlock):
    """torchvision's BasicBlock (ResNet18/34): the projection named `downsample`."""

    shortcut_name = "downsample"


class ImageNetResNet(nn.Module):
    def __init__(self, num_blocks, num_classes, width=1.0, in_channels=3, block=Bottleneck, base_width=64):
        super().__init__()
        self.block, self.base_width = block, base_width
        widths = [max(1, int(w * width)) for w in (64, 128, 256, 512)]
        self.in_planes = widths[0]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._layer(widths[0], num_blocks[0], 1)
        self.layer2 = self._layer(widths[1], num_blocks[1], 2)
        self.layer3 = self._layer(widths[2], num_blocks[2], 2)
        self.layer4 = self._layer(widths[3], num_blocks[3], 2)
        self.fc = nn.Linear(widths[3] * block.expansion, num_classes)
        self.feature_dim = widths[3] * block.expansion
        for m in self.modules():  # torchvision's init; zero-init of the last BN is off there too
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _layer(self, planes, n, stride):
        layers = []
        for s in [stride] + [1] * (n - 1):
            layers.append(self.block(self.in_planes, planes, s, self.base_width))
            self.in_planes = planes * self.block.expansion
        return nn.Sequential(*layers)

    def features(self, x):
        out = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return F.adaptive_avg_pool2d(out, 1).flatten(1)

    def head(self, r):
        return self.fc(r)


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "resnet18_cifar": lambda **kw: CifarResNet([2, 2, 2, 2], **kw),
    "resnet50": lambda **kw: ImageNetResNet([3, 4, 6, 3], **kw),
    "resnet50_cifar": lambda **kw: CifarResNet([3, 4, 6, 3], block=CifarBottleneck, **kw),
    "preact_resnet18": lambda **kw: PreActResNet([2, 2, 2, 2], **kw),
    "resnet18": lambda **kw: ImageNetResNet([2, 2, 2, 2], block=ImageNetBasicBlock, **kw),
    "wide_resnet50_2": lambda **kw: ImageNetResNet([3, 4, 6, 3], base_width=128, **kw),
}


def build_model(arch: str, num_classes: int, mean, std, width: float) -> Classifier:
    """Construct a registered architecture wrapped with its input normaliser."""
    if arch not in ARCHITECTURES:
        raise RobinterpError(f"unknown architecture {arch!r}; choose one of {sorted(ARCHITECTURES)}")
    backbone = ARCHITECTURES[arch](num_classes=num_classes, width=width, in_channels=len(mean))
    return Classifier(backbone, mean, std)
