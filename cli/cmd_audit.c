/* lianxin audit verify|list: checks the hash chains of the audit log held
 * by a node (its own and its descendants') and lists their entries. */
#include "cli.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/audit.h"

static const char *U =
    "lianxin audit verify --data DIR [--node CODE] [--json]\n"
    "       lianxin audit list --data DIR [--node CODE] [--principal P] [--record ID]\n"
    "                          [--since T] [--until T] [--json]";

static const char *HELP =
    "Every read and write of a child's data made through a node's API is an entry in\n"
    "that node's audit chain (time, principal, role, action, record ids, purpose,\n"
    "result; never personal values). Chains replicate upward: a node holds its own and\n"
    "those of its subtree.\n"
    "  verify  checks every chain held (--node: those of CODE and the nodes under it);\n"
    "          exit 0 when all verify, else 1 with a line naming the chain's code and\n"
    "          the seq of its first broken entry\n"
    "  list    the entries, filtered by --node (subtree), --principal, --record (an id\n"
    "          among the entry's records) and time: --since T (from T on) and --until T\n"
    "          (before T; a date alone: to the end of that day). T is YYYY-MM-DD or\n"
    "          YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM], local time unless a zone is given.";

typedef struct {
    const char *data, *principal, *record;
    code_t node;
    uint64_t since, until;
    bool json;
} aopts_t;

/* Parses T into ms since the epoch; end: a date alone means the end of
 * that day. Returns 0 or -1. */
static int parse_time(const char *s, bool end, uint64_t *out)
{
    struct tm tm = {0};
    int y, mo, d, h = 0, mi = 0, sec = 0, n = 0;
    if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10)
        return -1;
    const char *p = s + 10;
    bool date_only = *p == '\0', zone = false;
    long off = 0;
    if (!date_only) {
        if (*p != 'T' && *p != ' ')
            return -1;
        p++;
        n = 0;
        if (sscanf(p, "%2d:%2d%n", &h, &mi, &n) != 2 || n != 5)
            return -1;
        p += 5;
        if (*p == ':') {
            n = 0;
            if (sscanf(p, ":%2d%n", &sec, &n) != 1 || n != 3)
                return -1;
            p += 3;
        }
        if (*p == 'Z') {
            zone = true;
            p++;
        } else if (*p == '+' || *p == '-') {
            int zh, zm;
            n = 0;
            if (sscanf(p + 1, "%2d:%2d%n", &zh, &zm, &n) != 2 || n != 5 || zh > 14 || zm > 59)
                return -1;
            off = (zh * 60L + zm) * 60L * (*p == '-' ? -1 : 1);
            zone = true;
            p += 6;
        }
        if (*p)
            return -1;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return -1;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d + (date_only && end ? 1 : 0);
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    tm.tm_isdst = -1;
    time_t t = zone ? timegm(&tm) - off : mktime(&tm);
    if (t < 0)
        return -1;
    *out = (uint64_t)t * 1000;
    return 0;
}

static void fmt_time(uint64_t ms, char out[40])
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    localtime_r(&s, &tm);
    char z[8];
    strftime(z, sizeof z, "%z", &tm);
    size_t k = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + k, 40 - k, ".%03u%.3s:%.2s", (unsigned)(ms % 1000), z, z + 3);
}

static void hex(const unsigned char *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
}

static int parse(const char *cmd, int argc, char **argv, aopts_t *o)
{
    static struct option opts[] = {
        {"data", required_argument, 0, 'd'}, {"node", required_argument, 0, 'n'},
        {"principal", required_argument, 0, 'p'}, {"record", required_argument, 0, 'r'},
        {"since", required_argument, 0, 's'}, {"until", required_argument, 0, 'u'},
        {"json", no_argument, 0, 'j'}, {"help", no_argument, 0, 'h'}, {0}};
    int ch;
    bool list = strcmp(cmd, "audit list") == 0;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "d:n:p:r:s:u:jh", opts, NULL)) != -1) {
        if (!list && (ch == 'p' || ch == 'r' || ch == 's' || ch == 'u'))
            return cli_usage(cmd, U, "--%s is an option of audit list", opts[
                ch == 'p' ? 2 : ch == 'r' ? 3 : ch == 's' ? 4 : 5].name);
        switch (ch) {
        case 'd': o->data = optarg; break;
        case 'n':
            if (code_parse(optarg, &o->node))
                return cli_usage(cmd, U, "--node %s: not a 12-digit division code", optarg);
            break;
        case 'p': o->principal = optarg; break;
        case 'r': o->record = optarg; break;
        case 's':
            if (parse_time(optarg, false, &o->since))
                return cli_usage(cmd, U, "--since %s: expected YYYY-MM-DD or an ISO time",
                                 optarg);
            break;
        case 'u':
            if (parse_time(optarg, true, &o->until))
                return cli_usage(cmd, U, "--until %s: expected YYYY-MM-DD or an ISO time",
                                 optarg);
            break;
        case 'j': o->json = true; break;
        case 'h': printf("usage: %s\n\n%s\n", U, HELP); return -1;
        default: return cli_usage(cmd, U, "bad option");
        }
    }
    if (optind < argc)
        return cli_usage(cmd, U, "unexpected argument '%s'", argv[optind]);
    if (!o->data)
        return cli_usage(cmd, U, "--data is required");
    return 0;
}

/* ---- verify ---- */

typedef struct {
    bool json;
    json_t *arr;
} vout_t;

static int chain_cb(void *arg, const audit_chain_t *c)
{
    vout_t *v = arg;
    char code[CODE_STRLEN + 1], h[2 * AUDIT_HASH_LEN + 1];
    code_fmt(c->node, code);
    hex(c->last_hash, AUDIT_HASH_LEN, h);
    if (v->json) {
        json_t *j = json_pack("{s:s, s:I, s:I, s:s, s:b}", "node", code, "entries",
                              (json_int_t)c->entries, "last_seq", (json_int_t)c->last_seq,
                              "last_hash", h, "ok", !c->bad_seq);
        if (c->bad_seq) {
            json_object_set_new(j, "broken_at", json_integer((json_int_t)c->bad_seq));
            json_object_set_new(j, "reason", json_string(c->bad));
        }
        json_array_append_new(v->arr, j);
    } else if (c->bad_seq) {
        printf("%s  %llu entries  BROKEN at entry %llu: %s\n", code,
               (unsigned long long)c->entries, (unsigned long long)c->bad_seq, c->bad);
    } else {
        printf("%s  %llu entries  ok  last %llu %.16s\n", code, (unsigned long long)c->entries,
               (unsigned long long)c->last_seq, h);
    }
    return 0;
}

static int do_verify(const aopts_t *o)
{
    const char *cmd = "audit verify";
    store_t *s = cli_open(cmd, o->data, STORE_RDONLY);
    if (!s)
        return 1;
    stxn_t *t;
    why_t why = {""};
    vout_t v = {.json = o->json, .arr = json_array()};
    int rc = store_begin(s, false, &t);
    if (!rc) {
        rc = audit_verify(t, o->node, chain_cb, &v, &why);
        store_abort(&t);
    }
    store_close(&s);
    if (o->json && (rc == LX_OK || rc == LX_ECORRUPT)) {
        json_t *j = json_pack("{s:b, s:o}", "ok", rc == LX_OK, "chains", v.arr);
        if (rc)
            json_object_set_new(j, "error", json_string(why.msg));
        json_dumpf(j, stdout, JSON_INDENT(2));
        putchar('\n');
        json_decref(j);
    } else {
        json_decref(v.arr);
    }
    if (rc)
        return cli_fail(cmd, "%s", why.msg[0] ? why.msg : err_str(rc));
    return 0;
}

/* ---- list ---- */

typedef struct {
    bool json;
    json_t *arr;
} lout_t;

/* Text output: control characters shown as '?' so an entry is one line. */
static void put_clean(const char *s)
{
    for (; *s; s++)
        putchar((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s);
}

/* A string as JSON; bytes that are not UTF-8 (a child's entry can hold
 * anything) shown with their invalid bytes as '?'. */
static json_t *js(const char *s)
{
    json_t *j = json_string(s);
    if (j)
        return j;
    char *c = strdup(s);
    for (size_t i = 0; c && c[i]; i++)
        if ((unsigned char)c[i] >= 0x80)
            c[i] = '?';
    j = json_string(c ? c : "?");
    free(c);
    return j;
}

static int entry_cb(void *arg, const audit_rec_t *r)
{
    lout_t *x = arg;
    char code[CODE_STRLEN + 1], when[40], h[2 * AUDIT_HASH_LEN + 1];
    code_fmt(r->node, code);
    fmt_time(r->e.time_ms, when);
    hex(r->hash, AUDIT_HASH_LEN, h);
    if (x->json) {
        json_t *ids = json_array(), *j = json_object();
        for (uint32_t i = 0; i < r->e.nids; i++)
            json_array_append_new(ids, js(r->e.ids[i]));
        json_object_set_new(j, "node", json_string(code));
        json_object_set_new(j, "seq", json_integer((json_int_t)r->seq));
        json_object_set_new(j, "time", json_string(when));
        json_object_set_new(j, "time_ms", json_integer((json_int_t)r->e.time_ms));
        json_object_set_new(j, "principal", js(r->e.principal));
        json_object_set_new(j, "role", js(r->e.role));
        json_object_set_new(j, "action", js(r->e.action));
        json_object_set_new(j, "ids", ids);
        json_object_set_new(j, "purpose", r->e.purpose ? js(r->e.purpose) : json_null());
        json_object_set_new(j, "result", js(r->e.result));
        json_object_set_new(j, "hash", json_string(h));
        json_array_append_new(x->arr, j);
        return 0;
    }
    printf("%s %s #%llu ", when, code, (unsigned long long)r->seq);
    put_clean(r->e.principal);
    putchar(' ');
    put_clean(r->e.role[0] ? r->e.role : "-");
    putchar(' ');
    put_clean(r->e.action);
    printf(" [");
    for (uint32_t i = 0; i < r->e.nids; i++) {
        if (i)
            putchar(' ');
        put_clean(r->e.ids[i]);
    }
    printf("] purpose=");
    put_clean(r->e.purpose ? r->e.purpose : "-");
    printf(" result=");
    put_clean(r->e.result);
    putchar('\n');
    return 0;
}

static int do_list(const aopts_t *o)
{
    const char *cmd = "audit list";
    store_t *s = cli_open(cmd, o->data, STORE_RDONLY);
    if (!s)
        return 1;
    stxn_t *t;
    why_t why = {""};
    lout_t x = {.json = o->json, .arr = json_array()};
    audit_filter_t f = {.node = o->node, .principal = o->principal, .record = o->record,
                        .since_ms = o->since, .until_ms = o->until};
    int rc = store_begin(s, false, &t);
    if (!rc) {
        rc = audit_list(t, &f, entry_cb, &x, &why);
        store_abort(&t);
    }
    store_close(&s);
    if (!rc && o->json) {
        json_dumpf(x.arr, stdout, JSON_INDENT(2));
        putchar('\n');
    }
    json_decref(x.arr);
    if (rc)
        return cli_fail(cmd, "%s", why.msg[0] ? why.msg : err_str(rc));
    return 0;
}

int cmd_audit(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        if (argc < 2)
            return cli_usage("audit", U, "verify or list?");
        printf("usage: %s\n\n%s\n", U, HELP);
        return 0;
    }
    aopts_t o = {0};
    int rc;
    if (strcmp(argv[1], "verify") == 0) {
        if ((rc = parse("audit verify", argc - 1, argv + 1, &o)))
            return rc < 0 ? 0 : rc;
        return do_verify(&o);
    }
    if (strcmp(argv[1], "list") == 0) {
        if ((rc = parse("audit list", argc - 1, argv + 1, &o)))
            return rc < 0 ? 0 : rc;
        return do_list(&o);
    }
    return cli_usage("audit", U, "unknown subcommand '%s'", argv[1]);
}
