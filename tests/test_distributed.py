"""Under DDP the loss and gradients equal a single process on the concatenated batch."""

import pytest
import torch
import torch.distributed as dist

from dmllab.build import build_components, build_regularisers
from dmllab.config import Config
from dmllab.distributed import launch
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


def worker(out):
    rank, world = dist.get_rank(), dist.get_world_size()
    for case in sorted(CASES):
        torch.save(one_step(CASES[case], rank, world), f"{out}.{case}.{rank}")


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
