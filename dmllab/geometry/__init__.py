"""Geometries: what "distance" means. See `base.Geometry` for the contract."""

from dmllab.geometry.base import Geometry

__all__ = ["Geometry"]
