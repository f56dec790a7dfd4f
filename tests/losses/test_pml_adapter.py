"""`loss="pml:<LossName>"`: pytorch-metric-learning's losses on the lab's geometry and selection.

Values and gradients (of the embeddings, and of a loss's own parameters) equal PML's own loss on
the same inputs, for pair, triplet, list and proxy losses, under the Euclidean and the cosine
geometry, on the batch (every pair; nearest positives with hardest negatives, against PML's
BatchEasyHardMiner) and against a reference set that holds the batch. PML is handed the same
distance through its own classes: `LpDistance(normalize_embeddings=False)` for the Euclidean
geometry, PML's cosine read as a distance (1 - CosineSimilarity) for the cosine geometry."""

import inspect
import math

import pytest
import torch
from torch.nn import functional as F

import dmllab as dl
from dmllab import geometry
from dmllab.geometry import Cosine, Euclidean
from dmllab.losses import LOSSES, TripletLoss, TupleLoss
from dmllab.losses import pml as adapter_module
from dmllab.losses.pml import ACCEPTED, REFUSED, adapter
from dmllab.optim import parameter_groups
from dmllab.registry import DuplicateName, UnknownName
from dmllab.values import BadValue
from pml_compat import distances, miners
from pml_compat import losses as pml_losses

LABELS = torch.arange(8).repeat_interleave(4)  # 8 classes x 4 samples
MEMORY_LABELS = torch.arange(8).repeat(2)
TOL = {torch.float32: dict(rtol=1e-5, atol=1e-6), torch.float64: dict(rtol=1e-9, atol=1e-10)}


class OneMinusCosine(distances.CosineSimilarity):
    """PML's cosine similarity read as a distance, 1 - cos (not inverted): the lab's cosine
    geometry in PML's own code."""

    def __init__(self):
        super().__init__()
        self.is_inverted = False

    def compute_mat(self, query_emb, ref_emb):
        return 1 - super().compute_mat(query_emb, ref_emb)

    def pairwise_distance(self, query_emb, ref_emb):
        return 1 - super().pairwise_distance(query_emb, ref_emb)


GEOMETRIES = {
    "euclidean": (Euclidean, lambda: distances.LpDistance(normalize_embeddings=False)),
    "cosine": (Cosine, OneMinusCosine),
}
# name -> options; at least one loss of each family, pair, triplet, list and proxy
CASES = {
    "ContrastiveLoss": dict(pos_margin=0.1, neg_margin=0.8),  # pair
    "IntraPairVarianceLoss": {},
    "TripletMarginLoss": dict(margin=0.3),  # triplet
    "MarginLoss": dict(margin=0.2, beta=0.9, learn_beta=True),
    "MultiSimilarityLoss": dict(alpha=2.0, beta=10.0, base=0.5),  # list
    "NTXentLoss": dict(temperature=0.2),
    "SupConLoss": dict(temperature=0.2),
    "LiftedStructureLoss": dict(neg_margin=0.8),
    "GeneralizedLiftedStructureLoss": dict(neg_margin=0.8),
    "NPairsLoss": {},
    "NCALoss": dict(softmax_scale=2.0),
    "ProxyAnchorLoss": dict(margin=0.1, alpha=8.0),  # proxy
    "ProxyNCALoss": dict(softmax_scale=2.0),
    "NormalizedSoftmaxLoss": dict(temperature=0.5),
}
SELECTIONS = {
    "every pair": ("all", "all", None),
    "nearest-hardest": ("nearest", "hardest", "easy-hard"),
}


def _embeddings(dtype, seed=0, n=32):
    z = torch.randn(n, 6, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    return F.normalize(z, dim=1)


def _sizes(name):
    """The sizes a PML class requires (proxies, class weights): 8 classes in 6 dimensions."""
    wanted = inspect.signature(getattr(pml_losses, name).__init__).parameters
    sizes = {"num_classes": 8, "embedding_size": 6}
    return {k: v for k, v in sizes.items() if k in wanted and wanted[k].default is wanted[k].empty}


def _both(name, geometry_name, dtype, positives="all", negatives="all"):
    """(the adapter, PML's loss) with the same options, distance and parameters."""
    options = dict(CASES[name])
    margin = options.pop("margin", 0.2)  # a PML option named margin is Config.margin
    ours_geometry, theirs_distance = GEOMETRIES[geometry_name]
    context = dict(
        geometry=ours_geometry(),
        positives=positives,
        negatives=negatives,
        margin=margin,
        num_classes=8,
        embedding_dim=6,
    )
    torch.manual_seed(0)
    ours = LOSSES.build(f"pml:{name}", context, **options).to(dtype)
    theirs = getattr(pml_losses, name)(
        distance=theirs_distance(),
        **({"margin": margin} if "margin" in CASES[name] else {}),
        **_sizes(name),
        **options,
    ).to(dtype)
    theirs.load_state_dict(ours.pml.state_dict())  # the same proxies / class weights / beta
    return ours, theirs


def _compare(ours, theirs, dtype, tuples=None, memory=False, miner=None):
    z = _embeddings(dtype)
    a, b = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
    ref = ref_labels = own = None
    remembered = _embeddings(dtype, seed=1, n=len(MEMORY_LABELS))
    if memory:  # the batch (with its gradient) followed by the memory
        ref, ref_labels = torch.cat([a, remembered]), torch.cat([LABELS, MEMORY_LABELS])
        own = torch.arange(len(LABELS))
    mine = ours(a, LABELS, ref, ref_labels, own=own)
    mine.backward()
    if miner is not None:
        tuples = miner(b.detach(), LABELS)
        if ours.contract.tuples == "weights":  # the lab hands its selection over as triplets
            anchors, positives, negative_anchors, negatives = tuples
            assert torch.equal(anchors, negative_anchors)  # one positive, one negative each
            tuples = anchors, positives, negatives
    their_ref = None if ref is None else torch.cat([b, remembered])
    value = theirs(b, LABELS, tuples, their_ref, ref_labels)
    value.backward()
    torch.testing.assert_close(mine, value.to(mine.dtype), **TOL[dtype])
    torch.testing.assert_close(a.grad, b.grad, **TOL[dtype])
    for (key, mine_p), (_, theirs_p) in zip(
        ours.pml.named_parameters(), theirs.named_parameters(), strict=True
    ):
        torch.testing.assert_close(mine_p.grad, theirs_p.grad, **TOL[dtype], msg=key)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("selection", sorted(SELECTIONS))
@pytest.mark.parametrize("geometry_name", sorted(GEOMETRIES))
@pytest.mark.parametrize("name", sorted(CASES))
def test_the_adapter_equals_pml_on_the_batch(name, geometry_name, selection, dtype):
    positives, negatives, mined = SELECTIONS[selection]
    ours, theirs = _both(name, geometry_name, dtype, positives, negatives)
    miner = None
    if mined:  # PML's oracle of nearest positives with hardest negatives, on the same distance
        miner = miners.BatchEasyHardMiner(
            pos_strategy="easy", neg_strategy="hard", distance=GEOMETRIES[geometry_name][1]()
        )
    _compare(ours, theirs, dtype, miner=miner)


def _all_pairs_without_self():
    """PML's 4-tuple of every pair of the batch against batch + memory, each anchor's own row
    left out by index (the loop the lab's selection must equal)."""
    ref_labels = torch.cat([LABELS, MEMORY_LABELS])
    a1, p, a2, n = [], [], [], []
    for anchor in range(len(LABELS)):
        for row in range(len(ref_labels)):
            if ref_labels[row] == LABELS[anchor] and row != anchor:
                a1.append(anchor)
                p.append(row)
            elif ref_labels[row] != LABELS[anchor]:
                a2.append(anchor)
                n.append(row)
    return tuple(torch.tensor(t) for t in (a1, p, a2, n))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("geometry_name", sorted(GEOMETRIES))
@pytest.mark.parametrize("name", sorted(n for n in CASES if ACCEPTED[n].reference), ids=lambda n: n)
def test_the_adapter_equals_pml_against_a_reference_set(name, geometry_name, dtype):
    ours, theirs = _both(name, geometry_name, dtype)
    _compare(ours, theirs, dtype, tuples=_all_pairs_without_self(), memory=True)


def test_losses_without_a_reference_set_read_the_batch_alone():
    loss = LOSSES.build("pml:NPairsLoss", {"geometry": Euclidean()})
    assert not loss.reads_reference
    z = _embeddings(torch.float64)
    memory = _embeddings(torch.float64, seed=2, n=len(MEMORY_LABELS))
    with_memory = loss(z, LABELS, torch.cat([z, memory]), torch.cat([LABELS, MEMORY_LABELS]))
    assert torch.equal(with_memory, loss(z, LABELS))
    with pytest.raises(BadValue, match="loss 'pml:NPairsLoss' reads no reference set"):
        dl.Config(loss="pml:NPairsLoss", memory_size=64)
    assert dl.Config(loss="pml:ContrastiveLoss", memory_size=64).memory_size == 64


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_an_asymmetric_geometry_is_read_query_first(dtype):
    """pml:TripletMarginLoss on a Bregman divergence equals the lab's own triplet loss (every
    triplet, averaged over the non-zero ones, PML's default reducer): PML reads D(anchor || r)."""
    torch.manual_seed(3)
    bregman = geometry.build("bregman", 6).to(dtype)
    context = dict(geometry=bregman, positives="all", negatives="all", margin=0.4)
    ours = LOSSES.build("pml:TripletMarginLoss", context)
    lab = TripletLoss(bregman, positives="all", negatives="all", margin=0.4, reduction="nonzero")
    z = (2 * _embeddings(dtype)).requires_grad_(True)
    D = bregman.pairwise(z, z)
    assert not torch.allclose(D, D.T)
    value, expected = ours(z, LABELS), lab(z, LABELS)
    torch.testing.assert_close(value, expected, **TOL[dtype])
    torch.testing.assert_close(
        torch.autograd.grad(value, z)[0], torch.autograd.grad(expected, z)[0], **TOL[dtype]
    )
    ours = LOSSES.build("pml:TripletMarginLoss", {**context, "positives": "nearest"})
    lab = TripletLoss(bregman, positives="nearest", negatives="all", margin=0.4)
    lab.reduction = "nonzero"
    torch.testing.assert_close(ours(z, LABELS), lab(z, LABELS), **TOL[dtype])


# With PML's genuine CosineSimilarity (a similarity s = cos, is_inverted) the adapter's cosine
# geometry (a distance D = 1 - s) gives the same loss once the margins are translated: closer
# is smaller for the adapter and larger for PML, and both are read the right way round.
COSINE_TRANSLATIONS = {
    "TripletMarginLoss": ({"margin": 0.3}, {"margin": 0.3}),
    "ContrastiveLoss": (
        {"pos_margin": 0.1, "neg_margin": 0.8},
        {"pos_margin": 0.9, "neg_margin": 0.2},
    ),
    "MultiSimilarityLoss": ({"base": 0.3}, {"base": 0.7}),
    "NTXentLoss": ({"temperature": 0.2}, {"temperature": 0.2}),
    "ProxyNCALoss": ({"softmax_scale": 2.0}, {"softmax_scale": 2.0}),
}


@pytest.mark.parametrize("name", sorted(COSINE_TRANSLATIONS))
def test_the_cosine_geometry_agrees_with_pml_cosine_similarity(name):
    ours_options, theirs_options = COSINE_TRANSLATIONS[name]
    ours_options = dict(ours_options)
    margin = ours_options.pop("margin", 0.2)
    context = dict(geometry=Cosine(), margin=margin, num_classes=8, embedding_dim=6)
    torch.manual_seed(0)
    ours = LOSSES.build(f"pml:{name}", context, **ours_options).double()
    sizes = {"num_classes": 8, "embedding_size": 6} if name == "ProxyNCALoss" else {}
    theirs = getattr(pml_losses, name)(
        distance=distances.CosineSimilarity(), **sizes, **theirs_options
    ).double()
    assert theirs.distance.is_inverted
    theirs.load_state_dict(ours.pml.state_dict())
    _compare(ours, theirs, torch.float64)


def test_the_table_classifies_every_loss_of_the_installed_pml():
    """A loss that a new PML adds fails here until it is classified (ACCEPTED or REFUSED)."""
    names = {
        name
        for name, value in vars(pml_losses).items()
        if inspect.isclass(value) and not name.startswith("_")
    }
    assert not set(ACCEPTED) & set(REFUSED)
    assert names - set(ACCEPTED) - set(REFUSED) == set(), "classify these in dmllab/losses/pml.py"
    assert set(ACCEPTED) <= names


def _source(name):
    """The source of a PML loss class and of its PML base classes."""
    return "".join(
        inspect.getsource(cls)
        for cls in getattr(pml_losses, name).__mro__
        if cls.__module__.startswith("pytorch_metric_learning")
    )


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_what_the_table_says_of_a_loss_matches_its_pml_source(name):
    source, contract = _source(name), ACCEPTED[name]
    for refusal in (
        "assert_distance_type",
        "indices_tuple_not_supported",
        "assert self.distance.is_inverted",
    ):
        assert refusal not in source
    assert ("convert_to_weights" in source) == (contract.tuples == "weights")
    assert ("ref_not_supported" not in source) >= contract.reference


@pytest.mark.parametrize(
    "name", sorted(n for n, why in REFUSED.items() if "requires PML's" in why), ids=lambda n: n
)
def test_a_loss_refused_for_its_distance_asserts_one(name):
    assert "assert_distance_type" in _source(name)


@pytest.mark.parametrize(
    "name, why",
    [
        ("ArcFaceLoss", "requires PML's CosineSimilarity as its distance"),
        ("SoftTripleLoss", "requires a similarity"),
        ("RankedListLoss", "takes no indices_tuple"),
        ("ManifoldLoss", "meta-classes"),
        ("CrossBatchMemory", "the lab's memory is Config.memory_size"),
        ("HistogramLoss", "similarities in \\[-1, 1\\]"),
    ],
)
def test_refused_losses_say_why(name, why):
    with pytest.raises(BadValue, match=f"Config.loss='pml:{name}': pml:{name} cannot run .*{why}"):
        dl.Config(loss=f"pml:{name}")
    assert f"pml:{name}" not in LOSSES


def test_unknown_and_unclassified_losses_and_a_missing_pml_are_named(monkeypatch):
    with pytest.raises(BadValue, match="pytorch-metric-learning has no loss 'Tripplet'"):
        dl.Config(loss="pml:Tripplet")

    class NewLoss(pml_losses.BaseMetricLossFunction):
        """A loss of a newer PML."""

    monkeypatch.setattr(pml_losses, "NewLoss", NewLoss, raising=False)
    with pytest.raises(BadValue, match="has not classified yet: add it to ACCEPTED"):
        dl.Config(loss="pml:NewLoss")
    real_import = adapter_module.importlib.import_module

    def without_pml(name, *args):
        if name.startswith("pytorch_metric_learning"):
            raise ModuleNotFoundError(f"No module named {name!r}", name="pytorch_metric_learning")
        return real_import(name, *args)

    adapter.cache_clear()
    monkeypatch.setattr(adapter_module.importlib, "import_module", without_pml)
    try:
        with pytest.raises(BadValue, match=r"not installed here: pip install 'dmllab\[pml\]'"):
            dl.Config(loss="pml:ContrastiveLoss")
    finally:
        monkeypatch.undo()
        adapter.cache_clear()


def test_options_are_pmls_and_checked_by_config():
    assert LOSSES.options("pml:ContrastiveLoss")["neg_margin"] == 1
    assert "distance" not in LOSSES.options("pml:ContrastiveLoss")  # the geometry
    assert "margin" not in LOSSES.options("pml:TripletMarginLoss")  # Config.margin
    config = dl.Config(loss="pml:ContrastiveLoss", loss_options={"neg_margin": 0.5}, margin=0.1)
    built = dl.build.build_loss(config, Euclidean())
    assert built.pml.neg_margin == 0.5 and built.positives == "random"
    assert dl.build.build_loss(config.replace(loss="pml:TripletMarginLoss", loss_options={}),
                               Euclidean()).pml.margin == 0.1  # fmt: skip
    with pytest.raises(BadValue, match=r"'pml:ContrastiveLoss' has no option\(s\) distance"):
        dl.Config(loss="pml:ContrastiveLoss", loss_options={"distance": "cosine"})
    assert LOSSES["pml:ContrastiveLoss"] is adapter("ContrastiveLoss")
    assert issubclass(LOSSES["pml:ProxyAnchorLoss"], TupleLoss)
    with pytest.raises(DuplicateName, match="belong to the family 'pml'"):
        LOSSES.register("pml:Mine", TripletLoss)
    with pytest.raises(UnknownName):
        del LOSSES["pml:ContrastiveLoss"]


@pytest.mark.parametrize(
    "name, options, groups",
    [
        ("ProxyAnchorLoss", {}, ["model", "proxies"]),
        ("MarginLoss", {"learn_beta": True}, ["model", "loss"]),
        ("MultiSimilarityLoss", {}, ["model"]),
    ],
)
def test_a_pml_loss_trains_and_its_parameters_find_their_group(name, options, groups):
    config = dl.Config(
        dataset="digits", loss=f"pml:{name}", loss_options=options, epochs=1, batches_per_epoch=3
    )
    run = dl.fit(config, progress=False)
    assert [g["name"] for g in parameter_groups(run.model, run.loss_fn, lr=1e-3)] == groups
    assert all(torch.isfinite(torch.tensor(row["loss"])) for row in run.history)


def test_a_pml_loss_reads_the_memory():
    config = dl.Config(
        dataset="digits",
        loss="pml:MultiSimilarityLoss",
        positives="nearest",
        samples_per_class=2,
        memory_size=64,
        memory_warmup=0,
        epochs=1,
        batches_per_epoch=4,
    )
    run = dl.fit(config, progress=False)
    assert run.history[-1]["memory_rows"] > 0


def test_the_adapter_reports_the_statistics_of_what_it_selected():
    z = _embeddings(torch.float64)
    D = Euclidean().pairwise(z, z)
    same = (LABELS.unsqueeze(1) == LABELS.unsqueeze(0)) & ~torch.eye(32, dtype=torch.bool)
    every = LOSSES.build("pml:ContrastiveLoss", {"geometry": Euclidean()})
    every(z, LABELS)
    assert every.last_stats["active"] == 32 * 3 * 28 and every.last_stats["dropped"] == 0
    assert every.last_stats["pos_dist"] == pytest.approx(float(D[same].mean()))
    context = {"geometry": Euclidean(), "positives": "nearest", "negatives": "hardest"}
    nearest = LOSSES.build("pml:ContrastiveLoss", context)
    nearest(z, LABELS)
    nearest_d = D.masked_fill(~same, float("inf")).min(dim=1).values
    assert nearest.last_stats["pos_dist"] == pytest.approx(float(nearest_d.mean()))
    proxy = LOSSES.build(
        "pml:ProxyAnchorLoss", {"geometry": Euclidean(), "num_classes": 8, "embedding_dim": 6}
    )
    proxy(z.float(), LABELS)  # it never reads the batch matrix
    assert proxy.last_stats["anchors"] == 32 and math.isnan(proxy.last_stats["pos_dist"])
