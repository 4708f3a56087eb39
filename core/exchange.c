/*
 * exchange.c: one request from its complete head to the end of its response (exchange.h
 * says what that covers). Above the socket work of backend.c: one new backend connection
 * per attempt (SCGI closes after each response), the balancer member and failover decided
 * here, the head's meaning decided here, and every failure logged once with the request.
 */
#include "exchange.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cgivars.h"
#include "http.h"
#include "log.h"
#include "router.h"
#include "sendfile.h"
#include "status.h"
#include "util.h"

static void upstream_close(sg_exchange *x);
static void upstream_start(sg_exchange *x);
static void upstream_init(sg_exchange *x);
static void upstream_reset(sg_exchange *x);
static void route_request(sg_exchange *x);

/* ---- responses ---- */

void sg_exchange_log(sg_exchange *x, int level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (x->route)
        sg_log(level, 0, "%s (client %s, request \"%s %.*s\", route %d %s, backend %s)", msg,
               x->client->peer, x->req.method ? x->req.method : "-", (int)x->req.uri_len_view,
               x->req.uri ? x->req.uri : "", x->route->index,
               x->route->path ? x->route->path : "(match)", x->route->text);
    else
        sg_log(level, 0, "%s (client %s, request \"%s %.*s\")", msg, x->client->peer,
               x->req.method ? x->req.method : "-", (int)x->req.uri_len_view,
               x->req.uri ? x->req.uri : "");
}

static bool keep_alive(const sg_exchange *x)
{
    return x->req.keepalive && !x->close_after && !sg_host_stopping(x->host);
}

/*
 * Ends the final head: the writer frames the body and may rule keep-alive out (a body
 * delimited by the close); an unread request body rules it out here.
 */
static void end_head(sg_exchange *x, int64_t content_length)
{
    if (!x->req.has_body || x->rb.complete) {
        /* nothing left to read */
    } else if (x->phase != SG_X_PROXY || x->up.b.write_closed) {
        x->close_after = true; /* unread body: cannot find the next request reliably */
    }
    if (!sg_response_end_head(&x->resp, content_length, sg_buf_head(&x->redirect_cookies),
                              x->redirect_cookies.len, keep_alive(x), sg_host_date(x->host)))
        x->close_after = true;
}

/*
 * A response made by the gateway itself; `status` is final (callers refuse a 1xx). `out`
 * may already hold complete interim heads (100 Continue, a backend's 103): they stay, as
 * the client may have read part of them.
 */
static void reply(sg_exchange *x, int status, const char *ctype, const char *body, size_t blen,
                  const char *location)
{
    assert(status >= 200 && "a gateway reply is a final response");
    x->phase = SG_X_LOCAL;
    sg_response_begin(&x->resp, status, NULL, 0);
    sg_response_add_raw(&x->resp, "Server: " SG_SOFTWARE "\r\n", sizeof SG_SOFTWARE + 9);
    if (location)
        sg_response_add_header(&x->resp, "Location", 8, location, strlen(location));
    if (!sg_http_status_has_body(status))
        blen = 0; /* a 204/304 from an access hook: its body has no place on the wire */
    else
        sg_response_add_header(&x->resp, "Content-Type", 12, ctype, strlen(ctype));
    end_head(x, (int64_t)blen);
    sg_response_body(&x->resp, body, blen); /* dropped by the writer for a HEAD */
    x->resp.done = true;
}

void sg_exchange_error(sg_exchange *x, int status, const char *cause)
{
    if (x->resp.started) {
        /* too late for a status: the only honest signal left is closing */
        sg_exchange_log(x, SG_LOG_ERROR, "%s after the response started, closing", cause);
        upstream_close(x);
        x->ops->on_abort(x);
        return;
    }
    upstream_close(x);
    char body[256];
    int n = snprintf(body, sizeof body, "%d %s\n", status, sg_http_reason(status));
    x->close_after = x->close_after || status == 400 || status == 408 || status == 413 ||
                     status == 431 || status == 501 || status == 505;
    reply(x, status, "text/plain", body, (size_t)n, NULL);
}

/* ---- request lifecycle ---- */

static void access_log(sg_exchange *x)
{
    if (!sg_access_log_enabled() || !x->req.method)
        return;
    const char *method = x->redirects ? x->orig_method : x->req.method;
    const char *uri = x->redirects ? sg_buf_head(&x->orig_uri) : x->req.uri;
    int uri_len = x->redirects ? (int)x->orig_uri.len : (int)x->req.uri_len_view;
    char tbuf[64];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(tbuf, sizeof tbuf, "%d/%b/%Y:%H:%M:%S %z", &tm);
    const sg_req_header *ref = sg_request_header(&x->req, "Referer");
    const sg_req_header *ua = sg_request_header(&x->req, "User-Agent");
    sg_buf line;
    sg_buf_init(&line);
    double took = ev_time() - x->t_start;
    const char *backend = x->route && x->up.be ? x->up.be->text : NULL;
    if (x->cfg && x->cfg->log_format_ref >= 0 && x->hook.cfg) {
        sg_log_fields f = { x->resp.status, x->resp.bytes_out, took, backend, tbuf };
        sg_buf err;
        sg_buf_init(&err);
        if (sg_lua_log_format(&x->hook, &f, &line, &err) != SG_OK) {
            sg_log_error(0, "log_format failed, using the default format: %.*s", (int)err.len,
                         sg_buf_head(&err));
            sg_buf_reset(&line);
        }
        sg_buf_free(&err);
    }
    if (line.len == 0) { /* client bytes escaped: a quoted field can neither end nor add a line */
        sg_buf_appendf(&line, "%s - - [%s] \"%s ", x->client->remote_addr, tbuf, method);
        sg_http_log_escape(&line, uri, (size_t)uri_len);
        sg_buf_appendf(&line, " HTTP/%d.%d\" %d %llu \"", x->req.http_major, x->req.http_minor,
                       x->resp.status, (unsigned long long)x->resp.bytes_out);
        sg_http_log_escape(&line, ref ? ref->value : "-", ref ? ref->value_len : 1);
        sg_buf_append(&line, "\" \"", 3);
        sg_http_log_escape(&line, ua ? ua->value : "-", ua ? ua->value_len : 1);
        sg_buf_appendf(&line, "\" %.3f %s\n", took, backend ? backend : "-");
    }
    sg_access_log_write(sg_buf_head(&line), line.len);
    sg_buf_free(&line);
}

/*
 * Every per-request field back to its state before a request: flags, counters, times, and
 * the pointers borrowed from the request's configuration (a reload frees that generation once
 * the last request using it ended, so a pointer kept past sg_exchange_end dangles). What the
 * request owned was released first. Only reused scratch buffers keep their memory (until
 * sg_exchange_shrink), and `req`, which the carrier's parser restarts per head.
 */
static void request_reset(sg_exchange *x)
{
    x->phase = SG_X_IDLE;
    x->cfg = NULL;
    x->route = NULL;
    sg_hook_ctx_init(&x->hook, NULL, NULL, NULL);
    x->close_after = x->sent_continue = false;
    sg_response_reset(&x->resp); /* closes a file body left by a cut response */
    x->t_start = 0;
    x->redirects = 0;
    x->redirect_pending = false;
    x->orig_method = NULL;
}

void sg_exchange_end(sg_exchange *x)
{
    if (x->req.method && x->resp.status)
        sg_stats_record(sg_host_stats(x->host), x->resp.status, ev_time() - x->t_start);
    access_log(x);
    sg_hook_ctx_release(&x->hook);
    upstream_reset(x);
    sg_host_pipe_give(x->host, &x->resp.pipe);
    sg_buf_reset(&x->redirect_cookies);
    sg_buf_reset(&x->orig_uri);
    sg_config_unref(x->cfg);
    sg_reqbody_reset(&x->rb);
    request_reset(x);
}

static void send_continue(sg_exchange *x)
{
    if (x->req.expect_continue && !x->sent_continue) {
        sg_response_begin(&x->resp, 100, NULL, 0);
        sg_response_end_interim(&x->resp);
        x->sent_continue = true;
    }
}

/* JSON, Prometheus or HTML, for the addresses in status.allow only
 * (scgi-lua.8 STATUS ENDPOINT). */
static void status_endpoint(sg_exchange *x)
{
    const sg_request *r = &x->req;
    if (!sg_status_allowed(x->cfg, x->client->remote_addr)) {
        sg_exchange_log(x, SG_LOG_WARN, "status endpoint refused: client not in status.allow, 403");
        sg_exchange_error(x, 403, "status not allowed");
        return;
    }
    int f = sg_status_format_parse(r->query, r->query_len);
    if (f < 0) {
        sg_exchange_error(x, 400, "unknown status format");
        return;
    }
    sg_status_view v = { .stats = sg_host_stats(x->host),
                         .cfg = x->cfg,
                         .now = ev_time(),
                         .generation = x->cfg->generation,
                         .connections_open = sg_host_nconns(x->host),
                         .pid = (int)getpid(),
                         .version = SG_VERSION };
    sg_buf body;
    sg_buf_init(&body);
    sg_status_render(&v, (enum sg_status_format)f, &body);
    reply(x, 200, sg_status_content_type((enum sg_status_format)f), sg_buf_head(&body), body.len,
          NULL);
    sg_buf_free(&body);
}

/*
 * The same URL over https:// (README "TLS"): the host the client asked for, the first TLS
 * listener's port unless it is 443. 301 for GET and HEAD; 308 for other methods, which
 * keeps the method and body (a 301 would let the client turn a POST into a GET).
 */
static void redirect_https(sg_exchange *x)
{
    const sg_request *r = &x->req;
    sg_buf loc;
    sg_buf_init(&loc);
    sg_buf_append(&loc, "https://", 8);
    bool v6;
    if (r->host && r->host_len) {
        v6 = memchr(r->host, ':', r->host_len) != NULL;
        sg_buf_appendf(&loc, "%s%.*s%s", v6 ? "[" : "", (int)r->host_len, r->host, v6 ? "]" : "");
    } else {
        v6 = strchr(x->client->server_addr, ':') != NULL;
        sg_buf_appendf(&loc, "%s%s%s", v6 ? "[" : "", x->client->server_addr, v6 ? "]" : "");
    }
    if (x->cfg->https_port && x->cfg->https_port != 443)
        sg_buf_appendf(&loc, ":%d", x->cfg->https_port);
    if (r->uri && r->uri[0] == '/') /* origin form; an absolute-form target keeps only the path */
        sg_buf_append(&loc, r->uri, r->uri_len_view);
    else
        sg_buf_appendf(&loc, "%s%s%.*s", r->path, r->query_len ? "?" : "", (int)r->query_len,
                       r->query);
    sg_buf_append(&loc, "", 1);
    int status = r->method_id == HTTP_GET || r->head_only ? 301 : 308;
    char body[64];
    int n = snprintf(body, sizeof body, "%d %s\n", status, sg_http_reason(status));
    if (r->has_body && !x->rb.complete)
        x->close_after = true; /* the body is not read: the next request cannot be found */
    reply(x, status, "text/plain", body, (size_t)n, sg_buf_head(&loc));
    sg_buf_free(&loc);
}

/* Routes the request (a new one, or one an internal redirect retargeted) and starts it. */
static void route_request(sg_exchange *x)
{
    sg_request *r = &x->req;
    sg_hook_ctx_release(&x->hook); /* a retargeted request needs a fresh req table */
    sg_hook_ctx_init(&x->hook, x->cfg, r, x->client);
    x->route = NULL;
    if (x->client->redirect_https && !x->client->tls) {
        redirect_https(x);
        return;
    }
    if (x->cfg->status_path && strcmp(r->path, x->cfg->status_path) == 0) {
        status_endpoint(x);
        return;
    }
    sg_buf err;
    sg_buf_init(&err);
    const sg_route *route, *slash;
    int src = sg_router_select(&x->hook, &route, &slash, &err);
    if (src == SG_DECLINED) {
        sg_exchange_log(x, SG_LOG_INFO, "%.*s, 414", (int)err.len, sg_buf_head(&err));
        sg_buf_free(&err);
        sg_exchange_error(x, 414, "path too long for route patterns");
        return;
    }
    if (src != SG_OK) {
        sg_exchange_log(x, SG_LOG_ERROR, "match hook failed: %.*s", (int)err.len,
                        sg_buf_head(&err));
        sg_buf_free(&err);
        sg_exchange_error(x, 500, "hook error");
        return;
    }
    if (route && r->encoded_slash && !route->allow_encoded_slashes) {
        /* Apache's AllowEncodedSlashes Off; the route is the one the path selects with %2F
         * kept as a plain segment character, so no later route is tried instead */
        sg_exchange_log(x, SG_LOG_INFO, "encoded slash in the path, route does not allow it, 404");
        sg_buf_free(&err);
        sg_exchange_error(x, 404, "encoded slash");
        return;
    }
    if (!route) {
        if (slash) {
            sg_buf loc;
            sg_buf_init(&loc);
            sg_buf_appendf(&loc, "%s%s%.*s", slash->path, r->query_len ? "?" : "",
                           (int)r->query_len, r->query);
            sg_buf_append(&loc, "", 1);
            const char *body = "301 Moved Permanently\n";
            reply(x, 301, "text/plain", body, strlen(body), sg_buf_head(&loc));
            sg_buf_free(&loc);
        } else {
            sg_exchange_log(x, SG_LOG_INFO, "no route matches, 404");
            sg_exchange_error(x, 404, "no route");
        }
        sg_buf_free(&err);
        return;
    }
    x->route = route;
    if (route->https_only && !x->client->tls) {
        sg_exchange_log(x, SG_LOG_INFO, "route is https_only, redirected to https");
        redirect_https(x);
        sg_buf_free(&err);
        return;
    }
    int status;
    sg_buf body;
    sg_buf_init(&body);
    bool with_body = r->has_body && x->redirects == 0;
    if (sg_lua_access(&x->hook, route, &status, &body, &err) != SG_OK) {
        sg_exchange_log(x, SG_LOG_ERROR, "access hook failed: %.*s", (int)err.len,
                        sg_buf_head(&err));
        sg_exchange_error(x, 500, "hook error");
    } else if (status && status < 200) {
        /* an interim status answers nothing: the client would wait for the final one */
        sg_exchange_log(x, SG_LOG_ERROR, "access hook returned the interim status %d, 500", status);
        sg_exchange_error(x, 500, "access hook");
    } else if (status) {
        sg_exchange_log(x, SG_LOG_INFO, "access hook answered %d", status);
        if (body.len)
            reply(x, status, "text/plain", sg_buf_head(&body), body.len, NULL);
        else
            sg_exchange_error(x, status, "access hook");
    } else if (with_body && r->content_length > 0 &&
               (uint64_t)r->content_length > x->cfg->limits.body_bytes) {
        sg_exchange_log(x, SG_LOG_WARN, "request body of %lld bytes exceeds limits.body_bytes, 413",
                        (long long)r->content_length);
        sg_exchange_error(x, 413, "body too large");
    } else if (with_body && r->chunked) {
        x->phase = SG_X_SPOOL;
        send_continue(x);
    } else {
        x->phase = SG_X_PROXY;
        if (with_body) {
            send_continue(x);
            sg_reqbody_start_raw(&x->rb, (uint64_t)r->content_length);
            x->ops->prefetch_body(x);
        }
        upstream_start(x);
    }
    sg_buf_free(&body);
    sg_buf_free(&err);
}

/* The reference on the config generation is held for the whole request. */
void sg_exchange_begin(sg_exchange *x)
{
    x->cfg = sg_config_ref(sg_host_config(x->host));
    route_request(x);
}

/* ---- balancer members ---- */

static double wall_now(sg_exchange *x)
{
    return ev_now(x->host->loop);
}

static sg_lb_member *cur_member(sg_exchange *x)
{
    sg_upstream *u = &x->up;
    return u->bal && u->member >= 0 ? &u->bal->lb.members[u->member] : NULL;
}

/* The counters of the current attempt: the balancer member's or the direct backend's. */
static sg_member_state *cur_state(sg_exchange *x)
{
    return x->up.st;
}

/* Ends the current attempt's share of the request (busy count). */
static void release_member(sg_exchange *x)
{
    sg_member_state *st = cur_state(x);
    if (st && st->busy)
        st->busy--;
    x->up.member = -1;
    x->up.st = NULL;
    x->up.b.bytes_to = x->up.b.bytes_from = NULL;
}

/* Chooses the member for the next attempt; -1 when none is left (or a Lua error, logged). */
static int choose_member(sg_exchange *x, const sg_balancer *b)
{
    sg_upstream *u = &x->up;
    sg_lb *lb = (sg_lb *)&b->lb;
    double now = wall_now(x);
    char route[64];
    const char *rp = NULL;
    if (b->sticky) {
        const sg_req_header *ck = sg_request_header(&x->req, "Cookie");
        if (sg_lb_sticky_route(ck ? ck->value : NULL, ck ? ck->value_len : 0, x->req.query,
                               x->req.query_len, b->sticky, route, sizeof route))
            rp = route;
    }
    if (lb->method != SG_LB_LUA) {
        bool recovered = false;
        int idx = sg_lb_pick(lb, now, rp, u->tried, &recovered);
        if (recovered)
            sg_exchange_log(x, SG_LOG_WARN,
                            "balancer %s: every member was out of service, trying them all again",
                            b->name);
        return idx;
    }
    int idx = sg_lb_sticky(lb, now, rp, u->tried);
    if (idx >= 0)
        return idx;
    size_t cand[SG_LB_MAX_MEMBERS];
    size_t n = sg_lb_candidates(lb, now, u->tried, cand, SG_LB_MAX_MEMBERS);
    if (n == 0 && sg_lb_recover(lb, now, u->tried)) {
        sg_exchange_log(x, SG_LOG_WARN,
                        "balancer %s: every member was out of service, trying them all again",
                        b->name);
        n = sg_lb_candidates(lb, now, u->tried, cand, SG_LB_MAX_MEMBERS);
    }
    if (n == 0)
        return -1;
    bool usable[SG_LB_MAX_MEMBERS] = { false };
    for (size_t i = 0; i < n; i++)
        usable[cand[i]] = true;
    sg_buf err;
    sg_buf_init(&err);
    if (sg_lua_balance(&x->hook, b, usable, &idx, &err) != SG_OK) {
        sg_exchange_log(x, SG_LOG_ERROR, "balancer %s method failed: %.*s", b->name, (int)err.len,
                        sg_buf_head(&err));
        idx = -2;
    } else if (idx >= 0 && sg_lb_excluded(u->tried, (size_t)idx)) {
        idx = -1; /* already failed for this request: do not loop on it */
    }
    sg_buf_free(&err);
    return idx;
}

/* ---- the exchange ---- */

static const sg_backend_cbs backend_cbs;

static void upstream_init(sg_exchange *x)
{
    sg_upstream *u = &x->up;
    *u = (sg_upstream){ .member = -1 };
    sg_backend_init(&u->b, x->host->loop, &backend_cbs);
}

static void upstream_close(sg_exchange *x)
{
    sg_upstream *u = &x->up;
    release_member(x);
    if (u->b.phase != SG_UP_IDLE && u->b.phase != SG_UP_DONE && x->req.has_body &&
        !x->rb.complete) {
        /* the rest of the client's body has nowhere to go */
        x->rb.discard = true;
        x->close_after = true;
    }
    sg_backend_close(&u->b);
}

/*
 * Everything after the exchange in one memset, not field by field: the backend, balancer and
 * member state it borrowed from the request's configuration must not reach the next request
 * on this carrier (a reload may have freed them by then), nor must any field added later.
 * The exchange forgets its own borrowed pointers (sg_backend_reset) and keeps only its
 * buffers' memory (sg_exchange_shrink gives it back between requests).
 */
static void upstream_reset(sg_exchange *x)
{
    sg_upstream *u = &x->up;
    upstream_close(x);
    sg_backend_reset(&u->b);
    memset(&u->be, 0, sizeof *u - offsetof(sg_upstream, be));
    u->member = -1;
}

static uint64_t body_length(const sg_exchange *x)
{
    if (x->redirects)
        return 0; /* a redirected request is a GET without body */
    if (x->req.chunked)
        return x->rb.received;
    return x->req.content_length > 0 ? (uint64_t)x->req.content_length : 0;
}

static void connect_attempt(sg_exchange *x);

static void upstream_start(sg_exchange *x)
{
    sg_upstream *u = &x->up;
    const sg_route *rt = x->route;
    u->bal = rt->balancer;
    u->member = -1;
    u->attempts = 0;
    u->be = NULL;
    memset(u->tried, 0, sizeof u->tried);
    connect_attempt(x);
}

/*
 * One connect, to the route's backend or the next balancer member. The netstring is built
 * per attempt: PATH_INFO depends on the member's URL path.
 */
static void connect_attempt(sg_exchange *x)
{
    sg_upstream *u = &x->up;
    const sg_backend *be = &x->route->be;
    if (u->bal) {
        int idx = choose_member(x, u->bal);
        if (idx < 0) {
            if (idx == -2) {
                sg_exchange_error(x, 500, "balancer hook error");
                return;
            }
            sg_exchange_log(x, SG_LOG_ERROR, "balancer %s: no usable member%s, 503", u->bal->name,
                            u->attempts ? " left to try" : "");
            sg_exchange_error(x, 503, "no backend");
            return;
        }
        sg_lb_member *m = &u->bal->lb.members[idx];
        u->member = idx;
        sg_lb_exclude(u->tried, (size_t)idx);
        u->st = m->st;
        be = &u->bal->backends[idx];
    } else {
        u->st = x->route->st;
    }
    u->attempts++;
    u->be = be;
    /* a new exchange: nothing of a failed attempt (which sent no body byte) carries over */
    sg_backend_prepare(&u->b, &x->rb, &x->resp, body_length(x));
    if (u->st) {
        u->st->busy++;
        u->st->requests++;
        u->b.bytes_to = &u->st->bytes_to;
        u->b.bytes_from = &u->st->bytes_from;
    }
    sg_cgi_vars_in in = { .req = &x->req,
                          .route = x->route,
                          .be = be,
                          .client = x->client,
                          .hook = &x->hook,
                          .orig_uri = x->redirects ? sg_buf_head(&x->orig_uri) : NULL,
                          .orig_uri_len = x->orig_uri.len };
    sg_buf err;
    sg_buf_init(&err);
    int rc = sg_cgi_vars_build(&x->vars, &in, &err);
    if (rc != SG_OK)
        sg_exchange_log(x, SG_LOG_ERROR, "%.*s", (int)err.len, sg_buf_head(&err));
    sg_buf_free(&err);
    if (rc != SG_OK) {
        sg_exchange_error(x, 500, "hook error");
        return;
    }
    sg_scgi_encode(&x->vars, u->b.body_len, &u->b.req);
    sg_backend_connect(&u->b, (const struct sockaddr *)&be->addr, be->addrlen,
                       be->addr.ss_family != AF_UNIX && u->b.body_len > 0);
}

/*
 * The current attempt failed before the backend answered (the caller logged why): the failure
 * is counted on the backend, and a balancer member is also out for `retry` seconds. With
 * `replay` (nothing of the request went out that could not be sent again) the next member
 * takes the request (README "Balancers"), up to maxattempts; otherwise, or for a direct
 * backend, the client gets `status`.
 */
static void attempt_failed(sg_exchange *x, const char *why, bool replay, int status,
                           const char *cause)
{
    sg_upstream *u = &x->up;
    sg_lb_member *m = cur_member(x);
    sg_backend_close_fd(&u->b);
    if (m) {
        sg_lb_fail(m, wall_now(x), why);
    } else if (cur_state(x)) {
        cur_state(x)->failures++;
        snprintf(cur_state(x)->last_error, sizeof cur_state(x)->last_error, "%s", why);
    }
    release_member(x);
    if (!m || !replay) {
        sg_exchange_error(x, status, cause);
        return;
    }
    if (u->attempts > u->bal->maxattempts) {
        sg_exchange_log(x, SG_LOG_ERROR, "balancer %s: %d attempts failed (maxattempts %d), %d",
                        u->bal->name, u->attempts, u->bal->maxattempts, status);
        sg_exchange_error(x, status, cause);
        return;
    }
    connect_attempt(x);
}

/*
 * Connect refused or timed out: nothing of the request reached this backend, so another
 * balancer member may take it; the failed member is out for `retry` seconds.
 */
static void connect_failed(sg_exchange *x, const char *why)
{
    sg_exchange_log(x, SG_LOG_ERROR, "connect to %s failed: %s%s", x->up.be->text, why,
                    cur_member(x) ? "" : ", 503");
    attempt_failed(x, why, true, 503, "connect failed");
}

/* ---- response ---- */

static const sg_cgi_header *find_header(const sg_cgi_head *h, const char *name)
{
    for (size_t i = 0; i < h->nheaders; i++)
        if (sg_strieq(h->headers[i].name, h->headers[i].name_len, name))
            return &h->headers[i];
    return NULL;
}

/* X-Sendfile (README "X-Sendfile and internal redirects"): the backend's status and headers,
 * the gateway's file. */
static int serve_file(sg_exchange *x, const sg_cgi_head *h, const sg_cgi_header *sf)
{
    const sg_route *rt = x->route;
    int status;
    const char *err;
    struct stat st;
    int fd = sg_sendfile_open(sf->value, sf->value_len, rt->sendfile_root, rt->nroots, &st, &status,
                              &err);
    if (fd < 0) {
        sg_exchange_log(x, status == 403 ? SG_LOG_WARN : SG_LOG_ERROR, "%s: \"%.*s\", %d", err,
                        (int)sf->value_len, sf->value, status);
        upstream_close(x);
        sg_exchange_error(x, status, err);
        return SG_ERR;
    }
    const sg_cgi_header *etag = find_header(h, "ETag");
    const sg_cgi_header *lm = find_header(h, "Last-Modified");
    sg_sendfile_plan plan;
    sg_sendfile_plan_make(&x->req, h->status, &st, etag ? etag->value : NULL,
                          etag ? etag->value_len : 0, lm ? lm->value : NULL, lm ? lm->value_len : 0,
                          &plan);
    if (plan.status == h->status)
        sg_response_begin(&x->resp, plan.status, h->reason, h->reason_len);
    else
        sg_response_begin(&x->resp, plan.status, NULL, 0);
    for (size_t i = 0; i < h->nheaders; i++) {
        const sg_cgi_header *hd = &h->headers[i];
        if (hd == sf || sg_strieq(hd->name, hd->name_len, "Content-Length") ||
            sg_strieq(hd->name, hd->name_len, "Content-Range") ||
            sg_strieq(hd->name, hd->name_len, "Date"))
            continue;
        sg_response_add_header(&x->resp, hd->name, hd->name_len, hd->value, hd->value_len);
    }
    if (!etag)
        sg_response_add_header(&x->resp, "ETag", 4, plan.etag, strlen(plan.etag));
    if (!lm)
        sg_response_add_header(&x->resp, "Last-Modified", 13, plan.last_modified,
                               strlen(plan.last_modified));
    sg_response_add_raw(&x->resp, "Accept-Ranges: bytes\r\n", 22);
    char range[96];
    int rlen = 0;
    if (plan.status == 206)
        rlen = snprintf(range, sizeof range, "bytes %lld-%lld/%lld", (long long)plan.start,
                        (long long)(plan.start + plan.len - 1), (long long)st.st_size);
    else if (plan.status == 416)
        rlen = snprintf(range, sizeof range, "bytes */%lld", (long long)st.st_size);
    if (rlen > 0)
        sg_response_add_header(&x->resp, "Content-Range", 13, range, (size_t)rlen);
    upstream_close(x);     /* the backend's own body is not wanted */
    end_head(x, plan.len); /* no Content-Length, and no file, for a 204 or 304 */
    if (x->resp.no_body || plan.len == 0) {
        close(fd);
        x->resp.done = true;
    } else {
        sg_response_set_file(&x->resp, fd, plan.start, (uint64_t)plan.len);
    }
    return SG_ERR; /* not an error: tells read_head the relay is over */
}

/* Internal redirect (README "X-Sendfile and internal redirects"): route the request again as
 * a GET to a local path. */
static int internal_redirect(sg_exchange *x, const sg_cgi_head *h, const sg_cgi_header *loc)
{
    char target[8192];
    if (loc->value_len >= sizeof target) {
        sg_exchange_log(x, SG_LOG_ERROR, "internal redirect target too long, 502");
        upstream_close(x);
        sg_exchange_error(x, 502, "redirect target too long");
        return SG_ERR;
    }
    memcpy(target, loc->value, loc->value_len);
    size_t tlen = loc->value_len;
    for (size_t i = 0; i < h->nheaders; i++) {
        const sg_cgi_header *hd = &h->headers[i];
        if (sg_strieq(hd->name, hd->name_len, "Set-Cookie"))
            sg_buf_appendf(&x->redirect_cookies, "Set-Cookie: %.*s\r\n", (int)hd->value_len,
                           hd->value);
    }
    upstream_close(x);
    if (x->redirects == 0) {
        sg_buf_append(&x->orig_uri, x->req.uri, x->req.uri_len_view);
        x->orig_method = x->req.method;
    }
    if (++x->redirects > 10) {
        sg_exchange_log(x, SG_LOG_ERROR, "more than 10 internal redirects (last to \"%.*s\"), 500",
                        (int)tlen, target);
        sg_exchange_error(x, 500, "redirect loop");
        return SG_ERR;
    }
    const char *err;
    if (sg_request_retarget(&x->req, target, tlen, &err) != SG_OK) {
        sg_exchange_log(x, SG_LOG_ERROR, "%s: \"%.*s\", 502", err, (int)tlen, target);
        sg_exchange_error(x, 502, err);
        return SG_ERR;
    }
    sg_log_debug(0, "internal redirect %d to %.*s (client %s)", x->redirects, (int)tlen, target,
                 x->client->peer);
    if (x->req.has_body && !x->rb.complete) {
        x->rb.discard = true; /* the rest of the upload belongs to no request now */
        x->close_after = true;
    }
    sg_reqbody_drop(&x->rb);
    x->up.b.phase = SG_UP_IDLE;
    /* routed again by step() once this backend callback has returned,
     * not from inside it: the retargeted request is a new step, not a nested one */
    x->redirect_pending = true;
    return SG_ERR;
}

/* A head the backend got wrong: one log line naming it, a failure on its count, a 502. */
static void bad_head(sg_exchange *x, const char *why)
{
    sg_exchange_log(x, SG_LOG_ERROR, "bad response head from backend %s (%s), 502", x->up.be->text,
                    why);
    if (cur_member(x))
        sg_lb_fail(cur_member(x), wall_now(x), why);
    else if (cur_state(x))
        cur_state(x)->failures++;
    sg_exchange_error(x, 502, "bad response");
}

/* ---- what the exchange reports (backend.c callbacks) ---- */

static sg_exchange *exchange_of(sg_backend_conn *b)
{
    return SG_CONTAINER_OF(b, sg_exchange, up.b);
}

/*
 * A 1xx head (RFC 9110 §15.2) is interim: the final head follows. 103 Early Hints goes on
 * to HTTP/1.1 clients (HTTP/1.0 has no 1xx); 100 is dropped, as Expect is answered here and
 * never reaches the backend; other 1xx codes mean nothing to a client of an SCGI gateway
 * and are dropped too (nginx drops them all). backend.c caps their number.
 */
static void on_interim(sg_backend_conn *b, const sg_cgi_head *h)
{
    sg_exchange *x = exchange_of(b);
    if (h->status == 103 && (x->req.http_major > 1 || x->req.http_minor >= 1)) {
        const char *sf = x->route->sendfile; /* a path on our disk: not for the client */
        sg_response_begin(&x->resp, h->status, h->reason, h->reason_len);
        for (size_t i = 0; i < h->nheaders; i++) {
            const sg_cgi_header *hd = &h->headers[i];
            if (sg_strieq(hd->name, hd->name_len, "Content-Length") ||
                (sf && sg_strieq(hd->name, hd->name_len, sf)))
                continue;
            sg_response_add_header(&x->resp, hd->name, hd->name_len, hd->value, hd->value_len);
        }
        sg_response_end_interim(&x->resp);
    }
}

/*
 * The final head. Returns SG_OK when the body relay starts, or SG_ERR when the exchange was
 * answered otherwise (X-Sendfile, internal redirect, an error).
 */
static int on_head(sg_backend_conn *b, const sg_cgi_head *h)
{
    sg_exchange *x = exchange_of(b);
    const sg_route *rt = x->route;
    if (rt->sendfile) {
        const sg_cgi_header *sf = find_header(h, rt->sendfile);
        if (sf)
            return serve_file(x, h, sf);
    }
    if (rt->internal_redirect && h->status == 200) {
        const sg_cgi_header *loc = find_header(h, rt->internal_redirect);
        if (loc && loc->value_len && loc->value[0] == '/')
            return internal_redirect(x, h, loc);
    }
    sg_response_begin(&x->resp, h->status, h->reason, h->reason_len);
    if (x->resp.no_body && x->req.has_body && !x->rb.complete)
        x->close_after = true;
    for (size_t i = 0; i < h->nheaders; i++) {
        const sg_cgi_header *hd = &h->headers[i];
        /* ours are added with the framing headers, which end_head decides */
        if (sg_strieq(hd->name, hd->name_len, "Date") ||
            sg_strieq(hd->name, hd->name_len, "Content-Length"))
            continue;
        sg_response_add_header(&x->resp, hd->name, hd->name_len, hd->value, hd->value_len);
    }
    end_head(x, h->content_length);
    return SG_OK;
}

static void on_big_body(sg_backend_conn *b)
{
    sg_exchange *x = exchange_of(b);
    /* splice(2) into the client works only on a transport whose fd carries plain bytes */
    if (x->resp.can_splice)
        sg_host_pipe_take(x->host, &x->resp.pipe);
}

/*
 * The backend's side of the response ended, and the writer with it. Only a response whose
 * end was seen is complete; any other closes the client connection without the final chunk,
 * as RFC 9112 §8 asks: a cut body must never look whole. The socket itself is closed after
 * the client write (upstream_reap).
 */
static void on_end(sg_backend_conn *b, bool whole, bool fin, int err)
{
    sg_exchange *x = exchange_of(b);
    sg_upstream *u = &x->up;
    if (whole) {
        /* complete: the writer ended the framing */
    } else if (x->resp.remaining > 0) {
        sg_exchange_log(
            x, SG_LOG_ERROR,
            "backend %s %s %lld bytes before its Content-Length, closing the client connection",
            u->be->text, fin ? "closed" : "reset the connection", (long long)x->resp.remaining);
        x->close_after = true;
    } else {
        sg_exchange_log(
            x, SG_LOG_ERROR,
            "backend %s reset the connection mid-response (%s), closing the client connection without completing the response",
            u->be->text, err ? strerror(err) : "its reads had failed");
        x->close_after = true;
    }
    release_member(x);
}

static void on_error(sg_backend_conn *b, enum sg_backend_err kind, bool replay, const char *why,
                     int err)
{
    sg_exchange *x = exchange_of(b);
    SG_UNUSED(replay); /* only a connect failure is replayable, and connect_failed knows it */
    switch (kind) {
    case SG_BACKEND_ESOCKET:
        sg_exchange_log(x, SG_LOG_ERROR, "cannot create a socket: %s, 503", why);
        sg_exchange_error(x, 503, "socket");
        break;
    case SG_BACKEND_ECONNECT:
        connect_failed(x, why);
        break;
    case SG_BACKEND_ECLOSED:
        sg_exchange_log(x, SG_LOG_ERROR, "backend closed the connection %s%s%s, 502", why,
                        err ? ": " : "", err ? strerror(err) : "");
        sg_exchange_error(x, 502, "no response head");
        break;
    case SG_BACKEND_ETOOLARGE:
        sg_exchange_log(x, SG_LOG_ERROR, "backend response head larger than %d bytes, 502",
                        SG_UP_HEAD_MAX);
        sg_exchange_error(x, 502, "head too large");
        break;
    case SG_BACKEND_EBADHEAD:
        bad_head(x, why);
        break;
    }
}

static void on_write_closed(sg_backend_conn *b, int err)
{
    sg_exchange *x = exchange_of(b);
    if (x->req.has_body && !x->rb.complete) {
        x->rb.discard = true;
        x->close_after = true;
    }
    sg_buf_reset(&x->rb.buf);
    sg_log_debug(err, "backend %s stopped reading the request after %llu body bytes",
                 x->up.be->text, (unsigned long long)b->body_sent);
}

/*
 * After every backend event, once its callback has returned: a request an internal redirect
 * retargeted is routed again here (a new step, not a nested call), then the carrier runs.
 */
static void on_io_done(sg_backend_conn *b)
{
    sg_exchange *x = exchange_of(b);
    if (x->redirect_pending) {
        x->redirect_pending = false;
        route_request(x);
    }
    x->ops->on_progress(x);
}

static const sg_backend_cbs backend_cbs = {
    .on_interim = on_interim,
    .on_head = on_head,
    .on_big_body = on_big_body,
    .on_end = on_end,
    .on_error = on_error,
    .on_write_closed = on_write_closed,
    .on_io_done = on_io_done,
};

void sg_exchange_pump(sg_exchange *x)
{
    sg_backend_pump(&x->up.b);
}

void sg_exchange_reap(sg_exchange *x)
{
    if (x->up.b.fd >= 0 && x->up.b.phase == SG_UP_DONE)
        upstream_close(x);
}

ev_tstamp sg_exchange_deadline(sg_exchange *x)
{
    ev_tstamp t = sg_backend_watch(&x->up.b);
    if (t == 0)
        return 0;
    return t + (x->up.b.phase == SG_UP_CONNECTING ? x->cfg->timeouts.connect : x->route->timeout);
}

/*
 * The backend timed out before its response head. When the gateway was waiting on it (the
 * request sent, or bytes it would not take) that is a failure of the backend, as nginx's
 * proxy_next_upstream timeout has it: a hung application that accepts and never answers
 * leaves the rotation like one that refuses connections. The request moves to another member
 * only if no response byte came and no body byte went out: a body the backend may have acted
 * on is never sent twice (nginx does not retry non-idempotent requests either).
 */
static void head_timeout(sg_exchange *x)
{
    sg_upstream *u = &x->up;
    bool blamed = u->b.phase == SG_UP_HEAD ||
                  (u->b.phase == SG_UP_SENDING && sg_backend_unsent(&u->b));
    bool replay = blamed && !u->b.got_bytes && u->b.body_sent == 0 && !u->b.write_closed &&
                  !x->rb.discard;
    bool next = replay && cur_member(x) && u->attempts <= u->bal->maxattempts;
    sg_exchange_log(x, SG_LOG_ERROR, "backend %s sent no response head within %.3gs%s", u->be->text,
                    x->route->timeout,
                    next                      ? ", trying another member"
                    : replay && cur_member(x) ? "" /* attempt_failed says 504 */
                                              : ", 504");
    if (!blamed) { /* waiting for the client's body: not the backend's fault */
        sg_exchange_error(x, 504, "backend timeout");
        return;
    }
    char why[64];
    snprintf(why, sizeof why, "no response within %.3gs", x->route->timeout);
    attempt_failed(x, why, replay, 504, "backend timeout");
}

void sg_exchange_timeout(sg_exchange *x)
{
    sg_upstream *u = &x->up;
    if (u->b.phase == SG_UP_CONNECTING) {
        connect_failed(x, "connect timed out");
    } else if (!x->resp.started) {
        head_timeout(x);
    } else {
        sg_exchange_log(x, SG_LOG_ERROR, "backend stalled for %.3gs mid-response, closing",
                        x->route->timeout);
        upstream_close(x);
        x->ops->on_abort(x);
    }
}

void sg_exchange_body_complete(sg_exchange *x)
{
    x->phase = SG_X_PROXY;
    upstream_start(x);
}

void sg_exchange_abandon(sg_exchange *x)
{
    upstream_close(x);
}

void sg_exchange_shrink(sg_exchange *x)
{
    if (x->resp.out.len == 0)
        sg_buf_free(&x->resp.out);
    sg_buf_free(&x->rb.buf);
    sg_buf_free(&x->up.b.head);
    sg_buf_free(&x->up.b.req);
    sg_scgi_vars_free(&x->vars);
    sg_request_free(&x->req);
    sg_request_init(&x->req);
}

void sg_exchange_init(sg_exchange *x, sg_conn_host *host, const sg_client *client,
                      const sg_exchange_ops *ops)
{
    memset(x, 0, sizeof *x);
    x->host = host;
    x->client = client;
    x->ops = ops;
    sg_request_init(&x->req);
    sg_reqbody_init(&x->rb);
    sg_response_init(&x->resp, &x->req);
    sg_buf_init(&x->redirect_cookies);
    sg_buf_init(&x->orig_uri);
    sg_scgi_vars_init(&x->vars);
    upstream_init(x);
    request_reset(x);
}

void sg_exchange_free(sg_exchange *x)
{
    sg_response_free(&x->resp);
    sg_reqbody_free(&x->rb);
    sg_buf_free(&x->redirect_cookies);
    sg_buf_free(&x->orig_uri);
    sg_backend_free(&x->up.b);
    sg_request_free(&x->req);
    sg_scgi_vars_free(&x->vars);
}
