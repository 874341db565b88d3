/* err: the project's one error space, and a message buffer that names
 * what was wrong (file, line, field) for the operator. */
#ifndef LX_ERR_H
#define LX_ERR_H

#include <stddef.h>

enum {
    LX_OK = 0,
    LX_EINVAL = -1,    /* bad input: a field, a value, a code */
    LX_ENOMEM = -2,
    LX_EIO = -3,       /* file or storage failure */
    LX_ENOTFOUND = -4,
    LX_EEXIST = -5,
    LX_ESCOPE = -6,    /* outside the node's subtree */
    LX_ECORRUPT = -7,  /* stored or received bytes that do not decode */
    LX_ESKEW = -8,     /* a clock too far ahead */
    LX_EFULL = -9,     /* store map full */
    LX_EUSAGE = -10,   /* command line misuse */
    LX_EBUSY = -11,
    LX_EDENIED = -12,  /* not allowed to this role or principal */
};

/* A failure's description. Functions that can fail on untrusted input take
 * a why_t * (may be NULL) and fill it with one line naming the culprit. */
typedef struct {
    char msg[320];
} why_t;

const char *err_str(int rc);

/* Formats into why (if not NULL) and returns rc, so a caller can write
 * `return why_set(why, LX_EINVAL, "field %s: ...", name);`. */
int why_set(why_t *why, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes an existing message: "prefix: old message". */
int why_prefix(why_t *why, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
