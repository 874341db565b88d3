/* Unit tests for common/csvout (the rows of a CSV export) and the cell
 * writer: a row written from a record's stored bytes is the row written
 * from the decoded record, byte for byte; bytes the reader does not take
 * write nothing; under random mutation of stored bytes, whatever the
 * reader takes the decoder takes too, with the same row. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/csv.h"
#include "common/csvout.h"
#include "common/err.h"
#include "common/record.h"
#include "common/schema.h"
#include "xorshift.h"

#define ID "510104001001-0000019a1b2c3d4e"

/* ---- helpers ---- */

typedef struct {
    char *buf;
    size_t len;
    FILE *f;
} out_t;

static void out_open(out_t *o)
{
    o->buf = NULL;
    o->len = 0;
    o->f = open_memstream(&o->buf, &o->len);
    assert_non_null(o->f);
}

/* Closes the stream; the text stays in o->buf (freed by the caller). */
static void out_close(out_t *o) { assert_int_equal(fclose(o->f), 0); }

static void put(record_t *r, const char *name, const val_t *v, uint64_t hlc)
{
    field_t f;
    ver_t ver = {.hlc = hlc, .origin = 510104001001ULL, .author = "510104001001/test/a"};
    assert_int_equal(field_init(&f, name, v, &ver), LX_OK);
    assert_int_equal(record_take(r, &f), LX_OK);
}

static void put_str(record_t *r, const char *name, const char *s)
{
    val_t v = {0};
    assert_int_equal(val_set_str(&v, s), LX_OK);
    put(r, name, &v, 1000 + r->n);
    val_free(&v);
}

static void put_list(record_t *r, const char *name, const char *const *items, size_t n)
{
    val_t v = {.kind = VAL_LIST};
    for (size_t i = 0; i < n; i++)
        assert_int_equal(val_list_add(&v, items[i]), LX_OK);
    put(r, name, &v, 2000 + r->n);
    val_free(&v);
}

/* A record with every kind of value and every kind of cell: quoting,
 * doubled quotes, line breaks, lists (one item holding a comma), a
 * boolean, a cleared field, two local fields and a name nobody exports. */
static record_t *sample(void)
{
    record_t *r = record_new(ID);
    assert_non_null(r);
    put_str(r, "name", "王\"小\"明");
    put_str(r, "gender", "male");
    put_str(r, "birth_date", "2015-06-01");
    put_str(r, "village_code", "510104001001");
    put_str(r, "household_address", "四川省,成都市\r\n第1组");
    put_str(r, "guardian_name", "\"");
    static const char *const cats[] = {"left_behind", "orphan"};
    put_list(r, "categories", cats, 2);
    static const char *const odd[] = {"a,b", "c"};
    put_list(r, "x_tags", odd, 2);
    put_str(r, "x_hukou_type", "urban");
    put_str(r, "x_unlisted", "not a column");
    val_t b = {.kind = VAL_BOOL, .b = false};
    put(r, "guardian_capable", &b, 3000);
    val_t nil = {0};
    put(r, "risk_level", &nil, 3001);
    return r;
}

static unsigned char *pack(const record_t *r, size_t *len)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    assert_int_equal(record_pack(r, &pk), 0);
    /* An exact heap copy: AddressSanitizer sees a read past the end. */
    unsigned char *b = malloc(sb.size);
    assert_non_null(b);
    memcpy(b, sb.data, sb.size);
    *len = sb.size;
    msgpack_sbuffer_destroy(&sb);
    return b;
}

static csvout_t *cols(void)
{
    /* x_unlisted is held but not a column: the export asked for these. */
    static const char *const local[] = {"x_hukou_type", "x_other", "x_tags"};
    csvout_t *o = csvout_new(local, 3);
    assert_non_null(o);
    return o;
}

/* The row from the bytes, or NULL when the reader did not take them (and
 * then it must have written nothing). */
static char *row_packed(const csvout_t *o, const void *buf, size_t len)
{
    out_t x;
    out_open(&x);
    bool took = csvout_packed(o, x.f, buf, len);
    out_close(&x);
    if (!took) {
        assert_int_equal(x.len, 0);
        free(x.buf);
        return NULL;
    }
    return x.buf;
}

static char *row_record(const csvout_t *o, const record_t *r)
{
    out_t x;
    out_open(&x);
    csvout_record(o, x.f, r);
    out_close(&x);
    return x.buf;
}

/* ---- tests ---- */

static void test_cells(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        size_t n;
        const char *out;
    } cases[] = {
        {"plain", 5, "plain"},
        {"", 0, ""},
        {"a,b", 3, "\"a,b\""},
        {"\"", 1, "\"\"\"\""},
        {"say \"hi\"", 8, "\"say \"\"hi\"\"\""},
        {"\"\"x", 3, "\"\"\"\"\"x\""},
        {"line\r\nnext", 10, "\"line\r\nnext\""},
        {"cr\r", 3, "\"cr\r\""},
        {"cut,here", 3, "cut"},       /* n bounds the cell */
        {"q\"uote", 2, "\"q\"\"\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        out_t x;
        out_open(&x);
        csv_put_celln(x.f, cases[i].in, cases[i].n);
        out_close(&x);
        if (strcmp(x.buf, cases[i].out) != 0)
            fail_msg("cell %zu: got [%s], expected [%s]", i, x.buf, cases[i].out);
        free(x.buf);
        if (strlen(cases[i].in) == cases[i].n) {
            out_open(&x);
            csv_put_cell(x.f, cases[i].in);
            out_close(&x);
            assert_string_equal(x.buf, cases[i].out);
            free(x.buf);
        }
    }
}

/* The header, and a row checked cell by cell (so that the two writers
 * agreeing is not both being wrong). */
static void test_row(void **state)
{
    (void)state;
    csvout_t *o = cols();
    out_t x;
    out_open(&x);
    csvout_header(o, x.f);
    out_close(&x);
    assert_true(strncmp(x.buf, "id,name,gender,", 15) == 0);
    assert_non_null(strstr(x.buf, ",exit_date,x_hukou_type,x_other,x_tags\r\n"));
    free(x.buf);

    record_t *r = sample();
    size_t len;
    unsigned char *b = pack(r, &len);
    char *fast = row_packed(o, b, len);
    char *slow = row_record(o, r);
    assert_non_null(fast);
    assert_string_equal(fast, slow);
    const char *head = ID ",\"王\"\"小\"\"明\",male,2015-06-01,";
    assert_true(strncmp(fast, head, strlen(head)) == 0);
    assert_non_null(strstr(fast, ",\"四川省,成都市\r\n第1组\","));
    assert_non_null(strstr(fast, ",left_behind;orphan,"));
    assert_non_null(strstr(fast, ",\"\"\"\"," )); /* guardian_name: one quote */
    assert_non_null(strstr(fast, ",false,"));
    /* The local columns last: x_hukou_type, x_other (absent), x_tags. */
    const char *tail = ",urban,,\"a,b;c\"\r\n";
    size_t fl = strlen(fast), tl = strlen(tail);
    assert_true(fl > tl && strcmp(fast + fl - tl, tail) == 0);
    assert_null(strstr(fast, "not a column"));
    /* As many cells as the header has columns: 1 + schema + 3 local. */
    size_t commas = 0;
    bool quoted = false;
    for (const char *p = fast; *p; p++) {
        if (*p == '"')
            quoted = !quoted;
        else if (*p == ',' && !quoted)
            commas++;
    }
    assert_int_equal(commas, schema_count() + 3);
    free(fast);
    free(slow);
    free(b);
    record_destroy(&r);

    /* A record with nothing but its id: every cell empty. */
    r = record_new(ID);
    b = pack(r, &len);
    fast = row_packed(o, b, len);
    slow = row_record(o, r);
    assert_non_null(fast);
    assert_string_equal(fast, slow);
    assert_int_equal(strlen(fast), strlen(ID) + schema_count() + 3 + 2);
    free(fast);
    free(slow);
    free(b);
    record_destroy(&r);
    csvout_destroy(&o);
}

/* Bytes the reader leaves to the decoder: it writes nothing for them. */
static void test_not_taken(void **state)
{
    (void)state;
    csvout_t *o = cols();
    record_t *r = sample();
    size_t len;
    unsigned char *b = pack(r, &len);
    unsigned char *w = malloc(len + 1);
    assert_non_null(w);

    /* Cut short at every length. */
    for (size_t n = 0; n < len; n++) {
        memcpy(w, b, n);
        char *row = row_packed(o, w, n);
        if (row)
            fail_msg("took %zu of %zu bytes", n, len);
    }
    /* A byte too many. */
    memcpy(w, b, len);
    w[len] = 0xc0;
    assert_null(row_packed(o, w, len + 1));
    /* A NUL inside a string (the decoder refuses it too). */
    memcpy(w, b, len);
    unsigned char *at = memmem(w, len, "male", 4);
    assert_non_null(at);
    at[1] = '\0';
    assert_null(row_packed(o, w, len));
    /* A bad record id. */
    memcpy(w, b, len);
    at = memmem(w, len, ID, strlen(ID));
    assert_non_null(at);
    at[0] = '!';
    assert_null(row_packed(o, w, len));
    /* A field number the schema does not have. */
    record_t *one = record_new(ID);
    put_str(one, "name", "x");
    free(b);
    b = pack(one, &len);
    unsigned char *num = NULL;
    for (size_t i = 0; i + 1 < len; i++)
        if (b[i] == 0x94 && b[i + 1] == (unsigned char)schema_num("name"))
            num = &b[i + 1];
    assert_non_null(num);
    *num = (unsigned char)schema_count();
    assert_null(row_packed(o, b, len));
    record_t *dec = NULL;
    assert_int_not_equal(record_decode(b, len, &dec, NULL), LX_OK);
    /* A field number in two bytes: the decoder takes it, the reader does
     * not (export decodes such a record and writes the same row). */
    *num = (unsigned char)schema_num("name");
    unsigned char *wide = malloc(len + 1);
    assert_non_null(wide);
    size_t at_num = (size_t)(num - b);
    memcpy(wide, b, at_num);
    wide[at_num] = 0xcc;
    memcpy(wide + at_num + 1, b + at_num, len - at_num);
    assert_null(row_packed(o, wide, len + 1));
    assert_int_equal(record_decode(wide, len + 1, &dec, NULL), LX_OK);
    char *slow = row_record(o, dec), *fast = row_packed(o, b, len);
    assert_non_null(fast);
    assert_string_equal(slow, fast);
    free(slow);
    free(fast);
    free(wide);
    record_destroy(&dec);
    record_destroy(&one);
    free(w);
    free(b);
    record_destroy(&r);
    csvout_destroy(&o);
}

static void add_name(void *arg, const char *name)
{
    out_t *x = arg;
    fprintf(x->f, "%s;", name);
}

static void test_locals(void **state)
{
    (void)state;
    record_t *r = sample();
    size_t len;
    unsigned char *b = pack(r, &len);
    out_t x;
    out_open(&x);
    assert_true(csvout_packed_locals(b, len, add_name, &x));
    out_close(&x);
    /* Every local name held, in the record's order; no schema field. */
    assert_string_equal(x.buf, "x_hukou_type;x_tags;x_unlisted;");
    free(x.buf);
    out_open(&x);
    assert_false(csvout_packed_locals(b, len - 1, add_name, &x));
    out_close(&x);
    free(x.buf);
    free(b);
    record_destroy(&r);
}

/* Whatever the reader takes of mutated bytes, the decoder takes too and
 * the row is the same; the reader must also take some (the mutations are
 * not all fatal) and leave some. */
static void test_mutations(void **state)
{
    (void)state;
    csvout_t *o = cols();
    record_t *r = sample();
    size_t blen;
    unsigned char *base = pack(r, &blen);
    record_destroy(&r);
    static const unsigned char hot[] = {0x00, 0x7f, 0x80, 0x90, 0x94, 0x9f, 0xa0, 0xbf,
                                        0xc0, 0xc1, 0xc2, 0xc3, 0xcc, 0xcf, 0xd9, 0xdb,
                                        0xdc, 0xdd, 0xde, 0xff, '"', ',', '\n', 0x01};
    uint64_t s = 0x9e3779b97f4a7c15ULL;
    unsigned char work[2048];
    int took = 0, left = 0;
    assert_true(blen + 8 <= sizeof work);
    for (int it = 0; it < 20000; it++) {
        size_t len = blen;
        memcpy(work, base, len);
        int edits = 1 + (int)(xorshift64(&s) % 3);
        for (int k = 0; k < edits; k++) {
            uint64_t x = xorshift64(&s);
            size_t at = (size_t)((x >> 8) % len);
            switch (x % 4) {
            case 0: work[at] ^= (unsigned char)(1u << ((x >> 40) % 8)); break;
            case 1: work[at] = hot[(x >> 40) % sizeof hot]; break;
            case 2:
                memmove(work + at + 1, work + at, len - at);
                work[at] = hot[(x >> 41) % sizeof hot];
                len++;
                break;
            case 3:
                memmove(work + at, work + at + 1, len - at - 1);
                len--;
                break;
            }
        }
        unsigned char *m = malloc(len);
        assert_non_null(m);
        memcpy(m, work, len);
        char *fast = row_packed(o, m, len);
        if (fast) {
            record_t *d = NULL;
            why_t why = {""};
            if (record_decode(m, len, &d, &why) != LX_OK)
                fail_msg("iteration %d: the reader took bytes the decoder refuses (%s)", it,
                         why.msg);
            char *slow = row_record(o, d);
            if (strcmp(fast, slow) != 0)
                fail_msg("iteration %d: rows differ:\n%s\n%s", it, fast, slow);
            free(slow);
            record_destroy(&d);
            took++;
        } else {
            left++;
        }
        free(fast);
        free(m);
    }
    assert_true(took > 100);
    assert_true(left > 100);
    free(base);
    csvout_destroy(&o);
}

/* Both ways agree on bytes: the reader takes them and writes the
 * decoder's row, or neither takes them. */
static void agree(const csvout_t *o, const unsigned char *b, size_t len, bool taken)
{
    record_t *d = NULL;
    int rc = record_decode(b, len, &d, NULL);
    char *fast = row_packed(o, b, len);
    if (!taken) {
        assert_null(fast);
        assert_int_not_equal(rc, LX_OK);
        return;
    }
    assert_int_equal(rc, LX_OK);
    assert_non_null(fast);
    char *slow = row_record(o, d);
    assert_string_equal(fast, slow);
    free(slow);
    free(fast);
    record_destroy(&d);
}

/* Stored bytes written by hand: nv versions (the first with an author of
 * alen bytes), then one field, "name" by its number or (by_text) by its
 * name, with the value "x". */
static unsigned char *by_hand(uint32_t nv, size_t alen, bool by_text, size_t *len)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    char author[400];
    assert_true(alen < sizeof author);
    memset(author, 'a', alen);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_str_with_body(&pk, ID, strlen(ID));
    msgpack_pack_array(&pk, nv);
    for (uint32_t i = 0; i < nv; i++) {
        msgpack_pack_array(&pk, 3);
        msgpack_pack_uint64(&pk, 1000 + i);
        msgpack_pack_uint64(&pk, 510104001001ULL);
        msgpack_pack_str_with_body(&pk, author, i ? 3 : alen);
    }
    msgpack_pack_array(&pk, 1);
    msgpack_pack_array(&pk, 4);
    if (by_text)
        msgpack_pack_str_with_body(&pk, "name", 4);
    else
        msgpack_pack_uint8(&pk, (uint8_t)schema_num("name"));
    msgpack_pack_str_with_body(&pk, "x", 1);
    msgpack_pack_uint32(&pk, 0);
    msgpack_pack_uint32(&pk, 0);
    unsigned char *b = malloc(sb.size);
    assert_non_null(b);
    memcpy(b, sb.data, sb.size);
    *len = sb.size;
    msgpack_sbuffer_destroy(&sb);
    return b;
}

/* The decoder's limits are the reader's, and the long forms of strings
 * and lists read as the short ones. */
static void test_limits(void **state)
{
    (void)state;
    csvout_t *o = cols();
    size_t len;
    unsigned char *b;
    struct {
        uint32_t nv;
        size_t alen;
        bool by_text, taken;
    } cases[] = {
        {1, 3, false, true},
        {1, 3, true, true},                        /* a schema field kept by name */
        {RECORD_MAX_FIELDS, 3, false, true},       /* the most versions */
        {RECORD_MAX_FIELDS + 1, 3, false, false},  /* one too many */
        {300, 3, false, false},
        {1, RECORD_AUTHOR_MAX, false, true},       /* the longest author */
        {1, RECORD_AUTHOR_MAX + 1, false, false},  /* one byte too long */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        b = by_hand(cases[i].nv, cases[i].alen, cases[i].by_text, &len);
        agree(o, b, len, cases[i].taken);
        free(b);
    }
    b = by_hand(1, 3, true, &len);
    char *row = row_packed(o, b, len);
    assert_non_null(row);
    assert_true(strncmp(row, ID ",x,", strlen(ID) + 3) == 0);
    free(row);
    free(b);

    /* Lists of 17 items (a 0xdc header), of the most items, of one too
     * many; items joined past 1024 bytes; strings of 0xd9 and 0xda form. */
    char item[300];
    const char *items[RECORD_MAX_ITEMS + 1];
    memset(item, 'z', sizeof item - 1);
    item[sizeof item - 1] = '\0';
    item[5] = ',';
    for (size_t i = 0; i <= RECORD_MAX_ITEMS; i++)
        items[i] = item + (i % 7) * 20;
    size_t counts[] = {17, RECORD_MAX_ITEMS, RECORD_MAX_ITEMS + 1};
    for (size_t c = 0; c < 3; c++) {
        record_t *r = record_new(ID);
        put_list(r, "categories", items, counts[c]);
        put_str(r, "name", item + 250);                /* 49 bytes: 0xd9 */
        put_str(r, "household_address", item);        /* 299 bytes: 0xda */
        b = pack(r, &len);
        assert_non_null(memchr(b, 0xdc, len));
        assert_non_null(memchr(b, 0xd9, len));
        assert_non_null(memchr(b, 0xda, len));
        agree(o, b, len, counts[c] <= RECORD_MAX_ITEMS);
        if (counts[c] <= RECORD_MAX_ITEMS) {
            row = row_packed(o, b, len);
            /* The list cell: quoted (an item holds a comma), every item. */
            size_t semis = 0;
            for (const char *p = row; *p; p++)
                semis += *p == ';';
            assert_int_equal(semis, counts[c] - 1);
            assert_true(strlen(row) > 1024 * (c + 1));
            free(row);
        }
        free(b);
        record_destroy(&r);
    }
    csvout_destroy(&o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cells),
        cmocka_unit_test(test_row),
        cmocka_unit_test(test_not_taken),
        cmocka_unit_test(test_locals),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
