"""LSD pictures: one anchor's teacher/student lists from snapshots, and per-epoch curves over
seeds."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from dmllab.viz.distillation import (
    anchor_lists,
    epoch_curves,
    epoch_summary,
    epoch_table,
    list_bars,
)
from viz_fixtures import hand_run


def _loop_log_list(
    points: torch.Tensor, anchor_row: int, members: np.ndarray, tau: float
) -> np.ndarray:
    """log softmax(-||a - m||^2 / tau) over the members, one member at a time."""
    anchor = points[anchor_row].double()
    scores = []
    for m in members:
        d = sum((float(anchor[k]) - float(points[m, k])) ** 2 for k in range(points.shape[1]))
        scores.append(-d / tau)
    top = max(scores)
    log_total = top + math.log(sum(math.exp(s - top) for s in scores))
    return np.array([s - log_total for s in scores])


@pytest.mark.parametrize("tau", [1.0, 3.0])
def test_lists_match_a_loop_over_the_snapshots(tau):
    run = hand_run(epochs=3, probe=12)
    lists = anchor_lists(run, epoch=2, anchor=4, size=8, tau=tau)
    assert lists.members[0] == 4 and len(set(lists.members.tolist())) == len(lists.members) == 8
    log_q = _loop_log_list(run.snapshots[2], 4, lists.members, tau)
    log_p = _loop_log_list(run.snapshots[1], 4, lists.members, tau)
    np.testing.assert_allclose(lists.student, np.exp(log_q), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(lists.teacher, np.exp(log_p), rtol=1e-4, atol=1e-7)
    kl = sum(math.exp(lp) * (lp - lq) for lp, lq in zip(log_p, log_q, strict=True))
    assert lists.anchor_kl == pytest.approx(kl, rel=1e-3)
    assert lists.anchor_kl > 0 and lists.batch_kd > 0


def test_labels_and_noise_marks_come_from_the_probe_rows():
    run = hand_run(epochs=2, probe=12)
    lists = anchor_lists(run, epoch=1 + 1, anchor=0, size=12, tau=1.0)
    probe = run.data.train.subset(run.probe_index)
    np.testing.assert_array_equal(lists.labels, probe.y[lists.members].numpy())
    np.testing.assert_array_equal(lists.flipped, probe.flipped[lists.members].numpy())
    assert lists.flipped[0]  # the fixture flips row 0's label
    assert (lists.labels[1:] == lists.labels[0]).sum() >= 1  # same-label rows are in the batch


def test_identical_snapshots_give_identical_lists_and_no_distillation():
    run = hand_run(epochs=3)
    run.snapshots[2] = run.snapshots[1].clone()
    lists = anchor_lists(run, epoch=2, anchor=1, size=6)
    np.testing.assert_allclose(lists.teacher, lists.student)
    assert lists.anchor_kl == pytest.approx(0.0, abs=1e-9)
    assert lists.batch_kd == pytest.approx(0.0, abs=1e-6)


def test_missing_snapshot_and_bad_anchor_say_how_to_fix():
    run = hand_run(epochs=3)
    with pytest.raises(ValueError, match="snapshot_every=1"):
        anchor_lists(run, epoch=1)  # no snapshot of epoch 0 in the fixture
    with pytest.raises(ValueError, match="outside the probe set"):
        anchor_lists(run, epoch=2, anchor=99)
    with pytest.raises(TypeError, match="expected a Run"):
        anchor_lists({"snapshots": {}}, epoch=2)


def test_list_bars_draws_teacher_and_student_sorted_by_teacher_weight():
    lists = anchor_lists(hand_run(epochs=3), epoch=3, anchor=2, size=7)
    fig = list_bars(lists)
    teacher, student = fig.data
    assert "epoch 2" in teacher.name and "epoch 3" in student.name
    assert np.all(np.diff(np.asarray(teacher.y)) <= 0)
    assert sorted(np.asarray(student.y).tolist()) == pytest.approx(sorted(lists.student.tolist()))


def _with_history(run, values):
    return dataclasses.replace(
        run, history=[{"epoch": e, "test_recall@1": v} for e, v in enumerate(values)]
    )


def test_epoch_table_means_and_stds_over_seeds_per_variant():
    base = hand_run()
    runs = {
        ("baseline", 0): _with_history(base, [0.5, 0.7]),
        ("baseline", 1): _with_history(base, [0.7, 0.9]),
        ("lsd", 0): _with_history(base, [0.6, 0.8]),
    }
    table = epoch_table(runs, "test_recall@1")
    assert list(table["variant"].astype(str)) == ["baseline", "baseline", "lsd", "lsd"]
    np.testing.assert_allclose(table["mean"], [0.6, 0.8, 0.6, 0.8])
    np.testing.assert_allclose(
        table["std"], [np.std([0.5, 0.7], ddof=1), np.std([0.7, 0.9], ddof=1), 0, 0]
    )
    assert list(table["count"]) == [2, 2, 1, 1]
    same = epoch_table(
        {"baseline": [runs[("baseline", 0)], runs[("baseline", 1)]]}, "test_recall@1"
    )
    np.testing.assert_allclose(same["mean"], [0.6, 0.8])
    fig = epoch_curves(runs, "test_recall@1")
    lines = [trace for trace in fig.data if trace.mode == "lines"]
    assert [trace.name for trace in lines] == ["baseline", "lsd"]


def test_epoch_summary_reads_first_peak_and_last_of_the_mean_curve():
    base = hand_run()
    runs = {
        ("baseline", 0): _with_history(base, [0.5, 0.9, 0.6]),
        ("baseline", 1): _with_history(base, [0.7, 0.9, 0.8]),
        ("lsd", 0): _with_history(base, [0.6, 0.7, 0.8]),
    }
    summary = epoch_summary(runs, "test_recall@1", prefix="curve/")
    assert summary == pytest.approx(
        {
            "curve/baseline/first": 0.6,
            "curve/baseline/peak": 0.9,
            "curve/baseline/peak_epoch": 1,
            "curve/baseline/low": 0.6,
            "curve/baseline/last": 0.7,
            "curve/lsd/first": 0.6,
            "curve/lsd/peak": 0.8,
            "curve/lsd/peak_epoch": 2,
            "curve/lsd/low": 0.6,
            "curve/lsd/last": 0.8,
        }
    )


def test_epoch_table_names_the_missing_column():
    with pytest.raises(ValueError, match="monitor_test=True"):
        epoch_table({("baseline", 0): hand_run()}, "test_recall@1")
    with pytest.raises(TypeError, match="keep_runs=True"):
        epoch_table({"baseline": object()}, "test_recall@1")


def test_curves_of_runs_stopped_early_average_only_the_epochs_every_seed_reached():
    base = hand_run()
    runs = {  # early stopping ended the two seeds at epochs 1 and 3
        ("baseline-es", 0): _with_history(base, [0.5, 0.6]),
        ("baseline-es", 1): _with_history(base, [0.7, 0.8, 0.2, 0.1]),
    }
    table = epoch_table(runs, "test_recall@1")
    assert list(table["complete"]) == [True, True, False, False]
    summary = epoch_summary(runs, "test_recall@1")
    assert summary["baseline-es/last"] == pytest.approx(0.7)  # epoch 1, not the one seed's 0.1
    fig = epoch_curves(runs, "test_recall@1")
    mean = next(trace for trace in fig.data if trace.name == "baseline-es")
    assert list(mean.x) == [0, 1]
    (tail,) = [trace for trace in fig.data if trace.name == "baseline-es (one seed)"]
    assert list(tail.x) == [1, 2, 3] and list(tail.y) == pytest.approx([0.8, 0.2, 0.1])
    assert "one seed each" in fig.layout.title.text
