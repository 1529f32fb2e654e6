"""Shared fixtures: tiny packed digits splits and a quickly trained tiny model (CPU, seconds)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory) -> Path:
    from robinterp.sources import prepare

    out = tmp_path_factory.mktemp("digits")
    prepare({"kind": "digits", "image_size": 8, "seed": 0}, out)
    return out


@pytest.fixture
def trained_model(_trained_once):
    """A fresh copy per test: a test that moves BatchNorm statistics (an attack with
    bn_mode="train") or flips a flag cannot change what the next test sees."""
    import copy

    return copy.deepcopy(_trained_once).eval()


@pytest.fixture(scope="session")
def _trained_once(digits_dir):
    """A width-1/16 CIFAR ResNet18 trained for a few epochs on 8x8 digits (~90% clean)."""
    from robinterp.data import load_split
    from robinterp.device import DeviceData
    from robinterp.models import build_model

    split = load_split(digits_dir / "train")
    torch.manual_seed(0)
    model = build_model("resnet18_cifar", 10, split.manifest["mean"], split.manifest["std"], width=0.0625)
    data = DeviceData(split, torch.device("cpu"))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    for _ in range(6):
        perm = torch.randperm(len(data), generator=gen)
        for i in range(0, len(data), 64):
            x, y = data.batch(perm[i : i + 64])
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()
