"""Losses: selection strategies, base losses, regularisers, and their registries.

Every base loss is a `MetricLoss`: `loss_fn(embeddings, labels, distances=None) -> scalar`, with
`last_stats` after each call. The registries are the one source of the names (`Config`, the CLI
and the README read them):

    LOSSES        name -> MetricLoss class         (each loss file calls `register_loss`)
    POSITIVES     name -> PositiveStrategy class   (`strategies`)
    NEGATIVES     name -> NegativeStrategy class   (`strategies`)
    REGULARISERS  name -> Regulariser class        (`regularisers` states the contract)

| name               | class                  | paper                                         |
|--------------------|------------------------|-----------------------------------------------|
| `contrastive`      | ContrastiveLoss        | Hadsell, Chopra, LeCun, CVPR 2006             |
| `triplet`          | TripletLoss            | Schroff et al. (FaceNet), CVPR 2015           |
| `margin`           | MarginLoss             | Wu et al., ICCV 2017                          |
| `multi_similarity` | MultiSimilarityLoss    | Wang et al., CVPR 2019                        |
| `prototype_ce`     | PrototypeCrossEntropy  | CE over -D(x, class mean) / T                 |
| `lsd` (regulariser)| ListwiseSelfDistillation | Zeng et al., arXiv 2206.08880               |

`build(name, geometry, **options)` makes a loss by name (a Config is mapped onto it by
`dmllab.build.build_loss`):

>>> from dmllab.geometry import Euclidean
>>> build("triplet", Euclidean(), positives="nearest", negatives="semihard")
TripletLoss(
  positives='nearest', negatives='semihard', margin=0.2, k_positives=1
  (geometry): Euclidean(name='euclidean', symmetric=True, eps=1e-12)
)
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Any

from dmllab.geometry.base import Geometry
from dmllab.losses.base import LOSSES, MetricLoss, register_loss
from dmllab.losses.contrastive import ContrastiveLoss
from dmllab.losses.lsd import ListwiseSelfDistillation
from dmllab.losses.margin import MarginLoss
from dmllab.losses.multi_similarity import MultiSimilarityLoss
from dmllab.losses.prototype_ce import PrototypeCrossEntropy
from dmllab.losses.regularisers import Regulariser
from dmllab.losses.strategies import (
    NEGATIVES,
    POSITIVES,
    NegativeStrategy,
    Pairs,
    PositiveStrategy,
    Triplets,
    same_label_mask,
    select_negatives,
    select_positives,
)
from dmllab.losses.triplet import TripletLoss
from dmllab.values import registered

__all__ = [
    "build",
    "loss_class",
    "options",
    "register_loss",
    "MetricLoss",
    "ContrastiveLoss",
    "TripletLoss",
    "MarginLoss",
    "MultiSimilarityLoss",
    "PrototypeCrossEntropy",
    "Regulariser",
    "ListwiseSelfDistillation",
    "PositiveStrategy",
    "NegativeStrategy",
    "Pairs",
    "Triplets",
    "same_label_mask",
    "select_positives",
    "select_negatives",
    "LOSSES",
    "POSITIVES",
    "NEGATIVES",
    "REGULARISERS",
]

# Every module of this package, so that each loss file registers itself (`register_loss`).
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

REGULARISERS: dict[str, type[Regulariser]] = {
    "lsd": ListwiseSelfDistillation,
}


def loss_class(name: str) -> type[MetricLoss]:
    """LOSSES[name]; ValueError listing the registered names for an unknown one."""
    return registered("loss", name, LOSSES, "dmllab.build.build_loss(config, geometry)")


def options(name: str) -> list[str]:
    """The options (`Config.loss_options`) of the loss registered as `name`: its constructor's
    keywords besides the ones every `MetricLoss` takes (geometry, positives, negatives, margin,
    k_positives: Config fields of their own) and the training classes (num_classes, classes)."""
    parameters = inspect.signature(loss_class(name).__init__).parameters
    return [p for p in parameters if p not in _SET_BY_CONFIG]


_SET_BY_CONFIG = {*inspect.signature(MetricLoss.__init__).parameters, "num_classes", "classes"}


def build(name: str, geometry: Geometry | str, **options: Any) -> MetricLoss:
    """The loss registered as `name` on `geometry` (a Geometry or a fixed geometry's name), with
    the keyword `options` of its class (positives, negatives, margin, k_positives, ...).

    Raises ValueError for an unknown name (listing the registered ones) and TypeError for an
    option the class does not take."""
    return loss_class(name)(geometry, **options)
