"""The layout of docs/design.md §2: each package owns one step of the data flow, dependencies
point one way, and no module imports another that (directly or not) imports it back. Read from
the source, imports inside functions included, so a cycle cannot hide in a late import."""
import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = sorted(p.parent.name for p in ROOT.glob("*/__init__.py") if p.parent.name not in ("tests", "examples"))
# what each package may import; `trnas`, the facade, may import them all
ALLOWED = {
    "nas_problem": set(),
    "operators": {"nas_problem"},
    "selection": {"nas_problem", "operators"},
    "evaluation": {"nas_problem"},
    "differentiable": {"nas_problem", "evaluation"},
}


def project_modules() -> dict:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            is_package = parts[-1] == "__init__"
            modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return modules


def imported_names(path: Path, base: str):
    """Every dotted name an import statement of ``path`` loads, relative imports resolved."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = node.module or ""
            if node.level:
                anchor = base.rsplit(".", node.level - 1)[0] if node.level > 1 else base
                source = f"{anchor}.{source}" if source else anchor
            yield source
            yield from (f"{source}.{alias.name}" for alias in node.names)


def import_graph() -> dict:
    modules = project_modules()
    graph = {}
    for name, (path, is_package) in modules.items():
        base = name if is_package else name.rpartition(".")[0]
        edges = set()
        for target in imported_names(path, base):
            pieces = target.split(".")
            # importing a.b.c runs a, a.b and a.b.c; a module's own packages are already running
            for i in range(1, len(pieces) + 1):
                module = ".".join(pieces[:i])
                if module in modules and not (name == module or name.startswith(module + ".")):
                    edges.add(module)
        graph[name] = edges
    return graph


def test_no_module_imports_itself_back():
    try:
        TopologicalSorter(import_graph()).prepare()
    except CycleError as error:
        raise AssertionError(f"import cycle: {' -> '.join(error.args[1])}") from None


def test_packages_depend_on_the_steps_before_them_only():
    for module, edges in import_graph().items():
        package = module.split(".")[0]
        if package == "trnas":
            continue
        for target in edges:
            other = target.split(".")[0]
            assert other == package or other in ALLOWED[package], f"{module} imports {target}"


def test_the_scan_sees_imports_inside_functions(tmp_path):
    module = tmp_path / "late.py"
    module.write_text("def f():\n    from evaluation.registry import get_proxy\n")
    assert "evaluation.registry.get_proxy" in set(imported_names(module, ""))
