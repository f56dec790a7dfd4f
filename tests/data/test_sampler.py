"""ClassBalancedSampler: P x K composition, coverage, determinism, DDP shards, errors."""

from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dmllab.data import ClassBalancedSampler

P, K = 4, 3


def _labels(sizes):
    """Class c has sizes[c] samples; rows shuffled so indices do not reveal the class."""
    y = torch.cat([torch.full((n,), c * 7) for c, n in enumerate(sizes)])
    return y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))]


def _check_composition(batch, labels, p=P, k=K):
    assert batch.dtype == torch.long and batch.shape == (p * k,)
    blocks = labels[batch].reshape(p, k)
    assert (blocks == blocks[:, :1]).all()  # the K samples of a class contiguous
    assert len(set(blocks[:, 0].tolist())) == p  # P distinct classes


def test_batches_hold_p_classes_of_k_samples_without_duplicates():
    labels = _labels([12, 9, 30, 5, 7, 3, 40])
    sampler = ClassBalancedSampler(labels, P, K, seed=1)
    assert len(sampler) == len(labels) // (P * K)
    batches = list(sampler)
    assert len(batches) == len(sampler)
    for batch in batches:
        _check_composition(batch, labels)
        assert len(set(batch.tolist())) == P * K


def test_every_sample_is_seen_about_once_per_epoch_even_with_unbalanced_classes():
    sizes = [60, 12, 24, 36, 48, 6, 30, 24]
    labels = _labels(sizes)
    sampler = ClassBalancedSampler(labels, P, K, seed=0)
    seen = torch.bincount(torch.cat(list(sampler)), minlength=len(labels))
    assert int(seen.sum()) == len(sampler) * P * K
    assert (seen >= 1).float().mean() > 0.9 and int(seen.max()) <= 2
    per_class = torch.bincount(labels[torch.cat(list(sampler))] // 7, minlength=len(sizes)).float()
    assert torch.allclose(per_class / per_class.sum(), torch.tensor(sizes) / sum(sizes), atol=0.03)


def test_set_epoch_reseeds_deterministically():
    labels = _labels([10] * 8)
    first = ClassBalancedSampler(labels, P, K, seed=3)
    second = ClassBalancedSampler(labels, P, K, seed=3)
    epoch0 = torch.cat(list(first))
    assert torch.equal(epoch0, torch.cat(list(second)))
    assert torch.equal(epoch0, torch.cat(list(first)))  # iterating again repeats the epoch
    first.set_epoch(1)
    second.set_epoch(1)
    epoch1 = torch.cat(list(first))
    assert torch.equal(epoch1, torch.cat(list(second))) and not torch.equal(epoch0, epoch1)
    other = ClassBalancedSampler(labels, P, K, seed=4)
    assert not torch.equal(epoch0, torch.cat(list(other)))


def test_batches_per_epoch_overrides_the_default_length():
    sampler = ClassBalancedSampler(_labels([5] * 4), 2, 2, batches_per_epoch=17)
    assert len(sampler) == 17 and len(list(sampler)) == 17


def test_small_classes_enter_a_batch_once_each_and_are_warned_about_once():
    labels = _labels([2, 8, 8])
    with pytest.warns(UserWarning, match="1 class.*fewer than samples_per_class=3"):
        sampler = ClassBalancedSampler(labels, 3, 3, batches_per_epoch=6, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        batches = list(sampler)
    for batch in batches:
        assert len(set(batch.tolist())) == len(batch)  # no sample twice
        small = batch[labels[batch] == 0]
        assert (
            sorted(small.tolist()) == (labels == 0).nonzero().squeeze(1).tolist()
        )  # both, once each
        assert len(batch) == 8


def test_nearest_positive_is_never_a_copy_of_the_anchor():
    # The case: labels [0,0,1,1,1,1,1,1], P = 2, K = 4. Repeats would give D = 0 pairs.
    labels = torch.tensor([0, 0, 1, 1, 1, 1, 1, 1])
    with pytest.warns(UserWarning):
        sampler = ClassBalancedSampler(labels, 2, 4, batches_per_epoch=20, seed=3)
    x = torch.randn(len(labels), 5)
    for batch in sampler:
        z = x[batch]
        D = torch.cdist(z, z)
        same = (labels[batch][:, None] == labels[batch][None, :]).fill_diagonal_(False)
        nearest = D.masked_fill(~same, float("inf")).min(dim=1).values
        assert bool((nearest > 0).all()), batch


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 9), min_size=2, max_size=6),
    k=st.integers(2, 6),
    world_size=st.sampled_from([1, 2, 4]),
    seed=st.integers(0, 2**16),
)
def test_batches_never_repeat_a_sample_and_shard_evenly(sizes, k, world_size, seed):
    labels = _labels(sizes)
    p = 2
    assume((p * k) % world_size == 0 and sum(sorted(min(n, k) for n in sizes)[:p]) >= world_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = list(ClassBalancedSampler(labels, p, k, batches_per_epoch=4, seed=seed))
        shards = [
            list(
                ClassBalancedSampler(
                    labels, p, k, batches_per_epoch=4, seed=seed, rank=r, world_size=world_size
                )
            )
            for r in range(world_size)
        ]
    for step, batch in enumerate(whole):
        assert len(set(batch.tolist())) == len(batch) and len(batch) <= p * k
        assert len(torch.unique(labels[batch])) == p
        global_batch = torch.cat([shards[r][step] for r in range(world_size)])
        assert len(global_batch) % world_size == 0 and len(global_batch) > len(batch) - world_size
        assert set(global_batch.tolist()) <= set(batch.tolist())


@pytest.mark.parametrize("world_size", [2, 3, 4])
def test_ddp_shards_concatenate_to_the_global_batch(world_size):
    labels = _labels([15] * 10)
    p, k = 4, 6
    whole = ClassBalancedSampler(labels, p, k, seed=5)
    whole.set_epoch(2)
    shards = []
    for rank in range(world_size):
        sampler = ClassBalancedSampler(labels, p, k, seed=5, rank=rank, world_size=world_size)
        sampler.set_epoch(2)
        shards.append(list(sampler))
        assert all(len(batch) == p * k // world_size for batch in shards[-1])
    for step, batch in enumerate(whole):
        assert torch.equal(torch.cat([shards[rank][step] for rank in range(world_size)]), batch)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(classes_per_batch=1, samples_per_class=4), "classes_per_batch must be an int >= 2"),
        (dict(classes_per_batch=4, samples_per_class=1), "samples_per_class must be an int >= 2"),
        (
            dict(classes_per_batch=6, samples_per_class=2),
            "only 5 classes; lower classes_per_batch to at most 5",
        ),
        (dict(classes_per_batch=3, samples_per_class=3, world_size=2), "multiple"),
        (dict(classes_per_batch=2, samples_per_class=2, rank=2, world_size=2), "rank"),
        (dict(classes_per_batch=2, samples_per_class=2, batches_per_epoch=0), "batches_per_epoch"),
    ],
)
def test_bad_arguments_are_refused_with_a_fix(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ClassBalancedSampler(_labels([4] * 5), **kwargs)


def test_works_as_a_dataloader_batch_sampler():
    labels = _labels([6] * 4)
    data = torch.utils.data.TensorDataset(torch.arange(len(labels)), labels)
    loader = torch.utils.data.DataLoader(
        data, batch_sampler=ClassBalancedSampler(labels, 2, 3, seed=0)
    )
    for rows, batch_labels in loader:
        assert torch.equal(labels[rows], batch_labels) and len(rows) == 6
