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
- checks each option's *value* before the component is built: against the type of the option's
  default (a bool for a bool, an int for an int, a number for a float, a string for a string, a
  list for a list or tuple, its items like the default's), or by the option's own check, given
  when the component is registered (`checks=`) or carried by it (`option_checks`), e.g. a range;
  the refusal names the component and the option;
- builds a component by name, refusing options it does not take, in one wording;
- may hold *families*: names `prefix:<member>` resolved on demand rather than listed one by one
  (`pml:<LossName>`, every loss of pytorch-metric-learning, an optional package): a family's
  resolver returns the component for a member, or raises UnknownName saying why there is none.

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
>>> SHAPES.build("square", {"size": 2}, filled="no")
Traceback (most recent call last):
...
dmllab.values.BadValue: shape 'square' option filled must be true or false; got 'no' (str)
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, overload

from dmllab.values import BadValue, boolean, check_name, number

__all__ = [
    "Registry",
    "Family",
    "Check",
    "UnknownName",
    "UnknownOption",
    "DuplicateName",
    "like_default",
]

T = TypeVar("T")

Check = Callable[[str, Any], Any]
"""An option's own value check `(owner, value)`: raises BadValue naming `owner` (the component
and the option) when `value` is unfit."""


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
        self._checks: dict[str, dict[str, Check]] = {}
        self._families: dict[str, Family[T]] = {}

    # ------------------------------------------------------------------ registering
    @overload
    def register(
        self,
        name: str,
        component: None = None,
        *,
        description: str = "",
        checks: Mapping[str, Check] | None = None,
    ) -> Callable[[T], T]: ...

    @overload
    def register(
        self,
        name: str,
        component: T,
        *,
        description: str = "",
        checks: Mapping[str, Check] | None = None,
    ) -> T: ...

    def register(
        self,
        name: str,
        component: T | None = None,
        *,
        description: str = "",
        checks: Mapping[str, Check] | None = None,
    ) -> T | Callable[[T], T]:
        """Register `component` as `name` (or, without a component, return a decorator that
        does). `description` is a one-line text for menus and tables (default: the first line
        of the component's docstring). `checks` maps an option to its own value check (`Check`,
        e.g. a range), which replaces the check against its default's type.

        Raises DuplicateName when `name` holds another component (one defined elsewhere; the
        same definition run again replaces it), ValueError for an empty or non-string name."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} name must be a non-empty string; got {name!r}")
        family = self.family_of(name)
        if family is not None:
            raise DuplicateName(
                f"{self.kind} names {family.placeholder} belong to the family "
                f"{family.prefix!r}; choose a name without the prefix {family.prefix}:"
            )

        def add(item: T) -> T:
            taken = self._components.get(name)
            if taken is not None and _identity(taken) != _identity(item):
                raise DuplicateName(
                    f"{self.kind} name {name!r} is taken by {_identity(taken)}; choose another name"
                )
            self._components[name] = item
            self._descriptions[name] = description or _first_line(item)
            self._checks[name] = dict(checks or {})
            return item

        return add if component is None else add(component)

    def __setitem__(self, name: str, component: T) -> None:
        self.register(name, component)

    def add_family(
        self, prefix: str, resolve: Callable[[str], T], *, placeholder: str, description: str
    ) -> None:
        """Names `prefix:<member>` resolved on demand: `resolve(member)` returns the component, or
        raises UnknownName (a ValueError) saying why `member` has none. `placeholder` (e.g.
        `pml:<LossName>`) and `description` stand for the family in menus and tables.

        Raises DuplicateName when another family holds the prefix, ValueError for a prefix that
        is empty or holds a colon."""
        if not isinstance(prefix, str) or not prefix or ":" in prefix:
            raise ValueError(f"a {self.kind} family prefix is a non-empty name without ':'")
        taken = self._families.get(prefix)
        if taken is not None and _identity(taken.resolve) != _identity(resolve):
            raise DuplicateName(
                f"{self.kind} family prefix {prefix!r} is taken by {_identity(taken.resolve)}"
            )
        self._families[prefix] = Family(prefix, resolve, placeholder, description)

    def family_of(self, name: object) -> Family[T] | None:
        """The family whose prefix `name` carries (`prefix:...`), or None."""
        if not isinstance(name, str) or ":" not in name:
            return None
        return self._families.get(name.partition(":")[0])

    def families(self) -> list[Family[T]]:
        """The families, in the order they were added."""
        return list(self._families.values())

    def __delitem__(self, name: str) -> None:
        if name not in self._components:  # a family's members are not registered one by one
            raise self._unknown(name)
        del self._components[name]
        del self._descriptions[name]
        del self._checks[name]

    # ------------------------------------------------------------------ reading
    def __getitem__(self, name: str) -> T:
        return self.get_component(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._components)

    def __len__(self) -> int:
        return len(self._components)

    def __contains__(self, name: object) -> bool:
        if name in self._components:
            return True
        if self.family_of(name) is None:
            return False
        try:
            self.get_component(str(name))
        except UnknownName:
            return False
        return True

    def get(self, name: str, default: Any = None) -> Any:
        return self.get_component(name) if name in self else default

    def get_component(self, name: str) -> T:
        """The component registered as `name`, or resolved by the family whose prefix it carries;
        UnknownName listing the sorted names (or the family's reason) otherwise, TypeError for a
        name that is no string (`values.check_name`)."""
        check_name(self.kind, name, self._components, self.from_config)
        if name in self._components:
            return self._components[name]
        family = self.family_of(name)
        if family is not None:
            return family.resolve(name.partition(":")[2])
        raise self._unknown(name)

    def _unknown(self, name: str) -> UnknownName:
        return UnknownName(
            f"unknown {self.kind} {name!r}; choose one of: {', '.join(sorted(self))}"
        )

    def names(self) -> list[str]:
        """The registered names, sorted (a family's members are not listed: see `families`)."""
        return sorted(self._components)

    def description(self, name: str) -> str:
        """The one-line description of `name`."""
        component = self.get_component(name)
        return self._descriptions.get(name) or _first_line(component)

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
        takes; then BadValue (a ValueError) naming the component and the first option whose value
        is unfit: the option's own check where it has one (`register(checks=)`, or the
        component's `option_checks`), else the type of its default (`like_default`)."""
        known = self.options(name)
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise UnknownOption(
                f"{self.kind} {name!r} has no option(s) {', '.join(unknown)}; its options are: "
                f"{', '.join(known) or 'none'}"
            )
        checks = {
            **getattr(self.get_component(name), "option_checks", {}),
            **self._checks.get(name, {}),
        }
        for key, value in given.items():
            owner = f"{self.kind} {name!r} option {key}"
            check = checks.get(key)
            if check is not None:
                check(owner, value)
            else:
                like_default(owner, value, known[key])

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


def like_default(owner: str, value: Any, default: Any) -> None:
    """BadValue naming `owner` unless `value` is of the kind of the option's `default`: a bool for
    a bool, an int (not a bool) for an int, a finite real number for a float, a string for a
    string, a list or tuple for a list or tuple (each item like the default's first item, when
    every item of the default is of one kind), a mapping for a dict. A default of None (or a
    required option) takes any value: the component checks it."""
    if default is None or default is inspect.Parameter.empty:
        return
    if isinstance(default, bool):
        boolean(owner, value)
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise BadValue(
                f"{owner} must be an int like its default {default!r}; "
                f"got {value!r} ({type(value).__name__})"
            )
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise BadValue(f"{owner} must be a number; got {value!r} ({type(value).__name__})")
        number(owner, float(value))
    elif isinstance(default, str):
        if not isinstance(value, str):
            raise BadValue(
                f"{owner} must be a string like its default {default!r}; "
                f"got {value!r} ({type(value).__name__})"
            )
    elif isinstance(default, (list, tuple)):
        if not isinstance(value, (list, tuple)):
            raise BadValue(
                f"{owner} must be a list like its default {list(default)!r}; "
                f"got {value!r} ({type(value).__name__})"
            )
        kinds = {type(item) for item in default}
        if len(kinds) == 1:
            for index, item in enumerate(value):
                like_default(f"{owner}[{index}]", item, default[0])
    elif isinstance(default, Mapping) and not isinstance(value, Mapping):
        raise BadValue(f"{owner} must be a mapping; got {value!r} ({type(value).__name__})")


@dataclass(frozen=True)
class Family(Generic[T]):
    """Names `prefix:<member>` that a registry resolves on demand (`Registry.add_family`)."""

    prefix: str
    resolve: Callable[[str], T]
    placeholder: str
    description: str


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
