/*
 * conn_host.h: what a client connection needs from the server that owns it (the event loop,
 * the config generation in force, stop state, stats, the Date cache, the splice pipe pool,
 * and the notices of a closed connection). Types only: the server fills an sg_conn_host
 * with its loop and a table of functions and hands it to every connection it creates, so
 * conn.c and exchange.c reach back through this table and never call into server.c (which
 * creates connections through conn.h): the two sides do not depend on each other.
 */
#ifndef SG_CONN_HOST_H
#define SG_CONN_HOST_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "pipe.h"
#include "stats.h"

typedef struct sg_conn sg_conn;
typedef struct sg_conn_host sg_conn_host;

typedef struct sg_conn_host_ops {
    sg_config *(*config)(sg_conn_host *h); /* the generation in force (not referenced) */
    bool (*stopping)(sg_conn_host *h);     /* a graceful stop is under way */
    sg_stats *(*stats)(sg_conn_host *h);
    size_t (*nconns)(sg_conn_host *h);
    const char *(*date)(sg_conn_host *h); /* the Date header value, cached per second */
    /* the connection closed: it leaves the live set; freed after the current callback */
    void (*conn_closed)(sg_conn_host *h, sg_conn *c);
    /* an empty splice pipe from the pool (or a new one); SG_ERR if none can be made */
    int (*pipe_take)(sg_conn_host *h, sg_pipe *p);
    void (*pipe_give)(sg_conn_host *h, sg_pipe *p); /* back to the pool, or closed */
} sg_conn_host_ops;

/* Embedded in the server, which outlives every connection it hands it to. */
struct sg_conn_host {
    struct ev_loop *loop;
    const sg_conn_host_ops *ops;
};

static inline sg_config *sg_host_config(sg_conn_host *h)
{
    return h->ops->config(h);
}
static inline bool sg_host_stopping(sg_conn_host *h)
{
    return h->ops->stopping(h);
}
static inline sg_stats *sg_host_stats(sg_conn_host *h)
{
    return h->ops->stats(h);
}
static inline size_t sg_host_nconns(sg_conn_host *h)
{
    return h->ops->nconns(h);
}
static inline const char *sg_host_date(sg_conn_host *h)
{
    return h->ops->date(h);
}
static inline int sg_host_pipe_take(sg_conn_host *h, sg_pipe *p)
{
    return h->ops->pipe_take(h, p);
}
static inline void sg_host_pipe_give(sg_conn_host *h, sg_pipe *p)
{
    h->ops->pipe_give(h, p);
}

#endif
