/*
 * router.h: route selection, in C. Walks the routes of one config generation in order:
 * prefix (and the "/code" -> "/code/" redirect), the limits.match_path_bytes rule for
 * string patterns, then the route's match (pattern or function), which is the only step
 * that enters Lua (through lua_bridge). Plain prefix routing never touches Lua. Does not
 * log and knows nothing about HTTP framing; the caller turns the outcome into a response.
 */
#ifndef SG_ROUTER_H
#define SG_ROUTER_H

#include "buf.h"
#include "config.h"
#include "lua_bridge.h"

/**
 * The first route whose path prefix and match both hold. Returns SG_OK with *route set
 * (NULL: none matched; then *redirect_slash is the first route whose prefix is the path
 * plus a trailing slash, for a 301), or SG_ERR with the match hook's error in `err` (the
 * caller logs it; the request gets a 500), or SG_DECLINED when a string-pattern route
 * would have to run on a path longer than limits.match_path_bytes (why in `err`; a 414:
 * README "Limits"). Does not log.
 */
int sg_router_select(sg_hook_ctx *ctx, const sg_route **route, const sg_route **redirect_slash,
                     sg_buf *err);

#endif
