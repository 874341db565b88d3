#include "http.h"

#include <errno.h>
#include <h2o/socket/uv-binding.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/policy.h"
#include "common/schema.h"

/* An audit entry waiting for the next batch: owned copies. */
typedef struct {
    uint64_t time_ms;
    char *principal, *role, *action, *purpose, *result;
    char **ids;
    uint32_t nids;
} pending_t;

struct http {
    const node_config_t *cfg;
    store_t *store;
    repl_t *repl;
    uv_loop_t *loop;
    h2o_globalconf_t conf;
    h2o_context_t ctx;
    h2o_accept_ctx_t actx;
    uv_tcp_t listener;
    uv_timer_t flush;
    bool stopped;
    bool cut;                    /* handles of h2o's were closed under it */
    unsigned conns;              /* open connections */
    effective_t *eff;            /* cached for EFF_CACHE_MS */
    uint64_t eff_at;
    char eff_day[11];
    divs_once_t *divs;           /* the node's, shared */
    pending_t *pend;
    uint32_t npend;
    char *metrics;               /* the last /metrics text, and when */
    size_t metrics_len;
    uint64_t metrics_at;
    http_counts_t counts;
};

#define EFF_CACHE_MS 1000
#define HTTP_CONNS_MAX 256

typedef struct {
    h2o_handler_t super;
    http_t *h;
} handler_t;

/* ---- the audit buffer ---- */

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void pending_free(pending_t *p)
{
    free(p->principal);
    free(p->role);
    free(p->action);
    free(p->purpose);
    free(p->result);
    for (uint32_t i = 0; i < p->nids; i++)
        free(p->ids[i]);
    free(p->ids);
}

/* Appends entries [0, n) of the buffer in one transaction. */
static int append_pending(http_t *h, uint32_t from, uint32_t n, why_t *why)
{
    audit_entry_t *e = calloc(n, sizeof *e);
    stxn_t *t = NULL;
    int rc = e ? store_begin(h->store, true, &t) : LX_ENOMEM;
    for (uint32_t i = 0; e && i < n; i++) {
        pending_t *p = &h->pend[from + i];
        e[i] = (audit_entry_t){.time_ms = p->time_ms, .principal = p->principal,
                               .role = p->role, .action = p->action,
                               .ids = (const char *const *)p->ids, .nids = p->nids,
                               .purpose = p->purpose, .result = p->result};
    }
    if (!rc)
        rc = audit_append(t, e, n, why);
    if (!rc)
        rc = store_commit(&t);
    store_abort(&t);
    free(e);
    return rc;
}

/* Commits the buffered read entries in one transaction; when that fails,
 * one by one, so an entry the chain refuses loses no other. */
static void audit_flush(http_t *h)
{
    if (!h->npend)
        return;
    why_t why = {""};
    if (append_pending(h, 0, h->npend, &why) == LX_OK) {
        h->counts.audit_entries += h->npend;
    } else {
        for (uint32_t i = 0; i < h->npend; i++) {
            why.msg[0] = '\0';
            int rc = append_pending(h, i, 1, &why);
            if (rc) {
                h->counts.audit_failures++;
                log_error("audit: a read entry (%s) not written: %s", h->pend[i].action,
                          why.msg[0] ? why.msg : err_str(rc));
            } else {
                h->counts.audit_entries++;
            }
        }
    }
    for (uint32_t i = 0; i < h->npend; i++)
        pending_free(&h->pend[i]);
    h->npend = 0;
}

static void on_flush(uv_timer_t *t)
{
    audit_flush(t->data);
}

void http_audit_read(call_t *c, const char *action, const char *const *ids, uint32_t n,
                     const char *result)
{
    http_t *h = c->h;
    if (h->npend % 64 == 0) {
        pending_t *np = realloc(h->pend, (h->npend + 64) * sizeof *np);
        if (!np) {
            h->counts.audit_failures++;
            return;
        }
        h->pend = np;
    }
    pending_t *p = &h->pend[h->npend++];
    *p = (pending_t){.time_ms = hlc_wall_ms(), .principal = strdup(c->tok->name),
                     .role = strdup(c->tok->role), .action = strdup(action),
                     .purpose = dup_or_null(c->purpose), .result = strdup(result),
                     .ids = n ? calloc(n, sizeof(char *)) : NULL};
    for (uint32_t i = 0; p->ids && i < n; i++)
        if ((p->ids[i] = strdup(ids[i])))
            p->nids++;
    h->counts.reads++;
    if (h->npend >= AUDIT_BUFFER_MAX)
        audit_flush(h);
    else if (!uv_is_active((uv_handle_t *)&h->flush))
        uv_timer_start(&h->flush, on_flush, AUDIT_FLUSH_MS, 0);
}

int http_audit_write(call_t *c, stxn_t *t, const char *action, const char *const *ids,
                     uint32_t n, const char *result, why_t *why)
{
    audit_entry_t e = {.time_ms = hlc_wall_ms(), .principal = c->tok->name,
                       .role = c->tok->role, .action = action, .ids = ids, .nids = n,
                       .purpose = c->purpose, .result = result};
    http_t *h = c->h;
    int rc = audit_append(t, &e, 1, why);
    if (!rc) {
        h->counts.writes++;
        h->counts.audit_entries++;
    }
    return rc;
}

int http_begin_write(http_t *h, stxn_t **t)
{
    /* The reads before go first, so the chain keeps the order (and LMDB
     * has one writer: never a second transaction inside this one). */
    audit_flush(h);
    return store_begin(h->store, true, t);
}

/* ---- replies ---- */

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

int http_send(call_t *c, int status, const char *type, const char *body, size_t len)
{
    h2o_req_t *req = c->req;
    req->res.status = status;
    req->res.reason = reason(status);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, type,
                   strlen(type));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                   H2O_STRLIT("no-store"));
    if (status == 401)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL,
                       H2O_STRLIT("Bearer realm=\"lianxin\""));
    c->h->counts.requests++;
    c->h->counts.status[status / 100 < 6 ? status / 100 : 5]++;
    if (status == 401 || status == 403)
        c->h->counts.denied++;
    h2o_send_inline(req, body, len);
    return 0;
}

int http_json(call_t *c, int status, json_t *body)
{
    char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!s)
        return http_send(c, 500, "application/json", "{\"error\":\"out of memory\"}", 25);
    int rc = http_send(c, status, "application/json; charset=utf-8", s, strlen(s));
    free(s);
    return rc;
}

int http_error(call_t *c, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return http_json(c, status, json_pack("{s:s, s:i}", "error", msg, "status", status));
}

/* ---- requests ---- */

static int hexval(int ch)
{
    return ch >= '0' && ch <= '9' ? ch - '0'
         : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
         : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
}

/* Percent-decodes (and '+' as space when form is set) n bytes of s into
 * out; false when it does not fit or decodes to a NUL or control byte. */
static bool decode(const char *s, size_t n, bool form, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int ch = (unsigned char)s[i];
        if (ch == '%') {
            int hi = i + 2 < n ? hexval(s[i + 1]) : -1, lo = i + 2 < n ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return false;
            ch = hi * 16 + lo;
            i += 2;
        } else if (ch == '+' && form) {
            ch = ' ';
        }
        if (ch < 0x20 || ch == 0x7f || o + 1 >= cap)
            return false;
        out[o++] = (char)ch;
    }
    out[o] = '\0';
    return true;
}

int http_param(const call_t *c, const char *name, char *out, size_t n)
{
    size_t nl = strlen(name);
    for (const char *p = c->query; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len > nl && p[nl] == '=' && strncmp(p, name, nl) == 0)
            return decode(p + nl + 1, len - nl - 1, true, out, n)
                   && utf8_valid(out, strlen(out)) ? 1 : -1;
        if (len == nl && strncmp(p, name, nl) == 0)
            return n ? (out[0] = '\0', 1) : -1;
        p = amp ? amp + 1 : NULL;
    }
    return 0;
}

/* C1 control characters (U+0080..U+009F), which UTF-8 checks let by. */
static bool has_c1(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)s[0] == 0xc2 && (unsigned char)s[1] >= 0x80
            && (unsigned char)s[1] <= 0x9f)
            return true;
    return false;
}

static const token_t *authenticate(http_t *h, h2o_req_t *req)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    if (i < 0)
        return NULL;
    const h2o_iovec_t *v = &req->headers.entries[i].value;
    char secret[128];
    if (v->len < 8 || v->len - 7 >= sizeof secret || strncasecmp(v->base, "Bearer ", 7) != 0)
        return NULL;
    memcpy(secret, v->base + 7, v->len - 7);
    secret[v->len - 7] = '\0';
    const token_t *t = config_token(h->cfg, secret);
    OPENSSL_cleanse(secret, sizeof secret);
    return t;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    http_t *h = ((handler_t *)self)->h;
    call_t c = {.h = h, .req = req, .query = ""};
    char query[2048] = "", purpose[256];
    size_t plen = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    if (!decode(req->path.base, plen, false, c.path, sizeof c.path))
        return http_error(&c, 400, "the request path is too long or not valid");
    if (req->query_at != SIZE_MAX) {
        size_t ql = req->path.len - req->query_at - 1;
        if (ql >= sizeof query)
            return http_error(&c, 400, "the query string is longer than %zu bytes",
                              sizeof query - 1);
        memcpy(query, req->path.base + req->query_at + 1, ql);
        query[ql] = '\0';
        c.query = query;
    }
    if (req->entity.base && req->entity.len > h->cfg->http_body_max)
        return http_error(&c, 413, "the body is larger than %llu bytes",
                          (unsigned long long)h->cfg->http_body_max);
    c.get = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"));
    c.post = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"));
    c.patch = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("PATCH"));
    /* /healthz and /metrics carry no personal data: no token needed. */
    if (strcmp(c.path, "/healthz") == 0 || strcmp(c.path, "/metrics") == 0)
        return api_handle(&c);
    if (!(c.tok = authenticate(h, req)))
        return http_error(&c, 401, "a valid token is required (Authorization: Bearer TOKEN)");
    ssize_t pi = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-purpose"), -1);
    if (pi >= 0) {
        const h2o_iovec_t *v = &req->headers.entries[pi].value;
        if (!decode(v->base, v->len, false, purpose, sizeof purpose)
            || !utf8_valid(purpose, strlen(purpose)) || has_c1(purpose))
            return http_error(&c, 400, "X-Purpose: at most %zu bytes of UTF-8 text "
                              "(percent-encoded is accepted)", sizeof purpose - 1);
        if (purpose[0])
            c.purpose = purpose;
    }
    char code[CODE_STRLEN + 1];
    snprintf(c.author, sizeof c.author, "%s/%s/%s", code_fmt(h->cfg->code, code), c.tok->role,
             c.tok->name);
    return api_handle(&c);
}

/* ---- the server ---- */

/* A connection: h2o takes the handle's data pointer for itself, so the
 * server is found from the handle's place in this struct. */
typedef struct {
    uv_tcp_t tcp;
    http_t *h;
} conn_t;

static void on_conn_close(uv_handle_t *hd)
{
    conn_t *cn = (conn_t *)hd;
    cn->h->conns--;
    free(cn);
}

static void on_accept(uv_stream_t *listener, int status)
{
    http_t *h = listener->data;
    if (status != 0 || h->stopped)
        return;
    conn_t *cn = calloc(1, sizeof *cn);
    if (!cn)
        return;
    uv_tcp_init(listener->loop, &cn->tcp);
    cn->h = h;
    h->conns++;
    /* Past the cap a connection is accepted and closed at once: file
     * descriptors are shared with the store and the links. */
    if (uv_accept(listener, (uv_stream_t *)&cn->tcp) != 0 || h->conns > HTTP_CONNS_MAX) {
        uv_close((uv_handle_t *)&cn->tcp, on_conn_close);
        return;
    }
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)&cn->tcp, on_conn_close);
    h2o_accept(&h->actx, sock);
}

static int setup_tls(http_t *h, why_t *why)
{
    /* No error strings and no openssl.cnf: a village's node keeps a few
     * MiB fewer of libcrypto's pages resident. */
    OPENSSL_init_ssl(OPENSSL_INIT_NO_LOAD_SSL_STRINGS | OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS
                     | OPENSSL_INIT_NO_LOAD_CONFIG, NULL);
    SSL_CTX *ssl = SSL_CTX_new(TLS_server_method());
    if (!ssl)
        return why_set(why, LX_EIO, "TLS: cannot create a context");
    SSL_CTX_set_min_proto_version(ssl, TLS1_2_VERSION);
    SSL_CTX_set_options(ssl, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_use_certificate_chain_file(ssl, h->cfg->tls_cert) != 1) {
        SSL_CTX_free(ssl);
        return why_set(why, LX_EINVAL, "%s: not a PEM certificate", h->cfg->tls_cert);
    }
    if (SSL_CTX_use_PrivateKey_file(ssl, h->cfg->tls_key, SSL_FILETYPE_PEM) != 1
        || SSL_CTX_check_private_key(ssl) != 1) {
        SSL_CTX_free(ssl);
        return why_set(why, LX_EINVAL, "%s: not the private key of %s", h->cfg->tls_key,
                       h->cfg->tls_cert);
    }
    h->actx.ssl_ctx = ssl;
    return LX_OK;
}

int http_start(uv_loop_t *loop, const node_config_t *cfg, store_t *store, repl_t *repl,
               divs_once_t *divs, http_t **out, why_t *why)
{
    *out = NULL;
    if (!cfg->http[0])
        return LX_OK;
    char host[256];
    snprintf(host, sizeof host, "%s", cfg->http);
    char *colon = strrchr(host, ':');
    if (!colon)
        return why_set(why, LX_EINVAL, "%s: [node] http: expected HOST:PORT", cfg->file);
    *colon = '\0';
    int port = atoi(colon + 1);
    struct sockaddr_storage addr;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&addr)
        && uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr))
        return why_set(why, LX_EINVAL, "%s: [node] http: %s is not an IP address", cfg->file,
                       host);
    http_t *h = calloc(1, sizeof *h);
    if (!h)
        return LX_ENOMEM;
    h->cfg = cfg;
    h->store = store;
    h->repl = repl;
    h->divs = divs;
    h->loop = loop;
    h2o_config_init(&h->conf);
    /* h2o answers bodies over its cap itself (in plain text): ours is
     * checked first, in JSON, for bodies up to twice the cap. */
    h->conf.max_request_entity_size = 2 * cfg->http_body_max;
    h->conf.http1.req_timeout = cfg->http_timeout_ms;
    h->conf.handshake_timeout = cfg->http_timeout_ms;
    h->conf.server_name = h2o_iovec_init(H2O_STRLIT("lianxin"));
    h2o_hostconf_t *hc = h2o_config_register_host(&h->conf, h2o_iovec_init(H2O_STRLIT("default")),
                                                  65535);
    h2o_pathconf_t *pc = h2o_config_register_path(hc, "/", 0);
    handler_t *hd = (handler_t *)h2o_create_handler(pc, sizeof *hd);
    hd->super.on_req = on_req;
    hd->h = h;
    int rc = LX_OK;
    if (!cfg->http_plain && (rc = setup_tls(h, why))) {
        h2o_config_dispose(&h->conf);
        free(h);
        return rc;
    }
    h2o_context_init(&h->ctx, loop, &h->conf);
    h->actx.ctx = &h->ctx;
    h->actx.hosts = h->conf.hosts;
    uv_tcp_init(loop, &h->listener);
    h->listener.data = h;
    uv_timer_init(loop, &h->flush);
    h->flush.data = h;
    int r = uv_tcp_bind(&h->listener, (struct sockaddr *)&addr, 0);
    if (!r)
        r = uv_listen((uv_stream_t *)&h->listener, 128, on_accept);
    if (r) {
        why_set(why, LX_EIO, "%s: [node] http %s: %s", cfg->file, cfg->http, uv_strerror(r));
        h->stopped = true;
        uv_close((uv_handle_t *)&h->listener, NULL);
        uv_close((uv_handle_t *)&h->flush, NULL);
        h2o_context_dispose(&h->ctx);
        *out = h;   /* closed by the caller's loop run, then http_destroy */
        return LX_EIO;
    }
    log_info("API on %s://%s", cfg->http_plain ? "http" : "https", cfg->http);
    *out = h;
    return LX_OK;
}

static void close_rest(uv_handle_t *hd, void *arg)
{
    /* What h2o still holds (connections, its timers), closed under it as
     * the loop is about to end: the node has closed its own handles. */
    http_t *h = arg;
    if (!uv_is_closing(hd))
        uv_close(hd, hd->type == UV_TCP && hd != (uv_handle_t *)&h->listener ? on_conn_close
                                                                           : NULL);
}

void http_stop(http_t *h)
{
    if (!h || h->stopped)
        return;
    h->stopped = true;
    audit_flush(h);
    uv_close((uv_handle_t *)&h->listener, NULL);
    uv_close((uv_handle_t *)&h->flush, NULL);
    if (!h->conns) {
        /* Nothing open: h2o closes its own timers. */
        h2o_context_dispose(&h->ctx);
    } else {
        /* Connections still open (idle keep-alive clients): everything of
         * h2o's is closed under it, and its context is left undisposed,
         * as the process is ending. */
        h->cut = true;
        uv_walk(h->loop, close_rest, h);
    }
}

void http_destroy(http_t **self_p)
{
    http_t *h = *self_p;
    if (!h)
        return;
    audit_flush(h);
    free(h->pend);
    free(h->metrics);
    if (!h->stopped)
        h2o_context_dispose(&h->ctx);
    h2o_config_dispose(&h->conf);
    if (h->actx.ssl_ctx)
        SSL_CTX_free(h->actx.ssl_ctx);
    effective_free(&h->eff);
    free(h);
    *self_p = NULL;
}

/* ---- for api.c ---- */

const node_config_t *http_cfg(const http_t *h)
{
    return h->cfg;
}

store_t *http_store(const http_t *h)
{
    return h->store;
}

const effective_t *http_effective(http_t *h, stxn_t *t)
{
    uint64_t now = uv_now(h->loop);
    char today[11];
    policy_today(hlc_wall_ms(), today);
    if (h->eff && now - h->eff_at < EFF_CACHE_MS && strcmp(today, h->eff_day) == 0)
        return h->eff;
    effective_t *e = NULL;
    why_t why = {""};
    if (policy_effective(t, today, &e, &why)) {
        log_error("API: effective policy: %s", why.msg);
        return h->eff;   /* the last one, if any */
    }
    effective_free(&h->eff);
    h->eff = e;
    h->eff_at = now;
    memcpy(h->eff_day, today, sizeof today);
    return e;
}

const divs_t *http_divs(http_t *h)
{
    return divs_once(h->divs, h->cfg->code);
}

void http_wrote(http_t *h)
{
    h->eff_at = 0;   /* read again at the next request: a write may change it */
    if (h->repl) {
        repl_note_write(h->repl, uv_now(h->loop));
        repl_pump(h->repl, uv_now(h->loop));
    }
}

const char *http_metrics_get(http_t *h, size_t *len)
{
    if (!h->metrics || uv_now(h->loop) - h->metrics_at >= METRICS_CACHE_MS)
        return NULL;
    *len = h->metrics_len;
    return h->metrics;
}

void http_metrics_put(http_t *h, char *buf, size_t len)
{
    free(h->metrics);
    h->metrics = buf;
    h->metrics_len = len;
    h->metrics_at = uv_now(h->loop);
}

http_counts_t *http_counts(http_t *h)
{
    return &h->counts;
}
