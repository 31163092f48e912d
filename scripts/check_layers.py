#!/usr/bin/python3
"""scripts/check_layers.py — the folder contract, checked from the #include lines (README, "Folders").

Usage: check_layers.py [ROOT]          check the source tree at ROOT (default: the repo); exit 0 or 1
       check_layers.py --graph [ROOT]  also print the folder graph (folders and the edges between them)

Rules (each violation is printed as file:line: what):
  1. No include cycle between folders. A folder is the directory of a file (auth/http/ is a folder
     of its own, apart from auth/); gateway/main.c, the one place that wires everything, is left out.
  2. A private header (internal.h or *_internal.h) is included only from its own folder.
  3. qr/'s core (the files directly in qr/) includes no h2o, hiredis, gateway/ or auth/ header: a
     transit gate links it alone.
  4. Bearer tokens are authenticated in one place: auth_verify_bearer / auth_verify_bearer_ref are
     called only from gateway/bearer.c (auth/ declares and defines them; tests and benchmarks may call them).
Only the source folders are checked (everything but tests/, bench/, scripts/, conf/, build*/).
"""
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')
BEARER_CALL = re.compile(r'\bauth_verify_bearer(_ref)?\s*\(')
DECLARATION = re.compile(r'^auth_reason_t\s')  # a prototype or the definition (auth/), not a call
SKIP = {"tests", "bench", "scripts", "conf", ".git", ".ci", "node_modules"}
WIRING = {"gateway/main.c"}
BEARER_HOME = "gateway/bearer.c"
QR_CORE_BANNED = re.compile(r'^(h2o[./]|hiredis/|gateway/|auth/)')


def sources(root):
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        top = rel.split(os.sep)[0]
        if rel != "." and (top in SKIP or top.startswith("build") or top.startswith(".")):
            dirnames[:] = []
            continue
        dirnames.sort()
        for f in sorted(filenames):
            if f.endswith((".c", ".h")):
                yield os.path.normpath(os.path.join(rel, f)).replace(os.sep, "/")


def folder(path):
    d = os.path.dirname(path)
    return d if d else "."


def strip_comments(line, state):
    """The code of LINE outside /* */ and // comments; STATE[0] says whether a block comment is open."""
    out, i = [], 0
    while i < len(line):
        if state[0]:
            j = line.find("*/", i)
            if j == -1:
                return "".join(out)
            state[0], i = False, j + 2
        elif line.startswith("/*", i):
            state[0], i = True, i + 2
        elif line.startswith("//", i):
            break
        else:
            out.append(line[i])
            i += 1
    return "".join(out)


def scan(root):
    """(includes, calls): includes = [(file, line, quoted?, target)], calls = [(file, line)] of bearer checks."""
    includes, calls = [], []
    for path in sources(root):
        state = [False]
        with open(os.path.join(root, path), encoding="utf-8", errors="replace") as f:
            for n, raw in enumerate(f, 1):
                m = INCLUDE.match(raw)
                if m:
                    includes.append((path, n, m.group(1) == '"', m.group(2)))
                    continue
                code = strip_comments(raw, state)
                if BEARER_CALL.search(code) and not DECLARATION.match(code):
                    calls.append((path, n))
    return includes, calls


def folder_graph(includes, root):
    """{folder: {folder: (file, line) of the first include making that edge}} between the tree's folders."""
    graph = {}
    for path, n, quoted, target in includes:
        if not quoted or path in WIRING or not os.path.exists(os.path.join(root, target)):
            continue
        a, b = folder(path), folder(target)
        graph.setdefault(a, {})
        graph.setdefault(b, {})
        if a != b and b not in graph[a]:
            graph[a][b] = (path, n)
    return graph


def cycles(graph):
    """Every elementary cycle's folders, found once each (from its smallest folder), as lists."""
    found, nodes = [], sorted(graph)
    for start in nodes:
        stack = [(start, [start])]
        while stack:
            node, trail = stack.pop()
            for nxt in sorted(graph[node]):
                if nxt == start:
                    found.append(trail)
                elif nxt > start and nxt not in trail:
                    stack.append((nxt, trail + [nxt]))
    return found


def check(root):
    includes, calls = scan(root)
    errors = []
    graph = folder_graph(includes, root)
    for cyc in cycles(graph):
        hops = []
        for a, b in zip(cyc, cyc[1:] + cyc[:1]):
            f, n = graph[a][b]
            hops.append("%s -> %s (%s:%d)" % (a, b, f, n))
        errors.append("include cycle between folders: " + ", ".join(hops))
    for path, n, quoted, target in includes:
        base = os.path.basename(target)
        if quoted and (base == "internal.h" or base.endswith("_internal.h")) and folder(target) != folder(path):
            errors.append("%s:%d: includes %s, a private header of %s/" % (path, n, target, folder(target)))
        if folder(path) == "qr" and QR_CORE_BANNED.match(target):
            errors.append("%s:%d: qr's core includes %s (it must link alone into a gate)" % (path, n, target))
        if folder(path) == "qr" and target in ("h2o.h", "hiredis.h"):
            errors.append("%s:%d: qr's core includes %s (it must link alone into a gate)" % (path, n, target))
    for path, n in calls:
        if path != BEARER_HOME:
            errors.append("%s:%d: authenticates a bearer token itself (only %s does)" % (path, n, BEARER_HOME))
    return errors, graph


def main(argv):
    args = [a for a in argv[1:] if a != "--graph"]
    root = args[0] if args else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    errors, graph = check(root)
    if "--graph" in argv:
        for a in sorted(graph):
            print("%-12s -> %s" % (a + "/", ", ".join(b + "/" for b in sorted(graph[a])) or "(nothing)"))
    for e in errors:
        print(e)
    if errors:
        print("check_layers: %d violation(s) of the folder contract" % len(errors))
        return 1
    print("check_layers: ok (%d folders, no cycle, private headers private, qr core alone, one bearer check)" % len(graph))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
