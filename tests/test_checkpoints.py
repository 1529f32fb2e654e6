"""Checkpoints round-trip bit-exactly; corrupt, foreign or mismatched files give clear errors."""

import pickle

import pytest
import torch

from robinterp.checkpoints import load_model, remap_madry_state_dict, save_checkpoint
from robinterp.errors import RobinterpError
from robinterp.models import build_model

ARCH = {"name": "resnet18_cifar", "width": 0.125, "num_classes": 10, "mean": [0.5] * 3, "std": [0.25] * 3}


def _model():
    torch.manual_seed(0)
    m = build_model("resnet18_cifar", 10, [0.5] * 3, [0.25] * 3, 0.125)
    m.model.bn1.running_mean.normal_()  # buffers must survive too
    return m


def test_round_trip_is_bit_exact(tmp_path):
    m = _model()
    save_checkpoint(tmp_path / "m.pt", m, ARCH, [str(i) for i in range(10)], epoch=3, metrics={"a": 1.0},
                    config={"lr": 0.1})
    loaded, meta = load_model(tmp_path / "m.pt")
    ref = m.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in loaded.state_dict().items())
    assert meta["epoch"] == 3 and meta["classes"][2] == "2" and meta["arch"]["width"] == 0.125
    assert not loaded.training
    x = torch.rand(2, 3, 16, 16)
    assert torch.equal(loaded(x), m.eval()(x))


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    save_checkpoint(tmp_path / "m.pt", _model(), ARCH, ["a"] * 10)
    data = (tmp_path / "m.pt").read_bytes()
    (tmp_path / "m.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(RobinterpError, match="m.pt: cannot read checkpoint.*delete it and retrain"):
        load_model(tmp_path / "m.pt")


def test_pickled_objects_are_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("code ran",))

    torch.save({"format": "robinterp-checkpoint/1", "model": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(RobinterpError, match="cannot read checkpoint"):
        load_model(tmp_path / "evil.pt")


def test_foreign_and_missing_checkpoints(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(RobinterpError, match="not a robinterp checkpoint"):
        load_model(tmp_path / "other.pt")
    with pytest.raises(RobinterpError, match="checkpoint not found"):
        load_model(tmp_path / "nope.pt")


def test_architecture_mismatch_is_reported(tmp_path):
    save_checkpoint(tmp_path / "m.pt", _model(), {**ARCH, "width": 0.25}, ["a"] * 10)
    with pytest.raises(RobinterpError, match="weights do not match architecture resnet18_cifar"):
        load_model(tmp_path / "m.pt")


def test_madry_robustness_state_dict_remaps_onto_ours():
    m = _model()
    madry = {"module.normalizer.new_mean": torch.tensor([0.5] * 3).view(3, 1, 1),
             "module.normalizer.new_std": torch.tensor([0.25] * 3).view(3, 1, 1)}
    for k, v in m.state_dict().items():
        if k.startswith("model."):
            madry[f"module.{k}"] = v
            madry[f"module.attacker.{k}"] = v
    remapped = remap_madry_state_dict(madry)
    fresh = build_model("resnet18_cifar", 10, [0.1] * 3, [0.9] * 3, 0.125)
    fresh.load_state_dict(remapped, strict=True)
    x = torch.rand(2, 3, 16, 16)
    assert torch.equal(fresh.eval()(x), m.eval()(x))
