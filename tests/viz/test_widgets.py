"""LabPanel trains from its controls in a thread and updates its figures; MapExplorer shows
images."""

from __future__ import annotations

import html
import subprocess
import sys

import numpy as np
import pytest
from plotly.callbacks import Points

from dmllab.viz import embedding_map
from dmllab.viz.widgets import LabPanel, MapExplorer, degenerate, panel_datasets
from viz_fixtures import image_dataset

TINY = {
    "dataset": "mixture",
    "epochs": 2,
    "batches_per_epoch": 3,
    "probe_size": 60,
    "embedding_dim": 4,
}


def test_importing_dmllab_loads_no_plotting_or_widget_package():
    code = (
        "import sys, dmllab as dl; dl.Config(); import dmllab.viz.widgets, dmllab.runs; "
        "print(sorted(m for m in ('plotly', 'umap', 'ipywidgets', 'anywidget') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "[]"


def test_controls_start_from_the_defaults_and_describe_the_config():
    panel = LabPanel(**TINY, loss="margin", lsd_alpha=0.5)
    assert set(panel.controls) == {
        "dataset",
        "split",
        "loss",
        "positives",
        "lsd_alpha",
        "geometry",
        "noise_rate",
        "epochs",
        "seed",
    }
    assert panel.controls["loss"].value == "margin" and panel.controls["lsd_alpha"].value == 0.5
    assert "cub200" not in panel.controls["dataset"].options and "mixture" in panel_datasets()
    panel.controls["positives"].value = "nearest"
    panel.controls["seed"].value = 3
    config = panel.config()
    assert (config.positives, config.seed, config.loss, config.batches_per_epoch) == (
        "nearest",
        3,
        "margin",
        3,
    )
    buttons = [c.description for c in panel.widget.children[0].children[-3].children]
    assert buttons == ["Train", "Stop"]
    assert [t.name for t in panel.curves.data] == [
        "loss",
        "lsd_term",
        "active",
        "pos_dist",
        "neg_dist",
    ]
    assert len(panel.map.data) == 0
    with pytest.raises(ValueError, match=r"Config.loss='nope'"):
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
    assert panel.map.layout.title.text.startswith(  # epochs counted from 1, as in the status
        f"run 1: probe set after epoch {max(run.snapshots) + 1}<br>"
    )
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
    broken = LabPanel(**TINY, dataset_options={"per_mode": 0})  # refused when training starts
    with pytest.raises(ValueError):
        broken.train(wait=True)
    assert "training failed" in broken.status.value and broken.run is None


def test_map_explorer_shows_the_clicked_sample_with_its_labels():
    data = image_dataset()
    points = np.random.default_rng(0).normal(size=(len(data), 2))
    explorer = MapExplorer(embedding_map(points, dataset=data), data)
    trace = explorer.map.data[1]  # class 1: rows 8..15, of which row 8 had its label flipped
    row = int(np.asarray(trace.customdata)[0, 0])
    trace._dispatch_on_click(
        Points(
            point_inds=[0], xs=[trace.x[0]], ys=[trace.y[0]], trace_name=trace.name, trace_index=1
        ),
        None,
    )
    assert explorer.image.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert explorer.caption.value.startswith(
        f"row {row}<br>class {int(data.y[row])}<br>sub {int(data.sub[row])}"
    )
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

        def press(barrier=barrier, panel=panel, refused=refused):  # this round's, bound now
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
    choices = [
        (name, option)
        for name in ("dataset", "loss", "positives", "geometry")
        for option in panel.controls[name].options
    ]
    choices += [(name, panel.controls[name].max) for name in ("noise_rate", "lsd_alpha")]
    assert {"digits-parity", "modes-on-circle", "digits-low-high"} <= set(panel_datasets())
    for name, option in choices:
        for control, value in defaults.items():
            panel.controls[control].value = value
        panel.controls[name].value = option
        run = panel.train(wait=True)
        assert len(run.history) == 1, (name, option)
        assert getattr(run.config, name) == option
        two_classes = option in ("digits-parity", "modes-on-circle", "digits-low-high")
        assert run.config.split == ("stratified" if two_classes else "classes"), (name, option)
    assert panel.controls["dataset"].options == panel_datasets()


# -------------------------------------------------------- one owner of the figures, honest status
def test_lsd_slider_reaches_the_lessons_weights_on_a_log_scale():
    panel = LabPanel(**TINY)
    slider = panel.controls["lsd_alpha"]
    weights = [value for _, value in slider.options]
    assert weights[0] == 0.0 and slider.options[0][0] == "0 (off)"
    assert {20.0, 200.0} <= set(weights) and slider.max == 1000.0
    ratios = np.array(weights[2:]) / np.array(weights[1:-1])
    assert ratios.min() >= 2.0 - 1e-9 and ratios.max() <= 2.5 + 1e-9  # 1-2-5 steps: a log scale
    slider.value = 200.0
    assert panel.config().lsd_alpha == 200.0
    assert (
        LabPanel(**TINY, lsd_alpha=3.0).controls["lsd_alpha"].value == 3.0
    )  # an off-scale default is kept


def test_a_changed_set_of_curves_gets_a_new_figure_and_the_map_follows_each_run():
    panel = LabPanel(**TINY)
    panel.train(wait=True)
    first_curves, first_title = panel.curves, panel.map.layout.title.text
    assert "lsd_term" not in [t.name for t in first_curves.data]
    panel.controls["lsd_alpha"].value = 200.0
    panel.controls["epochs"].value = 3
    run = panel.train(wait=True)
    assert panel.curves is not first_curves and panel.figures.children[0].children == (
        panel.curves,
    )
    assert [t.name for t in panel.curves.data][:2] == ["loss", "lsd_term"]
    np.testing.assert_allclose(panel.curves.data[0].y, [row["loss"] for row in run.history])
    assert panel.map.layout.title.text != first_title
    assert panel.map.layout.title.text.startswith("run 2: probe set after epoch 3<br>")
    assert panel.figures.children[-1].children == (panel.map,)


def test_a_failed_training_clears_the_map_and_says_why(monkeypatch):
    from dmllab import train

    panel = LabPanel(**TINY)
    panel.train(wait=True)
    assert panel.map.data
    monkeypatch.setattr(
        train, "fit", lambda *args, **kwargs: (_ for _ in ()).throw(ValueError("no batches left"))
    )
    with pytest.raises(ValueError, match="no batches left"):
        panel.train(wait=True)
    assert not panel.map.data and panel.map.layout.title.text == "no map: the last training failed"
    assert panel.figures.children[-1].children == (panel.map,)
    assert "training failed: ValueError: no batches left" in panel.status.value


def test_pressing_train_with_a_refused_setting_shows_the_error_in_the_panel(monkeypatch):
    panel = LabPanel(**TINY)
    monkeypatch.setattr(
        panel, "config", lambda: (_ for _ in ()).throw(ValueError("m=1 is too small"))
    )
    panel.train_button.click()
    assert "cannot train: ValueError: m=1 is too small" in panel.status.value and not panel.training


def test_stop_says_at_which_epoch_training_stopped():
    panel = LabPanel(**{**TINY, "epochs": 30})
    on_epoch = panel._on_epoch

    def press_stop_after_the_first_epoch(run, epoch):
        panel.stop_button.click()
        on_epoch(run, epoch)

    panel._on_epoch = press_stop_after_the_first_epoch
    run = panel.train(wait=True)
    assert len(run.history) == 1 and panel.status.value.startswith("stopped at epoch 1 of 30")


@pytest.mark.parametrize("every, draws", [(0.0, 5), (3600.0, 2)])
def test_figures_move_while_training_at_most_every_redraw_seconds_and_once_at_the_end(
    monkeypatch, every, draws
):
    from dmllab.viz import widgets

    monkeypatch.setattr(widgets, "REDRAW_SECONDS", every)
    panel = LabPanel(**{**TINY, "epochs": 4})
    drawn, statuses = [], []
    draw = panel._draw
    monkeypatch.setattr(panel, "_draw", lambda run: (drawn.append(len(run.history)), draw(run)))
    panel.status.observe(lambda change: statuses.append(change["new"]), names="value")
    run = panel.train(wait=True)
    assert drawn == ([1, 2, 3, 4, 4] if every == 0 else [1, 4]) and len(drawn) == draws
    assert any(
        ": epoch 1 of 4, loss" in text for text in statuses
    )  # the status moves with the curves
    np.testing.assert_allclose(panel.curves.data[0].y, [row["loss"] for row in run.history])
    assert panel.map.layout.title.text.startswith("run 1: probe set after epoch 4<br>")
    assert panel.status.value.startswith("done: 4 epochs")


def test_a_default_panel_run_is_long_enough_to_watch():
    from dmllab.viz.widgets import PANEL_DEFAULTS, REDRAW_SECONDS

    assert (
        PANEL_DEFAULTS["epochs"] * PANEL_DEFAULTS["batches_per_epoch"] >= 1000
    )  # ~2 ms a batch on digits
    assert 0.1 <= REDRAW_SECONDS <= 0.5  # a few redraws a second


def test_degenerate_training_is_flagged():
    flat = [{"epoch": e, "loss": 0.2, "pos_dist": 0.0, "neg_dist": 0.0} for e in (1, 2)]
    assert "all distances are 0" in degenerate(flat)
    stuck = [{"epoch": e, "loss": 0.7, "pos_dist": 0.3, "neg_dist": 0.5} for e in (1, 2)]
    assert "loss stayed at 0.7000" in degenerate(stuck)
    moving = [
        {"epoch": 1, "loss": 0.7, "pos_dist": 0.3, "neg_dist": 0.5},
        {"epoch": 2, "loss": 0.6},
    ]
    assert degenerate(moving) is None and degenerate(stuck[:1]) is None and degenerate([]) is None
    done = [{"epoch": e, "loss": 0.0, "pos_dist": 0.1, "neg_dist": 0.9} for e in (1, 2)]
    assert degenerate(done) is None  # every constraint met is not degenerate


def test_bregman_maxaffine_collapse_shows_a_warning_in_the_status():
    """The pure max-affine generator (mu=0) collapses every distance to 0 and the status says
    so; at its default (mu = 0.05: D >= mu/2 |x - y|^2) it does not."""
    panel = LabPanel(
        dataset="digits", geometry="bregman-maxaffine", geometry_options={"mu": 0.0}, epochs=3
    )
    panel.train(wait=True)
    assert "warning: degenerate training: all distances are 0" in panel.status.value
    default = LabPanel(dataset="digits", geometry="bregman-maxaffine", epochs=3)
    default.train(wait=True)
    assert "degenerate" not in default.status.value and "done" in default.status.value


def test_prototype_ce_greys_out_the_positives_it_does_not_use():
    panel = LabPanel(**TINY)
    assert not panel.controls["positives"].disabled
    panel.controls["loss"].value = "prototype_ce"
    assert panel.controls["positives"].disabled
    assert LabPanel(**TINY, loss="prototype_ce").controls["positives"].disabled


# ----------------------------------------------- the map never shows another run than the status
@pytest.mark.slow
def test_a_map_that_cannot_be_drawn_is_cleared_and_its_reason_outlives_done():
    panel = LabPanel(**{**TINY, "dataset": "digits-parity", "epochs": 2})
    panel.color_by.value = "sub"
    panel.train(wait=True)
    assert len(panel.map.data) == 10  # the ten digits inside the two parity classes
    panel.controls["dataset"].value = "digits"  # no sub-clusters: the map cannot be coloured so
    panel.train(wait=True)
    title = panel.map.layout.title.text
    assert not panel.map.data and title.startswith("run 2: probe set after epoch 2: no map")
    status = html.unescape(panel.status.value)
    assert status.startswith("done: 2 epochs")  # and the reason stays under it, in red
    assert "<br><span style='color:#d62728'>no map: embedding_map: color_by='sub' needs" in status
    panel.color_by.value = "class"  # undone: the map comes back and the red line goes
    assert len(panel.map.data) == 5  # the five training classes of the class-disjoint split
    assert panel.map.layout.title.text.startswith("run 2: probe set after epoch 2<br>")
    assert "no map" not in panel.status.value and panel.status.value.startswith("done: 2 epochs")


def test_the_old_map_is_marked_from_the_press_of_train(monkeypatch):
    from dmllab import train

    panel = LabPanel(**TINY)
    panel.train(wait=True)
    first = panel.map.layout.title.text
    release = __import__("threading").Event()

    def waiting_fit(config, **kwargs):
        release.wait(timeout=30)
        raise train.StopTraining("test over")

    monkeypatch.setattr(train, "fit", waiting_fit)
    panel.train(wait=False)
    try:
        heading, rest = first.split("<br>", 1)
        assert panel.map.layout.title.text == f"{heading} (previous run)<br>{rest}"
    finally:
        release.set()
        panel._thread.join(timeout=30)


# ------------------------------------------------------------------------------- the split control
@pytest.mark.slow
def test_the_split_control_is_automatic_by_default_and_otherwise_used_as_chosen():
    panel = LabPanel(**{**TINY, "epochs": 1, "dataset": "digits-parity"})
    assert panel.controls["split"].options == ("automatic", "classes", "stratified")
    assert panel.train(wait=True).config.split == "stratified"
    panel.controls["split"].value = "classes"  # two classes cannot be split class-disjointly
    with pytest.raises(ValueError):
        panel.train(wait=True)
    assert "training failed" in panel.status.value and not panel.map.data
    panel.controls["dataset"].value = "digits"
    panel.controls["split"].value = "stratified"
    assert panel.train(wait=True).config.split == "stratified"
    assert "stratified split" in panel.map.layout.title.text


def test_the_status_names_the_split_and_whether_it_was_chosen_automatically(monkeypatch):
    from dmllab import train

    panel = LabPanel(**{**TINY, "dataset": "digits-parity"})
    said = []
    panel.status.observe(lambda change: said.append(change["new"]), names="value")
    monkeypatch.setattr(
        train, "fit", lambda *a, **k: (_ for _ in ()).throw(ValueError("stop here"))
    )
    with pytest.raises(ValueError, match="stop here"):
        panel.train(wait=True)
    assert any("digits-parity (stratified split, chosen automatically)" in s for s in said), said


# ------------------------------------------------------------- curves in the words of the loss
def test_prototype_ce_gets_no_tuple_curves_and_its_distances_are_to_class_means():
    panel = LabPanel(**TINY, loss="prototype_ce")
    assert [t.name for t in panel.curves.data] == ["loss", "pos_dist", "neg_dist"]
    axes = [panel.curves.layout[f"yaxis{i or ''}"].title.text for i in ("", 2, 3)]
    assert axes == [
        "loss (total)",
        "mean D to the own class mean",
        "mean D to the other class means",
    ]
    triplet = LabPanel(**TINY)
    assert [t.name for t in triplet.curves.data] == ["loss", "active", "pos_dist", "neg_dist"]
    assert triplet.curves.layout.yaxis3.title.text == "mean D to the chosen positive"


# ------------------------------------------------------------------------------------------ stop
def test_stop_says_so_at_once_and_is_checked_before_anything_is_drawn(monkeypatch):
    from dmllab import train

    panel = LabPanel(**{**TINY, "epochs": 30})
    drawn = []
    monkeypatch.setattr(panel, "_draw", lambda run: drawn.append(len(run.history)))
    release = __import__("threading").Event()
    real_fit = train.fit

    def fit_after_stop(config, **kwargs):
        release.wait(timeout=30)
        return real_fit(config, **kwargs)

    monkeypatch.setattr(train, "fit", fit_after_stop)
    panel.train(wait=False)
    panel.stop_button.click()
    assert "stopping at the end of this epoch" in panel.status.value
    assert panel.stop_button.disabled
    release.set()
    panel._thread.join(timeout=60)
    assert len(panel.run.history) == 1 and drawn == [1]  # only the final draw after fit
    assert panel.status.value.startswith("stopped at epoch 1 of 30")


def test_the_loss_menu_offers_the_proxy_losses_and_a_pml_loss_it_was_built_with():
    panel = LabPanel(**TINY)
    assert {"proxy_anchor", "proxy_nca"} <= set(panel.controls["loss"].options)
    panel.controls["loss"].value = "proxy_anchor"  # compares with proxies: no positives to pick
    assert panel.controls["positives"].disabled
    pml = LabPanel(**TINY, loss="pml:TripletMarginLoss")
    assert pml.controls["loss"].options[0] == "pml:TripletMarginLoss"
    assert "proxy_nca" in pml.controls["loss"].options
    assert not pml.controls["positives"].disabled  # the adapter reads the lab's selection
    run = pml.train(wait=True)
    assert run.config.loss == "pml:TripletMarginLoss" and len(run.history) == TINY["epochs"]
