"""A user's own image folder through the real workflow: a changed folder rebuilds the packed splits,
a failed job shows its error in the terminal, and the documented rerun commands do what they say."""

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def snakemake(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def job_counts(out: str) -> dict:
    """{rule: count} from a dry run's "Job stats" table."""
    if "Job stats:" not in out:
        return {}
    table = out.split("Job stats:")[1].split("total")[0].splitlines()
    return {p[0]: int(p[1]) for p in (line.split() for line in table) if len(p) == 2 and p[1].isdigit()}


def _image(path, shade):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (10, 12), color=(shade, 255 - shade, 90)).save(path)


@pytest.fixture
def own_folder(tmp_path):
    """Two classes of six 10x12 images, and a config that packs them at 8 px."""
    for c, cls in enumerate(("h_stripes", "v_stripes")):
        for i in range(6):
            _image(tmp_path / "images" / cls / f"img_{i}.png", 40 * i + c)
    cfg = {
        "results": str(tmp_path / "results"),
        "datasets": {
            "mine": {
                "source": {"kind": "image_folder", "root": str(tmp_path / "images"), "image_size": 8},
                "model": {"width": 0.0625},
                "train": {"epochs": 1},
                "variants": [{"name": "standard"}, {"name": "robust", "attack": {"eps": 0.5}}],
            }
        },
    }
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(cfg))
    return tmp_path


def test_a_changed_folder_rebuilds_the_packed_splits(own_folder):
    cfgfile, target = str(own_folder / "mine.yaml"), str(own_folder / "results/mine/data/train/manifest.json")
    r = snakemake("--cores", "1", "--configfile", cfgfile, "--", target)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Nothing to be done" in snakemake("-n", "--cores", "1", "--configfile", cfgfile, "--", target).stdout

    def plans_prepare_data():
        out = snakemake("-n", "--cores", "1", "--configfile", cfgfile, "--", target)
        return job_counts(out.stdout).get("prepare_data") == 1

    _image(own_folder / "images/h_stripes/new.png", 7)  # an added image
    assert plans_prepare_data()
    (own_folder / "images/h_stripes/new.png").unlink()  # ... removed again: the listing is back as built
    (own_folder / "images/v_stripes/img_0.png").unlink()  # a deleted image
    assert plans_prepare_data()
    r = snakemake("--cores", "1", "--configfile", cfgfile, "--", target)
    assert r.returncode == 0, r.stderr[-3000:]
    time.sleep(1.1)  # a coarse file-system clock must see the edit as newer
    _image(own_folder / "images/h_stripes/img_3.png", 200)  # an edited image
    assert plans_prepare_data()
    # hidden entries are neither inputs nor classes
    (own_folder / "images/.ipynb_checkpoints").mkdir()
    _image(own_folder / "images/h_stripes/._img_1.png", 0)
    r = snakemake("--cores", "1", "--configfile", cfgfile, "--", target)
    assert r.returncode == 0, r.stderr[-3000:]
    _image(own_folder / "images/__MACOSX/h_stripes/._img_2.png", 0)
    assert "Nothing to be done" in snakemake("-n", "--cores", "1", "--configfile", cfgfile, "--", target).stdout


def test_a_failed_job_shows_its_error_in_the_terminal(own_folder):
    for name in ("broken_a.png", "broken_b.jpg"):
        (own_folder / "images/h_stripes" / name).write_bytes(b"not an image")
    target = str(own_folder / "results/mine/data/train/manifest.json")
    r = snakemake("--cores", "1", "--configfile", str(own_folder / "mine.yaml"), "--", target)
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert "error: 2 image file(s) cannot be decoded" in out  # the log, printed by show-failed-logs
    assert "broken_a.png" in out and "broken_b.jpg" in out
    assert "python -m robinterp prepare-data" in out  # printshellcmds


def test_documented_rerun_commands_select_what_they_say(own_folder):
    """README/docs: `--forcerun RULE -- PATH` targets the one figure; `-R RULE PATH` would swallow
    PATH as a rule name and plan every figure; targets go before `--configfile`."""
    cfgfile = str(own_folder / "mine.yaml")
    fig = str(own_folder / "results/mine/figures/ig_compare.png")
    ok = snakemake("-n", "--cores", "1", "--configfile", cfgfile, "--forcerun", "plot_attributions", "--", fig)
    assert ok.returncode == 0, ok.stderr[-2000:]
    jobs = job_counts(ok.stdout)
    assert jobs["plot_attributions"] == 1 and "all" not in jobs and "plot_feature_vis" not in jobs
    swallowed = snakemake("-n", "--cores", "1", "--configfile", cfgfile, "-R", "plot_attributions", fig)
    assert job_counts(swallowed.stdout).get("plot_attributions", 1) > 1 or swallowed.returncode != 0
    first = snakemake("-n", "--cores", "1", fig, "--configfile", cfgfile)
    assert first.returncode == 0 and job_counts(first.stdout) == jobs
    docs = (ROOT / "docs/own_dataset.md").read_text()
    assert "--forcerun plot_attributions -- results/mine/figures/ig_compare.png" in docs
    assert "-R plot_attributions results" not in (ROOT / "README.md").read_text()
