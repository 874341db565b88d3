"""PostgreSQL 15 clusters for the benchmark: initdb, start, stop, and a
cascading logical-replication tree (each level subscribes to the level
below and republishes), all on 127.0.0.1.

Clusters live under a directory the caller made (mktemp); as root they run
as the `postgres` user (postgres refuses root). Every cluster started is
stopped by stop_all(), which callers run in a finally (and tests/bench/run
stops whatever a postmaster.pid is left under its directory)."""
import csv, io, os, pwd, shutil, subprocess, time

import psycopg2
import psycopg2.extensions

PGBIN = os.environ.get("PGBIN", "/usr/lib/postgresql/15/bin")

# The child table: an id like Lianxin's and the columns of `lianxin gen`,
# the same one record per child; one file per child means one ID number,
# and the registry lists by village, so both are indexed, as in Lianxin's
# store.
COLUMNS = ["name", "gender", "birth_date", "id_number", "ethnicity", "household_address",
           "village_code", "categories", "left_behind_type", "guardian_type", "guardian_name",
           "guardian_relation", "guardian_phone", "guardian_capable", "father_status",
           "father_work_place", "father_phone", "mother_status", "mother_work_place",
           "mother_phone", "school_name", "grade", "school_status", "health_status",
           "disability_type", "disability_level", "risk_level", "help_pairing", "proxy_parent",
           "last_visit_date", "status", "exit_reason", "exit_date"]
TYPES = {"birth_date": "date", "last_visit_date": "date", "exit_date": "date",
         "guardian_capable": "boolean"}
SCHEMA = ("CREATE TABLE child (id text PRIMARY KEY, %s, updated_at timestamptz NOT NULL DEFAULT now());"
          "CREATE UNIQUE INDEX child_id_number ON child (id_number);"
          "CREATE INDEX child_village ON child (village_code);"
          % ", ".join("%s %s" % (c, TYPES.get(c, "text")) for c in COLUMNS))


def as_postgres():
    """argv prefix that runs a server program as a non-root user."""
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", "postgres", "--"]


class Cluster:
    def __init__(self, root, name, port):
        self.name, self.port = name, port
        self.dir = os.path.join(root, name)
        self.log = os.path.join(root, name + ".log")
        self.started = False

    def init(self, extra_conf=""):
        os.makedirs(self.dir, mode=0o700)
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            with open(self.log, "w"):
                pass
            os.chown(self.log, pw.pw_uid, pw.pw_gid)
        subprocess.run(as_postgres() + [PGBIN + "/initdb", "-D", self.dir, "-U", "postgres",
                                        "--auth=trust", "--no-sync", "-E", "UTF8",
                                        "--locale=C.UTF-8"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(os.path.join(self.dir, "postgresql.conf"), "a") as f:
            f.write("\n# lianxin bench\nlisten_addresses = '127.0.0.1'\nport = %d\n"
                    "unix_socket_directories = ''\n"
                    "wal_level = logical\nmax_wal_senders = 10\nmax_replication_slots = 10\n"
                    "max_logical_replication_workers = 6\nmax_worker_processes = 12\n"
                    "log_min_messages = warning\n%s\n" % (self.port, extra_conf))

    def start(self):
        subprocess.run(as_postgres() + [PGBIN + "/pg_ctl", "-D", self.dir, "-l", self.log, "-w",
                                        "-t", "60", "start"],
                       check=True, stdout=subprocess.DEVNULL)
        self.started = True

    def stop(self, mode="fast"):
        if self.started or os.path.exists(os.path.join(self.dir, "postmaster.pid")):
            subprocess.run(as_postgres() + [PGBIN + "/pg_ctl", "-D", self.dir, "-m", mode, "-w",
                                            "-t", "60", "stop"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.started = False

    def postmaster_pid(self):
        try:
            with open(os.path.join(self.dir, "postmaster.pid")) as f:
                return int(f.readline())
        except (OSError, ValueError):
            return 0

    def pids(self):
        """The postmaster and every process it forked."""
        pm = self.postmaster_pid()
        out = [pm] if pm else []
        for p in os.listdir("/proc"):
            if p.isdigit():
                try:
                    with open("/proc/%s/stat" % p) as f:
                        if int(f.read().rsplit(")", 1)[1].split()[1]) == pm:
                            out.append(int(p))
                except (OSError, ValueError, IndexError):
                    pass
        return out

    def memory_kib(self):
        """(sum of PSS, sum of RSS) over the cluster's processes: PSS
        shares shared_buffers and libraries fairly; RSS counts them in
        every process."""
        pss = rss = 0
        for p in self.pids():
            try:
                with open("/proc/%d/smaps_rollup" % p) as f:
                    for line in f:
                        if line.startswith("Pss:"):
                            pss += int(line.split()[1])
                        elif line.startswith("Rss:"):
                            rss += int(line.split()[1])
            except OSError:
                pass
        return pss, rss

    def connect(self, db="lx", autocommit=True):
        c = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname=db)
        c.autocommit = autocommit
        return c

    def sql(self, q, db="lx", args=None):
        c = self.connect(db)
        try:
            cur = c.cursor()
            cur.execute(q, args)
            return cur.fetchall() if cur.description else None
        finally:
            c.close()

    def conninfo(self, db="lx"):
        return "host=127.0.0.1 port=%d user=postgres dbname=%s" % (self.port, db)


class Tree:
    """Clusters named by level, each subscribing to the ones below it
    (links: (upper, lower) pairs) and publishing what it holds."""

    def __init__(self, root, names, base_port):
        self.root = root
        self.c = {n: Cluster(root, n, base_port + i) for i, n in enumerate(names)}

    def up(self, links, sync_commit=None, extra_conf=""):
        for c in self.c.values():
            c.init(extra_conf)
            c.start()
            c.sql("CREATE DATABASE lx", db="postgres")
            c.sql(SCHEMA)
            c.sql("CREATE PUBLICATION pub FOR TABLE child")
        self.subs = {}
        for upper, lower in links:
            sub = "from_%s" % lower
            opts = "" if sync_commit is None else " WITH (synchronous_commit = '%s')" % sync_commit
            self.c[upper].sql("CREATE SUBSCRIPTION %s CONNECTION '%s' PUBLICATION pub%s"
                              % (sub, self.c[lower].conninfo(), opts))
            self.subs[lower] = (upper, sub)
        # Every subscription has finished its initial table sync.
        t0 = time.time()
        while time.time() - t0 < 120:
            if all(c.sql("SELECT count(*) FROM pg_subscription_rel WHERE srsubstate <> 'r'")[0][0] == 0
                   for c in self.c.values()):
                return
            time.sleep(0.1)
        raise RuntimeError("pg: subscriptions did not become ready")

    def enable(self, lower, on):
        upper, sub = self.subs[lower]
        self.c[upper].sql("ALTER SUBSCRIPTION %s %s" % (sub, "ENABLE" if on else "DISABLE"))

    def down(self):
        for c in self.c.values():
            c.stop()


def csv_with_ids(src, dst, prefix_seq=0):
    """The gen CSV with an id column in front (village code and a
    sequence, as Lianxin's ids carry the origin and a time)."""
    with open(src, newline="", encoding="utf-8") as fi, open(dst, "w", newline="", encoding="utf-8") as fo:
        r, w = csv.reader(fi), csv.writer(fo)
        header = next(r)
        assert header == COLUMNS, header
        w.writerow(["id"] + header)
        for i, row in enumerate(r):
            w.writerow(["%s-%016x" % (row[6], prefix_seq + i)] + row)


def copy_rows(conn, lines, header):
    """COPY CSV lines (strings, no header) in one transaction."""
    with conn.cursor() as cur:
        cur.copy_expert("COPY child (%s) FROM STDIN WITH (FORMAT csv)" % header, io.StringIO("".join(lines)))
    conn.commit()
