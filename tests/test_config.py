import dataclasses
import json
import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import dmllab as dl
from dmllab import config as config_module
from dmllab.config import Config
from dmllab.geometry import Euclidean
from dmllab.losses import LOSSES, POSITIVES, same_label_mask
from dmllab.losses.strategies import RandomPositives
from dmllab.values import BadValue


def test_defaults_are_valid_and_round_trip_through_json():
    config = Config()
    again = Config.from_json(config.to_json())
    assert again == config
    assert json.loads(config.to_json())["loss"] == "triplet"


def test_design_field_names_exist():
    names = {f.name for f in dataclasses.fields(Config)}
    for required in (
        "dataset",
        "dataset_options",
        "split",
        "model",
        "embedding_dim",
        "normalize",
        "geometry",
        "geometry_options",
        "loss",
        "margin",
        "positives",
        "negatives",
        "lsd_alpha",
        "lsd_tau",
        "noise_rate",
        "noise_kind",
        "epochs",
        "classes_per_batch",
        "samples_per_class",
        "lr",
        "seed",
        "device",
    ):
        assert required in names


@pytest.mark.parametrize(
    "field, value, allowed",
    [
        ("loss", "tripplet", "triplet"),
        ("geometry", "manhattan", "sqeuclidean"),
        ("positives", "easy", "nearest"),
        ("negatives", "soft", "semihard"),
        ("dataset", "imagenet", "digits"),
        ("model", "vit", "mlp"),
    ],
)
def test_unknown_names_list_the_allowed_ones(field, value, allowed):
    with pytest.raises(ValueError) as error:
        Config(**{field: value})
    message = str(error.value)
    assert field in message and repr(value) in message and allowed in message


def test_nearest_positives_need_three_samples_per_class():
    with pytest.raises(ValueError, match="samples_per_class"):
        Config(positives="nearest", samples_per_class=2)
    Config(positives="nearest", samples_per_class=3)


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"noise_rate": -0.1}, "noise_rate"),
        ({"noise_rate": 1.0}, "noise_rate"),
        ({"lsd_alpha": -1.0}, "lsd_alpha"),
        ({"lsd_tau": 0.0}, "lsd_tau"),
        ({"epochs": 0}, "epochs"),
        ({"lr": 0.0}, "lr"),
        ({"samples_per_class": 1}, "samples_per_class"),
        ({"classes_per_batch": 1}, "classes_per_batch"),
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"embedding_dim": 2.5}, "embedding_dim"),
        ({"early_stopping_patience": 3}, "early_stopping_patience"),
    ],
)
def test_bad_values_name_the_field(changes, field):
    with pytest.raises(ValueError, match=field):
        Config(**changes)


def test_from_dict_rejects_unknown_keys_and_lists_known_ones():
    with pytest.raises(ValueError, match=r"no field.*lsd_alpa.*known fields.*lsd_alpha"):
        Config.from_dict({"lsd_alpa": 1.0})


def test_replace_validates():
    assert Config().replace(loss="margin").loss == "margin"
    with pytest.raises(ValueError):
        Config().replace(loss="nope")


def test_registries_match_the_config_names():
    from dmllab import data, geometry

    assert set(data.available()) == set(config_module.DATASETS)
    for name in config_module.GEOMETRIES:
        assert geometry.build(name, 2).name.startswith(name.split("-")[0])
    for name in config_module.LOSSES:
        built = dl.build.build_loss(
            Config(loss=name), geometry.build("euclidean", 4), num_classes=3, embedding_dim=4
        )
        assert hasattr(built, "last_stats")


def test_import_is_light():
    import subprocess
    import sys

    code = (
        "import dmllab, sys; print(','.join(m for m in "
        "('umap', 'plotly', 'ipywidgets', 'jupyterlab', 'papermill') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""
    assert dl.Config is Config


def test_numpy_scalars_are_read_as_their_python_values():
    import numpy as np

    config = Config(epochs=np.int64(3), lr=np.float32(1e-3), normalize=np.bool_(False))
    assert type(config.epochs) is int and type(config.lr) is float and config.normalize is False
    assert Config.from_json(config.to_json()) == config


@pytest.mark.parametrize(
    "changes, refusal",
    [
        (
            {"dataset": "mixture", "dataset_options": {"per_klass": 3}},
            (
                r"Config.dataset_options: dataset 'mixture' has no option\(s\) per_klass; "
                r"its options are: seed, .*per_mode"
            ),
        ),
        (
            {"model": "mlp", "model_options": {"width": 3}},
            (
                r"Config.model_options: model 'mlp' has no option\(s\) width; "
                r"its options are: hidden$"
            ),
        ),
        (
            {"geometry": "euclidean", "geometry_options": {"mu": 0.1}},
            (
                r"Config.geometry_options: geometry 'euclidean' has no option\(s\) mu; "
                r"its options are: eps$"
            ),
        ),
        (
            {"geometry": "sqeuclidean", "geometry_options": {"eps": 0.1}},
            r"geometry 'sqeuclidean' has no option\(s\) eps; its options are: none$",
        ),
        (
            {"geometry": "bregman", "normalize": False, "geometry_options": {"pieces": 4}},
            (
                r"geometry 'bregman' has no option\(s\) pieces; "
                r"its options are: hidden, mu, lr_multiplier$"
            ),
        ),
        (
            {
                "geometry": "bregman-maxaffine",
                "normalize": False,
                "geometry_options": {"hidden": [4]},
            },
            (
                r"geometry 'bregman-maxaffine' has no option\(s\) hidden; "
                r"its options are: pieces, mu, lr_multiplier$"
            ),
        ),
        (
            {"loss": "contrastive", "loss_options": {"temperature": 1.0, "alpha": 2.0}},
            (
                r"Config.loss_options: loss 'contrastive' has no option\(s\) alpha, temperature; "
                r"its options are: pos_margin, reduction$"
            ),
        ),
        (  # what build_loss fills from the Config fields, or from the training data
            {"loss": "margin", "loss_options": {"margin": 0.1, "num_classes": 3}},
            (
                r"loss 'margin' has no option\(s\) margin, num_classes; "
                r"its options are: beta, learn_beta, per_class_beta; "
                r"margin is the Config field Config.margin: set it there$"
            ),
        ),
    ],
)
def test_unknown_option_keys_are_refused_when_the_config_is_built(changes, refusal):
    with pytest.raises(BadValue, match=refusal):
        Config(**changes)


@pytest.mark.parametrize(
    "changes",
    [
        {"dataset": "mixture", "dataset_options": {"per_mode": 10, "seed": 3}},
        {"dataset": "loggrid", "dataset_options": {"per_class": 10, "sigma": 0.1}},
        {"model": "mlp", "model_options": {"hidden": [16]}},
        {"geometry": "cosine", "geometry_options": {"eps": 1e-9}},
        {"geometry": "bregman", "normalize": False, "geometry_options": {"hidden": [8], "mu": 1}},
        {"geometry": "bregman-maxaffine", "normalize": False, "geometry_options": {"pieces": 4}},
        {"loss": "contrastive", "loss_options": {"pos_margin": 0.1, "reduction": "mean"}},
        {"loss": "margin", "loss_options": {"per_class_beta": True}},
        {"loss": "prototype_ce", "loss_options": {"temperature": 0.1}},
    ],
)
def test_known_option_keys_are_accepted_and_their_values_left_to_the_component(changes):
    config = Config(**changes)
    assert Config.from_json(config.to_json()) == config


def test_option_keys_accepted_by_config_are_the_ones_the_geometry_takes():
    from dmllab import geometry

    for name, options in [
        ("euclidean", {"eps": 1e-9}),
        ("bregman", {"hidden": [4], "mu": 0.5}),
        ("bregman-maxaffine", {"pieces": 3}),
    ]:
        config = Config(geometry=name, normalize=False, geometry_options=options)
        assert geometry.build(name, 2, **config.geometry_options).name == name


def test_a_strategy_sets_the_samples_per_class_it_needs(monkeypatch):
    class Picky(RandomPositives):
        min_samples_per_class = 4

    monkeypatch.setitem(POSITIVES, "picky", Picky)
    with pytest.raises(
        BadValue, match=r"^Config.positives='picky' needs samples_per_class >= 4 \(got 3\)"
    ):
        Config(positives="picky", samples_per_class=3)
    assert Config(positives="picky", samples_per_class=4).positives == "picky"
    with pytest.raises(
        BadValue, match=r"^Config.positives='nearest' needs samples_per_class >= 3 \(got 2\)"
    ):
        Config(positives="nearest", samples_per_class=2)


# ----------------------------------------------------------------------------- ignored fields
@pytest.mark.parametrize(
    "changes, words",
    [
        ({"loss": "prototype_ce", "positives": "nearest"}, "would ignore positives='nearest'"),
        ({"loss": "prototype_ce", "negatives": "hardest"}, "would ignore negatives='hardest'"),
        ({"loss": "prototype_ce", "margin": 0.5}, "would ignore margin=0.5"),
        ({"loss": "prototype_ce", "k_positives": 2}, "would ignore k_positives=2"),
        ({"positives": "all", "k_positives": 3}, "k_positives=3 is ignored by positives='all'"),
    ],
)
def test_a_field_the_chosen_component_ignores_is_refused_naming_the_fix(changes, words):
    with pytest.raises(BadValue, match=re.escape(words)) as refused:
        Config(**changes)
    assert "leave" in str(refused.value) and "\n" not in str(refused.value)


def test_a_crossed_grid_cannot_run_an_ignored_field_twice(tmp_path):
    from dmllab.experiments.grid import GridError, load_grid

    (tmp_path / "grid.yaml").write_text(
        "fit: {epochs: 1}\nparameters:\n  loss: [triplet, prototype_ce]\n"
        "  positives: [random, nearest]\n"
    )
    with pytest.raises(GridError, match="chooses no tuples"):
        load_grid(tmp_path / "grid.yaml")


@settings(max_examples=30, deadline=None)
@given(
    positives=st.sampled_from(sorted(POSITIVES)),
    negatives=st.sampled_from(["semihard", "hardest", "all", "distance_weighted"]),
    k=st.integers(1, 3),
    margin=st.sampled_from([0.1, 0.2, 0.5]),
    seed=st.integers(0, 3),
)
def test_what_config_refuses_is_truly_ignored(positives, negatives, k, margin, seed):
    """The refusals are right: a loss that chooses no tuples computes the same value whatever its
    tuple fields, and a positives strategy that ranks nothing picks the same pairs whatever k."""
    torch.manual_seed(seed)
    z = torch.nn.functional.normalize(torch.randn(24, 4), dim=1)
    labels = torch.arange(24) % 4
    for name in LOSSES:
        if not config_module.reads_tuples(name):  # it cannot even be given tuple fields
            with pytest.raises(TypeError, match="unexpected keyword argument"):
                dl.losses.build(name, Euclidean(), positives=positives, margin=margin)
    D = torch.cdist(z, z)
    same = same_label_mask(labels)
    for name, strategy in POSITIVES.items():
        if not config_module.ranks_positives(name):
            one, many = strategy(k=1)(D, same), strategy(k=k)(D, same)
            assert torch.equal(one.anchors, many.anchors) and torch.equal(
                one.positives, many.positives
            ), name


def test_every_loss_and_strategy_is_asked_through_one_function_each():
    assert config_module.reads_tuples("triplet") and not config_module.reads_tuples("prototype_ce")
    assert config_module.ranks_positives("nearest") and not config_module.ranks_positives("all")
