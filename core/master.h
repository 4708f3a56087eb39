/*
 * master.h: `workers = N`. The master binds the listening sockets, forks N workers that
 * serve on them (each a complete single-process server with its own event loop and Lua
 * state), restarts a worker that dies (with back-off), validates the config on HUP or file
 * change and hands the validated bytes to the workers to reload in place, and passes on
 * TERM/INT/QUIT (closing the listening sockets at once) and USR1. The master itself
 * serves nothing and runs no event loop: it waits for signals.
 */
#ifndef SG_MASTER_H
#define SG_MASTER_H

#include "balancer.h"
#include "config.h"
#include "server.h"

/**
 * Takes over `cfg` and `reg`, the member-state registry it was loaded with (each worker
 * continues with a copy, so its first reload keeps counters and error state); returns the
 * process exit status. Logs.
 */
int sg_master_run(sg_config *cfg, const char *lua_dir, int nworkers, sg_lb_registry *reg);

#endif
