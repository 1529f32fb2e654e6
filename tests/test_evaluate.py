"""Evaluation: results independent of how the job runs (batch size, ranks), no rank skips a batch."""

import torch

from robinterp import evaluate
from robinterp.attacks import AttackConfig, SampleNoise, adversarial_examples, sample_keys
from robinterp.data import load_split
from robinterp.device import DeviceData
from robinterp.distributed import Ranks, process_group_options
from robinterp.evaluate import accuracy

ATTACK = AttackConfig.of(norm="l2", eps=1.0, step_size=0.25, steps=3, random_start=True)


def test_random_starts_depend_on_the_image_not_the_batch(trained_model, digits_dir):
    data = DeviceData(load_split(digits_dir / "test"), torch.device("cpu"))
    x, y = data.batch(torch.arange(12))
    whole = adversarial_examples(trained_model, x, y, ATTACK, generator=SampleNoise(sample_keys(3, range(12))))
    parts = torch.cat(
        [
            adversarial_examples(
                trained_model,
                x[s : s + 5],
                y[s : s + 5],
                ATTACK,
                generator=SampleNoise(sample_keys(3, range(s, min(s + 5, 12)))),
            )
            for s in range(0, 12, 5)
        ]
    )
    torch.testing.assert_close(whole, parts, rtol=0, atol=1e-5)
    other_seed = adversarial_examples(trained_model, x, y, ATTACK, generator=SampleNoise(sample_keys(4, range(12))))
    assert not torch.allclose(whole, other_seed)


def test_accuracy_does_not_depend_on_the_batch_size(trained_model, digits_dir):
    data = DeviceData(load_split(digits_dir / "test"), torch.device("cpu"))
    a = accuracy(trained_model, data, ATTACK, batch_size=64, max_images=100, amp=False, seed=1)
    b = accuracy(trained_model, data, ATTACK, batch_size=23, max_images=100, amp=False, seed=1)
    assert a == b and a["adv_acc"] < a["clean_acc"]


class _CountingModel(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model, self.calls = model, 0

    def forward(self, x):
        self.calls += 1
        return self.model(x)


def test_no_rank_skips_a_batch_whose_slice_is_empty(trained_model, digits_dir, monkeypatch):
    """4 ranks, a last batch of 2 images: ranks with an empty slice still run every forward pass
    (SyncBatchNorm would otherwise wait for them) and count nothing; counts add up to 1 rank's."""
    data = DeviceData(load_split(digits_dir / "test"), torch.device("cpu"))
    gathered = []
    monkeypatch.setattr(evaluate, "all_reduce_sums", lambda values, ranks, device: gathered.append(values) or values)
    calls = []
    for rank in range(4):
        model = _CountingModel(trained_model)
        accuracy(model, data, ATTACK, batch_size=8, max_images=10, amp=False, seed=0, ranks=Ranks(rank, 4))
        calls.append(model.calls)
    assert len(set(calls)) == 1
    single = accuracy(trained_model, data, ATTACK, batch_size=8, max_images=10, amp=False, seed=0)
    assert sum(g["clean"] for g in gathered[:4]) == round(single["clean_acc"] * 10)
    assert sum(g["adv"] for g in gathered[:4]) == round(single["adv_acc"] * 10)


def test_process_group_options_follow_the_installed_torch():
    def new_api(backend=None, device_id=None):
        pass

    def old_api(backend=None):  # torch < 2.3 has no device_id
        pass

    cuda = torch.device("cuda", 1)
    assert process_group_options(cuda, new_api) == {"device_id": cuda}
    assert process_group_options(cuda, old_api) == {}
    assert process_group_options(torch.device("cpu"), new_api) == {}
