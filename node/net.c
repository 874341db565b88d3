#include "net.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "common/log.h"
#include "common/wire.h"

#ifndef ZMQ_ZAP_ENFORCE_DOMAIN
#define ZMQ_ZAP_ENFORCE_DOMAIN 93  /* draft in 4.3 headers, built in Debian */
#endif

#define ZAP_DOMAIN "lianxin"
#define MONITOR "inproc://lianxin.parent.monitor"
#define MAX_ROUTE 256
/* Frames prep works on ahead of the loop thread: enough to keep both
 * cores busy, few enough that decoded batches (several times a frame's
 * size) do not pile up in memory. Beyond it frames wait in the net
 * thread, as they came, and are prepared there as the loop thread takes
 * the ones before: a link that brings more than the loop thread can
 * store (a catch-up) never has it decode them itself. */
#define PREP_AHEAD 4

typedef struct {
    netmsg_t *head, *tail;
} queue_t;

typedef struct {
    code_t code;
    unsigned char key[32];       /* the child's CURVE public key */
    unsigned char route[MAX_ROUTE];
    size_t route_len;            /* 0 until an authenticated frame arrives */
} child_t;

struct net {
    const node_config_t *cfg;
    void *ctx, *router, *dealer, *zap;
    void *mon;                   /* the DEALER's connection events */
    int efd;
    pthread_t th;
    pthread_mutex_t mu;
    queue_t in, out;
    queue_t held;                /* net thread only: frames waiting for prep */
    atomic_bool stop;
    atomic_uint_fast64_t denied;
    atomic_int prepped;          /* queued messages that carry a pre */
    net_wake_fn wake;
    net_prep_fn prep;
    net_unprep_fn unprep;
    void *arg;
    child_t *children;
    size_t nchildren;
    /* The parent connection (net thread only): whether a handshake made
     * it and it has not dropped since; since when it has been down; and
     * whether the DEALER looks for it slowly (see parent_backoff). */
    bool parent_up, slow;
    uint64_t down_since;
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void q_push(queue_t *q, netmsg_t *m)
{
    m->next = NULL;
    if (q->tail)
        q->tail->next = m;
    else
        q->head = m;
    q->tail = m;
}

static netmsg_t *q_pop(queue_t *q)
{
    netmsg_t *m = q->head;
    if (m) {
        q->head = m->next;
        if (!q->head)
            q->tail = NULL;
    }
    return m;
}

static netmsg_t *msg_new(net_kind_t kind, code_t peer, const void *data, size_t len)
{
    netmsg_t *m = malloc(sizeof *m + len);
    if (!m)
        return NULL;
    memset(m, 0, sizeof *m);
    m->kind = kind;
    m->peer = peer;
    m->data = (unsigned char *)(m + 1);
    m->len = len;
    if (len)
        memcpy(m + 1, data, len);
    return m;
}

/* A received frame, kept in the message ZeroMQ gave it in (moved from
 * body, which is left empty): a frame of a megabyte is not copied. */
static netmsg_t *msg_take(code_t peer, zmq_msg_t *body)
{
    netmsg_t *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->kind = NET_FRAME;
    m->peer = peer;
    zmq_msg_init(&m->zm);
    zmq_msg_move(&m->zm, body);
    m->has_zm = true;
    m->data = zmq_msg_data(&m->zm);
    m->len = zmq_msg_size(&m->zm);
    return m;
}

/* Prepares m (a frame) and hands it to the loop thread. */
static void hand_over(net_t *n, netmsg_t *m)
{
    if (m->kind == NET_FRAME && n->prep) {
        m->pre = n->prep(m->data, m->len);
        m->pre_free = n->unprep;
        if (m->pre)
            atomic_fetch_add(&n->prepped, 1);
    }
    pthread_mutex_lock(&n->mu);
    q_push(&n->in, m);
    pthread_mutex_unlock(&n->mu);
    n->wake(n->arg);
}

/* Hands over held messages, in order, while the loop thread has fewer
 * than PREP_AHEAD prepared ones waiting. */
static void release_held(net_t *n)
{
    while (n->held.head && (!n->prep || atomic_load(&n->prepped) < PREP_AHEAD))
        hand_over(n, q_pop(&n->held));
}

static void deliver(net_t *n, netmsg_t *m)
{
    if (!m)
        return;
    q_push(&n->held, m);
    release_held(n);
}

/* ---- ZAP: admit only the children's keys, and name them by code ---- */

static void zap_reply(void *zap, const zmq_msg_t *reqid, const char *status,
                      const char *text, const char *user)
{
    zmq_send(zap, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(zap, zmq_msg_data((zmq_msg_t *)reqid), zmq_msg_size((zmq_msg_t *)reqid), ZMQ_SNDMORE);
    zmq_send(zap, status, strlen(status), ZMQ_SNDMORE);
    zmq_send(zap, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(zap, user, strlen(user), ZMQ_SNDMORE);
    zmq_send(zap, "", 0, 0);
}

static void zap_handle(net_t *n)
{
    zmq_msg_t part[8];
    int np = 0, more = 1;
    while (more && np < 8) {
        zmq_msg_init(&part[np]);
        if (zmq_msg_recv(&part[np], n->zap, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&part[np]);
            break;
        }
        more = zmq_msg_more(&part[np]);
        np++;
    }
    /* Drain anything beyond what a ZAP request may hold. */
    while (more) {
        zmq_msg_t x;
        zmq_msg_init(&x);
        if (zmq_msg_recv(&x, n->zap, ZMQ_DONTWAIT) < 0)
            more = 0;
        else
            more = zmq_msg_more(&x);
        zmq_msg_close(&x);
    }
    /* version, request id, domain, address, identity, mechanism, key */
    if (np >= 2) {
        const char *status = "400", *text = "key not allowed";
        char user[CODE_STRLEN + 1] = "";
        bool curve = np == 7 && zmq_msg_size(&part[5]) == 5
                     && memcmp(zmq_msg_data(&part[5]), "CURVE", 5) == 0
                     && zmq_msg_size(&part[6]) == 32;
        bool domain = zmq_msg_size(&part[2]) == strlen(ZAP_DOMAIN)
                      && memcmp(zmq_msg_data(&part[2]), ZAP_DOMAIN, strlen(ZAP_DOMAIN)) == 0;
        for (size_t i = 0; curve && domain && i < n->nchildren; i++) {
            if (memcmp(zmq_msg_data(&part[6]), n->children[i].key, 32) == 0) {
                status = "200";
                text = "OK";
                code_fmt(n->children[i].code, user);
                break;
            }
        }
        if (status[0] != '2') {
            atomic_fetch_add(&n->denied, 1);
            char addr[64] = "";
            size_t al = zmq_msg_size(&part[3]) < sizeof addr - 1 ? zmq_msg_size(&part[3]) : sizeof addr - 1;
            if (np > 3)
                memcpy(addr, zmq_msg_data(&part[3]), al);
            log_warn("link: refused a connection from %s: its key is not on the allowlist", addr);
            deliver(n, msg_new(NET_DENIED, 0, NULL, 0));
        }
        zap_reply(n->zap, &part[1], status, text, user);
    }
    for (int i = 0; i < np; i++)
        zmq_msg_close(&part[i]);
}

/* ---- sockets ---- */

static int setopt_int(void *s, int opt, int v)
{
    return zmq_setsockopt(s, opt, &v, sizeof v);
}

/* Options every link socket shares. */
static int common_opts(void *s)
{
    int64_t max = WIRE_MAX_FRAME + 1024;
    return setopt_int(s, ZMQ_LINGER, 0)
        || zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &max, sizeof max)
        || setopt_int(s, ZMQ_SNDHWM, 100000) || setopt_int(s, ZMQ_RCVHWM, 100000)
        || setopt_int(s, ZMQ_HEARTBEAT_IVL, 1000)
        || setopt_int(s, ZMQ_HEARTBEAT_TIMEOUT, 5000)
        || setopt_int(s, ZMQ_HEARTBEAT_TTL, 10000);
}

static child_t *child_by_code(net_t *n, code_t c)
{
    for (size_t i = 0; i < n->nchildren; i++)
        if (n->children[i].code == c)
            return &n->children[i];
    return NULL;
}

/* Receives one frame into body (initialised here); our protocol has one
 * frame per message, so further parts are dropped and *extra says so. */
static int recv_body(void *sock, zmq_msg_t *body, bool *extra)
{
    zmq_msg_init(body);
    if (zmq_msg_recv(body, sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(body);
        return -1;
    }
    *extra = zmq_msg_more(body);
    while (zmq_msg_more(body)) {
        zmq_msg_close(body);
        zmq_msg_init(body);
        if (zmq_msg_recv(body, sock, ZMQ_DONTWAIT) < 0)
            break;
    }
    return 0;
}

/* A frame from a child: the ROUTER gives [routing id][payload]; the
 * sender is whoever ZAP authenticated (User-Id), never what it claims. */
static void router_recv(net_t *n)
{
    for (;;) {
        zmq_msg_t id, body;
        zmq_msg_init(&id);
        if (zmq_msg_recv(&id, n->router, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&id);
            return;
        }
        if (!zmq_msg_more(&id)) {
            zmq_msg_close(&id);
            continue;
        }
        bool extra;
        if (recv_body(n->router, &body, &extra) < 0) {
            zmq_msg_close(&id);
            return;
        }
        const char *user = zmq_msg_gets(&body, "User-Id");
        code_t code = 0;
        child_t *c = NULL;
        if (user && code_parse(user, &code) == LX_OK)
            c = child_by_code(n, code);
        if (c && !extra && zmq_msg_size(&id) <= MAX_ROUTE) {
            memcpy(c->route, zmq_msg_data(&id), zmq_msg_size(&id));
            c->route_len = zmq_msg_size(&id);
            deliver(n, msg_take(code, &body));
        } else if (c) {
            /* A multi-part message: report it as a malformed frame. */
            deliver(n, msg_new(NET_FRAME, code, "\xc1", 1));
        }
        zmq_msg_close(&id);
        zmq_msg_close(&body);
    }
}

static void dealer_recv(net_t *n)
{
    for (;;) {
        zmq_msg_t body;
        bool extra;
        if (recv_body(n->dealer, &body, &extra) < 0)
            return;
        deliver(n, extra ? msg_new(NET_FRAME, n->cfg->parent.code, "\xc1", 1)
                         : msg_take(n->cfg->parent.code, &body));
        zmq_msg_close(&body);
    }
}

/* ZeroMQ is done with a frame we gave it without copying. */
static void sent_free(void *data, void *hint)
{
    (void)data;
    netmsg_free(hint);
}

static void send_out(net_t *n)
{
    uint64_t v;
    if (read(n->efd, &v, sizeof v) < 0 && errno != EAGAIN)
        log_warn("net: eventfd read: %s", strerror(errno));
    for (;;) {
        pthread_mutex_lock(&n->mu);
        netmsg_t *m = q_pop(&n->out);
        pthread_mutex_unlock(&n->mu);
        if (!m)
            return;
        code_t peer = m->peer;
        /* The frame goes as it is; ZeroMQ frees it once sent. */
        zmq_msg_t zm;
        int rc = -1;
        if (zmq_msg_init_data(&zm, (void *)m->data, m->len, sent_free, m) == 0) {
            m = NULL;
            void *sock = NULL;
            if (n->dealer && n->cfg->has_parent && peer == n->cfg->parent.code) {
                sock = n->dealer;
            } else {
                child_t *c = child_by_code(n, peer);
                if (c && c->route_len && n->router
                    && zmq_send(n->router, c->route, c->route_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0)
                    sock = n->router;
            }
            if (sock)
                rc = zmq_msg_send(&zm, sock, ZMQ_DONTWAIT);
            if (rc < 0)
                zmq_msg_close(&zm);
        }
        netmsg_free(m);
        if (rc < 0)
            /* Not sent (no route, not connected, queue full): the loop
             * marks the link down and resends after the next hello. */
            deliver(n, msg_new(NET_UNREACHABLE, peer, NULL, 0));
    }
}

/* Connects the DEALER to the parent (again: the connection so far is
 * dropped, as ZeroMQ takes reconnect intervals at connect time), looking
 * for it every 50-100 ms, or slow: every reconnect_slow_ms. */
static int parent_connect(net_t *n, bool slow)
{
    const char *ep = n->cfg->parent.zmq;
    int ivl = slow ? (int)n->cfg->reconnect_slow_ms : 50;
    zmq_disconnect(n->dealer, ep); /* none at the first call: harmless */
    n->slow = slow;
    /* A parent back from a restart is found within 100 ms: a child's log
     * waits no longer than that to catch up. */
    if (setopt_int(n->dealer, ZMQ_RECONNECT_IVL, ivl)
        || setopt_int(n->dealer, ZMQ_RECONNECT_IVL_MAX, slow ? ivl : 100))
        return -1;
    return zmq_connect(n->dealer, ep);
}

/* The DEALER's connection to the parent was made (its CURVE handshake
 * done) or dropped: the loop thread says hello at once, or takes the link
 * down at once, instead of learning it from a timeout; whatever was in
 * flight on a dropped connection is lost, and the handshake resends it. */
static void monitor_recv(net_t *n)
{
    for (;;) {
        zmq_msg_t ev, ep;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, n->mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            return;
        }
        uint16_t what = 0;
        if (zmq_msg_size(&ev) >= 2)
            memcpy(&what, zmq_msg_data(&ev), 2);
        bool more = zmq_msg_more(&ev);
        zmq_msg_close(&ev);
        if (more) {
            zmq_msg_init(&ep);
            zmq_msg_recv(&ep, n->mon, ZMQ_DONTWAIT);
            zmq_msg_close(&ep);
        }
        if (what == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
            n->parent_up = true;
            deliver(n, msg_new(NET_CONNECTED, n->cfg->parent.code, NULL, 0));
        } else if (what == ZMQ_EVENT_DISCONNECTED) {
            if (n->parent_up) {
                /* A new outage: looked for quickly again. */
                n->parent_up = false;
                n->down_since = mono_ms();
                if (n->slow && parent_connect(n, false))
                    log_error("link: cannot connect to the parent again: %s",
                              zmq_strerror(errno));
            }
            deliver(n, msg_new(NET_DISCONNECTED, n->cfg->parent.code, NULL, 0));
        }
    }
}

/* A parent that stays away: after reconnect_fast_ms of looking for it
 * every 100 ms, it is looked for every reconnect_slow_ms, so that a
 * village on metered mobile data does not send ten connection attempts a
 * second to a county server whose node is down for the day. */
static void parent_backoff(net_t *n)
{
    if (!n->dealer || n->parent_up || n->slow
        || mono_ms() - n->down_since < n->cfg->reconnect_fast_ms)
        return;
    char pc[CODE_STRLEN + 1];
    /* ZeroMQ waits the interval and up to as long again, at random. */
    log_warn("link: parent %s not reached for %llu s: looking for it every %llu to %llu s",
             code_fmt(n->cfg->parent.code, pc),
             (unsigned long long)(n->cfg->reconnect_fast_ms / 1000),
             (unsigned long long)(n->cfg->reconnect_slow_ms / 1000),
             (unsigned long long)(2 * n->cfg->reconnect_slow_ms / 1000));
    if (parent_connect(n, true)) {
        /* Looked for quickly again for a while rather than not at all. */
        log_error("link: cannot connect to the parent again: %s", zmq_strerror(errno));
        n->down_since = mono_ms();
        if (parent_connect(n, false))
            log_error("link: cannot connect to the parent: %s", zmq_strerror(errno));
    }
}

static void *net_main(void *arg)
{
    net_t *n = arg;
    while (!atomic_load(&n->stop)) {
        zmq_pollitem_t items[5];
        int ni = 0, izap = -1, irouter = -1, idealer = -1, imon = -1;
        items[ni++] = (zmq_pollitem_t){.fd = n->efd, .events = ZMQ_POLLIN};
        if (n->zap) {
            izap = ni;
            items[ni++] = (zmq_pollitem_t){.socket = n->zap, .events = ZMQ_POLLIN};
        }
        if (n->router) {
            irouter = ni;
            items[ni++] = (zmq_pollitem_t){.socket = n->router, .events = ZMQ_POLLIN};
        }
        if (n->dealer) {
            idealer = ni;
            items[ni++] = (zmq_pollitem_t){.socket = n->dealer, .events = ZMQ_POLLIN};
        }
        if (n->mon) {
            imon = ni;
            items[ni++] = (zmq_pollitem_t){.socket = n->mon, .events = ZMQ_POLLIN};
        }
        /* zmq_poll handles ZMQ_FD's edge triggering for us: it checks
         * ZMQ_EVENTS after every wake-up. */
        int rc = zmq_poll(items, ni, 200);
        if (rc < 0) {
            if (errno == ETERM)
                break;
            continue;
        }
        if (items[0].revents & ZMQ_POLLIN)
            send_out(n);
        release_held(n);
        if (izap >= 0 && (items[izap].revents & ZMQ_POLLIN))
            zap_handle(n);
        if (irouter >= 0 && (items[irouter].revents & ZMQ_POLLIN))
            router_recv(n);
        /* Connection events first: a hello answered on a new connection
         * must not be followed by the old connection's drop. */
        if (imon >= 0 && (items[imon].revents & ZMQ_POLLIN))
            monitor_recv(n);
        if (idealer >= 0 && (items[idealer].revents & ZMQ_POLLIN))
            dealer_recv(n);
        parent_backoff(n);
    }
    return NULL;
}

int net_start(const node_config_t *cfg, net_wake_fn wake, void *arg, net_prep_fn prep,
              net_unprep_fn unprep, net_t **out, why_t *why)
{
    net_t *n = calloc(1, sizeof *n);
    if (!n)
        return LX_ENOMEM;
    n->cfg = cfg;
    n->wake = wake;
    n->prep = prep;
    n->unprep = unprep;
    n->arg = arg;
    n->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    pthread_mutex_init(&n->mu, NULL);
    n->ctx = zmq_ctx_new();
    int rc = LX_OK;
    if (n->efd < 0 || !n->ctx)
        rc = why_set(why, LX_EIO, "net: cannot create the ZeroMQ context");
    n->children = calloc(cfg->nchildren ? cfg->nchildren : 1, sizeof *n->children);
    if (!rc && !n->children)
        rc = LX_ENOMEM;
    for (size_t i = 0; !rc && i < cfg->nchildren; i++) {
        n->children[i].code = cfg->children[i].code;
        if (!zmq_z85_decode(n->children[i].key, cfg->children[i].curve_pub))
            rc = why_set(why, LX_EINVAL, "%s: a child's curve_pub does not decode", cfg->file);
        n->nchildren++;
    }
    if (!rc && cfg->nchildren) {
        /* The ZAP handler is bound before the ROUTER, and the ROUTER
         * enforces the domain: no handler, no connection. */
        n->zap = zmq_socket(n->ctx, ZMQ_REP);
        int one = 1;
        if (!n->zap || zmq_bind(n->zap, "inproc://zeromq.zap.01"))
            rc = why_set(why, LX_EIO, "net: ZAP handler: %s", zmq_strerror(errno));
        n->router = rc ? NULL : zmq_socket(n->ctx, ZMQ_ROUTER);
        if (!rc && (!n->router || common_opts(n->router)
                    || setopt_int(n->router, ZMQ_CURVE_SERVER, 1)
                    || zmq_setsockopt(n->router, ZMQ_CURVE_SECRETKEY, cfg->curve_sec, Z85_KEYLEN)
                    || zmq_setsockopt(n->router, ZMQ_ZAP_DOMAIN, ZAP_DOMAIN, strlen(ZAP_DOMAIN))
                    || zmq_setsockopt(n->router, ZMQ_ZAP_ENFORCE_DOMAIN, &one, sizeof one)
                    || setopt_int(n->router, ZMQ_ROUTER_MANDATORY, 1)
                    || setopt_int(n->router, ZMQ_ROUTER_HANDOVER, 1)))
            rc = why_set(why, LX_EIO, "net: ROUTER options: %s", zmq_strerror(errno));
        if (!rc && zmq_bind(n->router, cfg->bind))
            rc = why_set(why, LX_EIO, "net: cannot bind %s: %s", cfg->bind, zmq_strerror(errno));
    }
    if (!rc && cfg->has_parent) {
        n->dealer = zmq_socket(n->ctx, ZMQ_DEALER);
        if (!n->dealer || common_opts(n->dealer)
            || zmq_setsockopt(n->dealer, ZMQ_CURVE_SERVERKEY, cfg->parent.curve_pub, Z85_KEYLEN)
            || zmq_setsockopt(n->dealer, ZMQ_CURVE_PUBLICKEY, cfg->curve_pub, Z85_KEYLEN)
            || zmq_setsockopt(n->dealer, ZMQ_CURVE_SECRETKEY, cfg->curve_sec, Z85_KEYLEN)
            || setopt_int(n->dealer, ZMQ_IMMEDIATE, 1))
            rc = why_set(why, LX_EIO, "net: DEALER options: %s", zmq_strerror(errno));
        /* Watched before it connects, so the first connection counts. */
        if (!rc && (zmq_socket_monitor(n->dealer, MONITOR,
                                       ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED)
                    || !(n->mon = zmq_socket(n->ctx, ZMQ_PAIR))
                    || setopt_int(n->mon, ZMQ_LINGER, 0) || zmq_connect(n->mon, MONITOR)))
            rc = why_set(why, LX_EIO, "net: watching the parent connection: %s",
                         zmq_strerror(errno));
        n->down_since = mono_ms();
        if (!rc && parent_connect(n, false))
            rc = why_set(why, LX_EIO, "net: cannot connect to %s: %s", cfg->parent.zmq,
                         zmq_strerror(errno));
    }
    if (!rc && pthread_create(&n->th, NULL, net_main, n))
        rc = why_set(why, LX_EIO, "net: cannot start the thread");
    if (rc) {
        if (n->mon)
            zmq_close(n->mon);
        if (n->zap)
            zmq_close(n->zap);
        if (n->router)
            zmq_close(n->router);
        if (n->dealer)
            zmq_close(n->dealer);
        if (n->ctx)
            zmq_ctx_term(n->ctx);
        if (n->efd >= 0)
            close(n->efd);
        pthread_mutex_destroy(&n->mu);
        free(n->children);
        free(n);
        return rc;
    }
    *out = n;
    return LX_OK;
}

void net_stop(net_t **self_p)
{
    net_t *n = *self_p;
    if (!n)
        return;
    atomic_store(&n->stop, true);
    uint64_t one = 1;
    if (write(n->efd, &one, sizeof one) < 0)
        log_warn("net: eventfd write: %s", strerror(errno));
    pthread_join(n->th, NULL);
    if (n->mon)
        zmq_close(n->mon);
    if (n->zap)
        zmq_close(n->zap);
    if (n->router)
        zmq_close(n->router);
    if (n->dealer)
        zmq_close(n->dealer);
    zmq_ctx_term(n->ctx);
    close(n->efd);
    netmsg_t *m;
    while ((m = q_pop(&n->in)))
        netmsg_free(m);
    while ((m = q_pop(&n->held)))
        netmsg_free(m);
    while ((m = q_pop(&n->out)))
        netmsg_free(m);
    pthread_mutex_destroy(&n->mu);
    free(n->children);
    free(n);
    *self_p = NULL;
}

static int queue_out(net_t *n, netmsg_t *m)
{
    pthread_mutex_lock(&n->mu);
    q_push(&n->out, m);
    pthread_mutex_unlock(&n->mu);
    uint64_t one = 1;
    if (write(n->efd, &one, sizeof one) < 0 && errno != EAGAIN)
        return LX_EIO;
    return LX_OK;
}

int net_send(net_t *n, code_t peer, const void *data, size_t len)
{
    netmsg_t *m = msg_new(NET_FRAME, peer, data, len);
    return m ? queue_out(n, m) : LX_ENOMEM;
}

int net_send_owned(net_t *n, code_t peer, void *buf, size_t len)
{
    netmsg_t *m = calloc(1, sizeof *m);
    if (!m) {
        free(buf);
        return LX_ENOMEM;
    }
    m->kind = NET_FRAME;
    m->peer = peer;
    m->data = buf;
    m->len = len;
    m->own = buf;
    return queue_out(n, m);
}

netmsg_t *net_recv(net_t *n)
{
    pthread_mutex_lock(&n->mu);
    netmsg_t *m = q_pop(&n->in);
    pthread_mutex_unlock(&n->mu);
    if (m && m->pre && atomic_fetch_sub(&n->prepped, 1) == PREP_AHEAD) {
        /* The net thread may hold frames for want of room: wake it. */
        uint64_t one = 1;
        if (write(n->efd, &one, sizeof one) < 0 && errno != EAGAIN)
            log_warn("net: eventfd write: %s", strerror(errno));
    }
    return m;
}

uint64_t net_denied(const net_t *n)
{
    return atomic_load(&n->denied);
}

void netmsg_free(netmsg_t *m)
{
    if (!m)
        return;
    if (m->pre && m->pre_free)
        m->pre_free(m->pre);
    if (m->has_zm)
        zmq_msg_close(&m->zm);
    free(m->own);
    free(m);
}
