/* Commands about the store as a whole: keygen, init, digest, backup,
 * status, conflicts. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "common/linkstate.h"
#include "config/config.h"
#include "common/recjson.h"

#define OPT_HELP {"help", no_argument, 0, 'h'}

int cmd_keygen(int argc, char **argv)
{
    static const char *U = "lianxin keygen --out DIR";
    static struct option opts[] = {{"out", required_argument, 0, 'o'}, OPT_HELP, {0}};
    const char *out = NULL;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        if (ch == 'o')
            out = optarg;
        else if (ch == 'h')
            return printf("usage: %s\nWrites curve.pub, curve.key (0600), "
                          "sign.pub and sign.key (0600) into DIR.\n", U), 0;
        else
            return cli_usage("keygen", U, "bad option");
    }
    if (!out)
        return cli_usage("keygen", U, "--out is required");
    why_t why = {""};
    if (keys_generate(out, &why))
        return cli_fail("keygen", "%s", why.msg);
    char path[4200], pub[Z85_KEYLEN + 1];
    snprintf(path, sizeof path, "%s/curve.pub", out);
    if (keys_read_z85(path, false, pub, &why))
        return cli_fail("keygen", "%s", why.msg);
    printf("%s\n", pub);
    return 0;
}

int cmd_init(int argc, char **argv)
{
    static const char *U = "lianxin init --data DIR --code CODE";
    static struct option opts[] = {{"data", required_argument, 0, 'd'},
                                   {"code", required_argument, 0, 'c'}, OPT_HELP, {0}};
    const char *data = NULL, *code_s = NULL;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "d:c:h", opts, NULL)) != -1) {
        if (ch == 'd')
            data = optarg;
        else if (ch == 'c')
            code_s = optarg;
        else if (ch == 'h')
            return printf("usage: %s\nCreates an empty store for the node with "
                          "that 12-digit division code.\n", U), 0;
        else
            return cli_usage("init", U, "bad option");
    }
    if (!data || !code_s)
        return cli_usage("init", U, "--data and --code are required");
    code_t code;
    if (code_parse(code_s, &code))
        return cli_fail("init", "--code %s: not a 12-digit division code", code_s);
    why_t why = {""};
    int rc = store_create(data, code, &why);
    if (rc)
        return cli_fail("init", "%s", why.msg);
    printf("initialised %s store for %s at %s\n", level_name(code_level(code)),
           code_s, data);
    return 0;
}

/* Parses --data DIR [--json] [--subtree CODE] shared by the read commands. */
typedef struct {
    const char *data;
    bool json;
    const char *subtree;
} readopts_t;

static int parse_read(const char *cmd, const char *U, const char *help,
                      int argc, char **argv, readopts_t *o, bool subtree)
{
    static struct option opts[] = {{"data", required_argument, 0, 'd'},
                                   {"json", no_argument, 0, 'j'},
                                   {"subtree", required_argument, 0, 's'},
                                   OPT_HELP, {0}};
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "d:js:h", opts, NULL)) != -1) {
        if (ch == 'd')
            o->data = optarg;
        else if (ch == 'j')
            o->json = true;
        else if (ch == 's' && subtree)
            o->subtree = optarg;
        else if (ch == 'h') {
            printf("usage: %s\n%s\n", U, help);
            return -1;
        } else
            return cli_usage(cmd, U, "bad option");
    }
    if (optind < argc)
        return cli_usage(cmd, U, "unexpected argument '%s'", argv[optind]);
    if (!o->data)
        return cli_usage(cmd, U, "--data is required");
    return 0;
}

int cmd_digest(int argc, char **argv)
{
    static const char *U = "lianxin digest --data DIR [--subtree CODE]";
    readopts_t o = {0};
    int rc = parse_read("digest", U, "Prints the hex digest of the live state "
                        "under CODE (default: the node's subtree).", argc, argv, &o, true);
    if (rc)
        return rc < 0 ? 0 : rc;
    code_t under = 0;
    if (o.subtree && code_parse(o.subtree, &under))
        return cli_fail("digest", "--subtree %s: not a 12-digit division code", o.subtree);
    store_t *s = cli_open("digest", o.data, STORE_RDONLY);
    if (!s)
        return 1;
    stxn_t *t;
    unsigned char d[STORE_DIGEST_LEN];
    rc = store_begin(s, false, &t);
    if (!rc) {
        rc = store_digest(t, under, d);
        store_abort(&t);
    }
    store_close(&s);
    if (rc)
        return cli_fail("digest", "%s", err_str(rc));
    char hex[2 * STORE_DIGEST_LEN + 1];
    sodium_bin2hex(hex, sizeof hex, d, sizeof d);
    printf("%s\n", hex);
    return 0;
}

/* fsync of the directory that holds path. */
static int sync_parent(const char *path, why_t *why)
{
    char parent[4200];
    cli_beside(path, ".", parent, sizeof parent);
    int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = fd < 0 || fsync(fd) ? why_set(why, LX_EIO, "%s: %s", parent, strerror(errno)) : 0;
    if (fd >= 0)
        close(fd);
    return rc;
}

int cmd_backup(int argc, char **argv)
{
    static const char *U = "lianxin backup --data DIR --out DIR";
    static struct option opts[] = {{"data", required_argument, 0, 'd'},
                                   {"out", required_argument, 0, 'o'}, OPT_HELP, {0}};
    const char *data = NULL, *out = NULL;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "d:o:h", opts, NULL)) != -1) {
        if (ch == 'd')
            data = optarg;
        else if (ch == 'o')
            out = optarg;
        else if (ch == 'h')
            return printf("usage: %s\nWrites a consistent copy of the store to DIR/data.mdb, mode 0600, while the\n"
                          "node runs on. DIR is created mode 0700 (an existing empty one keeps its\n"
                          "mode). To come back from it: stop the node, put DIR in place of its data\n"
                          "directory and start it; it takes from its parent what was written since.\n",
                          U), 0;
        else
            return cli_usage("backup", U, "bad option");
    }
    if (optind < argc)
        return cli_usage("backup", U, "unexpected argument '%s'", argv[optind]);
    if (!data || !out)
        return cli_usage("backup", U, "--data and --out are required");
    store_t *s = cli_open("backup", data, STORE_RDONLY);
    if (!s)
        return 1;
    bool made = mkdir(out, 0700) == 0;
    if (!made && errno != EEXIST) {
        store_close(&s);
        return cli_fail("backup", "%s: %s", out, strerror(errno));
    }
    why_t why = {""};
    int rc = store_backup(s, out, &why);
    store_close(&s);
    /* The new directory's name made durable too; and none left behind
     * by a backup that failed. */
    if (!rc && made && sync_parent(out, &why))
        rc = LX_EIO;
    if (rc && made)
        rmdir(out);
    if (rc)
        return cli_fail("backup", "%s", why.msg[0] ? why.msg : err_str(rc));
    /* Counted in the copy: what it holds, and that it opens as a store. */
    store_stats_t st = {0};
    stxn_t *t;
    if (!(s = cli_open("backup", out, STORE_RDONLY)))
        return 1;
    rc = store_begin(s, false, &t);
    if (!rc) {
        store_stats(t, &st);
        store_abort(&t);
    }
    store_close(&s);
    if (rc)
        return cli_fail("backup", "%s: %s", out, err_str(rc));
    printf("backed up %s (%llu records) to %s/data.mdb\n", data,
           (unsigned long long)st.records, out);
    return 0;
}

int cmd_status(int argc, char **argv)
{
    static const char *U = "lianxin status --data DIR [--json]";
    readopts_t o = {0};
    int rc = parse_read("status", U, "Shows the node's code, level, record count, log "
                        "position, links\n(connected, unacknowledged entries) and refusals.",
                        argc, argv, &o, false);
    if (rc)
        return rc < 0 ? 0 : rc;
    store_t *s = cli_open("status", o.data, STORE_RDONLY);
    if (!s)
        return 1;
    stxn_t *t;
    nodestate_t ns = {0};
    rc = store_begin(s, false, &t);
    if (!rc)
        rc = nodestate_load(t, &ns);
    store_abort(&t);
    bool alive = ns.have_links && node_running(o.data);
    const store_stats_t *st = &ns.st;
    const links_t *lk = &ns.lk;
    code_t code = store_code(s);
    store_close(&s);
    if (rc) {
        nodestate_free(&ns);
        return cli_fail("status", "%s", err_str(rc));
    }
    char c[CODE_STRLEN + 1], when[48], lc[CODE_STRLEN + 1];
    code_fmt(code, c);
    if (o.json) {
        json_t *j = nodestate_json(&ns, code, alive);
        json_dumpf(j, stdout, JSON_INDENT(2));
        putchar('\n');
        json_decref(j);
    } else {
        printf("node        %s (%s)%s\n", c, level_name(code_level(code)),
               ns.have_links ? (alive ? ", running" : ", not running") : "");
        printf("records     %llu in %llu villages\n", (unsigned long long)st->records,
               (unsigned long long)st->villages);
        /* The sequence number, not a count: each start numbers on past
         * what the last run reserved. */
        printf("log         last entry %llu, last clock %s\n",
               (unsigned long long)st->last_seq, hlc_fmt(st->hlc, when, sizeof when));
        printf("conflicts   %llu\n", (unsigned long long)st->conflicts);
        printf("duplicates  %llu records share an ID number\n",
               (unsigned long long)st->duplicates);
        printf("store       %.1f MiB\n", (double)st->bytes / (1 << 20));
        for (uint32_t i = 0; ns.have_links && i < lk->n; i++) {
            const linkstate_t *l = &lk->links[i];
            printf("%-11s %s %s, %llu unacknowledged, %llu refused",
                   l->is_parent ? "parent" : "child", code_fmt(l->code, lc),
                   alive && l->up ? "connected" : "not connected",
                   (unsigned long long)(ns.unacked ? ns.unacked[i] : 0),
                   (unsigned long long)l->refusals);
            printf(l->reason[0] ? " (last: %s)\n" : "%s\n", l->reason);
        }
        if (ns.have_links)
            printf("refused     %llu (clock skew %llu, malformed %llu), connections denied %llu\n",
                   (unsigned long long)lk->refusals, (unsigned long long)lk->skew,
                   (unsigned long long)lk->malformed, (unsigned long long)lk->denied);
    }
    nodestate_free(&ns);
    return 0;
}

/* Conflicts and duplicates, as text or one JSON object. */
typedef struct {
    bool json;
    json_t *arr;
} listctx_t;

static json_t *field_json(const field_t *f)
{
    char origin[CODE_STRLEN + 1], when[48];
    return json_pack("{s:o, s:s, s:s, s:s}", "value", recjson_value(&f->val),
                     "time", hlc_fmt(f->ver.hlc, when, sizeof when),
                     "origin", code_fmt(f->ver.origin, origin),
                     "author", f->ver.author ? f->ver.author : "");
}

static int conflict_cb(void *arg, const conflict_t *c)
{
    listctx_t *x = arg;
    if (x->json) {
        json_array_append_new(x->arr, json_pack("{s:s, s:I, s:s, s:s, s:o, s:o}",
            "kind", "conflict", "seq", (json_int_t)c->seq, "id", c->id, "field", c->kept->name,
            "kept", field_json(c->kept), "lost", field_json(c->lost)));
        return 0;
    }
    char k[CODE_STRLEN + 1], l[CODE_STRLEN + 1], kt[48], lt[48];
    printf("conflict %llu  %s  %s  kept %s@%s (%s)  over %s@%s (%s)\n",
           (unsigned long long)c->seq, c->id, c->kept->name,
           code_fmt(c->kept->ver.origin, k), hlc_fmt(c->kept->ver.hlc, kt, sizeof kt),
           c->kept->ver.author ? c->kept->ver.author : "",
           code_fmt(c->lost->ver.origin, l), hlc_fmt(c->lost->ver.hlc, lt, sizeof lt),
           c->lost->ver.author ? c->lost->ver.author : "");
    return 0;
}

static int dup_cb(void *arg, const char *idnum, const char *id)
{
    listctx_t *x = arg;
    /* The number is what makes them duplicates; show it masked, as the
     * records themselves are one `child get` away. */
    char masked[40];
    size_t n = strlen(idnum);
    snprintf(masked, sizeof masked, "%.4s**********%s", idnum, n > 4 ? idnum + n - 4 : "");
    if (x->json) {
        json_array_append_new(x->arr, json_pack("{s:s, s:s, s:s}", "kind", "duplicate",
                                                "id_number", masked, "id", id));
        return 0;
    }
    printf("duplicate %s  %s\n", masked, id);
    return 0;
}

int cmd_conflicts(int argc, char **argv)
{
    static const char *U = "lianxin conflicts --data DIR [--json]";
    readopts_t o = {0};
    int rc = parse_read("conflicts", U, "Lists concurrent writes that overwrote "
                        "each other, and records sharing an ID number.",
                        argc, argv, &o, false);
    if (rc)
        return rc < 0 ? 0 : rc;
    store_t *s = cli_open("conflicts", o.data, STORE_RDONLY);
    if (!s)
        return 1;
    stxn_t *t;
    /* --json: one array (CONTRACT: a command that lists prints one JSON
     * array of objects), each object's "kind" a conflict or a duplicate. */
    listctx_t x = {o.json, json_array()};
    rc = store_begin(s, false, &t);
    if (!rc) {
        rc = store_each_conflict(t, conflict_cb, &x);
        if (!rc)
            rc = store_each_duplicate(t, dup_cb, &x);
        store_abort(&t);
    }
    store_close(&s);
    if (!rc && o.json) {
        json_dumpf(x.arr, stdout, JSON_INDENT(2));
        putchar('\n');
    }
    json_decref(x.arr);
    return rc ? cli_fail("conflicts", "%s", err_str(rc)) : 0;
}
