"""Optimisers and schedules from torch, by name: groups with their own learning rates, warm-up,
cosine and multi-step schedules stepped per batch, gradient clipping."""

import itertools
import math

import pytest
import torch

import dmllab as dl
from dmllab.engine import Callback
from dmllab.optim import OPTIMIZERS, SCHEDULES, WARMUP_START, build_schedule, parameter_groups
from dmllab.values import BadValue
from train_configs import digits_config


class Rates(Callback):
    def __init__(self):
        self.rates = []

    def on_batch_end(self, state, stats):
        self.rates.append([group["lr"] for group in state.optimizer.param_groups])


def rates(**changes):
    recorder = Rates()
    dl.fit(digits_config(epochs=4, batches_per_epoch=5, **changes), callbacks=[recorder],
           progress=False)  # fmt: skip
    return recorder.rates


def test_warm_up_then_cosine_reaches_eta_min_at_the_last_step():
    seen = rates(lr_schedule="cosine", warmup_epochs=1.0, schedule_options={"eta_min": 1e-5})
    first = [r[0] for r in seen]
    # after step k of the 5 warm-up steps the rate is lr * (start + (1 - start) * k / 5)
    assert first[0] == pytest.approx(1e-3 * (WARMUP_START + (1 - WARMUP_START) / 5))
    assert first[4] == pytest.approx(1e-3)  # warm-up done
    assert all(a >= b for a, b in itertools.pairwise(first[4:]))  # then only down
    assert first[-1] == pytest.approx(1e-5)


def test_multistep_milestones_are_epochs():
    seen = [r[0] for r in rates(lr_schedule="multistep", schedule_options={"milestones": [1, 3]})]
    assert seen[3] == pytest.approx(1e-3) and seen[4] == pytest.approx(1e-4)  # after epoch 1
    assert seen[14] == pytest.approx(1e-5) and seen[-1] == pytest.approx(1e-5)
    with pytest.raises(ValueError, match="needs milestones"):
        dl.fit(digits_config(epochs=1, lr_schedule="multistep"), progress=False)


def test_trunk_head_and_loss_get_their_own_learning_rates():
    seen = rates(loss="margin", head_lr=5e-3, loss_lr=1e-2)
    assert seen[0] == [1e-3, 5e-3, 1e-2]
    config = digits_config(loss="margin")
    run = dl.fit(config.replace(epochs=1, batches_per_epoch=1), progress=False)
    groups = parameter_groups(run.model, run.loss_fn, lr=1e-3)
    assert [g["name"] for g in groups] == ["model", "loss"]  # without head_lr: one model group


def test_gradient_clipping_bounds_the_norm_and_is_recorded():
    run = dl.fit(digits_config(epochs=1, batches_per_epoch=3, grad_clip=1e-3, lr=0.1),
                 progress=False)  # fmt: skip
    assert "grad_norm" in run.history[0] and run.history[0]["grad_norm"] > 1e-3


def test_registries_and_their_options_are_checked_by_config():
    assert {"adam", "adamw", "sgd"} <= set(OPTIMIZERS)
    assert {"constant", "cosine", "multistep"} <= set(SCHEDULES)
    with pytest.raises(BadValue, match="optimizer_options: optimizer 'adam' has no option"):
        dl.Config(optimizer_options={"momentum": 0.9})
    with pytest.raises(BadValue, match="lr_schedule='cos' is not known"):
        dl.Config(lr_schedule="cos")
    dl.Config(optimizer="sgd", optimizer_options={"momentum": 0.5, "nesterov": True})
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    assert build_schedule("constant", optimizer, epochs=2, steps_per_epoch=3) is None
    ramp = build_schedule("constant", optimizer, epochs=2, steps_per_epoch=4, warmup_epochs=0.5)
    assert ramp is not None and math.isclose(optimizer.param_groups[0]["lr"], WARMUP_START)
