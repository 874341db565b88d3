/* cli: what the operator's commands share: option parsing helpers, opening
 * the store, messages and exit codes (0 success, 1 failure, 2 usage). */
#ifndef LX_CLI_H
#define LX_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

#include "common/classify.h"
#include "common/err.h"
#include "common/schema.h"
#include "common/store.h"

#define EXIT_USAGE 2

typedef int (*cmd_fn)(int argc, char **argv);

typedef struct {
    const char *name;
    cmd_fn fn;
    const char *summary;
} cmd_t;

/* Prints "lianxin CMD: message" on stderr and returns 1. */
int cli_fail(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prints the usage error and the usage line; returns EXIT_USAGE. */
int cli_usage(const char *cmd, const char *usage, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Maps an error code to an exit code. */
int cli_exit(int rc);

/* Opens the store in dir or prints why and returns NULL. */
store_t *cli_open(const char *cmd, const char *dir, unsigned flags);

/* The author stamped on writes made by a command: "CODE/DEPT/USER",
 * from --author or "CODE/local/$LOGNAME". */
void cli_author(char *out, size_t n, code_t node, const char *given);

/* Reads a whole file (or stdin for "-"); NUL-terminated; caller frees. */
char *cli_slurp(const char *path, size_t *len, why_t *why);

/* The path DIR/../NAME beside a store (the rendered layout: keys,
 * node.ini). */
void cli_beside(const char *data, const char *name, char *out, size_t n);

/* Opens FILE for writing, or stdout for NULL/"-". */
FILE *cli_out(const char *path, why_t *why);

int cmd_keygen(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_child(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_report(int argc, char **argv);
/* report submit|inbox|approve|return|state (cmd_rflow.c): argv[0] is the
 * subcommand, which cmd_rflow_is recognises. */
bool cmd_rflow_is(const char *word);
int cmd_rflow(int argc, char **argv);
int cmd_digest(int argc, char **argv);
int cmd_backup(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_conflicts(int argc, char **argv);
int cmd_gen(int argc, char **argv);
int cmd_node(int argc, char **argv);
int cmd_topology(int argc, char **argv);
int cmd_bundle(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_policy(int argc, char **argv);
int cmd_alerts(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_token(int argc, char **argv);

/* A write made by a command: policy_write (common/classify.h) with the
 * effective policy eff (NULL: folded for today in the transaction). */
int cli_write(stxn_t *t, record_t *r, const char *author, write_mode_t mode,
              bool checked, const effective_t *eff, apply_t *res, why_t *why);

#endif
