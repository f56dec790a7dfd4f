"""Label noise: flip rates and transition matrices on 100k labels, any label values, errors."""

from __future__ import annotations

import pytest
import torch

from dmllab.data import Dataset, noise

N, C = 100_000, 5


def _transitions(clean, noisy, classes):
    """Row-normalised counts of (clean class, noisy class) pairs over the sorted class list."""
    classes = torch.as_tensor(list(classes))
    size = len(classes)
    pairs = torch.searchsorted(classes, clean) * size + torch.searchsorted(classes, noisy)
    counts = torch.bincount(pairs, minlength=size * size).reshape(size, size).float()
    return counts / counts.sum(1, keepdim=True)


@pytest.fixture(scope="module")
def labels():
    return torch.randint(0, C, (N,), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("rate", [0.0, 0.2, 0.45])
def test_symmetric_transition_matrix(labels, rate):
    noisy = noise.symmetric(labels, rate, C, seed=1)
    assert abs(float((noisy != labels).float().mean()) - rate) < 0.006
    expected = torch.full((C, C), rate / (C - 1)).fill_diagonal_(1 - rate)
    assert torch.allclose(_transitions(labels, noisy, range(C)), expected, atol=0.012)


def test_pairflip_transition_matrix(labels):
    noisy = noise.pairflip(labels, 0.3, C, seed=1)
    expected = 0.7 * torch.eye(C) + 0.3 * torch.eye(C).roll(1, dims=1)
    assert torch.allclose(_transitions(labels, noisy, range(C)), expected, atol=0.012)


def test_arbitrary_label_values_follow_the_sorted_class_list():
    classes = torch.tensor([-4, 7, 30])
    y = classes[torch.randint(0, 3, (30_000,), generator=torch.Generator().manual_seed(2))]
    flipped = noise.pairflip(y, 0.4, seed=0)
    assert set(flipped.unique().tolist()) == {-4, 7, 30}
    transitions = _transitions(y, flipped, classes.tolist())
    assert torch.allclose(
        transitions, 0.6 * torch.eye(3) + 0.4 * torch.eye(3).roll(1, dims=1), atol=0.02
    )
    sym = noise.symmetric(y, 0.4, seed=0)
    assert torch.allclose(
        _transitions(y, sym, classes.tolist()),
        torch.full((3, 3), 0.2).fill_diagonal_(0.6),
        atol=0.02,
    )


def test_a_class_absent_from_y_can_still_be_a_target():
    y = torch.zeros(20_000, dtype=torch.long)
    noisy = noise.symmetric(y, 0.5, num_classes=3, seed=0)
    assert set(noisy.unique().tolist()) == {0, 1, 2}


def test_same_seed_same_noise_and_input_untouched(labels):
    before = labels.clone()
    first = noise.symmetric(labels, 0.3, C, seed=7)
    assert torch.equal(first, noise.symmetric(labels, 0.3, C, seed=7))
    assert not torch.equal(first, noise.symmetric(labels, 0.3, C, seed=8))
    assert torch.equal(labels, before)


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, float("nan")])
def test_rate_outside_unit_interval_is_refused(rate):
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        noise.symmetric(torch.tensor([0, 1]), rate, 2, seed=0)


def test_labels_outside_num_classes_or_single_class_are_refused():
    with pytest.raises(ValueError, match="classes="):
        noise.symmetric(torch.tensor([0, 5]), 0.1, num_classes=3)
    with pytest.raises(ValueError, match="at least 2 classes"):
        noise.pairflip(torch.tensor([4, 4]), 0.1)
    with pytest.raises(ValueError, match="not in the class list"):
        noise.pairflip(torch.tensor([4, 5]), 0.1, classes=torch.tensor([4, 6]))


def test_inject_keeps_clean_labels_and_marks_flips():
    y = torch.arange(10).repeat(300) * 3 + 1
    data = Dataset(x=torch.randn(len(y), 2), y=y, sub=y // 2, name="toy")
    noisy = noise.inject(data, rate=0.25, kind="pairflip", seed=3)
    assert torch.equal(noisy.clean_y, y) and torch.equal(noisy.sub, data.sub) and noisy.x is data.x
    assert torch.equal(noisy.flipped, noisy.y != y)
    assert abs(float(noisy.flipped.float().mean()) - 0.25) < 0.03
    assert data.clean_y is None and noisy.meta["noise"] == {
        "rate": 0.25,
        "kind": "pairflip",
        "seed": 3,
    }
    twice = noise.inject(noisy, rate=0.25, seed=4)
    assert torch.equal(twice.clean_y, y)
    with pytest.raises(ValueError, match="symmetric, pairflip"):
        noise.inject(data, rate=0.1, kind="uniform")
