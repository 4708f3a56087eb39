/*
 * buf.c: sg_buf implementation. Reads and writes retry on EINTR and map EAGAIN to SG_AGAIN
 * so callers can tell "try later" from "failed" without looking at errno.
 */
#include "buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include "util.h"

void sg_buf_init(sg_buf *b)
{
    b->data = NULL;
    b->off = b->len = b->cap = 0;
}

void sg_buf_free(sg_buf *b)
{
    free(b->data);
    sg_buf_init(b);
}

void sg_buf_reset(sg_buf *b)
{
    b->off = b->len = 0;
}

void sg_buf_compact(sg_buf *b)
{
    if (b->off == 0)
        return;
    if (b->len)
        memmove(b->data, b->data + b->off, b->len);
    b->off = 0;
}

void sg_buf_reserve(sg_buf *b, size_t n)
{
    if (sg_buf_room(b) >= n)
        return;
    if (b->off && b->cap - b->len >= n) {
        sg_buf_compact(b);
        return;
    }
    size_t want = b->len + n, cap = b->cap ? b->cap : 1024; /* within malloc's per-thread cache */
    while (cap < want)
        cap *= 2;
    if (b->off) {
        char *d = sg_xmalloc(cap);
        memcpy(d, b->data + b->off, b->len);
        free(b->data);
        b->data = d;
        b->off = 0;
    } else {
        b->data = sg_xrealloc(b->data, cap);
    }
    b->cap = cap;
}

void sg_buf_append(sg_buf *b, const void *p, size_t n)
{
    if (!n)
        return;
    if (sg_buf_room(b) < n)
        sg_buf_reserve(b, n);
    memcpy(sg_buf_tail(b), p, n);
    b->len += n;
}

void sg_buf_append_str(sg_buf *b, const char *s)
{
    sg_buf_append(b, s, strlen(s));
}

void sg_buf_appendf(sg_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    sg_buf_reserve(b, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(sg_buf_tail(b), (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void sg_buf_consume(sg_buf *b, size_t n)
{
    if (n >= b->len) {
        b->off = b->len = 0;
        return;
    }
    b->off += n;
    b->len -= n;
}

ssize_t sg_buf_read(sg_buf *b, int fd, size_t max)
{
    sg_buf_reserve(b, max);
    for (;;) {
        ssize_t n = read(fd, sg_buf_tail(b), max);
        if (n > 0) {
            b->len += (size_t)n;
            return n;
        }
        if (n == 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return SG_AGAIN;
        return SG_ERR;
    }
}
