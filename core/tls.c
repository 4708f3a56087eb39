/*
 * tls.c: OpenSSL 3 contexts for TLS listeners and the TLS transport of a connection
 * (tls.h says what they do). Sessions are non-blocking: SSL_read / SSL_write report
 * "want read/write", which become SG_AGAIN, and the connection's watchers follow.
 */
#include "tls.h"

#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include "util.h"

/* Mozilla's "intermediate" TLS 1.2 suites (TLS 1.3 suites are OpenSSL's defaults). */
#define SG_TLS_CIPHERS                                                                             \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"     \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"       \
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"

typedef struct sg_tls_staple {
    unsigned char *der; /* owned: the OCSP response, sent as read (the CA signed it) */
    size_t len;
} sg_tls_staple;

struct sg_tls_ctx {
    SSL_CTX **ctx;         /* owned, one per certificate; ctx[0] answers when SNI matches none */
    X509 **leaf;           /* borrowed from ctx[i]: its certificate, for the SNI match */
    sg_tls_staple *staple; /* per certificate; len 0: nothing to staple */
    size_t n;
    bool export_client_cert;
    enum sg_tls_verify verify;
    bool path_said; /* sg_tls_settle reported which path the first session took */
    int refs;       /* the config generation's and one per session: a handshake may outlive the
                       generation that accepted it (its SNI callback still needs the list) */
};

typedef struct sg_tls_session {
    SSL *ssl;
    bool read_wants_write;
    bool plain_http;
    bool shut;         /* close_notify sent */
    const char *why;   /* static: OpenSSL's reason for the last failure, or NULL */
    sg_tls_ctx *owner; /* one reference: the SNI list and the listener's settings */
} sg_tls_session;

static int ex_index = -1; /* SSL ex_data slot: the sg_tls_ctx, for the SNI callback */

/*
 * Session tickets. Every key derives from one secret made at the first context of the
 * process and an hour number, so workers forked from the master (and every generation a
 * reload builds in them) encrypt and decrypt the same tickets, and keys rotate every hour
 * with no coordination: a ticket of the previous hour is still accepted, and renewed.
 */
#define SG_TICKET_PERIOD 3600
static unsigned char ticket_secret[32];
static bool ticket_secret_set;

static void ticket_keys(uint64_t slot, unsigned char aes[32], unsigned char mac[32])
{
    unsigned char in[9];
    unsigned int len = 32;
    for (int i = 0; i < 8; i++)
        in[i] = (unsigned char)(slot >> (8 * i));
    in[8] = 'a';
    HMAC(EVP_sha256(), ticket_secret, sizeof ticket_secret, in, sizeof in, aes, &len);
    in[8] = 'm';
    HMAC(EVP_sha256(), ticket_secret, sizeof ticket_secret, in, sizeof in, mac, &len);
}

static int ticket_cb(SSL *ssl, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *cctx,
                     EVP_MAC_CTX *hctx, int enc)
{
    SG_UNUSED(ssl);
    uint64_t now = (uint64_t)time(NULL) / SG_TICKET_PERIOD, slot = now;
    int rc = 1;
    if (enc) {
        memset(name, 0, 16);
        memcpy(name, "sgl1", 4);
        for (int i = 0; i < 8; i++)
            name[4 + i] = (unsigned char)(slot >> (8 * i));
        if (RAND_bytes(iv, EVP_MAX_IV_LENGTH) != 1)
            return -1;
    } else {
        if (memcmp(name, "sgl1", 4) != 0)
            return 0; /* not ours: a full handshake */
        slot = 0;
        for (int i = 0; i < 8; i++)
            slot |= (uint64_t)name[4 + i] << (8 * i);
        if (slot != now && slot + 1 != now)
            return 0;             /* expired */
        rc = slot == now ? 1 : 2; /* 2: accepted, and a fresh ticket is issued */
    }
    unsigned char aes[32], mac[32];
    ticket_keys(slot, aes, mac);
    OSSL_PARAM params[] = { OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, mac, 32),
                            OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                             (char *)"sha256", 0),
                            OSSL_PARAM_construct_end() };
    int ok = enc ? EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, aes, iv)
                 : EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, aes, iv);
    if (ok != 1 || EVP_MAC_CTX_set_params(hctx, params) != 1)
        return -1;
    return rc;
}

static void openssl_reason(char *out, size_t len)
{
    unsigned long e = ERR_get_error();
    unsigned long last = e;
    while (e) { /* the last one queued is usually the innermost cause */
        last = e;
        e = ERR_get_error();
    }
    if (last) {
        const char *r = ERR_reason_error_string(last);
        snprintf(out, len, "%s", r ? r : "unknown OpenSSL error");
    } else {
        snprintf(out, len, "%s", errno ? strerror(errno) : "unknown error");
    }
}

/* ALPN: HTTP/1.1 only for now; a client offering only other protocols gets none chosen. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    SG_UNUSED(ssl);
    SG_UNUSED(arg);
    static const unsigned char ours[] = "\x08http/1.1";
    unsigned char *sel;
    if (SSL_select_next_proto(&sel, outlen, ours, sizeof ours - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* SNI: the first certificate whose names match (X509_check_host: RFC 6125 wildcards). */
static int sni_select(SSL *ssl, int *alert, void *arg)
{
    SG_UNUSED(alert);
    SG_UNUSED(arg);
    sg_tls_ctx *tc = SSL_get_ex_data(ssl, ex_index);
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!tc || !name || tc->n < 2)
        return SSL_TLSEXT_ERR_OK;
    for (size_t i = 0; i < tc->n; i++) {
        if (X509_check_host(tc->leaf[i], name, 0, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, NULL) ==
            1) {
            if (i)
                SSL_set_SSL_CTX(ssl, tc->ctx[i]);
            break;
        }
    }
    return SSL_TLSEXT_ERR_OK;
}

/* "optional": a client certificate that fails verification still connects; the result is
 * reported to the backend (SSL_CLIENT_VERIFY FAILED:reason), which decides. */
static int verify_generous(int ok, X509_STORE_CTX *store)
{
    SG_UNUSED(ok);
    SG_UNUSED(store);
    return 1;
}

int sg_tls_global_init(void)
{
    /* getrandom, not RAND_bytes: a gateway without TLS listeners never initialises OpenSSL
     * (its pages would be most of a small process's resident memory) */
    if (!ticket_secret_set) {
        if (getrandom(ticket_secret, sizeof ticket_secret, 0) != (ssize_t)sizeof ticket_secret)
            return SG_ERR;
        ticket_secret_set = true;
    }
    return SG_OK;
}

/* OCSP stapling: a client that asks gets the response file read with the configuration
 * (renewing it, like a certificate, reloads). OpenSSL frees what it is given: a copy. */
static int staple_cb(SSL *ssl, void *arg)
{
    const sg_tls_staple *st = arg;
    if (!st || st->len == 0)
        return SSL_TLSEXT_ERR_NOACK;
    unsigned char *copy = OPENSSL_malloc(st->len);
    if (!copy)
        return SSL_TLSEXT_ERR_NOACK;
    memcpy(copy, st->der, st->len);
    SSL_set_tlsext_status_ocsp_resp(ssl, copy, (long)st->len);
    return SSL_TLSEXT_ERR_OK;
}

static int read_staple(const char *path, sg_tls_staple *st, size_t i, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "certs[%zu].ocsp: %s: %s", i + 1, path, strerror(errno));
        return SG_ERR;
    }
    sg_buf b;
    sg_buf_init(&b);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && b.len < 1024 * 1024)
        sg_buf_append(&b, chunk, n);
    fclose(f);
    /* a DER OCSPResponse is one SEQUENCE: refuse what clearly is not one (a PEM file) */
    if (b.len < 2 || (unsigned char)sg_buf_head(&b)[0] != 0x30) {
        snprintf(err, errlen, "certs[%zu].ocsp: %s: not a DER OCSP response", i + 1, path);
        sg_buf_free(&b);
        return SG_ERR;
    }
    st->der = sg_xmalloc(b.len);
    memcpy(st->der, sg_buf_head(&b), b.len);
    st->len = b.len;
    sg_buf_free(&b);
    return SG_OK;
}

static SSL_CTX *ctx_one(const sg_tls_conf *conf, size_t i, char *err, size_t errlen)
{
    char reason[256];
    const sg_tls_cert_conf *cc = &conf->certs[i];
    SSL_CTX *c = SSL_CTX_new(TLS_server_method());
    if (!c) {
        openssl_reason(reason, sizeof reason);
        snprintf(err, errlen, "cannot create a TLS context: %s", reason);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(c, conf->tls13_only ? TLS1_3_VERSION : TLS1_2_VERSION);
    /* a client closing without close_notify is an ordinary end for a server's reads */
    SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                               SSL_OP_IGNORE_UNEXPECTED_EOF);
#ifdef SSL_OP_ENABLE_KTLS
    /* kernel TLS where the kernel has it (CONFIG_TLS): OpenSSL hands the keys over after the
     * handshake and sendfile/splice work on the socket again (sg_tls_settle) */
    SSL_CTX_set_options(c, SSL_OP_ENABLE_KTLS);
#endif
    /* the response writer retries a short write from the head of a buffer that may have
     * moved or grown; idle connections give their record buffers back */
    SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_dh_auto(c, 1);
    SSL_CTX_set_session_id_context(c, (const unsigned char *)"scgi-lua", 8);
    SSL_CTX_set_tlsext_ticket_key_evp_cb(c, ticket_cb);
    SSL_CTX_set_alpn_select_cb(c, alpn_select, NULL);
    if (SSL_CTX_set_cipher_list(c, conf->ciphers ? conf->ciphers : SG_TLS_CIPHERS) != 1) {
        openssl_reason(reason, sizeof reason);
        snprintf(err, errlen, "ciphers: \"%s\": %s", conf->ciphers ? conf->ciphers : "", reason);
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(c, cc->cert) != 1) {
        openssl_reason(reason, sizeof reason);
        snprintf(err, errlen, "certs[%zu].cert: %s: %s", i + 1, cc->cert, reason);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(c, cc->key, SSL_FILETYPE_PEM) != 1) {
        openssl_reason(reason, sizeof reason);
        snprintf(err, errlen, "certs[%zu].key: %s: %s", i + 1, cc->key, reason);
        goto fail;
    }
    if (SSL_CTX_check_private_key(c) != 1) {
        openssl_reason(reason, sizeof reason);
        snprintf(err, errlen, "certs[%zu].key: %s does not match %s: %s", i + 1, cc->key, cc->cert,
                 reason);
        goto fail;
    }
    if (conf->client_ca) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(conf->client_ca);
        if (!names || SSL_CTX_load_verify_locations(c, conf->client_ca, NULL) != 1) {
            if (names)
                sk_X509_NAME_pop_free(names, X509_NAME_free);
            openssl_reason(reason, sizeof reason);
            snprintf(err, errlen, "client_ca: %s: %s", conf->client_ca, reason);
            goto fail;
        }
        SSL_CTX_set_client_CA_list(c, names);
    }
    if (conf->verify_client == SG_TLS_VERIFY_REQUIRE)
        SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    else if (conf->verify_client == SG_TLS_VERIFY_OPTIONAL)
        SSL_CTX_set_verify(c, SSL_VERIFY_PEER, verify_generous);
    return c;
fail:
    SSL_CTX_free(c);
    return NULL;
}

sg_tls_ctx *sg_tls_ctx_new(const sg_tls_conf *conf, char *err, size_t errlen, char *warn,
                           size_t warnlen)
{
    if (sg_tls_global_init() != SG_OK) {
        snprintf(err, errlen, "cannot make a session ticket key: no random bytes");
        return NULL;
    }
    if (ex_index < 0) /* contexts are built one at a time (at start, or by the loader) */
        ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    if (warn && warnlen)
        warn[0] = '\0';
    ERR_clear_error();
    sg_tls_ctx *tc = sg_xcalloc(1, sizeof *tc);
    tc->ctx = sg_xcalloc(conf->ncerts, sizeof *tc->ctx);
    tc->leaf = sg_xcalloc(conf->ncerts, sizeof *tc->leaf);
    tc->staple = sg_xcalloc(conf->ncerts, sizeof *tc->staple);
    tc->export_client_cert = conf->export_client_cert;
    tc->verify = conf->verify_client;
    tc->refs = 1;
    for (size_t i = 0; i < conf->ncerts; i++) {
        tc->ctx[i] = ctx_one(conf, i, err, errlen);
        if (!tc->ctx[i]) {
            sg_tls_ctx_free(tc);
            return NULL;
        }
        tc->n = i + 1;
        tc->leaf[i] = SSL_CTX_get0_certificate(tc->ctx[i]);
        if (conf->certs[i].ocsp) {
            if (read_staple(conf->certs[i].ocsp, &tc->staple[i], i, err, errlen) != SG_OK) {
                sg_tls_ctx_free(tc);
                return NULL;
            }
            SSL_CTX_set_tlsext_status_cb(tc->ctx[i], staple_cb);
            SSL_CTX_set_tlsext_status_arg(tc->ctx[i], &tc->staple[i]);
        }
        struct stat st;
        if (warn && stat(conf->certs[i].key, &st) == 0 && (st.st_mode & S_IROTH) && !warn[0])
            snprintf(warn, warnlen, "certs[%zu].key: %s is readable by every user", i + 1,
                     conf->certs[i].key);
    }
    SSL_CTX_set_tlsext_servername_callback(tc->ctx[0], sni_select);
    return tc;
}

void sg_tls_ctx_free(sg_tls_ctx *tc)
{
    if (!tc || --tc->refs > 0)
        return;
    for (size_t i = 0; i < tc->n; i++)
        SSL_CTX_free(tc->ctx[i]); /* sessions still open hold their own reference */
    for (size_t i = 0; tc->staple && i < tc->n; i++)
        free(tc->staple[i].der);
    free(tc->ctx);
    free(tc->leaf);
    free(tc->staple);
    free(tc);
}

/* ---- the transport ---- */

static sg_tls_session *sess(const sg_transport *t)
{
    return t->ctx;
}

/* A failed call: SG_AGAIN for "try when the socket is ready", else SG_ERR with errno. */
static ssize_t failed(sg_tls_session *s, int rc, bool reading)
{
    int e = SSL_get_error(s->ssl, rc);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        return SG_AGAIN;
    case SSL_ERROR_WANT_WRITE:
        if (reading)
            s->read_wants_write = true;
        return SG_AGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        if (errno == 0)
            errno = ECONNRESET;
        s->why = NULL;
        ERR_clear_error();
        return SG_ERR;
    default: {
        unsigned long err = ERR_peek_last_error();
        if (ERR_GET_LIB(err) == ERR_LIB_SSL && ERR_GET_REASON(err) == SSL_R_HTTP_REQUEST)
            s->plain_http = true;
        s->why = ERR_reason_error_string(err);
        if (!s->why)
            s->why = "TLS protocol error";
        ERR_clear_error();
        errno = EPROTO;
        return SG_ERR;
    }
    }
}

static ssize_t tls_read(sg_transport *t, void *buf, size_t len)
{
    sg_tls_session *s = sess(t);
    size_t n = 0;
    if (!s->ssl) { /* SSL_new failed at accept */
        errno = ENOMEM;
        return SG_ERR;
    }
    s->read_wants_write = false;
    ERR_clear_error();
    int rc = SSL_read_ex(s->ssl, buf, len, &n);
    if (rc == 1)
        return (ssize_t)n;
    return failed(s, rc, true);
}

static ssize_t tls_writev(sg_transport *t, const struct iovec *iov, int iovcnt)
{
    sg_tls_session *s = sess(t);
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len == 0)
            continue;
        size_t n = 0;
        ERR_clear_error();
        int rc = SSL_write_ex(s->ssl, iov[i].iov_base, iov[i].iov_len, &n);
        if (rc != 1) {
            if (total)
                return (ssize_t)total; /* report what left; the next call sees the error */
            ssize_t r = failed(s, rc, false);
            return r == 0 ? SG_ERR : r; /* close_notify while writing: the peer is gone */
        }
        total += n;
        if (n < iov[i].iov_len)
            break;
    }
    return (ssize_t)total;
}

static bool tls_pending(const sg_transport *t)
{
    return SSL_pending(sess(t)->ssl) > 0;
}

static int tls_shutdown(sg_transport *t)
{
    sg_tls_session *s = sess(t);
    if (s->ssl && !s->shut && SSL_is_init_finished(s->ssl)) {
        s->shut = true;
        ERR_clear_error();
        SSL_shutdown(s->ssl); /* close_notify, once; never waits for the peer's */
        ERR_clear_error();
    }
    return shutdown(t->fd, SHUT_WR) == 0 ? SG_OK : SG_ERR;
}

static void tls_close(sg_transport *t)
{
    sg_tls_session *s = sess(t);
    if (!s)
        return;
    if (s->ssl && !s->shut && SSL_is_init_finished(s->ssl)) {
        ERR_clear_error();
        SSL_shutdown(s->ssl); /* non-blocking socket: sends close_notify if it fits */
    }
    ERR_clear_error();
    SSL_free(s->ssl);
    sg_tls_ctx_free(s->owner);
    free(s);
    t->ctx = NULL;
}

static const sg_transport_ops tls_ops = {
    .read = tls_read,
    .writev = tls_writev,
    .pending = tls_pending,
    .shutdown = tls_shutdown,
    .close = tls_close,
};

int sg_tls_accept(sg_transport *t, int fd, sg_tls_ctx *tc)
{
    sg_tls_session *s = sg_xcalloc(1, sizeof *s);
    sg_transport_init(t, fd, 0, &tls_ops, s);
    s->owner = tc;
    tc->refs++;
    s->ssl = SSL_new(tc->ctx[0]);
    if (!s->ssl || SSL_set_fd(s->ssl, fd) != 1) {
        ERR_clear_error();
        return SG_ERR;
    }
    SSL_set_ex_data(s->ssl, ex_index, tc);
    SSL_set_accept_state(s->ssl);
    return SG_OK;
}

bool sg_tls_is(const sg_transport *t)
{
    return t->ops == &tls_ops;
}

bool sg_tls_established(const sg_transport *t)
{
    return sg_tls_is(t) && sess(t) && sess(t)->ssl && SSL_is_init_finished(sess(t)->ssl);
}

const char *sg_tls_failure(const sg_transport *t, bool *plain_http)
{
    sg_tls_session *s = sg_tls_is(t) ? sess(t) : NULL;
    *plain_http = s && s->plain_http;
    return s ? s->why : NULL;
}

bool sg_tls_read_wants_write(const sg_transport *t)
{
    return sg_tls_is(t) && sess(t) && sess(t)->read_wants_write;
}

bool sg_tls_settle(sg_transport *t, bool *first)
{
    sg_tls_session *s = sess(t);
    bool ktls = false;
#ifndef OPENSSL_NO_KTLS
    ktls = BIO_get_ktls_send(SSL_get_wbio(s->ssl)) != 0;
#endif
    if (ktls) /* the fd carries plain bytes that the kernel encrypts */
        t->caps = SG_TRANSPORT_SENDFILE | SG_TRANSPORT_SPLICE;
    *first = !s->owner->path_said;
    s->owner->path_said = true;
    return ktls;
}

static char *name_text(X509_NAME *name)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (!b)
        return sg_xstrdup("");
    X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253);
    char *data;
    long len = BIO_get_mem_data(b, &data);
    char *out = sg_xmalloc((size_t)len + 1);
    memcpy(out, data, (size_t)len);
    out[len] = '\0';
    BIO_free(b);
    return out;
}

void sg_tls_get_info(const sg_transport *t, sg_tls_info *info)
{
    memset(info, 0, sizeof *info);
    sg_tls_session *s = sess(t);
    SSL *ssl = s->ssl;
    info->protocol = SSL_get_version(ssl);
    snprintf(info->cipher, sizeof info->cipher, "%s", SSL_get_cipher_name(ssl));
    const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    snprintf(info->sni, sizeof info->sni, "%s", sni ? sni : "");
    const sg_tls_ctx *tc = s->owner;
    info->client_verify_asked = tc->verify != SG_TLS_VERIFY_NONE;
    X509 *peer = SSL_get1_peer_certificate(ssl);
    if (!peer) {
        snprintf(info->verify, sizeof info->verify, "NONE");
        return;
    }
    long vr = SSL_get_verify_result(ssl);
    if (vr == X509_V_OK)
        snprintf(info->verify, sizeof info->verify, "SUCCESS");
    else
        snprintf(info->verify, sizeof info->verify, "FAILED:%s", X509_verify_cert_error_string(vr));
    info->s_dn = name_text(X509_get_subject_name(peer));
    info->i_dn = name_text(X509_get_issuer_name(peer));
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(peer), NULL);
    char *hex = bn ? BN_bn2hex(bn) : NULL;
    snprintf(info->serial, sizeof info->serial, "%s", hex ? hex : "");
    OPENSSL_free(hex);
    BN_free(bn);
    if (tc->export_client_cert) {
        BIO *b = BIO_new(BIO_s_mem());
        if (b && PEM_write_bio_X509(b, peer) == 1) {
            char *data;
            long len = BIO_get_mem_data(b, &data);
            info->cert_pem = sg_xmalloc((size_t)len + 1);
            memcpy(info->cert_pem, data, (size_t)len);
            info->cert_pem[len] = '\0';
        }
        BIO_free(b);
    }
    X509_free(peer);
    ERR_clear_error();
}

void sg_tls_info_free(sg_tls_info *info)
{
    free(info->s_dn);
    free(info->i_dn);
    free(info->cert_pem);
    info->s_dn = info->i_dn = info->cert_pem = NULL;
}
