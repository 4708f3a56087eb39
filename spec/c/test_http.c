/* Unit tests for core/http.c: raw requests parsed whole and split at every offset (as
 * http-parser's own test_scan), framing errors, Host and target checks, the state a rejected
 * request is left in, the head limits, path normalisation, chunked decoding, log escaping. */
#include "../../core/http.c"
#include "test.h"

struct req_case {
    const char *raw;
    int status; /* 0: parses; else the error status */
    const char *method, *path, *query;
    long long content_length;
    int chunked;
    const char *body; /* de-chunked body expected */
};

static const struct req_case cases[] = {
    { "GET /a/b?x=1 HTTP/1.1\r\nHost: h\r\n\r\n", 0, "GET", "/a/b", "x=1", -1, 0, "" },
    { "GET /a%20b/../c/./d HTTP/1.1\r\nHost: h:80\r\n\r\n", 0, "GET", "/c/d", "", -1, 0, "" },
    { "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello", 0, "POST", "/p", "", 5, 0,
      "hello" },
    { "POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n",
      0, "POST", "/p", "", -1, 1, "hello world" },
    { "GET http://example.com/abs?q HTTP/1.1\r\nHost: example.com\r\n\r\n", 0, "GET", "/abs", "q",
      -1, 0, "" },
    { "GET / HTTP/1.0\r\n\r\n", 0, "GET", "/", "", -1, 0, "" },
    { "HEAD /h HTTP/1.1\r\nHost: h\r\n\r\n", 0, "HEAD", "/h", "", -1, 0, "" },
    /* framing errors (RFC 9112 §6) */
    { "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
      0, 0, 0, 0, 0, 0 },
    { "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400, 0, 0, 0,
      0, 0, 0 },
    { "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: x\r\n\r\n", 400, 0, 0, 0, 0, 0, 0 },
    { "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 400, 0, 0, 0, 0, 0, 0 },
    { "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, 0, 0, 0, 0, 0,
      0 },
    { "GET / HTTP/1.1\r\n\r\n", 400, 0, 0, 0, 0, 0, 0 }, /* no Host */
    { "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, 0, 0, 0, 0, 0, 0 },
    { "GET /../etc HTTP/1.1\r\nHost: h\r\n\r\n", 400, 0, 0, 0, 0, 0, 0 },
    { "GET /a%00b HTTP/1.1\r\nHost: h\r\n\r\n", 400, 0, 0, 0, 0, 0, 0 },
    { "GET /a%zz HTTP/1.1\r\nHost: h\r\n\r\n", 400, 0, 0, 0, 0, 0, 0 },
    { "BREW / HTTP/1.1\r\nHost: h\r\n\r\n", 400, 0, 0, 0, 0, 0, 0 },
    { "GET / HTTP/1.1\r\nHost: h\r\nX: a\x01z\r\n\r\n", 400, 0, 0, 0, 0, 0, 0 },
/* chunk framing http-parser tolerates but a strict peer would read differently */
#define CHUNKED "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    { CHUNKED "5\r\nhelloXY0\r\n\r\n", 400, 0, 0, 0, 0, 0, 0 },        /* data not ended by CRLF */
    { CHUNKED "5;a\nb\r\nhello\r\n0\r\n\r\n", 400, 0, 0, 0, 0, 0, 0 }, /* bare LF in extension */
    { CHUNKED "5 xyz\r\nhello\r\n0\r\n\r\n", 400, 0, 0, 0, 0, 0, 0 },  /* junk after the size */
    { CHUNKED "5\rXhello\r\n0\r\n\r\n", 400, 0, 0, 0, 0, 0, 0 },       /* CR without LF */
    { CHUNKED "5\r\nhello\r\n0\r\n\rX", 400, 0, 0, 0, 0, 0, 0 },       /* final CR then any byte */
    { CHUNKED "5\r\nhello\r\n0\r\nX Y: z\r\n\r\n", 400, 0, 0, 0, 0, 0, 0 }, /* trailer name */
    { CHUNKED "5;a=\"b c\"\r\nhello\r\n0\r\nX-T: v\r\n\r\n", 0, "POST", "/", "", -1, 1, "hello" },
    /* absolute-form: http(s) only, and an empty path keeps its query */
    { "GET http://h?q=1 HTTP/1.1\r\nHost: h\r\n\r\n", 0, "GET", "/", "q=1", -1, 0, "" },
    { "GET HTTPS://h:443 HTTP/1.1\r\nHost: h\r\n\r\n", 0, "GET", "/", "", -1, 0, "" },
    { "GET http://h/#f?x HTTP/1.1\r\nHost: h\r\n\r\n", 0, "GET", "/", "", -1, 0, "" },
    { "GET ftp://h/x HTTP/1.1\r\nHost: h\r\n\r\n", 400, 0, 0, 0, 0, 0, 0 },
    { "GET httpx://h/x HTTP/1.1\r\nHost: h\r\n\r\n", 400, 0, 0, 0, 0, 0, 0 },
    { "GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n", 400, 0, 0, 0, 0, 0, 0 },
    { "GET http://u@h/x HTTP/1.1\r\nHost: h\r\n\r\n", 400, 0, 0, 0, 0, 0, 0 },
    { "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", 400, 0, 0, 0, 0, 0, 0 },
    /* Host (RFC 9112 §3.2) */
    { "GET / HTTP/1.1\r\nHost: example.com/\\:552\r\n\r\n", 400, 0, 0, 0, 0, 0, 0 },
    { "GET / HTTP/1.1\r\nHost: ../123.org\r\n\r\n", 400, 0, 0, 0, 0, 0, 0 },
    { "GET / HTTP/1.1\r\nHost: localhost:80 x\r\n\r\n", 400, 0, 0, 0, 0, 0, 0 },
    { "GET http://a/ HTTP/1.1\r\nHost: a b\r\n\r\n", 400, 0, 0, 0, 0, 0, 0 },
    /* framing: Transfer-Encoding in HTTP/1.0, CONNECT */
    { "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, 0, 0, 0, 0, 0, 0 },
    { "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", 501, 0, 0, 0, 0, 0, 0 },
    { "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\nContent-Length: 3\r\n\r\nabc", 501, 0, 0, 0, 0, 0,
      0 },
    /* the routing path: slashes merged, %2F kept encoded */
    { "GET //a//b/./c/ HTTP/1.1\r\nHost: h\r\n\r\n", 0, "GET", "/a/b/c/", "", -1, 0, "" },
    { "GET /a%2fb/..%2Fc HTTP/1.1\r\nHost: h\r\n\r\n", 0, "GET", "/a%2Fb/..%2Fc", "", -1, 0, "" },
    { "GET /x/%2E%2e/y HTTP/1.1\r\nHost: h\r\n\r\n", 0, "GET", "/y", "", -1, 0, "" },
};

static sg_buf body;

static void collect(void *ud, const char *data, size_t len)
{
    (void)ud;
    sg_buf_append(&body, data, len);
}

/* Feeds raw in two pieces split at `split` with limits.header_bytes `limit`; returns 0 or
 * the error status. */
static int parse_lim(const char *raw, size_t len, size_t split, sg_request *r, int *done,
                     size_t limit)
{
    sg_http h;
    sg_http_init(&h, limit, 100, collect, NULL);
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

/* Feeds raw `step` bytes at a time (0: whole), unconsumed bytes offered again with the next
 * arrival as conn.c does, with limits.header_bytes `limit` and limits.headers `headers`;
 * returns 0 or the error status. */
static int parse_steps(const char *raw, size_t len, size_t step, sg_request *r, int *done,
                       size_t limit, size_t headers)
{
    sg_http h;
    sg_http_init(&h, limit, headers, collect, NULL);
    sg_http_start(&h, r);
    sg_buf_reset(&body);
    *done = 0;
    size_t off = 0, avail = 0;
    while (!*done) {
        if (off == avail) {
            if (avail == len)
                break;
            avail = step && len - avail > step ? avail + step : len;
            continue;
        }
        int events, status = 0;
        const char *err;
        long n = sg_http_feed(&h, raw + off, avail - off, &events, &status, &err);
        if (n < 0)
            return status;
        off += (size_t)n;
        *done = (events & SG_HTTP_DONE) != 0;
        if (n == 0 && !events && avail == len)
            break;
    }
    return 0;
}

static int parse(const char *raw, size_t len, size_t split, sg_request *r, int *done)
{
    return parse_lim(raw, len, split, r, done, 16384);
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
            CHECK(st == t->status, "case %zu split %zu: status %d, want %d", i, split, st,
                  t->status);
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

/* After a 400 every view is defined: the access log and log_format read them. Each kind of
 * bad header line in each position, followed by the headers the access log looks up. */
static void test_rejected_state(void)
{
    static const char *bad[] = { "X Bad: v",   "X-Bad : v", "X-Bad\t: v", " X-Bad: v",
                                 "\tX-Bad: v", "X-Bad",     ": v",        "X-\x01: v" };
    /* refused once the whole head is parsed (the others stop http-parser at the bad line,
     * so the headers after it are never read; what was read is still defined) */
    static const bool late[] = { true, true, false, false, false, false, false, false };
    static const char *fmt[] = {
        "GET /p HTTP/1.1\r\n%s\r\nHost: x\r\nUser-Agent: ua\r\nReferer: r\r\nConnection: close\r\n\r\n",
        "GET /p HTTP/1.1\r\nHost: x\r\n%s\r\nUser-Agent: ua\r\nReferer: r\r\nConnection: close\r\n\r\n",
        "GET /p HTTP/1.1\r\nHost: x\r\nUser-Agent: ua\r\nReferer: r\r\n%s\r\n\r\n",
    };
    sg_request r;
    sg_request_init(&r);
    sg_buf_init(&body);
    char raw[512];
    for (size_t b = 0; b < SG_ARRAY_LEN(bad); b++) {
        for (size_t f = 0; f < SG_ARRAY_LEN(fmt); f++) {
            int len = snprintf(raw, sizeof raw, fmt[f], bad[b]);
            CASE_BEGIN();
            for (size_t split = 0; split <= (size_t)len; split++) {
                int done;
                int st = parse(raw, (size_t)len, split, &r, &done);
                CHECK(st == 400, "bad %zu at %zu split %zu: status %d", b, f, split, st);
                CHECK(r.uri && r.path && r.query, "bad %zu at %zu: a NULL view", b, f);
                for (size_t i = 0; i < r.nheaders; i++)
                    CHECK(r.headers[i].name && r.headers[i].value &&
                              strlen(r.headers[i].name) == r.headers[i].name_len &&
                              strlen(r.headers[i].value) == r.headers[i].value_len,
                          "bad %zu at %zu split %zu: header %zu undefined", b, f, split, i);
                const sg_req_header *ua = sg_request_header(&r, "User-Agent");
                const sg_req_header *ref = sg_request_header(&r, "Referer");
                if (late[b]) {
                    CHECK(ua && strcmp(ua->value, "ua") == 0, "bad %zu at %zu: User-Agent", b, f);
                    CHECK(ref && strcmp(ref->value, "r") == 0, "bad %zu at %zu: Referer", b, f);
                }
            }
            CASE_END();
        }
    }
    /* a request line http-parser refuses: no method, every view still defined */
    const char *junk = "G\x01T / HTTP/1.1\r\nHost: x\r\n\r\n";
    int done;
    CHECK_INT(parse(junk, strlen(junk), 3, &r, &done), 400);
    CHECK(r.method == NULL && r.uri && r.path && r.query, "views after a bad request line");
    sg_request_free(&r);
    sg_buf_free(&body);
}

/* Field values without surrounding whitespace; Connection lists with empty elements. */
static void test_values(void)
{
    static const struct {
        const char *raw;
        const char *host; /* expected host view */
        int keepalive, expect;
    } t[] = {
        { "GET / HTTP/1.1\r\nHost: a.example \t\r\n\r\n", "a.example", 1, 0 },
        { "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue \r\nContent-Length: 1\r\n\r\nx", "h",
          1, 1 },
        { "GET / HTTP/1.1\r\nHost: h\r\nConnection: ,close\r\n\r\n", "h", 0, 0 },
        { "GET / HTTP/1.1\r\nHost: h\r\nConnection: foo,,CLOSE \r\n\r\n", "h", 0, 0 },
        { "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\nConnection: , close\r\n\r\n", "h",
          0, 0 },
        { "GET / HTTP/1.0\r\nConnection: ,keep-alive\r\n\r\n", NULL, 1, 0 },
        { "GET / HTTP/1.0\r\n\r\n", NULL, 0, 0 },
        { "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", NULL, 0, 0 },
        { "GET http://a.example:81/x HTTP/1.1\r\nHost: b.example\r\n\r\n", "a.example", 1, 0 },
        { "GET http://[::1]:81/x HTTP/1.1\r\nHost: b\r\n\r\n", "[::1]", 1, 0 },
        { "GET / HTTP/1.1\r\nHost: a.example.:80\r\n\r\n", "a.example", 1, 0 },
        { "GET / HTTP/1.1\r\nHost:\r\n\r\n", "", 1, 0 },
    };
    sg_request r;
    sg_request_init(&r);
    sg_buf_init(&body);
    for (size_t i = 0; i < SG_ARRAY_LEN(t); i++) {
        size_t len = strlen(t[i].raw);
        CASE_BEGIN();
        for (size_t split = 0; split <= len; split++) {
            int done;
            int st = parse(t[i].raw, len, split, &r, &done);
            CHECK(st == 0, "case %zu split %zu: status %d", i, split, st);
            if (st)
                continue;
            if (t[i].host)
                CHECK(r.host && r.host_len == strlen(t[i].host) &&
                          memcmp(r.host, t[i].host, r.host_len) == 0,
                      "case %zu: host %.*s", i, (int)r.host_len, r.host ? r.host : "(null)");
            else
                CHECK(r.host == NULL, "case %zu: a host", i);
            CHECK_INT(r.keepalive, t[i].keepalive);
            CHECK_INT(r.expect_continue, t[i].expect);
        }
        CASE_END();
    }
    /* an ordinary value: the stripped value is NUL-terminated where it ends */
    const char *raw = "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: \t a b \t \r\n\r\n";
    int done;
    CHECK_INT(parse(raw, strlen(raw), 20, &r, &done), 0);
    const sg_req_header *pad = sg_request_header(&r, "X-Pad");
    CHECK(pad && pad->value_len == 3 && strcmp(pad->value, "a b") == 0, "X-Pad");
    sg_request_free(&r);
    sg_buf_free(&body);
}

static void test_host(void)
{
    static const struct {
        const char *v;
        int ok;
        size_t host_len;
    } t[] = {
        { "", 1, 0 },
        { "a", 1, 1 },
        { "a.example", 1, 9 },
        { "a.example:80", 1, 9 },
        { "a.example.", 1, 9 },
        { "a_b-c.d", 1, 7 },
        { "127.0.0.1", 1, 9 },
        { "h:", 1, 1 },
        { "h:65535", 1, 1 },
        { "[::1]", 1, 5 },
        { "[::1]:8080", 1, 5 },
        { "[2001:db8::1]", 1, 13 },
        { "[::ffff:1.2.3.4]", 1, 16 },
        { "example.com/\\:552", 0, 0 },
        { "../123.org", 0, 0 },
        { "localhost:80 x", 0, 0 },
        { ".", 0, 0 },
        { ".a", 0, 0 },
        { "a..b", 0, 0 },
        { "a b", 0, 0 },
        { "a/b", 0, 0 },
        { "a\\b", 0, 0 },
        { "a@b", 0, 0 },
        { "u@a:80", 0, 0 },
        { "a%2eb", 0, 0 },
        { ":80", 0, 0 },
        { "a:b", 0, 0 },
        { "a:65536", 0, 0 },
        { "a:000080", 0, 0 },
        { "a:-1", 0, 0 },
        { "a:80:80", 0, 0 },
        { "[::1", 0, 0 },
        { "[]", 0, 0 },
        { "[zz::1]", 0, 0 },
        { "[::1]x", 0, 0 },
        { "[::1]:8x", 0, 0 },
        { "::1", 0, 0 },
        { "a,b", 0, 0 },
        { "[v1.x]", 0, 0 },
        { "[fe80::1%25eth0]", 0, 0 },
        { "a\xc3\xa9", 0, 0 },
    };
    for (size_t i = 0; i < SG_ARRAY_LEN(t); i++) {
        size_t hl = 99;
        bool ok = parse_host(t[i].v, strlen(t[i].v), &hl);
        CHECK(ok == (bool)t[i].ok, "Host \"%s\": %s", t[i].v, ok ? "accepted" : "refused");
        if (ok && t[i].ok)
            CHECK(hl == t[i].host_len, "Host \"%s\": host_len %zu, want %zu", t[i].v, hl,
                  t[i].host_len);
    }
}

/* limits.header_bytes: 414 while in the request line, 431 after it, at every split; heads
 * beyond http-parser's built-in 80 KiB are fine below the limit; chunk lines and trailers
 * are bounded too. */
static void test_limits(void)
{
    sg_request r;
    sg_request_init(&r);
    sg_buf_init(&body);
    sg_buf big;
    sg_buf_init(&big);
    int done;

    sg_buf_append_str(&big, "GET /");
    for (int i = 0; i < 1100; i++)
        sg_buf_append(&big, "u", 1);
    sg_buf_append_str(&big, " HTTP/1.1\r\nHost: h\r\n\r\n");
    CASE_BEGIN();
    for (size_t split = 0; split <= big.len; split++)
        CHECK_INT(parse_lim(sg_buf_head(&big), big.len, split, &r, &done, 1024), 414);
    CASE_END();

    sg_buf_reset(&big);
    sg_buf_append_str(&big, "GET /x HTTP/1.1\r\nHost: h\r\nX-Long: ");
    for (int i = 0; i < 1100; i++)
        sg_buf_append(&big, "v", 1);
    sg_buf_append_str(&big, "\r\n\r\n");
    CASE_BEGIN();
    for (size_t split = 0; split <= big.len; split++)
        CHECK_INT(parse_lim(sg_buf_head(&big), big.len, split, &r, &done, 1024), 431);
    CASE_END();

    /* the limit falls right on the first byte of the first header name: 431, not 414 */
    const char *edge = "GET /abc HTTP/1.1\r\nHost: h\r\n\r\n";
    CASE_BEGIN();
    for (size_t split = 0; split <= strlen(edge); split++) {
        CHECK_INT(parse_lim(edge, strlen(edge), split, &r, &done, 19), 431);
        CHECK_INT(parse_lim(edge, strlen(edge), split, &r, &done, 18), 414);
    }
    CASE_END();

    /* A CR on the last byte the limit allows, then any byte: the head is over the limit
     * (431) however the bytes arrive. The byte after the CR is past the limit, and a feed of
     * one byte at a time never judges it as a bare CR (the fuzzer's split-vs-whole-status
     * finding, limits 512 bytes / 8 headers). With a body, the head's final byte, which the
     * pause at the end of the head leaves unconsumed, counts too: one past the limit is 431,
     * as without a body. */
#define HEAD_GET "GET / HTTP/1.1\r\nHost: h\r\nX-Big: "
#define HEAD_CL3 "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nX-Big: "
    static const struct {
        const char *start, *tail; /* the stream: start, 'a's, tail */
        size_t at;                /* the index in tail of the head's byte 511 */
        int status;
    } edges[] = {
        { HEAD_GET, "\r\n\r GET / HTTP/1.1\r\n", 2, 431 },
        { HEAD_GET, "\r\n\rX", 2, 431 },
        { HEAD_GET, "\r\n\r\n", 2, 431 },
        { HEAD_CL3, "\r\n\rXabc", 2, 431 },
        { HEAD_CL3, "\r\n\r\nabc", 2, 431 },
        { HEAD_GET, "\r\n\r\n", 3, 0 }, /* the head ends on byte 511: within the limit */
        { HEAD_CL3, "\r\n\r\nabc", 3, 0 },
    };
    for (size_t i = 0; i < SG_ARRAY_LEN(edges); i++) {
        sg_buf_reset(&big);
        sg_buf_append_str(&big, edges[i].start);
        while (big.len < 511 - edges[i].at)
            sg_buf_append(&big, "a", 1);
        sg_buf_append_str(&big, edges[i].tail);
        const char *raw = sg_buf_head(&big);
        CASE_BEGIN();
        for (size_t step = 0; step <= 17; step++) {
            int st = parse_steps(raw, big.len, step, &r, &done, 512, 8);
            CHECK(st == edges[i].status, "edge %zu, %zu bytes at a time: status %d, want %d", i,
                  step, st, edges[i].status);
            if (st == 0)
                CHECK(done, "edge %zu, %zu bytes at a time: message not complete", i, step);
        }
        for (size_t split = 0; split <= big.len; split++)
            CHECK_INT(parse_lim(raw, big.len, split, &r, &done, 512), edges[i].status);
        CASE_END();
    }
#undef HEAD_GET
#undef HEAD_CL3

    /* 300 KB of head under a 1 MiB limit (http-parser alone stops at 80 KiB) */
    sg_buf_reset(&big);
    sg_buf_append_str(&big, "GET /");
    for (int i = 0; i < 100000; i++)
        sg_buf_append(&big, "p", 1);
    sg_buf_append_str(&big, " HTTP/1.1\r\nHost: h\r\nX-Big: ");
    for (int i = 0; i < 200000; i++)
        sg_buf_append(&big, "b", 1);
    sg_buf_append_str(&big, "\r\n\r\n");
    CASE_BEGIN();
    for (size_t split = 0; split <= big.len; split += 7919) {
        CHECK_INT(parse_lim(sg_buf_head(&big), big.len, split, &r, &done, SG_HTTP_HEAD_MAX), 0);
        CHECK(done && r.path_len == 100001, "split %zu: path_len %zu", split, r.path_len);
    }
    CHECK_INT(parse_lim(sg_buf_head(&big), big.len, 0, &r, &done, 50000), 414);
    CHECK_INT(parse_lim(sg_buf_head(&big), big.len, 0, &r, &done, 150000), 431);
    CASE_END();

    /* chunk-size lines and trailers: at most limits.header_bytes each */
    sg_buf_reset(&big);
    sg_buf_append_str(&big, CHUNKED "3;");
    for (int i = 0; i < 2000; i++)
        sg_buf_append(&big, "e", 1);
    sg_buf_append_str(&big, "\r\nabc\r\n0\r\n\r\n");
    CASE_BEGIN();
    for (size_t split = 0; split <= big.len; split += 13)
        CHECK_INT(parse_lim(sg_buf_head(&big), big.len, split, &r, &done, 1024), 400);
    CHECK_INT(parse_lim(sg_buf_head(&big), big.len, 0, &r, &done, 4096), 0);
    CASE_END();
    sg_buf_reset(&big);
    sg_buf_append_str(&big, CHUNKED "3\r\nabc\r\n0\r\n");
    for (int i = 0; i < 100; i++)
        sg_buf_append_str(&big, "X-Trailer: 0123456789\r\n");
    sg_buf_append_str(&big, "\r\n");
    CASE_BEGIN();
    for (size_t split = 0; split <= big.len; split += 13)
        CHECK_INT(parse_lim(sg_buf_head(&big), big.len, split, &r, &done, 1024), 431);
    CHECK_INT(parse_lim(sg_buf_head(&big), big.len, 0, &r, &done, 4096), 0);
    CASE_END();

    sg_buf_free(&big);
    sg_request_free(&r);
    sg_buf_free(&body);
}

static void test_normalize(void)
{
    static const struct {
        const char *in, *out;
        int enc;
    } t[] = {
        { "/", "/", 0 },
        { "/a/./b", "/a/b", 0 },
        { "/a/b/..", "/a/", 0 },
        { "/a/b/../", "/a/", 0 },
        { "/a/%2e%2e/b", "/b", 0 },
        { "/%41", "/A", 0 },
        { "/a//b", "/a/b", 0 },
        { "/.", "/", 0 },
        { "/a/..", "/", 0 },
        { "//admin/x", "/admin/x", 0 },
        { "///", "/", 0 },
        { "/a//", "/a/", 0 },
        { "/./admin", "/admin", 0 },
        { "/.//admin", "/admin", 0 },
        { "/x//../admin", "/admin", 0 },
        { "/x/%2E%2e/admin", "/admin", 0 },
        { "/x/.%2E/a", "/a", 0 },
        { "/a/.", "/a/", 0 },
        { "/a/%2e", "/a/", 0 },
        { "/a/.b/..c/...", "/a/.b/..c/...", 0 },
        { "/admin/..%2Fx", "/admin/..%2Fx", 1 },
        { "/admin/..%2fx", "/admin/..%2Fx", 1 },
        { "/a%2F", "/a%2F", 1 },
        { "/%2F/x", "/%2F/x", 1 },
        { "/a/%2e%2e%2Fb", "/a/..%2Fb", 1 },
        { "/a%252Fb", "/a%2Fb", 0 },
        { "/x/..%5Cadmin", "/x/..\\admin", 0 },
        { "/x/..\\admin", "/x/..\\admin", 0 },
        { "/a/b/../../c", "/c", 0 },
        { "/a%2Fb/../c", "/c", 1 }, /* refused all the same: the target spelled %2F */
    };
    char out[64];
    for (size_t i = 0; i < SG_ARRAY_LEN(t); i++) {
        bool enc = !t[i].enc;
        long n = sg_http_normalize_path(t[i].in, strlen(t[i].in), out, &enc);
        CHECK(n >= 0 && strcmp(out, t[i].out) == 0 && (size_t)n == strlen(out), "%s -> %s, want %s",
              t[i].in, n >= 0 ? out : "(error)", t[i].out);
        CHECK(enc == (bool)t[i].enc, "%s: encoded_slash %d", t[i].in, enc);
    }
    bool enc;
    CHECK_INT(sg_http_normalize_path("/..", 3, out, &enc), -1);
    CHECK_INT(sg_http_normalize_path("/a/../..", 8, out, &enc), -1);
    CHECK_INT(sg_http_normalize_path("//..", 4, out, &enc), -1);
    CHECK_INT(sg_http_normalize_path("/%2e%2e", 7, out, &enc), -1);
    CHECK_INT(sg_http_normalize_path("/a%00", 5, out, &enc), -1);
    CHECK_INT(sg_http_normalize_path("/a%2", 4, out, &enc), -1);
    CHECK_INT(sg_http_normalize_path("/a%g0", 5, out, &enc), -1);
    CHECK_INT(sg_http_normalize_path("a/b", 3, out, &enc), -1);
    CHECK_INT(sg_http_normalize_path("%2Fa", 4, out, &enc), -1);
}

static void test_log_escape(void)
{
    static const struct {
        const char *in;
        size_t len;
        const char *out;
    } t[] = {
        { "plain /a?b=c", 12, "plain /a?b=c" },
        { "a\"b", 3, "a\\x22b" },
        { "a\\b", 3, "a\\x5Cb" },
        { "\t\n\r\x01\x1f", 5, "\\x09\\x0A\\x0D\\x01\\x1F" },
        { "\x7f\x80\xff", 3, "\\x7F\\x80\\xFF" },
        { "a\0b", 3, "a\\x00b" },
        { "", 0, "" },
    };
    sg_buf out;
    sg_buf_init(&out);
    for (size_t i = 0; i < SG_ARRAY_LEN(t); i++) {
        sg_buf_reset(&out);
        sg_buf_append_str(&out, "<");
        sg_http_log_escape(&out, t[i].in, t[i].len);
        sg_buf_append_str(&out, ">");
        sg_buf_append(&out, "", 1);
        char want[64];
        snprintf(want, sizeof want, "<%s>", t[i].out);
        CHECK_STR(sg_buf_head(&out), want);
    }
    sg_buf_free(&out);
}

int main(void)
{
    test_cases();
    RUN(test_headers_and_limits);
    test_rejected_state();
    RUN(test_values);
    RUN(test_host);
    RUN(test_limits);
    RUN(test_normalize);
    RUN(test_log_escape);
    return test_report("test_http");
}
