#include "merge.h"

#include <string.h>

/* The total order behind last-writer-wins: (hlc, origin), then the value
 * and the author, so that two different writes never compare equal. */
static int order(const field_t *a, const field_t *b)
{
    int c = ver_cmp(&a->ver, &b->ver);
    if (c)
        return c;
    if (a->val.kind != b->val.kind)
        return a->val.kind < b->val.kind ? -1 : 1;
    switch (a->val.kind) {
    case VAL_NIL:
        break;
    case VAL_BOOL:
        if (a->val.b != b->val.b)
            return a->val.b ? 1 : -1;
        break;
    case VAL_STR:
        if ((c = strcmp(a->val.s, b->val.s)))
            return c;
        break;
    case VAL_LIST:
        if (a->val.n != b->val.n)
            return a->val.n < b->val.n ? -1 : 1;
        for (uint32_t i = 0; i < a->val.n; i++)
            if ((c = strcmp(a->val.items[i], b->val.items[i])))
                return c;
        break;
    }
    if (a->ver.base != b->ver.base)
        return a->ver.base < b->ver.base ? -1 : 1;
    return strcmp(a->ver.author ? a->ver.author : "",
                  b->ver.author ? b->ver.author : "");
}

merge_t merge_decide(const field_t *cur, const field_t *w, bool *conflict)
{
    *conflict = false;
    if (!cur)
        return MERGE_WON;
    int c = order(w, cur);
    if (c == 0)
        return MERGE_SAME;
    if (c > 0) {
        /* w replaces cur; a sequential edit names cur (or something
         * newer this node has not seen yet) as its base. */
        *conflict = w->ver.base < cur->ver.hlc;
        return MERGE_WON;
    }
    /* w loses; cur's writer either saw w (or something newer) or not. */
    *conflict = cur->ver.base < w->ver.hlc;
    return MERGE_LOST;
}
