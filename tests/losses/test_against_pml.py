"""Cross-checks against pytorch-metric-learning where its definitions match ours, on the batch
and against a reference set (PML's `ref_emb`, `ref_labels`)."""

import pytest
import torch
from torch.nn import functional as F

from dmllab.geometry import Cosine, Euclidean
from dmllab.losses import ContrastiveLoss, MarginLoss, MultiSimilarityLoss, TripletLoss
from pml_compat import distances, miners, reducers
from pml_compat import losses as pml_losses

LABELS = torch.arange(8).repeat_interleave(4)  # 8 classes x 4 samples
# A reference set beside the batch (a memory): 2 rows of each class, none of them the batch's.
MEMORY_LABELS = torch.arange(8).repeat(2)
# Our Euclidean does not normalise, so PML must not either (else its gradients are projected).
L2 = dict(distance=distances.LpDistance(normalize_embeddings=False))


def _embeddings(dtype, seed=0):
    z = torch.randn(32, 6, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    return F.normalize(z, dim=1)


def _both(ours, theirs, miner, dtype, memory=False):
    """Loss values and gradients of our loss and PML's on the same unit-norm embeddings; with
    `memory`, against the same reference set (the anchors not among it)."""
    z = _embeddings(dtype)
    a = z.clone().requires_grad_(True)
    b = z.clone().requires_grad_(True)
    ref = _embeddings(dtype, seed=1)[: len(MEMORY_LABELS)] if memory else None
    ref_labels = MEMORY_LABELS if memory else None
    mine = ours(a, LABELS, ref, ref_labels)
    mine.backward()
    tuples = miner(b, LABELS) if miner is not None else None
    value = theirs(b, LABELS, tuples, ref_emb=ref, ref_labels=ref_labels)
    value.backward()
    return (mine, a.grad), (value, b.grad)


def _close(pair, dtype):
    (mine, grad), (ref, ref_grad) = pair
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(mine, ref.to(mine.dtype), **tol)
    torch.testing.assert_close(grad, ref_grad, **tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_triplet_hardest_hardest_is_batch_hard(dtype):
    ours = TripletLoss(Euclidean(), positives="hardest", negatives="hardest", margin=0.3)
    theirs = pml_losses.TripletMarginLoss(margin=0.3, **L2)
    _close(_both(ours, theirs, miners.BatchHardMiner(**L2), dtype), dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_triplet_nearest_positive_is_batch_easy_hard(dtype):
    ours = TripletLoss(Euclidean(), positives="nearest", negatives="hardest", margin=0.3)
    theirs = pml_losses.TripletMarginLoss(margin=0.3, **L2)
    miner = miners.BatchEasyHardMiner(pos_strategy="easy", neg_strategy="hard", **L2)
    _close(_both(ours, theirs, miner, dtype), dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "reduction, reducer", [("mean", "MeanReducer"), ("nonzero", "AvgNonZeroReducer")]
)
@pytest.mark.parametrize("memory", [False, True], ids=["batch", "reference-set"])
def test_triplet_all(dtype, reduction, reducer, memory):
    ours = TripletLoss(
        Euclidean(), positives="all", negatives="all", margin=0.4, reduction=reduction
    )
    theirs = pml_losses.TripletMarginLoss(margin=0.4, reducer=getattr(reducers, reducer)(), **L2)
    _close(_both(ours, theirs, None, dtype, memory), dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("memory", [False, True], ids=["batch", "reference-set"])
def test_contrastive_all_pairs(dtype, memory):
    ours = ContrastiveLoss(
        Euclidean(), positives="all", negatives="all", margin=1.0, pos_margin=0.1
    )
    theirs = pml_losses.ContrastiveLoss(pos_margin=0.1, neg_margin=1.0, **L2)
    _close(_both(ours, theirs, None, dtype, memory), dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_multi_similarity_with_miner(dtype):
    ours = MultiSimilarityLoss(Cosine(), alpha=2.0, beta=40.0, base=0.5, mining_margin=0.1)
    theirs = pml_losses.MultiSimilarityLoss(alpha=2.0, beta=40.0, base=0.5)
    _close(_both(ours, theirs, miners.MultiSimilarityMiner(epsilon=0.1), dtype), dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("memory", [False, True], ids=["batch", "reference-set"])
def test_margin_all_triplets_fixed_beta(dtype, memory):
    ours = MarginLoss(
        Euclidean(), positives="all", negatives="all", margin=0.2, beta=1.0, learn_beta=False
    )
    theirs = pml_losses.MarginLoss(margin=0.2, beta=1.0, learn_beta=False, **L2)
    _close(_both(ours, theirs, None, dtype, memory), dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_margin_batch_hard_learnable_beta_gradient(dtype):
    ours = MarginLoss(
        Euclidean(), positives="hardest", negatives="hardest", margin=0.2, beta=1.2
    ).to(dtype)
    theirs = pml_losses.MarginLoss(margin=0.2, beta=1.2, learn_beta=True, **L2).to(dtype)
    _close(_both(ours, theirs, miners.BatchHardMiner(**L2), dtype), dtype)
    torch.testing.assert_close(ours.beta.grad, theirs.beta.grad.reshape(1).to(dtype))
