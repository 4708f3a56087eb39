/*
 * fuzz_chunked.c: libFuzzer harness for the chunked request-body decoder (http-parser as
 * driven by core/http.c). The fuzz bytes follow a fixed chunked POST head; the gateway's
 * outcome (error, message complete, or waiting for more) and the body it delivered are
 * compared with a small reference de-chunker written straight from the RFC 9112 §7.1
 * grammar. It does not test Content-Length bodies or conn.c's body limits.
 *
 * Input: byte 0  piece size for feeding (0: everything at once, else 1 + byte 0 % 64)
 *        rest    the bytes after the head: chunks, trailers, maybe a pipelined request
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "http.h"
#include "util.h"

#include "fuzz_common.h"

static const char head[] = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";

/* ---- reference de-chunker: RFC 9112 §7.1, strict, one pass, no state kept ---- */

enum { REF_DONE, REF_MORE, REF_BAD };

typedef struct ref_result {
    int state;
    size_t end;      /* REF_DONE: bytes the message took; REF_BAD: offset of the bad byte */
    const char *tag; /* REF_BAD: which rule was broken */
    fuzz_log body;   /* chunk data decoded so far (the whole body when REF_DONE) */
} ref_result;

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* tchar (RFC 9110 §5.6.2) */
static bool tchar(uint8_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* field-vchar / SP / HTAB (RFC 9110 §5.5), obs-text included */
static bool field_char(uint8_t c)
{
    return c == ' ' || c == '\t' || (c >= 0x21 && c != 0x7f);
}

static bool qdtext(uint8_t c)
{
    return c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5b) ||
           (c >= 0x5d && c <= 0x7e) || c >= 0x80;
}

static int bad(ref_result *r, size_t at, const char *tag)
{
    r->state = REF_BAD;
    r->end = at;
    r->tag = tag;
    return REF_BAD;
}

static int more(ref_result *r)
{
    r->state = REF_MORE;
    return REF_MORE;
}

static void skip_bws(const uint8_t *p, size_t len, size_t *i)
{
    while (*i < len && (p[*i] == ' ' || p[*i] == '\t'))
        (*i)++;
}

/* Reads "\r\n" at *i; `tag` names the rule if something else is there. */
static int crlf(ref_result *r, const uint8_t *p, size_t len, size_t *i, const char *tag)
{
    if (*i == len)
        return more(r);
    if (p[*i] != '\r')
        return bad(r, *i, tag);
    if (*i + 1 == len)
        return more(r);
    if (p[*i + 1] != '\n')
        return bad(r, *i + 1, tag);
    *i += 2;
    return REF_DONE;
}

/* A field line ends in CRLF or a bare LF. */
static int field_line_end(ref_result *r, const uint8_t *p, size_t len, size_t *i)
{
    if (*i < len && p[*i] == '\n') {
        (*i)++;
        return REF_DONE;
    }
    return crlf(r, p, len, i, "trailer-line-end");
}

/*
 * chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ), up to the CR.
 * Tags: "chunk-size" for a stray byte right after the digits, "chunk-ext" for a control byte
 * (LF, NUL, ...) in the extensions, "chunk-ext-syntax" for visible bytes or whitespace that
 * break the grammar (extensions are discarded, so that one is about strictness, not safety).
 */
static int ext_bad(ref_result *r, const uint8_t *p, size_t at)
{
    /* a CR here ends the line early: an element is missing, which is syntax */
    bool ctl = (p[at] < 0x20 && p[at] != '\t' && p[at] != '\r') || p[at] == 0x7f;
    return bad(r, at, ctl ? "chunk-ext" : "chunk-ext-syntax");
}

static int chunk_ext(ref_result *r, const uint8_t *p, size_t len, size_t *i)
{
    for (bool first = true;; first = false) {
        size_t ws = *i;
        /* RFC 9112 allows BWS between the size and the first ";", but http-parser 2.9
         * rejects it; the gateway keeps that stricter answer, so the reference does too */
        if (first && ws < len && (p[ws] == ' ' || p[ws] == '\t'))
            return bad(r, ws, "chunk-size");
        skip_bws(p, len, i);
        if (*i == len)
            return more(r);
        if (p[*i] == '\r')
            return *i > ws ? bad(r, ws, "chunk-ext-syntax") : REF_DONE;
        if (p[*i] != ';')
            return first && *i == ws ? bad(r, *i, "chunk-size") : ext_bad(r, p, *i);
        (*i)++;
        skip_bws(p, len, i);
        size_t name = *i;
        while (*i < len && tchar(p[*i]))
            (*i)++;
        if (*i == len)
            return more(r);
        if (*i == name)
            return ext_bad(r, p, *i);
        ws = *i;
        skip_bws(p, len, i);
        if (*i == len)
            return more(r);
        if (p[*i] != '=') {
            *i = ws; /* the BWS belongs to the next ";" or is an error there */
            continue;
        }
        (*i)++;
        skip_bws(p, len, i);
        if (*i == len)
            return more(r);
        if (p[*i] == '"') {
            for ((*i)++;; (*i)++) {
                if (*i == len)
                    return more(r);
                if (p[*i] == '"')
                    break;
                if (p[*i] == '\\') {
                    if (++*i == len)
                        return more(r);
                    if (!field_char(p[*i]))
                        return ext_bad(r, p, *i);
                } else if (!qdtext(p[*i])) {
                    return ext_bad(r, p, *i);
                }
            }
            (*i)++;
        } else {
            size_t v = *i;
            while (*i < len && tchar(p[*i]))
                (*i)++;
            if (*i == len)
                return more(r);
            if (*i == v)
                return ext_bad(r, p, *i);
        }
    }
}

static int ref_dechunk(const uint8_t *p, size_t len, ref_result *r)
{
    size_t i = 0;
    for (;;) {
        /* chunk-size = 1*HEXDIG, then extensions and CRLF */
        size_t start = i;
        uint64_t size = 0;
        for (; i < len && hexval(p[i]) >= 0; i++) {
            /* 16 significant hex digits (2^60 bytes and up) exceed any body limit: the
             * gateway refuses them, so the reference does too */
            if (size >> 56)
                return bad(r, i, "chunk-size-overflow");
            size = size << 4 | (uint64_t)hexval(p[i]);
        }
        if (i == len)
            return more(r);
        if (i == start)
            return bad(r, i, "chunk-size");
        if (chunk_ext(r, p, len, &i) != REF_DONE)
            return r->state;
        if (crlf(r, p, len, &i, "chunk-size-line-end") != REF_DONE)
            return r->state;
        if (size == 0)
            break;
        size_t have = len - i;
        if (have < size) {
            fuzz_log_put(&r->body, p + i, have);
            return more(r);
        }
        fuzz_log_put(&r->body, p + i, (size_t)size);
        i += (size_t)size;
        if (crlf(r, p, len, &i, "chunk-data-end") != REF_DONE)
            return r->state;
    }
    /*
     * trailer-section = *( field-line CRLF ), then CRLF. As for any field line, a bare LF may
     * end a line (RFC 9112 §2.2), and obs-fold is let through: trailers are discarded, never
     * interpreted or forwarded (§5.2 allows replacing a fold with SP in that case).
     */
    for (bool after_field = false;; after_field = true) {
        if (i == len)
            return more(r);
        if (p[i] == '\r' || p[i] == '\n') {
            if (field_line_end(r, p, len, &i) != REF_DONE)
                return r->state;
            r->state = REF_DONE;
            r->end = i;
            return REF_DONE;
        }
        if (after_field && (p[i] == ' ' || p[i] == '\t')) {
            /* obs-fold: RFC 9112 §5.2 lets a server reject it with 400, which the gateway
             * does, so the reference refuses it too */
            return bad(r, i, "trailer-obs-fold");
        } else {
            size_t name = i;
            while (i < len && tchar(p[i]))
                i++;
            if (i == len)
                return more(r);
            if (i == name || p[i] != ':')
                return bad(r, i, "trailer-name");
            /* framing fields have no place in trailers (RFC 9110 §6.5.1): refused */
            if ((i - name == 14 &&
                 strncasecmp((const char *)p + name, "content-length", 14) == 0) ||
                (i - name == 17 &&
                 strncasecmp((const char *)p + name, "transfer-encoding", 17) == 0))
                return bad(r, name, "trailer-framing-field");
            for (i++; i < len && field_char(p[i]); i++)
                ;
        }
        if (i < len && p[i] != '\r' && p[i] != '\n')
            return bad(r, i, "trailer-value");
        if (field_line_end(r, p, len, &i) != REF_DONE)
            return r->state;
    }
}

/* ---- the gateway ---- */

enum { GW_ERROR, GW_DONE, GW_MORE };

typedef struct gw_result {
    int state, status;
    const char *err;
    size_t end; /* GW_DONE: bytes after the head the message took */
    fuzz_log body;
} gw_result;

static void on_body(void *ud, const char *data, size_t len)
{
    fuzz_log_put(&((gw_result *)ud)->body, data, len);
}

static void gw_parse(const char *msg, size_t len, size_t step, gw_result *g)
{
    sg_http h;
    sg_request q;
    sg_request_init(&q);
    sg_http_init(&h, 16384, 100, on_body, g);
    sg_http_start(&h, &q);
    size_t off = 0, avail = 0;
    bool saw_head = false;
    g->state = GW_MORE;
    for (;;) {
        if (off == avail) {
            if (avail == len)
                break;
            avail = step && len - avail > step ? avail + step : len;
            continue;
        }
        int events, status = 0;
        const char *err = NULL;
        long n = sg_http_feed(&h, msg + off, avail - off, &events, &status, &err);
        if (n < 0) {
            g->state = GW_ERROR;
            g->status = status;
            g->err = err;
            break;
        }
        off += (size_t)n;
        if (events & SG_HTTP_HEAD) {
            saw_head = true;
            FUZZ_CHECK(q.chunked && q.has_body, "harness-head", "the fixed head is not chunked");
        }
        if (events & SG_HTTP_DONE) {
            g->state = GW_DONE;
            g->end = off - (sizeof head - 1);
            break;
        }
        FUZZ_CHECK(n > 0 || events, "stalled", "nothing consumed from %zu bytes, no event",
                   avail - off);
    }
    FUZZ_CHECK(saw_head || off < sizeof head - 1, "harness-head",
               "the fixed head was not reported");
    sg_request_free(&q);
}

static bool is_prefix(const fuzz_log *a, const fuzz_log *b)
{
    return a->len <= b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = data[0] ? 1 + data[0] % 64 : 0;
    const uint8_t *body = data + 1;
    size_t blen = size - 1, hlen = sizeof head - 1;
    char *msg = sg_xmalloc(hlen + blen); /* exact size: ASan sees reads past the end */
    memcpy(msg, head, hlen);
    memcpy(msg + hlen, body, blen);

    ref_result ref = { 0 };
    gw_result gw = { 0 };
    ref_dechunk(body, blen, &ref);
    gw_parse(msg, hlen + blen, step, &gw);

    char tag[64];
    if (gw.state == GW_DONE) {
        snprintf(tag, sizeof tag, "%s%s", ref.tag ? "lenient-" : "complete-early",
                 ref.tag ? ref.tag : "");
        FUZZ_CHECK(ref.state == REF_DONE, tag,
                   "message complete after %zu bytes, reference: %s at byte %zu", gw.end,
                   ref.state == REF_BAD ? ref.tag : "needs more", ref.end);
        if (ref.state == REF_DONE) {
            FUZZ_CHECK(gw.end == ref.end, "message-end", "the message ends at %zu, reference %zu",
                       gw.end, ref.end);
            FUZZ_CHECK(gw.body.len == ref.body.len && is_prefix(&gw.body, &ref.body), "body",
                       "%zu body bytes delivered, reference %zu (or they differ)", gw.body.len,
                       ref.body.len);
        }
    } else if (ref.state == REF_BAD) {
        snprintf(tag, sizeof tag, "lenient-%s", ref.tag);
        FUZZ_CHECK(gw.state == GW_ERROR, tag, "reference rejects byte %zu (%s), gateway %s",
                   ref.end, ref.tag, "waits for more");
        if (gw.state == GW_ERROR)
            FUZZ_CHECK(gw.status == 400, "error-status", "status %d (%s) for bad chunked framing",
                       gw.status, gw.err ? gw.err : "-");
    } else if (ref.state == REF_DONE) {
        FUZZ_CHECK(false, gw.state == GW_ERROR ? "rejected-valid" : "incomplete-valid",
                   "a valid %zu-byte chunked body: gateway %s %d (%s)", ref.end,
                   gw.state == GW_ERROR ? "error" : "waits", gw.status, gw.err ? gw.err : "-");
    } else { /* the reference needs more: so must the gateway */
        FUZZ_CHECK(gw.state == GW_MORE, "rejected-valid", "a valid prefix rejected with %d (%s)",
                   gw.status, gw.err ? gw.err : "-");
    }
    if (ref.state != REF_BAD)
        FUZZ_CHECK(is_prefix(&gw.body, &ref.body), "body",
                   "delivered %zu body bytes that are not the reference's %zu", gw.body.len,
                   ref.body.len);

    fuzz_log_free(&ref.body);
    fuzz_log_free(&gw.body);
    free(msg);
    return 0;
}
