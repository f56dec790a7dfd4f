"""Losses: selection strategies, base losses, regularisers, and their registries.

Every base loss is a `MetricLoss`: `loss_fn(z, labels, ref=None, ref_labels=None, distances=None,
*, own=None) -> scalar`, the batch against a reference set (the batch itself by default), with
`last_stats` after each call (`base` states the contract). The losses that read selected pairs
and triplets are `TupleLoss`es and take the strategies' keywords (positives, negatives, margin,
k_positives); the others (prototype_ce, the proxy losses) take only their own options and the
build context they name. The registries (`dmllab.registry.Registry`) are the one source of the
names (`Config`, the CLI and the README read them):

    LOSSES        name -> MetricLoss class         (each loss file calls `register_loss`; the
                                                    family `pml:<LossName>` resolves
                                                    pytorch-metric-learning's losses, `pml`)
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
| `proxy_anchor`     | ProxyAnchorLoss        | Kim, Kim, Cho, Kwak, CVPR 2020                |
| `proxy_nca`        | ProxyNCALoss           | Movshovitz-Attias et al., ICCV 2017           |
| `pml:<LossName>`   | (the adapter, `pml`)   | pytorch-metric-learning's loss of that name   |
| `lsd` (regulariser)| ListwiseSelfDistillation | Zeng et al., arXiv 2206.08880               |

`build(name, geometry, **options)` makes a loss by name (a Config is mapped onto it by
`dmllab.build.build_loss`):

>>> from dmllab.geometry import Euclidean
>>> build("triplet", Euclidean(), positives="nearest", negatives="semihard")
TripletLoss(
  positives='nearest', negatives='semihard', margin=0.2, k_positives=1
  (geometry): Euclidean(name='euclidean', symmetric=True, eps=1e-12)
)
>>> issubclass(LOSSES["prototype_ce"], TupleLoss)  # it reads no positives or negatives
False
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from dmllab.geometry.base import Geometry
from dmllab.losses.base import LOSSES, SELECTION, MetricLoss, TupleLoss, register_loss
from dmllab.losses.contrastive import ContrastiveLoss
from dmllab.losses.lsd import ListwiseSelfDistillation
from dmllab.losses.margin import MarginLoss
from dmllab.losses.multi_similarity import MultiSimilarityLoss
from dmllab.losses.prototype_ce import PrototypeCrossEntropy
from dmllab.losses.proxy_anchor import ProxyAnchorLoss
from dmllab.losses.proxy_nca import ProxyNCALoss
from dmllab.losses.regularisers import REGULARISERS, Regulariser
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

__all__ = [
    "build",
    "register_loss",
    "MetricLoss",
    "TupleLoss",
    "SELECTION",
    "ContrastiveLoss",
    "TripletLoss",
    "MarginLoss",
    "MultiSimilarityLoss",
    "PrototypeCrossEntropy",
    "ProxyAnchorLoss",
    "ProxyNCALoss",
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


def build(name: str, geometry: Geometry | str, **options: Any) -> MetricLoss:
    """The loss registered as `name` on `geometry` (a Geometry or a fixed geometry's name), with
    the keyword `options` of its class (a tuple loss's positives, negatives, margin,
    k_positives, and its own options).

    Raises UnknownName (a ValueError) for an unknown name, listing the registered ones, and
    TypeError for an option the class does not take."""
    loss: MetricLoss = LOSSES[name](geometry, **options)
    return loss
