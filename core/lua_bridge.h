/*
 * lua_bridge.h: the Lua runtime. Loads a config file into a fresh LuaJIT state through
 * lua/scgilua/config.lua (which validates and normalises it) and has config_decode.c turn
 * the result into an sg_config; runs per-request hooks (match, access, env functions) in
 * protected mode with a traceback, so a failing hook costs one request, never the process.
 * Hooks only run for routes that have them: plain prefix routing never enters Lua.
 */
#ifndef SG_LUA_BRIDGE_H
#define SG_LUA_BRIDGE_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "request.h"

/**
 * Loads and validates `file`. On success returns a config with one reference. On failure
 * returns NULL and appends the complete, user-facing report (every problem, one per line,
 * starting "scgi-lua: invalid configuration in FILE") to `report`. Member states come from
 * `reg` (NULL: fresh private ones), so counters survive a reload. Does not log.
 */
sg_config *sg_config_load(const char *file, const char *lua_dir, unsigned generation,
                          sg_lb_registry *reg, sg_buf *report);
/**
 * sg_config_load, but runs `src` (`len` bytes: the file's contents as read earlier) instead
 * of what `file` holds now; `file` still names it in messages and locates its `require`s.
 * Modules it requires and files it reads are read now: only the main file is pinned.
 */
sg_config *sg_config_load_source(const char *file, const char *src, size_t len, const char *lua_dir,
                                 unsigned generation, sg_lb_registry *reg, sg_buf *report);
/**
 * sg_config_load_source for a loader thread: `cancel` (may be NULL) is polled while the
 * file runs, and nonzero ends the load as a failure. With `reg` NULL every member gets a
 * private state; sg_config_bind_registry then swaps in the shared ones. Touches no
 * process-global state (its Lua state, heap cap and budget are its own), so it may run on
 * another thread than the loop, as long as `reg` is NULL or that thread's alone.
 */
sg_config *sg_config_load_cancellable(const char *file, const char *src, size_t len,
                                      const char *lua_dir, unsigned generation, sg_lb_registry *reg,
                                      const _Atomic int *cancel, sg_buf *report);
/**
 * Replaces every member state of `cfg` (loaded with reg NULL) by the registry's state for
 * the same URL, so counters and error state carry on across a reload. On the loop only.
 */
void sg_config_bind_registry(sg_config *cfg, sg_lb_registry *reg);
sg_config *sg_config_ref(sg_config *cfg);
void sg_config_unref(sg_config *cfg);
/** Appends the `-t` summary (one line per route) to `out`. */
void sg_config_summary(sg_config *cfg, sg_buf *out);

/** What hooks may read about the request; the Lua table is built on first use. */
typedef struct sg_hook_ctx {
    sg_config *cfg;          /* borrowed */
    const sg_request *req;   /* borrowed */
    const sg_client *client; /* borrowed: addresses, TLS */
    int table_ref;           /* LUA_NOREF until built */
} sg_hook_ctx;

void sg_hook_ctx_init(sg_hook_ctx *ctx, sg_config *cfg, const sg_request *req,
                      const sg_client *client);
void sg_hook_ctx_release(sg_hook_ctx *ctx);

/**
 * Runs the match of `rt` (its string pattern, or its function with the req table) under
 * the hook budget; route selection itself is router.c's. Returns SG_OK with *ok, or SG_ERR
 * with the Lua error in `err` (*ok false). Does not log.
 */
int sg_lua_match(sg_hook_ctx *ctx, const sg_route *rt, bool *ok, sg_buf *err);

/** Runs route.access. *status = 0 to go on; else the status and an optional body. */
int sg_lua_access(sg_hook_ctx *ctx, const sg_route *route, int *status, sg_buf *body, sg_buf *err);

/**
 * Evaluates an env function. Returns SG_OK with the value appended to `value` and
 * *present = true, or *present = false when it returned nil/false; SG_ERR on a Lua error.
 */
int sg_lua_env(sg_hook_ctx *ctx, const sg_env_entry *e, sg_buf *value, bool *present, sg_buf *err);

/**
 * Runs a balancer's Lua method over the members (live fields busy, requests and usable are
 * refreshed first; usable[i] says whether member i may take this request). Returns SG_OK
 * with *idx (-1 when the method returned nil), or SG_ERR with the error in `err`.
 */
int sg_lua_balance(sg_hook_ctx *ctx, const sg_balancer *b, const bool *usable, int *idx,
                   sg_buf *err);

/** What an access log line is made of (the `res` table handed to log_format). */
typedef struct sg_log_fields {
    int status;
    uint64_t bytes;
    double duration;
    const char *backend;    /* or NULL */
    const char *time_local; /* "26/Nov/2026:04:54:09 +0000" */
} sg_log_fields;

/** Runs the config's log_format(req, res); appends the line (newline ensured). */
int sg_lua_log_format(sg_hook_ctx *ctx, const sg_log_fields *f, sg_buf *line, sg_buf *err);

#endif
