/*
 * listen.h: opening listening sockets from the config (TCP v4/v6, unix), shared by the
 * single-process server and the master of a multi-worker setup. No event loop here.
 */
#ifndef SG_LISTEN_H
#define SG_LISTEN_H

#include <stddef.h>

#include "config.h"
#include "util.h"

/**
 * Binds and listens (non-blocking, close-on-exec). Writes the address actually bound
 * (port 0 resolved) to `text`. Returns the fd, or -1 with `err` filled. Does not log.
 */
int sg_listen_open(const sg_listen *ls, char *text, size_t cap, char err[SG_ERR_LEN]);

/** Closes a listener fd; unlinks the unix socket file when `unix_path` is set. */
void sg_listen_close(int fd, const char *unix_path);

#endif
