"""Model registry: shapes, normalisation inside, representation access, parameter names."""

import pytest
import torch

from robinterp.errors import RobinterpError
from robinterp.models import build_model

# MadryLab robustness cifar_models/resnet.py ResNet18 names (first block, a shortcut, the head)
MADRY_KEYS = [
    "conv1.weight",
    "bn1.weight",
    "bn1.running_mean",
    "layer1.0.conv1.weight",
    "layer1.0.bn2.bias",
    "layer2.0.shortcut.0.weight",
    "layer2.0.shortcut.1.running_var",
    "layer4.1.conv2.weight",
    "linear.weight",
    "linear.bias",
]


def test_resnet18_cifar_shapes_and_features():
    m = build_model("resnet18_cifar", 10, [0.5] * 3, [0.25] * 3, 1.0).eval()
    x = torch.rand(2, 3, 32, 32)
    assert m(x).shape == (2, 10)
    r = m.features(x)
    assert r.shape == (2, 512)
    assert torch.allclose(m.model.head(r), m(x))
    assert m.model.conv1.stride == (1, 1) and m.model.conv1.kernel_size == (3, 3)
    assert not any(isinstance(mod, torch.nn.MaxPool2d) for mod in m.modules())


def test_parameter_names_match_madry_robustness():
    keys = set(build_model("resnet18_cifar", 10, [0.5] * 3, [0.25] * 3, 1.0).state_dict())
    assert {f"model.{k}" for k in MADRY_KEYS} <= keys
    assert {"normalizer.mean", "normalizer.std"} <= keys


def test_resnet50_matches_torchvision_names_and_shapes():
    import torchvision

    ours = build_model("resnet50", 150, [0.5] * 3, [0.25] * 3, 1.0).model.state_dict()
    ref = torchvision.models.resnet50(num_classes=150).state_dict()
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in ref.items()}


def test_normalisation_happens_inside_the_model():
    mean, std = [0.2, 0.4, 0.6], [0.1, 0.2, 0.3]
    m = build_model("resnet18_cifar", 10, mean, std, width=0.125).eval()
    x = torch.rand(2, 3, 16, 16)
    xn = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert torch.allclose(m(x), m.model.head(m.model.features(xn)), atol=1e-6)


def test_width_multiplier_shrinks_the_model():
    big = sum(p.numel() for p in build_model("resnet18_cifar", 10, [0.5] * 3, [0.25] * 3, 1.0).parameters())
    small = sum(p.numel() for p in build_model("resnet18_cifar", 10, [0.5] * 3, [0.25] * 3, 0.125).parameters())
    assert small < big / 30


def test_unknown_architecture_is_a_clear_error():
    with pytest.raises(RobinterpError, match="unknown architecture 'resnet19'.*resnet18_cifar"):
        build_model("resnet19", 10, [0.5] * 3, [0.25] * 3, 1.0)


def test_the_schema_lists_the_registered_architectures_and_the_published_ones():
    """One list of architectures: the schema's $defs/arch (model.arch and checkpoint.arch refer to it)
    is the registry's; every format's architectures are among them and its formats are the schema's."""
    from robinterp.models import ARCHITECTURES
    from robinterp.published import PUBLISHED_ARCHS, READERS
    from robinterp.settings import node, schema

    archs = schema()["$defs"]["arch"]["enum"]
    assert sorted(archs) == sorted(ARCHITECTURES) and len(set(archs)) == len(archs)
    assert node("model.arch")["$ref"] == node("checkpoint.arch")["$ref"] == "#/$defs/arch"
    assert all(set(held) <= set(archs) for held in PUBLISHED_ARCHS.values())
    assert list(PUBLISHED_ARCHS) == list(READERS) == node("checkpoint.format")["enum"]
