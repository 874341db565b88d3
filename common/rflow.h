/* rflow: the workflow of quarterly reports. A node freezes its report as
 * numbered revisions (never overwritten); its parent keeps what each child
 * submitted and answers it (approved or returned, with a reason); and
 * every node keeps the submission states of itself and its descendants.
 * The messages that carry all this are run in node/repl.c.
 *
 * Store layout (the meta table, ASCII keys; Q is "YYYYQn", REV %06u):
 *   rpt/Q/REV        -> [frozen_ms, hash(bin 32), report(bin)]  frozen here
 *   rptack/Q         -> u64: the revision the parent has stored (meta)
 *   rin/CHILD/Q/REV  -> [received_ms, hash(bin 32), report(bin)]  from a child
 *   rans/CHILD/Q     -> [rev, state, when_ms, reason, delivered]  our answer
 *   rgot/Q           -> [rev, state, when_ms, reason]  the parent's answer
 *   rst/NODE/Q       -> [seq, rev, state, when_ms, reason]  submission states
 *   rstseq, rgen     -> u64 (meta): the last state seq; a counter bumped by
 *                       every write here, so a running node notices a
 *                       command's freeze or answer
 * report(bin) is report_pack's bytes; hash is report_hash of them. */
#ifndef LX_RFLOW_H
#define LX_RFLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "code.h"
#include "divs.h"
#include "err.h"
#include "report.h"
#include "store.h"

#define RFLOW_REASON_MAX 240   /* bytes of a return's reason */
#define RFLOW_MAX_REV 999999   /* revisions are keyed with six digits */

typedef enum {
    RST_NONE = 0,
    RST_SUBMITTED = 1,   /* frozen and sent up (or received from a child) */
    RST_APPROVED = 2,
    RST_RETURNED = 3,
} rst_t;

/* "submitted", "approved", "returned" ("none" for 0, "?" otherwise). */
const char *rst_name(unsigned state);

/* One cell whose figure differs between two reports. */
typedef struct {
    code_t row;          /* the unit's code; the total row has the node's */
    bool total;          /* the total row (合计) */
    uint32_t col;        /* column index (report_col) */
    uint64_t old, now;
} rcell_t;

/* The cells where b's figures differ from a's, unit rows matched by code
 * and total with total (a row
 * one side lacks counts as zeros there), in a's row order then b's extra
 * rows, columns in order. *cells malloc'ed (caller frees; NULL when none). */
int rflow_diff(const report_t *a, const report_t *b, rcell_t **cells, size_t *n);

/* ---- revisions frozen here ---- */

typedef struct {
    uint32_t rev;        /* the revision now last (0: none) */
    bool created;        /* a new revision was made */
    rcell_t *cells;      /* what changed from the revision before (owned) */
    size_t ncells;
} rflow_frozen_t;

void rflow_frozen_free(rflow_frozen_t *f);

/* Computes this node's report for quarter as of its cut and checks it
 * (a failing equality: LX_EINVAL naming row and column, nothing frozen).
 * Revision 1 when none is frozen; when the figures differ from the last
 * revision, the next one, with the changed cells; identical figures make
 * nothing. A new revision also puts this node's state (submitted) in the
 * state table. In the caller's write transaction. */
int rflow_freeze(stxn_t *t, const char *quarter, const divs_t *divs, uint64_t now_ms,
                 rflow_frozen_t *out, why_t *why);

/* A frozen revision (rev 0: the last). LX_ENOTFOUND when none. *r owned by
 * the caller; packed/len (may be NULL) a malloc'ed copy of its bytes. */
int rflow_get(stxn_t *t, const char *quarter, uint32_t rev, uint32_t *got,
              uint64_t *when_ms, report_t **r, void **packed, size_t *len);

/* Calls cb for every quarter frozen here, in order, with its last revision. */
typedef int (*rflow_quarter_cb)(void *arg, const char *quarter, uint32_t last_rev);
int rflow_each_frozen(stxn_t *t, rflow_quarter_cb cb, void *arg);

/* The revision the parent has stored for quarter (0: none), and setting it. */
uint32_t rflow_acked(stxn_t *t, const char *quarter);
int rflow_set_acked(stxn_t *t, const char *quarter, uint32_t rev);

/* The node's pass, at most once a minute: once the reporting deadline of
 * the last quarter (policy_report_deadline; default 10 days after its end)
 * has passed, freezes it if it is not frozen; and freezes anew every
 * quarter frozen here whose cut has passed, so late data (stamped before
 * the cut) makes a revision. With since_seq, only the quarters that a log
 * entry after since_seq could change (one of its field versions stamped
 * before the cut) are computed again; 0: all of them. *made: revisions
 * created. */
int rflow_auto(stxn_t *t, const divs_t *divs, uint64_t now_ms, uint64_t since_seq,
               uint32_t *made, why_t *why);

/* ---- a parent's inbox ---- */

/* Stores a child's submission after checking it (untrusted bytes): it
 * decodes, its node is exactly child, its quarter is quarter, its cut is
 * the quarter's end, 1 <= rev <= RFLOW_MAX_REV.
 * A revision already held with the same bytes: LX_EEXIST (harmless);
 * with other bytes: LX_EINVAL (never overwritten). Puts the child's state
 * (submitted) in the state table. */
int rflow_receive(stxn_t *t, code_t child, const char *quarter, uint32_t rev,
                  const void *packed, size_t len, uint64_t now_ms, why_t *why);

/* Calls cb for each (child, quarter) submitted here, in order, with its
 * last revision decoded (valid during the call), the time it arrived and
 * the child's state in the table. quarter NULL: every quarter. */
typedef int (*rflow_sub_cb)(void *arg, code_t child, const char *quarter, uint32_t rev,
                            uint64_t received_ms, const report_t *r, unsigned state,
                            uint64_t state_ms, const char *reason);
int rflow_each_submission(stxn_t *t, const char *quarter, rflow_sub_cb cb, void *arg);

/* Records the answer to a child's last revision of quarter (state
 * RST_APPROVED or RST_RETURNED; reason may be NULL), to be delivered down.
 * LX_ENOTFOUND when nothing was submitted. *rev: the revision answered. */
int rflow_answer(stxn_t *t, code_t child, const char *quarter, unsigned state,
                 const char *reason, uint64_t now_ms, uint32_t *rev, why_t *why);

/* Answers not yet delivered to child (0: every child). */
typedef int (*rflow_ans_cb)(void *arg, code_t child, const char *quarter, uint32_t rev,
                            unsigned state, uint64_t when_ms, const char *reason);
int rflow_each_undelivered(stxn_t *t, code_t child, rflow_ans_cb cb, void *arg);
/* The child has the answer to rev (a later answer stays undelivered). */
int rflow_delivered(stxn_t *t, code_t child, const char *quarter, uint32_t rev);

/* Child side: the parent's answer. Refused (LX_EINVAL) for a revision not
 * frozen here. Puts this node's state in the table. */
int rflow_got(stxn_t *t, const char *quarter, uint32_t rev, unsigned state,
              uint64_t when_ms, const char *reason, why_t *why);

/* ---- the state table ---- */

typedef struct {
    code_t node;
    char quarter[8];
    uint32_t rev;
    uint32_t state;      /* rst_t */
    uint64_t when_ms;
    char reason[RFLOW_REASON_MAX + 1];
    uint64_t seq;        /* when it last changed here */
} rstate_t;

/* Merges e into the table: a later revision wins, then an answer over a
 * submission, then the later answer. *changed (may be NULL) when it won.
 * A change takes the next state seq. */
int rflow_state_put(stxn_t *t, const rstate_t *e, bool *changed);

/* Entries changed after seq `after`, in node then quarter order. */
typedef int (*rflow_state_cb)(void *arg, const rstate_t *e);
int rflow_state_each(stxn_t *t, uint64_t after, rflow_state_cb cb, void *arg);

/* The last state seq given (0: the table is empty). */
uint64_t rflow_state_seq(stxn_t *t);

/* The counter bumped by every write above. */
uint64_t rflow_gen(stxn_t *t);

/* Copies text into a reason: cut to RFLOW_REASON_MAX bytes on a UTF-8
 * boundary, control characters replaced by spaces. */
void rflow_reason(char out[RFLOW_REASON_MAX + 1], const char *text, size_t len);

#endif
