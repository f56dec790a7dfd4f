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
from dmllab.values import BadValue, integer, number

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


def _widths(owner: str, value: Any) -> list[int]:
    """The ICNN's layer widths: a non-empty list of ints in [1, 65536]."""
    if not isinstance(value, (list, tuple)) or not value:
        raise BadValue(
            f"{owner} must be a non-empty list of layer widths (ints >= 1), e.g. [32, 32, 32]; "
            f"got {value!r}"
        )
    return [integer(f"{owner}[{index}]", width, 1, 65536) for index, width in enumerate(value)]


# each option's range, checked when a Config names it (before any work), not only when built
_GENERATOR_CHECKS = {
    "mu": lambda owner, value: number(owner, value, 0.0),  # >= 0: the strong-convexity weight
    "lr_multiplier": lambda owner, value: number(owner, value, 0.0, low_open=True),
}
GEOMETRIES.register("bregman", ICNNBregman, checks={**_GENERATOR_CHECKS, "hidden": _widths})
GEOMETRIES.register(
    "bregman-maxaffine",
    MaxAffineBregman,
    checks={**_GENERATOR_CHECKS, "pieces": lambda owner, value: integer(owner, value, 2, 65536)},
)


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
