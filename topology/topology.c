#include "topology.h"
#include "config/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "common/linkstate.h"
#include "common/policy.h"
#include "common/store.h"
#include "config/config.h"

typedef struct {
    topology_t *t;
    why_t *why;
    tnode_t *cur;
} tparse_t;

/* "HOST:PORT" with a host and a port of 1..65535, as node.ini takes it:
 * a topology that renders must give configurations that load. */
static bool host_port(const char *s)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || !colon[1] || strlen(colon + 1) > 5)
        return false;
    long port = 0;
    for (const char *d = colon + 1; *d; d++) {
        if (*d < '0' || *d > '9')
            return false;
        port = port * 10 + (*d - '0');
    }
    return port >= 1 && port <= 65535;
}

static int on_item(void *user, const char *section, const char *name, const char *value)
{
    tparse_t *p = user;
    topology_t *t = p->t;
    if (!name) {
        p->cur = NULL;
        if (strcmp(section, "tree") == 0)
            return 1;
        if (strncmp(section, "node ", 5) != 0) {
            why_set(p->why, LX_EINVAL, "[%s]: unknown section", section);
            return 0;
        }
        code_t c;
        if (code_parse(section + 5, &c)) {
            why_set(p->why, LX_EINVAL, "[%s]: not a 12-digit division code", section);
            return 0;
        }
        for (size_t i = 0; i < t->n; i++)
            if (t->nodes[i].code == c) {
                why_set(p->why, LX_EINVAL, "[%s]: the node appears twice", section);
                return 0;
            }
        tnode_t *nn = realloc(t->nodes, (t->n + 1) * sizeof *nn);
        if (!nn)
            return 0;
        t->nodes = nn;
        p->cur = &nn[t->n++];
        memset(p->cur, 0, sizeof *p->cur);
        p->cur->code = c;
        p->cur->parent = -1;
        return 1;
    }
    if (strcmp(section, "tree") == 0) {
        if (strcmp(name, "name") == 0) {
            snprintf(t->name, sizeof t->name, "%s", value);
        } else if (strcmp(name, "base_port") == 0) {
            char *end;
            long v = strtol(value, &end, 10);
            if (*end || v < 1024 || v > 60000) {
                why_set(p->why, LX_EINVAL, "[tree] base_port: expected 1024..60000");
                return 0;
            }
            t->base_port = (int)v;
        } else {
            why_set(p->why, LX_EINVAL, "[tree] %s: unknown key", name);
            return 0;
        }
        return 1;
    }
    if (!p->cur)
        return 0;
    const char *bad = NULL;
    if (strcmp(name, "name") == 0) {
        snprintf(p->cur->name, sizeof p->cur->name, "%s", value);
    } else if (strcmp(name, "zmq") == 0) {
        if (strncmp(value, "tcp://", 6) != 0 || !host_port(value + 6))
            bad = "expected tcp://HOST:PORT";
        snprintf(p->cur->zmq, sizeof p->cur->zmq, "%s", value);
    } else if (strcmp(name, "http") == 0) {
        if (!host_port(value))
            bad = "expected HOST:PORT";
        snprintf(p->cur->http, sizeof p->cur->http, "%s", value);
    } else {
        bad = "unknown key";
    }
    if (bad) {
        why_set(p->why, LX_EINVAL, "[%s] %s: %s", section, name, bad);
        return 0;
    }
    return 1;
}


int topology_load(const char *path, topology_t **out, why_t *why)
{
    topology_t *t = calloc(1, sizeof *t);
    if (!t)
        return LX_ENOMEM;
    t->base_port = 17000;
    why_t local = {""};
    if (!why)
        why = &local;
    why->msg[0] = '\0';
    tparse_t p = {.t = t, .why = why};
    int line = ini_parse_sections(path, on_item, &p, why);
    int rc = LX_OK;
    if (line < 0)
        rc = why_set(why, LX_ENOTFOUND, "%s: cannot open", path);
    else if (line > 0)
        rc = why_prefix(why, LX_EINVAL, "%s line %d", path, line);
    else if (t->n == 0)
        rc = why_set(why, LX_EINVAL, "%s: no [node CODE] sections", path);
    /* Each node's parent: the deepest other node whose subtree holds it. */
    int roots = 0;
    for (size_t i = 0; !rc && i < t->n; i++) {
        int best = -1;
        for (size_t j = 0; j < t->n; j++) {
            if (j == i || !code_contains(t->nodes[j].code, t->nodes[i].code))
                continue;
            if (best < 0 || code_level(t->nodes[j].code) > code_level(t->nodes[best].code))
                best = (int)j;
        }
        t->nodes[i].parent = best;
        if (best < 0)
            roots++;
    }
    if (!rc && roots != 1) {
        /* Named: the first three of them. */
        char list[160] = "", c[CODE_STRLEN + 1];
        for (size_t i = 0, k = 0; i < t->n && k < 3; i++) {
            if (t->nodes[i].parent >= 0)
                continue;
            size_t at = strlen(list);
            snprintf(list + at, sizeof list - at, "%s[node %s]", k++ ? ", " : "",
                     code_fmt(t->nodes[i].code, c));
        }
        rc = why_set(why, LX_EINVAL, "%s: %d nodes have no ancestor in the file (one root "
                     "expected): %s%s", path, roots, list, roots > 3 ? ", ..." : "");
    }
    /* Ports in file order, unless a node names its own. */
    for (size_t i = 0; !rc && i < t->n; i++) {
        if (!t->nodes[i].zmq[0])
            snprintf(t->nodes[i].zmq, sizeof t->nodes[i].zmq, "tcp://127.0.0.1:%d",
                     t->base_port + (int)i);
        if (!t->nodes[i].http[0])
            snprintf(t->nodes[i].http, sizeof t->nodes[i].http, "127.0.0.1:%d",
                     t->base_port + 5000 + (int)i);
    }
    if (rc) {
        topology_free(&t);
        return rc;
    }
    *out = t;
    return LX_OK;
}

void topology_free(topology_t **self_p)
{
    topology_t *t = *self_p;
    if (!t)
        return;
    free(t->nodes);
    free(t);
    *self_p = NULL;
}

/* ---- rendering ---- */

static int write_file(const char *path, const char *data, mode_t mode, bool keep, why_t *why)
{
    if (keep && access(path, F_OK) == 0)
        return LX_OK;
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    size_t n = strlen(data);
    if (fd < 0 || fchmod(fd, mode) || write(fd, data, n) != (ssize_t)n || fsync(fd)) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        unlink(tmp);
        return why_set(why, LX_EIO, "%s: %s", path, strerror(e));
    }
    close(fd);
    if (rename(tmp, path))
        return why_set(why, LX_EIO, "%s: %s", path, strerror(errno));
    return LX_OK;
}

/* Copies the [token NAME] sections of a node.ini rendered before (the
 * departments' API tokens that `lianxin token add` appended) to f, as
 * they are: rendering again must not revoke them. A missing file has
 * none. */
static int keep_tokens(FILE *f, const char *path, why_t *why)
{
    FILE *in = fopen(path, "r");
    if (!in)
        return errno == ENOENT ? LX_OK : why_set(why, LX_EIO, "%s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    bool keep = false;
    char name[INI_SECTION_MAX + 1];
    while (getline(&line, &cap, in) > 0) {
        if (ini_header(line, name)) {
            keep = strncmp(name, "token ", 6) == 0;
            if (keep)
                fputc('\n', f);
        }
        if (keep && line[strspn(line, " \t")] != '\n')
            fputs(line, f);
    }
    int rc = ferror(in) ? why_set(why, LX_EIO, "%s: cannot read", path) : LX_OK;
    free(line);
    fclose(in);
    return rc;
}

/* Makes a node's keys unless they exist. */
static int ensure_keys(const char *dir, why_t *why)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/curve.key", dir);
    return access(path, F_OK) == 0 ? LX_OK : keys_generate(dir, why);
}

typedef struct {
    char curve[Z85_KEYLEN + 1];
    char sign[2 * SIGN_PUBLEN + 1];
    unsigned char sign_bin[SIGN_PUBLEN];
} pubkeys_t;

/* Pins, in node i's store, its own signing key and every ancestor's: the
 * keys its policies are checked against (common/policy.h). Rendering
 * again pins them again, so a store always holds the rendered keys. */
static int pin_keys(const topology_t *t, size_t i, const char *out, const pubkeys_t *pk,
                    why_t *why)
{
    char path[4200], c[CODE_STRLEN + 1];
    snprintf(path, sizeof path, "%s/%s/data", out, code_fmt(t->nodes[i].code, c));
    store_t *s;
    int rc = store_open(path, STORE_NOPOKE, &s, why);
    if (rc)
        return rc;
    stxn_t *tx;
    if ((rc = store_begin(s, true, &tx))) {
        store_close(&s);
        return rc;
    }
    for (int a = (int)i; a >= 0 && !rc; a = t->nodes[a].parent)
        rc = policy_pin_key(tx, t->nodes[a].code, pk[a].sign_bin);
    if (!rc)
        rc = store_commit(&tx);
    store_abort(&tx);
    store_close(&s);
    return rc ? why_set(why, rc, "%s: cannot pin the signing keys: %s", path, err_str(rc)) : LX_OK;
}

/* A store that has never run knows its links from the start, all down,
 * so `lianxin status` shows them before the node first runs. */
static int seed_links(const topology_t *t, size_t i, const char *out, why_t *why)
{
    char path[4200], c[CODE_STRLEN + 1];
    snprintf(path, sizeof path, "%s/%s/data", out, code_fmt(t->nodes[i].code, c));
    store_t *s;
    int rc = store_open(path, STORE_NOPOKE, &s, why);
    if (rc)
        return rc;
    stxn_t *tx;
    links_t old;
    if ((rc = store_begin(s, true, &tx))) {
        store_close(&s);
        return rc;
    }
    if (links_load(tx, &old) == LX_OK) {
        /* Already ran: its own state is the truth. */
        links_free(&old);
        store_abort(&tx);
        store_close(&s);
        return LX_OK;
    }
    linkstate_t ls[1 + 256];
    links_t l = {.links = ls};
    if (t->nodes[i].parent >= 0)
        ls[l.n++] = (linkstate_t){.code = t->nodes[t->nodes[i].parent].code, .is_parent = true};
    for (size_t j = 0; j < t->n && l.n < 257; j++)
        if (t->nodes[j].parent == (int)i)
            ls[l.n++] = (linkstate_t){.code = t->nodes[j].code};
    rc = links_save(tx, &l);
    if (!rc)
        rc = store_commit(&tx);
    store_abort(&tx);
    store_close(&s);
    return rc;
}

int topology_render(const topology_t *t, const char *out, why_t *why)
{
    if (sodium_init() < 0)
        return why_set(why, LX_EIO, "libsodium failed to initialise");
    if (mkdir(out, 0755) && errno != EEXIST)
        return why_set(why, LX_EIO, "%s: %s", out, strerror(errno));
    pubkeys_t *pk = calloc(t->n, sizeof *pk);
    if (!pk)
        return LX_ENOMEM;
    int rc = LX_OK;
    char path[4200], dir[4200], c[CODE_STRLEN + 1];
    /* Keys and stores first: every configuration names its peers' keys. */
    for (size_t i = 0; i < t->n && !rc; i++) {
        code_fmt(t->nodes[i].code, c);
        snprintf(dir, sizeof dir, "%s/%s", out, c);
        if (mkdir(dir, 0700) && errno != EEXIST) {
            rc = why_set(why, LX_EIO, "%s: %s", dir, strerror(errno));
            break;
        }
        snprintf(path, sizeof path, "%s/keys", dir);
        if ((rc = ensure_keys(path, why)))
            break;
        char kp[4300], cp[4300], host[256];
        snprintf(host, sizeof host, "%s", t->nodes[i].http);
        char *colon = strrchr(host, ':');
        if (colon)
            *colon = '\0';
        snprintf(kp, sizeof kp, "%s/http.key", path);
        snprintf(cp, sizeof cp, "%s/http.crt", path);
        rc = tls_make_cert(kp, cp, c, host, why);
        if (rc == LX_EEXIST)
            rc = LX_OK;
        if (rc)
            break;
        unsigned char sp[SIGN_PUBLEN];
        snprintf(kp, sizeof kp, "%s/curve.pub", path);
        if ((rc = keys_read_z85(kp, false, pk[i].curve, why)))
            break;
        snprintf(kp, sizeof kp, "%s/sign.pub", path);
        if ((rc = keys_read_hex(kp, false, sp, SIGN_PUBLEN, why)))
            break;
        sodium_bin2hex(pk[i].sign, sizeof pk[i].sign, sp, SIGN_PUBLEN);
        memcpy(pk[i].sign_bin, sp, SIGN_PUBLEN);
        snprintf(path, sizeof path, "%s/data", dir);
        rc = store_create(path, t->nodes[i].code, why);
        if (rc == LX_EEXIST)
            rc = LX_OK;
    }
    for (size_t i = 0; i < t->n && !rc; i++) {
        const tnode_t *nd = &t->nodes[i];
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (!f) {
            rc = LX_ENOMEM;
            break;
        }
        bool has_children = false;
        for (size_t j = 0; j < t->n; j++)
            has_children |= t->nodes[j].parent == (int)i;
        code_fmt(nd->code, c);
        fprintf(f, "; Rendered from the topology \"%s\" by `lianxin topology render`.\n"
                   "[node]\ncode = %s\nname = %s\ndata = data\nkeys = keys\n",
                t->name, c, nd->name);
        if (has_children)
            fprintf(f, "bind = %s\n", nd->zmq);
        fprintf(f, "http = %s\ntls_cert = keys/http.crt\ntls_key = keys/http.key\n", nd->http);
        if (nd->parent >= 0) {
            const tnode_t *p = &t->nodes[nd->parent];
            fprintf(f, "\n[parent]\ncode = %s\nname = %s\nzmq = %s\ncurve_pub = %s\nsign_pub = %s\n",
                    code_fmt(p->code, c), p->name, p->zmq, pk[nd->parent].curve,
                    pk[nd->parent].sign);
            /* The signing keys of every ancestor above, pinned. */
            for (int a = p->parent; a >= 0; a = t->nodes[a].parent)
                fprintf(f, "\n[ancestor %s]\nname = %s\nsign_pub = %s\n",
                        code_fmt(t->nodes[a].code, c), t->nodes[a].name, pk[a].sign);
        }
        for (size_t j = 0; j < t->n; j++) {
            if (t->nodes[j].parent != (int)i)
                continue;
            fprintf(f, "\n[child %s]\nname = %s\ncurve_pub = %s\nsign_pub = %s\n",
                    code_fmt(t->nodes[j].code, c), t->nodes[j].name, pk[j].curve, pk[j].sign);
        }
        code_fmt(nd->code, c);
        snprintf(path, sizeof path, "%s/%s/node.ini", out, c);
        rc = keep_tokens(f, path, why);
        fclose(f);
        if (!rc)
            rc = write_file(path, buf, 0644, false, why);
        free(buf);
        if (!rc)
            rc = seed_links(t, i, out, why);
        if (!rc)
            rc = pin_keys(t, i, out, pk, why);
    }
    /* The list of nodes, root first, for scripts. */
    if (!rc) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        for (int lvl = LEVEL_PROVINCE; f && lvl <= LEVEL_VILLAGE; lvl++)
            for (size_t i = 0; i < t->n; i++)
                if ((int)code_level(t->nodes[i].code) == lvl)
                    fprintf(f, "%s %s %s\n", code_fmt(t->nodes[i].code, c),
                            level_name(code_level(t->nodes[i].code)), t->nodes[i].zmq);
        if (f)
            fclose(f);
        snprintf(path, sizeof path, "%s/nodes.txt", out);
        rc = buf ? write_file(path, buf, 0644, false, why) : LX_ENOMEM;
        free(buf);
    }
    free(pk);
    return rc;
}
