"""Geometries: what "distance" means. See `base.Geometry` for the contract.

`GEOMETRIES` is the one registry of geometry names (name -> Geometry class; `Config`, the CLI and
the README read their names from it). `build(name, dim, **options)` makes any of them;
`resolve(name_or_geometry)` is how every function that takes a geometry reads its argument:

>>> build("euclidean", dim=8)
Euclidean(name='euclidean', symmetric=True, eps=1e-12)
>>> build("manhattan", dim=8)  # doctest: +NORMALIZE_WHITESPACE
Traceback (most recent call last):
...
ValueError: unknown geometry 'manhattan'; choose one of:
bregman, bregman-maxaffine, cosine, euclidean, sqeuclidean
>>> resolve("cosine")
Cosine(name='cosine', symmetric=True, eps=1e-12)
>>> resolve(3)  # doctest: +NORMALIZE_WHITESPACE
Traceback (most recent call last):
...
TypeError: geometry must be a registered name
(bregman, bregman-maxaffine, cosine, euclidean, sqeuclidean) or a dmllab Geometry object; got int

To add a geometry: subclass `Geometry` (set `name`, `symmetric`, implement `_pairwise`; set
`learned = True` and override `create` if it has parameters of its own) and register its class
here under its name.
"""

from __future__ import annotations

from typing import Any

from dmllab.geometry.base import Geometry
from dmllab.geometry.bregman import Bregman
from dmllab.geometry.cosine import Cosine
from dmllab.geometry.euclidean import Euclidean, SquaredEuclidean
from dmllab.values import registered

__all__ = [
    "Geometry",
    "SquaredEuclidean",
    "Euclidean",
    "Cosine",
    "Bregman",
    "GEOMETRIES",
    "build",
    "resolve",
]

#: name -> Geometry class; `cls.create(name, dim, **options)` makes one, `cls.learned` marks the
#: geometries trained with the model (both Bregman names: ICNN and max-affine generators).
GEOMETRIES: dict[str, type[Geometry]] = {
    "sqeuclidean": SquaredEuclidean,
    "euclidean": Euclidean,
    "cosine": Cosine,
    "bregman": Bregman,
    "bregman-maxaffine": Bregman,
}


def build(name: str, dim: int, **options: Any) -> Geometry:
    """The geometry called `name` for `dim`-dimensional embeddings.

    Fixed geometries ignore `dim`; the learned Bregman geometries need it for their generator.
    Unknown names or options raise a ValueError that lists the allowed ones.
    """
    builder = registered(
        "geometry", name, GEOMETRIES, "dmllab.build.build_components(config, input_shape)"
    )
    return builder.create(name, dim, **options)


def resolve(geometry: Geometry | str | None, *, default: str = "euclidean") -> Geometry:
    """The geometry a function was given: a Geometry object as is, the name of a fixed geometry
    (`sqeuclidean`, `euclidean`, `cosine`) built, None the `default` name.

    A learned geometry (`bregman`, `bregman-maxaffine`) is refused by name: outside training it
    would be an untrained, random divergence. Raises TypeError for that and anything else, and
    ValueError for unknown names, each listing the registered names.
    """
    if isinstance(geometry, Geometry):
        return geometry
    if geometry is None:
        geometry = default
    if not isinstance(geometry, str):
        raise TypeError(
            f"geometry must be a registered name ({', '.join(sorted(GEOMETRIES))}) "
            f"or a dmllab Geometry object; got {type(geometry).__name__}"
        )
    if geometry in GEOMETRIES and GEOMETRIES[geometry].learned:
        fixed = sorted(name for name, cls in GEOMETRIES.items() if not cls.learned)
        raise TypeError(
            f"geometry {geometry!r} is learned, so its name alone is an untrained divergence: pass "
            f'the trained Geometry object (e.g. run.geometry), or build("{geometry}", dim) for a '
            f"fresh one; by name: {', '.join(fixed)}"
        )
    return build(geometry, 0)
