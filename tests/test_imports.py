"""The shape of the package, read from its source: no import cycle, the package's own modules
imported at module top, and a lab that uses only the public API (no private names from other
modules, no solver subclassed — it hooks into the public step and epoch events)."""

import ast
from pathlib import Path

import pytest

import linearnets

ROOT = Path(linearnets.__file__).parent
MODULES = {p: ".".join(("linearnets", *p.relative_to(ROOT).with_suffix("").parts)).removesuffix(".__init__")
           for p in sorted(ROOT.rglob("*.py"))}


def resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module an ImportFrom names (relative levels resolved)."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def own_imports(path: Path):
    """(node, imported linearnets module or modules, at module top?) for each import of our own."""
    module = MODULES[path]
    tree = ast.parse(path.read_text(), filename=str(path))
    top = set(map(id, tree.body))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            target = resolve(module, path.name == "__init__.py", node)
            if not target.startswith("linearnets"):
                continue
            names = []
            for alias in node.names:                      # `from . import data` imports a submodule
                sub = f"{target}.{alias.name}"
                names.append(sub if sub in MODULES.values() else target)
            yield node, names, id(node) in top
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("linearnets"):
                    yield node, [alias.name], id(node) in top


def test_own_modules_are_imported_at_module_top():
    late = [f"{p.relative_to(ROOT)}:{node.lineno}" for p in MODULES for node, _, at_top in own_imports(p)
            if not at_top]
    assert late == [], f"function-level imports of linearnets modules: {late}"


def test_function_level_imports_say_why():
    """A function-level import of another library is allowed for an optional heavy dependency,
    with a comment on its line saying so."""
    silent = []
    for p in MODULES:
        lines = p.read_text().splitlines()
        tree = ast.parse("\n".join(lines))
        top = set(map(id, tree.body))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in top:
                if "#" not in lines[node.lineno - 1]:
                    silent.append(f"{p.relative_to(ROOT)}:{node.lineno}")
    assert silent == [], f"function-level imports without a comment: {silent}"


def graph() -> dict[str, set[str]]:
    edges = {m: set() for m in MODULES.values()}
    for p, module in MODULES.items():
        for _, names, at_top in own_imports(p):
            if at_top:
                edges[module] |= {n for n in names if n in edges and n != module}
    return edges


def test_no_import_cycle():
    edges = graph()
    # an import of a.b.c first runs the __init__ of a and a.b: those are edges too, unless the
    # importer lives inside that package (its __init__ is already running)
    for module in list(edges):
        for target in list(edges[module]):
            parts = target.split(".")
            for i in range(1, len(parts)):
                parent = ".".join(parts[:i])
                if parent in edges and parent != module and not module.startswith(parent + "."):
                    edges[module].add(parent)
    cycles = find_cycles(edges)
    assert cycles == [], "import cycles: " + "; ".join(" → ".join(c) for c in cycles)


def find_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for n in sorted(edges[m]):
            if state.get(n) == "open":
                cycles.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = "done"

    for m in sorted(edges):
        if m not in state:
            visit(m)
    return cycles


LAB = [p for p in MODULES if p.parent.name == "lab"]


@pytest.mark.parametrize("path", LAB, ids=lambda p: p.name)
def test_lab_uses_only_public_api(path):
    module = MODULES[path]
    tree = ast.parse(path.read_text())
    private, solver_names = [], {"Solver", "SGD", "GD", "Newton", "NewtonCG", "LBFGS", "Exact", "FullBatchSolver"}
    imported_solvers = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            target = resolve(module, False, node)
            inside_lab = target.startswith("linearnets.lab")
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__") and not inside_lab:
                    private.append(f"{alias.name} from {target}")
                if target.startswith("linearnets.solvers") and alias.name in solver_names:
                    imported_solvers.add(alias.asname or alias.name)
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            private.append(f".{node.attr} (line {node.lineno})")
    assert private == [], f"{path.name} uses private names: {private}"
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
            assert not bases & (imported_solvers | solver_names), f"{path.name}: {node.name} subclasses a solver"


def test_the_checks_can_fail(tmp_path):
    """The parsers above see what they must: a late import, a private import, a solver subclass, a cycle."""
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c", "a"]]
    src = "from ..solvers.sgd import SGD\nfrom ..train import _minibatch_epoch\nclass R(SGD):\n    pass\n" \
          "def f():\n    from .. import data\n"
    p = ROOT / "lab" / "_probe_for_test.py"
    try:
        p.write_text(src)
        MODULES[p] = "linearnets.lab._probe_for_test"
        with pytest.raises(AssertionError, match="private"):
            test_lab_uses_only_public_api(p)
        p.write_text(src.replace("from ..train import _minibatch_epoch\n", ""))
        with pytest.raises(AssertionError, match="subclasses a solver"):
            test_lab_uses_only_public_api(p)
        with pytest.raises(AssertionError, match="function-level imports of linearnets"):
            test_own_modules_are_imported_at_module_top()
    finally:
        p.unlink(missing_ok=True)
        MODULES.pop(p, None)
