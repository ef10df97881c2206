"""The package's layers: util < ops < vae < app. A module imports only its own layer and the
layers below; no import cycles between modules; no module imports another module's _private
names. Checked statically from the source, so a violation fails CI before it becomes a habit."""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent / "er_fast"
LAYER = {"util": 0, "ops": 1, "vae": 2, "app": 3}


def _modules():
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def _imports(name, path):
    """(imported module, imported names) of every er_fast import in the file."""
    pkg = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[: len(pkg) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] == "er_fast":
                yield mod, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "er_fast":
                    yield a.name, []


def _layer(mod):
    parts = mod.split(".")
    return LAYER.get(parts[1]) if len(parts) > 1 else None


def test_imports_point_down_only():
    bad = []
    for name, path in _modules():
        mine = _layer(name)
        if mine is None:
            continue  # er_fast/__init__.py and __main__.py sit above every layer
        for mod, names in _imports(name, path):
            targets = [mod] if _layer(mod) is not None else [f"{mod}.{n}" for n in names]
            for t in targets:
                theirs = _layer(t)
                if theirs is not None and theirs > mine:
                    bad.append(f"{name} (layer {mine}) imports {t} (layer {theirs})")
    assert not bad, bad


def test_no_private_names_across_modules():
    bad = []
    for name, path in _modules():
        for mod, names in _imports(name, path):
            for n in names:
                if n.startswith("_") and not n.startswith("__"):
                    bad.append(f"{name} imports {n} from {mod}")
    assert not bad, bad


def test_no_import_cycles():
    modules = dict(_modules())
    graph = {}
    for name, path in modules.items():
        deps = set()
        for mod, names in _imports(name, path):
            for cand in [f"{mod}.{n}" for n in names] + [mod]:
                if cand in modules and cand != name:
                    deps.add(cand)
                    break
        graph[name] = deps
    # a package's __init__ re-exporting its own submodules is not a cycle
    def is_init_edge(a, b):
        return b.startswith(a + ".") or a.startswith(b + ".")
    seen, stack, cycles = set(), [], []

    def visit(n):
        if n in stack:
            cyc = stack[stack.index(n):] + [n]
            if not all(is_init_edge(a, b) for a, b in zip(cyc, cyc[1:])):
                cycles.append(" -> ".join(cyc))
            return
        if n in seen:
            return
        seen.add(n)
        stack.append(n)
        for d in graph.get(n, ()):
            visit(d)
        stack.pop()

    for n in graph:
        visit(n)
    assert not cycles, cycles
