#include "recjson.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

json_t *recjson_value(const val_t *v)
{
    switch (v->kind) {
    case VAL_NIL: return json_null();
    case VAL_BOOL: return json_boolean(v->b);
    case VAL_STR: return json_string(v->s);
    case VAL_LIST: {
        json_t *a = json_array();
        for (uint32_t i = 0; a && i < v->n; i++)
            json_array_append_new(a, json_string(v->items[i]));
        return a;
    }
    }
    return json_null();
}

json_t *recjson_from_record(const record_t *r, bool versions)
{
    json_t *o = json_object();
    json_t *vs = versions ? json_object() : NULL;
    if (!o || (versions && !vs)) {
        json_decref(o);
        json_decref(vs);
        return NULL;
    }
    json_object_set_new(o, "id", json_string(r->id ? r->id : ""));
    for (uint32_t i = 0; i < r->n; i++) {
        const field_t *f = &r->f[i];
        json_object_set_new(o, f->name, recjson_value(&f->val));
        if (vs) {
            char origin[CODE_STRLEN + 1], when[48];
            json_object_set_new(vs, f->name,
                json_pack("{s:I, s:s, s:s, s:s, s:I}",
                          "hlc", (json_int_t)f->ver.hlc,
                          "time", hlc_fmt(f->ver.hlc, when, sizeof when),
                          "origin", code_fmt(f->ver.origin, origin),
                          "author", f->ver.author ? f->ver.author : "",
                          "base", (json_int_t)f->ver.base));
        }
    }
    if (vs)
        json_object_set_new(o, "_versions", vs);
    return o;
}

static int value_from_json(const char *name, const json_t *j, val_t *out,
                           why_t *why)
{
    val_t v = {0};
    char num[32];
    switch (json_typeof(j)) {
    case JSON_NULL:
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        v.kind = VAL_BOOL;
        v.b = json_is_true(j);
        break;
    case JSON_STRING:
        if (strlen(json_string_value(j)) != json_string_length(j))
            return why_set(why, LX_EINVAL, "field %s: string holds a NUL character", name);
        if (val_set_str(&v, json_string_value(j)))
            return LX_ENOMEM;
        break;
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(j));
        if (val_set_str(&v, num))
            return LX_ENOMEM;
        break;
    case JSON_ARRAY: {
        size_t i;
        json_t *e;
        v.kind = VAL_LIST;
        json_array_foreach(j, i, e) {
            if (!json_is_string(e)) {
                val_free(&v);
                return why_set(why, LX_EINVAL, "field %s: item %zu is not a string", name, i + 1);
            }
            if (val_list_add(&v, json_string_value(e))) {
                val_free(&v);
                return LX_ENOMEM;
            }
        }
        break;
    }
    default:
        return why_set(why, LX_EINVAL, "field %s: expected a string, boolean, "
                       "null or list of strings", name);
    }
    *out = v;
    return LX_OK;
}

int recjson_to_record(const json_t *obj, const ver_t *ver, record_t *r,
                      why_t *why)
{
    if (!json_is_object(obj))
        return why_set(why, LX_EINVAL, "record: expected a JSON object");
    const char *key;
    json_t *j;
    json_object_foreach((json_t *)obj, key, j) {
        if (strcmp(key, "id") == 0) {
            if (!json_is_string(j) || !record_id_valid(json_string_value(j)))
                return why_set(why, LX_EINVAL, "field id: expected 1-64 characters of A-Z a-z 0-9 _ -");
            free(r->id);
            if (!(r->id = strdup(json_string_value(j))))
                return LX_ENOMEM;
            continue;
        }
        if (strcmp(key, "_versions") == 0)
            continue;
        field_t f = {.name = (char *)key, .ver = *ver};
        int rc = value_from_json(key, j, &f.val, why);
        if (rc)
            return rc;
        rc = record_put(r, &f);
        val_free(&f.val);
        if (rc)
            return rc;
    }
    return LX_OK;
}

json_t *recjson_parse(const char *text, size_t len, why_t *why)
{
    json_error_t e;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &e);
    if (!j) {
        /* jansson quotes the offending token ("near '...'"), which may be
         * a child's name: keep only the description. */
        char *near = strstr(e.text, " near ");
        if (near)
            *near = '\0';
        why_set(why, LX_EINVAL, "JSON line %d column %d: %s", e.line, e.column, e.text);
    }
    return j;
}
