"""A component is named by a string: a `Config` (or anything else) where a name is expected is a
TypeError listing the names and, for a Config, naming the function that builds from one; never
"unhashable type: 'dict'"."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmllab.registry import Registry


# ----------------------------------------------------------------------------- a Config for a name
def _name_takers():
    import dmllab.data as data
    import dmllab.geometry as geometry
    import dmllab.losses as losses
    import dmllab.models as models
    from dmllab.geometry import Euclidean
    from dmllab.losses.strategies import negative_strategy, positive_strategy

    return {
        "losses.build": (lambda n: losses.build(n, Euclidean()), "build_loss(config, geometry)"),
        "losses.loss_class": (losses.loss_class, "build_loss(config, geometry)"),
        "losses.options": (losses.options, "build_loss(config, geometry)"),
        "positive_strategy": (positive_strategy, "build_loss(config, geometry)"),
        "negative_strategy": (negative_strategy, "build_loss(config, geometry)"),
        "geometry.build": (lambda n: geometry.build(n, 4), "build_components(config"),
        "models.build": (lambda n: models.build(n, (4,), 2), "build_components(config"),
        "models.options": (models.options, "build_components(config"),
        "data.load": (data.load, "prepare(config)"),
        "data.options": (data.options, "prepare(config)"),
        "Registry.get_component": (Registry("shape").get_component, ""),
    }


@pytest.mark.parametrize("function", sorted(_name_takers()))
def test_a_config_where_a_name_is_expected_says_which_builder_takes_a_config(function):
    from dmllab.config import Config

    call, builder = _name_takers()[function]
    with pytest.raises(TypeError, match="is named by a string") as refused:
        call(Config(loss="triplet"))
    assert "unhashable" not in str(refused.value)
    assert builder in str(refused.value)


@settings(max_examples=20, deadline=None)
@given(
    name=st.one_of(
        st.integers(), st.none(), st.lists(st.text()), st.dictionaries(st.text(), st.text())
    )
)
def test_any_name_that_is_no_string_is_a_type_error_listing_the_names(name):
    from dmllab.values import registered

    with pytest.raises(TypeError, match="named by a string, one of: a, b"):
        registered("thing", name, {"a": 1, "b": 2})
