"""AutoAttack through the reference code (pyautoattack): robinterp's wrapper runs its attacks one at
a time with the result of one reference call, counts only valid adversarial points, leaves torch's
global random state alone, fits the attacks to the class count, and the evaluate verb reports it
beside PGD from the same random starts as the headline adv_acc.

The reference's full budgets (100 iterations, 5,000 Square queries) cost minutes on a CPU; the
tests shrink them (`fast_reference`) on both sides of every comparison."""

import itertools
import json
from importlib.metadata import version

import pytest
import torch

import robinterp.autoattack as aa_mod
from robinterp.autoattack import (
    STANDARD,
    attacks_for,
    autoattack,
    broken,
    subset_indices,
)
from robinterp.errors import RobinterpError

ITERATIONS, QUERIES = 10, 100


def _shrink(aa):
    for apgd in (aa.apgd, aa.apgd_targeted):
        apgd.n_iter = ITERATIONS
        apgd.n_iter_2, apgd.n_iter_min, apgd.size_decr = max(int(0.22 * ITERATIONS), 1), 1, 1
    aa.fab.n_iter = ITERATIONS
    aa.square.n_queries = QUERIES
    return aa


@pytest.fixture
def fast_reference(monkeypatch):
    """The reference with ITERATIONS per gradient attack and QUERIES for Square."""
    full = aa_mod.reference
    monkeypatch.setattr(aa_mod, "reference", lambda *a, **k: _shrink(full(*a, **k)))
    return lambda *a, **k: _shrink(full(*a, **k))


@pytest.fixture(scope="module")
def mlp(digits_dir):
    """A 192-32-10 MLP on the 8x8 digits (~90% clean): attacks take milliseconds per step."""
    from robinterp.data import load_split

    x, y = load_split(digits_dir / "train").tensors()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(150):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    test = load_split(digits_dir / "test").tensors(slice(0, 40))
    return model.eval(), *test


def test_attacks_fit_the_class_count():
    assert attacks_for(10) == (STANDARD, 9) and attacks_for(100) == (STANDARD, 9)
    assert attacks_for(5) == (STANDARD, 4)  # every other class is a target
    assert attacks_for(3) == (("apgd-ce", "fab-t", "square"), 2)  # no targeted DLR loss below 4 classes
    assert attacks_for(2) == (("apgd-ce", "fab-t", "square"), 1)
    with pytest.raises(RobinterpError, match="at least 2 classes"):
        attacks_for(1)


def test_one_attack_at_a_time_is_one_reference_call_and_every_point_is_valid(mlp, fast_reference):
    model, x, y = mlp
    res = autoattack(model, x, y, "l2", 1.0, seed=0, batch_size=16, keep_points=True)
    ref = fast_reference(model, "l2", 1.0, 0, 10)
    xr, _ = ref.run_standard_evaluation(x.contiguous(), y, batch_size=16)
    with torch.no_grad():
        assert torch.equal(res.robust, model(xr).argmax(1) == y)  # the reference's worst case, per image
    assert list(res.after) == list(STANDARD) and res.version == "standard" and res.rejected == 0
    flags = [res.clean, *res.after.values()]
    assert all((later <= earlier).all() for earlier, later in itertools.pairwise(flags))  # only ever shrinks
    assert res.clean.sum() > res.robust.sum() > 0  # some broken, some left for the later attacks
    fooled = res.clean & ~res.robust
    valid, _ = broken(model, x[fooled], res.x_adv[fooled], y[fooled], "l2", 1.0, 250)
    assert valid.all()
    assert torch.equal(res.x_adv[~fooled], x[~fooled])


def test_the_callers_random_state_is_left_alone(mlp, fast_reference):
    model, x, y = mlp
    torch.manual_seed(123)
    expected = torch.rand(5)
    torch.manual_seed(123)
    first = autoattack(model, x[:12], y[:12], "linf", 8 / 255, seed=3, batch_size=12, keep_points=True)
    assert torch.equal(torch.rand(5), expected)  # the reference reseeds at every attack, inside fork_rng
    again = autoattack(model, x[:12], y[:12], "linf", 8 / 255, seed=3, batch_size=12, keep_points=True)
    assert torch.equal(first.x_adv, again.x_adv)  # seeded


def test_a_point_the_check_refuses_leaves_the_image_robust(mlp, monkeypatch):
    model, x, y = mlp

    class OutsideTheBall:  # "adversarial" points at twice the radius
        attacks_to_run = ("apgd-ce",)

        def run_standard_evaluation(self, xs, ys, batch_size):
            d = torch.randn_like(xs)
            return (xs + 2.0 * d / d.flatten(1).norm(dim=1).view(-1, 1, 1, 1)).clamp(0, 1), ys

    monkeypatch.setattr(aa_mod, "reference", lambda *a, **k: OutsideTheBall())
    res = autoattack(model, x, y, "l2", 0.5, seed=0, batch_size=40)
    assert res.rejected > 0 and torch.equal(res.robust, res.clean)
    valid, claimed = broken(model, x, x, y, "l2", 0.5, 250)  # at distance 0: broken exactly where misclassified
    assert torch.equal(valid, ~res.clean) and torch.equal(claimed, ~res.clean)


def test_three_classes_run_without_the_targeted_dlr_loss(fast_reference):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 3)).eval()
    x = torch.rand(10, 3, 8, 8)
    with torch.no_grad():
        y = model(x).argmax(1)  # every image starts correct
    res = autoattack(model, x, y, "l2", 0.3, seed=0, batch_size=10)
    assert list(res.after) == ["apgd-ce", "fab-t", "square"] and res.targets == 2
    assert res.version == "standard-fitted"


def test_subset_is_seeded_sorted_and_validated():
    a, b = subset_indices(100, 10, seed=3), subset_indices(100, 10, seed=3)
    assert torch.equal(a, b) and len(a) == 10 and torch.equal(a, a.sort().values)
    assert not torch.equal(a, subset_indices(100, 10, seed=4))
    assert torch.equal(subset_indices(5, 10, seed=0), torch.arange(5))
    with pytest.raises(RobinterpError, match="autoattack_max_images"):
        subset_indices(100, 0, seed=0)


def test_evaluate_verb_reports_autoattack_beside_pgd_on_the_same_images(
    trained_model, digits_dir, tmp_path, fast_reference
):
    from robinterp.checkpoints import save_checkpoint
    from robinterp.cli import main
    from robinterp.data import load_split

    split = load_split(digits_dir / "train")
    arch = {
        "name": "resnet18_cifar",
        "width": 0.0625,
        "num_classes": 10,
        "mean": split.manifest["mean"],
        "std": split.manifest["std"],
    }
    save_checkpoint(tmp_path / "m.pt", trained_model, arch, [str(i) for i in range(10)], epoch=0, metrics={})
    attack = {"norm": "l2", "eps": 0.75, "step_size": 0.2, "steps": 5}
    base = [
        "evaluate",
        "--checkpoint",
        str(tmp_path / "m.pt"),
        "--data",
        str(digits_dir / "test"),
        "--variant",
        "v",
        "--settings",
        json.dumps({"eval_attack": attack, "evaluation": {"batch_size": 7}, "device": "cpu"}),
    ]
    assert (
        main(
            [
                *base,
                "--set",
                "evaluation.max_images=60",
                "--set",
                "evaluation.autoattack_max_images=12",
                "--out",
                str(tmp_path / "a.json"),
            ]
        )
        == 0
    )
    acc = json.loads((tmp_path / "a.json").read_text())
    assert acc["autoattack_n"] == 12 and len(acc["autoattack_indices"]) == 12
    assert all(0 <= i < 60 for i in acc["autoattack_indices"])
    assert acc["autoattack_acc"] <= acc["autoattack_pgd_acc"] <= acc["autoattack_clean_acc"]
    assert acc["autoattack"]["implementation"] == "pyautoattack"
    assert acc["autoattack"]["implementation_version"] == version("pyautoattack")
    assert acc["autoattack"]["norm"] == "l2" and acc["autoattack"]["eps"] == 0.75
    assert acc["autoattack"]["attacks"] == list(STANDARD) and acc["autoattack"]["version"] == "standard"
    # every image attacked by both: PGD on the same images is the headline adv_acc (same random starts)
    assert main([*base, "--set", "evaluation.max_images=20", "--out", str(tmp_path / "all.json")]) == 0
    every = json.loads((tmp_path / "all.json").read_text())
    assert every["autoattack_n"] == every["n"] == 20 and every["autoattack_pgd_acc"] == every["adv_acc"]
    assert (
        main(
            [
                *base,
                "--set",
                "evaluation.max_images=20",
                "--set",
                "evaluation.autoattack=false",
                "--out",
                str(tmp_path / "b.json"),
            ]
        )
        == 0
    )
    assert "autoattack_acc" not in json.loads((tmp_path / "b.json").read_text())
    t = tmp_path / "t"
    assert (
        main(
            [
                "accuracy-table",
                "--inputs",
                str(tmp_path / "a.json"),
                str(tmp_path / "b.json"),
                "--out-csv",
                str(t / "a.csv"),
                "--out-md",
                str(t / "a.md"),
                "--out-notes",
                str(t / "a.notes.json"),
            ]
        )
        == 0
    )
    import pandas as pd

    table = pd.read_csv(t / "a.csv")
    row = table.iloc[0]
    assert row["autoattack_n"] == 12 and row["autoattack_acc"] == round(100 * acc["autoattack_acc"], 2)
    assert row["pgd_acc_same_images"] == round(100 * acc["autoattack_pgd_acc"], 2)
    assert pd.isna(table.iloc[1]["autoattack_acc"])  # a run without AutoAttack leaves its cells empty
    assert "autoattack_acc" in (t / "a.md").read_text()
    from robinterp.curve import curve_frame

    curve = curve_frame({"v": 0.0}, [acc], [], []).set_index("quantity")
    assert curve.loc["AutoAttack accuracy (%)", "mean"] == pytest.approx(100 * acc["autoattack_acc"])
