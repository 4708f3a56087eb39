/* Unit tests for core/http.c: raw requests parsed whole and split at every offset (as
 * http-parser's own test_scan), framing errors, path normalisation, chunked decoding. */
#include "../../core/http.c"
#include "test.h"

struct req_case {
    const char *raw;
    int status;            /* 0: parses; else the error status */
    const char *method, *path, *query;
    long long content_length;
    int chunked;
    const char *body;      /* de-chunked body expected */
};

static const struct req_case cases[] = {
    { "GET /a/b?x=1 HTTP/1.1\r\nHost: h\r\n\r\n", 0, "GET", "/a/b", "x=1", -1, 0, "" },
    { "GET /a%20b/../c/./d HTTP/1.1\r\nHost: h:80\r\n\r\n", 0, "GET", "/c/d", "", -1, 0, "" },
    { "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello", 0, "POST", "/p", "", 5, 0, "hello" },
    { "POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n",
      0, "POST", "/p", "", -1, 1, "hello world" },
    { "GET http://example.com/abs?q HTTP/1.1\r\nHost: example.com\r\n\r\n", 0, "GET", "/abs", "q", -1, 0, "" },
    { "GET / HTTP/1.0\r\n\r\n", 0, "GET", "/", "", -1, 0, "" },
    { "HEAD /h HTTP/1.1\r\nHost: h\r\n\r\n", 0, "HEAD", "/h", "", -1, 0, "" },
    /* framing errors (RFC 9112 §6) */
    { "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400, 0, 0, 0, 0, 0, 0 },
    { "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400, 0, 0, 0, 0, 0, 0 },
    { "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: x\r\n\r\n", 400, 0, 0, 0, 0, 0, 0 },
    { "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 400, 0, 0, 0, 0, 0, 0 },
    { "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, 0, 0, 0, 0, 0, 0 },
    { "GET / HTTP/1.1\r\n\r\n", 400, 0, 0, 0, 0, 0, 0 },                       /* no Host */
    { "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, 0, 0, 0, 0, 0, 0 },
    { "GET /../etc HTTP/1.1\r\nHost: h\r\n\r\n", 400, 0, 0, 0, 0, 0, 0 },
    { "GET /a%00b HTTP/1.1\r\nHost: h\r\n\r\n", 400, 0, 0, 0, 0, 0, 0 },
    { "GET /a%zz HTTP/1.1\r\nHost: h\r\n\r\n", 400, 0, 0, 0, 0, 0, 0 },
    { "BREW / HTTP/1.1\r\nHost: h\r\n\r\n", 400, 0, 0, 0, 0, 0, 0 },
    { "GET / HTTP/1.1\r\nHost: h\r\nX: a\x01z\r\n\r\n", 400, 0, 0, 0, 0, 0, 0 },
    /* chunk framing http-parser tolerates but a strict peer would read differently */
#define CHUNKED "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    { CHUNKED "5\r\nhelloXY0\r\n\r\n", 400, 0, 0, 0, 0, 0, 0 },         /* data not ended by CRLF */
    { CHUNKED "5;a\nb\r\nhello\r\n0\r\n\r\n", 400, 0, 0, 0, 0, 0, 0 }, /* bare LF in extension */
    { CHUNKED "5 xyz\r\nhello\r\n0\r\n\r\n", 400, 0, 0, 0, 0, 0, 0 },   /* junk after the size */
    { CHUNKED "5\rXhello\r\n0\r\n\r\n", 400, 0, 0, 0, 0, 0, 0 },        /* CR without LF */
    { CHUNKED "5\r\nhello\r\n0\r\n\rX", 400, 0, 0, 0, 0, 0, 0 },        /* final CR then any byte */
    { CHUNKED "5\r\nhello\r\n0\r\nX Y: z\r\n\r\n", 400, 0, 0, 0, 0, 0, 0 }, /* trailer name */
    { CHUNKED "5;a=\"b c\"\r\nhello\r\n0\r\nX-T: v\r\n\r\n", 0, "POST", "/", "", -1, 1, "hello" },
};

static sg_buf body;

static void collect(void *ud, const char *data, size_t len)
{
    (void)ud;
    sg_buf_append(&body, data, len);
}

/* Feeds raw in two pieces split at `split`; returns 0 or the error status. */
static int parse(const char *raw, size_t len, size_t split, sg_request *r, int *done)
{
    sg_http h;
    sg_http_init(&h, 16384, 100, collect, NULL);
    sg_http_start(&h, r);
    sg_buf_reset(&body);
    *done = 0;
    size_t off = 0;
    size_t ends[2] = { split, len };
    for (int piece = 0; piece < 2; piece++) {
        while (off < ends[piece]) {
            int events, status = 0;
            const char *err;
            long n = sg_http_feed(&h, raw + off, ends[piece] - off, &events, &status, &err);
            if (n < 0)
                return status;
            if (events & SG_HTTP_DONE)
                *done = 1;
            off += (size_t)n;
            if (n == 0 && !events)
                break;
            if (*done)
                return 0;
        }
    }
    return 0;
}

static void test_cases(void)
{
    sg_request r;
    sg_request_init(&r);
    sg_buf_init(&body);
    for (size_t i = 0; i < SG_ARRAY_LEN(cases); i++) {
        const struct req_case *t = &cases[i];
        size_t len = strlen(t->raw);
        CASE_BEGIN();
        for (size_t split = 0; split <= len; split++) {
            int done;
            int st = parse(t->raw, len, split, &r, &done);
            CHECK(st == t->status, "case %zu split %zu: status %d, want %d", i, split, st, t->status);
            if (st || t->status)
                continue;
            CHECK(done, "case %zu split %zu: message not complete", i, split);
            CHECK_STR(r.method, t->method);
            CHECK_STR(r.path, t->path);
            CHECK_MEM(r.query, r.query_len, t->query, strlen(t->query));
            CHECK_INT(r.content_length, t->content_length);
            CHECK_INT(r.chunked, t->chunked);
            CHECK_MEM(sg_buf_head(&body), body.len, t->body, strlen(t->body));
        }
        CASE_END();
    }
    sg_request_free(&r);
    sg_buf_free(&body);
}

static void test_headers_and_limits(void)
{
    sg_request r;
    sg_request_init(&r);
    sg_buf_init(&body);
    const char *raw = "GET / HTTP/1.1\r\nHost: [::1]:8080\r\nCookie: a=1\r\nX-Empty:\r\n"
                      "Expect: 100-continue\r\n\r\n";
    int done;
    CHECK_INT(parse(raw, strlen(raw), 7, &r, &done), 0);
    CHECK_MEM(r.host, r.host_len, "[::1]", 5);
    CHECK_INT(r.nheaders, 4);
    CHECK_STR(r.headers[2].name, "X-Empty");
    CHECK_INT(r.headers[2].value_len, 0);
    CHECK(r.expect_continue, "expect flag");
    sg_request_free(&r);

    /* too many headers and too large a head: 431 */
    sg_buf big;
    sg_buf_init(&big);
    sg_buf_append_str(&big, "GET / HTTP/1.1\r\nHost: h\r\n");
    for (int i = 0; i < 150; i++)
        sg_buf_appendf(&big, "X-%d: v\r\n", i);
    sg_buf_append_str(&big, "\r\n");
    sg_request_init(&r);
    CHECK_INT(parse(sg_buf_head(&big), big.len, big.len, &r, &done), 431);
    sg_buf_reset(&big);
    sg_buf_append_str(&big, "GET / HTTP/1.1\r\nHost: h\r\nX-Big: ");
    for (int i = 0; i < 20000; i++)
        sg_buf_append(&big, "a", 1);
    sg_buf_append_str(&big, "\r\n\r\n");
    CHECK_INT(parse(sg_buf_head(&big), big.len, 100, &r, &done), 431);
    sg_buf_free(&big);
    sg_request_free(&r);
    sg_buf_free(&body);
}

static void test_normalize(void)
{
    static const struct { const char *in, *out; } t[] = {
        { "/", "/" }, { "/a/./b", "/a/b" }, { "/a/b/..", "/a/" }, { "/a/b/../", "/a/" },
        { "/a/%2e%2e/b", "/b" }, { "/%41", "/A" }, { "/a//b", "/a//b" }, { "/.", "/" },
        { "/a/..", "/" },
    };
    char out[64];
    for (size_t i = 0; i < SG_ARRAY_LEN(t); i++) {
        long n = sg_http_normalize_path(t[i].in, strlen(t[i].in), out);
        CHECK(n >= 0 && strcmp(out, t[i].out) == 0, "%s -> %s, want %s", t[i].in, out, t[i].out);
    }
    CHECK_INT(sg_http_normalize_path("/..", 3, out), -1);
    CHECK_INT(sg_http_normalize_path("/a/../..", 8, out), -1);
}

int main(void)
{
    test_cases();
    RUN(test_headers_and_limits);
    RUN(test_normalize);
    return test_report("test_http");
}
