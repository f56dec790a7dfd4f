"""Widgets that leave a static picture behind when no live kernel can draw them.

A widget's output in a saved notebook is only a model id: reopened (untrusted, or with the widget
state stripped to keep the file small), JupyterLab falls back to the output's text repr, e.g.
"HBox(children=...". The displays made here also carry plotly's JSON of the figure (or a short
note), which JupyterLab, nbconvert and GitHub draw instead. A live session still gets the widget:
JupyterLab ranks the widget renderer before plotly's and HTML.

This module imports plotly at import time; `dmllab.viz.widgets` imports it lazily.
"""

from __future__ import annotations

import html
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


class FigureWidget(go.FigureWidget):
    """A plotly FigureWidget whose display also holds the figure as plotly JSON (as it is when
    displayed), so a saved notebook shows the figure instead of a dead widget."""

    def _repr_mimebundle_(
        self, include: Any = None, exclude: Any = None, validate: bool = True, **kwargs: Any
    ) -> dict[str, Any]:
        bundle = super()._repr_mimebundle_(
            include=include, exclude=exclude, validate=validate, **kwargs
        )
        return {
            **static_bundle(self, f"plotly figure: {self.layout.title.text or 'untitled'}"),
            **bundle,
        }


def static_bundle(figure: Any, note: str) -> dict[str, Any]:
    """plotly's mime bundle of `figure` (a Figure or FigureWidget) with `note` as its text repr."""
    bundle = pio.renderers["plotly_mimetype"].to_mimebundle(go.Figure(figure).to_dict())
    return {**bundle, "text/plain": note}


def widget_bundle(widget: Any, note: str, figure: Any = None) -> dict[str, Any]:
    """The mime bundle of ipywidget `widget` with a static fallback: `figure`'s plotly JSON when
    given, and `note` (what the widget is, what to do to use it) as HTML and plain text in place
    of the widget's long repr."""
    bundle = {"text/html": f"<p><i>{html.escape(note)}</i></p>", "text/plain": note}
    if figure is not None:
        bundle |= static_bundle(figure, note)
    return {**bundle, WIDGET_VIEW: widget._repr_mimebundle_()[WIDGET_VIEW]}
