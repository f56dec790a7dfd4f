"""The cross-batch memory: a FIFO of earlier batches' embeddings that every loss reads beside the
batch (the anchor's own row left out by index), started after a warm-up, checkpointed with the
training state; nearest positives may come from it."""

from types import SimpleNamespace

import pytest
import torch
from torch.nn import functional as F

import dmllab as dl
from dmllab.build import build_components, build_regularisers
from dmllab.engine import Callback, CrossBatchMemory
from dmllab.losses import TripletLoss
from dmllab.losses.lsd import ListwiseSelfDistillation
from dmllab.train import step_loss
from dmllab.values import BadValue
from train_configs import digits_config


def rows(start, n, d=3):
    """n rows whose first coordinate numbers them: start, start + 1, ..."""
    x = torch.zeros(n, d)
    x[:, 0] = torch.arange(start, start + n, dtype=torch.float32)
    return x


def test_the_memory_is_first_in_first_out_and_keeps_the_newest_rows():
    memory = CrossBatchMemory(size=5)
    assert len(memory) == 0 and memory.reference_set(rows(0, 2), torch.tensor([0, 1])) == (
        None,
        None,
        None,
    )
    for step in range(4):  # batches of 2 rows numbered 0-1, 2-3, 4-5, 6-7
        memory.enqueue(rows(2 * step, 2), torch.tensor([step, step]))
    assert memory.embeddings[:, 0].tolist() == [3, 4, 5, 6, 7]  # oldest first
    assert memory.labels.tolist() == [1, 2, 2, 3, 3]
    memory.enqueue(rows(8, 7), torch.arange(7))  # a batch larger than the memory
    assert memory.embeddings[:, 0].tolist() == [10, 11, 12, 13, 14]
    z = rows(100, 3).requires_grad_(True)
    ref, ref_labels, own = memory.reference_set(z, torch.tensor([7, 8, 9]))
    assert ref[:, 0].tolist() == [100, 101, 102, 10, 11, 12, 13, 14]
    assert ref_labels.tolist() == [7, 8, 9, 2, 3, 4, 5, 6] and own.tolist() == [0, 1, 2]
    assert ref.requires_grad and not memory.embeddings.requires_grad  # the batch keeps its grad
    with pytest.raises(ValueError, match="size must be an int >= 1"):
        CrossBatchMemory(0)
    with pytest.raises(ValueError, match="warmup must be an int >= 0"):
        CrossBatchMemory(4, warmup=-1)


class MemoryLog(Callback):
    """After the memory's own hook: the rows each step read beside its batch (`memory_rows`) and
    the rows the memory holds after it."""

    def __init__(self):
        self.read, self.held = [], []

    def on_batch_end(self, state, stats):
        self.read.append(stats["memory_rows"])
        self.held.append(len(state.memory))


def test_the_memory_starts_after_the_warm_up_and_fills_to_its_size():
    log = MemoryLog()
    config = digits_config(
        epochs=2, batches_per_epoch=5, memory_size=100, memory_warmup=3, samples_per_class=4
    )  # global batch of 20
    run = dl.fit(config, callbacks=[log], progress=False)
    # steps 1-3: warm-up; step 4 reads the batch alone and enqueues it; then 20 more per step
    assert log.held == [0, 0, 0, 20, 40, 60, 80, 100, 100, 100]
    # each step reads what the memory held before it, less earlier copies of its own samples
    assert log.read[:4] == [0, 0, 0, 0]
    assert all(h - 20 <= r <= h for r, h in zip(log.read[4:], log.held[3:], strict=False))
    assert log.read[4:8] == [20, 40, 60, 80]  # no sample came back yet
    assert run.history[1]["memory_rows"] == pytest.approx(sum(log.read[5:]) / 5)
    plain = dl.fit(digits_config(epochs=1, batches_per_epoch=2), progress=False)
    assert "memory_rows" not in plain.history[0]  # memory_size=0: no memory, no column


def test_each_anchor_leaves_out_its_own_row_and_finds_a_nearer_positive_in_the_memory():
    """2 samples per class: the batch's only positive is the far classmate; the memory holds an
    exact copy of every anchor (distance 0), which must be chosen, never the anchor's own row."""
    z = F.normalize(torch.randn(6, 4, generator=torch.Generator().manual_seed(0)), dim=1)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    memory = CrossBatchMemory(size=6)
    memory.enqueue(z.clone(), labels)
    ref, ref_labels, own = memory.reference_set(z, labels)
    loss = TripletLoss("euclidean", positives="nearest", negatives="hardest", margin=0.5)
    matrix = loss.matrix(dl.losses.base.Inputs(z, labels, ref, ref_labels, own, None))
    pairs = loss.positive_strategy(matrix.D, matrix.same)
    assert pairs.positives.tolist() == [6, 7, 8, 9, 10, 11]  # the copies, not the anchors
    loss(z, labels, ref, ref_labels, own=own)
    assert loss.last_stats["pos_dist"] == 0.0
    loss(z, labels)  # the batch alone: the classmate
    assert loss.last_stats["pos_dist"] > 0.5


def test_step_loss_hands_the_loss_batch_and_memory_and_lsd_the_batch_columns():
    config = dl.Config(dataset="mixture", embedding_dim=5, geometry="cosine", lsd_alpha=5.0)
    torch.manual_seed(1)
    model, geometry, loss_fn = build_components(config, (6,), num_classes=4)
    lsd = build_regularisers(config, geometry)[0]
    lsd.lists = "distance"  # reads the matrix the trainer shares
    lsd.reads_distances = True
    lsd.start_epoch(3, 10)
    lsd.end_epoch(model, geometry, epoch=0)
    seen = []
    term = lsd.term
    lsd.term = lambda z, y, D, x: (seen.append(D.shape), term(z, y, D, x))[1]
    memory = CrossBatchMemory(size=16)
    memory.enqueue(torch.randn(16, 5), torch.arange(4).repeat(4))
    x, y = torch.randn(8, 6), torch.arange(4).repeat_interleave(2)
    torch.manual_seed(2)
    _, stats = step_loss(model, loss_fn, x, y, regularisers=[lsd], reference=memory)
    assert seen == [torch.Size([8, 8])]  # LSD lists within the batch
    z = model(x)
    ref = torch.cat([z, memory.embeddings])
    torch.manual_seed(2)
    base = loss_fn(z, y, ref, torch.cat([y, memory.labels]), own=torch.arange(8))
    assert stats["base_loss"] == pytest.approx(float(base.detach()))
    assert isinstance(lsd, ListwiseSelfDistillation) and "lsd_term" in stats
    memory.on_batch_end(SimpleNamespace(step=1), stats)  # warm-up 0: the batch is enqueued
    assert len(memory) == 16 and torch.allclose(memory.embeddings[-8:], z.detach())


def test_the_memory_state_round_trips_and_refuses_another_size():
    memory = CrossBatchMemory(size=4, warmup=2)
    memory.enqueue(rows(0, 3), torch.tensor([0, 1, 2]))
    other = CrossBatchMemory(size=4, warmup=2)
    other.load_state_dict(memory.state_dict())
    assert torch.equal(other.embeddings, memory.embeddings) and other.labels.tolist() == [0, 1, 2]
    z = rows(5, 2).double()  # another dtype (and, on a GPU, device): the memory follows the batch
    ref, _, _ = other.reference_set(z, torch.tensor([3, 4]))
    assert ref.dtype == torch.float64 and ref.shape == (5, 3)
    with pytest.raises(ValueError, match="resume with the same memory_size"):
        CrossBatchMemory(size=8).load_state_dict(memory.state_dict())


def test_config_allows_nearest_at_two_per_class_only_with_a_memory():
    config = dl.Config(positives="nearest", samples_per_class=2, memory_size=256)
    assert config.memory_warmup == 50  # the default (dmllab.engine.memory says why)
    with pytest.raises(
        BadValue, match=r"needs samples_per_class >= 3 \(got 2\).*cross-batch memory"
    ):
        dl.Config(positives="nearest", samples_per_class=2)
    assert dl.Config(samples_per_class=2, k_positives=3, memory_size=64).k_positives == 3
    with pytest.raises(BadValue, match=r"distance matrix \[16384, 16484\] would not fit"):
        dl.Config(classes_per_batch=2, samples_per_class=8192, memory_size=100)
    with pytest.raises(BadValue, match=r"Config\.memory_size"):
        dl.Config(memory_size=-1)
    assert dl.Config(loss="prototype_ce", memory_size=64).memory_size == 64


def test_nearest_positives_with_a_memory_train_at_two_per_class():
    config = digits_config(
        epochs=2,
        batches_per_epoch=6,
        positives="nearest",
        samples_per_class=2,
        memory_size=60,
        memory_warmup=2,
    )
    run = dl.fit(config, progress=False)
    # batches of 10: step 3 enqueues the first, steps 7-12 read up to 40, 50, then 60 rows (less
    # the earlier copies of each batch's own samples)
    assert 45 < run.history[-1]["memory_rows"] <= 55 and run.history[-1]["dropped"] == 0


class SelfExclusion(Callback):
    """After each step: the rows it read = the memory's rows before it, less those of the samples
    in its batch (their earlier copies)."""

    def __init__(self):
        self.before, self.checked, self.left_out = None, 0, 0

    def on_batch_end(self, state, stats):
        if self.before is not None:
            batch_copies = torch.isin(self.before, state.batches.index)
            assert stats["memory_rows"] == len(self.before) - int(batch_copies.sum())
            self.checked += 1
            self.left_out += int(batch_copies.sum())
        self.before = state.memory.ids.clone() if state.memory.ids is not None else None


def test_a_fit_leaves_out_the_memory_rows_of_the_samples_in_its_batch():
    check = SelfExclusion()
    config = digits_config(
        epochs=3, batches_per_epoch=10, memory_size=4000, memory_warmup=0, samples_per_class=4
    )  # a memory larger than the training set: every sample comes back
    dl.fit(config, callbacks=[check], progress=False)
    assert check.checked == 29 and check.left_out > 0
