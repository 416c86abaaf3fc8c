#!/usr/bin/env python3
"""The layers of docs/design.md, checked against the code's imports (run by scripts/layout-guard.sh).

1. Every top-level module of src/ has a layer in LAYERS; a module imports only from its own
   layer or the layers below it. A module missing from the table is an error: a new module
   gets its place in docs/design.md and here in the same commit.
2. No import circle between files, in src/ and testkit/src/.
3. docs/design.md is the map: every top-level module stands in its layer diagram, every
   source file is named on the page, and every path the page names exists.

Imports are read from the code as written: `crate::a::b`, `super::x`, `self::x` and grouped
`use` lists, in code before a file's first `#[cfg(test)]` (tests sit at the end by convention
and may import anything), outside comments. `pub use` re-exports are a module's face, not a
dependency of it, and do not count as edges for circles (they still count for the layers);
nor does a file's use of the items of a module it is inside (`super::Error` from a child of
that `mod.rs`): the child is part of its parent, as its `mod` line says.
"""

import re
import sys
from pathlib import Path

# Lowest layer first. Keep in step with docs/design.md, "Layers, and what may import what".
LAYERS = [
    ("foundation", [
        "clock", "secret", "log", "shutdown", "systemd", "sqlite_mem", "shared_file",
        "runtime_file", "scratch_dir", "sign", "json_in", "request", "money", "json", "body_stream",
        "metrics", "config",
    ]),
    ("services", [
        "tls", "mirror", "answers", "journal", "wire", "callback", "ctx", "cache", "status",
    ]),
    ("operations", ["ops"]),
    ("session", ["dispatch", "link"]),
    ("wiring", ["agent", "check"]),
    ("commands", ["cli"]),
    ("entry", ["main", "lib"]),
]
TEST_ONLY = {"test_util"}

LEVEL = {m: i for i, (_, mods) in enumerate(LAYERS) for m in mods}
NAME = {i: n for i, (n, _) in enumerate(LAYERS)}

ROOT = Path(__file__).resolve().parent.parent


def code_lines(path):
    """The file's production lines: up to the first `#[cfg(test)]`, without `//` comments."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip().startswith("#[cfg(test)]"):
            break
        stripped = line.split("//", 1)[0] if "//" in line and '"' not in line else line
        if stripped.lstrip().startswith("//"):
            continue
        out.append(stripped)
    return out


def module_path(src, path):
    """`src/a/b.rs` -> ['a', 'b']; `src/a/mod.rs` -> ['a']; `src/lib.rs` -> []."""
    rel = path.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "mod":
        parts.pop()
    if parts in (["lib"], ["main"]):
        return []
    return parts


def is_dir_module(path):
    return path.name in ("mod.rs", "lib.rs", "main.rs")


def expand_use(body):
    """`a::{b, c::{d}}` -> ['a::b', 'a::c::d'] (a simple recursive expansion)."""
    body = body.strip()
    m = re.match(r"^([\w:]*?)(::)?\{(.*)\}$", body, re.S)
    if not m:
        return [body.split(" as ")[0].strip()]
    prefix, inner = m.group(1), m.group(3)
    parts, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    parts.append(cur)
    out = []
    for p in parts:
        if p.strip():
            for e in expand_use(p):
                out.append(f"{prefix}::{e}" if prefix else e)
    return out


def paths_in(lines):
    """(path, is_reexport) for every crate/super/self path the lines use."""
    text = "\n".join(lines)
    found = []
    for m in re.finditer(r"(?m)^\s*(pub(?:\([^)]*\))?\s+)?use\s+([^;]+);", text):
        reexport = bool(m.group(1)) and not m.group(1).strip().startswith("pub(")
        for p in expand_use(m.group(2)):
            found.append((p, reexport))
    rest = re.sub(r"(?m)^\s*(pub(?:\([^)]*\))?\s+)?use\s+[^;]+;", "", text)
    for m in re.finditer(r"(?<![\w$])((?:crate|super|self)(?:::\w+)+)", rest):
        found.append((m.group(1), False))
    return found


def resolve(files, here, path):
    """The file a path leads to (the deepest module file on it), or None."""
    segs = path.split("::")
    base = list(here)
    if segs[0] not in ("crate", "super", "self"):
        # A path from a name in scope: a child module of this one (`use pool::Lease` in a
        # mod.rs), else another crate (std, tokio, ...), which is not ours to follow.
        if tuple(list(here) + segs[:1]) not in files:
            return None
        base = list(here)
    if segs[0] == "crate":
        base, segs = [], segs[1:]
    elif segs[0] == "self":
        base, segs = (list(here), segs[1:])
    while segs and segs[0] == "super":
        base = base[:-1] if base else base
        segs = segs[1:]
    full = base + segs
    for n in range(len(full), 0, -1):
        key = tuple(full[:n])
        if key in files:
            return files[key]
    return None


def graph(src):
    files = {}
    for p in sorted(src.rglob("*.rs")):
        mp = tuple(module_path(src, p))
        if mp:
            files.setdefault(mp, p)
    edges, layer_refs = {}, []
    for p in sorted(src.rglob("*.rs")):
        if p.name.endswith("_tests.rs") or p.name == "tests.rs":
            continue
        here = module_path(src, p)
        deps = set()
        for path, reexport in paths_in(code_lines(p)):
            if path.startswith("crate::"):
                top = path.split("::")[1]
                layer_refs.append((p, top))
            target = resolve(files, here, path)
            if target is None or target == p or reexport:
                continue
            # A file inside a module using that module's own items (`super::Error` in a
            # child of `mod.rs`) is containment, not a dependency: not an edge.
            there = module_path(src, target)
            if is_dir_module(target) and here[: len(there)] == there:
                continue
            deps.add(target)
        edges[p] = deps
    return edges, layer_refs


def circles(edges):
    """Strongly connected components of more than one file (Tarjan)."""
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
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

    sys.setrecursionlimit(10000)
    for v in list(edges):
        if v not in index:
            visit(v)
    return out


def check_map(src):
    """docs/design.md names every module and file, and only paths that exist."""
    design = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    bad = False
    diagram = design.split("## Layers", 1)[-1].split("```text", 1)[-1].split("```", 1)[0]
    for name, mods in LAYERS:
        for m in mods:
            shown = f"{m}.rs" if (src / f"{m}.rs").exists() else f"{m}/"
            if m in ("lib",):
                continue
            if not re.search(rf"(?<![\w/]){re.escape(shown)}", diagram):
                print(f"docs/design.md: {shown} is not in the layer diagram ({name})",
                      file=sys.stderr)
                bad = True
    files = [p for p in sorted(src.rglob("*"))
             if p.suffix in (".rs", ".sql") and p.name not in ("mod.rs", "tests.rs", "lib.rs")
             and not p.name.endswith("_tests.rs") and p.stem not in TEST_ONLY]
    shared = {n for n in (p.name for p in files) if sum(q.name == n for q in files) > 1}
    for p in files:
        # A name that two files share counts only as their path from src/ (`mirror/rows.rs`).
        bare = p.name not in shared and f"`{p.name}`" in design
        if not bare and f"{p.relative_to(src)}" not in design:
            print(f"docs/design.md does not name src/{p.relative_to(src)}", file=sys.stderr)
            bad = True
    # Every file name in the text exists: a path from the repository's root as written, a
    # path like `dispatch/wait.rs` under src/ (or testkit/src/), a bare `job.rs` somewhere.
    roots = ("src", "tests", "testkit", "cross", "scripts", "examples", "fuzz", "contrib",
             "systemd", "docs", "benches")
    names = {p.name for r in roots if (ROOT / r).is_dir() for p in (ROOT / r).rglob("*")}
    for ref in sorted(set(re.findall(
            r"(?<![\w/.-])([\w-]+(?:/[\w.-]+)*\.(?:rs|sql|md|sh|py|toml|service))\b",
            design))):
        if ref.split("/", 1)[0] in roots or "/" not in ref and (ROOT / ref).exists():
            found = (ROOT / ref).exists()
        elif "/" in ref:
            found = any((ROOT / base / ref).exists() for base in ("src", "testkit/src"))
        else:
            found = ref in names
        if not found:
            print(f"docs/design.md names {ref}, which does not exist", file=sys.stderr)
            bad = True
    return bad


def main():
    fail = False
    src = ROOT / "src"
    tops = {p.stem if p.is_file() else p.name
            for p in src.iterdir() if p.suffix == ".rs" or p.is_dir()}
    missing = sorted(tops - set(LEVEL) - TEST_ONLY)
    if missing:
        print("modules without a layer (add them to scripts/layout-guard.py and docs/design.md):",
              ", ".join(missing), file=sys.stderr)
        fail = True
    edges, refs = graph(src)
    for p, top in refs:
        own = module_path(src, p)
        me = own[0] if own else p.stem
        if top in TEST_ONLY or top not in LEVEL or me not in LEVEL:
            continue
        if LEVEL[top] > LEVEL[me]:
            print(f"{p.relative_to(ROOT)}: {me} ({NAME[LEVEL[me]]}) imports {top} "
                  f"({NAME[LEVEL[top]]}), a higher layer: move what both need down, "
                  f"or the module up (docs/design.md)", file=sys.stderr)
            fail = True
    for tree in (src, ROOT / "testkit" / "src"):
        e, _ = graph(tree) if tree != src else (edges, None)
        for comp in circles(e):
            print("import circle: " + " <-> ".join(str(p.relative_to(ROOT)) for p in comp)
                  + " (move what they share into a file both import)", file=sys.stderr)
            fail = True
    fail |= check_map(src)
    print(f"layers: {len(LEVEL)} modules in {len(LAYERS)} layers, "
          f"{sum(len(v) for v in edges.values())} file imports, no circle" if not fail
          else "layout: violations above")
    return 1 if fail else 0


if __name__ == "__main__":
    sys.exit(main())
