/*
 * router.c: route selection (router.h). Pure C over the decoded sg_route array; only a
 * route's `match` runs Lua, via sg_lua_match. Routes are tried in configuration order and
 * the first one that holds wins; nothing here allocates unless a hook reports an error.
 */
#include "router.h"

#include <lauxlib.h> /* LUA_NOREF: a route without a match function */
#include <string.h>

#include "util.h"

static bool prefix_match(const sg_route *rt, const sg_request *r)
{
    return !rt->path ||
           (r->path_len >= rt->path_len && memcmp(r->path, rt->path, rt->path_len) == 0);
}

/* "/code" asked, "/code/" configured: the route a 301 would send the client to */
static bool slash_redirect(const sg_route *rt, const sg_request *r)
{
    return rt->path && rt->path_len > 1 && rt->path[rt->path_len - 1] == '/' &&
           r->path_len == rt->path_len - 1 && memcmp(r->path, rt->path, r->path_len) == 0;
}

int sg_router_select(sg_hook_ctx *ctx, const sg_route **route, const sg_route **redirect_slash,
                     sg_buf *err)
{
    const sg_config *cfg = ctx->cfg;
    const sg_request *r = ctx->req;
    *route = NULL;
    *redirect_slash = NULL;
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const sg_route *rt = &cfg->routes[i];
        if (!prefix_match(rt, r)) {
            if (!*redirect_slash && slash_redirect(rt, r))
                *redirect_slash = rt;
            continue;
        }
        if (rt->match_pattern && r->path_len > cfg->limits.match_path_bytes) {
            /* string.find backtracks in C where the hook budget cannot stop it; the
             * pattern's cost is bounded at load for paths up to this length */
            sg_buf_appendf(err,
                           "path of %zu bytes is longer than limits.match_path_bytes (%zu) "
                           "for the pattern of route %zu",
                           r->path_len, cfg->limits.match_path_bytes, i + 1);
            return SG_DECLINED;
        }
        if (rt->match_pattern || rt->match_ref != LUA_NOREF) {
            bool ok = false;
            if (sg_lua_match(ctx, rt, &ok, err) != SG_OK)
                return SG_ERR;
            if (!ok)
                continue;
        }
        *route = rt;
        *redirect_slash = NULL;
        return SG_OK;
    }
    return SG_OK;
}
