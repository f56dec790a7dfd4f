"""pytorch-metric-learning (PML) for the cross-check tests, in either of its module layouts.

PML 2.x keeps its evaluation helpers in `pytorch_metric_learning.utils.accuracy_calculator` and
`pytorch_metric_learning.utils.inference`; PML 3 moves them to `pytorch_metric_learning.evaluation`.
The cross-check tests import PML from here, so they run under both. Without PML, what imports this
module is skipped (the `test` extra installs PML, and `tests/test_packaging.py` fails where that
extra is installed without it); with a PML that has neither layout, importing this module fails
and names what it did not find: no cross-check passes by being skipped.
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest

pytest.importorskip("pytorch_metric_learning")

from pytorch_metric_learning import (
    __version__,
    distances,
    losses,
    miners,
    reducers,
)

__all__ = ["AccuracyCalculator", "CustomKNN", "distances", "losses", "miners", "reducers"]


def _first(attribute: str, *modules: str) -> Any:
    """`attribute` of the first of `modules` that exists and holds it; ImportError otherwise."""
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as error:  # this layout's module is absent: try the next one
            if error.name is None or not (name == error.name or name.startswith(error.name + ".")):
                raise  # a dependency of the module is missing, not the module
            continue
        if hasattr(module, attribute):
            return getattr(module, attribute)
    raise ImportError(
        f"pytorch-metric-learning {__version__} has no {attribute} in any of {', '.join(modules)}; "
        "add where it moved to tests/pml_compat.py"
    )


AccuracyCalculator = _first(
    "AccuracyCalculator",
    "pytorch_metric_learning.evaluation",
    "pytorch_metric_learning.evaluation.accuracy_calculator",
    "pytorch_metric_learning.utils.accuracy_calculator",
)
CustomKNN = _first(
    "CustomKNN",
    "pytorch_metric_learning.evaluation",
    "pytorch_metric_learning.evaluation.inference",
    "pytorch_metric_learning.utils.inference",
)
