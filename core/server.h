/*
 * server.h: sg_server owns the event loop, the listening sockets, the current config
 * generation and the set of live connections. It accepts (bounded by limits.connections,
 * pausing on EMFILE instead of spinning), reloads the config on SIGHUP or file change, and
 * stops gracefully on SIGTERM/SIGINT/SIGQUIT (HUP is ignored during a stop, USR1 still
 * reopens the access log). It knows nothing about HTTP; conn.c does. What it provides to
 * its connections is the sg_conn_host table of conn_host.h, so that neither conn.c nor
 * exchange.c includes this file or calls into server.c.
 */
#ifndef SG_SERVER_H
#define SG_SERVER_H

#include <ev.h>
#include <stdbool.h>

#include "config.h"
#include "conn_host.h"
#include "util.h"

typedef struct sg_server sg_server;

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
/** Open client connections (the fuzz harness checks that none is left). */
size_t sg_server_nconns(sg_server *s);
void sg_server_free(sg_server *s);

#endif
