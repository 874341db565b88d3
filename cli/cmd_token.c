/* lianxin token add|revoke|list: the departments' API tokens of a node. A token
 * is shown once, when it is made; node.ini keeps only its hash. A running
 * node reads its tokens again when node.ini changes. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "common/polbody.h"
#include "config/config.h"

#define TOKEN_USAGE                                                                      \
    "lianxin token add --config FILE --name NAME --role ROLE [--scope CODE]\n"           \
    "       lianxin token revoke --config FILE --name NAME\n"                              \
    "       lianxin token list --config FILE [--json]"

static int token_add(const char *path, const char *name, const char *role, const char *scope)
{
    node_config_t *c = NULL;
    why_t why = {""};
    if (config_load(path, &c, &why))
        return cli_fail("token add", "%s", why.msg);
    bool known = false;
    for (size_t i = 0; pb_roles[i] && !known; i++)
        known = strcmp(pb_roles[i], role) == 0;
    code_t sc = c->code;
    int rc = 0;
    if (!token_name_ok(name))
        rc = cli_usage("token add", TOKEN_USAGE, "--name %s: 1-43 of a-z 0-9 - _ .", name);
    else if (!known)
        rc = cli_usage("token add", TOKEN_USAGE, "--role %s: not a role of the access policy "
                       "(civil_affairs, education, public_security, justice, health, "
                       "womens_federation, youth_league, disabled_persons_federation, operator)",
                       role);
    else if (scope && (code_parse(scope, &sc) || !code_contains(c->code, sc)))
        rc = cli_usage("token add", TOKEN_USAGE, "--scope %s: not a division code in this "
                       "node's subtree", scope);
    for (size_t i = 0; !rc && i < c->ntokens; i++)
        if (strcmp(c->tokens[i].name, name) == 0)
            rc = cli_fail("token add", "%s: a token named %s exists", path, name);
    config_free(&c);
    if (rc)
        return rc;
    char secret[48], hex[2 * TOKEN_HASHLEN + 1];
    unsigned char hash[TOKEN_HASHLEN];
    token_make(secret, hash);
    sodium_bin2hex(hex, sizeof hex, hash, sizeof hash);
    /* Appended to node.ini and checked by loading the result: a name the
     * file refuses leaves the file as it was. */
    struct stat st;
    if (stat(path, &st))
        return cli_fail("token add", "%s: %s", path, strerror(errno));
    char sec[160];
    snprintf(sec, sizeof sec, "\n[token %s]\nrole = %s\nhash = %s\n", name, role, hex);
    int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0)
        return cli_fail("token add", "%s: %s", path, strerror(errno));
    size_t len = strlen(sec);
    bool ok = write(fd, sec, len) == (ssize_t)len;
    if (ok && scope) {
        char line[40];
        snprintf(line, sizeof line, "scope = %s\n", scope);
        ok = write(fd, line, strlen(line)) == (ssize_t)strlen(line);
    }
    ok = ok && fsync(fd) == 0;
    close(fd);
    if (ok && config_load(path, &c, &why) == LX_OK) {
        config_free(&c);
        printf("%s\n", secret);
        sodium_memzero(secret, sizeof secret);
        return 0;
    }
    /* Take the section back off. */
    if (truncate(path, st.st_size))
        return cli_fail("token add", "%s: cannot undo a bad append: %s", path, strerror(errno));
    sodium_memzero(secret, sizeof secret);
    return cli_fail("token add", "%s", ok ? why.msg : "cannot write the configuration");
}

/* Rewrites node.ini without the token's section (through a temporary file
 * renamed over it, so a crash leaves one or the other whole). */
static int token_revoke(const char *path, const char *name)
{
    if (!token_name_ok(name))
        return cli_usage("token revoke", TOKEN_USAGE, "--name %s: 1-43 of a-z 0-9 - _ .", name);
    FILE *in = fopen(path, "r");
    if (!in)
        return cli_fail("token revoke", "%s: %s", path, strerror(errno));
    struct stat st;
    fstat(fileno(in), &st);
    char tmp[4200], want[120], line[4096], head[INI_SECTION_MAX + 1];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    snprintf(want, sizeof want, "token %s", name);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, st.st_mode & 0777);
    FILE *out = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!out) {
        fclose(in);
        if (fd >= 0)
            close(fd);
        return cli_fail("token revoke", "%s: %s", tmp, strerror(errno));
    }
    bool skipping = false, found = false;
    while (fgets(line, sizeof line, in)) {
        if (ini_header(line, head)) {
            skipping = strcmp(head, want) == 0;
            found |= skipping;
        }
        if (!skipping)
            fputs(line, out);
    }
    fclose(in);
    bool ok = fflush(out) == 0 && fsync(fileno(out)) == 0;
    ok = fclose(out) == 0 && ok;
    if (!found || !ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return found ? cli_fail("token revoke", "%s: cannot write", path)
                     : cli_fail("token revoke", "%s: no token named %s", path, name);
    }
    printf("token %s revoked (a running node stops taking it within a few seconds)\n", name);
    return 0;
}

static int token_list(const char *path, bool json)
{
    node_config_t *c = NULL;
    why_t why = {""};
    if (config_load(path, &c, &why))
        return cli_fail("token list", "%s", why.msg);
    json_t *a = json_array();
    char sc[CODE_STRLEN + 1];
    for (size_t i = 0; i < c->ntokens; i++) {
        const token_t *t = &c->tokens[i];
        code_fmt(t->scope, sc);
        if (json)
            json_array_append_new(a, json_pack("{s:s, s:s, s:s}", "name", t->name, "role",
                                               t->role, "scope", sc));
        else
            printf("%-24s %-28s %s\n", t->name, t->role, sc);
    }
    if (json) {
        json_dumpf(a, stdout, JSON_INDENT(2));
        putchar('\n');
    }
    json_decref(a);
    config_free(&c);
    return 0;
}

int cmd_token(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        if (argc < 2)
            return cli_usage("token", TOKEN_USAGE, "add, revoke or list?");
        printf("usage: %s\nMakes a department's API token (printed once; node.ini keeps its "
               "hash) or lists them.\n", TOKEN_USAGE);
        return 0;
    }
    const char *sub = argv[1];
    static struct option opts[] = {{"config", required_argument, 0, 'c'},
                                   {"name", required_argument, 0, 'n'},
                                   {"role", required_argument, 0, 'r'},
                                   {"scope", required_argument, 0, 's'},
                                   {"json", no_argument, 0, 'j'},
                                   {"help", no_argument, 0, 'h'}, {0}};
    const char *path = NULL, *name = NULL, *role = NULL, *scope = NULL;
    bool json = false;
    int ch;
    optind = 2;
    while ((ch = getopt_long(argc, argv, "c:n:r:s:jh", opts, NULL)) != -1) {
        switch (ch) {
        case 'c': path = optarg; break;
        case 'n': name = optarg; break;
        case 'r': role = optarg; break;
        case 's': scope = optarg; break;
        case 'j': json = true; break;
        case 'h': return printf("usage: %s\n", TOKEN_USAGE), 0;
        default: return cli_usage("token", TOKEN_USAGE, "bad option");
        }
    }
    if (!path)
        return cli_usage("token", TOKEN_USAGE, "--config is required");
    if (strcmp(sub, "add") == 0) {
        if (!name || !role)
            return cli_usage("token add", TOKEN_USAGE, "--name and --role are required");
        return token_add(path, name, role, scope);
    }
    if (strcmp(sub, "list") == 0)
        return token_list(path, json);
    if (strcmp(sub, "revoke") == 0) {
        if (!name)
            return cli_usage("token revoke", TOKEN_USAGE, "--name is required");
        return token_revoke(path, name);
    }
    return cli_usage("token", TOKEN_USAGE, "unknown subcommand %s", sub);
}
