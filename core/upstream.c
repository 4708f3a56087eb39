/*
 * upstream.c: the backend side of a request. One new connection per request (SCGI closes
 * after each response): build the variables, connect without blocking, send the netstring
 * and the body as the client supplies it, and read the response at the same time, so a
 * backend that answers early (and stops reading) still has its answer relayed. The read
 * side parses the CGI head, then moves body bytes into the client's output buffer, framing
 * them (length, chunked, or until close); a full output buffer pauses backend reads.
 */
#include "conn_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "log.h"
#include "sendfile.h"
#include "util.h"

/* 1xx heads a backend may send before its final head: a 100 and a few 103s is plenty */
#define SG_UP_MAX_INTERIM 8
#define SG_XSTR(x) #x
#define SG_STR(x) SG_XSTR(x)

static struct ev_loop *loop_of(sg_conn *c)
{
    return sg_server_loop(c->server);
}

/* ---- the variable set: README "What the backend receives", scgi-lua.8 THE SCGI REQUEST ---- */

static bool dropped_header(const char *n, size_t len, bool pass_auth)
{
    static const char *names[] = { "Proxy", "Content-Length", "Content-Type", "Connection",
                                   "Keep-Alive", "TE", "Transfer-Encoding", "Upgrade",
                                   "Proxy-Connection", "Trailer", "Expect" };
    /* Expect is answered here (100 Continue); a backend must not answer it a second time */
    for (size_t i = 0; i < SG_ARRAY_LEN(names); i++)
        if (sg_strieq(n, len, names[i]))
            return true;
    if (!pass_auth && (sg_strieq(n, len, "Authorization") || sg_strieq(n, len, "Proxy-Authorization")))
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
            sg_conn_log_route(c, SG_LOG_WARN, "balancer %s: every member was out of service, trying them all again",
                              b->name);
        return idx;
    }
    int idx = sg_lb_sticky(lb, now, rp, u->tried);
    if (idx >= 0)
        return idx;
    size_t cand[SG_LB_MAX_MEMBERS];
    size_t n = sg_lb_candidates(lb, now, u->tried, cand, SG_LB_MAX_MEMBERS);
    if (n == 0 && sg_lb_recover(lb, now, u->tried)) {
        sg_conn_log_route(c, SG_LOG_WARN, "balancer %s: every member was out of service, trying them all again",
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
        sg_conn_log_route(c, SG_LOG_ERROR, "balancer %s method failed: %.*s", b->name,
                          (int)err.len, sg_buf_head(&err));
        idx = -2;
    } else if (idx >= 0 && sg_lb_excluded(u->tried, (size_t)idx)) {
        idx = -1; /* already failed for this request: do not loop on it */
    }
    sg_buf_free(&err);
    return idx;
}

/* ---- connection ---- */

static void on_up_read(struct ev_loop *loop, ev_io *w, int revents);
static void on_up_write(struct ev_loop *loop, ev_io *w, int revents);

void sg_upstream_init(sg_conn *c)
{
    sg_upstream *u = &c->up;
    *u = (sg_upstream){ .fd = -1, .phase = SG_UP_IDLE, .member = -1 };
    sg_buf_init(&u->req);
    sg_buf_init(&u->head);
    ev_init(&u->rio, on_up_read);
    ev_init(&u->wio, on_up_write);
}

void sg_upstream_close(sg_conn *c)
{
    sg_upstream *u = &c->up;
    release_member(c);
    if (u->fd >= 0) {
        ev_io_stop(loop_of(c), &u->rio);
        ev_io_stop(loop_of(c), &u->wio);
        close(u->fd);
        u->fd = -1;
    }
    if (u->phase != SG_UP_IDLE && u->phase != SG_UP_DONE && c->req.has_body && !c->rb.complete) {
        /* the rest of the client's body has nowhere to go */
        c->rb.discard = true;
        c->close_after = true;
    }
    if (u->phase != SG_UP_IDLE)
        u->phase = SG_UP_DONE;
    sg_buf_reset(&u->req);
    sg_buf_reset(&u->head);
}

/*
 * The whole struct, not field by field: the backend, balancer and member state it borrowed
 * from the request's configuration must not reach the next request on this connection (a
 * reload may have freed them by then), nor must any field added later. Only the buffers'
 * memory is kept (shrink() gives it back between requests).
 */
void sg_upstream_reset(sg_conn *c)
{
    sg_upstream *u = &c->up;
    sg_upstream_close(c);
    sg_buf req = u->req, head = u->head; /* emptied by sg_upstream_close */
    sg_upstream_init(c);
    u->req = req;
    u->head = head;
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
static void connect_failed(sg_conn *c, const char *why);

void sg_upstream_start(sg_conn *c)
{
    sg_upstream *u = &c->up;
    const sg_route *rt = c->route;
    u->bal = rt->balancer;
    u->member = -1;
    u->attempts = 0;
    u->be = NULL;
    memset(u->tried, 0, sizeof u->tried);
    u->head_scan = 0;
    u->interim = 0;
    u->body_sent = 0;
    u->write_closed = u->got_bytes = false;
    u->body_len = body_length(c);
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
            sg_conn_log_route(c, SG_LOG_ERROR, "balancer %s: no usable member%s, 503",
                              u->bal->name, u->attempts ? " left to try" : "");
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
    if (u->st) {
        u->st->busy++;
        u->st->requests++;
    }
    u->attempts++;
    u->be = be;
    /* a new exchange: nothing of a failed attempt (which sent no body byte) carries over */
    u->head_scan = 0;
    u->body_sent = 0;
    u->write_closed = u->got_bytes = false;
    sg_buf_reset(&u->req);
    sg_buf_reset(&u->head);
    if (build_vars(c, be) != SG_OK) {
        sg_conn_error(c, 500, "hook error");
        return;
    }
    sg_scgi_encode(&c->vars, u->body_len, &u->req);

    int fd = socket(be->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        sg_conn_log_route(c, SG_LOG_ERROR, "cannot create a socket: %s, 503", strerror(errno));
        sg_conn_error(c, 503, "socket");
        return;
    }
    if (be->addr.ss_family != AF_UNIX && u->body_len > 0) {
        /* the netstring alone goes out in one write; a streamed body may end in a small
         * segment that Nagle would hold back */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    u->fd = fd;
    u->phase = SG_UP_CONNECTING;
    c->t_up = ev_now(loop_of(c));
    ev_io_set(&u->rio, fd, EV_READ);
    ev_io_set(&u->wio, fd, EV_WRITE);
    if (connect(fd, (const struct sockaddr *)&be->addr, be->addrlen) != 0) {
        if (errno != EINPROGRESS) {
            connect_failed(c, errno == EAGAIN ? "the backend's listen queue is full"
                                              : strerror(errno));
            return;
        }
        /* on loopback the handshake is usually done already: try to send right away and
         * only wait for writability if the kernel says so (saves a loop turn) */
    } else {
        u->phase = SG_UP_SENDING;
    }
    sg_upstream_pump(c);
}

/*
 * The current attempt failed before the backend answered (the caller logged why): the failure
 * is counted on the backend, and a balancer member is also out for `retry` seconds. With
 * `replay` (nothing of the request went out that could not be sent again) the next member
 * takes the request (README "Balancers"), up to maxattempts; otherwise, or for a direct
 * backend, the client gets `status`.
 */
static void attempt_failed(sg_conn *c, const char *why, bool replay, int status,
                           const char *cause)
{
    sg_upstream *u = &c->up;
    sg_lb_member *m = cur_member(c);
    if (u->fd >= 0) {
        ev_io_stop(loop_of(c), &u->rio);
        ev_io_stop(loop_of(c), &u->wio);
        close(u->fd);
        u->fd = -1;
    }
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

static void backend_stopped_reading(sg_conn *c, int err)
{
    sg_upstream *u = &c->up;
    u->write_closed = true;
    if (c->req.has_body && !c->rb.complete) {
        c->rb.discard = true;
        c->close_after = true;
    }
    sg_buf_reset(&c->rb.buf);
    sg_log_debug(err, "backend %s stopped reading the request after %llu body bytes",
                 u->be->text, (unsigned long long)u->body_sent);
}

/* Sends netstring and body bytes while the socket takes them. */
void sg_upstream_pump(sg_conn *c)
{
    sg_upstream *u = &c->up;
    if ((u->phase != SG_UP_SENDING && u->phase != SG_UP_CONNECTING) || u->write_closed)
        return;
    for (;;) {
        ssize_t n;
        size_t pending = sg_reqbody_pending(&c->rb);
        if (u->req.len || pending) {
            struct iovec iov[2];
            int cnt = 0;
            if (u->req.len)
                iov[cnt++] = (struct iovec){ sg_buf_head(&u->req), u->req.len };
            if (pending)
                iov[cnt++] = (struct iovec){ (void *)sg_reqbody_data(&c->rb), pending };
            struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)cnt };
            n = sendmsg(u->fd, &mh, MSG_NOSIGNAL);
            if (n > 0 && cur_state(c))
                cur_state(c)->bytes_to += (uint64_t)n;
            if (n > 0) {
                size_t k = (size_t)n, from_req = k < u->req.len ? k : u->req.len;
                sg_buf_consume(&u->req, from_req);
                k -= from_req;
                sg_reqbody_sent(&c->rb, k);
                u->body_sent += k;
            }
        } else if (sg_reqbody_file(&c->rb) >= 0 && u->body_sent < u->body_len) {
            off_t off = (off_t)u->body_sent;
            n = sendfile(u->fd, sg_reqbody_file(&c->rb), &off, (size_t)(u->body_len - u->body_sent));
            if (n > 0) {
                u->body_sent += (uint64_t)n;
                if (cur_state(c))
                    cur_state(c)->bytes_to += (uint64_t)n;
            }
        } else {
            break;
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return; /* still connecting, or the socket buffer is full */
            if (u->phase == SG_UP_CONNECTING) {
                /* the connect itself failed: nothing was sent, another member may serve */
                connect_failed(c, strerror(errno));
                return;
            }
            backend_stopped_reading(c, errno);
            return;
        }
        if (u->phase == SG_UP_CONNECTING)
            u->phase = SG_UP_SENDING;
        c->t_up = ev_now(loop_of(c));
    }
    if (u->phase == SG_UP_CONNECTING)
        return; /* nothing to send cannot happen: the netstring is always there */
    if (u->req.len == 0 && u->body_sent >= u->body_len) {
        /* everything sent: half-close is not used, some SCGI servers treat it as abort */
        if (u->phase == SG_UP_SENDING)
            u->phase = SG_UP_HEAD;
    }
    /* the body buffer drained: the client may send more */
}

static void on_up_write(struct ev_loop *loop, ev_io *w, int revents)
{
    sg_conn *c = SG_CONTAINER_OF(w, sg_conn, up.wio);
    SG_UNUSED(loop);
    SG_UNUSED(revents);
    /* a finished connect shows up as writability; pump sends, or reports why it failed */
    sg_upstream_pump(c);
    sg_conn_kick(c);
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
    int fd = sg_sendfile_open(sf->value, sf->value_len, rt->sendfile_root, rt->nroots, &st,
                              &status, &err);
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
                          etag ? etag->value_len : 0, lm ? lm->value : NULL,
                          lm ? lm->value_len : 0, &plan);
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
        sg_response_add_header(&c->resp, "Last-Modified", 13, plan.last_modified, strlen(plan.last_modified));
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
    sg_upstream_close(c); /* the backend's own body is not wanted */
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
        sg_conn_log_route(c, SG_LOG_ERROR, "more than 10 internal redirects (last to \"%.*s\"), 500",
                          (int)tlen, target);
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
    c->up.phase = SG_UP_IDLE;
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

/*
 * A 1xx head (RFC 9110 §15.2) is interim: the final head follows. 103 Early Hints goes on
 * to HTTP/1.1 clients (HTTP/1.0 has no 1xx); 100 is dropped, as Expect is answered here and
 * never reaches the backend; other 1xx codes mean nothing to a client of an SCGI gateway
 * and are dropped too (nginx drops them all). The count is capped so that a backend cannot
 * keep a request, and our output buffer, growing with them.
 */
static int interim_head(sg_conn *c, const sg_cgi_head *h)
{
    sg_upstream *u = &c->up;
    if (++u->interim > SG_UP_MAX_INTERIM) {
        bad_head(c, "more than " SG_STR(SG_UP_MAX_INTERIM) " interim (1xx) heads");
        return SG_ERR;
    }
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
    sg_buf_consume(&u->head, h->head_len);
    u->head_scan = 0;
    return SG_AGAIN;
}

/*
 * Acts on the complete head in u->head[0, head_scan). Returns SG_OK when the body relay
 * starts, SG_AGAIN after an interim head (the next head follows in u->head), or SG_ERR when
 * the exchange was answered otherwise (error, X-Sendfile, internal redirect).
 */
static int emit_head(sg_conn *c)
{
    sg_upstream *u = &c->up;
    sg_cgi_head h;
    const char *err = NULL;
    const char *buf = sg_buf_head(&u->head);
    if (sg_cgi_parse(buf, u->head_scan, &h, &err) != SG_OK) {
        bad_head(c, err);
        return SG_ERR;
    }
    if (h.status == 101) {
        /* SCGI has no way to hand the connection over: an Upgrade cannot be relayed */
        bad_head(c, "101 Switching Protocols over SCGI");
        return SG_ERR;
    }
    if (h.status < 200)
        return interim_head(c, &h);
    const sg_route *rt = c->route;
    if (rt->sendfile) {
        const sg_cgi_header *sf = find_header(&h, rt->sendfile);
        if (sf)
            return serve_file(c, &h, sf);
    }
    if (rt->internal_redirect && h.status == 200) {
        const sg_cgi_header *loc = find_header(&h, rt->internal_redirect);
        if (loc && loc->value_len && loc->value[0] == '/')
            return internal_redirect(c, &h, loc);
    }
    sg_response_begin(&c->resp, h.status, h.reason, h.reason_len);
    if (c->resp.no_body && c->req.has_body && !c->rb.complete)
        c->close_after = true;
    for (size_t i = 0; i < h.nheaders; i++) {
        const sg_cgi_header *hd = &h.headers[i];
        /* ours are added with the framing headers, which sg_conn_end_head decides */
        if (sg_strieq(hd->name, hd->name_len, "Date") ||
            sg_strieq(hd->name, hd->name_len, "Content-Length"))
            continue;
        sg_response_add_header(&c->resp, hd->name, hd->name_len, hd->value, hd->value_len);
    }
    sg_conn_end_head(c, h.content_length);
    u->phase = SG_UP_RELAY;
    return SG_OK;
}

/*
 * The backend's side of the response ended. `clean`: the end was seen (the announced length
 * reached, or a FIN); otherwise it reset (errno `err`), or our own send to it failed, which
 * only a reset causes, so a later EOF proves nothing. Only a response whose end was seen is
 * terminated as complete; any other closes the client connection without the final chunk,
 * as RFC 9112 §8 asks: a cut body must never look whole.
 */
static void finish_response(sg_conn *c, bool clean, int err)
{
    sg_upstream *u = &c->up;
    int64_t missing = c->resp.remaining;
    if (sg_response_end(&c->resp, clean) == SG_OK) {
        /* complete: the writer ended the framing */
    } else if (missing > 0) {
        sg_conn_log_route(c, SG_LOG_ERROR,
                          "backend %s %s %lld bytes before its Content-Length, closing the client connection",
                          u->be->text, clean ? "closed" : "reset the connection",
                          (long long)missing);
        c->close_after = true;
    } else {
        sg_conn_log_route(c, SG_LOG_ERROR,
                          "backend %s reset the connection mid-response (%s), closing the client connection without completing the response",
                          u->be->text, err ? strerror(err) : "its reads had failed");
        c->close_after = true;
    }
    /* the socket itself is closed after the client write (sg_upstream_reap): the FIN
     * exchange then costs the client no latency */
    release_member(c);
    ev_io_stop(loop_of(c), &u->rio);
    ev_io_stop(loop_of(c), &u->wio);
    u->phase = SG_UP_DONE;
}

/* The backend's read side ended with read() returning `n` (0 or SG_ERR, errno set). */
static void backend_ended(sg_conn *c, ssize_t n)
{
    /* write_closed: a send to the backend failed, so its EOF follows a reset, not a FIN */
    if (n == 0)
        finish_response(c, !c->up.write_closed, 0);
    else
        finish_response(c, false, errno);
}

void sg_upstream_reap(sg_conn *c)
{
    if (c->up.fd >= 0 && c->up.phase == SG_UP_DONE)
        sg_upstream_close(c);
}

static void read_body(sg_conn *c);

/* Bookkeeping after `n` body bytes came from the backend; true when the response is whole. */
static bool relayed(sg_conn *c, size_t n)
{
    c->t_up = ev_now(loop_of(c));
    if (cur_state(c))
        cur_state(c)->bytes_from += (uint64_t)n;
    if (c->resp.remaining != 0)
        return false;
    finish_response(c, true, 0);
    return true;
}

static void read_head(sg_conn *c)
{
    sg_upstream *u = &c->up;
    ssize_t n = sg_buf_read(&u->head, u->fd, SG_UP_HEAD_MAX + 1 - u->head.len > 16384
                                                  ? 16384
                                                  : SG_UP_HEAD_MAX + 1 - u->head.len);
    if (n == SG_AGAIN)
        return;
    if (n <= 0) {
        int e = n < 0 ? errno : 0;
        sg_conn_log_route(c, SG_LOG_ERROR, "backend closed the connection %s%s%s, 502",
                          u->head.len ? "in the middle of the response head" : "without a response",
                          e ? ": " : "", e ? strerror(e) : "");
        sg_conn_error(c, 502, "no response head");
        return;
    }
    u->got_bytes = true;
    c->t_up = ev_now(loop_of(c));
    if (cur_state(c))
        cur_state(c)->bytes_from += (uint64_t)n;
    long end;
    for (;;) { /* interim heads first, each consumed; then the final one */
        end = sg_cgi_head_end(sg_buf_head(&u->head), u->head.len, &u->head_scan, SG_UP_HEAD_MAX);
        if (end == SG_AGAIN)
            return;
        if (end == SG_ERR) {
            sg_conn_log_route(c, SG_LOG_ERROR, "backend response head larger than %d bytes, 502",
                              SG_UP_HEAD_MAX);
            sg_conn_error(c, 502, "head too large");
            return;
        }
        u->head_scan = (size_t)end;
        int rc = emit_head(c);
        if (rc == SG_OK)
            break;
        if (rc != SG_AGAIN)
            return;
    }
    if (c->resp.remaining == 0) {
        finish_response(c, true, 0);
        return;
    }
    sg_response_body(&c->resp, sg_buf_head(&u->head) + end, u->head.len - (size_t)end);
    sg_buf_reset(&u->head);
    if (c->resp.remaining == 0) {
        finish_response(c, true, 0);
        return;
    }
    /* a large sized body goes through a pipe, never copied into our memory; without one
     * (no descriptors, or a pipe quota) it is copied as any other */
    if (!c->resp.chunked && c->resp.remaining >= SG_SPLICE_MIN)
        sg_server_pipe_take(c->server, &c->resp.pipe);
    read_body(c); /* the end is often already there: one write to the client, not two */
}

/* read_body for a piped response: the bytes stay in the kernel until they reach the client */
static void splice_body(sg_conn *c)
{
    sg_upstream *u = &c->up;
    while (sg_pipe_room(&c->resp.pipe) > 0) {
        size_t max = sg_pipe_room(&c->resp.pipe);
        if ((uint64_t)max > (uint64_t)c->resp.remaining)
            max = (size_t)c->resp.remaining;
        ssize_t n = sg_response_splice(&c->resp, u->fd, max);
        if (n == SG_AGAIN)
            return;
        if (n == SG_ERR && errno == EINVAL && c->resp.pipe.len == 0) {
            /* a socket type splice(2) does not serve: copy through user space instead */
            sg_pipe_close(&c->resp.pipe);
            read_body(c);
            return;
        }
        if (n == 0 || n == SG_ERR) {
            backend_ended(c, n);
            return;
        }
        if (relayed(c, (size_t)n))
            return;
        if ((size_t)n < max)
            return; /* drained for now: epoll says when more comes, no EAGAIN probe */
    }
}

static void read_body(sg_conn *c)
{
    sg_upstream *u = &c->up;
    if (sg_pipe_is_open(&c->resp.pipe)) {
        splice_body(c);
        return;
    }
    while (c->resp.out.len < SG_OUT_MAX) {
        ssize_t n = sg_response_read(&c->resp, u->fd, SG_OUT_MAX - c->resp.out.len);
        if (n == SG_AGAIN)
            return;
        if (n == 0 || n == SG_ERR) {
            /* an early answer (the backend closes with our upload unread) also ends in a
             * reset: it arrives whole when its Content-Length was reached, which
             * relayed() saw already; a length-less one cannot be told from a cut one */
            backend_ended(c, n);
            return;
        }
        if (relayed(c, (size_t)n))
            return;
    }
}

static void on_up_read(struct ev_loop *loop, ev_io *w, int revents)
{
    sg_conn *c = SG_CONTAINER_OF(w, sg_conn, up.rio);
    SG_UNUSED(loop);
    SG_UNUSED(revents);
    if (c->up.phase == SG_UP_RELAY)
        read_body(c);
    else
        read_head(c);
    sg_conn_kick(c);
}

/* Request bytes the gateway holds and the backend has not taken yet. */
static bool unsent(const sg_conn *c)
{
    const sg_upstream *u = &c->up;
    return u->req.len || c->rb.buf.len || (c->rb.spool_fd >= 0 && u->body_sent < u->body_len);
}

ev_tstamp sg_upstream_watch(sg_conn *c)
{
    sg_upstream *u = &c->up;
    struct ev_loop *loop = loop_of(c);
    if (u->fd < 0 || u->phase == SG_UP_DONE || u->phase == SG_UP_IDLE) {
        return 0;
    }
    bool want_write = u->phase == SG_UP_CONNECTING ||
                      (u->phase == SG_UP_SENDING && !u->write_closed && unsent(c));
    bool room = sg_pipe_is_open(&c->resp.pipe) ? sg_pipe_room(&c->resp.pipe) > 0 : c->resp.out.len < SG_OUT_MAX;
    bool want_read = u->phase != SG_UP_CONNECTING && (u->phase != SG_UP_RELAY || room);
    if (want_write)
        ev_io_start(loop, &u->wio);
    else
        ev_io_stop(loop, &u->wio);
    if (want_read)
        ev_io_start(loop, &u->rio);
    else
        ev_io_stop(loop, &u->rio);
    if (u->phase == SG_UP_CONNECTING)
        return c->t_up + c->cfg->timeouts.connect;
    if (u->phase == SG_UP_RELAY && !room)
        return 0; /* the client is the slow side; the send timeout covers it */
    if (!want_read && !want_write)
        return 0;
    return c->t_up + c->route->timeout;
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
    bool blamed = u->phase == SG_UP_HEAD || (u->phase == SG_UP_SENDING && unsent(c));
    bool replay = blamed && !u->got_bytes && u->body_sent == 0 && !u->write_closed &&
                  !c->rb.discard;
    bool next = replay && cur_member(c) && u->attempts <= u->bal->maxattempts;
    sg_conn_log_route(c, SG_LOG_ERROR, "backend %s sent no response head within %.3gs%s",
                      u->be->text, c->route->timeout,
                      next ? ", trying another member"
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
    if (u->phase == SG_UP_CONNECTING) {
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
