#!/usr/bin/python3
"""bench/tools.py — the arithmetic of `make bench` (called by bench/lib.sh; run with /usr/bin/python3).

  tools.py port USED...              a free 127.0.0.1 TCP port not among USED
  tools.py snap ROOTPID CPU_SRV CPU_CLI [SERVER_PID]
                                     one CPU snapshot: wall time, per-core and machine busy/steal ticks,
                                     the CPU ticks of every live process under ROOTPID (ours), of
                                     SERVER_PID and its children (the server under test) and of kernel
                                     threads (softirq work, mostly the bench's own loopback traffic)
  tools.py pct LATLOG                p50 p99 count from an h2load --log-file (ms)
  tools.py cpu SNAP0 SNAP1 H2LOAD_CPU_S REQUESTS
                                     server-core busy %, client-core busy %, foreign CPU % (of one core:
                                     machine busy minus our processes, h2load and kernel threads), steal %, and the
                                     server's CPU time per request in µs
  tools.py table DIR                 the markdown report from DIR/{header.md,rows.tsv,targets.tsv,
                                     expect.tsv,notes.md} (rows of several rounds: the median by req/s)
Only the standard library.
"""
import math
import os
import socket
import sys
import time

HZ = os.sysconf("SC_CLK_TCK")


def cmd_port(used):
    used = {int(u) for u in used}
    for _ in range(100):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        p = s.getsockname()[1]
        s.close()
        if p not in used:
            print(p)
            return 0
    return 1


def _cpu_lines():
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if not line.startswith("cpu"):
                break
            name, *v = line.split()
            v = [int(x) for x in v] + [0] * 10
            # user nice system idle iowait irq softirq steal guest guest_nice (guest is inside user)
            busy = v[0] + v[1] + v[2] + v[5] + v[6]
            out[name] = (busy, v[7])
    return out


def _tree_ticks(root):
    parent, ticks = {}, {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
        except OSError:
            continue
        rest = s[s.rindex(")") + 2:].split()
        # rest[0] is field 3 (state): ppid is field 4, utime 14, stime 15
        parent[int(d)] = int(rest[1])
        ticks[int(d)] = int(rest[11]) + int(rest[12])
    total = kthreads = 0
    for pid in ticks:
        if pid == 2 or parent.get(pid) == 2:  # kernel threads (ksoftirqd, kworker: mostly our loopback traffic)
            kthreads += ticks[pid]
            continue
        p, hops = pid, 0
        while p > 1 and hops < 64:
            if p == root:
                total += ticks[pid]
                break
            p, hops = parent.get(p, 0), hops + 1
    return total, kthreads


def cmd_snap(root, cpu_srv, cpu_cli, server_pid="0"):
    c = _cpu_lines()
    srv = c.get("cpu%s" % cpu_srv, (0, 0))[0]
    cli = c.get("cpu%s" % cpu_cli, (0, 0))[0]
    server = _tree_ticks(int(server_pid))[0] if server_pid.isdigit() and int(server_pid) > 1 else 0
    ours, kthreads = _tree_ticks(int(root))
    print("%.6f %d %d %d %d %d %d %d" % (time.time(), c["cpu"][0], c["cpu"][1], ours, srv, cli, server, kthreads))
    return 0


def cmd_cpu(snap0, snap1, h2load_cpu, nreq="0"):
    a = [float(x) for x in open(snap0).read().split()]
    b = [float(x) for x in open(snap1).read().split()]
    wall = max(b[0] - a[0], 1e-3)
    # seconds: busy, steal, ours, srv core, cli core, server process, kernel threads
    d = [(y - x) / HZ for x, y in zip(a[1:], b[1:])]
    try:
        h2 = float(h2load_cpu)
    except ValueError:
        h2 = 0.0
    foreign = max(0.0, d[0] - d[2] - h2 - d[6])
    n = int(nreq) if nreq.isdigit() else 0
    us = "%.1f" % (1e6 * d[5] / n) if n and d[5] > 0 else "nan"
    print("%.0f %.0f %.0f %.0f %s" % (100 * d[3] / wall, 100 * d[4] / wall, 100 * foreign / wall, 100 * d[1] / wall, us))
    return 0


def cmd_pct(path):
    v = []
    try:
        with open(path) as f:
            for line in f:
                p = line.split()
                if len(p) >= 3:
                    v.append(int(p[2]))
    except OSError:
        pass
    if not v:
        print("nan nan 0")
        return 0
    v.sort()

    def q(x):  # nearest rank
        return v[max(0, min(len(v) - 1, math.ceil(x * len(v)) - 1))] / 1000.0

    print("%.2f %.2f %d" % (q(0.50), q(0.99), len(v)))
    return 0


# ---- the report -------------------------------------------------------------------------------------
FIELDS = ["round", "name", "proto", "rps", "p50", "p99", "ok", "n", "srv", "cli", "other", "steal", "us", "note"]


def f(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def fmt_rps(x):
    return "—" if math.isnan(x) else "{:,.0f}".format(x)


def fmt_ms(x):
    return "—" if math.isnan(x) else "%.2f" % x


def read_tsv(path, n=None):
    if not os.path.exists(path):
        return []
    rows = []
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if line:
            p = line.split("\t")
            if n:
                p += [""] * (n - len(p))
            rows.append(p)
    return rows


def cmd_table(d):
    raw = [dict(zip(FIELDS, r)) for r in read_tsv(os.path.join(d, "rows.tsv"), len(FIELDS))]
    order, groups = [], {}
    for r in raw:
        k = (r["name"], r["proto"])
        if k not in groups:
            order.append(k)
            groups[k] = []
        groups[k].append(r)
    rows = {}
    for k in order:
        g = groups[k]
        measured = sorted([r for r in g if not math.isnan(f(r["rps"]))], key=lambda r: f(r["rps"]))
        if measured:
            r = dict(measured[(len(measured) - 1) // 2])  # median (lower middle) by req/s
            if len(measured) > 1:
                r["note"] = ("median of %d runs (%s–%s req/s)%s" % (
                    len(measured), fmt_rps(f(measured[0]["rps"])), fmt_rps(f(measured[-1]["rps"])),
                    "; " + r["note"] if r["note"] else ""))
        else:
            r = dict(g[-1])
        rows[k] = r
    ref_name = os.environ.get("BENCH_REF", "h2o 2.2.5 reverse proxy")
    out = []
    if os.path.exists(os.path.join(d, "header.md")):
        out.append(open(os.path.join(d, "header.md"), encoding="utf-8").read().rstrip("\n"))
        out.append("")
    out.append("| row | proto | req/s | p50 ms | p99 ms | 2xx / sent | req/s ÷ h2o | p99 ÷ h2o "
               "| server CPU µs/req | CPU/req ÷ h2o | core0 % | core1 % | other CPU % | note |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for k in order:
        r = rows[k]
        ref = rows.get((ref_name, r["proto"]))
        rps, p99 = f(r["rps"]), f(r["p99"])
        rr = pr = "—"
        if ref and not math.isnan(rps) and f(ref["rps"]) > 0:
            rr = "%.2f" % (rps / f(ref["rps"]))
        if ref and not math.isnan(p99) and f(ref["p99"]) > 0:
            pr = "%.2f" % (p99 / f(ref["p99"]))
        ok = "%s / %s" % (r["ok"], r["n"]) if r["n"] else "—"
        us = f(r["us"])
        ur = "—"
        if ref and not math.isnan(us) and f(ref["us"]) > 0:
            ur = "%.2f" % (us / f(ref["us"]))
        out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["name"], r["proto"], fmt_rps(rps), fmt_ms(f(r["p50"])), fmt_ms(p99), ok, rr, pr,
            "—" if math.isnan(us) else "%.1f" % us, ur, r["srv"] or "—", r["cli"] or "—", r["other"] or "—", r["note"]))
    out.append("")
    out.append("server CPU µs/req = CPU time (user + system) of the server under test's process per request "
               "during the measured run: the least load-sensitive column (the back end itself for the direct rows). "
               "With several rounds each row shows its median round, and each target line the median of the "
               "comparisons made within each round (the issue-4 pair: within each of its BENCH_PAIRS pairs per round). "
               "core0 = the server under test's core, core1 = h2load + back end (busy %, 100 = one full core); "
               "other CPU = the machine's busy time not spent by the bench's own processes or kernel threads (other users' work), "
               "in % of one core, during the measured run. A TLS cipher in the note = the server chose it over "
               "h2load's first choice, TLS_AES_128_GCM_SHA256 (server-preference order; OpenSSL's default list puts "
               "AES-256-GCM first), which costs it a little more per byte.")

    targets = read_tsv(os.path.join(d, "targets.tsv"), 8)
    if targets:
        out.append("")
        out.append("Targets:")
        by_round = {}
        for r in raw:
            by_round.setdefault(r["round"], {})[(r["name"], r["proto"])] = r
        multi = len(by_round) > 1

        def value(kind, a, b):
            if not a or math.isnan(f(a["rps"])) or (kind not in ("rps", "ok_rps") and (not b or math.isnan(f(b["rps"])))):
                return None
            if kind == "rps_ratio":
                return f(a["rps"]) / f(b["rps"])
            if kind == "p99_ratio":
                return f(a["p99"]) / f(b["p99"])
            if kind == "cpu_ratio":  # server CPU per request
                return f(a["us"]) / f(b["us"]) if f(b["us"]) > 0 and not math.isnan(f(a["us"])) else None
            if kind == "p99_added_ms":
                return f(a["p99"]) - f(b["p99"])
            if kind == "rps":
                return f(a["rps"])
            if kind == "ok_rps":  # absolute, counting only the 2xx answers (a fast error is not throughput)
                return f(a["rps"]) * f(a["ok"]) / f(a["n"]) if f(a["n"]) > 0 else None
            return None

        for label, kind, an, ap, bn, bp, op, val in targets:
            val = None if op == "info" else f(val)
            unit = {"rps_ratio": "×", "cpu_ratio": "×", "p99_ratio": "×", "p99_added_ms": " ms", "rps": " req/s", "ok_rps": " req/s"}.get(kind)
            if unit is None:
                out.append("- %s: unknown kind %s" % (label, kind))
                continue
            show = (lambda x: fmt_rps(x)) if kind in ("rps", "ok_rps") else (lambda x: "%.2f" % x)
            extra = ""
            if multi:  # the same comparison within each round (same machine state), then the median
                vs = [value(kind, rr.get((an, ap)), rr.get((bn, bp))) for _, rr in sorted(by_round.items())]
                vs = [x for x in vs if x is not None]
                # the median; of an even count, the middle value on the target's unfavourable side
                v = sorted(vs)[(len(vs) - 1) // 2 if op == ">=" else len(vs) // 2] if vs else None
                extra = " — median of %d comparisons: %s" % (len(vs), ", ".join(show(x) for x in vs)) if vs else ""
            else:
                v = value(kind, rows.get((an, ap)), rows.get((bn, bp)))
            if v is None:
                out.append("- %s: not measured" % label)
                continue
            if op == "info":  # a number for reference, no target
                out.append("- %s: %s%s%s" % (label, show(v), unit, extra))
                continue
            ok = v >= val if op == ">=" else v <= val
            out.append("- %s: %s%s (target %s %s%s) %s%s" % (
                label, show(v), unit, "≥" if op == ">=" else "≤", show(val), unit, "PASS" if ok else "MISS", extra))

    expect = read_tsv(os.path.join(d, "expect.tsv"), 3)
    if expect:
        parts, ratios = [], []
        for name, proto, ref in expect:
            r = rows.get((name, proto))
            if r and not math.isnan(f(r["rps"])):
                x = f(r["rps"]) / f(ref)
                ratios.append(x)
                parts.append("%s %s %s (%.2f× of %sk)" % (name, proto, fmt_rps(f(r["rps"])), x, fmt_rps(f(ref) / 1000)))
        if parts:
            out.append("")
            out.append("Reference servers against NOTES.md's quiet-machine numbers: " + "; ".join(parts) + ".")
            m = sorted(ratios)[len(ratios) // 2]
            others = sorted(f(r["other"]) for r in rows.values() if not math.isnan(f(r["other"])))
            steals = sorted(f(r["steal"]) for r in rows.values() if not math.isnan(f(r["steal"])))
            other = others[len(others) // 2] if others else float("nan")
            steal = steals[len(steals) // 2] if steals else float("nan")
            if m < 0.9:
                why = ("other work on this machine took a median %.0f%% of a core during the rows" % other
                       if other >= 15 else
                       "other work inside this machine was small (median %.0f%% of a core), so the host is "
                       "slower or shared (median steal %.0f%%)" % (other, steal))
                out.append("**This run reached only ~%.0f%% of the quiet-machine numbers: %s. Compare rows only as "
                           "ratios within this run.**" % (100 * m, why))
    if os.path.exists(os.path.join(d, "notes.md")):
        out.append("")
        out.append(open(os.path.join(d, "notes.md"), encoding="utf-8").read().rstrip("\n"))
    print("\n".join(out))
    return 0


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    c, a = argv[1], argv[2:]
    if c == "port":
        return cmd_port(a)
    if c == "snap":
        return cmd_snap(*a)
    if c == "cpu":
        return cmd_cpu(*a)
    if c == "pct":
        return cmd_pct(*a)
    if c == "table":
        return cmd_table(*a)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
