"""`fit(config, dataset) -> Run`: the one training loop of the lab.

    state = start(config, dataset)             # model, loss + geometry, optimiser, batches, ...
    on_fit_start
    for each epoch:
        on_epoch_start
        for x, y in the epoch's class-balanced batches (a DataLoader for image files):
            z = model(x)                       # under autocast for a mixed precision
            ref = z, or [z; memory]            # with a cross-batch memory (Config.memory_size)
            D = geometry.pairwise(z, ref)      # one dissimilarity matrix, anchor first
            loss = base_loss(z, y, ref, D) + sum(r.term(z, y, D[:, :B], x) for the active
                                                 regularisers r)
            backward, clip, optimiser step, schedule step
            on_batch_end                       # the memory enqueues the batch here
        on_epoch_end                           # the epoch's history row is written
    on_fit_end

Everything else is a callback (`dmllab.engine`): the cross-batch memory, the regularisers' epoch
hooks (LSD's weight
(e/E) * alpha at each epoch's start, its teacher snapshot at each epoch's end), validation,
timing, snapshots, the divergence guard, early stopping, the progress bar, checkpoints and yours.
The whole state is a `dmllab.engine.TrainState`, whose `state_dict()` is a checkpoint. D is
computed once and shared when a regulariser reads it. Validation metrics come from a split of the
*training* classes; the test split is never used to select anything (`monitor_test` only records
test curves for the lessons' plots).
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from dmllab import distributed
from dmllab.build import build_components, build_regularisers, prepare
from dmllab.config import Config
from dmllab.data import ClassBalancedSampler
from dmllab.data.dataset import Dataset
from dmllab.data.loader import TrainBatches
from dmllab.engine import (
    Callback,
    CallbackList,
    Checkpointer,
    CheckpointMismatch,
    CrossBatchMemory,
    EarlyStopping,
    Monitor,
    ProgressBar,
    RegulariserHooks,
    SkippedImages,
    Snapshots,
    StopTraining,
    Timer,
    TrainState,
    checkpoint_path,
    load_checkpoint,
    record_snapshot,
)
from dmllab.engine.batchnorm import apply_batchnorm
from dmllab.engine.monitoring import PROGRESS_ENV, progress_bar
from dmllab.engine.precision import AutocastForward, Precision
from dmllab.geometry.base import all_finite
from dmllab.guards import DivergenceGuard
from dmllab.losses.base import MetricLoss
from dmllab.losses.regularisers import Regulariser
from dmllab.optim import build_optimizer, build_schedule, clip_gradients, parameter_groups
from dmllab.runs import Run, data_identity

EpochCallback = Callable[[Run, int], None]
"""The plain callback form: f(run, epoch), called after every epoch."""


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or inf; training stops instead of producing garbage."""


def resolve_device(name: str) -> torch.device:
    """`cpu`, `cuda`, `mps`, or `auto` (the first available of cuda, mps, cpu).

    A CUDA device is this process's own under `torchrun` (cuda:LOCAL_RANK, made the current
    device, so each rank of a node trains on its own GPU), else the current one."""
    if name == "auto":
        if torch.cuda.is_available():
            return _cuda_device()
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                "Config.device='cuda' but torch sees no CUDA device; use device='cpu' or 'auto'"
            )
        return _cuda_device()
    if name == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise ValueError(
            "Config.device='mps' but this torch has no MPS device; use device='cpu' or 'auto'"
        )
    return torch.device(name)


def _cuda_device() -> torch.device:
    local = os.environ.get("LOCAL_RANK")
    if local is None:
        return torch.device("cuda", torch.cuda.current_device())
    index = int(local)
    if index >= torch.cuda.device_count():
        raise ValueError(
            f"this is local rank {index} of torchrun, but torch sees {torch.cuda.device_count()} "
            "CUDA device(s): start at most that many processes per node (--nproc_per_node)"
        )
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


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
    reference: CrossBatchMemory | None = None,
    ids: Tensor | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """The training objective on one (local) batch, and its statistics: the base loss's
    `last_stats`, `base_loss`, each active regulariser's statistics, then `loss`.

    With a `reference` memory the loss sees the batch against batch + memory (the memory keeps
    the batch to enqueue after the step, and leaves out its rows of the samples `ids`, the
    batch's dataset rows); the regularisers see the batch's own columns of D.
    Under DDP the embeddings, labels, memory and the regularisers' terms cover the global batch.
    """
    z = distributed.gather(model(x))
    if not all_finite(z):
        raise NonFiniteLossError(
            "the embeddings became NaN or inf (training diverged); lower Config.lr or loss_lr, "
            "or check the inputs for NaN/inf"
        )
    labels = distributed.gather(y)
    ref, ref_labels, own = (None, None, None)
    if reference is not None:
        gathered = None if ids is None else distributed.gather(ids)
        ref, ref_labels, own = reference.reference_set(z, labels, gathered)
    active = [regulariser for regulariser in regularisers if regulariser.active]
    # Shared with a regulariser that reads D; otherwise the loss builds what it needs
    # (see losses.base).
    reads = any(regulariser.reads_distances for regulariser in active)
    distances = loss_fn.geometry.pairwise(z, z if ref is None else ref) if reads else None
    base = loss_fn(z, labels, ref, ref_labels, distances=distances, own=own)
    stats = {key: float(value) for key, value in loss_fn.last_stats.items()}
    stats["base_loss"] = float(base.detach())
    loss = base
    if distances is not None and ref is not None:
        distances = distances[:, : len(z)]  # the batch's own columns: lists within the batch
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
    callbacks: Iterable[Callback | EpochCallback] = (),
    progress: bool = True,
    regularisers: Iterable[Regulariser] = (),
    checkpoint_dir: str | Path | None = None,
    resume: str | Path | None = None,
) -> Run:
    """Train the model, geometry and loss that `config` names; a given `dataset` wins over
    `config.dataset`. Returns a `Run` (model in eval mode) whose history has one row per epoch.

    callbacks:      `dmllab.engine.Callback` objects (hooks at the start and end of the fit, of
                    every epoch and after every batch), or plain functions f(run, epoch) called
                    after every epoch; any of them may raise `StopTraining`.
    regularisers:   added to the base loss after the ones `config` names (LSD when lsd_alpha > 0);
                    see `dmllab.losses.regularisers` for their contract.
    checkpoint_dir: write the training state to `checkpoint_dir/checkpoint.pt` every
                    `config.checkpoint_every` epochs and at the end (refused when a checkpoint is
                    already there: resume it instead).
    resume:         continue the training whose checkpoint is in this folder (same Config, data
                    and number of ranks; later checkpoints go there too). On the CPU a resumed run
                    ends with the same weights and history as an uninterrupted one.
    """
    state = start(
        config,
        dataset,
        callbacks=callbacks,
        progress=progress,
        regularisers=regularisers,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
    )
    if state.optimizer is None:  # nothing to learn (identity embedding, fixed geometry)
        if config.snapshot_every:
            record_snapshot(state.run, epoch=0)
        return state.run
    state.callbacks.on_fit_start(state)
    for epoch in range(state.epoch, config.epochs):
        if state.should_stop:
            break
        state.epoch = epoch
        train_epoch(state)
        state.callbacks.on_epoch_end(state)
        if state.should_stop:
            state.run.stopped_early = True
    state.callbacks.on_fit_end(state)
    state.model.eval()
    state.loss_fn.eval()
    return state.run


def train_epoch(state: TrainState) -> None:
    """One epoch of optimiser steps; its history row (the batches' mean statistics) is appended
    to the run's history and set as `state.row`; the model and loss are left in eval mode."""
    state.batches.set_epoch(state.epoch)
    state.callbacks.on_epoch_start(state)
    state.model.train()
    state.loss_fn.train()
    totals: dict[str, float] = {}
    batches = 0
    for x, y in state.batches:
        stats = train_step(state, x, y, batches)
        state.callbacks.on_batch_end(state, stats)
        for key, value in stats.items():
            totals[key] = totals.get(key, 0.0) + value
        batches += 1
    state.model.eval()
    state.loss_fn.eval()
    state.row = {"epoch": state.epoch, **{k: v / max(batches, 1) for k, v in totals.items()}}
    state.run.history.append(state.row)


def train_step(state: TrainState, x: Tensor, y: Tensor, batch: int) -> dict[str, float]:
    """Forward, backward and one optimiser step on the local batch (x, y); returns the batch's
    statistics. Raises NonFiniteLossError before a NaN or inf reaches the weights."""
    optimizer = state.optimizer
    assert optimizer is not None  # `fit` runs no step without one
    world = distributed.world_size()
    loss, stats = step_loss(
        state.forward,
        state.loss_fn,
        x,
        y,
        regularisers=state.regularisers,
        reference=state.memory,
        ids=state.batches.index,
    )
    if not torch.isfinite(loss):
        raise NonFiniteLossError(
            f"the loss became {float(loss)} in epoch {state.epoch} (batch {batch}); "
            f"lower Config.lr (now {state.config.lr}) or loss_lr, or check the inputs for NaN/inf"
        )
    optimizer.zero_grad(set_to_none=True)
    state.precision.backward(loss * world)
    _undo_world_scaling(state.loss_fn, world)
    state.precision.unscale(optimizer)
    if state.precision.scaler is None:  # a GradScaler itself skips steps whose gradients overflow
        _check_gradients(optimizer, stats["loss"], state.epoch, batch)
    if state.config.grad_clip is not None:
        stats["grad_norm"] = clip_gradients(optimizer, state.config.grad_clip)
    state.precision.step(optimizer)
    if state.scheduler is not None:
        state.scheduler.step()
    state.step += 1
    state.images_seen += len(x) * world
    return stats


def start(
    config: Config,
    dataset: Dataset | None = None,
    *,
    callbacks: Iterable[Callback | EpochCallback] = (),
    progress: bool = True,
    regularisers: Iterable[Regulariser] = (),
    checkpoint_dir: str | Path | None = None,
    resume: str | Path | None = None,
) -> TrainState:
    """The state of a new training of `config` (`fit` explains the arguments): device and DDP,
    seeds, data splits, model, loss and geometry, optimiser, schedule, precision, regularisers,
    the training batches and the callbacks, with the checkpoint loaded when resuming.

    Raises CheckpointMismatch when `checkpoint_dir` already holds a checkpoint, or the one to
    resume from belongs to another Config, other data or another number of ranks."""
    device = resolve_device(config.device)
    is_ddp = distributed.init_from_env(device)
    seed_everything(config.seed)
    splits = prepare(config, dataset)
    train = splits.train
    shape = getattr(train.x, "shape", None)  # lazy images know it: nothing decoded here
    input_shape = tuple(shape[1:] if shape is not None else train.x[torch.tensor([0])].shape[1:])
    model, geometry, loss_fn = build_components(
        config, input_shape, train.num_classes, train.image_shape, classes=train.classes
    )
    model = apply_batchnorm(model, config.batchnorm, ddp=is_ddp, device=device)
    model.to(device)
    loss_fn.to(device)
    run = Run(
        model=model,
        geometry=geometry,
        config=config,
        data=splits,
        loss_fn=loss_fn,
        probe_index=_probe_index(len(train), config.probe_size, config.seed),
    )
    precision = Precision(config.precision, device)
    optimizer = build_optimizer(
        config.optimizer,
        parameter_groups(
            model,
            loss_fn,
            lr=config.lr,
            head_lr=config.head_lr,
            loss_lr=config.loss_lr,
            proxy_lr=config.proxy_lr,
        ),
        lr=config.lr,
        weight_decay=config.weight_decay,
        options=config.optimizer_options,
    )
    student = AutocastForward(model, precision) if precision.mixed else model
    state = TrainState(
        config=config,
        run=run,
        model=model,
        student=student,
        forward=student,
        loss_fn=loss_fn,
        device=device,
        optimizer=optimizer,
        scheduler=None,
        precision=precision,
        regularisers=[],
        callbacks=CallbackList([]),
    )
    if optimizer is None:
        model.eval()
        return state
    guard = DivergenceGuard(config, model, loss_fn)  # before the first step: the initial norms
    terms = [*build_regularisers(config, geometry), *regularisers]
    for regulariser in terms:
        regulariser.to(device)
        regulariser.start_fit(student, geometry)
    state.regularisers = terms
    sampler = ClassBalancedSampler(
        train.y,
        config.classes_per_batch,
        config.samples_per_class,
        batches_per_epoch=config.batches_per_epoch,
        seed=config.seed,
        rank=distributed.rank(),
        world_size=distributed.world_size(),
    )
    state.batches = TrainBatches(
        train,
        sampler,
        device,
        num_workers=config.num_workers,
        augment=config.augment,
        on_bad_image=config.on_bad_image,
    )
    state.scheduler = build_schedule(
        config.lr_schedule,
        optimizer,
        epochs=config.epochs,
        steps_per_epoch=len(sampler),
        warmup_epochs=config.warmup_epochs,
        options=config.schedule_options,
    )
    if is_ddp and any(p.requires_grad for p in model.parameters()):
        # A model without trainable parameters (an identity embedding under a learned geometry)
        # needs no DDP: every rank computes the same global loss on the gathered batch, so the
        # geometry's gradients agree on every rank.
        from torch.nn.parallel import DistributedDataParallel

        state.forward = DistributedDataParallel(
            student, device_ids=[device.index] if device.type == "cuda" else None
        )
    folder = checkpoint_dir if checkpoint_dir is not None else resume
    hooks: list[Callback | EpochCallback] = []
    if config.memory_size > 0:
        state.memory = CrossBatchMemory(config.memory_size, config.memory_warmup)
        hooks.append(state.memory)
    hooks += [
        RegulariserHooks(terms),
        Monitor(),
        Timer(),
        *([SkippedImages()] if config.on_bad_image == "skip" else []),
        Snapshots(),
        guard,
    ]
    if config.early_stopping_patience is not None:
        hooks.append(EarlyStopping(config.early_stopping_patience))
    hooks += [ProgressBar(progress and distributed.is_main()), *callbacks]
    if folder is not None:
        hooks.append(Checkpointer(folder, config.checkpoint_every))
        state.data_identity = data_identity(splits)
    state.callbacks = CallbackList(hooks)
    if resume is not None:
        state.load_state_dict(load_checkpoint(resume, config, state.data_identity))
    elif checkpoint_dir is not None and checkpoint_path(checkpoint_dir).exists():
        raise CheckpointMismatch(
            f"{checkpoint_path(checkpoint_dir)} already holds a checkpoint: continue that run "
            "with resume=<its folder> (dmllab fit ... --resume), or give another folder"
        )
    return state


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


def _probe_index(size: int, probe_size: int, seed: int) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(size, generator=generator)[: min(size, probe_size)].sort().values


__all__ = [
    "fit",
    "start",
    "train_epoch",
    "train_step",
    "progress_bar",
    "step_loss",
    "Callback",
    "EpochCallback",
    "StopTraining",
    "NonFiniteLossError",
    "PROGRESS_ENV",
    "resolve_device",
    "seed_everything",
]
