#!/usr/bin/env python3
"""make bench, scale: a county-size tree on this machine.

  bench_tree.py LIANXIN DIR [--changes 100] [--base-port 27000]

Generates the tree with scripts/gen-topology --county-size (a province, a
city, one county of 20 townships and 300 villages: 323 nodes), renders it,
starts every node and measures

  tree_nodes          nodes started
  tree_render_s       `lianxin topology render` of the whole tree
  tree_startup_s      from the first node started until every link is up
  tree_idle_rss_*     VmRSS per node after 10 s idle (median, max, per level;
                      PSS and private memory too)
  tree_load_s         time from the first of CHANGES new children entered at
                      every village until the province holds all of them
  tree_loaded_rss_*   peak RSS (VmHWM) per node after the load, per level
  tree_loaded_anon_*  private memory (RssAnon) per node after the load
  tree_converged      1 when the province's digest of the county equals the
                      county's and every township's equals its own

as "name value unit" lines on stdout; progress on stderr. Every node it
starts is stopped (SIGTERM, then SIGKILL) when it ends, however it ends.
"""
import argparse, json, os, signal, statistics, subprocess, sys, time

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.abspath(os.path.join(here, "..", ".."))

ap = argparse.ArgumentParser()
ap.add_argument("lianxin")
ap.add_argument("dir")
ap.add_argument("--changes", type=int, default=100)
# Below the ephemeral range (32768-60999 here), which outgoing links draw
# from: ZeroMQ on 27000-27322, the API on 32000-32322 (topology: +5000).
ap.add_argument("--base-port", type=int, default=27000)
ap.add_argument("--timeout", type=float, default=600)
a = ap.parse_args()
LX, D = a.lianxin, a.dir
os.environ.setdefault("LIANXIN_DIVISIONS", os.path.join(root, "data", "divisions"))

procs = {}


def log(*m):
    print("bench_tree:", *m, file=sys.stderr, flush=True)


def stop_all():
    for p in procs.values():
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    t0 = time.time()
    for p in procs.values():
        try:
            p.wait(timeout=max(0.1, 15 - (time.time() - t0)))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def on_signal(sig, _frame):
    stop_all()
    sys.exit(128 + sig)


signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGINT, on_signal)


def out(key, val, unit):
    print("%s %s %s" % (key, ("%.3f" % val) if isinstance(val, float) else val, unit), flush=True)


def status(code):
    r = subprocess.run([LX, "status", "--data", "%s/%s/data" % (D, code), "--json"],
                       capture_output=True, text=True)
    return json.loads(r.stdout) if r.returncode == 0 else None


def proc_kib(pid, field):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pss_kib(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def main():
    topo = os.path.join(D, "county.ini")
    with open(topo, "w") as f:
        subprocess.run([os.path.join(root, "scripts", "gen-topology"), "--county-size",
                        "--base-port", str(a.base_port)], stdout=f, check=True)
    t0 = time.time()
    subprocess.run([LX, "topology", "render", "--topology", topo, "--out", D],
                   stdout=subprocess.DEVNULL, check=True)
    out("tree_render_s", time.time() - t0, "s")
    nodes = [l.split()[:2] for l in open(os.path.join(D, "nodes.txt"))]
    level = dict(nodes)
    codes = [c for c, _ in nodes]
    parents = [c for c, lv in nodes if lv != "village"]
    villages = [c for c, lv in nodes if lv == "village"]
    province = next(c for c, lv in nodes if lv == "province")
    county = next(c for c, lv in nodes if lv == "county")
    out("tree_nodes", len(codes), "nodes")

    # Start-up: every process started, then every parent sees every child.
    t0 = time.time()
    for c in codes:
        lf = open("%s/%s/node.log" % (D, c), "ab")
        procs[c] = subprocess.Popen([LX, "node", "--config", "%s/%s/node.ini" % (D, c)],
                                    stdout=lf, stderr=lf)
        lf.close()
    pending = set(parents)
    while pending and time.time() - t0 < a.timeout:
        for c in sorted(pending):
            s = status(c)
            if s and s.get("running") and all(k["connected"] for k in s["children"]) \
                    and (s["parent"] is None or s["parent"]["connected"]):
                pending.discard(c)
        dead = [c for c, p in procs.items() if p.poll() is not None]
        if dead:
            why = open("%s/%s/node.log" % (D, dead[0]), errors="replace").read().strip()
            raise SystemExit("bench_tree: nodes exited at start: %s (%s: %s)" % (
                " ".join(dead[:5]), dead[0], why.splitlines()[-1] if why else "no log"))
        if pending:
            time.sleep(0.2)
    if pending:
        raise SystemExit("bench_tree: links still down after %.0f s at %s" % (a.timeout, " ".join(sorted(pending)[:5])))
    out("tree_startup_s", time.time() - t0, "s")

    # Idle.
    time.sleep(10)
    rss = {c: proc_kib(procs[c].pid, "VmRSS") / 1024 for c in codes}
    anon = {c: proc_kib(procs[c].pid, "RssAnon") / 1024 for c in codes}
    threads = {c: proc_kib(procs[c].pid, "Threads") for c in codes}
    vals = sorted(rss.values())
    out("tree_idle_rss_median", statistics.median(vals), "MiB")
    out("tree_idle_rss_max", vals[-1], "MiB")
    out("tree_idle_rss_anon_median", statistics.median(anon.values()), "MiB")
    pss = [pss_kib(procs[c].pid) / 1024 for c in codes]
    out("tree_idle_pss_median", statistics.median(pss), "MiB")
    out("tree_idle_pss_total", sum(pss), "MiB")
    out("tree_threads_per_node", statistics.median(threads.values()), "threads")
    for lv in ("village", "township", "county", "city", "province"):
        out("tree_idle_rss_%s" % lv, statistics.median(rss[c] for c in codes if level[c] == lv), "MiB")
    out("tree_idle_over_8mib", sum(1 for v in vals if v > 8), "nodes")

    # Load: CHANGES new children at every village, entered with the
    # operator's command while the tree runs (two at a time: two cores).
    n = a.changes
    before = status(province)["records"]
    for i, v in enumerate(villages):
        subprocess.run([LX, "gen", "--subtree", v, "--count", str(n), "--seed", str(100 + i),
                        "--out", "%s/%s/new.csv" % (D, v)], check=True)
    want = before + n * len(villages)
    t0 = time.time()
    running, todo = [], list(villages)
    while todo or running:
        while todo and len(running) < 2:
            v = todo.pop()
            running.append(subprocess.Popen([LX, "import", "--data", "%s/%s/data" % (D, v), "--csv",
                                             "%s/%s/new.csv" % (D, v), "--quiet"],
                                            stdout=subprocess.DEVNULL))
        for p in running[:]:
            if p.poll() is not None:
                if p.returncode:
                    raise SystemExit("bench_tree: import failed")
                running.remove(p)
        time.sleep(0.005)
    t_entered = time.time() - t0
    got = before
    while time.time() - t0 < a.timeout:
        got = status(province)["records"]
        if got >= want:
            break
        time.sleep(0.05)
    t_load = time.time() - t0
    if got < want:
        raise SystemExit("bench_tree: the province holds %d of %d after %.0f s" % (got, want, t_load))
    out("tree_load_changes", n * len(villages), "changes")
    out("tree_load_entered_s", t_entered, "s")
    out("tree_load_s", t_load, "s")
    out("tree_load_rate", n * len(villages) / t_load, "changes/s")
    hwm = {c: proc_kib(procs[c].pid, "VmHWM") / 1024 for c in codes}
    anon = {c: proc_kib(procs[c].pid, "RssAnon") / 1024 for c in codes}
    for lv in ("village", "township", "county", "city", "province"):
        out("tree_loaded_rss_%s" % lv, statistics.median(hwm[c] for c in codes if level[c] == lv), "MiB")
        out("tree_loaded_anon_%s" % lv, statistics.median(anon[c] for c in codes if level[c] == lv), "MiB")

    # Converged: the province's digest of every township (and the county)
    # equals the township's own, once the levels in between caught up.
    def digest(code, sub=None):
        cmd = [LX, "digest", "--data", "%s/%s/data" % (D, code)]
        if sub:
            cmd += ["--subtree", sub]
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    ok = False
    while time.time() - t0 < a.timeout and not ok:
        ok = digest(province, county) == digest(county) and all(
            digest(province, t) == digest(t) for t in parents if level[t] == "township")
        if not ok:
            time.sleep(0.5)
    out("tree_converged", 1 if ok else 0, "bool")


try:
    main()
finally:
    stop_all()
