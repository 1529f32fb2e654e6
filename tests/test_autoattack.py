"""AutoAttack: exact box-constrained projections, every attack inside the threat model, the
ensemble at most PGD and within 1.5 points of the reference implementation (pyautoattack,
the authors' code), and the evaluate verb reporting it beside PGD on the same images."""

import json

import numpy as np
import pytest
import torch
from scipy.optimize import linprog

from robinterp.attacks import AttackConfig, adversarial_examples, attack_mode
from robinterp.autoattack import AutoAttackConfig, apgd, autoattack, dlr_targeted_loss, subset_indices
from robinterp.errors import RobinterpError
from robinterp.fab import fab_targeted, project_l2, project_linf
from robinterp.square import bump, square_attack

NORMS = [("l2", 0.75), ("linf", 8 / 255)]


def _instances(n=40, d=9, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(n, d, generator=g, dtype=torch.float64)
    w = torch.randn(n, d, generator=g, dtype=torch.float64)
    w[:, 0] = 0  # a coordinate that cannot move the margin stays put
    b = (w * torch.rand(n, d, generator=g, dtype=torch.float64)).sum(1)  # the plane meets the box
    return t, w, b


def test_linf_projection_is_the_linear_programs_optimum():
    t, w, b = _instances()
    d = project_linf(t, w, b)
    assert torch.allclose((w * (t + d)).sum(1), b, atol=1e-9)
    assert ((t + d) >= -1e-12).all() and ((t + d) <= 1 + 1e-12).all() and (d[:, 0] == 0).all()
    for i in range(len(t)):  # min r s.t. -r <= d <= r, -t <= d <= 1 - t, w.d = b - w.t; variables (d, r)
        n = t.shape[1]
        a_ub = np.block([[np.eye(n), -np.ones((n, 1))], [-np.eye(n), -np.ones((n, 1))]])
        lp = linprog(np.r_[np.zeros(n), 1.0], A_ub=a_ub, b_ub=np.zeros(2 * n),
                     A_eq=np.r_[w[i].numpy(), 0.0][None], b_eq=[float(b[i] - w[i] @ t[i])],
                     bounds=[(-float(x), 1 - float(x)) for x in t[i]] + [(0, None)])
        assert lp.status == 0 and abs(d[i].abs().max().item() - lp.fun) < 1e-7


def test_l2_projection_meets_the_kkt_conditions():
    t, w, b = _instances(seed=1)
    d = project_l2(t, w, b)
    assert torch.allclose((w * (t + d)).sum(1), b, atol=1e-9)
    assert ((t + d) >= -1e-12).all() and ((t + d) <= 1 + 1e-12).all()
    # optimal iff d = clip(-lam * w, -t, 1 - t) for one lam per row (convex problem: KKT suffices)
    free = (d > -t + 1e-9) & (d < 1 - t - 1e-9) & (w.abs() > 1e-9)
    lam = torch.where(free, -d / w, torch.nan)
    spread = torch.nan_to_num(lam, nan=-1e9).amax(1) - torch.nan_to_num(lam, nan=1e9).amin(1)
    assert (spread[free.any(1)] < 1e-7).all()
    lam = torch.nanmean(lam, 1, keepdim=True)
    assert torch.allclose(torch.minimum(torch.maximum(-lam * w, -t), 1 - t), d, atol=1e-7)


@pytest.mark.parametrize("project", [project_l2, project_linf])
def test_an_unreachable_plane_sends_every_coordinate_to_its_bound(project):
    t, w, _ = _instances(seed=2)
    d = project(t, w, -10 * w.abs().sum(1))  # far below the box's minimum of w.x
    x = t + d
    assert torch.equal(x[w > 0], torch.zeros_like(x[w > 0])) and torch.equal(x[w < 0], torch.ones_like(x[w < 0]))


def test_square_bump_has_unit_norm_and_opposite_halves():
    for s in (3, 5, 8):
        p = bump(s, dtype=torch.float64)
        assert abs(p.norm().item() - 1) < 1e-12
        assert (p[: s // 2] > 0).all() and (p[s // 2:] < 0).all()
        assert p[: s // 2].argmax() == (s // 2 // 2) * s + s // 2  # peak at the half's centre


def _batch(digits_dir, n):
    from robinterp.data import load_split

    return load_split(digits_dir / "test").tensors(slice(0, n))


def _inside(x, xa, norm, eps):
    d = (xa - x).flatten(1)
    size = d.norm(dim=1) if norm == "l2" else d.abs().amax(1)
    return bool((size <= eps * (1 + 1e-5) + 1e-7).all() and xa.min() >= 0 and xa.max() <= 1)


@pytest.mark.parametrize("norm,eps", NORMS)
@pytest.mark.parametrize("attack", ["apgd-ce", "apgd-t", "fab-t", "square"])
def test_each_attack_stays_in_the_threat_model_and_breaks_images(trained_model, digits_dir, norm, eps, attack):
    x, y = _batch(digits_dir, 48)
    gen = torch.Generator().manual_seed(0)
    with attack_mode(trained_model):
        with torch.no_grad():
            logits = trained_model(x)
        second = logits.argsort(1, descending=True)[:, 1]
        if attack == "apgd-ce":
            xa = apgd(trained_model, x, y, norm=norm, eps=eps, steps=20, generator=gen)
        elif attack == "apgd-t":
            xa = apgd(trained_model, x, y, norm=norm, eps=eps, loss=dlr_targeted_loss, target=second, steps=20,
                      generator=gen)
        elif attack == "fab-t":
            xa = fab_targeted(trained_model, x, y, second, norm=norm, eps=eps, steps=20)
        else:
            xa = square_attack(trained_model, x, y, norm=norm, eps=eps, queries=300, generator=gen)
        with torch.no_grad():
            before = (logits.argmax(1) == y).sum()
            after = (trained_model(xa).argmax(1) == y).sum()
    assert _inside(x, xa, norm, eps)
    assert after < before


@pytest.mark.slow  # the standard version twice per norm: ~1-2 minutes each on 1 CPU thread
@pytest.mark.parametrize("norm,eps", [("l2", 0.75), ("linf", 4 / 255)])
def test_autoattack_is_at_most_pgd_and_within_1p5_points_of_the_reference(trained_model, digits_dir, norm, eps):
    pyautoattack = pytest.importorskip("pyautoattack")
    x, y = _batch(digits_dir, 200)
    x = x.contiguous()  # the reference reshapes with .view
    xp = adversarial_examples(trained_model, x, y, AttackConfig.of(norm=norm, eps=eps, step_size=eps / 4, steps=10))
    res = autoattack(trained_model, x, y, AutoAttackConfig(norm=norm, eps=eps), torch.Generator().manual_seed(0))
    ref = pyautoattack.AutoAttack(trained_model, norm={"l2": "L2", "linf": "Linf"}[norm], eps=eps,
                                  version="standard", seed=0, device="cpu")
    xr, _ = ref.run_standard_evaluation(x, y, batch_size=200)
    with torch.no_grad():
        pgd_acc = (trained_model(xp).argmax(1) == y).float().mean().item()
        ref_acc = (trained_model(xr).argmax(1) == y).float().mean().item()
    ours = res["robust"].float().mean().item()
    assert ours <= pgd_acc and ours < res["clean"].float().mean().item()
    assert abs(ours - ref_acc) <= 0.015, (ours, ref_acc, pgd_acc)
    # the worst case only ever shrinks the set of robust images
    steps = [res[k] for k in ("clean", "apgd-ce", "apgd-t", "fab-t", "square")]
    assert all((later <= earlier).all() for earlier, later in zip(steps, steps[1:]))


def test_subset_is_seeded_sorted_and_validated():
    a, b = subset_indices(100, 10, seed=3), subset_indices(100, 10, seed=3)
    assert torch.equal(a, b) and len(a) == 10 and torch.equal(a, a.sort().values)
    assert not torch.equal(a, subset_indices(100, 10, seed=4))
    assert torch.equal(subset_indices(5, 10, seed=0), torch.arange(5))
    with pytest.raises(RobinterpError, match="autoattack_max_images"):
        subset_indices(100, 0, seed=0)


def test_evaluate_verb_reports_autoattack_beside_pgd_on_the_same_images(trained_model, digits_dir, tmp_path):
    from robinterp.checkpoints import save_checkpoint
    from robinterp.cli import main
    from robinterp.data import load_split

    split = load_split(digits_dir / "train")
    arch = {"name": "resnet18_cifar", "width": 0.0625, "num_classes": 10, "mean": split.manifest["mean"],
            "std": split.manifest["std"]}
    save_checkpoint(tmp_path / "m.pt", trained_model, arch, [str(i) for i in range(10)], epoch=0, metrics={})
    attack = json.dumps({"norm": "l2", "eps": 0.75, "step_size": 0.2, "steps": 5})
    base = ["evaluate", "--checkpoint", str(tmp_path / "m.pt"), "--data", str(digits_dir / "test"),
            "--attack-json", attack, "--variant", "v", "--max-images", "60", "--device", "cpu"]
    assert main([*base, "--autoattack-max-images", "12", "--out", str(tmp_path / "a.json")]) == 0
    acc = json.loads((tmp_path / "a.json").read_text())
    assert acc["autoattack_n"] == 12 and len(acc["autoattack_indices"]) == 12
    assert all(0 <= i < 60 for i in acc["autoattack_indices"])
    assert acc["autoattack_acc"] <= acc["autoattack_pgd_acc"] <= acc["autoattack_clean_acc"]
    assert acc["autoattack"]["norm"] == "l2" and acc["autoattack"]["eps"] == 0.75
    assert acc["autoattack"]["attacks"] == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert main([*base, "--no-autoattack", "--out", str(tmp_path / "b.json")]) == 0
    assert "autoattack_acc" not in json.loads((tmp_path / "b.json").read_text())
    t = tmp_path / "t"
    assert main(["accuracy-table", "--inputs", str(tmp_path / "a.json"), str(tmp_path / "b.json"),
                 "--out-csv", str(t / "a.csv"), "--out-md", str(t / "a.md")]) == 0
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
