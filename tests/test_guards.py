"""The divergence guard: a learning rate far too large stops (or warns), class collapse does not."""

import warnings

import pytest
import torch

import dmllab as dl
from dmllab.config import Config
from dmllab.guards import SPREAD, DivergenceError, DivergenceGuard, DivergenceWarning, spread
from dmllab.metrics.collapse import intra_inter_ratio


def digits_config(**changes):
    base = dict(
        dataset="digits",
        split="classes",
        test_fraction=0.5,
        epochs=2,
        batches_per_epoch=3,
        classes_per_batch=5,
        samples_per_class=8,
        embedding_dim=16,
        seed=0,
    )
    return Config(**{**base, **changes})


@pytest.mark.parametrize(
    "changes, symptom",
    [
        (dict(lr=1e3), "the model's weights grew from norm"),  # normalised: the loss stays bounded
        (dict(lr=1e6), "embeddings collapsed to one point"),  # every embedding becomes 0
        (dict(lr=1e3, normalize=False), "the loss rose from"),
        (dict(lr=1e6, optimizer="sgd"), "the model's weights grew from norm"),
    ],
)
def test_a_learning_rate_far_too_large_stops_naming_the_symptom_and_the_setting(changes, symptom):
    with pytest.raises(DivergenceError, match="diverged in epoch 0") as error:
        dl.fit(digits_config(**changes), progress=False)
    assert symptom in str(error.value)
    assert f"lower Config.lr (now {changes['lr']})" in str(error.value)


def test_warn_mode_trains_on_and_warns_once_per_symptom():
    with pytest.warns(DivergenceWarning, match="collapsed to one point") as record:
        run = dl.fit(digits_config(lr=1e6, epochs=3, divergence="warn"), progress=False)
    assert len([w for w in record if issubclass(w.category, DivergenceWarning)]) == 1
    assert len(run.history) == 3
    assert torch.unique(run.embed(run.test), dim=0).shape[0] == 1  # what the guard saw: one point


def test_off_mode_measures_nothing():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DivergenceWarning)
        run = dl.fit(digits_config(lr=1e6, divergence="off"), progress=False)
    assert len(run.history) == 2


def test_a_normal_run_passes():
    run = dl.fit(digits_config(epochs=3), progress=False)
    assert len(run.history) == 3 and not run.stopped_early


@pytest.mark.slow
def test_class_collapse_by_the_loss_is_not_divergence():
    # Lesson 01's setup: random positives squeeze each class of modes-on-circle (3 modes per class)
    # into a tight cluster (intra/inter ratio 0.26 here; nearest positives keep about 7). The
    # classes stay apart, so the default guard ("stop") lets it train.
    config = Config(
        dataset="modes-on-circle",
        split="stratified",
        positives="random",
        classes_per_batch=2,
        samples_per_class=8,
        epochs=15,
        batches_per_epoch=10,
        embedding_dim=8,
        lr=0.01,
    )
    run = dl.fit(config, progress=False)
    embeddings = run.embed(run.train)
    assert intra_inter_ratio(embeddings, run.train.y) < 0.5
    assert spread(embeddings) > 100 * SPREAD
    parity = dl.fit(
        config.replace(dataset="digits-parity", epochs=5, noise_rate=0.3), progress=False
    )
    assert len(parity.history) == 5


def test_spread_tells_one_point_from_collapsed_classes():
    one_point = torch.full((20, 4), 0.5)
    classes_collapsed = torch.eye(4).repeat_interleave(5, dim=0)  # 4 classes, each one point
    assert spread(one_point) == 0.0 and spread(torch.zeros(3, 2)) == 0.0
    assert spread(classes_collapsed) > 0.5
    assert spread(one_point + 1e-6 * torch.randn(20, 4)) < SPREAD


@pytest.mark.parametrize("value", ["nope", True, None])
def test_divergence_setting_is_checked(value):
    with pytest.raises(ValueError, match="divergence"):
        Config(divergence=value)


def test_a_first_batch_that_is_already_solved_is_no_scale_for_an_explosion():
    # a learned geometry's prototype loss can start near 0 and rise while the geometry finds its
    # scale (loggrid, Bregman, identity embedding, every knob at its default)
    config = Config(dataset="loggrid", model="identity", normalize=False, geometry="bregman",
                    loss="prototype_ce", epochs=1)  # fmt: skip
    run = dl.fit(config.replace(divergence="off"), progress=False)
    guard = DivergenceGuard(config, run.model, run.loss_fn)
    guard.batch(4e-5)
    run.history[-1]["loss"] = 0.9  # 22,500 x the first batch, far below an explosion
    guard.end_epoch(run, 0)
    run.history[-1]["loss"] = 11.0  # over 1000 x the floor: an explosion
    with pytest.raises(DivergenceError, match=r"the loss rose from 4e-05 \(first batch\) to 11"):
        guard.end_epoch(run, 0)
