/* arena: memory handed out in pieces and given back all at once. A
 * decoded batch keeps its changes' strings and fields in one, so that
 * decoding a thousand changes costs a few allocations, not a hundred
 * thousand. */
#ifndef LX_ARENA_H
#define LX_ARENA_H

#include <stddef.h>

typedef struct arena arena_t;

/* An empty arena whose first block holds about `hint` bytes; NULL on
 * failure. Owned by the caller (arena_destroy). */
arena_t *arena_new(size_t hint);
/* Frees every piece; nulls the caller's pointer; safe to call twice. */
void arena_destroy(arena_t **self_p);

/* n zeroed bytes aligned for any object, valid until the arena is
 * destroyed; NULL on allocation failure. */
void *arena_alloc(arena_t *a, size_t n);
/* n bytes, not zeroed and not aligned (for strings); NULL on failure. */
char *arena_bytes(arena_t *a, size_t n);
/* A NUL-terminated copy of n bytes of s; NULL on allocation failure. */
char *arena_strndup(arena_t *a, const char *s, size_t n);

/* Frees the blocks kept for later arenas (an idle node gives them back). */
void arena_pool_release(void);

#endif
