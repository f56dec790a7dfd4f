"""Checkpoints and resume: a run interrupted after any epoch and resumed from its checkpoint ends
with the same weights and history, bit for bit, as the run that was never interrupted."""

import math

import pytest
import torch

import dmllab as dl
from dmllab.data.example_folder import write_example_folder
from dmllab.engine import Callback, CheckpointMismatch, checkpoint_path
from dmllab.records import RecordError
from train_configs import digits_config

TIMING = ("seconds", "images_per_s", "peak_memory_mb")


class Crash(Callback):
    """Dies at the end of epoch `at`, before that epoch's checkpoint (as a killed job would)."""

    def __init__(self, at):
        self.at = at

    def on_epoch_end(self, state):
        if state.epoch == self.at:
            raise KeyboardInterrupt("the job was killed")


def rows(run):
    return [{k: v for k, v in row.items() if k not in TIMING} for row in run.history]


def same_floats(a, b):
    return all(
        (math.isnan(x) and math.isnan(y)) if isinstance(x, float) and math.isnan(x) else x == y
        for x, y in zip(a, b, strict=True)
    )


def assert_same_run(resumed, whole):
    assert [sorted(r) for r in rows(resumed)] == [sorted(r) for r in rows(whole)]
    for mine, theirs in zip(rows(resumed), rows(whole), strict=True):
        assert same_floats([mine[k] for k in sorted(mine)], [theirs[k] for k in sorted(theirs)])
    for part in ("model", "loss_fn"):
        mine, theirs = getattr(resumed, part).state_dict(), getattr(whole, part).state_dict()
        assert mine.keys() == theirs.keys()
        for key in mine:
            assert torch.equal(mine[key], theirs[key]), f"{part}.{key}"
    assert resumed.metrics == whole.metrics
    assert resumed.snapshots.keys() == whole.snapshots.keys()
    for epoch in whole.snapshots:
        assert torch.equal(resumed.snapshots[epoch], whole.snapshots[epoch])


def interrupted_then_resumed(config, folder, crash_at, dataset=None):
    with pytest.raises(KeyboardInterrupt):
        dl.fit(config, dataset, checkpoint_dir=folder, callbacks=[Crash(crash_at)], progress=False)
    assert checkpoint_path(folder).is_file()
    return dl.fit(config, dataset, resume=folder, progress=False)


CONFIGS = {
    "lsd-nearest": dict(lsd_alpha=200.0, positives="nearest", samples_per_class=4),
    "bregman-cosine-schedule": dict(
        geometry="bregman", normalize=False, loss="prototype_ce", lr_schedule="cosine",
        warmup_epochs=1.0, grad_clip=5.0, head_lr=3e-3,
    ),
    "early-stopping-snapshots-noise": dict(
        split="stratified", val_fraction=0.2, early_stopping_patience=2, snapshot_every=1,
        noise_rate=0.3, monitor_test=True, lsd_alpha=50.0,
    ),
    "memory-nearest-2-per-class": dict(
        positives="nearest", samples_per_class=2, memory_size=48, memory_warmup=5, lsd_alpha=50.0,
    ),
    "margin-sgd-multistep": dict(
        loss="margin", optimizer="sgd", lr=0.05, loss_lr=0.01, lr_schedule="multistep",
        schedule_options={"milestones": [2, 4]}, negatives="distance_weighted",
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_a_resumed_run_equals_the_uninterrupted_run(name, tmp_path):
    config = digits_config(epochs=6, batches_per_epoch=4, checkpoint_every=1, **CONFIGS[name])
    whole = dl.fit(config, checkpoint_dir=tmp_path / "whole", progress=False)
    resumed = interrupted_then_resumed(config, tmp_path / "resumed", crash_at=3)
    assert_same_run(resumed, whole)


@pytest.mark.parametrize("augment", ["none", "dml-standard"])
def test_resume_with_image_workers_equals_the_uninterrupted_run(tmp_path, augment):
    root = write_example_folder(tmp_path / "pictures", classes=4, per_class=10, size=24)
    config = dl.Config(
        dataset="folder",
        dataset_options={"root": str(root), "image_size": 16},
        split="stratified",
        model="cnn",
        model_options={"channels": [8]},
        embedding_dim=8,
        classes_per_batch=2,
        samples_per_class=4,
        epochs=4,
        batches_per_epoch=3,
        lsd_alpha=50.0,
        num_workers=2,
        augment=augment,
        checkpoint_every=1,
    )
    whole = dl.fit(config, checkpoint_dir=tmp_path / "whole", progress=False)
    resumed = interrupted_then_resumed(config, tmp_path / "resumed", crash_at=1)
    assert_same_run(resumed, whole)
    in_process = dl.fit(config.replace(num_workers=0), progress=False)  # workers change nothing
    assert rows(in_process) == rows(whole)


def test_a_finished_run_resumes_to_the_same_result(tmp_path):
    config = digits_config(epochs=3, batches_per_epoch=2)
    whole = dl.fit(config, checkpoint_dir=tmp_path, progress=False)
    again = dl.fit(config, resume=tmp_path, progress=False)
    assert_same_run(again, whole)


def test_a_checkpoint_of_another_config_is_refused_naming_the_fields(tmp_path):
    config = digits_config(epochs=2, batches_per_epoch=2)
    dl.fit(config, checkpoint_dir=tmp_path, progress=False)
    other = config.replace(lr=0.01, lsd_alpha=10.0)
    with pytest.raises(CheckpointMismatch, match=r"lr: 0\.001 -> 0\.01; lsd_alpha: 0\.0 -> 10\.0"):
        dl.fit(other, resume=tmp_path, progress=False)
    with pytest.raises(CheckpointMismatch, match="other data"):
        dl.fit(config, dl.data.load("mnist-5k"), resume=tmp_path, progress=False)
    dl.fit(config.replace(device="cpu"), resume=tmp_path, progress=False)  # where it runs: fine


def test_an_existing_checkpoint_is_not_overwritten_and_a_missing_one_is_named(tmp_path):
    config = digits_config(epochs=1, batches_per_epoch=1)
    dl.fit(config, checkpoint_dir=tmp_path, progress=False)
    with pytest.raises(CheckpointMismatch, match="already holds a checkpoint"):
        dl.fit(config, checkpoint_dir=tmp_path, progress=False)
    with pytest.raises(RecordError, match="no checkpoint to resume from"):
        dl.fit(config, resume=tmp_path / "elsewhere", progress=False)


def test_a_failed_write_leaves_the_previous_checkpoint_and_a_damaged_one_is_named(
    tmp_path, monkeypatch
):
    config = digits_config(epochs=3, batches_per_epoch=1, checkpoint_every=1)
    save = torch.save
    calls = []

    def fail_the_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            save(*args, **kwargs)  # half a file is on disk when the disk fills up
            raise OSError("disk full")
        save(*args, **kwargs)

    monkeypatch.setattr(torch, "save", fail_the_second)
    with pytest.raises(OSError, match="disk full"):
        dl.fit(config, checkpoint_dir=tmp_path, progress=False)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]  # nothing half-written
    state = torch.load(checkpoint_path(tmp_path), weights_only=True)
    assert state["epoch"] == 1 and len(state["history"]) == 1  # the previous checkpoint stands
    resumed = dl.fit(config, resume=tmp_path, progress=False)
    assert_same_run(resumed, dl.fit(config, progress=False))
    good = checkpoint_path(tmp_path).read_bytes()
    checkpoint_path(tmp_path).write_bytes(good[: len(good) // 2])
    with pytest.raises(RecordError, match="cannot read the checkpoint"):
        dl.fit(config, resume=tmp_path, progress=False)


def test_the_checkpoint_loads_with_weights_only(tmp_path):
    dl.fit(digits_config(epochs=1, batches_per_epoch=1, lsd_alpha=5.0), checkpoint_dir=tmp_path,
           progress=False)  # fmt: skip
    state = torch.load(checkpoint_path(tmp_path), weights_only=True)
    assert {"model", "loss", "optimizer", "regularisers", "callbacks", "rng", "history"} <= set(
        state
    )
    assert state["regularisers"][0]["_extra_state"]["teacher"]["epoch"] == 0


def test_a_run_record_keeps_its_checkpoint(tmp_path):
    config = digits_config(epochs=1, batches_per_epoch=1)
    run = dl.fit(config, checkpoint_dir=tmp_path, progress=False)
    checkpoint = checkpoint_path(tmp_path).read_bytes()
    run.save(tmp_path)
    assert checkpoint_path(tmp_path).read_bytes() == checkpoint
    assert dl.runs.load(tmp_path).config == config


def test_a_checkpoint_written_before_a_config_field_existed_resumes(tmp_path):
    config = digits_config(epochs=3, batches_per_epoch=2, checkpoint_every=1)
    with pytest.raises(KeyboardInterrupt):
        dl.fit(config, checkpoint_dir=tmp_path, callbacks=[Crash(1)], progress=False)
    state = torch.load(checkpoint_path(tmp_path), weights_only=True)
    del state["config"]["memory_size"]  # as a dmllab of before the memory wrote it
    torch.save(state, checkpoint_path(tmp_path))
    resumed = dl.fit(config, resume=tmp_path, progress=False)
    assert_same_run(resumed, dl.fit(config, progress=False))
