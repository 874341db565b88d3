/* tls: the API's certificate. `topology render` makes each node an ECDSA
 * P-256 key (mode 0600) and a self-signed certificate for its HTTP host,
 * unless both files are already there (a configured CA's, say). */
#ifndef LX_TLS_H
#define LX_TLS_H

#include "common/err.h"

/* Writes key_path (0600) and cert_path: a certificate for common name cn,
 * valid ten years, naming host (an IP address or a DNS name), 127.0.0.1
 * and localhost. Leaves existing files alone and returns LX_EEXIST. */
int tls_make_cert(const char *key_path, const char *cert_path, const char *cn,
                  const char *host, why_t *why);

#endif
