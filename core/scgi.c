/*
 * scgi.c: SCGI request encoding and CGI response-head parsing. Variables are stored as
 * offsets into one string buffer so that growing it never leaves dangling pointers; a set
 * is reused across requests on the same connection without reallocation.
 */
#include "scgi.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util.h"

void sg_scgi_vars_init(sg_scgi_vars *vars)
{
    vars->v = NULL;
    vars->n = vars->cap = 0;
    sg_buf_init(&vars->strings);
}

void sg_scgi_vars_reset(sg_scgi_vars *vars)
{
    vars->n = 0;
    sg_buf_reset(&vars->strings);
}

void sg_scgi_vars_free(sg_scgi_vars *vars)
{
    free(vars->v);
    sg_buf_free(&vars->strings);
    sg_scgi_vars_init(vars);
}

static size_t store(sg_scgi_vars *vars, const char *s, size_t len)
{
    size_t off = vars->strings.len;
    sg_buf_reserve(&vars->strings, len + 1);
    char *t = sg_buf_tail(&vars->strings);
    if (len) /* an empty value may come from a never-written buffer (s == NULL) */
        memcpy(t, s, len);
    t[len] = '\0';
    vars->strings.len += len + 1;
    return off;
}

static const char *str_at(const sg_scgi_vars *vars, size_t off)
{
    return vars->strings.data + vars->strings.off + off;
}

static sg_scgi_var *find(sg_scgi_vars *vars, const char *name, size_t name_len)
{
    for (size_t i = 0; i < vars->n; i++) {
        sg_scgi_var *v = &vars->v[i];
        if (v->name_len == name_len && memcmp(str_at(vars, v->name_off), name, name_len) == 0)
            return v;
    }
    return NULL;
}

/* A value is cut at an embedded NUL, so client input can never break the framing. */
static size_t cut(const char *value, size_t len)
{
    if (len == 0)
        return 0;
    const char *z = memchr(value, '\0', len);
    return z ? (size_t)(z - value) : len;
}

void sg_scgi_add(sg_scgi_vars *vars, const char *name, size_t name_len, const char *value,
                 size_t value_len)
{
    if (vars->n == vars->cap) {
        vars->cap = vars->cap ? vars->cap * 2 : 32;
        vars->v = sg_xrealloc(vars->v, vars->cap * sizeof *vars->v);
    }
    sg_scgi_var *v = &vars->v[vars->n++];
    value_len = cut(value, value_len);
    /* name and value stored back to back: one reservation, every request builds ~15 */
    sg_buf *b = &vars->strings;
    if (sg_buf_room(b) < name_len + value_len + 2)
        sg_buf_reserve(b, name_len + value_len + 2);
    char *t = sg_buf_tail(b);
    memcpy(t, name, name_len);
    t[name_len] = '\0';
    if (value_len) /* an empty value may come from a never-written buffer (value == NULL) */
        memcpy(t + name_len + 1, value, value_len);
    t[name_len + 1 + value_len] = '\0';
    v->name_off = b->len;
    v->name_len = name_len;
    v->value_off = b->len + name_len + 1;
    v->value_len = value_len;
    v->removed = false;
    b->len += name_len + value_len + 2;
}

void sg_scgi_set(sg_scgi_vars *vars, const char *name, size_t name_len, const char *value,
                 size_t value_len)
{
    sg_scgi_var *v = find(vars, name, name_len);
    if (!v) {
        sg_scgi_add(vars, name, name_len, value, value_len);
        return;
    }
    value_len = cut(value, value_len);
    v->value_off = store(vars, value, value_len);
    v->value_len = value_len;
    v->removed = false;
}

void sg_scgi_set_str(sg_scgi_vars *vars, const char *name, const char *value)
{
    sg_scgi_set(vars, name, strlen(name), value, strlen(value));
}

void sg_scgi_join(sg_scgi_vars *vars, const char *name, size_t name_len, const char *value,
                  size_t value_len, const char *sep)
{
    sg_scgi_var *v = find(vars, name, name_len);
    if (!v) { /* the usual case (a header seen once): no second lookup */
        sg_scgi_add(vars, name, name_len, value, value_len);
        return;
    }
    if (v->removed) {
        sg_scgi_set(vars, name, name_len, value, value_len);
        return;
    }
    value_len = cut(value, value_len);
    size_t seplen = strlen(sep), oldlen = v->value_len, oldoff = v->value_off;
    size_t off = vars->strings.len;
    sg_buf_reserve(&vars->strings, oldlen + seplen + value_len + 1);
    char *t = sg_buf_tail(&vars->strings);
    memcpy(t, str_at(vars, oldoff), oldlen);
    memcpy(t + oldlen, sep, seplen);
    memcpy(t + oldlen + seplen, value, value_len);
    t[oldlen + seplen + value_len] = '\0';
    vars->strings.len += oldlen + seplen + value_len + 1;
    v->value_off = off;
    v->value_len = oldlen + seplen + value_len;
}

void sg_scgi_remove(sg_scgi_vars *vars, const char *name, size_t name_len)
{
    sg_scgi_var *v = find(vars, name, name_len);
    if (v)
        v->removed = true;
}

const char *sg_scgi_get(const sg_scgi_vars *vars, const char *name, size_t *value_len)
{
    sg_scgi_var *v = find((sg_scgi_vars *)vars, name, strlen(name));
    if (!v || v->removed)
        return NULL;
    if (value_len)
        *value_len = v->value_len;
    return str_at(vars, v->value_off);
}

size_t sg_scgi_http_name(const char *name, size_t name_len, char *out)
{
    memcpy(out, "HTTP_", 5);
    for (size_t i = 0; i < name_len; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (ch == '-')
            out[5 + i] = '_';
        else if (isalnum(ch))
            out[5 + i] = (char)toupper(ch);
        else
            return 0;
    }
    out[5 + name_len] = '\0';
    return 5 + name_len;
}

static size_t digits(uint64_t n)
{
    size_t d = 1;
    while (n >= 10) {
        n /= 10;
        d++;
    }
    return d;
}

size_t sg_netstring_size(size_t len)
{
    return digits(len) + 1 + len + 1;
}

static bool reserved(const char *name, size_t len)
{
    return (len == 14 && memcmp(name, "CONTENT_LENGTH", 14) == 0) ||
           (len == 4 && memcmp(name, "SCGI", 4) == 0);
}

void sg_scgi_encode(const sg_scgi_vars *vars, uint64_t content_length, sg_buf *out)
{
    char cl[24];
    size_t cllen = sg_fmt_u64(cl, content_length, 10);
    size_t payload = sizeof "CONTENT_LENGTH" + cllen + 1 + sizeof "SCGI" + 2;
    for (size_t i = 0; i < vars->n; i++) {
        const sg_scgi_var *v = &vars->v[i];
        if (!v->removed && !reserved(str_at(vars, v->name_off), v->name_len))
            payload += v->name_len + 1 + v->value_len + 1;
    }
    /* two passes, one allocation: size the netstring, then write it */
    sg_buf_reserve(out, sg_netstring_size(payload));
    char *t = sg_buf_tail(out);
    size_t o = sg_fmt_u64(t, payload, 10);
    t[o++] = ':';
    memcpy(t + o, "CONTENT_LENGTH", sizeof "CONTENT_LENGTH");
    o += sizeof "CONTENT_LENGTH";
    memcpy(t + o, cl, cllen);
    o += cllen;
    t[o++] = '\0';
    memcpy(t + o,
           "SCGI\0"
           "1",
           sizeof "SCGI" + 2);
    o += sizeof "SCGI" + 2;
    for (size_t i = 0; i < vars->n; i++) {
        const sg_scgi_var *v = &vars->v[i];
        const char *name = str_at(vars, v->name_off);
        if (v->removed || reserved(name, v->name_len))
            continue;
        if (v->value_off == v->name_off + v->name_len + 1) {
            /* as sg_scgi_add stored it, "name\0value\0": already the wire form */
            memcpy(t + o, name, v->name_len + v->value_len + 2);
            o += v->name_len + v->value_len + 2;
            continue;
        }
        memcpy(t + o, name, v->name_len + 1); /* stored NUL-terminated */
        o += v->name_len + 1;
        memcpy(t + o, str_at(vars, v->value_off), v->value_len);
        o += v->value_len;
        t[o++] = '\0';
    }
    t[o++] = ',';
    out->len += o;
}

/* ---- response head ---- */

long sg_cgi_head_end(const char *buf, size_t len, size_t *scan, size_t max)
{
    /* the head, blank line included, must fit in `max` bytes: only look that far */
    size_t limit = len < max ? len : max;
    size_t i = *scan;
    while (i < limit) {
        const char *nl = memchr(buf + i, '\n', limit - i);
        if (!nl) {
            i = limit;
            break;
        }
        i = (size_t)(nl - buf);
        /* the blank line is "\n" right after a line end (or at the very start) */
        if (i == 0 || buf[i - 1] == '\n')
            return (long)(i + 1);
        if (buf[i - 1] == '\r' && (i == 1 || buf[i - 2] == '\n'))
            return (long)(i + 1);
        i++;
    }
    *scan = i;
    return len >= max ? SG_ERR : SG_AGAIN;
}

/* What a response header name means to the parser; compared by length first, so a name
 * costs one or two comparisons instead of eleven. */
enum { H_OTHER, H_STATUS, H_CONNECTION, H_HOP, H_CONTENT_LENGTH, H_LOCATION };

static int classify(const char *n, size_t len)
{
    switch (len) {
    case 2:
        return sg_strieq(n, len, "TE") ? H_HOP : H_OTHER;
    case 6:
        return sg_strieq(n, len, "Status") ? H_STATUS : H_OTHER;
    case 7:
        return sg_strieq(n, len, "Upgrade") || sg_strieq(n, len, "Trailer") ? H_HOP : H_OTHER;
    case 8:
        return sg_strieq(n, len, "Location") ? H_LOCATION : H_OTHER;
    case 10:
        if (sg_strieq(n, len, "Connection"))
            return H_CONNECTION;
        return sg_strieq(n, len, "Keep-Alive") ? H_HOP : H_OTHER;
    case 14:
        return sg_strieq(n, len, "Content-Length") ? H_CONTENT_LENGTH : H_OTHER;
    case 16:
        return sg_strieq(n, len, "Proxy-Connection") ? H_HOP : H_OTHER;
    case 17:
        return sg_strieq(n, len, "Transfer-Encoding") ? H_HOP : H_OTHER;
    default:
        return H_OTHER;
    }
}

static int parse_status(const char *s, size_t len, sg_cgi_head *h)
{
    if (len < 3 || !isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]) ||
        !isdigit((unsigned char)s[2]) || (len > 3 && s[3] != ' ' && s[3] != '\t'))
        return SG_ERR;
    int st = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
    if (st < 100 || st > 599)
        return SG_ERR;
    h->status = st;
    size_t r = 3;
    while (r < len && (s[r] == ' ' || s[r] == '\t'))
        r++;
    h->reason = r < len ? s + r : NULL;
    h->reason_len = len - r;
    return SG_OK;
}

/* RFC 9110 §5.5: field values (and reason phrases) are VCHAR, obs-text, SP and HTAB */
static bool has_ctl(const char *s, size_t len)
{
    size_t i = 0;
    /* eight bytes at a time while none is below 0x20 or 0x7f (a tab sends the word to the
     * byte loop): every byte of every backend head passes here */
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
        uint64_t low = (w - ones * 0x20) & ~w & highs, x = w ^ (ones * 0x7f),
                 del = (x - ones) & ~x & highs;
        if (low | del)
            break;
    }
    for (; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return true;
    }
    return false;
}

/* Is `name` one of the tokens of the Connection values in conn[0, n)? */
static bool listed(const sg_iov *conn, size_t n, const char *name, size_t nlen)
{
    for (size_t i = 0; i < n; i++) {
        const char *p = conn[i].base, *end = conn[i].base + conn[i].len, *tok;
        size_t tlen;
        while (sg_list_next(&p, end, &tok, &tlen))
            if (tlen == nlen && strncasecmp(tok, name, nlen) == 0)
                return true;
    }
    return false;
}

/* Drops the headers a Connection header named (RFC 9110 §7.6.1): they were meant for the
 * hop between the backend and us, wherever in the head they stood. */
static void drop_listed(sg_cgi_head *h, const sg_iov *conn, size_t n)
{
    size_t kept = 0;
    h->location = NULL;
    for (size_t i = 0; i < h->nheaders; i++) {
        const sg_cgi_header *hd = &h->headers[i];
        if (listed(conn, n, hd->name, hd->name_len))
            continue;
        h->headers[kept] = *hd;
        if (sg_strieq(hd->name, hd->name_len, "Location"))
            h->location = &h->headers[kept];
        kept++;
    }
    h->nheaders = kept;
}

static int parse_length(const char *s, size_t len, int64_t *out)
{
    int64_t v = 0;
    if (len == 0 || len > 18)
        return SG_ERR;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i]))
            return SG_ERR;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return SG_OK;
}

int sg_cgi_parse(const char *buf, size_t head_len, sg_cgi_head *h, const char **err)
{
    const char *p = buf, *end = buf + head_len;
    bool have_status = false;
    sg_iov conn[8]; /* Connection values: their names are dropped once all headers are in */
    size_t nconn = 0;
    h->status = 0;
    h->reason = NULL;
    h->reason_len = 0;
    h->content_length = -1;
    h->location = NULL;
    h->nheaders = 0;
    h->head_len = head_len;

    for (bool first = true; p < end; first = false) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) { /* cannot happen for a head found by sg_cgi_head_end */
            *err = "truncated header";
            return SG_ERR;
        }
        const char *le = nl;
        if (le > p && le[-1] == '\r')
            le--;
        if (le == p)
            break; /* the blank line */
        size_t llen = (size_t)(le - p);
        if (has_ctl(p, llen)) {
            *err = "control character in header";
            return SG_ERR;
        }
        if (first && llen >= 9 && memcmp(p, "HTTP/1.", 7) == 0 && p[8] == ' ') {
            if (parse_status(p + 9, llen - 9, h) != SG_OK) {
                *err = "invalid status line";
                return SG_ERR;
            }
            have_status = true;
            p = nl + 1;
            continue;
        }
        const char *colon = memchr(p, ':', llen);
        if (!colon || colon == p) {
            *err = "malformed header line";
            return SG_ERR;
        }
        size_t nlen = (size_t)(colon - p);
        for (size_t i = 0; i < nlen; i++)
            if (!sg_is_tchar((unsigned char)p[i])) {
                *err = "invalid header name";
                return SG_ERR;
            }
        const char *v = colon + 1, *ve = le;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        size_t vlen = (size_t)(ve - v);
        p = nl + 1;

        const char *name = colon - nlen;
        int kind = classify(name, nlen);
        if (kind == H_STATUS) {
            if (have_status || parse_status(v, vlen, h) != SG_OK) {
                *err = have_status ? "duplicate Status" : "invalid Status";
                return SG_ERR;
            }
            have_status = true;
            continue;
        }
        if (kind == H_CONNECTION) {
            if (nconn == SG_ARRAY_LEN(conn)) {
                *err = "too many Connection headers";
                return SG_ERR;
            }
            conn[nconn++] = (sg_iov){ v, vlen };
            continue;
        }
        if (kind == H_HOP)
            continue;
        if (kind == H_CONTENT_LENGTH) {
            int64_t cl;
            if (parse_length(v, vlen, &cl) != SG_OK ||
                (h->content_length >= 0 && h->content_length != cl)) {
                *err = "invalid Content-Length";
                return SG_ERR;
            }
            if (h->content_length >= 0)
                continue; /* identical duplicate: pass one */
            h->content_length = cl;
        }
        if (h->nheaders == SG_CGI_MAX_HEADERS) {
            *err = "too many headers";
            return SG_ERR;
        }
        sg_cgi_header *hd = &h->headers[h->nheaders++];
        hd->name = name;
        hd->name_len = nlen;
        hd->value = v;
        hd->value_len = vlen;
        if (kind == H_LOCATION)
            h->location = hd;
    }
    if (nconn)
        drop_listed(h, conn, nconn);
    if (!have_status) {
        /* RFC 3875 §6.2.3: a client redirect (absolute URI) without Status means 302 */
        bool local = h->location && h->location->value_len > 0 && h->location->value[0] == '/' &&
                     !(h->location->value_len > 1 && h->location->value[1] == '/');
        h->status = (h->location && !local) ? 302 : 200;
    }
    return SG_OK;
}

bool sg_http_status_has_body(int status)
{
    return status >= 200 && status != 204 && status != 304;
}

bool sg_http_response_has_body(int status, bool head_request)
{
    return !head_request && sg_http_status_has_body(status);
}

const char *sg_http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 103:
        return "Early Hints";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 416:
        return "Range Not Satisfiable";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Unknown";
    }
}
