"""The input pipeline (`dmllab.data.loader`): augmented batches that do not depend on the number
of workers or ranks and leave torch's generator alone; files that break while training, named or
replaced and counted; evaluation streamed through the same loader in batches."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import dmllab as dl
from dmllab.data import BadImageError, ClassBalancedSampler, load
from dmllab.data.example_folder import write_example_folder
from dmllab.data.images import decode, read_pixels
from dmllab.data.loader import BatchReader, TrainBatches, augmented_views, embedding_batches
from dmllab.data.splits import Splits
from dmllab.data.transforms import TRANSFORMS, as_float
from dmllab.geometry.euclidean import Euclidean
from dmllab.runs import Run

CPU = torch.device("cpu")
SIZE = 16


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    return write_example_folder(tmp_path_factory.mktemp("pictures"), classes=4, per_class=8,
                                size=24)  # fmt: skip


def broken_inside(path: Path) -> None:
    """Garbage in the middle of a PNG: its header and end marker pass the cheap check when the
    folder is listed; decoding fails."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 16] = b"\xff" * 16
    path.write_bytes(bytes(data))


def batches(data, *, workers=0, rank=0, world_size=1, epoch=1, **options):
    sampler = ClassBalancedSampler(data.y, 2, 4, batches_per_epoch=4, seed=3, rank=rank,
                                   world_size=world_size)  # fmt: skip
    loader = TrainBatches(data, sampler, CPU, num_workers=workers, **options)
    loader.set_epoch(epoch)
    return loader, [(x.clone(), y.clone()) for x, y in loader]


def test_augmented_batches_are_the_same_with_any_number_of_workers(pictures):
    data = load("folder", root=pictures, image_size=SIZE)
    before = torch.get_rng_state()
    _, alone = batches(data, augment="dml-standard")
    assert torch.equal(torch.get_rng_state(), before)  # the training's own draws are untouched
    _, workers = batches(data, workers=2, augment="dml-standard")
    assert len(alone) == len(workers) == 4
    for (x, y), (x2, y2) in zip(alone, workers, strict=True):
        assert x.shape == (8, 3, SIZE, SIZE) and x.dtype == torch.float32
        assert torch.equal(x, x2) and torch.equal(y, y2)
    _, plain = batches(data)
    assert not torch.equal(alone[0][0], plain[0][0])  # augmented, not the plain crops
    _, again = batches(data, augment="dml-standard", epoch=2)
    assert not torch.equal(alone[0][0], again[0][0])  # another epoch, other draws


def test_each_rank_augments_its_share_as_one_process_would(pictures):
    data = load("folder", root=pictures, image_size=SIZE)
    _, whole = batches(data, augment="dml-standard")
    shares = [batches(data, augment="dml-standard", rank=r, world_size=2)[1] for r in (0, 1)]
    for (x, y), first, second in zip(whole, *shares, strict=True):
        assert len(first[0]) == len(second[0]) == 4
        assert torch.equal(torch.cat([first[0], second[0]]), x)  # positions count globally
        assert torch.equal(torch.cat([first[1], second[1]]), y)


def test_a_transform_needs_image_files():
    with pytest.raises(ValueError, match=r"augment='dml-standard' transforms image files.*tensors"):
        batches(load("digits"), augment="dml-standard")
    with pytest.raises(ValueError, match="on_bad_image must be one of raise, skip"):
        batches(load("digits"), on_bad_image="ignore")


def _broken_copy(pictures, tmp_path, count=1):
    root = tmp_path / "copy"
    for path in pictures.rglob("*.png"):
        target = root / path.relative_to(pictures)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    data = load("folder", root=root, image_size=SIZE)
    for path in data.x.paths[:count]:
        broken_inside(Path(path))
    return data, data.x.paths[0]


@pytest.mark.parametrize("workers", [0, 2])
def test_raise_names_the_file_that_breaks_in_a_worker(pictures, tmp_path, workers):
    data, broken = _broken_copy(pictures, tmp_path)
    with pytest.raises(BadImageError, match="unrecognized data stream") as error:
        batches(data, workers=workers, epoch=0)  # every image once: the broken one too
    assert error.value.path == broken and broken in str(error.value)


def test_skip_replaces_the_file_by_another_of_its_class_warns_and_counts(pictures, tmp_path):
    data, broken = _broken_copy(pictures, tmp_path)
    runs = []
    for workers, augment in ((0, "none"), (2, "none"), (0, "dml-standard"), (2, "dml-standard")):
        with pytest.warns(UserWarning, match=f"skipped image {broken}.*another image of its class"):
            loader, read = batches(data, workers=workers, epoch=0, on_bad_image="skip",
                                   augment=augment)  # fmt: skip
        assert loader.skipped == 1 and all(len(x) == 8 for x, _ in read)
        runs.append(read)
    for plain, other in ((runs[0], runs[1]), (runs[2], runs[3])):  # workers change nothing
        assert all(torch.equal(a[0], b[0]) for a, b in zip(plain, other, strict=True))
    sampler = ClassBalancedSampler(data.y, 2, 4, batches_per_epoch=4, seed=3)
    sampler.set_epoch(0)
    for index, (x, y) in zip(sampler, runs[0], strict=True):
        assert torch.equal(y, data.y[index])  # labels as drawn: the replacement is of the class
        if 0 in index.tolist():
            slot = index.tolist().index(0)
            same = [r for r in range(len(data)) if data.y[r] == data.y[0] and r not in index]
            assert any(torch.equal(x[slot], decode(data.x.paths[r], SIZE)) for r in same)


def test_skip_keeps_every_ranks_share_the_same_size(pictures, tmp_path):
    data, _ = _broken_copy(pictures, tmp_path, count=3)
    for rank in (0, 1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            loader, read = batches(data, rank=rank, world_size=2, epoch=0, on_bad_image="skip")
        assert all(len(x) == len(y) == 4 for x, y in read)  # what the all-gather needs
        assert loader.skipped == sum(int(r in range(3)) for i in loader.sampler for r in i.tolist())


def test_skip_refuses_a_class_with_no_other_readable_image(pictures, tmp_path):
    data, _ = _broken_copy(pictures, tmp_path, count=8)  # the whole first class
    with (
        pytest.warns(UserWarning, match="a candidate to replace another bad image"),
        pytest.raises(BadImageError, match="found no other readable image of its class"),
    ):
        batches(data, epoch=0, on_bad_image="skip")


def _config(root, **fields):
    return dl.Config(**{
        "dataset": "folder", "dataset_options": {"root": str(root), "image_size": SIZE},
        "split": "stratified", "model": "cnn", "model_options": {"channels": [4]},
        "embedding_dim": 4, "classes_per_batch": 2, "samples_per_class": 4, "epochs": 2,
        "batches_per_epoch": 4, **fields,
    })  # fmt: skip


def test_fit_names_a_file_that_breaks_or_counts_it_under_skip(pictures, tmp_path):
    data, broken = _broken_copy(pictures, tmp_path)
    root = Path(data.meta["root"])
    with pytest.raises(BadImageError) as error:
        dl.fit(_config(root, num_workers=2), progress=False)
    assert error.value.path == broken
    with pytest.warns(UserWarning, match=f"skipped image {broken}"):
        run = dl.fit(_config(root, on_bad_image="skip", num_workers=2), progress=False)
    counts = [row["bad_images"] for row in run.history]
    assert broken in run.train.x.paths  # (the first file of the first class: a training image)
    assert all(isinstance(count, int) for count in counts) and sum(counts) >= 1
    clean = dl.fit(_config(pictures, on_bad_image="skip"), progress=False)
    assert [row["bad_images"] for row in clean.history] == [0, 0]
    assert "bad_images" not in dl.fit(_config(pictures), progress=False).history[0]


@pytest.mark.parametrize("augment", ["none", "dml-standard"])
def test_embed_streams_lazy_images_in_batches_through_the_eval_transform(
    pictures, monkeypatch, augment
):
    run = dl.fit(_config(pictures, augment=augment, epochs=1, batches_per_epoch=1), progress=False)
    test = run.test
    sizes = []
    read = BatchReader.__getitem__

    def counting(self, key):
        sizes.append(len(key[2]))
        return read(self, key)

    monkeypatch.setattr(BatchReader, "__getitem__", counting)
    before = torch.get_rng_state()
    streamed = run.embed(test, batch_size=5)
    assert torch.equal(torch.get_rng_state(), before)
    assert max(sizes) == 5 and sum(sizes) == len(test)  # never more than a batch at a time
    pair = TRANSFORMS.build(augment, {"image_size": SIZE})
    images = [
        decode(path, SIZE) if pair.eval is None else as_float(pair.eval(read_pixels(path, SIZE)))
        for path in test.x.paths
    ]
    with torch.no_grad():
        direct = torch.cat(
            [run.model(torch.stack(images[i : i + 5])) for i in range(0, len(images), 5)]
        )
    assert torch.equal(streamed, direct)
    workers = dl.fit(_config(pictures, augment=augment, epochs=1, batches_per_epoch=1,
                             num_workers=2), progress=False)  # fmt: skip
    assert torch.equal(workers.embed(test, batch_size=5), streamed)


def test_embedding_a_file_that_breaks_names_it_or_embeds_a_black_image_under_skip(
    pictures, tmp_path
):
    data, broken = _broken_copy(pictures, tmp_path)
    with pytest.raises(BadImageError) as error:
        list(embedding_batches(data.x, 5))
    assert error.value.path == broken
    with pytest.warns(UserWarning, match=f"embedding a black image in place of {broken}"):
        streamed = torch.cat(list(embedding_batches(data.x, 5, num_workers=2, on_bad_image="skip")))
    assert torch.equal(streamed[0], torch.zeros(3, SIZE, SIZE))
    assert torch.equal(streamed[1:], data.x[torch.arange(1, len(data))])


def test_augmented_views_show_the_evaluation_view_then_seeded_training_draws(pictures):
    data = load("folder", root=pictures, image_size=SIZE)
    before = torch.get_rng_state()
    views = augmented_views(data.x, 3, "dml-standard", 4, seed=1)
    assert torch.equal(torch.get_rng_state(), before)
    assert views.shape == (5, 3, SIZE, SIZE) and views.dtype == torch.float32
    pair = TRANSFORMS.build("dml-standard", {"image_size": SIZE})
    assert torch.equal(views[0], as_float(pair.eval(read_pixels(data.x.paths[3], SIZE))))
    assert len({tuple(view.flatten().tolist()) for view in views}) == 5  # all different
    assert torch.equal(augmented_views(data.x, 3, "dml-standard", 4, seed=1), views)
    assert not torch.equal(augmented_views(data.x, 3, "dml-standard", 4, seed=2)[1], views[1])
    plain = augmented_views(data.x, 3, "none", 2)
    assert all(torch.equal(view, data.x[3][0]) for view in plain)  # "none" changes nothing
    with pytest.raises(ValueError, match="views must be an int >= 1"):
        augmented_views(data.x, 3, views=0)


def test_evaluate_leaves_images_that_failed_to_decode_out_and_counts_them(pictures, tmp_path):
    """The acceptance instance (issue 23): under on_bad_image="skip" training replaced the broken
    file and counted it, but evaluation scored its black image as a query and gallery item."""
    data, broken = _broken_copy(pictures, tmp_path)
    with pytest.warns(UserWarning):
        run = dl.fit(_config(Path(data.meta["root"]), on_bad_image="skip"), progress=False)
    readable = data.subset(torch.arange(1, len(data)))  # the broken file is row 0
    with pytest.warns(UserWarning, match=f"embedding a black image in place of {broken}"):
        whole = dl.evaluate(run, data, ks=(1,))
    assert whole.pop("bad_images") == 1.0
    with pytest.warns(UserWarning, match="black image"):  # the broken file is a training image
        expected = dl.evaluate(run, readable, ks=(1,))
    assert expected.pop("bad_images") == 0.0
    assert whole == expected  # queries, gallery and class means without the broken row
    with pytest.warns(UserWarning, match="embedding a black image"):
        embeddings, failed = run.embed_with_failures(data)
    assert failed.tolist() == [True] + [False] * (len(data) - 1)
    assert torch.equal(embeddings[1:], run.embed(readable))


def _tiny_run(size, **config):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * size * size, 4))
    return Run(model=model, geometry=Euclidean(), config=dl.Config(**config))


@settings(max_examples=8, deadline=None)
@given(broken=st.sets(st.integers(0, 15), max_size=10), seed=st.integers(0, 3))
def test_property_evaluate_scores_exactly_the_images_that_decoded(broken, seed):
    """Any set of broken files: evaluate under "skip" equals evaluate on the readable rows, plus
    their count; under "raise" a broken file is named."""
    with tempfile.TemporaryDirectory() as folder:
        root = write_example_folder(Path(folder), classes=4, per_class=4, size=8, seed=seed)
        data = load("folder", root=root, image_size=8)
        kept = torch.ones(len(data), dtype=torch.bool)
        kept[list(broken)] = False
        assume(all(int(kept[data.y == c].sum()) >= 2 for c in range(4)))  # each class retrievable
        for row in broken:
            broken_inside(Path(data.x.paths[row]))
        readable = data.subset(kept)
        run = _tiny_run(8, on_bad_image="skip")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            got = dl.evaluate(run, data, ks=(1,))
        assert got.pop("bad_images") == len(broken)
        expected = dl.evaluate(run, readable, ks=(1,))
        assert expected.pop("bad_images") == 0.0
        assert got == expected
        if broken:
            with pytest.raises(BadImageError):
                dl.evaluate(_tiny_run(8), data, ks=(1,))
            assert "bad_images" not in dl.evaluate(_tiny_run(8), readable, ks=(1,))


def test_validation_monitoring_and_the_search_score_leave_failed_images_out(tmp_path):
    """The same kind in the two other places a trained run is scored: the per-epoch validation
    metrics that early stopping reads (`monitor_row`) and a search's trial score."""
    from dmllab.engine.monitoring import monitor_row
    from dmllab.experiments.search import score

    root = write_example_folder(tmp_path / "pictures", classes=4, per_class=4, size=8, seed=0)
    data = load("folder", root=root, image_size=8)
    broken_inside(Path(data.x.paths[0]))
    readable = data.subset(torch.arange(1, len(data)))
    run = _tiny_run(8, on_bad_image="skip", monitor_test=True)
    run.data = Splits(train=readable, val=data, test=data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        row, value = monitor_row(run, run.config), score(run, "map@r")
    expected = dl.metrics.retrieval(run.embed(readable), readable.y, ks=(1,))
    assert row["val_recall@1"] == row["test_recall@1"] == expected["recall@1"]
    assert row["val_map@r"] == value == expected["map@r"]
