"""LabPanel trains from its controls in a thread and updates its figures; MapExplorer shows images."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from plotly.callbacks import Points

from dmllab.viz import embedding_map
from dmllab.widgets import PANEL_DATASETS, LabPanel, MapExplorer
from viz_fixtures import image_dataset

TINY = {"dataset": "mixture", "epochs": 2, "batches_per_epoch": 3, "probe_size": 60, "embedding_dim": 4}


def test_importing_dmllab_loads_no_plotting_or_widget_package():
    code = ("import sys, dmllab as dl; dl.Config(); import dmllab.widgets, dmllab.runs; "
            "print(sorted(m for m in ('plotly', 'umap', 'ipywidgets', 'anywidget') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


def test_controls_start_from_the_defaults_and_describe_the_config():
    panel = LabPanel(**TINY, loss="margin", lsd_alpha=0.5)
    assert set(panel.controls) == {"dataset", "loss", "positives", "lsd_alpha", "geometry", "noise_rate",
                                   "epochs", "seed"}
    assert panel.controls["loss"].value == "margin" and panel.controls["lsd_alpha"].value == 0.5
    assert "cub200" not in panel.controls["dataset"].options and "mixture" in PANEL_DATASETS
    panel.controls["positives"].value = "nearest"
    panel.controls["seed"].value = 3
    config = panel.config()
    assert (config.positives, config.seed, config.loss, config.batches_per_epoch) == ("nearest", 3, "margin", 3)
    buttons = [c.description for c in panel.widget.children[0].children[-3].children]
    assert buttons == ["Train", "Stop"]
    assert [t.name for t in panel.curves.data] == ["loss", "lsd_term", "active", "pos_dist", "neg_dist"]
    assert len(panel.map.data) == 0
    with pytest.raises(ValueError, match="Config.loss='nope'"):
        LabPanel(loss="nope")


@pytest.mark.slow
def test_train_fills_progress_curves_and_map_from_the_epoch_callback():
    panel = LabPanel(**TINY, noise_rate=0.2)
    run = panel.train(wait=True)
    assert len(run.history) == 2 and panel.progress.value == 2 and not panel.training
    assert panel.status.value.startswith("done: 2 epochs")
    loss = next(t for t in panel.curves.data if t.name == "loss")
    np.testing.assert_allclose(loss.y, [row["loss"] for row in run.history])
    probe_labels = run.train.y[run.probe_index]
    assert [t.name for t in panel.map.data] == [str(c) for c in sorted(set(probe_labels.tolist()))]
    assert sum(len(t.x) for t in panel.map.data) == len(run.probe_index)
    assert panel.map.layout.title.text.startswith(f"probe set after epoch {max(run.snapshots)}")
    panel.color_by.value = "flipped"
    assert [t.name for t in panel.map.data] == ["clean", "flipped"]
    flipped = next(t for t in panel.map.data if t.name == "flipped")
    assert len(flipped.x) == int(run.train.flipped[run.probe_index].sum())


@pytest.mark.slow
def test_stop_ends_training_early_and_errors_are_reported():
    panel = LabPanel(**{**TINY, "epochs": 30})
    panel.train(wait=False)
    with pytest.raises(RuntimeError, match="already running"):
        panel.train(wait=False)
    panel.stop_button.click()
    panel._thread.join(timeout=60)
    assert panel.run is not None and len(panel.run.history) < 30
    assert not panel.train_button.disabled and panel.stop_button.disabled
    broken = LabPanel(**TINY, dataset_options={"no_such_option": 1})
    with pytest.raises(ValueError):
        broken.train(wait=True)
    assert "training failed" in broken.status.value and broken.run is None


def test_map_explorer_shows_the_clicked_sample_with_its_labels():
    data = image_dataset()
    points = np.random.default_rng(0).normal(size=(len(data), 2))
    explorer = MapExplorer(embedding_map(points, dataset=data), data)
    trace = explorer.map.data[1]  # class 1: rows 8..15, of which row 8 had its label flipped
    row = int(np.asarray(trace.customdata)[0, 0])
    trace._dispatch_on_click(Points(point_inds=[0], xs=[trace.x[0]], ys=[trace.y[0]],
                                    trace_name=trace.name, trace_index=1), None)
    assert explorer.image.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert explorer.caption.value.startswith(f"row {row}<br>class {int(data.y[row])}<br>sub {int(data.sub[row])}")
    assert ("flipped from" in explorer.caption.value) == bool(data.flipped[row])
    explorer.show(1)
    assert "flipped" not in explorer.caption.value


def test_map_explorer_refuses_non_image_data_and_foreign_maps():
    data = image_dataset()
    fig = embedding_map(np.zeros((len(data), 2)), dataset=data)
    with pytest.raises(ValueError, match="refers to row 23"):
        MapExplorer(fig, data.subset(np.arange(10)))
    data.image_shape = None
    with pytest.raises(ValueError, match="needs image data"):
        MapExplorer(fig, data)


def test_two_threads_pressing_train_at_once_start_one_training(monkeypatch):
    import threading

    from dmllab import train

    started, release = [], threading.Event()

    def slow_fit(config, **kwargs):  # holds the training open until both presses are done
        started.append(config)
        release.wait(timeout=30)
        raise train.StopTraining("test over")

    monkeypatch.setattr(train, "fit", slow_fit)
    for _ in range(5):
        panel = LabPanel(**TINY)
        barrier = threading.Barrier(2)
        refused = []

        def press():
            barrier.wait()
            try:
                panel._start()
            except RuntimeError as error:
                refused.append(str(error))

        presses = [threading.Thread(target=press) for _ in range(2)]
        for thread in presses:
            thread.start()
        for thread in presses:
            thread.join(timeout=30)
        release.set()
        panel._thread.join(timeout=30)
        release.clear()
        assert len(refused) == 1 and "already running" in refused[0]
    assert len(started) == 5


@pytest.mark.slow
def test_every_choice_the_controls_offer_can_train():
    # One control at a time from the defaults: every dataset (the 2-class ones get the stratified
    # split they need), loss, positive strategy, geometry, and the sliders' largest noise and LSD
    # weight train for an epoch from the panel.
    panel = LabPanel(**{**TINY, "epochs": 1, "batches_per_epoch": 1, "probe_size": 20})
    defaults = {name: control.value for name, control in panel.controls.items()}
    choices = [(name, option) for name in ("dataset", "loss", "positives", "geometry")
               for option in panel.controls[name].options]
    choices += [(name, panel.controls[name].max) for name in ("noise_rate", "lsd_alpha")]
    assert {"digits-parity", "modes-on-circle", "digits-low-high"} <= set(PANEL_DATASETS)
    for name, option in choices:
        for control, value in defaults.items():
            panel.controls[control].value = value
        panel.controls[name].value = option
        run = panel.train(wait=True)
        assert len(run.history) == 1, (name, option)
        assert getattr(run.config, name) == option
        two_classes = option in ("digits-parity", "modes-on-circle", "digits-low-high")
        assert run.config.split == ("stratified" if two_classes else "classes"), (name, option)
    assert panel.controls["dataset"].options == PANEL_DATASETS
