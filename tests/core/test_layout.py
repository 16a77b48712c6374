"""The house's shape, read from the source: module sizes, layers, load-time import cycles, private names.

docs/architecture.md states these rules; this keeps them. A failure names the module and the rule it breaks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import jupyter_archive

PACKAGE = Path(jupyter_archive.__file__).parent
TESTS = Path(__file__).parents[1]
MAX_CORE_LINES = 500
MAX_FACE_LINES = 400

# Lower layers never import higher ones at load time (a higher number is a higher layer).
LAYERS = {
    "errors": 0, "params": 0, "times": 0, "config": 0, "ownership": 0, "temp_area": 0, "languages": 0, "lanes": 0, "memory": 0, "completion": 0,
    "sql": 1, "formats": 1,
    "catalog": 2,
    "execution": 3, "backends": 3,  # mount types: where a mount's queries run
    "jobs": 4, "history": 4, "tables": 4, "images": 4, "users": 4, "demo": 4, "demo_images": 4, "demo_hats": 4,
    "archive": 5,
}  # fmt: skip


def _modules(root: Path, prefix: str) -> dict[str, Path]:
    out = {}
    for path in sorted(root.rglob("*.py")):
        if "labextension" in path.parts or "node_modules" in path.parts:
            continue
        rel = path.relative_to(root).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join([prefix, *parts]) if parts else prefix] = path
    return out


MODULES = _modules(PACKAGE, "jupyter_archive")


def _load_time_imports(name: str, path: Path) -> list[tuple[str, list[str]]]:
    """The modules ``name`` imports when it loads, each with the names it takes (not TYPE_CHECKING or function-local ones)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = []

    def visit(body):
        for node in body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, (ast.If, ast.Try)):
                visit(node.body)
                visit(getattr(node, "orelse", []))
                for h in getattr(node, "handlers", []):
                    visit(h.body)
            elif isinstance(node, ast.Import):
                out.extend((a.name, []) for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    target = ".".join([*base, node.module] if node.module else base)
                else:
                    target = node.module or ""
                names = [a.name for a in node.names]
                submodules = [f"{target}.{a}" for a in names if f"{target}.{a}" in MODULES]
                if len(submodules) < len(names):  # names defined by the module (or package) itself
                    out.append((target, [a for a in names if f"{target}.{a}" not in MODULES]))
                out.extend((m, []) for m in submodules)  # "from . import x" loads the module x

    visit(tree.body)
    return [(t, n) for t, n in out if t.startswith("jupyter_archive")]


GRAPH = {name: _load_time_imports(name, path) for name, path in MODULES.items()}


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) < 3 or parts[1] != "core":
        return None
    return LAYERS.get(parts[2])


def test_no_module_is_too_long():
    long = []
    for name, path in MODULES.items():
        lines = len(path.read_text().splitlines())
        if ".core." in f"{name}." and lines > MAX_CORE_LINES:
            long.append(f"{name}: {lines} lines (core modules stay under {MAX_CORE_LINES})")
        if ".faces." in f"{name}." and lines > MAX_FACE_LINES:
            long.append(f"{name}: {lines} lines (face modules stay under {MAX_FACE_LINES})")
    assert not long, "\n".join(long)


def test_no_import_cycle_at_load_time():
    # Tarjan's strongly connected components over the modules' load-time imports.
    edges = {m: sorted({t for t, _ in GRAPH[m] if t in MODULES and t != m}) for m in MODULES}
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def strong(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for m in edges:
        if m not in index:
            strong(m)
    assert not cycles, "\n".join(" <-> ".join(c) for c in cycles)


def test_lower_layers_never_import_higher_ones():
    wrong = []
    for m, imports in GRAPH.items():
        mine = _layer(m)
        if ".core." not in f"{m}.":
            continue
        for target, _ in imports:
            if not target.startswith("jupyter_archive.core"):
                wrong.append(f"{m} imports {target}: the core imports nothing above it")
            elif mine is not None and (theirs := _layer(target)) is not None and theirs > mine:
                wrong.append(f"{m} (layer {mine}) imports {target} (layer {theirs})")
    assert not wrong, "\n".join(sorted(set(wrong)))


def test_the_core_imports_neither_tornado_nor_jupyter():
    wrong = []
    for name, path in MODULES.items():
        if ".core." not in f"{name}.":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            wrong += [f"{name} imports {m}" for m in mods if m.split(".")[0] in ("tornado", "jupyter_server", "jupyter_core")]
    assert not wrong, "\n".join(wrong)


def test_faces_use_only_public_names_of_the_core():
    wrong = []
    for name, path in MODULES.items():
        if ".faces." not in f"{name}.":
            continue
        for target, names in GRAPH[name]:
            if target.startswith("jupyter_archive.core"):
                wrong += [f"{name} imports {target}.{n}" for n in names if n.startswith("_")]
    assert not wrong, "\n".join(wrong)


def test_no_test_module_imports_another():
    wrong = []
    for path in TESTS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                names = [a.name for a in node.names]
                targets = [module, *(f"{module}.{n}" for n in names)]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for t in targets:
                last = t.rsplit(".", 1)[-1]
                if last.startswith("test_") or last == "conftest":
                    wrong.append(f"{path.relative_to(TESTS)} imports {t}: shared helpers belong in tests/support")
    assert not wrong, "\n".join(wrong)


def _run_time_uses_of_type_only_names(tree: ast.Module) -> list[tuple[int, str]]:
    """Uses, outside annotations, of names imported only under ``if TYPE_CHECKING:`` (the libraries a module
    imports where used, to keep them out of memory at rest), in no function that imports them itself."""
    lazy, eager = set(), set()
    for node in tree.body:
        imports = [s for s in ast.walk(node) if isinstance(s, (ast.Import, ast.ImportFrom))]
        names = {a.asname or a.name.split(".")[0] for s in imports for a in s.names}
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            lazy |= names
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            eager |= names
    lazy -= eager
    annotations = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
            found = [a.annotation for a in every if a is not None and a.annotation is not None] + [node.returns]
        else:
            found = [node.annotation] if isinstance(node, ast.AnnAssign) else []
        annotations |= {id(x) for an in found if an is not None for x in ast.walk(an)}
    uses = []

    def visit(node: ast.AST, imported: set[str]) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            imports = [s for s in ast.walk(node) if isinstance(s, (ast.Import, ast.ImportFrom))]
            imported = imported | {a.asname or a.name.split(".")[0] for s in imports for a in s.names}
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Name) and child.id in lazy - imported and id(child) not in annotations:
                uses.append((child.lineno, child.id))
            visit(child, imported)

    visit(tree, set())
    return uses


def test_names_imported_for_type_checking_only_are_imported_where_used():
    bad = [
        f"{path.relative_to(PACKAGE)}:{line}: {name}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for line, name in _run_time_uses_of_type_only_names(ast.parse(path.read_text()))
    ]
    assert not bad, "used at run time but imported only under TYPE_CHECKING:\n" + "\n".join(bad)


def test_the_type_only_check_finds_a_run_time_use():
    tree = ast.parse(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import duckdb\n"
        "def ok(c: duckdb.Connection):\n    import duckdb\n    return duckdb.connect()\n"
        "def bad():\n    return duckdb.Error\n"
    )
    assert _run_time_uses_of_type_only_names(tree) == [(8, "duckdb")]
