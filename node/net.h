/* net: the thread that owns every ZeroMQ socket of a node: the ROUTER its
 * children connect to, the DEALER to its parent, and the ZAP handler that
 * admits only the CURVE keys the configuration lists. It hands received
 * frames to the loop thread through a queue (waking it with a callback,
 * uv_async_send in practice) and takes frames to send through another
 * queue, woken by an eventfd that zmq_poll watches. */
#ifndef LX_NET_H
#define LX_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "common/code.h"
#include "common/err.h"
#include "config/config.h"

typedef struct net net_t;

typedef enum {
    NET_FRAME = 0,      /* a frame from peer */
    NET_UNREACHABLE,    /* a frame to peer could not be sent */
    NET_DENIED,         /* a connection with an unknown key was refused */
    NET_CONNECTED,      /* the connection to the parent was (re)made */
    NET_DISCONNECTED,   /* the connection to the parent dropped */
} net_kind_t;

typedef struct netmsg {
    struct netmsg *next;
    net_kind_t kind;
    code_t peer;        /* the parent's or a child's code */
    void *pre;          /* what net_start's prep made of a frame, or NULL */
    void (*pre_free)(void *);
    const unsigned char *data;  /* the frame: in zm, in own, or after this */
    size_t len;
    void *own;          /* a buffer freed with the message, or NULL */
    bool has_zm;
    zmq_msg_t zm;       /* a frame as ZeroMQ received it (no copy made) */
} netmsg_t;

typedef void (*net_wake_fn)(void *arg);
/* Work on a received frame that needs nothing but its bytes (decoding,
 * checking), done in the net thread so that the loop thread is left with
 * what needs the store: a node's two cores share the load of a busy link.
 * Must be thread-safe; may return NULL. */
typedef void *(*net_prep_fn)(const void *data, size_t len);
typedef void (*net_unprep_fn)(void *pre);

/* Starts the thread: binds cfg->bind (when the node has children) and
 * connects to the parent (when it has one). wake is called from the net
 * thread whenever frames are waiting; prep (optional) on each frame
 * before it is queued, its result in netmsg_t.pre. */
int net_start(const node_config_t *cfg, net_wake_fn wake, void *arg, net_prep_fn prep,
              net_unprep_fn unprep, net_t **out, why_t *why);
/* Stops the thread and closes every socket (LINGER 0: unsent frames are
 * dropped; the protocol resends from the last acknowledgement). */
void net_stop(net_t **self_p);

/* Queues a copy of a frame for the parent (peer == its code) or a child. */
int net_send(net_t *n, code_t peer, const void *data, size_t len);
/* The same, taking buf (from malloc) over instead of copying it: freed
 * once sent, or not (LX_ENOMEM also frees it). */
int net_send_owned(net_t *n, code_t peer, void *buf, size_t len);

/* The next received message, or NULL. Free with netmsg_free. */
netmsg_t *net_recv(net_t *n);
/* Frees a message and what prep made of it; NULL is fine. */
void netmsg_free(netmsg_t *m);

/* Connections refused by ZAP, frames dropped as malformed at the socket. */
uint64_t net_denied(const net_t *n);

#endif
