"""The one Registry type: duplicates refused, unknown names and options named, context supplied."""

import inspect

import pytest

from dmllab.registry import DuplicateName, Registry, UnknownName, UnknownOption


def make() -> Registry:
    registry: Registry = Registry("widget", context=("size",))

    @registry.register("plain")
    class Plain:
        """A plain widget."""

        def __init__(self, size: int, *, colour: str = "red", count: int = 1) -> None:
            self.size, self.colour, self.count = size, colour, count

    return registry


def test_a_taken_name_is_refused_and_the_same_definition_replaces_itself():
    registry = make()
    plain = registry["plain"]
    registry.register("plain", plain)  # the same definition again (a notebook cell re-run)
    with pytest.raises(DuplicateName, match="widget name 'plain' is taken by"):
        registry["plain"] = dict
    with pytest.raises(DuplicateName):
        registry.register("plain", lambda size: size)
    assert registry["plain"] is plain


def test_unknown_names_list_the_sorted_registered_ones():
    registry = make()
    registry["another"] = lambda size: size
    with pytest.raises(UnknownName, match="unknown widget 'nope'; choose one of: another, plain"):
        registry["nope"]
    with pytest.raises(UnknownName):
        del registry["nope"]
    assert registry.get("nope") is None and "nope" not in registry
    assert registry.names() == ["another", "plain"] and list(registry) == ["plain", "another"]


def test_options_exclude_the_context_and_build_supplies_it():
    registry = make()
    assert registry.options("plain") == {"colour": "red", "count": 1}
    built = registry.build("plain", {"size": 3, "unused": 1}, colour="blue")
    assert (built.size, built.colour, built.count) == (3, "blue", 1)
    with pytest.raises(UnknownOption, match="has no option\\(s\\) hue; its options are: colour"):
        registry.build("plain", {"size": 3}, hue="x")
    registry["required"] = lambda size, depth: depth
    assert registry.options("required") == {"depth": inspect.Parameter.empty}


def test_descriptions_default_to_the_docstring_and_delete_unregisters():
    registry = make()
    registry.register("other", lambda size: size, description="another widget")
    assert registry.descriptions() == {"plain": "A plain widget.", "other": "another widget"}
    del registry["other"]
    assert "other" not in registry and len(registry) == 1


def test_pytest_monkeypatch_setitem_round_trips(monkeypatch):
    registry = make()
    monkeypatch.setitem(registry, "temporary", lambda size: size)
    assert "temporary" in registry
    monkeypatch.undo()
    assert "temporary" not in registry


def test_a_constructor_that_passes_kwargs_on_has_its_base_classes_options():
    registry: Registry = Registry("widget", context=("size", "shape"))

    class Base:
        def __init__(self, size: int, *, shape: str = "round", colour: str = "red") -> None:
            self.size, self.shape, self.colour = size, shape, colour

    @registry.register("tall")
    class Tall(Base):
        def __init__(self, size: int, *, height: int = 2, colour: str = "blue", **rest) -> None:
            super().__init__(size, colour=colour, **rest)
            self.height = height

    @registry.register("closed")
    class Closed(Base):  # takes no **kwargs: the base's options are not its own
        def __init__(self, size: int) -> None:
            super().__init__(size)

    # its own first (its default for colour wins), then the base's; the context is supplied
    assert registry.options("tall") == {"height": 2, "colour": "blue"}
    built = registry.build("tall", {"size": 1, "shape": "square", "other": 0}, height=5)
    assert (built.size, built.shape, built.colour, built.height) == (1, "square", "blue", 5)
    assert registry.options("closed") == {}
    assert registry.build("closed", {"size": 1, "shape": "square"}).shape == "round"
