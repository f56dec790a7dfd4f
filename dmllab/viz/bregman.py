"""Pictures of a 2-D (learned) divergence: level sets, asymmetry and the generator's curvature.

    fig = level_sets(run.geometry, centres=[(0.3, 0.3), (0.7, 0.6)], box=(0, 1, 0, 1),
                     direction="both")
    fig = asymmetry_heatmap(run.geometry, centre=(0.5, 0.5))   # relative: (D - D') / (D + D')
    fig = phi_surface(run.geometry)

The numbers come from `dmllab.geometry.readouts`; this module only draws them. For a Euclidean
geometry level sets are circles around each centre; a Bregman divergence bends them, and its
level sets differ between D(x || c) ("first": the moving point in the first slot) and
D(c || x) ("second").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from dmllab.geometry import resolve as resolve_geometry
from dmllab.viz._inputs import as_points, is_run

if TYPE_CHECKING:  # plotly is imported where figures are drawn
    import plotly.graph_objects as go

DIRECTIONS = ("first", "second", "both")
_TITLES = {"first": "D(x || c)", "second": "D(c || x)"}


def level_sets(
    geometry: Any,
    centres: Any,
    box: Sequence[float] = (0.0, 1.0, 0.0, 1.0),
    *,
    direction: str = "first",
    resolution: int = 80,
    levels: int = 8,
) -> go.Figure:
    """Contour lines of x -> D(x || c) (or D(c || x)) around each centre c, one colour per centre,
    each line labelled with its level; both axes on one scale, so a Euclidean ball is a circle.

    geometry:  a 2-D Geometry, a registered geometry name, or a Run (whose geometry is used).
    centres:   [k, 2] points (a single (x, y) pair is one centre).
    box:       (xmin, xmax, ymin, ymax) of the grid.
    direction: "first", "second" or "both" (two panels side by side, same ranges).
    levels:    contour lines per centre, evenly spaced from 0 to the largest value in the box.
    A centre whose divergence is constant over the box has no contour line, and one whose lines
    coincide with an earlier centre's (max-affine: both in one affine piece) is drawn dashed over
    them; the legend entry says so ("flat", "the same level sets as centre j") instead of listing a
    centre the picture does not show.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from dmllab.geometry.readouts import level_set_grid

    geometry = _geometry(geometry)
    if direction not in DIRECTIONS:
        raise ValueError(
            f"level_sets: direction={direction!r}; choose one of {', '.join(DIRECTIONS)}"
        )
    centres = as_points(np.atleast_2d(np.asarray(centres, dtype=float)), "level_sets (centres)")
    if centres.shape[1] != 2:
        raise ValueError(
            f"level_sets: centres must be 2-D points [k, 2]; got shape {centres.shape}"
        )
    if levels < 1:
        raise ValueError(f"level_sets: levels must be >= 1; got {levels}")
    panels = ["first", "second"] if direction == "both" else [direction]
    fig = make_subplots(
        rows=1,
        cols=len(panels),
        subplot_titles=[_TITLES[p] for p in panels],
        horizontal_spacing=0.08,
    )
    colors = _centre_colors(len(centres))
    grids = {
        (panel, i): level_set_grid(geometry, centre, box, resolution, panel)
        for panel in panels
        for i, centre in enumerate(centres)
    }
    flat = {i for i in range(len(centres)) if all(np.ptp(grids[p, i][2]) <= 1e-12 for p in panels)}
    # A centre whose lines coincide with an earlier centre's (e.g. max-affine: both in one piece)
    # is drawn dashed and named for it, so the legend never lists a centre the picture hides.
    same_as = {}
    for i in range(len(centres)):
        for j in range(i):
            if j not in same_as and all(
                np.allclose(grids[p, i][2], grids[p, j][2], rtol=1e-6, atol=1e-12) for p in panels
            ):
                same_as[i] = j
                break
    for col, panel in enumerate(panels, start=1):
        for i, centre in enumerate(centres):
            xs, ys, values = grids[panel, i]
            top = float(np.nanmax(values))
            name = f"centre {i} ({centre[0]:.3g}, {centre[1]:.3g})"
            if i in flat:
                name += ": flat, no level set"
            elif i in same_as:
                name += f": the same level sets as centre {same_as[i]} (dashed)"
            fig.add_trace(
                go.Contour(
                    x=xs,
                    y=ys,
                    z=values,
                    name=name,
                    legendgroup=f"centre {i}",
                    showlegend=False,
                    contours={
                        "coloring": "lines",
                        "start": top / (levels + 1),
                        "end": top,
                        "size": max(top / (levels + 1), 1e-12),
                        "showlabels": True,
                        "labelfont": {"size": 9, "color": colors[i]},
                    },
                    colorscale=[[0, colors[i]], [1, colors[i]]],
                    showscale=False,
                    line={"width": 1.5, "dash": "dash" if i in same_as else "solid"},
                ),
                row=1,
                col=col,
            )
            fig.add_trace(
                go.Scatter(
                    x=centre[:1],
                    y=centre[1:],
                    mode="markers",
                    name=name,
                    legendgroup=f"centre {i}",
                    showlegend=col == 1,
                    marker={"color": colors[i], "size": 10, "symbol": "x"},
                ),
                row=1,
                col=col,
            )
    _equal_scales(fig, box, len(panels))
    fig.update_layout(  # the legend below the panels: long entries cannot squeeze them
        title=(
            f"level sets of {getattr(geometry, 'name', 'the geometry')} (lines labelled by level)"
        ),
        template="plotly_white",
        height=460 + 22 * len(centres),
        width=420 * len(panels) + 120,
        legend={"orientation": "h", "yanchor": "top", "y": -0.12, "xanchor": "left", "x": 0.0},
        margin={"b": 40 + 22 * len(centres)},
    )
    return fig


def asymmetry_heatmap(
    geometry: Any,
    centre: Sequence[float] = (0.5, 0.5),
    box: Sequence[float] = (0.0, 1.0, 0.0, 1.0),
    *,
    resolution: int = 80,
    quantile: float = 0.98,
    relative: bool = True,
) -> go.Figure:
    """Heatmap of the asymmetry of D around c over the box: 0 everywhere for a symmetric geometry.

    relative=True (the default) draws (D(x || c) - D(c || x)) / (D(x || c) + D(c || x)), in
    [-1, 1]: the share of the divergence that depends on the order of its arguments, as the
    `asymmetry` metric measures it over a data set. Near c the plain difference shrinks like
    |x - c|^3 while D grows like |x - c|^2 at the box's edge, so a map of the difference is white
    around c; the relative form shrinks only like |x - c| and shows the sign change there.
    relative=False draws the difference D(x || c) - D(c || x) itself.

    The diverging colour scale is centred at 0 and clipped to +-the `quantile` of |value| (values
    beyond it take the end colours), so a few extreme cells at the box's edge cannot wash out the
    sign change near c; hover shows the exact value. Both axes are on one scale.
    """
    import plotly.graph_objects as go

    from dmllab.geometry.readouts import level_set_grid

    if not 0.5 <= quantile <= 1.0:
        raise ValueError(
            f"asymmetry_heatmap: quantile={quantile} must be in [0.5, 1] (1 = no clipping)"
        )
    geometry = _geometry(geometry)
    xs, ys, first = level_set_grid(geometry, centre, box, resolution, "first")
    second = level_set_grid(geometry, centre, box, resolution, "second")[2]
    values = first - second
    label = "D(x||c) - D(c||x)"
    if relative:
        total = first + second
        values = np.divide(values, total, out=np.zeros_like(values), where=total > 0)
        label = "(D(x||c) - D(c||x))<br>/ (D(x||c) + D(c||x))"
    limit = float(np.nanquantile(np.abs(values), quantile)) or 1e-12
    fig = go.Figure(
        [
            go.Heatmap(
                x=xs,
                y=ys,
                z=values,
                colorscale="RdBu",
                zmin=-limit,
                zmax=limit,
                zmid=0.0,
                name="asymmetry",
                colorbar={"title": {"text": label}},
            ),
            go.Scatter(
                x=[float(centre[0])],
                y=[float(centre[1])],
                mode="markers",
                name="centre c",
                marker={"color": "black", "size": 10, "symbol": "x"},
            ),
        ]
    )
    clipped = (
        f"<br><sup>colours clipped at the {100 * quantile:g}th percentile of |value|</sup>"
        if quantile < 1
        else ""
    )
    fig.update_layout(
        title=(
            f"{'relative ' if relative else ''}asymmetry of "
            f"{getattr(geometry, 'name', 'the geometry')} around c{clipped}"
        ),
        template="plotly_white",
        height=460,
        width=560,
    )
    _equal_scales(fig, box, 1)
    return fig


def phi_surface(
    geometry: Any, box: Sequence[float] = (0.0, 1.0, 0.0, 1.0), *, resolution: int = 60
) -> go.Figure:
    """3-D surface of phi minus its best affine fit: the curvature that makes the divergence."""
    import plotly.graph_objects as go

    from dmllab.geometry.readouts import phi_minus_affine

    geometry = _geometry(geometry)
    xs, ys, values = phi_minus_affine(geometry, box, resolution)
    fig = go.Figure(
        go.Surface(
            x=xs,
            y=ys,
            z=values,
            colorscale="Viridis",
            name="phi - affine",
            colorbar={"title": {"text": "phi - affine"}},
        )
    )
    fig.update_layout(
        title=f"generator of {getattr(geometry, 'name', 'the geometry')} minus its affine fit",
        scene={
            "xaxis_title": "x1",
            "yaxis_title": "x2",
            "zaxis_title": "phi - affine",
            "aspectmode": "cube",
            "camera": {"eye": {"x": 1.6, "y": -1.6, "z": 1.1}},  # the whole box in view
        },
        template="plotly_white",
        height=500,
        width=620,
        margin={"l": 0, "r": 0, "t": 60, "b": 10},
    )
    return fig


def _geometry(value: Any) -> Any:
    """A Run's geometry, else `dmllab.geometry.resolve` (a Geometry or a fixed geometry's name)."""
    return value.geometry if is_run(value) else resolve_geometry(value)


def _equal_scales(fig: go.Figure, box: Sequence[float], panels: int) -> None:
    """Axes x1 / x2 over the box with one unit the same length on both (circles stay round)."""
    for col in range(1, panels + 1):
        suffix = "" if col == 1 else str(col)
        fig.update_layout(
            {
                f"xaxis{suffix}": {
                    "range": [box[0], box[1]],
                    "title": {"text": "x1"},
                    "constrain": "domain",
                },
                f"yaxis{suffix}": {
                    "range": [box[2], box[3]],
                    "title": {"text": "x2" if col == 1 else None},
                    "constrain": "domain",
                    "scaleanchor": f"x{suffix}",
                    "scaleratio": 1,
                },
            }
        )


def _centre_colors(k: int) -> list[str]:
    from plotly.colors import qualitative

    return [qualitative.D3[i % len(qualitative.D3)] for i in range(k)]
