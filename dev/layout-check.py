#!/usr/bin/env python3
"""Checks the workspace layout README.md promises (section "Layout"):

1. no import circles between the modules of any crate (a module's `use crate::…`,
   `use super::…` and a parent's `child::…` references are edges; tests are left out);
2. jobs-core depends on no Kubernetes client, HTTP server, async runtime or rate limiter;
3. the toolforge-jobs CLI depends on no axum, kube or governor.

Exit status 1 and one line per problem when something is off.
"""
import os
import re
import subprocess
import sys

CRATES = ["src", "crates/core/src", "crates/cli/src"]
FORBIDDEN = {
    "jobs-core": {"kube", "kube-client", "axum", "axum-server", "tokio", "hyper", "governor", "reqwest"},
    "toolforge-jobs": {"kube", "kube-client", "axum", "axum-server", "governor"},
}


def modules(root):
    """Module path (a::b) -> file, for every .rs file under a crate's src."""
    found = {}
    for d, _, files in os.walk(root):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(d, f)
            parts = os.path.relpath(path, root)[:-3].split(os.sep)
            if parts[-1] in ("mod", "lib", "main"):
                parts = parts[:-1]
            if parts and (parts[-1].endswith("_tests") or parts[-1] == "test_fixtures"):
                continue  # test-only files, included with #[path] from their module
            if root == "src" and parts and parts[0] == "bin":
                continue
            found["::".join(parts)] = path
    return found


def resolve(module, path, mods):
    parts = path.split("::")
    if parts[0] == "crate":
        base, parts = [], parts[1:]
    else:  # super
        base = module.split("::")[:-1] if module else []
        parts = parts[1:]
        while parts and parts[0] == "super":
            base, parts = base[:-1], parts[1:]
    best = "::".join(base)
    for i in range(1, len(parts) + 1):
        cand = "::".join(base + parts[:i])
        if cand in mods:
            best = cand
    return best if best in mods else None


def code_of(path):
    text = open(path, encoding="utf-8").read()
    text = re.split(r"#\[cfg\(test\)\]\s*(?:#\[path[^\]]*\]\s*)?mod tests", text)[0]
    return re.sub(r"//[^\n]*", "", text)


def cycles(root):
    mods = modules(root)
    graph = {m: set() for m in mods}
    for m, path in mods.items():
        src = code_of(path)
        uses = re.findall(r"\b((?:crate|super)(?:::[A-Za-z_]\w*)+)", src)
        for prefix, group in re.findall(r"\b((?:crate|super)(?:::[A-Za-z_]\w*)*)::\{([^}]*)\}", src):
            uses += [prefix + "::" + g.strip().split("::")[0] for g in group.split(",") if g.strip()]
        for u in uses:
            target = resolve(m, u, mods)
            if target is not None and target != m:
                graph[m].add(target)
        for child in mods:
            parent = child.rsplit("::", 1)[0] if "::" in child else ""
            if child and child != m and parent == m:
                name = child.split("::")[-1]
                if re.search(r"(?<![:\w])" + re.escape(name) + r"::", src):
                    graph[m].add(child)
    found, state, stack = [], {}, []

    def visit(v):
        state[v] = 1
        stack.append(v)
        for w in sorted(graph[v]):
            if state.get(w) == 1:
                found.append(stack[stack.index(w):] + [w])
            elif w not in state:
                visit(w)
        stack.pop()
        state[v] = 2

    for v in sorted(graph):
        if v not in state:
            visit(v)
    return found


def dependencies(package):
    out = subprocess.run(
        ["cargo", "tree", "-p", package, "-e", "normal", "--prefix", "none"],
        check=True, capture_output=True, text=True,
    ).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def main():
    problems = []
    for root in CRATES:
        for c in cycles(root):
            problems.append(f"import circle in {root}: " + " -> ".join(x or "<crate root>" for x in c))
    for package, banned in FORBIDDEN.items():
        for dep in sorted(dependencies(package) & banned):
            problems.append(f"{package} depends on {dep}")
    for p in problems:
        print(p)
    if problems:
        return 1
    print("layout: no import circles; jobs-core and toolforge-jobs keep to their dependencies")
    return 0


if __name__ == "__main__":
    sys.exit(main())
