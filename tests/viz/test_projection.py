"""Projections: shapes, determinism, pass-through of 2-D input, the on-disk cache, errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

from dmllab.cache import cache_dir
from dmllab.viz import projection
from dmllab.viz.projection import CACHE_FOLDER, aligned_projections, project


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DMLLAB_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def embeddings():
    return np.random.default_rng(0).normal(size=(40, 6))


def test_pca_matches_sklearn_and_is_cached_on_disk(embeddings):
    points = project(embeddings, "pca")
    np.testing.assert_allclose(points, PCA(2, random_state=0).fit_transform(embeddings), atol=1e-10)
    assert len(list(cache_dir(CACHE_FOLDER).glob("*.npy"))) == 1
    assert cache_dir(CACHE_FOLDER).parent.name == "cache"


def test_second_call_hits_the_cache_and_other_inputs_miss(embeddings, monkeypatch):
    calls = []

    def counting_pca(points, seed, **options):
        calls.append((len(points), seed, options))
        return points[:, :2] * 2

    monkeypatch.setitem(projection._PROJECTORS, "pca", counting_pca)
    first = project(embeddings, "pca")
    second = project(torch.as_tensor(embeddings), "pca")  # same bytes through a tensor
    assert len(calls) == 1
    np.testing.assert_array_equal(first, second)
    project(embeddings, "pca", seed=1)
    project(embeddings, "pca", whiten=True)
    changed = embeddings.copy()
    changed[0, 0] += 1e-9
    project(changed, "pca")
    project(embeddings, "pca", cache=False)
    assert len(calls) == 5
    assert calls[2][2] == {"whiten": True}


def test_two_dimensional_input_passes_through_unprojected():
    points = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]])
    np.testing.assert_array_equal(project(points, "umap"), points)
    assert not cache_dir(CACHE_FOLDER).exists()


def test_tsne_on_tiny_input_adapts_perplexity():
    x = np.random.default_rng(1).normal(size=(12, 4))
    points = project(x, "tsne", cache=False, max_iter=250)
    assert points.shape == (12, 2) and np.isfinite(points).all()
    np.testing.assert_allclose(points, project(x, "tsne", cache=False, max_iter=250))


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((0, 3)), "no points"),
        (np.zeros(5), r"shape \[n, d\]"),
        (np.zeros((5, 1)), "1-D embeddings"),
        (np.array([[0.0, np.nan, 1.0]]), "NaN"),
    ],
)
def test_bad_embeddings_are_refused_with_a_clear_error(bad, message):
    with pytest.raises(ValueError, match=message):
        project(bad, "pca")


def test_unknown_method_lists_the_known_ones(embeddings):
    with pytest.raises(ValueError, match="pca, umap, tsne"):
        project(embeddings, "isomap")


def test_aligned_pca_shares_one_projection_over_all_epochs():
    rng = np.random.default_rng(2)
    snapshots = {
        3: rng.normal(size=(15, 5)),
        1: rng.normal(size=(15, 5)),
        2: rng.normal(size=(15, 5)),
    }
    maps = aligned_projections(snapshots, "pca")
    assert list(maps) == [1, 2, 3]
    pca = PCA(2, random_state=0).fit(np.concatenate([snapshots[e] for e in (1, 2, 3)]))
    for epoch, points in maps.items():
        np.testing.assert_allclose(points, pca.transform(snapshots[epoch]), atol=1e-10)
    again = aligned_projections({e: torch.as_tensor(v) for e, v in snapshots.items()}, "pca")
    np.testing.assert_array_equal(again[2], maps[2])


def test_aligned_projections_validates_snapshots():
    with pytest.raises(ValueError, match="no snapshots"):
        aligned_projections({})
    with pytest.raises(ValueError, match="same"):
        aligned_projections({1: np.zeros((4, 3)), 2: np.zeros((5, 3))})
    with pytest.raises(ValueError, match="pca, umap"):
        aligned_projections({1: np.zeros((4, 3))}, "tsne")
    flat = {1: np.ones((4, 2)), 2: np.zeros((4, 2))}
    np.testing.assert_array_equal(aligned_projections(flat)[1], flat[1])


@pytest.mark.slow
def test_umap_is_seeded_and_cached(monkeypatch):
    x = np.random.default_rng(3).normal(size=(30, 4)).astype(np.float32)
    points = project(x, "umap", seed=0)
    assert points.shape == (30, 2) and np.isfinite(points).all()
    monkeypatch.setitem(projection._PROJECTORS, "umap", lambda *a, **k: pytest.fail("cache missed"))
    np.testing.assert_array_equal(project(x, "umap", seed=0), points)


# ------------------------------------------------------------------ numba's cache for UMAP
JIT_PACKAGE = """
import numba

@numba.njit
def plain(x):
    return x + 1

def _epoch(x):
    return x * 2

serial = numba.njit(_epoch)
parallel = numba.njit(_epoch, parallel=True)   # the same Python function: one cache entry for both

@numba.njit(cache=True)
def cached(x):
    return x

def _make():
    y = 3
    def add(x):
        return x + y
    return add

closure = numba.njit(_make())
"""


def test_cache_compiled_caches_each_python_function_once_and_only_serially(tmp_path, monkeypatch):
    from numba.core.caching import FunctionCache, NullCache

    from dmllab.viz._umap import cache_compiled

    (tmp_path / "jitpkg").mkdir()
    (tmp_path / "jitpkg" / "__init__.py").write_text(JIT_PACKAGE)
    monkeypatch.syspath_prepend(str(tmp_path))
    import jitpkg

    try:
        assert cache_compiled("jitpkg") == 2
        assert all(isinstance(f._cache, FunctionCache) for f in (jitpkg.plain, jitpkg.serial))
        assert all(isinstance(f._cache, NullCache) for f in (jitpkg.parallel, jitpkg.closure))
        assert (
            jitpkg.plain(1) == 2 and jitpkg.serial(2) == 4
        )  # compiled and written to numba's cache
        folder = Path(
            jitpkg.plain._cache.cache_path
        )  # beside the source, or under $NUMBA_CACHE_DIR
        index = {path.name.split("-")[0] for path in folder.glob("__init__.*.nbi")}
        assert index == {"__init__.plain", "__init__._epoch"}
    finally:
        sys.modules.pop("jitpkg", None)


FIRST_FIT = (
    "import dmllab.viz.projection as p, umap.umap_ as u, umap.utils as t\n"
    "p.warm_up()\n"
    "stats = [f.stats for f in (u.smooth_knn_dist, t.fast_knn_indices)]\n"
    "print(sum(len(s.cache_misses) for s in stats), sum(len(s.cache_hits) for s in stats))"
)


@pytest.mark.slow
def test_umap_compiled_code_persists_across_processes():
    # The second process loads what the first compiled (or found): no compilation of umap-learn's
    # neighbour graph functions, wherever numba keeps its cache on this machine.
    for _ in range(2):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
        out = subprocess.run(
            [sys.executable, "-c", FIRST_FIT],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
            env=env,
        )
    misses, hits = map(int, out.stdout.split())
    assert (misses, hits) == (0, 2), out.stdout + out.stderr
