"""Degenerate inputs to a projection, caught before any native code sees them.

Measured with umap-learn 0.5.12 and scikit-learn 1.9 (float64 input, default options):
- t-SNE with init="pca" on points whose spread is zero, or so small that its squares underflow
  (all points equal, or values near 1e-300), divides by a zero standard deviation and the
  Barnes-Hut tree then crashes the process (SIGSEGV: a dead kernel, no Python error).
- t-SNE on values near 1e200 fails with "cannot reshape array"; UMAP casts to float32, so values
  beyond 3.4e38 overflow and spreads below float32 resolution of a large offset vanish.
- UMAP's spectral initialisation needs at least 4 points ("zero-size array" with 2, a scipy
  `eigh` TypeError with 3); AlignedUMAP the same in every frame. A frame whose points coincide
  (at float32 precision, next to the other frames) does not fail but is drawn as a random cloud.
- PCA asks for 2 components, so 1 point fails; PCA of equal points divides 0 by 0 (a warning).

`plan` decides what runs instead: points that all coincide are drawn at one spot (every method
would, or crash trying); too few points for UMAP fall back to PCA; with the default Euclidean
metric t-SNE and UMAP see the points centred and scaled by a power of two (`normalised`), which
both are invariant to, so magnitude and offset can no longer overflow, underflow or cancel.
Every substitution comes with a UserWarning saying what was drawn instead and why.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

COLLAPSED = "collapsed"
UMAP_MIN_POINTS = 4  # umap's spectral init solves for n_components + 1 eigenvectors, needs N > 3
COLLAPSE_RTOL = 1e-12  # a spread this small next to the values is float rounding, not geometry
FLOAT32_RTOL = 4 * float(
    np.finfo(np.float32).eps
)  # below this, UMAP's float32 copy cannot tell rows apart


def collapsed(
    points: np.ndarray, *, rtol: float = COLLAPSE_RTOL, magnitude: float | None = None
) -> bool:
    """True when every row of float [..., n, d] `points` coincides up to `rtol` * `magnitude`.

    The spread (largest range of any coordinate) is compared with `magnitude`, by default the
    largest absolute value: `ptp <= 1e-12 * max|x|`, so all-zero input counts as collapsed too.
    """
    rows = points.reshape(-1, points.shape[-1])
    spread = float(np.ptp(rows, axis=0).max())
    return spread <= rtol * (float(np.abs(rows).max()) if magnitude is None else magnitude)


def plan(points: np.ndarray, method: str, where: str) -> str:
    """The method that may run on float `points`, [n, d] or aligned frames [epochs, n, d]:
    `method`; COLLAPSED when all rows coincide (draw them at one spot); "pca" when UMAP gets
    fewer than 4 points, or (aligned) a frame whose points coincide in float32 next to the rest
    of the sequence, which UMAP would spread into a random cloud. Warns (UserWarning, naming
    `where`) whenever the answer is not `method`.
    """
    n = points.shape[-2]
    frames = points if points.ndim == 3 else points[None]
    if collapsed(points):
        choice, reason = (
            COLLAPSED,
            (
                f"all {n * len(frames)} embeddings coincide (a fully collapsed "
                "embedding); they are drawn as one point at the origin"
            ),
        )
    elif method == "umap" and n < UMAP_MIN_POINTS:
        choice, reason = (
            "pca",
            f"UMAP needs at least {UMAP_MIN_POINTS} points; got {n}, so they are drawn with PCA",
        )
    elif method == "umap" and (flat := _flat_frames(frames)):
        choice, reason = (
            "pca",
            (
                f"the embeddings of snapshot {flat[0] + 1} of {len(frames)} coincide at "
                "UMAP's float32 precision (a collapsed epoch), which UMAP would draw as a "
                "random cloud; drawn with aligned PCA instead"
            ),
        )
    else:
        return method
    warnings.warn(f"{where}: {reason}", UserWarning, stacklevel=3)
    return choice


def _flat_frames(frames: np.ndarray) -> list[int]:
    """The frames of [epochs, n, d] whose spread is below float32 resolution of the whole
    sequence once centred (what UMAP gets to see), in order."""
    centred = _centred(frames)
    scale = float(np.abs(centred).max())
    return [
        i for i, frame in enumerate(centred) if collapsed(frame, rtol=FLOAT32_RTOL, magnitude=scale)
    ]


def normalised(points: np.ndarray, method: str, options: Mapping[str, Any]) -> np.ndarray:
    """`points` as t-SNE / UMAP should see them: with the default Euclidean metric, centred and
    multiplied by exact powers of two so the largest absolute value lies in [0.5, 1); both
    methods are invariant to shift and scale under that metric. PCA, and any other metric, get
    `points` unchanged. Shape and dtype (float64) are kept; `points` must not be collapsed."""
    if method == "pca" or options.get("metric", "euclidean") != "euclidean":
        return points
    return _unit(_centred(points))


def _centred(points: np.ndarray) -> np.ndarray:
    scaled = _unit(points)  # first to [0.5, 1), so the mean cannot overflow
    return scaled - scaled.reshape(-1, scaled.shape[-1]).mean(axis=0)


def _unit(values: np.ndarray) -> np.ndarray:
    return np.ldexp(values, -np.frexp(np.abs(values).max())[1])
