/*
 * cgivars.h: builds the SCGI variable set of one request attempt from the request, its
 * route, the backend (PATH_INFO depends on the member's URL path) and the client's
 * addresses. Protocol-neutral: the request may come from any carrier. Pure apart from the
 * route's env functions, which run through lua_bridge (protected, budgeted).
 */
#ifndef SG_CGIVARS_H
#define SG_CGIVARS_H

#include <stddef.h>

#include "buf.h"
#include "config.h"
#include "lua_bridge.h"
#include "request.h"
#include "scgi.h"

typedef struct sg_cgi_vars_in {
    const sg_request *req;
    const sg_route *route;
    const sg_backend *be;    /* this attempt's backend */
    const sg_client *client; /* the carrier's addresses */
    sg_hook_ctx *hook;       /* for the route's env functions */
    const char *orig_uri;    /* the client's request-target after an internal redirect, or NULL */
    size_t orig_uri_len;
} sg_cgi_vars_in;

/**
 * Replaces the contents of `v` with the request's variables. Returns SG_OK, or SG_ERR
 * with `err` naming the env entry whose function failed (the caller logs it and answers).
 */
int sg_cgi_vars_build(sg_scgi_vars *v, const sg_cgi_vars_in *in, sg_buf *err);

#endif
