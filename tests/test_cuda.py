"""The CUDA paths, checked against the CPU (skipped without a GPU).

On a GPU box: `pytest tests/test_cuda.py` (`benchmarks/gpu_session.sh` runs it with the GPU
benchmarks). `ROBINTERP_TEST_DEVICE=cpu pytest tests/test_cuda.py` runs the same code on the
CPU: every comparison is then CPU against CPU, which checks the tests, not CUDA.

fp32 comparisons turn off cuDNN's TF32 convolutions (on by default in PyTorch, 10-bit mantissa);
the bf16 / channels_last / fused / compiled paths are checked by what they must still do (learn,
stay in the eps-ball, agree with a CPU evaluation of their checkpoint), not by equality.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from analysis_inputs import COMPUTE, make_inputs, run_verb

from robinterp.attacks import AttackConfig, SampleNoise, adversarial_examples, sample_keys
from robinterp.augment import AugmentConfig, augment
from robinterp.checkpoints import load_model
from robinterp.data import load_split
from robinterp.device import DeviceData, autocast
from robinterp.evaluate import accuracy
from robinterp.train import TrainConfig, train

DEVICE = torch.device(os.environ.get("ROBINTERP_TEST_DEVICE", "cuda"))
CPU = torch.device("cpu")
pytestmark = pytest.mark.skipif(
    DEVICE.type == "cuda" and not torch.cuda.is_available(),
    reason="no CUDA device (run on a GPU, e.g. benchmarks/gpu_session.sh)",
)

TRAIN = {
    "arch": "resnet18_cifar",
    "width": 0.0625,
    "epochs": 2,
    "batch_size": 256,
    "lr": 0.01,
    "augment": {"crop_padding": 1, "flip": True},
    "attack": {"norm": "l2", "eps": 1.0, "step_size": 0.25, "steps": 2},
    "selection_attack": {"norm": "l2", "eps": 1.0, "step_size": 0.25, "steps": 2},
    "selection_max_images": 64,
    "eval_batch_size": 256,
    "seed": 3,
}


@pytest.fixture(autouse=True)
def full_fp32():
    old = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32 = old


def _train(digits_dir, out: Path, **overrides) -> dict:
    cfg = TrainConfig.from_dict({**TRAIN, **overrides})
    return train(
        cfg,
        load_split(digits_dir / "train"),
        load_split(digits_dir / "val"),
        out / "model.pt",
        out / "state",
        out / "log.csv",
    )


def _weights(path: Path) -> dict:
    return {k: v.float() for k, v in load_model(path, device=CPU)[0].state_dict().items()}


def test_device_batches_and_augmentation_match_cpu(digits_dir):
    split = load_split(digits_dir / "train")
    idx = torch.arange(0, 200, 3)
    x_cpu, y_cpu = DeviceData(split, CPU).batch(idx)
    x_dev, y_dev = DeviceData(split, DEVICE, channels_last=True).batch(idx)
    assert x_dev.device.type == DEVICE.type and x_dev.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(x_dev.cpu(), x_cpu) and torch.equal(y_dev.cpu(), y_cpu)
    for cfg, atol in (
        (AugmentConfig.of(crop_padding=2, flip=True), 0.0),
        (AugmentConfig.of(random_resized_crop=True, rotation=15, flip=True), 1e-5),
    ):
        a = augment(x_cpu, cfg, torch.Generator().manual_seed(1))
        b = augment(x_dev, cfg, torch.Generator().manual_seed(1)).cpu()
        assert not torch.equal(a, x_cpu)  # it did augment
        assert torch.allclose(a, b, atol=atol, rtol=0), (cfg, (a - b).abs().max())


def test_attack_matches_cpu_and_keeps_its_contract(trained_model, digits_dir):
    split = load_split(digits_dir / "test")
    x, y = DeviceData(split, CPU).batch(torch.arange(64))
    model_dev = copy.deepcopy(trained_model).to(DEVICE)
    for cfg in (
        AttackConfig.of(eps=1.0, step_size=0.25, steps=5),
        AttackConfig.of(eps=1.0, step_size=0.25, steps=5, random_start=True, best=True),
    ):
        a = adversarial_examples(trained_model, x, y, cfg, generator=SampleNoise(sample_keys(0, range(64))))
        b = adversarial_examples(
            model_dev, x.to(DEVICE), y.to(DEVICE), cfg, generator=SampleNoise(sample_keys(0, range(64)))
        )  # pinned, asynchronous copy
        assert b.device.type == DEVICE.type
        assert (a - b.cpu()).abs().max() < 1e-3
        d = (b - x.to(DEVICE)).flatten(1).norm(dim=1)
        assert (d <= cfg.eps + 1e-5).all() and b.min() >= 0 and b.max() <= 1
    with torch.no_grad():
        loss = lambda xa: F.cross_entropy(model_dev(xa), y.to(DEVICE))
        assert loss(b) > loss(x.to(DEVICE)) + 0.1


def test_bf16_attack_stays_in_the_ball_and_raises_the_loss(trained_model, digits_dir):
    split = load_split(digits_dir / "test")
    x, y = (t.to(DEVICE) for t in DeviceData(split, CPU).batch(torch.arange(128)))
    model = copy.deepcopy(trained_model).to(DEVICE)
    cfg = AttackConfig.of(eps=1.0, step_size=0.25, steps=5)
    with autocast(DEVICE, True):
        adv = adversarial_examples(model, x, y, cfg)
    assert adv.dtype == torch.float32
    assert ((adv - x).flatten(1).norm(dim=1) <= cfg.eps + 1e-5).all() and adv.min() >= 0 and adv.max() <= 1
    with torch.no_grad():
        assert F.cross_entropy(model(adv), y) > F.cross_entropy(model(x), y) + 0.1


BF16_TOLERANCE = 0.02  # a bf16 attack may find at most 2 points more robust accuracy than fp32


def test_bf16_attack_is_not_weaker_than_fp32_beyond_tolerance(trained_model, digits_dir):
    """Reported numbers run in fp32 unless evaluation.amp opts into bf16: this bounds what the
    opt-in can cost (a weaker attack reads as more robustness)."""
    data = DeviceData(load_split(digits_dir / "test"), DEVICE)
    model = copy.deepcopy(trained_model).to(DEVICE)
    cfg = AttackConfig.of(eps=1.0, step_size=0.25, steps=10, random_start=True)
    fp32 = accuracy(model, data, cfg, 128, None, amp=False, seed=0)
    bf16 = accuracy(model, data, cfg, 128, None, amp=True, seed=0)
    assert fp32["adv_acc"] < fp32["clean_acc"]
    assert bf16["adv_acc"] <= fp32["adv_acc"] + BF16_TOLERANCE, (bf16, fp32)


def test_evaluation_on_device_matches_cpu_at_any_batch_size(trained_model, digits_dir):
    """Device and batch size only change how evaluation runs: random starts are drawn per image."""
    split = load_split(digits_dir / "test")
    cfg = AttackConfig.of(eps=1.0, step_size=0.25, steps=5, random_start=True)
    ref = accuracy(trained_model, DeviceData(split, CPU), cfg, 64, max_images=256, amp=False, seed=2)
    dev = accuracy(
        copy.deepcopy(trained_model).to(DEVICE), DeviceData(split, DEVICE), cfg, 100, max_images=256, amp=False, seed=2
    )
    assert abs(ref["clean_acc"] - dev["clean_acc"]) <= 1 / 256 and abs(ref["adv_acc"] - dev["adv_acc"]) <= 2 / 256


def test_fp32_training_on_device_matches_cpu(digits_dir, tmp_path):
    ref = _train(digits_dir, tmp_path / "cpu", device="cpu")
    dev = _train(digits_dir, tmp_path / "dev", device=str(DEVICE))
    w_ref, w_dev = _weights(tmp_path / "cpu/model.pt"), _weights(tmp_path / "dev/model.pt")
    worst = max((w_ref[k] - w_dev[k]).abs().max().item() for k in w_ref)
    assert worst < 1e-3, worst
    assert ref["epoch"] == dev["epoch"]


def test_fast_switches_learn_and_their_checkpoint_evaluates_the_same_on_cpu(digits_dir, tmp_path):
    fast = {
        "device": str(DEVICE),
        "amp": True,
        "channels_last": True,
        "fused": True,
        "epochs": 10,
        "lr": 0.1,
        "batch_size": 128,
        "attack": {"norm": "l2", "eps": 0.25, "step_size": 0.1, "steps": 2},
    }
    _train(digits_dir, tmp_path, **fast)
    test = load_split(digits_dir / "test")
    on_cpu = accuracy(
        load_model(tmp_path / "model.pt", device=CPU)[0], DeviceData(test, CPU), None, 512, None, False, 0
    )
    on_dev = accuracy(
        load_model(tmp_path / "model.pt", device=DEVICE)[0], DeviceData(test, DEVICE), None, 512, None, False, 0
    )
    assert on_cpu["clean_acc"] > 0.5, on_cpu
    assert abs(on_cpu["clean_acc"] - on_dev["clean_acc"]) <= 2 / len(test.labels)


@pytest.mark.skipif(DEVICE.type != "cuda", reason="torch.compile on CPU takes minutes here; checked on CUDA")
def test_compiled_training_matches_eager(digits_dir, tmp_path):
    _train(digits_dir, tmp_path / "eager", device="cuda", epochs=1)
    _train(digits_dir, tmp_path / "compiled", device="cuda", epochs=1, compile=True)
    w_e, w_c = _weights(tmp_path / "eager/model.pt"), _weights(tmp_path / "compiled/model.pt")
    assert max((w_e[k] - w_c[k]).abs().max().item() for k in w_e) < 1e-3


@pytest.fixture(scope="module")
def analysis_inputs(tmp_path_factory):
    return make_inputs(tmp_path_factory.mktemp("inputs"))


def _arrays(folder: Path) -> dict[str, np.ndarray]:
    out = {}
    for f in sorted(folder.iterdir()):
        if f.suffix == ".npy":
            out[f.name] = np.load(f)
        elif f.suffix == ".npz":
            with np.load(f) as z:
                out.update({f"{f.name}:{k}": z[k] for k in z.files})
    return out


@pytest.mark.parametrize("method", list(COMPUTE))
def test_analysis_verbs_on_device_match_cpu(analysis_inputs, tmp_path, method):
    for name, device in (("reference", "cpu"), ("device", str(DEVICE))):
        assert run_verb(method, analysis_inputs, tmp_path / name, device=device) == 0
    ref, dev = _arrays(tmp_path / "reference"), _arrays(tmp_path / "device")
    assert ref.keys() == dev.keys() and ref
    for key, a in ref.items():
        b = dev[key]
        assert a.shape == b.shape and a.dtype == b.dtype, key
        if a.dtype == np.uint8:  # images after PGD: rounding may move a few pixels by a level
            diff = np.abs(a.astype(int) - b.astype(int))
            assert diff.max() <= 3 and (diff > 1).mean() < 0.01, (key, diff.max())
        elif np.issubdtype(a.dtype, np.floating):
            scale = np.abs(a).max() + 1e-12
            assert np.abs(a - b).max() <= 1e-3 * scale, (key, np.abs(a - b).max(), scale)
        else:
            assert np.array_equal(a, b), key
