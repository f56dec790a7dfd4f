import pytest
import torch

import dmllab as dl
from dmllab.config import Config
from dmllab.losses import Regulariser
from dmllab.train import NonFiniteLossError, StopTraining
from train_configs import digits_config


def test_zero_shot_split_keeps_train_and_test_classes_disjoint():
    run = dl.fit(digits_config(epochs=1, batches_per_epoch=1), progress=False)
    assert set(run.train.y.tolist()) == {0, 1, 2, 3, 4}
    assert set(run.test.y.tolist()) == {5, 6, 7, 8, 9}


def test_same_config_same_numbers():
    config = digits_config(epochs=2, batches_per_epoch=3)
    first = dl.fit(config, progress=False)
    second = dl.fit(config, progress=False)
    assert first.history[-1]["loss"] == second.history[-1]["loss"]
    torch.testing.assert_close(first.embed(first.test), second.embed(second.test))


def test_model_without_parameters_skips_the_optimiser_and_is_evaluable():
    config = Config(
        dataset="loggrid",
        split="stratified",
        model="identity",
        normalize=False,
        geometry="euclidean",
        loss="prototype_ce",
        epochs=3,
    )
    run = dl.fit(config, progress=False)
    assert run.history == []
    metrics = dl.evaluate(run)
    assert 0.0 < metrics["prototype_accuracy"] <= 1.0


def test_history_snapshots_and_callbacks():
    seen = []
    config = digits_config(
        epochs=3,
        batches_per_epoch=2,
        val_fraction=0.4,
        classes_per_batch=3,
        snapshot_every=1,
        probe_size=50,
    )
    run = dl.fit(
        config,
        callbacks=[lambda run, epoch: seen.append((epoch, len(run.history)))],
        progress=False,
    )
    assert seen == [(0, 1), (1, 2), (2, 3)]
    assert sorted(run.snapshots) == [0, 1, 2]
    assert run.snapshots[0].shape == (50, 16)
    assert {"loss", "active", "val_recall@1", "val_map@r", "seconds"} <= set(run.history[-1])
    assert "test_recall@1" not in run.history[-1]


def test_callback_can_stop_training():
    def stop(run, epoch):
        if epoch == 1:
            raise StopTraining

    run = dl.fit(digits_config(epochs=5, batches_per_epoch=2), callbacks=[stop], progress=False)
    assert len(run.history) == 2 and run.stopped_early


def test_early_stopping_restores_the_best_validation_epoch():
    config = digits_config(
        epochs=6,
        batches_per_epoch=2,
        val_fraction=0.4,
        classes_per_batch=3,
        early_stopping_patience=1,
        lr=0.05,
    )
    run = dl.fit(config, progress=False)
    best = max(run.history, key=lambda row: row["val_recall@1"])
    assert run.metrics["best_epoch"] == best["epoch"]


def test_lsd_teacher_changes_only_at_epoch_ends_and_sees_the_same_batch(monkeypatch):
    from dmllab import train
    from dmllab.losses.lsd import Teacher

    calls = []
    original = Teacher.similarities

    def spy(self, x, lsd):
        calls.append((self.epoch, x.clone(), id(self.model)))
        return original(self, x, lsd)

    student_inputs = []
    original_step = train.step_loss

    def spy_step(model, loss_fn, x, y, **kwargs):
        student_inputs.append(x.clone())
        return original_step(model, loss_fn, x, y, **kwargs)

    monkeypatch.setattr(Teacher, "similarities", spy)
    monkeypatch.setattr(train, "step_loss", spy_step)
    run = dl.fit(digits_config(epochs=3, batches_per_epoch=2, lsd_alpha=10.0), progress=False)
    # epoch 0 has weight 0 and no teacher; epochs 1 and 2 use the snapshots of epochs 0 and 1
    assert [c[0] for c in calls] == [0, 0, 1, 1]
    assert len({c[2] for c in calls[:2]}) == 1 and calls[0][2] != calls[2][2]
    for (_, x_teacher, _), x_student in zip(calls, student_inputs[2:], strict=True):
        assert torch.equal(x_teacher, x_student)
    assert run.history[0]["lsd_weight"] == 0.0 and run.history[2]["lsd_weight"] > 0
    assert "lsd_term" in run.history[2] and run.history[2]["lsd_strength"] == 10.0


def test_teacher_is_frozen_and_in_eval_mode():
    from dmllab.losses.lsd import ListwiseSelfDistillation, Teacher

    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Dropout(0.5))
    teacher = Teacher.snapshot(model, dl.geometry.build("euclidean", 3), epoch=0)
    assert not teacher.model.training
    assert all(not p.requires_grad for p in teacher.model.parameters())
    x = torch.randn(4, 3)
    lsd = ListwiseSelfDistillation(alpha=1.0)
    torch.testing.assert_close(teacher.similarities(x, lsd), teacher.similarities(x, lsd))


def test_non_finite_loss_stops_with_a_clear_message():
    with pytest.raises(NonFiniteLossError, match=r"lower Config.lr"):
        dl.fit(
            digits_config(epochs=2, batches_per_epoch=3, lr=1e30, normalize=False, optimizer="sgd"),
            progress=False,
        )


def test_run_save_and_load_round_trip(tmp_path):
    run = dl.fit(digits_config(epochs=1, batches_per_epoch=2, loss="margin"), progress=False)
    run.metrics.update(dl.evaluate(run))
    path = run.save(tmp_path / "run")
    assert {p.name for p in path.iterdir()} == {
        "config.json",
        "metrics.json",
        "history.csv",
        "model.pt",
    }
    loaded = dl.runs.load(path)
    torch.testing.assert_close(loaded.embed(loaded.test), run.embed(run.test))
    assert loaded.config == run.config
    assert loaded.metrics["recall@1"] == pytest.approx(run.metrics["recall@1"])


def test_unknown_device_is_refused():
    with pytest.raises(ValueError, match="device"):
        Config(device="tpu")


@pytest.mark.parametrize("name", ["cuda", "auto"])
def test_each_torchrun_rank_trains_on_its_own_gpu(monkeypatch, name):
    """Every rank got cuda:0 (the current device) under `torchrun --nproc_per_node 4`."""
    from dmllab.train import resolve_device

    chosen = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert resolve_device(name) == torch.device("cuda", 3) and chosen == [3]
    monkeypatch.setenv("LOCAL_RANK", "4")
    with pytest.raises(ValueError, match="local rank 4 of torchrun, but torch sees 4 CUDA"):
        resolve_device(name)
    monkeypatch.delenv("LOCAL_RANK")
    assert resolve_device(name) == torch.device("cuda", 0)  # one process: the current device


# ---------------------------------------------------- the regulariser contract: add one to fit
class EmbeddingNorm(Regulariser):
    """Toy regulariser (the recipe): weight * mean_i ||z_i||^2, with every hook recorded."""

    def __init__(self, weight):
        super().__init__()
        self.weight = weight
        self.calls = []

    def start_epoch(self, epoch, epochs):
        self.calls.append(("start", epoch, epochs))
        return {"norm_weight": self.weight}

    def term(self, z, labels, D, x):
        assert (
            len(z) == len(labels) == len(x)
        )  # D: the batch matrix when a regulariser reads it, else None
        norm = (z * z).sum(dim=1).mean()
        return self.weight * norm, {"norm_term": float(norm.detach())}

    def end_epoch(self, model, geometry, epoch):
        self.calls.append(("end", epoch, type(geometry).__name__))


class SeesTheBatchMatrix(Regulariser):
    """Toy: reads D (so the trainer computes it once and shares it with the base loss)."""

    reads_distances = True

    def __init__(self):
        super().__init__()
        self.shapes = []

    def term(self, z, labels, D, x):
        self.shapes.append((tuple(D.shape), D.requires_grad))
        return 0.0 * D.mean(), {}


def test_a_regulariser_passed_to_fit_stacks_on_the_loss_and_on_lsd():
    norm, sees = EmbeddingNorm(0.5), SeesTheBatchMatrix()
    config = digits_config(epochs=3, batches_per_epoch=2, normalize=False, lsd_alpha=4.0)
    run = dl.fit(config, regularisers=[norm, sees], progress=False)
    assert norm.calls == [
        ("start", 0, 3),
        ("end", 0, "Euclidean"),
        ("start", 1, 3),
        ("end", 1, "Euclidean"),
        ("start", 2, 3),
        ("end", 2, "Euclidean"),
    ]
    assert sees.shapes == [((40, 40), True)] * 6
    for row in run.history:
        lsd = row.get("lsd_term", 0.0) * row["lsd_weight"]
        assert row["loss"] == pytest.approx(
            row["base_loss"] + lsd + 0.5 * row["norm_term"], rel=1e-5
        )
        assert row["norm_weight"] == 0.5
    assert (
        "lsd_term" not in run.history[0] and "lsd_term" in run.history[2]
    )  # LSD from its first teacher on
    shorter = config.replace(lsd_alpha=0.0, epochs=2)
    plain = dl.fit(shorter, regularisers=[EmbeddingNorm(5.0)], progress=False)
    unregularised = dl.fit(shorter, progress=False)
    assert (
        plain.history[-1]["norm_term"]
        < unregularised.embed(unregularised.train).pow(2).sum(1).mean()
    )
