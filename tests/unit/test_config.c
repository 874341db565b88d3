/* Node configuration: a good file loads with its keys; every wrong one is
 * refused naming the file, the line or the key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"

static char dir[64];
static char child_pub[Z85_KEYLEN + 1];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/lx-cfg-XXXXXX");
    assert_non_null(mkdtemp(dir));
    char k[128];
    why_t why = {""};
    snprintf(k, sizeof k, "%s/keys", dir);
    assert_int_equal(keys_generate(k, &why), LX_OK);
    snprintf(k, sizeof k, "%s/ckeys", dir);
    assert_int_equal(keys_generate(k, &why), LX_OK);
    snprintf(k, sizeof k, "%s/ckeys/curve.pub", dir);
    assert_int_equal(keys_read_z85(k, false, child_pub, &why), LX_OK);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd);
}

/* Writes node.ini with the given body; returns its path. */
static const char *write_ini(const char *body)
{
    static char path[128];
    snprintf(path, sizeof path, "%s/node.ini", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(body, f);
    fclose(f);
    return path;
}

static void test_good(void **state)
{
    (void)state;
    char body[1024];
    snprintf(body, sizeof body,
             "[node]\ncode = 510121106000\ndata = data\nkeys = keys\nbind = tcp://127.0.0.1:1\n"
             "heartbeat_ms = 500\nreconnect_slow_ms = 30000\n[child 510121106218]\n"
             "curve_pub = %s\n", child_pub);
    node_config_t *c = NULL;
    why_t why = {""};
    assert_int_equal(config_load(write_ini(body), &c, &why), LX_OK);
    assert_int_equal(c->code, 510121106000ULL);
    assert_int_equal(c->nchildren, 1);
    assert_int_equal(c->heartbeat_ms, 500);
    assert_int_equal(c->reconnect_fast_ms, 60000); /* the default */
    assert_int_equal(c->reconnect_slow_ms, 30000);
    assert_non_null(config_child(c, 510121106218ULL));
    assert_null(config_child(c, 510121106219ULL));
    /* Relative paths are taken from the file's directory. */
    assert_non_null(strstr(c->data, dir));
    assert_int_equal(strlen(c->curve_sec), Z85_KEYLEN);
    config_free(&c);
    config_free(&c); /* safe twice */
}

static void expect_refused(const char *body, const char *want)
{
    node_config_t *c = NULL;
    why_t why = {""};
    assert_int_not_equal(config_load(write_ini(body), &c, &why), LX_OK);
    assert_null(c);
    if (!strstr(why.msg, want))
        fail_msg("message '%s' does not name '%s'", why.msg, want);
}

static void test_refused(void **state)
{
    (void)state;
    char body[1024];
    expect_refused("[node]\ncode = 51012110600\ndata = d\nkeys = keys\n", "line 2");
    expect_refused("[node]\ncode = 510121106000\ndata = d\nkeys = keys\ncolour = blue\n", "colour");
    expect_refused("[node]\ncode = 510121106000\ndata = d\nkeys = keys\nskew_ms = soon\n", "skew_ms");
    expect_refused("[node]\ncode = 510121106000\ndata = d\nkeys = keys\nreconnect_slow_ms = 5\n",
                   "reconnect_slow_ms");
    expect_refused("[nodes]\ncode = 510121106000\n", "[nodes]");
    expect_refused("[node]\ndata = d\nkeys = keys\n", "code is required");
    expect_refused("[node]\ncode = 510121106000\ndata = d\nkeys = nokeys\n", "nokeys/curve.key");
    expect_refused("[node]\ncode = 510121106000\ndata = d\nkeys = keys\nheartbeat_ms = 4000\n",
                   "timeout_ms");
    snprintf(body, sizeof body, "[node]\ncode = 510121106000\ndata = d\nkeys = keys\n"
             "bind = tcp://127.0.0.1:1\n[child 510122106218]\ncurve_pub = %s\n", child_pub);
    expect_refused(body, "not below this node");
    snprintf(body, sizeof body, "[node]\ncode = 510121106000\ndata = d\nkeys = keys\n"
             "bind = tcp://127.0.0.1:1\n[child 510121106218]\ncurve_pub = %s\n"
             "[child 510121106219]\ncurve_pub = %s\n[child 510121106218]\ncurve_pub = %s\n",
             child_pub, child_pub, child_pub);
    expect_refused(body, "appears twice");
    expect_refused("[node]\ncode = 510121106000\ndata = d\nkeys = keys\n"
                   "[child 510121106218]\ncurve_pub = short\n", "curve_pub");
    /* inih reports neither a section with no keys (a child left out of
     * the allowlist without a word) nor one written twice in a row (read
     * as one, the later keys winning): both refused, with the line. */
    snprintf(body, sizeof body, "[node]\ncode = 510121106000\ndata = d\nkeys = keys\n"
             "bind = tcp://127.0.0.1:1\n[child 510121106219]\n; its keys to come\n"
             "[child 510121106218]\ncurve_pub = %s\n", child_pub);
    expect_refused(body, "line 6: [child 510121106219]: a section with no keys");
    snprintf(body, sizeof body, "[node]\ncode = 510121106000\ndata = d\nkeys = keys\n"
             "bind = tcp://127.0.0.1:1\n[child 510121106218]\ncurve_pub = %s\n"
             "[child 510121106218] ; again\ncurve_pub = %s\n", child_pub, child_pub);
    expect_refused(body, "line 8: [child 510121106218]: the section follows itself");
    snprintf(body, sizeof body, "[node]\ncode = 510121106000\ndata = d\nkeys = keys\n"
             "bind = tcp://127.0.0.1:1\n[child 510121106218]\ncurve_pub = %s\n[parent]\n",
             child_pub);
    expect_refused(body, "line 8: [parent]: a section with no keys");
    expect_refused("[node]\ncode = 510121106000\ndata = d\nkeys = keys\n[parent]\n"
                   "code = 510121000000\n", "[parent] needs");
    /* A secret key readable by others is refused. */
    char k[128];
    snprintf(k, sizeof k, "%s/keys/sign.key", dir);
    assert_int_equal(chmod(k, 0644), 0);
    expect_refused("[node]\ncode = 510121106000\ndata = d\nkeys = keys\n", "must be 0600");
    assert_int_equal(chmod(k, 0600), 0);
}

/* The API's settings and tokens: plain HTTP only on 127.0.0.1, TLS files
 * required otherwise, a token only with a known role and a hash, a scope
 * inside the node; a token is found by its secret and no other. */
static void test_api_settings(void **state)
{
    (void)state;
#define N "[node]\ncode = 510121106000\ndata = d\nkeys = keys\n"
    expect_refused(N "http = 10.0.0.5:8443\nhttp_plain = true\n", "only on 127.0.0.1");
    expect_refused(N "http = 127.0.0.1:8443\n", "tls_cert");
    expect_refused(N "http = 127.0.0.1\nhttp_plain = true\n", "HOST:PORT");
    expect_refused(N "http_body_max = 10\n", "http_body_max");
    expect_refused(N "[token edu]\nrole = teacher\n", "unknown role");
    expect_refused(N "[token edu]\nrole = education\n", "needs role and hash");
    expect_refused(N "[token edu]\nrole = education\nhash = abc\n", "hash");
    expect_refused(N "[token Edu!]\nrole = education\n", "token's name");
    char secret[48], hex[65], body[1024];
    unsigned char h[TOKEN_HASHLEN];
    token_make(secret, h);
    sodium_bin2hex(hex, sizeof hex, h, sizeof h);
    snprintf(body, sizeof body, N "[token edu]\nrole = education\nhash = %s\n"
             "scope = 510122000000\n", hex);
    expect_refused(body, "scope");
    /* The same name twice, apart or one after the other. */
    snprintf(body, sizeof body, N "[token edu]\nrole = education\nhash = %s\n"
             "[token ops]\nrole = operator\nhash = %s\n[token edu]\nrole = health\n", hex, hex);
    expect_refused(body, "appears twice");
    snprintf(body, sizeof body, N "[token edu]\nrole = education\nhash = %s\n"
             "[token edu]\nrole = health\n", hex);
    expect_refused(body, "set twice");
    snprintf(body, sizeof body, N "http = 127.0.0.1:8443\nhttp_plain = true\n"
             "[token edu]\nrole = education\nhash = %s\nscope = 510121106218\n", hex);
    node_config_t *c = NULL;
    why_t why = {""};
    assert_int_equal(config_load(write_ini(body), &c, &why), LX_OK);
    assert_int_equal(c->ntokens, 1);
    const token_t *t = config_token(c, secret);
    assert_non_null(t);
    assert_string_equal(t->role, "education");
    assert_int_equal(t->scope, 510121106218ULL);
    assert_true(strncmp(secret, "lx_", 3) == 0 && strlen(secret) == 46);
    secret[10] ^= 1;
    assert_null(config_token(c, secret));
    assert_null(config_token(c, ""));
    config_free(&c);
    /* What inih takes, the header check takes too: a UTF-8 BOM (Notepad
     * writes one), a section named again further on ([node] here), and a
     * section name longer than inih keeps (cut to 49 bytes: a token named
     * before names were held to 43 keeps its first 43 characters). */
    char longname[51];
    memset(longname, 'a', 50);
    longname[50] = '\0';
    snprintf(body, sizeof body, "\xEF\xBB\xBF" N "[token %s]\nrole = education\nhash = %s\n"
             "[node]\nhttp_timeout_ms = 5000\n", longname, hex);
    assert_int_equal(config_load(write_ini(body), &c, &why), LX_OK);
    assert_int_equal(c->ntokens, 1);
    assert_int_equal(strlen(c->tokens[0].name), TOKEN_NAME_MAX);
    assert_int_equal(c->http_timeout_ms, 5000);
    config_free(&c);
    longname[TOKEN_NAME_MAX + 1] = '\0';
    assert_false(token_name_ok(longname));
    longname[TOKEN_NAME_MAX] = '\0';
    assert_true(token_name_ok(longname));
#undef N
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_api_settings),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
