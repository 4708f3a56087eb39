/*
 * upstream.c: the backend side of a request, above the socket work of backend.c. One new
 * connection per request (SCGI closes after each response): build the variables, choose the
 * balancer member, start the exchange (backend.c connects, sends and relays), and decide what
 * its outcomes mean: failover and the head_timeout replay rules, what a head becomes for the
 * client (headers, X-Sendfile, an internal redirect), and the one log line of each failure.
 */
#include "conn_impl.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "sendfile.h"
#include "util.h"

static struct ev_loop *loop_of(sg_conn *c)
{
    return sg_server_loop(c->server);
}

/* ---- the variable set: README "What the backend receives", scgi-lua.8 THE SCGI REQUEST ---- */

static bool dropped_header(const char *n, size_t len, bool pass_auth)
{
    static const char *names[] = {
        "Proxy", "Content-Length",    "Content-Type", "Connection",       "Keep-Alive",
        "TE",    "Transfer-Encoding", "Upgrade",      "Proxy-Connection", "Trailer",
        "Expect"
    };
    /* Expect is answered here (100 Continue); a backend must not answer it a second time */
    for (size_t i = 0; i < SG_ARRAY_LEN(names); i++)
        if (sg_strieq(n, len, names[i]))
            return true;
    if (!pass_auth &&
        (sg_strieq(n, len, "Authorization") || sg_strieq(n, len, "Proxy-Authorization")))
        return true;
    return false;
}

static void add_num(sg_scgi_vars *v, const char *name, size_t name_len, unsigned n)
{
    char s[24];
    sg_scgi_add(v, name, name_len, s, sg_fmt_u64(s, n, 10));
}

#define ADD(v, name, value, len) sg_scgi_add((v), name, sizeof name - 1, (value), (len))
#define ADD_STR(v, name, value) ADD(v, name, (value), strlen(value))

static int build_vars(sg_conn *c, const sg_backend *be)
{
    const sg_request *r = &c->req;
    const sg_route *rt = c->route;
    sg_scgi_vars *v = &c->vars;
    sg_scgi_vars_reset(v);
    /* the fixed set is unique by construction: appended without lookups */
    ADD_STR(v, "REQUEST_METHOD", r->method);
    ADD(v, "REQUEST_URI", r->uri, r->uri_len_view);
    ADD(v, "QUERY_STRING", r->query, r->query_len);
    if (rt->pathinfo) {
        /* SCRIPT_NAME = route prefix without its slash; PATH_INFO = pass path + the rest */
        size_t plen = rt->path ? rt->path_len : 0;
        while (plen > 0 && rt->path[plen - 1] == '/')
            plen--;
        ADD(v, "SCRIPT_NAME", rt->path ? rt->path : "", plen);
        const char *rest = r->path + (plen <= r->path_len ? plen : r->path_len);
        size_t ulen = strlen(be->url_path);
        while (ulen > 0 && be->url_path[ulen - 1] == '/')
            ulen--;
        sg_buf pi;
        sg_buf_init(&pi);
        sg_buf_append(&pi, be->url_path, ulen);
        if (rest[0] != '/')
            sg_buf_append(&pi, "/", 1);
        sg_buf_append_str(&pi, rest);
        ADD(v, "PATH_INFO", sg_buf_head(&pi), pi.len);
        sg_buf_free(&pi);
    } else {
        ADD(v, "SCRIPT_NAME", r->path, r->path_len);
    }
    ADD_STR(v, "SERVER_PROTOCOL", r->http_minor ? "HTTP/1.1" : "HTTP/1.0");
    if (r->host && r->host_len)
        ADD(v, "SERVER_NAME", r->host, r->host_len);
    else
        ADD_STR(v, "SERVER_NAME", c->server_addr);
    add_num(v, "SERVER_PORT", 11, (unsigned)c->server_port);
    ADD_STR(v, "SERVER_ADDR", c->server_addr);
    ADD(v, "SERVER_SOFTWARE", SG_SOFTWARE, sizeof SG_SOFTWARE - 1);
    ADD_STR(v, "REMOTE_ADDR", c->remote_addr);
    add_num(v, "REMOTE_PORT", 11, (unsigned)c->remote_port);
    ADD(v, "REQUEST_SCHEME", "http", 4);
    ADD(v, "GATEWAY_INTERFACE", "CGI/1.1", 7);
    if (c->redirects) {
        /* no REDIRECT_URL: frameworks read it as the current URL and get the prefix wrong */
        ADD(v, "REDIRECT_STATUS", "200", 3);
        ADD(v, "REDIRECT_REQUEST_URI", sg_buf_head(&c->orig_uri), c->orig_uri.len);
    }
    if (r->content_type)
        ADD_STR(v, "CONTENT_TYPE", r->content_type);
    char name[5 + 256 + 1];
    for (size_t i = 0; i < r->nheaders; i++) {
        const sg_req_header *h = &r->headers[i];
        if (h->name_len > 256 || dropped_header(h->name, h->name_len, rt->pass_auth))
            continue;
        size_t nlen = sg_scgi_http_name(h->name, h->name_len, name);
        if (!nlen)
            continue; /* underscores or other characters: never let them alias a CGI name */
        sg_scgi_join(v, name, nlen, h->value, h->value_len,
                     sg_strieq(h->name, h->name_len, "Cookie") ? "; " : ", ");
    }
    sg_buf val, err;
    sg_buf_init(&val);
    sg_buf_init(&err);
    int rc = SG_OK;
    for (size_t i = 0; i < rt->nenv; i++) {
        const sg_env_entry *e = &rt->env[i];
        if (e->fn_ref > 0) { /* a Lua function (registry reference) */
            bool present;
            sg_buf_reset(&val);
            if (sg_lua_env(&c->hook, e, &val, &present, &err) != SG_OK) {
                sg_conn_log_route(c, SG_LOG_ERROR, "env.%s hook failed: %.*s", e->name,
                                  (int)err.len, sg_buf_head(&err));
                rc = SG_ERR;
                break;
            }
            if (present)
                sg_scgi_set(v, e->name, e->name_len, sg_buf_head(&val), val.len);
            else
                sg_scgi_remove(v, e->name, e->name_len);
        } else if (e->value) {
            sg_scgi_set(v, e->name, e->name_len, e->value, e->value_len);
        } else {
            sg_scgi_remove(v, e->name, e->name_len);
        }
    }
    sg_buf_free(&val);
    sg_buf_free(&err);
    return rc;
}

/* ---- balancer members ---- */

static double wall_now(sg_conn *c)
{
    return ev_now(loop_of(c));
}

static sg_lb_member *cur_member(sg_conn *c)
{
    sg_upstream *u = &c->up;
    return u->bal && u->member >= 0 ? &u->bal->lb.members[u->member] : NULL;
}

/* The counters of the current attempt: the balancer member's or the direct backend's. */
static sg_member_state *cur_state(sg_conn *c)
{
    return c->up.st;
}

/* Ends the current attempt's share of the request (busy count). */
static void release_member(sg_conn *c)
{
    sg_member_state *st = cur_state(c);
    if (st && st->busy)
        st->busy--;
    c->up.member = -1;
    c->up.st = NULL;
    c->up.b.bytes_to = c->up.b.bytes_from = NULL;
}

/* Chooses the member for the next attempt; -1 when none is left (or a Lua error, logged). */
static int choose_member(sg_conn *c, const sg_balancer *b)
{
    sg_upstream *u = &c->up;
    sg_lb *lb = (sg_lb *)&b->lb;
    double now = wall_now(c);
    char route[64];
    const char *rp = NULL;
    if (b->sticky) {
        const sg_req_header *ck = sg_request_header(&c->req, "Cookie");
        if (sg_lb_sticky_route(ck ? ck->value : NULL, ck ? ck->value_len : 0, c->req.query,
                               c->req.query_len, b->sticky, route, sizeof route))
            rp = route;
    }
    if (lb->method != SG_LB_LUA) {
        bool recovered = false;
        int idx = sg_lb_pick(lb, now, rp, u->tried, &recovered);
        if (recovered)
            sg_conn_log_route(c, SG_LOG_WARN,
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
        sg_conn_log_route(c, SG_LOG_WARN,
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
    if (sg_lua_balance(&c->hook, b, usable, &idx, &err) != SG_OK) {
        sg_conn_log_route(c, SG_LOG_ERROR, "balancer %s method failed: %.*s", b->name, (int)err.len,
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

void sg_upstream_init(sg_conn *c)
{
    sg_upstream *u = &c->up;
    *u = (sg_upstream){ .member = -1 };
    sg_backend_init(&u->b, loop_of(c), &backend_cbs);
}

void sg_upstream_close(sg_conn *c)
{
    sg_upstream *u = &c->up;
    release_member(c);
    if (u->b.phase != SG_UP_IDLE && u->b.phase != SG_UP_DONE && c->req.has_body &&
        !c->rb.complete) {
        /* the rest of the client's body has nowhere to go */
        c->rb.discard = true;
        c->close_after = true;
    }
    sg_backend_close(&u->b);
}

/*
 * Everything after the exchange in one memset, not field by field: the backend, balancer and
 * member state it borrowed from the request's configuration must not reach the next request
 * on this connection (a reload may have freed them by then), nor must any field added later.
 * The exchange forgets its own borrowed pointers (sg_backend_reset) and keeps only its
 * buffers' memory (shrink() gives it back between requests).
 */
void sg_upstream_reset(sg_conn *c)
{
    sg_upstream *u = &c->up;
    sg_upstream_close(c);
    sg_backend_reset(&u->b);
    memset(&u->be, 0, sizeof *u - offsetof(sg_upstream, be));
    u->member = -1;
}

static uint64_t body_length(const sg_conn *c)
{
    if (c->redirects)
        return 0; /* a redirected request is a GET without body */
    if (c->req.chunked)
        return c->rb.received;
    return c->req.content_length > 0 ? (uint64_t)c->req.content_length : 0;
}

static void connect_attempt(sg_conn *c);

void sg_upstream_start(sg_conn *c)
{
    sg_upstream *u = &c->up;
    const sg_route *rt = c->route;
    u->bal = rt->balancer;
    u->member = -1;
    u->attempts = 0;
    u->be = NULL;
    memset(u->tried, 0, sizeof u->tried);
    connect_attempt(c);
}

/*
 * One connect, to the route's backend or the next balancer member. The netstring is built
 * per attempt: PATH_INFO depends on the member's URL path.
 */
static void connect_attempt(sg_conn *c)
{
    sg_upstream *u = &c->up;
    const sg_backend *be = &c->route->be;
    if (u->bal) {
        int idx = choose_member(c, u->bal);
        if (idx < 0) {
            if (idx == -2) {
                sg_conn_error(c, 500, "balancer hook error");
                return;
            }
            sg_conn_log_route(c, SG_LOG_ERROR, "balancer %s: no usable member%s, 503", u->bal->name,
                              u->attempts ? " left to try" : "");
            sg_conn_error(c, 503, "no backend");
            return;
        }
        sg_lb_member *m = &u->bal->lb.members[idx];
        u->member = idx;
        sg_lb_exclude(u->tried, (size_t)idx);
        u->st = m->st;
        be = &u->bal->backends[idx];
    } else {
        u->st = c->route->st;
    }
    u->attempts++;
    u->be = be;
    /* a new exchange: nothing of a failed attempt (which sent no body byte) carries over */
    sg_backend_prepare(&u->b, &c->rb, &c->resp, body_length(c));
    if (u->st) {
        u->st->busy++;
        u->st->requests++;
        u->b.bytes_to = &u->st->bytes_to;
        u->b.bytes_from = &u->st->bytes_from;
    }
    if (build_vars(c, be) != SG_OK) {
        sg_conn_error(c, 500, "hook error");
        return;
    }
    sg_scgi_encode(&c->vars, u->b.body_len, &u->b.req);
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
static void attempt_failed(sg_conn *c, const char *why, bool replay, int status, const char *cause)
{
    sg_upstream *u = &c->up;
    sg_lb_member *m = cur_member(c);
    sg_backend_close_fd(&u->b);
    if (m) {
        sg_lb_fail(m, wall_now(c), why);
    } else if (cur_state(c)) {
        cur_state(c)->failures++;
        snprintf(cur_state(c)->last_error, sizeof cur_state(c)->last_error, "%s", why);
    }
    release_member(c);
    if (!m || !replay) {
        sg_conn_error(c, status, cause);
        return;
    }
    if (u->attempts > u->bal->maxattempts) {
        sg_conn_log_route(c, SG_LOG_ERROR, "balancer %s: %d attempts failed (maxattempts %d), %d",
                          u->bal->name, u->attempts, u->bal->maxattempts, status);
        sg_conn_error(c, status, cause);
        return;
    }
    connect_attempt(c);
}

/*
 * Connect refused or timed out: nothing of the request reached this backend, so another
 * balancer member may take it; the failed member is out for `retry` seconds.
 */
static void connect_failed(sg_conn *c, const char *why)
{
    sg_conn_log_route(c, SG_LOG_ERROR, "connect to %s failed: %s%s", c->up.be->text, why,
                      cur_member(c) ? "" : ", 503");
    attempt_failed(c, why, true, 503, "connect failed");
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
static int serve_file(sg_conn *c, const sg_cgi_head *h, const sg_cgi_header *sf)
{
    const sg_route *rt = c->route;
    int status;
    const char *err;
    struct stat st;
    int fd = sg_sendfile_open(sf->value, sf->value_len, rt->sendfile_root, rt->nroots, &st, &status,
                              &err);
    if (fd < 0) {
        sg_conn_log_route(c, status == 403 ? SG_LOG_WARN : SG_LOG_ERROR, "%s: \"%.*s\", %d", err,
                          (int)sf->value_len, sf->value, status);
        sg_upstream_close(c);
        sg_conn_error(c, status, err);
        return SG_ERR;
    }
    const sg_cgi_header *etag = find_header(h, "ETag");
    const sg_cgi_header *lm = find_header(h, "Last-Modified");
    sg_sendfile_plan plan;
    sg_sendfile_plan_make(&c->req, h->status, &st, etag ? etag->value : NULL,
                          etag ? etag->value_len : 0, lm ? lm->value : NULL, lm ? lm->value_len : 0,
                          &plan);
    if (plan.status == h->status)
        sg_response_begin(&c->resp, plan.status, h->reason, h->reason_len);
    else
        sg_response_begin(&c->resp, plan.status, NULL, 0);
    for (size_t i = 0; i < h->nheaders; i++) {
        const sg_cgi_header *hd = &h->headers[i];
        if (hd == sf || sg_strieq(hd->name, hd->name_len, "Content-Length") ||
            sg_strieq(hd->name, hd->name_len, "Content-Range") ||
            sg_strieq(hd->name, hd->name_len, "Date"))
            continue;
        sg_response_add_header(&c->resp, hd->name, hd->name_len, hd->value, hd->value_len);
    }
    if (!etag)
        sg_response_add_header(&c->resp, "ETag", 4, plan.etag, strlen(plan.etag));
    if (!lm)
        sg_response_add_header(&c->resp, "Last-Modified", 13, plan.last_modified,
                               strlen(plan.last_modified));
    sg_response_add_raw(&c->resp, "Accept-Ranges: bytes\r\n", 22);
    char range[96];
    int rlen = 0;
    if (plan.status == 206)
        rlen = snprintf(range, sizeof range, "bytes %lld-%lld/%lld", (long long)plan.start,
                        (long long)(plan.start + plan.len - 1), (long long)st.st_size);
    else if (plan.status == 416)
        rlen = snprintf(range, sizeof range, "bytes */%lld", (long long)st.st_size);
    if (rlen > 0)
        sg_response_add_header(&c->resp, "Content-Range", 13, range, (size_t)rlen);
    sg_upstream_close(c);          /* the backend's own body is not wanted */
    sg_conn_end_head(c, plan.len); /* no Content-Length, and no file, for a 204 or 304 */
    if (c->resp.no_body || plan.len == 0) {
        close(fd);
        c->resp.done = true;
    } else {
        sg_response_set_file(&c->resp, fd, plan.start, (uint64_t)plan.len);
    }
    return SG_ERR; /* not an error: tells read_head the relay is over */
}

/* Internal redirect (README "X-Sendfile and internal redirects"): route the request again as
 * a GET to a local path. */
static int internal_redirect(sg_conn *c, const sg_cgi_head *h, const sg_cgi_header *loc)
{
    char target[8192];
    if (loc->value_len >= sizeof target) {
        sg_conn_log_route(c, SG_LOG_ERROR, "internal redirect target too long, 502");
        sg_upstream_close(c);
        sg_conn_error(c, 502, "redirect target too long");
        return SG_ERR;
    }
    memcpy(target, loc->value, loc->value_len);
    size_t tlen = loc->value_len;
    for (size_t i = 0; i < h->nheaders; i++) {
        const sg_cgi_header *hd = &h->headers[i];
        if (sg_strieq(hd->name, hd->name_len, "Set-Cookie"))
            sg_buf_appendf(&c->redirect_cookies, "Set-Cookie: %.*s\r\n", (int)hd->value_len,
                           hd->value);
    }
    sg_upstream_close(c);
    if (c->redirects == 0) {
        sg_buf_append(&c->orig_uri, c->req.uri, c->req.uri_len_view);
        c->orig_method = c->req.method;
    }
    if (++c->redirects > 10) {
        sg_conn_log_route(c, SG_LOG_ERROR,
                          "more than 10 internal redirects (last to \"%.*s\"), 500", (int)tlen,
                          target);
        sg_conn_error(c, 500, "redirect loop");
        return SG_ERR;
    }
    const char *err;
    if (sg_request_retarget(&c->req, target, tlen, &err) != SG_OK) {
        sg_conn_log_route(c, SG_LOG_ERROR, "%s: \"%.*s\", 502", err, (int)tlen, target);
        sg_conn_error(c, 502, err);
        return SG_ERR;
    }
    sg_log_debug(0, "internal redirect %d to %.*s (client %s)", c->redirects, (int)tlen, target,
                 c->peer);
    if (c->req.has_body && !c->rb.complete) {
        c->rb.discard = true; /* the rest of the upload belongs to no request now */
        c->close_after = true;
    }
    sg_reqbody_drop(&c->rb);
    c->up.b.phase = SG_UP_IDLE;
    /* routed again by the connection once this backend callback has returned (sg_conn_kick),
     * not from inside it: the retargeted request is a new step, not a nested one */
    c->redirect_pending = true;
    return SG_ERR;
}

/* A head the backend got wrong: one log line naming it, a failure on its count, a 502. */
static void bad_head(sg_conn *c, const char *why)
{
    sg_conn_log_route(c, SG_LOG_ERROR, "bad response head from backend %s (%s), 502",
                      c->up.be->text, why);
    if (cur_member(c))
        sg_lb_fail(cur_member(c), wall_now(c), why);
    else if (cur_state(c))
        cur_state(c)->failures++;
    sg_conn_error(c, 502, "bad response");
}

/* ---- what the exchange reports (backend.c callbacks) ---- */

static sg_conn *conn_of(sg_backend_conn *b)
{
    return SG_CONTAINER_OF(b, sg_conn, up.b);
}

/*
 * A 1xx head (RFC 9110 §15.2) is interim: the final head follows. 103 Early Hints goes on
 * to HTTP/1.1 clients (HTTP/1.0 has no 1xx); 100 is dropped, as Expect is answered here and
 * never reaches the backend; other 1xx codes mean nothing to a client of an SCGI gateway
 * and are dropped too (nginx drops them all). backend.c caps their number.
 */
static void on_interim(sg_backend_conn *b, const sg_cgi_head *h)
{
    sg_conn *c = conn_of(b);
    if (h->status == 103 && c->req.http_minor >= 1) {
        const char *sf = c->route->sendfile; /* a path on our disk: not for the client */
        sg_response_begin(&c->resp, h->status, h->reason, h->reason_len);
        for (size_t i = 0; i < h->nheaders; i++) {
            const sg_cgi_header *hd = &h->headers[i];
            if (sg_strieq(hd->name, hd->name_len, "Content-Length") ||
                (sf && sg_strieq(hd->name, hd->name_len, sf)))
                continue;
            sg_response_add_header(&c->resp, hd->name, hd->name_len, hd->value, hd->value_len);
        }
        sg_response_end_interim(&c->resp);
    }
}

/*
 * The final head. Returns SG_OK when the body relay starts, or SG_ERR when the exchange was
 * answered otherwise (X-Sendfile, internal redirect, an error).
 */
static int on_head(sg_backend_conn *b, const sg_cgi_head *h)
{
    sg_conn *c = conn_of(b);
    const sg_route *rt = c->route;
    if (rt->sendfile) {
        const sg_cgi_header *sf = find_header(h, rt->sendfile);
        if (sf)
            return serve_file(c, h, sf);
    }
    if (rt->internal_redirect && h->status == 200) {
        const sg_cgi_header *loc = find_header(h, rt->internal_redirect);
        if (loc && loc->value_len && loc->value[0] == '/')
            return internal_redirect(c, h, loc);
    }
    sg_response_begin(&c->resp, h->status, h->reason, h->reason_len);
    if (c->resp.no_body && c->req.has_body && !c->rb.complete)
        c->close_after = true;
    for (size_t i = 0; i < h->nheaders; i++) {
        const sg_cgi_header *hd = &h->headers[i];
        /* ours are added with the framing headers, which sg_conn_end_head decides */
        if (sg_strieq(hd->name, hd->name_len, "Date") ||
            sg_strieq(hd->name, hd->name_len, "Content-Length"))
            continue;
        sg_response_add_header(&c->resp, hd->name, hd->name_len, hd->value, hd->value_len);
    }
    sg_conn_end_head(c, h->content_length);
    return SG_OK;
}

static void on_big_body(sg_backend_conn *b)
{
    sg_conn *c = conn_of(b);
    /* splice(2) into the client works only on a transport whose fd carries plain bytes */
    if (sg_transport_caps(&c->tr) & SG_TRANSPORT_SPLICE)
        sg_server_pipe_take(c->server, &c->resp.pipe);
}

/*
 * The backend's side of the response ended, and the writer with it. Only a response whose
 * end was seen is complete; any other closes the client connection without the final chunk,
 * as RFC 9112 §8 asks: a cut body must never look whole. The socket itself is closed after
 * the client write (sg_upstream_reap).
 */
static void on_end(sg_backend_conn *b, bool whole, bool fin, int err)
{
    sg_conn *c = conn_of(b);
    sg_upstream *u = &c->up;
    if (whole) {
        /* complete: the writer ended the framing */
    } else if (c->resp.remaining > 0) {
        sg_conn_log_route(
            c, SG_LOG_ERROR,
            "backend %s %s %lld bytes before its Content-Length, closing the client connection",
            u->be->text, fin ? "closed" : "reset the connection", (long long)c->resp.remaining);
        c->close_after = true;
    } else {
        sg_conn_log_route(
            c, SG_LOG_ERROR,
            "backend %s reset the connection mid-response (%s), closing the client connection without completing the response",
            u->be->text, err ? strerror(err) : "its reads had failed");
        c->close_after = true;
    }
    release_member(c);
}

static void on_error(sg_backend_conn *b, enum sg_backend_err kind, bool replay, const char *why,
                     int err)
{
    sg_conn *c = conn_of(b);
    SG_UNUSED(replay); /* only a connect failure is replayable, and connect_failed knows it */
    switch (kind) {
    case SG_BACKEND_ESOCKET:
        sg_conn_log_route(c, SG_LOG_ERROR, "cannot create a socket: %s, 503", why);
        sg_conn_error(c, 503, "socket");
        break;
    case SG_BACKEND_ECONNECT:
        connect_failed(c, why);
        break;
    case SG_BACKEND_ECLOSED:
        sg_conn_log_route(c, SG_LOG_ERROR, "backend closed the connection %s%s%s, 502", why,
                          err ? ": " : "", err ? strerror(err) : "");
        sg_conn_error(c, 502, "no response head");
        break;
    case SG_BACKEND_ETOOLARGE:
        sg_conn_log_route(c, SG_LOG_ERROR, "backend response head larger than %d bytes, 502",
                          SG_UP_HEAD_MAX);
        sg_conn_error(c, 502, "head too large");
        break;
    case SG_BACKEND_EBADHEAD:
        bad_head(c, why);
        break;
    }
}

static void on_write_closed(sg_backend_conn *b, int err)
{
    sg_conn *c = conn_of(b);
    if (c->req.has_body && !c->rb.complete) {
        c->rb.discard = true;
        c->close_after = true;
    }
    sg_buf_reset(&c->rb.buf);
    sg_log_debug(err, "backend %s stopped reading the request after %llu body bytes",
                 c->up.be->text, (unsigned long long)b->body_sent);
}

static void on_io_done(sg_backend_conn *b)
{
    sg_conn_kick(conn_of(b));
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

void sg_upstream_pump(sg_conn *c)
{
    sg_backend_pump(&c->up.b);
}

void sg_upstream_reap(sg_conn *c)
{
    if (c->up.b.fd >= 0 && c->up.b.phase == SG_UP_DONE)
        sg_upstream_close(c);
}

ev_tstamp sg_upstream_watch(sg_conn *c)
{
    ev_tstamp t = sg_backend_watch(&c->up.b);
    if (t == 0)
        return 0;
    return t + (c->up.b.phase == SG_UP_CONNECTING ? c->cfg->timeouts.connect : c->route->timeout);
}

/*
 * The backend timed out before its response head. When the gateway was waiting on it (the
 * request sent, or bytes it would not take) that is a failure of the backend, as nginx's
 * proxy_next_upstream timeout has it: a hung application that accepts and never answers
 * leaves the rotation like one that refuses connections. The request moves to another member
 * only if no response byte came and no body byte went out: a body the backend may have acted
 * on is never sent twice (nginx does not retry non-idempotent requests either).
 */
static void head_timeout(sg_conn *c)
{
    sg_upstream *u = &c->up;
    bool blamed = u->b.phase == SG_UP_HEAD ||
                  (u->b.phase == SG_UP_SENDING && sg_backend_unsent(&u->b));
    bool replay = blamed && !u->b.got_bytes && u->b.body_sent == 0 && !u->b.write_closed &&
                  !c->rb.discard;
    bool next = replay && cur_member(c) && u->attempts <= u->bal->maxattempts;
    sg_conn_log_route(c, SG_LOG_ERROR, "backend %s sent no response head within %.3gs%s",
                      u->be->text, c->route->timeout,
                      next                      ? ", trying another member"
                      : replay && cur_member(c) ? "" /* attempt_failed says 504 */
                                                : ", 504");
    if (!blamed) { /* waiting for the client's body: not the backend's fault */
        sg_conn_error(c, 504, "backend timeout");
        return;
    }
    char why[64];
    snprintf(why, sizeof why, "no response within %.3gs", c->route->timeout);
    attempt_failed(c, why, replay, 504, "backend timeout");
}

void sg_upstream_timeout(sg_conn *c)
{
    sg_upstream *u = &c->up;
    if (u->b.phase == SG_UP_CONNECTING) {
        connect_failed(c, "connect timed out");
    } else if (!c->resp.started) {
        head_timeout(c);
    } else {
        sg_conn_log_route(c, SG_LOG_ERROR, "backend stalled for %.3gs mid-response, closing",
                          c->route->timeout);
        sg_upstream_close(c);
        sg_conn_close(c);
    }
}
