"""The one callback protocol: when each hook runs, what it sees, and how training stops."""

import pytest

import dmllab as dl
from dmllab.engine import Callback, StopTraining
from train_configs import digits_config


class Recorder(Callback):
    def __init__(self):
        self.calls = []

    def on_fit_start(self, state):
        self.calls.append(("fit_start", state.epoch, len(state.run.history)))

    def on_epoch_start(self, state):
        self.calls.append(("epoch_start", state.epoch, len(state.run.history)))

    def on_batch_end(self, state, stats):
        self.calls.append(("batch_end", state.epoch, state.step, round(stats["loss"], 6)))

    def on_epoch_end(self, state):
        assert state.run.history[-1] is state.row
        self.calls.append(("epoch_end", state.epoch, len(state.run.history)))

    def on_fit_end(self, state):
        self.calls.append(("fit_end", state.epoch, len(state.run.history)))


def test_hooks_run_in_order_with_the_state_they_promise():
    recorder = Recorder()
    run = dl.fit(digits_config(epochs=2, batches_per_epoch=3), callbacks=[recorder], progress=False)
    kinds = [call[0] for call in recorder.calls]
    batch = ["batch_end"] * 3
    assert kinds == [
        "fit_start", "epoch_start", *batch, "epoch_end", "epoch_start", *batch, "epoch_end",
        "fit_end",
    ]  # fmt: skip
    steps = [call[2] for call in recorder.calls if call[0] == "batch_end"]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert recorder.calls[0] == ("fit_start", 0, 0) and recorder.calls[-1] == ("fit_end", 1, 2)
    losses = [call[3] for call in recorder.calls if call[0] == "batch_end"]
    assert run.history[0]["loss"] == pytest.approx(sum(losses[:3]) / 3, abs=1e-5)


def test_a_callback_adds_to_the_epoch_row_and_stops_training_from_a_batch():
    class Marks(Callback):
        def on_batch_end(self, state, stats):
            if state.epoch == 1:
                raise StopTraining("enough")

        def on_epoch_end(self, state):
            state.row["mark"] = float(state.epoch)

    run = dl.fit(digits_config(epochs=5, batches_per_epoch=2), callbacks=[Marks()], progress=False)
    assert [row["mark"] for row in run.history] == [0.0, 1.0]
    assert run.stopped_early


def test_plain_functions_and_callbacks_mix_and_other_objects_are_refused():
    seen = []
    dl.fit(
        digits_config(epochs=2, batches_per_epoch=1),
        callbacks=[lambda run, epoch: seen.append(epoch), Recorder()],
        progress=False,
    )
    assert seen == [0, 1]
    with pytest.raises(TypeError, match=r"a callback is a dmllab\.engine\.Callback or a function"):
        dl.fit(digits_config(epochs=1, batches_per_epoch=1), callbacks=[3], progress=False)


def test_an_error_in_a_callback_propagates():
    class Broken(Callback):
        def on_epoch_end(self, state):
            raise RuntimeError("broken callback")

    with pytest.raises(RuntimeError, match="broken callback"):
        dl.fit(digits_config(epochs=2, batches_per_epoch=1), callbacks=[Broken()], progress=False)


def test_history_records_throughput():
    run = dl.fit(digits_config(epochs=2, batches_per_epoch=2), progress=False)
    for row in run.history:
        assert row["seconds"] > 0 and row["images_per_s"] > 0
        assert "peak_memory_mb" not in row  # CUDA only
