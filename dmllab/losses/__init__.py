"""Losses: selection strategies, base losses and their registry.

`build(config, geometry, num_classes=None, classes=None)` maps `Config.loss`, `positives`, `negatives`,
`margin`, `k_positives` and `loss_options` onto one of the classes below. Every base loss is a
`MetricLoss`: `loss_fn(embeddings, labels, distances=None) -> scalar`, with `last_stats` after
each call.

| name               | class                  | paper                                         |
|--------------------|------------------------|-----------------------------------------------|
| `contrastive`      | ContrastiveLoss        | Hadsell, Chopra, LeCun, CVPR 2006             |
| `triplet`          | TripletLoss            | Schroff et al. (FaceNet), CVPR 2015           |
| `margin`           | MarginLoss             | Wu et al., ICCV 2017                          |
| `multi_similarity` | MultiSimilarityLoss    | Wang et al., CVPR 2019                        |
| `prototype_ce`     | PrototypeCrossEntropy  | CE over -D(x, class mean) / T                 |

>>> from dmllab.config import Config
>>> from dmllab.geometry import Euclidean
>>> build(Config(loss="triplet", positives="nearest", negatives="semihard"), Euclidean())
TripletLoss(
  positives='nearest', negatives='semihard', margin=0.2, k_positives=1
  (geometry): Euclidean(name='euclidean', symmetric=True, eps=1e-12)
)
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from torch import Tensor

from dmllab.config import Config
from dmllab.geometry.base import Geometry
from dmllab.losses.base import MetricLoss
from dmllab.losses.contrastive import ContrastiveLoss
from dmllab.losses.margin import MarginLoss
from dmllab.losses.multi_similarity import MultiSimilarityLoss
from dmllab.losses.prototype_ce import PrototypeCrossEntropy
from dmllab.losses.strategies import (Pairs, Triplets, same_label_mask, select_negatives,
                                      select_positives)
from dmllab.losses.triplet import TripletLoss

__all__ = [
    "build",
    "MetricLoss",
    "ContrastiveLoss",
    "TripletLoss",
    "MarginLoss",
    "MultiSimilarityLoss",
    "PrototypeCrossEntropy",
    "Pairs",
    "Triplets",
    "same_label_mask",
    "select_positives",
    "select_negatives",
    "LOSS_CLASSES",
]

LOSS_CLASSES: dict[str, type[MetricLoss]] = {
    "contrastive": ContrastiveLoss,
    "margin": MarginLoss,
    "multi_similarity": MultiSimilarityLoss,
    "prototype_ce": PrototypeCrossEntropy,
    "triplet": TripletLoss,
}

_FROM_CONFIG = ("positives", "negatives", "margin", "k_positives")


def build(config: Config, geometry: Geometry | str, num_classes: int | None = None, *,
          classes: Sequence[int] | Tensor | None = None) -> MetricLoss:
    """The base loss named by `config.loss`, using `geometry` (a Geometry or a fixed geometry's name).

    `config.loss_options` go to the loss class (e.g. `{"reduction": "mean"}` for triplet,
    `{"per_class_beta": True}` for margin, which then needs the training classes: `classes`, their
    label ids, or `num_classes` C for ids 0..C-1); unknown options raise a ValueError listing the
    allowed ones.
    """
    if config.loss not in LOSS_CLASSES:
        raise ValueError(f"unknown loss {config.loss!r}; choose one of: {', '.join(sorted(LOSS_CLASSES))}")
    cls = LOSS_CLASSES[config.loss]
    allowed = [name for name in inspect.signature(cls.__init__).parameters
               if name not in ("self", "geometry", "num_classes", "classes", *_FROM_CONFIG)]
    unknown = sorted(set(config.loss_options) - set(allowed))
    if unknown:
        raise ValueError(
            f"loss {config.loss!r} has no loss_options {', '.join(unknown)}; "
            f"allowed: {', '.join(allowed) if allowed else 'none'}")
    kwargs: dict[str, Any] = {name: getattr(config, name) for name in _FROM_CONFIG}
    kwargs.update(config.loss_options)
    if "num_classes" in inspect.signature(cls.__init__).parameters:
        kwargs["num_classes"] = num_classes
        kwargs["classes"] = classes
    return cls(geometry, **kwargs)
