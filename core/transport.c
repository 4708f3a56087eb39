/*
 * transport.c: the parts of the client transport off the hot path (see transport.h). A
 * kernel socket keeps the syscalls the writer used before the transport existed (send and
 * sendmsg with MSG_NOSIGNAL, sendfile, splice), so the syscalls per request do not change.
 */
#include "transport.h"

#include <sys/sendfile.h>

void sg_transport_init_plain(sg_transport *t, int fd)
{
    sg_transport_init(t, fd, SG_TRANSPORT_SENDFILE | SG_TRANSPORT_SPLICE, NULL, NULL);
}

void sg_transport_init(sg_transport *t, int fd, unsigned caps, const sg_transport_ops *ops,
                       void *ctx)
{
    t->fd = fd;
    t->caps = caps;
    t->ops = ops;
    t->ctx = ctx;
}

ssize_t sg_transport_writev(sg_transport *t, const struct iovec *iov, int iovcnt)
{
    if (t->ops)
        return t->ops->writev(t, iov, iovcnt);
    /* sendmsg, not writev: only the socket calls take MSG_NOSIGNAL */
    struct msghdr mh = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt };
    for (;;) {
        ssize_t n = sendmsg(t->fd, &mh, MSG_NOSIGNAL);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? SG_AGAIN : SG_ERR;
    }
}

ssize_t sg_transport_read_buf(sg_transport *t, sg_buf *b, size_t max)
{
    sg_buf_reserve(b, max);
    ssize_t n = sg_transport_read(t, sg_buf_tail(b), max);
    if (n > 0)
        b->len += (size_t)n;
    return n;
}

ssize_t sg_transport_sendfile(sg_transport *t, int file_fd, off_t *off, size_t len)
{
    for (;;) {
        ssize_t n = sendfile(t->fd, file_fd, off, len);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? SG_AGAIN : SG_ERR;
    }
}

ssize_t sg_transport_splice(sg_transport *t, sg_pipe *p)
{
    return sg_pipe_drain(p, t->fd);
}

int sg_transport_shutdown(sg_transport *t)
{
    if (t->ops && t->ops->shutdown)
        return t->ops->shutdown(t);
    return shutdown(t->fd, SHUT_WR) == 0 ? SG_OK : SG_ERR;
}

void sg_transport_close(sg_transport *t)
{
    if (t->ops && t->ops->close)
        t->ops->close(t);
    t->ops = NULL; /* a second close must not release the state again */
    t->ctx = NULL;
    if (t->fd >= 0)
        close(t->fd);
    t->fd = -1;
}
