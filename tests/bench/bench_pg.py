#!/usr/bin/python3
"""make bench, the peer: PostgreSQL 15 logical replication on 127.0.0.1.

  bench_pg.py chain DIR --mode default|sync [--n 100000] [--ingest-n 200000]
              [--samples 200] [--runs 3] [--port 44000]
      five clusters, province <- city <- county <- township <- village, each
      subscribing to the level below and republishing (with the
      subscriptions' defaults, or WITH (synchronous_commit = on)); the same
      generated child rows as Lianxin's benchmark. Per run: durable ingest
      at one cluster (COPY of a CSV; default mode only), end-to-end
      throughput (1,000 rows a transaction at the village until all are at
      the province), one change village -> province (p50, p99), catch-up of
      a backlog over one hop (township and county subscriptions disabled
      while the village writes, then the township's enabled), bytes of one
      single-field change on the wire (pgoutput messages as the walsender
      frames them), and memory per cluster (PSS, idle and peak under load).

  bench_pg.py province LIANXIN DIR [--n 800000] [--runs 3] [--port 44010]
      one province-size data set (800,000 generated children over all of
      Sichuan's villages) in a Lianxin store and in one PostgreSQL cluster:
      the quarterly report (lianxin report in each format; the same
      roll-up as SQL GROUP BY), the digest (an md5 over every row in SQL),
      and the export as CSV; process start included on both sides.

Prints "name value unit" lines, one per measure and run; progress on
stderr. Stops every cluster it started.
"""
import argparse, csv, datetime, io, json, os, signal, statistics, subprocess, sys, tempfile, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgtree  # noqa: E402

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.abspath(os.path.join(here, "..", ".."))
LX_DEFAULT = os.path.join(root, "build", "lianxin")
os.environ.setdefault("LIANXIN_DIVISIONS", os.path.join(root, "data", "divisions"))
VILLAGE = "510121106218"   # the chain's village, as in bench_repl

trees = []


def log(*m):
    print("bench_pg:", *m, file=sys.stderr, flush=True)


def out(key, val, unit):
    print("%s %s %s" % (key, ("%.3f" % val) if isinstance(val, float) else val, unit), flush=True)


def on_signal(sig, _f):
    for t in trees:
        t.down()
    sys.exit(128 + sig)


signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGINT, on_signal)


def count(c):
    return c.sql("SELECT count(*) FROM child")[0][0]


def wait_count(c, want, t0, limit=600, cmp=lambda a, b: a >= b):
    """Seconds from t0 until c's table holds `want` rows. Polled every
    50 ms: a count over 100,000 rows is work that competes for the same
    two cores (Lianxin's side reads a counter in its store's stats)."""
    conn = c.connect()
    cur = conn.cursor()
    while time.time() - t0 < limit:
        cur.execute("SELECT count(*) FROM child")
        if cmp(cur.fetchone()[0], want):
            conn.close()
            return time.time() - t0
        time.sleep(0.05)
    conn.close()
    return -1


def write_chunks(c, lines, header, size=1000):
    conn = c.connect(autocommit=False)
    for i in range(0, len(lines), size):
        pgtree.copy_rows(conn, lines[i:i + size], header)
    conn.close()


class Sampler(threading.Thread):
    """Peak PSS of each cluster while it runs."""

    def __init__(self, tree):
        super().__init__(daemon=True)
        self.tree, self.peak, self.stop = tree, {n: 0 for n in tree.c}, False

    def run(self):
        while not self.stop:
            for n, c in self.tree.c.items():
                self.peak[n] = max(self.peak[n], c.memory_kib()[0])
            time.sleep(0.25)


def chain(a):
    mode = a.mode
    names = ["village", "township", "county", "city", "province"]
    links = [("township", "village"), ("county", "township"), ("city", "county"), ("province", "city")]
    work = tempfile.mkdtemp(prefix="pg-%s-" % mode, dir=a.dir)
    os.chmod(work, 0o755)
    t = pgtree.Tree(work, names, a.port)
    trees.append(t)
    log("%s: five clusters on ports %d-%d" % (mode, a.port, a.port + 4))
    t.up(links, sync_commit="on" if mode == "sync" else None)
    c = t.c
    pfx = "pg_%s_" % mode

    # The rows: the same generator as Lianxin's benchmark, ids in front.
    n = a.n
    src = os.path.join(work, "gen.csv")
    rows = os.path.join(work, "rows.csv")
    subprocess.run([a.lianxin, "gen", "--subtree", VILLAGE, "--count", str(max(2 * n, a.ingest_n)),
                    "--seed", "7", "--out", src], check=True)
    pgtree.csv_with_ids(src, rows)
    with open(rows, encoding="utf-8") as f:
        header = f.readline().strip()
        lines = f.readlines()
    first_id = lines[0].split(",", 1)[0]

    time.sleep(5)
    for name in names:
        pss, rss = c[name].memory_kib()
        out(pfx + "idle_pss_" + name, pss / 1024, "MiB")
    out(pfx + "idle_pss_node", statistics.median(c[x].memory_kib()[0] for x in names) / 1024, "MiB")

    for run in range(a.runs):
        log("%s: run %d of %d" % (mode, run + 1, a.runs))
        # 1. Durable ingest at one cluster: COPY of the CSV in one
        # transaction (fsync and synchronous_commit on: the defaults).
        if mode == "default":
            ing = c["province"]
            ing.sql("DROP DATABASE IF EXISTS ingest", db="postgres")
            ing.sql("CREATE DATABASE ingest", db="postgres")
            ing.sql(pgtree.SCHEMA, db="ingest")
            conn = ing.connect("ingest", autocommit=False)
            t0 = time.time()
            with conn.cursor() as cur:
                cur.copy_expert("COPY child (%s) FROM STDIN WITH (FORMAT csv)" % header,
                                io.StringIO("".join(lines[:a.ingest_n])))
            conn.commit()
            out("pg_ingest_copy", a.ingest_n / (time.time() - t0), "children/s")
            conn.close()
            ing.sql("DROP DATABASE ingest", db="postgres")

        # 2. End to end: n rows at the village, 1,000 a transaction.
        s = Sampler(t)
        s.start()
        t0 = time.time()
        write_chunks(c["village"], lines[:n], header)
        e2e = wait_count(c["province"], n, t0)
        s.stop = True
        s.join()
        out(pfx + "e2e_changes", n / e2e if e2e > 0 else 0, "changes/s")
        out(pfx + "loaded_pss_node", statistics.median(s.peak.values()) / 1024, "MiB")
        out(pfx + "loaded_pss_max", max(s.peak.values()) / 1024, "MiB")

        # 3. One change at a time, village -> province, on a settled
        # chain: what the bulk load wrote is flushed first, as bench_repl
        # does for Lianxin's.
        os.sync()
        time.sleep(1)
        vc = c["village"].connect()
        pc = c["province"].connect()
        vcur, pcur = vc.cursor(), pc.cursor()
        lat = []
        for i in range(a.samples + 5):
            val = ("low", "medium", "high")[(i + run) % 3]
            s0 = time.time()
            vcur.execute("UPDATE child SET risk_level = %s, updated_at = now() WHERE id = %s", (val, first_id))
            while time.time() - s0 < 5:
                pcur.execute("SELECT risk_level FROM child WHERE id = %s", (first_id,))
                if pcur.fetchone()[0] == val:
                    break
                time.sleep(0.0005)   # a query at the province each time: not a busy loop
            if i >= 5:
                lat.append((time.time() - s0) * 1000)
        lat.sort()
        out(pfx + "lat_p50", lat[len(lat) // 2], "ms")
        out(pfx + "lat_p99", lat[len(lat) * 99 // 100], "ms")

        # 4. Bytes of one single-field change: what the walsender sends
        # for it (BEGIN, UPDATE, COMMIT; each as CopyData 5 bytes +
        # XLogData header 25 bytes + the pgoutput message), read from a
        # probe slot. TCP/IP headers extra, as for Lianxin's figure; the
        # link is not encrypted (Lianxin's is, and counts CURVE's bytes).
        vcur.execute("SELECT pg_create_logical_replication_slot('probe', 'pgoutput')")
        vcur.execute("UPDATE child SET risk_level = 'high', updated_at = now() WHERE id = %s", (first_id,))
        vcur.execute("SELECT data FROM pg_logical_slot_get_binary_changes('probe', NULL, NULL, "
                     "'proto_version', '1', 'publication_names', 'pub')")
        msgs = [bytes(r[0]) for r in vcur.fetchall()]
        vcur.execute("SELECT pg_drop_replication_slot('probe')")
        wire = sum(len(m) + 5 + 25 for m in msgs if m[:1] in (b"B", b"U", b"C"))
        out(pfx + "wire_bytes_change", wire, "bytes")
        vc.close()
        pc.close()

        # 5. Catch-up over one hop: the township (and the county above
        # it) stop applying while the village writes n more rows; then
        # the township's subscription is enabled.
        before = count(c["township"])
        t.enable("village", False)
        t.enable("township", False)
        time.sleep(1)
        write_chunks(c["village"], lines[n:2 * n], header)
        t0 = time.time()
        t.enable("village", True)
        cu = wait_count(c["township"], before + n, t0)
        out(pfx + "catchup_changes", n / cu if cu > 0 else 0, "changes/s")
        t.enable("township", True)
        if wait_count(c["province"], 2 * n, time.time()) < 0:
            log("%s: the province did not converge after the catch-up" % mode)

        # Empty again for the next run (TRUNCATE travels up the chain).
        c["village"].sql("TRUNCATE child")
        if wait_count(c["province"], 0, time.time(), cmp=lambda x, y: x == y) < 0:
            raise SystemExit("bench_pg: the province still holds rows after TRUNCATE")
    t.down()


def sql_report(quarter_end):
    """The quarterly roll-up as SQL: the province's report, one row per
    city and a total, with the columns computable from the child row
    (the age bands at the quarter's end, categories, guardianship,
    schooling, health, help; exits in the quarter by reason)."""
    age = "a"   # computed once a row, below
    cols = ["count(*)", "count(*) FILTER (WHERE gender = 'male')", "count(*) FILTER (WHERE gender = 'female')"]
    for lo, hi in ((0, 5), (6, 13), (14, 16), (17, 17)):
        band = "%s BETWEEN %d AND %d" % (age, lo, hi)
        cols += ["count(*) FILTER (WHERE %s)" % band,
                 "count(*) FILTER (WHERE %s AND gender = 'male')" % band,
                 "count(*) FILTER (WHERE %s AND gender = 'female')" % band]
    other = "NOT (%s BETWEEN 0 AND 17)" % age
    cols += ["count(*) FILTER (WHERE %s)" % other,
             "count(*) FILTER (WHERE %s AND gender = 'male')" % other,
             "count(*) FILTER (WHERE %s AND gender = 'female')" % other]
    for cat in ("left_behind", "orphan", "de_facto_unsupported", "disabled", "serious_illness",
                "low_income", "dropout", "other_difficulty"):
        cols.append("count(*) FILTER (WHERE '%s' = ANY (cats))" % cat)
    for col, vals in (("left_behind_type", ("both_parents_away", "one_away_other_incapable")),
                      ("guardian_type", ("grandparent", "relative", "institution", "parent", "none")),
                      ("school_status", ("not_school_age", "preschool", "enrolled", "boarding",
                                         "dropped_out", "graduated")),
                      ("exit_reason", ("parents_returned", "reached_age_limit", "moved_away",
                                       "category_changed", "death", "other"))):
        for v in vals:
            cols.append("count(*) FILTER (WHERE %s = '%s')" % (col, v))
        if col in ("guardian_type", "school_status"):
            cols.append("count(*) FILTER (WHERE %s IS NULL)" % col)
    cols += ["count(*) FILTER (WHERE guardian_capable)", "count(*) FILTER (WHERE NOT guardian_capable)",
             "count(*) FILTER (WHERE health_status = '健康')",
             "count(*) FILTER (WHERE health_status IS NULL)",
             "count(*) FILTER (WHERE help_pairing IS NOT NULL)",
             "count(*) FILTER (WHERE proxy_parent IS NOT NULL)",
             "count(*) FILTER (WHERE risk_level = 'high')",
             "count(*) FILTER (WHERE exit_date > DATE '%s' - 91)" % quarter_end]
    return ("COPY (SELECT coalesce(substr(village_code, 1, 4), 'total') AS unit, %s FROM "
            "(SELECT *, date_part('year', age(DATE '%s', birth_date)) AS a, "
            "string_to_array(categories, ';') AS cats FROM child "
            "WHERE status = 'active' OR exit_date > DATE '%s' - 91) c "
            "GROUP BY ROLLUP (substr(village_code, 1, 4)) ORDER BY 1) TO STDOUT WITH (FORMAT csv, HEADER)"
            % (", ".join(cols), quarter_end, quarter_end), len(cols))


def timed(argv, outfile=None):
    t0 = time.time()
    with open(outfile or os.devnull, "wb") as f:
        subprocess.run(argv, check=True, stdout=f)
    return time.time() - t0


def province(a):
    LX = a.lianxin
    work = tempfile.mkdtemp(prefix="pg-province-", dir=a.dir)
    os.chmod(work, 0o755)
    src = os.path.join(work, "gen.csv")
    log("province: %d children over Sichuan's villages" % a.n)
    subprocess.run([LX, "gen", "--subtree", "510000000000", "--count", str(a.n), "--seed", "11",
                    "--out", src], check=True)
    store = os.path.join(work, "lx")
    subprocess.run([LX, "init", "--data", store, "--code", "510000000000"], check=True,
                   stdout=subprocess.DEVNULL)
    t0 = time.time()
    subprocess.run([LX, "import", "--data", store, "--csv", src, "--quiet"], check=True,
                   stdout=subprocess.DEVNULL)
    out("prov_lx_import", a.n / (time.time() - t0), "children/s")
    now = datetime.datetime.utcnow() + datetime.timedelta(hours=8)
    q = (now.month - 1) // 3 + 1
    quarter = "%dQ%d" % (now.year, q)
    qend = (datetime.date(now.year + (q == 4), (q * 3) % 12 + 1, 1) - datetime.timedelta(days=1)).isoformat()

    rows = os.path.join(work, "rows.csv")
    pgtree.csv_with_ids(src, rows)
    os.chmod(rows, 0o644)
    t = pgtree.Tree(work, ["prov"], a.port)
    trees.append(t)
    c = t.c["prov"]
    c.init()
    c.start()
    c.sql("CREATE DATABASE lx", db="postgres")
    c.sql(pgtree.SCHEMA)
    conn = c.connect(autocommit=False)
    t0 = time.time()
    with conn.cursor() as cur, open(rows, encoding="utf-8") as f:
        hdr = f.readline().strip()
        cur.copy_expert("COPY child (%s) FROM STDIN WITH (FORMAT csv)" % hdr, f)
    conn.commit()
    out("prov_pg_import", a.n / (time.time() - t0), "children/s")
    conn.close()
    c.sql("VACUUM ANALYZE child")
    rep, ncols = sql_report(qend)
    log("province: the SQL roll-up has %d columns" % ncols)
    out("prov_pg_report_columns", ncols, "columns")
    psql = [pgtree.PGBIN + "/psql", "-X", "-q", "-h", "127.0.0.1", "-p", str(c.port), "-U", "postgres", "lx", "-c"]
    digest = ("SELECT md5(string_agg(h, '' ORDER BY id)) FROM "
              "(SELECT id, md5(t::text) AS h FROM child t) s")
    for run in range(a.runs):
        log("province: run %d of %d" % (run + 1, a.runs))
        for fmt in ("json", "csv", "xlsx", "html"):
            out("prov_lx_report_" + fmt, timed([LX, "report", "--data", store, "--quarter", quarter,
                                                "--format", fmt, "--out", "%s/r.%s" % (work, fmt)]), "s")
        out("prov_lx_digest", timed([LX, "digest", "--data", store]), "s")
        out("prov_lx_export", timed([LX, "export", "--data", store, "--format", "csv",
                                     "--out", work + "/lx-export.csv"]), "s")
        out("prov_pg_report", timed(psql + [rep], work + "/pg-report.csv"), "s")
        out("prov_pg_digest", timed(psql + [digest]), "s")
        out("prov_pg_export", timed(psql + ["COPY child TO STDOUT WITH (FORMAT csv, HEADER)"],
                                    work + "/pg-export.csv"), "s")
    total = json.load(open(work + "/r.json"))["total"]["values"]["total"]
    with open(work + "/pg-report.csv", encoding="utf-8") as f:
        pg_total = [r for r in csv.reader(f) if r[0] == "total"][0][1]
    log("province: children in the report: lianxin %s, SQL %s" % (total, pg_total))
    out("prov_lx_store_mib", os.path.getsize(store + "/data.mdb") / 1048576, "MiB")
    out("prov_pg_table_mib", c.sql("SELECT pg_total_relation_size('child')")[0][0] / 1048576, "MiB")
    out("prov_pg_row_bytes", c.sql("SELECT avg(pg_column_size(t.*))::int FROM child t")[0][0], "bytes")
    t.down()


ap = argparse.ArgumentParser()
sub = ap.add_subparsers(dest="cmd", required=True)
p = sub.add_parser("chain")
p.add_argument("dir")
p.add_argument("--mode", choices=("default", "sync"), default="default")
p.add_argument("--n", type=int, default=100000)
p.add_argument("--ingest-n", type=int, default=200000)
p.add_argument("--samples", type=int, default=200)
p.add_argument("--runs", type=int, default=3)
p.add_argument("--port", type=int, default=44000)
p.add_argument("--lianxin", default=LX_DEFAULT)
p = sub.add_parser("province")
p.add_argument("lianxin")
p.add_argument("dir")
p.add_argument("--n", type=int, default=800000)
p.add_argument("--runs", type=int, default=3)
p.add_argument("--port", type=int, default=44010)
a = ap.parse_args()
try:
    chain(a) if a.cmd == "chain" else province(a)
finally:
    for tr in trees:
        tr.down()
