"""matplotlib figures that show themselves as pictures in a notebook, with or without pyplot.

A `matplotlib.figure.Figure` made without pyplot has no display hook in a fresh kernel: IPython
registers its PNG formatter only when pyplot loads the inline backend, so the cell prints
`<Figure size 840x930 with 36 Axes>`. `ShownFigure` carries its own `_repr_png_`, so every
frontend (JupyterLab, papermill's saved outputs, nbconvert) gets an image/png output.
"""

from __future__ import annotations

import io

from matplotlib.figure import Figure

DPI = 100


class ShownFigure(Figure):
    """A matplotlib Figure with a PNG rich representation (`_repr_png_`), drawn at `DPI`."""

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
        return buffer.getvalue()
