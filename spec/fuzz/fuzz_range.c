/*
 * fuzz_range.c: libFuzzer harness for sg_sendfile_plan_make (core/sendfile.c): a fake
 * request carrying Range / If-Range / If-None-Match / If-Modified-Since, a fake stat with a
 * random size and mtime, and optional backend validators. Checks the plan stays inside the
 * file, 206 only for a non-empty satisfiable range that a plain RFC 9110 §14.1 reading
 * agrees with, and 304/416 only when their headers are there. Opening files is not tested.
 *
 * Input: byte 0     bits 0-1 method (GET, HEAD, POST, GET), bit 2 backend status 200 or
 *                   other, bit 3 backend ETag, bit 4 backend Last-Modified, bit 5 small file
 *        bytes 1-8  file size (little-endian; taken % 4096 for a small file)
 *        bytes 9-12 mtime (signed 32-bit seconds: 1901..2038)
 *        byte 13    which request headers are present (bit per field, in the order below)
 *        rest       field values separated by '\n': Range, If-Range, If-None-Match,
 *                   If-Modified-Since, backend ETag, backend Last-Modified
 */
#include <http_parser.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "http.h"
#include "sendfile.h"
#include "util.h"

#include "fuzz_common.h"

enum { F_RANGE, F_IF_RANGE, F_INM, F_IMS, F_ETAG, F_LM, F_COUNT };
static const char *const names[] = { "Range", "If-Range", "If-None-Match", "If-Modified-Since" };

/* RFC 9110 §14.1: "bytes=" one int-range or suffix-range. 1 valid, 0 not a single range. */
static int ref_range(const char *v, size_t len, uint64_t *first, uint64_t *last, bool *suffix)
{
    if (len < 6 || strncasecmp(v, "bytes=", 6) != 0)
        return 0;
    size_t i = 6;
    while (i < len && (v[i] == ' ' || v[i] == '\t'))
        i++;
    bool have_first = false, have_last = false;
    uint64_t a = 0, b = 0;
    for (; i < len && v[i] >= '0' && v[i] <= '9'; i++) {
        if (a > UINT64_MAX / 10 - 1)
            return 0;
        a = a * 10 + (uint64_t)(v[i] - '0');
        have_first = true;
    }
    if (i == len || v[i] != '-')
        return 0;
    for (i++; i < len && v[i] >= '0' && v[i] <= '9'; i++) {
        if (b > UINT64_MAX / 10 - 1)
            return 0;
        b = b * 10 + (uint64_t)(v[i] - '0');
        have_last = true;
    }
    while (i < len && (v[i] == ' ' || v[i] == '\t'))
        i++;
    if (i != len || (!have_first && !have_last) || (have_first && have_last && b < a))
        return 0;
    *suffix = !have_first;
    *first = have_first ? a : 0;
    *last = have_first ? (have_last ? b : UINT64_MAX) : b; /* suffix: b is the length */
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 14)
        return 0;
    uint8_t flags = data[0];
    uint64_t sz = 0;
    for (int i = 0; i < 8; i++)
        sz |= (uint64_t)data[1 + i] << (8 * i);
    sz &= (1ull << 62) - 1; /* st_size is a signed 64-bit off_t */
    if (flags & 32)
        sz %= 4096;
    int32_t mt = (int32_t)((uint32_t)data[9] | (uint32_t)data[10] << 8 | (uint32_t)data[11] << 16 |
                           (uint32_t)data[12] << 24);
    uint8_t present = data[13];

    /* split the rest at '\n' into the fields, each copied to an exact-size block */
    char *val[F_COUNT] = { 0 };
    size_t vlen[F_COUNT] = { 0 };
    const char *p = (const char *)data + 14, *end = (const char *)data + size;
    for (int f = 0; f < F_COUNT && p <= end; f++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        vlen[f] = (size_t)(e - p);
        val[f] = sg_xmalloc(vlen[f] ? vlen[f] : 1);
        memcpy(val[f], p, vlen[f]);
        p = e + 1;
    }

    sg_request req;
    sg_request_init(&req);
    static const int methods[] = { HTTP_GET, HTTP_HEAD, HTTP_POST, HTTP_GET };
    req.method_id = methods[flags & 3];
    req.head_only = req.method_id == HTTP_HEAD;
    req.method = http_method_str((enum http_method)req.method_id);
    req.headers = sg_xcalloc(4, sizeof *req.headers);
    for (int f = F_RANGE; f <= F_IMS; f++) {
        if (!(present & (1 << f)) || !val[f])
            continue;
        sg_req_header *hd = &req.headers[req.nheaders++];
        hd->name = names[f];
        hd->name_len = strlen(names[f]);
        hd->value = val[f];
        hd->value_len = vlen[f];
    }
    req.cap_headers = 4;

    struct stat st;
    memset(&st, 0, sizeof st);
    st.st_size = (off_t)sz;
    st.st_mtime = (time_t)mt;
    st.st_ino = (ino_t)(sz * 2654435761u);
    st.st_mode = S_IFREG | 0644;
    int backend = flags & 4 ? 200 : (int)(sz % 2 ? 404 : 203);
    const char *etag = flags & 8 ? val[F_ETAG] : NULL;
    const char *lm = flags & 16 ? val[F_LM] : NULL;

    sg_sendfile_plan plan;
    memset(&plan, 0xa5, sizeof plan);
    sg_sendfile_plan_make(&req, backend, &st, etag, etag ? vlen[F_ETAG] : 0, lm,
                          lm ? vlen[F_LM] : 0, &plan);

    const sg_req_header *range = sg_request_header(&req, "Range");
    bool conditional = backend == 200 && (req.method_id == HTTP_GET || req.head_only);
    FUZZ_CHECK(memchr(plan.etag, '\0', sizeof plan.etag) && plan.etag[0] == '"', "etag-string",
               "computed ETag not a terminated quoted string");
    FUZZ_CHECK(memchr(plan.last_modified, '\0', sizeof plan.last_modified), "lm-string",
               "Last-Modified not terminated");
    FUZZ_CHECK(plan.start >= 0 && plan.len >= 0 && (uint64_t)plan.start <= sz &&
                   (uint64_t)plan.len <= sz - (uint64_t)plan.start,
               "plan-outside-file", "status %d start %lld len %lld, file %llu", plan.status,
               (long long)plan.start, (long long)plan.len, (unsigned long long)sz);
    if (!conditional) {
        FUZZ_CHECK(plan.status == backend && plan.start == 0 && (uint64_t)plan.len == sz,
                   "unconditional", "backend %d, method %s: plan %d %lld+%lld", backend, req.method,
                   plan.status, (long long)plan.start, (long long)plan.len);
    } else {
        switch (plan.status) {
        case 200:
            FUZZ_CHECK(plan.start == 0 && (uint64_t)plan.len == sz, "full-file",
                       "200 with %lld+%lld of %llu", (long long)plan.start, (long long)plan.len,
                       (unsigned long long)sz);
            break;
        case 206: {
            FUZZ_CHECK(range && plan.len > 0, "206", "206 with len %lld, Range %s",
                       (long long)plan.len, range ? "present" : "absent");
            uint64_t first, last;
            bool suffix;
            FUZZ_CHECK(ref_range(range->value, range->value_len, &first, &last, &suffix),
                       "206-not-a-range", "206 for Range \"%.*s\"", (int)range->value_len,
                       range->value);
            uint64_t want_start = suffix ? (last >= sz ? 0 : sz - last) : first;
            uint64_t want_end = suffix ? sz : (last >= sz ? sz : last + 1);
            FUZZ_CHECK((uint64_t)plan.start == want_start &&
                           (uint64_t)(plan.start + plan.len) == want_end,
                       "206-wrong-bytes", "Range \"%.*s\" of %llu: sent %lld+%lld",
                       (int)range->value_len, range->value, (unsigned long long)sz,
                       (long long)plan.start, (long long)plan.len);
            break;
        }
        case 304:
            FUZZ_CHECK(plan.len == 0 && (sg_request_header(&req, "If-None-Match") ||
                                         sg_request_header(&req, "If-Modified-Since")),
                       "304", "304 with len %lld or without a condition", (long long)plan.len);
            break;
        case 416: {
            FUZZ_CHECK(range && plan.len == 0, "416", "416 with len %lld, Range %s",
                       (long long)plan.len, range ? "present" : "absent");
            uint64_t first, last;
            bool suffix;
            if (ref_range(range->value, range->value_len, &first, &last, &suffix))
                FUZZ_CHECK(suffix ? (last == 0 || sz == 0) : first >= sz, "416-satisfiable",
                           "416 for a satisfiable Range \"%.*s\" of %llu", (int)range->value_len,
                           range->value, (unsigned long long)sz);
            break;
        }
        default:
            FUZZ_CHECK(false, "status", "plan status %d for a backend 200", plan.status);
        }
    }

    free(req.headers);
    sg_buf_free(&req.raw);
    for (int f = 0; f < F_COUNT; f++)
        free(val[f]);
    return 0;
}
