"""Geometries: what "distance" means. See `base.Geometry` for the contract.

`GEOMETRIES` is the one registry of geometry names (name -> Geometry class; `Config`, the CLI and
the README read their names from it). A class's options are its constructor's keyword arguments;
a constructor that names `dim` gets the embedding dimension (the learned Bregman geometries, one
class per generator). `build(name, dim, **options)` makes any of them; `resolve(name_or_geometry)`
is how every function that takes a geometry reads its argument:

>>> build("euclidean", dim=8)
Euclidean(name='euclidean', symmetric=True, eps=1e-12)
>>> build("manhattan", dim=8)  # doctest: +NORMALIZE_WHITESPACE
Traceback (most recent call last):
...
dmllab.registry.UnknownName: unknown geometry 'manhattan'; choose one of:
bregman, bregman-maxaffine, cosine, euclidean, sqeuclidean
>>> resolve("cosine")
Cosine(name='cosine', symmetric=True, eps=1e-12)
>>> resolve(3)  # doctest: +NORMALIZE_WHITESPACE
Traceback (most recent call last):
...
TypeError: geometry must be a registered name
(bregman, bregman-maxaffine, cosine, euclidean, sqeuclidean) or a dmllab Geometry object; got int

To add a geometry: subclass `Geometry` (set `name`, `symmetric`, implement `_pairwise`; set
`learned = True` and take `dim` if it has parameters of its own) and register its class here
under its name.
"""

from __future__ import annotations

from typing import Any

from dmllab.geometry.base import Geometry
from dmllab.geometry.bregman import Bregman, ICNNBregman, MaxAffineBregman
from dmllab.geometry.cosine import Cosine
from dmllab.geometry.euclidean import Euclidean, SquaredEuclidean
from dmllab.registry import Registry

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

#: name -> Geometry class, made with its keyword options (and `dim` when it names it);
#: `cls.learned` marks the geometries trained with the model.
GEOMETRIES: Registry[type[Geometry]] = Registry(
    "geometry", context=("dim",), from_config="dmllab.build.build_components(config, input_shape)"
)
GEOMETRIES.register("sqeuclidean", SquaredEuclidean)
GEOMETRIES.register("euclidean", Euclidean)
GEOMETRIES.register("cosine", Cosine)
GEOMETRIES.register("bregman", ICNNBregman)
GEOMETRIES.register("bregman-maxaffine", MaxAffineBregman)


def build(name: str, dim: int, **options: Any) -> Geometry:
    """The geometry called `name` for `dim`-dimensional embeddings.

    Fixed geometries ignore `dim`; the learned Bregman geometries need it for their generator.
    Unknown names or options raise a ValueError that lists the allowed ones (`UnknownName`,
    `UnknownOption`).
    """
    geometry: Geometry = GEOMETRIES.build(name, {"dim": dim}, **options)
    return geometry


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
