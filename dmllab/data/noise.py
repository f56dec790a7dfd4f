"""Synthetic label noise for the *training* labels (the test split stays clean).

- symmetric, rate r over C classes: a label is kept with probability 1 - r, otherwise replaced by
  a uniformly drawn *other* class, so P(c -> c) = 1 - r and P(c -> c') = r / (C - 1) for c' != c.
- pairflip, rate r: class c becomes the next class (c + 1 mod C over the sorted class list) with
  probability r, so P(c -> c) = 1 - r and P(c -> next(c)) = r.

Labels may be any integers (not necessarily 0 .. C-1): the noise acts on positions in the sorted
class list. `dmllab.build.prepare` injects noise into the training split only.

>>> import torch
>>> y = torch.tensor([3, 3, 7, 7, 9, 9])
>>> pairflip(y, rate=0.0, seed=0).tolist()
[3, 3, 7, 7, 9, 9]
>>> sorted(set(symmetric(y, rate=0.5, seed=0).tolist()) - {3, 7, 9})
[]
"""

from __future__ import annotations

import torch
from torch import Tensor

from dmllab.data.dataset import Dataset
from dmllab.data.registry import resolve

KINDS = ("symmetric", "pairflip")


def symmetric(
    y: Tensor,
    rate: float,
    num_classes: int | None = None,
    seed: int = 0,
    *,
    classes: Tensor | None = None,
) -> Tensor:
    """Symmetric noise: keep each label with probability 1 - rate, else a uniform *other* class.

    The class list is `classes` if given, else 0 .. num_classes-1 if given, else the labels
    present in `y`. Returns a new LongTensor; `y` is not modified.
    """
    classes, position, flip, gen = _prepare(y, rate, num_classes, seed, classes)
    offset = torch.randint(1, len(classes), (len(position),), generator=gen)
    noisy = torch.where(flip, classes[(position + offset) % len(classes)], classes[position])
    return noisy.to(torch.as_tensor(y).device)


def pairflip(
    y: Tensor,
    rate: float,
    num_classes: int | None = None,
    seed: int = 0,
    *,
    classes: Tensor | None = None,
) -> Tensor:
    """Pair-flip noise: with probability rate, class c becomes the next class in the sorted list.

    The class list is chosen as in `symmetric`; the last class flips to the first.
    """
    classes, position, flip, _ = _prepare(y, rate, num_classes, seed, classes)
    noisy = torch.where(flip, classes[(position + 1) % len(classes)], classes[position])
    return noisy.to(torch.as_tensor(y).device)


def inject(dataset: Dataset | str, rate: float, kind: str = "symmetric", seed: int = 0) -> Dataset:
    """A copy of `dataset` (a Dataset or a registered name, loaded with `seed`) with noisy `y`;
    `clean_y` keeps the true labels (so `.flipped` works).

    The class list is the dataset's own classes. Injecting into already-noisy data adds noise on
    top of the noisy labels and keeps the original clean labels.
    """
    if kind not in KINDS:
        raise ValueError(f"noise kind {kind!r} is not known; choose one of: {', '.join(KINDS)}")
    flip = symmetric if kind == "symmetric" else pairflip
    dataset = resolve(dataset, seed=seed)
    noisy = flip(dataset.y, rate, seed=seed, classes=dataset.classes)
    clean = dataset.y if dataset.clean_y is None else dataset.clean_y
    result = dataset.with_labels(noisy, clean_y=clean.clone())
    result.meta["noise"] = {"rate": float(rate), "kind": kind, "seed": seed}
    return result


def _prepare(
    y: Tensor, rate: float, num_classes: int | None, seed: int, classes: Tensor | None
) -> tuple[Tensor, Tensor, Tensor, torch.Generator]:
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
        raise ValueError(f"noise rate must be a number in [0, 1); got {rate!r}")
    y = torch.as_tensor(y)
    if y.dim() != 1 or torch.is_floating_point(y) or y.dtype == torch.bool:
        raise ValueError(
            f"noise needs a 1-D integer label tensor; got {y.dtype} of shape {tuple(y.shape)}"
        )
    y = y.long().cpu()
    if classes is not None:
        classes = torch.unique(torch.as_tensor(classes).long().cpu())
    elif num_classes is not None:
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
            raise ValueError(
                f"labels must lie in 0 .. {num_classes - 1} when num_classes={num_classes} is "
                "given; pass classes=<the sorted class list> for other label values"
            )
        classes = torch.arange(num_classes)
    else:
        classes = torch.unique(y)
    if len(classes) < 2:
        raise ValueError(f"label noise needs at least 2 classes; got {len(classes)}")
    position = torch.searchsorted(classes, y).clamp(max=len(classes) - 1)
    known = classes[position] == y
    if not bool(known.all()):
        raise ValueError(f"labels {torch.unique(y[~known]).tolist()} are not in the class list")
    gen = torch.Generator().manual_seed(int(seed))
    flip = torch.rand(len(y), generator=gen) < rate
    return classes, position, flip, gen
