/* The replication protocol.
 *
 * Each node has one numbered change log (store.c). A child's DEALER talks
 * to its parent's ROUTER; all frames are msgpack messages (common/wire.h).
 *
 * Handshake. The child sends HELLO {version, its code, the last sequence of
 * the parent's log it applied, its own last sequence} until the parent
 * answers WELCOME with the same four things from its side. A version
 * mismatch is answered with REFUSE and reported on both sides. Each side
 * then streams from the position the other stated, so whatever was lost in
 * a broken connection is sent again. A side whose log is behind what the
 * other has seen (it was restored from a backup) moves its sequence
 * counter past that, so no number is reused.
 *
 * Streams. Up, the child sends every log entry that did not come from the
 * parent; down, the parent sends each child the entries that concern its
 * subtree and did not come from it (wire_routes). A BATCH carries the range
 * of the sender's log it covers [from, upto] and the changes in it; the
 * receiver applies the whole batch in one transaction, records upto as
 * applied in that same transaction, and only after the commit is durable
 * sends ACK upto. Batches that arrive together (from one link or many:
 * a province under twenty cities) share one transaction and one flush
 * (group commit); their ACKs follow that commit. What a group logged is
 * sent on to the other links from the open transaction, before its
 * commit, as far as the log numbers reserved durably (meta "resv"): a
 * crash may lose entries a peer holds, and every writer after it (a
 * command, the node starting again) numbers past the reservation, so no
 * number is reused. A sender keeps at most `window` batches unacknowledged
 * (credit-based flow control); a batch whose start does not follow what
 * was applied is answered with NACK and the sender resends from there.
 * Nothing is dropped on a queue limit: an unsendable frame marks the link
 * down and the handshake resends.
 *
 * Scope. Every change is checked against the sender: a child may only
 * write records that are, and stay, in its subtree; a parent only records
 * that are or come into ours. Timestamps too far ahead are refused.
 * Refusals are logged by record id, division code and reason, counted, and
 * shown by `lianxin status`; the batch is still acknowledged, so one bad
 * change cannot stall a link.
 *
 * Moves. A change of village_code is routed to both the losing and the
 * gaining child; the gaining one receives the whole record, the losing
 * one keeps a stub.
 *
 * Conflicts. Where two concurrent writes meet, the pair goes into that
 * node's conflict log; CONFLICTS carries the log up (acknowledged with
 * CFACK), and each level keeps a pair once, so every level above the
 * meeting point can review it.
 *
 * Anti-entropy. When a child's stream is fully acknowledged it sends the
 * digests of its units (the level below it); the parent compares them with
 * its own for the same units, and for each that differs sends its records
 * of the unit (REPAIR) and asks for the child's (PULL). Merging is
 * idempotent, so repairs are safe whenever they arrive.
 *
 * Policies. A parent sends each child every policy it holds (POLICIES)
 * when the link comes up and whenever its set changes; the child admits
 * them through policy_accept (signature, issuer, version, expiry) and so
 * passes them on to its own children. Up, POLACK carries the versions a
 * node applies and those its descendants reported: the whole table when
 * the link comes up, then what changed; each level keeps the table of its
 * subtree, so the province sees every node's.
 *
 * Reports. A node freezes its quarterly report as numbered revisions
 * (common/rflow.h). Up, REPORT carries the last revision of each quarter
 * the parent has not acknowledged (RPTACK), sent when the link comes up,
 * when a revision is frozen, and every few seconds until acknowledged.
 * The parent checks it (the report decodes and is exactly the child's),
 * stores it, and acknowledges it even when it refuses it (counted and
 * shown by status, like a refused change). Down, ANSWER carries the
 * parent's approval or return of a revision until the child acknowledges
 * it (ANSACK). RSTATES carries the submission states of the node and its
 * descendants like conflicts: the whole table when the link comes up, then
 * what changed, one message in flight, acknowledged with RSTACK; each
 * level merges them into its table (a later revision wins, then an answer
 * over a submission), so every level sees the states of its subtree.
 *
 * Audit. Each node appends its API's reads and writes to its own audit
 * chain (common/audit.h) and keeps its descendants' chains. Up, AUDIT
 * carries for each chain held the entries after what the parent
 * acknowledged (meta "audack/CODE"), in their stored form, chunked under
 * the batch size, one message in flight: when the link comes up, whenever
 * the table grows, and again after a lost message. The parent stores an
 * entry only when it continues the chain it holds (next seq, matching
 * hash) and lies in the child's subtree, and answers AUDACK with the last
 * seq it holds of each chain sent; the child resends from there. A chain
 * the parent refuses (history it cannot take: rewritten, altered) is
 * logged and counted there, and the child tries it again only after a
 * while or a new link; a gap (the parent lacks earlier entries, e.g. a
 * rebuilt store) is filled at once from the parent's position. So every
 * level holds, and can verify, the chains of its subtree.
 *
 * Restore. A node with an empty store asks RESTORE; the parent sends its
 * whole copy of the subtree as REPAIR batches, then RESTORED with the
 * positions to resume from. */
#include "repl.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/audit.h"
#include "common/fault.h"
#include "common/linkstate.h"
#include "common/policy.h"
#include "common/log.h"
#include "common/rflow.h"
#include "common/schema.h"
#include "common/wire.h"

#define MAX_WINDOW 64
#define BATCH_BYTES (1u << 20)
#define HELLO_RETRY_MS 500
#define REFUSED_RETRY_MS 5000
#define REPAIR_BATCH 500
/* Group commit: batches applied in one transaction before it is flushed. */
#define GROUP_BATCHES 32
#define GROUP_CHANGES 4000
/* Reports and answers not yet acknowledged are sent again this often. */
#define REPORT_RESEND_MS 5000
/* A chain the parent refused is offered again after this long. */
#define AUDIT_RETRY_MS 30000
/* Log numbers reserved ahead at a time (see resv_take). */
#define RESV_STEP (1ULL << 20)

/* A range of our log known to hold only changes that came from a link's
 * peer: never sent back to it, so its stream passes over it unread. */
#define OWN_RANGES 32
typedef struct {
    uint64_t a, b;
} range_t;

typedef struct {
    code_t code;
    bool is_parent;
    bool up;                /* handshake done, heard from recently */
    bool refused;           /* the peer refused our protocol version */
    uint64_t last_heard, last_sent, last_hello;
    uint64_t pos;           /* next sequence of our log to consider */
    uint64_t acked;         /* the peer has applied our log up to here */
    uint64_t inflight[MAX_WINDOW];  /* upto of each unacknowledged batch */
    uint32_t ninflight;
    uint64_t inflight_since;
    uint64_t applied;       /* we have applied the peer's log up to here */
    uint64_t refusals;      /* changes from this peer we refused */
    char reason[160];       /* the last refusal */
    uint64_t next_digest;   /* when to compare digests (child side) */
    uint64_t cf_acked;      /* parent link: our conflict log stored above up to here */
    uint64_t cf_sent;       /* the conflicts message in flight reaches here; 0: none */
    uint64_t cf_since;
    uint64_t hello_applied; /* what the child's last hello said it applied */
    uint64_t pol_sent;      /* child link: the policy generation it was sent */
    bool polack_all;        /* parent link: send the whole table when up */
    uint64_t rpt_due;       /* parent link: when to send unacknowledged reports */
    uint64_t ans_due;       /* child link: when to send undelivered answers */
    uint64_t rst_acked;     /* parent link: our state table stored above to here */
    uint64_t rst_sent, rst_since; /* the states message in flight reaches rst_sent */
    uint64_t sent, received;
    bool aud_sent;          /* parent link: an AUDIT is in flight */
    uint64_t aud_since;
    uint64_t aud_count;     /* the audit table's size when last walked */
    uint64_t aud_due;       /* walk again at this time even if it did not grow */
    range_t own[OWN_RANGES];/* ascending; what came from this peer */
    uint32_t nown;
} link_t;

struct repl {
    /* While a message is handled: its changes' schema checks when the
     * net thread made them (repl_prepare), else NULL. */
    const int *chk;
    const why_t *chkwhy;
    const node_config_t *cfg;
    store_t *store;
    net_t *net;
    repl_mode_t mode;
    link_t *links;          /* the parent first, when there is one */
    size_t nlinks;
    msgpack_sbuffer sb;
    uint64_t last_seq_seen; /* our log's end when we last pumped */
    uint64_t refusals, skew, malformed, denied;
    uint64_t last_save;
    bool dirty;
    bool restore_sent, restore_done;
    int restore_rc;
    /* Policies: a hash of the versions held (never 0), and the
     * acknowledgement entries waiting to go up. */
    uint64_t pol_gen;
    struct wpolack *polup;
    uint32_t npolup, cappolup;
    uint64_t rgen;          /* the report workflow's counter when last pumped */
    /* The open group transaction and the ACKs that wait for its commit. */
    stxn_t *gtx;
    uint64_t now;           /* the loop's clock at the last message or tick */
    uint64_t resv;          /* our log numbers durably reserved: sent on early up to here */
    uint64_t last_data;     /* when a batch or repair was last applied, or the log grew */
    struct { link_t *l; uint64_t upto, before; } gack[GROUP_BATCHES];
    uint32_t ngack, gchanges;
    /* Audit up: the chains of the AUDIT in flight (first and last seq
     * sent), and chains the parent refused, left until `until`. */
    struct audsent { code_t node; uint64_t first, last; } *audsent;
    uint32_t naudsent, capaudsent;
    struct audstall { code_t node; uint64_t until; } *audstall;
    uint32_t naudstall, capaudstall;
};

static void group_flush(repl_t *r);
static int resv_take(repl_t *r);
static int links_write(repl_t *r, stxn_t *t);
static bool links_due(const repl_t *r, uint64_t now);
static void pump_policies(repl_t *r, stxn_t *t);
static void pump_polacks(repl_t *r, stxn_t *t);
static void polup_clear(repl_t *r);
static void pump_reports(repl_t *r, stxn_t *t, uint64_t now);
static void pump_audit(repl_t *r, link_t *l, stxn_t *t, uint64_t now);

static link_t *link_of(repl_t *r, code_t code)
{
    for (size_t i = 0; i < r->nlinks; i++)
        if (r->links[i].code == code)
            return &r->links[i];
    return NULL;
}

static void meta_key(char *buf, size_t n, const char *what, code_t code)
{
    char c[CODE_STRLEN + 1];
    snprintf(buf, n, "%s/%s", what, code_fmt(code, c));
}

static void send_frame(repl_t *r, link_t *l)
{
    net_send(r->net, l->code, r->sb.data, r->sb.size);
}

/* Sends what r->sb holds; a large frame (a batch) is handed over without
 * a copy, and the buffer starts again at the size it had. */
static int send_sb(repl_t *r, link_t *l)
{
    if (r->sb.size < (64u << 10))
        return net_send(r->net, l->code, r->sb.data, r->sb.size);
    size_t len = r->sb.size, cap = r->sb.alloc;
    void *buf = msgpack_sbuffer_release(&r->sb);
    if ((r->sb.data = malloc(cap)))
        r->sb.alloc = cap;
    return net_send_owned(r->net, l->code, buf, len);
}

/* Counts a refusal of something l sent, remembers why for `status`, and
 * logs it (by record id, code and reason: never personal values). */
static void refuse(repl_t *r, link_t *l, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void refuse(repl_t *r, link_t *l, const char *fmt, ...)
{
    char c[CODE_STRLEN + 1];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->reason, sizeof l->reason, fmt, ap);
    va_end(ap);
    l->refusals++;
    r->refusals++;
    r->dirty = true;
    log_warn("refused from %s %s: %s", l->is_parent ? "parent" : "child",
             code_fmt(l->code, c), l->reason);
}

static void send_hello(repl_t *r, link_t *l, uint64_t now)
{
    wire_handshake(&r->sb, WM_HELLO, r->cfg->code, l->applied, r->last_seq_seen);
    send_frame(r, l);
    l->last_hello = now;
}

static void link_down(repl_t *r, link_t *l, const char *why)
{
    char c[CODE_STRLEN + 1];
    if (l->up)
        log_warn("link %s %s: down (%s)", l->is_parent ? "to parent" : "to child",
                 code_fmt(l->code, c), why);
    l->up = false;
    l->ninflight = 0;
    r->dirty = true;
}

int repl_new(const node_config_t *cfg, store_t *store, repl_mode_t mode,
             repl_t **out, why_t *why)
{
    repl_t *r = calloc(1, sizeof *r);
    if (!r)
        return LX_ENOMEM;
    r->cfg = cfg;
    r->store = store;
    r->mode = mode;
    r->nlinks = (cfg->has_parent ? 1 : 0) + (mode == REPL_RUN ? cfg->nchildren : 0);
    r->links = calloc(r->nlinks ? r->nlinks : 1, sizeof *r->links);
    if (!r->links) {
        free(r);
        return LX_ENOMEM;
    }
    msgpack_sbuffer_init(&r->sb);
    size_t k = 0;
    if (cfg->has_parent) {
        r->links[k].code = cfg->parent.code;
        r->links[k++].is_parent = true;
    }
    for (size_t i = 0; mode == REPL_RUN && i < cfg->nchildren; i++)
        r->links[k++].code = cfg->children[i].code;
    /* What we applied from each peer survives restarts. */
    stxn_t *t;
    int rc = store_begin(store, false, &t);
    for (size_t i = 0; !rc && i < r->nlinks; i++) {
        char key[32];
        meta_key(key, sizeof key, "in", r->links[i].code);
        if (store_meta_get(t, key, &r->links[i].applied) == LX_ENOTFOUND)
            r->links[i].applied = 0;
        meta_key(key, sizeof key, "ack", r->links[i].code);
        if (store_meta_get(t, key, &r->links[i].acked) == LX_ENOTFOUND)
            r->links[i].acked = 0;
        meta_key(key, sizeof key, "cfack", r->links[i].code);
        if (store_meta_get(t, key, &r->links[i].cf_acked) == LX_ENOTFOUND)
            r->links[i].cf_acked = 0;
        r->links[i].pos = r->links[i].acked + 1;
    }
    if (!rc) {
        r->last_seq_seen = store_last_seq(t);
        store_abort(&t);
    }
    /* The links are saved at the first tick, not at their first change:
     * until then `status` would call a node whose parent never answered
     * "not running", and `bundle export` would find no parent to write
     * for (an offline village's very case). */
    r->dirty = mode == REPL_RUN;
    if (!rc)
        rc = resv_take(r);
    if (rc) {
        repl_destroy(&r);
        return why_set(why, rc, "store: %s", err_str(rc));
    }
    *out = r;
    return LX_OK;
}

/* At start: number on past what the last run reserved (it may have sent
 * entries its crash lost), and reserve the next RESV_STEP numbers. */
static int resv_take(repl_t *r)
{
    stxn_t *t;
    int rc = store_begin(r->store, true, &t);
    if (rc)
        return rc;
    uint64_t had = store_seq_reserved(t);
    if (store_last_seq(t) < had)
        store_bump_seq(t, had);
    uint64_t resv = store_last_seq(t) + RESV_STEP;
    rc = store_set_seq_reserved(t, resv);
    if (!rc)
        rc = store_commit(&t);
    store_abort(&t);
    if (!rc)
        r->resv = resv;
    return rc;
}

void repl_release(repl_t *r)
{
    stxn_t *t;
    if (r->gtx)
        return; /* never at a clean stop: close_all commits the group */
    if (store_begin(r->store, true, &t) == LX_OK) {
        if (store_set_seq_reserved(t, store_last_seq(t)) || store_commit(&t))
            store_abort(&t);
        else
            r->resv = 0;
    }
}

void repl_destroy(repl_t **self_p)
{
    repl_t *r = *self_p;
    if (!r)
        return;
    if (r->gtx) {
        /* Keep what was applied; the senders, never acknowledged, resend
         * and hear that it is already here. */
        store_commit(&r->gtx);
        store_abort(&r->gtx);
    }
    msgpack_sbuffer_destroy(&r->sb);
    polup_clear(r);
    free(r->polup);
    free(r->audsent);
    free(r->audstall);
    free(r->links);
    free(r);
    *self_p = NULL;
}

void repl_set_net(repl_t *r, net_t *net) { r->net = net; }

/* ---- sending our log ---- */

/* Notes that our log's entries a..b came from l's peer. */
static void own_note(link_t *l, uint64_t a, uint64_t b)
{
    if (a > b)
        return;
    if (l->nown && l->own[l->nown - 1].b + 1 == a) {
        l->own[l->nown - 1].b = b;
        return;
    }
    if (l->nown == OWN_RANGES)
        memmove(l->own, l->own + 1, --l->nown * sizeof l->own[0]);
    l->own[l->nown++] = (range_t){a, b};
}

/* A transaction that noted own ranges did not commit: its numbers may
 * be used again for others' changes. */
static void own_forget(repl_t *r)
{
    for (size_t i = 0; i < r->nlinks; i++)
        r->links[i].nown = 0;
}

/* The end of the own range holding seq, or 0; ranges behind the link's
 * position are let go. */
static uint64_t own_end(link_t *l, uint64_t seq)
{
    uint32_t k = 0;
    while (k < l->nown && l->own[k].b < l->pos)
        k++;
    if (k) {
        memmove(l->own, l->own + k, (l->nown - k) * sizeof l->own[0]);
        l->nown -= k;
    }
    for (uint32_t i = 0; i < l->nown && l->own[i].a <= seq; i++)
        if (seq <= l->own[i].b)
            return l->own[i].b;
    return 0;
}

/* The start of the first own range after seq, or UINT64_MAX. */
static uint64_t own_next(const link_t *l, uint64_t seq)
{
    for (uint32_t i = 0; i < l->nown; i++)
        if (l->own[i].a > seq)
            return l->own[i].a;
    return UINT64_MAX;
}

typedef struct {
    repl_t *r;
    link_t *l;
    stxn_t *t;
    wire_batch_t b;
    uint64_t upto;
    uint64_t last;      /* the batch covers numbers up to here at most */
    uint64_t stop;      /* an own range starts here: the walk ends before it */
    bool stopped;
    bool full;          /* the batch is full: the walk ended before the log */
    uint32_t max;
    int rc;
} fill_t;

static int fill_cb(void *arg, const loghdr_t *h)
{
    fill_t *f = arg;
    bool full;
    if (h->seq > f->last)
        return 1;
    if (h->seq >= f->stop) {
        f->stopped = true;
        return 1;
    }
    if (f->b.n >= f->max || f->b.sb->size >= BATCH_BYTES) {
        f->full = true;
        return 1;
    }
    if (wire_routes(f->l->code, f->l->is_parent, h->village, h->prev, h->from, &full)) {
        why_t why = {""};
        int rc = store_log_pack(f->t, h, full, &f->b.pk, &why);
        if (rc == LX_OK)
            wire_batch_added(&f->b);
        if (rc && rc != LX_ENOTFOUND) {
            log_error("log entry %" PRIu64 ": %s", h->seq, why.msg[0] ? why.msg : err_str(rc));
            f->rc = rc;
            return 1;
        }
    }
    f->upto = h->seq;
    return 0;
}

/* Sends batches on one link while it has credit and there is log left.
 * What came from the peer is passed over without reading it (a relay's
 * log is mostly its children's changes, which go up, not back). */
static void pump_link(repl_t *r, link_t *l, stxn_t *t, uint64_t last, uint64_t now)
{
    uint32_t window = r->cfg->window < MAX_WINDOW ? r->cfg->window : MAX_WINDOW;
    while (l->up && l->ninflight < window && l->pos <= last) {
        fill_t f = {.r = r, .l = l, .t = t, .upto = 0, .last = last, .max = r->cfg->batch};
        wire_batch_begin(&f.b, &r->sb, WM_BATCH, l->pos);
        for (uint64_t at = l->pos; at <= last && !f.rc;) {
            uint64_t e = own_end(l, at);
            if (e) {
                f.upto = e < last ? e : last;
                at = f.upto + 1;
                continue;
            }
            f.stop = own_next(l, at);
            f.stopped = false;
            store_each_log_hdr(t, at, fill_cb, &f);
            if (!f.stopped) {
                /* The log holds nothing more up to `last` (numbers a
                 * writer skipped, see store_seq_reserved): the batch
                 * covers them, unless it filled first. */
                if (!f.full && !f.rc)
                    f.upto = last;
                break;
            }
            at = f.stop;
        }
        if (f.rc || f.upto < l->pos)
            return;
        wire_batch_end(&f.b, f.upto);
        if (send_sb(r, l))
            return;
        if (l->ninflight == 0)
            l->inflight_since = now;
        l->inflight[l->ninflight++] = f.upto;
        l->pos = f.upto + 1;
        l->sent += f.b.n;
        l->last_sent = now;
        r->dirty = true;
    }
}

/* Conflicts go up too, so that every level above where two writes met
 * sees the pair. One message in flight at a time. */
typedef struct {
    wire_batch_t b;
    uint64_t upto;
} cfill_t;

static int cfill_cb(void *arg, const conflict_t *c)
{
    cfill_t *f = arg;
    if (f->b.n >= REPAIR_BATCH)
        return 1;
    wire_conflicts_add(&f->b, c->id, c->kept, c->lost);
    f->upto = c->seq;
    return 0;
}

static void pump_conflicts(repl_t *r, link_t *l, stxn_t *t, uint64_t now)
{
    /* After the changes: a conflict names a record the parent must have. */
    if (!l->up || l->cf_sent || store_last_cseq(t) <= l->cf_acked || l->ninflight
        || l->pos <= store_last_seq(t))
        return;
    cfill_t f = {.upto = 0};
    wire_conflicts_begin(&f.b, &r->sb);
    store_each_conflict_from(t, l->cf_acked + 1, cfill_cb, &f);
    if (!f.upto)
        return;
    wire_conflicts_end(&f.b, f.upto);
    if (net_send(r->net, l->code, r->sb.data, r->sb.size) == LX_OK) {
        l->cf_sent = f.upto;
        l->cf_since = now;
    }
}

/* Parent side: a child's conflicts, about records in its subtree. */
static void on_conflicts(repl_t *r, link_t *l, wmsg_t *m)
{
    stxn_t *t;
    int rc = store_begin(r->store, true, &t);
    for (uint32_t i = 0; !rc && i < m->nconflicts; i++) {
        struct wconflict *c = &m->conflicts[i];
        record_t *rec = NULL;
        bool added;
        int x = store_get(t, c->id, &rec, NULL);
        const char *v = x == LX_OK ? record_str(rec, "village_code") : NULL;
        code_t vc = 0;
        if (!v || code_parse(v, &vc) || !code_contains(l->code, vc)
            || store_add_conflict(t, c->id, &c->kept, &c->lost, &added)) {
            refuse(r, l, "a conflict entry about record %s outside the child", c->id);
        }
        record_destroy(&rec);
    }
    if (!rc)
        rc = store_commit(&t);
    store_abort(&t);
    if (rc)
        return;
    wire_ack(&r->sb, WM_CFACK, m->last_seq);
    send_frame(r, l);
}

void repl_pump(repl_t *r, uint64_t now)
{
    r->now = now;
    group_flush(r);
    bool any = false;
    for (size_t i = 0; i < r->nlinks; i++)
        any |= r->links[i].up;
    if (!any)
        return;
    stxn_t *t;
    if (store_begin(r->store, false, &t))
        return;
    uint64_t last = store_last_seq(t);
    /* The log grew by a write of our own (the API, a command): that is
     * activity too, or a village's idle work (a fold step, with its
     * flush) would run between an operator's edits and hold them up. */
    if (last > r->last_seq_seen)
        r->last_data = now;
    r->last_seq_seen = last;
    for (size_t i = 0; i < r->nlinks; i++)
        pump_link(r, &r->links[i], t, last, now);
    pump_policies(r, t);
    if (r->mode == REPL_RUN)
        pump_polacks(r, t);
    if (r->cfg->has_parent && r->mode == REPL_RUN)
        pump_conflicts(r, &r->links[0], t, now);
    if (r->mode == REPL_RUN)
        pump_reports(r, t, now);
    if (r->cfg->has_parent && r->mode == REPL_RUN)
        pump_audit(r, &r->links[0], t, now);
    store_abort(&t);
}

/* ---- applying a peer's changes ---- */

/* A frame decoded and its changes checked, by repl_prepare. */
typedef struct {
    int rc;
    why_t why;
    wmsg_t m;
    int *chk;        /* per change: schema_check_change's answer */
    why_t *chkwhy;   /* per change, only when one failed */
} prep_t;

void *repl_prepare(const void *data, size_t len)
{
    prep_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->rc = wire_decode(data, len, &p->m, &p->why);
    uint32_t n = p->rc ? 0 : p->m.nchanges;
    if (n && !(p->chk = calloc(n, sizeof *p->chk))) {
        repl_prepared_free(p);
        return NULL;  /* the loop thread does it all itself */
    }
    for (uint32_t i = 0; i < n; i++) {
        why_t why = {""};
        p->chk[i] = schema_check_change(&p->m.changes[i], &why);
        if (p->chk[i] && !p->chkwhy && !(p->chkwhy = calloc(n, sizeof *p->chkwhy))) {
            repl_prepared_free(p);
            return NULL;
        }
        if (p->chk[i])
            p->chkwhy[i] = why;
    }
    return p;
}

void repl_prepared_free(void *pre)
{
    prep_t *p = pre;
    if (!p)
        return;
    wmsg_free(&p->m);
    free(p->chk);
    free(p->chkwhy);
    free(p);
}

/* Applies changes from link l in the open transaction; refusals are
 * counted and logged, never fatal. Returns a store failure only. The
 * schema checks come from r->chk when the net thread made them. */
static int apply_changes(repl_t *r, link_t *l, stxn_t *t, change_t *cs, uint32_t n)
{
    apply_opts_t o = {.from = l->code,
                      .within = l->is_parent ? r->cfg->code : l->code,
                      .either = l->is_parent};
    for (uint32_t i = 0; i < n; i++) {
        apply_t res;
        why_t why = {""};
        /* A peer's values pass the same field checks as an operator's. */
        int rc;
        if (r->chk) {
            rc = r->chk[i];
            if (rc)
                why = r->chkwhy[i];
        } else {
            rc = schema_check_change(&cs[i], &why);
        }
        o.packed = cs[i].packed;
        o.packedlen = cs[i].packedlen;
        if (!rc)
            rc = store_apply_ex(t, cs[i].id, cs[i].w, cs[i].n, &o, &res, &why);
        if (rc == LX_ESCOPE || rc == LX_ESKEW || rc == LX_EINVAL) {
            if (rc == LX_ESKEW)
                r->skew++;
            refuse(r, l, "a change to record %s: %s", cs[i].id, why.msg);
            continue;
        }
        if (rc)
            return rc;
        l->received++;
    }
    return LX_OK;
}

/* Moves our log's numbering past at_least (a peer has seen our log up to
 * there) when it is not already; durable. */
static int bump_numbering(repl_t *r, uint64_t at_least)
{
    stxn_t *t;
    int rc = store_begin(r->store, true, &t);
    if (!rc && store_last_seq(t) < at_least) {
        log_warn("our log ends at %" PRIu64 " but a peer may hold it up to %" PRIu64
                 ": numbering on after that", store_last_seq(t), at_least);
        store_bump_seq(t, at_least);
        rc = store_commit(&t);
    }
    store_abort(&t);
    return rc;
}

/* After a group commit failed, our log ends before entries we already
 * sent on (group_flush sends before it commits): number on after the
 * last sent, so no peer takes a new entry for one it has (a command
 * that writes meanwhile numbers after our reservation by itself). */
static void skip_sent(repl_t *r)
{
    uint64_t sent = 0;
    for (size_t i = 0; i < r->nlinks; i++)
        if (r->links[i].pos > sent + 1)
            sent = r->links[i].pos - 1;
    int rc = bump_numbering(r, sent);
    if (rc) {
        /* Not even that: start every link again, the handshakes move our
         * numbering past what the peers applied. */
        log_error("after a failed commit, our log could not be moved past what was sent (%s): "
                  "every link starts again", err_str(rc));
        for (size_t i = 0; i < r->nlinks; i++)
            if (r->links[i].up)
                link_down(r, &r->links[i], "a commit failed");
    }
}

/* Commits the group transaction, then acknowledges its batches (one ACK
 * per link, the last position). On failure nothing is acknowledged and the
 * links fall back to what was durable: the senders resend.
 *
 * What the group logged is sent on to the other links before the commit,
 * from the transaction itself: the next hop works while this one waits
 * for its disk, so a change crosses the tree in about one flush, not one
 * per level. A peer may so hold entries we lose in a crash before the
 * commit; that is the case of a node restored from an older copy (our
 * numbering moves past what peers saw, and the senders resend what we did
 * not acknowledge), and acknowledgements still wait for the commit. */
static void group_flush(repl_t *r)
{
    if (!r->gtx)
        return;
    uint64_t last = store_last_seq(r->gtx);
    /* Only numbers durably reserved go early: after a crash the node
     * and every other writer number past the reservation. What lies
     * beyond goes after the commit, which reserves further. */
    uint64_t early = last < r->resv ? last : r->resv, resv = r->resv;
    if (early > r->last_seq_seen)
        for (size_t i = 0; i < r->nlinks; i++)
            pump_link(r, &r->links[i], r->gtx, early, r->now);
    if (r->resv && last + RESV_STEP / 2 > r->resv
        && store_set_seq_reserved(r->gtx, last + RESV_STEP) == LX_OK)
        resv = last + RESV_STEP;
    bool saved = r->dirty && links_due(r, r->now) && links_write(r, r->gtx) == LX_OK;
    if (fault_hit("crash_before_commit")) {
        /* Test hook: die once what was sent on has left, the group not
         * committed (the worst moment for a crash). */
        usleep(300000);
        _exit(3);
    }
    /* Durable before we acknowledge. */
    int rc = fault_hit("group_commit") ? LX_EIO : store_commit(&r->gtx);
    store_abort(&r->gtx);
    if (rc) {
        log_error("applying %u batches failed: %s (they will be resent)", r->ngack, err_str(rc));
        for (uint32_t i = r->ngack; i-- > 0;)
            r->gack[i].l->applied = r->gack[i].before;
        own_forget(r);
        skip_sent(r);
    } else {
        if (early > r->last_seq_seen)
            r->last_seq_seen = early;
        r->resv = resv;
        if (saved) {
            r->last_save = r->now;
            r->dirty = false;
        }
    }
    for (uint32_t i = 0; !rc && i < r->ngack; i++) {
        link_t *l = r->gack[i].l;
        bool last_of_link = true;
        for (uint32_t j = i + 1; j < r->ngack; j++)
            last_of_link &= r->gack[j].l != l;
        if (last_of_link) {
            wire_ack(&r->sb, WM_ACK, r->gack[i].upto);
            send_frame(r, l);
        }
    }
    r->ngack = r->gchanges = 0;
}

static void on_batch(repl_t *r, link_t *l, wmsg_t *m)
{
    char lc[CODE_STRLEN + 1];
    if (m->first > l->applied + 1) {
        /* A gap: something between was lost. Ask again from there. */
        group_flush(r);
        wire_ack(&r->sb, WM_NACK, l->applied);
        send_frame(r, l);
        return;
    }
    if (m->last_seq <= l->applied || m->nchanges == 0) {
        /* Already applied (a resend): acknowledge again. Or nothing for
         * us in that range: move on without a write (the position is
         * saved with the link state; a crash before that only means the
         * empty range is sent again). Either way after what is pending. */
        group_flush(r);
        if (m->last_seq > l->applied) {
            l->applied = m->last_seq;
            r->dirty = true;
        }
        wire_ack(&r->sb, WM_ACK, l->applied);
        send_frame(r, l);
        return;
    }
    int rc = r->gtx ? LX_OK : store_begin(r->store, true, &r->gtx);
    char key[32];
    meta_key(key, sizeof key, "in", l->code);
    uint64_t seq0 = rc ? 0 : store_last_seq(r->gtx);
    if (!rc)
        rc = apply_changes(r, l, r->gtx, m->changes, m->nchanges);
    if (!rc)
        rc = store_meta_put(r->gtx, key, m->last_seq);
    if (rc) {
        /* The whole group goes: its batches are resent, and this one. */
        log_error("applying a batch from %s failed: %s (it will be resent)",
                  code_fmt(l->code, lc), err_str(rc));
        store_abort(&r->gtx);
        for (uint32_t i = r->ngack; i-- > 0;)
            r->gack[i].l->applied = r->gack[i].before;
        r->ngack = r->gchanges = 0;
        own_forget(r);
        return;
    }
    own_note(l, seq0 + 1, store_last_seq(r->gtx));
    r->last_data = r->now;
    r->gack[r->ngack].l = l;
    r->gack[r->ngack].before = l->applied;
    r->gack[r->ngack++].upto = m->last_seq;
    r->gchanges += m->nchanges;
    l->applied = m->last_seq;  /* tentatively: later batches follow it */
    if (r->ngack == GROUP_BATCHES || r->gchanges >= GROUP_CHANGES)
        group_flush(r);
}

bool repl_group_open(const repl_t *r) { return r->gtx != NULL; }

uint64_t repl_last_data(const repl_t *r) { return r->last_data; }

void repl_note_write(repl_t *r, uint64_t now) { r->last_data = now; }

static void on_repair(repl_t *r, link_t *l, wmsg_t *m)
{
    stxn_t *t;
    int rc = store_begin(r->store, true, &t);
    uint64_t seq0 = rc ? 0 : store_last_seq(t), seq1 = 0;
    if (!rc)
        rc = apply_changes(r, l, t, m->changes, m->nchanges);
    if (!rc) {
        seq1 = store_last_seq(t);
        rc = store_commit(&t);
    }
    store_abort(&t);
    r->last_data = r->now;
    if (!rc)
        own_note(l, seq0 + 1, seq1);
    if (rc) {
        char lc[CODE_STRLEN + 1];
        log_error("applying a repair from %s failed: %s", code_fmt(l->code, lc), err_str(rc));
        if (r->mode == REPL_RESTORE)
            r->restore_rc = rc; /* the snapshot is incomplete: do not call it done */
    }
}

/* ---- whole records: repairs and restores ---- */

typedef struct {
    repl_t *r;
    link_t *l;
    stxn_t *t;
    wire_batch_t b;
    uint64_t count;
} repair_t;

static int repair_cb(void *arg, const record_t *rec)
{
    repair_t *x = arg;
    change_t c;
    if (store_record_change(x->t, rec, &c))
        return LX_ENOMEM;
    wire_batch_add(&x->b, &c);
    change_free(&c);
    x->count++;
    if (x->b.n >= REPAIR_BATCH || x->b.sb->size >= BATCH_BYTES) {
        wire_batch_end(&x->b, 0);
        net_send(x->r->net, x->l->code, x->r->sb.data, x->r->sb.size);
        wire_batch_begin(&x->b, &x->r->sb, WM_REPAIR, 0);
    }
    return 0;
}

/* Sends every record under unit to l; returns how many. */
static uint64_t send_records(repl_t *r, link_t *l, stxn_t *t, code_t unit)
{
    repair_t x = {.r = r, .l = l, .t = t};
    wire_batch_begin(&x.b, &r->sb, WM_REPAIR, 0);
    store_each_record(t, unit, repair_cb, &x);
    if (x.b.n) {
        wire_batch_end(&x.b, 0);
        net_send(r->net, l->code, r->sb.data, r->sb.size);
    }
    return x.count;
}

/* Parent side: compare a child's unit digests with ours. Only when our
 * stream to the child is caught up too: otherwise the difference is just
 * what is still on its way, and the child asks again later. */
static void on_digests(repl_t *r, link_t *l, wmsg_t *m)
{
    if (!l->up || l->ninflight || l->pos <= r->last_seq_seen)
        return;
    stxn_t *t;
    if (store_begin(r->store, false, &t))
        return;
    code_t *units = NULL;
    unsigned char (*dig)[STORE_DIGEST_LEN] = NULL;
    uint32_t n = 0;
    store_unit_digests(t, l->code, &units, &dig, &n);
    /* Units in either list whose digests differ or that one side lacks. */
    char lc[CODE_STRLEN + 1], uc[CODE_STRLEN + 1];
    for (uint32_t pass = 0; pass < 2; pass++) {
        uint32_t count = pass == 0 ? m->ndigests : n;
        for (uint32_t i = 0; i < count; i++) {
            code_t unit = pass == 0 ? m->digests[i].unit : units[i];
            if (!code_contains(l->code, unit))
                continue;
            /* Each unit once, however often a child names it. */
            bool seen = false;
            for (uint32_t j = 0; pass == 0 && j < i && !seen; j++)
                seen = m->digests[j].unit == unit;
            if (seen)
                continue;
            const unsigned char *theirs = NULL, *ours = NULL;
            for (uint32_t j = 0; j < m->ndigests; j++)
                if (m->digests[j].unit == unit)
                    theirs = m->digests[j].d;
            for (uint32_t j = 0; j < n; j++)
                if (units[j] == unit)
                    ours = dig[j];
            if (pass == 1 && theirs)
                continue; /* compared in the first pass */
            if (theirs && ours && memcmp(theirs, ours, STORE_DIGEST_LEN) == 0)
                continue;
            uint64_t sent = send_records(r, l, t, unit);
            wire_pull(&r->sb, unit);
            send_frame(r, l);
            log_info("anti-entropy: unit %s of child %s differs; sent %" PRIu64
                     " records and asked for theirs", code_fmt(unit, uc),
                     code_fmt(l->code, lc), sent);
        }
    }
    free(units);
    free(dig);
    store_abort(&t);
}

static void send_digests(repl_t *r, link_t *l)
{
    stxn_t *t;
    if (store_begin(r->store, false, &t))
        return;
    code_t *units = NULL;
    unsigned char (*dig)[STORE_DIGEST_LEN] = NULL;
    uint32_t n = 0;
    if (store_unit_digests(t, r->cfg->code, &units, &dig, &n) == LX_OK) {
        unit_digest_t *ud = calloc(n ? n : 1, sizeof *ud);
        for (uint32_t i = 0; ud && i < n && i < WIRE_MAX_DIGESTS; i++) {
            ud[i].unit = units[i];
            memcpy(ud[i].d, dig[i], STORE_DIGEST_LEN);
        }
        if (ud) {
            wire_digests(&r->sb, ud, n < WIRE_MAX_DIGESTS ? n : WIRE_MAX_DIGESTS);
            send_frame(r, l);
        }
        free(ud);
    }
    free(units);
    free(dig);
    store_abort(&t);
}

static void on_pull(repl_t *r, link_t *l, code_t unit)
{
    if (!code_contains(r->cfg->code, unit))
        return;
    stxn_t *t;
    if (store_begin(r->store, false, &t))
        return;
    send_records(r, l, t, unit);
    store_abort(&t);
}

static uint64_t send_audit_chains(repl_t *r, link_t *l, stxn_t *t);

/* The records our log saw leave the child's subtree (a move out of it):
 * a restored child gets their stubs back, as it had them. */
typedef struct {
    code_t child;
    char (*ids)[65];
    size_t n, cap;
} gone_t;

static int gone_cb(void *arg, const loghdr_t *h)
{
    gone_t *g = arg;
    if (!h->prev || !code_contains(g->child, h->prev) || code_contains(g->child, h->village)
        || strlen(h->id) > 64)
        return 0;
    if (g->n == g->cap) {
        size_t cap = g->cap ? 2 * g->cap : 64;
        char (*ids)[65] = realloc(g->ids, cap * sizeof *ids);
        if (!ids)
            return LX_ENOMEM;
        g->ids = ids;
        g->cap = cap;
    }
    strcpy(g->ids[g->n++], h->id);
    return 0;
}

static int cmp_id(const void *a, const void *b) { return strcmp(a, b); }

/* Sends the child a stub (the record's id and its village_code, with its
 * version) of each record that moved out of its subtree and is still
 * out; returns how many. */
static uint64_t send_stubs(repl_t *r, link_t *l, stxn_t *t)
{
    gone_t g = {.child = l->code};
    repair_t x = {.r = r, .l = l, .t = t};
    if (store_each_log_hdr(t, 1, gone_cb, &g) == LX_OK && g.n) {
        qsort(g.ids, g.n, sizeof *g.ids, cmp_id);
        wire_batch_begin(&x.b, &r->sb, WM_REPAIR, 0);
        for (size_t i = 0; i < g.n; i++) {
            record_t *rec = NULL;
            field_t *vf;
            code_t v;
            if ((i && strcmp(g.ids[i], g.ids[i - 1]) == 0) || store_get(t, g.ids[i], &rec, NULL)
                || !(vf = (field_t *)record_field(rec, "village_code")) || vf->val.kind != VAL_STR
                || code_parse(vf->val.s, &v) || code_contains(l->code, v)) {
                record_destroy(&rec);
                continue; /* seen, gone, or back inside (sent whole) */
            }
            record_t stub = {.id = rec->id, .n = 1, .cap = 1, .f = vf};
            repair_cb(&x, &stub);
            record_destroy(&rec);
        }
        if (x.b.n) {
            wire_batch_end(&x.b, 0);
            net_send(r->net, l->code, r->sb.data, r->sb.size);
        }
    }
    free(g.ids);
    return x.count;
}

static void on_restore(repl_t *r, link_t *l)
{
    stxn_t *t;
    if (store_begin(r->store, false, &t))
        return;
    /* One read transaction: the snapshot is our state at one sequence. */
    uint64_t count = send_records(r, l, t, l->code);
    uint64_t stubs = send_stubs(r, l, t);
    uint64_t last = store_last_seq(t);
    uint64_t entries = send_audit_chains(r, l, t);
    store_abort(&t);
    wire_restored(&r->sb, l->applied, last);
    send_frame(r, l);
    char lc[CODE_STRLEN + 1];
    log_info("restore: sent child %s its %" PRIu64 " records and %" PRIu64 " moved-out stubs "
             "as of sequence %" PRIu64 " and %" PRIu64 " audit entries of its subtree",
             code_fmt(l->code, lc), count, stubs, last, entries);
    l->pos = last + 1;
    l->acked = last;
    l->ninflight = 0;
}

static void on_restored(repl_t *r, link_t *l, wmsg_t *m)
{
    if (r->restore_rc) {
        r->restore_done = true;
        return;
    }
    stxn_t *t;
    char key[32];
    meta_key(key, sizeof key, "in", l->code);
    int rc = store_begin(r->store, true, &t);
    if (!rc) {
        /* Continue our numbering above what the parent already applied,
         * and its stream after the snapshot. */
        store_bump_seq(t, m->applied);
        rc = store_meta_put(t, key, m->last_seq);
    }
    if (!rc)
        rc = store_commit(&t);
    store_abort(&t);
    l->applied = m->last_seq;
    r->restore_done = true;
    r->restore_rc = rc;
}

/* ---- handshake ---- */

/* A peer can only have applied what we logged: a position far beyond
 * our log is not a restore from a backup but a broken or hostile peer,
 * and must not push our counter towards overflow. */
#define SEQ_SLACK (1ULL << 40)

static bool plausible_position(repl_t *r, uint64_t peer_applied)
{
    return peer_applied <= r->last_seq_seen + SEQ_SLACK;
}

static void handshake_seq(repl_t *r, uint64_t peer_applied)
{
    /* The peer has seen our log up to peer_applied; if ours is shorter we
     * were restored from an older copy, or lost what we had sent on
     * before a commit: never reuse those numbers. */
    bump_numbering(r, peer_applied);
}

/* The handshake is done: stream to the peer from the position it stated;
 * whatever was in flight before is sent again. */
static void link_up(repl_t *r, link_t *l, uint64_t peer_applied, uint64_t now)
{
    char lc[CODE_STRLEN + 1];
    if (!l->up)
        log_info("link to %s %s: up (it has our log to %" PRIu64 ")",
                 l->is_parent ? "parent" : "child", code_fmt(l->code, lc), peer_applied);
    l->up = true;
    l->refused = false;
    l->pos = peer_applied + 1;
    l->acked = peer_applied;
    l->ninflight = 0;
    l->last_heard = now;
    l->pol_sent = 0;
    l->polack_all = true;
    l->rpt_due = l->ans_due = 0;
    l->rst_acked = l->rst_sent = 0;  /* the whole state table again */
    l->aud_sent = false;
    l->aud_due = 0;                   /* the audit chains from what was acknowledged */
    if (l->is_parent)
        r->naudstall = 0;
    r->dirty = true;
}

static void on_hello(repl_t *r, link_t *l, wmsg_t *m, uint64_t now)
{
    char lc[CODE_STRLEN + 1];
    if (m->version != WIRE_VERSION) {
        char reason[160];
        snprintf(reason, sizeof reason, "protocol version %u, this node speaks %d",
                 m->version, WIRE_VERSION);
        refuse(r, l, "%s", reason);
        wire_refuse(&r->sb, reason);
        send_frame(r, l);
        link_down(r, l, "version mismatch");
        return;
    }
    if (m->code != l->code) {
        char mc[CODE_STRLEN + 1];
        log_warn("link to child %s: hello names %s; ignored", code_fmt(l->code, lc),
                 code_fmt(m->code, mc));
        return;
    }
    if (!plausible_position(r, m->applied)) {
        refuse(r, l, "hello claims our log was applied to %" PRIu64 ", far past its end",
               m->applied);
        return;
    }
    l->hello_applied = m->applied;
    handshake_seq(r, m->applied);
    /* A bundle imported by hand may have moved what we applied. */
    stxn_t *t;
    char key[32];
    uint64_t in;
    meta_key(key, sizeof key, "in", l->code);
    if (store_begin(r->store, false, &t) == LX_OK) {
        if (store_meta_get(t, key, &in) == LX_OK && in > l->applied)
            l->applied = in;
        store_abort(&t);
    }
    link_up(r, l, m->applied, now);
    wire_handshake(&r->sb, WM_WELCOME, r->cfg->code, l->applied, r->last_seq_seen);
    send_frame(r, l);
}

static void on_welcome(repl_t *r, link_t *l, wmsg_t *m, uint64_t now)
{
    char lc[CODE_STRLEN + 1];
    if (m->version != WIRE_VERSION) {
        log_error("link to parent %s: it speaks protocol version %u, we speak %d",
                  code_fmt(l->code, lc), m->version, WIRE_VERSION);
        l->refused = true;
        return;
    }
    if (!plausible_position(r, m->applied)) {
        refuse(r, l, "welcome claims our log was applied to %" PRIu64 ", far past its end",
               m->applied);
        return;
    }
    handshake_seq(r, m->applied);
    link_up(r, l, m->applied, now);
    l->next_digest = now + 1000;
    l->cf_sent = 0;
    if (r->mode == REPL_RESTORE && !r->restore_sent) {
        wire_simple(&r->sb, WM_RESTORE);
        send_frame(r, l);
        r->restore_sent = true;
    }
}

static void on_ack(repl_t *r, link_t *l, wmsg_t *m, bool nack)
{
    if (nack) {
        l->pos = m->applied + 1;
        l->acked = m->applied;
        l->ninflight = 0;
        r->dirty = true;
        return;
    }
    uint32_t k = 0;
    while (k < l->ninflight && l->inflight[k] <= m->applied)
        k++;
    memmove(l->inflight, l->inflight + k, (l->ninflight - k) * sizeof l->inflight[0]);
    l->ninflight -= k;
    if (m->applied > l->acked) {
        l->acked = m->applied;
        r->dirty = true;
    }
    l->inflight_since = l->last_heard;
}

/* ---- policies ---- */

/* Appends an acknowledgement entry for the parent (copying v). */
static int polup_append(repl_t *r, code_t node, uint64_t when, const wpolver_t *v, uint32_t n)
{
    if (r->npolup == r->cappolup) {
        uint32_t cap = r->cappolup ? 2 * r->cappolup : 16;
        void *p = realloc(r->polup, cap * sizeof *r->polup);
        if (!p)
            return LX_ENOMEM;
        r->polup = p;
        r->cappolup = cap;
    }
    struct wpolack *e = &r->polup[r->npolup];
    if (!(e->v = malloc((n ? n : 1) * sizeof *v)))
        return LX_ENOMEM;
    memcpy(e->v, v, n * sizeof *v);
    e->node = node;
    e->when_ms = when;
    e->n = n;
    r->npolup++;
    return LX_OK;
}

/* Queues an entry for the parent, replacing a queued one of that node.
 * (Lost on a failure: the whole table goes again on the next link up.) */
static void polup_add(repl_t *r, code_t node, uint64_t when, const wpolver_t *v, uint32_t n)
{
    if (!r->cfg->has_parent)
        return;
    for (uint32_t i = 0; i < r->npolup; i++) {
        if (r->polup[i].node == node) {
            free(r->polup[i].v);
            r->polup[i] = r->polup[--r->npolup];
            break;
        }
    }
    polup_append(r, node, when, v, n);
}

static void polup_clear(repl_t *r)
{
    for (uint32_t i = 0; i < r->npolup; i++)
        free(r->polup[i].v);
    r->npolup = 0;
}

/* The versions this node holds, hashed (FNV-1a; never 0), and as a list. */
static uint64_t pol_generation(stxn_t *t, wpolver_t **list, uint32_t *n)
{
    policy_ver_t *v = NULL;
    size_t nv = 0;
    uint64_t h = 1469598103934665603ULL;
    *n = 0;
    *list = NULL;
    if (policy_versions(t, &v, &nv))
        return 0;
    if (nv > WIRE_MAX_POLVERS)
        nv = WIRE_MAX_POLVERS;
    *list = calloc(nv ? nv : 1, sizeof **list);
    for (size_t i = 0; i < nv && *list; i++) {
        (*list)[i] = (wpolver_t){v[i].issuer, (uint32_t)v[i].kind, v[i].version};
        uint64_t x[3] = {v[i].issuer, (uint64_t)v[i].kind, v[i].version};
        for (int k = 0; k < 3; k++)
            for (int b = 0; b < 8; b++)
                h = (h ^ ((x[k] >> (8 * b)) & 0xff)) * 1099511628211ULL;
    }
    *n = *list ? (uint32_t)nv : 0;
    free(v);
    return h | 1;
}

/* Notices a change of the policies held (from the parent, or issued here
 * by `lianxin policy issue`): records this node's own acknowledgement and
 * queues it for the parent; the children get the new set from pump. */
static void pol_refresh(repl_t *r, uint64_t now)
{
    stxn_t *t;
    if (store_begin(r->store, false, &t))
        return;
    wpolver_t *v;
    uint32_t n;
    uint64_t gen = pol_generation(t, &v, &n);
    store_abort(&t);
    (void)now;
    if (!gen || gen == r->pol_gen || store_begin(r->store, true, &t)) {
        free(v);
        return;
    }
    policy_ver_t *pv = calloc(n ? n : 1, sizeof *pv);
    int rc = pv ? LX_OK : LX_ENOMEM;
    for (uint32_t i = 0; pv && i < n; i++)
        pv[i] = (policy_ver_t){v[i].issuer, (policy_kind_t)v[i].kind, v[i].version};
    if (!rc)
        rc = policy_ack_put(t, r->cfg->code, pv, n, hlc_wall_ms());
    free(pv);
    if (!rc)
        rc = store_commit(&t);
    store_abort(&t);
    if (!rc) {
        r->pol_gen = gen;
        polup_add(r, r->cfg->code, hlc_wall_ms(), v, n);
    }
    free(v);
}

typedef struct {
    wire_batch_t b;
} polfill_t;

static int polfill_cb(void *arg, const void *env, size_t envlen, const policy_t *p,
                      uint64_t accepted_ms)
{
    polfill_t *f = arg;
    (void)p;
    (void)accepted_ms;
    if (f->b.n < WIRE_MAX_POLICIES)
        wire_policies_add(&f->b, env, envlen);
    return 0;
}

/* Parent side: every child whose copy is older gets the whole set. */
static void pump_policies(repl_t *r, stxn_t *t)
{
    if (!r->pol_gen)
        return;
    polfill_t f;
    bool built = false;
    for (size_t i = r->cfg->has_parent ? 1 : 0; i < r->nlinks; i++) {
        link_t *l = &r->links[i];
        if (!l->up || l->pol_sent == r->pol_gen)
            continue;
        if (!built) {
            wire_policies_begin(&f.b, &r->sb);
            if (policy_each(t, polfill_cb, &f))
                return;
            wire_list_end(&f.b);
            built = true;
        }
        if (net_send(r->net, l->code, r->sb.data, r->sb.size) == LX_OK)
            l->pol_sent = r->pol_gen;
    }
}

static int ackload_cb(void *arg, code_t node, const policy_ver_t *vers, size_t n,
                      uint64_t when_ms)
{
    repl_t *r = arg;
    wpolver_t v[WIRE_MAX_POLVERS];
    uint32_t k = n < WIRE_MAX_POLVERS ? (uint32_t)n : WIRE_MAX_POLVERS;
    for (uint32_t i = 0; i < k; i++)
        v[i] = (wpolver_t){vers[i].issuer, (uint32_t)vers[i].kind, vers[i].version};
    return polup_append(r, node, when_ms, v, k);
}

/* Child side: the acknowledgement table up, whole after a reconnect,
 * then the entries that changed; in as many messages as it takes. */
static void pump_polacks(repl_t *r, stxn_t *t)
{
    link_t *l = &r->links[0];
    if (!r->cfg->has_parent || !l->up)
        return;
    if (l->polack_all) {
        polup_clear(r);
        if (policy_ack_each(t, ackload_cb, r)) {
            polup_clear(r);
            return;
        }
        l->polack_all = false;
    }
    while (r->npolup) {
        wire_batch_t b;
        wire_polack_begin(&b, &r->sb);
        uint32_t k = 0;
        for (; k < r->npolup && b.n < WIRE_MAX_POLACKS && r->sb.size < (4u << 20); k++)
            wire_polack_add(&b, r->polup[k].node, r->polup[k].when_ms, r->polup[k].v,
                            r->polup[k].n);
        wire_list_end(&b);
        if (net_send(r->net, l->code, r->sb.data, r->sb.size) != LX_OK) {
            l->polack_all = true;  /* the link is down: all again when it is up */
            return;
        }
        for (uint32_t i = 0; i < k; i++)
            free(r->polup[i].v);
        memmove(r->polup, r->polup + k, (r->npolup - k) * sizeof *r->polup);
        r->npolup -= k;
    }
}

/* Child side: the parent's policies. Each is admitted or refused on its
 * own (a refusal names the reason and is counted, as for changes). */
static void on_policies(repl_t *r, link_t *l, wmsg_t *m, uint64_t now)
{
    stxn_t *t;
    if (store_begin(r->store, true, &t))
        return;
    bool any = false;
    for (uint32_t i = 0; i < m->npolicies; i++) {
        why_t why = {""};
        policy_ver_t held;
        unsigned how = l->is_parent ? POLICY_FROM_PARENT : POLICY_FROM_CHILD;
        int rc = policy_accept(t, m->policies[i].env, m->policies[i].len, how,
                               hlc_wall_ms(), &held, &why);
        if (rc == LX_OK) {
            char ic[CODE_STRLEN + 1];
            log_info("policy %s %s version %u accepted", code_fmt(held.issuer, ic),
                     policy_kind_name(held.kind), held.version);
            any = true;
        } else if (rc != LX_EEXIST) {
            refuse(r, l, "policy %u of %u: %s", i + 1, m->npolicies,
                   why.msg[0] ? why.msg : err_str(rc));
        }
    }
    if (!any || store_commit(&t))
        store_abort(&t);
    store_abort(&t);
    if (any)
        pol_refresh(r, now);
}

/* Parent side: a child's acknowledgement table, kept and passed up. */
static void on_polack(repl_t *r, link_t *l, wmsg_t *m)
{
    stxn_t *t;
    if (store_begin(r->store, true, &t))
        return;
    int rc = LX_OK;
    for (uint32_t i = 0; !rc && i < m->npolacks; i++) {
        struct wpolack *e = &m->polacks[i];
        char nc[CODE_STRLEN + 1];
        if (!code_contains(l->code, e->node)) {
            refuse(r, l, "a policy acknowledgement for %s, outside the child",
                   code_fmt(e->node, nc));
            continue;
        }
        policy_ver_t *pv = calloc(e->n ? e->n : 1, sizeof *pv);
        if (!pv) {
            rc = LX_ENOMEM;
            break;
        }
        for (uint32_t k = 0; k < e->n; k++)
            pv[k] = (policy_ver_t){e->v[k].issuer, (policy_kind_t)e->v[k].kind, e->v[k].version};
        rc = policy_ack_put(t, e->node, pv, e->n, e->when_ms);
        free(pv);
    }
    if (!rc)
        rc = store_commit(&t);
    store_abort(&t);
    if (rc)
        return;
    for (uint32_t i = 0; i < m->npolacks; i++)
        if (code_contains(l->code, m->polacks[i].node))
            polup_add(r, m->polacks[i].node, m->polacks[i].when_ms, m->polacks[i].v,
                      m->polacks[i].n);
}

/* ---- reports ---- */

typedef struct {
    repl_t *r;
    link_t *l;
    stxn_t *t;
    int sent;
} rptfill_t;

/* Child side: the last revision of a quarter, unless the parent has it. */
static int rptfill_cb(void *arg, const char *quarter, uint32_t last)
{
    rptfill_t *f = arg;
    if (rflow_acked(f->t, quarter) >= last)
        return 0;
    void *packed = NULL;
    size_t len = 0;
    uint32_t rev;
    if (rflow_get(f->t, quarter, last, &rev, NULL, NULL, &packed, &len) == LX_OK) {
        wire_report(&f->r->sb, quarter, rev, packed, len);
        if (net_send(f->r->net, f->l->code, f->r->sb.data, f->r->sb.size) == LX_OK)
            f->sent++;
    }
    free(packed);
    return 0;
}

static int ansfill_cb(void *arg, code_t child, const char *quarter, uint32_t rev,
                      unsigned state, uint64_t when_ms, const char *reason)
{
    rptfill_t *f = arg;
    (void)child;
    wire_answer(&f->r->sb, quarter, rev, state, when_ms, reason);
    if (net_send(f->r->net, f->l->code, f->r->sb.data, f->r->sb.size) == LX_OK)
        f->sent++;
    return 0;
}

typedef struct {
    struct wrstate *e;
    uint32_t n, cap;
    uint64_t *seq;
} stfill_t;

static int stfill_cb(void *arg, const rstate_t *e)
{
    stfill_t *f = arg;
    if (f->n == f->cap) {
        uint32_t cap = f->cap ? 2 * f->cap : 64;
        struct wrstate *p = realloc(f->e, cap * sizeof *p);
        uint64_t *q = realloc(f->seq, cap * sizeof *q);
        if (p)
            f->e = p;
        if (q)
            f->seq = q;
        if (!p || !q)
            return LX_ENOMEM;
        f->cap = cap;
    }
    struct wrstate *w = &f->e[f->n];
    w->node = e->node;
    memcpy(w->quarter, e->quarter, sizeof w->quarter);
    w->rev = e->rev;
    w->state = e->state;
    w->when_ms = e->when_ms;
    snprintf(w->reason, sizeof w->reason, "%s", e->reason);
    f->seq[f->n++] = e->seq;
    return 0;
}

/* The state entries after l->rst_acked, oldest first, at most a message
 * full; upto is the seq of the last one sent, so everything at or below
 * it is covered. */
static void pump_rstates(repl_t *r, link_t *l, stxn_t *t, uint64_t now)
{
    if (l->rst_sent || rflow_state_seq(t) <= l->rst_acked)
        return;
    stfill_t f = {0};
    if (rflow_state_each(t, l->rst_acked, stfill_cb, &f) == LX_OK && f.n) {
        /* Insertion sort by seq of an index: tables are small. */
        uint32_t *ix = malloc(f.n * sizeof *ix);
        for (uint32_t i = 0; ix && i < f.n; i++) {
            uint32_t j = i;
            for (; j > 0 && f.seq[ix[j - 1]] > f.seq[i]; j--)
                ix[j] = ix[j - 1];
            ix[j] = i;
        }
        if (ix) {
            uint32_t k = f.n < WIRE_MAX_RSTATES ? f.n : WIRE_MAX_RSTATES;
            wire_batch_t b;
            wire_rstates_begin(&b, &r->sb);
            for (uint32_t i = 0; i < k; i++)
                wire_rstates_add(&b, &f.e[ix[i]]);
            uint64_t upto = f.seq[ix[k - 1]];
            wire_rstates_end(&b, upto);
            if (net_send(r->net, l->code, r->sb.data, r->sb.size) == LX_OK) {
                l->rst_sent = upto;
                l->rst_since = now;
            }
        }
        free(ix);
    }
    free(f.e);
    free(f.seq);
}

/* Reports and states up, answers down: when a link comes up, when the
 * workflow's records change (a command froze or answered), and again
 * every few seconds while something is unacknowledged. */
static void pump_reports(repl_t *r, stxn_t *t, uint64_t now)
{
    uint64_t gen = rflow_gen(t);
    if (gen != r->rgen) {
        r->rgen = gen;
        for (size_t i = 0; i < r->nlinks; i++)
            r->links[i].rpt_due = r->links[i].ans_due = 0;
    }
    for (size_t i = 0; i < r->nlinks; i++) {
        link_t *l = &r->links[i];
        if (!l->up)
            continue;
        rptfill_t f = {.r = r, .l = l, .t = t};
        if (l->is_parent) {
            /* After the changes: the parent compares the report with them. */
            if (now >= l->rpt_due && !l->ninflight && l->pos > store_last_seq(t)) {
                rflow_each_frozen(t, rptfill_cb, &f);
                l->rpt_due = f.sent ? now + REPORT_RESEND_MS : UINT64_MAX;
            }
            pump_rstates(r, l, t, now);
        } else if (now >= l->ans_due) {
            rflow_each_undelivered(t, l->code, ansfill_cb, &f);
            l->ans_due = f.sent ? now + REPORT_RESEND_MS : UINT64_MAX;
        }
    }
}

/* Parent side: a child's frozen revision. Acknowledged even when refused,
 * so one bad report cannot make the child send it for ever. */
static void on_report(repl_t *r, link_t *l, wmsg_t *m)
{
    stxn_t *t;
    if (store_begin(r->store, true, &t))
        return;
    why_t why = {""};
    char lc[CODE_STRLEN + 1];
    int rc = rflow_receive(t, l->code, m->quarter, m->rev, m->blob, m->bloblen, hlc_wall_ms(),
                           &why);
    if (rc == LX_OK && (rc = store_commit(&t)) == LX_OK)
        log_info("report %s revision %u from child %s stored", m->quarter, m->rev,
                 code_fmt(l->code, lc));
    store_abort(&t);
    if (rc == LX_EIO || rc == LX_EFULL || rc == LX_ENOMEM)
        return;  /* ours, not the child's: it sends again */
    if (rc && rc != LX_EEXIST)
        refuse(r, l, "%s", why.msg[0] ? why.msg : err_str(rc));
    wire_rptack(&r->sb, WM_RPTACK, m->quarter, m->rev);
    send_frame(r, l);
}

/* Child side: the parent holds our revision. */
static void on_rptack(repl_t *r, wmsg_t *m)
{
    stxn_t *t;
    if (store_begin(r->store, true, &t))
        return;
    if (rflow_acked(t, m->quarter) >= m->rev || rflow_set_acked(t, m->quarter, m->rev)
        || store_commit(&t))
        store_abort(&t);
    store_abort(&t);
}

/* Child side: the parent's answer. The reason is an operator's free text:
 * stored and shown by `report state`, never logged. */
static void on_answer(repl_t *r, link_t *l, wmsg_t *m)
{
    stxn_t *t;
    if (store_begin(r->store, true, &t))
        return;
    why_t why = {""};
    int rc = rflow_got(t, m->quarter, m->rev, m->state, m->when_ms, m->reason, &why);
    if (rc == LX_OK && (rc = store_commit(&t)) == LX_OK)
        log_info("report %s revision %u %s by the parent", m->quarter, m->rev,
                 rst_name(m->state));
    store_abort(&t);
    if (rc == LX_EIO || rc == LX_EFULL || rc == LX_ENOMEM)
        return;
    if (rc)
        refuse(r, l, "%s", why.msg[0] ? why.msg : err_str(rc));
    wire_rptack(&r->sb, WM_ANSACK, m->quarter, m->rev);
    send_frame(r, l);
}

static void on_ansack(repl_t *r, link_t *l, wmsg_t *m)
{
    stxn_t *t;
    if (store_begin(r->store, true, &t))
        return;
    if (rflow_delivered(t, l->code, m->quarter, m->rev) || store_commit(&t))
        store_abort(&t);
    store_abort(&t);
}

/* Parent side: the states of the child and its descendants. */
static void on_rstates(repl_t *r, link_t *l, wmsg_t *m)
{
    stxn_t *t;
    if (store_begin(r->store, true, &t))
        return;
    int rc = LX_OK;
    for (uint32_t i = 0; !rc && i < m->nrstates; i++) {
        struct wrstate *w = &m->rstates[i];
        char nc[CODE_STRLEN + 1];
        quarter_t q;
        if (!code_contains(l->code, w->node)) {
            refuse(r, l, "a report state for %s, outside the child", code_fmt(w->node, nc));
            continue;
        }
        if (w->rev == 0 || w->state < RST_SUBMITTED || w->state > RST_RETURNED
            || quarter_parse(w->quarter, &q, NULL)) {
            refuse(r, l, "a malformed report state for %s", code_fmt(w->node, nc));
            continue;
        }
        rstate_t e = {.node = w->node, .rev = w->rev, .state = w->state, .when_ms = w->when_ms};
        memcpy(e.quarter, w->quarter, sizeof e.quarter);
        snprintf(e.reason, sizeof e.reason, "%s", w->reason);
        rc = rflow_state_put(t, &e, NULL);
    }
    if (!rc)
        rc = store_commit(&t);
    store_abort(&t);
    if (rc)
        return;
    wire_ack(&r->sb, WM_RSTACK, m->last_seq);
    send_frame(r, l);
}

/* ---- audit chains ---- */

typedef struct {
    repl_t *r;
    stxn_t *t;
    wire_batch_t b;
    uint64_t now;
    uint32_t entries;        /* in the message */
    bool full;               /* the message is full: more after the ack */
    /* the chain being added */
    size_t at;
    uint32_t n;
    uint64_t first, last;
} afill_t;

static bool aud_stalled(repl_t *r, code_t node, uint64_t now)
{
    for (uint32_t i = 0; i < r->naudstall; i++)
        if (r->audstall[i].node == node)
            return now < r->audstall[i].until;
    return false;
}

static int aentry_cb(void *arg, uint64_t seq, const void *val, size_t len)
{
    afill_t *f = arg;
    if (f->entries && (f->entries >= WIRE_MAX_AUDIT || f->b.sb->size + len > BATCH_BYTES)) {
        f->full = true;
        return 1;
    }
    wire_audit_entry(&f->b, val, len);
    f->entries++;
    f->n++;
    if (!f->first)
        f->first = seq;
    f->last = seq;
    return 0;
}

static int achain_cb(void *arg, code_t node, uint64_t last)
{
    afill_t *f = arg;
    repl_t *r = f->r;
    char key[32];
    uint64_t acked = 0;
    meta_key(key, sizeof key, "audack", node);
    if (store_meta_get(f->t, key, &acked) != LX_OK)
        acked = 0;
    if (last <= acked || aud_stalled(r, node, f->now))
        return 0;
    if (f->full || f->b.n >= WIRE_MAX_AUDIT_CHAINS) {
        f->full = true;
        return 1;
    }
    if (r->naudsent == r->capaudsent) {
        uint32_t cap = r->capaudsent ? 2 * r->capaudsent : 16;
        void *p = realloc(r->audsent, cap * sizeof *r->audsent);
        if (!p)
            return LX_ENOMEM;
        r->audsent = p;
        r->capaudsent = cap;
    }
    f->at = wire_audit_chain(&f->b, node);
    f->n = 0;
    f->first = f->last = 0;
    int rc = audit_raw_each(f->t, node, acked + 1, aentry_cb, f);
    wire_audit_chain_end(&f->b, f->at, f->n);
    if (f->n)
        r->audsent[r->naudsent++] = (struct audsent){node, f->first, f->last};
    return rc ? rc : f->full ? 1 : 0;
}

/* Child side: the entries of every chain held that the parent has not
 * acknowledged, when the table grew or a walk is due; one message in
 * flight. */
static void pump_audit(repl_t *r, link_t *l, stxn_t *t, uint64_t now)
{
    if (!l->up || l->aud_sent)
        return;
    uint64_t count = audit_count(t);
    if (count == l->aud_count && now < l->aud_due)
        return;
    afill_t f = {.r = r, .t = t, .now = now};
    r->naudsent = 0;
    wire_audit_begin(&f.b, &r->sb);
    int rc = audit_chains(t, achain_cb, &f);
    if (rc) {
        log_error("audit chains: %s", err_str(rc));
        l->aud_due = now + AUDIT_RETRY_MS;
        return;
    }
    /* Walk again after the ack when the message was full, or when a
     * stalled chain's time comes. */
    l->aud_count = count;
    l->aud_due = f.full ? 0 : UINT64_MAX;
    uint32_t k = 0;
    for (uint32_t i = 0; i < r->naudstall; i++) {
        if (r->audstall[i].until <= now)
            continue;  /* its time came: offered in this walk */
        if (r->audstall[i].until < l->aud_due)
            l->aud_due = r->audstall[i].until;
        r->audstall[k++] = r->audstall[i];
    }
    r->naudstall = k;
    if (r->naudsent == 0)
        return;
    wire_list_end(&f.b);
    if (net_send(r->net, l->code, r->sb.data, r->sb.size) == LX_OK) {
        l->aud_sent = true;
        l->aud_since = now;
    } else {
        l->aud_due = 0;
    }
}

static void aud_stall(repl_t *r, code_t node, uint64_t until)
{
    for (uint32_t i = 0; i < r->naudstall; i++)
        if (r->audstall[i].node == node) {
            r->audstall[i].until = until;
            return;
        }
    if (r->naudstall == r->capaudstall) {
        uint32_t cap = r->capaudstall ? 2 * r->capaudstall : 8;
        void *p = realloc(r->audstall, cap * sizeof *r->audstall);
        if (!p)
            return;
        r->audstall = p;
        r->capaudstall = cap;
    }
    r->audstall[r->naudstall++] = (struct audstall){node, until};
}

/* Child side: what the parent holds of the chains we sent. */
static void on_audack(repl_t *r, link_t *l, wmsg_t *m, uint64_t now)
{
    if (!l->aud_sent)
        return;
    stxn_t *t;
    if (store_begin(r->store, true, &t))
        return;
    int rc = LX_OK;
    char c[CODE_STRLEN + 1];
    for (uint32_t i = 0; !rc && i < m->naudacks; i++) {
        struct waudack *a = &m->audacks[i];
        struct audsent *s = NULL;
        for (uint32_t k = 0; k < r->naudsent && !s; k++)
            if (r->audsent[k].node == a->node)
                s = &r->audsent[k];
        if (!s)
            continue;  /* not a chain we sent */
        char key[32];
        meta_key(key, sizeof key, "audack", a->node);
        rc = store_meta_put(t, key, a->seq);
        if (a->seq + 1 < s->first) {
            l->aud_due = 0;  /* the parent lacks earlier entries: from its position */
        } else if (a->seq < s->last) {
            log_warn("audit chain %s: the parent holds it to %" PRIu64 " and took no more "
                     "(refused there); offered again in %d s", code_fmt(a->node, c), a->seq,
                     AUDIT_RETRY_MS / 1000);
            aud_stall(r, a->node, now + AUDIT_RETRY_MS);
            if (l->aud_due > now + AUDIT_RETRY_MS)
                l->aud_due = now + AUDIT_RETRY_MS;
        }
    }
    if (rc || store_commit(&t)) {
        store_abort(&t);
        l->aud_due = 0;
    }
    store_abort(&t);
    l->aud_sent = false;
    r->naudsent = 0;
}

/* Parent side, restoring a child: the audit chains of its subtree, so that
 * its own chain goes on from where it was (a chain started again at 1
 * would be refused here). One chain's entries per message, as many
 * messages as it takes. Returns the entries sent. */
typedef struct {
    repl_t *r;
    link_t *l;
    stxn_t *t;
    uint64_t sent;
} arestore_t;

static int arestore_chain(void *arg, code_t node, uint64_t last)
{
    arestore_t *x = arg;
    if (!code_contains(x->l->code, node) || !last)
        return 0;
    for (uint64_t from = 1; from <= last;) {
        afill_t f = {.r = x->r, .t = x->t};
        wire_audit_begin(&f.b, &x->r->sb);
        f.at = wire_audit_chain(&f.b, node);
        int rc = audit_raw_each(x->t, node, from, aentry_cb, &f);
        if (rc < 0)
            return rc;
        wire_audit_chain_end(&f.b, f.at, f.n);
        wire_list_end(&f.b);
        if (!f.n)
            break;
        send_frame(x->r, x->l);
        x->sent += f.n;
        from = f.last + 1;
    }
    return 0;
}

static uint64_t send_audit_chains(repl_t *r, link_t *l, stxn_t *t)
{
    arestore_t x = {r, l, t, 0};
    if (audit_chains(t, arestore_chain, &x) < 0)
        log_error("restore: the audit chains could not all be sent");
    return x.sent;
}

/* Child side, in restore: the chains of our subtree as the parent holds
 * them, taken as its copy (which continues nothing here: the store is
 * empty) and marked as held there. */
static void on_audit_restore(repl_t *r, link_t *l, wmsg_t *m)
{
    stxn_t *t;
    if (store_begin(r->store, true, &t))
        return;
    int rc = LX_OK;
    for (uint32_t i = 0; !rc && i < m->naudits; i++) {
        struct waudit *a = &m->audits[i];
        if (!code_contains(r->cfg->code, a->node)) {
            refuse(r, l, "restore: an audit chain outside this node's subtree");
            continue;
        }
        for (uint32_t k = 0; !rc && k < a->n; k++) {
            why_t why = {""};
            int x = audit_receive(t, l->code, a->node, a->e[k].p, a->e[k].len, &why);
            if (x != LX_OK && x != LX_EEXIST) {
                refuse(r, l, "restore: %s", why.msg[0] ? why.msg : err_str(x));
                break;
            }
        }
        uint64_t seq;
        unsigned char h[AUDIT_HASH_LEN];
        char key[32];
        meta_key(key, sizeof key, "audack", a->node);
        if (audit_last(t, a->node, &seq, h) == LX_OK)
            rc = store_meta_put(t, key, seq);
    }
    if (!rc)
        rc = store_commit(&t);
    store_abort(&t);
    if (rc)
        r->restore_rc = rc;
}

/* Parent side: a child's audit entries. Each must continue the chain held
 * here; the first that does not ends its chain in this message (refused
 * and counted, unless it is only a gap). AUDACK says how far each chain is
 * held. */
static void on_audit(repl_t *r, link_t *l, wmsg_t *m)
{
    stxn_t *t;
    if (store_begin(r->store, true, &t))
        return;
    struct waudack *ack = calloc(m->naudits ? m->naudits : 1, sizeof *ack);
    int rc = ack ? LX_OK : LX_ENOMEM;
    char c[CODE_STRLEN + 1];
    unsigned char h[AUDIT_HASH_LEN];
    for (uint32_t i = 0; !rc && i < m->naudits; i++) {
        struct waudit *a = &m->audits[i];
        for (uint32_t k = 0; !rc && k < a->n; k++) {
            why_t why = {""};
            int x = audit_receive(t, l->code, a->node, a->e[k].p, a->e[k].len, &why);
            if (x == LX_OK || x == LX_EEXIST)
                continue;
            if (x == LX_ENOTFOUND) {
                log_info("%s (asked from there)", why.msg);
            } else if (x == LX_ESCOPE || x == LX_ECORRUPT || x == LX_EINVAL) {
                refuse(r, l, "%s", why.msg);
            } else {
                log_error("audit chain %s: %s", code_fmt(a->node, c),
                          why.msg[0] ? why.msg : err_str(x));
                rc = x;
            }
            break;
        }
        ack[i].node = a->node;
        if (!rc)
            rc = audit_last(t, a->node, &ack[i].seq, h);
    }
    if (!rc)
        rc = store_commit(&t);
    store_abort(&t);
    if (rc) {
        free(ack);
        return;  /* ours, not the child's: it sends again */
    }
    wire_audack(&r->sb, ack, m->naudits);
    send_frame(r, l);
    free(ack);
}

void repl_on_message(repl_t *r, const netmsg_t *nm, uint64_t now)
{
    char lc[CODE_STRLEN + 1];
    r->now = now;
    if (nm->kind == NET_DENIED) {
        r->denied++;
        r->dirty = true;
        return;
    }
    link_t *l = link_of(r, nm->peer);
    if (!l)
        return;
    if (nm->kind == NET_DISCONNECTED || nm->kind == NET_CONNECTED) {
        /* The connection to the parent dropped, or was made: what was in
         * flight on an old one is lost, so the link starts again, with a
         * hello at once when there is a connection to carry it (stating
         * what is committed: the open group commits first). */
        group_flush(r);
        if (l->up)
            link_down(r, l, nm->kind == NET_CONNECTED ? "connected anew" : "connection lost");
        if (nm->kind == NET_CONNECTED && l->is_parent && !l->refused)
            send_hello(r, l, now);
        return;
    }
    if (nm->kind == NET_UNREACHABLE) {
        if (l->up) {
            link_down(r, l, "peer unreachable");
        } else if (l->is_parent && !l->refused) {
            /* Our hello did not leave (no connection yet): the next tick
             * tries again, so a parent that comes back hears from us as
             * soon as the connection is made, not a retry interval
             * later. Nothing to save: the link was down already. */
            l->last_hello = 0;
        }
        return;
    }
    wmsg_t m;
    why_t why = {""};
    prep_t *pre = nm->pre;
    int rc;
    if (pre) {
        /* Decoded and checked in the net thread: take the message over. */
        rc = pre->rc;
        why = pre->why;
        m = pre->m;
        memset(&pre->m, 0, sizeof pre->m);
    } else {
        rc = wire_decode(nm->data, nm->len, &m, &why);
    }
    if (rc) {
        r->malformed++;
        refuse(r, l, "malformed frame: %s", why.msg);
        return;
    }

    l->last_heard = now;
    /* Only batches join the open group; anything else sees it committed. */
    if (m.type != WM_BATCH)
        group_flush(r);
    /* Messages a side never receives are refused like malformed ones. */
    bool from_child = !l->is_parent;
    bool ok = true;
    if (from_child && !l->up && m.type != WM_HELLO) {
        /* A child that thinks it is connected while we do not (we
         * restarted, or timed it out): make it say hello again. */
        wire_simple(&r->sb, WM_RESET);
        send_frame(r, l);
        wmsg_free(&m);
        return;
    }
    r->chk = pre ? pre->chk : NULL;
    r->chkwhy = pre ? pre->chkwhy : NULL;
    switch (m.type) {
    case WM_HELLO: ok = from_child; if (ok) on_hello(r, l, &m, now); break;
    case WM_WELCOME: ok = !from_child; if (ok) on_welcome(r, l, &m, now); break;
    case WM_REFUSE:
        log_error("link to %s: refused by the peer: %s", code_fmt(l->code, lc), m.reason);
        snprintf(l->reason, sizeof l->reason, "refused by peer: %s", m.reason);
        l->refused = true;
        link_down(r, l, "refused");
        break;
    case WM_RESET:
        ok = !from_child;
        if (ok) {
            link_down(r, l, "parent asked for a new handshake");
            l->last_hello = 0;
        }
        break;
    case WM_CONFLICTS: ok = from_child; if (ok) on_conflicts(r, l, &m); break;
    case WM_POLICIES: if (l->up) on_policies(r, l, &m, now); break;
    case WM_POLACK: ok = from_child; if (ok && l->up) on_polack(r, l, &m); break;
    case WM_REPORT: ok = from_child; if (ok && l->up) on_report(r, l, &m); break;
    case WM_RPTACK: ok = !from_child; if (ok && l->up) on_rptack(r, &m); break;
    case WM_ANSWER: ok = !from_child; if (ok && l->up) on_answer(r, l, &m); break;
    case WM_ANSACK: ok = from_child; if (ok && l->up) on_ansack(r, l, &m); break;
    case WM_RSTATES: ok = from_child; if (ok && l->up) on_rstates(r, l, &m); break;
    case WM_AUDIT:
        /* From a child; from the parent only while it restores us. */
        ok = from_child || r->mode == REPL_RESTORE;
        if (ok && from_child && l->up)
            on_audit(r, l, &m);
        else if (ok && !from_child)
            on_audit_restore(r, l, &m);
        break;
    case WM_AUDACK: ok = !from_child; if (ok && l->up) on_audack(r, l, &m, now); break;
    case WM_RSTACK:
        ok = !from_child;
        if (ok && l->rst_sent && m.applied >= l->rst_sent) {
            l->rst_acked = l->rst_sent;
            l->rst_sent = 0;
        }
        break;
    case WM_CFACK:
        ok = !from_child;
        if (ok && l->cf_sent && m.applied >= l->cf_sent) {
            l->cf_acked = m.applied;
            l->cf_sent = 0;
            r->dirty = true;
        }
        break;
    case WM_BATCH:
        /* While restoring, the snapshot is the truth: the parent's log up
         * to it is not applied (nor acknowledged) on top of a half-built
         * store. */
        if (l->up && !(r->mode == REPL_RESTORE && !r->restore_done))
            on_batch(r, l, &m);
        break;
    case WM_ACK: if (l->up) on_ack(r, l, &m, false); break;
    case WM_NACK: if (l->up) on_ack(r, l, &m, true); break;
    case WM_PING:
        wire_simple(&r->sb, WM_PONG);
        send_frame(r, l);
        break;
    case WM_PONG: break;
    case WM_DIGESTS: ok = from_child; if (ok) on_digests(r, l, &m); break;
    case WM_PULL: ok = !from_child; if (ok && l->up) on_pull(r, l, m.code); break;
    case WM_REPAIR: if (l->up) on_repair(r, l, &m); break;
    case WM_RESTORE:
        /* Only a child that starts from nothing gets its whole subtree. */
        ok = from_child && l->hello_applied == 0;
        if (ok)
            on_restore(r, l);
        break;
    case WM_RESTORED: ok = !from_child && r->mode == REPL_RESTORE; if (ok) on_restored(r, l, &m); break;
    }
    if (!ok) {
        r->malformed++;
        refuse(r, l, "unexpected %s message", wire_type_name(m.type));
    }
    r->chk = NULL;
    r->chkwhy = NULL;
    wmsg_free(&m);
}

void repl_tick(repl_t *r, uint64_t now)
{
    r->now = now;
    group_flush(r);
    pol_refresh(r, now);
    for (size_t i = 0; i < r->nlinks; i++) {
        link_t *l = &r->links[i];
        if (l->up && now - l->last_heard > r->cfg->timeout_ms)
            link_down(r, l, "silent too long");
        if (l->is_parent) {
            if (!l->up) {
                uint64_t retry = l->refused ? REFUSED_RETRY_MS : HELLO_RETRY_MS;
                if (now - l->last_hello >= retry)
                    send_hello(r, l, now);
            } else if (now - l->last_sent >= r->cfg->heartbeat_ms) {
                wire_simple(&r->sb, WM_PING);
                send_frame(r, l);
                l->last_sent = now;
            }
            /* Anti-entropy when our stream is fully acknowledged. */
            if (l->up && r->mode == REPL_RUN && l->ninflight == 0
                && l->pos > r->last_seq_seen && now >= l->next_digest) {
                send_digests(r, l);
                l->next_digest = now + r->cfg->antientropy_ms;
            }
        }
        if (l->cf_sent && now - l->cf_since > r->cfg->timeout_ms)
            l->cf_sent = 0;
        if (l->rst_sent && now - l->rst_since > r->cfg->timeout_ms)
            l->rst_sent = 0;
        if (l->aud_sent && now - l->aud_since > r->cfg->timeout_ms) {
            l->aud_sent = false;
            l->aud_due = 0;
        }
        /* Unacknowledged for too long: assume lost and resend. */
        if (l->up && l->ninflight && now - l->inflight_since > r->cfg->timeout_ms) {
            l->pos = l->acked + 1;
            l->ninflight = 0;
        }
    }
    /* Saved when something changed (at most five times a second): an
     * idle node writes nothing. */
    if (r->dirty)
        repl_save_links(r, now);
}

/* Writes the links' state (positions, counts, the last refusal) into t. */
static int links_write(repl_t *r, stxn_t *t)
{
    linkstate_t *ls = calloc(r->nlinks ? r->nlinks : 1, sizeof *ls);
    if (!ls)
        return LX_ENOMEM;
    for (size_t i = 0; i < r->nlinks; i++) {
        link_t *l = &r->links[i];
        ls[i] = (linkstate_t){.code = l->code, .is_parent = l->is_parent, .up = l->up,
                              .acked = l->acked, .applied = l->applied,
                              .refusals = l->refusals, .sent = l->sent,
                              .received = l->received};
        snprintf(ls[i].reason, sizeof ls[i].reason, "%s", l->reason);
    }
    links_t all = {.updated_ms = hlc_wall_ms(), .pid = (int)getpid(), .links = ls,
                   .n = (uint32_t)r->nlinks, .refusals = r->refusals, .skew = r->skew,
                   .malformed = r->malformed, .denied = r->denied,
                   .heartbeat_ms = r->cfg->heartbeat_ms};
    int rc = links_save(t, &all);
    for (size_t i = 0; !rc && i < r->nlinks; i++) {
        char key[32];
        uint64_t in = 0;
        meta_key(key, sizeof key, "ack", r->links[i].code);
        rc = store_meta_put(t, key, r->links[i].acked);
        meta_key(key, sizeof key, "in", r->links[i].code);
        if (!rc && (store_meta_get(t, key, &in) != LX_OK || in < r->links[i].applied))
            rc = store_meta_put(t, key, r->links[i].applied);
        meta_key(key, sizeof key, "cfack", r->links[i].code);
        if (!rc && r->links[i].is_parent)
            rc = store_meta_put(t, key, r->links[i].cf_acked);
    }
    free(ls);
    return rc;
}

/* Whether the links' state is due to be saved (at most five times a
 * second while it changes, and twice a second at most otherwise). */
static bool links_due(const repl_t *r, uint64_t now)
{
    return !(now - r->last_save < 500 && !(r->dirty && now - r->last_save >= 200));
}

/* The links' state is saved for `lianxin status` and the positions for
 * the next start: inside a group transaction when one commits (nothing
 * more to flush), else in a commit of its own that need not wait for the
 * disk twice (a crash may lose it; the handshake tells the positions
 * again). */
void repl_save_links(repl_t *r, uint64_t now)
{
    group_flush(r);
    if (!links_due(r, now))
        return;
    stxn_t *t;
    if (store_begin(r->store, true, &t) == LX_OK) {
        if (links_write(r, t) || store_commit_lazy(&t))
            store_abort(&t);
    }
    r->last_save = now;
    r->dirty = false;
}

bool repl_restore_done(const repl_t *r, int *rc)
{
    *rc = r->restore_rc;
    return r->restore_done;
}
