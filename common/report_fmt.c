/* The report's formats: JSON, CSV (UTF-8 with a BOM so that Excel reads
 * it as UTF-8), XLSX (libxlsxwriter: one sheet per breakdown, frozen
 * header, total row) and one self-contained HTML page with an inline SVG
 * bar chart per breakdown. Labels are Chinese unless zh is false. */
#include "report.h"
#include "report_int.h"
#include "csv.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xlsxwriter.h>

int report_fmt_parse(const char *s)
{
    static const char *const names[] = {"json", "csv", "xlsx", "html"};
    for (int i = 0; s && i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

static const char *label(const report_col_t *c, bool zh) { return zh ? c->zh : c->en; }

static void hex(const unsigned char *d, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* The cut as text: "2026-10-01 00:00 UTC+8". */
static void cut_text(const report_t *r, char *out, size_t n)
{
    time_t secs = (time_t)(hlc_ms(r->cut) / 1000) + 8 * 3600;
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(out, n, "%04d-%02d-%02d %02d:%02d UTC+8", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min);
}

/* ---- JSON ---- */

static json_t *row_json(const report_t *r, size_t i, bool zh)
{
    char code[CODE_STRLEN + 1], dig[2 * REPORT_DIGEST_LEN + 1];
    hex(r->rows[i].dig, REPORT_DIGEST_LEN, dig);
    json_t *vals = json_object();
    for (size_t c = 0; c < C_COUNT; c++)
        json_object_set_new(vals, report_col(c)->key, json_integer((json_int_t)r->rows[i].v[c]));
    return json_pack("{s:s, s:s, s:o, s:s}", "code", code_fmt(r->rows[i].code, code),
                     "name", report_row_name(r, i, zh), "values", vals, "digest", dig);
}

static json_t *report_json(const report_t *r, bool zh)
{
    quarter_t q;
    quarter_parse(r->quarter, &q, NULL);
    char node[CODE_STRLEN + 1], cut[48];
    json_t *colsj = json_array(), *groupsj = json_array(), *rows = json_array();
    for (size_t c = 0; c < C_COUNT; c++) {
        const report_col_t *col = report_col(c);
        json_array_append_new(colsj, json_pack("{s:s, s:s, s:s, s:s}", "key", col->key, "zh",
                                               col->zh, "en", col->en, "group",
                                               report_group((size_t)col->group)->key));
    }
    for (size_t g = 0; g < G_COUNT; g++) {
        const report_group_t *gr = report_group(g);
        json_array_append_new(groupsj, json_pack("{s:s, s:s, s:s}", "key", gr->key, "zh",
                                                 gr->zh, "en", gr->en));
    }
    for (size_t i = 0; i + 1 < r->n; i++)
        json_array_append_new(rows, row_json(r, i, zh));
    cut_text(r, cut, sizeof cut);
    return json_pack("{s:s, s:s, s:s, s:s, s:{s:I, s:s}, s:{s:s, s:s}, s:s, s:o, s:o, s:o, s:o}",
                     "quarter", r->quarter, "node", code_fmt(r->node, node),
                     "node_name", report_node_name(r),
                     "level", level_name(code_level(r->node)),
                     "cut", "hlc", (json_int_t)r->cut, "time", cut,
                     "period", "from", q.first, "to", q.last,
                     "lang", zh ? "zh" : "en",
                     "groups", groupsj, "columns", colsj, "rows", rows,
                     "total", row_json(r, r->n - 1, zh));
}

static int write_json(const report_t *r, bool zh, FILE *f)
{
    json_t *j = report_json(r, zh);
    if (!j)
        return LX_ENOMEM;
    int rc = json_dumpf(j, f, JSON_INDENT(1) | JSON_PRESERVE_ORDER) ? LX_EIO : LX_OK;
    fputc('\n', f);
    json_decref(j);
    return rc;
}

/* ---- CSV ---- */

static int write_csv(const report_t *r, bool zh, FILE *f)
{
    fputs("\xEF\xBB\xBF", f);
    fputs(zh ? "代码,单位" : "Code,Unit", f);
    for (size_t c = 0; c < C_COUNT; c++) {
        fputc(',', f);
        csv_put_cell(f, label(report_col(c), zh));
    }
    fputs("\r\n", f);
    for (size_t i = 0; i < r->n; i++) {
        char code[CODE_STRLEN + 1];
        fprintf(f, "%s,", code_fmt(r->rows[i].code, code));
        csv_put_cell(f, report_row_name(r, i, zh));
        for (size_t c = 0; c < C_COUNT; c++)
            fprintf(f, ",%llu", (unsigned long long)r->rows[i].v[c]);
        fputs("\r\n", f);
    }
    return LX_OK;
}

/* ---- HTML ---- */

static void html_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* A horizontal bar per column of the group, for the total row. */
static void html_chart(const report_t *r, int g, bool zh, FILE *f)
{
    const row_t *tot = &r->rows[r->n - 1];
    uint64_t max = 1;
    int n = 0;
    for (size_t c = 0; c < C_COUNT; c++)
        if (report_col(c)->group == g) {
            n++;
            if (tot->v[c] > max)
                max = tot->v[c];
        }
    const int lw = 260, bw = 420, rh = 20;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" role=\"img\">\n",
            lw + bw + 90, n * rh + 8);
    int y = 4;
    for (size_t c = 0; c < C_COUNT; c++) {
        if (report_col(c)->group != g)
            continue;
        int w = (int)((double)tot->v[c] / (double)max * bw);
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", lw - 6, y + 14);
        html_text(f, label(report_col(c), zh));
        fprintf(f, "</text><rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\"/>"
                   "<text x=\"%d\" y=\"%d\">%llu</text>\n",
                lw, y + 3, w, rh - 6, lw + w + 4, y + 14, (unsigned long long)tot->v[c]);
        y += rh;
    }
    fputs("</svg>\n", f);
}

static void html_table(const report_t *r, int g, bool zh, FILE *f)
{
    fprintf(f, "<table>\n<thead><tr><th>%s</th><th>%s</th>", zh ? "代码" : "Code",
            zh ? "单位" : "Unit");
    for (size_t c = 0; c < C_COUNT; c++)
        if (report_col(c)->group == g) {
            fputs("<th>", f);
            html_text(f, label(report_col(c), zh));
            fputs("</th>", f);
        }
    fputs("</tr></thead>\n<tbody>\n", f);
    for (size_t i = 0; i < r->n; i++) {
        char code[CODE_STRLEN + 1];
        fprintf(f, "<tr%s><td>%s</td><td>", i + 1 == r->n ? " class=\"total\"" : "",
                code_fmt(r->rows[i].code, code));
        html_text(f, report_row_name(r, i, zh));
        fputs("</td>", f);
        for (size_t c = 0; c < C_COUNT; c++)
            if (report_col(c)->group == g)
                fprintf(f, "<td>%llu</td>", (unsigned long long)r->rows[i].v[c]);
        fputs("</tr>\n", f);
    }
    fputs("</tbody>\n</table>\n", f);
}

static const char *CSS =
    "body{font-family:\"Noto Sans CJK SC\",\"Microsoft YaHei\",sans-serif;margin:2em;color:#222}"
    "h1{font-size:1.4em}h2{font-size:1.15em;margin-top:2em;border-bottom:2px solid #c33}"
    "table{border-collapse:collapse;font-size:.9em;margin-top:.5em}"
    "th,td{border:1px solid #bbb;padding:.25em .5em;text-align:right}"
    "th{background:#f3e6e6}td:nth-child(2),td:first-child{text-align:left;white-space:nowrap}"
    "tr.total td{font-weight:bold;background:#faf3f3}"
    "svg text{font-size:12px;fill:#333}svg rect{fill:#c33}.meta{color:#555}";

static int write_html(const report_t *r, bool zh, FILE *f)
{
    char node[CODE_STRLEN + 1], cut[48];
    quarter_t q;
    quarter_parse(r->quarter, &q, NULL);
    code_fmt(r->node, node);
    cut_text(r, cut, sizeof cut);
    fprintf(f, "<!DOCTYPE html>\n<html lang=\"%s\">\n<head>\n<meta charset=\"utf-8\">\n"
               "<title>%s %s %s</title>\n<style>%s</style>\n</head>\n<body>\n",
            zh ? "zh-CN" : "en", zh ? "季度报表" : "Quarterly report", node, r->quarter, CSS);
    fprintf(f, "<h1>%s<br>", zh ? "农村留守儿童和困境儿童季度报表"
                                 : "Left-behind children and children in difficulty: quarterly report");
    html_text(f, report_node_name(r));
    fprintf(f, " (%s) · %s</h1>\n", node, r->quarter);
    fprintf(f, "<p class=\"meta\">%s %s – %s; %s %s</p>\n", zh ? "统计期" : "Period", q.first,
            q.last, zh ? "数据截止" : "data as of", cut);
    for (int g = 0; g < G_COUNT; g++) {
        fputs("<section>\n<h2>", f);
        html_text(f, zh ? report_group((size_t)g)->zh : report_group((size_t)g)->en);
        fputs("</h2>\n", f);
        html_chart(r, g, zh, f);
        html_table(r, g, zh, f);
        fputs("</section>\n", f);
    }
    fputs("</body>\n</html>\n", f);
    return LX_OK;
}

/* ---- XLSX ---- */

static int xlsx_sheet(lxw_workbook *wb, const report_t *r, int g, bool zh, lxw_format *head,
                      lxw_format *bold)
{
    const report_group_t *gr = report_group((size_t)g);
    lxw_worksheet *ws = workbook_add_worksheet(wb, zh ? gr->zh : gr->en);
    if (!ws)
        return LX_ENOMEM;
    worksheet_write_string(ws, 0, 0, zh ? "代码" : "Code", head);
    worksheet_write_string(ws, 0, 1, zh ? "单位" : "Unit", head);
    worksheet_set_column(ws, 0, 0, 15, NULL);
    worksheet_set_column(ws, 1, 1, 22, NULL);
    lxw_col_t col = 2;
    for (size_t c = 0; c < C_COUNT; c++)
        if (report_col(c)->group == g)
            worksheet_write_string(ws, 0, col++, label(report_col(c), zh), head);
    worksheet_set_column(ws, 2, (lxw_col_t)(col - 1), 13, NULL);
    worksheet_freeze_panes(ws, 1, 2);
    for (size_t i = 0; i < r->n; i++) {
        lxw_format *fmt = i + 1 == r->n ? bold : NULL;
        char code[CODE_STRLEN + 1];
        lxw_row_t row = (lxw_row_t)(i + 1);
        /* A text cell: as a number Excel would show 5.1E+11. */
        worksheet_write_string(ws, row, 0, code_fmt(r->rows[i].code, code), fmt);
        worksheet_write_string(ws, row, 1, report_row_name(r, i, zh), fmt);
        col = 2;
        for (size_t c = 0; c < C_COUNT; c++)
            if (report_col(c)->group == g)
                worksheet_write_number(ws, row, col++, (double)r->rows[i].v[c], fmt);
    }
    return LX_OK;
}

static int xlsx_about(lxw_workbook *wb, const report_t *r, bool zh, lxw_format *head)
{
    lxw_worksheet *ws = workbook_add_worksheet(wb, zh ? "说明" : "About");
    if (!ws)
        return LX_ENOMEM;
    char node[CODE_STRLEN + 1], cut[48], period[32];
    quarter_t q;
    quarter_parse(r->quarter, &q, NULL);
    snprintf(period, sizeof period, "%s – %s", q.first, q.last);
    cut_text(r, cut, sizeof cut);
    const char *rows[][2] = {
        {zh ? "单位代码" : "Unit code", code_fmt(r->node, node)},
        {zh ? "单位名称" : "Unit", report_node_name(r)},
        {zh ? "季度" : "Quarter", r->quarter},
        {zh ? "统计期" : "Period", period},
        {zh ? "数据截止" : "Data as of", cut},
        {zh ? "监护状况评估" : "Guardianship assessment",
         zh ? "较好：有监护能力的父母或祖父母监护；一般：有监护能力的其他亲友或机构监护；较差：其余"
            : "good: a capable parent or grandparent; average: a capable other relative or "
              "institution; poor: the rest"},
    };
    worksheet_set_column(ws, 0, 0, 20, NULL);
    worksheet_set_column(ws, 1, 1, 70, NULL);
    for (lxw_row_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        worksheet_write_string(ws, i, 0, rows[i][0], head);
        worksheet_write_string(ws, i, 1, rows[i][1], NULL);
    }
    return LX_OK;
}

/* Copies the file at path to f. */
static int copy_file(const char *path, FILE *f)
{
    FILE *in = fopen(path, "rb");
    if (!in)
        return LX_EIO;
    char buf[65536];
    size_t n;
    int rc = LX_OK;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, f) != n) {
            rc = LX_EIO;
            break;
        }
    if (ferror(in))
        rc = LX_EIO;
    fclose(in);
    return rc;
}

static int write_xlsx(const report_t *r, bool zh, FILE *f, why_t *why)
{
    const char *dir = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/lx-report-XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0)
        return why_set(why, LX_EIO, "xlsx: cannot create a temporary file in %s",
                       dir && *dir ? dir : "/tmp");
    close(fd);
    lxw_workbook *wb = workbook_new(path);
    int rc = wb ? LX_OK : LX_ENOMEM;
    lxw_format *head = wb ? workbook_add_format(wb) : NULL;
    lxw_format *bold = wb ? workbook_add_format(wb) : NULL;
    if (head && bold) {
        format_set_bold(head);
        format_set_bg_color(head, 0xF3E6E6);
        format_set_border(head, LXW_BORDER_THIN);
        format_set_text_wrap(head);
        format_set_bold(bold);
    }
    for (int g = 0; !rc && g < G_COUNT; g++)
        rc = xlsx_sheet(wb, r, g, zh, head, bold);
    if (!rc)
        rc = xlsx_about(wb, r, zh, head);
    if (wb) {
        lxw_error e = workbook_close(wb);
        if (!rc && e != LXW_NO_ERROR)
            rc = why_set(why, LX_EIO, "xlsx: %s", lxw_strerror(e));
    }
    if (!rc && (rc = copy_file(path, f)))
        why_set(why, rc, "xlsx: cannot copy the workbook");
    unlink(path);
    return rc;
}

int report_write(const report_t *r, report_fmt_t fmt, bool zh, FILE *f, why_t *why)
{
    int rc;
    switch (fmt) {
    case REPORT_JSON: rc = write_json(r, zh, f); break;
    case REPORT_CSV: rc = write_csv(r, zh, f); break;
    case REPORT_HTML: rc = write_html(r, zh, f); break;
    case REPORT_XLSX: rc = write_xlsx(r, zh, f, why); break;
    default: return why_set(why, LX_EINVAL, "report: unknown format");
    }
    if (!rc && (fflush(f) || ferror(f)))
        rc = LX_EIO;
    if (rc && why && !why->msg[0])
        why_set(why, rc, "report: writing %s failed: %s",
                fmt == REPORT_JSON ? "JSON" : fmt == REPORT_CSV ? "CSV" : fmt == REPORT_HTML ? "HTML" : "XLSX",
                err_str(rc));
    return rc;
}
