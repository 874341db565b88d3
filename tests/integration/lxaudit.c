/* lxaudit: the integration tests' hand on a store's audit chains, standing
 * in for the API that appends entries (not an operator's command).
 *
 *   lxaudit append --data DIR [--count N] [--principal P] [--record ID]
 *                  [--action A] [--purpose TEXT]
 *       appends N entries (default 1) to the node's own chain in one
 *       transaction, as the API does with a read or write
 *   lxaudit flip --data DIR --node CODE --seq N [--offset K]
 *       flips one bit of byte K (default 10; negative: from the end) of
 *       the stored entry N of CODE's chain, as tampering would
 *
 * Exit 0 on success, 1 on failure, 2 on usage errors. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/audit.h"
#include "common/store.h"

static int usage(const char *msg)
{
    fprintf(stderr, "lxaudit: %s\nusage: lxaudit append --data DIR [--count N] [--principal P] "
                    "[--record ID] [--action A] [--purpose TEXT]\n"
                    "       lxaudit flip --data DIR --node CODE --seq N [--offset K]\n", msg);
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage("append or flip?");
    const char *what = argv[1], *data = NULL, *principal = "lxaudit", *record = NULL;
    const char *action = "read", *purpose = NULL;
    long count = 1, offset = 10;
    unsigned long long seq = 0;
    code_t node = 0;
    static struct option opts[] = {
        {"data", required_argument, 0, 'd'}, {"count", required_argument, 0, 'c'},
        {"principal", required_argument, 0, 'p'}, {"record", required_argument, 0, 'r'},
        {"action", required_argument, 0, 'a'}, {"purpose", required_argument, 0, 'u'},
        {"node", required_argument, 0, 'n'}, {"seq", required_argument, 0, 's'},
        {"offset", required_argument, 0, 'o'}, {0}};
    int ch;
    optind = 2;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'd': data = optarg; break;
        case 'c': count = strtol(optarg, NULL, 10); break;
        case 'p': principal = optarg; break;
        case 'r': record = optarg; break;
        case 'a': action = optarg; break;
        case 'u': purpose = optarg; break;
        case 'n':
            if (code_parse(optarg, &node))
                return usage("--node: not a division code");
            break;
        case 's': seq = strtoull(optarg, NULL, 10); break;
        case 'o': offset = strtol(optarg, NULL, 10); break;
        default: return usage("bad option");
        }
    }
    if (!data)
        return usage("--data is required");
    bool append = strcmp(what, "append") == 0;
    if (!append && strcmp(what, "flip") != 0)
        return usage("append or flip?");
    if (append && (count < 1 || count > 100000))
        return usage("--count must be 1..100000");
    if (!append && (!node || !seq))
        return usage("flip needs --node and --seq");
    store_t *s;
    stxn_t *t = NULL;
    why_t why = {""};
    int rc = store_open(data, 0, &s, &why);
    if (rc) {
        fprintf(stderr, "lxaudit: %s\n", why.msg);
        return 1;
    }
    rc = store_begin(s, true, &t);
    if (!rc && append) {
        const char *ids[] = {record};
        for (long i = 0; !rc && i < count; i++) {
            audit_entry_t e = {.principal = principal, .role = "test", .action = action,
                               .ids = ids, .nids = record ? 1 : 0, .purpose = purpose,
                               .result = "ok"};
            rc = audit_append(t, &e, 1, &why);
        }
    } else if (!rc) {
        unsigned char key[16];
        const void *v;
        size_t n;
        code_put_be(node, key);
        code_put_be(seq, key + 8);
        rc = store_audit_get(t, key, 16, &v, &n);
        size_t at = offset < 0 ? n - (size_t)(-offset) : (size_t)offset;
        if (!rc && at >= n)
            rc = why_set(&why, LX_EINVAL, "offset %ld: the entry has %zu bytes", offset, n);
        unsigned char *copy = rc ? NULL : malloc(n);
        if (copy) {
            memcpy(copy, v, n);
            copy[at] ^= 0x01;
            rc = store_audit_put(t, key, 16, copy, n);
            free(copy);
        }
    }
    if (!rc)
        rc = store_commit(&t);
    store_abort(&t);
    store_close(&s);
    if (rc) {
        fprintf(stderr, "lxaudit: %s\n", why.msg[0] ? why.msg : err_str(rc));
        return 1;
    }
    return 0;
}
