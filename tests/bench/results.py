#!/usr/bin/env python3
"""Turns the "name value unit" lines of one `make bench` into the table:
each figure of Lianxin next to the physical limit and next to PostgreSQL
15, median of the runs with min and max. Prints it and writes RESULTS.md.

  results.py RAW CONFLICTS.md RESULTS.md --runs R --n N --repl-n N --prov-n N
             --tree-changes N --seconds S [--quick]
"""
import argparse, datetime, os, platform, statistics, subprocess, sys

ap = argparse.ArgumentParser()
ap.add_argument("raw")
ap.add_argument("conflicts")
ap.add_argument("out")
for k in ("runs", "n", "repl_n", "prov_n", "tree_changes", "seconds", "samples"):
    ap.add_argument("--" + k.replace("_", "-"), type=int, required=True)
ap.add_argument("--quick", action="store_true")
a = ap.parse_args()

vals, units = {}, {}
for line in open(a.raw):
    parts = line.split()
    if len(parts) != 3:
        continue
    k, v, u = parts
    try:
        vals.setdefault(k, []).append(float(v))
        units[k] = u
    except ValueError:
        pass


def med(k):
    return statistics.median(vals[k]) if k in vals else None


def fmt_num(x, unit):
    if x is None:
        return "—"
    if unit == "faults/1000":
        return "%.0f" % x
    if unit in ("ms", "s", "MiB") or abs(x) < 100:
        return "%.3g" % x if abs(x) < 10 else "%.1f" % x
    return "{:,.0f}".format(x)


def cell(k, unit=None):
    """median (min–max) unit, or — when not measured."""
    if k not in vals:
        return "—"
    u = unit or units.get(k, "")
    v = vals[k]
    if len(v) == 1:
        return "%s %s" % (fmt_num(v[0], u), u)
    return "%s %s (%s–%s)" % (fmt_num(statistics.median(v), u), u, fmt_num(min(v), u), fmt_num(max(v), u))


def ratio(lx, other, higher_better):
    """How many times better Lianxin is (>1) or worse (<1)."""
    x, y = med(lx), med(other)
    if not x or not y:
        return "—"
    r = x / y if higher_better else y / x
    if r < 0.1:
        return "1/%.0f" % (1 / r)
    return "%.2f×" % r if r < 10 else "%.0f×" % r


def limit(keys):
    return "<br>".join("%s: %s" % (label, cell(k)) for label, k in keys if k in vals) or "—"


H = True   # higher is better
L = False
rows = [
    # (label, lianxin key, [(limit label, key)], limit key for the ratio, higher?, pg key, sync pg key)
    ("1. durable ingest at one node, in process (children/s)", "ingest_durable",
     [("LMDB ordered, durable", "lmdb_put_ordered"), ("LMDB random, durable", "lmdb_put_random"),
      ("LMDB ordered, no sync", "lmdb_put_ordered_nosync"), ("LMDB random, no sync", "lmdb_put_random_nosync")],
     "lmdb_put_ordered", H, "pg_ingest_copy", None),
    ("1b. `lianxin import` of a CSV vs `COPY` (children/s)", "cli_import", [], "lmdb_put_ordered", H,
     "pg_ingest_copy", None),
    ("2. five-level end to end, durable at every hop (changes/s)", "e2e_changes",
     [("ZeroMQ 4 hops, 300 B", "zmq_4hop_msgs")], "zmq_4hop_msgs", H, "pg_default_e2e_changes",
     "pg_sync_e2e_changes"),
    ("2b. the same on nodes just started: their first %dk changes, every page of their working memory touched for the first time (changes/s)"
     % (a.repl_n // 1000), "e2e_cold_changes", [("ZeroMQ 4 hops, 300 B", "zmq_4hop_msgs")], "zmq_4hop_msgs", H,
     None, None),
    ("3. one change village → province, p50 (ms)", "lat_p50", [("ZeroMQ 4 hops, one way", "zmq_4hop_p50")],
     "zmq_4hop_p50", L, "pg_default_lat_p50", "pg_sync_lat_p50"),
    ("3. one change village → province, p99 (ms)", "lat_p99", [("ZeroMQ 4 hops, one way", "zmq_4hop_p99")],
     "zmq_4hop_p99", L, "pg_default_lat_p99", "pg_sync_lat_p99"),
    ("4. catch-up of a %dk backlog over one hop (changes/s)" % (a.repl_n // 1000), "catchup_changes",
     [("ZeroMQ 4 hops", "zmq_4hop_msgs")], "zmq_4hop_msgs", H, "pg_default_catchup_changes",
     "pg_sync_catchup_changes"),
    ("4b. the same catch-up timed from the first batch's commit (transfer alone, changes/s)",
     "catchup_transfer", [("ZeroMQ 4 hops", "zmq_4hop_msgs")], "zmq_4hop_msgs", H, None, None),
    ("4c. the same catch-up: restart, reconnect and handshake before the first commit (s)",
     "catchup_start", [], None, L, None, None),
    ("5. quarterly report over %dk children (s, process start included)" % (a.prov_n // 1000),
     "prov_lx_report_json", [("LMDB walk of as many 1 KiB values", "raw_walk_prov_s")], "raw_walk_prov_s", L,
     "prov_pg_report", None),
    ("5b. digest of the whole store (s)", "prov_lx_digest", [], None, L, "prov_pg_digest", None),
    ("5c. export of the whole store as CSV (s)", "prov_lx_export", [], None, L, "prov_pg_export", None),
    ("6. bytes on the wire per single-field change", "wire_bytes_change", [], None, L,
     "pg_default_wire_bytes_change", "pg_sync_wire_bytes_change"),
    ("7. idle memory per node: Lianxin VmRSS (shared libraries included) vs the cluster's PSS",
     "lx_chain_idle_rss_node", [], None, L, "pg_default_idle_pss_node", "pg_sync_idle_pss_node"),
    ("7. idle memory per node, PSS on both sides", "lx_chain_idle_pss_node", [], None, L,
     "pg_default_idle_pss_node", "pg_sync_idle_pss_node"),
    ("7. loaded memory per node, peak during rows 2b and 2 (Lianxin carries twice the changes): Lianxin private (RssAnon) vs the cluster's PSS",
     "lx_chain_loaded_anon_node", [], None, L, "pg_default_loaded_pss_node", "pg_sync_loaded_pss_node"),
    ("7. loaded, Lianxin peak VmRSS with the store's mapped pages (the OS page cache)",
     "lx_chain_loaded_rss_node", [], None, L, None, None),
]
# The physical limit of the report: a raw LMDB cursor walk over as many
# 1 KiB values as the store holds children.
if "lmdb_walk" in vals:
    vals["raw_walk_prov_s"] = [a.prov_n / v for v in vals["lmdb_walk"]]
    units["raw_walk_prov_s"] = "s"

now = datetime.datetime.now(datetime.timezone.utc)
cpu = "?"
try:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
except OSError:
    pass
mem = int(open("/proc/meminfo").readline().split()[1]) / 1048576
pgv = subprocess.run(["/usr/lib/postgresql/15/bin/postgres", "--version"], capture_output=True,
                     text=True).stdout.strip()
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()

L_ = []
w = L_.append
w("# Lianxin benchmark results")
w("")
w("Regenerated by `make bench` (tests/bench/run)%s. Do not edit by hand." %
  (" with BENCH_QUICK=1: smaller sizes, not the reference figures" if a.quick else ""))
w("")
w("- date: %s" % now.strftime("%Y-%m-%d %H:%M UTC"))
w("- machine: %s, %d cores, %.0f GiB memory, Linux %s, %s" % (cpu, os.cpu_count(), mem, platform.release(),
                                                          platform.machine()))
w("- commit: %s; peer: %s; runs: %d (each cell: median (min–max) over the runs); the whole run took %d min"
  % (commit or "?", pgv or "PostgreSQL 15", a.runs, round(a.seconds / 60)))
w("- sizes: ingest %d children; replication %d changes; report store %d children; tree: %d new children "
  "at each of 300 villages" % (a.n, a.repl_n, a.prov_n, a.tree_changes))
w("")
w("## Lianxin, the physical limit, and PostgreSQL 15 logical replication")
w("")
w("Ratios say how many times better Lianxin is (above 1) or worse (below 1, written 1/N when it is N "
  "times worse): for throughput Lianxin ÷ other, for times, bytes and memory other ÷ Lianxin.")
w("")
w("| measure | Lianxin | physical limit (same run) | vs limit | PostgreSQL, default subscriptions | vs PG | "
  "PostgreSQL, `synchronous_commit = on` | vs PG sync |")
w("| --- | --- | --- | --- | --- | --- | --- | --- |")
for label, lx, lims, limk, hb, pgk, pgs in rows:
    w("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
        label, cell(lx), limit(lims), ratio(lx, limk, hb) if limk else "—", cell(pgk) if pgk else "—",
        ratio(lx, pgk, hb) if pgk else "—", cell(pgs) if pgs else ("same as default" if pgk else "—"),
        ratio(lx, pgs, hb) if pgs else "—"))
w("")
w("Targets: ingest ≥ 100,000 children/s durable; end to end ≥ 50,000 changes/s; p50 ≤ 5 ms, p99 ≤ 20 ms; "
  "catch-up ≥ 100,000/s; report ≤ 1 s; idle RSS per node ≤ 8 MiB.")
w("")
w("Row 2 is the tree's steady state: the same five processes have already carried one batch of as many changes "
  "(row 2b), so each has touched its working memory once, and it includes what running on costs, such as folding "
  "131,072 pending ID numbers into the index. Row 2b is the first batch after the processes start%s."
  % ("; at %dk changes it stays below the 131,072 numbers that start a fold" % (a.repl_n // 1000)
     if a.repl_n < 131072 else "") +
  " PostgreSQL's row 2 is the median of its runs on the same five clusters, the table emptied between runs: "
  "its first run is on clusters just started, the others on running ones.")
w("")
w("Row 4 starts the stopped township process and counts until its store holds the backlog: the restart, "
  "the village's reconnect (it looks for a parent at most every 100 ms) and the handshake are inside it; "
  "PostgreSQL's figure enables a subscription on a running server. Row 4b is the transfer alone.")
w("")
w("### The same store, more figures")
w("")
w("| measure | value |")
w("| --- | --- |")
for label, k in [("walk and decode every record (in process)", "walk_decode"),
                 ("`child get`, random ids, one process", "child_get"),
                 ("digest of the node's subtree, in process", "digest_ms"),
                 ("`lianxin digest`, process start included", "cli_digest_ms"),
                 ("store bytes per child (Lianxin, with every field's version)", "store_bytes_per_child"),
                 ("raw LMDB cursor walk", "lmdb_walk"),
                 ("chain node, peak RSS of the busiest (Lianxin)", "lx_chain_loaded_rss_max"),
                 ("chain node, peak private memory of the busiest (Lianxin)", "lx_chain_loaded_anon_max"),
                 ("PG cluster, peak PSS of the busiest, default", "pg_default_loaded_pss_max"),
                 ("PG cluster, peak PSS of the busiest, sync", "pg_sync_loaded_pss_max")]:
    w("| %s | %s |" % (label, cell(k)))
w("")
w("### Where row 2's and row 4's time goes: CPU per change of each process (user and kernel)")
w("")
w("Two cores: a rate of R changes/s leaves at most 2,000,000 / R microseconds of CPU per change for all the processes together. "
  "The bench process enters the changes at the village's store, as the village's API would.")
w("")
w("Page faults are counted apart: on this VM a minor fault costs about 10 us (a first touch of 64 MiB, 16,384 faults, takes 175 ms), "
  "so a node's first pass over its working memory (row 2b) is a large part of its CPU.")
w("")
w("| process | row 2, end to end (us/change) | of it in the kernel | page faults per 1000 changes | row 2b, nodes just started (us/change) | page faults per 1000 changes | row 4, catch-up (us/change) | of it in the kernel |")
w("| --- | --- | --- | --- | --- | --- | --- | --- |")
for who in ("village", "township", "county", "city", "province", "bench"):
    w("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
        who, cell("cpu_e2e_" + who), cell("cpu_e2e_%s_sys" % who), cell("faults_e2e_" + who),
        cell("cpu_e2ecold_" + who), cell("faults_e2ecold_" + who),
        cell("cpu_catchup_" + who), cell("cpu_catchup_%s_sys" % who)))
w("| all | %s | | %s | %s | %s | %s | |" % (cell("cpu_e2e_total"), cell("faults_e2e_total"),
                                         cell("cpu_e2ecold_total"), cell("faults_e2ecold_total"),
                                         cell("cpu_catchup_total")))


def busy(rate, cpu):
    """The share of the machine's cores the run kept busy (medians)."""
    r, c = med(rate), med(cpu)
    return "%.0f%%" % (100 * r * c / 1e6 / os.cpu_count()) if r and c else "—"


w("| the %d cores busy (rate × CPU per change) | %s | | | %s | | %s | |" % (
    os.cpu_count(), busy("e2e_changes", "cpu_e2e_total"), busy("e2e_cold_changes", "cpu_e2ecold_total"),
    busy("catchup_changes", "cpu_catchup_total")))
w("")
w("### The department API (HTTPS, keep-alive; wrk, 2 threads, 16 connections, one node of 10,000 children)")
w("")
w("| measure | value | vs `/healthz` on the same server |")
w("| --- | --- | --- |")
w("| `/healthz` (TLS and HTTP alone), requests/s | %s | |" % cell("healthz_rps"))
w("| `/healthz` p99 | %s | |" % cell("healthz_p99"))
w("| GET of one child as a department (token, purpose, masks, audit entry), requests/s | %s | %s |" %
  (cell("get_child_rps"), ratio("get_child_rps", "healthz_rps", True)))
w("| GET of one child, p99 | %s | %s |" % (cell("get_child_p99"), ratio("get_child_p99", "healthz_p99", False)))
w("")
w("### Province-size store (%d generated children over all of Sichuan's villages and communities)" % a.prov_n)
w("")
w("| measure | Lianxin | PostgreSQL |")
w("| --- | --- | --- |")
w("| import (`lianxin import` of the CSV / `COPY`), children/s | %s | %s |" % (cell("prov_lx_import"),
                                                                           cell("prov_pg_import")))
for f in ("json", "csv", "xlsx", "html"):
    w("| report, `--format %s` / SQL `GROUP BY ROLLUP` to CSV | %s | %s |" % (f, cell("prov_lx_report_" + f),
                                                                         cell("prov_pg_report")))
w("| digest of the whole state | %s | %s |" % (cell("prov_lx_digest"), cell("prov_pg_digest")))
w("| export as CSV | %s | %s |" % (cell("prov_lx_export"), cell("prov_pg_export")))
w("| size on disk | %s (store) | %s (table and indexes) |" % (cell("prov_lx_store_mib"), cell("prov_pg_table_mib")))
w("| one row | %s stored per child (every field with its version) | %s (`pg_column_size`) |" %
  (cell("store_bytes_per_child"), cell("prov_pg_row_bytes")))
w("")
w("## Scale: a county-size tree on this machine")
w("")
w("`scripts/gen-topology --county-size`: 四川省, 德阳市, 中江县 and its first 20 rural townships with 300 "
  "of their villages (323 nodes, real 2022 codes), every node a `lianxin node` process on 127.0.0.1.")
w("")
w("| measure | value |")
w("| --- | --- |")
for label, k in [("nodes", "tree_nodes"), ("`lianxin topology render` of the tree", "tree_render_s"),
                 ("start-up: every process started until every link is up", "tree_startup_s"),
                 ("idle VmRSS per node, median", "tree_idle_rss_median"),
                 ("idle VmRSS per node, largest", "tree_idle_rss_max"),
                 ("idle VmRSS, village / township / county / city / province", None),
                 ("idle PSS per node (its fair share of shared pages), median", "tree_idle_pss_median"),
                 ("idle private memory (RssAnon) per node, median", "tree_idle_rss_anon_median"),
                 ("idle memory of the whole tree (sum of PSS)", "tree_idle_pss_total"),
                 ("nodes above 8 MiB VmRSS at idle", "tree_idle_over_8mib"),
                 ("threads per node", "tree_threads_per_node"),
                 ("new children entered (%d at each village)" % a.tree_changes, "tree_load_changes"),
                 ("time to enter them (300 `lianxin import`, two at a time)", "tree_load_entered_s"),
                 ("time until the province holds every one", "tree_load_s"),
                 ("rate, village entry to province", "tree_load_rate"),
                 ("peak VmRSS, village / township / county / city / province", "LOADED"),
                 ("peak private memory, village / township / county / city / province", "ANON"),
                 ("every level's digest of every township agrees afterwards", "tree_converged")]:
    if k is None:
        w("| %s | %s |" % (label, " / ".join(cell("tree_idle_rss_" + lv) for lv in
                                              ("village", "township", "county", "city", "province"))))
    elif k == "LOADED":
        w("| %s | %s |" % (label, " / ".join(cell("tree_loaded_rss_" + lv) for lv in
                                              ("village", "township", "county", "city", "province"))))
    elif k == "ANON":
        w("| %s | %s |" % (label, " / ".join(cell("tree_loaded_anon_" + lv) for lv in
                                              ("village", "township", "county", "city", "province"))))
    elif k == "tree_converged":
        w("| %s | %s |" % (label, {1.0: "yes", 0.0: "**no**"}.get(med(k), "—")))
    else:
        w("| %s | %s |" % (label, cell(k)))
w("")
w("## Conflict behaviour side by side")
w("")
w("The same three scenarios on a tree of two villages under one township, a county, a city and a "
  "province; PostgreSQL 15 with each level subscribing to the level below (the ID number unique, as a "
  "registry of one file per child has it); Lianxin with its defaults.")
w("")
try:
    w(open(a.conflicts).read().rstrip())
except OSError:
    w("(not run)")
w("")
w("## How it is measured")
w("")
w("- The 8 MiB idle target (not met in VmRSS): a village node's VmRSS is about 12.5 to 13.7 MiB, of which about "
  "10.5 MiB are pages of the shared libraries it maps — libcrypto alone about 3.7 MiB since every node "
  "serves its API over TLS (OpenSSL's provider and key set-up touch them; 1.4 MiB without the API), libc, "
  "libstdc++, libzmq, libssl, libh2o, libsodium, ... — the same physical pages in all 323 nodes, and the "
  "touched pages of its LMDB map (the map itself, 1 GiB and more of address space, is virtual). What each "
  "node adds is its private memory, about 2 to 3 MiB (four threads: the libuv loop, the ZeroMQ thread, "
  "ZeroMQ's I/O thread and reaper, sharing one heap whose first 2 MiB come as one huge page once used, "
  "see README, Memory; thread stacks are touched only a few KiB deep), and the tree as a whole "
  "needs the sum of PSS. Every node once held the names of all 37,000 Sichuan units for its reports "
  "(2.2 MiB of 3.8 MiB private); it now loads only its own subtree's.")
for t in [
    "Lianxin's chain is bench_repl's: five `lianxin node` processes (village → township → county → city → "
    "province) over CURVE-encrypted ZeroMQ; changes are entered 1,000 to a transaction at the village; every "
    "hop commits durably before it acknowledges, and sends what it applied on to the next while its own "
    "flush runs (within the log numbers it has durably reserved), so the province may hold a change before a "
    "relay's flush has ended; the province's commit is durable when the clock stops (a PostgreSQL "
    "walsender sends only WAL its server has flushed, so there each hop's flush precedes the next hop's). "
    "PostgreSQL's chain is five clusters on 127.0.0.1 (fsync on, "
    "`wal_level = logical`, otherwise defaults), each subscribing to the publication of the level below and "
    "publishing its table (PostgreSQL 15 republishes applied changes); the village gets the same generated "
    "rows in COPYs of 1,000 rows a transaction. With the defaults an apply worker commits asynchronously "
    "(`synchronous_commit = off` on subscriptions), so a hop is not durable when the next hop sees it, and "
    "a logical walsender only sends WAL once it is flushed (up to `wal_writer_delay`, 200 ms, later): that "
    "is PostgreSQL's default latency. `synchronous_commit = on` makes every hop flush, as Lianxin does.",
    "Ingest: Lianxin in process is one transaction of generated records through the schema check and the "
    "merge (bench_store); `lianxin import` is the CSV import as an operator runs it; PostgreSQL is COPY of "
    "the same CSV (with an id column) into a table with the ID number unique and an index by village, as "
    "Lianxin's store keeps, in one transaction.",
    "Latency: one single-field update at the village, clock from before its commit until the province's "
    "store (Lianxin) or a query at the province (PostgreSQL) shows it; %d samples a run, after 5 not "
    "counted, taken once the end-to-end load's writes have been flushed (sync, then a second's pause): "
    "the kernel writing back the load's hundreds of MB is the load's cost, not a change's." % a.samples,
    "Catch-up: the township (and the county above it) are stopped (Lianxin) or their subscriptions disabled "
    "(PostgreSQL) while the village logs the backlog; the clock runs from the township's restart until it "
    "holds every change.",
    "Bytes per change: Lianxin's batch frame of one single-field change with ZMTP and CURVE framing; "
    "PostgreSQL's pgoutput messages for one single-column UPDATE (BEGIN, UPDATE with the whole new row, "
    "COMMIT), read from a probe slot, each with its CopyData and XLogData headers; the PostgreSQL link is "
    "not encrypted. TCP/IP headers are extra on both.",
    "Memory: a Lianxin node is one process: VmRSS, which counts the shared libraries' pages (~7.5 MiB, the "
    "same physical pages in every node) and the touched pages of the LMDB map (the page cache); PSS shares "
    "those fairly between the processes that map them. A PostgreSQL node is a cluster of processes "
    "(postmaster, checkpointer, walwriter, walsenders, apply workers, ...): the sum of their PSS (RSS would "
    "count shared_buffers once in every process).",
    "Report: `lianxin report` is the full quarterly roll-up as of the quarter's end (every record's versions "
    "checked against the cut), one row per city and a total; the SQL is the same breakdown with the %s "
    "columns computable from the current row (age bands at the quarter's end, categories, guardianship, "
    "schooling, health, help, exits), `psql` writing CSV; the digest in SQL is an md5 over every row's md5 "
    "in id order; process start is included on both sides." % ("%d" % med("prov_pg_report_columns") if med("prov_pg_report_columns") else "computable"),
]:
    w("- " + t)
w("")
text = "\n".join(L_)
with open(a.out, "w") as f:
    f.write(text)
print(text)
