/*
 * fuzz_http.c: libFuzzer harness for the request parser glue (core/http.c). The input is a
 * small control prefix followed by a client byte stream; the stream is fed the way conn.c
 * feeds it (in pieces, unconsumed bytes re-fed, a fresh request after each message) and then
 * again whole. Checks memory safety (ASan/UBSan), the invariants of a parsed head (a routing
 * path without empty or dot segments, a valid host), the views a rejected head leaves (the
 * access log reads them), the error statuses, the body byte accounting, and that both runs
 * tell exactly the same story.
 * It does not test conn.c's body limits or anything past the parser.
 *
 * Input: byte 0  bits 0-1: limits (0: 512 bytes/8 headers, 1: 4096/20, else 16384/100)
 *                bit 2: uniform pieces of 1 + (byte 1 % 16) bytes, else explicit cuts
 *        byte 1  explicit mode: k = byte 1 % 8 piece lengths follow (one byte each)
 *        rest    the stream
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "http.h"
#include "util.h"

#include "fuzz_common.h"

static const struct {
    size_t header_bytes, headers;
} limits[] = { { 512, 8 }, { 4096, 20 }, { 16384, 100 }, { 16384, 100 } };

typedef struct run {
    fuzz_log log; /* outcome transcript, compared between the two runs */
    const sg_http *h;
    const sg_request *req;
    size_t stream_len;
    size_t body_total;             /* body bytes over the whole stream */
    fuzz_log body;                 /* body of the current request */
    const char *feed_lo, *feed_hi; /* the slice passed to the current sg_http_feed */
} run;

static void on_body(void *ud, const char *data, size_t len)
{
    run *r = ud;
    FUZZ_CHECK(r->h->head_done, "body-before-head", "%zu body bytes before the head ended", len);
    FUZZ_CHECK(len == 0 || (data >= r->feed_lo && data + len <= r->feed_hi), "body-out-of-feed",
               "body slice [%p,+%zu) outside the fed bytes [%p,%p)", (const void *)data, len,
               (const void *)r->feed_lo, (const void *)r->feed_hi);
    r->body_total += len;
    FUZZ_CHECK(r->body_total <= r->stream_len, "body-exceeds-input",
               "%zu body bytes from a %zu-byte stream", r->body_total, r->stream_len);
    fuzz_log_put(&r->body, data, len);
    if (!r->req->chunked)
        FUZZ_CHECK(r->req->content_length >= 0 && r->body.len <= (size_t)r->req->content_length,
                   "body-exceeds-content-length", "%zu body bytes, Content-Length %lld",
                   r->body.len, (long long)r->req->content_length);
}

static bool has_nul(const char *s, size_t len)
{
    return len && memchr(s, '\0', len) != NULL;
}

static bool within(const char *p, size_t len, const char *lo, const char *hi)
{
    return p >= lo && p <= hi && len <= (size_t)(hi - p);
}

/* field-name = token (RFC 9110 §5.1, §5.6.2); RFC 9112 §5.1 requires a 400 for whitespace
 * between the name and the colon, a classic request smuggling vector */
static bool is_token(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c && strchr("!#$%&'*+-.^_`|~", c))))
            return false;
    }
    return len > 0;
}

static bool bad_value_char(const char *v, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (v[i] == '\0' || v[i] == '\r' || v[i] == '\n')
            return true;
    return false;
}

/* A host view: a bracketed IPv6 literal, or dot-separated labels of [A-Za-z0-9_-]. */
static bool valid_host(const char *h, size_t len)
{
    if (len == 0) /* "Host:" with an empty value: no host */
        return true;
    if (len >= 2 && h[0] == '[')
        return h[len - 1] == ']';
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)h[i];
        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                     c == '-' || c == '_')) {
            return false;
        } else {
            label++;
        }
    }
    return label > 0;
}

/* What a rejected head leaves: views an access log line may read (names and values of the
 * headers read so far, uri, path, query), NUL-terminated and inside the request buffer. */
static void check_rejected(const sg_request *q)
{
    const char *raw_lo = q->raw.data + q->raw.off, *raw_hi = raw_lo + q->raw.len;
    FUZZ_CHECK(q->uri && q->path && q->query, "rejected-views", "uri %p path %p query %p",
               (const void *)q->uri, (const void *)q->path, (const void *)q->query);
    if (q->uri && q->uri_len_view)
        FUZZ_CHECK(within(q->uri, q->uri_len_view + 1, raw_lo, raw_hi), "rejected-views",
                   "uri outside the request buffer");
    for (size_t i = 0; i < q->nheaders; i++) {
        const sg_req_header *hd = &q->headers[i];
        FUZZ_CHECK(hd->name && hd->value, "rejected-views", "header %zu of %zu: name %p value %p",
                   i, q->nheaders, (const void *)hd->name, (const void *)hd->value);
        if (!hd->name || !hd->value)
            return;
        FUZZ_CHECK(within(hd->name, hd->name_len + 1, raw_lo, raw_hi) &&
                       hd->name[hd->name_len] == '\0',
                   "rejected-views", "header %zu name outside raw or unterminated", i);
        if (hd->value_len)
            FUZZ_CHECK(within(hd->value, hd->value_len + 1, raw_lo, raw_hi) &&
                           hd->value[hd->value_len] == '\0',
                       "rejected-views", "header %zu value outside raw or unterminated", i);
    }
    /* what conn.c's access log does */
    (void)sg_request_header(q, "User-Agent");
}

/* Invariants of a head that sg_http_feed reported complete, then its transcript entry. */
static void check_head(run *r, const sg_http *h, const sg_request *q, size_t max_headers)
{
    const char *raw_lo = q->raw.data + q->raw.off, *raw_hi = raw_lo + q->raw.len;

    FUZZ_CHECK(h->head_bytes <= h->header_bytes_limit, "head-over-limit",
               "head of %zu bytes accepted, limit %zu", h->head_bytes, h->header_bytes_limit);
    FUZZ_CHECK(q->method && q->method[0], "no-method", "empty method");
    FUZZ_CHECK(q->http_major == 1, "bad-version", "HTTP/%d.%d accepted", q->http_major,
               q->http_minor);
    FUZZ_CHECK(q->uri && q->uri_len_view > 0, "empty-uri", "empty request-target");
    FUZZ_CHECK(within(q->uri, q->uri_len_view + 1, raw_lo, raw_hi), "uri-outside-raw",
               "uri outside the request buffer");
    FUZZ_CHECK(!has_nul(q->uri, q->uri_len_view), "nul-in-uri", "NUL inside the uri");
    FUZZ_CHECK(q->uri[q->uri_len_view] == '\0', "uri-unterminated", "uri not NUL-terminated");
    FUZZ_CHECK(q->path && q->path[0] == '/', "path-not-absolute", "path \"%s\"",
               q->path ? q->path : "(null)");
    FUZZ_CHECK(strlen(q->path) == q->path_len, "path-len", "strlen(path) %zu, path_len %zu",
               strlen(q->path), q->path_len);
    FUZZ_CHECK(within(q->path, q->path_len + 1, raw_lo, raw_hi), "path-outside-raw",
               "path outside the request buffer");
    /* the routing path has one spelling: no empty segment, no "." or ".." segment */
    bool normal = strstr(q->path, "//") == NULL;
    for (const char *seg = q->path; normal && seg; seg = strchr(seg + 1, '/')) {
        size_t n = strcspn(seg + 1, "/");
        normal = !(n == 1 && seg[1] == '.') && !(n == 2 && seg[1] == '.' && seg[2] == '.');
    }
    FUZZ_CHECK(normal, "path-not-normal", "path \"%s\"", q->path);
    /* the flag says the target spelled a slash %2F (a dot segment may have removed it
     * since); a %2F in the path came from one, or from a decoded "%252F" */
    FUZZ_CHECK(!q->encoded_slash || strcasestr(q->uri, "%2F"), "encoded-slash-invented",
               "encoded_slash set, uri \"%s\"", q->uri);
    FUZZ_CHECK(q->encoded_slash || !strstr(q->path, "%2F") || strstr(q->uri, "%25"),
               "encoded-slash-lost", "path \"%s\" without encoded_slash", q->path);
    FUZZ_CHECK(q->query != NULL, "query-null", "query is NULL");
    bool in_uri = true;
    if (q->query_len) {
        in_uri = within(q->query, q->query_len, q->uri, q->uri + q->uri_len_view);
        FUZZ_CHECK(in_uri, "query-outside-uri", "query [%td,+%zu) outside uri \"%.*s\" (%zu bytes)",
                   q->query - q->uri, q->query_len, (int)q->uri_len_view, q->uri, q->uri_len_view);
        if (in_uri) /* else reading it could run off the buffer */
            FUZZ_CHECK(!has_nul(q->query, q->query_len), "nul-in-query", "NUL in the query");
    }
    FUZZ_CHECK(q->nheaders <= max_headers, "too-many-headers", "%zu headers, limit %zu",
               q->nheaders, max_headers);
    for (size_t i = 0; i < q->nheaders; i++) {
        const sg_req_header *hd = &q->headers[i];
        FUZZ_CHECK(hd->name_len > 0, "empty-header-name", "header %zu has an empty name", i);
        FUZZ_CHECK(within(hd->name, hd->name_len + 1, raw_lo, raw_hi), "header-outside-raw",
                   "header %zu name outside the request buffer", i);
        FUZZ_CHECK(!has_nul(hd->name, hd->name_len) && hd->name[hd->name_len] == '\0',
                   "nul-in-header-name", "header %zu name", i);
        FUZZ_CHECK(is_token(hd->name, hd->name_len), "header-name-not-token",
                   "header %zu name \"%.*s\"", i, (int)hd->name_len, hd->name);
        FUZZ_CHECK(hd->value != NULL, "header-value-null", "header %zu", i);
        if (hd->value_len) {
            FUZZ_CHECK(within(hd->value, hd->value_len + 1, raw_lo, raw_hi), "header-outside-raw",
                       "header %zu value outside the request buffer", i);
            FUZZ_CHECK(hd->value[hd->value_len] == '\0', "header-value-unterminated", "header %zu",
                       i);
        }
        FUZZ_CHECK(!bad_value_char(hd->value, hd->value_len), "bad-char-in-header-value",
                   "header %zu \"%.*s\" holds NUL, CR or LF", i, (int)hd->name_len, hd->name);
    }
    /* host and content_type are views of header values: the very same pointers, or they
     * were moved on their own (a dangling pointer can be neither read nor logged) */
    /* ... or, for an absolute-form target, inside the uri; either way a valid host */
    if (q->host) {
        const sg_req_header *hh = sg_request_header(q, "Host");
        bool in_host = hh && q->host == hh->value && q->host_len <= hh->value_len;
        bool in_uri = q->host_len && within(q->host, q->host_len, q->uri, q->uri + q->uri_len_view);
        FUZZ_CHECK(in_host || in_uri, "host-view",
                   "host %p is not the Host value %p (%zu bytes) nor in the uri",
                   (const void *)q->host, hh ? (const void *)hh->value : NULL,
                   hh ? hh->value_len : 0);
        if (in_host || in_uri)
            FUZZ_CHECK(valid_host(q->host, q->host_len), "host-invalid", "host \"%.*s\"",
                       (int)q->host_len, q->host);
    }
    bool ct_ok = q->content_type == NULL;
    for (size_t i = 0; i < q->nheaders && !ct_ok; i++)
        ct_ok = q->content_type == q->headers[i].value &&
                sg_strieq(q->headers[i].name, q->headers[i].name_len, "Content-Type");
    FUZZ_CHECK(ct_ok, "content-type-view",
               "content_type %p is not the value of a Content-Type header",
               (const void *)q->content_type);
    FUZZ_CHECK(q->content_length >= -1, "content-length-negative", "Content-Length taken as %lld",
               (long long)q->content_length);
    if (q->chunked)
        FUZZ_CHECK(q->has_body && q->content_length < 0, "chunked-framing",
                   "chunked with has_body %d, content_length %lld", q->has_body,
                   (long long)q->content_length);
    else
        FUZZ_CHECK(q->has_body == (q->content_length > 0), "length-framing",
                   "has_body %d with content_length %lld", q->has_body,
                   (long long)q->content_length);

    fuzz_log *l = &r->log;
    fuzz_log_str(l, "head");
    fuzz_log_int(l, q->method_id);
    fuzz_log_str(l, q->method);
    fuzz_log_int(l, q->http_minor);
    fuzz_log_mem(l, q->uri, q->uri_len_view);
    fuzz_log_mem(l, q->path, q->path_len);
    fuzz_log_mem(l, q->query, in_uri ? q->query_len : 0); /* never read outside the uri */
    fuzz_log_int(l, q->host != NULL);
    if (q->host)
        fuzz_log_int(l, (int64_t)q->host_len); /* the bytes are logged with the headers */
    fuzz_log_str(l, !q->content_type ? "(none)" : ct_ok ? q->content_type : "(dangling)");
    fuzz_log_int(l, q->nheaders);
    for (size_t i = 0; i < q->nheaders; i++) {
        fuzz_log_mem(l, q->headers[i].name, q->headers[i].name_len);
        fuzz_log_mem(l, q->headers[i].value, q->headers[i].value_len);
    }
    fuzz_log_int(l, q->content_length);
    fuzz_log_int(l, q->chunked | q->keepalive << 1 | q->head_only << 2 | q->has_body << 3 |
                        q->expect_continue << 4);
}

/*
 * Feeds stream[0,len) with data arriving at the cumulative offsets in cuts[] (then the rest),
 * as conn.c does: bytes the parser leaves unconsumed are offered again with the next arrival.
 */
static void parse_stream(run *r, const char *stream, size_t len, const size_t *cuts, size_t ncuts,
                         size_t lim)
{
    sg_http h;
    sg_request q;
    sg_request_init(&q);
    sg_http_init(&h, limits[lim].header_bytes, limits[lim].headers, on_body, r);
    sg_http_start(&h, &q);
    r->h = &h;
    r->req = &q;
    r->stream_len = len;

    size_t off = 0, next_cut = 0, avail = 0, req_start = 0;
    bool failed = false;
    for (;;) {
        if (off == avail) {
            if (avail == len)
                break;
            avail = next_cut < ncuts && cuts[next_cut] < len ? cuts[next_cut] : len;
            next_cut++;
            continue;
        }
        int events = -1, status = 0;
        const char *err = NULL;
        r->feed_lo = stream + off;
        r->feed_hi = stream + avail;
        long n = sg_http_feed(&h, stream + off, avail - off, &events, &status, &err);
        if (n < 0) {
            FUZZ_CHECK(n == SG_ERR, "feed-return", "sg_http_feed returned %ld", n);
            FUZZ_CHECK(status == 400 || status == 413 || status == 414 || status == 431 ||
                           status == 501 || status == 505,
                       "error-status", "status %d (%s)", status, err ? err : "no reason");
            FUZZ_CHECK(err && err[0], "error-reason", "status %d without a reason", status);
            check_rejected(&q);
            fuzz_log_str(&r->log, "error");
            fuzz_log_int(&r->log, status);
            failed = true;
            break;
        }
        FUZZ_CHECK((size_t)n <= avail - off, "consumed-too-much", "consumed %ld of %zu", n,
                   avail - off);
        FUZZ_CHECK((events & ~(SG_HTTP_HEAD | SG_HTTP_DONE)) == 0, "events", "events %d", events);
        off += (size_t)n;
        if (events & SG_HTTP_HEAD)
            check_head(r, &h, &q, limits[lim].headers);
        if (events & SG_HTTP_DONE) {
            FUZZ_CHECK(h.head_done, "done-without-head", "message done before its head");
            FUZZ_CHECK(r->body.len <= off - req_start, "body-exceeds-message",
                       "%zu body bytes from a %zu-byte message", r->body.len, off - req_start);
            if (!q.chunked)
                FUZZ_CHECK(r->body.len == (size_t)(q.content_length > 0 ? q.content_length : 0),
                           "body-length", "%zu body bytes, Content-Length %lld", r->body.len,
                           (long long)q.content_length);
            if (!q.has_body) { /* then the message is the head: it must end in a blank line */
                const char *e = stream + off;
                size_t mlen = off - req_start;
                char tail[16] = "";
                for (size_t i = mlen < 3 ? mlen : 3; i > 0; i--)
                    snprintf(tail + strlen(tail), sizeof tail - strlen(tail), " %02x",
                             (unsigned char)e[-(long)i]);
                FUZZ_CHECK(mlen >= 2 && e[-1] == '\n' &&
                               (e[-2] == '\n' || (mlen >= 3 && e[-2] == '\r' && e[-3] == '\n')),
                           "head-end-not-blank-line", "a body-less message ends in bytes%s", tail);
            }
            fuzz_log_str(&r->log, "done");
            fuzz_log_mem(&r->log, r->body.data, r->body.len);
            r->body.len = 0;
            req_start = off;
            sg_http_start(&h, &q); /* the next pipelined request */
            continue;
        }
        /* the parser only stops early at a pause, and every pause is reported */
        FUZZ_CHECK(n > 0 || events, "stalled", "nothing consumed from %zu bytes, no event",
                   avail - off);
    }
    if (!failed) {
        fuzz_log_str(&r->log, "eof");
        fuzz_log_int(&r->log, sg_http_eof(&h));
        fuzz_log_mem(&r->log, r->body.data, r->body.len);
    }
    sg_request_free(&q);
    r->body.len = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t lim = data[0] & 3, pos = 2, ncuts = 0;
    size_t cuts[4096];
    if (data[0] & 4) {
        size_t step = 1 + data[1] % 16;
        for (size_t c = step; c < size && ncuts < SG_ARRAY_LEN(cuts); c += step)
            cuts[ncuts++] = c;
    } else {
        size_t k = data[1] % 8, at = 0;
        if (size < 2 + k)
            return 0;
        for (size_t i = 0; i < k; i++) {
            at += data[2 + i];
            cuts[ncuts++] = at;
        }
        pos += k;
    }
    const char *stream = (const char *)data + pos;
    size_t len = size - pos;

    /* copy to an exact-size heap block so that ASan sees any read past the end */
    char *copy = sg_xmalloc(len ? len : 1);
    memcpy(copy, stream, len);

    run split = { 0 }, whole = { 0 };
    parse_stream(&split, copy, len, cuts, ncuts, lim);
    parse_stream(&whole, copy, len, NULL, 0, lim);
    size_t d = fuzz_log_diverge(&split.log, &whole.log);
    /* both rejected the same request at the same point, with different statuses: its own
     * tag, so that a known instance does not hide other split/whole differences */
    size_t rec = sizeof "error" + sizeof(int64_t), L = split.log.len;
    bool status_only = L == whole.log.len && L >= rec && d >= L - sizeof(int64_t) &&
                       memcmp(split.log.data + L - rec, "error", sizeof "error") == 0;
    if ((L != whole.log.len || d != L) &&
        !fuzz_ignored(status_only ? "split-vs-whole-status" : "split-vs-whole")) {
        size_t from = d > 24 ? d - 24 : 0;
        fuzz_log_show("split", &split.log, from);
        fuzz_log_show("whole", &whole.log, from);
    }
    FUZZ_CHECK(status_only || (L == whole.log.len && d == L), "split-vs-whole",
               "split and whole parses differ at transcript byte %zu (%zu vs %zu bytes)", d, L,
               whole.log.len);
    FUZZ_CHECK(!status_only || d == L, "split-vs-whole-status",
               "the same request gets a different error status split and whole");

    fuzz_log_free(&split.log);
    fuzz_log_free(&split.body);
    fuzz_log_free(&whole.log);
    fuzz_log_free(&whole.body);
    free(copy);
    return 0;
}
