/* lianxin report: the node's quarterly roll-up in one of four formats. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/divs.h"
#include "common/report.h"

static const char *REPORT_USAGE =
    "lianxin report --data DIR --quarter YYYYQn --format json|csv|xlsx|html "
    "[--out FILE] [--lang zh|en] [--unit CODE]\n"
    "       lianxin report submit|inbox|approve|return|state ...   (--help on each)";

static void help(void)
{
    printf("usage: %s\n"
           "Writes the quarterly roll-up of the node's subtree (or of --unit, a unit inside\n"
           "it): one row per unit of the level below and a total row (合计), computed over\n"
           "the records as they stood at the end of the quarter (China Standard Time).\n"
           "JSON and HTML go to stdout unless --out; XLSX needs --out. CSV is UTF-8 with a\n"
           "BOM. Labels are Chinese unless --lang en. The report is refused, naming the\n"
           "row and column, when the summary table's equalities do not hold.\n"
           "The workflow (freezing, submitting up, answering, states): lianxin report\n"
           "submit|inbox|approve|return|state --help.\n", REPORT_USAGE);
}

typedef struct {
    const char *data, *quarter, *format, *out, *lang, *unit;
} reportopts_t;

/* 0 to go on, -1 after --help, or an exit code. */
static int parse(int argc, char **argv, reportopts_t *o)
{
    static struct option opts[] = {
        {"data", required_argument, 0, 'd'}, {"quarter", required_argument, 0, 'q'},
        {"format", required_argument, 0, 'f'}, {"out", required_argument, 0, 'o'},
        {"lang", required_argument, 0, 'l'}, {"unit", required_argument, 0, 'u'},
        {"help", no_argument, 0, 'h'}, {0}};
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "d:q:f:o:l:u:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'd': o->data = optarg; break;
        case 'q': o->quarter = optarg; break;
        case 'f': o->format = optarg; break;
        case 'o': o->out = optarg; break;
        case 'l': o->lang = optarg; break;
        case 'u': o->unit = optarg; break;
        case 'h': help(); return -1;
        default: return cli_usage("report", REPORT_USAGE, "bad option");
        }
    }
    if (optind < argc)
        return cli_usage("report", REPORT_USAGE, "unexpected argument '%s'", argv[optind]);
    if (!o->data || !o->quarter || !o->format)
        return cli_usage("report", REPORT_USAGE, "--data, --quarter and --format are required");
    return 0;
}

/* Writes to a temporary file renamed into place, so a failed report never
 * leaves a partial file that looks complete. */
static int emit(const report_t *r, report_fmt_t fmt, bool zh, const char *out, why_t *why)
{
    if (!out || strcmp(out, "-") == 0)
        return report_write(r, fmt, zh, stdout, why);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", out, (long)getpid());
    FILE *f = cli_out(tmp, why);
    if (!f)
        return LX_EIO;
    int rc = report_write(r, fmt, zh, f, why);
    if (fclose(f) && !rc)
        rc = why_set(why, LX_EIO, "%s: write failed", out);
    if (!rc && rename(tmp, out))
        rc = why_set(why, LX_EIO, "%s: cannot rename the report into place", out);
    if (rc)
        unlink(tmp);
    return rc;
}

int cmd_report(int argc, char **argv)
{
    if (argc >= 2 && cmd_rflow_is(argv[1]))
        return cmd_rflow(argc - 1, argv + 1);
    reportopts_t o = {0};
    int rc = parse(argc, argv, &o);
    if (rc)
        return rc < 0 ? 0 : rc;
    why_t why = {""};
    quarter_t q;
    if (quarter_parse(o.quarter, &q, &why))
        return cli_usage("report", REPORT_USAGE, "--quarter: %s", why.msg);
    int fmt = report_fmt_parse(o.format);
    if (fmt < 0)
        return cli_usage("report", REPORT_USAGE, "--format must be json, csv, xlsx or html");
    bool zh = !o.lang || strcmp(o.lang, "zh") == 0;
    if (o.lang && !zh && strcmp(o.lang, "en") != 0)
        return cli_usage("report", REPORT_USAGE, "--lang must be zh or en");
    if (fmt == REPORT_XLSX && (!o.out || strcmp(o.out, "-") == 0))
        return cli_usage("report", REPORT_USAGE,
                         "--format xlsx needs --out FILE (a workbook is a binary file)");
    code_t unit = 0;
    if (o.unit && code_parse(o.unit, &unit))
        return cli_usage("report", REPORT_USAGE, "--unit %s: not a 12-digit division code", o.unit);

    /* Names come from the division tables; without them rows show codes. */
    char dir[4096];
    divs_t *d = NULL;
    why_t dwhy = {""};
    if (divs_load(divs_default_dir(dir, sizeof dir), &d, &dwhy))
        d = NULL;
    store_t *s = cli_open("report", o.data, STORE_RDONLY);
    if (!s) {
        divs_destroy(&d);
        return 1;
    }
    stxn_t *t = NULL;
    report_t *r = NULL;
    rc = store_begin(s, false, &t);
    if (!rc)
        rc = report_compute(t, unit, o.quarter, d, &r, &why);
    store_abort(&t);
    store_close(&s);
    divs_destroy(&d);
    if (!rc && (rc = report_check(r, &why)))
        why_prefix(&why, rc, "the summary table's equalities do not hold");
    if (!rc)
        rc = emit(r, (report_fmt_t)fmt, zh, o.out, &why);
    report_destroy(&r);
    if (rc)
        return cli_fail("report", "%s", why.msg[0] ? why.msg : err_str(rc));
    return 0;
}
