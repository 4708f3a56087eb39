/*
 * pipe.c: sg_pipe. splice(2) from a TCP socket takes references to the received pages and
 * splice to a TCP socket hands them on, so a relayed body costs two syscalls per pipeful
 * and no copies on our side.
 */
#include "pipe.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "util.h"

void sg_pipe_init(sg_pipe *p)
{
    p->rfd = p->wfd = -1;
    p->len = p->cap = 0;
}

int sg_pipe_open(sg_pipe *p)
{
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0)
        return SG_ERR;
    p->rfd = fds[0];
    p->wfd = fds[1];
    p->len = 0;
    /* past the per-user quota the kernel refuses to grow a pipe, and may even shrink it */
    int got = fcntl(p->wfd, F_SETPIPE_SZ, SG_PIPE_SIZE);
    if (got < 0)
        got = fcntl(p->wfd, F_GETPIPE_SZ);
    if (got < SG_PIPE_MIN) {
        sg_pipe_close(p);
        return SG_ERR;
    }
    p->cap = (size_t)got;
    return SG_OK;
}

static ssize_t move(int from, int to, size_t n)
{
    for (;;) {
        ssize_t r = splice(from, NULL, to, NULL, n, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return SG_AGAIN;
        return SG_ERR;
    }
}

ssize_t sg_pipe_fill(sg_pipe *p, int fd, size_t max)
{
    size_t room = sg_pipe_room(p);
    if (max > room)
        max = room;
    if (max == 0)
        return SG_AGAIN;
    ssize_t n = move(fd, p->wfd, max);
    if (n > 0)
        p->len += (size_t)n;
    return n;
}

ssize_t sg_pipe_drain(sg_pipe *p, int fd)
{
    if (p->len == 0)
        return 0;
    ssize_t n = move(p->rfd, fd, p->len);
    if (n > 0)
        p->len -= (size_t)n;
    return n;
}

void sg_pipe_close(sg_pipe *p)
{
    if (p->rfd >= 0)
        close(p->rfd);
    if (p->wfd >= 0)
        close(p->wfd);
    sg_pipe_init(p);
}
