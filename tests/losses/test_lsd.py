import math

import pytest
import torch

import dmllab as dl
from dmllab.losses.lsd import ListwiseSelfDistillation, lists_for


def loop_reference(D, DT, tau, include_self=True):
    """tau^2 * mean_i sum_j p_ij log(p_ij / q_ij) over similarity lists, with Python loops."""
    B = D.shape[0]
    total = 0.0
    for i in range(B):
        cols = [j for j in range(B) if include_self or j != i]
        s = [math.exp(float(D[i, j]) / tau) for j in cols]
        t = [math.exp(float(DT[i, j]) / tau) for j in cols]
        q = [v / sum(s) for v in s]
        p = [v / sum(t) for v in t]
        total += sum(pj * math.log(pj / qj) for pj, qj in zip(p, q, strict=True))
    return tau**2 * total / B


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("tau, include_self", [(1.0, True), (0.5, True), (2.0, False)])
def test_value_matches_loop_reference(dtype, tau, include_self):
    g = torch.Generator().manual_seed(0)
    D = torch.rand(6, 6, generator=g, dtype=dtype) * 2
    DT = torch.rand(6, 6, generator=g, dtype=dtype) * 2
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    lsd = ListwiseSelfDistillation(alpha=1.0, tau=tau, include_self=include_self)
    value = float(lsd(D, DT, labels))
    assert value == pytest.approx(loop_reference(D, DT, tau, include_self), rel=1e-5)


def test_direction_is_teacher_first():
    D = torch.tensor([[0.0, 3.0, 0.1], [3.0, 0.0, 1.0], [0.1, 1.0, 0.0]])
    DT = torch.tensor([[0.0, 0.2, 2.0], [0.2, 0.0, 0.5], [2.0, 0.5, 0.0]])
    labels = torch.tensor([0, 0, 1])
    lsd = ListwiseSelfDistillation(alpha=1.0)
    forward = float(lsd(D, DT, labels))  # KL(teacher || student)
    swapped = float(lsd(DT, D, labels))  # KL(student || teacher)
    assert forward == pytest.approx(loop_reference(D, DT, 1.0))
    assert forward != pytest.approx(swapped, rel=1e-3)


def test_zero_when_teacher_equals_student_and_gradient_only_to_student():
    D = torch.rand(5, 5, requires_grad=True)
    DT = D.detach().clone().requires_grad_(True)
    lsd = ListwiseSelfDistillation(alpha=1.0)
    value = lsd(D, DT, torch.arange(5) % 2)
    assert float(value) == pytest.approx(0.0, abs=1e-7)
    value.backward()
    assert DT.grad is None


def test_invariant_to_sample_order():
    g = torch.Generator().manual_seed(1)
    D, DT = (
        torch.rand(7, 7, generator=g, dtype=torch.float64),
        torch.rand(7, 7, generator=g, dtype=torch.float64),
    )
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    perm = torch.randperm(7, generator=g)
    lsd = ListwiseSelfDistillation(alpha=1.0, beta_neg=0.5)
    original = lsd(D, DT, labels)
    permuted = lsd(D[perm][:, perm], DT[perm][:, perm], labels[perm])
    assert float(original) == pytest.approx(float(permuted), rel=1e-6)


def test_beta_neg_scales_negatives_of_both_lists():
    D = torch.tensor([[0.0, 1.0, 2.0], [1.0, 0.0, 2.0], [2.0, 2.0, 0.0]])
    DT = torch.tensor([[0.0, 0.5, 1.0], [0.5, 0.0, 3.0], [1.0, 3.0, 0.0]])
    labels = torch.tensor([0, 0, 1])
    negative = labels[:, None] != labels[None, :]
    scaled = ListwiseSelfDistillation(alpha=1.0, beta_neg=3.0)(D, DT, labels)
    by_hand = ListwiseSelfDistillation(alpha=1.0)(
        torch.where(negative, 3 * D, D), torch.where(negative, 3 * DT, DT), labels
    )
    assert float(scaled) == pytest.approx(float(by_hand))


def test_schedule_is_zero_in_epoch_zero_and_linear():
    lsd = ListwiseSelfDistillation(alpha=200.0, tau=0.5)
    weights = [lsd.weight(e, 10) for e in range(10)]
    assert weights[0] == 0.0
    assert weights == pytest.approx([20.0 * e for e in range(10)])
    assert lsd.strength == pytest.approx(50.0)
    with pytest.raises(ValueError):
        lsd.weight(10, 10)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"alpha": -1.0},
        {"alpha": 1.0, "tau": 0.0},
        {"alpha": 1.0, "tau": -2.0},
        {"alpha": 1.0, "beta_neg": 0.0},
    ],
)
def test_bad_hyperparameters(kwargs):
    with pytest.raises(ValueError):
        ListwiseSelfDistillation(**kwargs)


def test_needs_a_square_batch_matrix():
    lsd = ListwiseSelfDistillation(alpha=1.0)
    with pytest.raises(ValueError, match="batch matrix"):
        lsd(torch.rand(4, 3), torch.rand(4, 3), torch.arange(4))
    with pytest.raises(ValueError, match="same shape"):
        lsd(torch.rand(4, 4), torch.rand(3, 3), torch.arange(4))


def cosine_list_reference(z, zt, tau):
    """The official path written out: cosine of every pair by hand, then the KL loop."""

    def cosines(x):
        rows = x.tolist()
        norm = [math.sqrt(sum(v * v for v in r)) for r in rows]
        return [
            [
                sum(a * b for a, b in zip(rows[i], rows[j], strict=True)) / (norm[i] * norm[j])
                for j in range(len(rows))
            ]
            for i in range(len(rows))
        ]

    return loop_reference(
        torch.tensor(cosines(z), dtype=torch.float64),
        torch.tensor(cosines(zt), dtype=torch.float64),
        tau,
    )


@pytest.mark.parametrize("geometry", ["euclidean", "sqeuclidean", "cosine"])
@pytest.mark.parametrize("tau", [1.0, 0.5])
def test_official_path_lists_cosines_of_normalised_embeddings(geometry, tau):
    g = torch.Generator().manual_seed(3)
    z = torch.nn.functional.normalize(torch.randn(12, 8, generator=g), dim=1)
    zt = torch.nn.functional.normalize(torch.randn(12, 8, generator=g), dim=1)
    labels = torch.arange(12) % 3
    geom = dl.geometry.build(geometry, 8)
    lists = lists_for(geom, normalized=True)
    assert lists == "cosine"
    lsd = ListwiseSelfDistillation(alpha=200.0, tau=tau, lists=lists)
    value = float(lsd(lsd.similarities(z, geom), lsd.similarities(zt, geom), labels))
    assert value == pytest.approx(cosine_list_reference(z, zt, tau), abs=1e-6)


def test_learned_or_unnormalised_geometries_list_minus_d():
    g = torch.Generator().manual_seed(4)
    z = torch.randn(6, 3, generator=g)
    assert lists_for(dl.geometry.build("euclidean", 3), normalized=False) == "distance"
    assert lists_for(dl.geometry.build("cosine", 3), normalized=False) == "cosine"
    for name in ("bregman", "bregman-maxaffine"):
        geometry = dl.geometry.build(name, 3)
        assert lists_for(geometry, normalized=True) == "distance"
        lsd = ListwiseSelfDistillation(alpha=1.0, lists="distance")
        torch.testing.assert_close(lsd.similarities(z, geometry), -geometry.pairwise(z, z))
        D = geometry.pairwise(z, z)
        assert lsd.similarities(z, geometry, distances=D) is not D


def test_config_default_trains_lsd_on_the_official_path():
    config = dl.Config(lsd_alpha=200.0)
    geometry = dl.geometry.build(config.geometry, config.embedding_dim)
    assert config.normalize and lists_for(geometry, config.normalize) == "cosine"
    loss = dl.build.build_loss(config, geometry)
    assert loss.reduction == "mean"  # the official triplet criterion averages all triplets


def test_unknown_lists_are_refused():
    with pytest.raises(ValueError, match="cosine, distance"):
        ListwiseSelfDistillation(alpha=1.0, lists="dot")
