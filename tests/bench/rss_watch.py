#!/usr/bin/env python3
"""Watches the memory of the `lianxin node` processes whose command line
names DIR while another program runs them (bench_repl's chain), until
SIGTERM; then prints

  lx_chain_idle_rss_node     VmRSS of each node first started, 1 s after
                             its start (before the load), median
  lx_chain_idle_pss_node     the same as PSS
  lx_chain_loaded_rss_node   peak VmRSS (VmHWM) of every node, median
  lx_chain_loaded_rss_max    the largest of them
  lx_chain_loaded_anon_node  the largest private (anonymous) RSS seen, median
  lx_chain_loaded_anon_max   the largest of them

  rss_watch.py DIR PREFIX
"""
import os, signal, statistics, sys, time

d, prefix = sys.argv[1], sys.argv[2]
hz = os.sysconf("SC_CLK_TCK")
boot = time.time() - float(open("/proc/uptime").read().split()[0])
seen, idle, idle_pss, hwm, anon = [], {}, {}, {}, {}
stop = False


def on_term(_s, _f):
    global stop
    stop = True


signal.signal(signal.SIGTERM, on_term)


def status(pid):
    v = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, rest = line.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon"):
                v[k] = int(rest.split()[0])
    return v


def pss(pid):
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


while not stop:
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        pid = int(p)
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                cmd = f.read().split(b"\0")
            if len(cmd) < 4 or cmd[1] != b"node" or not cmd[3].startswith(d.encode() + b"/"):
                continue
            with open("/proc/%d/stat" % pid) as f:
                start = boot + int(f.read().rsplit(")", 1)[1].split()[19]) / hz
            v = status(pid)
            if pid not in seen:
                seen.append(pid)
            age = time.time() - start
            if pid in seen[:5] and pid not in idle and 1.0 <= age < 1.4:
                idle[pid], idle_pss[pid] = v["VmRSS"], pss(pid)
            hwm[pid] = v["VmHWM"]
            anon[pid] = max(anon.get(pid, 0), v["RssAnon"])
        except (OSError, ValueError, KeyError, IndexError):
            pass
    time.sleep(0.1)

mib = lambda kib: "%.3f MiB" % (kib / 1024)
if idle:
    print(prefix + "idle_rss_node", mib(statistics.median(idle.values())))
    print(prefix + "idle_pss_node", mib(statistics.median(idle_pss.values())))
if hwm:
    print(prefix + "loaded_rss_node", mib(statistics.median(hwm.values())))
    print(prefix + "loaded_rss_max", mib(max(hwm.values())))
    print(prefix + "loaded_anon_node", mib(statistics.median(anon.values())))
    print(prefix + "loaded_anon_max", mib(max(anon.values())))
