/*
 * http.c: http-parser glue. Callbacks may deliver a token in several pieces (a read can end
 * anywhere), so every piece is appended to the request's raw buffer and addressed by offset;
 * pointers are only taken once the head is complete and the buffer stops moving.
 */
#include "http.h"

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
enum { CK_SIZE0, CK_SIZE, CK_EXT_PRE, CK_EXT_NAME, CK_EXT_POSTNAME, CK_EXT_PREVAL, CK_EXT_VAL,
       CK_EXT_POSTVAL, CK_EXT_QUOTED, CK_EXT_QESC, CK_EXT_POSTVAL_Q, CK_SIZE_LF, CK_DATA, CK_DATA_CR, CK_DATA_LF,
       CK_TRAILER0, CK_TRAILER_NAME, CK_TRAILER, CK_TRAILER_LF, CK_END_LF, CK_DONE };

static bool tchar(unsigned char c)
{
    return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

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
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(isalnum(c) || strchr("!#$%&'*+-.^_`|~", c)) || c == 0)
            return false;
    }
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

static int on_headers_complete(http_parser *p)
{
    sg_http *h = from_parser(p);
    sg_request *r = h->req;
    if (h->too_many)
        return fail(h, 431, "too many request headers");
    switch_token(h, SG_TOK_NONE);
    sg_buf_append(&r->raw, "", 1);
    r->method_id = (int)p->method;
    r->method = http_method_str(p->method);
    r->http_major = p->http_major;
    r->http_minor = p->http_minor;
    if (p->http_major != 1)
        return fail(h, 505, "unsupported HTTP version");

    /* the buffer is final now: take pointers */
    const char *base = r->raw.data + r->raw.off;
    r->uri = base + r->uri_off;
    r->uri_len_view = r->uri_len;
    int te = 0, cl = 0, hosts = 0;
    for (size_t i = 0; i < r->nheaders; i++) {
        sg_req_header *hd = &r->headers[i];
        hd->name = base + hd->name_off;
        hd->value = hd->value_len ? base + hd->value_off : "";
        if (hd->value_len == 0)
            hd->value_off = 0;
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
            hosts++;
            const char *v = hd->value, *colon = NULL;
            if (v[0] == '[') {
                const char *rb = memchr(v, ']', hd->value_len);
                r->host = v;
                r->host_len = rb ? (size_t)(rb - v + 1) : hd->value_len;
            } else {
                colon = memchr(v, ':', hd->value_len);
                r->host = v;
                r->host_len = colon ? (size_t)(colon - v) : hd->value_len;
            }
        } else if (sg_strieq(hd->name, hd->name_len, "Content-Type")) {
            r->content_type = hd->value;
        } else if (sg_strieq(hd->name, hd->name_len, "Expect")) {
            if (sg_strieq(hd->value, hd->value_len, "100-continue"))
                r->expect_continue = p->http_minor >= 1;
        }
    }
    if (te && cl)
        return fail(h, 400, "both Content-Length and Transfer-Encoding");
    if (hosts > 1)
        return fail(h, 400, "more than one Host header");
    if (hosts == 0 && p->http_minor >= 1)
        return fail(h, 400, "HTTP/1.1 request without Host");

    /* request-target: origin-form, or absolute-form (RFC 9112 §3.2.2) */
    const char *u = r->uri;
    size_t ulen = r->uri_len;
    const char *path = u;
    size_t plen = ulen;
    if (ulen == 0)
        return fail(h, 400, "empty request-target");
    for (size_t i = 0; i < ulen; i++)
        if ((unsigned char)u[i] <= 0x20 || u[i] == 0x7f)
            return fail(h, 400, "control character or space in the request-target");
    if (u[0] != '/') {
        struct http_parser_url pu;
        http_parser_url_init(&pu);
        if (http_parser_parse_url(u, ulen, 0, &pu) != 0 || !(pu.field_set & (1 << UF_HOST)))
            return fail(h, 400, "invalid request-target");
        if (pu.field_set & (1 << UF_PATH)) {
            path = u + pu.field_data[UF_PATH].off;
            plen = (size_t)(ulen - pu.field_data[UF_PATH].off);
        } else {
            path = NULL; /* "http://host" alone means "/" */
            plen = 0;
        }
    }
    /* a fragment ends everything, a '?' inside it included */
    const char *hash = path ? memchr(path, '#', plen) : NULL;
    size_t effective = hash ? (size_t)(hash - path) : plen;
    const char *q = path ? memchr(path, '?', effective) : NULL;
    size_t pathlen = q ? (size_t)(q - path) : effective;
    if (q) {
        r->query = q + 1;
        r->query_len = effective - pathlen - 1;
    } else {
        r->query = "";
        r->query_len = 0;
    }
    /* decoded by sg_http_feed once the parser returns (appending to raw moves pointers) */
    r->path = NULL;
    r->path_len = pathlen;
    r->uri_off = path ? (size_t)(path - base) : SIZE_MAX; /* reused: where the path starts */

    if (p->flags & F_CHUNKED) {
        r->chunked = true;
        r->has_body = true;
    } else if (p->flags & F_CONTENTLENGTH || cl) {
        if (p->content_length > (uint64_t)INT64_MAX)
            return fail(h, 413, "Content-Length beyond any limit");
        r->content_length = (int64_t)p->content_length;
        r->has_body = r->content_length > 0;
    }
    r->keepalive = http_should_keep_alive(p) != 0;
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
    h->too_many = false;
    h->ck_name_len = 0;
    h->ck_left = 0;
    h->ck_digits = 0;
    /* a fresh parser per request: the previous one is paused at message end */
    http_parser_init(&h->parser, HTTP_REQUEST);
}

long sg_http_normalize_path(const char *path, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = path[i];
        if (c == '%') {
            if (i + 2 >= len)
                return -1;
            int hi = isxdigit((unsigned char)path[i + 1]) ? path[i + 1] : -1;
            int lo = isxdigit((unsigned char)path[i + 2]) ? path[i + 2] : -1;
            if (hi < 0 || lo < 0)
                return -1;
            hi = isdigit(hi) ? hi - '0' : (tolower(hi) - 'a' + 10);
            lo = isdigit(lo) ? lo - '0' : (tolower(lo) - 'a' + 10);
            c = (char)(hi * 16 + lo);
            if (c == '\0')
                return -1;
            i += 2;
        } else if (c == '\0') {
            return -1;
        }
        out[o++] = c;
    }
    out[o] = '\0';
    /* remove dot segments (RFC 3986 §5.2.4) in place, collapsing nothing else */
    char *s = out;
    size_t w = 0;
    for (size_t i = 0; i < o;) {
        if (s[i] == '/' && i + 1 < o && s[i + 1] == '.' &&
            (i + 2 == o || s[i + 2] == '/')) {
            i += 2; /* "/." */
            if (i == o)
                s[w++] = '/';
            continue;
        }
        if (s[i] == '/' && i + 2 < o && s[i + 1] == '.' && s[i + 2] == '.' &&
            (i + 3 == o || s[i + 3] == '/')) {
            if (w == 0)
                return -1; /* above the root */
            while (w > 0 && s[w - 1] != '/')
                w--;
            if (w > 0)
                w--; /* drop the slash before the removed segment */
            i += 3;
            if (i == o)
                s[w++] = '/';
            continue;
        }
        s[w++] = s[i++];
    }
    if (w == 0)
        s[w++] = '/';
    s[w] = '\0';
    return (long)w;
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
    long n = sg_http_normalize_path(base + path_off, len, out);
    if (n < 0 || out[0] != '/')
        return SG_ERR;
    r->path = out;
    r->path_len = (size_t)n;
    r->raw.len += (size_t)n + 1;
    return SG_OK;
}

static long decode_path(sg_http *h)
{
    sg_request *r = h->req;
    if (set_path(r, r->uri_off, r->path_len) != SG_OK)
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

static int check_chunked(sg_http *h, const char *p, size_t n)
{
    size_t i = 0;
    if (h->ck_skip_lf && n > 0) {
        h->ck_skip_lf = false;
        if (p[0] == '\n')
            i = 1;
    }
    for (; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        switch (h->ck_state) {
        case CK_SIZE0:
        case CK_SIZE:
            if (isxdigit(c)) {
                /* leading zeros are free; 15 significant hex digits exceed any body limit */
                if ((h->ck_left || c != '0') && ++h->ck_digits > 15)
                    return SG_ERR;
                h->ck_left = h->ck_left * 16 + (uint64_t)(isdigit(c) ? c - '0' : (tolower(c) - 'a' + 10));
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
            if (tchar(c))
                h->ck_state = CK_EXT_NAME;
            else if (c != ' ' && c != '\t')
                return SG_ERR;
            break;
        case CK_EXT_NAME:
        case CK_EXT_POSTNAME:
            if (h->ck_state == CK_EXT_NAME && tchar(c))
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
            else if (tchar(c))
                h->ck_state = CK_EXT_VAL;
            else if (c != ' ' && c != '\t')
                return SG_ERR;
            break;
        case CK_EXT_VAL:
        case CK_EXT_POSTVAL:
        case CK_EXT_POSTVAL_Q:
            if (h->ck_state == CK_EXT_VAL && tchar(c))
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
            } else if (!tchar(c)) {
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

long sg_http_feed(sg_http *h, const char *data, size_t len, int *events, int *status,
                  const char **err)
{
    *events = 0;
    if (len == 0)
        return 0;
    bool was_head_done = h->head_done;
    if (HTTP_PARSER_ERRNO(&h->parser) == HPE_PAUSED)
        http_parser_pause(&h->parser, 0);
    size_t n = http_parser_execute(&h->parser, &settings, data, len);
    if (!was_head_done) {
        /* RFC 9112 §2.2: a bare CR in the head is invalid. http-parser takes "\r<any>" for
         * a line end, which lets "\r\n\rX" end a head early: a smuggling opening. */
        /* the head bytes of this feed: + the LF a pause at the end of the head left
         * unconsumed, but nothing of a pipelined next request; and never past the size
         * limit, whose 431 must not depend on how the bytes were split */
        bool parse_error = HTTP_PARSER_ERRNO(&h->parser) != HPE_OK &&
                           HTTP_PARSER_ERRNO(&h->parser) != HPE_PAUSED;
        size_t upto = (!parse_error && h->head_done && !h->msg_done && n < len) ? n + 1 : n;
        size_t room = h->header_bytes_limit > h->head_bytes ? h->header_bytes_limit - h->head_bytes : 0;
        if (upto > room)
            upto = room;
        if (h->cr_pending && upto > 0 && data[0] != '\n') {
            *status = 400;
            *err = "bare CR in the request head";
            return SG_ERR;
        }
        h->cr_pending = false;
        /* after a parse error the bytes past it were never part of the head */
        size_t visible = parse_error ? upto : len;
        for (size_t i = 0; i < upto; i++) {
            if (data[i] != '\r')
                continue;
            if (i + 1 >= visible) {
                h->cr_pending = !h->head_done && !parse_error; /* judged with the next feed */
                break;
            }
            if (data[i + 1] != '\n') {
                *status = 400;
                *err = "bare CR in the request head";
                return SG_ERR;
            }
        }
        if (h->head_bytes + n > h->header_bytes_limit) {
            *status = 431;
            *err = "request head too large";
            return SG_ERR;
        }
    }
    if (was_head_done && h->req->chunked && check_chunked(h, data, n) != SG_OK) {
        *status = 400;
        *err = "malformed chunked framing";
        return SG_ERR;
    }
    enum http_errno e = HTTP_PARSER_ERRNO(&h->parser);
    if (!was_head_done) {
        size_t head_part = n;
        h->head_bytes += head_part;
        if (h->head_bytes > h->header_bytes_limit) {
            *status = 431;
            *err = "request head too large";
            return SG_ERR;
        }
    }
    if (e != HPE_OK && e != HPE_PAUSED) {
        if (h->status) {
            *status = h->status;
            *err = h->err;
        } else if (e == HPE_HEADER_OVERFLOW) {
            *status = 431;
            *err = "request head too large";
        } else if (e == HPE_INVALID_TRANSFER_ENCODING) {
            *status = 400;
            *err = "transfer coding other than chunked last";
        } else {
            *status = 400;
            *err = http_errno_description(e);
        }
        return SG_ERR;
    }
    if (!was_head_done && h->head_done) {
        if (decode_path(h) != 0) {
            *status = h->status;
            *err = h->err;
            return SG_ERR;
        }
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
