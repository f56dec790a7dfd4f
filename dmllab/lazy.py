"""Package attributes imported on first use (PEP 562), so that importing a package stays cheap.

    __getattr__, __dir__ = lazy.attach(__name__, {"embedding_map": "maps"}, modules={"widgets"})

`dmllab` uses it for its public face, `dmllab.viz` so that one figure module (or the widgets)
loads only what it needs, `dmllab.experiments` so that the command line imports torch only when
it trains.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def attach(
    package: str, names: Mapping[str, str], modules: Iterable[str] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """(`__getattr__`, `__dir__`) for the package `package`: `names` maps each attribute to the
    submodule (relative to `package`) that defines it, `modules` are submodules reachable as
    attributes. An attribute is imported on first access and then kept on the package; any other
    name raises AttributeError."""
    modules = frozenset(modules)

    def __getattr__(name: str) -> Any:
        if name in names:
            value = getattr(importlib.import_module(f"{package}.{names[name]}"), name)
        elif name in modules:
            value = importlib.import_module(f"{package}.{name}")
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(names) | modules | set(getattr(sys.modules[package], "__all__", ())))

    return __getattr__, __dir__
