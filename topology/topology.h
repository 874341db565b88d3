/* topology: a whole tree of nodes described in one INI file, and its
 * rendering into each node's configuration, keys and store. */
#ifndef LX_TOPOLOGY_H
#define LX_TOPOLOGY_H

#include <stddef.h>

#include "common/code.h"
#include "common/err.h"

typedef struct {
    code_t code;
    char name[128];
    char zmq[256];        /* where its children connect (tcp://HOST:PORT) */
    char http[256];
    int parent;           /* index of the parent node, -1 for the root */
} tnode_t;

typedef struct {
    char name[128];
    int base_port;
    tnode_t *nodes;       /* in file order */
    size_t n;
} topology_t;

/* Reads and checks a topology file: codes valid and unique, one root, a
 * parent for every other node (the nearest ancestor code in the file). */
int topology_load(const char *path, topology_t **out, why_t *why);
void topology_free(topology_t **self_p);

/* Writes, for every node, OUT/CODE/node.ini, OUT/CODE/keys (secrets
 * 0600) and an initialised store at OUT/CODE/data. Keys and stores that
 * exist are kept, so rendering again only rewrites the configurations. */
int topology_render(const topology_t *t, const char *out, why_t *why);

#endif
