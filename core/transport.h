/*
 * transport.h: the byte transport of one client connection. conn.c reads and response.c
 * writes through it, so a TLS session (and later an HTTP/2 framer above it) slots in under
 * them without touching their logic. A kernel socket (TCP or unix) is handled inline with
 * the same syscalls as before; any other transport supplies a const ops table. What a
 * transport can do beyond read and write is asked through its capability flags, never
 * assumed: sendfile(2) and splice(2) act on the kernel fd, so only a transport whose fd
 * carries plain bytes (a socket, or kTLS) offers them. Nothing here logs.
 */
#ifndef SG_TRANSPORT_H
#define SG_TRANSPORT_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include "buf.h"
#include "pipe.h"
#include "util.h"

/* Capability flags: what may be done on the fd itself, bypassing the ops. */
enum {
    SG_TRANSPORT_SENDFILE = 1u << 0, /* sendfile(2) from a file into the fd */
    SG_TRANSPORT_SPLICE = 1u << 1    /* splice(2) from a pipe into the fd */
};

typedef struct sg_transport sg_transport;

/*
 * A transport other than a kernel socket. read and writev are required and return what
 * sg_transport_read / sg_transport_writev do. The others may be NULL: pending means no
 * bytes are ever held back, shutdown means shutdown(2) of the write side, close means no
 * state besides the fd (which sg_transport_close closes in every case).
 */
typedef struct sg_transport_ops {
    ssize_t (*read)(sg_transport *t, void *buf, size_t len);
    ssize_t (*writev)(sg_transport *t, const struct iovec *iov, int iovcnt);
    bool (*pending)(const sg_transport *t);
    int (*shutdown)(sg_transport *t);
    void (*close)(sg_transport *t);
} sg_transport_ops;

/*
 * Embedded in the connection so that the plain socket's calls stay inline (the hot path
 * pays one predictable branch on `ops`). Fields are the transport's own: callers use the
 * functions below.
 */
struct sg_transport {
    int fd;                      /* owned: the client socket, -1 once closed */
    unsigned caps;               /* SG_TRANSPORT_* */
    const sg_transport_ops *ops; /* borrowed, static; NULL: a kernel socket */
    void *ctx;                   /* owned by the ops (a TLS session), NULL for a socket */
};

/** A kernel socket (`fd` owned from now): sendfile and splice both allowed. */
void sg_transport_init_plain(sg_transport *t, int fd);
/** Any other transport over `fd` (owned from now), with its `ops` and state `ctx`. */
void sg_transport_init(sg_transport *t, int fd, unsigned caps, const sg_transport_ops *ops,
                       void *ctx);

static inline int sg_transport_fd(const sg_transport *t)
{
    return t->fd;
}
static inline unsigned sg_transport_caps(const sg_transport *t)
{
    return t->caps;
}

/**
 * Reads up to `len` bytes. Returns bytes (> 0), 0 on EOF, SG_AGAIN (nothing now: wait for
 * the fd to be readable), or SG_ERR with errno set. EINTR is retried.
 */
static inline ssize_t sg_transport_read(sg_transport *t, void *buf, size_t len)
{
    if (t->ops)
        return t->ops->read(t, buf, len);
    for (;;) {
        ssize_t n = read(t->fd, buf, len);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? SG_AGAIN : SG_ERR;
    }
}

/**
 * Writes up to `len` bytes (a socket: send with MSG_NOSIGNAL, a peer gone is an error, not
 * a signal). Returns bytes written (>= 0), SG_AGAIN, or SG_ERR with errno set.
 */
static inline ssize_t sg_transport_write(sg_transport *t, const void *buf, size_t len)
{
    if (t->ops) {
        struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
        return t->ops->writev(t, &iov, 1);
    }
    for (;;) {
        ssize_t n = send(t->fd, buf, len, MSG_NOSIGNAL);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? SG_AGAIN : SG_ERR;
    }
}

/** As sg_transport_write, gathering `iovcnt` slices (a socket: sendmsg, MSG_NOSIGNAL). */
ssize_t sg_transport_writev(sg_transport *t, const struct iovec *iov, int iovcnt);

/**
 * Reads up to `max` bytes into the tail of `b` (reserving as needed): sg_buf_read over the
 * transport, with sg_transport_read's returns.
 */
ssize_t sg_transport_read_buf(sg_transport *t, sg_buf *b, size_t max);

/**
 * Whether the transport holds readable bytes that the fd will not signal (TLS: a record
 * decrypted past what the last read asked for). The reader must read again before waiting
 * for the fd. Always false for a socket.
 */
static inline bool sg_transport_pending(const sg_transport *t)
{
    return t->ops && t->ops->pending && t->ops->pending(t);
}

/**
 * sendfile(2) of up to `len` bytes of `file_fd` from *off (advanced) into the fd; only with
 * SG_TRANSPORT_SENDFILE. Returns bytes (> 0), 0 when the file ended first, SG_AGAIN, or
 * SG_ERR with errno set.
 */
ssize_t sg_transport_sendfile(sg_transport *t, int file_fd, off_t *off, size_t len);
/**
 * splice(2) of what pipe `p` holds into the fd; only with SG_TRANSPORT_SPLICE. Returns
 * what sg_pipe_drain does.
 */
ssize_t sg_transport_splice(sg_transport *t, sg_pipe *p);

/** Ends the write side (the peer reads EOF; reads still work). SG_OK or SG_ERR, errno set. */
int sg_transport_shutdown(sg_transport *t);
/** Releases the transport's state and closes the fd; a closed transport may be closed again. */
void sg_transport_close(sg_transport *t);

#endif
