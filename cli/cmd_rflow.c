/* lianxin report submit|inbox|approve|return|state: the report workflow.
 * A node freezes its quarterly report as numbered revisions and the node
 * daemon sends it up; the parent lists its children's submissions, checks
 * them against its own copy of their data, and answers; every node shows
 * the submission states of itself and its descendants. */
#include "cli.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/divs.h"
#include "common/hlc.h"
#include "common/report.h"
#include "common/rflow.h"

static const char *U =
    "lianxin report submit --data DIR --quarter YYYYQn [--json]\n"
    "       lianxin report inbox --data DIR [--quarter YYYYQn] [--json]\n"
    "       lianxin report approve --data DIR --child CODE --quarter YYYYQn [--reason TEXT] [--json]\n"
    "       lianxin report return --data DIR --child CODE --quarter YYYYQn [--reason TEXT] [--json]\n"
    "       lianxin report state --data DIR [--quarter YYYYQn] [--json]";

static const char *HELP =
    "The quarterly report's workflow (see README.md, Reports):\n"
    "  submit   computes the node's report as of the quarter's end, checks the table's\n"
    "           equalities and freezes it: revision 1, then a new revision only when the\n"
    "           figures differ from the last one (the changed cells are listed, old -> new);\n"
    "           the running node sends it to the parent until the parent has it. After\n"
    "           the reporting deadline the node freezes the last quarter by itself, and\n"
    "           late data (stamped before the quarter's end) makes a new revision\n"
    "  inbox    the children's submissions: child, quarter, revision, state, when; and\n"
    "           every cell where this node's own copy of the child's data gives other\n"
    "           figures than the child's frozen report\n"
    "  approve  answers a child's last revision; the answer goes down to the child\n"
    "  return   the same, returned (give the child the --reason: what to fix)\n"
    "  state    the submission state of this node and of every node below it";

typedef struct {
    const char *data, *quarter, *child, *reason;
    bool json;
} ropts_t;

static int parse(const char *cmd, int argc, char **argv, ropts_t *o)
{
    static struct option opts[] = {
        {"data", required_argument, 0, 'd'}, {"quarter", required_argument, 0, 'q'},
        {"child", required_argument, 0, 'c'}, {"reason", required_argument, 0, 'r'},
        {"json", no_argument, 0, 'j'}, {"help", no_argument, 0, 'h'}, {0}};
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "d:q:c:r:jh", opts, NULL)) != -1) {
        switch (ch) {
        case 'd': o->data = optarg; break;
        case 'q': o->quarter = optarg; break;
        case 'c': o->child = optarg; break;
        case 'r': o->reason = optarg; break;
        case 'j': o->json = true; break;
        case 'h': printf("usage: %s\n%s\n", U, HELP); return -1;
        default: return cli_usage(cmd, U, "bad option");
        }
    }
    if (optind < argc)
        return cli_usage(cmd, U, "unexpected argument '%s'", argv[optind]);
    if (!o->data)
        return cli_usage(cmd, U, "--data is required");
    why_t why = {""};
    quarter_t q;
    if (o->quarter && quarter_parse(o->quarter, &q, &why))
        return cli_usage(cmd, U, "--quarter: %s", why.msg);
    return 0;
}

/* "2026-10-20T12:00:00+08:00": China Standard Time, like the reports. */
static void fmt_ms(uint64_t ms, char out[32])
{
    time_t s = (time_t)(ms / 1000) + 8 * 3600;
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%S+08:00", &tm);
}

static divs_t *load_divs(void)
{
    char dir[4096];
    divs_t *d = NULL;
    why_t why = {""};
    if (divs_load(divs_default_dir(dir, sizeof dir), &d, &why))
        d = NULL;
    return d;
}

static json_t *cells_json(const rcell_t *c, size_t n, const char *a, const char *b)
{
    json_t *arr = json_array();
    char rc[CODE_STRLEN + 1];
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{s:s,s:b,s:s,s:I,s:I}", "row",
                                             code_fmt(c[i].row, rc), "total", c[i].total,
                                             "column", report_col(c[i].col)->key, a,
                                             (json_int_t)c[i].old, b, (json_int_t)c[i].now));
    return arr;
}

static void cells_text(const rcell_t *c, size_t n, const char *arrow)
{
    char rc[CODE_STRLEN + 1];
    for (size_t i = 0; i < n; i++) {
        const report_col_t *col = report_col(c[i].col);
        printf("  %s%s %s (%s): %llu %s %llu\n", code_fmt(c[i].row, rc),
               c[i].total ? " 合计" : "", col->key, col->zh,
               (unsigned long long)c[i].old, arrow, (unsigned long long)c[i].now);
    }
}

static int do_submit(ropts_t *o)
{
    if (!o->quarter)
        return cli_usage("report submit", U, "--quarter is required");
    divs_t *d = load_divs();
    store_t *s = cli_open("report submit", o->data, 0);
    if (!s) {
        divs_destroy(&d);
        return 1;
    }
    stxn_t *t = NULL;
    why_t why = {""};
    rflow_frozen_t f = {0};
    int rc = store_begin(s, true, &t);
    if (!rc)
        rc = rflow_freeze(t, o->quarter, d, hlc_wall_ms(), &f, &why);
    if (!rc)
        rc = store_commit(&t);
    store_abort(&t);
    store_close(&s);
    divs_destroy(&d);
    if (rc) {
        rflow_frozen_free(&f);
        return cli_fail("report submit", "%s", why.msg[0] ? why.msg : err_str(rc));
    }
    if (o->json) {
        json_t *j = json_pack("{s:s,s:i,s:b,s:o}", "quarter", o->quarter, "revision", (int)f.rev,
                              "created", f.created, "changes",
                              cells_json(f.cells, f.ncells, "old", "new"));
        json_dumpf(j, stdout, JSON_INDENT(2));
        printf("\n");
        json_decref(j);
    } else if (!f.created) {
        printf("report %s: the figures are those of revision %u; nothing new frozen\n",
               o->quarter, f.rev);
    } else {
        printf("report %s: revision %u frozen%s\n", o->quarter, f.rev,
               f.rev > 1 ? "; changed cells (row column: old -> new):" : "");
        cells_text(f.cells, f.ncells, "->");
    }
    rflow_frozen_free(&f);
    return 0;
}

typedef struct {
    stxn_t *t;
    const divs_t *d;
    ropts_t *o;
    json_t *arr;
    int rc;
    why_t why;
} inbox_t;

static int inbox_cb(void *arg, code_t child, const char *quarter, uint32_t rev,
                    uint64_t received_ms, const report_t *theirs, unsigned state,
                    uint64_t state_ms, const char *reason)
{
    inbox_t *x = arg;
    report_t *ours = NULL;
    rcell_t *cells = NULL;
    size_t n = 0;
    char cc[CODE_STRLEN + 1], when[32], swhen[32];
    code_fmt(child, cc);
    fmt_ms(received_ms, when);
    fmt_ms(state_ms, swhen);
    /* Our own copy of the child's data, as of the same cut: every unit row
     * and every cell, so nothing is counted twice or left out. */
    int rc = report_compute(x->t, child, quarter, x->d, &ours, &x->why);
    if (!rc)
        rc = rflow_diff(theirs, ours, &cells, &n);
    if (rc) {
        report_destroy(&ours);
        x->rc = rc;
        return rc;
    }
    if (x->o->json) {
        json_t *e = json_pack("{s:s,s:s,s:i,s:s,s:s,s:s,s:o}", "child", cc, "quarter", quarter,
                              "revision", (int)rev, "state", rst_name(state), "received", when,
                              "state_at", swhen, "differences",
                              cells_json(cells, n, "theirs", "ours"));
        if (state == RST_RETURNED)
            json_object_set_new(e, "reason", json_string(reason));
        json_array_append_new(x->arr, e);
    } else {
        printf("%s %s revision %u %s (received %s)%s%s\n", cc, quarter, rev, rst_name(state),
               when, state == RST_RETURNED ? ": " : "", state == RST_RETURNED ? reason : "");
        if (n == 0)
            printf("  no differences from this node's data\n");
        else
            printf("  %zu cells differ (row column: theirs / ours):\n", n);
        cells_text(cells, n, "/");
    }
    free(cells);
    report_destroy(&ours);
    return 0;
}

static int do_inbox(ropts_t *o)
{
    divs_t *d = load_divs();
    store_t *s = cli_open("report inbox", o->data, STORE_RDONLY);
    if (!s) {
        divs_destroy(&d);
        return 1;
    }
    inbox_t x = {.d = d, .o = o, .arr = json_array()};
    int rc = store_begin(s, false, &x.t);
    if (!rc)
        rc = rflow_each_submission(x.t, o->quarter, inbox_cb, &x);
    store_abort(&x.t);
    store_close(&s);
    divs_destroy(&d);
    if (rc) {
        json_decref(x.arr);
        return cli_fail("report inbox", "%s", x.why.msg[0] ? x.why.msg : err_str(rc));
    }
    if (o->json) {
        json_dumpf(x.arr, stdout, JSON_INDENT(2));
        printf("\n");
    }
    json_decref(x.arr);
    return 0;
}

static int do_answer(ropts_t *o, unsigned state)
{
    const char *cmd = state == RST_APPROVED ? "report approve" : "report return";
    code_t child;
    if (!o->child || !o->quarter)
        return cli_usage(cmd, U, "--child and --quarter are required");
    if (code_parse(o->child, &child))
        return cli_usage(cmd, U, "--child %s: not a 12-digit division code", o->child);
    store_t *s = cli_open(cmd, o->data, 0);
    if (!s)
        return 1;
    code_t node = store_code(s);
    char nc[CODE_STRLEN + 1];
    if (code_parent(child) != node) {
        store_close(&s);
        return cli_fail(cmd, "--child %s: not a child of this node %s", o->child,
                        code_fmt(node, nc));
    }
    stxn_t *t = NULL;
    why_t why = {""};
    uint32_t rev = 0;
    int rc = store_begin(s, true, &t);
    if (!rc)
        rc = rflow_answer(t, child, o->quarter, state, o->reason, hlc_wall_ms(), &rev, &why);
    if (!rc)
        rc = store_commit(&t);
    store_abort(&t);
    store_close(&s);
    if (rc)
        return cli_fail(cmd, "%s", why.msg[0] ? why.msg : err_str(rc));
    if (o->json)
        printf("{\"child\": \"%s\", \"quarter\": \"%s\", \"revision\": %u, \"state\": \"%s\"}\n",
               o->child, o->quarter, rev, rst_name(state));
    else
        printf("%s %s revision %u %s; the answer goes down to the child\n", o->child,
               o->quarter, rev, rst_name(state));
    return 0;
}

typedef struct {
    const char *quarter;
    bool json;
    json_t *arr;
} statex_t;

static int state_cb(void *arg, const rstate_t *e)
{
    statex_t *x = arg;
    char nc[CODE_STRLEN + 1], when[32];
    if (x->quarter && strcmp(e->quarter, x->quarter) != 0)
        return 0;
    code_fmt(e->node, nc);
    fmt_ms(e->when_ms, when);
    if (x->json) {
        json_t *o = json_pack("{s:s,s:s,s:s,s:i,s:s,s:s}", "node", nc, "level",
                              level_name(code_level(e->node)), "quarter", e->quarter, "revision",
                              (int)e->rev, "state", rst_name(e->state), "when", when);
        if (e->state == RST_RETURNED)
            json_object_set_new(o, "reason", json_string(e->reason));
        json_array_append_new(x->arr, o);
    } else {
        printf("%s %-8s %s revision %u %-9s %s%s%s\n", nc, level_name(code_level(e->node)),
               e->quarter, e->rev, rst_name(e->state), when,
               e->state == RST_RETURNED ? "  reason: " : "",
               e->state == RST_RETURNED ? e->reason : "");
    }
    return 0;
}

static int do_state(ropts_t *o)
{
    store_t *s = cli_open("report state", o->data, STORE_RDONLY);
    if (!s)
        return 1;
    statex_t x = {.quarter = o->quarter, .json = o->json, .arr = json_array()};
    stxn_t *t = NULL;
    int rc = store_begin(s, false, &t);
    if (!rc)
        rc = rflow_state_each(t, 0, state_cb, &x);
    store_abort(&t);
    store_close(&s);
    if (rc) {
        json_decref(x.arr);
        return cli_fail("report state", "%s", err_str(rc));
    }
    if (o->json) {
        json_dumpf(x.arr, stdout, JSON_INDENT(2));
        printf("\n");
    }
    json_decref(x.arr);
    return 0;
}

bool cmd_rflow_is(const char *word)
{
    static const char *const words[] = {"submit", "inbox", "approve", "return", "state"};
    for (size_t i = 0; word && i < sizeof words / sizeof words[0]; i++)
        if (strcmp(word, words[i]) == 0)
            return true;
    return false;
}

int cmd_rflow(int argc, char **argv)
{
    const char *sub = argv[0];
    char cmd[32];
    snprintf(cmd, sizeof cmd, "report %s", sub);
    ropts_t o = {0};
    int rc = parse(cmd, argc, argv, &o);
    if (rc)
        return rc < 0 ? 0 : rc;
    if (strcmp(sub, "submit") == 0)
        return do_submit(&o);
    if (strcmp(sub, "inbox") == 0)
        return do_inbox(&o);
    if (strcmp(sub, "approve") == 0)
        return do_answer(&o, RST_APPROVED);
    if (strcmp(sub, "return") == 0)
        return do_answer(&o, RST_RETURNED);
    return do_state(&o);
}
