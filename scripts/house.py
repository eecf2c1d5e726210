#!/usr/bin/env python3
"""The house drawn from the imports: which file of src/ uses which, the circles among them and
the arrows that point from a core module back up to a front end.

Usage: scripts/house.py [--edges] [--modules]

Rust paths are resolved the way the compiler would for this crate's conventions: `crate::`,
`super::`, `self::` and child modules declared in the file; a name reached through a
`pub use` re-export is followed to the file that defines it, so a module that only re-exports
is not a room of its own. `pub use` lines are re-exports, not uses, and `#[cfg(test)]` modules
are left out (a test may reach anywhere). Exit status 1 when a circle or an upward arrow is
found, so CI could run it; the figures go in docs/architecture.md.
"""

import os
import re
import sys
from collections import defaultdict

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
SRC = os.path.normpath(SRC)
# Front ends: what parses arguments, draws or talks to a parent agent. Nothing below may use them.
FRONT = {"cli", "ui", "tui", "mcp", "main"}


def module_files():
    """Module path (tuple) -> file, for the library crate (src/bin and main.rs apart)."""
    files = {}
    for root, _dirs, names in os.walk(SRC):
        for name in names:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(root, name)
            rel = os.path.relpath(path, SRC)
            if rel.startswith("bin" + os.sep) or rel == "main.rs":
                continue
            parts = rel[:-3].split(os.sep)
            if parts == ["lib"]:
                mod = ()
            elif parts[-1] == "mod":
                mod = tuple(parts[:-1])
            else:
                mod = tuple(parts)
            files[mod] = rel
    return files


def strip_tests(text):
    """Drops `#[cfg(test)] mod x { ... }` blocks and `#[cfg(test)] mod x;` lines."""
    out = []
    i = 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*(?:pub(?:\([a-z]+\))?\s+)?mod\s+\w+\s*([{;])", text):
        if m.start() < i:
            continue
        out.append(text[i : m.start()])
        if m.group(1) == ";":
            i = m.end()
            continue
        depth = 1
        j = m.end()
        while j < len(text) and depth:
            if text[j] == "{":
                depth += 1
            elif text[j] == "}":
                depth -= 1
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def strip_comments(text):
    """Drops comments and the contents of string and char literals (a message may name
    `crate::`), lexing as Rust does: escapes, raw strings, and lifetimes told from chars."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            i = text.find("\n", i)
            i = n if i < 0 else i
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif c == "r" and re.match(r'r#*"', text[i:]) and not (i and (text[i - 1].isalnum() or text[i - 1] == "_")):
            hashes = re.match(r'r(#*)"', text[i:]).group(1)
            close = '"' + hashes
            j = text.find(close, i + 2 + len(hashes))
            out.append('""')
            i = n if j < 0 else j + len(close)
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            out.append('""')
            i += 1
        elif c == "'":
            m = re.match(r"'(\\(?:u\{[0-9a-fA-F]+\}|x[0-9a-fA-F]{2}|.)|[^\\'])'", text[i:], re.S)
            if m:
                out.append("' '")
                i += m.end()
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def expand_use_tree(tree):
    """`a::{b, c::{d, self}}` -> [[a,b],[a,c,d],[a,c]]."""
    tree = re.sub(r"\s+as\s+\w+", "", tree)
    tree = re.sub(r"\s+", "", tree)
    results = []

    def split_top(s):
        parts, depth, cur = [], 0, ""
        for ch in s:
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
            else:
                cur += ch
        if cur:
            parts.append(cur)
        return parts

    def walk(prefix, s):
        if not s:
            return
        if "{" in s:
            head, rest = s.split("{", 1)
            inner = rest[: rest.rfind("}")]
            head_parts = [p for p in head.split("::") if p]
            for part in split_top(inner):
                walk(prefix + head_parts, part)
        else:
            parts = [p for p in s.split("::") if p]
            if parts == ["self"]:
                results.append(prefix)
            elif parts == ["*"]:
                results.append(prefix + ["*"])
            else:
                results.append(prefix + parts)

    walk([], tree)
    return results


class Crate:
    def __init__(self):
        self.files = module_files()
        self.text = {}
        self.children = {}
        self.reexports = {}
        for mod, rel in self.files.items():
            raw = open(os.path.join(SRC, rel), encoding="utf-8").read()
            text = strip_comments(strip_tests(raw))
            self.text[mod] = text
            self.children[mod] = set(re.findall(r"^\s*(?:pub(?:\([a-z]+\))?\s+)?mod\s+(\w+)\s*;", text, re.M))
            self.reexports[mod] = {}
        test_only = set()
        for mod, rel in self.files.items():
            raw = strip_comments(open(os.path.join(SRC, rel), encoding="utf-8").read())
            for m in re.finditer(r"#\[cfg\(test\)\]\s*(?:pub(?:\([a-z]+\))?\s+)?mod\s+(\w+)\s*;", raw):
                test_only.add(mod + (m.group(1),))
        for mod in test_only:
            self.files.pop(mod, None)
            self.text.pop(mod, None)
        for mod in self.files:
            for m in re.finditer(r"^\s*pub(?:\([a-z]+\))?\s+use\s+([^;]+);", self.text[mod], re.M):
                for path in expand_use_tree(m.group(1)):
                    target = self.absolute(mod, path)
                    if target is not None and path:
                        self.reexports[mod][path[-1]] = target

    def absolute(self, mod, path):
        """Path as written in module `mod` -> absolute segments, or None if external."""
        if not path:
            return None
        head = path[0]
        if head == "crate":
            return list(path[1:])
        if head == "self":
            return list(mod) + list(path[1:])
        if head == "super":
            base = list(mod)
            rest = list(path)
            while rest and rest[0] == "super":
                base = base[:-1]
                rest = rest[1:]
            return base + rest
        if head in self.children.get(mod, ()):
            return list(mod) + list(path)
        return None

    def resolve(self, segments, depth=0):
        """Absolute segments -> the module (tuple) whose file defines the named item."""
        for n in range(len(segments), -1, -1):
            prefix = tuple(segments[:n])
            if prefix in self.files:
                rest = segments[n:]
                if rest and depth < 10 and rest[0] in self.reexports[prefix]:
                    return self.resolve(self.reexports[prefix][rest[0]] + rest[1:], depth + 1)
                return prefix
        return None

    def uses(self, mod):
        text = self.text[mod]
        paths = []
        for m in re.finditer(r"^\s*(pub(?:\([a-z]+\))?\s+)?use\s+([^;]+);", text, re.M):
            if m.group(1):
                continue
            paths.extend(expand_use_tree(m.group(2)))
        body = re.sub(r"^\s*(?:pub(?:\([a-z]+\))?\s+)?use\s+[^;]+;", "", text, flags=re.M)
        for m in re.finditer(r"\b((?:crate|super|self)(?:::\w+)+)", body):
            paths.append(m.group(1).split("::"))
        targets = set()
        for path in paths:
            if path and path[-1] == "*":
                path = path[:-1]
            absolute = self.absolute(mod, path)
            if absolute is None:
                continue
            target = self.resolve(absolute)
            if target is not None and target != mod:
                targets.add(target)
        return targets


def name(mod):
    return "crate" if not mod else "::".join(mod)


def file_cycles(graph):
    index, low, stack, on, sccs = {}, {}, [], set(), []
    counter = [0]
    sys.setrecursionlimit(10000)

    def strong(v):
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
            scc = []
            while True:
                w = stack.pop()
                on.discard(w)
                scc.append(w)
                if w == v:
                    break
            if len(scc) > 1:
                sccs.append(sorted(scc))

    for v in list(graph):
        if v not in index:
            strong(v)
    return sccs


def main():
    crate = Crate()
    graph = {mod: crate.uses(mod) for mod in crate.files}
    top = lambda mod: mod[0] if mod else "crate"
    if "--edges" in sys.argv:
        for mod in sorted(graph):
            for target in sorted(graph[mod]):
                print(f"{name(mod)} -> {name(target)}")
    modules = defaultdict(set)
    for mod, targets in graph.items():
        for target in targets:
            if top(mod) != top(target):
                modules[top(mod)].add(top(target))
    if "--modules" in sys.argv:
        for mod in sorted(modules):
            print(f"{mod} -> {', '.join(sorted(modules[mod]))}")
    cycles = file_cycles(graph)
    upward = sorted(
        (name(mod), name(target))
        for mod, targets in graph.items()
        for target in targets
        if top(mod) not in FRONT and top(target) in FRONT
    )
    module_cycles = file_cycles({k: v for k, v in modules.items()})
    print(f"files: {len(graph)}, uses between files: {sum(len(t) for t in graph.values())}")
    print(f"file circles: {len(cycles)}")
    for scc in cycles:
        print("  " + " <-> ".join(name(m) for m in scc))
    print(f"module circles: {len(module_cycles)}")
    for scc in module_cycles:
        print("  " + " <-> ".join(scc))
    print(f"arrows from a core module up to a front end: {len(upward)}")
    for a, b in upward:
        print(f"  {a} -> {b}")
    return 1 if cycles or upward else 0


if __name__ == "__main__":
    sys.exit(main())
