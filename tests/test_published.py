"""Published checkpoints import as the same function: files written by the publishers' own code
(robustness, RobustBench, torchvision), logits compared with the publishers' own loaders."""

import os
import pickle

import pytest
import torch
from publishers import (
    CIFAR_MEAN,
    CIFAR_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    RICE_STD,
    checkpoint_settings,
    import_file,
    import_publishers,
    madrylab_file,
    madrylab_reference,
    perturb,
    robustbench_file,
    robustbench_reference,
)

from robinterp.checkpoints import load_model
from robinterp.cli import main
from robinterp.errors import RobinterpError

TOL = 1e-4


def _close(ours, ref, x):
    with torch.no_grad():
        a, b = ours(x), ref(x)
    assert a.shape == b.shape and b.std() > 0.1  # the comparison is not between constants
    assert (a - b).abs().max() < TOL


@pytest.mark.parametrize(
    "kind,robustness_arch,arch,size,legacy",
    [
        ("cifar", "resnet18", "resnet18_cifar", 32, False),
        ("cifar", "resnet50", "resnet50_cifar", 32, True),  # the published CIFAR files: torch 1.1's layout
        ("imagenet", "resnet18", "resnet18", 64, False),
        ("imagenet", "resnet50", "resnet50", 64, False),
    ],
)
def test_madrylab_files_import_as_the_same_function(tmp_path, monkeypatch, kind, robustness_arch, arch, size, legacy):
    import_publishers()
    src = madrylab_file(tmp_path / "src.pt", kind, robustness_arch, legacy=legacy)
    import_file("madrylab", arch, src, tmp_path / "model.pt", log=lambda s: None)
    ours, meta = load_model(tmp_path / "model.pt")
    _close(ours, madrylab_reference(src, kind, robustness_arch, monkeypatch), torch.rand(3, 3, size, size))
    assert meta["arch"]["mean"] == pytest.approx(CIFAR_MEAN if kind == "cifar" else IMAGENET_MEAN, abs=1e-6)
    assert any("attacker" in d and "checked equal" in d for d in meta["source"]["dropped"])


def test_madrylab_legacy_state_dict_key_and_dill_pickled_functions(tmp_path, monkeypatch):
    """Older releases say `state_dict`; cifar_l2_0_25/1_0 hold a dill-pickled scheduler lambda whose
    closure holds the run's arguments: stand-ins replace them and nothing of it runs."""
    import argparse

    import_publishers()
    marker = tmp_path / "ran"
    args = argparse.Namespace(step_lr=50, step_lr_gamma=0.1, marker=str(marker))
    schedule = {"lr_lambdas": [lambda epoch: args.step_lr_gamma ** (epoch // args.step_lr)], "last_epoch": 3}
    src = madrylab_file(tmp_path / "src.pt", "cifar", "resnet18", key="state_dict", schedule=schedule, legacy=True)
    with pytest.raises(RobinterpError):  # the plain weights_only loader refuses it ...
        from robinterp.checkpoints import read_checkpoint

        read_checkpoint(src)
    record = import_file("madrylab", "resnet18_cifar", src, tmp_path / "model.pt", log=lambda s: None)
    ours, _ = load_model(tmp_path / "model.pt")  # ... ours keeps the tensors and drops the function
    _close(ours, madrylab_reference(src, "cifar", "resnet18", monkeypatch), torch.rand(2, 3, 32, 32))
    assert "schedule" in record["dropped"][0] and not marker.exists()


def test_madrylab_attacker_copy_must_equal_the_model(tmp_path):
    import dill

    import_publishers()
    src = madrylab_file(tmp_path / "src.pt", "cifar", "resnet18")
    ckpt = torch.load(src, pickle_module=dill, weights_only=False)
    ckpt["model"] = {k: v.clone() for k, v in ckpt["model"].items()}
    ckpt["model"]["module.attacker.model.linear.bias"] += 1
    torch.save(ckpt, src)
    with pytest.raises(RobinterpError, match="attacker.model.linear.bias differs from the model copy"):
        import_file("madrylab", "resnet18_cifar", src, tmp_path / "model.pt", log=lambda s: None)


@pytest.mark.parametrize(
    "name,wrap,keep_norm",
    [
        ("Engstrom2019Robustness", True, False),  # resnet50_cifar; normalisation from --mean/--std
        ("Rice2020Overfitting", False, True),  # preact_resnet18; mu/sigma read from the file
        ("Rice2020Overfitting", True, False),
        ("Sehwag2021Proxy_R18", True, False),  # resnet18_cifar on unnormalised pixels
    ],
)
def test_robustbench_cifar10_files_import_as_the_same_function(tmp_path, name, wrap, keep_norm):
    import_publishers()
    from robustbench.model_zoo.architectures.resnet import ResNet18
    from robustbench.model_zoo.cifar10 import Engstrom2019RobustnessNet, Rice2020OverfittingNetL2

    arch, net, mean, std = {
        "Engstrom2019Robustness": ("resnet50_cifar", Engstrom2019RobustnessNet, CIFAR_MEAN, CIFAR_STD),
        "Rice2020Overfitting": ("preact_resnet18", Rice2020OverfittingNetL2, CIFAR_MEAN, RICE_STD),
        "Sehwag2021Proxy_R18": ("resnet18_cifar", ResNet18, [0.0] * 3, [1.0] * 3),
    }[name]
    src = robustbench_file(tmp_path / "zoo", name, perturb(net()), wrap, keep_norm)
    norm = {} if keep_norm else {"mean": mean, "std": std}
    import_file("robustbench", arch, src, tmp_path / "model.pt", log=lambda s: None, **norm)
    ours, meta = load_model(tmp_path / "model.pt")
    _close(ours, robustbench_reference(tmp_path / "zoo", name), torch.rand(3, 3, 32, 32))
    assert meta["source"]["normalisation"] == ("file" if keep_norm else "given")


def test_robustbench_imagenet_file_imports_as_the_same_function(tmp_path):
    """ImageNet entries: torchvision ResNet50 behind RobustBench's normalize_model; the file has
    the bare torchvision keys (robustbench adds `model.` and the normaliser)."""
    import_publishers()
    import torchvision
    from robustbench.model_zoo.architectures.utils_architectures import normalize_model

    net = normalize_model(perturb(torchvision.models.resnet50()), IMAGENET_MEAN, IMAGENET_STD)
    state = {k.removeprefix("model."): v for k, v in net.state_dict().items() if not k.startswith("normalize.")}
    path = tmp_path / "zoo" / "imagenet" / "Linf" / "Salman2020Do_R50.pt"
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    import_file(
        "robustbench", "resnet50", path, tmp_path / "model.pt", mean=IMAGENET_MEAN, std=IMAGENET_STD, log=lambda s: None
    )
    ours, _ = load_model(tmp_path / "model.pt")
    _close(
        ours, robustbench_reference(tmp_path / "zoo", "Salman2020Do_R50", "imagenet", "Linf"), torch.rand(2, 3, 64, 64)
    )


def test_robustbench_file_without_normalisation_needs_mean_and_std(tmp_path):
    import_publishers()
    from robustbench.model_zoo.cifar10 import Rice2020OverfittingNetL2

    src = robustbench_file(tmp_path, "Rice2020Overfitting", Rice2020OverfittingNetL2(), True, False)
    with pytest.raises(RobinterpError, match="does not hold its input normalisation; give the publisher's --mean"):
        import_file("robustbench", "preact_resnet18", src, tmp_path / "m.pt", log=lambda s: None)


@pytest.mark.parametrize("arch", ["resnet18", "resnet50", "wide_resnet50_2"])
def test_torchvision_files_import_as_the_same_function(tmp_path, arch):
    import torchvision

    net = perturb(getattr(torchvision.models, arch)())
    state = net.state_dict()
    if arch == "resnet50":  # like resnet50-0676ba61.pth (2017): no num_batches_tracked buffers
        state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "src.pth")
    import_file(
        "torchvision",
        arch,
        tmp_path / "src.pth",
        tmp_path / "model.pt",
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        log=lambda s: None,
    )
    ours, meta = load_model(tmp_path / "model.pt")
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    _close(ours, lambda x: net((x - mean) / std), torch.rand(2, 3, 64, 64))
    assert meta["arch"]["num_classes"] == 1000


def test_class_subset_keeps_exactly_those_logits(tmp_path):
    import torchvision

    net = perturb(torchvision.models.resnet18())
    torch.save(net.state_dict(), tmp_path / "src.pth")
    index = [f"n{i:08d}" for i in range(1000)]
    subset = ["n00000417", "n00000003", "n00000999"]
    import_file(
        "torchvision",
        "resnet18",
        tmp_path / "src.pth",
        tmp_path / "model.pt",
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        classes=subset,
        class_subset=subset,
        index_wnids=index,
        log=lambda s: None,
    )
    ours, meta = load_model(tmp_path / "model.pt")
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    _close(ours, lambda x: net((x - mean) / std)[:, [417, 3, 999]], torch.rand(2, 3, 64, 64))
    assert meta["classes"] == subset and meta["arch"]["num_classes"] == 3


def test_wrong_architecture_and_class_count_are_clear_errors(tmp_path):
    import torchvision

    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "r18.pth")
    with pytest.raises(RobinterpError, match="weights do not fit --arch resnet50.*Missing key"):
        import_file(
            "torchvision",
            "resnet50",
            tmp_path / "r18.pth",
            tmp_path / "m.pt",
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            log=lambda s: None,
        )
    with pytest.raises(RobinterpError, match="1000 classes but the dataset has 10.*class_subset: wnids"):
        import_file(
            "torchvision",
            "resnet18",
            tmp_path / "r18.pth",
            tmp_path / "m.pt",
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            classes=[str(i) for i in range(10)],
            log=lambda s: None,
        )
    with pytest.raises(RobinterpError, match="not published in the torchvision format"):
        import_file("torchvision", "preact_resnet18", tmp_path / "r18.pth", tmp_path / "m.pt")


# --- safety -----------------------------------------------------------------------------------------


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("legacy", [False, True])
def test_a_pickle_that_calls_os_system_is_refused_and_runs_nothing(tmp_path, legacy):
    marker = tmp_path / "ran"
    state = {"conv1.weight": torch.zeros(64, 3, 7, 7), "evil": _RunsCode(marker)}
    torch.save({"state_dict": state}, tmp_path / "evil.pt", _use_new_zipfile_serialization=not legacy)
    with pytest.raises(RobinterpError, match=r"refused: the pickle calls (posix|os|nt)\.system.*nothing was run"):
        import_file("torchvision", "resnet50", tmp_path / "evil.pt", tmp_path / "m.pt", log=lambda s: None)
    assert not marker.exists() and not (tmp_path / "m.pt").exists()


def test_an_html_page_saved_as_pt_is_named_as_such(tmp_path):
    page = b"<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head><body>" + b"x" * 3000
    (tmp_path / "Engstrom2019Robustness.pt").write_bytes(page)
    with pytest.raises(RobinterpError, match="an HTML page titled 'Google Drive - Virus scan warning'.*download"):
        import_file(
            "robustbench",
            "resnet50_cifar",
            tmp_path / "Engstrom2019Robustness.pt",
            tmp_path / "m.pt",
            log=lambda s: None,
        )


def test_truncated_empty_foreign_and_mispinned_files_are_refused(tmp_path):
    import torchvision

    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "ok.pth")
    data = (tmp_path / "ok.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.pth").write_bytes(b"")
    (tmp_path / "lfs.pth").write_bytes(b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 9\n")
    (tmp_path / "npz.pth").write_bytes(b"\x93NUMPY" + b"\0" * 2048)
    (tmp_path / "plain.pth").write_bytes(pickle.dumps({"w": list(range(2000))}))
    cases = {
        "cut.pth": "truncated zip",
        "empty.pth": "0 bytes, too small",
        "lfs.pth": "Git LFS pointer",
        "npz.pth": "not a PyTorch checkpoint",
        "plain.pth": "not a PyTorch checkpoint",
    }
    for name, message in cases.items():
        with pytest.raises(RobinterpError, match=message):
            import_file(
                "torchvision",
                "resnet18",
                tmp_path / name,
                tmp_path / "m.pt",
                mean=IMAGENET_MEAN,
                std=IMAGENET_STD,
                log=lambda s: None,
            )
    with pytest.raises(RobinterpError, match="does not match the pinned 0000"):
        import_file(
            "torchvision",
            "resnet18",
            tmp_path / "ok.pth",
            tmp_path / "m.pt",
            sha256="0" * 64,
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            log=lambda s: None,
        )


def test_cli_verb_prints_the_sha256_and_writes_a_loadable_checkpoint(tmp_path, capsys):
    import hashlib

    import torchvision

    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "r18.pth")
    digest = hashlib.sha256((tmp_path / "r18.pth").read_bytes()).hexdigest()
    block = {
        "format": "torchvision",
        "arch": "resnet18",
        "path": str(tmp_path / "r18.pth"),
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
    }
    rc = main(
        [
            "import-checkpoint",
            *checkpoint_settings(**block, num_classes=1000, sha256=digest),
            "--input",
            str(tmp_path / "r18.pth"),
            "--out",
            str(tmp_path / "m.pt"),
        ]
    )
    assert rc == 0 and digest in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt", "r18.pth"]
    _, meta = load_model(tmp_path / "m.pt")
    assert meta["source"]["sha256"] == digest and meta["arch"]["name"] == "resnet18"
    rc = main(
        [
            "import-checkpoint",
            *checkpoint_settings(**block, num_classes=10),
            "--input",
            str(tmp_path / "r18.pth"),
            "--out",
            str(tmp_path / "m2.pt"),
        ]
    )
    assert rc == 2 and "the head has 1000 classes, --num-classes says 10" in capsys.readouterr().err


def test_cli_class_subset_reads_the_dataset_wnids_and_the_imagenet_index(tmp_path, capsys):
    """The workflow's call for an ImageNet model on Small ImageNet: --classes (the split, wnids as
    class names) + --class-subset wnids + --imagenet-index (LOC_synset_mapping.txt or a train folder)."""
    import numpy as np
    import torchvision

    from robinterp.data import write_split

    net = perturb(torchvision.models.resnet18())
    torch.save(net.state_dict(), tmp_path / "r18.pth")
    wnids = ["n00000003", "n00000417", "n00000999"]  # sorted, as Small ImageNet labels them
    write_split(tmp_path / "test", np.zeros((3, 8, 8, 3), np.uint8), np.arange(3), wnids, {"kind": "fake"})
    (tmp_path / "LOC_synset_mapping.txt").write_text("".join(f"n{i:08d} class {i}\n" for i in range(1000)))
    train = tmp_path / "train"
    for i in range(1000):
        (train / f"n{i:08d}").mkdir(parents=True)
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    for index in (tmp_path / "LOC_synset_mapping.txt", train):
        out = tmp_path / f"{index.name}.pt"
        block = {
            "format": "torchvision",
            "arch": "resnet18",
            "path": str(tmp_path / "r18.pth"),
            "mean": IMAGENET_MEAN,
            "std": IMAGENET_STD,
            "class_subset": "wnids",
        }
        rc = main(
            [
                "import-checkpoint",
                *checkpoint_settings(**block),
                "--input",
                str(tmp_path / "r18.pth"),
                "--out",
                str(out),
                "--classes",
                str(tmp_path / "test/manifest.json"),
                "--imagenet-index",
                str(index),
            ]
        )
        assert rc == 0, capsys.readouterr().err
        ours, meta = load_model(out)
        assert meta["classes"] == wnids
        _close(ours, lambda x: net((x - mean) / std)[:, [3, 417, 999]], torch.rand(2, 3, 64, 64))
    (tmp_path / "short.txt").write_text("n00000001 one\n")
    rc = main(
        [
            "import-checkpoint",
            *checkpoint_settings(**block),
            "--input",
            str(tmp_path / "r18.pth"),
            "--out",
            str(tmp_path / "x.pt"),
            "--classes",
            str(tmp_path / "test"),
            "--imagenet-index",
            str(tmp_path / "short.txt"),
        ]
    )
    assert rc == 2 and "1 wnids, expected ILSVRC's 1000" in capsys.readouterr().err


def test_allow_list_keeps_numpy_scalars_and_refuses_builtins_that_reach_code(tmp_path):
    """numpy scalars (an accuracy saved as np.float64) load; `getattr` on a real object, `eval` and
    `builtins.__import__` are refused by name."""
    import numpy as np

    from robinterp.safe_unpickle import load_untrusted

    torch.save({"state_dict": {"w": torch.ones(300)}, "prec1": np.float64(70.17)}, tmp_path / "ok.pt")
    obj, _ = load_untrusted(tmp_path / "ok.pt")
    assert float(obj["prec1"]) == 70.17 and torch.equal(obj["state_dict"]["w"], torch.ones(300))

    class Reach:
        def __init__(self, fn, args):
            self.fn, self.args = fn, args

        def __reduce__(self):
            return (self.fn, self.args)

    for fn, args, named in (
        (getattr, (torch.Size([1]), "count"), r"getattr\(Size, 'count'\)"),
        (eval, ("1",), "builtins.eval"),
        (__import__, ("os",), "builtins.__import__"),
    ):
        torch.save({"w": torch.ones(300), "x": Reach(fn, args)}, tmp_path / "bad.pt")
        with pytest.raises(RobinterpError, match=f"refused: the pickle calls {named}"):
            load_untrusted(tmp_path / "bad.pt")


def _tiny_robustbench_state():
    """A width-1/8 CIFAR ResNet18 as a RobustBench state dict (mu/sigma beside the weights)."""
    from robinterp.models import build_model

    torch.manual_seed(0)
    net = build_model("resnet18_cifar", 10, CIFAR_MEAN, CIFAR_STD, 0.125).eval()
    state = {k.removeprefix("model."): v for k, v in net.state_dict().items() if k.startswith("model.")}
    norm = {"mu": torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1), "sigma": torch.tensor(CIFAR_STD).view(1, 3, 1, 1)}
    return net, {**state, **norm}


def test_a_safetensors_file_imports_and_evaluate_says_to_import_it(tmp_path):
    from safetensors.torch import save_file

    net, state = _tiny_robustbench_state()
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(RobinterpError, match=r"model.safetensors: a safetensors file .* robinterp import-checkpoint"):
        load_model(tmp_path / "model.safetensors")
    record = import_file(
        "robustbench",
        "resnet18_cifar",
        tmp_path / "model.safetensors",
        tmp_path / "m.pt",
        width=0.125,
        log=lambda s: None,
    )
    ours, meta = load_model(tmp_path / "m.pt")
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(ours(x), net(x)) and record["normalisation"] == "file"
    assert meta["arch"]["mean"] == pytest.approx(CIFAR_MEAN)


def test_normalisation_flags_are_checked_by_name(tmp_path, capsys):
    """Two --mean values blamed the architecture; a zero --std divided by zero."""
    _, state = _tiny_robustbench_state()
    torch.save({k: v for k, v in state.items() if k not in ("mu", "sigma")}, tmp_path / "bare.pt")
    block = {"format": "robustbench", "arch": "resnet18_cifar", "width": 0.125, "path": str(tmp_path / "bare.pt")}
    argv = ["import-checkpoint", "--input", str(tmp_path / "bare.pt"), "--out", str(tmp_path / "m.pt")]
    assert main(argv + checkpoint_settings(**block, mean=[0.485, 0.456], std=[0.2, 0.2, 0.2])) == 2
    err = capsys.readouterr().err
    assert "settings.variant.checkpoint.mean: [0.485, 0.456] is too short" in err and "arch" not in err
    assert main(argv + checkpoint_settings(**block, mean=[0.5] * 3, std=[0.2, 0, 0.2])) == 2
    assert "settings.variant.checkpoint.std[1]: 0 is less than or equal to the minimum of 0" in capsys.readouterr().err
    state["linear.bias"][3] = float("inf")
    torch.save(state, tmp_path / "inf.pt")
    with pytest.raises(
        RobinterpError,
        match=r"inf.pt: 1 weight tensor\(s\) hold NaN or infinite values "
        r"\(model.linear.bias\)",
    ):
        import_file(
            "robustbench", "resnet18_cifar", tmp_path / "inf.pt", tmp_path / "m.pt", width=0.125, log=lambda s: None
        )
    assert not (tmp_path / "m.pt").exists()


def test_a_refused_global_is_named_without_its_terminal_escapes(tmp_path):
    """A global named with escape codes must not reach the terminal raw."""
    import zipfile

    torch.save({"w": torch.zeros(300)}, tmp_path / "ok.pt")
    hostile = b"\x80\x02c" + b"os\x1b[2J\nsystem\n" + b"q\x00."  # GLOBAL 'os<clear screen>' 'system'
    with zipfile.ZipFile(tmp_path / "ok.pt") as src, zipfile.ZipFile(tmp_path / "evil.pt", "w") as dst:
        for info in src.infolist():
            data = hostile if info.filename.endswith("data.pkl") else src.read(info)
            dst.writestr(info.filename, data)
    with pytest.raises(RobinterpError, match=r"refused: the pickle calls os\\x1b\[2J.system, .*nothing was run") as e:
        import_file("torchvision", "resnet18", tmp_path / "evil.pt", tmp_path / "m.pt", log=lambda s: None)
    assert "\x1b" not in str(e.value)
