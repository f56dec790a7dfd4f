"""`fit(config, dataset) -> Run`: the one training loop of the lab.

Per batch (P classes x K samples from `ClassBalancedSampler`):

    z = model(x)                              # embeddings, all-gathered across DDP ranks
    D = geometry.pairwise(z, z)               # one dissimilarity matrix, anchor first
    loss = base_loss(z, y, D) + sum(r.term(z, y, D, x) for the active regularisers r)

The regularisers (`dmllab.losses.regularisers`: LSD when `lsd_alpha > 0`, plus any passed to
`fit`) get their epoch hooks from the loop: LSD's weight (e/E) * alpha at each epoch's start, its
teacher (a frozen copy of the model and geometry, fed the very same batch) at each epoch's end.
D is computed once and shared when a regulariser reads it. Validation metrics come
from a split of the *training* classes; the test split is never used to select anything
(`monitor_test` only records test curves for the lessons' plots).
"""

from __future__ import annotations

import copy
import os
import random
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

import numpy as np
import torch
from torch import Tensor, nn

from dmllab import distributed
from dmllab.build import build_components, build_regularisers, prepare
from dmllab.config import Config
from dmllab.data import ClassBalancedSampler
from dmllab.data.dataset import Dataset
from dmllab.geometry.base import all_finite
from dmllab.guards import DivergenceGuard
from dmllab.losses.base import MetricLoss
from dmllab.losses.regularisers import Regulariser
from dmllab.runs import Run

Callback = Callable[[Run, int], None]


class StopTraining(Exception):
    """Raise from a callback to end training after the current epoch."""


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or inf; training stops instead of producing garbage."""


def resolve_device(name: str) -> torch.device:
    """`cpu`, `cuda`, `mps`, or `auto` (the first available of cuda, mps, cpu)."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "Config.device='cuda' but torch sees no CUDA device; use device='cpu' or 'auto'"
        )
    if name == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise ValueError(
            "Config.device='mps' but this torch has no MPS device; use device='cpu' or 'auto'"
        )
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's global and torch's random number generators with `seed`."""
    random.seed(seed)
    # the legacy global RNG on purpose: user code and libraries draw from it
    np.random.seed(seed % 2**32)  # noqa: NPY002
    torch.manual_seed(seed)


def step_loss(
    model: nn.Module,
    loss_fn: MetricLoss,
    x: Tensor,
    y: Tensor,
    *,
    regularisers: Sequence[Regulariser] = (),
) -> tuple[Tensor, dict[str, float]]:
    """The training objective on one (local) batch, and its statistics: the base loss's
    `last_stats`, `base_loss`, each active regulariser's statistics, then `loss`.

    Under DDP the embeddings, labels and the regularisers' terms cover the global batch.
    """
    z = distributed.gather(model(x))
    if not all_finite(z):
        raise NonFiniteLossError(
            "the embeddings became NaN or inf (training diverged); lower Config.lr or loss_lr, "
            "or check the inputs for NaN/inf"
        )
    labels = distributed.gather(y)
    active = [regulariser for regulariser in regularisers if regulariser.active]
    # Shared with a regulariser that reads D; otherwise the loss builds what it needs
    # (see losses.base).
    reads = any(regulariser.reads_distances for regulariser in active)
    distances = loss_fn.geometry.pairwise(z, z) if reads else None
    base = loss_fn(z, labels, distances=distances)
    stats = {key: float(value) for key, value in loss_fn.last_stats.items()}
    stats["base_loss"] = float(base.detach())
    loss = base
    for regulariser in active:
        term, term_stats = regulariser.term(z, labels, distances, x)
        loss = loss + term
        stats.update(term_stats)
    stats["loss"] = float(loss.detach())
    return loss, stats


def fit(
    config: Config,
    dataset: Dataset | None = None,
    *,
    callbacks: Iterable[Callback] = (),
    progress: bool = True,
    regularisers: Iterable[Regulariser] = (),
) -> Run:
    """Train the model, geometry and loss that `config` names; a given `dataset` wins over
    `config.dataset`. Returns a `Run` (model in eval mode) whose history has one row per epoch.

    `regularisers` are added to the base loss after the ones `config` names (LSD when
    lsd_alpha > 0); see `dmllab.losses.regularisers` for their contract. Callbacks run after
    every epoch with (run, epoch) and may raise `StopTraining`."""
    callbacks = list(callbacks)
    device = resolve_device(config.device)
    is_ddp = distributed.init_from_env(device)
    seed_everything(config.seed)
    splits = prepare(config, dataset)
    train = splits.train
    input_shape = tuple(train.x[torch.tensor([0])].shape[1:])
    model, geometry, loss_fn = build_components(
        config, input_shape, train.num_classes, train.image_shape, classes=train.classes
    )
    model.to(device)
    loss_fn.to(device)
    probe_index = _probe_index(len(train), config.probe_size, config.seed)
    run = Run(
        model=model,
        geometry=geometry,
        config=config,
        data=splits,
        loss_fn=loss_fn,
        probe_index=probe_index,
    )

    optimizer = _optimizer(config, model, loss_fn)
    if optimizer is None:  # nothing to learn (identity embedding, fixed geometry): evaluable as is
        model.eval()
        if config.snapshot_every:
            _record_snapshot(run, probe_index, epoch=0)
        return run
    guard = DivergenceGuard(config, model, loss_fn)

    terms = [*build_regularisers(config, geometry), *regularisers]
    for regulariser in terms:
        regulariser.to(device)
    sampler = ClassBalancedSampler(
        train.y,
        config.classes_per_batch,
        config.samples_per_class,
        batches_per_epoch=config.batches_per_epoch,
        seed=config.seed,
        rank=distributed.rank(),
        world_size=distributed.world_size(),
    )
    trained_model = model
    if is_ddp:
        from torch.nn.parallel import DistributedDataParallel

        trained_model = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    best: tuple[float, int, dict] | None = None
    epochs = progress_bar(range(config.epochs), progress and distributed.is_main(), desc="epochs")
    for epoch in epochs:
        started = time.perf_counter()
        sampler.set_epoch(epoch)
        epoch_entries: dict[str, float] = {}
        for regulariser in terms:
            epoch_entries.update(regulariser.start_epoch(epoch, config.epochs))
        model.train()
        loss_fn.train()
        totals: dict[str, float] = {}
        batches = 0
        for index in sampler:
            x = train.x[index].to(device)
            y = train.y[index].to(device)
            loss, stats = step_loss(trained_model, loss_fn, x, y, regularisers=terms)
            if not torch.isfinite(loss):
                raise NonFiniteLossError(
                    f"the loss became {float(loss)} in epoch {epoch} (batch {batches}); "
                    f"lower Config.lr (now {config.lr}) or loss_lr, or check the inputs for NaN/inf"
                )
            optimizer.zero_grad(set_to_none=True)
            (loss * distributed.world_size()).backward()
            _undo_world_scaling(loss_fn, distributed.world_size())
            _check_gradients(optimizer, stats["loss"], epoch, batches)
            optimizer.step()
            guard.batch(stats["loss"])
            for key, value in stats.items():
                totals[key] = totals.get(key, 0.0) + value
            batches += 1
        row = {
            "epoch": epoch,
            **{key: value / max(batches, 1) for key, value in totals.items()},
            **epoch_entries,
        }
        for regulariser in terms:
            regulariser.end_epoch(model, geometry, epoch)
        model.eval()
        loss_fn.eval()
        if epoch % config.eval_every == 0 or epoch == config.epochs - 1:
            row.update(_monitor(run, config))
        row["seconds"] = time.perf_counter() - started
        run.history.append(row)
        if config.snapshot_every and (
            epoch % config.snapshot_every == 0 or epoch == config.epochs - 1
        ):
            _record_snapshot(run, probe_index, epoch)
        guard.end_epoch(run, epoch)
        if progress and hasattr(epochs, "set_postfix"):
            epochs.set_postfix({k: f"{row[k]:.3f}" for k in ("loss", "val_recall@1") if k in row})
        stop = False
        if config.early_stopping_patience is not None and "val_recall@1" in row:
            best, stop = _early_stopping(
                best, row["val_recall@1"], epoch, model, loss_fn, config.early_stopping_patience
            )
        try:
            for callback in callbacks:
                callback(run, epoch)
        except StopTraining:
            stop = True
        if stop:
            run.stopped_early = True
            break
    if best is not None:
        model.load_state_dict(best[2]["model"])
        loss_fn.load_state_dict(best[2]["loss"])
        run.metrics["best_epoch"] = best[1]
    model.eval()
    loss_fn.eval()
    return run


def _optimizer(
    config: Config, model: nn.Module, loss_fn: nn.Module
) -> torch.optim.Optimizer | None:
    groups = []
    model_params = [p for p in model.parameters() if p.requires_grad]
    loss_params = [p for p in loss_fn.parameters() if p.requires_grad]
    if model_params:
        groups.append({"params": model_params, "lr": config.lr})
    if loss_params:
        groups.append({"params": loss_params, "lr": config.loss_lr or config.lr})
    if not groups:
        return None
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
    kind = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return kind(groups, lr=config.lr, weight_decay=config.weight_decay)


def _undo_world_scaling(loss_fn: nn.Module, world: int) -> None:
    """Under DDP every rank computes the global loss. The model's gradient flows only through the
    rank's own rows and DDP averages it, so the loss is scaled by the world size to get the exact
    sum; the loss's and geometry's own parameters already see the whole batch on every rank, so
    that scale is taken back out of their gradients."""
    if world == 1:
        return
    for parameter in loss_fn.parameters():
        if parameter.grad is not None:
            parameter.grad.div_(world)


def _check_gradients(optimizer: torch.optim.Optimizer, loss: float, epoch: int, batch: int) -> None:
    """NonFiniteLossError before a NaN / inf gradient reaches the weights (the loss was finite)."""
    grads = [
        p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None
    ]
    # one reduction over all parameters; per parameter only when a sum is not finite (overflow)
    if (
        not grads
        or all_finite(torch.stack([g.sum() for g in grads]))
        or all(all_finite(g) for g in grads)
    ):
        return
    raise NonFiniteLossError(
        f"the gradient became NaN or inf in epoch {epoch} (batch {batch}) "
        f"while the loss was finite ({loss:.4g}): "
        "the geometry or loss has no finite derivative at this batch (e.g. a square root at 0). "
        "Check the geometry and loss options, lower Config.lr or loss_lr, "
        "or check the inputs for extreme values"
    )


def _monitor(run: Run, config: Config) -> dict[str, float]:
    """Validation metrics (for selection) and, if asked, test curves (for plots only)."""
    from dmllab.metrics import retrieval

    row: dict[str, float] = {}
    targets = [("val", run.val)]
    if config.monitor_test:
        targets.append(("test", run.test))
    for prefix, data in targets:
        if data is None:
            continue
        values = retrieval(run.embed(data), data.y, geometry=run.geometry, ks=(1,))
        row[f"{prefix}_recall@1"] = values["recall@1"]
        row[f"{prefix}_map@r"] = values["map@r"]
    train = run.train
    if config.monitor_test and train.flipped is not None:
        from dmllab.metrics import memorisation

        row["train_memorisation"] = memorisation(
            run.embed(train), train.y, train.flipped, geometry=run.geometry
        )
    return row


def _early_stopping(
    best: tuple[float, int, dict] | None,
    score: float,
    epoch: int,
    model: nn.Module,
    loss_fn: nn.Module,
    patience: int,
) -> tuple[tuple[float, int, dict], bool]:
    if best is None or score > best[0]:
        state = {
            "model": copy.deepcopy(model.state_dict()),
            "loss": copy.deepcopy(loss_fn.state_dict()),
        }
        return (score, epoch, state), False
    return best, epoch - best[1] >= patience


def _probe_index(size: int, probe_size: int, seed: int) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(size, generator=generator)[: min(size, probe_size)].sort().values


def _record_snapshot(run: Run, probe_index: Tensor, epoch: int) -> None:
    probe = run.train.subset(probe_index)
    run.snapshots[epoch] = run.embed(probe)


PROGRESS_ENV = "DMLLAB_PROGRESS"
_Item = TypeVar("_Item")


def progress_bar(
    items: Iterable[_Item], show: bool, *, desc: str, total: int | None = None, leave: bool = False
) -> Iterable[_Item]:
    """`items` wrapped in a tqdm.auto bar (a widget in Jupyter, text on a terminal), or `items`
    itself when `show` is False or the environment sets DMLLAB_PROGRESS=0 (as `dmllab demo / run /
    sweep` do for the notebooks they execute, whose saved copies cannot update a bar)."""
    if not show or os.environ.get(PROGRESS_ENV, "1") == "0":
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, total=total, leave=leave)


__all__ = [
    "fit",
    "progress_bar",
    "step_loss",
    "StopTraining",
    "NonFiniteLossError",
    "resolve_device",
    "seed_everything",
    "Callback",
]
