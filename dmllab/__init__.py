"""dmllab: a deep-metric-learning lab.

    import dmllab as dl
    config = dl.Config(dataset="digits", loss="triplet", positives="nearest", epochs=20)
    run = dl.fit(config)            # or dl.fit(config, data) with a dl.data.Dataset
    metrics = dl.evaluate(run)      # a flat dict of floats, measured on the test split

Submodules and these names are imported on first use, so `import dmllab` stays fast (torch
comes with the first Config; UMAP, plotly and Jupyter only with the modules that draw).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = {
    "config",
    "data",
    "geometry",
    "losses",
    "metrics",
    "models",
    "train",
    "runs",
    "viz",
    "distributed",
    "report",
    "experiments",
    "build",
    "claims",
    "findings",
    "guards",
}
_FUNCTIONS = {
    "Config": "dmllab.config",
    "fit": "dmllab.train",
    "Run": "dmllab.runs",
    "evaluate": "dmllab.metrics",
}

# The public face; the other submodules are the house's own floors (reachable, not advertised).
__all__ = [
    "Config",
    "fit",
    "evaluate",
    "Run",
    "data",
    "experiments",
    "geometry",
    "losses",
    "metrics",
    "models",
    "report",
    "runs",
    "viz",
]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        module = importlib.import_module(f"dmllab.{name}")
        globals()[name] = module
        return module
    if name in _FUNCTIONS:
        value = getattr(importlib.import_module(_FUNCTIONS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'dmllab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(__all__) | _SUBMODULES | {"__version__"})
