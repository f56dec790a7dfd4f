"""`Registry`: the one shape of every component registry (datasets, models, geometries, losses,
strategies, regularisers, optimisers, schedules, transforms).

A registry maps a name to a component: a class or a builder function. It is the single place the
name lives: `Config` validation, the command line, the LabPanel menus and the README table read
it. Every registry

- refuses a second component under a taken name (re-running the same definition, as a notebook
  cell does, replaces it);
- answers an unknown name with the sorted list of known ones;
- knows each component's *options*: the keyword parameters of the class's constructor (or the
  function), minus the *context* the builder supplies itself (for a loss: the geometry, the
  training classes, the embedding dimension); a component declares the context it needs simply
  by naming it as a parameter;
- builds a component by name, refusing options it does not take, in one wording.

>>> SHAPES = Registry("shape", context=("size",))
>>> @SHAPES.register("square", description="a square of side `size`")
... def square(size: float, *, filled: bool = True) -> str:
...     return f"square {size} filled={filled}"
>>> SHAPES.build("square", {"size": 2}, filled=False)
'square 2 filled=False'
>>> SHAPES.options("square")
{'filled': True}
>>> SHAPES.build("circle", {"size": 2})
Traceback (most recent call last):
...
dmllab.registry.UnknownName: unknown shape 'circle'; choose one of: square
>>> SHAPES.build("square", {"size": 2}, colour="red")
Traceback (most recent call last):
...
dmllab.registry.UnknownOption: shape 'square' has no option(s) colour; its options are: filled
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from typing import Any, Generic, TypeVar, overload

from dmllab.values import check_name

__all__ = ["Registry", "UnknownName", "UnknownOption", "DuplicateName"]

T = TypeVar("T")


class UnknownName(ValueError):
    """A name that a registry does not hold; the message lists the registered ones."""


class UnknownOption(ValueError):
    """An option that a component does not take; the message lists the ones it takes."""


class DuplicateName(ValueError):
    """A second component under a registered name."""


class Registry(MutableMapping[str, T], Generic[T]):
    """name -> component (a class or a builder function) for one kind of component.

    kind:        what a component is called in messages ("loss", "geometry", "positives strategy").
    context:     parameter names that the builder supplies itself (not options a user sets).
    from_config: the function that builds this kind from a whole `Config`, named when a Config is
                 passed where a name is expected.

    Mapping access works as for a dict (`name in R`, `R[name]`, `sorted(R)`, `R.items()`);
    `R[name] = component` registers (refusing a taken name) and `del R[name]` unregisters.
    `R[name]` and `R.get_component(name)` raise `UnknownName` (a ValueError) for an unknown name.
    """

    def __init__(self, kind: str, *, context: Sequence[str] = (), from_config: str = "") -> None:
        self.kind = kind
        self.context = tuple(context)
        self.from_config = from_config
        self._components: dict[str, T] = {}
        self._descriptions: dict[str, str] = {}

    # ------------------------------------------------------------------ registering
    @overload
    def register(
        self, name: str, component: None = None, *, description: str = ""
    ) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, component: T, *, description: str = "") -> T: ...

    def register(
        self, name: str, component: T | None = None, *, description: str = ""
    ) -> T | Callable[[T], T]:
        """Register `component` as `name` (or, without a component, return a decorator that
        does). `description` is a one-line text for menus and tables (default: the first line
        of the component's docstring).

        Raises DuplicateName when `name` holds another component (one defined elsewhere; the
        same definition run again replaces it), ValueError for an empty or non-string name."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} name must be a non-empty string; got {name!r}")

        def add(item: T) -> T:
            taken = self._components.get(name)
            if taken is not None and _identity(taken) != _identity(item):
                raise DuplicateName(
                    f"{self.kind} name {name!r} is taken by {_identity(taken)}; choose another name"
                )
            self._components[name] = item
            self._descriptions[name] = description or _first_line(item)
            return item

        return add if component is None else add(component)

    def __setitem__(self, name: str, component: T) -> None:
        self.register(name, component)

    def __delitem__(self, name: str) -> None:
        self.get_component(name)
        del self._components[name]
        del self._descriptions[name]

    # ------------------------------------------------------------------ reading
    def __getitem__(self, name: str) -> T:
        return self.get_component(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._components)

    def __len__(self) -> int:
        return len(self._components)

    def __contains__(self, name: object) -> bool:
        return name in self._components

    def get(self, name: str, default: Any = None) -> Any:
        return self._components.get(name, default)

    def get_component(self, name: str) -> T:
        """The component registered as `name`; UnknownName listing the sorted names otherwise,
        TypeError for a name that is no string (`values.check_name`)."""
        check_name(self.kind, name, self._components, self.from_config)
        if name not in self._components:
            raise UnknownName(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(sorted(self))}"
            )
        return self._components[name]

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._components)

    def description(self, name: str) -> str:
        """The one-line description of `name`."""
        self.get_component(name)
        return self._descriptions[name]

    def descriptions(self) -> dict[str, str]:
        """name -> one-line description, in registration order."""
        return dict(self._descriptions)

    def options(self, name: str) -> dict[str, Any]:
        """The options of `name` with their defaults (`inspect.Parameter.empty` for a required
        one): the component's keyword parameters besides the context."""
        return {
            key: parameter.default
            for key, parameter in _parameters(self.get_component(name)).items()
            if key not in self.context
            and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
        }

    def check_options(self, name: str, given: Mapping[str, Any]) -> None:
        """UnknownOption naming the keys of `given` that `name` does not take, and the ones it
        takes."""
        known = self.options(name)
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise UnknownOption(
                f"{self.kind} {name!r} has no option(s) {', '.join(unknown)}; its options are: "
                f"{', '.join(known) or 'none'}"
            )

    def build(self, name: str, context: Mapping[str, Any] | None = None, /, **options: Any) -> Any:
        """Call the component `name` with the `options` (checked) and those entries of `context`
        that are this registry's context and that it names as parameters (a component declares
        what it needs from the builder by naming it; other entries are not passed)."""
        self.check_options(name, options)
        component = self.get_component(name)
        wanted = _parameters(component)
        supplied = {
            key: value
            for key, value in (context or {}).items()
            if key in self.context and key in wanted
        }
        return component(**supplied, **options)  # type: ignore[operator]

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self)})"


def _parameters(component: object) -> Mapping[str, inspect.Parameter]:
    """The parameters of a builder function, or of a class's constructor without `self`.

    A constructor that takes `**kwargs` is read as passing them on to its base class's
    constructor (the usual forwarding `super().__init__(..., **kwargs)`), so the base's
    parameters are the class's too, the class's own first: a subclass states only what it adds
    or changes."""
    if not inspect.isclass(component):
        return dict(inspect.signature(component).parameters)  # type: ignore[arg-type]
    parameters: dict[str, inspect.Parameter] = {}
    for cls in component.__mro__:
        if "__init__" not in vars(cls):
            continue
        own = dict(inspect.signature(vars(cls)["__init__"]).parameters)
        own.pop("self", None)
        forwards = any(p.kind is p.VAR_KEYWORD for p in own.values())
        for key, parameter in own.items():
            if parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                parameters.setdefault(key, parameter)
        if not forwards:
            return parameters
    return parameters


def _identity(component: object) -> str:
    module = getattr(component, "__module__", None) or type(component).__module__
    name = getattr(component, "__qualname__", None) or type(component).__qualname__
    return f"{module}.{name}"


def _first_line(component: object) -> str:
    doc = inspect.getdoc(component) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""
