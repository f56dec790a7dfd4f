"""Typed values, read one documented way wherever they come from: grid files, JSON records,
`dmllab run -p NAME VALUE`, notebook parameters and `Config.from_dict`.

Text (a grid file, a `-p` value) is read as YAML 1.2's core schema, the way `papermill -p`
users expect:

    integers   decimal digits with an optional sign; leading zeros stay decimal (010 -> 10)
    floats     1.5, .5, 1e-3, -2.0E+3 (no dot needed); .inf and .nan are read, then refused
    booleans   true / false (also True, TRUE, False, FALSE)
    null       null, Null, NULL, None, ~ and an empty value
    strings    everything else: yes, no, on, off, 0x1F, 0o17 and 1_000 stay strings
    lists      [a, b] and block lists; mappings {k: v} and block mappings

A key given twice in one mapping is refused (in YAML and in JSON), and so are numbers that are not
finite. JSON is read with the same rules (NaN and Infinity are refused).

>>> parse_text("010"), parse_text("1e-3"), parse_text("True"), parse_text("0x1F"), parse_text("no")
(10, 0.001, True, '0x1F', 'no')
>>> load_yaml("a: 1\\na: 2\\n", "grid.yaml")
Traceback (most recent call last):
...
dmllab.values.BadValue: grid.yaml:2: key 'a' is given twice (first on line 1); keep one
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any

import yaml


class BadValue(ValueError):
    """A value unfit for its field, parameter or file; the message says which and why."""


# --------------------------------------------------------------------------- reading text
class StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 core scalars and duplicate keys refused."""


StrictLoader.yaml_implicit_resolvers = {}  # drop YAML 1.1's yes/no/octal/sexagesimal/... resolvers
_RESOLVERS = [
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("tag:yaml.org,2002:int", r"^[-+]?[0-9]+$", "-+0123456789"),
    (
        "tag:yaml.org,2002:float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+.0123456789",
    ),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|None|)$", ["~", "n", "N", ""]),
]
for _tag, _pattern, _first in _RESOLVERS:
    StrictLoader.add_implicit_resolver(_tag, re.compile(_pattern), list(_first))


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    return int(loader.construct_scalar(node))


def _construct_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    text = str(loader.construct_scalar(node)).lower().replace(".inf", "inf").replace(".nan", "nan")
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"{node.value} is not a finite number", node.start_mark.line + 1)
    return value


def _construct_bool(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> bool:
    return str(loader.construct_scalar(node)).lower() == "true"


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            raise yaml.constructor.ConstructorError(
                None, None, f"a mapping key must be a plain value; got {key!r}", key_node.start_mark
            )
        if key in seen:
            raise _Refused(
                f"key {key!r} is given twice (first on line {seen[key]}); keep one", line
            )
        seen[key] = line
    return loader.construct_mapping(node, deep=True)


class _Refused(Exception):
    """A value the strict reader refuses, with its line."""

    def __init__(self, message: str, line: int):
        super().__init__(message)
        self.line = line


StrictLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
StrictLoader.add_constructor("tag:yaml.org,2002:float", _construct_float)
StrictLoader.add_constructor("tag:yaml.org,2002:bool", _construct_bool)
StrictLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)


def load_yaml(text: str, source: str) -> Any:
    """The document in `text`, read by the rules above. Raises BadValue naming `source` and the line
    (invalid YAML, a duplicate key, a number that is not finite)."""
    data = _read_yaml(text, source)
    check_json_value(source, data)
    return data


def _read_yaml(text: str, source: str) -> Any:
    try:
        data = yaml.load(text, Loader=StrictLoader)
    except _Refused as error:
        raise BadValue(f"{source}:{error.line}: {error}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(error, "problem", None) or str(error)
        raise BadValue(f"{where}: not valid YAML: {problem}") from None
    return data


def parse_text(text: str) -> Any:
    """One command-line value (`-p NAME VALUE`), read by the rules above; an empty text is ''.

    Raises BadValue when the text is not a valid YAML value (quote it to pass it as a string)."""
    if text == "":
        return ""
    try:
        value = _read_yaml(text, "value")
    except BadValue as error:
        problem = str(error).split(": ", 1)[1]
        hint = (
            "; quote it (\"'...'\") to pass it as a string"
            if problem.startswith("not valid YAML")
            else ""
        )
        raise BadValue(f"cannot read {text!r}: {problem}{hint}") from None
    check_json_value(repr(text), value)
    return value


def load_json(text: str, source: str) -> Any:
    """JSON with duplicate keys and NaN / Infinity refused. Raises BadValue naming `source`."""

    def pairs(items: list[tuple[str, Any]]) -> dict:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise BadValue(f"{source}: key {key!r} is given twice; keep one")
            out[key] = value
        return out

    def constant(name: str) -> Any:
        raise BadValue(f"{source}: {name} is not a finite number")

    try:
        return json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except json.JSONDecodeError as error:
        raise BadValue(
            f"{source}: not valid JSON ({error.msg} at line {error.lineno}, column {error.colno})"
        ) from None


def canonical(value: Any) -> str:
    """The JSON text that identifies a value (sorted keys, no spaces): equal values, equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


# --------------------------------------------------------------------------- checking values
def _number_text(value: float) -> str:
    return "inf" if value == math.inf else f"{value:g}"


def check_json_value(owner: str, value: Any) -> None:
    """Refuse what JSON cannot hold faithfully: non-finite numbers, non-string keys deep inside."""
    if isinstance(value, float) and not math.isfinite(value):
        raise BadValue(f"{owner}: {value!r} is not a finite number")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise BadValue(f"{owner}: mapping keys must be strings; got {key!r}")
            check_json_value(f"{owner}[{key!r}]", item)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            check_json_value(f"{owner}[{index}]", item)
    elif value is not None and not isinstance(value, (str, int, float, bool)):
        raise BadValue(f"{owner}: {value!r} ({type(value).__name__}) is not a JSON value")


def boolean(owner: str, value: Any) -> bool:
    """`value` if it is a real bool (not 'false', 0 or 'no'); else BadValue."""
    if not isinstance(value, bool):
        raise BadValue(f"{owner} must be true or false; got {value!r} ({type(value).__name__})")
    return value


def number(
    owner: str,
    value: Any,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """A finite int or float inside the interval; bools and strings are refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadValue(f"{owner} must be a number; got {value!r} ({type(value).__name__})")
    if not math.isfinite(value):
        raise BadValue(f"{owner} must be a finite number; got {value!r}")
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        raise BadValue(
            f"{owner}={value!r} is outside {left}{_number_text(low)}, {_number_text(high)}{right}"
        )
    return value


def integer(owner: str, value: Any, low: int, high: int) -> int:
    """An int (not a bool, not 2.0) in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadValue(f"{owner} must be an int >= {low}; got {value!r} ({type(value).__name__})")
    if not low <= value <= high:
        raise BadValue(f"{owner}={value!r} is outside [{low}, {high}]")
    return value


def choice(owner: str, value: Any, allowed: Iterable[str]) -> str:
    """One of the `allowed` names."""
    allowed = tuple(allowed)
    if not isinstance(value, str) or value not in allowed:
        raise BadValue(
            f"{owner}={value!r} is not known; choose one of: {', '.join(sorted(allowed))}"
        )
    return value


def check_name(kind: str, name: Any, names: Iterable[str], from_config: str = "") -> None:
    """Refuse a component name that is no string, before it is looked up (a `Config` passed
    where a name is expected would fail as "unhashable type: 'dict'"): TypeError listing the
    names, and for a Config the function that builds the component from one (`from_config`).

    >>> check_name("loss", {"loss": "triplet"}, ["triplet"], "dmllab.build.build_loss(config, g)")
    Traceback (most recent call last):
    ...
    TypeError: a loss is named by a string, one of: triplet; got a dict
    """
    if isinstance(name, str):
        return
    got = "a Config" if type(name).__name__ == "Config" else f"a {type(name).__name__}"
    route = (
        f"; to build one from a Config, call {from_config}"
        if from_config and (got == "a Config")
        else ""
    )
    raise TypeError(
        f"a {kind} is named by a string, one of: {', '.join(sorted(names))}; got {got}{route}"
    )


def options(owner: str, value: Any) -> dict:
    """A dict of JSON values with string keys (the `*_options` fields)."""
    if not isinstance(value, dict):
        raise BadValue(f"{owner} must be a dict; got {value!r}")
    check_json_value(owner, value)
    return value


def like(owner: str, value: Any, default: Any) -> Any:
    """`value` checked against the type of a parameter's `default`: a bool for a bool, an int for an
    int, a number for a float, a string for a string, a list for a list or tuple, a dict for a dict;
    a None default takes any JSON value."""
    check_json_value(owner, value)
    if default is None:
        return value
    if isinstance(default, bool):
        return boolean(owner, value)
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadValue(
                f"{owner} must be an int like its default {default!r}; "
                f"got {value!r} ({type(value).__name__})"
            )
        return value
    if isinstance(default, float):
        return number(owner, value)
    kinds = {str: "a string", list: "a list", tuple: "a list", dict: "a mapping"}
    for kind, words in kinds.items():
        if isinstance(default, kind):
            wanted = (list, tuple) if kind in (list, tuple) else kind
            if not isinstance(value, wanted):
                raise BadValue(
                    f"{owner} must be {words} like its default {default!r}; "
                    f"got {value!r} ({type(value).__name__})"
                )
            return value
    return value
