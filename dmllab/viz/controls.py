"""ipywidgets controls for the lab's panels (imports ipywidgets; `dmllab.viz.widgets` loads it
lazily)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import ipywidgets as w


class WeightSlider(w.SelectionSlider):
    """A slider over fixed weights, e.g. 0 then 1-2-5 steps (a log scale): `value` is the chosen
    float, `max` the largest weight offered. `value` joins the weights if it is not one of them."""

    def __init__(self, weights: Iterable[float], value: float, **kwargs: Any) -> None:
        choices = sorted({float(v) for v in weights} | {float(value)})
        super().__init__(
            options=[(f"{v:g}" if v else "0 (off)", v) for v in choices],
            value=float(value),
            continuous_update=False,
            **kwargs,
        )

    @property
    def max(self) -> float:
        return max(value for _, value in self.options)
