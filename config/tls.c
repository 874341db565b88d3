#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int ossl_fail(why_t *why, const char *what)
{
    return why_set(why, LX_EIO, "TLS certificate: %s failed", what);
}

static int add_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!ext)
        return -1;
    int ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? 0 : -1;
}

/* Writes a PEM file through a temporary name, so a failure leaves none. */
static int write_pem(const char *path, mode_t mode, EVP_PKEY *key, X509 *cert, why_t *why)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    unlink(tmp);   /* a leftover keeps its mode: never write a key into one */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        return why_set(why, LX_EIO, "%s: %s", tmp, strerror(errno));
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        unlink(tmp);
        return why_set(why, LX_EIO, "%s: %s", tmp, strerror(errno));
    }
    int ok = key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL)
                 : PEM_write_X509(f, cert);
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (fclose(f) != 0)
        ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return why_set(why, LX_EIO, "%s: cannot write", path);
    }
    return LX_OK;
}

int tls_make_cert(const char *key_path, const char *cert_path, const char *cn,
                  const char *host, why_t *why)
{
    if (access(key_path, F_OK) == 0 && access(cert_path, F_OK) == 0)
        return LX_EEXIST;
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = key ? X509_new() : NULL;
    int rc = LX_OK;
    if (!x) {
        rc = ossl_fail(why, "key generation");
        goto out;
    }
    unsigned char serial[16];
    FILE *ur = fopen("/dev/urandom", "rb");
    size_t got = ur ? fread(serial, 1, sizeof serial, ur) : 0;
    if (ur)
        fclose(ur);
    serial[0] &= 0x7f;
    BIGNUM *bn = got == sizeof serial ? BN_bin2bn(serial, sizeof serial, NULL) : NULL;
    if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x))) {
        BN_free(bn);
        rc = ossl_fail(why, "serial number");
        goto out;
    }
    BN_free(bn);
    X509_set_version(x, 2);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 10L * 366 * 24 * 3600);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)"Lianxin", -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, name);
    char san[600];
    unsigned char addr[16];
    bool ip = host && (inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1);
    if (host && host[0] && strcmp(host, "127.0.0.1") && strcmp(host, "localhost"))
        snprintf(san, sizeof san, "%s:%s,IP:127.0.0.1,DNS:localhost", ip ? "IP" : "DNS", host);
    else
        snprintf(san, sizeof san, "IP:127.0.0.1,DNS:localhost");
    if (add_ext(x, NID_subject_alt_name, san) || add_ext(x, NID_basic_constraints, "critical,CA:FALSE")
        || add_ext(x, NID_key_usage, "critical,digitalSignature")
        || add_ext(x, NID_ext_key_usage, "serverAuth")) {
        rc = ossl_fail(why, "extensions");
        goto out;
    }
    if (!X509_sign(x, key, EVP_sha256())) {
        rc = ossl_fail(why, "signing");
        goto out;
    }
    rc = write_pem(key_path, 0600, key, NULL, why);
    if (!rc)
        rc = write_pem(cert_path, 0644, NULL, x, why);
out:
    X509_free(x);
    EVP_PKEY_free(key);
    return rc;
}
