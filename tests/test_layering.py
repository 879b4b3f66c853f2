"""The package's import order (docs/design.md, "Layers of the package").

Parses every module of ``src/lateinit`` and fails on an import cycle (imports inside
functions included), on an import of a higher layer from a lower one, on an import
inside a function outside the allowed places, and on more than a few underscored names
imported across modules.
"""

from __future__ import annotations

import ast
import pathlib
from collections.abc import Iterator

import pytest

SRC = pathlib.Path(__file__).resolve().parents[1] / "src" / "lateinit"

#: Bottom to top. A module may import modules of its own layer or below; within a layer
#: the imports must still form no cycle.
LAYERS: list[set[str]] = [
    {
        "lateinit.shapes",
        "lateinit.version",
        "lateinit.progress",
        "lateinit.tensorfile",
        "lateinit.fastmeta",
    },  # leaf
    {"lateinit.init"},
    {"lateinit.parameter"},
    {"lateinit.explain", "lateinit.paramdict", "lateinit.compiled"},
    {"lateinit.symbolic"},
    {"lateinit.block"},
    {
        "lateinit.nn",
        "lateinit.nn.basic",
        "lateinit.nn.conv",
        "lateinit.nn.pool",
        "lateinit.nn.norm",
        "lateinit.nn.rnn",
        "lateinit.nn.attention",
        "lateinit.nn.containers",
        "lateinit.nn.cells",
        "lateinit.nn.hybrid",
    },
    {
        "lateinit.inference",
        "lateinit.io",
        "lateinit.summary",
        "lateinit.plot",
        "lateinit.trainer",
        "lateinit.distributed",
        "lateinit.convert",
        "lateinit.testing",
    },
    {
        "lateinit.zoo",
        "lateinit.zoo.classic",
        "lateinit.zoo.resnet",
        "lateinit.zoo.densenet",
        "lateinit.zoo.googlenet",
        "lateinit.zoo.llama",
    },
    {"lateinit.cli", "lateinit.__main__", "lateinit"},
]

#: The only functions that may import lateinit modules: Block's delegating methods (the
#: engines sit above Block) and the command line's lazy imports (start-up time).
ALLOWED_IN_FUNCTIONS = {
    ("lateinit.block", "infer_shape"),
    ("lateinit.block", "summary"),
    ("lateinit.block", "plot"),
    ("lateinit.block", "save_parameters"),
    ("lateinit.block", "load_parameters"),
    ("lateinit.block", "__prepare_scriptable__"),
    ("lateinit.block", "export"),
}
ALLOWED_MODULES_IN_FUNCTIONS = {"lateinit.cli"}
MAX_UNDERSCORED = 5


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, pathlib.Path]:
    return {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _targets(
    module: str, path: pathlib.Path, node: ast.AST, known: set[str]
) -> Iterator[tuple[str, str]]:
    """(imported lateinit module, imported name) for one import statement."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name.split(".")[0] == "lateinit":
                yield alias.name, ""
        return
    assert isinstance(node, ast.ImportFrom)
    if node.level:
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        parts = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join([*parts, *([node.module] if node.module else [])])
    else:
        base = node.module or ""
    if base.split(".")[0] != "lateinit":
        return
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        yield (sub if sub in known else base), ("" if sub in known else alias.name)


def _scan() -> tuple[dict[str, set[str]], list[tuple[str, str, str]], list[tuple[str, str]]]:
    """The import graph, function-level imports and underscored names imported.

    The graph holds every import, those inside functions included, except the allowed
    delegations (Block's methods that hand over to an engine above it, which imports
    Block at its top): they are the one sanctioned way down-to-up."""
    modules = _modules()
    known = set(modules)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    in_functions: list[tuple[str, str, str]] = []
    underscored: list[tuple[str, str]] = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        delegating: set[int] = set()  # import statements inside allowed functions
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for inner in ast.walk(node):
                    if isinstance(inner, (ast.Import, ast.ImportFrom)):
                        for target, _ in _targets(module, path, inner, known):
                            in_functions.append((module, node.name, target))
                        if (module, node.name) in ALLOWED_IN_FUNCTIONS:
                            delegating.add(id(inner))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target, name in _targets(module, path, node, known):
                    if id(node) not in delegating:
                        graph[module].add(target)
                    if name.startswith("_") and not name.startswith("__"):
                        underscored.append((module, f"{target}.{name}"))
    return graph, in_functions, underscored


def _layer(module: str) -> int:
    for rank, layer in enumerate(LAYERS):
        if module in layer:
            return rank
    raise AssertionError(
        f"{module} is in no layer of tests/test_layering.py: add it to LAYERS (and to the "
        "diagram in docs/design.md)"
    )


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt == node:
                continue
            if state.get(nxt) == 1:
                found.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def _without_package_reexports(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """A package's ``__init__`` re-exports its submodules: importing ``lateinit.nn`` from
    ``lateinit.nn.conv`` would be a cycle, but ``from .. import init`` names a module."""
    return {m: {t for t in targets if not m.startswith(t + ".")} for m, targets in graph.items()}


def test_every_module_has_a_layer():
    for module in _modules():
        _layer(module)


def test_no_import_cycle():
    graph, _, _ = _scan()
    assert _cycles(graph) == [], _cycles(graph)


def test_no_upward_import():
    graph, _, _ = _scan()
    upward = [
        f"{m} (layer {_layer(m)}) imports {t} (layer {_layer(t)})"
        for m, targets in _without_package_reexports(graph).items()
        for t in sorted(targets)
        if _layer(t) > _layer(m)
    ]
    assert upward == [], "\n".join(upward)


def test_parameter_imports_only_init_and_the_leaf():
    graph, _, _ = _scan()
    assert graph["lateinit.parameter"] <= {"lateinit.init", "lateinit.shapes"}
    assert graph["lateinit.shapes"] == set()
    assert graph["lateinit.init"] == set()


def test_imports_inside_functions_only_where_allowed():
    _, in_functions, _ = _scan()
    bad = [
        f"{m}.{fn} imports {t}"
        for m, fn, t in in_functions
        if (m, fn) not in ALLOWED_IN_FUNCTIONS and m not in ALLOWED_MODULES_IN_FUNCTIONS
    ]
    assert bad == [], "\n".join(bad)


def test_few_underscored_names_cross_modules():
    _, _, underscored = _scan()
    assert len(underscored) <= MAX_UNDERSCORED, underscored


def test_no_comment_points_outside_the_repository():
    root = SRC.parents[1]
    offenders = []
    this = pathlib.Path(__file__).resolve()
    for path in [*SRC.rglob("*.py"), *(root / "tests").rglob("*.py")]:
        if path.resolve() == this:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "shared/" in line or "DESIGN.md" in line or "TORCH_NOTES" in line:
                offenders.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    assert offenders == [], "\n".join(offenders)


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"a"}}, [["a", "b", "a"]]),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
    ],
)
def test_the_cycle_finder_finds_cycles(graph, expected):
    assert _cycles(graph) == expected
