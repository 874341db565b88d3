#include "config.h"

#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "common/polbody.h"

typedef struct {
    node_config_t *c;
    why_t *why;
    char dir[4096];    /* the config file's directory, for relative paths */
    peer_t *cur;       /* the peer section being read */
    token_t *tok;      /* the token section being read */
    int kind;          /* 0 none, 1 node, 2 parent, 3 child, 4 ancestor, 5 token */
} parse_t;

static bool z85_ok(const char *s)
{
    if (strlen(s) != Z85_KEYLEN)
        return false;
    static const char alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyz"
                                   "ABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
    for (const char *p = s; *p; p++)
        if (!strchr(alphabet, *p))
            return false;
    return true;
}

static int hex_decode(const char *s, unsigned char *out, size_t n)
{
    size_t len;
    if (strlen(s) != 2 * n
        || sodium_hex2bin(out, n, s, strlen(s), NULL, &len, NULL) || len != n)
        return -1;
    return 0;
}

static void resolve(const parse_t *p, const char *v, char *out, size_t n)
{
    if (v[0] == '/' || !p->dir[0])
        snprintf(out, n, "%s", v);
    else
        snprintf(out, n, "%s/%s", p->dir, v);
}

static int u64_value(const char *v, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        return -1;
    *out = x;
    return 0;
}

static peer_t *add_peer(peer_t **arr, size_t *n)
{
    peer_t *np = realloc(*arr, (*n + 1) * sizeof *np);
    if (!np)
        return NULL;
    *arr = np;
    memset(&np[*n], 0, sizeof *np);
    return &np[(*n)++];
}

/* inih calls this for every key; returning 0 stops with that line. */
static int on_item(void *user, const char *section, const char *name, const char *value)
{
    parse_t *p = user;
    node_config_t *c = p->c;
    const char *bad = NULL;
    if (!name) {
        /* A new section. */
        code_t code = 0;
        if (strcmp(section, "node") == 0) {
            p->kind = 1;
        } else if (strcmp(section, "parent") == 0) {
            p->kind = 2;
            c->has_parent = true;
            p->cur = &c->parent;
        } else if (strncmp(section, "child ", 6) == 0 || strncmp(section, "ancestor ", 9) == 0) {
            bool child = section[0] == 'c';
            const char *cs = section + (child ? 6 : 9);
            if (code_parse(cs, &code)) {
                why_set(p->why, LX_EINVAL, "[%s]: not a 12-digit division code", section);
                return 0;
            }
            p->kind = child ? 3 : 4;
            p->cur = child ? add_peer(&c->children, &c->nchildren)
                           : add_peer(&c->ancestors, &c->nancestors);
            if (!p->cur)
                return 0;
            p->cur->code = code;
        } else if (strncmp(section, "token ", 6) == 0) {
            const char *nm = section + 6;
            if (!token_name_ok(nm)) {
                why_set(p->why, LX_EINVAL, "[%s]: a token's name is 1-43 of a-z 0-9 - _ .",
                        section);
                return 0;
            }
            for (size_t i = 0; i < c->ntokens; i++)
                if (strcmp(c->tokens[i].name, nm) == 0) {
                    why_set(p->why, LX_EINVAL, "[%s]: appears twice", section);
                    return 0;
                }
            token_t *nt = realloc(c->tokens, (c->ntokens + 1) * sizeof *nt);
            if (!nt)
                return 0;
            c->tokens = nt;
            p->tok = &nt[c->ntokens++];
            memset(p->tok, 0, sizeof *p->tok);
            snprintf(p->tok->name, sizeof p->tok->name, "%s", nm);
            p->kind = 5;
        } else {
            why_set(p->why, LX_EINVAL, "[%s]: unknown section", section);
            return 0;
        }
        return 1;
    }
    if (p->kind == 1) {
        if (strcmp(name, "code") == 0) {
            if (code_parse(value, &c->code))
                bad = "not a 12-digit division code";
        } else if (strcmp(name, "name") == 0) {
            snprintf(c->name, sizeof c->name, "%s", value);
        } else if (strcmp(name, "data") == 0) {
            resolve(p, value, c->data, sizeof c->data);
        } else if (strcmp(name, "keys") == 0) {
            resolve(p, value, c->keys, sizeof c->keys);
        } else if (strcmp(name, "bind") == 0 || strcmp(name, "zmq") == 0) {
            if (strncmp(value, "tcp://", 6) != 0 && strncmp(value, "ipc://", 6) != 0)
                bad = "expected tcp://HOST:PORT";
            snprintf(c->bind, sizeof c->bind, "%s", value);
        } else if (strcmp(name, "http") == 0) {
            const char *colon = strrchr(value, ':');
            uint64_t port;
            if (!colon || colon == value || u64_value(colon + 1, 1, 65535, &port))
                bad = "expected HOST:PORT";
            snprintf(c->http, sizeof c->http, "%s", value);
        } else if (strcmp(name, "http_plain") == 0) {
            if (strcmp(value, "true") && strcmp(value, "false"))
                bad = "expected true or false";
            c->http_plain = strcmp(value, "true") == 0;
        } else if (strcmp(name, "tls_cert") == 0) {
            resolve(p, value, c->tls_cert, sizeof c->tls_cert);
        } else if (strcmp(name, "tls_key") == 0) {
            resolve(p, value, c->tls_key, sizeof c->tls_key);
        } else if (strcmp(name, "http_body_max") == 0) {
            if (u64_value(value, 1024, 64 << 20, &c->http_body_max))
                bad = "expected bytes, 1024..67108864";
        } else if (strcmp(name, "http_timeout_ms") == 0) {
            if (u64_value(value, 100, 600000, &c->http_timeout_ms))
                bad = "expected milliseconds, 100..600000";
        } else if (strcmp(name, "http_page_max") == 0) {
            uint64_t v;
            /* A page is one audit entry, which names at most 4096 records. */
            if (u64_value(value, 1, 4096, &v))
                bad = "expected 1..4096";
            c->http_page_max = (uint32_t)v;
        } else if (strcmp(name, "skew_ms") == 0) {
            if (u64_value(value, 1000, 86400000, &c->skew_ms))
                bad = "expected milliseconds, 1000..86400000";
        } else if (strcmp(name, "heartbeat_ms") == 0) {
            if (u64_value(value, 50, 60000, &c->heartbeat_ms))
                bad = "expected milliseconds, 50..60000";
        } else if (strcmp(name, "timeout_ms") == 0) {
            if (u64_value(value, 200, 600000, &c->timeout_ms))
                bad = "expected milliseconds, 200..600000";
        } else if (strcmp(name, "antientropy_ms") == 0) {
            if (u64_value(value, 500, 86400000, &c->antientropy_ms))
                bad = "expected milliseconds, 500..86400000";
        } else if (strcmp(name, "batch") == 0) {
            uint64_t v;
            if (u64_value(value, 1, 10000, &v))
                bad = "expected 1..10000";
            c->batch = (uint32_t)v;
        } else if (strcmp(name, "window") == 0) {
            uint64_t v;
            if (u64_value(value, 1, 64, &v))
                bad = "expected 1..64";
            c->window = (uint32_t)v;
        } else if (strcmp(name, "reconnect_fast_ms") == 0) {
            if (u64_value(value, 0, 86400000, &c->reconnect_fast_ms))
                bad = "expected milliseconds, 0..86400000";
        } else if (strcmp(name, "reconnect_slow_ms") == 0) {
            if (u64_value(value, 100, 3600000, &c->reconnect_slow_ms))
                bad = "expected milliseconds, 100..3600000";
        } else {
            bad = "unknown key";
        }
    } else if (p->kind == 5) {
        token_t *tk = p->tok;
        static const unsigned char zero[TOKEN_HASHLEN];
        if ((strcmp(name, "role") == 0 && tk->role[0])
            || (strcmp(name, "hash") == 0 && memcmp(tk->hash, zero, TOKEN_HASHLEN))
            || (strcmp(name, "scope") == 0 && tk->scope)) {
            bad = "set twice (is the token's section there twice?)";
        } else if (strcmp(name, "role") == 0) {
            bool known = false;
            for (size_t i = 0; pb_roles[i] && !known; i++)
                known = strcmp(pb_roles[i], value) == 0;
            if (!known)
                bad = "unknown role (see the access policy's roles)";
            snprintf(tk->role, sizeof tk->role, "%s", value);
        } else if (strcmp(name, "hash") == 0) {
            if (hex_decode(value, tk->hash, TOKEN_HASHLEN))
                bad = "expected the 64-character hex hash `lianxin token add` writes";
        } else if (strcmp(name, "scope") == 0) {
            if (code_parse(value, &tk->scope))
                bad = "not a 12-digit division code";
        } else {
            bad = "unknown key";
        }
    } else if (p->kind >= 2) {
        peer_t *pe = p->cur;
        if (strcmp(name, "code") == 0 && p->kind == 2) {
            if (code_parse(value, &pe->code))
                bad = "not a 12-digit division code";
        } else if (strcmp(name, "name") == 0) {
            snprintf(pe->name, sizeof pe->name, "%s", value);
        } else if (strcmp(name, "zmq") == 0 && p->kind == 2) {
            if (strncmp(value, "tcp://", 6) != 0 && strncmp(value, "ipc://", 6) != 0)
                bad = "expected tcp://HOST:PORT";
            snprintf(pe->zmq, sizeof pe->zmq, "%s", value);
        } else if (strcmp(name, "curve_pub") == 0 && p->kind != 4) {
            if (!z85_ok(value))
                bad = "expected a 40-character Z85 CURVE public key";
            snprintf(pe->curve_pub, sizeof pe->curve_pub, "%s", value);
        } else if (strcmp(name, "sign_pub") == 0) {
            if (hex_decode(value, pe->sign_pub, SIGN_PUBLEN))
                bad = "expected a 64-character hex Ed25519 public key";
            pe->has_sign = true;
        } else {
            bad = "unknown key";
        }
    } else {
        bad = "key outside a section";
    }
    if (bad) {
        why_set(p->why, LX_EINVAL, "[%s] %s: %s", section, name, bad);
        return 0;
    }
    return 1;
}

typedef struct {
    ini_item_fn fn;
    void *user;
    char section[256];   /* the section of the last key */
    char **seen;         /* the sections reported, in order */
    size_t nseen;
    bool nomem;
} sections_t;

static int on_key(void *user, const char *section, const char *name, const char *value)
{
    sections_t *x = user;
    if (strcmp(x->section, section) != 0 || !x->section[0]) {
        snprintf(x->section, sizeof x->section, "%s", section);
        char **ns = realloc(x->seen, (x->nseen + 1) * sizeof *ns);
        if (!ns || !(ns[x->nseen] = strdup(section))) {
            x->seen = ns ? ns : x->seen;
            x->nomem = true;
            return 0;
        }
        x->seen = ns;
        x->nseen++;
        if (!x->fn(x->user, section, NULL, NULL))
            return 0;
    }
    return x->fn(x->user, section, name, value);
}

const char *ini_header(const char *line, char name[INI_SECTION_MAX + 1])
{
    const char *h = line + strspn(line, " \t"), *end;
    if (*h != '[' || !(end = strchr(h + 1, ']')))
        return NULL;
    size_t n = (size_t)(end - (h + 1));
    n = n > INI_SECTION_MAX ? INI_SECTION_MAX : n;
    memcpy(name, h + 1, n);
    name[n] = '\0';
    return name;
}

/* The text's section headers as inih reads them (after a UTF-8 BOM, and
 * not an indented line after a key, which goes on that key's value)
 * against the sections it reported, each in turn. A header that does not
 * come in its turn was not reported: a section with no keys, or one that
 * follows itself (inih reads the two as one; a section named again
 * further on is reported again, and left to the caller). Returns the
 * line of the first such header, or 0. The text is cut into lines. */
static int check_headers(char *text, size_t len, const sections_t *x, why_t *why)
{
    char (*heads)[INI_SECTION_MAX + 1] = NULL, h[INI_SECTION_MAX + 1];
    size_t nh = 0, j = 0, at = len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
    int bad = 0;
    bool after_key = false;
    for (int no = 1; !bad && at < len; no++) {
        char *line = text + at, *nl = memchr(line, '\n', len - at);  /* ended in place */
        at = nl ? (size_t)(nl - text) + 1 : len;
        if (nl)
            *nl = '\0';
        const char *p = line + strspn(line, " \t\r");
        if (!*p || *p == ';' || *p == '#' || (p > line && after_key))
            continue;
        after_key = *p != '[';
        if (!ini_header(p, h))
            continue;
        bool twice = false;
        for (size_t i = 0; i < nh && !twice; i++)
            twice = strcmp(heads[i], h) == 0;
        char (*nhs)[INI_SECTION_MAX + 1] = realloc(heads, (nh + 1) * sizeof *nhs);
        if (!nhs) {
            why_set(why, LX_ENOMEM, "out of memory");
            bad = no;
            break;
        }
        heads = nhs;
        memcpy(heads[nh++], h, sizeof h);
        if (j < x->nseen && strcmp(x->seen[j], h) == 0)
            j++;
        else if (twice)
            why_set(why, LX_EINVAL, "[%s]: the section follows itself (the two would be "
                    "read as one)", h);
        else
            why_set(why, LX_EINVAL, "[%s]: a section with no keys", h);
        if (why->msg[0])
            bad = no;
    }
    free(heads);
    return bad;
}

/* inih's reader over a text in memory: fgets's contract (a line, its
 * newline kept, at most num - 1 bytes; NULL at the end). */
typedef struct {
    const char *p, *end;
} text_rd_t;

static char *text_gets(char *str, int num, void *stream)
{
    text_rd_t *r = stream;
    if (r->p >= r->end || num < 2)
        return NULL;
    size_t n = (size_t)(r->end - r->p), max = (size_t)num - 1;
    const char *nl = memchr(r->p, '\n', n < max ? n : max);
    n = nl ? (size_t)(nl - r->p) + 1 : (n < max ? n : max);
    memcpy(str, r->p, n);
    str[n] = '\0';
    r->p += n;
    return str;
}

int ini_parse_sections(const char *path, ini_item_fn fn, void *user, why_t *why)
{
    /* Read once: inih and the header check see the same text, even when
     * the file is rewritten meanwhile (token add, under a running node). */
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char *text = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            char *nt = realloc(text, cap = cap ? 2 * cap : 4096);
            if (!nt)
                break;
            text = nt;
        }
        size_t got = fread(text + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    bool failed = !text || ferror(f) || !feof(f);
    fclose(f);
    if (failed) {
        free(text);
        return -1;
    }
    sections_t x = {.fn = fn, .user = user};
    text_rd_t rd = {text, text + len};
    int line = ini_parse_stream(text_gets, &rd, on_key, &x);
    if (line > 0 && x.nomem && !why->msg[0])
        why_set(why, LX_ENOMEM, "out of memory");
    if (line == 0)
        line = check_headers(text, len, &x, why);
    for (size_t i = 0; i < x.nseen; i++)
        free(x.seen[i]);
    free(x.seen);
    free(text);
    return line;
}

/* The first line of a key file; a secret one must be readable by its
 * owner only. */
static int read_key_line(const char *path, bool secret, char *buf, size_t n, why_t *why)
{
    struct stat st;
    if (stat(path, &st))
        return why_set(why, LX_ENOTFOUND, "%s: %s", path, strerror(errno));
    if (secret && (st.st_mode & 077))
        return why_set(why, LX_EINVAL, "%s: mode %03o, a secret key must be 0600",
                       path, (unsigned)(st.st_mode & 0777));
    FILE *f = fopen(path, "r");
    buf[0] = '\0';
    if (!f || !fgets(buf, (int)n, f)) {
        if (f)
            fclose(f);
        return why_set(why, LX_EIO, "%s: cannot read", path);
    }
    fclose(f);
    buf[strcspn(buf, "\r\n")] = '\0';
    return LX_OK;
}

int keys_read_z85(const char *path, bool secret, char out[Z85_KEYLEN + 1], why_t *why)
{
    char buf[128];
    int rc = read_key_line(path, secret, buf, sizeof buf, why);
    if (!rc && !z85_ok(buf))
        rc = why_set(why, LX_EINVAL, "%s: not a Z85 CURVE key", path);
    if (!rc)
        memcpy(out, buf, Z85_KEYLEN + 1);
    sodium_memzero(buf, sizeof buf);
    return rc;
}

int keys_read_hex(const char *path, bool secret, unsigned char *out, size_t n, why_t *why)
{
    char buf[300];
    int rc = read_key_line(path, secret, buf, sizeof buf, why);
    if (!rc && hex_decode(buf, out, n))
        rc = why_set(why, LX_EINVAL, "%s: not a hex key of %zu bytes", path, n);
    sodium_memzero(buf, sizeof buf);
    return rc;
}

int config_load(const char *path, node_config_t **out, why_t *why)
{
    if (sodium_init() < 0)
        return why_set(why, LX_EIO, "libsodium failed to initialise");
    node_config_t *c = calloc(1, sizeof *c);
    if (!c)
        return LX_ENOMEM;
    snprintf(c->file, sizeof c->file, "%s", path);
    c->skew_ms = 5 * 60 * 1000;
    c->heartbeat_ms = 1000;
    c->timeout_ms = 5000;
    c->antientropy_ms = 60000;
    c->batch = 1000;
    c->window = 16;
    c->reconnect_fast_ms = 60000;
    c->reconnect_slow_ms = 10000;
    c->http_body_max = 1 << 20;
    c->http_timeout_ms = 10000;
    c->http_page_max = 500;
    parse_t p = {.c = c, .why = why};
    snprintf(p.dir, sizeof p.dir, "%s", path);
    char *slash = strrchr(p.dir, '/');
    if (slash)
        *slash = '\0';
    else
        p.dir[0] = '\0';
    why_t local = {""};
    if (!why)
        p.why = why = &local;
    why->msg[0] = '\0';
    int line = ini_parse_sections(path, on_item, &p, why);
    int rc = LX_OK;
    if (line < 0)
        rc = why_set(why, LX_ENOTFOUND, "%s: cannot open", path);
    else if (line > 0)
        rc = why_prefix(why, LX_EINVAL, "%s line %d", path, line);
    else if (!c->code)
        rc = why_set(why, LX_EINVAL, "%s: [node] code is required", path);
    else if (!c->data[0])
        rc = why_set(why, LX_EINVAL, "%s: [node] data is required", path);
    else if (!c->keys[0])
        rc = why_set(why, LX_EINVAL, "%s: [node] keys is required", path);
    else if (c->has_parent && (!c->parent.code || !c->parent.zmq[0] || !c->parent.curve_pub[0]))
        rc = why_set(why, LX_EINVAL, "%s: [parent] needs code, zmq and curve_pub", path);
    else if (c->has_parent && code_parent(c->code) && !code_contains(c->parent.code, c->code))
        rc = why_set(why, LX_EINVAL, "%s: [parent] code is not above this node", path);
    else if (c->nchildren && !c->bind[0])
        rc = why_set(why, LX_EINVAL, "%s: [node] bind is required when children are listed", path);
    if (!rc && c->heartbeat_ms * 2 > c->timeout_ms)
        rc = why_set(why, LX_EINVAL, "%s: [node] timeout_ms must be at least twice heartbeat_ms", path);
    for (size_t i = 0; !rc && i < c->ntokens; i++) {
        token_t *tk = &c->tokens[i];
        static const unsigned char zero[TOKEN_HASHLEN];
        char cs[CODE_STRLEN + 1];
        if (!tk->role[0] || !memcmp(tk->hash, zero, TOKEN_HASHLEN))
            rc = why_set(why, LX_EINVAL, "%s: [token %s] needs role and hash", path, tk->name);
        else if (!tk->scope)
            tk->scope = c->code;
        else if (!code_contains(c->code, tk->scope))
            rc = why_set(why, LX_EINVAL, "%s: [token %s] scope %s is not in this node's subtree",
                         path, tk->name, code_fmt(tk->scope, cs));
    }
    if (!rc && c->http[0] && c->http_plain && strncmp(c->http, "127.0.0.1:", 10) != 0)
        rc = why_set(why, LX_EINVAL, "%s: [node] http_plain is allowed only on 127.0.0.1", path);
    if (!rc && c->http[0] && !c->http_plain && (!c->tls_cert[0] || !c->tls_key[0]))
        rc = why_set(why, LX_EINVAL, "%s: [node] http needs tls_cert and tls_key (or "
                     "http_plain = true on 127.0.0.1)", path);
    if (!rc && c->http[0] && !c->http_plain) {
        struct stat st;
        if (stat(c->tls_key, &st))
            rc = why_set(why, LX_ENOTFOUND, "%s: %s", c->tls_key, strerror(errno));
        else if (st.st_mode & 077)
            rc = why_set(why, LX_EINVAL, "%s: mode %03o, a secret key must be 0600",
                         c->tls_key, (unsigned)(st.st_mode & 0777));
    }
    for (size_t i = 0; !rc && i < c->nchildren; i++) {
        char cs[CODE_STRLEN + 1];
        for (size_t j = 0; !rc && j < i; j++)
            if (c->children[j].code == c->children[i].code)
                rc = why_set(why, LX_EINVAL, "%s: [child %s] appears twice", path,
                             code_fmt(c->children[i].code, cs));
        if (rc)
            break;
        if (!code_contains(c->code, c->children[i].code) || c->children[i].code == c->code)
            rc = why_set(why, LX_EINVAL, "%s: [child %s] is not below this node", path,
                         code_fmt(c->children[i].code, cs));
        else if (!c->children[i].curve_pub[0])
            rc = why_set(why, LX_EINVAL, "%s: [child %s] curve_pub is required", path,
                         code_fmt(c->children[i].code, cs));
    }
    char kp[4200];
    if (!rc) {
        snprintf(kp, sizeof kp, "%s/curve.key", c->keys);
        rc = keys_read_z85(kp, true, c->curve_sec, why);
    }
    if (!rc) {
        snprintf(kp, sizeof kp, "%s/curve.pub", c->keys);
        rc = keys_read_z85(kp, false, c->curve_pub, why);
    }
    if (!rc) {
        snprintf(kp, sizeof kp, "%s/sign.key", c->keys);
        rc = keys_read_hex(kp, true, c->sign_sec, SIGN_SECLEN, why);
    }
    if (!rc) {
        snprintf(kp, sizeof kp, "%s/sign.pub", c->keys);
        rc = keys_read_hex(kp, false, c->sign_pub, SIGN_PUBLEN, why);
    }
    if (rc) {
        config_free(&c);
        return rc;
    }
    *out = c;
    return LX_OK;
}

void config_free(node_config_t **self_p)
{
    node_config_t *c = *self_p;
    if (!c)
        return;
    sodium_memzero(c->curve_sec, sizeof c->curve_sec);
    sodium_memzero(c->sign_sec, sizeof c->sign_sec);
    free(c->children);
    free(c->ancestors);
    if (c->tokens)
        sodium_memzero(c->tokens, c->ntokens * sizeof *c->tokens);
    free(c->tokens);
    free(c);
    *self_p = NULL;
}

bool token_name_ok(const char *nm)
{
    /* "[token NAME]" must fit the 49 bytes inih keeps of a section's
     * name, or the name would come back cut. */
    size_t n = strlen(nm);
    bool ok = n > 0 && n <= TOKEN_NAME_MAX && n < sizeof ((token_t *)0)->name;
    for (size_t i = 0; ok && i < n; i++)
        ok = (nm[i] >= 'a' && nm[i] <= 'z') || (nm[i] >= '0' && nm[i] <= '9') || nm[i] == '-'
             || nm[i] == '_' || nm[i] == '.';
    return ok;
}

void token_hash(const char *secret, unsigned char hash[TOKEN_HASHLEN])
{
    static const char ctx[] = "lianxin-token-v1";
    crypto_generichash(hash, TOKEN_HASHLEN, (const unsigned char *)secret, strlen(secret),
                       (const unsigned char *)ctx, sizeof ctx - 1);
}

void token_make(char secret[48], unsigned char hash[TOKEN_HASHLEN])
{
    unsigned char raw[32];
    randombytes_buf(raw, sizeof raw);
    memcpy(secret, "lx_", 3);
    sodium_bin2base64(secret + 3, 45, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof raw);
    token_hash(secret, hash);
}

const token_t *config_token(const node_config_t *c, const char *secret)
{
    unsigned char h[TOKEN_HASHLEN];
    const token_t *found = NULL;
    token_hash(secret, h);
    for (size_t i = 0; i < c->ntokens; i++)
        if (sodium_memcmp(h, c->tokens[i].hash, TOKEN_HASHLEN) == 0)
            found = &c->tokens[i];
    return found;
}

const peer_t *config_child(const node_config_t *c, code_t code)
{
    for (size_t i = 0; i < c->nchildren; i++)
        if (c->children[i].code == code)
            return &c->children[i];
    return NULL;
}

/* Writes a whole new file with exactly `mode` (the umask does not apply). */
static int write_new(const char *path, const char *data, mode_t mode, why_t *why)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        return why_set(why, errno == EEXIST ? LX_EEXIST : LX_EIO, "%s: %s", path, strerror(errno));
    size_t n = strlen(data);
    if (fchmod(fd, mode) || write(fd, data, n) != (ssize_t)n || fsync(fd)) {
        int e = errno;
        close(fd);
        unlink(path);
        return why_set(why, LX_EIO, "%s: %s", path, strerror(e));
    }
    close(fd);
    return LX_OK;
}

int keys_generate(const char *dir, why_t *why)
{
    if (sodium_init() < 0)
        return why_set(why, LX_EIO, "libsodium failed to initialise");
    if (mkdir(dir, 0700) && errno != EEXIST)
        return why_set(why, LX_EIO, "%s: %s", dir, strerror(errno));
    char cpub[Z85_KEYLEN + 2], csec[Z85_KEYLEN + 2]; /* the key, a newline */
    if (zmq_curve_keypair(cpub, csec))
        return why_set(why, LX_EIO, "CURVE key generation failed: %s", zmq_strerror(errno));
    unsigned char spk[crypto_sign_PUBLICKEYBYTES], ssk[crypto_sign_SECRETKEYBYTES];
    crypto_sign_keypair(spk, ssk);
    char spkh[2 * sizeof spk + 2], sskh[2 * sizeof ssk + 2];
    sodium_bin2hex(spkh, sizeof spkh, spk, sizeof spk);
    sodium_bin2hex(sskh, sizeof sskh, ssk, sizeof ssk);
    sodium_memzero(ssk, sizeof ssk);
    strcat(cpub, "\n");
    strcat(csec, "\n");
    strcat(spkh, "\n");
    strcat(sskh, "\n");
    struct { const char *name, *data; mode_t mode; } files[] = {
        {"curve.pub", cpub, 0644}, {"curve.key", csec, 0600},
        {"sign.pub", spkh, 0644}, {"sign.key", sskh, 0600},
    };
    int rc = LX_OK;
    size_t i;
    char path[4200];
    for (i = 0; i < 4 && !rc; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i].name);
        rc = write_new(path, files[i].data, files[i].mode, why);
    }
    sodium_memzero(csec, sizeof csec);
    sodium_memzero(sskh, sizeof sskh);
    for (size_t j = 0; rc && j + 1 < i; j++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[j].name);
        unlink(path);
    }
    return rc;
}
