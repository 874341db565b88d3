/* http: the node's API for departments (HTTP/1.1 over TLS, h2o's libuv
 * build, in the node's loop). http.c runs the server: the listener, TLS,
 * limits, the caller's token and purpose, JSON replies, the audit buffer
 * and the counters /metrics shows. api.c answers the requests.
 *
 * Who may do what: a request names its token (Authorization: Bearer);
 * the token's section in node.ini gives its principal, role and scope
 * (the node's subtree, or a part of it). The access policy in force says
 * which fields the role reads, writes and sees masked (common/access.h).
 * Every look at or change of a child's file leaves an audit entry:
 * writes in the transaction that makes them, reads in a batch committed
 * within AUDIT_FLUSH_MS. */
#ifndef LX_HTTP_H
#define LX_HTTP_H

#include <h2o.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "common/audit.h"
#include "common/divs.h"
#include "common/effective.h"
#include "common/store.h"
#include "config/config.h"
#include "repl.h"

#define AUDIT_FLUSH_MS 200
#define AUDIT_BUFFER_MAX 512

typedef struct http http_t;

/* Starts the API on cfg->http (nothing when it is empty). The server
 * keeps the pointers it is given; divs is the node's slot of unit names. */
int http_start(uv_loop_t *loop, const node_config_t *cfg, store_t *store, repl_t *repl,
               divs_once_t *divs, http_t **out, why_t *why);

/* Stops listening and closes the connections; the loop must run once
 * more to finish closing. Pending audit entries are committed. */
void http_stop(http_t *h);
void http_destroy(http_t **self_p);

/* A request being answered (api.c). */
typedef struct {
    http_t *h;
    h2o_req_t *req;
    const token_t *tok;
    char author[160];         /* NODE/role/principal: the author of writes */
    const char *purpose;      /* X-Purpose, decoded; NULL when absent */
    char path[512];           /* decoded, without the query */
    const char *query;        /* after '?', NUL-terminated; "" when none */
    bool get, post, patch;
} call_t;

/* ---- for api.c ---- */

const node_config_t *http_cfg(const http_t *h);
store_t *http_store(const http_t *h);
/* The effective policy for today (cached for a second; the last good one
 * when folding fails); NULL only when there never was one: answer 503. */
const effective_t *http_effective(http_t *h, stxn_t *t);
/* Unit names for reports (the node's, loaded once); NULL: codes only. */
const divs_t *http_divs(http_t *h);
/* Tells replication that a local write was committed. */
void http_wrote(http_t *h);

/* Replies. http_json takes ownership of body. */
int http_json(call_t *c, int status, json_t *body);
int http_error(call_t *c, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int http_send(call_t *c, int status, const char *type, const char *body, size_t len);

/* A query parameter, decoded into out (n bytes): 1 when present, 0 when
 * absent, -1 when too long or not UTF-8 text (the caller answers 400:
 * a filter it cannot read must not widen the answer). */
int http_param(const call_t *c, const char *name, char *out, size_t n);

/* An audit entry for a read, committed with the next batch. */
void http_audit_read(call_t *c, const char *action, const char *const *ids, uint32_t n,
                     const char *result);
/* Begins the transaction of a write, after committing the read entries
 * waiting (there is one writer). */
int http_begin_write(http_t *h, stxn_t **t);
/* The audit entry of a write, in the write's transaction. */
int http_audit_write(call_t *c, stxn_t *t, const char *action, const char *const *ids,
                     uint32_t n, const char *result, why_t *why);

/* The /metrics text is made at most once every METRICS_CACHE_MS (it
 * walks the links' unacknowledged log, and needs no token): the cached
 * text while fresh, else NULL; put takes ownership of buf. */
#define METRICS_CACHE_MS 2000
const char *http_metrics_get(http_t *h, size_t *len);
void http_metrics_put(http_t *h, char *buf, size_t len);

/* Counters for /metrics. */
typedef struct {
    uint64_t requests, status[6];   /* by class: [2] 2xx ... [5] 5xx */
    uint64_t denied, reads, writes, audit_entries, audit_failures;
} http_counts_t;
http_counts_t *http_counts(http_t *h);

/* api.c: answers one request (any path); returns 0 after replying. */
int api_handle(call_t *c);

#endif
