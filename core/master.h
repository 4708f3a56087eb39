/*
 * master.h: `workers = N`. The master binds the listening sockets, forks N workers that
 * serve on them (each a complete single-process server with its own event loop and Lua
 * state), restarts a worker that dies (with back-off), validates the config on HUP or file
 * change before telling the workers to reload in place, and forwards TERM/INT/USR1. The
 * master itself serves nothing and runs no event loop: it waits for signals.
 */
#ifndef SG_MASTER_H
#define SG_MASTER_H

#include "balancer.h"
#include "config.h"

/** Takes over `cfg`; returns the process exit status. */
int sg_master_run(sg_config *cfg, const char *lua_dir, int nworkers);

#endif
