"""Under DDP the loss and gradients equal a single process on the concatenated batch, and a
cross-batch memory holds the same gathered batches in the same order on every rank; a rank's
error reaches the caller as itself."""

import errno
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist

from dmllab.build import build_components, build_regularisers
from dmllab.config import Config
from dmllab.distributed import RankError, RankTraceback, launch
from dmllab.engine import CrossBatchMemory
from dmllab.errors import describe
from dmllab.train import _undo_world_scaling, step_loss

CASES = {
    "nearest-triplet": dict(loss="triplet", positives="nearest", negatives="semihard"),
    "lsd-margin": dict(loss="margin", positives="random", negatives="hardest", lsd_alpha=5.0),
    "lsd-bregman": dict(loss="triplet", geometry="bregman", normalize=False, lsd_alpha=5.0),
}


def make_batch():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 6, generator=g)
    y = torch.arange(4).repeat_interleave(4)  # 4 classes x 4 samples
    return x, y


def one_step(changes, rank=0, world=1):
    config = Config(
        dataset="mixture", embedding_dim=5, samples_per_class=4, classes_per_batch=4, **changes
    )
    x, y = make_batch()
    torch.manual_seed(1)
    model, geometry, loss_fn = build_components(config, (6,), num_classes=4)
    torch.manual_seed(2)
    teacher_model, teacher_geometry, _ = build_components(config, (6,), num_classes=4)
    regularisers = build_regularisers(config, geometry)  # LSD when lsd_alpha > 0
    for regulariser in regularisers:
        regulariser.start_epoch(7, 50)  # weight 7 / 50 * alpha = 0.7
        regulariser.end_epoch(teacher_model, teacher_geometry, epoch=0)
    trained = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        trained = DistributedDataParallel(model)
    shard = slice(rank * len(x) // world, (rank + 1) * len(x) // world)
    torch.manual_seed(3)  # the same random choices on every rank
    loss, _ = step_loss(trained, loss_fn, x[shard], y[shard], regularisers=regularisers)
    (loss * world).backward()
    _undo_world_scaling(loss_fn, world)
    grads = {f"model.{n}": p.grad.clone() for n, p in model.named_parameters()}
    grads.update(
        {f"loss.{n}": p.grad.clone() for n, p in loss_fn.named_parameters() if p.grad is not None}
    )
    return float(loss.detach()), grads


def memory_steps(rank=0, world=1, steps=5):
    """A few steps of nearest positives at 2 samples per class with a cross-batch memory: each
    rank feeds its shard of every global batch; returns the memory and the last step's loss."""
    config = Config(
        dataset="mixture",
        embedding_dim=5,
        classes_per_batch=4,
        samples_per_class=2,
        positives="nearest",
        memory_size=20,
        memory_warmup=1,
    )
    torch.manual_seed(1)
    model, _, loss_fn = build_components(config, (6,), num_classes=4)
    memory = CrossBatchMemory(config.memory_size, config.memory_warmup)
    g = torch.Generator().manual_seed(5)
    for step in range(1, steps + 1):
        # 4 classes x 2: rank 0's shard holds classes 0 and 1, rank 1's classes 2 and 3
        x, y = torch.randn(8, 6, generator=g), torch.arange(4).repeat_interleave(2)
        ids = torch.arange(8) + 8 * (step % 2)  # every other step shows the same samples again
        shard = slice(rank * len(x) // world, (rank + 1) * len(x) // world)
        torch.manual_seed(step)  # the same random choices on every rank
        loss, stats = step_loss(
            model, loss_fn, x[shard], y[shard], reference=memory, ids=ids[shard]
        )
        memory.on_batch_end(SimpleNamespace(step=step), stats)
    return {
        "embeddings": memory.embeddings,
        "labels": memory.labels,
        "ids": memory.ids,
        "read": stats["memory_rows"],
        "loss": loss.detach(),
    }


def worker(out):
    rank, world = dist.get_rank(), dist.get_world_size()
    for case in sorted(CASES):
        torch.save(one_step(CASES[case], rank, world), f"{out}.{case}.{rank}")
    torch.save(memory_steps(rank, world), f"{out}.memory.{rank}")


@pytest.fixture(scope="module")
def two_rank_results(tmp_path_factory):
    """One 2-process gloo group (`distributed.launch`: loopback, file store) runs every case
    once."""
    out = str(tmp_path_factory.mktemp("ddp") / "result")
    launch(worker, 2, out)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_two_gloo_ranks_match_one_process_on_the_concatenated_batch(two_rank_results, case):
    expected_loss, expected_grads = one_step(CASES[case])
    for rank in range(2):
        loss, grads = torch.load(f"{two_rank_results}.{case}.{rank}", weights_only=True)
        assert loss == pytest.approx(expected_loss, rel=1e-5)
        assert grads.keys() == expected_grads.keys()
        for name, grad in grads.items():
            torch.testing.assert_close(grad, expected_grads[name], rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.slow
def test_the_memory_holds_the_gathered_batches_in_the_same_order_on_every_rank(two_rank_results):
    """pytorch-metric-learning issue #639: a memory filled in a rank-dependent order differs
    between ranks. Here every rank enqueues the gathered global batch in rank order."""
    ranks = [torch.load(f"{two_rank_results}.memory.{r}", weights_only=True) for r in range(2)]
    assert torch.equal(ranks[0]["embeddings"], ranks[1]["embeddings"])
    assert torch.equal(ranks[0]["labels"], ranks[1]["labels"])
    assert torch.equal(ranks[0]["ids"], ranks[1]["ids"])
    # the last 20 of the 4 enqueued batches (the warm-up step is not), rank 0's shard first
    assert ranks[0]["labels"].tolist() == [2, 2, 3, 3] + [0, 0, 1, 1, 2, 2, 3, 3] * 2
    assert ranks[0]["ids"].tolist() == [12, 13, 14, 15, *range(8), *range(8, 16)]
    # the last step's batch (samples 8-15) read the memory without its own earlier copies
    assert ranks[0]["read"] == ranks[1]["read"] == 12
    alone = memory_steps()  # one process on the concatenated batches
    assert torch.equal(ranks[0]["labels"], alone["labels"])
    assert torch.equal(ranks[0]["ids"], alone["ids"])
    torch.testing.assert_close(ranks[0]["embeddings"], alone["embeddings"])
    assert ranks[0]["loss"] == pytest.approx(float(alone["loss"]), rel=1e-5)


# ------------------------------------------------------------------ issue 23, case 6: errors
class Unrebuildable(Exception):
    """An exception whose class cannot be built again from its pickle (two arguments)."""

    def __init__(self, what, why):
        super().__init__(f"{what} failed: {why}")


def fail_in_rank(kind):
    """Rank 1 fails; rank 0 waits for it in a collective and then fails because it left."""
    if dist.get_rank() == 1:
        if kind == "value":
            raise ValueError("dataset 'mine': option 'size' must be positive; got -3")
        if kind == "unrebuildable":
            raise Unrebuildable("loading", "no such thing")
        try:
            raise OSError(errno.ENOSPC, "No space left on device", "out/model.pt")
        except OSError as error:
            raise RuntimeError("saving the run failed") from error
    dist.barrier()


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind, raised, described",
    [
        ("value", ValueError, "ValueError: dataset 'mine': option 'size' must be positive; got -3"),
        ("unrebuildable", RankError, "RankError: Unrebuildable: loading failed: no such thing"),
        ("disk full", RuntimeError, "No space left on device (ENOSPC): out/model.pt"),
    ],
)
def test_a_rank_error_reaches_the_caller_as_itself(kind, raised, described):
    """The issue's instance: the caller saw "ProcessRaisedException: -- Process 0 terminated
    with the following error:" and nothing of the cause."""
    with pytest.raises(raised) as error:
        launch(fail_in_rank, 2, kind)
    assert describe(error.value) == described
    innermost = error.value
    while innermost.__cause__ is not None:
        innermost = innermost.__cause__
    assert isinstance(innermost, RankTraceback)
    assert str(innermost).startswith("in rank 1:\nTraceback") and "fail_in_rank" in str(innermost)
