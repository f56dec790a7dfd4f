"""Every base loss against a slow loop over its tuples, in float32 and float64, on an
asymmetric D: the batch against itself (R = B) and against a reference set (R > B)."""

import math

import pytest
import torch
from torch.nn import functional as F

from dmllab.build import build_loss
from dmllab.config import Config
from dmllab.geometry import Cosine, Euclidean, SquaredEuclidean
from dmllab.losses import (
    LOSSES,
    ContrastiveLoss,
    MarginLoss,
    MetricLoss,
    MultiSimilarityLoss,
    PrototypeCrossEntropy,
    TripletLoss,
    TupleLoss,
    same_label_mask,
)
from dmllab.losses.base import Matrix
from dmllab.losses.strategies import different_label_mask

LABELS = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
STRATEGIES = [
    ("all", "all"),
    ("nearest", "semihard"),
    ("hardest", "hardest"),
    ("random", "distance_weighted"),
    ("nearest", "all"),
]
TOL = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float64: dict(rtol=1e-10, atol=1e-10)}


def _embeddings(dtype, seed=0, n=12, d=4):
    z = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    return F.normalize(z, dim=1).requires_grad_(True)


def _asymmetric(z, ref=None):
    """A dissimilarity with D[i, j] != D[j, i] that depends on z and ref (gradients flow)."""
    ref = z if ref is None else ref
    v = torch.linspace(-1.0, 1.0, z.shape[1], dtype=z.dtype)
    return Euclidean().pairwise(z, ref) + 0.2 * torch.sigmoid(ref @ v).unsqueeze(0)


def _tuples(loss, D, seed, ref_labels=None, own=None):
    """The tuples the loss saw: the same selection replayed with the same seed."""
    torch.manual_seed(seed)
    same = same_label_mask(LABELS, ref_labels, own=own)
    different = different_label_mask(LABELS, ref_labels)
    tri = loss.select(Matrix(D.detach(), lambda r, c: D[r, c], same, different, LABELS, 4))
    if ref_labels is None:  # the batch itself: anchor a is column a
        ref_labels, own = LABELS, torch.arange(len(LABELS))
    out = []
    for i, (a, p) in enumerate(zip(tri.anchors.tolist(), tri.positives.tolist(), strict=True)):
        negs = (
            [j for j in range(D.shape[1]) if tri.negatives[a, j]]
            if tri.all_negatives
            else [tri.negatives[i].item()]
        )
        # the contract, by loop: a positive shares the label and is not the anchor's own row
        assert ref_labels[p] == LABELS[a] and (own is None or p != own[a])
        assert all(ref_labels[n] != LABELS[a] for n in negs)
        out.append((a, p, negs))
    return out


def _mean(terms, nonzero):
    kept = [t for t in terms if t > 0] if nonzero else terms
    return sum(kept) / len(kept) if kept else torch.zeros(())


def ref_triplet(loss, D, tuples):
    terms = [torch.relu(D[a, p] - D[a, n] + loss.margin) for a, p, negs in tuples for n in negs]
    return _mean(terms, loss.reduction == "nonzero")


def ref_contrastive(loss, D, tuples):
    pos = [torch.relu(D[a, p] - loss.pos_margin) for a, p, _ in tuples]
    if loss.negatives == "all":
        neg_pairs = {(a, n) for a, _, negs in tuples for n in negs}
    else:
        neg_pairs = [(a, negs[0]) for a, _, negs in tuples]
    neg = [torch.relu(loss.margin - D[a, n]) for a, n in neg_pairs]
    nonzero = loss.reduction == "nonzero"
    return _mean(pos, nonzero) + _mean(neg, nonzero)


def ref_margin(loss, D, tuples):
    beta = loss.beta[0]
    terms = []
    for a, p, negs in tuples:
        for n in negs:
            terms += [
                torch.relu(loss.margin + D[a, p] - beta),
                torch.relu(loss.margin - D[a, n] + beta),
            ]
    active = sum(1 for t in terms if t > 0)
    return sum(terms) / max(active, 1)


def ref_multi_similarity(loss, D, tuples):
    S = 1 - D
    per_anchor = []
    for a in sorted({t[0] for t in tuples}):
        pos = [p for b, p, _ in tuples if b == a]
        neg = sorted({n for b, _, negs in tuples if b == a for n in negs})
        if loss.negatives == "all":
            min_pos, max_neg = min(S[a, p].item() for p in pos), max(S[a, n].item() for n in neg)
            neg = [n for n in neg if S[a, n] + loss.mining_margin > min_pos]
            pos = [p for p in pos if S[a, p] - loss.mining_margin < max_neg]
        pos_sum = sum(
            (torch.exp(-loss.alpha * (S[a, p] - loss.base)) for p in pos), D.new_zeros(())
        )
        neg_sum = sum((torch.exp(loss.beta * (S[a, n] - loss.base)) for n in neg), D.new_zeros(()))
        per_anchor.append(torch.log(1 + pos_sum) / loss.alpha + torch.log(1 + neg_sum) / loss.beta)
    return sum(per_anchor) / len(per_anchor)


REFERENCES = {
    TripletLoss: ref_triplet,
    ContrastiveLoss: ref_contrastive,
    MarginLoss: ref_margin,
    MultiSimilarityLoss: ref_multi_similarity,
}


def _make(cls, positives, negatives, geometry=None, **options):
    if cls is MarginLoss:
        options.setdefault("learn_beta", False)
    geometry = Euclidean() if geometry is None else geometry
    return cls(geometry, positives=positives, negatives=negatives, margin=0.3, **options)


# A reference set beside the batch: 8 memory rows, class 4 only there (more negatives), the
# batch's classes with 1-2 rows each (more positives).
MEMORY_LABELS = torch.tensor([0, 1, 1, 2, 4, 4, 3, 0])
REFERENCE_SETS = ["batch", "batch+memory", "memory"]


def _reference(kind, z):
    """(ref, ref_labels, own) of a loss call: the batch itself (all None); the batch followed by
    the memory, the anchors' own rows first; the memory alone (no own rows)."""
    memory = _embeddings(z.dtype, seed=11, n=len(MEMORY_LABELS)).detach()
    if kind == "batch":
        return None, None, None
    if kind == "memory":
        return memory, MEMORY_LABELS, None
    return torch.cat([z, memory]), torch.cat([LABELS, MEMORY_LABELS]), torch.arange(len(LABELS))


@pytest.mark.parametrize("reference", REFERENCE_SETS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("positives,negatives", STRATEGIES)
@pytest.mark.parametrize("cls", list(REFERENCES), ids=lambda c: c.__name__)
def test_loss_matches_loop_reference(cls, positives, negatives, dtype, reference):
    z = _embeddings(dtype)
    ref, ref_labels, own = _reference(reference, z)
    D = _asymmetric(z, ref)
    loss = _make(cls, positives, negatives)
    torch.manual_seed(7)
    value = loss(z, LABELS, ref, ref_labels, distances=D, own=own)
    (grad,) = torch.autograd.grad(value, z, retain_graph=True)
    expected = REFERENCES[cls](loss, D, _tuples(loss, D, 7, ref_labels, own))
    (expected_grad,) = torch.autograd.grad(expected, z)
    torch.testing.assert_close(value, expected, **TOL[dtype])
    torch.testing.assert_close(grad, expected_grad, **TOL[dtype])


@pytest.mark.parametrize("positives,negatives", STRATEGIES)
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_the_batch_as_an_explicit_reference_set_gives_the_same_numbers(name, positives, negatives):
    """ref=None is the batch with own[a] = a: the same values, gradients and statistics, exactly
    (the same operations), for every loss and strategy."""
    z = _embeddings(torch.float32, seed=6)
    cls = LOSSES[name]
    loss = _make(cls, positives, negatives) if issubclass(cls, TupleLoss) else cls(Euclidean())
    results = []
    for extra in ({}, dict(ref=z, ref_labels=LABELS, own=torch.arange(len(LABELS)))):
        torch.manual_seed(5)
        value = loss(z, LABELS, **extra)
        results.append((value, *torch.autograd.grad(value, z), dict(loss.last_stats)))
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])
    assert results[0][2] == pytest.approx(results[1][2], nan_ok=True, rel=0, abs=0)


@pytest.mark.parametrize("cls", [TripletLoss, ContrastiveLoss], ids=lambda c: c.__name__)
def test_mean_reduction_matches_loop(cls):
    z = _embeddings(torch.float64, seed=1)
    D = _asymmetric(z)
    loss = _make(cls, "all", "all", reduction="mean")
    torch.testing.assert_close(
        loss(z, LABELS, distances=D), REFERENCES[cls](loss, D, _tuples(loss, D, 0))
    )


def test_k_nearest_positives_feed_every_pair_loss():
    z = _embeddings(torch.float64, seed=2)
    D = _asymmetric(z)
    for cls in REFERENCES:
        loss = _make(cls, "nearest", "hardest", k_positives=2)
        tuples = _tuples(loss, D, 0)
        assert len(tuples) == 2 * len(LABELS)
        torch.testing.assert_close(loss(z, LABELS, distances=D), REFERENCES[cls](loss, D, tuples))


def test_prototype_cross_entropy_matches_loop():
    z = _embeddings(torch.float64, seed=3)
    geometry = SquaredEuclidean()
    loss = PrototypeCrossEntropy(geometry, temperature=0.5)
    value = loss(z, LABELS)
    total = 0.0
    classes = sorted(set(LABELS.tolist()))
    centres = [z[c == LABELS].mean(dim=0) for c in classes]
    for i in range(len(z)):
        logits = torch.stack([-((z[i] - c) ** 2).sum() / 0.5 for c in centres])
        total = total - torch.log_softmax(logits, dim=0)[classes.index(LABELS[i].item())]
    torch.testing.assert_close(value, total / len(z))
    assert loss.last_stats["anchors"] == len(z)


@pytest.mark.parametrize("reference", ["batch+memory", "memory"])
def test_prototype_cross_entropy_reads_the_class_means_of_the_reference_set(reference):
    z = _embeddings(torch.float64, seed=3)
    ref, ref_labels, own = _reference(reference, z)
    loss = PrototypeCrossEntropy(SquaredEuclidean(), temperature=0.5)
    value = loss(z, LABELS, ref, ref_labels, own=own)
    classes = sorted(set(ref_labels.tolist()))  # the reference's classes, 4 among them
    centres = [ref[c == ref_labels].mean(dim=0) for c in classes]
    total = 0.0
    for i in range(len(z)):
        logits = torch.stack([-((z[i] - c) ** 2).sum() / 0.5 for c in centres])
        total = total - torch.log_softmax(logits, dim=0)[classes.index(LABELS[i].item())]
    torch.testing.assert_close(value, total / len(z))
    (grad,) = torch.autograd.grad(value, z)
    (expected,) = torch.autograd.grad(total / len(z), z)
    torch.testing.assert_close(grad, expected)
    with pytest.raises(ValueError, match=r"batch label\(s\) \[3\] have no sample in the reference"):
        loss(z, LABELS, ref[ref_labels != 3], ref_labels[ref_labels != 3])


def test_prototype_is_the_second_argument():
    calls = []

    class Recording(SquaredEuclidean):
        def _pairwise(self, a, b):
            calls.append((a.shape[0], b.shape[0]))
            return super()._pairwise(a, b)

    PrototypeCrossEntropy(Recording())(_embeddings(torch.float64), LABELS)
    assert calls == [(12, 4)]


@pytest.mark.parametrize("cls", list(LOSSES.values()), ids=lambda c: c.__name__)
def test_gradcheck(cls):
    z = _embeddings(torch.float64, seed=4, n=8, d=3).detach().requires_grad_(True)
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2])
    kwargs = (
        dict(positives="nearest", negatives="hardest", margin=0.5)
        if issubclass(cls, TupleLoss)
        else {}
    )
    loss = cls(Euclidean(), **kwargs)
    assert torch.autograd.gradcheck(lambda x: loss(x, labels), (z,))


def test_distances_passed_in_equal_computed_ones_and_stats():
    z = _embeddings(torch.float32, seed=5)
    for cls in REFERENCES:
        loss = _make(cls, "nearest", "hardest")
        inner = loss(z, LABELS)
        outer = loss(z, LABELS, distances=loss.geometry.pairwise(z, z))
        torch.testing.assert_close(inner, outer)
        stats = loss.last_stats
        assert set(stats) >= {"active", "anchors", "dropped", "pos_dist", "neg_dist"}
        assert stats["anchors"] + stats["dropped"] == len(LABELS)
        assert all(isinstance(v, float) for v in stats.values())


def test_singleton_anchors_are_dropped_not_paired_with_themselves():
    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    z = _embeddings(torch.float64, n=6)
    for cls in REFERENCES:
        loss = _make(cls, "nearest", "semihard")
        value = loss(z, labels)
        assert torch.isfinite(value)
        assert loss.last_stats["dropped"] == 1 and loss.last_stats["anchors"] == 5


@pytest.mark.parametrize("negatives", ["all", "semihard", "hardest", "distance_weighted"])
def test_a_batch_without_positives_gives_zero_loss_and_drops_every_anchor(negatives):
    z = _embeddings(torch.float64, n=4)
    for cls in REFERENCES:
        loss = _make(cls, "nearest", negatives)
        value = loss(z, torch.tensor([0, 1, 2, 3]))
        assert (
            value.item() == 0.0
            and loss.last_stats["dropped"] == 4
            and loss.last_stats["active"] == 0
        )


def test_margin_beta_learns_and_per_class_beta():
    z = _embeddings(torch.float64)
    loss = MarginLoss(Euclidean(), positives="nearest", negatives="hardest", margin=0.2, beta=1.2)
    loss(z, LABELS).backward()
    assert loss.beta.grad is not None and loss.beta.grad.abs().sum() > 0
    per_class = MarginLoss(Cosine(), per_class_beta=True, num_classes=4)
    per_class(z, LABELS).backward()
    assert per_class.beta.shape == (4,) and (per_class.beta.grad != 0).sum() >= 2
    with pytest.raises(ValueError, match="needs num_classes"):
        MarginLoss(Euclidean(), per_class_beta=True)
    with pytest.raises(ValueError, match="built for 4 classes"):
        per_class(z, LABELS + 3)


def test_bad_inputs_raise_clear_errors():
    loss = TripletLoss(Euclidean())
    z = _embeddings(torch.float32)
    with pytest.raises(ValueError, match="one label per embedding"):
        loss(z, LABELS[:-1])
    with pytest.raises(ValueError, match="fewer than 2 classes"):
        loss(z, torch.zeros(12, dtype=torch.long))
    with pytest.raises(ValueError, match="NaN"):
        loss(z.detach().clone().fill_(math.nan), LABELS)
    with pytest.raises(ValueError, match="integer class ids"):
        loss(z, LABELS.float())
    with pytest.raises(ValueError, match=r"pairwise\(z, ref\) \[B, R\] .* B=12, R=12"):
        loss(z, LABELS, distances=torch.zeros(3, 3))
    memory, memory_labels = z[:5].detach(), LABELS[:5]
    with pytest.raises(ValueError, match=r"B=12, R=17; got shape \(12, 12\)"):
        loss(
            z,
            LABELS,
            torch.cat([z, memory]),
            torch.cat([LABELS, memory_labels]),
            torch.zeros(12, 12),
        )
    with pytest.raises(ValueError, match="pass ref and ref_labels together"):
        loss(z, LABELS, ref=memory)
    with pytest.raises(ValueError, match="ref must have the embeddings' dimension d=4"):
        loss(z, LABELS, memory[:, :3], memory_labels)
    with pytest.raises(ValueError, match="ref_labels must be integer class ids"):
        loss(z, LABELS, memory, memory_labels.float())
    with pytest.raises(ValueError, match="ref contain NaN"):
        loss(z, LABELS, memory.clone().fill_(math.nan), memory_labels)
    with pytest.raises(ValueError, match="without ref the reference is the batch"):
        loss(z, LABELS, own=torch.arange(12))
    with pytest.raises(ValueError, match="own must give each anchor's row in the reference set"):
        loss(z, LABELS, memory, memory_labels, own=torch.arange(12))  # rows 5.. do not exist
    with pytest.raises(ValueError, match="own must give each anchor's row"):
        loss(
            z,
            LABELS,
            torch.cat([memory, z]),
            torch.cat([memory_labels, LABELS]),
            own=torch.arange(12),
        )
    with pytest.raises(ValueError, match="unknown positives strategy 'easy'"):
        TripletLoss(Euclidean(), positives="easy")
    with pytest.raises(ValueError, match="unknown negatives strategy"):
        MarginLoss(Euclidean(), negatives="hard")
    with pytest.raises(ValueError, match="reduction"):
        TripletLoss(Euclidean(), reduction="sum")


def test_build_registry_matches_config_and_maps_fields():
    # the loss names of the public contract; Config reads the registry itself
    assert {"contrastive", "margin", "multi_similarity", "prototype_ce", "triplet"} <= set(LOSSES)
    for name in LOSSES:
        if not issubclass(LOSSES[name], TupleLoss):  # takes no selection keyword: none passed
            loss = build_loss(Config(loss=name), Cosine(), num_classes=10)
            assert isinstance(loss, LOSSES[name]) and not hasattr(loss, "positives")
            continue
        config = Config(
            loss=name, positives="nearest", negatives="hardest", margin=0.4, k_positives=2
        )
        loss = build_loss(config, Cosine(), num_classes=10)
        assert isinstance(loss, MetricLoss) and isinstance(loss, LOSSES[name])
        assert (loss.positives, loss.negatives, loss.margin, loss.k_positives) == (
            "nearest",
            "hardest",
            0.4,
            2,
        )
    margin = build_loss(
        Config(loss="margin", loss_options={"per_class_beta": True}), Euclidean(), num_classes=10
    )
    assert margin.beta.shape == (10,)
    assert (
        build_loss(
            Config(loss="triplet", loss_options={"reduction": "mean"}), Euclidean()
        ).reduction
        == "mean"
    )
    with pytest.raises(
        ValueError, match=r"has no option\(s\) temperature; its options are: pos_margin, reduction"
    ):
        build_loss(Config(loss="contrastive", loss_options={"temperature": 1.0}), Euclidean())


def _entry_geometries():
    from dmllab.geometry.bregman import Bregman

    torch.manual_seed(0)
    return [
        Euclidean(),
        SquaredEuclidean(),
        Cosine(),
        Bregman(4).double(),
        Bregman(4).double().reversed(),
    ]


@pytest.mark.parametrize("reference", REFERENCE_SETS)
@pytest.mark.parametrize("geometry", _entry_geometries(), ids=lambda g: g.name)
@pytest.mark.parametrize("cls", list(REFERENCES), ids=lambda c: c.__name__)
def test_picked_entries_path_equals_the_full_matrix_path(cls, geometry, reference):
    """Without `distances=`, single-negative strategies differentiate geometry.entries only:
    the same loss and gradients as reading the differentiable matrix D = pairwise(z, ref)."""
    z = _embeddings(torch.float64, seed=4)
    ref, ref_labels, own = _reference(reference, z)
    for positives, negatives in [(p, n) for p, n in STRATEGIES if n != "all"] + [
        ("all", "hardest")
    ]:
        loss = cls(geometry, positives=positives, negatives=negatives, margin=0.3, k_positives=2)
        inputs = (z, *geometry.parameters())
        torch.manual_seed(3)
        direct = loss(z, LABELS, ref, ref_labels, own=own)
        direct_grads = torch.autograd.grad(
            direct, inputs, allow_unused=True, materialize_grads=True
        )
        direct_stats = dict(loss.last_stats)
        torch.manual_seed(3)
        D = geometry.pairwise(z, z if ref is None else ref)
        full = loss(z, LABELS, ref, ref_labels, D, own=own)
        full_grads = torch.autograd.grad(full, inputs, allow_unused=True, materialize_grads=True)
        torch.testing.assert_close(direct, full, msg=f"{positives}/{negatives}")
        torch.testing.assert_close(direct_grads, full_grads)
        assert direct_stats == pytest.approx(loss.last_stats, nan_ok=True)
