"""Optimisers, learning-rate schedules and gradient clipping, from torch's own classes (the
trainer builds them; `Config` reads the registries' names and options).

Parameter groups (each with its own learning rate):

    trunk     the embedder's trunk              Config.lr
    head      the embedding head                Config.head_lr  (None: lr, one group with the trunk)
    loss      the loss's and learned geometry's  Config.loss_lr  (None: lr)
              own parameters (margin beta, Bregman generator, ...)
    proxies   the loss's class proxies           Config.proxy_lr (None: PROXY_LR_SCALE x lr)
              (`MetricLoss.proxy_parameters()`: proxy_anchor, proxy_nca, a PML loss's class
              weights); proxies need a much larger rate than the network (Kim et al. train
              them at 100 x lr, as does this default)

`OPTIMIZERS` (adam, adamw, sgd) and `SCHEDULES` (constant, cosine, multistep) are registries;
`Config.optimizer_options` and `Config.schedule_options` are checked against them. Schedules step
once per optimiser step, over `epochs x batches_per_epoch` steps, after a linear warm-up of
`Config.warmup_epochs` epochs when it is > 0 (`torch.optim.lr_scheduler.LinearLR`, then
`SequentialLR`). Milestones of `multistep` are given in epochs.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    LinearLR,
    LRScheduler,
    MultiStepLR,
    SequentialLR,
)

from dmllab.registry import Registry

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "WARMUP_START",
    "PROXY_LR_SCALE",
    "build_optimizer",
    "build_schedule",
    "clip_gradients",
    "parameter_groups",
]

OPTIMIZERS: Registry[Any] = Registry("optimizer", context=("params", "lr", "weight_decay"))
"""name -> builder `(params, lr, weight_decay, **options) -> torch.optim.Optimizer`."""

SCHEDULES: Registry[Any] = Registry(
    "learning-rate schedule", context=("optimizer", "total_steps", "steps_per_epoch")
)
"""name -> builder `(optimizer, total_steps, steps_per_epoch, **options) -> LRScheduler | None`."""

#: The warm-up starts at this fraction of each group's learning rate.
WARMUP_START = 1e-3

#: Without Config.proxy_lr, proxies learn at this multiple of Config.lr (the Proxy-Anchor
#: authors' code trains its proxies at 100 x the network's rate).
PROXY_LR_SCALE = 100.0


@OPTIMIZERS.register("adam", description="Adam (Kingma and Ba, ICLR 2015)")
def adam(
    params: list[dict[str, Any]],
    lr: float,
    weight_decay: float,
    betas: tuple[float, float] | list[float] = (0.9, 0.999),
) -> Optimizer:
    """torch.optim.Adam; weight decay added to the gradient (L2)."""
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, betas=_betas(betas))


@OPTIMIZERS.register("adamw", description="AdamW, decoupled weight decay (Loshchilov, Hutter 2019)")
def adamw(
    params: list[dict[str, Any]],
    lr: float,
    weight_decay: float,
    betas: tuple[float, float] | list[float] = (0.9, 0.999),
) -> Optimizer:
    """torch.optim.AdamW."""
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=_betas(betas))


@OPTIMIZERS.register("sgd", description="SGD with momentum")
def sgd(
    params: list[dict[str, Any]],
    lr: float,
    weight_decay: float,
    momentum: float = 0.9,
    nesterov: bool = False,
) -> Optimizer:
    """torch.optim.SGD."""
    return torch.optim.SGD(
        params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay
    )


def _betas(betas: tuple[float, float] | list[float]) -> tuple[float, float]:
    if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
        raise ValueError(f"optimizer option betas must be two numbers in [0, 1); got {betas!r}")
    return (float(betas[0]), float(betas[1]))


@SCHEDULES.register("constant", description="the learning rate as set (after any warm-up)")
def constant(optimizer: Optimizer, total_steps: int, steps_per_epoch: int) -> LRScheduler | None:
    """No schedule."""
    return None


@SCHEDULES.register("cosine", description="cosine annealing to eta_min (Loshchilov, Hutter 2017)")
def cosine(
    optimizer: Optimizer, total_steps: int, steps_per_epoch: int, eta_min: float = 0.0
) -> LRScheduler:
    """torch's CosineAnnealingLR over the steps after the warm-up."""
    if not eta_min >= 0:
        raise ValueError(f"schedule option eta_min must be >= 0; got {eta_min!r}")
    return CosineAnnealingLR(optimizer, T_max=max(1, total_steps), eta_min=eta_min)


@SCHEDULES.register("multistep", description="multiply by gamma at each milestone epoch")
def multistep(
    optimizer: Optimizer,
    total_steps: int,
    steps_per_epoch: int,
    milestones: list[int] | tuple[int, ...] = (),
    gamma: float = 0.1,
) -> LRScheduler:
    """torch's MultiStepLR; `milestones` are epochs (counted from the end of the warm-up)."""
    if not milestones or any(isinstance(m, bool) or not isinstance(m, int) for m in milestones):
        raise ValueError(
            f"schedule 'multistep' needs milestones, a list of epochs; got {milestones!r}"
        )
    if not gamma > 0:
        raise ValueError(f"schedule option gamma must be > 0; got {gamma!r}")
    steps = [m * steps_per_epoch for m in sorted(milestones)]
    return MultiStepLR(optimizer, milestones=steps, gamma=gamma)


def parameter_groups(
    model: nn.Module,
    loss_fn: nn.Module,
    *,
    lr: float,
    head_lr: float | None = None,
    loss_lr: float | None = None,
    proxy_lr: float | None = None,
) -> list[dict[str, Any]]:
    """The trainable parameters in groups, each with its learning rate (module docstring).

    With `head_lr` None the trunk and head form one group (the model's parameters in order). The
    loss's proxies (`proxy_parameters()`, when it has the method) form the `proxies` group, at
    `proxy_lr` (None: PROXY_LR_SCALE x lr)."""
    groups: list[dict[str, Any]] = []
    head = getattr(model, "head", None)
    head_params = (
        [p for p in head.parameters() if p.requires_grad]
        if head_lr is not None and isinstance(head, nn.Module)
        else []
    )
    in_head = {id(p) for p in head_params}
    model_params = [p for p in model.parameters() if p.requires_grad and id(p) not in in_head]
    if model_params:
        groups.append(
            {"params": model_params, "lr": lr, "name": "trunk" if head_params else "model"}
        )
    if head_params:
        groups.append({"params": head_params, "lr": head_lr, "name": "head"})
    proxy_method = getattr(loss_fn, "proxy_parameters", None)
    proxies = [p for p in (proxy_method() if callable(proxy_method) else []) if p.requires_grad]
    in_proxies = {id(p) for p in proxies}
    loss_params = [p for p in loss_fn.parameters() if p.requires_grad and id(p) not in in_proxies]
    if loss_params:
        groups.append({"params": loss_params, "lr": loss_lr or lr, "name": "loss"})
    if proxies:
        rate = proxy_lr if proxy_lr is not None else PROXY_LR_SCALE * lr
        groups.append({"params": proxies, "lr": rate, "name": "proxies"})
    return groups


def build_optimizer(
    name: str,
    groups: list[dict[str, Any]],
    *,
    lr: float,
    weight_decay: float,
    options: dict[str, Any] | None = None,
) -> Optimizer | None:
    """The optimiser `name` over `groups`; None when there is nothing to learn."""
    if not groups:
        return None
    context = {"params": groups, "lr": lr, "weight_decay": weight_decay}
    return OPTIMIZERS.build(name, context, **(options or {}))


def build_schedule(
    name: str,
    optimizer: Optimizer,
    *,
    epochs: int,
    steps_per_epoch: int,
    warmup_epochs: float = 0.0,
    options: dict[str, Any] | None = None,
) -> LRScheduler | None:
    """The schedule `name` over `epochs x steps_per_epoch` optimiser steps, after a linear
    warm-up over `warmup_epochs` (from WARMUP_START x each group's rate); None when the learning
    rate stays as set."""
    total = epochs * steps_per_epoch
    warmup = min(total, round(warmup_epochs * steps_per_epoch))
    context = {
        "optimizer": optimizer,
        "total_steps": total - warmup,
        "steps_per_epoch": steps_per_epoch,
    }
    main = SCHEDULES.build(name, context, **(options or {}))
    if warmup == 0:
        return main
    ramp = LinearLR(optimizer, start_factor=WARMUP_START, end_factor=1.0, total_iters=warmup)
    if main is None:
        return ramp
    return SequentialLR(optimizer, schedulers=[ramp, main], milestones=[warmup])


def clip_gradients(optimizer: Optimizer, max_norm: float) -> float:
    """Clip the gradients of every parameter the optimiser updates to a total L2 norm of at most
    `max_norm` (torch.nn.utils.clip_grad_norm_); returns the norm before clipping."""
    params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    return float(torch.nn.utils.clip_grad_norm_(params, max_norm))
