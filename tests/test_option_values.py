"""Component options are checked by value when a Config is built (`Registry.check_options`): the
type of the option's default or its own check, a message naming the component and the option;
and the fields a chosen component would not read are refused (`Config._check_unread_fields`)."""

import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import dmllab as dl
from dmllab.build import build_loss, prepare
from dmllab.config import Config
from dmllab.geometry import GEOMETRIES
from dmllab.losses import LOSSES
from dmllab.losses.pml import ACCEPTED
from dmllab.models import MODELS
from dmllab.values import BadValue

PML = [f"pml:{name}" for name in sorted(ACCEPTED)]


# ------------------------------------------------------------------------- option values
@pytest.mark.parametrize(
    "changes, words",
    [
        ({"model_options": {"hidden": -1}}, "model 'mlp' option hidden must be a list"),
        ({"model_options": {"hidden": [16, 0]}}, "model 'mlp' option hidden[1]=0 is outside"),
        ({"loss": "margin", "loss_options": {"beta": "x"}}, "loss 'margin' option beta must be a"),
        ({"loss": "triplet", "loss_options": {"reduction": "sum"}}, "option reduction='sum'"),
        (
            {"loss": "prototype_ce", "loss_options": {"temperature": 0.0}},
            "loss 'prototype_ce' option temperature=0.0 is outside (0, inf]",
        ),
        (
            {"loss": "pml:TripletMarginLoss", "loss_options": {"swap": "yes"}},
            "loss 'pml:TripletMarginLoss' option swap must be true or false",
        ),
        (
            {"loss": "pml:TripletMarginLoss", "loss_options": {"triplets_per_anchor": "banana"}},
            "option triplets_per_anchor must be 'all' or an int >= 1",
        ),
        (
            {"loss": "pml:NTXentLoss", "loss_options": {"temperature": -1.0}},
            "loss 'pml:NTXentLoss' option temperature=-1.0 is outside (0, inf]",
        ),
        (
            {"loss": "pml:TripletMarginLoss", "loss_options": {"reducer": "mean"}},
            "option reducer takes a reducer object",
        ),
        (
            {"loss": "pml:TripletMarginLoss", "loss_options": {"embedding_regularizer": "Lp"}},
            "option embedding_regularizer takes a regularizer object",
        ),
        (
            {"loss": "pml:ContrastiveLoss", "loss_options": {"pos_margin": "x"}},
            "loss 'pml:ContrastiveLoss' option pos_margin must be a number",
        ),
        (
            {"loss": "pml:TripletMarginLoss", "loss_options": {"margin": 0.1}},
            "margin is the Config field Config.margin: set it there",
        ),
    ],
)
def test_an_unfit_option_value_is_refused_naming_the_component_and_option(changes, words):
    with pytest.raises(BadValue, match=re.escape(words)) as refused:
        Config(**changes)
    assert str(refused.value).startswith("Config.") and "\n" not in str(refused.value)


def test_pml_options_of_the_right_kind_build_and_an_int_stands_for_a_float():
    config = Config(
        loss="pml:TripletMarginLoss",
        margin=0.1,
        loss_options={"swap": True, "triplets_per_anchor": 5},
    )
    assert build_loss(config, "euclidean").pml.margin == 0.1  # the module docstring's example
    build_loss(Config(loss="pml:ContrastiveLoss", loss_options={"neg_margin": 2}), "euclidean")
    build_loss(Config(loss="pml:NTXentLoss", loss_options={"temperature": 1}), "euclidean")


def _components():
    for registry in (MODELS, GEOMETRIES, LOSSES):
        for name in [*registry, *(PML if registry is LOSSES else [])]:
            for option, default in registry.options(name).items():
                if isinstance(default, (bool, int, float, str, tuple, list)):
                    yield registry, name, option, default


COMPONENT_OPTIONS = list(_components())


@settings(max_examples=60, deadline=None)
@given(
    case=st.sampled_from(COMPONENT_OPTIONS),
    wrong=st.sampled_from(["banana", {"a": 1}, None, [None]]),
)
def test_any_option_refuses_a_value_unlike_its_default_and_takes_its_default(case, wrong):
    """Over every option of every model, geometry and loss (PML's included): its default passes
    the registry's check, and a value of another kind is refused naming the component and the
    option (never a message from inside the component)."""
    registry, name, option, default = case
    registry.check_options(name, {option: default})
    if isinstance(default, str) and isinstance(wrong, str):
        return  # a string for a string: whether it is a known choice is the option's own check
    with pytest.raises(BadValue, match=re.escape(f"{registry.kind} {name!r} option {option}")):
        registry.check_options(name, {option: wrong})


# ------------------------------------------------------------------------- unread fields
@pytest.mark.parametrize(
    "changes, field",
    [
        ({"loss": "triplet", "proxy_lr": 0.1}, "proxy_lr"),
        ({"loss": "triplet", "loss_lr": 1e-3}, "loss_lr"),
        ({"loss": "margin", "loss_options": {"learn_beta": False}, "loss_lr": 1e-3}, "loss_lr"),
        ({"memory_warmup": 10}, "memory_warmup"),
        ({"lsd_tau": 2.0}, "lsd_tau"),
        ({"lsd_include_self": False}, "lsd_include_self"),
        ({"lsd_beta_neg": 1.0}, "lsd_beta_neg"),
        ({"model": "identity", "normalize": False, "head_lr": 1e-3}, "head_lr"),
        ({"warmup_epochs": 50, "epochs": 20}, "warmup_epochs"),
        ({"warmup_epochs": 20, "epochs": 20}, "warmup_epochs"),
        ({"memory_size": 4, "classes_per_batch": 5, "samples_per_class": 8}, "memory_size"),
    ],
)
def test_a_field_nothing_would_read_is_refused_in_one_line_with_the_fix(changes, field):
    with pytest.raises(BadValue, match=re.escape(field)) as refused:
        Config(**changes)
    message = str(refused.value)
    assert message.startswith("Config.") and "\n" not in message
    assert "leave" in message or "use " in message
    Config(**{k: v for k, v in changes.items() if k != field})  # the rest alone is fine


@pytest.mark.parametrize(
    "changes",
    [
        {"loss": "proxy_anchor", "proxy_lr": 0.1},
        {"loss": "pml:ProxyAnchorLoss", "proxy_lr": 0.1},
        {"loss": "margin", "loss_lr": 1e-3},
        {"loss": "pml:MarginLoss", "loss_options": {"learn_beta": True}, "loss_lr": 1e-3},
        {"geometry": "bregman", "normalize": False, "loss_lr": 1e-3},
        {"lsd_alpha": 1.0, "lsd_tau": 2.0, "lsd_include_self": False, "lsd_beta_neg": 1.0},
        {"memory_size": 40, "memory_warmup": 0},
        {"warmup_epochs": 19.5, "epochs": 20},
        {"head_lr": 1e-3},
    ],
)
def test_the_same_fields_are_accepted_where_they_are_read(changes):
    assert Config.from_json(Config(**changes).to_json()) == Config(**changes)


def test_a_crossed_grid_over_an_unread_lsd_field_is_refused_before_any_cell_runs(tmp_path):
    from dmllab.experiments.grid import GridError, load_grid

    (tmp_path / "grid.yaml").write_text(
        "fit: {dataset: mixture, epochs: 1}\nparameters:\n  lsd_tau: [1.0, 2.0]\n"
    )
    with pytest.raises(GridError, match=re.escape("would ignore lsd_tau=2.0")):
        load_grid(tmp_path / "grid.yaml")


@settings(max_examples=20, deadline=None)
@given(
    loss=st.sampled_from([*LOSSES, *PML]),
    learn_beta=st.booleans(),
    per_class_beta=st.booleans(),
)
def test_what_a_loss_says_it_learns_is_what_it_builds(loss, learn_beta, per_class_beta):
    """`learns_proxies` / `learns_parameters` (read without building, for Config's refusals)
    agree with the parameters the built loss hands the optimiser: proxies, and the rest."""
    cls = LOSSES[loss]
    options = {
        key: value
        for key, value in {"learn_beta": learn_beta, "per_class_beta": per_class_beta}.items()
        if key in LOSSES.options(loss)
    }
    classes = torch.arange(4)
    context = {"geometry": "euclidean", "classes": classes, "num_classes": 4, "embedding_dim": 3}
    built = LOSSES.build(loss, context, **options)
    proxies = {id(p) for p in built.proxy_parameters()}
    others = [p for p in built.parameters() if id(p) not in proxies and p.requires_grad]
    assert cls.learns_proxies(options) == bool(proxies), loss
    assert cls.learns_parameters(options) == bool(others), loss


# ------------------------------------------------------------------- validation classes
@pytest.mark.parametrize("dataset", ["digits", "mixture"])
def test_a_validation_split_that_leaves_too_few_classes_names_val_fraction(dataset):
    with pytest.raises(BadValue, match=r"^Config\.val_fraction=0\.3: .* 3 classes to train on"):
        prepare(Config(dataset=dataset, val_fraction=0.3))


def test_the_readme_tune_example_prepares_its_data():
    from pathlib import Path

    import yaml

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("Fair comparisons by search")[1].split("```yaml\n")[1].split("```")[0]
    fit = yaml.safe_load(block)["fit"]
    splits = prepare(dl.Config(**fit))
    assert splits.train.num_classes >= dl.Config(**fit).classes_per_batch


# ------------------------------------------------------------- switching a component off
SWITCH_OFFS = [
    (dict(lsd_alpha=200.0, lsd_tau=0.5, lsd_include_self=False), dict(lsd_alpha=0.0)),
    (dict(loss="proxy_anchor", proxy_lr=0.1), dict(loss="triplet")),
    (dict(memory_size=1024, memory_warmup=10), dict(memory_size=0)),
    (dict(model="mlp", head_lr=1e-3), dict(model="identity")),
]


@pytest.mark.parametrize("base, change", SWITCH_OFFS)
def test_a_variant_that_switches_a_component_off_resets_its_settings(base, change):
    """The second newcomer's false refusals: a base Config with LSD's (a proxy loss's, the
    memory's, the head's) settings and a variant that switches it off was refused, in whatever
    order; a record of before the refusal could not be loaded."""
    switched = Config(**base).replace(**change)
    assert not switched.unread_fields()
    for name in base:
        if name not in change:
            assert getattr(switched, name) == getattr(Config(), name), name
    old_record = {**base, **change}  # as an older dmllab recorded it
    with pytest.raises(BadValue):
        Config(**old_record)  # typed by hand: refused, naming the field
    assert Config.from_dict(Config.completed(old_record)) == switched


def test_a_setting_named_in_the_change_itself_is_still_refused():
    with pytest.raises(BadValue, match=r"would ignore lsd_tau=0\.5"):
        Config().replace(lsd_tau=0.5)
    with pytest.raises(BadValue, match="proxy_lr"):
        Config().replace(proxy_lr=0.1)


def test_a_float32_default_is_the_default():
    assert Config(loss="proxy_anchor", margin=np.float32(0.2)).loss == "proxy_anchor"


@settings(max_examples=40, deadline=None)
@given(
    base=st.fixed_dictionaries(
        {},
        optional={
            "lsd_alpha": st.sampled_from([0.0, 20.0]),
            "lsd_tau": st.sampled_from([0.5, 1.0]),
            "loss": st.sampled_from(["triplet", "proxy_anchor", "prototype_ce"]),
            "proxy_lr": st.sampled_from([None, 0.01]),
            "memory_size": st.sampled_from([0, 1024]),
            "memory_warmup": st.sampled_from([10, 50]),
        },
    ),
    change=st.fixed_dictionaries(
        {},
        optional={
            "lsd_alpha": st.sampled_from([0.0, 20.0]),
            "loss": st.sampled_from(["triplet", "proxy_anchor", "prototype_ce"]),
            "memory_size": st.sampled_from([0, 1024]),
        },
    ),
)
def test_property_replace_refuses_only_what_the_change_names(base, change):
    """Any base and any change: the result reads every field it sets, or the refusal names a
    field of the change (or another rule), never a base setting the change left unread."""
    try:
        config = Config(**base)
    except BadValue:
        return  # a base refused on its own
    try:
        switched, refusal = config.replace(**change), ""
    except BadValue as error:
        switched, refusal = None, str(error)
    left = [name for name in base if name not in change]
    unread = [f"ignore {name}=" for name in left] + [f"{name}=" for name in left]
    assert not ("ignore" in refusal and any(text in refusal for text in unread)), refusal
    assert switched is None or not switched.unread_fields()


@pytest.mark.parametrize(
    "geometry, options, message",
    [
        ("bregman-maxaffine", {"mu": -1.0}, "option mu=-1.0 is outside [0, inf]"),
        ("bregman-maxaffine", {"pieces": 1}, "option pieces=1 is outside [2, 65536]"),
        ("bregman-maxaffine", {"lr_multiplier": 0.0}, "option lr_multiplier=0.0 is outside (0"),
        ("bregman", {"hidden": [0]}, "option hidden[0]=0 is outside [1, 65536]"),
        ("bregman", {"hidden": []}, "option hidden must be a non-empty list"),
        ("bregman", {"lr_multiplier": -2.0}, "option lr_multiplier=-2.0 is outside (0"),
    ],
)
def test_a_geometry_option_out_of_range_is_refused_by_config(geometry, options, message):
    """The second newcomer's late failures: these passed Config (the kind matched the default's)
    and failed only when fit built the geometry, after earlier jobs of a plan had trained."""
    with pytest.raises(BadValue, match=r"Config\.geometry_options: .*" + re.escape(message)):
        Config(geometry=geometry, normalize=False, geometry_options=options)


def test_numpy_scalars_inside_options_are_their_python_values_and_a_bad_value_is_named():
    """The second newcomer's instance: np.int64(32) inside loss_options was refused as "not a JSON
    value" without naming the option, while top-level fields accepted numpy scalars."""
    config = Config(
        model_options={"hidden": [np.int64(64), np.int64(32)]},
        loss="margin",
        loss_options={"beta": np.float32(1.25)},
    )
    assert config.model_options == {"hidden": [64, 32]}
    assert type(config.model_options["hidden"][0]) is int
    assert config.loss_options == {"beta": 1.25} and Config.from_json(config.to_json()) == config
    with pytest.raises(BadValue, match=r"Config\.loss_options\['beta'\]: .* is not a JSON value"):
        Config(loss="margin", loss_options={"beta": object()})
