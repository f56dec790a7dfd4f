"""2-D projections of embeddings (PCA, UMAP, t-SNE), seeded and cached on disk by content.

    points = project(embeddings, method="pca")          # [n, 2] numpy array
    frames = aligned_projections(run.snapshots)         # {epoch: [n, 2]} on shared axes

The cache key is a SHA-256 of the embeddings' bytes, shape and dtype, the method, the seed and
the options, so a second call with the same embeddings (in this kernel or another) loads a
`.npy` file instead of refitting. The cache lives in `$DMLLAB_CACHE/projections`, or
`~/.cache/dmllab/projections` when DMLLAB_CACHE is unset; delete the folder to clear it.

Cost (this project's 2-core CPU machines, one thread; `benchmarks/bench_projection.py`): PCA takes
milliseconds. UMAP is imported on first use, with numba's on-disk cache switched on for
umap-learn's compiled code (`dmllab.viz._umap`; `make setup` fills it with `warm_up`). The first
UMAP map of lesson 00's 896 test digits in a fresh process took 2.8 s with that cache warm (about
2 s of it `import umap`), against 11.8 s when only umap-learn's own caching was used and 24 s with
an empty numba cache; once loaded a fit took 1.3 s (at 1,797 points about 3.5 s, most of it
scikit-learn's pairwise distances with umap-learn's metric called from Python). Above 4096 points
UMAP switches to NN-descent, whose first call still compiles for about a minute (pynndescent's
NN-descent cannot be cached). t-SNE has no JIT but grows faster than UMAP with n (scikit-learn's
Barnes-Hut t-SNE).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from dmllab.cache import cache_dir
from dmllab.viz._degenerate import COLLAPSED, normalised, plan
from dmllab.viz._inputs import as_points
from dmllab.viz._umap import umap_module

METHODS = ("pca", "umap", "tsne")
CACHE_FOLDER = "projections"  # inside dmllab.cache.cache_dir()
ALIGNED_METHODS = ("pca", "umap")


def project(
    embeddings: Any, method: str = "umap", seed: int = 0, *, cache: bool = True, **options: Any
) -> np.ndarray:
    """A [n, 2] projection of [n, d] embeddings, reproducible for a fixed `seed`.

    method:  "pca" (sklearn PCA), "umap" (umap-learn, imported lazily; see the module docstring
             for its first-call cost) or "tsne" (sklearn TSNE).
    options: passed to the projector (e.g. n_neighbors=30, min_dist=0.1 for UMAP; perplexity
             for t-SNE). Defaults adapt to tiny inputs (n_neighbors, perplexity < n).
    cache:   read/write the on-disk cache (`dmllab.cache.cache_dir("projections")`).

    Inputs that are already 2-D are returned unchanged (as float64), so a 2-D toy's embeddings
    are drawn in their own coordinates. Degenerate inputs never reach the native code (see
    `dmllab.viz._degenerate`): points that all coincide (a fully collapsed embedding, or a single
    point) come back as zeros [n, 2]; UMAP on fewer than 4 points falls back to PCA; both with a
    UserWarning. With the default Euclidean metric t-SNE and UMAP see the points centred and
    scaled by a power of two (they are invariant to both). NaN or inf raise a ValueError.

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(20, 5))
    >>> project(x, "pca", cache=False).shape
    (20, 2)
    """
    _check_method(method, METHODS, "project")
    points = as_points(embeddings, "project", min_dim=2)
    if points.shape[1] == 2:
        return points
    method = plan(points, method, "project")
    if method == COLLAPSED:
        return np.zeros((len(points), 2))
    return _cached(
        _key(points, method, seed, options),
        cache,
        lambda: _PROJECTORS[method](normalised(points, method, options), seed, **options),
    )


def aligned_projections(
    snapshots: Mapping[int, Any],
    method: str = "pca",
    seed: int = 0,
    *,
    cache: bool = True,
    **options: Any,
) -> dict[int, np.ndarray]:
    """2-D maps of the same probe points at several epochs, on axes shared across epochs.

    snapshots: {epoch: [n, d]} embeddings of the same n rows (e.g. `run.snapshots`).
    method="pca":  one PCA fitted on all epochs stacked, applied to every epoch, so the axes are
                   fixed and a point that moves in the picture moved in embedding space (along
                   the directions that vary most over the whole training).
    method="umap": umap.AlignedUMAP with each row linked to itself in the next epoch: each epoch
                   gets its own nonlinear map, pulled towards the previous one. Slower (one UMAP
                   per epoch plus the JIT cost in the module docstring).
    2-D snapshots are returned unchanged. Results are cached like `project`; degenerate
    snapshots are handled like `project`'s, and UMAP falls back to aligned PCA when one epoch is
    fully collapsed (it would draw that epoch as a random cloud).

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> snapshots = {1: rng.normal(size=(10, 4)), 2: rng.normal(size=(10, 4))}
    >>> maps = aligned_projections(snapshots, cache=False)
    >>> sorted(maps), maps[2].shape
    ([1, 2], (10, 2))
    """
    _check_method(method, ALIGNED_METHODS, "aligned_projections")
    if not snapshots:
        raise ValueError("aligned_projections: no snapshots (train with Config.snapshot_every > 0)")
    epochs = sorted(snapshots)
    arrays = [
        as_points(snapshots[e], f"aligned_projections (epoch {e})", min_dim=2) for e in epochs
    ]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise ValueError(
            f"aligned_projections: every snapshot must hold the same [n, d] probe set; "
            f"got shapes {sorted(shapes)}"
        )
    if arrays[0].shape[1] == 2:
        return dict(zip(epochs, arrays, strict=True))
    stacked = np.stack(arrays)
    method = plan(stacked, method, "aligned_projections")
    if method == COLLAPSED:
        return {epoch: np.zeros((stacked.shape[1], 2)) for epoch in epochs}
    key = _key(stacked, f"aligned-{method}", seed, options)
    maps = _cached(
        key, cache, lambda: _ALIGNED[method](normalised(stacked, method, options), seed, **options)
    )
    return {epoch: maps[i] for i, epoch in enumerate(epochs)}


def warm_up() -> float:
    """Fit a small UMAP once so that numba writes umap-learn's compiled code to its on-disk cache
    (`dmllab.viz._umap`); `make setup` runs this, so a later process's first UMAP map loads that
    code instead of compiling it. Returns the seconds it took (about 10-20 s with a cold cache,
    about 3 s once warm)."""
    start = time.perf_counter()
    project(np.random.default_rng(0).normal(size=(64, 8)), "umap", cache=False)
    return time.perf_counter() - start


# ---------------------------------------------------------------------------- projectors
def _pca(points: np.ndarray, seed: int, **options: Any) -> np.ndarray:
    from sklearn.decomposition import PCA

    return PCA(n_components=2, random_state=seed, **options).fit_transform(points)


def _umap(points: np.ndarray, seed: int, **options: Any) -> np.ndarray:
    umap = umap_module()
    options.setdefault("n_neighbors", max(2, min(15, len(points) - 1)))
    options.setdefault(
        "n_jobs", 1
    )  # a seeded UMAP runs single-threaded anyway; say so, do not warn
    return umap.UMAP(n_components=2, random_state=seed, **options).fit_transform(points)


def _tsne(points: np.ndarray, seed: int, **options: Any) -> np.ndarray:
    from sklearn.manifold import TSNE

    options.setdefault("perplexity", max(1.0, min(30.0, (len(points) - 1) / 3)))
    options.setdefault("init", "pca")
    return TSNE(n_components=2, random_state=seed, **options).fit_transform(points)


def _aligned_pca(stacked: np.ndarray, seed: int, **options: Any) -> np.ndarray:
    from sklearn.decomposition import PCA

    epochs, n, d = stacked.shape
    pca = PCA(n_components=2, random_state=seed, **options).fit(stacked.reshape(epochs * n, d))
    return np.stack([pca.transform(frame) for frame in stacked])


def _aligned_umap(stacked: np.ndarray, seed: int, **options: Any) -> np.ndarray:
    umap = umap_module()
    epochs, n, _ = stacked.shape
    options.setdefault("n_neighbors", max(2, min(15, n - 1)))
    identity = {i: i for i in range(n)}
    mapper = umap.AlignedUMAP(n_components=2, random_state=seed, **options)
    mapper.fit(list(stacked), relations=[identity] * (epochs - 1))
    return np.stack(mapper.embeddings_)


_PROJECTORS: dict[str, Callable[..., np.ndarray]] = {"pca": _pca, "umap": _umap, "tsne": _tsne}
_ALIGNED: dict[str, Callable[..., np.ndarray]] = {"pca": _aligned_pca, "umap": _aligned_umap}


# ---------------------------------------------------------------------------- cache
def _key(points: np.ndarray, method: str, seed: int, options: Mapping[str, Any]) -> str:
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(points).tobytes())
    header = {
        "shape": points.shape,
        "dtype": str(points.dtype),
        "method": method,
        "seed": seed,
        "options": {k: repr(v) for k, v in sorted(options.items())},
    }
    digest.update(json.dumps(header, sort_keys=True).encode())
    return digest.hexdigest()[:32]


def _cached(key: str, use_cache: bool, compute: Callable[[], np.ndarray]) -> np.ndarray:
    path = cache_dir(CACHE_FOLDER) / f"{key}.npy"
    if use_cache and path.exists():
        try:
            return np.load(path)
        except (OSError, ValueError, EOFError) as error:  # damaged on disk: recompute and overwrite
            warnings.warn(
                f"projection cache {path} is unreadable ({error}); recomputing it",
                UserWarning,
                stacklevel=3,
            )
    result = np.asarray(compute(), dtype=np.float64)
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(partial, result)
        os.replace(partial, path)
    return result


def _check_method(method: str, allowed: tuple[str, ...], where: str) -> None:
    if method not in allowed:
        raise ValueError(
            f"{where}: method={method!r} is not known; choose one of {', '.join(allowed)}"
        )
