"""Small ImageNet 150: the builder on a fake ILSVRC tree, its errors, the ResNet50 path and the DAG."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml
from ilsvrc_fake import make_ilsvrc, wnid

from robinterp.data import load_split
from robinterp.errors import RobinterpError
from robinterp.small_imagenet import BuildConfig, build, check_splits_disjoint, decode_image, read_val_labels

ROOT = Path(__file__).resolve().parents[1]
SIZES = dict(classes=5, train_per_class=4, val_per_class=2, test_per_class=2, imagenetv2_per_class=1, image_size=16)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_ilsvrc(tmp_path_factory.mktemp("ilsvrc"))


@pytest.fixture(scope="module")
def cfg(tree):
    return BuildConfig.of(
        train_dir=tree["train_dir"],
        val_dir=tree["val_dir"],
        imagenetv2_dir=tree["imagenetv2_dir"],
        synset_mapping=tree["synset_mapping"],
        **SIZES,
    )


@pytest.fixture(scope="module")
def built(cfg, tmp_path_factory):
    out = tmp_path_factory.mktemp("built")
    build(cfg, out, workers=1, log=lambda _: None)
    return out


def splits(out):
    return {s: load_split(Path(out) / s, verify=True) for s in ("train", "val", "test")}


def test_counts_per_split_and_class(built):
    sp = splits(built)
    per_class = {"train": 4, "val": 2, "test": 2 + 1}
    for name, split in sp.items():
        assert split.images.shape == (5 * per_class[name], 16, 16, 3)
        assert split.manifest["counts_per_class"] == [per_class[name]] * 5
        assert split.classes == sorted(split.classes) and len(set(split.classes)) == 5
        assert len(split.manifest["files"]) == len(split) and all(split.manifest["files"])
        assert split.manifest["mean"] == sp["train"].manifest["mean"] and len(split.manifest["std"]) == 3
        assert split.manifest["seed"] == 0 and split.manifest["source"]["split"] == name
    names = {c["wnid"]: c["name"] for c in sp["train"].manifest["classes"]}
    assert all(re.fullmatch(r"class \d+, fake", names[w]) for w in sp["train"].classes)  # from the synset mapping
    assert sp["test"].manifest["parts"] == [["ilsvrc_val", 0, 10], ["imagenetv2", 10, 15]]


def test_every_row_comes_from_its_class_and_no_file_is_used_twice(built, tree):
    sp = splits(built)
    all_wnids = sorted(p.name for p in Path(tree["train_dir"]).iterdir())
    used = {name: s.manifest["files"] for name, s in sp.items()}
    assert not set(used["train"]) & set(used["val"])
    assert not (set(used["train"]) | set(used["val"])) & set(used["test"])
    for name, split in sp.items():
        assert len(set(used[name])) == len(split)
        for path, label in zip(used[name], split.labels):
            w = split.classes[label]
            if "imagenetv2" in path:  # V2 folder = index of the class among all sorted train wnids
                assert Path(path).parent.name == str(all_wnids.index(w))
            else:
                assert Path(path).parent.name == w
    first = {name: [p for p in used[name]][:1] for name in used}
    for name, split in sp.items():  # the listed file is the decoded row
        assert np.array_equal(split.images[0], decode_image(first[name][0], 16))


def test_corrupt_files_are_skipped_replaced_and_listed(built):
    sp = splits(built)
    skipped = [item for s in sp.values() for item in s.manifest["skipped"]]
    assert skipped, "every fake class has an unreadable file among its candidates"
    for item in skipped:
        assert "_bad" in Path(item["path"]).name and item["error"] and item["class"] in sp["train"].classes
    listed = {item["path"] for item in skipped}
    for split in sp.values():
        assert not listed & set(split.manifest["files"])
        assert all("_bad" not in Path(p).name for p in split.manifest["files"])


def _bytes(out, split):
    d = Path(out) / split
    manifest = json.loads((d / "manifest.json").read_text())
    manifest.pop("provenance")
    return [(d / f).read_bytes() for f in ("images.npy", "labels.npy", "classes.json")] + [manifest]


def test_same_inputs_and_seed_give_identical_bytes_with_any_worker_count(cfg, built, tmp_path):
    build(cfg, tmp_path / "again", workers=2, log=lambda _: None)
    for split in ("train", "val", "test"):
        assert _bytes(built, split) == _bytes(tmp_path / "again", split)
    assert not (tmp_path / "again" / ".staging").exists()
    build(replace(cfg, seed=1), tmp_path / "seed1", workers=1, log=lambda _: None)
    assert _bytes(built, "train")[0] != _bytes(tmp_path / "seed1", "train")[0]


def test_progress_lines_count_the_decoded_images(cfg, tmp_path, monkeypatch, capsys):
    from robinterp.progress import INTERVAL_ENV

    monkeypatch.setenv(INTERVAL_ENV, "0")  # a line per finished job (stderr is not a terminal here)
    build(cfg, tmp_path, log=lambda _: None)
    lines = capsys.readouterr().err.splitlines()
    assert lines[-1].startswith("build-small-imagenet: 45/45 images (100%), ") and " images/s, eta 0:00:00" in lines[-1]
    assert len(lines) == 3 * 5  # train, ILSVRC val and ImageNetV2 jobs of 5 classes


def test_flat_validation_layout_gives_the_same_test_split(cfg, built, tree, tmp_path):
    build(replace(cfg, val_dir=tree["val_flat"], val_labels=tree["val_labels"]), tmp_path, log=lambda _: None)
    a, b = load_split(built / "test"), load_split(tmp_path / "test")
    assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)
    assert [Path(p).name for p in a.manifest["files"]] == [Path(p).name for p in b.manifest["files"]]


def test_paper_protocol_validates_on_the_ilsvrc_validation_images(cfg, tmp_path):
    build(replace(cfg, validation="ilsvrc_val", imagenetv2_dir=None), tmp_path, log=lambda _: None)
    sp = splits(tmp_path)
    assert len(sp["test"]) == len(sp["val"]) == 5 * 2  # no V2: test = ILSVRC val = val
    assert np.array_equal(sp["val"].images, sp["test"].images[:10])
    assert sp["val"].manifest["files"] == sp["test"].manifest["files"][:10]
    assert not set(sp["train"].manifest["files"]) & set(sp["val"].manifest["files"])


def test_decode_handles_every_mode_and_format(tree):
    from PIL import Image

    files = sorted(Path(tree["train_dir"]).glob("*/*_[0-5].*"))[:6]  # one class: every mode once
    modes = set()
    for path in files:
        with Image.open(path) as im:
            modes.add((im.format, im.mode, path.suffix))
        x = decode_image(path, 16)
        assert x.shape == (16, 16, 3) and x.dtype == np.uint8
        if im.mode == "L":
            assert (x[..., 0] == x[..., 1]).all() and (x[..., 1] == x[..., 2]).all()
    assert {m for _, m, _ in modes} == {"RGB", "L", "CMYK", "P", "RGBA"}
    assert ("PNG", "RGB", ".JPEG") in modes  # a PNG named .JPEG, as in ImageNet


# --- bad input: each names the class or folder and the expected layout ------------------------------


def _bad_layouts(tree, tmp):
    flat_train = Path(tree["train_dir"]) / wnid(0)
    tars = tmp / "tars"
    tars.mkdir()
    (tars / f"{wnid(0)}.tar").write_bytes(b"")
    bad_csv = tmp / "bad.csv"
    bad_csv.write_text("id,label\nILSVRC2012_val_00000001,n01440764\n")
    bad_v2 = tmp / "v2"
    (bad_v2 / "tench").mkdir(parents=True)
    class_list = tmp / "classes.txt"
    class_list.write_text("n99999999\n")
    repeated = tmp / "repeated.txt"
    repeated.write_text(f"{wnid(0)}\n{wnid(1)}\n{wnid(0)}  # again\n")
    (tmp / "train_link").symlink_to(tree["train_dir"])
    for image in Path(tree["train_dir"]).glob("*/*"):  # hard links to the training images, class by class
        (tmp / "val_hard" / image.parent.name).mkdir(parents=True, exist_ok=True)
        os.link(image, tmp / "val_hard" / image.parent.name / f"copy_{image.name}")
    return [
        ({"train_dir": str(tmp / "missing")}, r"not a folder; expected <train_dir>/<wnid>/<image>\.JPEG"),
        ({"train_dir": str(flat_train)}, r"no WordNet-id class folders \(found 9 images.*expected <train_dir>/<wnid>"),
        ({"train_dir": str(tars)}, r"per-class \.tar archives: extract"),
        ({"val_dir": tree["val_flat"]}, r"flat layout needs val_labels\); expected <val_dir>/<wnid>"),
        ({"val_labels": tree["val_labels"]}, r"set val_labels: null.*expected <val_dir>/ILSVRC2012_val"),
        ({"val_dir": tree["val_flat"], "val_labels": str(bad_csv)}, r"header 'ImageId,PredictionString'"),
        ({"imagenetv2_dir": str(bad_v2)}, r"\['tench'\] are not class indices; expected <imagenetv2_dir>/<class"),
        ({"class_list": str(class_list)}, r"\['n99999999'\] not found as folders of train_dir"),
        ({"class_list": str(repeated)}, rf"\['{wnid(0)}'\] listed more than once"),
        # the test split would hold training images: the same folder, or the same files through a link
        (
            {"val_dir": tree["train_dir"]},
            r"train_dir .* and val_dir .* hold the same image files .* point val_dir at "
            r"the ILSVRC validation images",
        ),
        ({"val_dir": str(tmp / "train_link")}, r"train_dir .* and val_dir .*train_link hold the same image files"),
        ({"val_dir": str(tmp / "val_hard")}, r"train_dir .* and val_dir .*val_hard hold the same image files"),
        ({"train_per_class": 10}, r"class n\d{8} \(class \d+, fake\): 9 image\(s\) in .*needs 12"),
        ({"classes": 161}, r"161 requested but train_dir has only 160 class folders"),
        # 9 files, 9 needed, one unreadable: fails while decoding, naming the class and the counts
        ({"train_per_class": 7}, r"class n\d{8} \(train\): 1 of its 9 images are unreadable, 1 too few"),
    ]


def test_bad_layouts_and_counts_fail_with_a_clear_message(cfg, tree, tmp_path):
    for i, (change, message) in enumerate(_bad_layouts(tree, tmp_path)):
        with pytest.raises(RobinterpError, match=message):
            build(replace(cfg, **change), tmp_path / f"out{i}", log=lambda _: None)
        assert not (tmp_path / f"out{i}" / ".staging").exists()  # a failed decode leaves no staged arrays


def test_cli_bad_numbers_give_one_line_errors(tree, tmp_path, capsys):
    from robinterp.cli import main

    base = [
        "build-small-imagenet",
        "--set",
        f"source.train_dir={tree['train_dir']}",
        "--set",
        f"source.val_dir={tree['val_dir']}",
        "--set",
        "source.kind=small_imagenet150",
        "--out-dir",
        str(tmp_path / "out"),
    ]
    for key, value, problem in (
        ("seed", "-1", "less than the minimum of 0"),
        ("classes", "0", "less than the minimum of 1"),
        ("train_per_class", "-1", "less than the minimum of 1"),
        ("image_size", "0", "less than the minimum of 8"),
    ):
        assert main(base + ["--set", f"source.{key}={value}"]) == 2
        err = capsys.readouterr().err
        assert f"settings.source.{key}: {value} is {problem}" in err and err.count("\n") == 2, err
    assert main(base + ["--workers", "-2"]) == 2
    assert capsys.readouterr().err.startswith("error: workers: -2;")
    assert not (tmp_path / "out" / ".staging").exists()


def test_schema_rejects_a_negative_seed():
    from robinterp.config import check_config

    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    source = dict(config["datasets"]["small_imagenet150"]["source"])
    check_config(config)
    config["datasets"]["small_imagenet150"]["source"] = {**source, "seed": -1}
    with pytest.raises(RobinterpError, match="seed"):
        check_config(config)


def test_workers_zero_means_every_usable_core():
    from robinterp.small_imagenet import resolve_workers

    assert resolve_workers(0) == len(os.sched_getaffinity(0)) and resolve_workers(3) == 3


def test_val_labels_with_a_utf8_bom_are_read(tree, tmp_path):
    plain = Path(tree["val_labels"])
    bom = tmp_path / "LOC_val_solution.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())  # as Excel's "CSV UTF-8" saves it
    assert read_val_labels(bom) == read_val_labels(plain) and len(read_val_labels(bom)) == 160 * 3


def test_dot_files_and_folders_are_not_data(tmp_path):
    """A macOS copy (._<name> AppleDouble files, .DS_Store, __MACOSX) or a Jupyter folder
    (.ipynb_checkpoints) builds the same bytes as a clean copy with the same seed."""
    small = make_ilsvrc(tmp_path / "ilsvrc", n_classes=6)
    cfg = BuildConfig.of(
        train_dir=small["train_dir"],
        val_dir=small["val_flat"],
        val_labels=small["val_labels"],
        imagenetv2_dir=small["imagenetv2_dir"],
        synset_mapping=small["synset_mapping"],
        **SIZES,
    )
    build(cfg, tmp_path / "clean", log=lambda _: None)
    for image in [p for p in (tmp_path / "ilsvrc").rglob("*") if p.is_file() and p.parent != tmp_path / "ilsvrc"]:
        (image.parent / f"._{image.name}").write_bytes(b"\x00\x05\x16\x07" + bytes(60))  # AppleDouble header
        (image.parent / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    for root in (small["train_dir"], small["val_flat"], small["imagenetv2_dir"]):
        (Path(root) / ".ipynb_checkpoints").mkdir()
        (Path(root) / "__MACOSX" / wnid(0)).mkdir(parents=True)
        (Path(root) / "__MACOSX" / wnid(0) / f"._{wnid(0)}_0.JPEG").write_bytes(b"\x00\x05\x16\x07")
    build(cfg, tmp_path / "mac", log=lambda _: None)
    for split in ("train", "val", "test"):
        assert _bytes(tmp_path / "clean", split) == _bytes(tmp_path / "mac", split)
        manifest = json.loads((tmp_path / "mac" / split / "manifest.json").read_text())
        assert not any(Path(p).name.startswith(".") for p in manifest["files"])
        assert not any(Path(item["path"]).name.startswith(".") for item in manifest["skipped"])


def test_no_source_file_may_fill_two_rows():
    check_splits_disjoint({"train": ["a/1", "a/2"], "val": ["a/3"], "test": ["b/1", "b/2"]}, "train_holdout")
    check_splits_disjoint({"train": ["a/1"], "val": ["b/1"], "test": ["b/1", "c/1"]}, "ilsvrc_val")  # val = test's part
    for files, validation in (
        ({"train": ["a/1"], "val": ["a/1"], "test": []}, "train_holdout"),
        ({"train": ["a/1"], "val": [], "test": ["a/../a/1"]}, "ilsvrc_val"),
        ({"train": ["a/1", "a/1"], "val": [], "test": []}, "ilsvrc_val"),
        ({"train": [], "val": ["b/1"], "test": ["b/1"]}, "train_holdout"),
    ):
        with pytest.raises(RobinterpError, match="would fill a row of"):
            check_splits_disjoint(files, validation)


def test_cli_reports_errors_without_a_traceback(tree, tmp_path, capsys):
    from robinterp.cli import main

    source = {"kind": "small_imagenet150", "train_dir": str(tmp_path / "nope"), "val_dir": tree["val_dir"]}
    rc = main(
        ["build-small-imagenet", "--settings", json.dumps({"source": source}), "--out-dir", str(tmp_path / "out")]
    )
    assert rc == 2 and "error: train_dir" in capsys.readouterr().err


# --- the ResNet50 path and the author's settings -----------------------------------------------


def test_resnet50_has_torchvision_names_and_shapes():
    import torch
    import torchvision

    from robinterp.models import build_model

    with torch.device("meta"):  # shapes only: no 2 x 25M-parameter initialisation on the CPU
        ours = build_model("resnet50", 150, [0.5] * 3, [0.25] * 3, 1.0).model.state_dict()
        ref = torchvision.models.resnet50(num_classes=150).state_dict()
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in ref.items()}


def test_random_affine_keeps_shape_and_range_and_follows_the_generator():
    import torch

    from robinterp.augment import AugmentConfig, augment

    cfg = AugmentConfig.of(random_resized_crop=True, flip=True, rotation=20)  # the author's Small ImageNet setting
    x = torch.rand(8, 3, 32, 32)
    a = augment(x, cfg, torch.Generator().manual_seed(0))
    b = augment(x, cfg, torch.Generator().manual_seed(0))
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1 and torch.equal(a, b)
    assert not torch.allclose(a, x)


def test_config_yaml_author_variant_validates_when_uncommented():
    from robinterp.config import check_config, settings_value

    text = (ROOT / "config.yaml").read_text()
    block = re.search(r"^ *# - name: robust_l2_author\n(?: *#   .*\n)+", text, re.M).group(0)
    config = yaml.safe_load(text.replace(block, re.sub(r"^( *)# ", r"\1", block, flags=re.M)))
    raw = yaml.safe_load(yaml.safe_dump(config))
    check_config(config)
    attack = settings_value(config, "small_imagenet150", "robust_l2_author", "variant.attack")
    assert {k: attack[k] for k in ("norm", "eps", "step_size", "steps", "bn_mode")} == {
        "norm": "l2",
        "eps": 0.5,
        "step_size": 0.1,
        "steps": 20,
        "bn_mode": "train",
    }
    author = settings_value(config, "small_imagenet150", "robust_l2_author", "train")
    assert (author["optimizer"], author["lr"], author["weight_decay"], author["batch_size"]) == (
        "adam",
        1e-4,
        5e-4,
        200,
    )
    assert author["augment"] == {"random_resized_crop": True, "flip": True, "rotation": 20, "crop_padding": 0}
    ds = raw["datasets"]["small_imagenet150"]
    with pytest.raises(RobinterpError, match="val_per_clas"):
        check_config({**raw, "datasets": {"s": {**ds, "source": {**ds["source"], "val_per_clas": 5}}}})


# --- the DAG ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_snakemake_builds_trains_and_evaluates_small_imagenet(tree, tmp_path):
    config = {
        "results": "results",
        "device": "cpu",
        "threads": {"train": 1, "analysis": 1, "data": 2},
        "datasets": {
            "small_imagenet150": {
                "source": {
                    "kind": "small_imagenet150",
                    "train_dir": tree["train_dir"],
                    "val_dir": tree["val_flat"],
                    "val_labels": tree["val_labels"],
                    "imagenetv2_dir": tree["imagenetv2_dir"],
                    "synset_mapping": tree["synset_mapping"],
                    **SIZES,
                    "image_size": 32,
                },
                "model": {"arch": "resnet50", "width": 0.0625},
                "train": {
                    "epochs": 1,
                    "batch_size": 10,
                    "optimizer": "adam",
                    "lr": 1e-3,
                    "augment": {"random_resized_crop": True, "flip": True, "rotation": 20},
                    "selection_attack": {"norm": "l2", "eps": 0.5, "step_size": 0.25, "steps": 1},
                },
                "eval_attack": {"norm": "l2", "eps": 0.5, "step_size": 0.25, "steps": 2},
                "variants": [
                    {"name": "robust_l2", "attack": {"norm": "l2", "eps": 0.5, "step_size": 0.25, "steps": 1}}
                ],
            }
        },
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake = Path(sys.executable).parent / "snakemake"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # the target first: --configfile and --quiet take several values; the analyses are tested elsewhere
    run = subprocess.run(
        [
            str(snakemake),
            "results/small_imagenet150/tables/accuracy.csv",
            "-s",
            str(ROOT / "Snakefile"),
            "--directory",
            str(tmp_path),
            "--configfile",
            str(tmp_path / "config.yaml"),
            "--cores",
            "2",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    res = tmp_path / "results" / "small_imagenet150"
    table = (res / "tables" / "accuracy.csv").read_text()
    assert "robust_l2" in table
    test = load_split(res / "data" / "test", verify=True)
    assert test.images.shape == (15, 32, 32, 3)
    assert (tmp_path / "results/logs/build_small_imagenet/small_imagenet150.log").is_file()
    shutil.rmtree(tmp_path / ".snakemake", ignore_errors=True)


def test_the_builder_lists_and_decodes_by_the_image_folder_rules(tmp_path):
    """One set of rules for every source: regular files only (a named pipe would block the
    reader), hidden entries skipped, a file once, 16-bit images scaled (image_folder.py)."""
    from PIL import Image

    from robinterp import image_folder
    from robinterp.small_imagenet import scan_train

    folder = tmp_path / "train" / wnid(0)
    folder.mkdir(parents=True)
    Image.fromarray(np.full((20, 20), 32896, np.uint16)).save(folder / "gray16.png")
    os.mkfifo(folder / "pipe.JPEG")
    (folder / "._gray16.png").write_bytes(b"\x00\x05\x16\x07")
    (folder / "same.png").symlink_to("gray16.png")  # one file: it could fill a train and a val row
    assert scan_train(tmp_path / "train") == {wnid(0): [folder / "gray16.png"]}
    assert decode_image is image_folder.decode_image
    assert np.abs(decode_image(folder / "gray16.png", 8).astype(int) - 128).max() <= 1  # was 255: white
