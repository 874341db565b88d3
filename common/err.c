#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *err_str(int rc)
{
    switch (rc) {
    case LX_OK: return "ok";
    case LX_EINVAL: return "invalid input";
    case LX_ENOMEM: return "out of memory";
    case LX_EIO: return "input/output error";
    case LX_ENOTFOUND: return "not found";
    case LX_EEXIST: return "already exists";
    case LX_ESCOPE: return "outside the node's subtree";
    case LX_ECORRUPT: return "malformed data";
    case LX_ESKEW: return "clock skew beyond the allowed bound";
    case LX_EFULL: return "store is full";
    case LX_EUSAGE: return "usage error";
    case LX_EBUSY: return "busy";
    case LX_EDENIED: return "not allowed";
    default: return "unknown error";
    }
}

int why_set(why_t *why, int rc, const char *fmt, ...)
{
    if (why) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why->msg, sizeof why->msg, fmt, ap);
        va_end(ap);
    }
    return rc;
}

int why_prefix(why_t *why, int rc, const char *fmt, ...)
{
    if (why) {
        char old[sizeof why->msg];
        char pre[sizeof why->msg];
        va_list ap;
        memcpy(old, why->msg, sizeof old);
        va_start(ap, fmt);
        vsnprintf(pre, sizeof pre, fmt, ap);
        va_end(ap);
        if (old[0])
            snprintf(why->msg, sizeof why->msg, "%s: %s", pre, old);
        else
            snprintf(why->msg, sizeof why->msg, "%s: %s", pre, err_str(rc));
    }
    return rc;
}
