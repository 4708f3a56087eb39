/*
 * conn_host.h: what a client connection needs from the server that owns it (the event loop,
 * the config generation in force, stop state, stats, the Date cache, the splice pipe pool,
 * and the notices of a closed connection), implemented by server.c. conn.c includes this,
 * never server.h, so the two files do not depend on each other's headers: server.c creates
 * connections through conn.h, connections reach back only through this interface.
 */
#ifndef SG_CONN_HOST_H
#define SG_CONN_HOST_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "pipe.h"
#include "stats.h"

typedef struct sg_server sg_server;
typedef struct sg_conn sg_conn;

struct ev_loop *sg_server_loop(sg_server *s);
sg_config *sg_server_config(sg_server *s);
bool sg_server_stopping(sg_server *s);
sg_stats *sg_server_stats(sg_server *s);
size_t sg_server_nconns(sg_server *s);
/** "Date: ..." value for the current second (cached). */
const char *sg_server_date(sg_server *s);
void sg_server_conn_closed(sg_server *s, sg_conn *c);
/** Queues `c` to be freed after the current callbacks return. */
void sg_server_defer_free(sg_server *s, sg_conn *c);
/** A splice pipe from the pool of empty ones, else a new one (sg_pipe_open). */
int sg_server_pipe_take(sg_server *s, sg_pipe *p);
/** Back to the pool if empty and there is room, else closed; `p` is closed either way. */
void sg_server_pipe_give(sg_server *s, sg_pipe *p);

#endif
