"""dmllab: a deep-metric-learning lab.

    import dmllab as dl
    config = dl.Config(dataset="digits", loss="triplet", positives="nearest", epochs=20)
    run = dl.fit(config)            # or dl.fit(config, data) with a dl.data.Dataset
    metrics = dl.evaluate(run)      # a flat dict of floats, measured on the test split

Submodules and these names are imported on first use, so `import dmllab` stays fast (torch
comes with the first Config; UMAP, plotly and Jupyter only with the modules that draw).
"""

from __future__ import annotations

from dmllab import lazy

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
    "lessons",
}
_FUNCTIONS = {
    "Config": "config",
    "fit": "train",
    "Run": "runs",
    "evaluate": "metrics",
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


__getattr__, __dir__ = lazy.attach(__name__, _FUNCTIONS, _SUBMODULES)
