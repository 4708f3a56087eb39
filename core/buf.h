/*
 * buf.h: sg_buf, the one owned, growable byte buffer used for socket I/O and string building.
 * Data lives in data[off, off+len); sg_buf_compact moves it back to the start. Growth is
 * explicit (sg_buf_reserve): callers decide the bound, the buffer never grows on its own.
 */
#ifndef SG_BUF_H
#define SG_BUF_H

#include <stddef.h>
#include <sys/types.h>

typedef struct sg_buf {
    char *data; /* owned */
    size_t off, len, cap;
} sg_buf;

/** Borrowed slice. */
typedef struct sg_iov {
    const char *base;
    size_t len;
} sg_iov;

void sg_buf_init(sg_buf *b);
void sg_buf_free(sg_buf *b);
/** Makes room for `n` more bytes after the data (may compact or grow). */
void sg_buf_reserve(sg_buf *b, size_t n);
void sg_buf_compact(sg_buf *b);
void sg_buf_append(sg_buf *b, const void *p, size_t n);
void sg_buf_appendf(sg_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sg_buf_append_str(sg_buf *b, const char *s);
void sg_buf_consume(sg_buf *b, size_t n);
void sg_buf_reset(sg_buf *b);
/* "" for a buffer never written: NULL + 0 is undefined behaviour, and callers pass the head
 * of an empty buffer along with its length 0 */
static inline char *sg_buf_head(const sg_buf *b)
{
    return b->data ? b->data + b->off : (char *)"";
}
static inline char *sg_buf_tail(const sg_buf *b)
{
    return b->data + b->off + b->len;
}
static inline size_t sg_buf_room(const sg_buf *b)
{
    return b->cap - b->off - b->len;
}

/**
 * Reads up to `max` bytes from `fd` into the tail (reserving as needed).
 * Returns bytes read (> 0), 0 on EOF, SG_AGAIN, or SG_ERR with errno set.
 */
ssize_t sg_buf_read(sg_buf *b, int fd, size_t max);

#endif
