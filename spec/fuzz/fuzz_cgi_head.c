/*
 * fuzz_cgi_head.c: libFuzzer harness for the backend response-head scanner and parser
 * (sg_cgi_head_end, sg_cgi_parse in core/scgi.c). The head is looked for the way
 * backend.c does it (growing buffer, resumed scan, never more than max + 1 bytes) and the
 * final answer must not depend on how the bytes arrived; every head found is parsed from an
 * exact-size copy so ASan sees any read past it, and the parsed view is checked.
 * It does not test the relay of the body or the SCGI request encoder.
 *
 * Input: byte 0  max: 0 means 16384 (SG_UP_HEAD_MAX), else the byte itself (tiny limits)
 *        byte 1  arrival step: 1 + byte 1 % 32 bytes per read
 *        rest    what the backend sends
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "scgi.h"
#include "util.h"

#include "fuzz_common.h"

static bool bad_char(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] == '\0' || s[i] == '\r' || s[i] == '\n')
            return true;
    return false;
}

static bool within(const char *p, size_t len, const char *lo, size_t cap)
{
    return p >= lo && p <= lo + cap && len <= (size_t)(lo + cap - p);
}

static const char *const hop[] = {
    "Connection", "Keep-Alive",       "Transfer-Encoding", "TE",
    "Upgrade",    "Proxy-Connection", "Trailer",           "Status"
};

/* Parses buf[0,len) from an exact-size copy and checks what sg_cgi_parse reports. */
static void parse_and_check(const char *src, size_t len)
{
    char *buf = sg_xmalloc(len ? len : 1);
    memcpy(buf, src, len);
    sg_cgi_head *h = sg_xmalloc(sizeof *h);
    const char *err = NULL;
    if (sg_cgi_parse(buf, len, h, &err) != SG_OK) {
        FUZZ_CHECK(err && err[0], "error-reason", "sg_cgi_parse failed without a reason");
        goto out;
    }
    FUZZ_CHECK(h->status >= 100 && h->status <= 599, "status-range", "status %d", h->status);
    FUZZ_CHECK(h->head_len == len, "head-len", "head_len %zu, parsed %zu", h->head_len, len);
    FUZZ_CHECK(h->content_length >= -1, "content-length", "%lld", (long long)h->content_length);
    if (h->reason) {
        FUZZ_CHECK(within(h->reason, h->reason_len, buf, len), "reason-outside",
                   "reason outside the head");
        FUZZ_CHECK(!bad_char(h->reason, h->reason_len), "bad-char-in-reason", "reason \"%.*s\"",
                   (int)h->reason_len, h->reason);
    } else {
        FUZZ_CHECK(h->reason_len == 0, "reason-len", "NULL reason of %zu bytes", h->reason_len);
    }
    FUZZ_CHECK(h->nheaders <= SG_CGI_MAX_HEADERS, "too-many-headers", "%zu", h->nheaders);
    bool saw_location = false;
    for (size_t i = 0; i < h->nheaders; i++) {
        const sg_cgi_header *hd = &h->headers[i];
        FUZZ_CHECK(hd->name_len > 0 && within(hd->name, hd->name_len, buf, len), "header-outside",
                   "header %zu name outside the head", i);
        FUZZ_CHECK(within(hd->value, hd->value_len, buf, len), "header-outside",
                   "header %zu value outside the head", i);
        FUZZ_CHECK(!bad_char(hd->name, hd->name_len) && memchr(hd->name, ':', hd->name_len) == 0,
                   "bad-char-in-header-name", "header %zu \"%.*s\"", i, (int)hd->name_len,
                   hd->name);
        FUZZ_CHECK(!bad_char(hd->value, hd->value_len), "bad-char-in-header-value",
                   "header %zu \"%.*s\" holds NUL, CR or LF", i, (int)hd->name_len, hd->name);
        for (size_t k = 0; k < SG_ARRAY_LEN(hop); k++)
            FUZZ_CHECK(!sg_strieq(hd->name, hd->name_len, hop[k]), "hop-by-hop-passed",
                       "header %zu is %s", i, hop[k]);
        if (hd == h->location)
            saw_location = true;
    }
    if (h->location)
        FUZZ_CHECK(saw_location && sg_strieq(h->location->name, h->location->name_len, "Location"),
                   "location", "location does not point at a Location header of headers[]");
out:
    free(h);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t max = data[0] ? data[0] : 16384, step = 1 + data[1] % 32;
    const char *in = (const char *)data + 2;
    size_t len = size - 2;
    if (len > max + 1)
        len = max + 1; /* backend.c never holds more than max + 1 head bytes */

    /* all at once */
    size_t scan = 0;
    long whole = sg_cgi_head_end(in, len, &scan, max);
    FUZZ_CHECK(whole == SG_AGAIN || whole == SG_ERR || (whole > 0 && (size_t)whole <= len),
               "head-end-range", "sg_cgi_head_end returned %ld for %zu bytes", whole, len);
    if (whole == SG_AGAIN)
        FUZZ_CHECK(scan <= len, "scan-range", "scan %zu past %zu bytes", scan, len);

    /* as backend.c does it: the buffer grows by `step`, the scan resumes where it stopped */
    long inc = SG_AGAIN;
    size_t got = 0;
    scan = 0;
    while (inc == SG_AGAIN && got < len) {
        got = len - got > step ? got + step : len;
        inc = sg_cgi_head_end(in, got, &scan, max);
        if (inc == SG_AGAIN)
            FUZZ_CHECK(scan <= got, "scan-range", "scan %zu past %zu bytes", scan, got);
    }
    FUZZ_CHECK(inc == whole, "incremental-vs-whole",
               "max %zu, %zu bytes: %ld when read %zu at a time (stopped at %zu), %ld at once", max,
               len, inc, step, got, whole);

    if (whole > 0) {
        const char *e = in + whole;
        FUZZ_CHECK(e[-1] == '\n' && (whole == 1 || e[-2] == '\n' ||
                                     (e[-2] == '\r' && (whole == 2 || e[-3] == '\n'))),
                   "head-end-blank-line", "the head does not end in a blank line");
        parse_and_check(in, (size_t)whole);
    }
    /* the parser must stay in bounds even when handed more than a head, or a cut one */
    parse_and_check(in, len);
    return 0;
}
