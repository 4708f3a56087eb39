/*
 * config_decode.h: turns the normalised config table into an sg_config.
 *
 * Reads: the table scgilua.config's load_file returned (validated and normalised by the Lua
 * side, which owns every validation message and every default), at the top of the stack of
 * the config's own Lua state. A field the schema always fills is required here: absent, or
 * of another type, it breaks that contract (not a user error) and fails the decode with
 * "config decode: <dotted path> missing" (or "...: T expected, got U"); no value is guessed.
 * The fields the schema may leave out mean "none" (status, sticky, route, check,
 * sendfile_root, text, path, match and the hook functions).
 * Fills: the fields of config.h that come from it (timeouts, limits, workers, access_log,
 * log_level, listen, status, balancers with their members, routes), resolving host names
 * with getaddrinfo and sendfile roots with realpath; hook functions become registry
 * references in that state. Member states come from `reg` (NULL: fresh private ones). The
 * stack is left as it was.
 *
 * Ownership: everything filled belongs to `cfg` (its caller, lua_bridge.c, owns `cfg` and
 * its Lua state); sg_config_decode_free releases it, also after a failed decode.
 *
 * Runs on the loader thread (loader.c): it must not touch the live config, the log or any
 * other process-global state. Nothing here logs; problems go, one "  what: why" line each,
 * to the caller's `report` buffer.
 */
#ifndef SG_CONFIG_DECODE_H
#define SG_CONFIG_DECODE_H

#include "buf.h"
#include "config.h"

/**
 * Decodes the table at the stack top of `L` into `cfg`. Returns SG_OK, or SG_ERR with every
 * problem appended to `report` (decoding goes on past a problem, so all are reported).
 */
int sg_config_decode(lua_State *L, sg_config *cfg, sg_lb_registry *reg, sg_buf *report);

/**
 * Frees what sg_config_decode filled in `cfg` (complete or partial) and drops its member
 * state references; not `cfg` itself, its file or its Lua state.
 */
void sg_config_decode_free(sg_config *cfg);

#endif
