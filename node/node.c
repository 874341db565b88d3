/* The daemon: `lianxin node --config FILE` runs a node in the foreground;
 * `lianxin restore --config FILE` rebuilds its store from the parent.
 *
 * Threads: this one runs the libuv loop (timers, signals, the poke FIFO,
 * and replication with the store's single writer); net.c's thread owns the
 * ZeroMQ sockets and wakes this one through a uv_async. */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "cli/cli.h"
#include "common/arena.h"
#include "common/classify.h"
#include "common/divs.h"
#include "common/fault.h"
#include "common/linkstate.h"
#include "common/rflow.h"
#include "common/policy.h"
#include "common/log.h"
#include "config/config.h"
#include "http.h"
#include "net.h"
#include "repl.h"

#define TICK_MS 50
#define RESTORE_TIMEOUT_MS 120000
#define REPORT_PASS_MS 60000
/* The daily pass and the report pass wait this long after a start: a
 * node that restarts has its links to catch up first (a report pass walks
 * every record, a tenth of a second per 100,000). */
#define HOUSEKEEPING_AFTER_MS 5000
/* The ID-number index: changes pending before a commit folds them, and
 * how long the count must stand still before an idle node folds them
 * (store_set_idn_defer). */
#define IDN_DEFER 131072
#define IDN_QUIET_MS 1000
/* ... and how many one tick folds: a step writes a page of the index for
 * almost each, so a small step keeps the loop (and a commit's fsync) short. */
#define IDN_FOLD_STEP 128
/* ... and only once no batch has come for this long: a step writes and
 * flushes a few hundred pages, which a change arriving meanwhile would
 * wait for. */
#define IDN_IDLE_MS 200
/* Memory kept for a busy link (decoding blocks, the heap's free top, see
 * the mallopt in node_run) goes back to the system once no batch has
 * come for this long, and after the housekeeping passes. */
#define TRIM_IDLE_MS 2000
/* The ID-number filter: see idn_filter_idle. */
#define FILTER_BUSY_MS 30000
#define FILTER_GAP_MS 5000

typedef struct {
    uv_loop_t loop;
    uv_async_t wake;
    uv_timer_t tick;
    uv_signal_t sigint, sigterm;
    uv_poll_t poke;
    int poke_fd;
    int lock_fd;
    node_config_t *cfg;
    store_t *store;
    repl_t *repl;
    net_t *net;
    http_t *http;            /* the API; NULL when not configured */
    repl_mode_t mode;
    uint64_t started;
    int exit_code;
    bool stopping;
    char daily_done[11];     /* the day the daily policy pass last ran */
    /* The report pass: when it may run next, and the day and log
     * position it last ran at (it runs again only when one moved). */
    uint64_t report_next;
    char report_day[11];
    uint64_t report_seq;
    divs_once_t divs;        /* unit names for reports (frozen, and the API's) */
    struct timespec cfg_mtime;  /* node.ini as last read, for its tokens */
    uint64_t cfg_checked;
    size_t idn_seen;         /* pending ID-number changes at the last tick */
    uint64_t idn_since;      /* ... and since when that count stood */
    bool trim_due;           /* memory may be kept that an idle node gives back */
    uint64_t trim_data;      /* repl_last_data at the last trim */
    uint64_t filter_due;     /* since when the ID-number filter is due (0: not) */
    uint64_t filter_next;    /* no build before this */
    uint64_t filter_wait;    /* after a failed build: the wait before the next */
} node_t;

static uint64_t now_ms(node_t *n)
{
    return uv_now(&n->loop);
}

static void on_wake(void *arg)
{
    node_t *n = arg;
    uv_async_send(&n->wake);
}

static void close_all(node_t *n);

static void on_async(uv_async_t *h)
{
    node_t *n = h->data;
    netmsg_t *m = NULL;
    /* Batches that are waiting together are applied in one transaction
     * (group commit); then what was committed is forwarded at once, not
     * after the whole input is drained (the hops of a chain would take
     * turns instead of working together). The loop is given back now and
     * then so timers and signals are not starved by a busy link. */
    for (int i = 0; i < 64 && (m = net_recv(n->net)); i++) {
        uv_update_time(&n->loop);
        repl_on_message(n->repl, m, now_ms(n));
        netmsg_free(m);
        if (!repl_group_open(n->repl))
            repl_pump(n->repl, now_ms(n));
    }
    repl_pump(n->repl, now_ms(n));
    if (m)
        uv_async_send(&n->wake);
}

/* Once a day (and soon after a start): classification and retention over
 * the records this node is responsible for, as ordinary local writes. */
static void daily(node_t *n)
{
    char today[11];
    policy_today(hlc_wall_ms(), today);
    if (n->mode != REPL_RUN || strcmp(today, n->daily_done) == 0
        || uv_now(&n->loop) - n->started < HOUSEKEEPING_AFTER_MS)
        return;
    policy_stats_t st = {0};
    why_t why = {""};
    int rc = policy_daily(n->store, today, &st, &why);
    if (!rc)
        rc = policy_retention(n->store, today, &st, &why);
    if (rc) {
        log_error("daily policy pass: %s", why.msg[0] ? why.msg : err_str(rc));
        return;  /* tried again on the next tick */
    }
    memcpy(n->daily_done, today, sizeof today);
    n->trim_due = true;
    log_info("daily policy pass %s: %llu records, %llu derived anew (%llu exited), "
             "%llu anonymised, %llu purged, %llu moved-out histories and %llu conflict "
             "entries cleared", today, (unsigned long long)st.seen,
             (unsigned long long)st.changed, (unsigned long long)st.exited,
             (unsigned long long)st.anonymised, (unsigned long long)st.purged,
             (unsigned long long)st.stubs, (unsigned long long)st.scrubbed);
}

/* At most once a minute: freeze the last quarter once its deadline has
 * passed, and freeze anew the quarters whose figures late data changed
 * (rflow_auto). Skipped while nothing arrived and the day is the same, so
 * an idle node computes nothing. Runs after repl_tick, when no group
 * transaction is open. */
static void reports(node_t *n, uint64_t now)
{
    if (n->mode != REPL_RUN || now < n->report_next)
        return;
    n->report_next = now + REPORT_PASS_MS;
    uint64_t wall = hlc_wall_ms();
    char today[11];
    policy_today(wall, today);
    stxn_t *t;
    if (store_begin(n->store, false, &t))
        return;
    uint64_t seq = store_last_seq(t);
    store_abort(&t);
    if (seq == n->report_seq && strcmp(today, n->report_day) == 0)
        return;
    why_t why = {""};
    uint32_t made = 0;
    int rc = store_begin(n->store, true, &t);
    if (!rc)
        rc = rflow_auto(t, divs_once(&n->divs, n->cfg->code), wall, n->report_seq, &made, &why);
    if (!rc)
        rc = made ? store_commit(&t) : LX_OK;
    store_abort(&t);
    if (rc) {
        log_error("report pass: %s", why.msg[0] ? why.msg : err_str(rc));
        return;  /* tried again in a minute */
    }
    n->report_seq = seq;
    memcpy(n->report_day, today, sizeof today);
    n->trim_due = true;
    if (made)
        log_info("report pass: %u new revision%s frozen", made, made == 1 ? "" : "s");
}

/* Once a second: when node.ini changed (`lianxin token add`), its tokens
 * are read again; the other settings take effect at the next start. */
static void reload_tokens(node_t *n, uint64_t now)
{
    struct stat st;
    if (now - n->cfg_checked < 1000 || stat(n->cfg->file, &st))
        return;
    n->cfg_checked = now;
    if (st.st_mtim.tv_sec == n->cfg_mtime.tv_sec && st.st_mtim.tv_nsec == n->cfg_mtime.tv_nsec)
        return;
    n->cfg_mtime = st.st_mtim;
    node_config_t *c = NULL;
    why_t why = {""};
    if (config_load(n->cfg->file, &c, &why)) {
        /* Fail closed: a revocation must not survive a file that no longer
         * loads. Every token is refused until it loads again. */
        log_error("%s changed but does not load: every API token refused until it does: %s",
                  n->cfg->file, why.msg);
        n->cfg->ntokens = 0;
        return;
    }
    token_t *t = n->cfg->tokens;
    size_t nt = n->cfg->ntokens;
    n->cfg->tokens = c->tokens;
    n->cfg->ntokens = c->ntokens;
    c->tokens = t;
    c->ntokens = nt;
    config_free(&c);
    log_info("%s read again: %zu API token%s", n->cfg->file, n->cfg->ntokens,
             n->cfg->ntokens == 1 ? "" : "s");
}

/* Folds the pending ID-number changes once writing has paused, so that
 * an idle node holds none in memory. */
static void idn_fold_idle(node_t *n, uint64_t now)
{
    size_t np = store_idn_pending(n->store);
    if (np != n->idn_seen) {
        n->idn_seen = np;
        n->idn_since = now;
        return;
    }
    if (!np || now - n->idn_since < IDN_QUIET_MS || now - repl_last_data(n->repl) < IDN_IDLE_MS
        || repl_group_open(n->repl) || fault_hit("idle_fold"))
        return;
    int rc = store_idn_fold(n->store, IDN_FOLD_STEP);
    if (rc)
        log_error("folding the ID-number index: %s (tried again later)", err_str(rc));
    /* The next step follows at the next tick while writing stays paused. */
    n->idn_seen = store_idn_pending(n->store);
}

/* Builds the ID-number filter when it is due (see store_idn_filter) while
 * nothing arrives: reading a large index inside a batch's transaction
 * would hold that batch up. A node that never pauses builds it between
 * two groups once it has been due FILTER_BUSY_MS; one that just built it
 * waits FILTER_GAP_MS (another process writing on and on would make it
 * stale at once); a failed build is tried again after a minute, then
 * after twice as long each time. */
static void idn_filter_idle(node_t *n, uint64_t now)
{
    if (!store_idn_filter_due(n->store)) {
        n->filter_due = 0;
        return;
    }
    if (!n->filter_due)
        n->filter_due = now;
    bool idle = now - repl_last_data(n->repl) >= IDN_IDLE_MS;
    if (repl_group_open(n->repl) || now < n->filter_next
        || (!idle && now - n->filter_due < FILTER_BUSY_MS))
        return;
    if (store_idn_filter(n->store)) {
        n->filter_wait = 0;
        n->filter_next = now + FILTER_GAP_MS;
        n->filter_due = 0;
        return;
    }
    n->filter_wait = n->filter_wait ? n->filter_wait * 2 : 60000;
    if (n->filter_wait > 3600000)
        n->filter_wait = 3600000;
    n->filter_next = now + n->filter_wait;
    log_warn("the ID-number filter could not be built (tried again in %llu s): "
             "new numbers are searched for meanwhile",
             (unsigned long long)(n->filter_wait / 1000));
}

/* Gives memory kept for busy times back to the system once idle. */
static void idle_trim(node_t *n, uint64_t now)
{
    uint64_t last = repl_last_data(n->repl);
    if (last != n->trim_data) {
        n->trim_data = last;
        n->trim_due = true;
    }
    if (!n->trim_due || now - last < TRIM_IDLE_MS || repl_group_open(n->repl))
        return;
    arena_pool_release();
    malloc_trim(0);
    n->trim_due = false;
}

static void on_tick(uv_timer_t *h)
{
    node_t *n = h->data;
    uint64_t now = now_ms(n);
    reload_tokens(n, now);
    repl_tick(n->repl, now);
    idn_fold_idle(n, now);
    idn_filter_idle(n, now);
    daily(n);
    reports(n, now);
    idle_trim(n, now);
    repl_pump(n->repl, now);
    if (n->mode == REPL_RESTORE) {
        int rc;
        if (repl_restore_done(n->repl, &rc)) {
            n->exit_code = rc ? 1 : 0;
            if (rc)
                log_error("restore failed: %s", err_str(rc));
            else
                log_info("restore complete");
            close_all(n);
        } else if (now - n->started > RESTORE_TIMEOUT_MS) {
            log_error("restore: no answer from the parent in %d s", RESTORE_TIMEOUT_MS / 1000);
            n->exit_code = 1;
            close_all(n);
        }
    }
}

/* Another process (an operator's command) wrote to the store. */
static void on_poke(uv_poll_t *h, int status, int events)
{
    node_t *n = h->data;
    char buf[256];
    (void)status;
    (void)events;
    while (read(n->poke_fd, buf, sizeof buf) > 0)
        ;
    repl_note_write(n->repl, now_ms(n));
    repl_pump(n->repl, now_ms(n));
}

static void on_signal(uv_signal_t *h, int sig)
{
    node_t *n = h->data;
    log_info("signal %d: stopping", sig);
    close_all(n);
}

static void close_all(node_t *n)
{
    if (n->stopping)
        return;
    n->stopping = true;
    /* Everything acknowledged is already committed: acknowledgements are
     * sent only after a durable commit, and no transaction is open
     * between callbacks. */
    repl_save_links(n->repl, now_ms(n) + 1000000);
    uv_close((uv_handle_t *)&n->wake, NULL);
    uv_close((uv_handle_t *)&n->tick, NULL);
    uv_close((uv_handle_t *)&n->sigint, NULL);
    uv_close((uv_handle_t *)&n->sigterm, NULL);
    if (n->poke_fd >= 0)
        uv_close((uv_handle_t *)&n->poke, NULL);
    http_stop(n->http);
}

/* The signing keys policies are checked against: this node's own, its
 * parent's and every ancestor's, from the configuration. */
static int pin_keys(store_t *s, const node_config_t *c)
{
    stxn_t *t;
    int rc = store_begin(s, true, &t);
    if (!rc)
        rc = policy_pin_key(t, c->code, c->sign_pub);
    if (!rc && c->has_parent && c->parent.has_sign)
        rc = policy_pin_key(t, c->parent.code, c->parent.sign_pub);
    for (size_t i = 0; !rc && i < c->nancestors; i++)
        if (c->ancestors[i].has_sign)
            rc = policy_pin_key(t, c->ancestors[i].code, c->ancestors[i].sign_pub);
    if (!rc)
        rc = store_commit(&t);
    store_abort(&t);
    return rc;
}

static int node_run(const char *cmd, const char *path, repl_mode_t mode)
{
    node_t n = {.mode = mode, .poke_fd = -1, .lock_fd = -1};
    why_t why = {""};
    if (config_load(path, &n.cfg, &why))
        return cli_fail(cmd, "%s", why.msg);
    char code[CODE_STRLEN + 1];
    code_fmt(n.cfg->code, code);
    log_set_prefix(code);
    if (mode == REPL_RESTORE) {
        if (!n.cfg->has_parent) {
            config_free(&n.cfg);
            return cli_fail(cmd, "%s: a node without a parent cannot be restored", path);
        }
        int rc = store_create(n.cfg->data, n.cfg->code, &why);
        if (rc && rc != LX_EEXIST) {
            config_free(&n.cfg);
            return cli_fail(cmd, "%s", why.msg);
        }
    }
    char mdb[4200];
    snprintf(mdb, sizeof mdb, "%s/data.mdb", n.cfg->data);
    if (access(mdb, F_OK) != 0) {
        cli_fail(cmd, "%s: no store at %s (create it with lianxin init or topology render)",
                 path, n.cfg->data);
        config_free(&n.cfg);
        return 1;
    }
    /* One node per store, for as long as it runs; `status` looks at the
     * same lock to tell whether the node is running. */
    if (node_lock(n.cfg->data, &n.lock_fd, &why)) {
        config_free(&n.cfg);
        return cli_fail(cmd, "%s", why.msg);
    }
    n.store = cli_open(cmd, n.cfg->data, STORE_NOPOKE | STORE_RESERVER | STORE_FILTER_IDLE);
    if (!n.store) {
        close(n.lock_fd);
        config_free(&n.cfg);
        return 1;
    }
    if (store_code(n.store) != n.cfg->code) {
        char sc[CODE_STRLEN + 1];
        code_fmt(store_code(n.store), sc);
        store_close(&n.store);
        cli_fail(cmd, "%s: the store at %s belongs to %s, not %s", path, n.cfg->data, sc, code);
        config_free(&n.cfg);
        return 1;
    }
    if (mode == REPL_RESTORE) {
        /* Restore rebuilds a lost store; merging the parent's copy into an
         * old one would keep records that have since moved away. */
        stxn_t *t;
        store_stats_t st = {0};
        if (store_begin(n.store, false, &t) == LX_OK) {
            store_stats(t, &st);
            store_abort(&t);
        }
        if (st.records || st.last_seq) {
            cli_fail(cmd, "%s holds %llu records: restore needs an empty store (move it "
                     "away first; a node started on an old store converges by itself)",
                     n.cfg->data, (unsigned long long)st.records);
            store_close(&n.store);
            config_free(&n.cfg);
            return 1;
        }
    }
    store_set_skew(n.store, n.cfg->skew_ms);
    store_set_idn_defer(n.store, IDN_DEFER);
    /* Frames and their buffers (a megabyte or so each, over and over)
     * from the heap, and the heap not given back to the system at every
     * free: fresh pages cost a fault and a zeroing each, which on a busy
     * link was a large part of the node's time. An idle node is not
     * affected; a busy one keeps what its peak took. */
    mallopt(M_MMAP_THRESHOLD, 16 << 20);
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    mallopt(M_TOP_PAD, 4 << 20);
    /* One heap for the node's four threads (set before they start): in
     * huge pages (heap_hugepages) an arena of each thread's own took
     * a 2 MiB page at its first allocation, 5 MiB more per idle node (a
     * county's 323 nodes on one machine: 679 MiB -> 2.3 GiB of PSS); one
     * heap takes about 1 MiB more (1.0 GiB), and the chain bench ran no
     * slower for it. */
    mallopt(M_ARENA_MAX, 1);
    int rc;
    if ((rc = pin_keys(n.store, n.cfg))) {
        store_close(&n.store);
        config_free(&n.cfg);
        return cli_fail(cmd, "pinning the signing keys: %s", err_str(rc));
    }
    if (repl_new(n.cfg, n.store, mode, &n.repl, &why)) {
        store_close(&n.store);
        config_free(&n.cfg);
        return cli_fail(cmd, "%s", why.msg);
    }
    /* A client that goes away while the API writes to it must not end
     * the node: the write fails with EPIPE instead. */
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&n.loop);
    uv_async_init(&n.loop, &n.wake, on_async);
    uv_timer_init(&n.loop, &n.tick);
    uv_signal_init(&n.loop, &n.sigint);
    uv_signal_init(&n.loop, &n.sigterm);
    n.wake.data = n.tick.data = n.sigint.data = n.sigterm.data = &n;
    uv_signal_start(&n.sigint, on_signal, SIGINT);
    uv_signal_start(&n.sigterm, on_signal, SIGTERM);

    /* The poke FIFO: opened read-write so it never reports end of file
     * when the last writer goes. */
    char fifo[4200];
    snprintf(fifo, sizeof fifo, "%s/poke", n.cfg->data);
    if ((mkfifo(fifo, 0600) == 0 || errno == EEXIST)
        && (n.poke_fd = open(fifo, O_RDWR | O_NONBLOCK | O_CLOEXEC)) >= 0) {
        uv_poll_init(&n.loop, &n.poke, n.poke_fd);
        n.poke.data = &n;
        uv_poll_start(&n.poke, UV_READABLE, on_poke);
    } else {
        log_warn("no poke FIFO at %s (%s): local writes are seen within %d ms", fifo,
                 strerror(errno), TICK_MS);
    }

    /* The API the configuration names, or no node at all: an operator
     * expects it to answer. */
    rc = mode == REPL_RUN ? http_start(&n.loop, n.cfg, n.store, n.repl, &n.divs, &n.http, &why) : 0;
    if (!rc)
        rc = net_start(n.cfg, on_wake, &n, repl_prepare, repl_prepared_free, &n.net, &why);
    if (rc) {
        close_all(&n);
        uv_run(&n.loop, UV_RUN_DEFAULT);
        http_destroy(&n.http);
        uv_loop_close(&n.loop);
        repl_destroy(&n.repl);
        store_close(&n.store);
        config_free(&n.cfg);
        if (n.poke_fd >= 0)
            close(n.poke_fd);
        return cli_fail(cmd, "%s", why.msg);
    }
    repl_set_net(n.repl, n.net);
    struct stat cst;
    if (stat(path, &cst) == 0)
        n.cfg_mtime = cst.st_mtim;
    uv_update_time(&n.loop);
    n.started = now_ms(&n);
    n.report_next = n.started + HOUSEKEEPING_AFTER_MS;
    uv_timer_start(&n.tick, on_tick, 0, TICK_MS);
    char pc[CODE_STRLEN + 1] = "";
    if (n.cfg->has_parent)
        code_fmt(n.cfg->parent.code, pc);
    log_info("%s %s (%s)%s%s%s%s%s%s", mode == REPL_RESTORE ? "restoring" : "running",
             code, level_name(code_level(n.cfg->code)), n.cfg->bind[0] ? ", children connect to " : "",
             n.cfg->bind, pc[0] ? ", parent " : "", pc, pc[0] ? " at " : "",
             pc[0] ? n.cfg->parent.zmq : "");
    uv_run(&n.loop, UV_RUN_DEFAULT);

    net_stop(&n.net);
    http_destroy(&n.http);
    uv_run(&n.loop, UV_RUN_NOWAIT);
    if (uv_loop_close(&n.loop))
        log_warn("the loop closed with handles open");
    repl_release(n.repl);
    repl_destroy(&n.repl);
    /* A clean stop leaves the ID-number index whole, so the next start
     * reads nothing back (a crash leaves the changes pending, as right). */
    size_t np = store_idn_pending(n.store);
    if (np && store_idn_fold(n.store, 0) == LX_OK)
        log_info("folded %zu pending ID-number changes into the index", np);
    store_close(&n.store);
    divs_destroy(&n.divs.d);
    if (n.poke_fd >= 0)
        close(n.poke_fd);
    config_free(&n.cfg);
    log_info("stopped");
    close(n.lock_fd);
    return n.exit_code;
}

static int parse_config(const char *cmd, const char *usage, int argc, char **argv,
                        const char **path)
{
    static struct option opts[] = {{"config", required_argument, 0, 'c'},
                                   {"help", no_argument, 0, 'h'}, {0}};
    int ch;
    optind = 1;
    *path = NULL;
    while ((ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        if (ch == 'c')
            *path = optarg;
        else if (ch == 'h')
            return printf("usage: %s\n", usage), -1;
        else
            return cli_usage(cmd, usage, "bad option");
    }
    if (!*path)
        return cli_usage(cmd, usage, "--config is required");
    return 0;
}

int cmd_node(int argc, char **argv)
{
    const char *path;
    int rc = parse_config("node", "lianxin node --config FILE   (runs in the foreground; "
                          "SIGINT/SIGTERM stop it)", argc, argv, &path);
    return rc ? (rc < 0 ? 0 : rc) : node_run("node", path, REPL_RUN);
}

int cmd_restore(int argc, char **argv)
{
    const char *path;
    int rc = parse_config("restore", "lianxin restore --config FILE   (rebuilds this node's "
                          "store from its parent's copy, then exits)", argc, argv, &path);
    return rc ? (rc < 0 ? 0 : rc) : node_run("restore", path, REPL_RESTORE);
}
