/* Unit tests for core/cgivars.c: the variable set of one request, built from a head parsed
 * by the real parser, a route and a backend, with no Lua (env entries with fixed values;
 * env functions are covered end to end by the integration specs). */
#include "../../core/cgivars.c"
#include "test.h"

#include "http.h"

typedef struct fixture {
    sg_http http;
    sg_request req;
    sg_route rt;
    sg_backend be;
    sg_client cl;
    sg_scgi_vars v;
    sg_buf err;
} fixture;

static void on_body(void *ud, const char *data, size_t len)
{
    (void)ud;
    (void)data;
    (void)len;
}

static void fx_init(fixture *f, const char *head, const char *prefix, const char *url_path)
{
    memset(f, 0, sizeof *f);
    sg_request_init(&f->req);
    sg_http_init(&f->http, 8192, 64, on_body, NULL);
    sg_http_start(&f->http, &f->req);
    int events = 0, status = 0;
    const char *err = NULL;
    long n = sg_http_feed(&f->http, head, strlen(head), &events, &status, &err);
    CHECK(n > 0 && (events & SG_HTTP_HEAD), "head did not parse: %s", err ? err : "?");
    f->rt.path = (char *)prefix;
    f->rt.path_len = prefix ? strlen(prefix) : 0;
    f->rt.pass_auth = true;
    f->be.url_path = (char *)url_path;
    snprintf(f->cl.remote_addr, sizeof f->cl.remote_addr, "192.0.2.7");
    f->cl.remote_port = 5555;
    snprintf(f->cl.server_addr, sizeof f->cl.server_addr, "127.0.0.1");
    f->cl.server_port = 8080;
    sg_scgi_vars_init(&f->v);
    sg_buf_init(&f->err);
}

static void fx_free(fixture *f)
{
    sg_scgi_vars_free(&f->v);
    sg_buf_free(&f->err);
    sg_request_free(&f->req);
}

static int build(fixture *f, const char *orig_uri)
{
    sg_cgi_vars_in in = { .req = &f->req,
                          .route = &f->rt,
                          .be = &f->be,
                          .client = &f->cl,
                          .hook = NULL,
                          .orig_uri = orig_uri,
                          .orig_uri_len = orig_uri ? strlen(orig_uri) : 0 };
    return sg_cgi_vars_build(&f->v, &in, &f->err);
}

static const char *get(const fixture *f, const char *name)
{
    static char out[512];
    size_t len;
    const char *v = sg_scgi_get(&f->v, name, &len);
    if (!v)
        return NULL;
    snprintf(out, sizeof out, "%.*s", (int)len, v);
    return out;
}

#define CHECK_VAR(f, name, want)                                                                   \
    do {                                                                                           \
        const char *got_ = get((f), (name));                                                       \
        CHECK(got_ &&strcmp(got_, (want)) == 0, "%s = %s, expected %s", (name),                    \
              got_ ? got_ : "(absent)", (want));                                                   \
    } while (0)
#define CHECK_ABSENT(f, name)                                                                      \
    CHECK(get((f), (name)) == NULL, "%s present: %s", (name), get((f), (name)))

static void test_cgi_set(void)
{
    fixture f;
    fx_init(&f,
            "POST /app/x?q=1 HTTP/1.1\r\nHost: example.org:8080\r\nContent-Type: text/plain\r\n"
            "Content-Length: 3\r\nCookie: a=1\r\nCookie: b=2\r\nX-Many: 1\r\nX-Many: 2\r\n\r\n",
            "/app/", "/");
    CHECK_INT(build(&f, NULL), SG_OK);
    CHECK_VAR(&f, "REQUEST_METHOD", "POST");
    CHECK_VAR(&f, "REQUEST_URI", "/app/x?q=1");
    CHECK_VAR(&f, "QUERY_STRING", "q=1");
    CHECK_VAR(&f, "SCRIPT_NAME", "/app/x");
    CHECK_VAR(&f, "SERVER_PROTOCOL", "HTTP/1.1");
    CHECK_VAR(&f, "SERVER_NAME", "example.org");
    CHECK_VAR(&f, "SERVER_PORT", "8080");
    CHECK_VAR(&f, "REMOTE_ADDR", "192.0.2.7");
    CHECK_VAR(&f, "REMOTE_PORT", "5555");
    CHECK_VAR(&f, "CONTENT_TYPE", "text/plain");
    CHECK_VAR(&f, "HTTP_COOKIE", "a=1; b=2"); /* RFC 6265: one Cookie header, "; " */
    CHECK_VAR(&f, "HTTP_X_MANY", "1, 2");
    CHECK_ABSENT(&f, "HTTP_CONTENT_LENGTH"); /* framing is the gateway's */
    CHECK_ABSENT(&f, "HTTP_CONTENT_TYPE");
    CHECK_ABSENT(&f, "REDIRECT_STATUS");
    fx_free(&f);
}

static void test_pathinfo_and_redirect(void)
{
    fixture f;
    fx_init(&f, "GET /app/a/b HTTP/1.0\r\n\r\n", "/app/", "/base/");
    f.rt.pathinfo = true;
    CHECK_INT(build(&f, "/orig?x"), SG_OK);
    CHECK_VAR(&f, "SCRIPT_NAME", "/app");
    CHECK_VAR(&f, "PATH_INFO", "/base/a/b");
    CHECK_VAR(&f, "SERVER_PROTOCOL", "HTTP/1.0");
    CHECK_VAR(&f, "SERVER_NAME", "127.0.0.1"); /* no Host: the local address */
    CHECK_VAR(&f, "REDIRECT_STATUS", "200");
    CHECK_VAR(&f, "REDIRECT_REQUEST_URI", "/orig?x");
    CHECK_ABSENT(&f, "REDIRECT_URL");
    fx_free(&f);
}

static void test_headers_dropped(void)
{
    fixture f;
    fx_init(&f,
            "GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Basic x\r\nProxy: evil\r\n"
            "X_Under: 1\r\nExpect: 100-continue\r\nTE: trailers\r\n\r\n",
            "/", "/");
    f.rt.pass_auth = false;
    CHECK_INT(build(&f, NULL), SG_OK);
    CHECK_ABSENT(&f, "HTTP_AUTHORIZATION");
    CHECK_ABSENT(&f, "HTTP_PROXY"); /* httpoxy */
    CHECK_ABSENT(&f, "HTTP_X_UNDER");
    CHECK_ABSENT(&f, "HTTP_EXPECT");
    CHECK_ABSENT(&f, "HTTP_TE");
    fx_free(&f);
    fx_init(&f, "GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Basic x\r\n\r\n", "/", "/");
    CHECK_INT(build(&f, NULL), SG_OK);
    CHECK_VAR(&f, "HTTP_AUTHORIZATION", "Basic x");
    fx_free(&f);
}

static void test_env_entries(void)
{
    fixture f;
    fx_init(&f, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", "/", "/");
    sg_env_entry env[3] = {
        { .name = (char *)"APP_ENV", .name_len = 7, .value = (char *)"prod", .value_len = 4 },
        { .name = (char *)"REMOTE_ADDR",
          .name_len = 11,
          .value = (char *)"10.0.0.1",
          .value_len = 8 },
        { .name = (char *)"SERVER_SOFTWARE", .name_len = 15 }, /* no value: removed */
    };
    f.rt.env = env;
    f.rt.nenv = 3;
    CHECK_INT(build(&f, NULL), SG_OK);
    CHECK_VAR(&f, "APP_ENV", "prod");
    CHECK_VAR(&f, "REMOTE_ADDR", "10.0.0.1"); /* env overrides a CGI variable */
    CHECK_ABSENT(&f, "SERVER_SOFTWARE");
    CHECK_INT(f.err.len, 0);
    fx_free(&f);
}

static void test_tls_vars(void)
{
    fixture f;
    fx_init(&f, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", "/", "/");
    sg_tls_info t = { .protocol = "TLSv1.3", .client_verify_asked = true };
    snprintf(t.cipher, sizeof t.cipher, "TLS_AES_128_GCM_SHA256");
    snprintf(t.sni, sizeof t.sni, "a.example");
    snprintf(t.verify, sizeof t.verify, "SUCCESS");
    snprintf(t.serial, sizeof t.serial, "1234");
    t.s_dn = (char *)"CN=alice";
    t.i_dn = (char *)"CN=ca";
    t.cert_pem = (char *)"-----BEGIN CERTIFICATE-----\n";
    f.cl.tls = &t;
    CHECK_INT(build(&f, NULL), SG_OK);
    CHECK_VAR(&f, "HTTPS", "on");
    CHECK_VAR(&f, "REQUEST_SCHEME", "https");
    CHECK_VAR(&f, "SSL_PROTOCOL", "TLSv1.3");
    CHECK_VAR(&f, "SSL_CIPHER", "TLS_AES_128_GCM_SHA256");
    CHECK_VAR(&f, "SSL_TLS_SNI", "a.example");
    CHECK_VAR(&f, "SSL_CLIENT_VERIFY", "SUCCESS");
    CHECK_VAR(&f, "SSL_CLIENT_S_DN", "CN=alice");
    CHECK_VAR(&f, "SSL_CLIENT_I_DN", "CN=ca");
    CHECK_VAR(&f, "SSL_CLIENT_M_SERIAL", "1234");
    CHECK_VAR(&f, "SSL_CLIENT_CERT", "-----BEGIN CERTIFICATE-----\n");
    fx_free(&f);
    /* no SNI, no client certificates asked for: those variables are absent */
    fx_init(&f, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", "/", "/");
    sg_tls_info u = { .protocol = "TLSv1.2" };
    snprintf(u.verify, sizeof u.verify, "NONE");
    f.cl.tls = &u;
    CHECK_INT(build(&f, NULL), SG_OK);
    CHECK_VAR(&f, "HTTPS", "on");
    CHECK_ABSENT(&f, "SSL_TLS_SNI");
    CHECK_ABSENT(&f, "SSL_CLIENT_VERIFY");
    CHECK_ABSENT(&f, "SSL_CLIENT_S_DN");
    fx_free(&f);
    /* and a plain connection has neither HTTPS nor SSL_* */
    fx_init(&f, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", "/", "/");
    CHECK_INT(build(&f, NULL), SG_OK);
    CHECK_VAR(&f, "REQUEST_SCHEME", "http");
    CHECK_ABSENT(&f, "HTTPS");
    CHECK_ABSENT(&f, "SSL_PROTOCOL");
    fx_free(&f);
}

int main(void)
{
    RUN(test_tls_vars);
    RUN(test_cgi_set);
    RUN(test_pathinfo_and_redirect);
    RUN(test_headers_dropped);
    RUN(test_env_entries);
    return test_report("cgivars");
}
