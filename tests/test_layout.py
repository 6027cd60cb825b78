"""The package's shape: imports run one way, and no function or module outgrows a reader's afternoon.

Imports are read from the source (module level and inside functions alike, since an import inside a function
still ties the two modules together); only imports under ``if TYPE_CHECKING:`` are left out, as they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "whisper_align"

# Lower layers never import upper ones. A module's layer is that of the longest prefix listed here.
LAYERS = [
    ["errors", "files"],
    ["heads.registry", "heads.codec", "heads"],
    ["frontend", "alignment"],
    ["model"],
    ["checkpoints"],
    ["results"],
    ["heads.scoring"],
    ["tasks"],
    ["heads.discovery"],
    ["engines"],
    ["cli"],
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path) -> set[str]:
    """The package modules that ``path`` imports (relative or absolute), TYPE_CHECKING blocks left out."""
    name = _module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("whisper_align"):
                target = node.module.removeprefix("whisper_align").lstrip(".")
            else:
                target = None
            if target is not None:
                for alias in node.names:  # `from . import x` may name a submodule
                    sub = f"{target}.{alias.name}" if target else alias.name
                    found.add(
                        sub
                        if (PACKAGE / sub.replace(".", "/")).exists()
                        or (PACKAGE / (sub.replace(".", "/") + ".py")).exists()
                        else target
                    )
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("whisper_align."):
                    found.add(alias.name.removeprefix("whisper_align."))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    found.discard("")
    found.discard(name)
    return found


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def _layer(module: str) -> int:
    best, best_len = None, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    if best is None:
        raise AssertionError(f"module {module!r} is in no layer of tests/test_layout.py's LAYERS")
    return best


def test_no_import_cycles() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :] + [nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node)


def test_imports_run_one_way() -> None:
    upward = []
    for module, imports in _graph().items():
        if module == "":  # the package's lazy __init__ names its public API by string only
            continue
        for target in imports:
            if target != "errors" and _layer(target) > _layer(module):
                upward.append(f"{module} imports {target}")
    assert not upward, "lower layers import upper ones:\n" + "\n".join(sorted(upward))


def test_nothing_imports_the_cli() -> None:
    offenders = [
        m
        for m, imports in _graph().items()
        if not m.startswith("cli") and any(t == "cli" or t.startswith("cli.") for t in imports)
    ]
    assert not offenders


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_small_functions_and_modules(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    assert source.count("\n") <= 500, f"{path.name} has {source.count(chr(10))} lines; split it along the data flow"
    long = [
        f"{node.name} ({n} lines)"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and (n := node.end_lineno - node.lineno + 1) > 80
    ]
    assert not long, f"functions over 80 lines in {path.name}: {', '.join(long)}"
