/* libFuzzer target for common/csv: any bytes must give rows or errors,
 * never a crash, a hang or a read outside the input. Besides the
 * sanitizers it checks what a caller relies on: rows start on increasing
 * lines, every call makes progress, cells stay within the limits, and a
 * row written back with csv_put_cell reads back the same. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/csv.h"
#include "common/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Writes the row with csv_put_cell and reads it back. The output starts
 * with a BOM because a first cell that itself begins with U+FEFF would
 * otherwise lose it to the reader's BOM skip. */
static void round_trip(const csv_row_t *row)
{
    /* A lone empty cell writes as a blank line, which reads as nothing. */
    if (row->n == 1 && row->cells[0][0] == '\0')
        return;
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f)
        return;
    fputs("\xEF\xBB\xBF", f);
    for (uint32_t i = 0; i < row->n; i++) {
        if (i)
            fputc(',', f);
        csv_put_cell(f, row->cells[i]);
    }
    fputc('\n', f);
    if (fclose(f) != 0) {
        free(out);
        return;
    }
    csv_t *c = csv_new(out, len);
    if (c) {
        csv_row_t back;
        why_t why;
        if (csv_next(c, &back, &why) != 1 || back.n != row->n || back.line != 1)
            __builtin_trap();
        for (uint32_t i = 0; i < row->n; i++)
            if (strcmp(back.cells[i], row->cells[i]) != 0)
                __builtin_trap();
        if (csv_next(c, &back, &why) != 0)
            __builtin_trap();
        csv_destroy(&c);
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    csv_t *c = csv_new((const char *)data, size);
    if (!c)
        return 0;
    uint64_t last_line = 0;
    size_t last_off = csv_offset(c);
    for (;;) {
        csv_row_t row;
        why_t why;
        int rc = csv_next(c, &row, &why);
        if (rc == 0)
            break;
        /* Each row or error consumes input; otherwise a caller that goes
         * on after errors would loop for ever. */
        size_t off = csv_offset(c);
        if (off <= last_off || off > size)
            __builtin_trap();
        last_off = off;
        if (rc == 1) {
            if (row.n < 1 || row.n > 1024 || row.line <= last_line)
                __builtin_trap();
            for (uint32_t i = 0; i < row.n; i++)
                if (strlen(row.cells[i]) > 65536)
                    __builtin_trap();
            last_line = row.line;
            round_trip(&row);
        } else if (rc == LX_EINVAL) {
            if (strncmp(why.msg, "line ", 5) != 0)
                __builtin_trap();
        }
    }
    if (csv_offset(c) != size)
        __builtin_trap();
    csv_destroy(&c);
    csv_destroy(&c);
    return 0;
}
