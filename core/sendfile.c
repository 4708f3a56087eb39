/*
 * sendfile.c: vetting and planning for X-Sendfile answers. The root check uses the path of
 * the descriptor we will actually read (/proc/self/fd), not a realpath() of the name taken
 * before open(): resolving first and opening second leaves a window in which a symlink can
 * be swapped to point outside the root.
 */
#include "sendfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <http_parser.h>

#include "scgi.h"
#include "util.h"

char *sg_sendfile_root_resolve(const char *root)
{
    char buf[PATH_MAX];
    if (!realpath(root, buf))
        return NULL;
    size_t n = strlen(buf);
    while (n > 1 && buf[n - 1] == '/')
        buf[--n] = '\0';
    return sg_xstrdup(buf);
}

static bool inside(const char *real, char *const *roots, size_t nroots)
{
    for (size_t i = 0; i < nroots; i++) {
        size_t n = strlen(roots[i]);
        if (n == 1 && roots[i][0] == '/')
            return true;
        if (strncmp(real, roots[i], n) == 0 && (real[n] == '/' || real[n] == '\0'))
            return true;
    }
    return false;
}

int sg_sendfile_open(const char *path, size_t len, char *const *roots, size_t nroots,
                     struct stat *st, int *status, const char **err)
{
    char name[PATH_MAX];
    if (len == 0 || path[0] != '/') {
        *status = 502;
        *err = "the backend named a relative sendfile path";
        return -1;
    }
    if (len >= sizeof name) {
        *status = 404;
        *err = "sendfile path too long";
        return -1;
    }
    memcpy(name, path, len);
    name[len] = '\0';
    int fd = open(name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        bool missing = errno == ENOENT || errno == ENOTDIR || errno == ENAMETOOLONG ||
                       errno == ELOOP;
        *status = missing ? 404 : 403;
        *err = missing ? "sendfile target does not exist" : "sendfile target is not readable";
        return -1;
    }
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        close(fd);
        *status = 403;
        *err = "sendfile target is not a regular file";
        return -1;
    }
    if (nroots) {
        char link[64], real[PATH_MAX];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, real, sizeof real - 1);
        if (n <= 0) {
            close(fd);
            *status = 403;
            *err = "cannot resolve the sendfile target";
            return -1;
        }
        real[n] = '\0';
        if (!inside(real, roots, nroots)) {
            close(fd);
            *status = 403;
            *err = "sendfile target is outside sendfile_root";
            return -1;
        }
    }
    /* reads block on a regular file anyway; O_NONBLOCK only kept open() off FIFOs */
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    return fd;
}

static void http_date(time_t t, char *out, size_t cap)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static time_t parse_http_date(const char *s, size_t len)
{
    char buf[64];
    struct tm tm;
    if (len >= sizeof buf)
        return (time_t)-1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end)
        return (time_t)-1;
    return timegm(&tm);
}

static const sg_req_header *header(const sg_request *r, const char *name)
{
    return sg_request_header(r, name);
}

/* Weak comparison against a list: `"a", W/"b"` (If-None-Match). */
static bool etag_in_list(const char *list, size_t len, const char *etag, size_t elen)
{
    const char *p = list, *end = list + len;
    if (elen >= 2 && etag[0] == 'W' && etag[1] == '/') {
        etag += 2;
        elen -= 2;
    }
    const char *s;
    size_t n;
    while (sg_list_next(&p, end, &s, &n)) {
        if (n == 1 && *s == '*')
            return true;
        if (n >= 2 && s[0] == 'W' && s[1] == '/') {
            s += 2;
            n -= 2;
        }
        if (n == elen && memcmp(s, etag, elen) == 0)
            return true;
    }
    return false;
}

/* Parses a single "bytes=a-b" range. Returns 1 ok, 0 ignore (absent/multi/invalid), -1
 * unsatisfiable. */
static int parse_range(const char *v, size_t len, off_t size, off_t *start, off_t *rlen)
{
    if (len < 6 || strncasecmp(v, "bytes=", 6) != 0)
        return 0;
    const char *p = v + 6, *end = v + len;
    while (p < end && *p == ' ')
        p++;
    if (memchr(p, ',', (size_t)(end - p)))
        return 0; /* several ranges: answer with the whole file */
    long long a = -1, b = -1;
    const char *q = p;
    if (q < end && *q >= '0' && *q <= '9') {
        a = 0;
        while (q < end && *q >= '0' && *q <= '9') {
            if (a > (LLONG_MAX - 9) / 10)
                return 0;
            a = a * 10 + (*q++ - '0');
        }
    }
    if (q >= end || *q != '-')
        return 0;
    q++;
    if (q < end && *q >= '0' && *q <= '9') {
        b = 0;
        while (q < end && *q >= '0' && *q <= '9') {
            if (b > (LLONG_MAX - 9) / 10)
                return 0;
            b = b * 10 + (*q++ - '0');
        }
    }
    while (q < end && *q == ' ')
        q++;
    if (q != end || (a < 0 && b < 0))
        return 0;
    if (a < 0) { /* suffix: the last b bytes */
        if (b == 0)
            return -1;
        *start = b >= size ? 0 : size - b;
        *rlen = size - *start;
        return size ? 1 : -1;
    }
    if (a > b && b >= 0)
        return 0;
    if (a >= size)
        return -1;
    off_t last = (b < 0 || b >= size) ? size - 1 : (off_t)b;
    *start = (off_t)a;
    *rlen = last - (off_t)a + 1;
    return 1;
}

void sg_sendfile_plan_make(const sg_request *req, int backend_status, const struct stat *st,
                           const char *etag, size_t etag_len, const char *last_modified,
                           size_t lm_len, sg_sendfile_plan *plan)
{
    plan->status = backend_status;
    plan->start = 0;
    plan->len = st->st_size;
    snprintf(plan->etag, sizeof plan->etag, "\"%llx-%llx-%llx\"", (unsigned long long)st->st_mtime,
             (unsigned long long)st->st_size, (unsigned long long)st->st_ino);
    http_date(st->st_mtime, plan->last_modified, sizeof plan->last_modified);
    if (!sg_http_status_has_body(backend_status)) {
        plan->len = 0; /* a backend 204 or 304 names a file, but no file goes out */
        return;
    }
    if (backend_status != 200 || (req->method_id != HTTP_GET && !req->head_only))
        return;
    if (!etag) {
        etag = plan->etag;
        etag_len = strlen(plan->etag);
    }
    time_t mtime = last_modified ? parse_http_date(last_modified, lm_len) : st->st_mtime;

    const sg_req_header *inm = header(req, "If-None-Match");
    const sg_req_header *ims = header(req, "If-Modified-Since");
    if (inm) {
        if (etag_in_list(inm->value, inm->value_len, etag, etag_len)) {
            plan->status = 304;
            plan->len = 0;
            return;
        }
    } else if (ims && mtime != (time_t)-1) {
        time_t t = parse_http_date(ims->value, ims->value_len);
        if (t != (time_t)-1 && mtime <= t) {
            plan->status = 304;
            plan->len = 0;
            return;
        }
    }
    const sg_req_header *range = header(req, "Range");
    if (!range)
        return;
    const sg_req_header *ifr = header(req, "If-Range");
    if (ifr) {
        /* If-Range: strong ETag match, or an exact date match; otherwise the whole file */
        bool ok;
        if (ifr->value_len && (ifr->value[0] == '"' || ifr->value[0] == 'W'))
            ok = ifr->value_len == etag_len && memcmp(ifr->value, etag, etag_len) == 0 &&
                 etag[0] == '"';
        else
            ok = mtime != (time_t)-1 && parse_http_date(ifr->value, ifr->value_len) == mtime;
        if (!ok)
            return;
    }
    off_t start, len;
    int r = parse_range(range->value, range->value_len, st->st_size, &start, &len);
    if (r == 1) {
        plan->status = 206;
        plan->start = start;
        plan->len = len;
    } else if (r < 0) {
        plan->status = 416;
        plan->len = 0;
    }
}
