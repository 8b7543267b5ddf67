"""The dlm modules import each other in one direction: their import graph has no cycle.

Every `import dlm.x` / `from dlm.x import y` / `from . import y` counts, wherever it stands: at top level, inside a
function (lazy) or under `if TYPE_CHECKING:`. Importing a module imports its parent packages, so an edge to
`dlm.a.b` also reaches `dlm.a` (its `__init__`). The root `dlm` package counts only where it is imported by name
(`import dlm`, `from dlm import DiffusionLM`): every module is under it, but that implicit import of dlm/__init__.py
always happens first, before the module itself runs.
"""

from __future__ import annotations

import ast
from pathlib import Path

import dlm

ROOT = Path(dlm.__file__).parent


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, modules: set[str], root: Path = ROOT) -> set[str]:
    """dlm modules that the file at `path` imports (the deepest existing module of each name, and its packages)."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets.update(f"{base}.{alias.name}" for alias in node.names)  # a submodule, else falls back to base
    edges = set()
    for target in targets:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target:
            edges.add(target)  # an explicit `import dlm` counts too: dlm/__init__ imports DiffusionLM
        while target.count(".") > 1:  # the packages above it (but the root): their __init__ runs first
            target = target.rpartition(".")[0]
            edges.add(target)
    # a module's own packages are already importing it when it runs (but the root counts when named)
    return {e for e in edges if e != name and (e == root.name or not name.startswith(e + "."))}


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    files = sorted(root.rglob("*.py"))
    modules = {module_name(p, root) for p in files}
    return {module_name(p, root): imported(p, modules, root) for p in files}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle [a, b, ..., a] of the directed graph, or None (iterative DFS, white/grey/black)."""
    state: dict[str, int] = {}
    for start in sorted(graph):
        if state.get(start):
            continue
        stack, path = [(start, iter(sorted(graph[start])))], [start]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif state.get(child) == 1:
                return path[path.index(child):] + [child]
            elif not state.get(child):
                state[child] = 1
                stack.append((child, iter(sorted(graph.get(child, ())))))
                path.append(child)
    return None


def test_find_cycle_sees_a_cycle_and_a_dag():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_import_graph_sees_lazy_relative_and_type_checking_imports(tmp_path):
    pkg = tmp_path / "dlm"
    (pkg / "sub").mkdir(parents=True)
    for name in ("__init__.py", "sub/__init__.py", "a.py", "b.py", "c.py"):
        (pkg / name).write_text("")
    (pkg / "sub" / "x.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from dlm.a import A\n"
                                      "def f():\n    import dlm.b\n    from .. import c\n    import dlm\n")
    (pkg / "sub" / "y.py").write_text("from dlm.sub.x import f\n")
    graph = import_graph(pkg)
    assert graph["dlm.sub.x"] == {"dlm", "dlm.a", "dlm.b", "dlm.c"}
    assert graph["dlm.sub.y"] == {"dlm.sub.x"}  # its own package dlm.sub is already importing it
    graph = import_graph()
    assert "dlm.pretrained" in graph["dlm.diffusion_lm"]  # lazy, inside save_pretrained
    assert "dlm.cache.base" in graph["dlm.sample.base"]
    assert "dlm.registry" in graph["dlm.config"]


def test_dlm_import_graph_is_acyclic():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle among dlm modules: " + " -> ".join(cycle)


# The layers of docs/architecture.md, lowest first: a module imports only from its own layer or lower ones (within a
# layer, the acyclic graph above orders them). The longest matching prefix decides a module's layer; commands.py of
# any package is on top.
LAYERS = [
    ["dlm.registry", "dlm.types", "dlm.config", "dlm.utils", "dlm.denoiser", "dlm.validation"],
    ["dlm.model", "dlm.process", "dlm.data", "dlm.pretrained"],
    ["dlm.eval.likelihood"],
    ["dlm.cache", "dlm.sample", "dlm.guidance", "dlm.edit", "dlm.image", "dlm.tasks", "dlm.testing"],
    ["dlm.objectives"],  # above the samplers: an objective owns its family's sampler (Objective.sampler)
    ["dlm.diffusion_lm"],
    ["dlm", "dlm.hf", "dlm.eval", "dlm.train", "dlm.cli",
     "dlm.image.codec_trainer", "dlm.image.image_model", "dlm.image.evaluate"],  # and every package's commands.py
]


def layer_of(module: str) -> int:
    if module.endswith(".commands"):  # the typed CLI commands load checkpoints: the top layer
        return len(LAYERS) - 1
    matches = [(len(prefix), i) for i, names in enumerate(LAYERS) for prefix in names
               if module == prefix or module.startswith(prefix + ".")]
    assert matches, f"{module} is in no layer of docs/architecture.md: add it to LAYERS and the map there"
    return max(matches)[1]


def test_imports_point_down_the_layers():
    graph = import_graph()
    # an import-free package __init__ (dlm/eval/__init__.py) is only a namespace: any layer may pass through it
    namespaces = {m for m, edges in graph.items() if not edges and (ROOT / m[4:].replace(".", "/")).is_dir()}
    upward = [f"{m} (layer {layer_of(m)}) -> {e} (layer {layer_of(e)})" for m, edges in sorted(graph.items())
              for e in sorted(edges - namespaces) if layer_of(e) > layer_of(m)]
    assert not upward, "imports against the layering:\n" + "\n".join(upward)


def test_diffusion_lm_does_not_import_eval_at_top_level():
    tree = ast.parse((ROOT / "diffusion_lm.py").read_text())
    top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    names = [a.name for n in top if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in top if isinstance(n, ast.ImportFrom)]
    assert not [n for n in names if n.startswith("dlm.eval")], names
