"""Class generation, representation inversion and feature visualisation invariants."""

import numpy as np
import pytest
import torch

from robinterp.errors import RobinterpError
from robinterp.models import build_model
from robinterp.synthesis import (
    ClassGenerationConfig,
    FeatureVisConfig,
    InversionConfig,
    choose_neurons,
    class_conditional_seeds,
    extreme_activations,
    generate_classes,
    inversion_pairs,
    invert_representation,
    normalised_distance,
    representations,
    to_uint8,
    visualise_features,
)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = build_model("resnet18_cifar", 4, [0.5] * 3, [0.25] * 3, width=0.0625)
    with torch.no_grad():  # non-trivial BatchNorm statistics, as after training
        m.train()
        for _ in range(3):
            m(torch.rand(32, 3, 8, 8))
    return m.eval()


@pytest.fixture(scope="module")
def data():
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(40) % 4
    images = (0.2 * torch.rand(40, 3, 8, 8, generator=gen) + 0.2 * labels.view(-1, 1, 1, 1)).clamp(0, 1)
    return images, labels


def test_class_conditional_seeds_follow_the_class_statistics(data):
    images, labels = data
    own = images[labels == 3]
    seeds = class_conditional_seeds(own, 50, 2, 1e-4, "nearest", torch.Generator().manual_seed(0))
    assert seeds.shape == (50, 3, 8, 8) and seeds.min() >= 0 and seeds.max() <= 1
    assert torch.equal(seeds[:, :, ::2, ::2], seeds[:, :, 1::2, 1::2])  # nearest upsampling of a 4x4 sample
    assert abs(seeds.mean().item() - own.mean().item()) < 0.05
    again = class_conditional_seeds(own, 50, 2, 1e-4, "nearest", torch.Generator().manual_seed(0))
    assert torch.equal(seeds, again)
    with pytest.raises(RobinterpError, match="divide"):
        class_conditional_seeds(own, 2, 3, 1e-4, "nearest", torch.Generator())


def test_class_generation_raises_the_target_logit_within_the_ball(model, data):
    images, labels = data
    cfg = ClassGenerationConfig.of(per_class=3, downsample=2, eps=2.0, step_size=0.2, steps=15)
    seeds, out, targets = generate_classes(model, lambda k: images[labels == k], 4, cfg)
    assert out.shape == seeds.shape == (12, 3, 8, 8) and targets.tolist() == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3
    with torch.no_grad():
        before = model(seeds).gather(1, targets[:, None])
        after = model(out).gather(1, targets[:, None])
    assert (after > before).all()
    assert out.min() >= 0 and out.max() <= 1
    assert ((out - seeds).flatten(1).norm(dim=1) <= 2.0 + 1e-4).all()


def test_inversion_distance_falls_substantially(model, data):
    images, labels = data
    cfg = InversionConfig.of(num_images=4, eps=1000, step_size=0.05, steps=80)
    targets, sources = images[:4], torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    inverted, before, after = invert_representation(model, sources, targets, cfg)
    assert inverted.min() >= 0 and inverted.max() <= 1
    assert (after < before).all() and after.mean() < 0.5 * before.mean(), (before, after)
    with torch.no_grad():
        torch.testing.assert_close(after, normalised_distance(model, inverted, model.features(targets)))


def test_inversion_pairs_use_another_class_or_noise():
    labels = np.arange(30) % 3
    cfg = InversionConfig.of(num_images=5, sources=["image", "noise"], seed=0)
    t, s, kinds, noise = inversion_pairs(labels, (3, 8, 8), cfg)
    assert kinds == ["image"] * 5 + ["noise"] * 5 and noise.shape == (5, 3, 8, 8)
    assert (labels[s[:5]] != labels[t[:5]]).all() and (s[5:] == -1).all()
    with pytest.raises(RobinterpError):
        InversionConfig.from_dict({"sources": ["gray"]})


def test_feature_visualisation_raises_the_activation(model, data):
    images, _ = data
    cfg = FeatureVisConfig.of(num_neurons=3, steps=30, step_size=0.2, eps=1000, seed=0)
    assert choose_neurons(32, cfg) == choose_neurons(32, cfg) and len(set(choose_neurons(32, cfg))) == 3
    feats = representations(model, images, batch_size=16)
    neurons = [i for i in range(feats.shape[1]) if feats[:, i].max() > 0][:3]  # alive on the test images
    top, bottom = extreme_activations(feats, neurons, 2)
    start, result, before, after = visualise_features(
        model, neurons, (3, 8, 8), cfg, fallback=images[torch.as_tensor(top[:, 0])]
    )
    assert (after > before).all() and result.min() >= 0 and result.max() <= 1
    assert (before > 0).all()  # neurons dead on noise start from their top activating image
    for j, n in enumerate(neurons):
        acts = feats[:, n]
        assert acts[top[j, 0]] == acts.max() and acts[bottom[j, 0]] == acts.min()
        assert acts[top[j, 0]] >= acts[top[j, 1]]
    with pytest.raises(RobinterpError, match="outside"):
        choose_neurons(4, FeatureVisConfig.of(neurons=[9]))


def test_to_uint8_rounds_and_is_nhwc():
    x = torch.tensor([[[[0.0, 0.5]], [[1.0, 0.999]], [[0.2, 0.7]]]])  # 1 x 3 x 1 x 2
    u = to_uint8(x)
    assert u.dtype == np.uint8 and u.shape == (1, 1, 2, 3)
    assert u[0, 0, 1].tolist() == [128, 255, 178]


def test_representations_of_device_data_equal_those_of_float_images(model, tmp_path):
    from robinterp.data import load_split, write_split
    from robinterp.device import DeviceData

    rng = np.random.default_rng(0)
    write_split(
        tmp_path,
        rng.integers(0, 256, (37, 8, 8, 3), dtype=np.uint8),
        np.arange(37) % 4,
        ["a", "b", "c", "d"],
        {"kind": "synthetic"},
    )
    split = load_split(tmp_path)
    from_floats = representations(model, split.tensors()[0], batch_size=16)
    from_device = representations(model, DeviceData(split, torch.device("cpu")), batch_size=16)
    assert from_device.shape == (37, from_floats.shape[1])  # the short last batch included
    torch.testing.assert_close(from_device, from_floats)
