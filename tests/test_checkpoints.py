"""Checkpoints round-trip bit-exactly; corrupt, foreign or mismatched files give clear errors."""

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
    save_checkpoint(
        tmp_path / "m.pt", m, ARCH, [str(i) for i in range(10)], epoch=3, metrics={"a": 1.0}, config={"lr": 0.1}
    )
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
    with pytest.raises(RobinterpError, match=r"evil.pt: refused: the pickle calls print, .* nothing was run") as e:
        load_model(tmp_path / "evil.pt")
    # never torch's advice to retry with weights_only=False (which would run the payload), never raw escapes
    assert "weights_only" not in str(e.value) and "\x1b" not in str(e.value) and "\n" not in str(e.value)


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
    madry = {
        "module.normalizer.new_mean": torch.tensor([0.5] * 3).view(3, 1, 1),
        "module.normalizer.new_std": torch.tensor([0.25] * 3).view(3, 1, 1),
    }
    for k, v in m.state_dict().items():
        if k.startswith("model."):
            madry[f"module.{k}"] = v
            madry[f"module.attacker.{k}"] = v
    remapped = remap_madry_state_dict(madry)
    fresh = build_model("resnet18_cifar", 10, [0.1] * 3, [0.9] * 3, 0.125)
    fresh.load_state_dict(remapped, strict=True)
    x = torch.rand(2, 3, 16, 16)
    assert torch.equal(fresh.eval()(x), m.eval()(x))


def test_nan_weights_and_a_zero_std_are_refused(tmp_path):
    """One NaN weight evaluated to chance accuracy, exit 0."""
    m = _model()
    with torch.no_grad():
        m.model.linear.weight[0, 0] = float("nan")
    save_checkpoint(tmp_path / "nan.pt", m, ARCH, [str(i) for i in range(10)])
    with pytest.raises(
        RobinterpError,
        match=r"nan.pt: 1 weight tensor\(s\) hold NaN or infinite values "
        r"\(model.linear.weight\).*retrain",
    ):
        load_model(tmp_path / "nan.pt")
    save_checkpoint(
        tmp_path / "std.pt",
        build_model("resnet18_cifar", 10, [0.5] * 3, [0.25, 0.0, 0.25], 0.125),
        ARCH,
        [str(i) for i in range(10)],
    )
    with pytest.raises(RobinterpError, match=r"std.pt: input normalisation std \[0.25, 0.0, 0.25\] has a value <= 0"):
        load_model(tmp_path / "std.pt")


def _zip_bomb(path, unpacked=8 << 20):
    """A zip whose one member declares `unpacked` bytes of zeros: a few kB on disk."""
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", b"\0" * unpacked)
    return path


def test_a_zip_bomb_is_refused_before_reading(tmp_path, monkeypatch):
    """A 4 MB .pt that unpacks to 4 GiB peaked at 8.9 GB of memory before it was refused."""
    from publishers import import_file

    bomb = _zip_bomb(tmp_path / "bomb.pt")
    assert bomb.stat().st_size < 64 << 10
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load reached"))
    for load in (
        lambda: load_model(bomb),
        lambda: import_file("torchvision", "resnet18", bomb, tmp_path / "m.pt", log=lambda s: None),
    ):
        with pytest.raises(
            RobinterpError,
            match=r"bomb.pt: a zip of 0.0 MiB whose members unpack to 8.0 MiB: a zip "
            r"bomb.*refused before reading",
        ):
            load()


def test_a_model_and_data_that_do_not_fit_are_refused(tmp_path, digits_dir, capsys):
    """The 10-class 16-px demo model on a 3-class 8-px split reported clean 0.0000, exit 0."""
    import numpy as np

    from robinterp.checkpoints import check_fits
    from robinterp.cli import main
    from robinterp.data import load_split, write_split

    digits = load_split(digits_dir / "test")
    arch = {**ARCH, "image_shape": [3, 16, 16]}
    save_checkpoint(tmp_path / "m.pt", _model(), arch, digits.classes)
    _, meta = load_model(tmp_path / "m.pt")
    with pytest.raises(
        RobinterpError,
        match=r"m.pt does not fit .*test: the model was trained on 3x16x16 images, "
        r"the data is 3x8x8",
    ):
        check_fits(meta, digits, tmp_path / "m.pt")
    check_fits({**meta, "arch": ARCH}, digits, tmp_path / "m.pt")  # an imported model takes any image size
    write_split(tmp_path / "abc", np.zeros((6, 8, 8, 3), np.uint8), np.arange(6) % 3, ["a", "b", "c"], {})
    rc = main(
        [
            "evaluate",
            "--checkpoint",
            str(tmp_path / "m.pt"),
            "--data",
            str(tmp_path / "abc"),
            "--set",
            "device=cpu",
            "--out",
            str(tmp_path / "acc.json"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and _error_lines(err) == 1 and not (tmp_path / "acc.json").exists()
    assert "the model has 10 classes, the data 3" in err
    write_split(tmp_path / "named", digits.images[:20], digits.labels[:20], [f"c{i}" for i in range(10)], {})
    named = load_split(tmp_path / "named")
    with pytest.raises(RobinterpError, match=r"other class names \('0' vs 'c0', '1' vs 'c1', '2' vs 'c2', \.\.\.\)"):
        check_fits({**meta, "arch": ARCH}, named, tmp_path / "m.pt")
    check_fits({**meta, "arch": ARCH, "source": {"classes_given": False}}, named, tmp_path / "m.pt")


def _error_lines(stderr: str) -> int:
    """Lines of stderr beside the job's `device:` line (every compute verb says where it runs)."""
    return len([line for line in stderr.splitlines() if not line.startswith("device: ")])
