/* libFuzzer target for the API's request-body parser (common/access.c):
 * any bytes must parse or be refused with a message, never crash, hang,
 * leak or read outside the input. A body that parses must hold only
 * fields of the schema that the role writes, each a valid value; one that
 * is refused must say why. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/access.h"
#include "common/schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const roles[] = {"operator", "education", "health", "teacher"};
    const char *role = roles[size % 4];
    record_t *r = record_new("fuzz");
    why_t why = {""};
    int rc = access_parse_write((const char *)data, size, NULL, role, r, &why);
    if (rc == LX_OK) {
        for (uint32_t i = 0; i < r->n; i++) {
            const field_def_t *d = schema_field(r->f[i].name);
            if (!d || !(access_rights(NULL, role, r->f[i].name) & ACCESS_WRITE)
                || schema_check_value(d, &r->f[i].val, NULL) != LX_OK)
                __builtin_trap();
        }
    } else if (!why.msg[0] && rc != LX_ENOMEM) {
        __builtin_trap();
    }
    record_destroy(&r);
    json_t *j = access_parse_object((const char *)data, size, &why);
    json_decref(j);
    return 0;
}
