/*
 * http.c: http-parser glue. Callbacks may deliver a token in several pieces (a read can end
 * anywhere), so every piece is appended to the request's raw buffer and addressed by offset;
 * pointers are only taken once the head is complete and the buffer stops moving.
 */
#include "http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "util.h"

void sg_request_init(sg_request *r)
{
    memset(r, 0, sizeof *r);
    sg_buf_init(&r->raw);
    r->content_length = -1;
}

void sg_request_free(sg_request *r)
{
    sg_buf_free(&r->raw);
    free(r->headers);
    r->headers = NULL;
}

static void request_reset(sg_request *r)
{
    sg_buf raw = r->raw;
    sg_req_header *hs = r->headers;
    size_t cap = r->cap_headers;
    memset(r, 0, sizeof *r);
    r->raw = raw;
    sg_buf_reset(&r->raw);
    r->headers = hs;
    r->cap_headers = cap;
    r->content_length = -1;
}

const sg_req_header *sg_request_header(const sg_request *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (sg_strieq(r->headers[i].name, r->headers[i].name_len, name))
            return &r->headers[i];
    return NULL;
}

/* states of the strict chunked-framing check (check_chunked) */
enum {
    CK_SIZE0,
    CK_SIZE,
    CK_EXT_PRE,
    CK_EXT_NAME,
    CK_EXT_POSTNAME,
    CK_EXT_PREVAL,
    CK_EXT_VAL,
    CK_EXT_POSTVAL,
    CK_EXT_QUOTED,
    CK_EXT_QESC,
    CK_EXT_POSTVAL_Q,
    CK_SIZE_LF,
    CK_DATA,
    CK_DATA_CR,
    CK_DATA_LF,
    CK_TRAILER0,
    CK_TRAILER_NAME,
    CK_TRAILER,
    CK_TRAILER_LF,
    CK_END_LF,
    CK_DONE
};

static sg_http *from_parser(http_parser *p)
{
    return SG_CONTAINER_OF(p, sg_http, parser);
}

static int fail(sg_http *h, int status, const char *err)
{
    h->status = status;
    h->err = err;
    return -1;
}

static int on_message_begin(http_parser *p)
{
    SG_UNUSED(p);
    return 0;
}

/* Every token piece is appended to raw; a NUL closes a token when the next kind begins. */
static void switch_token(sg_http *h, int tok)
{
    if (h->tok != tok && h->tok != SG_TOK_NONE)
        sg_buf_append(&h->req->raw, "", 1);
    h->tok = tok;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    sg_http *h = from_parser(p);
    sg_request *r = h->req;
    if (h->tok != SG_TOK_URL) {
        switch_token(h, SG_TOK_URL);
        r->uri_off = r->raw.len;
    }
    sg_buf_append(&r->raw, at, len);
    r->uri_len += len;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    sg_http *h = from_parser(p);
    sg_request *r = h->req;
    if (h->head_done)
        return 0; /* chunked trailer fields: not forwarded (SCGI has no place for them) */
    if (h->too_many)
        return 0;
    if (h->tok != SG_TOK_FIELD) {
        if (r->nheaders == h->headers_limit) {
            /* judged at the end of the head: http-parser hands over name and value bytes at
             * the end of every read, so failing here would depend on how the head was split;
             * the extra headers are not kept, and limits.header_bytes bounds the parsing */
            h->too_many = true;
            return 0;
        }
        switch_token(h, SG_TOK_FIELD);
        if (r->nheaders == r->cap_headers) {
            r->cap_headers = r->cap_headers ? r->cap_headers * 2 : 16;
            r->headers = sg_xrealloc(r->headers, r->cap_headers * sizeof *r->headers);
        }
        sg_req_header *hd = &r->headers[r->nheaders++];
        memset(hd, 0, sizeof *hd);
        hd->name_off = r->raw.len;
    }
    sg_buf_append(&r->raw, at, len);
    r->headers[r->nheaders - 1].name_len += len;
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    sg_http *h = from_parser(p);
    sg_request *r = h->req;
    if (h->head_done || h->too_many)
        return 0;
    sg_req_header *hd = &r->headers[r->nheaders - 1];
    if (h->tok != SG_TOK_VALUE) {
        switch_token(h, SG_TOK_VALUE);
        hd->value_off = r->raw.len;
    }
    sg_buf_append(&r->raw, at, len);
    hd->value_len += len;
    return 0;
}

/* RFC 9110 §5.5: field values may not carry NUL, CR or LF (http-parser lets some through) */
static bool clean_value(const char *v, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c == 0 || c == '\r' || c == '\n' || (c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

/* RFC 9110 §5.1: a field name is a token; whitespace before the colon is an attack vector */
static bool token(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!sg_is_tchar((unsigned char)s[i]))
            return false;
    return true;
}

/* Checks Transfer-Encoding: only "chunked", last and once, is understood (RFC 9112 §6.3). */
static int check_te(sg_http *h, const char *v, size_t len)
{
    const char *p = v, *s;
    size_t n;
    bool chunked_last = false, other = false, chunked_seen = false;
    while (sg_list_next(&p, v + len, &s, &n)) {
        if (n == 0)
            continue;
        if (sg_strieq(s, n, "chunked")) {
            if (chunked_seen)
                return fail(h, 400, "chunked applied twice");
            chunked_seen = chunked_last = true;
        } else {
            other = true;
            chunked_last = false;
        }
    }
    if (!chunked_last)
        return fail(h, 400, "transfer coding other than chunked last");
    if (other)
        return fail(h, 501, "unsupported transfer coding");
    return 0;
}

static bool ascii_alnum(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/*
 * uri-host [ ":" port ] (RFC 9112 §3.2, RFC 3986 §3.2.2), as strictly as Apache and nginx
 * read it: a name of letters, digits, "-" and "_" in non-empty dot-separated labels (one
 * trailing dot allowed and left out of *host_len, as both servers do, so that "a.example."
 * is the same virtual host as "a.example"), or an IPv6 literal in brackets (kept in
 * *host_len). The port, if any, is up to 5 digits and at most 65535. An empty value is valid
 * (no host); an empty host with a port is not.
 */
static bool parse_host(const char *v, size_t len, size_t *host_len)
{
    size_t i = 0;
    *host_len = 0;
    if (len == 0)
        return true;
    if (v[0] == '[') {
        const char *rb = memchr(v, ']', len);
        char lit[INET6_ADDRSTRLEN];
        unsigned char addr[16];
        size_t n = rb ? (size_t)(rb - v - 1) : 0;
        if (n == 0 || n >= sizeof lit)
            return false;
        memcpy(lit, v + 1, n);
        lit[n] = '\0';
        if (inet_pton(AF_INET6, lit, addr) != 1)
            return false;
        i = n + 2;
        *host_len = i;
    } else {
        size_t label = 0;
        for (; i < len && v[i] != ':'; i++) {
            unsigned char c = (unsigned char)v[i];
            if (c == '.') {
                if (label == 0)
                    return false; /* ".a", "a..b" */
                label = 0;
            } else if (ascii_alnum(c) || c == '-' || c == '_') {
                label++;
            } else {
                return false;
            }
        }
        if (i == 0)
            return false;
        *host_len = label ? i : i - 1;
    }
    if (i == len)
        return true;
    if (v[i] != ':' || len - i - 1 > 5)
        return false;
    unsigned long port = 0;
    for (size_t k = i + 1; k < len; k++) {
        if (v[k] < '0' || v[k] > '9')
            return false;
        port = port * 10 + (unsigned long)(v[k] - '0');
    }
    return port <= 65535;
}

/*
 * Points every view of the request into raw, which stops growing here: at the end of the
 * head, and when a head is rejected (its 400 is logged, and the access log and log_format
 * read the headers of a rejected request too: none may be left without a name). Field
 * values lose their leading and trailing whitespace (RFC 9110 §5.5: OWS is not part of the
 * value). The path stays "" until sg_http_feed decodes it.
 */
static void take_views(sg_http *h)
{
    sg_request *r = h->req;
    if (h->views)
        return;
    h->views = true;
    switch_token(h, SG_TOK_NONE);
    sg_buf_append(&r->raw, "", 1); /* raw is never empty: base is a real pointer */
    char *base = r->raw.data + r->raw.off;
    r->uri = r->uri_len ? base + r->uri_off : "";
    r->uri_len_view = r->uri_len;
    r->path = "";
    r->path_len = 0;
    r->query = "";
    r->query_len = 0;
    r->host = NULL;
    r->host_len = 0;
    r->content_type = NULL;
    for (size_t i = 0; i < r->nheaders; i++) {
        sg_req_header *hd = &r->headers[i];
        hd->name = base + hd->name_off;
        char *v = base + hd->value_off;
        size_t n = hd->value_len;
        while (n && (*v == ' ' || *v == '\t')) {
            v++;
            n--;
        }
        while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
            n--;
        hd->value_len = n;
        if (n) {
            v[n] = '\0'; /* over the first stripped byte, or the NUL already there */
            hd->value = v;
            hd->value_off = (size_t)(v - base);
        } else {
            hd->value = ""; /* static: never rebased */
            hd->value_off = 0;
        }
    }
}

/* Does the value of a Connection header list `opt` (RFC 9110 §7.6.1; empty elements are
 * allowed by §5.6.1, so ",close" says close)? */
static bool conn_option(const sg_req_header *hd, const char *opt)
{
    const char *p = hd->value, *s;
    size_t n;
    while (sg_list_next(&p, hd->value + hd->value_len, &s, &n))
        if (sg_strieq(s, n, opt))
            return true;
    return false;
}

/*
 * The request-target (RFC 9112 §3.2): origin-form, or absolute-form with an http or https
 * URL, whose authority then wins over Host (§3.2.2). Sets the query view, where the path
 * is (h->path_off/path_len, decoded later) and, for absolute-form, the host view.
 */
static int parse_target(sg_http *h, const char *base)
{
    sg_request *r = h->req;
    const char *u = r->uri;
    size_t ulen = r->uri_len, start = 0;
    if (ulen == 0)
        return fail(h, 400, "empty request-target");
    for (size_t i = 0; i < ulen; i++)
        if ((unsigned char)u[i] <= 0x20 || u[i] == 0x7f)
            return fail(h, 400, "control character or space in the request-target");
    if (u[0] != '/') {
        if (ulen > 7 && strncasecmp(u, "http://", 7) == 0)
            start = 7;
        else if (ulen > 8 && strncasecmp(u, "https://", 8) == 0)
            start = 8;
        else
            return fail(h, 400, "request-target is neither a path nor an http(s) URL");
        size_t end = start, hl;
        while (end < ulen && u[end] != '/' && u[end] != '?' && u[end] != '#')
            end++;
        /* userinfo ("user@host") fails here too (RFC 9110 §4.2.4: treat it as an error) */
        if (!parse_host(u + start, end - start, &hl) || hl == 0)
            return fail(h, 400, "invalid authority in the request-target");
        r->host = u + start;
        r->host_len = hl;
        start = end;
    }
    /* a fragment ends everything, a '?' inside it included */
    const char *rest = u + start;
    size_t rlen = ulen - start;
    const char *hash = memchr(rest, '#', rlen);
    size_t effective = hash ? (size_t)(hash - rest) : rlen;
    const char *q = memchr(rest, '?', effective);
    size_t pathlen = q ? (size_t)(q - rest) : effective;
    if (q) {
        r->query = q + 1;
        r->query_len = effective - pathlen - 1;
    }
    /* decoded by sg_http_feed once the parser returns (appending to raw moves pointers);
     * "http://h" and "http://h?q" have an empty path, which means "/" */
    h->path_off = pathlen ? (size_t)(rest - base) : SIZE_MAX;
    h->path_len = pathlen;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    sg_http *h = from_parser(p);
    sg_request *r = h->req;
    take_views(h);
    r->method_id = (int)p->method;
    r->method = http_method_str(p->method);
    r->http_major = p->http_major;
    r->http_minor = p->http_minor;
    if (h->too_many)
        return fail(h, 431, "too many request headers");
    if (p->http_major != 1)
        return fail(h, 505, "unsupported HTTP version");
    /* http-parser hands everything after a CONNECT head over as another protocol, so its
     * body would be read as the next request; this is no forward proxy (close after 501) */
    if (p->method == HTTP_CONNECT)
        return fail(h, 501, "CONNECT is not supported");

    const char *base = r->raw.data + r->raw.off;
    int te = 0, cl = 0, hosts = 0;
    bool conn_close = false, conn_keep = false;
    const char *host = NULL;
    size_t host_len = 0;
    for (size_t i = 0; i < r->nheaders; i++) {
        sg_req_header *hd = &r->headers[i];
        if (!clean_value(hd->value, hd->value_len))
            return fail(h, 400, "invalid character in header value");
        if (!token(hd->name, hd->name_len))
            return fail(h, 400, "invalid character in header name");
        if (sg_strieq(hd->name, hd->name_len, "Transfer-Encoding")) {
            if (te++ || check_te(h, hd->value, hd->value_len))
                return h->status ? -1 : fail(h, 400, "repeated Transfer-Encoding");
        } else if (sg_strieq(hd->name, hd->name_len, "Content-Length")) {
            cl++;
        } else if (sg_strieq(hd->name, hd->name_len, "Host")) {
            if (hosts++)
                return fail(h, 400, "more than one Host header");
            if (!parse_host(hd->value, hd->value_len, &host_len))
                return fail(h, 400, "invalid Host header");
            host = hd->value;
        } else if (sg_strieq(hd->name, hd->name_len, "Content-Type")) {
            r->content_type = hd->value;
        } else if (sg_strieq(hd->name, hd->name_len, "Expect")) {
            if (sg_strieq(hd->value, hd->value_len, "100-continue"))
                r->expect_continue = p->http_minor >= 1;
        } else if (sg_strieq(hd->name, hd->name_len, "Connection")) {
            conn_close |= conn_option(hd, "close");
            conn_keep |= conn_option(hd, "keep-alive");
        }
    }
    /* RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 is faulty framing (close after the 400) */
    if (te && p->http_minor == 0)
        return fail(h, 400, "Transfer-Encoding in an HTTP/1.0 request");
    if (te && cl)
        return fail(h, 400, "both Content-Length and Transfer-Encoding");
    if (hosts == 0 && p->http_minor >= 1)
        return fail(h, 400, "HTTP/1.1 request without Host");
    if (parse_target(h, base) != 0)
        return -1;
    if (!r->host && host) { /* an absolute-form authority has set it already */
        r->host = host;
        r->host_len = host_len;
    }

    if (p->flags & F_CHUNKED) {
        r->chunked = true;
        r->has_body = true;
    } else if (p->flags & F_CONTENTLENGTH || cl) {
        if (p->content_length > (uint64_t)INT64_MAX)
            return fail(h, 413, "Content-Length beyond any limit");
        r->content_length = (int64_t)p->content_length;
        r->has_body = r->content_length > 0;
    }
    /* not http_should_keep_alive(): http-parser misses "close" after an empty list element */
    r->keepalive = !conn_close && (p->http_minor >= 1 || conn_keep);
    r->head_only = p->method == HTTP_HEAD;
    h->head_done = true;
    if (r->has_body) {
        http_parser_pause(p, 1);
        /* pausing here leaves the head's final LF unconsumed: the next feed starts with it */
        h->ck_skip_lf = true;
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    sg_http *h = from_parser(p);

    h->on_body(h->ud, at, len);
    return 0;
}

static int on_message_complete(http_parser *p)
{
    sg_http *h = from_parser(p);
    h->msg_done = true;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void sg_http_init(sg_http *h, size_t header_bytes, size_t headers, sg_http_body_cb cb, void *ud)
{
    memset(h, 0, sizeof *h);
    h->header_bytes_limit = header_bytes;
    h->headers_limit = headers;
    h->on_body = cb;
    h->ud = ud;
    /* http-parser's own head cap (80 KiB by default) is process-global: set it above any
     * limits.header_bytes once, and let the per-request limit of sg_http_feed answer (it
     * never feeds the parser more than limit + 1 head bytes). It counts chunk-size lines and
     * trailers too; check_chunked bounds those by the same per-request limit. */
    http_parser_set_max_header_size(SG_HTTP_HEAD_MAX + 64);
    http_parser_init(&h->parser, HTTP_REQUEST);
}

void sg_http_start(sg_http *h, sg_request *req)
{
    request_reset(req);
    h->req = req;
    h->head_bytes = 0;
    h->status = 0;
    h->err = NULL;
    h->tok = SG_TOK_NONE;
    h->head_done = h->msg_done = false;
    h->ck_state = CK_SIZE0;
    h->ck_skip_lf = false;
    h->cr_pending = false;
    h->lf_pending = false;
    h->too_many = false;
    h->views = false;
    h->path_off = SIZE_MAX;
    h->path_len = 0;
    h->ck_line = 0;
    h->ck_name_len = 0;
    h->ck_left = 0;
    h->ck_digits = 0;
    /* a fresh parser per request: the previous one is paused at message end */
    http_parser_init(&h->parser, HTTP_REQUEST);
}

static int unhex(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/*
 * Routing and access hooks see this path, and so do backends (SCRIPT_NAME, PATH_INFO), so
 * every spelling of one path must come out the same: "//admin/x", "/./admin/x" and
 * "/x/%2e%2e/admin/x" are all "/admin/x". An encoded slash is kept encoded (Apache's
 * AllowEncodedSlashes NoDecode): decoding it before removing dot segments would make
 * "/admin/..%2Fx" route as "/x" while a backend decoding REQUEST_URI later sees another path.
 */
long sg_http_normalize_path(const char *path, size_t len, char *out, bool *encoded_slash)
{
    size_t o = 0;
    *encoded_slash = false;
    for (size_t i = 0; i < len; i++) {
        char c = path[i];
        if (c == '%') {
            if (i + 2 >= len)
                return -1;
            int hi = unhex((unsigned char)path[i + 1]), lo = unhex((unsigned char)path[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (char)(hi * 16 + lo);
            i += 2;
            if (c == '\0')
                return -1;
            if (c == '/') { /* 3 bytes in, 3 out: the output never outgrows the input */
                memcpy(out + o, "%2F", 3);
                o += 3;
                *encoded_slash = true;
                continue;
            }
        } else if (c == '\0') {
            return -1;
        }
        out[o++] = c;
    }
    if (o == 0 || out[0] != '/')
        return -1;
    /* segment by segment, in place (the write index never passes the read index): empty
     * segments merge, "." goes, ".." drops the segment before it (RFC 3986 §5.2.4); a path
     * that ends in "/", "/." or "/.." keeps a trailing slash */
    char *s = out;
    size_t w = 0, i = 0;
    while (i < o) {
        while (i < o && s[i] == '/')
            i++;
        size_t b = i;
        while (i < o && s[i] != '/')
            i++;
        size_t n = i - b;
        bool last = i == o;
        if (n == 0) { /* the slashes ended the path */
            s[w++] = '/';
            break;
        }
        if (n == 1 && s[b] == '.') {
            if (last)
                s[w++] = '/';
            continue;
        }
        if (n == 2 && s[b] == '.' && s[b + 1] == '.') {
            if (w == 0)
                return -1; /* above the root */
            while (w > 0 && s[w - 1] != '/')
                w--;
            if (w > 0)
                w--; /* the slash before the removed segment */
            if (last)
                s[w++] = '/';
            continue;
        }
        s[w++] = '/';
        memmove(s + w, s + b, n);
        w += n;
    }
    if (w == 0)
        s[w++] = '/';
    s[w] = '\0';
    return (long)w;
}

void sg_http_log_escape(sg_buf *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    sg_buf_reserve(out, len * 4);
    char *t = sg_buf_tail(out), *t0 = t;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
            *t++ = '\\';
            *t++ = 'x';
            *t++ = hex[c >> 4];
            *t++ = hex[c & 15];
        } else {
            *t++ = (char)c;
        }
    }
    out->len += (size_t)(t - t0);
}

/* Reserves n bytes at the end of raw; if that moves the buffer, rebases every pointer. */
/* Moves p along with the buffer if it pointed into it (static "" and "/" stay put). */
static const char *rebase(const char *p, const char *old, size_t len, const char *now)
{
    if (p && old && p >= old && p <= old + len)
        return now + (p - old);
    return p;
}

static void raw_reserve(sg_request *r, size_t n)
{
    const char *base = r->raw.data ? r->raw.data + r->raw.off : NULL;
    size_t len = r->raw.len;
    sg_buf_reserve(&r->raw, n);
    const char *nb = r->raw.data + r->raw.off;
    if (!base || nb == base)
        return;
    r->uri = rebase(r->uri, base, len, nb);
    r->query = rebase(r->query, base, len, nb);
    r->path = rebase(r->path, base, len, nb);
    r->host = rebase(r->host, base, len, nb);
    r->content_type = rebase(r->content_type, base, len, nb);
    for (size_t i = 0; i < r->nheaders; i++) {
        r->headers[i].name = rebase(r->headers[i].name, base, len, nb);
        r->headers[i].value = rebase(r->headers[i].value, base, len, nb);
    }
}

/* Decodes and normalises path[0,len) into raw and points r->path at it. */
static int set_path(sg_request *r, size_t path_off, size_t len)
{
    if (path_off == SIZE_MAX) { /* absolute-form without a path: "/" */
        r->encoded_slash = false;
        raw_reserve(r, 2);
        char *out = sg_buf_tail(&r->raw);
        memcpy(out, "/", 2);
        r->path = out;
        r->path_len = 1;
        r->raw.len += 2;
        return SG_OK;
    }
    raw_reserve(r, len + 1);
    const char *base = r->raw.data + r->raw.off;
    char *out = sg_buf_tail(&r->raw);
    bool encoded_slash;
    long n = sg_http_normalize_path(base + path_off, len, out, &encoded_slash);
    if (n < 0)
        return SG_ERR;
    r->encoded_slash = encoded_slash;
    r->path = out;
    r->path_len = (size_t)n;
    r->raw.len += (size_t)n + 1;
    return SG_OK;
}

static long decode_path(sg_http *h)
{
    sg_request *r = h->req;
    if (set_path(r, h->path_off, h->path_len) != SG_OK)
        return fail(h, 400, "invalid path encoding");
    return 0;
}

int sg_request_retarget(sg_request *r, const char *target, size_t len, const char **err)
{
    if (len == 0 || target[0] != '/' || memchr(target, '\0', len)) {
        *err = "redirect target is not a local path";
        return SG_ERR;
    }
    raw_reserve(r, len + 1);
    size_t off = r->raw.len;
    sg_buf_append(&r->raw, target, len);
    sg_buf_append(&r->raw, "", 1);
    const char *t = r->raw.data + r->raw.off + off;
    const char *q = memchr(t, '?', len);
    size_t plen = q ? (size_t)(q - t) : len;
    const char *hash = memchr(t, '#', plen);
    r->uri = t;
    r->uri_len_view = len;
    r->query = q ? q + 1 : "";
    r->query_len = q ? len - plen - 1 : 0;
    if (set_path(r, off, hash ? (size_t)(hash - t) : plen) != SG_OK) {
        *err = "invalid path encoding in the redirect target";
        return SG_ERR;
    }
    /* set_path may have moved raw: the target string moved with it */
    t = r->raw.data + r->raw.off + off;
    r->uri = t;
    r->query = q ? t + plen + 1 : "";
    if (!r->head_only) {
        r->method = "GET";
        r->method_id = HTTP_GET;
    }
    r->content_type = NULL; /* the redirected request carries no body */
    return SG_OK;
}

/*
 * RFC 9112 §7.1 chunked framing, strictly: CRLF line ends (a bare LF or a stray byte where
 * CRLF belongs is how request smuggling starts), hex sizes, extensions of visible characters,
 * trailer lines, final CRLF. http-parser de-chunks; this only judges the bytes it consumed.
 */

static int chunk_framing(sg_http *h, const char *p, size_t n)
{
    size_t i = 0;
    if (h->ck_skip_lf && n > 0) {
        h->ck_skip_lf = false;
        if (p[0] == '\n')
            i = 1;
    }
    for (; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        /* a chunk-size line (extensions included) and the trailer section are bounded by
         * limits.header_bytes, as http-parser's cap (raised for the head) no longer does */
        if (h->ck_state != CK_DATA && h->ck_state != CK_DATA_CR && h->ck_state != CK_DATA_LF &&
            ++h->ck_line > h->header_bytes_limit)
            return h->ck_state >= CK_TRAILER0 ? 431 : 400;
        switch (h->ck_state) {
        case CK_SIZE0:
        case CK_SIZE:
            if (isxdigit(c)) {
                /* leading zeros are free; 15 significant hex digits exceed any body limit */
                if ((h->ck_left || c != '0') && ++h->ck_digits > 15)
                    return SG_ERR;
                h->ck_left = h->ck_left * 16 +
                             (uint64_t)(isdigit(c) ? c - '0' : (tolower(c) - 'a' + 10));
                h->ck_state = CK_SIZE;
            } else if (h->ck_state == CK_SIZE && c == ';') {
                h->ck_state = CK_EXT_PRE; /* (http-parser refuses BWS before the ";") */
            } else if (h->ck_state == CK_SIZE && c == '\r') {
                h->ck_state = CK_SIZE_LF;
            } else {
                return SG_ERR;
            }
            break;
        /* chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] ) */
        case CK_EXT_PRE:
            if (sg_is_tchar(c))
                h->ck_state = CK_EXT_NAME;
            else if (c != ' ' && c != '\t')
                return SG_ERR;
            break;
        case CK_EXT_NAME:
        case CK_EXT_POSTNAME:
            if (h->ck_state == CK_EXT_NAME && sg_is_tchar(c))
                break;
            if (c == ' ' || c == '\t')
                h->ck_state = CK_EXT_POSTNAME;
            else if (c == '=')
                h->ck_state = CK_EXT_PREVAL;
            else if (c == ';')
                h->ck_state = CK_EXT_PRE;
            else if (c == '\r' && h->ck_state == CK_EXT_NAME)
                h->ck_state = CK_SIZE_LF;
            else
                return SG_ERR;
            break;
        case CK_EXT_PREVAL:
            if (c == '"')
                h->ck_state = CK_EXT_QUOTED;
            else if (sg_is_tchar(c))
                h->ck_state = CK_EXT_VAL;
            else if (c != ' ' && c != '\t')
                return SG_ERR;
            break;
        case CK_EXT_VAL:
        case CK_EXT_POSTVAL:
        case CK_EXT_POSTVAL_Q:
            if (h->ck_state == CK_EXT_VAL && sg_is_tchar(c))
                break;
            if (c == ' ' || c == '\t')
                h->ck_state = CK_EXT_POSTVAL;
            else if (c == ';')
                h->ck_state = CK_EXT_PRE;
            else if (c == '\r' && h->ck_state != CK_EXT_POSTVAL)
                h->ck_state = CK_SIZE_LF;
            else
                return SG_ERR;
            break;
        case CK_EXT_QUOTED:
            if (c == '"')
                h->ck_state = CK_EXT_POSTVAL_Q;
            else if (c == '\\')
                h->ck_state = CK_EXT_QESC;
            else if ((c < 0x20 && c != '\t') || c == 0x7f)
                return SG_ERR;
            break;
        case CK_EXT_QESC:
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                return SG_ERR;
            h->ck_state = CK_EXT_QUOTED;
            break;
        case CK_SIZE_LF:
            if (c != '\n')
                return SG_ERR;
            h->ck_digits = 0;
            h->ck_line = 0;
            h->ck_state = h->ck_left ? CK_DATA : CK_TRAILER0;
            break;
        case CK_DATA: {
            size_t take = n - i;
            if (take > h->ck_left)
                take = (size_t)h->ck_left;
            h->ck_left -= take;
            i += take - 1;
            if (h->ck_left == 0)
                h->ck_state = CK_DATA_CR;
            break;
        }
        case CK_DATA_CR:
            if (c != '\r')
                return SG_ERR;
            h->ck_state = CK_DATA_LF;
            break;
        case CK_DATA_LF:
            if (c != '\n')
                return SG_ERR;
            h->ck_state = CK_SIZE0;
            break;
        case CK_TRAILER0:
            if (c == '\r') {
                h->ck_state = CK_END_LF;
                break;
            }
            if (c == '\n') { /* a bare LF ends field lines too (RFC 9112 §2.2) */
                h->ck_state = CK_DONE;
                break;
            }
            h->ck_state = CK_TRAILER_NAME;
            /* fall through */
        case CK_TRAILER_NAME: /* a field name is a token, right up to the colon */
            if (c == ':') {
                /* framing fields have no place in trailers (RFC 9110 §6.5.1), and
                 * http-parser would even parse a Content-Length there */
                if ((h->ck_name_len == 14 && strncasecmp(h->ck_name, "content-length", 14) == 0) ||
                    (h->ck_name_len == 17 && strncasecmp(h->ck_name, "transfer-encoding", 17) == 0))
                    return SG_ERR;
                h->ck_name_len = 0;
                h->ck_state = CK_TRAILER;
            } else if (!sg_is_tchar(c)) {
                return SG_ERR;
            } else if (h->ck_name_len < sizeof h->ck_name) {
                h->ck_name[h->ck_name_len++] = (char)c;
            } else {
                h->ck_name_len = sizeof h->ck_name + 1; /* longer than any name we look for */
            }
            break;
        case CK_TRAILER:
            if (c == '\r')
                h->ck_state = CK_TRAILER_LF;
            else if (c == '\n')
                h->ck_state = CK_TRAILER0;
            else if ((c < 0x20 && c != '\t') || c == 0x7f)
                return SG_ERR;
            break;
        case CK_TRAILER_LF:
            if (c != '\n')
                return SG_ERR;
            h->ck_state = CK_TRAILER0;
            break;
        case CK_END_LF:
            if (c != '\n')
                return SG_ERR;
            h->ck_state = CK_DONE;
            break;
        default:
            return SG_ERR; /* nothing may follow the message inside this feed */
        }
    }
    return SG_OK;
}

/* Judges the body bytes http-parser consumed; SG_OK, or SG_ERR with *status and *err. */
static int check_chunked(sg_http *h, const char *p, size_t n, int *status, const char **err)
{
    int r = chunk_framing(h, p, n);
    if (r == SG_OK)
        return SG_OK;
    *status = r == 431 ? 431 : 400;
    *err = r == 431   ? "chunked trailer section too large"
           : r == 400 ? "chunk-size line too long"
                      : "malformed chunked framing";
    return SG_ERR;
}

#define OBS_FOLD "header line starting with whitespace (obs-fold)"

/* A rejected request: its views are taken (see take_views) before the caller answers it. */
static long reject(sg_http *h, int st, const char *why, int *status, const char **err)
{
    take_views(h);
    *status = st;
    *err = why;
    return SG_ERR;
}

/* limits.header_bytes ran out: while still in the request line it is the target that is too
 * long (RFC 9112 §3: 414), else the fields (431). The parser has seen exactly limit + 1 head
 * bytes then (see sg_http_feed), so the answer does not depend on how the bytes arrived; a
 * header name in progress is already counted, http-parser reports partial tokens. */
static long too_large(sg_http *h, int *status, const char **err)
{
    if (h->req->nheaders == 0 && !h->too_many)
        return reject(h, 414, "request-target too long", status, err);
    return reject(h, 431, "request head too large", status, err);
}

long sg_http_feed(sg_http *h, const char *data, size_t len, int *events, int *status,
                  const char **err)
{
    *events = 0;
    if (len == 0)
        return 0;
    bool was_head_done = h->head_done;
    size_t feed = len;
    if (!was_head_done) {
        /* one byte past the limit at most: then the head is too large, whatever follows */
        size_t room = h->header_bytes_limit > h->head_bytes ? h->header_bytes_limit - h->head_bytes
                                                            : 0;
        if (feed > room + 1)
            feed = room + 1;
    }
    if (HTTP_PARSER_ERRNO(&h->parser) == HPE_PAUSED)
        http_parser_pause(&h->parser, 0);
    size_t n = http_parser_execute(&h->parser, &settings, data, feed);
    if (!was_head_done) {
        /* RFC 9112 §2.2: a bare CR in the head is invalid. http-parser takes "\r<any>" for
         * a line end, which lets "\r\n\rX" end a head early: a smuggling opening. */
        /* the head bytes of this feed: + the LF a pause at the end of the head left
         * unconsumed (it is part of the head, and counts against the limit as it does when
         * the parser consumes it), but nothing of a pipelined next request */
        bool parse_error = HTTP_PARSER_ERRNO(&h->parser) != HPE_OK &&
                           HTTP_PARSER_ERRNO(&h->parser) != HPE_PAUSED;
        size_t head_n = (!parse_error && h->head_done && !h->msg_done && n < feed) ? n + 1 : n;
        size_t room = h->header_bytes_limit > h->head_bytes ? h->header_bytes_limit - h->head_bytes
                                                            : 0;
        /* scanned: never past the size limit, whose 431 must not depend on the splits */
        size_t upto = head_n < room ? head_n : room;
        if (h->cr_pending && upto > 0 && data[0] != '\n')
            return reject(h, 400, "bare CR in the request head", status, err);
        if (h->lf_pending && upto > 0 && (data[0] == ' ' || data[0] == '\t'))
            return reject(h, 400, OBS_FOLD, status, err);
        h->cr_pending = h->lf_pending = false;
        /* after a parse error the bytes past it were never part of the head; and a CR on
         * the last byte the limit allows is not judged by the byte after it, which a split
         * feed never gets to see: that head is too large (431) whatever follows */
        size_t visible = parse_error ? upto : len < room ? len : room;
        for (size_t i = 0; i < upto; i++) {
            if ((unsigned char)data[i] > '\r')
                continue; /* one comparison for nearly every byte of the head */
            if (data[i] == '\n') {
                /* RFC 9112 §5.2: obs-fold (and a first header line that starts with
                 * whitespace) is refused, as nginx does; http-parser would unfold it */
                if (i + 1 < upto && (data[i + 1] == ' ' || data[i + 1] == '\t'))
                    return reject(h, 400, OBS_FOLD, status, err);
                if (i + 1 == upto)
                    h->lf_pending = !h->head_done && !parse_error;
                continue;
            }
            if (data[i] != '\r')
                continue;
            if (i + 1 >= visible) {
                h->cr_pending = !h->head_done && !parse_error; /* judged with the next feed */
                break;
            }
            if (data[i + 1] != '\n')
                return reject(h, 400, "bare CR in the request head", status, err);
        }
        h->head_bytes += head_n;
        if (h->head_bytes > h->header_bytes_limit)
            return too_large(h, status, err);
    }
    if (was_head_done && h->req->chunked && check_chunked(h, data, n, status, err) != SG_OK)
        return SG_ERR;
    enum http_errno e = HTTP_PARSER_ERRNO(&h->parser);
    if (e != HPE_OK && e != HPE_PAUSED) {
        if (h->status)
            return reject(h, h->status, h->err, status, err);
        if (e == HPE_HEADER_OVERFLOW) /* not reached: our limit answers first */
            return reject(h, 431, "request head too large", status, err);
        if (e == HPE_INVALID_TRANSFER_ENCODING)
            return reject(h, 400, "transfer coding other than chunked last", status, err);
        return reject(h, 400, http_errno_description(e), status, err);
    }
    if (!was_head_done && h->head_done) {
        if (decode_path(h) != 0)
            return reject(h, h->status, h->err, status, err);
        *events |= SG_HTTP_HEAD;
    }
    if (h->msg_done)
        *events |= SG_HTTP_DONE;
    return (long)n;
}

int sg_http_eof(sg_http *h)
{
    if (h->msg_done)
        return SG_OK;
    http_parser_execute(&h->parser, &settings, NULL, 0);
    return h->msg_done ? SG_OK : SG_ERR;
}
