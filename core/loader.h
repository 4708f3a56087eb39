/*
 * loader.h: builds config generations off the event loop. Each load runs on a thread of
 * its own with a fresh Lua state (sg_config_load_cancellable, private member states, host
 * names resolved there), and its result reaches the loop through an ev_async, where the
 * owner's callback swaps it in. At most one load runs; requests made meanwhile coalesce
 * into one more load, of the latest bytes. It neither logs nor touches the live config.
 */
#ifndef SG_LOADER_H
#define SG_LOADER_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "config.h"

typedef struct sg_loader sg_loader;

/** What one load produced, handed to the callback on the loop (valid during the call). */
typedef struct sg_load_result {
    sg_config *cfg;       /* one reference, the callback's; NULL when the load failed */
    const sg_buf *report; /* on failure: every problem, one per line */
    unsigned generation;  /* as requested (0: the owner numbers it) */
    const char *why;      /* as requested, for the log line */
    double seconds;       /* from the start of the load to its end */
} sg_load_result;

typedef void (*sg_loader_cb)(void *data, const sg_load_result *res);

/** `file` and `lua_dir` are copied. `cb` runs on `loop`, once per finished load. */
sg_loader *sg_loader_new(struct ev_loop *loop, const char *file, const char *lua_dir,
                         sg_loader_cb cb, void *data);
/**
 * Asks for a load of `src` (`len` bytes, copied; NULL: read the file on the thread) as
 * `generation` (0: numbered by the owner at swap time). Starts it now when none runs, else
 * replaces the one queued. Returns SG_OK, or SG_ERR with errno when no thread could be
 * started (nothing queued then). Does not log.
 */
int sg_loader_request(sg_loader *l, const char *src, size_t len, unsigned generation,
                      const char *why);
/** Whether a load is running (or queued). */
bool sg_loader_busy(const sg_loader *l);
/**
 * Cancels the queued load and the running one (its Lua code stops at the next budget check;
 * a getaddrinfo in progress is waited for), joins the thread, frees what it built. NULL: no-op.
 */
void sg_loader_free(sg_loader *l);

#endif
