#include "code.h"
#include "err.h"

#include <string.h>

/* The multiplier of each part's lowest digit. */
static const uint64_t unit_of[6] = {
    1000000000000ULL, /* unused */
    10000000000ULL,   /* province: PP */
    100000000ULL,     /* city: CC */
    1000000ULL,       /* county: DD */
    1000ULL,          /* township: TTT */
    1ULL,             /* village: VVV */
};

int code_parse_n(const char *s, int n, code_t *out)
{
    if (n != CODE_STRLEN)
        return LX_EINVAL;
    uint64_t v = 0;
    for (int i = 0; i < CODE_STRLEN; i++) {
        if (s[i] < '0' || s[i] > '9')
            return LX_EINVAL;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (code_level(v) == LEVEL_NONE)
        return LX_EINVAL;
    *out = v;
    return LX_OK;
}

int code_parse(const char *s, code_t *out)
{
    if (!s || strlen(s) != CODE_STRLEN)
        return LX_EINVAL;
    return code_parse_n(s, CODE_STRLEN, out);
}

char *code_fmt(code_t c, char buf[CODE_STRLEN + 1])
{
    for (int i = CODE_STRLEN - 1; i >= 0; i--) {
        buf[i] = (char)('0' + c % 10);
        c /= 10;
    }
    buf[CODE_STRLEN] = '\0';
    return buf;
}

level_t code_level(code_t c)
{
    if (c == 0 || c >= 1000000000000ULL)
        return LEVEL_NONE;
    /* Literal divisors (the compiler makes them multiplications): this
     * runs for every log entry on every link. */
    unsigned p[5] = {(unsigned)(c / 10000000000ULL), (unsigned)(c / 100000000ULL % 100),
                     (unsigned)(c / 1000000ULL % 100), (unsigned)(c / 1000ULL % 1000),
                     (unsigned)(c % 1000)};
    /* The level is the last non-zero part; every part above it must be
     * non-zero too (a county code with a zero city part is malformed). */
    int last = -1;
    for (int i = 0; i < 5; i++)
        if (p[i])
            last = i;
    for (int i = 0; i <= last; i++)
        if (!p[i])
            return LEVEL_NONE;
    return last < 0 ? LEVEL_NONE : (level_t)(LEVEL_PROVINCE + last);
}

const char *level_name(level_t l)
{
    static const char *names[] = {"none", "province", "city", "county",
                                  "township", "village"};
    return (l >= LEVEL_NONE && l <= LEVEL_VILLAGE) ? names[l] : "none";
}

level_t level_parse(const char *name)
{
    for (int l = LEVEL_PROVINCE; l <= LEVEL_VILLAGE; l++)
        if (strcmp(name, level_name((level_t)l)) == 0)
            return (level_t)l;
    return LEVEL_NONE;
}

code_t code_at_level(code_t c, level_t l)
{
    if (l < LEVEL_PROVINCE || l > LEVEL_VILLAGE)
        return 0;
    uint64_t u = unit_of[l];
    return (c / u) * u;
}

code_t code_parent(code_t c)
{
    level_t l = code_level(c);
    if (l <= LEVEL_PROVINCE)
        return 0;
    return code_at_level(c, (level_t)(l - 1));
}

bool code_contains(code_t node, code_t x)
{
    level_t l = code_level(node);
    if (l == LEVEL_NONE || code_level(x) < l)
        return false;
    return code_at_level(x, l) == node;
}

code_t code_lca(code_t a, code_t b)
{
    level_t la = code_level(a), lb = code_level(b);
    level_t l = la < lb ? la : lb;
    for (; l >= LEVEL_PROVINCE; l--) {
        code_t ca = code_at_level(a, l);
        if (ca == code_at_level(b, l))
            return ca;
    }
    return 0;
}

code_t code_child_under(code_t node, code_t x)
{
    level_t l = code_level(node);
    if (l == LEVEL_NONE || l == LEVEL_VILLAGE || !code_contains(node, x)
        || code_level(x) <= l)
        return 0;
    return code_at_level(x, (level_t)(l + 1));
}

void code_range(code_t node, code_t *lo, code_t *hi)
{
    level_t l = code_level(node);
    *lo = node;
    *hi = node + (l == LEVEL_NONE ? 1 : unit_of[l]);
}

void code_put_be(code_t c, unsigned char out[8])
{
    for (int i = 7; i >= 0; i--) {
        out[i] = (unsigned char)(c & 0xff);
        c >>= 8;
    }
}

code_t code_get_be(const unsigned char in[8])
{
    code_t c = 0;
    for (int i = 0; i < 8; i++)
        c = (c << 8) | in[i];
    return c;
}
