/* Unit tests for common/csv: the reader on good and hostile input, its
 * line numbers and recovery after errors, and the cell writer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/csv.h"
#include "common/err.h"

/* Inputs are copied to heap buffers of their exact length, so that
 * AddressSanitizer catches any read past the end (a string literal's NUL
 * would hide it). The copies live until the group's teardown. */
static char *copies[256];
static size_t ncopies;

static int free_copies(void **state)
{
    (void)state;
    while (ncopies)
        free(copies[--ncopies]);
    return 0;
}

/* A reader over s[0..len) (which may hold NUL bytes, hence len). */
static csv_t *open_n(const char *s, size_t len)
{
    char *copy = NULL;
    if (len) {
        assert_true(ncopies < sizeof copies / sizeof *copies);
        copy = malloc(len);
        assert_non_null(copy);
        memcpy(copy, s, len);
        copies[ncopies++] = copy;
    }
    csv_t *c = csv_new(copy, len);
    assert_non_null(c);
    return c;
}

static csv_t *open_s(const char *s)
{
    return open_n(s, strlen(s));
}

/* Reads one row and checks it has the given line and cells. */
static void expect_row(csv_t *c, uint64_t line, uint32_t n, ...)
{
    csv_row_t row;
    why_t why = {{0}};
    int rc = csv_next(c, &row, &why);
    if (rc != 1)
        fail_msg("expected a row at line %llu, got rc %d (%s)",
                 (unsigned long long)line, rc, why.msg);
    assert_int_equal(row.line, line);
    assert_int_equal(row.n, n);
    va_list ap;
    va_start(ap, n);
    for (uint32_t i = 0; i < n; i++)
        assert_string_equal(row.cells[i], va_arg(ap, const char *));
    va_end(ap);
}

/* Reads one row and checks it fails with LX_EINVAL and that the message
 * holds each of the given fragments. */
static void expect_err(csv_t *c, const char *frag1, const char *frag2)
{
    csv_row_t row;
    why_t why = {{0}};
    int rc = csv_next(c, &row, &why);
    assert_int_equal(rc, LX_EINVAL);
    assert_int_equal(row.n, 0);
    assert_null(row.cells);
    if (!strstr(why.msg, frag1))
        fail_msg("\"%s\" not in \"%s\"", frag1, why.msg);
    if (frag2 && !strstr(why.msg, frag2))
        fail_msg("\"%s\" not in \"%s\"", frag2, why.msg);
}

static void expect_end(csv_t *c)
{
    csv_row_t row;
    why_t why = {{0}};
    assert_int_equal(csv_next(c, &row, &why), 0);
    /* The end is sticky. */
    assert_int_equal(csv_next(c, &row, &why), 0);
}

static void test_simple(void **state)
{
    (void)state;
    csv_t *c = open_s("id,name,city\n1,Li,Beijing\n,,\n");
    expect_row(c, 1, 3, "id", "name", "city");
    expect_row(c, 2, 3, "1", "Li", "Beijing");
    expect_row(c, 3, 3, "", "", "");
    expect_end(c);
    assert_int_equal(csv_offset(c), strlen("id,name,city\n1,Li,Beijing\n,,\n"));
    csv_destroy(&c);
    assert_null(c);
}

static void test_empty_input(void **state)
{
    (void)state;
    csv_t *c = open_n(NULL, 0);
    expect_end(c);
    csv_destroy(&c);
    c = open_s("\xEF\xBB\xBF");
    expect_end(c);
    csv_destroy(&c);
    c = open_s("\n\r\n\r");
    expect_end(c);
    csv_destroy(&c);
}

static void test_quoted(void **state)
{
    (void)state;
    csv_t *c = open_s("\"a,b\",\"say \"\"hi\"\"\",\"\",\"x\ny\"\n"
                      "\"\"\"\",plain\n");
    expect_row(c, 1, 4, "a,b", "say \"hi\"", "", "x\ny");
    expect_row(c, 3, 2, "\"", "plain");
    expect_end(c);
    csv_destroy(&c);
}

static void test_lines_across_quoted_newlines(void **state)
{
    (void)state;
    csv_t *c = open_s("h1,h2\n"
                      "\"one\ntwo\nthree\",x\n"   /* lines 2-4 */
                      "a,\"p\r\nq\"\n"            /* lines 5-6 */
                      "\n"                        /* line 7, blank */
                      "last,\"\n\"\n"             /* lines 8-9 */
                      "end\n");                   /* line 10 */
    expect_row(c, 1, 2, "h1", "h2");
    expect_row(c, 2, 2, "one\ntwo\nthree", "x");
    expect_row(c, 5, 2, "a", "p\r\nq");
    expect_row(c, 8, 2, "last", "\n");
    expect_row(c, 10, 1, "end");
    expect_end(c);
    csv_destroy(&c);
}

static void test_crlf_and_bare_cr(void **state)
{
    (void)state;
    csv_t *c = open_s("a,b\r\nc,d\r\n\"e\r\nf\",g\r\nh\ri\r");
    expect_row(c, 1, 2, "a", "b");
    expect_row(c, 2, 2, "c", "d");
    expect_row(c, 3, 2, "e\r\nf", "g");
    expect_row(c, 5, 1, "h");
    expect_row(c, 6, 1, "i");
    expect_end(c);
    csv_destroy(&c);
}

static void test_bom(void **state)
{
    (void)state;
    csv_t *c = open_s("\xEF\xBB\xBFid,name\n1,\xEF\xBB\xBFx\n");
    expect_row(c, 1, 2, "id", "name");
    /* Only a BOM at the very start is dropped; later it is data. */
    expect_row(c, 2, 2, "1", "\xEF\xBB\xBFx");
    expect_end(c);
    csv_destroy(&c);

    /* A BOM before a quote still lets the first cell be quoted. */
    c = open_s("\xEF\xBB\xBF\"a,b\",c");
    expect_row(c, 1, 2, "a,b", "c");
    expect_end(c);
    csv_destroy(&c);
}

static void test_blank_lines(void **state)
{
    (void)state;
    csv_t *c = open_s("\n\na\n\r\n\nb\n\n\r\r\n");
    expect_row(c, 3, 1, "a");
    expect_row(c, 6, 1, "b");
    expect_end(c);
    csv_destroy(&c);

    /* A line of a space or of an empty quoted cell is not blank. */
    c = open_s(" \n\"\"\n");
    expect_row(c, 1, 1, " ");
    expect_row(c, 2, 1, "");
    expect_end(c);
    csv_destroy(&c);
}

static void test_no_trailing_newline(void **state)
{
    (void)state;
    csv_t *c = open_s("a,b\nc,d");
    expect_row(c, 1, 2, "a", "b");
    expect_row(c, 2, 2, "c", "d");
    expect_end(c);
    csv_destroy(&c);

    c = open_s("x,");
    expect_row(c, 1, 2, "x", "");
    expect_end(c);
    csv_destroy(&c);

    c = open_s("\"q\"");
    expect_row(c, 1, 1, "q");
    expect_end(c);
    csv_destroy(&c);
}

static void test_chinese(void **state)
{
    (void)state;
    csv_t *c = open_s("姓名,城市,备注\n"
                      "张三,北京,\"海淀区，中关村\"\n"
                      "李四,\"上海,浦东\",\"第一行\n第二行\"\n"
                      "王五,广州,😀\n");
    expect_row(c, 1, 3, "姓名", "城市", "备注");
    expect_row(c, 2, 3, "张三", "北京", "海淀区，中关村");
    expect_row(c, 3, 3, "李四", "上海,浦东", "第一行\n第二行");
    expect_row(c, 5, 3, "王五", "广州", "😀");
    expect_end(c);
    csv_destroy(&c);
}

static void test_err_quote_in_unquoted(void **state)
{
    (void)state;
    csv_t *c = open_s("ok\nab\"c,d\nnext,1\n");
    expect_row(c, 1, 1, "ok");
    expect_err(c, "line 2:", "column 1");
    expect_row(c, 3, 2, "next", "1");
    expect_end(c);
    csv_destroy(&c);

    /* The stray quote does not open a quoted section while skipping. */
    c = open_s("a,b\"c\nd\n\"e\"\n");
    expect_err(c, "line 1:", "column 2");
    expect_row(c, 2, 1, "d");
    expect_row(c, 3, 1, "e");
    expect_end(c);
    csv_destroy(&c);
}

static void test_err_after_closing_quote(void **state)
{
    (void)state;
    csv_t *c = open_s("x\n\"a\"b,c\n\"a\" ,c\nnext\n");
    expect_row(c, 1, 1, "x");
    expect_err(c, "line 2:", "column 1");
    expect_err(c, "line 3:", "column 1");
    expect_row(c, 4, 1, "next");
    expect_end(c);
    csv_destroy(&c);
}

static void test_err_skip_stays_outside_quotes(void **state)
{
    (void)state;
    /* The error is on line 1, but the row goes on through a quoted cell
     * spanning lines 1-2; the next row starts on line 3. */
    csv_t *c = open_s("\"x\"y,\"p\nq\"\ngood\n");
    expect_err(c, "line 1:", "column 1");
    expect_row(c, 3, 1, "good");
    expect_end(c);
    csv_destroy(&c);
}

static void test_err_unterminated(void **state)
{
    (void)state;
    const char *s = "a\nb,\"abc\nmore,\nstuff\n";
    csv_t *c = open_s(s);
    expect_row(c, 1, 1, "a");
    expect_err(c, "line 2:", "column 2");
    assert_int_equal(csv_offset(c), strlen(s));
    expect_end(c);
    csv_destroy(&c);

    /* The line named is where the quoted cell opened, not the row's. */
    c = open_s("\"a\nb\",\"c\nd");
    expect_err(c, "line 2:", "row starts on line 1");
    expect_end(c);
    csv_destroy(&c);
}

static void test_err_nul(void **state)
{
    (void)state;
    static const char s[] = "a,b\0c\n\"d\0\",e\nnext\n";
    csv_t *c = open_n(s, sizeof s - 1);
    expect_err(c, "line 1:", "column 2");
    expect_err(c, "line 2:", "column 1");
    expect_row(c, 3, 1, "next");
    expect_end(c);
    csv_destroy(&c);
}

static void test_err_utf8(void **state)
{
    (void)state;
    static const char *bad[] = {
        "\xC0\x80",             /* overlong NUL */
        "\xC1\xBF",             /* overlong */
        "\xE0\x80\x80",         /* overlong 3-byte */
        "\xE0\x9F\xBF",         /* overlong U+07FF */
        "\xF0\x8F\xBF\xBF",     /* overlong U+FFFF */
        "\xED\xA0\x80",         /* surrogate U+D800 */
        "\xED\xBF\xBF",         /* surrogate U+DFFF */
        "\xF4\x90\x80\x80",     /* U+110000 */
        "\xF5\x80\x80\x80",
        "\xFF",
        "\x80",                 /* stray continuation */
        "x\xE4\xB8",            /* truncated at the end of the cell */
        "\xE4\xB8,\xAD",        /* a character cut by a separator */
        "\xE4\x41\x41",         /* lead byte without continuations */
        "\xF0\x9F\x98",         /* truncated 4-byte */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char buf[64];
        snprintf(buf, sizeof buf, "x\nok,%s\nnext\n", bad[i]);
        csv_t *c = open_s(buf);
        expect_row(c, 1, 1, "x");
        expect_err(c, "line 2:", "UTF-8");
        expect_row(c, 3, 1, "next");
        expect_end(c);
        csv_destroy(&c);
    }

    /* The edges of the valid ranges pass. */
    csv_t *c = open_s("\xF4\x8F\xBF\xBF,\xED\x9F\xBF,\xEE\x80\x80,"
                      "\xC2\x80,\xE0\xA0\x80,\xF0\x90\x80\x80,\x7F\n");
    expect_row(c, 1, 7, "\xF4\x8F\xBF\xBF", "\xED\x9F\xBF", "\xEE\x80\x80",
               "\xC2\x80", "\xE0\xA0\x80", "\xF0\x90\x80\x80", "\x7F");
    expect_end(c);
    csv_destroy(&c);

    /* A bare CR inside quotes counts as a line break too. */
    c = open_s("\"a\rb\xFF\"\nnext\n");
    expect_err(c, "line 2:", "row starts on line 1");
    expect_row(c, 3, 1, "next");
    expect_end(c);
    csv_destroy(&c);

    /* Broken UTF-8 on the third line of a quoted cell names that line. */
    c = open_s("h\n\"a\nb\nc\xFF\",d\nnext\n");
    expect_row(c, 1, 1, "h");
    expect_err(c, "line 4:", "row starts on line 2");
    expect_row(c, 5, 1, "next");
    expect_end(c);
    csv_destroy(&c);
}

/* Builds a row of n cells "c0,c1,...". */
static char *many_cells(uint32_t n)
{
    char *s = malloc((size_t)n * 8 + 16);
    assert_non_null(s);
    size_t k = 0;
    for (uint32_t i = 0; i < n; i++)
        k += (size_t)sprintf(s + k, i ? ",%u" : "%u", i);
    s[k++] = '\n';
    s[k] = '\0';
    return s;
}

static void test_cell_count_limit(void **state)
{
    (void)state;
    char *ok = many_cells(1024);
    char *bad = many_cells(1025);
    size_t lo = strlen(ok), lb = strlen(bad);
    char *s = malloc(lo + lb + 16);
    assert_non_null(s);
    memcpy(s, ok, lo);
    memcpy(s + lo, bad, lb);
    strcpy(s + lo + lb, "next\n");

    csv_t *c = open_s(s);
    csv_row_t row;
    why_t why = {{0}};
    assert_int_equal(csv_next(c, &row, &why), 1);
    assert_int_equal(row.n, 1024);
    assert_string_equal(row.cells[0], "0");
    assert_string_equal(row.cells[1023], "1023");
    expect_err(c, "line 2:", "more than 1024 cells");
    expect_row(c, 3, 1, "next");
    expect_end(c);
    csv_destroy(&c);

    /* A trailing separator counts as opening a 1025th (empty) cell. */
    ok[lo - 1] = ',';
    c = open_n(ok, lo);
    expect_err(c, "line 1:", "more than 1024 cells");
    expect_end(c);
    csv_destroy(&c);
    free(ok);
    free(bad);
    free(s);
}

static void test_cell_size_limit(void **state)
{
    (void)state;
    enum { MAX = 65536 };
    char *s = malloc(4 * MAX + 64);
    assert_non_null(s);
    size_t k = 0;

    /* Line 1: exactly 64 KiB unquoted. */
    memset(s + k, 'a', MAX);
    k += MAX;
    s[k++] = '\n';
    /* Line 2: one byte over. */
    s[k++] = 'x';
    s[k++] = ',';
    memset(s + k, 'b', MAX + 1);
    k += MAX + 1;
    s[k++] = '\n';
    /* Lines 3-4: quoted, exactly 64 KiB after unescaping: the doubled
     * quote counts once and the line break twice (CRLF). */
    s[k++] = '"';
    s[k++] = '"';
    s[k++] = '"';
    s[k++] = '\r';
    s[k++] = '\n';
    memset(s + k, 'c', MAX - 3);
    k += MAX - 3;
    s[k++] = '"';
    s[k++] = '\n';
    /* Lines 5-6: quoted and too long, with a line break after the limit
     * that the skip must stay inside. */
    s[k++] = '"';
    memset(s + k, 'd', MAX + 1);
    k += MAX + 1;
    memcpy(s + k, "\n,e\"\nnext", 9);
    k += 9;

    csv_t *c = open_n(s, k);
    csv_row_t row;
    why_t why = {{0}};
    assert_int_equal(csv_next(c, &row, &why), 1);
    assert_int_equal(row.line, 1);
    assert_int_equal(row.n, 1);
    assert_int_equal(strlen(row.cells[0]), MAX);
    expect_err(c, "line 2:", "column 2");
    assert_int_equal(csv_next(c, &row, &why), 1);
    assert_int_equal(row.line, 3);
    assert_int_equal(strlen(row.cells[0]), MAX);
    assert_memory_equal(row.cells[0], "\"\r\nccc", 6);
    expect_err(c, "line 5:", "65536");
    expect_row(c, 7, 1, "next");
    expect_end(c);
    csv_destroy(&c);
    free(s);
}

static void test_message_has_no_content(void **state)
{
    (void)state;
    csv_t *c = open_s("secret-id-4711,\"x\"secret-name\n");
    csv_row_t row;
    why_t why = {{0}};
    assert_int_equal(csv_next(c, &row, &why), LX_EINVAL);
    assert_null(strstr(why.msg, "secret"));
    assert_null(strstr(why.msg, "4711"));
    /* A NULL why is allowed. */
    csv_destroy(&c);
    c = open_s("a\"b\nok\n");
    assert_int_equal(csv_next(c, &row, NULL), LX_EINVAL);
    expect_row(c, 2, 1, "ok");
    csv_destroy(&c);
}

static void test_destroy_twice(void **state)
{
    (void)state;
    csv_t *c = open_s("a");
    csv_destroy(&c);
    assert_null(c);
    csv_destroy(&c);
    assert_null(c);
    csv_destroy(NULL);
}

/* Writes rows with csv_put_cell into a memory stream. */
static char *write_rows(const char *const *cells, size_t ncells,
                        size_t per_row, size_t *len)
{
    char *out = NULL;
    FILE *f = open_memstream(&out, len);
    assert_non_null(f);
    for (size_t i = 0; i < ncells; i++) {
        csv_put_cell(f, cells[i]);
        fputc((i + 1) % per_row ? ',' : '\n', f);
    }
    assert_int_equal(fclose(f), 0);
    return out;
}

static void test_put_cell(void **state)
{
    (void)state;
    static const char *const in[] = {"plain", "a b", "", "a\"b"};
    size_t len;
    char *out = write_rows(in, 4, 4, &len);
    assert_string_equal(out, "plain,a b,,\"a\"\"b\"\n");
    free(out);

    static const char *const cells[] = {
        "plain", "a,b", "say \"hi\"", "\"", "line1\nline2", "cr\ronly",
        "crlf\r\n", "", "中文，标点", "张三,\"李四\"\n王五", " lead", "x",
    };
    out = write_rows(cells, 12, 6, &len);
    csv_t *c = open_n(out, len);
    csv_row_t row;
    why_t why = {{0}};
    assert_int_equal(csv_next(c, &row, &why), 1);
    assert_int_equal(row.line, 1);
    assert_int_equal(row.n, 6);
    for (int i = 0; i < 6; i++)
        assert_string_equal(row.cells[i], cells[i]);
    assert_int_equal(csv_next(c, &row, &why), 1);
    /* Row 1 holds two line breaks inside quotes, an LF and a bare CR. */
    assert_int_equal(row.line, 4);
    assert_int_equal(row.n, 6);
    for (int i = 0; i < 6; i++)
        assert_string_equal(row.cells[i], cells[6 + i]);
    expect_end(c);
    csv_destroy(&c);
    free(out);
}

/* Random cells drawn from pieces that stress quoting, written with
 * csv_put_cell to a tmpfile and read back. */
static void test_put_cell_random_round_trip(void **state)
{
    (void)state;
    static const char *const piece[] = {
        "a", ",", "\"", "\r", "\n", "\r\n", "中", "😀", " ", "\"\"", "é",
    };
    enum { ROWS = 300, MAXC = 6, MAXP = 8 };
    static char cell[ROWS][MAXC][MAXP * 4 + 1];
    static uint32_t ncell[ROWS];
    unsigned seed = 12345;
    FILE *f = tmpfile();
    assert_non_null(f);
    for (int r = 0; r < ROWS; r++) {
        ncell[r] = 1 + (seed = seed * 1103515245u + 12345u) % MAXC;
        for (uint32_t i = 0; i < ncell[r]; i++) {
            cell[r][i][0] = '\0';
            unsigned np = (seed = seed * 1103515245u + 12345u) % (MAXP + 1);
            for (unsigned p = 0; p < np; p++) {
                seed = seed * 1103515245u + 12345u;
                strcat(cell[r][i], piece[(seed >> 8) % 11]);
            }
            if (i)
                fputc(',', f);
            csv_put_cell(f, cell[r][i]);
        }
        /* A lone empty cell writes as a blank line, which the reader
         * rightly skips; give it company instead. */
        if (ncell[r] == 1 && !cell[r][0][0]) {
            strcpy(cell[r][1], "pad");
            ncell[r] = 2;
            fputs(",pad", f);
        }
        fputs(r % 2 ? "\r\n" : "\n", f);
    }
    long size = ftell(f);
    assert_true(size > 0);
    char *buf = malloc((size_t)size);
    assert_non_null(buf);
    rewind(f);
    assert_int_equal(fread(buf, 1, (size_t)size, f), (size_t)size);
    fclose(f);

    csv_t *c = open_n(buf, (size_t)size);
    uint64_t last = 0;
    for (int r = 0; r < ROWS; r++) {
        csv_row_t row;
        why_t why = {{0}};
        int rc = csv_next(c, &row, &why);
        if (rc != 1)
            fail_msg("row %d: rc %d: %s", r, rc, why.msg);
        assert_true(row.line > last);
        last = row.line;
        assert_int_equal(row.n, ncell[r]);
        for (uint32_t i = 0; i < row.n; i++)
            assert_string_equal(row.cells[i], cell[r][i]);
    }
    expect_end(c);
    csv_destroy(&c);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple),
        cmocka_unit_test(test_empty_input),
        cmocka_unit_test(test_quoted),
        cmocka_unit_test(test_lines_across_quoted_newlines),
        cmocka_unit_test(test_crlf_and_bare_cr),
        cmocka_unit_test(test_bom),
        cmocka_unit_test(test_blank_lines),
        cmocka_unit_test(test_no_trailing_newline),
        cmocka_unit_test(test_chinese),
        cmocka_unit_test(test_err_quote_in_unquoted),
        cmocka_unit_test(test_err_after_closing_quote),
        cmocka_unit_test(test_err_skip_stays_outside_quotes),
        cmocka_unit_test(test_err_unterminated),
        cmocka_unit_test(test_err_nul),
        cmocka_unit_test(test_err_utf8),
        cmocka_unit_test(test_cell_count_limit),
        cmocka_unit_test(test_cell_size_limit),
        cmocka_unit_test(test_message_has_no_content),
        cmocka_unit_test(test_destroy_twice),
        cmocka_unit_test(test_put_cell),
        cmocka_unit_test(test_put_cell_random_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, free_copies);
}
