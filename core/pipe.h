/*
 * pipe.h: sg_pipe, a kernel pipe used to move a large response body from the backend
 * socket to the client socket with splice(2), so its bytes never cross into user space
 * (no read copy, no write copy). The pipe is owned by one connection for one response;
 * `len` counts bytes spliced in and not yet spliced out. Nothing here logs.
 */
#ifndef SG_PIPE_H
#define SG_PIPE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define SG_PIPE_SIZE (256 * 1024) /* capacity asked for */
#define SG_PIPE_MIN (64 * 1024)   /* less than this (the per-user pipe quota) is refused */

typedef struct sg_pipe {
    int rfd, wfd; /* owned; -1 when closed */
    size_t len;   /* bytes inside */
    size_t cap;   /* what the pipe holds before a fill would block */
} sg_pipe;

void sg_pipe_init(sg_pipe *p);
/**
 * Opens a non-blocking pipe of SG_PIPE_SIZE bytes, or at least SG_PIPE_MIN. Returns SG_OK,
 * or SG_ERR when there is none to have: a smaller one would cost more splices than the
 * copies it saves.
 */
int sg_pipe_open(sg_pipe *p);
static inline bool sg_pipe_is_open(const sg_pipe *p)
{
    return p->rfd >= 0;
}
static inline size_t sg_pipe_room(const sg_pipe *p)
{
    return p->cap > p->len ? p->cap - p->len : 0;
}
/** Moves up to `max` bytes from socket `fd` in. Returns bytes (> 0), 0 on EOF, SG_AGAIN, SG_ERR. */
ssize_t sg_pipe_fill(sg_pipe *p, int fd, size_t max);
/** Moves what the pipe holds out to socket `fd`. Returns bytes (> 0), SG_AGAIN or SG_ERR. */
ssize_t sg_pipe_drain(sg_pipe *p, int fd);
void sg_pipe_close(sg_pipe *p);

#endif
