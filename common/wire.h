/* wire: the messages of the replication protocol between a node and its
 * parent, encoded as msgpack arrays whose first element is the type. The
 * decoder takes untrusted frames. The protocol itself (who sends what when)
 * is described and run in node/repl.c. */
#ifndef LX_WIRE_H
#define LX_WIRE_H

#include <msgpack.h>
#include <stdint.h>

#include "code.h"
#include "err.h"
#include "record.h"

#define WIRE_VERSION 3   /* 2: fields of the default schema by number; 3: unit digests
                            of store layout 2 (a record hashed with SipHash) */
#define WIRE_MAX_FRAME (16u << 20)   /* ZMQ_MAXMSGSIZE on every link */
#define WIRE_MAX_CHANGES 10000
#define WIRE_MAX_DIGESTS 4096

typedef enum {
    WM_HELLO = 1,     /* child: [1, version, code, applied, last_seq] */
    WM_WELCOME = 2,   /* parent: [2, version, code, applied, last_seq] */
    WM_REFUSE = 3,    /* [3, reason] */
    WM_BATCH = 4,     /* [4, from, upto, [change...]]: the sender's log
                          entries from..upto that concern the receiver */
    WM_ACK = 5,       /* [5, seq]: applied and durable up to seq */
    WM_PING = 6,      /* [6] */
    WM_PONG = 7,      /* [7] */
    WM_DIGESTS = 8,   /* child: [8, [[unit, digest32]...]] */
    WM_PULL = 9,      /* parent: [9, unit]: send your records under unit */
    WM_REPAIR = 10,   /* [10, [change...]]: whole records for anti-entropy */
    WM_RESTORE = 11,  /* child: [11]: send me my whole subtree */
    WM_RESTORED = 12, /* parent: [12, applied, last_seq]: snapshot complete */
    WM_NACK = 13,     /* [13, seq]: a gap; resend from seq + 1 */
    WM_RESET = 14,    /* parent: [14]: I do not know you (I restarted): hello */
    WM_CONFLICTS = 15, /* child: [15, upto, [[id, kept, lost]...]]: conflict
                          log entries up to upto, for the levels above */
    WM_CFACK = 16,    /* parent: [16, upto]: conflicts stored up to upto */
    WM_POLICIES = 17, /* parent: [17, [envelope(bin)...]]: every policy it
                         holds (its own and its ancestors') */
    WM_POLACK = 18,   /* child: [18, [[node, when_ms, [[issuer, kind,
                         version]...]]...]]: the policy versions the child
                         and its descendants apply */
    WM_REPORT = 19,   /* child: [19, quarter, rev, report(bin)]: a frozen
                         revision of its quarterly report (report_pack) */
    WM_RPTACK = 20,   /* parent: [20, quarter, rev]: stored (or refused) */
    WM_ANSWER = 21,   /* parent: [21, quarter, rev, state, when_ms, reason]:
                         approved (2) or returned (3) */
    WM_ANSACK = 22,   /* child: [22, quarter, rev]: the answer is stored */
    WM_RSTATES = 23,  /* child: [23, upto, [[node, quarter, rev, state,
                         when_ms, reason]...]]: submission states of the
                         child and its descendants, its table up to upto */
    WM_RSTACK = 24,   /* parent: [24, upto]: states stored up to upto */
    WM_AUDIT = 25,    /* child: [25, [[node, [entry(bin)...]]...]]: audit
                         entries of the child's and its descendants' chains,
                         each chain's in seq order (common/audit.h: the
                         stored form, bytes || hash) */
    WM_AUDACK = 26,   /* parent: [26, [[node, seq]...]]: for each chain of
                         an AUDIT, the last seq the parent holds */
} msg_type_t;

#define WIRE_MAX_AUDIT 10000        /* entries in one AUDIT */
#define WIRE_MAX_AUDIT_CHAINS 4096  /* chains in one AUDIT or AUDACK */

#define WIRE_MAX_RSTATES 1000
#define WIRE_MAX_REASON 240

#define WIRE_MAX_POLICIES 256
#define WIRE_MAX_POLACKS 4096
#define WIRE_MAX_POLVERS 256

/* One (issuer, kind, version) of a policy acknowledgement. */
typedef struct {
    code_t issuer;
    uint32_t kind, version;
} wpolver_t;

typedef struct {
    code_t unit;
    unsigned char d[32];
} unit_digest_t;

typedef struct {
    msg_type_t type;
    uint32_t version;
    code_t code;          /* hello/welcome: sender; pull: unit */
    uint64_t applied;     /* hello/welcome/restored: last seq applied from the
                             receiver; ack: the seq acknowledged */
    uint64_t last_seq;    /* hello/welcome/restored: sender's last seq;
                             batch: the position the batch reaches */
    uint64_t first;       /* batch: the position it starts from */
    char reason[256];     /* refuse */
    change_t *changes;    /* batch, repair */
    uint32_t nchanges;
    arena_t *arena;       /* when set, holds the changes' contents */
    unit_digest_t *digests;
    uint32_t ndigests;
    struct wconflict {
        char *id;
        field_t kept, lost;
    } *conflicts;         /* conflicts */
    uint32_t nconflicts;
    struct wpolicy {
        unsigned char *env;   /* owned copy */
        size_t len;
    } *policies;          /* policies */
    uint32_t npolicies;
    struct wpolack {
        code_t node;
        uint64_t when_ms;
        wpolver_t *v;     /* owned */
        uint32_t n;
    } *polacks;           /* polack */
    uint32_t npolacks;
    char quarter[8];      /* report, rptack, answer, ansack: "YYYYQn" */
    uint32_t rev;         /* report, rptack, answer, ansack */
    uint32_t state;       /* answer */
    uint64_t when_ms;     /* answer */
    unsigned char *blob;  /* report: the packed report (owned) */
    size_t bloblen;
    struct wrstate {
        code_t node;
        char quarter[8];
        uint32_t rev, state;
        uint64_t when_ms;
        char reason[WIRE_MAX_REASON + 1];
    } *rstates;           /* rstates; answer's reason is in reason */
    uint32_t nrstates;
    struct waudit {
        code_t node;
        struct wentry {
            unsigned char *p;  /* owned copy */
            size_t len;
        } *e;
        uint32_t n;
    } *audits;            /* audit */
    uint32_t naudits;
    struct waudack {
        code_t node;
        uint64_t seq;
    } *audacks;           /* audack */
    uint32_t naudacks;
} wmsg_t;

/* Decodes one frame. Unknown types, wrong shapes and oversized lists give
 * LX_EINVAL or LX_ECORRUPT with why naming the problem. */
int wire_decode(const void *buf, size_t len, wmsg_t *m, why_t *why);
void wmsg_free(wmsg_t *m);

const char *wire_type_name(int type);

/* Encoders append one message to sb (cleared first). */
void wire_handshake(msgpack_sbuffer *sb, msg_type_t type, code_t code,
                    uint64_t applied, uint64_t last_seq);
void wire_refuse(msgpack_sbuffer *sb, const char *reason);
void wire_ack(msgpack_sbuffer *sb, msg_type_t type, uint64_t seq); /* ack, nack */
void wire_simple(msgpack_sbuffer *sb, msg_type_t type);   /* ping, pong, restore */
void wire_pull(msgpack_sbuffer *sb, code_t unit);
void wire_restored(msgpack_sbuffer *sb, uint64_t applied, uint64_t last_seq);
void wire_digests(msgpack_sbuffer *sb, const unit_digest_t *d, uint32_t n);


/* Batches and repairs are built change by change. */
typedef struct {
    msgpack_sbuffer *sb;
    msgpack_packer pk;
    size_t count_at;     /* offset of the array header to patch */
    uint32_t n;
} wire_batch_t;

void wire_batch_begin(wire_batch_t *b, msgpack_sbuffer *sb, msg_type_t type, uint64_t first);
int wire_batch_add(wire_batch_t *b, const change_t *c);
/* Counts a change the caller packed into b->pk itself. */
void wire_batch_added(wire_batch_t *b);
void wire_batch_end(wire_batch_t *b, uint64_t upto);

/* Conflicts are built entry by entry like a batch. */
void wire_conflicts_begin(wire_batch_t *b, msgpack_sbuffer *sb);
void wire_conflicts_add(wire_batch_t *b, const char *id, const field_t *kept, const field_t *lost);
void wire_conflicts_end(wire_batch_t *b, uint64_t upto);

/* Policies down, acknowledgements up: built entry by entry. */
void wire_policies_begin(wire_batch_t *b, msgpack_sbuffer *sb);
void wire_policies_add(wire_batch_t *b, const void *env, size_t len);
void wire_polack_begin(wire_batch_t *b, msgpack_sbuffer *sb);
void wire_polack_add(wire_batch_t *b, code_t node, uint64_t when_ms,
                     const wpolver_t *v, uint32_t n);
void wire_list_end(wire_batch_t *b);

/* Reports up, acknowledgements and answers down (rptack and ansack share
 * one shape), states up like conflicts (upto patched at the end). */
void wire_report(msgpack_sbuffer *sb, const char *quarter, uint32_t rev, const void *packed,
                 size_t len);
void wire_rptack(msgpack_sbuffer *sb, msg_type_t type, const char *quarter, uint32_t rev);
void wire_answer(msgpack_sbuffer *sb, const char *quarter, uint32_t rev, uint32_t state,
                 uint64_t when_ms, const char *reason);
void wire_rstates_begin(wire_batch_t *b, msgpack_sbuffer *sb);
void wire_rstates_add(wire_batch_t *b, const struct wrstate *e);
void wire_rstates_end(wire_batch_t *b, uint64_t upto);

/* Audit entries up, chain by chain: wire_audit_chain opens a chain and
 * returns where its count is, wire_audit_chain_end patches it (n entries
 * added with wire_audit_entry); wire_list_end closes the message. */
void wire_audit_begin(wire_batch_t *b, msgpack_sbuffer *sb);
size_t wire_audit_chain(wire_batch_t *b, code_t node);
void wire_audit_entry(wire_batch_t *b, const void *val, size_t len);
void wire_audit_chain_end(wire_batch_t *b, size_t at, uint32_t n);
void wire_audack(msgpack_sbuffer *sb, const struct waudack *a, uint32_t n);

/* Whether a log entry goes to a peer: up, everything not from the parent;
 * down to a child, what concerns its subtree (the record is or was there)
 * and did not come from that child. *full: the child gains the record and
 * needs all of it. */
bool wire_routes(code_t peer, bool to_parent, code_t village, code_t prev,
                 code_t from, bool *full);

#endif
