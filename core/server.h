/*
 * server.h: sg_server owns the event loop, the listening sockets, the current config
 * generation and the set of live connections. It accepts (bounded by limits.connections,
 * pausing on EMFILE instead of spinning), reloads the config on SIGHUP or file change, and
 * stops gracefully on SIGTERM/SIGINT/SIGQUIT (HUP is ignored during a stop, USR1 still
 * reopens the access log). It knows nothing about HTTP; conn.c does.
 */
#ifndef SG_SERVER_H
#define SG_SERVER_H

#include <ev.h>
#include <stdbool.h>

#include "config.h"
#include "pipe.h"
#include "stats.h"
#include "util.h"

typedef struct sg_server sg_server;
typedef struct sg_conn sg_conn;

/** Takes over `cfg` (one reference) and the member-state registry it was loaded with. */
sg_server *sg_server_new(struct ev_loop *loop, sg_config *cfg, const char *lua_dir,
                         sg_lb_registry *reg);
/** Opens every listen address of the config. Fills err on failure. */
int sg_server_listen(sg_server *s, char err[SG_ERR_LEN]);
/**
 * Worker mode: serves on listening fds opened by the master (which keeps its own copies and
 * owns unix socket paths). The master then watches the config file and tells the worker
 * when to reload, stop or reopen its log (master.c); a SIGHUP to a worker is ignored.
 */
int sg_server_adopt(sg_server *s, const int *fds, char *const *texts, size_t n);
/**
 * Reloads from `src` (`len` bytes: the config file's contents as the master read and
 * validated them) as generation `generation`; `why` goes into the log line. Logs the
 * outcome; a failure keeps the generation in use. Ignored while stopping.
 */
void sg_server_reload_source(sg_server *s, const char *src, size_t len, unsigned generation,
                             const char *why);
/**
 * Graceful stop (what SIGTERM does): closes the listening sockets at once, lets open
 * connections finish for up to timeouts.shutdown. Again while stopping: no-op. With `now`:
 * leaves the loop at once, exit status 1; `why` names the reason in that log line.
 */
void sg_server_stop(sg_server *s, bool now, const char *why);
/** Reopens the access log under its name (logrotate); logs the outcome, prefixed by `why`. */
void sg_server_reopen_log(sg_server *s, const char *why);
/** Runs the loop until a graceful stop completes; returns the exit status. */
int sg_server_run(sg_server *s);
void sg_server_free(sg_server *s);

/* for conn.c */
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
