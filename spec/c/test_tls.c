/* Unit tests for core/tls.c: contexts built from certificates this test makes (an EC key
 * and X.509 certificate per name, a CA for client certificates), and server sessions over a
 * socketpair against an OpenSSL client in the same process: the handshake inside the first
 * reads, SNI choosing the certificate (wildcards, the first as fallback), what the session
 * reports (protocol, cipher, SNI, client certificate fields), the TLS 1.3 floor, plain HTTP
 * sent to the TLS side, and the load errors a config check shows. */
#include "../../core/tls.c"
#include "test.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/sg-test-tls-XXXXXX";

static EVP_PKEY *new_key(void)
{
    return EVP_EC_gen("P-256");
}

/* A certificate for `cn` with SAN `san` (NULL: none), signed by `ca`/`ca_key` or itself. */
static X509 *new_cert(EVP_PKEY *key, const char *cn, const char *san, X509 *ca, EVP_PKEY *ca_key,
                      long serial)
{
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"scgi-lua test", -1,
                               -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, ca ? X509_get_subject_name(ca) : name);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, ca ? ca : x, x, NULL, NULL, 0);
    if (san) {
        X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
        X509_add_ext(x, e, -1);
        X509_EXTENSION_free(e);
    }
    if (!ca) {
        X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "CA:TRUE");
        X509_add_ext(x, e, -1);
        X509_EXTENSION_free(e);
    }
    X509_sign(x, ca_key ? ca_key : key, EVP_sha256());
    return x;
}

static void write_pem(const char *name, X509 *x, EVP_PKEY *k, int mode)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (x)
        PEM_write_X509(f, x);
    if (k)
        PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    chmod(path, (mode_t)mode);
}

static char *path_of(const char *name)
{
    static char paths[8][256];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, 256, "%s/%s", dir, name);
    return p;
}

static EVP_PKEY *ca_key, *client_key;
static X509 *ca, *client_cert;

static void make_files(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        exit(1);
    }
    EVP_PKEY *ka = new_key(), *kb = new_key(), *kc = new_key();
    X509 *a = new_cert(ka, "a.example", "DNS:a.example,DNS:www.a.example", NULL, NULL, 1);
    X509 *b = new_cert(kb, "b.example", "DNS:*.b.example", NULL, NULL, 2);
    write_pem("a.pem", a, NULL, 0644);
    write_pem("a.key", NULL, ka, 0600);
    write_pem("b.pem", b, NULL, 0644);
    write_pem("b.key", NULL, kb, 0644); /* readable by everyone: a warning */
    write_pem("c.key", NULL, kc, 0600); /* matches neither certificate */
    write_pem("garbage.pem", NULL, NULL, 0644);
    ca_key = new_key();
    ca = new_cert(ca_key, "scgi-lua test CA", NULL, NULL, NULL, 10);
    write_pem("ca.pem", ca, NULL, 0644);
    client_key = new_key();
    client_cert = new_cert(client_key, "alice", NULL, ca, ca_key, 0x1234);
    X509_free(a);
    X509_free(b);
    EVP_PKEY_free(ka);
    EVP_PKEY_free(kb);
    EVP_PKEY_free(kc);
}

static sg_tls_cert_conf certs_ab[2];

static sg_tls_conf conf_ab(void)
{
    certs_ab[0] = (sg_tls_cert_conf){ path_of("a.pem"), path_of("a.key"), NULL };
    certs_ab[1] = (sg_tls_cert_conf){ path_of("b.pem"), path_of("b.key"), NULL };
    return (sg_tls_conf){ .certs = certs_ab, .ncerts = 2 };
}

/* ---- a session pair: the server transport over one end, an OpenSSL client on the other */

typedef struct pair {
    sg_transport srv;
    SSL_CTX *cctx;
    SSL *cli;
    int cfd;
} pair;

static void pair_open(pair *p, sg_tls_ctx *tc, const char *sni, bool client_cert_on, int client_max)
{
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    CHECK_INT(sg_tls_accept(&p->srv, sv[0], tc), SG_OK);
    p->cfd = sv[1];
    p->cctx = SSL_CTX_new(TLS_client_method());
    if (client_max)
        SSL_CTX_set_max_proto_version(p->cctx, client_max);
    if (client_cert_on) {
        SSL_CTX_use_certificate(p->cctx, client_cert);
        SSL_CTX_use_PrivateKey(p->cctx, client_key);
    }
    p->cli = SSL_new(p->cctx);
    SSL_set_fd(p->cli, sv[1]);
    if (sni)
        SSL_set_tlsext_host_name(p->cli, sni);
    static const unsigned char alpn[] = "\x02h2\x08http/1.1";
    SSL_set_alpn_protos(p->cli, alpn, sizeof alpn - 1);
    SSL_set_connect_state(p->cli);
}

/* Drives both sides until the client's handshake ends; returns the server's last read. */
static ssize_t pair_handshake(pair *p, int *client_ok)
{
    ssize_t r = SG_AGAIN;
    char buf[64];
    *client_ok = 0;
    for (int i = 0; i < 50; i++) {
        int c = SSL_do_handshake(p->cli);
        r = sg_transport_read(&p->srv, buf, sizeof buf);
        if (c == 1) {
            *client_ok = 1;
            /* TLS 1.3: the server finishes on reading the client's Finished */
            r = sg_transport_read(&p->srv, buf, sizeof buf);
            break;
        }
        int e = SSL_get_error(p->cli, c);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
            break;
        if (r == SG_ERR || r == 0)
            break;
    }
    ERR_clear_error();
    return r;
}

static void pair_close(pair *p)
{
    SSL_shutdown(p->cli); /* a session freed without close_notify is not resumable */
    sg_transport_close(&p->srv);
    SSL_free(p->cli);
    SSL_CTX_free(p->cctx);
    close(p->cfd);
}

static char *leaf_cn(SSL *ssl)
{
    static char cn[64];
    X509 *x = SSL_get1_peer_certificate(ssl);
    cn[0] = '\0';
    if (x) {
        X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn);
        X509_free(x);
    }
    return cn;
}

static void test_load_errors(void)
{
    char err[512], warn[256];
    sg_tls_conf c = conf_ab();
    sg_tls_ctx *tc = sg_tls_ctx_new(&c, err, sizeof err, warn, sizeof warn);
    CHECK(tc != NULL, "%s", err);
    CHECK(strstr(warn, "certs[2].key") && strstr(warn, "readable by every user"), "warn: %s", warn);
    sg_tls_ctx_free(tc);

    sg_tls_cert_conf bad[1] = { { path_of("a.pem"), path_of("c.key"), NULL } };
    c = (sg_tls_conf){ .certs = bad, .ncerts = 1 };
    CHECK(sg_tls_ctx_new(&c, err, sizeof err, NULL, 0) == NULL, "mismatched key accepted");
    CHECK(strstr(err, "certs[1].key") && strstr(err, "c.key"), "%s", err);

    bad[0] = (sg_tls_cert_conf){ path_of("missing.pem"), path_of("a.key"), NULL };
    CHECK(sg_tls_ctx_new(&c, err, sizeof err, NULL, 0) == NULL, "missing cert accepted");
    CHECK(strstr(err, "certs[1].cert") && strstr(err, "missing.pem"), "%s", err);

    bad[0] = (sg_tls_cert_conf){ path_of("garbage.pem"), path_of("a.key"), NULL };
    CHECK(sg_tls_ctx_new(&c, err, sizeof err, NULL, 0) == NULL, "empty cert accepted");
    CHECK(strstr(err, "certs[1].cert"), "%s", err);

    bad[0] = (sg_tls_cert_conf){ path_of("a.pem"), path_of("a.key"), NULL };
    c.ciphers = (char *)"NOT-A-CIPHER";
    CHECK(sg_tls_ctx_new(&c, err, sizeof err, NULL, 0) == NULL, "bad cipher list accepted");
    CHECK(strstr(err, "ciphers") != NULL, "%s", err);
    c.ciphers = NULL;
    c.client_ca = path_of("missing-ca.pem");
    CHECK(sg_tls_ctx_new(&c, err, sizeof err, NULL, 0) == NULL, "missing CA accepted");
    CHECK(strstr(err, "client_ca") != NULL, "%s", err);
}

static void test_sni_and_info(void)
{
    char err[512];
    sg_tls_conf c = conf_ab();
    sg_tls_ctx *tc = sg_tls_ctx_new(&c, err, sizeof err, NULL, 0);
    static const struct {
        const char *sni, *cn;
    } rows[] = {
        { "a.example", "a.example" },
        { "www.a.example", "a.example" },
        { "x.b.example", "b.example" },
        { "b.example", "a.example" }, /* "*." needs a label */
        { "y.x.b.example", "a.example" },
        { "other.example", "a.example" },
        { NULL, "a.example" },
    };
    for (size_t i = 0; i < SG_ARRAY_LEN(rows); i++) {
        CASE_BEGIN();
        pair p;
        int ok;
        pair_open(&p, tc, rows[i].sni, false, 0);
        ssize_t r = pair_handshake(&p, &ok);
        CHECK(ok && r == SG_AGAIN, "row %zu: handshake ok=%d r=%zd", i, ok, r);
        CHECK(sg_tls_established(&p.srv), "row %zu: not established", i);
        CHECK_STR(leaf_cn(p.cli), rows[i].cn);
        sg_tls_info info;
        sg_tls_get_info(&p.srv, &info);
        CHECK_STR(info.protocol, "TLSv1.3");
        CHECK(info.cipher[0] != '\0', "no cipher");
        CHECK_STR(info.sni, rows[i].sni ? rows[i].sni : "");
        CHECK_STR(info.verify, "NONE");
        CHECK(!info.client_verify_asked && !info.s_dn && !info.cert_pem, "client fields");
        sg_tls_info_free(&info);
        const unsigned char *proto;
        unsigned plen;
        SSL_get0_alpn_selected(p.cli, &proto, &plen);
        CHECK_MEM(proto, plen, "http/1.1", 8);
        pair_close(&p);
        CASE_END();
    }
    sg_tls_ctx_free(tc);
}

static void test_data_and_close(void)
{
    char err[512];
    sg_tls_conf c = conf_ab();
    sg_tls_ctx *tc = sg_tls_ctx_new(&c, err, sizeof err, NULL, 0);
    pair p;
    int ok;
    pair_open(&p, tc, "a.example", false, TLS1_2_VERSION);
    pair_handshake(&p, &ok);
    CHECK(ok, "TLS 1.2 handshake");
    sg_tls_info info;
    sg_tls_get_info(&p.srv, &info);
    CHECK_STR(info.protocol, "TLSv1.2");
    sg_tls_info_free(&info);
    /* the context may go while the session lives: the session holds a reference */
    sg_tls_ctx_free(tc);
    SSL_write(p.cli, "GET / HTTP/1.1\r\n\r\n", 18);
    char buf[64];
    ssize_t n = sg_transport_read(&p.srv, buf, 4); /* a short read leaves the rest pending */
    CHECK(n == 4 && memcmp(buf, "GET ", 4) == 0, "read %zd", n);
    CHECK(sg_transport_pending(&p.srv), "rest of the record not pending");
    n = sg_transport_read(&p.srv, buf, sizeof buf);
    CHECK_INT(n, 14);
    CHECK(!sg_transport_pending(&p.srv), "still pending");
    CHECK_INT(sg_transport_read(&p.srv, buf, sizeof buf), SG_AGAIN);
    CHECK_INT(sg_transport_caps(&p.srv), 0); /* no kTLS: neither sendfile nor splice */
    struct iovec iov[2] = { { (void *)"HTTP/1.1 200 OK\r\n", 17 }, { (void *)"\r\n", 2 } };
    CHECK_INT(sg_transport_writev(&p.srv, iov, 2), 19);
    char got[64] = { 0 };
    int gl = 0;
    for (int i = 0; i < 10 && gl < 19; i++) {
        int r = SSL_read(p.cli, got + gl, (int)sizeof got - 1 - gl);
        if (r > 0)
            gl += r;
    }
    CHECK_MEM(got, (size_t)gl, "HTTP/1.1 200 OK\r\n\r\n", 19);
    SSL_shutdown(p.cli); /* close_notify: the server reads EOF */
    CHECK_INT(sg_transport_read(&p.srv, buf, sizeof buf), 0);
    CHECK_INT(sg_transport_shutdown(&p.srv), SG_OK);
    pair_close(&p);
}

static void test_tls13_floor_and_plain_http(void)
{
    char err[512];
    sg_tls_conf c = conf_ab();
    c.tls13_only = true;
    sg_tls_ctx *tc = sg_tls_ctx_new(&c, err, sizeof err, NULL, 0);
    pair p;
    int ok;
    pair_open(&p, tc, "a.example", false, TLS1_2_VERSION);
    ssize_t r = pair_handshake(&p, &ok);
    CHECK(!ok && r == SG_ERR, "a TLS 1.2 client got in: ok=%d r=%zd", ok, r);
    bool plain = true;
    const char *why = sg_tls_failure(&p.srv, &plain);
    CHECK(why && !plain, "why %s plain %d", why ? why : "(null)", plain);
    pair_close(&p);

    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    sg_transport t;
    sg_tls_accept(&t, sv[0], tc);
    CHECK(write(sv[1], "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27) == 27, "write");
    char buf[64];
    CHECK_INT(sg_transport_read(&t, buf, sizeof buf), SG_ERR);
    why = sg_tls_failure(&t, &plain);
    CHECK(plain && why, "plain HTTP not recognised: %s", why ? why : "(null)");
    CHECK(!sg_tls_established(&t), "established");
    sg_transport_close(&t);
    close(sv[1]);
    sg_tls_ctx_free(tc);
}

static void test_client_certs(void)
{
    char err[512];
    sg_tls_cert_conf one[1] = { { path_of("a.pem"), path_of("a.key"), NULL } };
    static const struct {
        enum sg_tls_verify mode;
        bool export_pem, send_cert, connects;
        const char *verify;
    } rows[] = {
        { SG_TLS_VERIFY_REQUIRE, false, true, true, "SUCCESS" },
        { SG_TLS_VERIFY_REQUIRE, false, false, false, NULL },
        { SG_TLS_VERIFY_OPTIONAL, true, true, true, "SUCCESS" },
        { SG_TLS_VERIFY_OPTIONAL, false, false, true, "NONE" },
    };
    for (size_t i = 0; i < SG_ARRAY_LEN(rows); i++) {
        CASE_BEGIN();
        sg_tls_conf c = { .certs = one,
                          .ncerts = 1,
                          .client_ca = path_of("ca.pem"),
                          .verify_client = rows[i].mode,
                          .export_client_cert = rows[i].export_pem };
        sg_tls_ctx *tc = sg_tls_ctx_new(&c, err, sizeof err, NULL, 0);
        CHECK(tc != NULL, "%s", err);
        pair p;
        int ok;
        pair_open(&p, tc, "a.example", rows[i].send_cert, 0);
        ssize_t r = pair_handshake(&p, &ok);
        if (!rows[i].connects) {
            /* TLS 1.3: the client finishes first; the server refuses on its Finished */
            CHECK(r == SG_ERR && !sg_tls_established(&p.srv), "row %zu: got in (r=%zd)", i, r);
        } else {
            CHECK(r == SG_AGAIN && sg_tls_established(&p.srv), "row %zu: r=%zd", i, r);
            sg_tls_info info;
            sg_tls_get_info(&p.srv, &info);
            CHECK(info.client_verify_asked, "row %zu: verify not asked", i);
            CHECK_STR(info.verify, rows[i].verify);
            if (rows[i].send_cert) {
                CHECK(info.s_dn && strstr(info.s_dn, "CN=alice"), "s_dn %s",
                      info.s_dn ? info.s_dn : "(null)");
                CHECK(info.i_dn && strstr(info.i_dn, "CN=scgi-lua test CA"), "i_dn");
                CHECK_STR(info.serial, "1234");
                CHECK((info.cert_pem != NULL) == rows[i].export_pem, "row %zu: pem", i);
                if (info.cert_pem)
                    CHECK(strncmp(info.cert_pem, "-----BEGIN CERTIFICATE-----", 27) == 0, "pem");
            }
            sg_tls_info_free(&info);
        }
        pair_close(&p);
        sg_tls_ctx_free(tc);
        CASE_END();
    }
}

/* TLS 1.3 tickets arrive after the handshake: the client reads once to take them. */
static SSL_SESSION *take_session(pair *p)
{
    char buf[16];
    sg_transport_write(&p->srv, "x", 1);
    for (int i = 0; i < 10 && SSL_read(p->cli, buf, sizeof buf) <= 0; i++)
        ;
    return SSL_get1_session(p->cli);
}

/* A ticket from one context resumes on another one: another worker, or a reload's. */
static void test_resumption(void)
{
    char err[512];
    sg_tls_conf c = conf_ab();
    sg_tls_ctx *first = sg_tls_ctx_new(&c, err, sizeof err, NULL, 0);
    sg_tls_ctx *second = sg_tls_ctx_new(&c, err, sizeof err, NULL, 0);
    for (int v = 0; v < 2; v++) {
        int max = v ? TLS1_2_VERSION : 0;
        pair p;
        int ok;
        pair_open(&p, first, "a.example", false, max);
        pair_handshake(&p, &ok);
        SSL_SESSION *sess = take_session(&p);
        CHECK(ok && sess && SSL_SESSION_is_resumable(sess), "v%d: no resumable session", v);
        CHECK(!SSL_session_reused(p.cli), "v%d: first handshake reused", v);
        pair_close(&p);
        pair_open(&p, second, "a.example", false, max);
        SSL_set_session(p.cli, sess);
        pair_handshake(&p, &ok);
        CHECK(ok && SSL_session_reused(p.cli), "v%d: not resumed on the second context", v);
        SSL_SESSION_free(sess);
        pair_close(&p);
    }
    sg_tls_ctx_free(first);
    sg_tls_ctx_free(second);
}

/* OCSP stapling: a client asking for status gets the configured bytes, for the SNI-chosen
 * certificate; a file that is not DER is refused at load. */
static void test_ocsp_staple(void)
{
    static const unsigned char der[] = { 0x30, 0x03, 0x0a, 0x01, 0x06 };
    FILE *f = fopen(path_of("ocsp.der"), "wb");
    fwrite(der, 1, sizeof der, f);
    fclose(f);
    f = fopen(path_of("ocsp.pem"), "w");
    fputs("-----BEGIN OCSP RESPONSE-----\n", f);
    fclose(f);
    char err[512];
    sg_tls_cert_conf certs[2] = { { path_of("a.pem"), path_of("a.key"), NULL },
                                  { path_of("b.pem"), path_of("b.key"), path_of("ocsp.der") } };
    sg_tls_conf c = { .certs = certs, .ncerts = 2 };
    sg_tls_ctx *tc = sg_tls_ctx_new(&c, err, sizeof err, NULL, 0);
    CHECK(tc != NULL, "%s", err);
    for (int with = 0; with < 2; with++) {
        pair p;
        int ok;
        pair_open(&p, tc, with ? "x.b.example" : "a.example", false, 0);
        SSL_set_tlsext_status_type(p.cli, TLSEXT_STATUSTYPE_ocsp);
        pair_handshake(&p, &ok);
        const unsigned char *resp = NULL;
        long len = SSL_get_tlsext_status_ocsp_resp(p.cli, &resp);
        if (with)
            CHECK(ok && len == (long)sizeof der && memcmp(resp, der, sizeof der) == 0,
                  "stapled %ld bytes", len);
        else
            CHECK(ok && len <= 0, "a.example has no staple, got %ld bytes", len);
        pair_close(&p);
    }
    sg_tls_ctx_free(tc);
    certs[1].ocsp = path_of("ocsp.pem");
    CHECK(sg_tls_ctx_new(&c, err, sizeof err, NULL, 0) == NULL, "a PEM staple accepted");
    CHECK(strstr(err, "certs[2].ocsp") && strstr(err, "not a DER"), "%s", err);
    certs[1].ocsp = path_of("missing.der");
    CHECK(sg_tls_ctx_new(&c, err, sizeof err, NULL, 0) == NULL, "a missing staple accepted");
    CHECK(strstr(err, "certs[2].ocsp") && strstr(err, "missing.der"), "%s", err);
}

static void cleanup(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
    X509_free(ca);
    X509_free(client_cert);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(client_key);
}

int main(void)
{
    make_files();
    RUN(test_load_errors);
    test_sni_and_info();
    RUN(test_data_and_close);
    RUN(test_tls13_floor_and_plain_http);
    test_client_certs();
    RUN(test_resumption);
    RUN(test_ocsp_staple);
    cleanup();
    return test_report("tls");
}
