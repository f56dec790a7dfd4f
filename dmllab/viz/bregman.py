"""Pictures of a 2-D (learned) divergence: level sets, asymmetry and the generator's curvature.

    fig = level_sets(run.geometry, centres=[(0.3, 0.3), (0.7, 0.6)], box=(0, 1, 0, 1), direction="both")
    fig = asymmetry_heatmap(run.geometry, centre=(0.5, 0.5))
    fig = phi_surface(run.geometry)

The numbers come from `dmllab.geometry.readouts`; this module only draws them. For a Euclidean
geometry level sets are circles around each centre; a Bregman divergence bends them, and its
level sets differ between D(x || c) ("first": the moving point in the first slot) and
D(c || x) ("second").
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from dmllab.geometry import resolve as resolve_geometry
from dmllab.viz._inputs import as_points, is_run

DIRECTIONS = ("first", "second", "both")
_TITLES = {"first": "D(x || c)", "second": "D(c || x)"}


def level_sets(geometry: Any, centres: Any, box: Sequence[float] = (0.0, 1.0, 0.0, 1.0), *,
               direction: str = "first", resolution: int = 80, levels: int = 8) -> "go.Figure":
    """Contour lines of x -> D(x || c) (or D(c || x)) around each centre c, one colour per centre.

    geometry:  a 2-D Geometry, a registered geometry name, or a Run (whose geometry is used).
    centres:   [k, 2] points (a single (x, y) pair is one centre).
    box:       (xmin, xmax, ymin, ymax) of the grid.
    direction: "first", "second" or "both" (two panels side by side, sharing axes).
    levels:    contour lines per centre, evenly spaced from 0 to the largest value in the box.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from dmllab.geometry.readouts import level_set_grid

    geometry = _geometry(geometry)
    if direction not in DIRECTIONS:
        raise ValueError(f"level_sets: direction={direction!r}; choose one of {', '.join(DIRECTIONS)}")
    centres = as_points(np.atleast_2d(np.asarray(centres, dtype=float)), "level_sets (centres)")
    if centres.shape[1] != 2:
        raise ValueError(f"level_sets: centres must be 2-D points [k, 2]; got shape {centres.shape}")
    if levels < 1:
        raise ValueError(f"level_sets: levels must be >= 1; got {levels}")
    panels = ["first", "second"] if direction == "both" else [direction]
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[_TITLES[p] for p in panels],
                        shared_yaxes=True, horizontal_spacing=0.06)
    colors = _centre_colors(len(centres))
    for col, panel in enumerate(panels, start=1):
        for i, centre in enumerate(centres):
            xs, ys, values = level_set_grid(geometry, centre, box, resolution, panel)
            top = float(np.nanmax(values))
            fig.add_trace(go.Contour(
                x=xs, y=ys, z=values, name=f"centre {i}", legendgroup=f"centre {i}", showlegend=False,
                contours={"coloring": "lines", "start": top / (levels + 1), "end": top,
                          "size": max(top / (levels + 1), 1e-12)},
                colorscale=[[0, colors[i]], [1, colors[i]]], showscale=False, line={"width": 1.5}),
                row=1, col=col)
            fig.add_trace(go.Scatter(
                x=centre[:1], y=centre[1:], mode="markers", name=f"centre {i}", legendgroup=f"centre {i}",
                showlegend=col == 1, marker={"color": colors[i], "size": 10, "symbol": "x"}),
                row=1, col=col)
    fig.update_xaxes(range=[box[0], box[1]], title_text="x1", constrain="domain")
    fig.update_yaxes(range=[box[2], box[3]], constrain="domain")
    fig.update_yaxes(title_text="x2", row=1, col=1)
    fig.update_layout(title=f"level sets of {getattr(geometry, 'name', 'the geometry')}",
                      template="plotly_white", height=440, width=420 * len(panels) + 120)
    return fig


def asymmetry_heatmap(geometry: Any, centre: Sequence[float] = (0.5, 0.5),
                      box: Sequence[float] = (0.0, 1.0, 0.0, 1.0), *, resolution: int = 80) -> "go.Figure":
    """Heatmap of D(x || c) - D(c || x) over the box: 0 everywhere for a symmetric geometry."""
    import plotly.graph_objects as go

    from dmllab.geometry.readouts import asymmetry_map

    geometry = _geometry(geometry)
    xs, ys, values = asymmetry_map(geometry, centre, box, resolution)
    fig = go.Figure([
        go.Heatmap(x=xs, y=ys, z=values, colorscale="RdBu", zmid=0.0, name="asymmetry",
                   colorbar={"title": {"text": "D(x||c) - D(c||x)"}}),
        go.Scatter(x=[float(centre[0])], y=[float(centre[1])], mode="markers", name="centre c",
                   marker={"color": "black", "size": 10, "symbol": "x"})])
    fig.update_layout(title=f"asymmetry of {getattr(geometry, 'name', 'the geometry')} around c",
                      xaxis_title="x1", yaxis_title="x2", template="plotly_white", height=440, width=520)
    return fig


def phi_surface(geometry: Any, box: Sequence[float] = (0.0, 1.0, 0.0, 1.0), *,
                resolution: int = 60) -> "go.Figure":
    """3-D surface of phi minus its best affine fit: the curvature that makes the divergence."""
    import plotly.graph_objects as go

    from dmllab.geometry.readouts import phi_minus_affine

    geometry = _geometry(geometry)
    xs, ys, values = phi_minus_affine(geometry, box, resolution)
    fig = go.Figure(go.Surface(x=xs, y=ys, z=values, colorscale="Viridis", name="phi - affine",
                               colorbar={"title": {"text": "phi - affine"}}))
    fig.update_layout(title=f"generator of {getattr(geometry, 'name', 'the geometry')} minus its affine fit",
                      scene={"xaxis_title": "x1", "yaxis_title": "x2", "zaxis_title": "phi - affine"},
                      template="plotly_white", height=500, width=560)
    return fig


def _geometry(value: Any) -> Any:
    """A Run's geometry, else `dmllab.geometry.resolve` (a Geometry or a fixed geometry's name)."""
    return value.geometry if is_run(value) else resolve_geometry(value)


def _centre_colors(k: int) -> list[str]:
    from plotly.colors import qualitative

    return [qualitative.D3[i % len(qualitative.D3)] for i in range(k)]
