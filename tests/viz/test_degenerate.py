"""Degenerate projections (issue 15, case 3): tiny N, coinciding points, duplicates, extreme
magnitudes and offsets give a fallback with a warning or a clear error, never a dead process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmllab.viz import projection
from dmllab.viz._degenerate import COLLAPSED, UMAP_MIN_POINTS, collapsed, normalised, plan
from dmllab.viz.projection import aligned_projections, project

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DMLLAB_CACHE", str(tmp_path / "cache"))


def _never(*args, **kwargs):
    pytest.fail("degenerate input reached the native projector")


@pytest.mark.parametrize("n", [2, 3])
def test_umap_on_two_or_three_points_falls_back_to_pca(n, monkeypatch):
    # umap-learn fails here: "zero-size array" with 2 points, a scipy eigh TypeError with 3
    monkeypatch.setitem(projection._PROJECTORS, "umap", _never)
    x = np.random.default_rng(n).normal(size=(n, 5))
    with pytest.warns(UserWarning, match=f"UMAP needs at least 4 points; got {n}"):
        points = project(x, "umap", cache=False)
    np.testing.assert_allclose(points, project(x, "pca", cache=False))


@pytest.mark.parametrize("method", ["pca", "umap", "tsne"])
@pytest.mark.parametrize(
    "x",
    [
        np.ones((20, 5)),
        np.zeros((3, 4)),
        np.full((1, 6), 7.0),
        np.full((6, 3), 1e300) * np.linspace(1, 1 + 1e-14, 6)[:, None],
    ],
    ids=["ones", "zeros", "one-point", "rounding-spread"],
)
def test_a_collapsed_embedding_is_drawn_at_one_point_without_the_native_code(
    method, x, monkeypatch
):
    monkeypatch.setitem(projection._PROJECTORS, method, _never)
    with pytest.warns(UserWarning, match="coincide"):
        points = project(x, method)
    np.testing.assert_array_equal(points, np.zeros((len(x), 2)))


def test_tsne_on_degenerate_input_runs_in_a_child_that_must_survive():
    # t-SNE on constant data used to SIGSEGV (a dead kernel); a child process keeps pytest alive
    script = """
import json, warnings
import numpy as np
from dmllab.viz.projection import project
warnings.simplefilter("ignore")
rng = np.random.default_rng(0)
cases = {"constant": np.ones((20, 5)), "tiny": rng.normal(size=(20, 5)) * 1e-300,
         "subnormal": rng.normal(size=(12, 4)) * 1e-320, "huge": rng.normal(size=(12, 4)) * 1e300,
         "offset": 1e8 + rng.normal(size=(12, 4)) * 1e-3, "two": rng.normal(size=(2, 5)),
         "duplicates": np.repeat(rng.normal(size=(2, 5)), 6, axis=0)}
out = {name: project(x, "tsne", cache=False, max_iter=250) for name, x in cases.items()}
print(json.dumps({name: [list(p.shape), bool(np.isfinite(p).all()), float(np.ptp(p))]
                  for name, p in out.items()}))
"""
    child = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": ""},
    )
    assert child.returncode == 0, (
        f"t-SNE child died (return code {child.returncode}): {child.stderr[-2000:]}"
    )
    result = json.loads(child.stdout.splitlines()[-1])
    assert result["constant"] == [[20, 2], True, 0.0]
    for name in ("tiny", "subnormal", "huge", "offset", "two", "duplicates"):
        shape, finite, spread = result[name]
        assert finite and spread > 0 and shape[1] == 2, name


def test_aligned_umap_falls_back_to_aligned_pca_for_tiny_or_collapsed_frames(monkeypatch):
    monkeypatch.setitem(projection._ALIGNED, "umap", _never)
    rng = np.random.default_rng(4)
    collapsing = {1: rng.normal(size=(10, 4)), 2: np.ones((10, 4))}
    with pytest.warns(UserWarning, match="snapshot 2 of 2 coincide"):
        maps = aligned_projections(collapsing, "umap")
    np.testing.assert_allclose(
        maps[2], maps[2][0] + np.zeros((10, 2))
    )  # the collapsed epoch: one spot
    np.testing.assert_allclose(maps[1], aligned_projections(collapsing, "pca")[1])
    shrinking = {1: rng.normal(size=(10, 4)) * 1e6, 2: 1.0 + rng.normal(size=(10, 4)) * 1e-3}
    with pytest.warns(UserWarning, match="snapshot 2 of 2 coincide at UMAP's float32 precision"):
        aligned_projections(shrinking, "umap")  # a random cloud in float32: aligned PCA instead
    with pytest.warns(UserWarning, match="at least 4 points; got 3"):
        aligned_projections({1: rng.normal(size=(3, 4)), 2: rng.normal(size=(3, 4))}, "umap")
    with pytest.warns(UserWarning, match="coincide"):
        flat = aligned_projections({1: np.ones((5, 3)), 2: np.ones((5, 3))}, "pca")
    assert all((frame == 0).all() and frame.shape == (5, 2) for frame in flat.values())


@st.composite
def degenerate_points(draw) -> np.ndarray:
    """Few rows, many duplicates, any magnitude from subnormal to near overflow, any offset."""
    n = draw(st.integers(1, 9))
    d = draw(st.integers(3, 5))
    distinct = draw(st.integers(1, n))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(distinct, d))[rng.integers(0, distinct, size=n)]
    scale = 10.0 ** draw(st.integers(-318, 300))
    offset = draw(st.sampled_from([0.0, 1.0, 1e6]))
    return (rows + offset) * scale


@pytest.mark.filterwarnings("ignore::UserWarning")
@settings(max_examples=30, deadline=None)
@given(degenerate_points())
def test_property_pca_draws_any_finite_input_and_keeps_duplicates_together(x):
    points = project(x, "pca", cache=False)
    assert points.shape == (len(x), 2) and np.isfinite(points).all()
    _, first, inverse = np.unique(x, axis=0, return_index=True, return_inverse=True)
    np.testing.assert_allclose(
        points,
        points[first][inverse.ravel()],  # equal rows, equal points
        rtol=1e-9,
        atol=1e-9 * np.abs(points).max(),
    )


@pytest.mark.filterwarnings("ignore::UserWarning")
@settings(max_examples=60, deadline=None)
@given(degenerate_points(), st.sampled_from(["umap", "tsne"]))
def test_property_native_projectors_only_see_points_with_unit_spread(x, method):
    chosen = plan(x, method, "test")
    if collapsed(x):
        assert chosen == COLLAPSED
        return
    assert chosen == (method if method == "tsne" or len(x) >= UMAP_MIN_POINTS else "pca")
    seen = normalised(x, chosen, {})
    if chosen == "pca":
        assert seen is x
        return
    assert 0.5 <= np.abs(seen).max() < 1.0 and np.isfinite(seen).all()
    single = seen.astype(np.float32)  # UMAP computes in float32
    assert float(np.square(np.ptp(single, axis=0)).sum()) > 0.1
