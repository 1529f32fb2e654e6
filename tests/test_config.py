"""Config validation: defaults from the schema, typos and bad values named before any job runs."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from robinterp.config import check_config, settings_value
from robinterp.errors import RobinterpError
from robinterp.settings import schema

ROOT = Path(__file__).resolve().parents[1]


def _demo():
    return yaml.safe_load((ROOT / "workflow/configs/demo.yaml").read_text())


@pytest.mark.parametrize("path", ["config.yaml", "workflow/configs/demo.yaml", "workflow/configs/tiny.yaml"])
def test_shipped_configs_are_valid(path):
    check_config(yaml.safe_load((ROOT / path).read_text()))


def test_typo_names_the_key_and_the_allowed_keys():
    cfg = _demo()
    cfg["datasets"]["digits"]["train"]["epochz"] = 3
    with pytest.raises(
        RobinterpError, match=r"datasets.digits.train: unknown key\(s\) \['epochz'\]; allowed: .*'epochs'"
    ):
        check_config(cfg)


def test_bad_enum_names_the_choices():
    cfg = _demo()
    cfg["datasets"]["digits"]["variants"][1]["attack"]["norm"] = "l3"
    with pytest.raises(
        RobinterpError, match=r"variants\[1\]\.attack.*'l3' is not allowed; choose one of \['l2', 'linf'\]"
    ):
        check_config(cfg)
    cfg = _demo()
    cfg["datasets"]["digits"]["model"]["arch"] = "vgg"
    with pytest.raises(RobinterpError, match=r"model.arch: 'vgg' is not allowed"):
        check_config(cfg)


def test_variant_overrides_merge_over_dataset_defaults():
    cfg = _demo()
    cfg["datasets"]["digits"]["variants"].append(
        {"name": "robust_eps1", "attack": {"eps": 1.0}, "train": {"epochs": 3, "augment": {"flip": True}}}
    )
    check_config(cfg)
    train = settings_value(cfg, "digits", "robust_eps1", "train")
    assert (
        train["epochs"] == 3
        and train["lr"] == 0.05
        and train["augment"] == {"crop_padding": 2, "flip": True, "random_resized_crop": False, "rotation": 0}
    )
    attack = settings_value(cfg, "digits", "robust_eps1", "variant.attack")
    assert attack["eps"] == 1.0 and attack["steps"] == 20  # schema default
    assert settings_value(cfg, "digits", "robust_eps1", "model") == {**cfg["datasets"]["digits"]["model"]}
    assert settings_value(cfg, "digits", "standard", "variant.attack") is None
    assert settings_value(cfg, "digits", "standard", "train")["epochs"] == 12
    cfg["datasets"]["digits"]["variants"][-1]["train"]["lr"] = -1
    with pytest.raises(RobinterpError, match=r"variants\[robust_eps1\]\.train"):
        settings_value(cfg, "digits", "robust_eps1", "train")


def _dry_run(tmp_path, cfg):
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_snakemake_refuses_a_bad_config_before_any_job(tmp_path):
    cfg = _demo()
    cfg["results"] = str(tmp_path / "results")
    cfg["datasets"]["digits"]["train"]["optimizer"] = "rmsprop"
    cfg["datasets"]["digits"]["variants"].append({"name": "standard"})
    out = _dry_run(tmp_path, cfg)
    assert out.returncode != 0
    assert (
        "datasets.digits.train.optimizer: 'rmsprop' is not allowed; choose one of ['sgd', 'adam']"
        in out.stderr + out.stdout
    )
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "results").exists()


def test_duplicate_variant_names_are_refused(tmp_path):
    cfg = _demo()
    cfg["datasets"]["digits"]["variants"].append({"name": "standard"})
    out = _dry_run(tmp_path, cfg)
    assert out.returncode != 0 and "duplicate name(s) ['standard']" in out.stderr + out.stdout


def test_missing_imagenet_path_is_a_clear_message(tmp_path):
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg["datasets"]["small_imagenet150"]["enabled"] = True
    cfg["datasets"]["small_imagenet150"]["source"]["train_dir"] = str(tmp_path / "ILSVRC/train")
    out = _dry_run(tmp_path, cfg)
    msg = out.stderr + out.stdout
    assert out.returncode != 0 and "datasets.small_imagenet150.source.train_dir" in msg and "does not exist" in msg
    assert "Traceback" not in out.stderr


def test_paper_config_dry_run_plans_both_cifar_variants(tmp_path):
    out = _dry_run(tmp_path, yaml.safe_load((ROOT / "config.yaml").read_text()))
    assert out.returncode == 0, out.stderr[-2000:]
    for target in (
        "results/cifar10/models/standard/model.pt",
        "results/cifar10/models/robust_l2/model.pt",
        "results/cifar10/tables/accuracy.csv",
    ):
        assert target in out.stdout
    assert "small_imagenet150" not in out.stdout  # disabled until the user points it at ILSVRC


def test_source_keys_are_checked_per_kind_and_defaults_filled():
    cfg = _demo()
    cfg["datasets"]["mine"] = {
        "source": {"kind": "image_folder", "rooot": "/data/mine", "imagesize": 48},
        "variants": [{"name": "standard"}],
    }
    with pytest.raises(RobinterpError) as e:
        check_config(cfg)
    lines = str(e.value).splitlines()[1:]
    assert (
        "  datasets.mine.source: unknown key(s) ['imagesize', 'rooot']; allowed: ['image_size', 'kind', 'root', "
        "'seed', 'test_fraction', 'val_fraction']" in lines
    )
    assert "  datasets.mine.source: 'root' is a required property" in lines
    cfg["datasets"]["mine"]["source"] = {"kind": "image_folder", "root": "/data/mine", "val_fraction": 0}
    with pytest.raises(RobinterpError, match=r"datasets.mine.source.val_fraction: 0 is less than or equal"):
        check_config(cfg)
    cfg["datasets"]["mine"]["source"] = {"kind": "image_folder", "root": "/data/mine"}
    cfg["datasets"]["c10"] = {"source": {"kind": "cifar10"}, "variants": [{"name": "standard"}]}
    cfg["datasets"]["digits"]["source"] = {"kind": "digits"}
    check_config(cfg)  # fills every default in place
    ds = cfg["datasets"]
    assert ds["mine"]["source"] == {
        "kind": "image_folder",
        "root": "/data/mine",
        "image_size": 64,
        "val_fraction": 0.1,
        "test_fraction": 0.2,
        "seed": 0,
    }
    assert ds["c10"]["source"] == {
        "kind": "cifar10",
        "root": "data/cifar10",
        "download": False,
        "val_size": 5000,
        "seed": 0,
        "verify_md5": True,
    }
    assert ds["digits"]["source"] == {
        "kind": "digits",
        "image_size": 16,
        "val_fraction": 0.1,
        "test_fraction": 0.2,
        "seed": 0,
    }


def test_source_keys_are_the_writers_and_the_docs():
    """One source of defaults, the schema: each writer takes exactly its kind's keys, none with a
    default of its own, and docs/own_dataset.md names each key."""
    import inspect

    from robinterp.sources import SOURCES

    docs = (ROOT / "docs/own_dataset.md").read_text()
    for kind, writer in SOURCES.items():
        props = schema()["$defs"][f"{kind}_source"]["properties"]
        params = inspect.signature(writer).parameters
        assert set(props) - {"kind"} == set(params) - {"out_dir"}, kind
        assert all(p.default is inspect.Parameter.empty for p in params.values()), kind
        for key in props:
            if "default" in props[key]:
                assert f"`{key}`" in docs, key


def test_variant_override_typo_names_the_key(tmp_path):
    cfg = _demo()
    cfg["datasets"]["digits"]["variants"][1]["train"] = {"epoch": 3}
    with pytest.raises(
        RobinterpError,
        match=r"datasets.digits.variants\[robust_l2\]\.train: unknown key\(s\) "
        r"\['epoch'\]; allowed: .*'epochs'",
    ):
        check_config(cfg)  # the override block is free-form; merged over the dataset's block, it is checked
    cfg["results"] = str(tmp_path / "results")
    out = _dry_run(tmp_path, cfg)
    msg = out.stderr + out.stdout
    assert out.returncode != 0 and "Traceback" not in msg
    assert "datasets.digits.variants[robust_l2].train: unknown key(s) ['epoch']" in msg


def test_plain_dry_run_uses_the_default_profile(tmp_path):
    """`snakemake -n` with no profile flag picks up profiles/default next to the Snakefile."""
    profile = yaml.safe_load((ROOT / "profiles/default/profile.yaml").read_text())
    assert profile["rerun-incomplete"] and profile["printshellcmds"] and profile["show-failed-logs"]
    assert "resources" not in profile  # the GPU limit is the machine's GPU count (robinterp.gpus)
    cfg = _demo()
    cfg["results"] = str(tmp_path / "results")
    out = _dry_run(tmp_path, cfg)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Using workflow specific profile profiles/default for setting default command line arguments." in out.stderr
    assert "python -m robinterp prepare-data" in out.stdout  # printshellcmds is on
    elsewhere = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-n",
            "--cores",
            "1",
            "-s",
            str(ROOT / "Snakefile"),
            "-d",
            str(ROOT),
            "--configfile",
            str(tmp_path / "cfg.yaml"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert elsewhere.returncode == 0 and "workflow specific profile" in elsewhere.stderr


@pytest.mark.parametrize("name", ["my data", "..", "../up", ".hidden", "a/b"])
def test_a_dataset_name_that_is_not_a_plain_folder_name_is_refused(name):
    """The dataset name is a folder under results/ and in logs/: a space splits a shell command,
    `..` writes beside results/."""
    cfg = _demo()
    cfg["datasets"][name] = cfg["datasets"].pop("digits")
    with pytest.raises(RobinterpError, match=rf"datasets: name '{re.escape(name)}' does not match .*letters, digits"):
        check_config(cfg)


@pytest.mark.parametrize("results", ["", "  ", "/"])
def test_results_at_the_filesystem_root_is_refused(results):
    from robinterp.config import check_run

    cfg = _demo()
    cfg["results"] = results
    with pytest.raises(RobinterpError, match=r"results: .* top of the filesystem; name the output folder"):
        check_run(cfg)


def test_nan_and_infinite_numbers_are_refused_by_key():
    """JSON schema's `number` takes YAML's .nan and .inf; a NaN setting trains to numbers that look fine."""
    from robinterp.attacks import AttackConfig

    cfg = _demo()
    cfg["datasets"]["digits"]["variants"][1]["attack"]["eps"] = float("nan")
    cfg["datasets"]["digits"]["train"]["lr"] = float("inf")
    with pytest.raises(RobinterpError) as e:
        check_config(cfg)
    assert "datasets.digits.variants[1].attack.eps: nan is not a finite number" in str(e.value)
    assert "datasets.digits.train.lr: inf is not a finite number" in str(e.value)
    with pytest.raises(RobinterpError, match=r"attack.eps: nan is not a finite number"):
        AttackConfig.from_dict({"eps": float("nan")})  # a verb's JSON block: json.loads reads NaN too


def test_a_string_eps_names_eps_and_zero_std_or_two_means_are_refused():
    cfg = _demo()
    cfg["datasets"]["digits"]["variants"][1]["attack"]["eps"] = "0.5"
    with pytest.raises(RobinterpError, match=r"variants\[1\]\.attack\.eps: '0.5' is not of type 'number'"):
        check_config(cfg)
    cfg = _demo()
    cfg["datasets"]["digits"]["model"].update(mean=[0.485, 0.456], std=[0.0, 0.2, 0.2])
    with pytest.raises(RobinterpError) as e:
        check_config(cfg)
    assert "datasets.digits.model.mean: [0.485, 0.456] is too short" in str(e.value)
    assert "datasets.digits.model.std[0]: 0.0 is less than or equal to the minimum of 0" in str(e.value)


def test_run_variants_must_name_a_variant_of_every_dataset_that_runs(tmp_path):
    from robinterp.config import check_run

    cfg = _demo()
    cfg["run_variants"] = ["standard"]
    check_run(cfg)
    cfg["datasets"]["c10"] = {"source": {"kind": "cifar10"}, "variants": [{"name": "robust"}]}
    with pytest.raises(RobinterpError, match=r"selects no variant of dataset\(s\) \['c10'\].*run_datasets"):
        check_run(cfg)
    cfg["run_datasets"] = ["digits"]
    check_run(cfg)
    cfg = _demo()
    cfg["results"] = str(tmp_path / "results")
    cfg["run_variants"] = ["nope"]
    out = _dry_run(tmp_path, cfg)  # the workflow's validation block calls it
    msg = out.stderr + out.stdout
    assert out.returncode != 0 and "Traceback" not in msg and "IndexError" not in msg
    assert "run_variants: ['nope'] name no variant of the datasets that run (['digits'])" in msg


def test_paths_with_a_space_reach_their_jobs_whole(tmp_path):
    """`results: "runs/victim run"` overwrote the file runs/victim with an argparse error: the
    rules' shell lines did not quote paths. Every path now travels quoted."""
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "victim").write_text("a file of the user's")
    cfg = _demo()
    cfg["results"] = str(runs / "victim run")
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    target = runs / "victim run" / "digits" / "data" / "test" / "manifest.json"
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", str(target), "--cores", "1", "--configfile", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (runs / "victim").read_text() == "a file of the user's" and target.is_file()
    assert (runs / "victim run" / "logs" / "prepare_data" / "digits.log").is_file()


def test_the_zoo_study_plans_every_model(tmp_path):
    """The RobustBench study config plans the download, import and every analysis of each model."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-n",
            "--cores",
            "1",
            "--configfile",
            str(ROOT / "workflow/configs/robustbench_cifar10_l2.yaml"),
            "--config",
            f"results={tmp_path / 'results'}",
            f"robustbench_cache={tmp_path / 'rb'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    models = len(
        yaml.safe_load((ROOT / "workflow/configs/robustbench_cifar10_l2.yaml").read_text())["datasets"]["cifar10"][
            "variants"
        ]
    )
    jobs = dict(line.split() for line in out.stdout.split("Job stats:")[1].split("total")[0].splitlines()[3:] if line)
    from robinterp.resources import GPU_RULES

    per_model = set(GPU_RULES) - {"train", "inception_features"} | {"download_robustbench", "import_checkpoint"}
    assert models == 21 and all(jobs[rule] == str(models) for rule in per_model), jobs
    assert "train" not in jobs and jobs["robustness_curve"] == "1"
