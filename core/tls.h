/*
 * tls.h: TLS termination with OpenSSL 3. An sg_tls_ctx is one TLS listener's setup, built
 * with the config generation (on the loader thread: OpenSSL contexts may be built off the
 * loop, and nothing here logs): its certificates (the one whose names match the client's
 * SNI is chosen, RFC 6125 wildcards, else the first), protocol floor, ciphers, ALPN
 * http/1.1, no renegotiation, session tickets, optional client certificates. A session is
 * an sg_transport (transport.h) whose reads and writes go through SSL_read / SSL_write;
 * the handshake runs inside the first reads. It offers neither sendfile nor splice (no kTLS
 * on kernels without CONFIG_TLS), so the response writer copies files through its buffer.
 * A session holds a reference on its context, so a reload may free the generation that
 * made it while the connection (or its handshake) lives on.
 */
#ifndef SG_TLS_H
#define SG_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "request.h"
#include "transport.h"

typedef struct sg_tls_ctx sg_tls_ctx;

/**
 * Process-wide state, made once at start before any thread or fork: the session ticket
 * secret every worker and generation shares. It does not initialise OpenSSL. SG_OK, or
 * SG_ERR without random bytes. sg_tls_ctx_new calls it too (for programs that do not).
 */
int sg_tls_global_init(void);

enum sg_tls_verify {
    SG_TLS_VERIFY_NONE,     /* no client certificate asked for */
    SG_TLS_VERIFY_OPTIONAL, /* asked for; a missing or failing one still connects */
    SG_TLS_VERIFY_REQUIRE   /* the handshake fails without a valid one */
};

typedef struct sg_tls_cert_conf {
    char *cert; /* owned: PEM certificate, the chain after it */
    char *key;  /* owned: PEM private key */
    char *ocsp; /* owned: DER OCSP response to staple, or NULL */
} sg_tls_cert_conf;

/* One TLS listener's settings, as decoded from listen[i].tls. */
typedef struct sg_tls_conf {
    sg_tls_cert_conf *certs; /* owned, ncerts >= 1 */
    size_t ncerts;
    bool tls13_only; /* protocols = "TLSv1.3"; else TLS 1.2 and 1.3 */
    char *ciphers;   /* owned: TLS 1.2 cipher list, NULL for the default */
    char *client_ca; /* owned: CA file for client certificates, or NULL */
    enum sg_tls_verify verify_client;
    bool export_client_cert; /* SSL_CLIENT_CERT (PEM) to the backend */
} sg_tls_conf;

/**
 * Builds a listener's context. Returns NULL with `err` filled ("certs[2].key: /path: key
 * values mismatch", the OpenSSL reason, paths relative to listen[i].tls) on any problem:
 * an unreadable file, a key that does not match its certificate, a bad cipher list or CA.
 * `warn` (may be NULL) gets a line for a private key readable by everyone.
 */
sg_tls_ctx *sg_tls_ctx_new(const sg_tls_conf *conf, char *err, size_t errlen, char *warn,
                           size_t warnlen);
/** Drops the caller's reference; sessions hold their own (loop thread only once shared). */
void sg_tls_ctx_free(sg_tls_ctx *ctx);

/**
 * Starts a server session over `fd` (owned by `t` from now, as with sg_transport_init).
 * Returns SG_OK, or SG_ERR (out of memory: the fd is still closed by sg_transport_close).
 */
int sg_tls_accept(sg_transport *t, int fd, sg_tls_ctx *ctx);

/** Whether `t` is a TLS session (any state). */
bool sg_tls_is(const sg_transport *t);
/** Whether the handshake of session `t` completed. */
bool sg_tls_established(const sg_transport *t);
/**
 * Why the last read or write of `t` failed: a static string naming OpenSSL's reason, or
 * NULL if the failure was not TLS's own (a socket error: errno). `plain_http` is set when
 * the client spoke plain HTTP to the TLS port (the caller answers 400 in plaintext).
 */
const char *sg_tls_failure(const sg_transport *t, bool *plain_http);
/** Whether the last read of `t` is waiting for the socket to become writable. */
bool sg_tls_read_wants_write(const sg_transport *t);

/**
 * After the handshake: whether kernel TLS took over the sending side (then `t` offers
 * sendfile and splice); *first is true for the first session of its context, so the
 * caller can say once which path is in use.
 */
bool sg_tls_settle(sg_transport *t, bool *first);
/** Fills `info` from an established session (strings copied: it outlives nothing). */
void sg_tls_get_info(const sg_transport *t, sg_tls_info *info);
/** Releases what sg_tls_get_info allocated (the client certificate's PEM). */
void sg_tls_info_free(sg_tls_info *info);

#endif
