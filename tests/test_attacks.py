"""PGD invariants: stays in the ball and in [0, 1], raises the loss, eps=0 is the identity."""

import pytest
import torch
import torch.nn.functional as F

from robinterp.attacks import (
    THREAT_MODELS,
    AttackConfig,
    BatchNoise,
    SampleNoise,
    adversarial_examples,
    attack_mode,
    pgd,
    sample_keys,
)


def _batch(digits_dir, n=64):
    from robinterp.data import load_split

    return load_split(digits_dir / "test").tensors(slice(0, n))


@pytest.mark.parametrize("norm,eps,step", [("l2", 1.0, 0.25), ("linf", 8 / 255, 2 / 255)])
@pytest.mark.parametrize("random_start", [False, True])
def test_pgd_stays_in_ball_and_image_range(trained_model, digits_dir, norm, eps, step, random_start):
    x, y = _batch(digits_dir)
    cfg = AttackConfig.of(norm=norm, eps=eps, step_size=step, steps=5, random_start=random_start)
    xa = adversarial_examples(trained_model, x, y, cfg, generator=torch.Generator().manual_seed(1))
    d = (xa - x).flatten(1)
    size = d.norm(dim=1) if norm == "l2" else d.abs().amax(dim=1)
    assert (size <= eps * (1 + 1e-5) + 1e-7).all()
    assert xa.min() >= 0 and xa.max() <= 1
    assert size.max() > 0.5 * eps  # it actually moved


@pytest.mark.parametrize("norm,eps,step", [("l2", 1.0, 0.25), ("linf", 8 / 255, 2 / 255)])
def test_pgd_raises_the_loss_on_a_trained_model(trained_model, digits_dir, norm, eps, step):
    x, y = _batch(digits_dir)
    xa = adversarial_examples(trained_model, x, y, AttackConfig.of(norm=norm, eps=eps, step_size=step, steps=10))
    with torch.no_grad():
        clean = F.cross_entropy(trained_model(x), y)
        adv = F.cross_entropy(trained_model(xa), y)
        acc_clean = (trained_model(x).argmax(1) == y).float().mean()
        acc_adv = (trained_model(xa).argmax(1) == y).float().mean()
    assert adv > clean * 1.5
    assert acc_adv < acc_clean


def test_eps_zero_returns_the_input(trained_model, digits_dir):
    x, y = _batch(digits_dir, 16)
    xa = adversarial_examples(trained_model, x, y, AttackConfig.of(eps=0.0, steps=5, random_start=True))
    assert torch.equal(xa, x)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_projection_is_idempotent_and_keeps_points_inside(norm):
    tm = THREAT_MODELS[norm]
    d = torch.randn(8, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    once = tm.project(d, 0.3)
    assert torch.allclose(tm.project(once, 0.3), once)
    inside = once * 0.5
    assert torch.allclose(tm.project(inside, 0.3), inside)


def test_l2_random_start_is_inside_the_ball():
    x = torch.zeros(256, 3, 4, 4)
    for noise in (BatchNoise(torch.Generator().manual_seed(0)), SampleNoise(sample_keys(0, range(256)))):
        d = THREAT_MODELS["l2"].random_init(x, 0.7, noise)
        n = d.flatten(1).norm(dim=1)
        assert (n <= 0.7 + 1e-6).all() and n.min() > 0
        # uniform in the ball: the radius^d is uniform on [0, 1] (d = 48), so its median is ~0.5
        assert abs((n / 0.7).pow(48).median().item() - 0.5) < 0.1


def test_best_iterate_is_never_worse_than_last(trained_model, digits_dir):
    x, y = _batch(digits_dir, 32)
    loss = lambda xa: F.cross_entropy(trained_model(xa), y, reduction="none")
    with attack_mode(trained_model):
        last = pgd(loss, x, norm="l2", eps=2.0, step_size=1.5, steps=6)  # big steps: oscillates
        best = pgd(loss, x, norm="l2", eps=2.0, step_size=1.5, steps=6, best=True)
        assert (loss(best) >= loss(last) - 1e-5).all()


def test_attack_mode_restores_each_flag_it_changed(trained_model):
    frozen_by_user = trained_model.model.conv1.weight
    frozen_by_user.requires_grad_(False)
    try:
        for start_training in (True, False):
            trained_model.train(start_training)
            with attack_mode(trained_model):
                assert not any(m.training for m in trained_model.modules())
                assert not any(p.requires_grad for p in trained_model.parameters())
            assert all(m.training == start_training for m in trained_model.modules())
            assert not frozen_by_user.requires_grad  # was frozen before: stays frozen
            assert all(p.requires_grad for p in trained_model.parameters() if p is not frozen_by_user)
    finally:
        frozen_by_user.requires_grad_(True)
        trained_model.eval()


def test_attack_freezes_parameters_and_restores_mode(trained_model, digits_dir):
    x, y = _batch(digits_dir, 8)
    trained_model.train()
    for p in trained_model.parameters():
        p.grad = None
    bn = trained_model.model.bn1
    before = bn.running_mean.clone()
    adversarial_examples(trained_model, x, y, AttackConfig.of(steps=3))
    assert trained_model.training  # mode restored
    assert all(p.grad is None for p in trained_model.parameters())  # no parameter gradients
    assert all(p.requires_grad for p in trained_model.parameters())
    assert torch.equal(bn.running_mean, before)  # eval-mode attack leaves BN statistics alone
    adversarial_examples(trained_model, x, y, AttackConfig.of(steps=3, bn_mode="train"))
    assert not torch.equal(bn.running_mean, before)  # the author's train-mode attack moves them
    trained_model.eval()
