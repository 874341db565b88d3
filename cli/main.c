/* lianxin: one program, the node daemon and the operator's commands. */
#include "cli.h"
#include "common/heap.h"

#include <stdlib.h>
#include <string.h>

static const cmd_t commands[] = {
    {"keygen", cmd_keygen, "write a node's key pair (CURVE and Ed25519)"},
    {"init", cmd_init, "create an empty store for a node"},
    {"child", cmd_child, "add, update, get or list child records"},
    {"import", cmd_import, "import children from CSV"},
    {"export", cmd_export, "export every live record as CSV or JSON"},
    {"report", cmd_report, "the quarterly roll-up as JSON, CSV, XLSX or HTML"},
    {"digest", cmd_digest, "digest of the live state under a code"},
    {"backup", cmd_backup, "a consistent copy of the store, while the node runs"},
    {"status", cmd_status, "the node's state"},
    {"conflicts", cmd_conflicts, "list conflicts and duplicates"},
    {"gen", cmd_gen, "generate synthetic children as CSV"},
    {"node", cmd_node, "run a node (the daemon) in the foreground"},
    {"restore", cmd_restore, "rebuild a node's store from its parent"},
    {"bundle", cmd_bundle, "carry changes to the parent on a file (offline villages)"},
    {"topology", cmd_topology, "render a whole tree's configurations, keys and stores"},
    {"policy", cmd_policy, "issue, list, show and apply the policies of the subtree"},
    {"alerts", cmd_alerts, "children in alert under the alert rules"},
    {"audit", cmd_audit, "verify and list the audit chains of reads and writes"},
    {"token", cmd_token, "make and list the departments' API tokens"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: lianxin COMMAND [OPTIONS]   (lianxin COMMAND --help)\n\n"
               "Lianxin (连心) keeps the registry of left-behind children and\n"
               "children in difficulty in step across five administrative levels.\n\n"
               "commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0
        || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    /* The long-running ones (common/heap.h). */
    if (strcmp(argv[1], "node") == 0 || strcmp(argv[1], "restore") == 0)
        heap_hugepages(argv);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "lianxin: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}
