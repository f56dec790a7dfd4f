"""The house's import graph: every module sits in one layer of the data flow, imports only from
its own layer or below (function-level imports included), and no set of modules imports in a circle.

    foundations -> geometry -> losses -> data, models -> config -> build -> runs -> metrics
    -> guards -> train -> experiments -> viz -> report -> cli       (each may use those before it)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "dmllab"

# Low to high. A name covers the module and everything under it (a package's submodules).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "foundations",
        (
            "values",
            "records",
            "errors",
            "arrays",
            "locks",
            "claims",
            "distributed",
            "cache",
            "lazy",
            "registry",
            "vision",
            "paths",
        ),
    ),
    ("geometry", ("geometry",)),
    ("losses", ("losses",)),
    ("components", ("data", "models", "backbones", "optim")),
    ("config", ("config",)),
    ("build", ("build",)),
    ("runs", ("runs",)),
    ("metrics", ("metrics",)),
    ("engine", ("engine",)),
    ("guards", ("guards",)),
    ("train", ("train",)),
    ("experiments", ("experiments", "lessons", "findings", "saved_notebooks")),
    ("viz", ("viz",)),
    ("report", ("report", "tuning_report")),
    ("cli", ("cli", "__main__")),
]


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path], *, annotations: bool = True) -> set[str]:
    """Every dmllab module `name` imports anywhere in its file (module level or inside
    functions); with `annotations=False`, not those under `if TYPE_CHECKING:` (names for type
    annotations only, never imported when the program runs)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    tree = ast.parse(path.read_text())
    skipped = set() if annotations else _type_checking_imports(tree)
    for node in ast.walk(tree):
        if node in skipped:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            while target not in known and "." in target:
                target = target.rpartition(".")[0]
            if target in known and target != name and target != "dmllab":
                found.add(target)
    return found


def layer_of(name: str) -> int:
    short = name.removeprefix("dmllab.")
    for index, (_, prefixes) in enumerate(LAYERS):
        if any(short == p or short.startswith(p + ".") for p in prefixes):
            return index
    raise LookupError(name)


def _type_checking_imports(tree: ast.AST) -> set[ast.AST]:
    blocks = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.If)
        and (
            (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
            or (isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING")
        )
    ]
    return {inner for block in blocks for statement in block.body for inner in ast.walk(statement)}


MODULES = modules()
# The layer rule holds for every import, annotation-only ones included (a type from a higher layer
# is a dependency on it); a cycle is about what runs, so annotation-only imports do not make one.
GRAPH = {name: imports(name, path, MODULES) for name, path in MODULES.items()}
RUNTIME_GRAPH = {
    name: imports(name, path, MODULES, annotations=False) for name, path in MODULES.items()
}


def test_every_module_has_a_layer():
    unplaced = sorted(name for name in MODULES if name != "dmllab" and not _placed(name))
    assert not unplaced, f"add these modules to a layer in tests/test_layers.py: {unplaced}"


def _placed(name: str) -> bool:
    try:
        layer_of(name)
    except LookupError:
        return False
    return True


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n != "dmllab"))
def test_no_module_imports_from_a_layer_above_it(name):
    upward = sorted(
        t for t in GRAPH[name] if _placed(t) and _placed(name) and layer_of(t) > layer_of(name)
    )
    assert not upward, (
        f"{name} ({LAYERS[layer_of(name)][0]}) imports from higher layers: "
        + ", ".join(f"{t} ({LAYERS[layer_of(t)][0]})" for t in upward)
    )


def test_no_import_cycle():
    cycles = _strongly_connected(RUNTIME_GRAPH)
    assert not cycles, f"modules that import each other in a circle: {cycles}"


def test_the_cycle_finder_finds_a_function_level_cycle():
    assert _strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [
        ["a", "b", "c"]
    ]


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the components of more than one module (each a cycle or several)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found
