/* lxpeer: a test peer that impersonates a child node towards its parent.
 *
 *   lxpeer --config CHILD/node.ini [--keys DIR] [--name NAME] [--village CODE]
 *          [--wait MS] SCENARIO [ARG]
 *
 * It loads the child's node.ini and keys (or, with --keys, the CURVE key
 * pair in DIR instead: an unlisted key), connects a CURVE DEALER to the
 * parent like node/net.c does, runs one scenario, prints what it sent and
 * received, and exits 0 when the expected outcome happened, 1 when it did
 * not, 2 on usage errors. Every wait is bounded (--wait, default 5000 ms).
 *
 *   hello            HELLO; expect WELCOME
 *   hello-version N  HELLO with protocol version N; expect REFUSE naming N
 *   own-record       handshake, then a BATCH with one new record in the
 *                    child's own village; expect ACK of the batch
 *   foreign-record   the same with a record in another village (outside the
 *                    child: --village, by default another village of the
 *                    same township); expect ACK (the change is refused)
 *   future-hlc       a record in the child's village whose writes are one
 *                    hour ahead; expect ACK (the change is refused)
 *   bad-value        a record in the child's village whose gender is not one
 *                    of the schema's values; expect ACK (the change is
 *                    refused)
 *   malformed        bytes that are not msgpack; then HELLO still answered
 *   unknown-type     [99]; then HELLO still answered
 *   oversized        handshake, a frame over WIRE_MAX_FRAME + 1 KiB: the
 *                    parent drops the connection; a fresh socket's HELLO is
 *                    still answered
 *   no-connect       (with --keys DIR of an unlisted key) expect no WELCOME
 *                    within 3 s
 *   policy-up FILE   handshake, then POLICIES carrying the envelope in FILE
 *                    (a policy the child issued): a parent never takes
 *                    policies from a child; expect PONG to a PING after it
 *                    (the parent serves on; the refusal shows in status)
 *   report-up Q     handshake, then REPORT of quarter Q twice: bytes that
 *                    are not a report, and a well-formed report of the
 *                    parent's node instead of the child's; expect RPTACK to
 *                    each (both refused, counted in status)
 *   audit-up         handshake, then AUDIT twice: an entry of another
 *                    village's chain (outside the child), and an entry 1 of
 *                    the child's own chain that is not the one the parent
 *                    holds; expect AUDACK to each (both refused, counted)
 *
 * Record scenarios print "id ID" so the caller can look the record up. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <zmq.h>

#include "common/code.h"
#include "common/hlc.h"
#include "common/record.h"
#include "common/report.h"
#include "common/wire.h"
#include "config/config.h"

static node_config_t *cfg;
static void *ctx;
static int wait_ms = 5000;
static uint64_t deadline;  /* wall ms */

static int remaining(void)
{
    uint64_t now = hlc_wall_ms();
    return now >= deadline ? 0 : (int)(deadline - now);
}

static void setopt_int(void *s, int opt, int v)
{
    if (zmq_setsockopt(s, opt, &v, sizeof v))
        fprintf(stderr, "lxpeer: setsockopt %d: %s\n", opt, zmq_strerror(errno));
}

/* A DEALER with the options node/net.c gives its link to the parent. */
static void *open_dealer(void **monitor)
{
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    if (!s)
        return NULL;
    int64_t max = WIRE_MAX_FRAME + 1024;
    setopt_int(s, ZMQ_LINGER, 0);
    zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &max, sizeof max);
    setopt_int(s, ZMQ_SNDHWM, 100000);
    setopt_int(s, ZMQ_RCVHWM, 100000);
    setopt_int(s, ZMQ_HEARTBEAT_IVL, 1000);
    setopt_int(s, ZMQ_HEARTBEAT_TIMEOUT, 5000);
    setopt_int(s, ZMQ_HEARTBEAT_TTL, 10000);
    if (zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, cfg->parent.curve_pub, Z85_KEYLEN)
        || zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, cfg->curve_pub, Z85_KEYLEN)
        || zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, cfg->curve_sec, Z85_KEYLEN)) {
        fprintf(stderr, "lxpeer: CURVE options: %s\n", zmq_strerror(errno));
        zmq_close(s);
        return NULL;
    }
    setopt_int(s, ZMQ_IMMEDIATE, 1);
    setopt_int(s, ZMQ_RECONNECT_IVL, 100);
    setopt_int(s, ZMQ_RECONNECT_IVL_MAX, 5000);
    if (monitor) {
        static int seq;
        char ep[64];
        snprintf(ep, sizeof ep, "inproc://lxpeer-monitor-%d", seq++);
        *monitor = NULL;
        if (zmq_socket_monitor(s, ep, ZMQ_EVENT_ALL) == 0) {
            *monitor = zmq_socket(ctx, ZMQ_PAIR);
            if (*monitor && zmq_connect(*monitor, ep)) {
                zmq_close(*monitor);
                *monitor = NULL;
            }
        }
    }
    if (zmq_connect(s, cfg->parent.zmq)) {
        fprintf(stderr, "lxpeer: connect %s: %s\n", cfg->parent.zmq, zmq_strerror(errno));
        zmq_close(s);
        return NULL;
    }
    printf("connecting to %s as %012" PRIu64 "\n", cfg->parent.zmq, cfg->code);
    return s;
}

/* Sends one frame, waiting at most until the deadline for a connection
 * (ZMQ_IMMEDIATE queues only to completed handshakes). */
static bool send_frame(void *s, const void *buf, size_t len, const char *what)
{
    setopt_int(s, ZMQ_SNDTIMEO, remaining());
    if (zmq_send(s, buf, len, 0) < 0) {
        printf("could not send %s: %s\n", what, zmq_strerror(errno));
        return false;
    }
    printf("sent %s (%zu bytes)\n", what, len);
    return true;
}

static void print_msg(const wmsg_t *m)
{
    char c[CODE_STRLEN + 1];
    switch (m->type) {
    case WM_HELLO:
    case WM_WELCOME:
        printf("received %s version=%u code=%s applied=%" PRIu64 " last_seq=%" PRIu64 "\n",
               wire_type_name(m->type), m->version, code_fmt(m->code, c), m->applied,
               m->last_seq);
        break;
    case WM_REFUSE:
        printf("received refuse: %s\n", m->reason);
        break;
    case WM_ACK:
    case WM_NACK:
        printf("received %s %" PRIu64 "\n", wire_type_name(m->type), m->applied);
        break;
    case WM_BATCH:
        printf("received batch %" PRIu64 "..%" PRIu64 " with %u changes\n", m->first,
               m->last_seq, m->nchanges);
        break;
    default:
        printf("received %s\n", wire_type_name(m->type));
    }
}

/* Waits until the deadline for a message of type `want` (or, when
 * `also` is non-zero, of that type); prints everything received.
 * Returns the type received, or 0 on timeout. */
static int await(void *s, int want, int also, wmsg_t *out)
{
    for (;;) {
        int left = remaining();
        if (left <= 0)
            return 0;
        zmq_pollitem_t it = {.socket = s, .events = ZMQ_POLLIN};
        int rc = zmq_poll(&it, 1, left);
        if (rc < 0 && errno != EINTR)
            return 0;
        if (rc <= 0 || !(it.revents & ZMQ_POLLIN))
            continue;
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, s, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&msg);
            continue;
        }
        wmsg_t m;
        why_t why = {""};
        if (wire_decode(zmq_msg_data(&msg), zmq_msg_size(&msg), &m, &why)) {
            printf("received an undecodable frame of %zu bytes: %s\n", zmq_msg_size(&msg),
                   why.msg);
            zmq_msg_close(&msg);
            continue;
        }
        zmq_msg_close(&msg);
        print_msg(&m);
        if ((int)m.type == want || (also && (int)m.type == also)) {
            int t = (int)m.type;
            if (out)
                *out = m;
            else
                wmsg_free(&m);
            return t;
        }
        wmsg_free(&m);
    }
}

static void fresh_deadline(int ms) { deadline = hlc_wall_ms() + (uint64_t)ms; }

/* HELLO with the given version; returns the answer's type (WELCOME or
 * REFUSE), 0 on timeout. */
static int hello(void *s, uint32_t version, wmsg_t *out)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 5);
    msgpack_pack_int(&pk, WM_HELLO);
    msgpack_pack_uint32(&pk, version);
    msgpack_pack_uint64(&pk, cfg->code);
    msgpack_pack_uint64(&pk, 0);
    msgpack_pack_uint64(&pk, 0);
    char what[64];
    snprintf(what, sizeof what, "hello version %u", version);
    bool ok = send_frame(s, sb.data, sb.size, what);
    msgpack_sbuffer_destroy(&sb);
    if (!ok)
        return 0;
    return await(s, WM_WELCOME, WM_REFUSE, out);
}

/* A fresh socket, HELLO, WELCOME: the parent still answers. */
static bool hello_fresh(const char *when)
{
    fresh_deadline(wait_ms);
    void *s = open_dealer(NULL);
    if (!s)
        return false;
    int t = hello(s, WIRE_VERSION, NULL);
    zmq_close(s);
    if (t != WM_WELCOME)
        printf("no welcome %s\n", when);
    return t == WM_WELCOME;
}

static int set_field(field_t *f, const char *name, const char *value, hlc_t hlc)
{
    val_t v = {0};
    char author[64], c[CODE_STRLEN + 1];
    snprintf(author, sizeof author, "%s/test/lxpeer", code_fmt(cfg->code, c));
    ver_t ver = {.hlc = hlc, .origin = cfg->code, .base = 0, .author = author};
    int rc = val_set_str(&v, value);
    if (!rc)
        rc = field_init(f, name, &v, &ver);
    val_free(&v);
    return rc;
}

/* Handshake, then one BATCH with one new record in `village` whose writes
 * carry `hlc`; expects the batch acknowledged. */
static bool send_record(code_t village, hlc_t hlc, const char *name, const char *gender)
{
    void *s = open_dealer(NULL);
    if (!s)
        return false;
    wmsg_t w;
    int t = hello(s, WIRE_VERSION, &w);
    if (t != WM_WELCOME) {
        if (t)
            wmsg_free(&w);
        printf("no welcome\n");
        zmq_close(s);
        return false;
    }
    uint64_t first = w.applied + 1;
    wmsg_free(&w);

    char id[32], vc[CODE_STRLEN + 1];
    record_id_make(cfg->code, hlc_make(hlc_wall_ms(), 0), id);
    code_fmt(village, vc);
    /* Writes sorted by field name, as the codec requires. */
    field_t f[4] = {{0}};
    int rc = set_field(&f[0], "birth_date", "2015-03-01", hlc);
    if (!rc)
        rc = set_field(&f[1], "gender", gender, hlc);
    if (!rc)
        rc = set_field(&f[2], "name", name, hlc);
    if (!rc)
        rc = set_field(&f[3], "village_code", vc, hlc);
    change_t c = {.id = id, .village = village, .prev_village = 0, .from = 0, .n = 4, .w = f};
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    wire_batch_t b;
    wire_batch_begin(&b, &sb, WM_BATCH, first);
    if (!rc)
        rc = wire_batch_add(&b, &c);
    wire_batch_end(&b, first);
    for (int i = 0; i < 4; i++)
        field_free(&f[i]);
    if (rc) {
        printf("could not build the change: %s\n", err_str(rc));
        msgpack_sbuffer_destroy(&sb);
        zmq_close(s);
        return false;
    }
    char hb[48];
    printf("id %s\n", id);
    printf("record village %s, clock %s\n", vc, hlc_fmt(hlc, hb, sizeof hb));
    char what[64];
    snprintf(what, sizeof what, "batch %" PRIu64 "..%" PRIu64 " with 1 change", first, first);
    bool ok = send_frame(s, sb.data, sb.size, what);
    msgpack_sbuffer_destroy(&sb);
    wmsg_t a = {0};
    t = ok ? await(s, WM_ACK, WM_NACK, &a) : 0;
    zmq_close(s);
    if (t == WM_ACK && a.applied == first) {
        wmsg_free(&a);
        return true;
    }
    if (t)
        wmsg_free(&a);
    printf(t ? "expected ack %" PRIu64 "\n" : "no ack for batch %" PRIu64 "\n", first);
    return false;
}

/* Sends raw bytes after connecting, then expects a HELLO to be answered on
 * the same connection. */
static bool garbage_then_hello(const void *buf, size_t len, const char *what)
{
    void *s = open_dealer(NULL);
    if (!s)
        return false;
    bool ok = send_frame(s, buf, len, what);
    int t = ok ? hello(s, WIRE_VERSION, NULL) : 0;
    zmq_close(s);
    if (t != WM_WELCOME)
        printf("no welcome after %s\n", what);
    return ok && t == WM_WELCOME;
}

/* Reads monitor events until one of `want` or the deadline; prints them. */
static int monitor_wait(void *mon, int want)
{
    if (!mon)
        return 0;
    for (;;) {
        int left = remaining();
        if (left <= 0)
            return 0;
        zmq_pollitem_t it = {.socket = mon, .events = ZMQ_POLLIN};
        if (zmq_poll(&it, 1, left) <= 0)
            continue;
        zmq_msg_t ev, addr;
        zmq_msg_init(&ev);
        zmq_msg_init(&addr);
        if (zmq_msg_recv(&ev, mon, 0) < 0) {
            zmq_msg_close(&ev);
            zmq_msg_close(&addr);
            continue;
        }
        if (zmq_msg_more(&ev))
            zmq_msg_recv(&addr, mon, 0);
        int event = 0;
        uint32_t value = 0;
        if (zmq_msg_size(&ev) >= 6) {
            const unsigned char *d = zmq_msg_data(&ev);
            uint16_t e16;
            memcpy(&e16, d, 2);
            memcpy(&value, d + 2, 4);
            event = e16;
        }
        zmq_msg_close(&ev);
        zmq_msg_close(&addr);
        const char *name = event == ZMQ_EVENT_CONNECTED ? "connected"
                         : event == ZMQ_EVENT_DISCONNECTED ? "disconnected"
                         : event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED ? "handshake succeeded"
                         : event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ? "handshake failed (auth)"
                         : event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ? "handshake failed (protocol)"
                         : event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL ? "handshake failed"
                         : event == ZMQ_EVENT_CONNECT_DELAYED ? "connect delayed"
                         : event == ZMQ_EVENT_CONNECT_RETRIED ? "connect retried"
                         : event == ZMQ_EVENT_CLOSED ? "closed" : NULL;
        if (name)
            printf("socket event: %s (%u)\n", name, value);
        else
            printf("socket event 0x%x (%u)\n", event, value);
        if (event & want)
            return event;
    }
}

static bool oversized(void)
{
    void *mon = NULL;
    void *s = open_dealer(&mon);
    if (!s)
        return false;
    /* Establish the connection first, so the frame is certainly sent. */
    int t = hello(s, WIRE_VERSION, NULL);
    bool ok = t == WM_WELCOME;
    if (!ok)
        printf("no welcome before the oversized frame\n");
    monitor_wait(mon, ZMQ_EVENT_HANDSHAKE_SUCCEEDED); /* drain up to it */
    size_t len = WIRE_MAX_FRAME + 64 * 1024;
    char *big = ok ? malloc(len) : NULL;
    if (ok && !big)
        ok = false;
    if (ok) {
        /* A plausible prefix: array of 2, type hello, then a huge string. */
        memset(big, 'x', len);
        big[0] = (char)0x92;
        big[1] = WM_HELLO;
        big[2] = (char)0xdb;
        uint32_t sl = (uint32_t)(len - 7);
        big[3] = (char)(sl >> 24);
        big[4] = (char)(sl >> 16);
        big[5] = (char)(sl >> 8);
        big[6] = (char)sl;
        ok = send_frame(s, big, len, "an oversized frame");
        free(big);
    }
    /* The parent's MAXMSGSIZE makes libzmq drop the connection. */
    if (ok) {
        fresh_deadline(wait_ms);
        if (monitor_wait(mon, ZMQ_EVENT_DISCONNECTED) != ZMQ_EVENT_DISCONNECTED) {
            printf("the parent did not drop the connection\n");
            ok = false;
        } else {
            printf("the parent dropped the connection\n");
        }
    }
    zmq_socket_monitor(s, NULL, 0);
    if (mon)
        zmq_close(mon);
    zmq_close(s);
    return hello_fresh("on a fresh socket after the oversized frame") && ok;
}

static bool no_connect(void)
{
    void *mon = NULL;
    fresh_deadline(wait_ms < 3000 ? wait_ms : 3000);
    void *s = open_dealer(&mon);
    if (!s)
        return false;
    wmsg_t w;
    int t = hello(s, WIRE_VERSION, &w);
    if (t)
        wmsg_free(&w);
    /* Show why, when the monitor says (best effort, not the verdict). */
    fresh_deadline(200);
    monitor_wait(mon, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
    zmq_socket_monitor(s, NULL, 0);
    if (mon)
        zmq_close(mon);
    zmq_close(s);
    if (t == WM_WELCOME) {
        printf("the parent welcomed an unlisted key\n");
        return false;
    }
    printf("no welcome within the wait\n");
    return true;
}

static bool policy_up(const char *file)
{
    FILE *f = fopen(file, "rb");
    if (!f) {
        printf("cannot open %s\n", file);
        return false;
    }
    static unsigned char env[1 << 20];
    size_t len = fread(env, 1, sizeof env, f);
    fclose(f);
    fresh_deadline(wait_ms);
    void *s = open_dealer(NULL);
    if (!s)
        return false;
    bool ok = hello(s, WIRE_VERSION, NULL) == WM_WELCOME;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    wire_batch_t b;
    wire_policies_begin(&b, &sb);
    wire_policies_add(&b, env, len);
    wire_list_end(&b);
    ok = ok && send_frame(s, sb.data, sb.size, "a policy, up");
    msgpack_sbuffer_clear(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_int(&pk, WM_PING);
    ok = ok && send_frame(s, sb.data, sb.size, "ping");
    msgpack_sbuffer_destroy(&sb);
    ok = ok && await(s, WM_PONG, 0, NULL) == WM_PONG;
    zmq_close(s);
    return ok;
}

/* A report of node (all zeros, one row: the total) in report_pack's form. */
static void fake_report(msgpack_sbuffer *sb, const char *quarter, code_t node)
{
    quarter_t q;
    quarter_parse(quarter, &q, NULL);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 5);
    msgpack_pack_str(&pk, 6);
    msgpack_pack_str_body(&pk, quarter, 6);
    msgpack_pack_uint64(&pk, node);
    msgpack_pack_uint64(&pk, q.cut);
    msgpack_pack_array(&pk, (uint32_t)report_ncols());
    for (size_t c = 0; c < report_ncols(); c++) {
        const char *k = report_col(c)->key;
        msgpack_pack_str(&pk, strlen(k));
        msgpack_pack_str_body(&pk, k, strlen(k));
    }
    msgpack_pack_array(&pk, 1);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint64(&pk, node);
    msgpack_pack_str(&pk, 5);
    msgpack_pack_str_body(&pk, "total", 5);
    unsigned char dig[32] = {0};
    msgpack_pack_bin(&pk, 32);
    msgpack_pack_bin_body(&pk, dig, 32);
    msgpack_pack_array(&pk, (uint32_t)report_ncols());
    for (size_t c = 0; c < report_ncols(); c++)
        msgpack_pack_uint64(&pk, 0);
}

static bool report_up(const char *quarter)
{
    quarter_t q;
    if (quarter_parse(quarter, &q, NULL)) {
        printf("not a quarter: %s\n", quarter);
        return false;
    }
    fresh_deadline(wait_ms);
    void *s = open_dealer(NULL);
    if (!s)
        return false;
    bool ok = hello(s, WIRE_VERSION, NULL) == WM_WELCOME;
    msgpack_sbuffer sb, rep;
    msgpack_sbuffer_init(&sb);
    msgpack_sbuffer_init(&rep);
    wire_report(&sb, quarter, 1, "\x93\x01\x02\x03", 4);
    ok = ok && send_frame(s, sb.data, sb.size, "a report that does not decode");
    ok = ok && await(s, WM_RPTACK, 0, NULL) == WM_RPTACK;
    fake_report(&rep, quarter, cfg->parent.code);
    wire_report(&sb, quarter, 2, rep.data, rep.size);
    ok = ok && send_frame(s, sb.data, sb.size, "the parent's report, from the child");
    ok = ok && await(s, WM_RPTACK, 0, NULL) == WM_RPTACK;
    msgpack_sbuffer_destroy(&sb);
    msgpack_sbuffer_destroy(&rep);
    zmq_close(s);
    return ok;
}

/* AUDIT with entry 1 of node's chain: [1, node, now, "lxpeer", ...]
 * chained from the zero hash (the stored form: bytes || hash). */
static bool audit_one(void *s, code_t node, const char *what)
{
    msgpack_sbuffer e, sb;
    msgpack_sbuffer_init(&e);
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &e, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 9);
    msgpack_pack_uint64(&pk, 1);
    msgpack_pack_uint64(&pk, node);
    msgpack_pack_uint64(&pk, hlc_wall_ms());
    const char *str[] = {"lxpeer", "test", "read"};
    for (int i = 0; i < 3; i++) {
        msgpack_pack_str(&pk, strlen(str[i]));
        msgpack_pack_str_body(&pk, str[i], strlen(str[i]));
    }
    msgpack_pack_array(&pk, 0);
    msgpack_pack_nil(&pk);
    msgpack_pack_str(&pk, 2);
    msgpack_pack_str_body(&pk, "ok", 2);
    unsigned char zero[32] = {0}, h[32];
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 32);
    crypto_generichash_update(&st, zero, 32);
    crypto_generichash_update(&st, (const unsigned char *)e.data, e.size);
    crypto_generichash_final(&st, h, 32);
    msgpack_sbuffer_write(&e, (const char *)h, 32);
    wire_batch_t b;
    wire_audit_begin(&b, &sb);
    size_t at = wire_audit_chain(&b, node);
    wire_audit_entry(&b, e.data, e.size);
    wire_audit_chain_end(&b, at, 1);
    wire_list_end(&b);
    bool ok = send_frame(s, sb.data, sb.size, what);
    wmsg_t m;
    ok = ok && await(s, WM_AUDACK, 0, &m) == WM_AUDACK;
    if (ok) {
        ok = m.naudacks == 1 && m.audacks[0].node == node;
        printf("audack: %u chains, the first held to %" PRIu64 "\n", m.naudacks,
               m.naudacks ? m.audacks[0].seq : 0);
        wmsg_free(&m);
    }
    msgpack_sbuffer_destroy(&e);
    msgpack_sbuffer_destroy(&sb);
    return ok;
}

static bool audit_up(code_t other)
{
    fresh_deadline(wait_ms);
    void *s = open_dealer(NULL);
    if (!s)
        return false;
    bool ok = hello(s, WIRE_VERSION, NULL) == WM_WELCOME;
    ok = ok && audit_one(s, other, "an audit entry of a chain outside the child");
    ok = ok && audit_one(s, cfg->code, "an entry 1 of our chain unlike the one held");
    zmq_close(s);
    return ok;
}

static int usage(const char *msg)
{
    fprintf(stderr, "lxpeer: %s\nusage: lxpeer --config NODE_INI [--keys DIR] [--name NAME] "
            "[--village CODE] [--wait MS] hello | hello-version N | own-record | foreign-record | future-hlc | bad-value "
            "| malformed | unknown-type | oversized | no-connect | policy-up FILE | report-up Q | audit-up\n", msg);
    return 2;
}

int main(int argc, char **argv)
{
    static struct option opts[] = {{"config", required_argument, 0, 'c'},
                                   {"keys", required_argument, 0, 'k'},
                                   {"name", required_argument, 0, 'n'},
                                   {"wait", required_argument, 0, 'w'},
                                   {"village", required_argument, 0, 'v'},
                                   {0, 0, 0, 0}};
    const char *config = NULL, *keys = NULL, *name = NULL;
    code_t village = 0;
    int ch;
    setvbuf(stdout, NULL, _IOLBF, 0);
    while ((ch = getopt_long(argc, argv, "c:k:n:w:v:", opts, NULL)) != -1) {
        if (ch == 'c')
            config = optarg;
        else if (ch == 'k')
            keys = optarg;
        else if (ch == 'n')
            name = optarg;
        else if (ch == 'w')
            wait_ms = atoi(optarg);
        else if (ch == 'v') {
            if (code_parse(optarg, &village) || code_level(village) != LEVEL_VILLAGE)
                return usage("--village: not a 12-digit village code");
        }
        else
            return usage("bad option");
    }
    if (!config || optind >= argc)
        return usage("--config and a scenario are required");
    if (wait_ms <= 0 || wait_ms > 60000)
        return usage("--wait must be 1..60000 ms");
    const char *sc = argv[optind];
    why_t why = {""};
    if (config_load(config, &cfg, &why)) {
        fprintf(stderr, "lxpeer: %s\n", why.msg);
        return 2;
    }
    if (!cfg->has_parent) {
        fprintf(stderr, "lxpeer: %s has no [parent]\n", config);
        return 2;
    }
    if (keys) {
        char p[4200];
        snprintf(p, sizeof p, "%s/curve.key", keys);
        int rc = keys_read_z85(p, true, cfg->curve_sec, &why);
        snprintf(p, sizeof p, "%s/curve.pub", keys);
        if (!rc)
            rc = keys_read_z85(p, false, cfg->curve_pub, &why);
        if (rc) {
            fprintf(stderr, "lxpeer: %s\n", why.msg);
            config_free(&cfg);
            return 2;
        }
    }
    ctx = zmq_ctx_new();
    if (!ctx) {
        config_free(&cfg);
        return 1;
    }
    fresh_deadline(wait_ms);
    bool ok = false;
    code_t own = cfg->code;
    if (code_level(own) != LEVEL_VILLAGE)
        fprintf(stderr, "lxpeer: note: %012" PRIu64 " is not a village\n", own);
    hlc_t now = hlc_make(hlc_wall_ms(), 0);
    if (strcmp(sc, "hello") == 0) {
        ok = hello_fresh("from the parent");
    } else if (strcmp(sc, "hello-version") == 0) {
        if (optind + 1 >= argc)
            return usage("hello-version needs N");
        char *end;
        unsigned long v = strtoul(argv[optind + 1], &end, 10);
        if (*end || v > UINT32_MAX)
            return usage("hello-version: N must be a number");
        void *s = open_dealer(NULL);
        wmsg_t m;
        int t = s ? hello(s, (uint32_t)v, &m) : 0;
        if (s)
            zmq_close(s);
        char want[32];
        snprintf(want, sizeof want, "version %lu", v);
        ok = t == WM_REFUSE && strstr(m.reason, want);
        if (t)
            wmsg_free(&m);
        if (!ok)
            printf("expected a refuse naming %s\n", want);
    } else if (strcmp(sc, "own-record") == 0) {
        ok = send_record(own, now, name ? name : "本村王小花", "female");
    } else if (strcmp(sc, "foreign-record") == 0) {
        /* A sibling village under the same parent: the parent holds it,
         * but this child may not write it. */
        code_t other = village;
        if (!other)
            other = code_parent(own) + 1 == own ? code_parent(own) + 2 : code_parent(own) + 1;
        if (code_contains(own, other))
            return usage("--village must lie outside the child");
        ok = send_record(other, now, name ? name : "测试姓名", "female");
    } else if (strcmp(sc, "future-hlc") == 0) {
        hlc_t ahead = hlc_make(hlc_wall_ms() + 3600ull * 1000, 0);
        ok = send_record(own, ahead, name ? name : "未来李小草", "female");
    } else if (strcmp(sc, "bad-value") == 0) {
        ok = send_record(own, now, name ? name : "错值赵小树", "alien");
    } else if (strcmp(sc, "malformed") == 0) {
        ok = garbage_then_hello("\xc1\xc1", 2, "2 bytes that are not msgpack");
    } else if (strcmp(sc, "unknown-type") == 0) {
        const char frame[] = {(char)0x91, 99};  /* [99] */
        ok = garbage_then_hello(frame, sizeof frame, "a message of type 99");
    } else if (strcmp(sc, "oversized") == 0) {
        ok = oversized();
    } else if (strcmp(sc, "no-connect") == 0) {
        ok = no_connect();
    } else if (strcmp(sc, "policy-up") == 0) {
        if (optind + 1 >= argc)
            return usage("policy-up: FILE is missing");
        ok = policy_up(argv[optind + 1]);
    } else if (strcmp(sc, "report-up") == 0) {
        if (optind + 1 >= argc)
            return usage("report-up: Q is missing");
        ok = report_up(argv[optind + 1]);
    } else if (strcmp(sc, "audit-up") == 0) {
        code_t other = village;
        if (!other)
            other = code_parent(own) + 1 == own ? code_parent(own) + 2 : code_parent(own) + 1;
        ok = audit_up(other);
    } else {
        zmq_ctx_term(ctx);
        config_free(&cfg);
        return usage("unknown scenario");
    }
    printf("%s: %s\n", sc, ok ? "ok" : "FAILED");
    zmq_ctx_term(ctx);
    config_free(&cfg);
    return ok ? 0 : 1;
}
