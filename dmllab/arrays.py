"""The one rule for arrays and labels at the boundary of the lab.

Every public entry point (`Dataset`, `fit` through its Dataset, `evaluate`, the metrics, the
geometry read-outs and the figures) converts what it is given with the functions below, so a
numpy array, a list or a pandas object behaves exactly like the torch tensor it holds.

Arrays (`as_floats`): torch tensors, numpy arrays, (nested) lists and tuples, pandas DataFrames
and Series of real numbers. Precision is never lowered, only raised to float32: float32 and
float64 are kept (float64, numpy's and Python's default, is the precise path: metrics and fixed
geometries then compute in double); every other real dtype (float16, bfloat16, integers, bool)
becomes float32. Where the values meet parameters (a model, a learned geometry) they are cast to
the parameters' dtype (float32 unless you called `.double()`). Strings, objects and complex
numbers raise a ValueError that names the fix.

Labels: class labels may be any hashable values. Integer labels (of any container or integer
dtype) are class ids and kept as they are; other labels (strings, tuples, ...) are mapped to
the positions 0..C-1 of their sorted distinct values (`encode_labels`), whose names a `Dataset`
keeps for tables and plots. Float labels are refused (a float column is usually a target or a
column with missing values). Metrics take class ids (`as_class_ids`).

>>> import numpy as np
>>> as_floats(np.arange(4, dtype=np.float16).reshape(2, 2), "x").dtype
torch.float32
>>> as_floats([[1, 2]], "x").dtype, as_floats(np.zeros((1, 2)), "x").dtype
(torch.float32, torch.float64)
>>> (positions,), names = encode_labels(["dog", "cat", "dog"])
>>> positions.tolist(), names
([1, 0, 1], ('cat', 'dog'))
>>> (ids,), names = encode_labels(np.array([3, 17, 1000, 3]))
>>> ids.tolist(), names
([3, 17, 1000, 3], None)
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np
import torch
from torch import Tensor

#: Floating dtypes computed as they are; the rest of the real dtypes become float32.
KEPT_FLOATS = (torch.float32, torch.float64)


def as_floats(values: Any, name: str) -> Tensor:
    """`values` as a real torch tensor: float32 / float64 kept, every other real dtype -> float32.

    values: a torch tensor (autograd is kept), numpy array, (nested) list or tuple, or a pandas
            DataFrame / Series, of floats, integers or bools.
    Raises ValueError for strings, objects or complex numbers (naming `name` and the fix).
    """
    if isinstance(values, Tensor):
        tensor = values
    else:
        array = _numpy(values)
        if array.dtype.kind not in "biuf":
            raise ValueError(
                f"{name} must hold real numbers; got a {array.dtype} array. Convert it first, e.g. "
                f"np.asarray({name}, dtype=np.float32), or drop its non-numeric columns"
            )
        tensor = torch.from_numpy(array if array.flags.writeable else array.copy())
    if tensor.is_complex():
        raise ValueError(f"{name} must hold real numbers; got {tensor.dtype}. Pass .real or .abs()")
    return tensor if tensor.dtype in KEPT_FLOATS else tensor.float()


def encode_labels(
    *columns: Any, name: str = "y"
) -> tuple[list[Tensor], tuple[Hashable, ...] | None]:
    """Class labels as long tensors, one per column, sharing one label space.

    Integer labels (every column integer) are kept as class ids and the names are None. Any other
    hashable labels are mapped to positions 0..C-1 of their distinct values over all columns
    (sorted; in order of first appearance when they do not sort) and the names are those values.
    Each column is 1-D: a tensor, numpy array, list, tuple or pandas Series / Categorical.
    Raises ValueError for float labels, missing values (NaN / None) and other shapes.

    >>> [p.tolist() for p in encode_labels(["b", "a"], ["a", "a"])[0]]
    [[1, 0], [0, 0]]
    """
    arrays = [_label_array(column, name) for column in columns]
    if all(array.dtype.kind in "iu" for array in arrays):
        return [torch.from_numpy(array.astype(np.int64)) for array in arrays], None
    items = [array.tolist() for array in arrays]
    distinct = dict.fromkeys(label for column in items for label in column)
    for label in distinct:
        if label is None or isinstance(label, float):
            raise ValueError(
                f"{name} has the label {label!r}; labels must be integers or names (e.g. strings), "
                "without missing values. Drop or fill the missing rows, or cast float ids with "
                ".astype(int)"
            )
    try:
        names = tuple(sorted(distinct))
    except TypeError:  # labels of different kinds do not sort: keep their first appearance
        names = tuple(distinct)
    position = {label: i for i, label in enumerate(names)}
    return [
        torch.tensor([position[label] for label in column], dtype=torch.long) for column in items
    ], names


def as_class_ids(values: Any, name: str) -> Tensor:
    """Integer class ids as a 1-D long tensor (from a tensor, numpy array, list or pandas Series).

    Raises ValueError for float, bool, string or other non-integer labels, naming the fix.
    """
    array = _label_array(values, name)
    if array.dtype.kind not in "iu":
        kind = {"f": "floats", "b": "bools"}.get(array.dtype.kind, "names")
        example = (
            f" such as {array[0].item() if hasattr(array[0], 'item') else array[0]!r}"
            if len(array)
            else ""
        )
        raise ValueError(
            f"{name} must hold integer class labels; got {kind}{example}. Metrics take class ids: "
            "cast float ids with .long(); for names, build dl.data.Dataset(x, y=names), whose .y "
            "holds their ids (the names stay in .class_names)"
        )
    return torch.from_numpy(array.astype(np.int64))


def is_array_like(values: Any) -> bool:
    """True for what `as_floats` converts (tensors, numpy arrays, lists, tuples, pandas objects);
    False for lazy inputs such as image folders, which decode rows on demand."""
    return isinstance(values, (Tensor, np.ndarray, list, tuple)) or hasattr(values, "to_numpy")


def _label_array(values: Any, name: str) -> np.ndarray:
    if isinstance(values, Tensor):
        if values.is_floating_point() or values.is_complex():
            raise ValueError(
                f"{name} must hold integer class labels or names; got {values.dtype} "
                "(cast float ids with .long())"
            )
        array = values.detach().cpu().numpy()
    elif isinstance(values, (list, tuple)):
        array = _sequence_labels(values)
    else:
        array = _numpy(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one label per sample); got shape {array.shape}")
    if array.dtype.kind == "f":
        raise ValueError(
            f"{name} must hold integer class labels or names; got {array.dtype} "
            "(cast float ids with .astype(int))"
        )
    return array


def _sequence_labels(values: list | tuple) -> np.ndarray:
    """A 1-D array of the labels in a list: int64 when all are integers, float64 when all are real
    numbers, else objects (numpy would turn [0, "a"] into the strings "0", "a", and tuples into
    rows)."""
    if all(
        isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in values
    ):
        return np.asarray(values, dtype=np.int64)
    if all(isinstance(v, (int, float, np.integer, np.floating)) for v in values):
        return np.asarray(values, dtype=np.float64)
    array = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        array[i] = value
    return array


def _numpy(values: Any) -> np.ndarray:
    """A numpy view of an array-like; pandas objects through `to_numpy()` (keeps their dtype)."""
    if hasattr(values, "to_numpy"):
        values = values.to_numpy()
    return np.asarray(values)


__all__ = ["KEPT_FLOATS", "as_class_ids", "as_floats", "encode_labels", "is_array_like"]
