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
column with missing values). Metrics take class ids (`as_class_ids`). A row without a label is
refused wherever labels enter, naming the rows and the fix (drop or relabel them), never made
one more class: a missing value (None, NaN, pandas.NA) and a negative integer (-1 is
scikit-learn's mark of an unlabelled row in semi-supervised data); names are never negative.

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
    Each column is 1-D: a tensor, numpy array, list, tuple or pandas Series / Index / Categorical.
    Raises ValueError for float labels, rows without a label (missing values: None, NaN,
    pandas.NA; negative integers such as -1) and other shapes.

    >>> [p.tolist() for p in encode_labels(["b", "a"], ["a", "a"])[0]]
    [[1, 0], [0, 0]]
    """
    arrays = [_label_array(column, name) for column in columns]
    if all(array.dtype.kind in "iu" for array in arrays):
        return [torch.from_numpy(array.astype(np.int64)) for array in arrays], None
    items = [array.tolist() for array in arrays]
    distinct = dict.fromkeys(label for column in items for label in column)
    for label in distinct:
        if isinstance(label, float):  # a real number among names (missing values are refused)
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

    Raises ValueError for float, bool, string or other non-integer labels and for rows without a
    label (missing values, negative ids such as -1), naming the fix.
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
            if values.is_floating_point():  # NaN rows are missing labels: say so first
                refuse_unlabelled(values.detach().cpu().double().numpy(), name)
            raise ValueError(
                f"{name} must hold integer class labels or names; got {values.dtype} "
                "(cast float ids with .long())"
            )
        array = values.detach().cpu().numpy()
    else:
        array = label_array(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one label per sample); got shape {array.shape}")
    refuse_unlabelled(array, name)
    if array.dtype.kind == "f":
        raise ValueError(
            f"{name} must hold integer class labels or names; got {array.dtype} "
            "(cast float ids with .astype(int))"
        )
    return array


def label_array(values: Any) -> np.ndarray:
    """A numpy array of the labels in any container, each label read as its value.

    values: a tensor, numpy array, list, tuple or pandas object. A label given as a 0-d tensor or
    0-d numpy array (what iterating over a tensor or array yields) is its value: [tensor(0),
    tensor(-1)] reads as [0, -1], so its rows are classes 0 and -1 (no label), not one class per
    tensor object. A list is int64 when all its labels are integers, float64 when all are real
    numbers, else objects (numpy would turn [0, "a"] into the strings "0", "a", and tuples into
    rows).

    A label that is itself a container (a 1-element tensor or array, a list) is refused: a
    list of shape-[1] tensors would otherwise make each tensor object its own class.

    >>> import torch
    >>> label_array([torch.tensor(2), np.array(0), np.int64(1)])
    array([2, 0, 1])
    """
    if isinstance(values, Tensor):
        tensor = values.detach().cpu()
        return (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()
    if isinstance(values, (list, tuple)):
        return _sequence_labels(values)
    array = _numpy(values)
    if array.dtype.kind == "O" and any(isinstance(v, (Tensor, np.ndarray)) for v in array.flat):
        return _sequence_labels(list(array)) if array.ndim == 1 else array
    return array


def refuse_unlabelled(labels: np.ndarray, name: str) -> None:
    """ValueError naming the rows of the 1-D `labels` that carry no label, and the fix.

    A row has no label when its value is missing (None, NaN, pandas.NA / NaT) or a negative
    integer: -1 marks an unlabelled row in scikit-learn's semi-supervised estimators, and taken
    as a label it would make one more class whose rows train as positives of each other. Names
    (strings, tuples) are never negative.

    >>> refuse_unlabelled(np.array([0, 1, -1, 2, -1]), "y")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: y has the label -1 (no label) at 2 row(s) [2, 4]; a negative label marks an ...
    """
    if labels.dtype.kind in "iu":
        bad = labels < 0
    elif labels.dtype.kind == "f":
        bad = np.isnan(labels)
    elif labels.dtype.kind in "mM":  # datetime64 / timedelta64: NaT is the missing value
        bad = np.isnat(labels)
    elif labels.dtype.kind == "O":
        bad = np.fromiter(map(_no_label, labels), dtype=bool, count=len(labels))
    else:
        return
    if not bad.any():
        return
    rows = np.flatnonzero(bad)
    first = labels[rows[0]]
    if isinstance(first, (np.datetime64, np.timedelta64)):  # NaT, whose .item() reads None
        import pandas as pd

        first = pd.NaT
    first = first.item() if hasattr(first, "item") else first
    where = f"at {len(rows)} row(s) {rows[:5].tolist()}{' ...' if len(rows) > 5 else ''}"
    if isinstance(first, (int, np.integer)) and not isinstance(first, (bool, np.bool_)):
        raise ValueError(
            f"{name} has the label {first} (no label) {where}; a negative label marks an "
            "unlabelled row (scikit-learn's -1) and would train as one more class: drop those "
            "rows (x[keep], y[keep] with keep = y >= 0) or give them class ids >= 0"
        )
    raise ValueError(
        f"{name} has the label {first!r} (a missing value) {where}; every row needs a class "
        "label: drop those rows (x[keep], y[keep]; in pandas frame.dropna(subset=[label])) or "
        "give them a class"
    )


def _no_label(value: Any) -> bool:
    """A negative integer or a missing value (None, NaN, pandas.NA / NaT) among object labels."""
    import pandas as pd  # it knows every missing-value marker

    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, (int, np.integer)):
        return bool(value < 0)
    return bool(pd.api.types.is_scalar(value) and pd.isna(value))


def _sequence_labels(values: list | tuple) -> np.ndarray:
    """A 1-D array of the labels in a list, 0-d tensors and arrays read as their values
    (`label_array`)."""
    values = [_scalar(v) for v in values]
    for row, value in enumerate(values):
        if isinstance(value, (Tensor, np.ndarray, list, dict, set)):
            raise ValueError(
                f"labels must hold one value per row; row {row} holds {type(value).__name__} "
                f"{value!r}: give a 1-D container of labels (e.g. torch.cat of 1-element "
                "tensors, or .flatten() / .item() each one)"
            )
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


def _scalar(value: Any) -> Any:
    """A 0-d tensor or numpy array as its Python value (a datetime64 stays one, as its .item()
    may read an int or None); anything else as it is."""
    if isinstance(value, Tensor) and value.dim() == 0:
        return value.item()
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value[()] if value.dtype.kind in "mM" else value.item()
    return value


def _numpy(values: Any) -> np.ndarray:
    """A numpy view of an array-like; pandas objects through `to_numpy()` (keeps their dtype)."""
    if hasattr(values, "to_numpy"):
        values = values.to_numpy()
    return np.asarray(values)


__all__ = [
    "KEPT_FLOATS",
    "as_class_ids",
    "as_floats",
    "encode_labels",
    "is_array_like",
    "label_array",
    "refuse_unlabelled",
]
