import math

import pytest
import torch

from dmllab.losses import same_label_mask, select_negatives, select_positives
from dmllab.losses.strategies import (
    NEGATIVES,
    POSITIVES,
    NegativeStrategy,
    Pairs,
    PositiveStrategy,
    SingleNegatives,
    Triplets,
    different_label_mask,
)

LABELS = torch.tensor([0, 0, 0, 1, 1, 1, 1, 2, 2, 3])  # class 3 is a singleton


def _asymmetric_D(n, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    D = torch.rand(n, n, generator=g, dtype=dtype) * 2.0  # D[i, j] != D[j, i]
    return D.fill_diagonal_(0.0)


def _positives(a, labels=LABELS):
    return [j for j in range(len(labels)) if j != a and labels[j] == labels[a]]


def _negatives(a, labels=LABELS):
    return [j for j in range(len(labels)) if labels[j] != labels[a]]


def test_same_label_mask_matches_loop():
    same = same_label_mask(LABELS)
    expected = [[i != j and LABELS[i] == LABELS[j] for j in range(10)] for i in range(10)]
    assert same.tolist() == expected


@pytest.mark.parametrize("how", ["nearest", "hardest"])
def test_deterministic_positives_match_loop(how):
    D = _asymmetric_D(10)
    pairs = select_positives(D, same_label_mask(LABELS), how)
    expected = []
    for a in range(10):
        cands = _positives(a)
        if cands:
            pick = min if how == "nearest" else max
            expected.append((a, pick(cands, key=lambda j: D[a, j].item())))
    assert list(zip(pairs.anchors.tolist(), pairs.positives.tolist(), strict=True)) == expected
    assert pairs.dropped == 1  # the singleton anchor 9


def test_k_nearest_positives_match_loop_and_keep_short_rows():
    D = _asymmetric_D(10, seed=1)
    pairs = select_positives(D, same_label_mask(LABELS), "nearest", k=2)
    for a in range(10):
        got = set(pairs.positives[pairs.anchors == a].tolist())
        cands = sorted(_positives(a), key=lambda j: D[a, j].item())
        assert got == set(cands[:2])  # class 2 has only one positive


def test_all_positives_are_every_same_label_pair():
    pairs = select_positives(_asymmetric_D(10), same_label_mask(LABELS), "all")
    expected = [(a, p) for a in range(10) for p in _positives(a)]
    assert sorted(zip(pairs.anchors.tolist(), pairs.positives.tolist(), strict=True)) == expected


def test_nearest_positive_excludes_the_anchor_by_index_with_duplicates():
    z = torch.tensor([[0.0, 0.0], [0.0, 0.0], [5.0, 0.0], [1.0, 1.0], [1.0, 1.0]])
    labels = torch.tensor([0, 0, 0, 1, 1])
    D = torch.cdist(z, z)  # D[0, 1] = 0 = D[0, 0]
    pairs = select_positives(D, same_label_mask(labels), "nearest")
    chosen = pairs.positives.tolist()
    assert (
        chosen[:2] == [1, 0] and chosen[3:] == [4, 3] and chosen[2] in (0, 1)
    )  # 0 and 1 tie for anchor 2
    assert (pairs.anchors != pairs.positives).all()


def test_random_positives_are_uniform_and_seeded():
    D = _asymmetric_D(10)
    same = same_label_mask(LABELS)
    torch.manual_seed(0)
    first = select_positives(D, same, "random")
    torch.manual_seed(0)
    again = select_positives(D, same, "random")
    assert torch.equal(first.positives, again.positives)
    counts = torch.zeros(10, 10)
    for _ in range(1500):
        pairs = select_positives(D, same, "random")
        counts[pairs.anchors, pairs.positives] += 1
    assert (counts[~same] == 0).all()
    for a in range(9):
        share = counts[a, _positives(a)] / 1500
        assert torch.allclose(share, torch.full_like(share, 1 / len(_positives(a))), atol=0.04)


def test_negatives_hardest_and_all_match_loop():
    D = _asymmetric_D(10, seed=2)
    same = same_label_mask(LABELS)
    pairs = select_positives(D, same, "all")
    hardest = select_negatives(D, same, pairs, "hardest")
    for a, n in zip(hardest.anchors.tolist(), hardest.negatives.tolist(), strict=True):
        assert n == min(_negatives(a), key=lambda j: D[a, j].item())
    every = select_negatives(D, same, pairs, "all")
    for a in range(10):
        assert [j for j in range(10) if every.negatives[a, j]] == (
            _negatives(a) if _positives(a) else []
        )
    assert every.dropped == 1


def test_semihard_is_relative_to_the_chosen_positive_with_hardest_fallback():
    D = _asymmetric_D(10, seed=3)
    same = same_label_mask(LABELS)
    margin = 0.3
    torch.manual_seed(0)
    pairs = select_positives(D, same, "random")
    seen_window = seen_fallback = 0
    for _ in range(50):
        tri = select_negatives(D, same, pairs, "semihard", margin)
        for a, p, n in zip(
            tri.anchors.tolist(), tri.positives.tolist(), tri.negatives.tolist(), strict=True
        ):
            window = [j for j in _negatives(a) if D[a, p] < D[a, j] < D[a, p] + margin]
            if window:
                assert n in window
                seen_window += 1
            else:
                assert n == min(_negatives(a), key=lambda j: D[a, j].item())
                seen_fallback += 1
    assert seen_window and seen_fallback


def test_distance_weighted_follows_the_inverse_sphere_density():
    dim = 8
    D = torch.tensor(
        [[0.0, 0.3, 0.6, 1.0, 1.4], [0.3, 0.0, 1.0, 1.0, 1.0]] + [[1.0] * 5] * 3,
        dtype=torch.float64,
    )
    labels = torch.tensor([0, 0, 1, 2, 3])
    same = same_label_mask(labels)
    pairs = Pairs(torch.zeros(4000, dtype=torch.long), torch.ones(4000, dtype=torch.long), 0)
    torch.manual_seed(0)
    tri = select_negatives(D, same, pairs, "distance_weighted", dim=dim)
    freq = torch.bincount(tri.negatives, minlength=5)[2:].double() / 4000

    def weight(d):
        d = max(d, 0.5)
        return math.exp((2 - dim) * math.log(d) - (dim - 3) / 2 * math.log(1 - d * d / 4))

    w = torch.tensor([weight(d) for d in (0.6, 1.0, 1.4)], dtype=torch.float64)
    assert torch.allclose(freq, w / w.sum(), atol=0.03)
    with pytest.raises(ValueError, match="needs dim"):
        select_negatives(D, same, pairs, "distance_weighted")


def test_anchors_without_negatives_are_dropped():
    labels = torch.tensor([0, 0, 0])
    same = same_label_mask(labels)
    D = _asymmetric_D(3)
    tri = select_negatives(D, same, select_positives(D, same, "all"), "hardest")
    assert len(tri) == 0 and tri.dropped == 3


def test_unknown_strategies_and_bad_k_raise():
    D, same = _asymmetric_D(10), same_label_mask(LABELS)
    with pytest.raises(
        ValueError, match="unknown positives strategy 'easy'; choose one of: all, hardest"
    ):
        select_positives(D, same, "easy")
    with pytest.raises(ValueError, match="unknown negatives strategy"):
        select_negatives(D, same, select_positives(D, same, "all"), "soft")
    with pytest.raises(ValueError, match=r"k .* must be an int >= 1"):
        select_positives(D, same, "nearest", k=0)
    with pytest.raises(ValueError, match="square batch matrix"):
        select_positives(D[:3], same, "nearest")


# ------------------------------------------------------------ the registries on a rectangular D
# B = 6 anchors (the batch) against R = 10 references: the batch itself (anchor a is column a),
# then 4 memory columns. Anchor 4 (label 2) has no positive; memory column 9 (label 4) no anchor.
BATCH = torch.tensor([0, 0, 1, 1, 2, 3])
REFERENCES = torch.cat([BATCH, torch.tensor([0, 1, 3, 4])])
OWN = torch.arange(len(BATCH))


def _rectangular(seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    D = (
        0.5 + torch.rand(len(BATCH), len(REFERENCES), generator=g, dtype=dtype) * 1.4
    )  # within [0.5, 1.9]
    D[OWN, OWN] = 0.0  # each anchor's own column: distance 0, never a positive or negative
    return D


def _masks():
    return same_label_mask(BATCH, REFERENCES, own=OWN), different_label_mask(BATCH, REFERENCES)


def _ref_positives(a):
    return [r for r in range(len(REFERENCES)) if r != a and REFERENCES[r] == BATCH[a]]


def _ref_negatives(a):
    return [r for r in range(len(REFERENCES)) if REFERENCES[r] != BATCH[a]]


def _positives_reference(name, D, pairs, k):
    """The loop reference of each registered positives strategy, checked on `pairs`."""
    for a in range(len(BATCH)):
        got = pairs.positives[pairs.anchors == a].tolist()
        cands = _ref_positives(a)
        by_distance = sorted(cands, key=lambda r: D[a, r].item())
        expected = {"all": cands, "nearest": by_distance[:k], "hardest": by_distance[::-1][:k]}.get(
            name
        )
        if expected is not None:
            assert sorted(got) == sorted(expected), (name, a)
        else:  # random: k distinct candidates
            assert set(got) <= set(cands) and len(set(got)) == len(got) == min(k, len(cands)), (
                name,
                a,
            )


def _negatives_reference(name, D, tri, margin):
    for i, (a, p) in enumerate(zip(tri.anchors.tolist(), tri.positives.tolist(), strict=True)):
        cands = _ref_negatives(a)
        if name == "all":
            assert [r for r in range(len(REFERENCES)) if tri.negatives[a, r]] == cands
            continue
        n = tri.negatives[i].item()
        hardest = min(cands, key=lambda r: D[a, r].item())
        window = [r for r in cands if D[a, p] < D[a, r] < D[a, p] + margin]
        if name == "hardest" or (name == "semihard" and not window):
            assert n == hardest, (name, a, p)
        elif name == "semihard":
            assert n in window
        else:  # distance_weighted: any candidate
            assert n in cands


def test_every_registered_strategy_has_a_loop_reference():
    referenced = (
        {"all", "hardest", "nearest", "random"},
        {"all", "semihard", "hardest", "distance_weighted"},
    )
    missing = sorted((set(POSITIVES) - referenced[0]) | (set(NEGATIVES) - referenced[1]))
    assert not missing, f"add a loop reference for strategy(ies) {missing} to this file"
    assert referenced[0] <= set(POSITIVES) and referenced[1] <= set(NEGATIVES)


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("name", sorted(POSITIVES))
def test_registered_positives_follow_the_contract_on_a_rectangular_matrix(name, k):
    D, (same, _) = _rectangular(), _masks()
    strategy = POSITIVES[name](k=k)
    assert isinstance(strategy, PositiveStrategy)
    torch.manual_seed(0)
    pairs = strategy(D, same)
    assert isinstance(pairs, Pairs) and pairs.anchors.dtype == pairs.positives.dtype == torch.long
    assert bool(same[pairs.anchors, pairs.positives].all())  # never the anchor's own column
    assert pairs.anchors.tolist() == sorted(pairs.anchors.tolist())  # grouped by anchor
    assert pairs.dropped == 1 and 4 not in pairs.anchors.tolist()  # anchor 4 has no positive
    _positives_reference(name, D, pairs, k if name != "all" else None)


@pytest.mark.parametrize("name", sorted(NEGATIVES))
def test_registered_negatives_follow_the_contract_on_a_rectangular_matrix(name):
    D, (same, different) = _rectangular(seed=1), _masks()
    pairs = POSITIVES["all"]()(D, same)
    strategy = NEGATIVES[name](margin=0.3)
    assert isinstance(strategy, NegativeStrategy)
    torch.manual_seed(0)
    tri = strategy(D, different, pairs, dim=8)
    assert isinstance(tri, Triplets) and tri.all_negatives == strategy.returns_mask
    if tri.all_negatives:
        assert tri.negatives.shape == D.shape
    else:
        assert len(tri.negatives) == len(tri) and bool(different[tri.anchors, tri.negatives].all())
    assert tri.dropped == 1
    _negatives_reference(name, D, tri, margin=0.3)


def test_the_anchor_is_excluded_by_index_and_own_none_keeps_every_column():
    D = _rectangular()
    D[0, 6] = 0.0  # memory column 6 (label 0): a duplicate of anchor 0, at distance 0
    same, _ = _masks()
    nearest = POSITIVES["nearest"]()(D, same)
    assert (nearest.anchors != nearest.positives).all()  # own columns (distance 0) never
    assert nearest.positives[nearest.anchors == 0].item() == 6  # the duplicate counts
    memory_only = same_label_mask(
        BATCH, REFERENCES[len(BATCH) :]
    )  # anchors not among the references
    assert memory_only.tolist() == [
        [bool(BATCH[a] == r) for r in REFERENCES[len(BATCH) :]] for a in range(len(BATCH))
    ]


def test_the_square_lookups_are_the_registered_strategies_on_the_batch_matrix():
    D, same = _asymmetric_D(10, seed=4), same_label_mask(LABELS)
    for name in POSITIVES:
        torch.manual_seed(1)
        by_name = select_positives(D, same, name, k=2)
        torch.manual_seed(1)
        registered = POSITIVES[name](k=2)(D, same)
        assert (
            torch.equal(by_name.positives, registered.positives)
            and by_name.dropped == registered.dropped
        )
    pairs = select_positives(D, same, "random")
    for name in NEGATIVES:
        torch.manual_seed(2)
        by_name = select_negatives(D / 2, same, pairs, name, 0.3, dim=6)
        torch.manual_seed(2)
        registered = NEGATIVES[name](margin=0.3)(D / 2, different_label_mask(LABELS), pairs, dim=6)
        assert (
            torch.equal(by_name.negatives, registered.negatives)
            and by_name.dropped == registered.dropped
        )


def test_rectangular_shapes_are_checked():
    D, (same, different) = _rectangular(), _masks()
    with pytest.raises(ValueError, match=r"matrix D \[B, R\] and a label mask of the same shape"):
        POSITIVES["nearest"]()(D, same[:, :-1])
    with pytest.raises(ValueError, match=r"matrix D \[B, R\]"):
        NEGATIVES["hardest"]()(D[:, :-1], different, POSITIVES["all"]()(D, same))


# ------------------------------------------ a strategy registered by a user, used by a loss by name
class FirstPositive(PositiveStrategy):
    """Toy: the candidate of lowest index."""

    def choose(self, D, same):
        has = same.any(dim=1)
        anchors = has.nonzero().squeeze(1)
        return Pairs(anchors, same.int().argmax(dim=1)[anchors], len(D) - len(anchors))


class FarthestNegative(SingleNegatives):
    """Toy: the farthest negative of the anchor."""

    def one(self, rows, nearest, hardest, pos_d, dim):
        return rows.masked_fill(rows == math.inf, -math.inf).argmax(dim=1)


def test_a_registered_toy_strategy_is_usable_by_every_loss_by_name(monkeypatch):
    from dmllab.geometry import Euclidean
    from dmllab.losses import LOSSES, TupleLoss, build

    monkeypatch.setitem(POSITIVES, "first", FirstPositive)
    monkeypatch.setitem(NEGATIVES, "farthest", FarthestNegative)
    z = torch.randn(10, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    loss_fn = build("triplet", Euclidean(), positives="first", negatives="farthest", margin=5.0)
    assert (
        isinstance(loss_fn.positive_strategy, FirstPositive)
        and loss_fn.negative_strategy.margin == 5.0
    )
    D = torch.cdist(z, z)
    terms = []
    for a in range(10):
        if _positives(a):
            p, n = _positives(a)[0], max(_negatives(a), key=lambda j: D[a, j].item())
            terms.append(max(D[a, p] - D[a, n] + 5.0, 0.0))
    assert float(loss_fn(z, LABELS)) == pytest.approx(float(sum(terms) / len(terms)), rel=1e-9)
    tuple_losses = [name for name, cls in LOSSES.items() if issubclass(cls, TupleLoss)]
    assert {"contrastive", "margin", "multi_similarity", "triplet"} <= set(tuple_losses)
    for name in tuple_losses:  # every tuple loss takes them by name
        assert torch.isfinite(
            build(name, Euclidean(), positives="first", negatives="farthest")(z, LABELS)
        )
    with pytest.raises(TypeError, match="positives"):  # a loss that reads no tuples refuses them
        build("prototype_ce", Euclidean(), positives="first")
