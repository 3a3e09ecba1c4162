"""The package's structure (the guide's layering rules), checked on the source:

* no import cycle between elfvm's modules, counting imports inside functions too (an import
  moved into a function or to the bottom of a file still makes the cycle);
* no module imports a private (_name) from another layer (elfvm.emu, elfvm.mmu, elfvm.oracle...);
* one module per name: no two modules of the package are called the same as a package of it
  (`kernel` is the loader package, nothing else).
"""

from __future__ import annotations

import ast
import os
import re

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "elfvm")


def modules() -> dict[str, str]:
    out = {}
    for d, _dirs, files in os.walk(ROOT):
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(d, f), os.path.dirname(ROOT))[:-3].replace(os.sep, ".")
                out[rel.removesuffix(".__init__")] = os.path.join(d, f)
    return out


def imports(path: str, name: str, mods: dict) -> list[tuple[str, list[str]]]:
    """(module imported, names taken from it) for every elfvm import anywhere in the file."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    pkg = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    out = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            out += [(a.name, []) for a in n.names if a.name.startswith("elfvm")]
        elif isinstance(n, ast.ImportFrom):
            base = n.module or ""
            if n.level:
                parts = pkg.split(".")
                base = ".".join(parts[:len(parts) - n.level + 1] + ([base] if base else []))
            if not base.startswith("elfvm"):
                continue
            for a in n.names:                       # `from pkg import module` imports the module
                sub = f"{base}.{a.name}"
                out.append((sub, []) if sub in mods else (base, [a.name]))
    return out


def graph() -> tuple[dict, dict]:
    mods = modules()
    edges, names = {}, {}
    for m, path in mods.items():
        edges[m] = set()
        for target, taken in imports(path, m, mods):
            if target in mods and target != m:
                edges[m].add(target)
                names.setdefault((m, target), []).extend(taken)
    return edges, names


def cycles(edges: dict) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
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
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def layer(m: str) -> str:
    return ".".join(m.split(".")[:2])


def test_no_import_cycle():
    edges, _ = graph()
    assert cycles(edges) == []


def test_no_private_import_across_layers():
    _, names = graph()
    bad = [f"{a} imports {n} from {b}" for (a, b), taken in sorted(names.items())
           for n in taken if n.startswith("_") and not n.startswith("__") and layer(a) != layer(b)]
    assert bad == []


def test_module_names_say_what_they_are():
    mods = modules()
    kernels = sorted(m for m in mods if m.rpartition(".")[2] == "kernel")
    assert kernels == ["elfvm.kernel"]


def test_one_page_size_one_maps_parser():
    """PAGE_SIZE is defined once (elfvm.units), /proc/PID/maps and /proc/PID/stat are read in
    one place (elfvm.host.procfs)."""
    defs, procfs = [], []
    for m, path in modules().items():
        text = open(path, encoding="utf-8").read()
        tree = ast.parse(text)
        for n in tree.body:
            if isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id in ("PAGE_SIZE", "PAGE")
                                                 and isinstance(n.value, ast.Constant) for t in n.targets):
                defs.append(m)
        if re.search(r'open\(f"/proc/[^"]*/(maps|stat)"', text) and m != "elfvm.host.procfs":
            procfs.append(m)
    assert defs == [] and procfs == []


def test_the_checks_see_a_cycle():
    """The cycle finder itself: a -> b -> c -> a is one component, d alone is none."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
