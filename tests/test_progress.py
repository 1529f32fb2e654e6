"""Progress in log files: one line with done/total, rate and ETA, at most every interval seconds."""

from __future__ import annotations

import io
import re
import sys

import pytest
import torch

from robinterp.errors import RobinterpError
from robinterp.progress import INTERVAL_ENV, LogProgress, progress

LINE = re.compile(
    r"^(?P<desc>.+): (?P<done>\d+)/(?P<total>\d+) (?P<unit>\S+) \((?P<pct>\d+)%\), "
    r"(?P<rate>[\d.e+-]+) (?P=unit)/s, eta (?P<eta>\d+:\d\d:\d\d)$"
)


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_lines_carry_done_total_rate_and_eta_and_are_rate_limited():
    clock, out = FakeClock(), io.StringIO()
    bar = LogProgress(range(10), "inversion", unit="steps", interval=30, clock=clock, stream=out)
    for _ in bar:
        clock.now += 10  # one item every 10 s: a line after every third item, never more often
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    parsed = [LINE.match(line).groupdict() for line in lines]
    assert [p["done"] for p in parsed] == ["3", "6", "9"]
    assert {p["total"] for p in parsed} == {"10"} and {p["desc"] for p in parsed} == {"inversion"}
    assert float(parsed[0]["rate"]) == pytest.approx(0.1)
    assert parsed[0]["eta"] == "0:01:10" and parsed[2]["eta"] == "0:00:10"  # 7 and 1 items at 10 s each
    assert parsed[1]["pct"] == "60"


def test_many_quick_updates_print_once_per_interval():
    clock, out = FakeClock(), io.StringIO()
    bar = LogProgress(None, "class generation", total=100_000, unit="steps", interval=30, clock=clock, stream=out)
    for _ in range(100_000):
        clock.now += 0.001  # 100 s in all
        bar.update()
    lines = out.getvalue().splitlines()
    assert len(lines) == 3  # at 30, 60 and 90 s
    assert lines[0].startswith("class generation: 30000/100000 steps (30%), 1000 steps/s, eta 0:01:10")


def test_a_loop_shorter_than_the_interval_prints_nothing():
    clock, out = FakeClock(), io.StringIO()
    for _ in LogProgress(range(5), "bootstrap", interval=30, clock=clock, stream=out):
        clock.now += 1
    assert out.getvalue() == ""


def test_without_a_total_the_line_has_count_and_rate():
    clock, out = FakeClock(), io.StringIO()
    for _ in LogProgress(iter(range(4)), "scan", unit="files", interval=1, clock=clock, stream=out):
        clock.now += 2
    assert out.getvalue().splitlines()[0] == "scan: 1 files, 0.5 files/s"


def test_progress_picks_tqdm_on_a_terminal_and_log_lines_otherwise(monkeypatch, capsys):
    from tqdm import tqdm

    monkeypatch.setenv(INTERVAL_ENV, "0")  # every update prints
    bar = progress(range(3), "fid bootstrap", unit="rounds")
    assert isinstance(bar, LogProgress) and not sys.stderr.isatty()
    assert list(bar) == [0, 1, 2]
    lines = capsys.readouterr().err.splitlines()
    assert [LINE.match(line)["done"] for line in lines] == ["1", "2", "3"]

    assert list(progress(range(3), "epoch 1/1", silent=True)) == [0, 1, 2]  # torchrun: ranks > 0
    assert capsys.readouterr().err == ""

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    bar = progress(range(3), "epoch 1/1")
    assert isinstance(bar, tqdm)
    bar.close()


def test_interval_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(INTERVAL_ENV, "5")
    assert LogProgress(range(1)).interval == 5
    monkeypatch.delenv(INTERVAL_ENV)
    assert LogProgress(range(1)).interval == 30
    monkeypatch.setenv(INTERVAL_ENV, "soon")
    with pytest.raises(RobinterpError, match=INTERVAL_ENV):
        LogProgress(range(1))


def test_a_pgd_analysis_reports_every_step_of_every_batch(monkeypatch, capsys):
    from robinterp.models import build_model
    from robinterp.synthesis import InversionConfig, invert_representation

    monkeypatch.setenv(INTERVAL_ENV, "0")
    torch.manual_seed(0)
    model = build_model("resnet18_cifar", 4, [0.5] * 3, [0.25] * 3, width=0.0625).eval()
    x = torch.rand(5, 3, 8, 8)
    cfg = InversionConfig.of(num_images=5, eps=10.0, step_size=0.1, steps=3, batch_size=2)
    invert_representation(model, x, x.flip(0), cfg)
    parsed = [LINE.match(line) for line in capsys.readouterr().err.splitlines()]
    assert all(parsed) and {p["desc"] for p in parsed} == {"inversion"} and {p["unit"] for p in parsed} == {"steps"}
    assert [int(p["done"]) for p in parsed] == list(range(1, 10))  # 3 batches x 3 steps
    assert {p["total"] for p in parsed} == {"9"}


@pytest.fixture(scope="module")
def tiny():
    from robinterp.models import build_model

    torch.manual_seed(0)
    return build_model("resnet18_cifar", 4, [0.5] * 3, [0.25] * 3, width=0.0625).eval()


def _last_lines(err: str) -> dict:
    """desc -> the last progress line's fields (every line must parse)."""
    parsed = [LINE.match(line) for line in err.splitlines()]
    assert parsed and all(parsed), err
    return {p["desc"]: p for p in parsed}


def test_every_long_loop_counts_to_its_total(tiny, monkeypatch, capsys):
    """With a zero interval every update prints: each loop's last line reaches its announced total."""
    from robinterp.attributions import IGConfig, ShapConfig, explain_ig, explain_shap
    from robinterp.fid import fid_interval, kid
    from robinterp.synthesis import ClassGenerationConfig, FeatureVisConfig, generate_classes, visualise_features

    monkeypatch.setenv(INTERVAL_ENV, "0")
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 8, 8, generator=gen)
    generate_classes(tiny, lambda k: x, 2, ClassGenerationConfig.of(per_class=3, downsample=1, steps=2, batch_size=4))
    visualise_features(tiny, [0, 1, 2], (3, 8, 8), FeatureVisConfig.of(steps=4, batch_size=2))
    explain_ig(tiny, x, torch.tensor([0, 1, 2]), IGConfig.of(steps=4, trials=3, batch_size=4), gen)
    explain_shap(tiny, x, torch.rand(6, 3, 8, 8, generator=gen), ShapConfig.of(nsamples=5, batch_size=2))
    feats = torch.rand(12, 4, generator=gen).double().numpy()
    fid_interval(feats, feats[::-1], rounds=4, seed=0)
    kid(feats, feats[::-1], subsets=3, subset_size=5, seed=0)
    last = _last_lines(capsys.readouterr().err)
    expected = {
        "class generation": ("4", "steps"),  # 2 x 3 images: 2 batches of <= 4, 2 steps each
        "feature visualisation": ("8", "steps"),  # 3 neurons: 2 batches, 4 steps each
        "ig path": ("4", "batches"),  # 3 images x 5 path points, 4 points per batch
        "ig baselines": ("3", "baselines"),
        "shap": ("10", "batches"),  # 1 ranking pass + 3 x ceil(5 / 2)
        "fid interval": ("4", "rounds"),
        "kid": ("3", "subsets"),
    }
    assert set(last) == set(expected)
    for desc, (total, unit) in expected.items():
        assert (last[desc]["done"], last[desc]["total"], last[desc]["unit"]) == (total, total, unit), desc
