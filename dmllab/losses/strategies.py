"""Selection strategies: which (anchor, positive, negative) tuples of a batch a loss sees.

Every strategy reads a dissimilarity matrix D [B, R] between B anchors (the rows: the batch) and
R references (the columns: the batch itself, R = B, or a reference set such as a memory of earlier
embeddings), D[a, r] = D(z_a || z_r), anchor first and never assumed symmetric, and a label mask:

    same [B, R]        y_r = y_a and r is not anchor a's own column     (`same_label_mask`)
    different [B, R]   y_r != y_a                                       (`different_label_mask`)

The anchor is excluded by index when `same` is built (its own column `own[a]`; for the batch
matrix the diagonal), never by distance, so duplicate embeddings at distance 0 still count as
positives; it is never in `different`. Every choice is made on `D.detach()`; the loss then reads
the chosen entries of D, so gradients flow through them as usual. Random choices use torch's
global RNG, so the trainer's seed makes them reproducible.

The contract, one base class and one registry (`dmllab.registry.Registry`) per kind:

    POSITIVES[name](k=1)          a PositiveStrategy:  strategy(D, same) -> Pairs
    NEGATIVES[name](margin=0.2)   a NegativeStrategy:  strategy(D, different, pairs, dim=None)
                                                                                 -> Triplets

What describes the method goes to the constructor (`k` positives per anchor, the semi-hard
`margin`); what describes the batch goes to the call (`dim`, the embedding dimension). A
negatives strategy with `unit_sphere = True` reads D as Euclidean distances between unit vectors:
losses pass it `geometry.unit_sphere_distance(D)` instead of D. To add a strategy, subclass
`RankedPositives` (a score per candidate; the top k win), `PositiveStrategy`, `SingleNegatives`
(one negative per pair) or `NegativeStrategy`, and register the class under its name
(`@POSITIVES.register("name")`, or `POSITIVES["name"] = cls`).

Positives, with P(a) = {r : same[a, r]}:

    all       every r in P(a)
    hardest   argmax_{r in P(a)} D[a, r]   (the k farthest when k > 1)
    nearest   argmin_{r in P(a)} D[a, r]   (easy positive / EPS: Levi et al., ICCV 2021; the k
              nearest when k > 1)
    random    uniform over P(a)            (k distinct ones when k > 1)

Convention: the result is always a `Pairs` list of (anchor, positive) index pairs (row, column),
grouped by anchor; with k > 1 an anchor with fewer than k positives keeps all it has. Anchors
with an empty P(a) are dropped and counted, never paired with themselves.

Negatives, chosen for each (a, p) pair relative to its positive, with N(a) = {r : different[a, r]}:

    all                every n in N(a) (a mask [B, R], row a for anchor a)
    semihard           uniform over {n in N(a) : D[a,p] < D[a,n] < D[a,p] + margin}; when empty,
                       the hardest negative (FaceNet, Schroff et al. 2015; the window sits above
                       the chosen positive's D[a,p], as Levi et al. 2021 pair them)
    hardest            argmin_{n in N(a)} D[a, n]
    distance_weighted  sampled with probability proportional to q(d)^-1, where
                       log q(d)^-1 = (2 - n) log d - ((n - 3) / 2) log(1 - d^2 / 4),
                       n the embedding dimension and d = D[a, n] clamped to [0.5, 2 - 1e-4]
                       (Wu et al., "Sampling matters in deep embedding learning", ICCV 2017;
                       the 0.5 floor is Roth et al.'s setting). The formula is the inverse
                       density of distances between uniform points on the unit sphere, so it
                       assumes unit-norm embeddings and Euclidean d (`unit_sphere = True`).

Pairs whose anchor has no negative are dropped, and the anchor counted in `dropped`.

`select_positives(D, same, how, k)` and `select_negatives(D, same, pairs, how, margin, dim=)` are
the same strategies by name on the square batch matrix (R = B, anchor a is column a):

>>> import torch
>>> labels = torch.tensor([0, 0, 0, 1, 1])
>>> same = same_label_mask(labels)
>>> D = torch.tensor([[0., 1., 3., 2., 5.],
...                   [1., 0., 1., 4., 4.],
...                   [3., 1., 0., 4., 1.],
...                   [2., 4., 4., 0., 2.],
...                   [5., 4., 1., 2., 0.]])
>>> pairs = select_positives(D, same, "nearest")
>>> pairs.anchors.tolist(), pairs.positives.tolist()
([0, 1, 2, 3, 4], [1, 0, 1, 4, 3])
>>> select_negatives(D, same, pairs, "hardest").negatives.tolist()
[3, 3, 4, 0, 2]
>>> nearest = POSITIVES["nearest"](k=1)                  # the same, as registered objects
>>> NEGATIVES["hardest"]()(D, different_label_mask(labels), nearest(D, same)).negatives.tolist()
[3, 3, 4, 0, 2]
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from dmllab.registry import Registry

__all__ = [
    "Pairs",
    "Triplets",
    "PositiveStrategy",
    "RankedPositives",
    "NegativeStrategy",
    "SingleNegatives",
    "AllPositives",
    "HardestPositives",
    "NearestPositives",
    "RandomPositives",
    "AllNegatives",
    "SemihardNegatives",
    "HardestNegatives",
    "DistanceWeightedNegatives",
    "POSITIVES",
    "NEGATIVES",
    "positive_strategy",
    "negative_strategy",
    "same_label_mask",
    "different_label_mask",
    "select_positives",
    "select_negatives",
    "random_ranks",
]


@dataclass(frozen=True)
class Pairs:
    """Selected (anchor, positive) pairs: `anchors[i]` (a row of D, a batch index) and
    `positives[i]` (a column of D, a reference index), both [M].

    `dropped` counts the batch's anchors without any positive."""

    anchors: Tensor
    positives: Tensor
    dropped: int

    def __len__(self) -> int:
        return len(self.anchors)


@dataclass(frozen=True)
class Triplets:
    """Selected tuples. `anchors`, `positives` [M]; `negatives` either a LongTensor [M] (one
    negative column per pair) or, for all negatives, a BoolTensor [B, R] whose row a marks every
    negative of anchor a (rows of unused anchors are all False). `dropped` counts the batch's
    anchors that have no tuple at all."""

    anchors: Tensor
    positives: Tensor
    negatives: Tensor
    dropped: int

    def __len__(self) -> int:
        return len(self.anchors)

    @property
    def all_negatives(self) -> bool:
        return self.negatives.dtype == torch.bool

    def distances(
        self, D: Tensor, pick: Callable[[Tensor, Tensor], Tensor]
    ) -> tuple[Tensor, Tensor, Tensor]:
        """(pos_d [M], neg_d [M, K], valid [M, K]): K = R for all negatives, else K = 1.

        `pick(rows, cols)` reads the single entries D[rows, cols] (see `dmllab.losses.base`)."""
        pos_d = pick(self.anchors, self.positives)
        if self.all_negatives:
            return pos_d, D[self.anchors], self.negatives[self.anchors]
        neg_d = pick(self.anchors, self.negatives).unsqueeze(1)
        return pos_d, neg_d, torch.ones_like(neg_d, dtype=torch.bool)


def same_label_mask(
    labels: Tensor, reference_labels: Tensor | None = None, own: Tensor | None = None
) -> Tensor:
    """[B, R] bool, True where y_r == y_a and r is not anchor a's own column.

    Without `reference_labels` the references are the batch itself: [B, B], anchor a's own column
    is a (the diagonal). With them (R labels), `own` [B] gives each anchor's column among the
    references (None: the anchors are not among them)."""
    if reference_labels is None:
        reference_labels = labels
        own = torch.arange(len(labels), device=labels.device) if own is None else own
    same = labels.unsqueeze(1) == reference_labels.unsqueeze(0)
    if own is not None:
        same[torch.arange(len(labels), device=same.device), own] = False
    return same


def different_label_mask(labels: Tensor, reference_labels: Tensor | None = None) -> Tensor:
    """[B, R] bool, True where y_r != y_a (R = B, the batch itself, without `reference_labels`)."""
    return labels.unsqueeze(1) != (
        labels if reference_labels is None else reference_labels
    ).unsqueeze(0)


#: name -> PositiveStrategy class, made with `cls(k=k)`
# A Config's strategies are built with its loss.
_FROM_CONFIG = "dmllab.build.build_loss(config, geometry)"
POSITIVES: Registry[type[PositiveStrategy]] = Registry(
    "positives strategy", from_config=_FROM_CONFIG
)

#: name -> NegativeStrategy class, made with `cls(margin=margin)`
NEGATIVES: Registry[type[NegativeStrategy]] = Registry(
    "negatives strategy", from_config=_FROM_CONFIG
)


# -- positives -------------------------------------------------------------------------------


class PositiveStrategy:
    """Chooses (anchor, positive) pairs: `strategy(D [B, R], same [B, R]) -> Pairs`.

    k (>= 1): positives per anchor for the strategies that rank them (an anchor with fewer keeps
    all it has); ignored by `all`. Subclasses implement `choose(D, same)`, D already detached
    and checked against `same`. Raises ValueError for a bad k or mismatched shapes."""

    #: the smallest samples_per_class a batch needs for this strategy to mean something (Config
    #: checks it): 2, so that every anchor has a positive
    min_samples_per_class: int = 2

    def __init__(self, k: int = 1) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k (positives per anchor) must be an int >= 1; got {k!r}")
        self.k = k

    def __call__(self, D: Tensor, same: Tensor) -> Pairs:
        _check_matrix(D, same)
        return self.choose(D.detach(), same)

    def choose(self, D: Tensor, same: Tensor) -> Pairs:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(k={self.k})"


@POSITIVES.register("all")
class AllPositives(PositiveStrategy):
    """Every r in P(a)."""

    def choose(self, D: Tensor, same: Tensor) -> Pairs:
        anchors, positives = same.nonzero(as_tuple=True)
        return Pairs(anchors, positives, len(D) - int(anchors.unique_consecutive().numel()))


class RankedPositives(PositiveStrategy):
    """The k positives of highest `score(D, same)` per anchor (the first on ties)."""

    def score(self, D: Tensor, same: Tensor) -> Tensor:
        """[B, R] scores, -inf exactly where `same` is False."""
        raise NotImplementedError

    def choose(self, D: Tensor, same: Tensor) -> Pairs:
        score = self.score(D, same)
        if self.k == 1:
            best, index = score.max(dim=1)
            anchors = (best > -math.inf).nonzero().squeeze(1)
            return Pairs(anchors, index[anchors], len(D) - len(anchors))
        k = min(self.k, D.shape[1])
        top_score, top_index = score.topk(k, dim=1)
        chosen = top_score > -math.inf
        anchors = torch.arange(len(D), device=D.device).unsqueeze(1).expand(-1, k)
        return Pairs(anchors[chosen], top_index[chosen], len(D) - int(chosen[:, 0].sum()))


@POSITIVES.register("hardest")
class HardestPositives(RankedPositives):
    """argmax_{r in P(a)} D[a, r]: the farthest positive(s)."""

    def score(self, D: Tensor, same: Tensor) -> Tensor:
        return D.masked_fill(~same, -math.inf)


@POSITIVES.register("nearest")
class NearestPositives(RankedPositives):
    """argmin_{r in P(a)} D[a, r]: the nearest positive(s) (easy positives; Levi et al.,
    ICCV 2021)."""

    # With 2 samples of a class in a batch the nearest positive is the only positive, so choosing
    # the nearest one would change nothing.
    min_samples_per_class = 3

    def score(self, D: Tensor, same: Tensor) -> Tensor:
        return D.masked_fill(~same, math.inf).neg_()


@POSITIVES.register("random")
class RandomPositives(RankedPositives):
    """Uniform over P(a) (k distinct ones), by `random_ranks`."""

    def score(self, D: Tensor, same: Tensor) -> Tensor:
        return torch.where(same, random_ranks(D.shape, D.device, D.dtype), -math.inf)


# -- negatives -------------------------------------------------------------------------------


class NegativeStrategy:
    """Chooses negatives for the selected pairs:
    `strategy(D [B, R], different [B, R], pairs, dim=None) -> Triplets`.

    margin: the semi-hard window (used by `semihard`; every negatives strategy accepts it).
    dim: the embedding dimension, for strategies that model the distribution of distances.
    unit_sphere: True when the strategy reads D as Euclidean distances between unit vectors.
    returns_mask: True when the Triplets carry a [B, R] mask of negatives rather than one column
    per pair (losses then read whole rows of D, so they keep its gradient).
    Subclasses implement `choose(D, different, pairs, dim)`, D already detached and checked."""

    unit_sphere: bool = False
    returns_mask: bool = False

    def __init__(self, margin: float = 0.2) -> None:
        self.margin = margin

    def __call__(
        self, D: Tensor, different: Tensor, pairs: Pairs, dim: int | None = None
    ) -> Triplets:
        _check_matrix(D, different)
        return self.choose(D.detach(), different, pairs, dim)

    def choose(self, D: Tensor, different: Tensor, pairs: Pairs, dim: int | None) -> Triplets:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(margin={self.margin:g})"


@NEGATIVES.register("all")
class AllNegatives(NegativeStrategy):
    """Every n in N(a), as a mask [B, R], for each anchor with a pair."""

    returns_mask = True

    def choose(self, D: Tensor, different: Tensor, pairs: Pairs, dim: int | None) -> Triplets:
        anchors, positives = pairs.anchors, pairs.positives
        has_negative = different.any(dim=1)
        if not bool(has_negative[anchors].all()):
            keep = has_negative[anchors]
            anchors, positives = anchors[keep], positives[keep]
        used = torch.zeros(len(D), dtype=torch.bool, device=D.device)
        used[anchors] = True
        return Triplets(anchors, positives, different & used.unsqueeze(1), len(D) - int(used.sum()))


class SingleNegatives(NegativeStrategy):
    """One negative per (anchor, positive) pair, chosen by `one(...)` from the anchor's row."""

    def one(
        self, rows: Tensor, nearest: Tensor, hardest: Tensor, pos_d: Tensor, dim: int | None
    ) -> Tensor:
        """The chosen column per pair: [M]. rows [M, R]: D of each pair's anchor with every
        non-negative at +inf; nearest, hardest [M]: the rows' minima and their columns;
        pos_d [M, 1]: D of each pair's positive."""
        raise NotImplementedError

    def choose(self, D: Tensor, different: Tensor, pairs: Pairs, dim: int | None) -> Triplets:
        anchors, positives = pairs.anchors, pairs.positives
        if len(anchors) == 0:
            return Triplets(anchors, positives, anchors.clone(), len(D))
        every_row = len(anchors) == len(D) and bool(
            (anchors == torch.arange(len(D), device=D.device)).all()
        )
        rows = D if every_row else D[anchors]
        # Non-negatives at +inf: the row minimum is the hardest negative, and +inf never enters
        # a window.
        rows = rows.masked_fill(~different if every_row else ~different[anchors], math.inf)
        nearest, hardest = rows.min(dim=1)
        chosen = self.one(rows, nearest, hardest, D[anchors, positives].unsqueeze(1), dim)
        if not bool((nearest < math.inf).all()):  # anchors with no negative at all
            keep = nearest < math.inf
            anchors, positives, chosen = anchors[keep], positives[keep], chosen[keep]
        dropped = (
            0 if (every_row and len(anchors) == len(D)) else len(D) - int(anchors.unique().numel())
        )
        return Triplets(anchors, positives, chosen, dropped)


@NEGATIVES.register("hardest")
class HardestNegatives(SingleNegatives):
    """argmin_{n in N(a)} D[a, n]."""

    def one(
        self, rows: Tensor, nearest: Tensor, hardest: Tensor, pos_d: Tensor, dim: int | None
    ) -> Tensor:
        return hardest


@NEGATIVES.register("semihard")
class SemihardNegatives(SingleNegatives):
    """Uniform over the window D[a,p] < D[a,n] < D[a,p] + margin, else the hardest negative."""

    def one(
        self, rows: Tensor, nearest: Tensor, hardest: Tensor, pos_d: Tensor, dim: int | None
    ) -> Tensor:
        # One argmax: window entries score above every other candidate (uniformly at random among
        # them); without a window entry the largest -D, i.e. the hardest negative, wins.
        window = (rows > pos_d) & (rows < pos_d + self.margin)
        lift = 1.0 - nearest.clamp_max(0.0).min()  # > every finite -D
        score = torch.where(
            window, random_ranks(rows.shape, rows.device, rows.dtype).add_(lift), rows.neg()
        )
        return score.argmax(dim=1)


@NEGATIVES.register("distance_weighted")
class DistanceWeightedNegatives(SingleNegatives):
    """Sampled with probability proportional to the inverse density of distances on the unit sphere
    in `dim` dimensions (Wu et al., ICCV 2017); see the module docstring."""

    unit_sphere = True

    def one(
        self, rows: Tensor, nearest: Tensor, hardest: Tensor, pos_d: Tensor, dim: int | None
    ) -> Tensor:
        if dim is None or isinstance(dim, bool) or not isinstance(dim, int) or dim < 2:
            raise ValueError(
                "negatives='distance_weighted' needs dim, the embedding dimension "
                f"(an int >= 2); got {dim!r}"
            )
        d = rows.clamp(0.5, 2.0 - 1e-4)
        log_weight = (2.0 - dim) * d.log() - ((dim - 3.0) / 2.0) * (1.0 - d * d / 4.0).log()
        log_weight = log_weight.masked_fill(rows == math.inf, -math.inf)
        # Normalise in log space (the weights span hundreds of orders of magnitude for large dim),
        # then sample by inverting each row's cumulative distribution (one uniform draw per row).
        prob = torch.softmax(log_weight.double(), dim=1)
        cdf = prob.cumsum(dim=1)
        u = torch.rand(len(rows), 1, device=rows.device, dtype=cdf.dtype) * cdf[:, -1:]
        chosen = torch.searchsorted(cdf, u, right=True).clamp_max_(rows.shape[1] - 1)
        rounded = (prob.gather(1, chosen) == 0).squeeze(1)
        if bool(rounded.any()):  # u rounded up to the row total: take the row's last candidate
            last = (prob[rounded] > 0).cumsum(dim=1).argmax(dim=1)
            chosen[rounded] = last.unsqueeze(1)
        return chosen.squeeze(1)


# -- by name -----------------------------------------------------------------------------------


def positive_strategy(name: str, k: int = 1) -> PositiveStrategy:
    """The positives strategy registered as `name`, choosing `k` per anchor.

    Raises ValueError for an unknown name (listing the registered ones) or a bad k."""
    strategy: PositiveStrategy = POSITIVES.build(name, k=k)
    return strategy


def negative_strategy(name: str, margin: float = 0.2) -> NegativeStrategy:
    """The negatives strategy registered as `name`, with the semi-hard window `margin`.

    Raises ValueError for an unknown name (listing the registered ones)."""
    strategy: NegativeStrategy = NEGATIVES.build(name, margin=margin)
    return strategy


def select_positives(D: Tensor, same: Tensor, how: str, k: int = 1) -> Pairs:
    """`positive_strategy(how, k)(D, same)` on the square batch matrix D [B, B]; see module doc."""
    strategy = positive_strategy(how, k)
    _check_matrix(D, same, square=True)
    return strategy(D, same)


def select_negatives(
    D: Tensor, same: Tensor, pairs: Pairs, how: str, margin: float = 0.2, *, dim: int | None = None
) -> Triplets:
    """`negative_strategy(how, margin)(D, different, pairs, dim)` on the square batch matrix
    D [B, B], `different` the complement of `same` without the diagonal (anchor a is column a):
    one negative per pair (or all of them), relative to the pair's positive.

    `margin` is the semi-hard window; `dim` (the embedding dimension) is required by
    `distance_weighted`, which reads D as Euclidean distances between unit vectors.
    """
    strategy = negative_strategy(how, margin)
    _check_matrix(D, same, square=True)
    different = ~same
    own = torch.arange(len(same), device=same.device)
    different[own, own] = False  # the anchor's own column: never a negative
    return strategy(D, different, pairs, dim)


def random_ranks(shape: tuple[int, ...], device: torch.device, dtype: torch.dtype) -> Tensor:
    """[n, m] scores whose every row ranks the m columns in a uniformly random order.

    One random permutation of the columns, cyclically shifted by a random amount per row: the
    argmax of a row over any column subset is uniform over that subset (a permutation composed
    with a fixed shift is again a uniform permutation), at n + m random draws instead of n * m.
    Rows are not independent of each other; each row's choice is exactly uniform."""
    n, m = shape
    permutation = torch.randperm(m, device=device).to(dtype)
    shift = torch.randint(m, (n, 1), device=device).to(dtype)
    return (permutation + shift).remainder_(m)


def _check_matrix(D: Tensor, mask: Tensor, square: bool = False) -> None:
    if D.dim() != 2 or mask.shape != D.shape or (square and D.shape[0] != D.shape[1]):
        shape = "a square batch matrix D [B, B]" if square else "a matrix D [B, R]"
        raise ValueError(
            f"selection needs {shape} and a label mask of the same shape; "
            f"got D {tuple(D.shape)} and mask {tuple(mask.shape)}"
        )
