"""Selection strategies: which (anchor, positive, negative) tuples of a batch a loss sees.

Pure, vectorised functions of the batch dissimilarity matrix D (D[a, j] = D(z_a || z_j), anchor
first; never assumed symmetric) and the label mask. Every choice is made on `D.detach()`; the
loss then reads the chosen entries of D, so gradients flow through them as usual. Random choices
use torch's global RNG, so the trainer's seed makes them reproducible.

Positives (`select_positives`), with P(a) = {j != a : y_j = y_a}:

    all       every j in P(a)
    hardest   argmax_{j in P(a)} D[a, j]   (the k farthest when k > 1)
    nearest   argmin_{j in P(a)} D[a, j]   (easy positive / EPS: Levi et al., ICCV 2021; the k
              nearest when k > 1)
    random    uniform over P(a)            (k distinct ones when k > 1)

Convention: the result is always a `Pairs` list of (anchor, positive) index pairs, grouped by
anchor; with k > 1 an anchor with fewer than k positives keeps all it has. Anchors with an empty
P(a) are dropped and counted, never paired with themselves (the anchor is excluded by index, so
duplicate embeddings at distance 0 still count as positives).

Negatives (`select_negatives`), chosen for each (a, p) pair relative to its positive, with
N(a) = {j : y_j != y_a}:

    all                every n in N(a) (a mask [B, B], row a for anchor a)
    semihard           uniform over {n in N(a) : D[a,p] < D[a,n] < D[a,p] + margin}; when empty,
                       the hardest negative (FaceNet, Schroff et al. 2015; METHODS.md §1)
    hardest            argmin_{n in N(a)} D[a, n]
    distance_weighted  sampled with probability proportional to q(d)^-1, where
                       log q(d)^-1 = (2 - n) log d - ((n - 3) / 2) log(1 - d^2 / 4),
                       n the embedding dimension and d = D[a, n] clamped to [0.5, 2 - 1e-4]
                       (Wu et al., "Sampling matters in deep embedding learning", ICCV 2017;
                       the 0.5 floor is Roth et al.'s setting). The formula is the inverse
                       density of distances between uniform points on the unit sphere, so it
                       assumes unit-norm embeddings and Euclidean d: losses pass the Euclidean
                       view of their geometry (see `MetricLoss.sphere_distances`).

Pairs whose anchor has no negative are dropped, and the anchor counted in `dropped`.

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
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

POSITIVE_STRATEGIES = ("all", "hardest", "nearest", "random")
NEGATIVE_STRATEGIES = ("all", "semihard", "hardest", "distance_weighted")


@dataclass(frozen=True)
class Pairs:
    """Selected (anchor, positive) pairs: `anchors[i]`, `positives[i]` are batch indices [M].

    `dropped` counts the batch's anchors without any positive."""

    anchors: Tensor
    positives: Tensor
    dropped: int

    def __len__(self) -> int:
        return len(self.anchors)


@dataclass(frozen=True)
class Triplets:
    """Selected tuples. `anchors`, `positives` [M]; `negatives` either a LongTensor [M] (one
    negative per pair) or, for `how="all"`, a BoolTensor [B, B] whose row a marks every negative
    of anchor a (rows of unused anchors are all False). `dropped` counts the batch's anchors that
    have no tuple at all."""

    anchors: Tensor
    positives: Tensor
    negatives: Tensor
    dropped: int

    def __len__(self) -> int:
        return len(self.anchors)

    @property
    def all_negatives(self) -> bool:
        return self.negatives.dtype == torch.bool

    def distances(self, D: Tensor, pick: Callable[[Tensor, Tensor], Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """(pos_d [M], neg_d [M, K], valid [M, K]): K = B for all negatives, else K = 1.

        `pick(rows, cols)` reads the single entries D[rows, cols] (see `MetricLoss.forward`)."""
        pos_d = pick(self.anchors, self.positives)
        if self.all_negatives:
            return pos_d, D[self.anchors], self.negatives[self.anchors]
        neg_d = pick(self.anchors, self.negatives).unsqueeze(1)
        return pos_d, neg_d, torch.ones_like(neg_d, dtype=torch.bool)


def same_label_mask(labels: Tensor) -> Tensor:
    """[B, B] bool, True where y_i == y_j and i != j (positives exclude self by index)."""
    return (labels.unsqueeze(0) == labels.unsqueeze(1)).fill_diagonal_(False)


def negative_mask(same: Tensor) -> Tensor:
    """[B, B] bool, True where y_i != y_j (the complement of `same` without the diagonal)."""
    return (~same).fill_diagonal_(False)


def select_positives(D: Tensor, same: Tensor, how: str, k: int = 1) -> Pairs:
    """(anchor, positive) pairs chosen by `how` in {all, hardest, nearest, random}; see module doc.

    `k` (>= 1) picks the k hardest / nearest / random positives per anchor; ignored for `all`.
    """
    _check_choice("positives", how, POSITIVE_STRATEGIES)
    _check_matrix(D, same)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k (positives per anchor) must be an int >= 1; got {k!r}")
    if how == "all":
        anchors, positives = same.nonzero(as_tuple=True)
        return Pairs(anchors, positives, len(D) - int(anchors.unique_consecutive().numel()))
    D = D.detach()
    if how == "nearest":
        score = D.masked_fill(~same, math.inf).neg_()
    elif how == "hardest":
        score = D.masked_fill(~same, -math.inf)
    else:
        score = torch.where(same, random_ranks(D.shape, D.device, D.dtype), -math.inf)
    if k == 1:
        best, index = score.max(dim=1)
        anchors = (best > -math.inf).nonzero().squeeze(1)
        return Pairs(anchors, index[anchors], len(D) - len(anchors))
    k = min(k, D.shape[1])
    top_score, top_index = score.topk(k, dim=1)
    chosen = top_score > -math.inf
    anchors = torch.arange(len(D), device=D.device).unsqueeze(1).expand(-1, k)
    return Pairs(anchors[chosen], top_index[chosen], len(D) - int(chosen[:, 0].sum()))


def select_negatives(D: Tensor, same: Tensor, pairs: Pairs, how: str, margin: float = 0.2, *,
                     dim: int | None = None) -> Triplets:
    """One negative per pair (or all of them) chosen by `how`, relative to the pair's positive.

    `margin` is the semi-hard window; `dim` (the embedding dimension) is required by
    `distance_weighted`, which reads D as Euclidean distances between unit vectors.
    """
    _check_choice("negatives", how, NEGATIVE_STRATEGIES)
    _check_matrix(D, same)
    negatives = negative_mask(same)
    anchors, positives = pairs.anchors, pairs.positives
    if how == "all":
        has_negative = negatives.any(dim=1)
        if not bool(has_negative[anchors].all()):
            keep = has_negative[anchors]
            anchors, positives = anchors[keep], positives[keep]
        used = torch.zeros(len(D), dtype=torch.bool, device=D.device)
        used[anchors] = True
        return Triplets(anchors, positives, negatives & used.unsqueeze(1), len(D) - int(used.sum()))
    if len(anchors) == 0:
        return Triplets(anchors, positives, anchors.clone(), len(D))
    every_row = len(anchors) == len(D) and bool((anchors == torch.arange(len(D), device=D.device)).all())
    rows = D.detach() if every_row else D.detach()[anchors]
    # Non-negatives at +inf: the row minimum is the hardest negative, and +inf never enters a window.
    rows = rows.masked_fill(~negatives if every_row else ~negatives[anchors], math.inf)
    nearest, chosen = rows.min(dim=1)                    # the hardest negative
    if how == "semihard":
        chosen = _semihard(rows, nearest, D.detach()[anchors, positives].unsqueeze(1), margin)
    elif how == "distance_weighted":
        chosen = _distance_weighted(rows, dim)
    if not bool((nearest < math.inf).all()):           # anchors with no negative at all
        keep = nearest < math.inf
        anchors, positives, chosen = anchors[keep], positives[keep], chosen[keep]
    dropped = 0 if (every_row and len(anchors) == len(D)) else len(D) - int(anchors.unique().numel())
    return Triplets(anchors, positives, chosen, dropped)


def random_ranks(shape: tuple[int, int], device: torch.device, dtype: torch.dtype) -> Tensor:
    """[n, m] scores whose every row ranks the m columns in a uniformly random order.

    One random permutation of the columns, cyclically shifted by a random amount per row: the
    argmax of a row over any column subset is uniform over that subset (a permutation composed
    with a fixed shift is again a uniform permutation), at n + m random draws instead of n * m.
    Rows are not independent of each other; each row's choice is exactly uniform."""
    n, m = shape
    permutation = torch.randperm(m, device=device).to(dtype)
    shift = torch.randint(m, (n, 1), device=device).to(dtype)
    return (permutation + shift).remainder_(m)


def _semihard(rows: Tensor, nearest: Tensor, pos_d: Tensor, margin: float) -> Tensor:
    # rows: D with non-negatives at +inf; nearest: their row minima. One argmax: window entries
    # score above every other candidate (uniformly at random among them); without a window
    # entry the largest -D, i.e. the hardest negative, wins.
    window = (rows > pos_d) & (rows < pos_d + margin)
    lift = 1.0 - nearest.clamp_max(0.0).min()                  # > every finite -D
    score = torch.where(window, random_ranks(rows.shape, rows.device, rows.dtype).add_(lift), rows.neg())
    return score.argmax(dim=1)


def _distance_weighted(rows: Tensor, dim: int | None) -> Tensor:
    if dim is None or isinstance(dim, bool) or not isinstance(dim, int) or dim < 2:
        raise ValueError(
            f"negatives='distance_weighted' needs dim, the embedding dimension (an int >= 2); got {dim!r}")
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
    if bool(rounded.any()):      # u rounded up to the row total: take the row's last candidate
        last = (prob[rounded] > 0).cumsum(dim=1).argmax(dim=1)
        chosen[rounded] = last.unsqueeze(1)
    return chosen.squeeze(1)


def _check_choice(kind: str, how: str, allowed: tuple[str, ...]) -> None:
    if how not in allowed:
        raise ValueError(f"unknown {kind} strategy {how!r}; choose one of: {', '.join(allowed)}")


def _check_matrix(D: Tensor, same: Tensor) -> None:
    if D.dim() != 2 or D.shape[0] != D.shape[1] or same.shape != D.shape:
        raise ValueError(
            f"selection needs a square batch matrix D [B, B] and a label mask of the same shape; "
            f"got D {tuple(D.shape)} and mask {tuple(same.shape)}")
