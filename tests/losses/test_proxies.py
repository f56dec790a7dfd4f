"""Proxy-Anchor and Proxy-NCA against slow loops over proxies and samples, and against
pytorch-metric-learning's ProxyAnchorLoss / ProxyNCALoss on the same inputs (values, and the
gradients of the embeddings and of the proxies), with PML's conventions matched explicitly."""

import math

import pytest
import torch
from torch.nn import functional as F

import dmllab as dl
from dmllab import geometry
from dmllab.geometry import Cosine, Euclidean, SquaredEuclidean
from dmllab.losses import LOSSES
from dmllab.losses.proxy_anchor import ProxyAnchorLoss
from dmllab.losses.proxy_nca import ProxyNCALoss
from dmllab.optim import PROXY_LR_SCALE, parameter_groups
from dmllab.values import BadValue
from pml_compat import distances
from pml_compat import losses as pml_losses

CLASSES = [3, 5, 8, 11]  # label ids that are not 0..C-1: proxy k belongs to the k-th smallest
LABELS = torch.tensor([3, 3, 5, 5, 5, 8, 8, 3, 5, 8])  # class 11 has a proxy but no sample
TOL = {torch.float32: dict(rtol=1e-5, atol=1e-6), torch.float64: dict(rtol=1e-10, atol=1e-12)}
GEOMETRIES = {
    "euclidean": Euclidean,
    "sqeuclidean": SquaredEuclidean,
    "cosine": Cosine,
    "bregman": lambda: geometry.build("bregman", 4),  # asymmetric: proxies go second
}


def _embeddings(dtype, seed=0, n=10, d=4):
    z = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    return F.normalize(z, dim=1).requires_grad_(True)


def _loss(cls, geometry_name, dtype, **options):
    torch.manual_seed(1)
    loss = cls(GEOMETRIES[geometry_name](), embedding_dim=4, classes=CLASSES, **options)
    return loss.to(dtype)


def _entry(loss, z, i, k):
    """D(z_i || p_k), one pair at a time."""
    return loss.geometry.pairwise(z[i : i + 1], loss.proxies[k : k + 1])[0, 0]


def _log1p_sum_exp(terms):
    """log(1 + sum_i exp(t_i)), written as a logsumexp over [0, t_1, ...] (no overflow)."""
    return torch.logsumexp(torch.stack([torch.zeros_like(terms[0]), *terms]), dim=0)


def loop_proxy_anchor(loss, z, labels):
    pos_terms, neg_terms = [], []
    for k, class_id in enumerate(CLASSES):
        pos = [i for i in range(len(z)) if labels[i] == class_id]
        neg = [i for i in range(len(z)) if labels[i] != class_id]
        s = {i: 1 - _entry(loss, z, i, k) for i in range(len(z))}
        if pos:
            pos_terms.append(_log1p_sum_exp([-loss.alpha * (s[i] - loss.delta) for i in pos]))
        neg_terms.append(_log1p_sum_exp([loss.alpha * (s[i] + loss.delta) for i in neg]))
    return sum(pos_terms) / len(pos_terms) + sum(neg_terms) / len(neg_terms)


def loop_proxy_nca(loss, z, labels):
    terms = []
    for i in range(len(z)):
        logits = [-_entry(loss, z, i, k) / loss.temperature for k in range(len(CLASSES))]
        own = CLASSES.index(int(labels[i]))
        terms.append(-(logits[own] - torch.logsumexp(torch.stack(logits), dim=0)))
    return sum(terms) / len(terms)


LOOPS = {ProxyAnchorLoss: loop_proxy_anchor, ProxyNCALoss: loop_proxy_nca}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("geometry_name", sorted(GEOMETRIES))
@pytest.mark.parametrize("cls", list(LOOPS), ids=lambda c: c.__name__)
def test_proxy_losses_match_their_loops(cls, geometry_name, dtype):
    options = {"temperature": 0.3} if cls is ProxyNCALoss else {"alpha": 8.0, "delta": 0.2}
    loss = _loss(cls, geometry_name, dtype, **options)
    z = _embeddings(dtype)
    value = loss(z, LABELS)
    grads = torch.autograd.grad(value, [z, loss.proxies])
    expected = LOOPS[cls](loss, z, LABELS)
    expected_grads = torch.autograd.grad(expected, [z, loss.proxies])
    # Bregman's D is phi(x) - phi(p) - <grad phi(p), x - p>: a difference of terms far larger
    # than itself, whose float32 rounding differs between one pair and the batch's GEMM
    tol = (
        dict(rtol=1e-4, atol=1e-4)
        if (geometry_name, dtype) == ("bregman", torch.float32)
        else TOL[dtype]
    )
    torch.testing.assert_close(value, expected, **tol)
    for grad, expected_grad in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(grad, expected_grad, **tol)


def test_the_proxies_are_the_second_argument_of_an_asymmetric_geometry():
    loss = _loss(ProxyNCALoss, "bregman", torch.float64)
    z = _embeddings(torch.float64)
    D = loss.proxy_distances(z)
    torch.testing.assert_close(D, loss.geometry.pairwise(z, loss.proxies))
    assert not torch.allclose(D, loss.geometry.pairwise(loss.proxies, z).T)


# PML's ProxyAnchorLoss under its CosineSimilarity is the paper's loss on s = cos, which is ours
# under the cosine geometry (s = 1 - D). Under a distance PML substitutes D for s with flipped
# margins, so for the Euclidean geometry PML is handed our s = 1 - ||x - p|| as a similarity.
class OneMinusEuclidean(distances.BaseDistance):
    """s = 1 - ||x - y|| as a PML similarity (is_inverted: larger = closer), unnormalised."""

    def __init__(self):
        super().__init__(normalize_embeddings=False, is_inverted=True)

    def compute_mat(self, query_emb, ref_emb):
        return 1 - torch.cdist(query_emb, ref_emb)


PML_PROXY_ANCHOR = {"cosine": distances.CosineSimilarity, "euclidean": OneMinusEuclidean}
# ProxyNCA: PML's softmax over -D (a distance) or s (CosineSimilarity: -D = s - 1, the same
# softmax), with softmax_scale = 1 / temperature; LpDistance must not normalise (ours does not).
PML_PROXY_NCA = {
    "cosine": distances.CosineSimilarity,
    "euclidean": lambda: distances.LpDistance(normalize_embeddings=False),
    "sqeuclidean": lambda: distances.LpDistance(normalize_embeddings=False, power=2),
}


def _against_pml(ours, theirs, dtype):
    theirs = theirs.to(dtype)
    with torch.no_grad():
        theirs.proxies.copy_(ours.proxies)
    z = _embeddings(dtype, seed=3)
    a, b = z.detach().clone().requires_grad_(True), z.detach().clone().requires_grad_(True)
    mine = ours(a, LABELS)
    mine.backward()
    positions = torch.tensor([CLASSES.index(int(label)) for label in LABELS])  # PML: 0..C-1
    value = theirs(b, positions)
    value.backward()
    torch.testing.assert_close(mine, value, **TOL[dtype])
    torch.testing.assert_close(a.grad, b.grad, **TOL[dtype])
    torch.testing.assert_close(ours.proxies.grad, theirs.proxies.grad, **TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("geometry_name", sorted(PML_PROXY_ANCHOR))
def test_proxy_anchor_equals_pml(geometry_name, dtype):
    ours = _loss(ProxyAnchorLoss, geometry_name, dtype, alpha=16.0, delta=0.2)
    theirs = pml_losses.ProxyAnchorLoss(
        num_classes=len(CLASSES),
        embedding_size=4,
        margin=0.2,
        alpha=16.0,
        distance=PML_PROXY_ANCHOR[geometry_name](),
    )
    _against_pml(ours, theirs, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("geometry_name", sorted(PML_PROXY_NCA))
def test_proxy_nca_equals_pml(geometry_name, dtype):
    ours = _loss(ProxyNCALoss, geometry_name, dtype, temperature=0.25)
    theirs = pml_losses.ProxyNCALoss(
        num_classes=len(CLASSES),
        embedding_size=4,
        softmax_scale=4.0,
        distance=PML_PROXY_NCA[geometry_name](),
    )
    _against_pml(ours, theirs, dtype)


@pytest.mark.parametrize("name", ["proxy_anchor", "proxy_nca"])
def test_a_proxy_loss_reads_no_reference_set_and_names_a_label_without_a_proxy(name):
    loss = LOSSES.build(name, {"geometry": Euclidean(), "embedding_dim": 4, "classes": CLASSES})
    assert not loss.reads_reference and loss.proxy_parameters() == [loss.proxies]
    z = _embeddings(torch.float32)
    memory, memory_labels = (
        _embeddings(torch.float32, seed=9, n=3).detach(),
        torch.tensor([3, 5, 11]),
    )
    assert torch.equal(loss(z, LABELS), loss(z, LABELS, memory, memory_labels))
    with pytest.raises(
        ValueError, match=r"built for the classes \[3, 5, 8, 11\].*label\(s\) \[4\]"
    ):
        loss(z, torch.tensor([3, 3, 5, 5, 5, 8, 8, 3, 5, 4]))
    with pytest.raises(ValueError, match="needs embedding_dim"):
        LOSSES.build(name, {"geometry": Euclidean(), "num_classes": 4})
    with pytest.raises(ValueError, match="at least 2 classes"):
        LOSSES.build(name, {"geometry": Euclidean(), "embedding_dim": 4, "num_classes": 1})


def test_proxy_options_are_checked():
    with pytest.raises(ValueError, match="alpha must be a number > 0"):
        ProxyAnchorLoss(Euclidean(), embedding_dim=2, num_classes=2, alpha=0)
    with pytest.raises(ValueError, match=r"delta .* >= 0"):
        ProxyAnchorLoss(Euclidean(), embedding_dim=2, num_classes=2, delta=-1)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        ProxyNCALoss(Euclidean(), embedding_dim=2, num_classes=2, temperature=0)


def test_proxies_train_in_their_own_group_at_proxy_lr():
    config = dl.Config(dataset="digits", loss="proxy_anchor", epochs=1, batches_per_epoch=2)
    run = dl.fit(config, progress=False)
    groups = parameter_groups(run.model, run.loss_fn, lr=1e-3)
    assert [g["name"] for g in groups] == ["model", "proxies"]
    assert groups[1]["lr"] == pytest.approx(PROXY_LR_SCALE * 1e-3)
    assert groups[1]["params"] == [run.loss_fn.proxies]
    assert parameter_groups(run.model, run.loss_fn, lr=1e-3, proxy_lr=0.5)[1]["lr"] == 0.5
    # the training classes size the proxies, which moved away from unit norm as they learned
    assert run.loss_fn.proxies.shape == (run.data.train.num_classes, config.embedding_dim)
    assert run.loss_fn.proxy_classes.tolist() == sorted(run.data.train.classes)
    assert not torch.allclose(run.loss_fn.proxies.norm(dim=1), torch.ones(1))
    assert math.isfinite(run.history[-1]["loss"])


def test_config_refuses_a_memory_for_a_loss_that_reads_no_reference_set():
    with pytest.raises(BadValue, match="loss 'proxy_nca' reads no reference set"):
        dl.Config(loss="proxy_nca", memory_size=64)
    assert dl.Config(loss="proxy_nca", proxy_lr=0.05).proxy_lr == 0.05
    with pytest.raises(BadValue, match=r"Config\.proxy_lr"):
        dl.Config(proxy_lr=0.0)
