"""One way to read typed values: YAML 1.2 core scalars, strict booleans, finite numbers, no
duplicate keys."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmllab import values
from dmllab.config import Config, check_field
from dmllab.values import BadValue


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1e-3", 0.001),
        ("010", 10),
        ("-7", -7),
        (".5", 0.5),
        ("True", True),
        ("false", False),
        ("None", None),
        ("null", None),
        ("nearest", "nearest"),
        ("0x1F", "0x1F"),
        ("no", "no"),
        ("yes", "yes"),
        ("0o17", "0o17"),
        ("1_000", "1_000"),
        ("[1, 2]", [1, 2]),
        ("{mu: 1e6}", {"mu": 1e6}),
        ("", ""),
        ("a b", "a b"),
        ("'010'", "010"),
    ],
)
def test_command_line_values_read_like_papermill(text, expected):
    value = values.parse_text(text)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("text", [".inf", "-.inf", ".nan", "[1, .nan]", "{a: 1, a: 2}", "[1, 2"])
def test_unreadable_or_non_finite_command_line_values_are_refused(text):
    with pytest.raises(BadValue) as error:
        values.parse_text(text)
    assert "\n" not in str(error.value)


def test_duplicate_keys_are_refused_in_yaml_and_json():
    with pytest.raises(BadValue, match=r"grid.yaml:3: key 'epochs' is given twice"):
        values.load_yaml("fit:\n  epochs: 1\n  epochs: 2\n", "grid.yaml")
    with pytest.raises(BadValue, match=r"c.json: key 'lr' is given twice"):
        Config.from_json('{"lr": 0.1, "lr": 0.2}', "c.json")
    with pytest.raises(BadValue, match="NaN is not a finite number"):
        Config.from_json('{"lr": NaN}', "c.json")


@pytest.mark.parametrize(
    "field, value",
    [
        ("normalize", "nope"),
        ("monitor_test", "false"),
        ("lsd_include_self", 1),
        ("lr", math.inf),
        ("lr", math.nan),
        ("margin", "0.2"),
        ("embedding_dim", 10**9),
        ("embedding_dim", 1e9),
        ("seed", -5),
        ("seed", 2**40),
        ("epochs", True),
        ("geometry_options", {"mu": math.inf}),
        ("dataset_options", {1: 2}),
    ],
)
def test_config_refuses_values_of_another_kind(field, value):
    with pytest.raises(BadValue, match=f"Config.{field}"):
        Config(**{field: value})
    with pytest.raises(BadValue, match=f"Config.{field}"):
        check_field(field, value)


def test_batch_size_is_bounded():
    with pytest.raises(BadValue, match="batch"):
        Config(classes_per_batch=1000, samples_per_class=1000)


def test_parameters_are_checked_against_their_defaults():
    assert values.like("quick", True, False) is True
    assert values.like("lr", 1, 0.5) == 1
    assert values.like("noises", [0.0, 0.1], (0.0, 0.2)) == [0.0, 0.1]
    for value, default in [
        ("no", False),
        ("0x1F", 3),
        (2.5, 3),
        ("1", 1.0),
        (3, "pca"),
        ("x", [1]),
    ]:
        with pytest.raises(BadValue, match="p must be"):
            values.like("p", value, default)


scalars = st.one_of(
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.booleans(),
    st.text(alphabet="abcxyz_-/ ", min_size=1, max_size=8),
)


@settings(max_examples=60, deadline=None)
@given(scalars)
def test_values_printed_as_yaml_read_back_as_themselves(value):
    import yaml

    text = yaml.safe_dump(value, default_flow_style=True).removesuffix("\n...\n").strip()
    assert values.parse_text(text) == value


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10**9), st.integers(0, 3))
def test_integers_with_leading_zeros_stay_decimal(number, zeros):
    assert values.parse_text("0" * zeros + str(number)) == number
