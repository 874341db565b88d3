/* lianxin bundle export|import: changes carried on a USB stick from an
 * offline node to its parent, signed by the node, applied at the parent
 * through the same checks as the network.
 *
 * File: "LXB1", a 4-byte big-endian payload length, the payload (msgpack
 * [node, parent, first, last, created_ms, [change...]]) and an Ed25519
 * signature over "lianxin-bundle-v1\0" followed by the payload. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/linkstate.h"
#include "common/mp.h"
#include "common/schema.h"
#include "common/wire.h"
#include "config/config.h"

#define MAGIC "LXB1"
#define DOMAIN "lianxin-bundle-v1"
#define MAX_BUNDLE (512u << 20)

static const char *U = "lianxin bundle export --data DIR --out FILE [--keys DIR]\n"
                       "       lianxin bundle import --data DIR FILE [--config NODE.INI]";

typedef struct {
    stxn_t *t;
    code_t parent;
    msgpack_packer pk;
    uint64_t first, last, n;
    int rc;
} collect_t;

static int collect_cb(void *arg, const loghdr_t *h)
{
    collect_t *c = arg;
    bool full;
    if (!c->first)
        c->first = h->seq;
    c->last = h->seq;
    if (!wire_routes(c->parent, true, h->village, h->prev, h->from, &full))
        return 0;
    /* The same wire form as a batch carries. */
    int rc = store_log_pack(c->t, h, false, &c->pk, NULL);
    if (rc == LX_ENOTFOUND)
        return 0;
    if (rc) {
        c->rc = rc;
        return 1;
    }
    c->n++;
    return 0;
}

static int bundle_export(int argc, char **argv)
{
    static struct option opts[] = {{"data", required_argument, 0, 'd'},
                                   {"out", required_argument, 0, 'o'},
                                   {"keys", required_argument, 0, 'k'},
                                   {"help", no_argument, 0, 'h'}, {0}};
    const char *data = NULL, *out = NULL, *keys = NULL;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "d:o:k:h", opts, NULL)) != -1) {
        if (ch == 'd') data = optarg;
        else if (ch == 'o') out = optarg;
        else if (ch == 'k') keys = optarg;
        else if (ch == 'h') return printf("usage: %s\n", U), 0;
        else return cli_usage("bundle", U, "bad option");
    }
    if (!data || !out)
        return cli_usage("bundle", U, "--data and --out are required");
    char kdir[4200], kpath[4300];
    if (!keys) {
        cli_beside(data, "keys", kdir, sizeof kdir);
        keys = kdir;
    }
    why_t why = {""};
    unsigned char sk[SIGN_SECLEN];
    snprintf(kpath, sizeof kpath, "%s/sign.key", keys);
    if (sodium_init() < 0 || keys_read_hex(kpath, true, sk, sizeof sk, &why))
        return cli_fail("bundle", "%s", why.msg[0] ? why.msg : "libsodium failed");
    store_t *s = cli_open("bundle", data, STORE_RDONLY);
    if (!s) {
        sodium_memzero(sk, sizeof sk);
        return 1;
    }
    stxn_t *t;
    links_t lk = {0};
    int rc = store_begin(s, false, &t);
    const linkstate_t *pl = NULL;
    bool recorded = !rc && links_load(t, &lk) == LX_OK;
    for (uint32_t i = 0; recorded && i < lk.n; i++)
        if (lk.links[i].is_parent)
            pl = &lk.links[i];
    if (!rc && !pl && (recorded || code_level(store_code(s)) == LEVEL_PROVINCE))
        rc = why_set(&why, LX_EINVAL, "%s: this node has no parent to carry changes to", data);
    else if (!rc && !pl)
        rc = why_set(&why, LX_EINVAL,
                     "%s: no parent on record (a node records its parent when it first runs: "
                     "start `lianxin node --config FILE` once)", data);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    collect_t c = {.t = t};
    if (!rc) {
        c.parent = pl->code;
        /* The payload: header, then the changes array patched at the end. */
        msgpack_packer_init(&c.pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&c.pk, 6);
        msgpack_pack_uint64(&c.pk, store_code(s));
        msgpack_pack_uint64(&c.pk, pl->code);
        size_t at = sb.size;
        static const char hdr[32] = {(char)0xcf, 0, 0, 0, 0, 0, 0, 0, 0,
                                     (char)0xcf, 0, 0, 0, 0, 0, 0, 0, 0,
                                     (char)0xcf, 0, 0, 0, 0, 0, 0, 0, 0,
                                     (char)0xdd, 0, 0, 0, 0};
        msgpack_sbuffer_write(&sb, hdr, sizeof hdr);
        c.first = 0;
        rc = store_each_log_hdr(t, pl->acked + 1, collect_cb, &c);
        if (!rc)
            rc = c.rc;
        if (!c.first)
            c.first = c.last = pl->acked;
        unsigned char *p = (unsigned char *)sb.data + at;
        uint64_t vals[3] = {c.first, c.last, hlc_wall_ms()};
        for (int k = 0; k < 3; k++)
            for (int i = 0; i < 8; i++)
                p[k * 9 + 1 + i] = (unsigned char)(vals[k] >> (56 - 8 * i));
        for (int i = 0; i < 4; i++)
            p[28 + i] = (unsigned char)(c.n >> (24 - 8 * i));
    }
    store_abort(&t);
    store_close(&s);
    links_free(&lk);
    FILE *f = NULL;
    if (!rc) {
        unsigned char sig[crypto_sign_BYTES];
        crypto_sign_state st;
        crypto_sign_init(&st);
        crypto_sign_update(&st, (const unsigned char *)DOMAIN, sizeof DOMAIN);
        crypto_sign_update(&st, (const unsigned char *)sb.data, sb.size);
        crypto_sign_final_create(&st, sig, NULL, sk);
        char tmp[4200];
        snprintf(tmp, sizeof tmp, "%s.tmp", out);
        unsigned char len[4] = {(unsigned char)(sb.size >> 24), (unsigned char)(sb.size >> 16),
                                (unsigned char)(sb.size >> 8), (unsigned char)sb.size};
        f = fopen(tmp, "wb");
        if (!f || fwrite(MAGIC, 1, 4, f) != 4 || fwrite(len, 1, 4, f) != 4
            || fwrite(sb.data, 1, sb.size, f) != sb.size
            || fwrite(sig, 1, sizeof sig, f) != sizeof sig || fflush(f) || fsync(fileno(f))) {
            rc = why_set(&why, LX_EIO, "%s: %s", out, strerror(errno));
            unlink(tmp);
        }
        if (f)
            fclose(f);
        if (!rc && rename(tmp, out))
            rc = why_set(&why, LX_EIO, "%s: %s", out, strerror(errno));
    }
    sodium_memzero(sk, sizeof sk);
    msgpack_sbuffer_destroy(&sb);
    if (rc)
        return cli_fail("bundle", "%s", why.msg[0] ? why.msg : err_str(rc));
    printf("bundle %s: %llu changes (log %llu..%llu) for parent, signed\n", out,
           (unsigned long long)c.n, (unsigned long long)c.first, (unsigned long long)c.last);
    return 0;
}

static int bundle_import(int argc, char **argv)
{
    static struct option opts[] = {{"data", required_argument, 0, 'd'},
                                   {"config", required_argument, 0, 'c'},
                                   {"help", no_argument, 0, 'h'}, {0}};
    const char *data = NULL, *cfgpath = NULL;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "d:c:h", opts, NULL)) != -1) {
        if (ch == 'd') data = optarg;
        else if (ch == 'c') cfgpath = optarg;
        else if (ch == 'h') return printf("usage: %s\n", U), 0;
        else return cli_usage("bundle", U, "bad option");
    }
    if (!data || optind != argc - 1)
        return cli_usage("bundle", U, "give --data DIR and one bundle FILE");
    const char *file = argv[optind];
    char cdir[4200];
    if (!cfgpath) {
        cli_beside(data, "node.ini", cdir, sizeof cdir);
        cfgpath = cdir;
    }
    why_t why = {""};
    node_config_t *cfg = NULL;
    if (config_load(cfgpath, &cfg, &why))
        return cli_fail("bundle", "%s", why.msg);
    size_t len = 0;
    unsigned char *buf = (unsigned char *)cli_slurp(file, &len, &why);
    int rc = buf ? LX_OK : LX_EIO;
    uint32_t plen = 0;
    if (!rc && (len < 8 + crypto_sign_BYTES || memcmp(buf, MAGIC, 4) != 0))
        rc = why_set(&why, LX_EINVAL, "%s: not a Lianxin bundle", file);
    if (!rc) {
        plen = (uint32_t)buf[4] << 24 | (uint32_t)buf[5] << 16 | (uint32_t)buf[6] << 8 | buf[7];
        if (plen > MAX_BUNDLE || (size_t)plen + 8 + crypto_sign_BYTES != len)
            rc = why_set(&why, LX_EINVAL, "%s: length does not match the file", file);
    }
    /* Who signed it: the payload names the child; its key comes from our
     * configuration, never from the file. */
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    const msgpack_object *a = NULL;
    code_t child = 0, parent = 0;
    uint64_t first = 0, last = 0;
    if (!rc && (rc = mp_unpack(buf + 8, plen, &u, &why)) == LX_OK) {
        a = u.data.via.array.ptr;
        if (mp_array(&u.data, "bundle", 6, 6, &why) || mp_u64(&a[0], "node", &child, &why)
            || mp_u64(&a[1], "parent", &parent, &why) || mp_u64(&a[2], "first", &first, &why)
            || mp_u64(&a[3], "last", &last, &why)
            || mp_array(&a[5], "changes", 0, 10000000, &why))
            rc = why_prefix(&why, LX_EINVAL, "%s", file);
    }
    const peer_t *pc = NULL;
    char cc[CODE_STRLEN + 1];
    if (!rc && (parent != cfg->code || !(pc = config_child(cfg, child))))
        rc = why_set(&why, LX_ESCOPE, "%s: a bundle from %s for %s, not from a child of this node",
                     file, code_fmt(child, cc), "another parent");
    if (!rc && !pc->has_sign)
        rc = why_set(&why, LX_EINVAL, "%s: no signing key for child %s in %s", file,
                     code_fmt(child, cc), cfgpath);
    if (!rc) {
        crypto_sign_state st;
        crypto_sign_init(&st);
        crypto_sign_update(&st, (const unsigned char *)DOMAIN, sizeof DOMAIN);
        crypto_sign_update(&st, buf + 8, plen);
        if (crypto_sign_final_verify(&st, buf + 8 + plen, (unsigned char *)pc->sign_pub) != 0)
            rc = why_set(&why, LX_EINVAL, "%s: bad signature (not signed by %s, or altered)",
                         file, code_fmt(child, cc));
    }
    store_t *s = NULL;
    uint64_t applied = 0, refused = 0, changed = 0;
    if (!rc && !(s = cli_open("bundle", data, 0)))
        rc = LX_EIO;
    if (!rc && store_code(s) != cfg->code)
        rc = why_set(&why, LX_EINVAL, "%s is not the store of %s", data, cfgpath);
    if (!rc)
        store_set_skew(s, cfg->skew_ms);
    stxn_t *t = NULL;
    if (!rc)
        rc = store_begin(s, true, &t);
    /* Same checks as the network: the child's scope, the clock. */
    apply_opts_t o = {.from = child, .within = child};
    for (uint32_t i = 0; !rc && i < a[5].via.array.size; i++) {
        change_t c;
        why_t w = {""};
        if ((rc = change_from_obj(&a[5].via.array.ptr[i], &c, &why))) {
            why_prefix(&why, rc, "%s: change %u", file, i + 1);
            break;
        }
        apply_t res;
        int r = schema_check_change(&c, &w);
        if (!r)
            r = store_apply_ex(t, c.id, c.w, c.n, &o, &res, &w);
        if (r == LX_ESCOPE || r == LX_ESKEW || r == LX_EINVAL) {
            refused++;
            fprintf(stderr, "lianxin bundle: refused a change to record %s: %s\n", c.id, w.msg);
            /* Counted in status as the network's refusals are. */
            char reason[160];
            hlc_t latest = 0;
            for (uint32_t k = 0; k < c.n; k++)
                latest = c.w[k].ver.hlc > latest ? c.w[k].ver.hlc : latest;
            snprintf(reason, sizeof reason, "bundle: record %s: %s", c.id, w.msg);
            rc = links_note_bundle(t, child, c.id, latest, r == LX_ESKEW, reason);
        } else if (r) {
            rc = r;
        } else {
            applied++;
            changed += res.changed ? 1 : 0;
        }
        change_free(&c);
    }
    char key[32];
    snprintf(key, sizeof key, "in/%s", code_fmt(child, cc));
    uint64_t in = 0;
    if (!rc && store_meta_get(t, key, &in) != LX_OK)
        in = 0;
    /* The child's log is now applied up to `last` if the bundle starts
     * where we were; otherwise the gap is left for the network. */
    if (!rc && first <= in + 1 && last > in)
        rc = store_meta_put(t, key, last);
    if (!rc)
        rc = store_commit(&t);
    store_abort(&t);
    store_close(&s);
    msgpack_unpacked_destroy(&u);
    free(buf);
    config_free(&cfg);
    if (rc)
        return cli_fail("bundle", "%s", why.msg[0] ? why.msg : err_str(rc));
    printf("bundle from %s: %llu changes applied (%llu changed records), %llu refused\n", cc,
           (unsigned long long)applied, (unsigned long long)changed, (unsigned long long)refused);
    return 0;
}

int cmd_bundle(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        if (argc < 2)
            return cli_usage("bundle", U, "export or import?");
        printf("usage: %s\n", U);
        return 0;
    }
    if (strcmp(argv[1], "export") == 0)
        return bundle_export(argc - 1, argv + 1);
    if (strcmp(argv[1], "import") == 0)
        return bundle_import(argc - 1, argv + 1);
    return cli_usage("bundle", U, "unknown subcommand '%s'", argv[1]);
}
