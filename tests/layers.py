"""slimkit's layers, as code: which room each module lives in, and the imports between them.

Read by tests/test_layers.py (imports point down, no cycles, no slimkit import inside a
function) and benchmarks/layering.py (the numbers). docs/architecture.md draws the same map.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

# Bottom to top. A module belongs to the room of its longest matching prefix; a room may import
# its own modules and any room below it, nothing above.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("_version", "errors", "config", "figures", "_cpuid", "target", "factory",
              "atomic", "progress", "callbacks", "batch", "metrics", "task", "record")),
    ("sources", ("data", "models")),
    ("graph", ("graph",)),
    ("techniques", ("quant", "sparse", "distill")),
    ("training", ("train",)),
    ("deploy", ("deploy",)),
    ("latency", ("latency",)),
    ("measured techniques", ("pruning", "quant.mixed_precision")),
    ("orchestrators", ("artifact", "bench", "report")),
    ("search", ("search",)),
    ("pipeline", ("pipeline",)),
    ("entry points", ("cli", "examples", "__init__")),
]


def room_of(module: str) -> str:
    """'slimkit.quant.mixed_precision.auto' → 'quant.mixed_precision' (the longest prefix)."""
    rel = module.removeprefix("slimkit").removeprefix(".") or "__init__"
    best = ""
    for _, rooms in LAYERS:
        for r in rooms:
            if (rel == r or rel.startswith(r + ".")) and len(r) > len(best):
                best = r
    if not best:
        raise KeyError(f"module {module} is in no room of tests/layers.py LAYERS")
    return best


def level_of(room: str) -> int:
    return next(i for i, (_, rooms) in enumerate(LAYERS) if room in rooms)


@dataclass
class Imports:
    top: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    inner: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    inner_sites: list[tuple[str, int, str]] = field(default_factory=list)  # file, line, name
    lines: dict[str, int] = field(default_factory=dict)  # module → lines


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def scan(root: Path) -> Imports:
    """Every import of slimkit's own modules in the package at `root` (…/slimkit)."""
    files = {module_name(root, p): p for p in sorted(root.rglob("*.py"))}
    out = Imports()
    for mod, path in files.items():
        text = path.read_text()
        out.lines[mod] = text.count("\n")
        _walk(ast.parse(text), mod, path, files, out, inside=False)
    return out


def _walk(node, mod, path, files, out: Imports, inside: bool) -> None:
    for child in ast.iter_child_nodes(node):
        fn = inside or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
        if isinstance(child, ast.Import | ast.ImportFrom):
            for target in _targets(child, mod, path, files):
                (out.inner if inside else out.top)[mod].add(target)
                if inside:
                    out.inner_sites.append((str(path), child.lineno, target))
        _walk(child, mod, path, files, out, fn)


def _targets(node, mod: str, path: Path, files: dict) -> list[str]:
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:
            pkg = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
            base = ".".join(pkg[:len(pkg) - node.level + 1] + ([base] if base else []))
        names = [f"{base}.{a.name}" for a in node.names] + [base]
    found = []
    for n in names:
        while n and n not in files:
            n = n.rpartition(".")[0]
        if n.startswith("slimkit") and n != mod and n not in found:
            found.append(n)
    # `from slimkit.x import y`: y as a module when it is one, else the module x
    return [n for n in found if not any(o != n and o.startswith(n + ".") for o in found)]


def upward(imports: Imports) -> list[tuple[str, str]]:
    """(importer, imported) pairs where the imported module sits in a higher layer."""
    bad = []
    for kind in (imports.top, imports.inner):
        for mod, deps in kind.items():
            for d in deps:
                if level_of(room_of(d)) > level_of(room_of(mod)):
                    bad.append((mod, d))
    return sorted(set(bad))


def cycles(imports: Imports) -> list[list[str]]:
    """Strongly connected components of more than one module (every import counted)."""
    graph = defaultdict(set)
    for kind in (imports.top, imports.inner):
        for mod, deps in kind.items():
            graph[mod] |= deps
    index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]

    def strong(v):  # Tarjan, iterative enough for a few hundred modules
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
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
                comps.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return comps


def lines_per_room(imports: Imports) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for mod, n in imports.lines.items():
        out[room_of(mod)] += n
    return dict(out)
