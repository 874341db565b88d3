/* config: a node's configuration (node.ini) and its keys. Every value is
 * checked on load; a wrong one is refused naming the file, line and key. */
#ifndef LX_CONFIG_H
#define LX_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/code.h"
#include "common/err.h"

#define Z85_KEYLEN 40           /* a CURVE key in Z85 */
#define SIGN_PUBLEN 32
#define SIGN_SECLEN 64

typedef struct {
    code_t code;
    char name[128];
    char zmq[256];                      /* parent: the endpoint to connect to */
    char curve_pub[Z85_KEYLEN + 1];
    unsigned char sign_pub[SIGN_PUBLEN];
    bool has_sign;
} peer_t;

/* An API token of a department: only its hash is kept. */
#define TOKEN_HASHLEN 32
typedef struct {
    char name[64];            /* the principal: [token NAME] */
    char role[48];            /* a department role of the access policy */
    unsigned char hash[TOKEN_HASHLEN];  /* BLAKE2b-256 of the token */
    code_t scope;             /* the subtree it may see (default: the node's) */
} token_t;

typedef struct {
    char file[4096];          /* the config file, for messages */
    code_t code;
    char name[128];
    char data[4096];          /* the store */
    char keys[4096];          /* curve.key, curve.pub, sign.key, sign.pub */
    char bind[256];           /* where children connect; empty for villages */
    char http[256];           /* HOST:PORT the API listens on; empty: none */
    bool http_plain;          /* plain HTTP (only on 127.0.0.1) */
    char tls_cert[4096];      /* PEM certificate and key for the API */
    char tls_key[4096];
    uint64_t http_body_max;   /* request body cap, bytes */
    uint64_t http_timeout_ms; /* request timeout */
    uint32_t http_page_max;   /* the most records one page lists */
    token_t *tokens;
    size_t ntokens;
    uint64_t skew_ms;         /* remote clocks further ahead are refused */
    uint64_t heartbeat_ms;    /* ping interval on links */
    uint64_t timeout_ms;      /* a silent link is down after this */
    uint64_t antientropy_ms;  /* digest comparison interval */
    uint32_t batch;           /* changes per batch */
    uint32_t window;          /* batches in flight per link */
    uint64_t reconnect_fast_ms; /* an absent parent is looked for every 100 ms this long, */
    uint64_t reconnect_slow_ms; /* then every this often */
    bool has_parent;
    peer_t parent;
    peer_t *children;
    size_t nchildren;
    peer_t *ancestors;        /* pinned signing keys above the parent */
    size_t nancestors;
    /* Loaded from keys/ */
    char curve_pub[Z85_KEYLEN + 1];
    char curve_sec[Z85_KEYLEN + 1];
    unsigned char sign_pub[SIGN_PUBLEN];
    unsigned char sign_sec[SIGN_SECLEN];
} node_config_t;

/* Parses an INI file calling fn for every key, and once with name and
 * value NULL when a new section starts (inih reports keys only, unless
 * built with INI_CALL_HANDLER_ON_NEW_SECTION). fn returns 0 to stop.
 * Returns ini_parse's result: 0, the first bad line, or -1. Then every
 * section header is checked, since inih never reports a section without
 * keys and reads one written twice in a row as one: such a line is
 * returned, with why saying which. */
typedef int (*ini_item_fn)(void *user, const char *section, const char *name,
                           const char *value);
int ini_parse_sections(const char *path, ini_item_fn fn, void *user, why_t *why);
/* The section a header line names, as inih reads it (after blanks, from
 * "[" to the first "]", cut to the 49 bytes inih keeps), copied to name;
 * NULL when the line is no header. */
#define INI_SECTION_MAX 49
const char *ini_header(const char *line, char name[INI_SECTION_MAX + 1]);

/* Loads and checks a node configuration and its keys. *out owned by the
 * caller (config_free). */
int config_load(const char *path, node_config_t **out, why_t *why);
void config_free(node_config_t **self_p);

/* The token whose hash matches the presented secret, or NULL (the
 * comparison takes the same time whatever matches). */
const token_t *config_token(const node_config_t *c, const char *secret);

/* Makes a new token secret ("lx_" and 43 url-safe base64 characters) and
 * its hash. */
void token_make(char secret[48], unsigned char hash[TOKEN_HASHLEN]);
void token_hash(const char *secret, unsigned char hash[TOKEN_HASHLEN]);
/* A token's name: 1-43 of a-z 0-9 - _ . (a longer one would not fit the
 * section name inih keeps). */
#define TOKEN_NAME_MAX 43
bool token_name_ok(const char *name);

/* The child with that code, or NULL. */
const peer_t *config_child(const node_config_t *c, code_t code);

/* Reads a key file: Z85 CURVE keys (40 characters) or hex Ed25519 keys.
 * Secret files must be mode 0600 (or stricter). */
int keys_read_z85(const char *path, bool secret, char out[Z85_KEYLEN + 1], why_t *why);
int keys_read_hex(const char *path, bool secret, unsigned char *out, size_t n, why_t *why);

/* Makes a node's key pairs in dir (created 0700): curve.pub, curve.key
 * (0600), sign.pub, sign.key (0600). Refuses (LX_EEXIST) to overwrite;
 * leaves no half pair behind on failure. */
int keys_generate(const char *dir, why_t *why);

#endif
