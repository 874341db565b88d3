/* lianxin topology render: a whole tree's configurations, keys, stores. */
#include "cli.h"

#include <string.h>

#include "topology/topology.h"

int cmd_topology(int argc, char **argv)
{
    static const char *U = "lianxin topology render --topology FILE --out DIR";
    static struct option opts[] = {{"topology", required_argument, 0, 't'},
                                   {"out", required_argument, 0, 'o'},
                                   {"help", no_argument, 0, 'h'}, {0}};
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        if (argc < 2)
            return cli_usage("topology", U, "render?");
        printf("usage: %s\nWrites, for every node of the tree, DIR/CODE/node.ini, its keys "
               "(secrets 0600)\nand an initialised store at DIR/CODE/data. Existing keys, "
               "stores and the\n[token] sections of an existing node.ini are kept.\n", U);
        return 0;
    }
    if (strcmp(argv[1], "render") != 0)
        return cli_usage("topology", U, "unknown subcommand '%s'", argv[1]);
    const char *topo = NULL, *out = NULL;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc - 1, argv + 1, "t:o:h", opts, NULL)) != -1) {
        if (ch == 't')
            topo = optarg;
        else if (ch == 'o')
            out = optarg;
        else if (ch == 'h')
            return printf("usage: %s\n", U), 0;
        else
            return cli_usage("topology", U, "bad option");
    }
    if (!topo || !out)
        return cli_usage("topology", U, "--topology and --out are required");
    topology_t *t;
    why_t why = {""};
    if (topology_load(topo, &t, &why))
        return cli_fail("topology", "%s", why.msg);
    int rc = topology_render(t, out, &why);
    size_t n = t->n;
    topology_free(&t);
    if (rc)
        return cli_fail("topology", "%s", why.msg);
    printf("rendered %zu nodes into %s\n", n, out);
    return 0;
}
