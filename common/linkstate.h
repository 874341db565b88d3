/* linkstate: what a running node saves about its links (meta "links"), so
 * that `lianxin status` in another process can show them. */
#ifndef LX_LINKSTATE_H
#define LX_LINKSTATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "code.h"
#include "err.h"
#include "store.h"

typedef struct {
    code_t code;
    bool is_parent;
    bool up;
    uint64_t acked;      /* the peer applied our log up to here */
    uint64_t applied;    /* we applied the peer's log up to here */
    uint64_t refusals;   /* changes or frames from the peer refused */
    char reason[160];    /* the last refusal */
    uint64_t sent, received;
} linkstate_t;

typedef struct {
    uint64_t updated_ms;   /* wall clock of the save */
    int pid;
    linkstate_t *links;
    uint32_t n;
    uint64_t refusals, skew, malformed, denied;
    uint64_t heartbeat_ms;
} links_t;

int links_save(stxn_t *t, const links_t *l);
/* LX_ENOTFOUND when no node ever saved its links here. */
int links_load(stxn_t *t, links_t *l);
void links_free(links_t *l);

/* A running node holds an exclusive lock on DATA/node.lock for its whole
 * life: node_lock takes it (LX_EBUSY when another node has it; *fd to
 * keep open), node_running tells from another process. */
int node_lock(const char *data, int *fd, why_t *why);
bool node_running(const char *data);

/* A change of child's (record id, its latest write's hlc) that `bundle
 * import` refused, for the clock when skew, and why: kept beside the
 * links, which only the running node writes, and counted with them in
 * `status`, once however many bundles carry the change again. */
int links_note_bundle(stxn_t *t, code_t child, const char *id, hlc_t hlc, bool skew,
                      const char *reason);

/* Log entries after acked that go over the link (unacknowledged). Counts
 * at most `cap`. */
uint64_t links_unacked(stxn_t *t, const linkstate_t *ls, uint64_t cap);

/* A node's state as `lianxin status` and the API show it: its counts, and
 * its links as the running node last saved them, with what each has not
 * acknowledged. */
typedef struct {
    store_stats_t st;
    links_t lk;
    bool have_links;      /* a node ever saved them here */
    uint64_t *unacked;    /* per link; NULL when have_links is false */
} nodestate_t;
int nodestate_load(stxn_t *t, nodestate_t *ns);
void nodestate_free(nodestate_t *ns);
/* `lianxin status --json` (CONTRACT.md): links count as connected only
 * while the node runs (alive). */
json_t *nodestate_json(const nodestate_t *ns, code_t code, bool alive);

#endif
