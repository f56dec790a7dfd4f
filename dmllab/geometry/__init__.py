"""Geometries: what "distance" means. See `base.Geometry` for the contract.

`build(name, dim, **options)` makes any geometry named in `dmllab.config.GEOMETRIES`;
`resolve(name_or_geometry)` is how every function that takes a geometry reads its argument:

>>> build("euclidean", dim=8)
Euclidean(name='euclidean', symmetric=True, eps=1e-12)
>>> build("manhattan", dim=8)
Traceback (most recent call last):
...
ValueError: unknown geometry 'manhattan'; choose one of: bregman, bregman-maxaffine, cosine, euclidean, sqeuclidean
>>> resolve("cosine")
Cosine(name='cosine', symmetric=True, eps=1e-12)
>>> resolve(3)
Traceback (most recent call last):
...
TypeError: geometry must be a registered name (bregman, bregman-maxaffine, cosine, euclidean, sqeuclidean) or a dmllab Geometry object; got int
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

from dmllab.geometry.base import Geometry
from dmllab.geometry.cosine import Cosine
from dmllab.geometry.euclidean import Euclidean, SquaredEuclidean

__all__ = ["Geometry", "SquaredEuclidean", "Euclidean", "Cosine", "build", "resolve"]


def _bregman(generator: str) -> Callable[..., Geometry]:
    def make(dim: int, **options: Any) -> Geometry:
        from dmllab.geometry.bregman import Bregman  # lazy: the learned geometry is heavier
        return Bregman(dim, generator=generator, **options)
    return make


_FIXED: dict[str, type[Geometry]] = {
    "sqeuclidean": SquaredEuclidean,
    "euclidean": Euclidean,
    "cosine": Cosine,
}
_LEARNED: dict[str, Callable[..., Geometry]] = {
    "bregman": _bregman("icnn"),
    "bregman-maxaffine": _bregman("maxaffine"),
}


def build(name: str, dim: int, **options: Any) -> Geometry:
    """The geometry called `name` for `dim`-dimensional embeddings.

    Fixed geometries ignore `dim`; the learned Bregman geometries need it for their generator.
    Unknown names or options raise a ValueError that lists the allowed ones.
    """
    if name in _FIXED:
        cls = _FIXED[name]
        allowed = [p.name for p in inspect.signature(cls.__init__).parameters.values()
                   if p.name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD]
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise ValueError(
                f"geometry {name!r} has no option(s) {', '.join(unknown)}; "
                f"allowed: {', '.join(allowed) if allowed else 'none'}")
        return cls(**options)
    if name in _LEARNED:
        return _LEARNED[name](dim, **options)
    known = sorted([*_FIXED, *_LEARNED])
    raise ValueError(f"unknown geometry {name!r}; choose one of: {', '.join(known)}")


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
        raise TypeError(f"geometry must be a registered name ({', '.join(sorted([*_FIXED, *_LEARNED]))}) "
                        f"or a dmllab Geometry object; got {type(geometry).__name__}")
    if geometry in _LEARNED:
        raise TypeError(f"geometry {geometry!r} is learned, so its name alone is an untrained divergence: pass "
                        f"the trained Geometry object (e.g. run.geometry), or build(\"{geometry}\", dim) for a "
                        f"fresh one; by name: {', '.join(sorted(_FIXED))}")
    return build(geometry, 0)
