/*
 * conn.c: the client side of a connection. Every event handler ends in conn_run(), which
 * loops "parse input, pump the body, flush output, finish the response" until nothing moves,
 * then sets the watchers and the single activity timer from the state. Requests on one
 * connection are handled strictly one at a time: pipelined bytes stay in `in` (the parser is
 * paused) until the previous response is written, which keeps responses in order.
 */
#include "conn_impl.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "router.h"
#include "status.h"
#include "util.h"

static void conn_run(sg_conn *c);
static void sg_conn_route(sg_conn *c);

sg_conn *sg_conn_next(sg_conn *c)
{
    return c->next;
}

void sg_conn_link(sg_conn *c, sg_conn **head)
{
    c->prev = NULL;
    c->next = *head;
    if (*head)
        (*head)->prev = c;
    *head = c;
}

void sg_conn_unlink(sg_conn *c, sg_conn **head)
{
    if (c->prev)
        c->prev->next = c->next;
    else if (*head == c)
        *head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
}

static void format_addr(const struct sockaddr *sa, char *addr, size_t addrlen, int *port)
{
    *port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, addr, (socklen_t)addrlen);
        *port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, addr, (socklen_t)addrlen);
        *port = ntohs(in6->sin6_port);
    } else {
        snprintf(addr, addrlen, "unix:");
    }
}

/* ---- body callback (from the parser) ---- */

static void on_body(void *ud, const char *data, size_t len)
{
    sg_conn *c = ud;
    c->rb.received += len;
    if (c->rb.discard)
        return;
    if (c->state == SG_CONN_SPOOL_BODY) {
        if (c->rb.received > c->cfg->limits.body_bytes) {
            c->rb.discard = true; /* conn_parse answers 413 */
            return;
        }
        const char *err;
        if (sg_reqbody_spool(&c->rb, data, len, &err) != SG_OK)
            sg_log_error(errno, "%s: %s", c->peer, err); /* conn_parse answers 500 */
        return;
    }
    sg_reqbody_append(&c->rb, data, len);
}

/* ---- responses ---- */

void sg_conn_log_route(sg_conn *c, int level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->route)
        sg_log(level, 0, "%s (client %s, request \"%s %.*s\", route %d %s, backend %s)", msg,
               c->peer, c->req.method ? c->req.method : "-", (int)c->req.uri_len_view,
               c->req.uri ? c->req.uri : "", c->route->index,
               c->route->path ? c->route->path : "(match)", c->route->text);
    else
        sg_log(level, 0, "%s (client %s, request \"%s %.*s\")", msg, c->peer,
               c->req.method ? c->req.method : "-", (int)c->req.uri_len_view,
               c->req.uri ? c->req.uri : "");
}

static bool keep_alive(const sg_conn *c)
{
    return c->req.keepalive && !c->close_after && !sg_server_stopping(c->server);
}

/*
 * Ends the final head: the writer frames the body and may rule keep-alive out (a body
 * delimited by the close); an unread request body rules it out here.
 */
void sg_conn_end_head(sg_conn *c, int64_t content_length)
{
    if (!c->req.has_body || c->rb.complete) {
        /* nothing left to read */
    } else if (c->state != SG_CONN_PROXY || c->up.b.write_closed) {
        c->close_after = true; /* unread body: cannot find the next request reliably */
    }
    if (!sg_response_end_head(&c->resp, content_length, sg_buf_head(&c->redirect_cookies),
                              c->redirect_cookies.len, keep_alive(c), sg_server_date(c->server)))
        c->close_after = true;
}

/*
 * A response made by the gateway itself; `status` is final (callers refuse a 1xx). `out`
 * may already hold complete interim heads (100 Continue, a backend's 103): they stay, as
 * the client may have read part of them.
 */
static void reply(sg_conn *c, int status, const char *ctype, const char *body, size_t blen,
                  const char *location)
{
    assert(status >= 200 && "a gateway reply is a final response");
    c->state = SG_CONN_LOCAL;
    sg_response_begin(&c->resp, status, NULL, 0);
    sg_response_add_raw(&c->resp, "Server: " SG_SOFTWARE "\r\n", sizeof SG_SOFTWARE + 9);
    if (location)
        sg_response_add_header(&c->resp, "Location", 8, location, strlen(location));
    if (!sg_http_status_has_body(status))
        blen = 0; /* a 204/304 from an access hook: its body has no place on the wire */
    else
        sg_response_add_header(&c->resp, "Content-Type", 12, ctype, strlen(ctype));
    sg_conn_end_head(c, (int64_t)blen);
    sg_response_body(&c->resp, body, blen); /* dropped by the writer for a HEAD */
    c->resp.done = true;
}

void sg_conn_error(sg_conn *c, int status, const char *cause)
{
    if (c->resp.started) {
        /* too late for a status: the only honest signal left is closing */
        sg_conn_log_route(c, SG_LOG_ERROR, "%s after the response started, closing", cause);
        sg_upstream_close(c);
        sg_conn_close(c);
        return;
    }
    sg_upstream_close(c);
    char body[256];
    int n = snprintf(body, sizeof body, "%d %s\n", status, sg_http_reason(status));
    c->close_after = c->close_after || status == 400 || status == 408 || status == 413 ||
                     status == 431 || status == 501 || status == 505;
    reply(c, status, "text/plain", body, (size_t)n, NULL);
}

/* ---- request lifecycle ---- */

static void access_log(sg_conn *c)
{
    if (!sg_access_log_enabled() || !c->req.method)
        return;
    const char *method = c->redirects ? c->orig_method : c->req.method;
    const char *uri = c->redirects ? sg_buf_head(&c->orig_uri) : c->req.uri;
    int uri_len = c->redirects ? (int)c->orig_uri.len : (int)c->req.uri_len_view;
    char tbuf[64];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(tbuf, sizeof tbuf, "%d/%b/%Y:%H:%M:%S %z", &tm);
    const sg_req_header *ref = sg_request_header(&c->req, "Referer");
    const sg_req_header *ua = sg_request_header(&c->req, "User-Agent");
    sg_buf line;
    sg_buf_init(&line);
    double took = ev_time() - c->t_start;
    const char *backend = c->route && c->up.be ? c->up.be->text : NULL;
    if (c->cfg && c->cfg->log_format_ref >= 0 && c->hook.cfg) {
        sg_log_fields f = { c->resp.status, c->resp.bytes_out, took, backend, tbuf };
        sg_buf err;
        sg_buf_init(&err);
        if (sg_lua_log_format(&c->hook, &f, &line, &err) != SG_OK) {
            sg_log_error(0, "log_format failed, using the default format: %.*s", (int)err.len,
                         sg_buf_head(&err));
            sg_buf_reset(&line);
        }
        sg_buf_free(&err);
    }
    if (line.len == 0) { /* client bytes escaped: a quoted field can neither end nor add a line */
        sg_buf_appendf(&line, "%s - - [%s] \"%s ", c->remote_addr, tbuf, method);
        sg_http_log_escape(&line, uri, (size_t)uri_len);
        sg_buf_appendf(&line, " HTTP/%d.%d\" %d %llu \"", c->req.http_major, c->req.http_minor,
                       c->resp.status, (unsigned long long)c->resp.bytes_out);
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
 * the last request using it ended, so a pointer kept past end_request dangles). What the
 * request owned was released by end_request first. The connection's own fields (socket,
 * addresses, watchers, `in` with pipelined bytes, read_eof, in_more, requests, t_read and
 * t_write, the parser restarted per head, reused scratch buffers) stay.
 */
static void request_reset(sg_conn *c)
{
    c->cfg = NULL;
    c->route = NULL;
    sg_hook_ctx_init(&c->hook, NULL, NULL, NULL, 0);
    c->close_after = c->sent_continue = false;
    sg_response_reset(&c->resp); /* closes a file body left by a cut response */
    c->t_start = 0;
    c->redirects = 0;
    c->redirect_pending = false;
    c->orig_method = NULL;
}

/* The request is over: count and log it, release what it held, reset what described it. */
static void end_request(sg_conn *c)
{
    if (c->req.method && c->resp.status)
        sg_stats_record(sg_server_stats(c->server), c->resp.status, ev_time() - c->t_start);
    access_log(c);
    sg_hook_ctx_release(&c->hook);
    sg_upstream_reset(c);
    sg_server_pipe_give(c->server, &c->resp.pipe);
    sg_buf_reset(&c->redirect_cookies);
    sg_buf_reset(&c->orig_uri);
    sg_config_unref(c->cfg);
    sg_reqbody_reset(&c->rb);
    request_reset(c);
}

/*
 * Between requests a keep-alive connection gives back every per-request buffer: they are
 * rebuilt by the next request anyway (a few mallocs, far cheaper than its syscalls), and
 * 10,000 idle clients then cost little more than their sg_conn structs.
 */
static void shrink(sg_conn *c)
{
    if (c->in.len == 0)
        sg_buf_free(&c->in);
    if (c->resp.out.len == 0)
        sg_buf_free(&c->resp.out);
    sg_buf_free(&c->rb.buf);
    sg_buf_free(&c->up.b.head);
    sg_buf_free(&c->up.b.req);
    sg_scgi_vars_free(&c->vars);
    sg_request_free(&c->req);
    sg_request_init(&c->req);
}

/*
 * The first byte of a head is here (or was already buffered): the request starts now, or at
 * the accept for a connection's first request (t_head set then), and timeouts.client_header
 * counts from the same moment. The parser takes the header limits of the configuration in
 * force now, so that requests on a connection older than a reload get the new ones.
 */
static void head_begin(sg_conn *c)
{
    const sg_config *cfg = sg_server_config(c->server);
    if (c->t_head == 0)
        c->t_head = ev_now(sg_server_loop(c->server));
    c->t_start = c->t_head;
    sg_http_init(&c->http, cfg->limits.header_bytes, cfg->limits.headers, on_body, c);
    sg_http_start(&c->http, &c->req);
}

/* Waits for the next head; the idle time until its first byte counts against keepalive. */
static void start_head(sg_conn *c)
{
    ev_tstamp now = ev_now(sg_server_loop(c->server));
    c->state = SG_CONN_READ_HEAD;
    c->t_idle = c->t_read = now;
    c->t_head = 0;
    sg_http_start(&c->http, &c->req);
    if (c->in.len) /* pipelined: its bytes are here already */
        head_begin(c);
}

/*
 * Closing a socket that still has unread client bytes makes the kernel send a reset, and a
 * reset can destroy the response the client has not read yet (the early-answer case: a
 * 403 while an upload is in flight). So shut the write side and drain for a while first,
 * as nginx's lingering close does.
 */
static void conn_linger(sg_conn *c)
{
    end_request(c);
    if (sg_transport_shutdown(&c->tr) != SG_OK) {
        sg_conn_close(c);
        return;
    }
    c->state = SG_CONN_LINGER;
    c->resp.done = false;
    c->t_head = ev_now(sg_server_loop(c->server));
    sg_buf_reset(&c->in);
}

static void finish_request(sg_conn *c)
{
    bool body_left = c->req.has_body && !c->rb.complete;
    /* with body bytes left the next request cannot be found: close (after draining) */
    bool close_now = c->close_after || body_left || !c->req.keepalive ||
                     sg_server_stopping(c->server);
    bool unread = body_left || c->in.len > 0;
    c->requests++;
    if (close_now && unread && !c->read_eof) {
        conn_linger(c);
        return;
    }
    end_request(c);
    if (close_now) {
        sg_conn_close(c);
        return;
    }
    shrink(c);
    start_head(c);
}

static void send_continue(sg_conn *c)
{
    if (c->req.expect_continue && !c->sent_continue) {
        sg_response_add_raw(&c->resp, "HTTP/1.1 100 Continue\r\n\r\n", 25);
        c->sent_continue = true;
    }
}

static bool allowed(const sg_conn *c, const sg_config *cfg)
{
    unsigned char addr[16];
    int fam = strchr(c->remote_addr, ':') ? AF_INET6 : AF_INET;
    if (inet_pton(fam, c->remote_addr, addr) != 1)
        return false;
    for (size_t i = 0; i < cfg->nstatus_allow; i++) {
        const sg_allow *a = &cfg->status_allow[i];
        if (a->family != fam)
            continue;
        int bits = a->prefix, k = 0;
        for (; bits >= 8; bits -= 8, k++)
            if (a->addr[k] != addr[k])
                break;
        if (bits >= 8)
            continue;
        if (bits == 0 || ((a->addr[k] ^ addr[k]) & (0xff << (8 - bits))) == 0)
            return true;
    }
    return false;
}

/* JSON, Prometheus or HTML, for the addresses in status.allow only
 * (scgi-lua.8 STATUS ENDPOINT). */
static void status_endpoint(sg_conn *c)
{
    const sg_request *r = &c->req;
    if (!allowed(c, c->cfg)) {
        sg_conn_log_route(c, SG_LOG_WARN,
                          "status endpoint refused: client not in status.allow, 403");
        sg_conn_error(c, 403, "status not allowed");
        return;
    }
    int f = sg_status_format_parse(r->query, r->query_len);
    if (f < 0) {
        sg_conn_error(c, 400, "unknown status format");
        return;
    }
    sg_status_view v = { .stats = sg_server_stats(c->server),
                         .cfg = c->cfg,
                         .now = ev_time(),
                         .generation = c->cfg->generation,
                         .connections_open = sg_server_nconns(c->server),
                         .pid = (int)getpid(),
                         .version = SG_VERSION };
    sg_buf body;
    sg_buf_init(&body);
    sg_status_render(&v, (enum sg_status_format)f, &body);
    reply(c, 200, sg_status_content_type((enum sg_status_format)f), sg_buf_head(&body), body.len,
          NULL);
    sg_buf_free(&body);
}

/* Body bytes from the socket straight into the backend buffer (reqbody.c). */
static ssize_t read_raw_body(sg_conn *c)
{
    ssize_t r = sg_reqbody_read(&c->rb, &c->tr);
    if (r > 0)
        c->t_read = ev_now(sg_server_loop(c->server));
    return r;
}

static bool take_raw_body(sg_conn *c)
{
    if (sg_reqbody_take(&c->rb, &c->in) == 0)
        return false;
    if (c->state == SG_CONN_PROXY && c->rb.buf.len)
        sg_upstream_pump(c);
    return true;
}

/*
 * A body that came in the same burst as its head (the read filled its buffer) is read
 * before the backend connects, so the netstring and the body leave in one send.
 * EOF, errors and EAGAIN are left to the read watcher, which sees them again.
 */
static void prefetch_body(sg_conn *c)
{
    take_raw_body(c);
    if (!c->in_more || c->rb.complete || c->rb.discard || c->in.len)
        return;
    c->in_more = false;
    read_raw_body(c);
}

/* Routes the request (a new one, or one an internal redirect retargeted) and starts it. */
static void sg_conn_route(sg_conn *c)
{
    sg_request *r = &c->req;
    sg_hook_ctx_release(&c->hook); /* a retargeted request needs a fresh req table */
    sg_hook_ctx_init(&c->hook, c->cfg, r, c->remote_addr, c->remote_port);
    c->route = NULL;
    if (c->cfg->status_path && strcmp(r->path, c->cfg->status_path) == 0) {
        status_endpoint(c);
        return;
    }
    sg_buf err;
    sg_buf_init(&err);
    const sg_route *route, *slash;
    int src = sg_router_select(&c->hook, &route, &slash, &err);
    if (src == SG_DECLINED) {
        sg_conn_log_route(c, SG_LOG_INFO, "%.*s, 414", (int)err.len, sg_buf_head(&err));
        sg_buf_free(&err);
        sg_conn_error(c, 414, "path too long for route patterns");
        return;
    }
    if (src != SG_OK) {
        sg_conn_log_route(c, SG_LOG_ERROR, "match hook failed: %.*s", (int)err.len,
                          sg_buf_head(&err));
        sg_buf_free(&err);
        sg_conn_error(c, 500, "hook error");
        return;
    }
    if (route && r->encoded_slash && !route->allow_encoded_slashes) {
        /* Apache's AllowEncodedSlashes Off; the route is the one the path selects with %2F
         * kept as a plain segment character, so no later route is tried instead */
        sg_conn_log_route(c, SG_LOG_INFO,
                          "encoded slash in the path, route does not allow it, 404");
        sg_buf_free(&err);
        sg_conn_error(c, 404, "encoded slash");
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
            reply(c, 301, "text/plain", body, strlen(body), sg_buf_head(&loc));
            sg_buf_free(&loc);
        } else {
            sg_conn_log_route(c, SG_LOG_INFO, "no route matches, 404");
            sg_conn_error(c, 404, "no route");
        }
        sg_buf_free(&err);
        return;
    }
    c->route = route;
    int status;
    sg_buf body;
    sg_buf_init(&body);
    bool with_body = r->has_body && c->redirects == 0;
    if (sg_lua_access(&c->hook, route, &status, &body, &err) != SG_OK) {
        sg_conn_log_route(c, SG_LOG_ERROR, "access hook failed: %.*s", (int)err.len,
                          sg_buf_head(&err));
        sg_conn_error(c, 500, "hook error");
    } else if (status && status < 200) {
        /* an interim status answers nothing: the client would wait for the final one */
        sg_conn_log_route(c, SG_LOG_ERROR, "access hook returned the interim status %d, 500",
                          status);
        sg_conn_error(c, 500, "access hook");
    } else if (status) {
        sg_conn_log_route(c, SG_LOG_INFO, "access hook answered %d", status);
        if (body.len)
            reply(c, status, "text/plain", sg_buf_head(&body), body.len, NULL);
        else
            sg_conn_error(c, status, "access hook");
    } else if (with_body && r->content_length > 0 &&
               (uint64_t)r->content_length > c->cfg->limits.body_bytes) {
        sg_conn_log_route(c, SG_LOG_WARN,
                          "request body of %lld bytes exceeds limits.body_bytes, 413",
                          (long long)r->content_length);
        sg_conn_error(c, 413, "body too large");
    } else if (with_body && r->chunked) {
        c->state = SG_CONN_SPOOL_BODY;
        send_continue(c);
    } else {
        c->state = SG_CONN_PROXY;
        if (with_body) {
            send_continue(c);
            /* the parser paused at the end of the head with its final LF unread */
            if (c->in.len && sg_buf_head(&c->in)[0] == '\n')
                sg_buf_consume(&c->in, 1);
            sg_reqbody_start_raw(&c->rb, (uint64_t)r->content_length);
            prefetch_body(c);
        }
        sg_upstream_start(c);
    }
    sg_buf_free(&body);
    sg_buf_free(&err);
}

/* A complete head: take a reference on the config generation for the whole request. */
static void dispatch(sg_conn *c)
{
    c->cfg = sg_config_ref(sg_server_config(c->server));
    sg_conn_route(c);
}

/* Feeds buffered client bytes to the parser as the state allows. Returns true on progress. */
static bool conn_parse(sg_conn *c)
{
    bool progress = false;
    for (;;) {
        size_t want;
        switch (c->state) {
        case SG_CONN_READ_HEAD:
            want = c->in.len;
            break;
        case SG_CONN_SPOOL_BODY:
            want = c->rb.complete ? 0 : c->in.len;
            break;
        case SG_CONN_PROXY:
        case SG_CONN_LOCAL:
            if (c->rb.raw && !c->rb.complete) {
                progress |= take_raw_body(c);
                return progress;
            }
            if (c->rb.complete || !c->req.has_body)
                want = 0;
            else if (c->rb.discard || c->state == SG_CONN_LOCAL)
                want = c->state == SG_CONN_LOCAL && !c->rb.discard ? 0 : c->in.len;
            else
                want = sg_reqbody_room(&c->rb);
            if (want > c->in.len)
                want = c->in.len;
            break;
        default:
            return progress;
        }
        if (want == 0)
            return progress;
        int events = 0, status = 0;
        const char *err = NULL;
        enum sg_conn_state before = c->state;
        long n = sg_http_feed(&c->http, sg_buf_head(&c->in), want, &events, &status, &err);
        if (n < 0) {
            sg_buf_reset(&c->in);
            if (before == SG_CONN_READ_HEAD || !c->resp.started) {
                sg_log_info(0, "bad request from %s: %s, %d", c->peer, err, status);
                c->close_after = true;
                if (before == SG_CONN_PROXY)
                    sg_upstream_close(c);
                sg_conn_error(c, status, err);
            } else {
                sg_conn_close(c);
            }
            return true;
        }
        sg_buf_consume(&c->in, (size_t)n);
        if (n > 0)
            progress = true;
        if (events & SG_HTTP_DONE)
            c->rb.complete = true;
        if (events & SG_HTTP_HEAD) {
            if (!c->req.has_body)
                c->rb.complete = true;
            dispatch(c);
            progress = true;
            if (c->state == SG_CONN_CLOSING)
                return true;
        }
        if (c->state == SG_CONN_SPOOL_BODY) {
            if (c->rb.discard && c->rb.received > c->cfg->limits.body_bytes) {
                sg_conn_log_route(c, SG_LOG_WARN,
                                  "chunked request body exceeds limits.body_bytes, 413");
                c->close_after = true;
                sg_conn_error(c, 413, "body too large");
                return true;
            }
            if (c->rb.discard) {
                sg_conn_error(c, 500, "cannot buffer the request body");
                return true;
            }
            if (c->rb.complete) {
                c->state = SG_CONN_PROXY;
                sg_upstream_start(c);
                return true;
            }
        }
        if (c->state == SG_CONN_PROXY && c->rb.buf.len)
            sg_upstream_pump(c);
        if (n == 0 && !(events & SG_HTTP_HEAD))
            return progress;
    }
}

/*
 * Writes the response's pending bytes (callers check sg_response_pending first: most turns
 * have none); returns false if the connection was closed.
 */
static bool conn_flush(sg_conn *c)
{
    const char *err = NULL;
    int rc = sg_response_flush(&c->resp, &c->tr, &err);
    if (rc > 0)
        c->t_write = ev_now(sg_server_loop(c->server));
    if (rc >= 0)
        return true;
    if (err == sg_response_file_shrank)
        sg_conn_log_route(c, SG_LOG_ERROR, "sendfile target shrank while being sent, closing");
    else if (err == sg_response_sendfile_failed)
        sg_log_debug(errno, "sendfile to %s failed, closing", c->peer);
    else if (err == sg_response_file_read_failed)
        sg_conn_log_route(c, SG_LOG_ERROR, "reading the sendfile target failed: %s, closing",
                          strerror(errno));
    else
        sg_log_debug(errno, "write to %s failed, closing", c->peer);
    sg_conn_close(c);
    return false;
}

static void conn_watch(sg_conn *c);

static inline bool to_client(const sg_conn *c)
{
    return sg_response_pending(&c->resp);
}

static void conn_run(sg_conn *c)
{
    for (;;) {
        if (c->state == SG_CONN_CLOSING)
            return;
        bool progress = conn_parse(c);
        if (c->state == SG_CONN_CLOSING || (to_client(c) && !conn_flush(c)))
            return;
        sg_upstream_reap(c);
        if (c->resp.done && c->resp.out.len == 0 && c->resp.pipe.len == 0) {
            finish_request(c);
            if (c->state == SG_CONN_CLOSING)
                return;
            if (c->state == SG_CONN_LINGER)
                break;
            progress = true;
        }
        if (c->read_eof && c->state == SG_CONN_READ_HEAD) {
            if (c->in.len == 0 || !progress) {
                if (c->http.head_bytes || c->in.len)
                    sg_log_debug(0, "%s closed in the middle of a request head", c->peer);
                sg_conn_close(c);
                return;
            }
        }
        if (!progress)
            break;
    }
    conn_watch(c);
}

/* ---- watchers and the one timer ---- */

static void set_io(struct ev_loop *loop, ev_io *w, bool on)
{
    if (on)
        ev_io_start(loop, w);
    else
        ev_io_stop(loop, w);
}

/* Why the one activity timer fires: the deadline that is nearest (conn_deadline). */
enum sg_conn_timer {
    SG_TIMER_NONE,
    SG_TIMER_KEEPALIVE,     /* idle between requests: timeouts.keepalive */
    SG_TIMER_CLIENT_HEADER, /* a head begun and not complete: timeouts.client_header */
    SG_TIMER_CLIENT_BODY,   /* the request body stalled: timeouts.client_body */
    SG_TIMER_SEND,          /* the client takes no response bytes: timeouts.send */
    SG_TIMER_BACKEND,       /* connect or backend progress (sg_upstream_watch) */
    SG_TIMER_LINGER         /* draining an unread body after the response: SG_LINGER_TIME */
};

static ev_tstamp conn_deadline(sg_conn *c, enum sg_conn_timer *what)
{
    const sg_config *cfg = c->cfg ? c->cfg : sg_server_config(c->server);
    ev_tstamp d = 0;
    *what = SG_TIMER_NONE;
#define CONSIDER(t, w)                                                                             \
    do {                                                                                           \
        if ((t) > 0 && (d == 0 || (t) < d)) {                                                      \
            d = (t);                                                                               \
            *what = (w);                                                                           \
        }                                                                                          \
    } while (0)
    if (c->state == SG_CONN_LINGER) {
        CONSIDER(c->t_head + SG_LINGER_TIME, SG_TIMER_LINGER);
    } else if (c->state == SG_CONN_READ_HEAD) {
        /* client_header bounds a head from its first byte; the idle time before it (a
         * keep-alive connection between requests) counts against keepalive only */
        if (c->t_head == 0)
            CONSIDER(c->t_idle + cfg->timeouts.keepalive, SG_TIMER_KEEPALIVE);
        else
            CONSIDER(c->t_head + cfg->timeouts.client_header, SG_TIMER_CLIENT_HEADER);
    } else if (!c->rb.complete && c->req.has_body && ev_is_active(&c->rio)) {
        CONSIDER(c->t_read + cfg->timeouts.client_body, SG_TIMER_CLIENT_BODY);
    }
    if (to_client(c))
        CONSIDER(c->t_write + cfg->timeouts.send, SG_TIMER_SEND);
    if (c->state == SG_CONN_PROXY) {
        ev_tstamp u = sg_upstream_watch(c);
        CONSIDER(u, SG_TIMER_BACKEND);
    }
#undef CONSIDER
    return d;
}

static void conn_watch(sg_conn *c)
{
    struct ev_loop *loop = sg_server_loop(c->server);
    bool want_read = false;
    switch (c->state) {
    case SG_CONN_READ_HEAD:
        want_read = c->in.len < SG_IN_MAX && !c->read_eof;
        break;
    case SG_CONN_SPOOL_BODY:
    case SG_CONN_LINGER:
        want_read = !c->read_eof;
        break;
    case SG_CONN_PROXY:
    case SG_CONN_LOCAL:
        if (c->req.has_body && !c->rb.complete)
            want_read = !c->read_eof && c->in.len < SG_IN_MAX &&
                        (c->rb.discard ||
                         (c->state == SG_CONN_PROXY && c->rb.buf.len < SG_BODY_MAX));
        else /* stay subscribed: pipelined bytes wait in `in`, and no epoll_ctl per request */
            want_read = !c->read_eof && c->in.len < SG_IN_MAX;
        break;
    default:
        break;
    }
    set_io(loop, &c->rio, want_read);
    if (want_read && sg_transport_pending(&c->tr)) /* TLS: bytes the fd will not signal */
        ev_feed_event(loop, &c->rio, EV_READ);
    set_io(loop, &c->wio, to_client(c));
    enum sg_conn_timer what;
    ev_tstamp d = conn_deadline(c, &what);
    if (d > 0) {
        ev_tstamp left = d - ev_now(loop);
        if (left < 0.001)
            left = 0.001;
        /* restarted only when the deadline moved earlier or the timer is idle */
        if (!ev_is_active(&c->timer) || ev_timer_remaining(loop, &c->timer) > left + 0.01) {
            ev_timer_stop(loop, &c->timer);
            ev_timer_set(&c->timer, left, 0.);
            ev_timer_start(loop, &c->timer);
        }
    } else {
        ev_timer_stop(loop, &c->timer);
    }
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    sg_conn *c = SG_CONTAINER_OF(w, sg_conn, timer);
    SG_UNUSED(revents);
    enum sg_conn_timer what;
    ev_tstamp d = conn_deadline(c, &what);
    ev_tstamp now = ev_now(loop);
    if (d == 0 || d > now + 0.0005) {
        conn_watch(c); /* activity moved the deadline: re-arm */
        return;
    }
    switch (what) {
    case SG_TIMER_KEEPALIVE:
        sg_log_debug(0, "%s: keep-alive timeout, closing", c->peer);
        sg_conn_close(c);
        return;
    case SG_TIMER_CLIENT_HEADER:
        if (c->http.head_bytes == 0 && c->in.len == 0) {
            sg_log_debug(0, "%s: no request within client_header timeout, closing", c->peer);
            sg_conn_close(c);
            return;
        }
        sg_log_info(0, "%s: request head not received within timeouts.client_header, 408", c->peer);
        c->close_after = true;
        sg_conn_error(c, 408, "client header timeout");
        break;
    case SG_TIMER_CLIENT_BODY:
        sg_conn_log_route(c, SG_LOG_INFO,
                          "request body stalled longer than timeouts.client_body, 408");
        c->close_after = true;
        sg_conn_error(c, 408, "client body timeout");
        break;
    case SG_TIMER_SEND:
        sg_log_info(0, "%s: client did not accept data within timeouts.send, closing", c->peer);
        sg_conn_close(c);
        return;
    case SG_TIMER_BACKEND:
        sg_upstream_timeout(c);
        break;
    case SG_TIMER_LINGER:
        sg_conn_close(c);
        return;
    case SG_TIMER_NONE:
        break;
    }
    conn_run(c);
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    sg_conn *c = SG_CONTAINER_OF(w, sg_conn, rio);
    SG_UNUSED(revents);
    if (c->state == SG_CONN_LINGER) {
        char sink[16384];
        ssize_t r;
        do /* bytes a TLS transport holds would never wake this watcher again */
            r = sg_transport_read(&c->tr, sink, sizeof sink);
        while (r > 0 && sg_transport_pending(&c->tr));
        if (r == 0 || r == SG_ERR)
            sg_conn_close(c);
        return;
    }
    if (c->rb.raw && !c->rb.complete && c->in.len == 0 && c->state == SG_CONN_PROXY &&
        !c->rb.discard) {
        ssize_t r = read_raw_body(c);
        if (r == SG_AGAIN || r == SG_DECLINED)
            return;
        if (r <= 0) {
            if (r == SG_ERR)
                sg_log_debug(errno, "read from %s failed", c->peer);
            c->read_eof = true;
            sg_conn_log_route(c, SG_LOG_INFO,
                              "client closed the connection before the request body was complete");
            sg_conn_close(c);
            return;
        }
        sg_upstream_pump(c);
        conn_run(c);
        return;
    }
    /* read on the stack and keep only what arrived: an idle keep-alive connection then
     * holds a few hundred bytes, not a 16 KiB read buffer (10,000 idle clients: MBs, not GBs) */
    char chunk[16384];
    ssize_t n = sg_transport_read(&c->tr, chunk, sizeof chunk);
    if (n == SG_AGAIN)
        return;
    bool head_first = n > 0 && c->state == SG_CONN_READ_HEAD && c->in.len == 0 &&
                      c->http.head_bytes == 0;
    if (n > 0)
        sg_buf_append(&c->in, chunk, (size_t)n);
    if (head_first)
        head_begin(c);
    c->in_more = n == (ssize_t)sizeof chunk || sg_transport_pending(&c->tr);
    if (n == SG_ERR || n == 0) {
        if (n == SG_ERR)
            sg_log_debug(errno, "read from %s failed", c->peer);
        c->read_eof = true;
        bool request_whole = (c->state == SG_CONN_PROXY || c->state == SG_CONN_LOCAL) &&
                             (!c->req.has_body || c->rb.complete);
        if (n == 0 && request_whole) {
            /* a half-close after a complete request still gets its answer */
            c->close_after = true;
        } else if (c->state != SG_CONN_READ_HEAD || n == SG_ERR) {
            /* the client went away mid-request (or reset): nothing left to answer */
            if (c->state == SG_CONN_PROXY || c->state == SG_CONN_SPOOL_BODY)
                sg_conn_log_route(
                    c, SG_LOG_INFO,
                    "client closed the connection before the request body was complete");
            sg_conn_close(c);
            return;
        }
    } else {
        c->t_read = ev_now(loop);
    }
    conn_run(c);
}

static void on_writable(struct ev_loop *loop, ev_io *w, int revents)
{
    sg_conn *c = SG_CONTAINER_OF(w, sg_conn, wio);
    SG_UNUSED(loop);
    SG_UNUSED(revents);
    if (!conn_flush(c))
        return;
    conn_run(c); /* conn_watch re-arms the backend read once `out` has room again */
}

void sg_conn_kick(sg_conn *c)
{
    if (c->redirect_pending) {
        c->redirect_pending = false;
        sg_conn_route(c);
    }
    conn_run(c);
}

sg_conn *sg_conn_new(sg_server *s, int fd, const struct sockaddr *peer, socklen_t peerlen,
                     const char *listen_text)
{
    SG_UNUSED(peerlen);
    sg_conn *c = sg_xcalloc(1, sizeof *c);
    sg_transport_init_plain(&c->tr, fd);
    c->server = s;
    sg_reqbody_init(&c->rb);
    sg_response_init(&c->resp, &c->req);
    c->listen_text = listen_text;
    format_addr(peer, c->remote_addr, sizeof c->remote_addr, &c->remote_port);
    if (peer->sa_family == AF_INET6)
        snprintf(c->peer, sizeof c->peer, "[%s]:%d", c->remote_addr, c->remote_port);
    else if (peer->sa_family == AF_INET)
        snprintf(c->peer, sizeof c->peer, "%s:%d", c->remote_addr, c->remote_port);
    else
        snprintf(c->peer, sizeof c->peer, "unix:");
    struct sockaddr_storage local;
    socklen_t llen = sizeof local;
    if (getsockname(fd, (struct sockaddr *)&local, &llen) == 0) {
        if (local.ss_family == AF_UNIX) {
            snprintf(c->server_addr, sizeof c->server_addr, "%s", listen_text);
            c->server_port = 0;
        } else {
            format_addr((struct sockaddr *)&local, c->server_addr, sizeof c->server_addr,
                        &c->server_port);
        }
    }
    sg_buf_init(&c->in);
    sg_buf_init(&c->redirect_cookies);
    sg_buf_init(&c->orig_uri);
    sg_request_init(&c->req);
    sg_scgi_vars_init(&c->vars);
    const sg_config *cfg = sg_server_config(s);
    sg_http_init(&c->http, cfg->limits.header_bytes, cfg->limits.headers, on_body, c);
    struct ev_loop *loop = sg_server_loop(s);
    ev_io_init(&c->rio, on_readable, fd, EV_READ);
    ev_io_init(&c->wio, on_writable, fd, EV_WRITE);
    ev_init(&c->timer, on_timer);
    sg_upstream_init(c);
    request_reset(c);
    start_head(c);
    /* the first request starts at the accept, and client_header counts from it */
    c->t_head = c->t_start = ev_now(loop);
    c->t_write = ev_now(loop);
    conn_watch(c);
    return c;
}

void sg_conn_close(sg_conn *c)
{
    if (c->state == SG_CONN_CLOSING)
        return;
    struct ev_loop *loop = sg_server_loop(c->server);
    if (c->cfg && c->state != SG_CONN_LINGER)
        end_request(c);
    else
        sg_upstream_close(c);
    ev_io_stop(loop, &c->rio);
    ev_io_stop(loop, &c->wio);
    ev_timer_stop(loop, &c->timer);
    sg_transport_close(&c->tr);
    c->state = SG_CONN_CLOSING;
    sg_server_conn_closed(c->server, c);
    sg_server_defer_free(c->server, c);
}

void sg_conn_free(sg_conn *c)
{
    if (!c)
        return;
    sg_buf_free(&c->in);
    sg_response_free(&c->resp);
    sg_reqbody_free(&c->rb);
    sg_buf_free(&c->redirect_cookies);
    sg_buf_free(&c->orig_uri);
    sg_backend_free(&c->up.b);
    sg_request_free(&c->req);
    sg_scgi_vars_free(&c->vars);
    free(c);
}

void sg_conn_shutdown(sg_conn *c)
{
    if (c->state == SG_CONN_READ_HEAD && c->http.head_bytes == 0 && c->in.len == 0)
        sg_conn_close(c);
}
