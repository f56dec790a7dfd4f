"""Interactive panels for notebooks: train from controls and watch the curves and the map move.

    panel = LabPanel(dataset="digits", loss="triplet", epochs=8)
    panel                      # controls, Train / Stop, progress, live curves, live embedding map
    run = panel.train()        # the same from code (waits for the end; used by tests)

    MapExplorer(embedding_map(run, split="test"), run.test)   # click or hover a point: its image

Training runs in a background thread and reports through `fit`'s epoch callback, so the kernel
stays responsive while the plotly FigureWidgets update. The defaults (100 short epochs of 10
batches, a 300-point probe set) make one training on digits last a few seconds on a laptop CPU:
long enough to watch the curves grow and the map move, a few times a second.
"""

from __future__ import annotations

import dataclasses
import html
import io
import math
import threading
import time
from typing import Any

import numpy as np

from dmllab.config import Config
from dmllab.data import SPLITS
from dmllab.data.dataset import Dataset
from dmllab.data.registry import available, options
from dmllab.geometry import GEOMETRIES
from dmllab.losses import LOSSES, POSITIVES, TupleLoss
from dmllab.runs import Run


# The registry's datasets that need no files on disk (the image folders take a `root` option).
def panel_datasets() -> tuple[str, ...]:
    """The registered datasets the panel offers: those that need no local folder (`root`). Read
    when a panel is built, so a dataset registered at run time is offered too."""
    return tuple(name for name in available() if "root" not in options(name))


def panel_losses(current: str) -> tuple[str, ...]:
    """The registered losses, and `current` when it is a member of a family the registry resolves
    but does not list (`pml:<LossName>`, a pytorch-metric-learning loss): a panel built with one
    offers it beside the registered ones."""
    registered = tuple(LOSSES)
    return registered if current in registered else (current, *registered)


PANEL_DEFAULTS: dict[str, Any] = {
    "dataset": "digits",
    "embedding_dim": 16,
    "epochs": 100,
    "batches_per_epoch": 10,
    "classes_per_batch": 4,
    "samples_per_class": 8,
    "snapshot_every": 1,
    "probe_size": 300,
}
CONTROLLED = (
    "dataset",
    "split",
    "loss",
    "positives",
    "lsd_alpha",
    "geometry",
    "noise_rate",
    "epochs",
    "seed",
)
# LSD weights the slider offers: 0 (off), then a 1-2-5 log scale up to past the lessons'
# alpha = 200.
LSD_WEIGHTS = (0.0, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0)
ERROR_STYLE = "color:#d62728"
PANEL_FIGURE_PX = 620  # the width of the panel's curves and map
REDRAW_SECONDS = 0.25  # while training, curves, map and status are redrawn at most 4 times a second
STALE = " (previous run)"
# The split control's first choice: class-disjoint where the dataset allows it, else stratified
# (`fitted_to_data`); the status line and the map's title say which one trained.
AUTO_SPLIT = "automatic"
SPLIT_WORDS = {"classes": "class-disjoint"}  # how the status and the map name a split


class LabPanel:
    """Controls for dataset, loss, positives, LSD weight, geometry, noise, epochs and seed; a Train
    button; a progress bar; live training curves and a live map of the probe set (PCA of the latest
    snapshot), updated from a background thread: the progress bar after every epoch (of
    `batches_per_epoch` batches), the curves, the map and the status line at most every
    REDRAW_SECONDS, and all of them once more when the training ends.

    The panel alone changes its figures, under one lock: a training whose set of curves differs
    from the figure's (e.g. LSD switched on) gets a new figure, and so does a map whose set of
    traces changes; same-shaped updates refill the traces in place. The status line says what
    happened: "done", "stopped at epoch N", the error of a failed training, and a warning when
    training is degenerate (all distances 0, or a loss that no longer moves). The map never shows
    another run than the status: from the press of Train its title is marked "(previous run)"
    until the new run's first map replaces it, and a map that cannot be drawn (a failed training,
    or a colouring the data cannot give, e.g. sub-clusters of plain digits) is cleared and its
    reason stays in red under the status, through the final "done", until a map is drawn again.
    Stop is checked at the end of every epoch (`_check_stop`, before any drawing).

    defaults: any Config fields (the controlled ones set the controls' initial values; the others,
    e.g. embedding_dim or batches_per_epoch, are used as they are). See PANEL_DEFAULTS.
    The dataset control offers the registry's datasets that need no files; the split control
    offers "automatic" (`fitted_to_data`: a 2-class dataset gets the stratified split it needs)
    and the registered splits, used as chosen.
    After a training: `run` (the Run) and `error` (the exception if training failed).
    """

    def __init__(self, **defaults: Any) -> None:
        import ipywidgets as w

        from dmllab.viz.controls import WeightSlider

        self.base = Config(**{**PANEL_DEFAULTS, **defaults})
        self.run: Run | None = None
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._start_lock = (
            threading.Lock()
        )  # one check-and-start at a time: two presses start one training
        self.runs_started = 0  # numbers the map's title, so every training shows its own map
        self._new_map = False
        self._latest: Run | None = None
        self._drawn_at = -math.inf  # when the figures were last redrawn (time.monotonic)
        self._doing = ""  # the status line's "training ..." text of the run
        self._said = ""  # the status line without the map's problem
        self._map_problem: str | None = None  # why the map shows no run (shown under the status)
        datasets = (
            offered
            if self.base.dataset in (offered := panel_datasets())
            else (self.base.dataset, *offered)
        )
        style = {"description_width": "90px"}
        self.controls = {
            "dataset": w.Dropdown(
                options=datasets, value=self.base.dataset, description="dataset", style=style
            ),
            "split": w.Dropdown(
                options=(AUTO_SPLIT, *SPLITS),
                value=defaults.get("split", AUTO_SPLIT),
                description="split",
                style=style,
            ),
            "loss": w.Dropdown(
                options=panel_losses(self.base.loss),
                value=self.base.loss,
                description="loss",
                style=style,
            ),
            "positives": w.Dropdown(
                options=tuple(POSITIVES),
                value=self.base.positives,
                description="positives",
                style=style,
            ),
            "lsd_alpha": WeightSlider(
                LSD_WEIGHTS, self.base.lsd_alpha, description="LSD weight", style=style
            ),
            "geometry": w.Dropdown(
                options=tuple(GEOMETRIES),
                value=self.base.geometry,
                description="geometry",
                style=style,
            ),
            "noise_rate": w.FloatSlider(
                value=self.base.noise_rate,
                min=0.0,
                max=0.9,
                step=0.05,
                description="noise rate",
                style=style,
            ),
            "epochs": w.IntSlider(
                value=self.base.epochs,
                min=1,
                max=max(200, self.base.epochs),
                description="epochs",
                style=style,
            ),
            "seed": w.IntText(value=self.base.seed, description="seed", style=style),
        }
        self.color_by = w.ToggleButtons(
            options=["class", "sub", "flipped"],
            value="class",
            description="colour by",
            style={"description_width": "70px"},
        )
        self.train_button = w.Button(description="Train", button_style="primary", icon="play")
        self.stop_button = w.Button(description="Stop", icon="stop", disabled=True)
        self.progress = w.IntProgress(value=0, min=0, max=self.base.epochs, description="epoch 0")
        self.status = w.HTML("Set the controls and press <b>Train</b>.")
        self.curves = _figure_widget(_empty_curves(self.base))
        self.map = _figure_widget(_empty_map())
        self.train_button.on_click(lambda _: self._press_train())
        self.stop_button.on_click(lambda _: self._press_stop())
        self.color_by.observe(lambda _: self._redraw_map(), names="value")
        self.controls["loss"].observe(
            lambda change: self._offer_positives(change["new"]), names="value"
        )
        self._offer_positives(self.base.loss)
        left = w.VBox(
            [
                *self.controls.values(),
                w.HBox([self.train_button, self.stop_button]),
                self.progress,
                self.status,
            ],
            layout=w.Layout(width="330px"),
        )
        # Each figure sits in a slot of its own: replacing one changes only its slot's children, so
        # the browser never rebuilds the view of a live figure (a rebuilt plotly view can miss later
        # updates and leave an old map on screen).
        self._curves_slot, self._map_slot = w.Box([self.curves]), w.Box([self.map])
        self.figures = w.VBox([self._curves_slot, self.color_by, self._map_slot])
        self.widget = w.HBox([left, self.figures])

    # ------------------------------------------------------------------ public
    def config(self) -> Config:
        """The Config the controls describe now (validated); with the split "automatic", the base
        split (`fitted_to_data` changes it when training starts, if the data need it)."""
        values = {name: control.value for name, control in self.controls.items()}
        if values["split"] == AUTO_SPLIT:
            values["split"] = self.base.split
        return dataclasses.replace(self.base, **values)

    def train(self, wait: bool = True) -> Run | None:
        """Train with the current controls in a background thread; with `wait`, block until it ends
        and return the Run (re-raising a training error)."""
        thread = self._start()
        if not wait:
            return None
        thread.join()
        if self.error is not None:
            raise self.error
        return self.run

    @property
    def training(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def display(self) -> None:
        from IPython.display import display

        display(self)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        from dmllab.viz.live import widget_bundle

        return widget_bundle(
            self.widget,
            "LabPanel: interactive controls and live figures; run this cell "
            "in a live kernel to train from them.",
        )

    def _offer_positives(self, loss: str) -> None:
        """A loss that chooses no positives (prototype_ce compares each point with class means) has
        the positives control greyed out rather than silently ignored."""
        control = self.controls["positives"]
        control.disabled = not issubclass(LOSSES[loss], TupleLoss)
        control.tooltip = f"{loss} does not use positives" if control.disabled else None

    # ------------------------------------------------------------------ training thread
    def _press_stop(self) -> None:
        """The Stop button: ask the training to stop, and say so at once."""
        if not self.training or self._stop.is_set():
            return
        self._stop.set()
        self.stop_button.disabled = True
        self._set_status(self._said + " <i>stopping at the end of this epoch ...</i>")

    def _check_stop(self) -> None:
        """Raise StopTraining once Stop was pressed: the one place the training asks. The trainer
        calls it after every epoch, before anything is drawn (a per-batch hook of the trainer
        would call it after every batch)."""
        from dmllab.train import StopTraining

        if self._stop.is_set():
            raise StopTraining("stopped from the panel")

    def _press_train(self) -> None:
        """The Train button: start, or show in the status why not (nothing reaches a log)."""
        try:
            self._start()
        except Exception as error:  # e.g. a control combination the Config refuses
            self._set_status(_error_html("cannot train", error))

    def _start(self) -> threading.Thread:
        """Start a training thread from the controls; RuntimeError if one is already running."""
        with self._start_lock:
            return self._start_unlocked()

    def _start_unlocked(self) -> threading.Thread:
        if self.training:
            raise RuntimeError("LabPanel: a training is already running; wait for it or press Stop")
        config = self.config()
        automatic = self.controls["split"].value == AUTO_SPLIT
        self.runs_started += 1
        self._new_map = True  # the run's first map gets a widget of its own
        self.run, self.error, self._latest = None, None, None
        self._map_problem = None
        self._drawn_at = -math.inf  # a run's first epoch is always drawn
        self._stop.clear()
        self.progress.max, self.progress.value, self.progress.description = (
            config.epochs,
            0,
            "epoch 0",
        )
        self.train_button.disabled, self.stop_button.disabled = True, False
        self._set_status(f"preparing {html.escape(config.dataset)} ...")
        with self._lock:
            self._show_curves(_empty_curves(config), [])
            if self.map.data:
                self.map.update_layout(title=_stale(self.map.layout.title.text or ""))
        self._thread = threading.Thread(
            target=self._work, args=(config, automatic), name="dmllab-LabPanel", daemon=True
        )
        self._thread.start()
        return self._thread

    def _work(self, config: Config, automatic: bool = True) -> None:
        from dmllab.train import fit

        started = time.perf_counter()
        try:
            config = fitted_to_data(config, change_split=automatic)
            how = ", chosen automatically" if automatic else ""
            reads = issubclass(LOSSES[config.loss], TupleLoss)
            positives = f" / {config.positives}" if reads else ""
            split = SPLIT_WORDS.get(config.split, config.split)
            self._doing = (
                f"training {html.escape(config.dataset)} ({split} split{how}) / "
                f"{config.loss}{positives}"
            )
            self._set_status(self._doing + " ...")
            run = fit(config, callbacks=[self._on_epoch], progress=False)
            self._draw(run)  # the last epochs, whatever the throttle skipped
            self.run = run
            last = run.history[-1] if run.history else {}
            seconds = time.perf_counter() - started
            done = len(run.history)
            if self._stop.is_set() and done < config.epochs:
                text = f"stopped at epoch {done} of {config.epochs} ({seconds:.1f} s)"
            else:
                text = f"done: {done} epochs in {seconds:.1f} s"
            text += f", loss {last['loss']:.4f}" if "loss" in last else ""
            problem = degenerate(run.history)
            if problem:
                text += f"<br><span style='{ERROR_STYLE}'>warning: {html.escape(problem)}</span>"
            self._set_status(text)
        except BaseException as error:  # shown in the panel and re-raised by train(wait=True)
            self.error = error
            self._latest = None
            with self._lock:
                self._show_map(_empty_map("no map: the last training failed"))
            self._map_problem = None  # the status says why
            self._set_status(_error_html("training failed", error))
        finally:
            self.train_button.disabled, self.stop_button.disabled = False, True

    def _on_epoch(self, run: Run, epoch: int) -> None:
        self.progress.value = min(len(run.history), self.progress.max)
        self.progress.description = f"epoch {len(run.history)}"
        self._latest = run
        self._check_stop()  # before drawing: the final draw after `fit` shows this epoch
        if time.monotonic() - self._drawn_at >= REDRAW_SECONDS:
            self._draw(run)
            loss = run.history[-1].get("loss") if run.history else None
            self._set_status(
                f"{self._doing}: epoch {len(run.history)} of {self.progress.max}"
                + (f", loss {loss:.4f}" if loss is not None else "")
            )

    def _draw(self, run: Run) -> None:
        """Curves and map of `run` as it stands now."""
        self._drawn_at = time.monotonic()
        with self._lock:
            self._show_curves(self.curves, run.history)
        self._latest = run
        self._redraw_map()

    def _set_status(self, text: str) -> None:
        """Show `text`, and under it in red why the map shows no run, if it does not."""
        self._said = text
        problem = self._map_problem
        self.status.value = text + (
            f"<br><span style='{ERROR_STYLE}'>no map: {html.escape(problem)}</span>"
            if problem
            else ""
        )

    # ------------------------------------------------------------------ figures
    # (callers hold self._lock)
    def _show_curves(self, fig: Any, history: list[dict]) -> None:
        """Fill the curves from `history`; a figure with other curves than the shown one replaces
        it."""
        from dmllab.viz.curves import update_curves

        if [t.name for t in self.curves.data] != [t.name for t in fig.data]:
            self.curves = _replace(self._curves_slot, self.curves, fig)
        with self.curves.batch_update():
            update_curves(self.curves, history)

    def _show_map(self, fig: Any) -> None:
        """Show `fig`: a new run's first map or other traces -> a new map widget; else refill the
        traces in place (an empty map after an empty one of the same run: its title)."""
        same = [t.name for t in self.map.data] == [t.name for t in fig.data]
        if same and not self._new_map:
            with self.map.batch_update():
                for old, new in zip(self.map.data, fig.data, strict=True):
                    old.x, old.y, old.customdata = new.x, new.y, new.customdata
                self.map.update_layout(
                    title=fig.layout.title.text, legend_title_text=fig.layout.legend.title.text
                )
            return
        self.map = _replace(self._map_slot, self.map, fig)
        self._new_map = False

    # ------------------------------------------------------------------ map
    def _redraw_map(self) -> None:
        """Draw the latest snapshot of the run in progress (or the last run), coloured as chosen.

        A map that cannot be drawn (e.g. colour by "sub" on a dataset without sub-clusters) is
        cleared, never left showing another run, and its reason stays under the status line until
        a map is drawn again."""
        from dmllab.viz.maps import embedding_map
        from dmllab.viz.projection import project

        run = self._latest
        if run is None or not run.snapshots or run.probe_index is None:
            return
        epoch = max(run.snapshots)
        heading = f"run {self.runs_started}: probe set after epoch {epoch + 1}"
        try:
            points = project(run.snapshots[epoch], "pca", cache=False)
            probe = run.train.subset(run.probe_index)
            title = (
                f"{heading}<br><sup>{len(points)} training points of "
                f"{html.escape(run.config.dataset)}, "
                f"{SPLIT_WORDS.get(run.config.split, run.config.split)} split</sup>"
            )
            fig = embedding_map(points, dataset=probe, color_by=self.color_by.value, title=title)
        except Exception as error:  # shown in the panel, whatever it is; training goes on
            self._map_problem = str(error) or type(error).__name__
            with self._lock:
                self._show_map(_empty_map(f"{heading}: no map (see the status)"))
            self._set_status(self._said)
            return
        _map_frame(fig, title)
        with self._lock:
            self._show_map(fig)
        if self._map_problem is not None:
            self._map_problem = None
            self._set_status(self._said)


def fitted_to_data(config: Config, *, change_split: bool = True) -> Config:
    """`config` with the split and batch shape its data can train with (what the panel trains).

    With `change_split`, a class-disjoint split (`split="classes"`) that would leave fewer than 2
    classes on a side of the test or validation split, as for the 2-class `digits-parity`,
    `digits-low-high` and `modes-on-circle`, becomes "stratified" (the same classes on both
    sides); `classes_per_batch` is capped by the classes in the training part. Errors the
    stratified split also meets (unknown dataset options, a split that holds out nothing), and
    without `change_split` those of the split as given, are raised as ValueError.
    """
    from dmllab.build import prepare

    try:
        splits = prepare(config)
    except ValueError:
        if config.split != "classes" or not change_split:
            raise
        config = dataclasses.replace(config, split="stratified")
        splits = prepare(config)
    classes = splits.train.num_classes
    if classes < config.classes_per_batch:  # small training splits (e.g. mixture) hold few classes
        config = dataclasses.replace(config, classes_per_batch=max(2, classes))
    return config


def _empty_curves(config: Config) -> Any:
    """The curves the panel draws for `config`: loss (and the LSD term), the tuples a loss that
    chooses positives counts, and the distances, in the words of its loss (`loss_wording`)."""
    from dmllab.viz.curves import curves_figure, loss_wording

    hidden, words, titles = loss_wording(config.loss)
    keys = [key for key in ("loss", "active", "pos_dist", "neg_dist") if key not in hidden]
    if config.lsd_alpha > 0:
        keys.insert(1, "lsd_term")
    if config.val_fraction > 0:
        keys.append("val_recall@1")
    fig = curves_figure(keys, title="training curves", words=words, titles=titles, columns=2)
    fig.update_layout(width=PANEL_FIGURE_PX, margin={"l": 70, "r": 20})
    return fig


def degenerate(history: list[dict]) -> str | None:
    """Why a training learned nothing, or None: every selected distance 0 in the last epoch (all
    points look alike to the geometry), or a non-zero loss unchanged over the last two epochs."""
    if not history:
        return None
    last = history[-1]
    if (
        "pos_dist" in last
        and "neg_dist" in last
        and abs(last["pos_dist"]) + abs(last["neg_dist"]) <= 1e-12
    ):
        return (
            "degenerate training: all distances are 0 "
            f"(loss {last.get('loss', float('nan')):.4f}); "
            "the geometry sees every point alike, so this combination learns nothing here"
        )
    if len(history) < 2:
        return None
    before, after = history[-2].get("loss"), history[-1].get("loss")
    if (
        before is not None
        and after is not None
        and after > 0
        and math.isclose(before, after, rel_tol=1e-7)
    ):
        return f"degenerate training: the loss stayed at {after:.4f} over the last epochs"
    return None


def _error_html(what: str, error: BaseException) -> str:
    return (
        f"<span style='{ERROR_STYLE}'>{html.escape(what)}: "
        f"{html.escape(type(error).__name__)}: {html.escape(str(error))}</span>"
    )


def _empty_map(title: str = "probe set (press Train)") -> Any:
    import plotly.graph_objects as go

    return _map_frame(go.Figure(), title)


def _map_frame(fig: Any, title: str) -> Any:
    """The panel's map size and axes (the probe set's PCA) on `fig`, titled `title` (two lines at
    most, each well inside the figure's width). The legend sits at the right of the plot in a
    small font, so that twenty classes fit its height without scrolling."""
    fig.update_layout(
        title={"text": title, "x": 0.02, "xanchor": "left", "y": 0.97, "yanchor": "top"},
        template="plotly_white",
        height=460,
        width=PANEL_FIGURE_PX,
        margin={"t": 80, "b": 50, "l": 60, "r": 20},
        xaxis_title="PCA 1",
        yaxis_title="PCA 2",
        legend={"font": {"size": 10}, "tracegroupgap": 0, "itemsizing": "constant"},
    )
    return fig


def _stale(title: str) -> str:
    """`title` with STALE at the end of its first line (once)."""
    first, sep, rest = title.partition("<br>")
    return title if first.endswith(STALE) else first + STALE + sep + rest


def _replace(slot: Any, old: Any, fig: Any) -> Any:
    """Put a new figure widget for `fig` into `slot` in place of `old` (closed); returns it."""
    new = _figure_widget(fig)
    slot.children = (new,)
    old.close()
    return new


def _figure_widget(fig: Any) -> Any:
    from dmllab.viz.live import FigureWidget

    return FigureWidget(fig)


class MapExplorer:
    """An embedding map linked to an image panel: hover or click a point to see its sample.

    Plotly's hover box cannot show images, so thumbnails live beside the map: `figure` is an
    `embedding_map` (its traces carry the row index in customdata[:, 0]) of the rows of `dataset`,
    which must hold images (`dataset.image_shape` set).
    """

    def __init__(self, figure: Any, dataset: Dataset, *, image_px: int = 160) -> None:
        import ipywidgets as w

        image_shape = dataset.image_shape
        if image_shape is None:
            raise ValueError(
                "MapExplorer needs image data (dataset.image_shape is None); "
                "for other data the map's hover already shows the labels"
            )
        rows = [np.asarray(t.customdata)[:, 0] for t in figure.data if t.customdata is not None]
        if not rows:
            raise ValueError(
                "MapExplorer: the figure's traces carry no customdata; pass an embedding_map figure"
            )
        largest = max(int(np.max(r)) for r in rows)
        if largest >= len(dataset):
            raise ValueError(
                f"MapExplorer: the map refers to row {largest} but the dataset has "
                f"{len(dataset)} rows; pass the dataset the map was drawn from"
            )
        self.dataset = dataset
        self.image_shape = image_shape
        self.map = _figure_widget(figure)
        self.image = w.Image(format="png", width=image_px, height=image_px)
        self.caption = w.HTML("hover or click a point")
        for trace in self.map.data:
            trace.on_hover(self._on_point)
            trace.on_click(self._on_point)
        self.widget = w.HBox([self.map, w.VBox([self.image, self.caption])])

    def show(self, row: int) -> None:
        """Show dataset row `row` in the image panel with its labels."""
        data = self.dataset
        index = _row_index(row)
        image = data.x[index].detach().float().reshape(*self.image_shape).numpy()
        self.image.value = _png(image)
        parts = [f"row {row}", f"class {int(data.y[row])}"]
        if data.sub is not None:
            parts.append(f"sub {int(data.sub[row])}")
        flipped, clean_y = data.flipped, data.clean_y
        if flipped is not None and clean_y is not None and bool(flipped[row]):
            parts.append(f"<span style='color:#d62728'>flipped from {int(clean_y[row])}</span>")
        self.caption.value = "<br>".join(parts)

    def display(self) -> None:
        from IPython.display import display

        display(self)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        from dmllab.viz.live import widget_bundle

        return widget_bundle(
            self.widget,
            "MapExplorer: the map (hover or click a point in a live kernel to see its image)",
            figure=self.map,
        )

    def _on_point(self, trace: Any, points: Any, _state: Any = None) -> None:
        if points.point_inds:
            self.show(int(np.asarray(trace.customdata)[points.point_inds[0], 0]))


def _row_index(row: int) -> Any:
    import torch

    return torch.tensor([int(row)])


def _png(image: np.ndarray) -> bytes:
    """[C, H, W] float image -> PNG bytes (grey for one channel), scaled to 0..255 by its range."""
    from PIL import Image

    pixels = image[0] if image.shape[0] == 1 else np.moveaxis(image[:3], 0, -1)
    low, high = float(pixels.min()), float(pixels.max())
    scaled = (pixels - low) / (high - low) if high > low else np.zeros_like(pixels)
    buffer = io.BytesIO()
    Image.fromarray((scaled * 255).round().astype(np.uint8)).resize(
        (max(64, pixels.shape[1] * 4), max(64, pixels.shape[0] * 4)), Image.Resampling.NEAREST
    ).save(buffer, "png")
    return buffer.getvalue()
