"""Checks shared by the loaders: each bad option is a ValueError naming the dataset and the fix."""

from __future__ import annotations

from typing import Any


def positive_int(dataset: str, name: str, value: Any, *, minimum: int = 1) -> int:
    """`value` as an int >= `minimum`, or a ValueError naming `dataset` and `name`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(
            f"dataset {dataset!r}: option {name} must be an int >= {minimum}; got {value!r}"
        )
    return value


def optional_positive_int(dataset: str, name: str, value: Any) -> int | None:
    return None if value is None else positive_int(dataset, name, value)


def non_negative_float(dataset: str, name: str, value: Any, *, strict: bool = False) -> float:
    """`value` as a float >= 0 (> 0 when `strict`), or a ValueError naming `dataset` and `name`."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and value == value
    if not ok or value < 0 or (strict and value == 0):
        bound = "> 0" if strict else ">= 0"
        raise ValueError(
            f"dataset {dataset!r}: option {name} must be a number {bound}; got {value!r}"
        )
    return float(value)
