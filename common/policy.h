/* policy: the signed documents a level issues for its subtree (schema,
 * classification, alerts, reporting, access, retention), the keys pinned
 * to check them, the one path that admits a policy into a store, and the
 * acknowledgement table (which node applies which versions).
 *
 * A policy is JSON:
 *   {"issuer": "510000000000", "kind": "schema", "version": 3,
 *    "effective": "2026-01-01", "expires": "2027-01-01", "body": {...}}
 * signed with the issuer's Ed25519 key over "lianxin-policy-v1\0" followed
 * by the exact JSON bytes. The envelope (stored, and sent on the wire) is
 * the msgpack array [json (bin), signature (bin 64)]; the JSON bytes are
 * kept as issued and never re-serialised.
 *
 * Store layout (blobs in the meta table, ASCII keys):
 *   pol/ISSUER/KIND  -> the envelope of the latest version held
 *   pola/ISSUER/KIND -> u64 wall ms when that version was accepted here
 *   key/CODE         -> 32-byte Ed25519 public key pinned for CODE
 *   ack/CODE         -> msgpack [reported_ms, [[issuer, kind, version]...]]
 *                       what node CODE (a descendant, or this node) applies
 * The effective policy (the fold of the chain) is in effective.h. */
#ifndef LX_POLICY_H
#define LX_POLICY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "code.h"
#include "err.h"
#include "store.h"

#define POLICY_DOMAIN "lianxin-policy-v1"  /* signed with its NUL */
#define POLICY_SIGLEN 64
#define POLICY_PUBLEN 32
#define POLICY_SECLEN 64
#define POLICY_MAX_JSON (256u << 10)       /* a document's bytes, at most */

typedef enum {
    POLICY_SCHEMA = 0,
    POLICY_CLASSIFICATION,
    POLICY_ALERTS,
    POLICY_REPORTING,
    POLICY_ACCESS,
    POLICY_RETENTION,
    POLICY_NKINDS,
} policy_kind_t;

const char *policy_kind_name(policy_kind_t k);
/* -1 when the name is not a kind. */
int policy_kind_parse(const char *name);

/* A parsed, validated document. */
typedef struct {
    code_t issuer;
    policy_kind_t kind;
    uint32_t version;            /* >= 1 */
    char effective[11];          /* YYYY-MM-DD */
    char expires[11];            /* "" when it does not expire */
    json_t *doc;                 /* the whole document, owned */
    const json_t *body;          /* borrowed from doc */
    unsigned char *json;         /* the exact bytes as issued, owned */
    size_t json_len;
    unsigned char sig[POLICY_SIGLEN]; /* zero until signed or opened */
} policy_t;

void policy_free(policy_t *p);  /* leaves *p zeroed; safe twice */

/* Parses and validates the JSON bytes of a document: unknown keys, wrong
 * types, bad dates, unknown kind, and a body that is wrong for its kind
 * are refused (LX_EINVAL) with why naming `name` (a file name, or
 * "policy") and the field, e.g.
 *   policy.json: body.fields[2].type: unknown type "colour" */
int policy_parse(const void *json, size_t len, const char *name, policy_t *out,
                 why_t *why);

/* Signs json with the issuer's secret key: *env (malloc'ed, caller frees)
 * is the envelope, *envlen its length. The JSON is not checked here. */
int policy_sign(const void *json, size_t len, const unsigned char sk[POLICY_SECLEN],
                unsigned char **env, size_t *envlen);

/* Decodes an envelope (untrusted bytes) and parses its document; does not
 * check the signature. LX_ECORRUPT for an envelope that does not decode,
 * LX_EINVAL for a bad document. *out owned by the caller (policy_free). */
int policy_open(const void *env, size_t len, policy_t *out, why_t *why);

/* Checks an opened policy's signature against pub: LX_OK or LX_EINVAL. */
int policy_verify(const policy_t *p, const unsigned char pub[POLICY_PUBLEN], why_t *why);

/* Where a policy comes from, for policy_accept. */
enum {
    POLICY_LOCAL = 0,        /* issued here (lianxin policy issue) */
    POLICY_FROM_PARENT = 1,  /* received from the parent link */
    POLICY_FROM_CHILD = 2,   /* received from a child link: always refused */
    POLICY_CARRIED = 3,      /* an envelope file (lianxin policy accept) */
};

/* The one path that admits a policy into a node's store, in the caller's
 * write transaction. Checks, in order, and refuses with why naming the
 * reason (nothing is written on refusal):
 *   LX_ECORRUPT/LX_EINVAL  the envelope or document is malformed
 *   LX_ESCOPE   how is POLICY_FROM_CHILD ("a policy arriving from a child");
 *               the issuer is neither this node nor one of its ancestors;
 *               no key is pinned for the issuer
 *   LX_EINVAL   bad signature; expired (expires <= today); a version not
 *               newer than the one held for (issuer, kind)
 *   LX_EEXIST   the identical envelope is already held: harmless (a resend
 *               after a reconnect); nothing is written
 * On success the envelope replaces the one held for (issuer, kind), and
 * *held (if not NULL) gets its identity. now_ms gives today (local time). */
typedef struct {
    code_t issuer;
    policy_kind_t kind;
    uint32_t version;
} policy_ver_t;

int policy_accept(stxn_t *t, const void *env, size_t len, unsigned how,
                  uint64_t now_ms, policy_ver_t *held, why_t *why);

/* Pins code's Ed25519 public key (replacing a pinned one). */
int policy_pin_key(stxn_t *t, code_t code, const unsigned char pub[POLICY_PUBLEN]);
/* LX_ENOTFOUND when none is pinned. */
int policy_pinned_key(stxn_t *t, code_t code, unsigned char pub[POLICY_PUBLEN]);

/* Calls cb for every policy held (every issuer, every kind, the latest
 * version each), in issuer then kind order. env/p are valid during the
 * call only; accepted_ms is when it was accepted here (0: unknown). A
 * non-zero return from cb stops the walk and is returned. */
typedef int (*policy_cb)(void *arg, const void *env, size_t envlen,
                         const policy_t *p, uint64_t accepted_ms);
int policy_each(stxn_t *t, policy_cb cb, void *arg);

/* The envelope held for (issuer, kind); LX_ENOTFOUND. Caller frees. */
int policy_get(stxn_t *t, code_t issuer, policy_kind_t kind, void **env, size_t *len);

/* The (issuer, kind, version) list this node holds, the list it reports
 * upward. *out malloc'ed (caller frees; NULL when n is 0). */
int policy_versions(stxn_t *t, policy_ver_t **out, size_t *n);

/* The acknowledgement table: node (a descendant, or this node itself)
 * applies vers[0..n), as reported at when_ms. Replaces the node's entry. */
int policy_ack_put(stxn_t *t, code_t node, const policy_ver_t *vers, size_t n,
                   uint64_t when_ms);
/* Calls cb for every node in the table, in code order; vers valid during
 * the call only. */
typedef int (*policy_ack_cb)(void *arg, code_t node, const policy_ver_t *vers,
                             size_t n, uint64_t when_ms);
int policy_ack_each(stxn_t *t, policy_ack_cb cb, void *arg);

/* Today's date (local time) of a wall clock in ms, as YYYY-MM-DD. */
void policy_today(uint64_t now_ms, char out[11]);

#endif
