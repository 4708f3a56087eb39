/* Unit tests for core/scgi.c: golden netstring bytes and the CGI response head parser,
 * each head also fed split at every offset. */
#include "../../core/scgi.c"
#include "test.h"

static void test_netstring_golden(void)
{
    sg_scgi_vars v;
    sg_buf out;
    sg_scgi_vars_init(&v);
    sg_buf_init(&out);
    sg_scgi_set_str(&v, "REQUEST_METHOD", "POST");
    sg_scgi_set_str(&v, "CONTENT_LENGTH", "999"); /* user value: ignored */
    sg_scgi_set_str(&v, "SCGI", "2");             /* user value: ignored */
    sg_scgi_set_str(&v, "QUERY_STRING", "");
    sg_scgi_encode(&v, 27, &out);
    static const char want[] = "59:CONTENT_LENGTH\0"
                               "27\0SCGI\0"
                               "1\0REQUEST_METHOD\0POST\0"
                               "QUERY_STRING\0\0,";
    CHECK_MEM(sg_buf_head(&out), out.len, want, sizeof want - 1);
    CHECK_INT(sg_netstring_size(59), 63);
    sg_buf_free(&out);
    sg_scgi_vars_free(&v);
}

static void test_vars_rules(void)
{
    sg_scgi_vars v;
    sg_buf out;
    sg_scgi_vars_init(&v);
    sg_buf_init(&out);
    sg_scgi_set_str(&v, "A", "1");
    sg_scgi_set_str(&v, "B", "2");
    sg_scgi_set_str(&v, "A", "3"); /* replaces in place: no duplicate */
    sg_scgi_join(&v, "C", 1, "x", 1, ", ");
    sg_scgi_join(&v, "C", 1, "y", 1, ", ");
    sg_scgi_remove(&v, "B", 1);
    sg_scgi_set(&v, "N", 1, "a\0b", 3); /* NUL cut: framing intact */
    sg_scgi_encode(&v, 0, &out);
    static const char want[] = "39:CONTENT_LENGTH\0"
                               "0\0SCGI\0"
                               "1\0A\0"
                               "3\0C\0x, y\0N\0a\0,";
    CHECK_MEM(sg_buf_head(&out), out.len, want, sizeof want - 1);
    size_t len;
    CHECK_STR(sg_scgi_get(&v, "C", &len), "x, y");
    CHECK(sg_scgi_get(&v, "B", NULL) == NULL, "removed variable still visible");
    char name[64];
    CHECK_INT(sg_scgi_http_name("X-Forwarded-For", 15, name), 20);
    CHECK_STR(name, "HTTP_X_FORWARDED_FOR");
    CHECK_INT(sg_scgi_http_name("X_Evil", 6, name), 0);
    CHECK_INT(sg_scgi_http_name("X Evil", 6, name), 0);
    sg_buf_free(&out);
    sg_scgi_vars_free(&v);
}

struct head_case {
    const char *in;
    int rc; /* SG_OK / SG_ERR from the parser */
    int status;
    long long cl;
    int nheaders;
    const char *first_name, *first_value;
};

static const struct head_case cases[] = {
    { "Status: 201 Created\r\nContent-Type: text/plain\r\n\r\n", SG_OK, 201, -1, 1, "Content-Type",
      "text/plain" },
    { "Content-Type: text/html\n\n", SG_OK, 200, -1, 1, "Content-Type", "text/html" },
    { "Location: http://example.com/\r\n\r\n", SG_OK, 302, -1, 1, "Location",
      "http://example.com/" },
    { "Location: /local\r\n\r\n", SG_OK, 200, -1, 1, "Location", "/local" },
    { "Status: 301\r\nLocation: http://x/\r\n\r\n", SG_OK, 301, -1, 1, "Location", "http://x/" },
    { "HTTP/1.1 404 Not Found\r\nX-A: b\r\n\r\n", SG_OK, 404, -1, 1, "X-A", "b" },
    { "HTTP/1.0 200 OK\nContent-Length: 5\n\n", SG_OK, 200, 5, 1, "Content-Length", "5" },
    { "Content-Length: 12\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n", SG_OK, 200,
      12, 1, "Content-Length", "12" },
    { "X-Spaces:   padded   \r\n\r\n", SG_OK, 200, -1, 1, "X-Spaces", "padded" },
    { "\r\n", SG_OK, 200, -1, 0, NULL, NULL },
    { "Status: abc\r\n\r\n", SG_ERR, 0, 0, 0, NULL, NULL },
    { "Status: 99\r\n\r\n", SG_ERR, 0, 0, 0, NULL, NULL },
    { "Status: 600 Too High\r\n\r\n", SG_ERR, 0, 0, 0, NULL, NULL },
    { "Status: 2000\r\n\r\n", SG_ERR, 0, 0, 0, NULL, NULL },
    { "no colon here\r\n\r\n", SG_ERR, 0, 0, 0, NULL, NULL },
    { ": empty name\r\n\r\n", SG_ERR, 0, 0, 0, NULL, NULL },
    { "Bad Name: x\r\n\r\n", SG_ERR, 0, 0, 0, NULL, NULL },
    { "Content-Length: 1\r\nContent-Length: 2\r\n\r\n", SG_ERR, 0, 0, 0, NULL, NULL },
    { "Content-Length: -1\r\n\r\n", SG_ERR, 0, 0, 0, NULL, NULL },
    { "Status: 200\r\nStatus: 201\r\n\r\n", SG_ERR, 0, 0, 0, NULL, NULL },
    /* interim heads parse like any other; exchange.c decides what a 1xx means */
    { "Status: 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n", SG_OK, 103, -1, 1, "Link",
      "</a.css>; rel=preload" },
    { "HTTP/1.1 100 Continue\r\n\r\n", SG_OK, 100, -1, 0, NULL, NULL },
    /* control bytes other than tab never reach a client */
    { "X-Tab: a\tb\r\n\r\n", SG_OK, 200, -1, 1, "X-Tab", "a\tb" },
    { "X-Obs: caf\xc3\xa9\r\n\r\n", SG_OK, 200, -1, 1, "X-Obs", "caf\xc3\xa9" },
    { "X-Bad: a\x01"
      "b\r\n\r\n",
      SG_ERR, 0, 0, 0, NULL, NULL },
    { "X-Bad: a\x1b[31mred\r\n\r\n", SG_ERR, 0, 0, 0, NULL, NULL },
    { "X-Bad: a\x7f"
      "b\r\n\r\n",
      SG_ERR, 0, 0, 0, NULL, NULL },
    { "X-Bad: a\x0b"
      "b\r\n\r\n",
      SG_ERR, 0, 0, 0, NULL, NULL },
    { "Status: 200 O\x7fK\r\n\r\n", SG_ERR, 0, 0, 0, NULL, NULL },
    { "Status: 200 O\x1bK\r\n\r\n", SG_ERR, 0, 0, 0, NULL, NULL },
    { "HTTP/1.1 200 O\x7fK\r\n\r\n", SG_ERR, 0, 0, 0, NULL, NULL },
    /* names a Connection header lists are hop-by-hop, wherever they stand */
    { "X-Hop: 1\r\nConnection: x-hop, close\r\nX-Keep: 2\r\n\r\n", SG_OK, 200, -1, 1, "X-Keep",
      "2" },
    { "Connection: X-A\r\nX-Keep: 1\r\nX-A: 1\r\nConnection: X-B\r\nX-B: 2\r\n\r\n", SG_OK, 200, -1,
      1, "X-Keep", "1" },
    { "Connection: close\r\nX-Keep: 1\r\n\r\n", SG_OK, 200, -1, 1, "X-Keep", "1" },
};

static void test_head_cases(void)
{
    for (size_t i = 0; i < SG_ARRAY_LEN(cases); i++) {
        const struct head_case *t = &cases[i];
        CASE_BEGIN();
        size_t len = strlen(t->in);
        /* feed the bytes split at every offset: the end must be found exactly once */
        for (size_t split = 0; split <= len; split++) {
            size_t scan = 0;
            long end = sg_cgi_head_end(t->in, split, &scan, 16384);
            if (split < len)
                CHECK(end == SG_AGAIN, "case %zu split %zu: early end %ld", i, split, end);
            end = sg_cgi_head_end(t->in, len, &scan, 16384);
            CHECK(end == (long)len, "case %zu split %zu: end %ld", i, split, end);
        }
        sg_cgi_head h;
        const char *err = NULL;
        int rc = sg_cgi_parse(t->in, len, &h, &err);
        CHECK(rc == t->rc, "case %zu (%s): rc %d err %s", i, t->in, rc, err ? err : "-");
        if (rc != SG_OK || t->rc != SG_OK) {
            CASE_END();
            continue;
        }
        CHECK_INT(h.status, t->status);
        CHECK_INT(h.content_length, t->cl);
        CHECK_INT(h.nheaders, t->nheaders);
        if (t->first_name && h.nheaders) {
            CHECK_MEM(h.headers[0].name, h.headers[0].name_len, t->first_name,
                      strlen(t->first_name));
            CHECK_MEM(h.headers[0].value, h.headers[0].value_len, t->first_value,
                      strlen(t->first_value));
        }
        CASE_END();
    }
}

/* One rule for "no body" (RFC 9110 §6.4.1, RFC 9112 §6.3): 1xx, 204 and 304 carry neither a
 * body nor framing headers; a HEAD response carries no body but keeps its Content-Length. */
static void test_no_body_rule(void)
{
    static const int without[] = { 100, 101, 102, 103, 150, 199, 204, 304 };
    static const int with[] = { 200, 201, 205, 206, 301, 302, 303, 307, 400, 404, 500, 502, 599 };
    for (size_t i = 0; i < SG_ARRAY_LEN(without); i++) {
        CHECK(!sg_http_status_has_body(without[i]), "%d has a body", without[i]);
        CHECK(!sg_http_response_has_body(without[i], false), "%d GET has a body", without[i]);
        CHECK(!sg_http_response_has_body(without[i], true), "%d HEAD has a body", without[i]);
    }
    for (size_t i = 0; i < SG_ARRAY_LEN(with); i++) {
        CHECK(sg_http_status_has_body(with[i]), "%d has no body", with[i]);
        CHECK(sg_http_response_has_body(with[i], false), "%d GET has no body", with[i]);
        CHECK(!sg_http_response_has_body(with[i], true), "%d HEAD has a body", with[i]);
    }
}

/* A Connection-listed Location is gone, and with it the CGI redirect rule it would trigger. */
static void test_connection_listed(void)
{
    const char *in = "Location: http://elsewhere/\r\nConnection: Location\r\nX-A: 1\r\n\r\n";
    sg_cgi_head h;
    const char *err = NULL;
    CHECK_INT(sg_cgi_parse(in, strlen(in), &h, &err), SG_OK);
    CHECK(h.location == NULL, "listed Location kept");
    CHECK_INT(h.status, 200);
    CHECK_INT(h.nheaders, 1);
    /* more Connection lines than the parser tracks: refused, never half-applied */
    char many[1024];
    size_t o = 0;
    for (int i = 0; i < 20; i++)
        o += (size_t)snprintf(many + o, sizeof many - o, "Connection: X-%d\r\n", i);
    o += (size_t)snprintf(many + o, sizeof many - o, "\r\n");
    CHECK_INT(sg_cgi_parse(many, o, &h, &err), SG_ERR);
}

static void test_head_limits(void)
{
    char big[20000];
    memset(big, 'a', sizeof big);
    memcpy(big, "X-Big: ", 7);
    size_t scan = 0;
    CHECK_INT(sg_cgi_head_end(big, sizeof big, &scan, 16384), SG_ERR);
    /* body bytes after the head are not part of it */
    const char *r = "A: b\n\nbody\n\nmore";
    scan = 0;
    CHECK_INT(sg_cgi_head_end(r, strlen(r), &scan, 16384), 6);
    CHECK_STR(sg_http_reason(502), "Bad Gateway");
    CHECK_STR(sg_http_reason(103), "Early Hints");
}

/* the one-pass sg_strieq against the strlen + strncasecmp definition it replaced */
static void test_strieq_fmt(void)
{
    static const char *a[] = {
        "Host", "host",           "HOST",           "Hos", "Hostx", "H\0st", "", "@", "`", "[",
        "{",    "Content-Length", "content-lengtH", "TE",  "te"
    };
    static const char *b[] = { "Host", "", "@", "{", "Content-Length", "TE", "Hos" };
    for (size_t i = 0; i < SG_ARRAY_LEN(a); i++)
        for (size_t j = 0; j < SG_ARRAY_LEN(b); j++) {
            size_t alen = i == 5 ? 5 : strlen(a[i]); /* "H\0st": 5 bytes, a NUL inside */
            int want = strlen(b[j]) == alen && strncasecmp(a[i], b[j], alen) == 0;
            CHECK_INT(sg_strieq(a[i], alen, b[j]), want);
        }
    static const unsigned long long nums[] = {
        0, 7, 9, 10, 42, 99, 100, 101, 999, 1000, 65535, 1234567890123ull, 18446744073709551615ull
    };
    for (size_t i = 0; i < SG_ARRAY_LEN(nums); i++) {
        char got[32], want[32];
        size_t n = sg_fmt_u64(got, nums[i], 10);
        snprintf(want, sizeof want, "%llu", nums[i]);
        CHECK_MEM(got, n, want, strlen(want));
        n = sg_fmt_u64(got, nums[i], 16);
        snprintf(want, sizeof want, "%llx", nums[i]);
        CHECK_MEM(got, n, want, strlen(want));
    }
}

/* control bytes are found wherever they stand in a line (the check reads 8 bytes at a time);
 * a tab is allowed, 0x7f and obs-text 0x80+ are told apart */
static void test_head_ctl_positions(void)
{
    for (size_t pos = 0; pos < 20; pos++) {
        for (int k = 0; k < 4; k++) {
            static const char bytes[] = { '\x01', '\t', '\x7f', '\xe9' };
            char line[64];
            memcpy(line, "X-Long-Name: abcdefghijklmnopqrstuvwxyz", 39);
            line[13 + pos] = bytes[k];
            char head[128];
            int n = snprintf(head, sizeof head, "Status: 200 OK\r\n%.*s\r\n\r\n", 39, line);
            sg_cgi_head h;
            const char *err = NULL;
            int rc = sg_cgi_parse(head, (size_t)n, &h, &err);
            CHECK_INT(rc, (k == 0 || k == 2) ? SG_ERR : SG_OK);
        }
    }
}

int main(void)
{
    RUN(test_netstring_golden);
    RUN(test_vars_rules);
    RUN(test_strieq_fmt);
    RUN(test_head_ctl_positions);
    test_head_cases();
    RUN(test_head_limits);
    RUN(test_no_body_rule);
    RUN(test_connection_listed);
    return test_report("test_scgi");
}
