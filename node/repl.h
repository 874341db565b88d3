/* repl: the replication protocol of a node with its parent and children.
 * It runs on the loop thread, owns the store's single writer, and talks to
 * peers through net. The protocol is described at the top of repl.c. */
#ifndef LX_REPL_H
#define LX_REPL_H

#include <stdbool.h>
#include <stdint.h>

#include "common/store.h"
#include "config/config.h"
#include "net.h"

typedef struct repl repl_t;

typedef enum {
    REPL_RUN = 0,     /* the daemon */
    REPL_RESTORE,     /* rebuild this node's store from its parent, then stop */
} repl_mode_t;

int repl_new(const node_config_t *cfg, store_t *store, repl_mode_t mode,
             repl_t **out, why_t *why);
void repl_destroy(repl_t **self_p);

/* Connects the engine to its network (set once, before any call below). */
void repl_set_net(repl_t *r, net_t *net);

/* A message from the net thread. */
void repl_on_message(repl_t *r, const netmsg_t *m, uint64_t now_ms);

/* The part of handling a frame that needs only its bytes: decoding it and
 * checking its changes' fields against the schema. Thread-safe: the net
 * thread runs it (net_start's prep), and repl_on_message takes the result
 * from netmsg_t.pre instead of doing the work itself. */
void *repl_prepare(const void *data, size_t len);
void repl_prepared_free(void *pre);

/* Sends what is waiting on every link (new log entries), after
 * committing and acknowledging the batches applied since the last call
 * (group commit). Cheap when there is nothing new. */
void repl_pump(repl_t *r, uint64_t now_ms);

/* Whether batches are applied but not yet committed (repl_pump commits
 * them): the caller may go on draining its input first. */
bool repl_group_open(const repl_t *r);

/* When a batch or repair was last applied, or the log last grew by a
 * local write (the loop's clock; 0: never): the node's idle work waits
 * for a pause in data, not in heartbeats. */
uint64_t repl_last_data(const repl_t *r);
/* A local write was made (the API's, or a command's poke): activity for
 * repl_last_data, with or without a link up (repl_pump also notices the
 * log growing, but only while it has a link to send on). */
void repl_note_write(repl_t *r, uint64_t now);

/* At a clean stop, with nothing left open and the network stopped: gives
 * back the log numbers reserved for sending on early, so commands writing
 * while the node is down number on without a gap. */
void repl_release(repl_t *r);

/* Heartbeats, timeouts, anti-entropy, saving link state: call every
 * ~100 ms. */
void repl_tick(repl_t *r, uint64_t now_ms);

/* Saves the link state for `lianxin status` (also done by repl_tick). */
void repl_save_links(repl_t *r, uint64_t now_ms);

/* Restore mode: true once the snapshot is complete (or failed: *rc). */
bool repl_restore_done(const repl_t *r, int *rc);

#endif
