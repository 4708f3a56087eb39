/*
 * conn.c: one HTTP/1 client connection. It reads bytes, frames requests (the parser, the
 * request body as raw bytes or chunks), keeps responses in order, and decides keep-alive,
 * lingering close and every client timeout; what a request means is the exchange's
 * (exchange.c), which the connection owns one at a time. Every event handler ends in
 * conn_run(), which loops "parse input, pump the body, flush output, finish the response"
 * until nothing moves, then sets the watchers and the single activity timer from the state.
 * Pipelined bytes stay in `in` (the parser is paused) until the previous response is
 * written, which keeps responses in order.
 */
#include "conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "exchange.h"
#include "http.h"
#include "log.h"
#include "tls.h"
#include "transport.h"
#include "util.h"

#define SG_IN_MAX (64 * 1024) /* unparsed client bytes held */
#define SG_LINGER_TIME 5.0    /* seconds to drain a client's unread body before closing */

/* What the connection is doing; within SG_CONN_REQUEST, the exchange's phase says more. */
enum sg_conn_state {
    SG_CONN_READ_HEAD, /* waiting for or parsing a request head */
    SG_CONN_REQUEST,   /* a head is complete (or failed): its exchange is answering it */
    SG_CONN_LINGER,    /* response sent, write side shut: draining an unread body */
    SG_CONN_CLOSING    /* unlinked; freed by the server's deferred sweep */
};

/* Connection flags (c->flags): facts about the client socket, kept across requests. */
enum {
    SG_CF_READ_EOF = 1 << 0, /* the client half-closed (or the read failed) */
    SG_CF_IN_MORE = 1 << 1,  /* the last read filled its buffer: more is likely queued */
    SG_CF_TLS = 1 << 2       /* a TLS session; its details are in tls_info once it is up */
};

struct sg_conn {
    ev_io rio, wio;
    ev_timer timer;
    sg_transport tr; /* owned: the client socket (plain, later TLS) */
    enum sg_conn_state state;
    unsigned flags;          /* SG_CF_* */
    sg_conn_host *host;      /* borrowed; outlives every conn */
    sg_conn *next, *prev;    /* the server's list */
    sg_client client;        /* addresses, for the exchange and logs */
    const char *listen_text; /* borrowed */
    sg_http http;            /* the parser, restarted per head */
    sg_buf in;               /* owned: client bytes not parsed yet */
    unsigned requests;
    ev_tstamp t_head;   /* client_header origin: the head's first byte (accept for the first) */
    ev_tstamp t_idle;   /* keep-alive origin: the end of the previous request */
    ev_tstamp t_read;   /* last client read progress */
    ev_tstamp t_write;  /* last client write progress */
    ev_tstamp t_accept; /* timeouts.tls_handshake origin */
    sg_exchange x;      /* the request being answered (one at a time) */
    /* owned: what the TLS handshake negotiated (client.tls), made when it ends: 10,000 idle
     * or plain connections should not each carry its half kilobyte */
    sg_tls_info *tls_info;
};

static void conn_run(sg_conn *c);

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
    c->x.rb.received += len;
    if (c->x.rb.discard)
        return;
    if (c->x.phase == SG_X_SPOOL) {
        if (c->x.rb.received > c->x.cfg->limits.body_bytes) {
            c->x.rb.discard = true; /* conn_parse answers 413 */
            return;
        }
        const char *err;
        if (sg_reqbody_spool(&c->x.rb, data, len, &err) != SG_OK)
            sg_log_error(errno, "%s: %s", c->client.peer, err); /* conn_parse answers 500 */
        return;
    }
    sg_reqbody_append(&c->x.rb, data, len);
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
    sg_exchange_shrink(&c->x);
}

/*
 * The first byte of a head is here (or was already buffered): the request starts now, or at
 * the accept for a connection's first request (t_head set then), and timeouts.client_header
 * counts from the same moment. The parser takes the header limits of the configuration in
 * force now, so that requests on a connection older than a reload get the new ones.
 */
static void head_begin(sg_conn *c)
{
    const sg_config *cfg = sg_host_config(c->host);
    if (c->t_head == 0)
        c->t_head = ev_now(c->host->loop);
    c->x.t_start = c->t_head;
    sg_http_init(&c->http, cfg->limits.header_bytes, cfg->limits.headers, on_body, c);
    sg_http_start(&c->http, &c->x.req);
}

/* Waits for the next head; the idle time until its first byte counts against keepalive. */
static void start_head(sg_conn *c)
{
    ev_tstamp now = ev_now(c->host->loop);
    c->state = SG_CONN_READ_HEAD;
    c->t_idle = c->t_read = now;
    c->t_head = 0;
    sg_http_start(&c->http, &c->x.req);
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
    sg_exchange_end(&c->x);
    if (sg_transport_shutdown(&c->tr) != SG_OK) {
        sg_conn_close(c);
        return;
    }
    c->state = SG_CONN_LINGER;
    c->t_head = ev_now(c->host->loop);
    sg_buf_reset(&c->in);
}

static void finish_request(sg_conn *c)
{
    bool body_left = c->x.req.has_body && !c->x.rb.complete;
    /* with body bytes left the next request cannot be found: close (after draining) */
    bool close_now = c->x.close_after || body_left || !c->x.req.keepalive ||
                     sg_host_stopping(c->host);
    bool unread = body_left || c->in.len > 0;
    c->requests++;
    if (close_now && unread && !(c->flags & SG_CF_READ_EOF)) {
        conn_linger(c);
        return;
    }
    sg_exchange_end(&c->x);
    if (close_now) {
        sg_conn_close(c);
        return;
    }
    shrink(c);
    start_head(c);
}

/* Body bytes from the socket straight into the backend buffer (reqbody.c). */
static ssize_t read_raw_body(sg_conn *c)
{
    ssize_t r = sg_reqbody_read(&c->x.rb, &c->tr);
    if (r > 0)
        c->t_read = ev_now(c->host->loop);
    return r;
}

static bool take_raw_body(sg_conn *c)
{
    if (sg_reqbody_take(&c->x.rb, &c->in) == 0)
        return false;
    if (c->x.phase == SG_X_PROXY && c->x.rb.buf.len)
        sg_exchange_pump(&c->x);
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
    if (!(c->flags & SG_CF_IN_MORE) || c->x.rb.complete || c->x.rb.discard || c->in.len)
        return;
    c->flags &= ~SG_CF_IN_MORE;
    read_raw_body(c);
}

/* Feeds buffered client bytes to the parser as the state allows. Returns true on progress. */
static bool conn_parse(sg_conn *c)
{
    bool progress = false;
    for (;;) {
        size_t want;
        if (c->state == SG_CONN_READ_HEAD) {
            want = c->in.len;
        } else if (c->state != SG_CONN_REQUEST) {
            return progress;
        } else if (c->x.phase == SG_X_SPOOL) {
            want = c->x.rb.complete ? 0 : c->in.len;
        } else {
            if (c->x.rb.raw && !c->x.rb.complete) {
                progress |= take_raw_body(c);
                return progress;
            }
            if (c->x.rb.complete || !c->x.req.has_body)
                want = 0;
            else if (c->x.rb.discard || c->x.phase == SG_X_LOCAL)
                want = c->x.phase == SG_X_LOCAL && !c->x.rb.discard ? 0 : c->in.len;
            else
                want = sg_reqbody_room(&c->x.rb);
            if (want > c->in.len)
                want = c->in.len;
        }
        if (want == 0)
            return progress;
        int events = 0, status = 0;
        const char *err = NULL;
        long n = sg_http_feed(&c->http, sg_buf_head(&c->in), want, &events, &status, &err);
        if (n < 0) {
            sg_buf_reset(&c->in);
            if (c->state == SG_CONN_READ_HEAD || !c->x.resp.started) {
                sg_log_info(0, "bad request from %s: %s, %d", c->client.peer, err, status);
                c->state = SG_CONN_REQUEST;
                c->x.close_after = true;
                sg_exchange_error(&c->x, status, err); /* stops a backend exchange first */
            } else {
                sg_conn_close(c);
            }
            return true;
        }
        sg_buf_consume(&c->in, (size_t)n);
        if (n > 0)
            progress = true;
        if (events & SG_HTTP_DONE)
            c->x.rb.complete = true;
        if (events & SG_HTTP_HEAD) {
            if (!c->x.req.has_body)
                c->x.rb.complete = true;
            c->state = SG_CONN_REQUEST;
            sg_exchange_begin(&c->x);
            progress = true;
            if (c->state == SG_CONN_CLOSING)
                return true;
        }
        if (c->x.phase == SG_X_SPOOL) {
            if (c->x.rb.discard && c->x.rb.received > c->x.cfg->limits.body_bytes) {
                sg_exchange_log(&c->x, SG_LOG_WARN,
                                "chunked request body exceeds limits.body_bytes, 413");
                c->x.close_after = true;
                sg_exchange_error(&c->x, 413, "body too large");
                return true;
            }
            if (c->x.rb.discard) {
                sg_exchange_error(&c->x, 500, "cannot buffer the request body");
                return true;
            }
            if (c->x.rb.complete) {
                sg_exchange_body_complete(&c->x);
                return true;
            }
        }
        if (c->x.phase == SG_X_PROXY && c->x.rb.buf.len)
            sg_exchange_pump(&c->x);
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
    int rc = sg_response_flush(&c->x.resp, &c->tr, &err);
    if (rc > 0)
        c->t_write = ev_now(c->host->loop);
    if (rc >= 0)
        return true;
    if (err == sg_response_file_shrank)
        sg_exchange_log(&c->x, SG_LOG_ERROR, "sendfile target shrank while being sent, closing");
    else if (err == sg_response_sendfile_failed)
        sg_log_debug(errno, "sendfile to %s failed, closing", c->client.peer);
    else if (err == sg_response_file_read_failed)
        sg_exchange_log(&c->x, SG_LOG_ERROR, "reading the sendfile target failed: %s, closing",
                        strerror(errno));
    else
        sg_log_debug(errno, "write to %s failed, closing", c->client.peer);
    sg_conn_close(c);
    return false;
}

static void conn_watch(sg_conn *c);

static inline bool to_client(const sg_conn *c)
{
    return sg_response_pending(&c->x.resp);
}

static void conn_run(sg_conn *c)
{
    for (;;) {
        if (c->state == SG_CONN_CLOSING)
            return;
        bool progress = conn_parse(c);
        if (c->state == SG_CONN_CLOSING || (to_client(c) && !conn_flush(c)))
            return;
        sg_exchange_reap(&c->x);
        if (c->x.resp.done && c->x.resp.out.len == 0 && c->x.resp.pipe.len == 0) {
            finish_request(c);
            if (c->state == SG_CONN_CLOSING)
                return;
            if (c->state == SG_CONN_LINGER)
                break;
            progress = true;
        }
        if ((c->flags & SG_CF_READ_EOF) && c->state == SG_CONN_READ_HEAD) {
            if (c->in.len == 0 || !progress) {
                if (c->http.head_bytes || c->in.len)
                    sg_log_debug(0, "%s closed in the middle of a request head", c->client.peer);
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
    SG_TIMER_BACKEND,       /* connect or backend progress (sg_exchange_deadline) */
    SG_TIMER_LINGER,        /* draining an unread body after the response: SG_LINGER_TIME */
    SG_TIMER_TLS_HANDSHAKE  /* the TLS handshake has not completed: timeouts.tls_handshake */
};

static ev_tstamp conn_deadline(sg_conn *c, enum sg_conn_timer *what)
{
    const sg_config *cfg = c->x.cfg ? c->x.cfg : sg_host_config(c->host);
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
    } else if (!c->x.rb.complete && c->x.req.has_body && ev_is_active(&c->rio)) {
        CONSIDER(c->t_read + cfg->timeouts.client_body, SG_TIMER_CLIENT_BODY);
    }
    if ((c->flags & SG_CF_TLS) && !c->client.tls && cfg->timeouts.tls_handshake > 0 &&
        !sg_tls_established(&c->tr))
        CONSIDER(c->t_accept + cfg->timeouts.tls_handshake, SG_TIMER_TLS_HANDSHAKE);
    if (to_client(c))
        CONSIDER(c->t_write + cfg->timeouts.send, SG_TIMER_SEND);
    if (c->x.phase == SG_X_PROXY) {
        ev_tstamp u = sg_exchange_deadline(&c->x);
        CONSIDER(u, SG_TIMER_BACKEND);
    }
#undef CONSIDER
    return d;
}

static void conn_watch(sg_conn *c)
{
    struct ev_loop *loop = c->host->loop;
    bool want_read = false;
    bool eof = c->flags & SG_CF_READ_EOF;
    switch (c->state) {
    case SG_CONN_READ_HEAD:
        want_read = c->in.len < SG_IN_MAX && !eof;
        break;
    case SG_CONN_LINGER:
        want_read = !eof;
        break;
    case SG_CONN_REQUEST:
        if (c->x.phase == SG_X_SPOOL)
            want_read = !eof;
        else if (c->x.req.has_body && !c->x.rb.complete)
            want_read = !eof && c->in.len < SG_IN_MAX &&
                        (c->x.rb.discard ||
                         (c->x.phase == SG_X_PROXY && c->x.rb.buf.len < SG_BODY_MAX));
        else /* stay subscribed: pipelined bytes wait in `in`, and no epoll_ctl per request */
            want_read = !eof && c->in.len < SG_IN_MAX;
        break;
    case SG_CONN_CLOSING:
        break;
    }
    set_io(loop, &c->rio, want_read);
    if (want_read && sg_transport_pending(&c->tr)) /* TLS: bytes the fd will not signal */
        ev_feed_event(loop, &c->rio, EV_READ);
    /* TLS: a read may wait for the socket to become writable (its handshake's output) */
    set_io(loop, &c->wio,
           to_client(c) ||
               (want_read && (c->flags & SG_CF_TLS) && sg_tls_read_wants_write(&c->tr)));
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
        sg_log_debug(0, "%s: keep-alive timeout, closing", c->client.peer);
        sg_conn_close(c);
        return;
    case SG_TIMER_CLIENT_HEADER:
        if (c->http.head_bytes == 0 && c->in.len == 0) {
            sg_log_debug(0, "%s: no request within client_header timeout, closing", c->client.peer);
            sg_conn_close(c);
            return;
        }
        sg_log_info(0, "%s: request head not received within timeouts.client_header, 408",
                    c->client.peer);
        c->x.close_after = true;
        sg_exchange_error(&c->x, 408, "client header timeout");
        break;
    case SG_TIMER_CLIENT_BODY:
        sg_exchange_log(&c->x, SG_LOG_INFO,
                        "request body stalled longer than timeouts.client_body, 408");
        c->x.close_after = true;
        sg_exchange_error(&c->x, 408, "client body timeout");
        break;
    case SG_TIMER_SEND:
        sg_log_info(0, "%s: client did not accept data within timeouts.send, closing",
                    c->client.peer);
        sg_conn_close(c);
        return;
    case SG_TIMER_BACKEND:
        sg_exchange_timeout(&c->x);
        break;
    case SG_TIMER_LINGER:
        sg_conn_close(c);
        return;
    case SG_TIMER_TLS_HANDSHAKE:
        sg_log_info(0, "%s: TLS handshake not completed within timeouts.tls_handshake, closing",
                    c->client.peer);
        sg_conn_close(c);
        return;
    case SG_TIMER_NONE:
        break;
    }
    conn_run(c);
}

/* The handshake is over: what it negotiated becomes the client's (variables, req.tls). */
static void tls_up(sg_conn *c)
{
    c->tls_info = sg_xmalloc(sizeof *c->tls_info);
    sg_tls_get_info(&c->tr, c->tls_info);
    c->client.tls = c->tls_info;
    bool first;
    bool ktls = sg_tls_settle(&c->tr, &first);
    c->x.resp.can_splice = (sg_transport_caps(&c->tr) & SG_TRANSPORT_SPLICE) != 0;
    if (first)
        sg_log_info(0, "TLS on %s: %s", c->listen_text,
                    ktls ? "kernel TLS, files and large bodies go out by sendfile and splice"
                         : "no kernel TLS (it needs a kernel with CONFIG_TLS), files and large "
                           "bodies are encrypted by SSL_write from a buffer");
    sg_log_debug(0, "%s: %s %s%s%s", c->client.peer, c->tls_info->protocol, c->tls_info->cipher,
                 c->tls_info->sni[0] ? ", SNI " : "", c->tls_info->sni);
}

/*
 * Plain HTTP on a TLS port: answered in plaintext, as nginx does, since the client cannot
 * read anything else. What it sent is drained first: closing with unread bytes resets the
 * connection, and the reset may destroy the answer.
 */
static void plain_http_answer(sg_conn *c)
{
#define PLAIN_BODY "The plain HTTP request was sent to HTTPS port\n"
    _Static_assert(sizeof PLAIN_BODY - 1 == 46, "the Content-Length below");
    static const char msg[] = "HTTP/1.1 400 Bad Request\r\nServer: " SG_SOFTWARE
                              "\r\nContent-Type: text/plain\r\nContent-Length: 46\r\n"
                              "Connection: close\r\n\r\n" PLAIN_BODY;
#undef PLAIN_BODY
    int fd = sg_transport_fd(&c->tr);
    char sink[4096];
    for (int i = 0; i < 16 && recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0; i++)
        ;
    if (send(fd, msg, sizeof msg - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        sg_log_debug(errno, "%s: cannot answer plain HTTP on the TLS port", c->client.peer);
    shutdown(fd, SHUT_WR);
}

/*
 * A TLS read failed. A failed handshake is the client's business: one info line with
 * OpenSSL's reason, never an error. Returns true when the connection was closed here.
 */
static bool tls_failed(sg_conn *c)
{
    bool plain = false;
    const char *why = sg_tls_failure(&c->tr, &plain);
    if (plain) {
        sg_log_info(0, "%s: plain HTTP request on the TLS port %s, 400", c->client.peer,
                    c->listen_text);
        plain_http_answer(c);
        sg_conn_close(c);
        return true;
    }
    if (!c->client.tls) {
        sg_log_info(0, "%s: TLS handshake failed: %s", c->client.peer, why ? why : strerror(errno));
        sg_conn_close(c);
        return true;
    }
    if (why)
        sg_log_info(0, "%s: TLS error: %s, closing", c->client.peer, why);
    return false;
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
    if (c->x.rb.raw && !c->x.rb.complete && c->in.len == 0 && c->x.phase == SG_X_PROXY &&
        !c->x.rb.discard) {
        ssize_t r = read_raw_body(c);
        if (r == SG_AGAIN || r == SG_DECLINED)
            return;
        if (r <= 0) {
            if (r == SG_ERR)
                sg_log_debug(errno, "read from %s failed", c->client.peer);
            c->flags |= SG_CF_READ_EOF;
            sg_exchange_log(&c->x, SG_LOG_INFO,
                            "client closed the connection before the request body was complete");
            sg_conn_close(c);
            return;
        }
        sg_exchange_pump(&c->x);
        conn_run(c);
        return;
    }
    /* read on the stack and keep only what arrived: an idle keep-alive connection then
     * holds a few hundred bytes, not a 16 KiB read buffer (10,000 idle clients: MBs, not GBs) */
    char chunk[16384];
    ssize_t n = sg_transport_read(&c->tr, chunk, sizeof chunk);
    if (c->flags & SG_CF_TLS) {
        if (n > 0 && !c->client.tls)
            tls_up(c);
        else if (n == SG_ERR && tls_failed(c))
            return;
        else if (n == SG_AGAIN && sg_tls_read_wants_write(&c->tr))
            conn_watch(c); /* the handshake waits for the socket to take its bytes */
    }
    if (n == SG_AGAIN)
        return;
    bool head_first = n > 0 && c->state == SG_CONN_READ_HEAD && c->in.len == 0 &&
                      c->http.head_bytes == 0;
    if (n > 0)
        sg_buf_append(&c->in, chunk, (size_t)n);
    if (head_first)
        head_begin(c);
    if (n == (ssize_t)sizeof chunk || sg_transport_pending(&c->tr))
        c->flags |= SG_CF_IN_MORE;
    else
        c->flags &= ~SG_CF_IN_MORE;
    if (n == SG_ERR || n == 0) {
        if (n == SG_ERR)
            sg_log_debug(errno, "read from %s failed", c->client.peer);
        c->flags |= SG_CF_READ_EOF;
        bool request_whole = (c->x.phase == SG_X_PROXY || c->x.phase == SG_X_LOCAL) &&
                             (!c->x.req.has_body || c->x.rb.complete);
        if (n == 0 && request_whole) {
            /* a half-close after a complete request still gets its answer */
            c->x.close_after = true;
        } else if (c->state != SG_CONN_READ_HEAD || n == SG_ERR) {
            /* the client went away mid-request (or reset): nothing left to answer */
            if (c->x.phase == SG_X_PROXY || c->x.phase == SG_X_SPOOL)
                sg_exchange_log(
                    &c->x, SG_LOG_INFO,
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
    SG_UNUSED(revents);
    if ((c->flags & SG_CF_TLS) && sg_tls_read_wants_write(&c->tr))
        ev_feed_event(loop, &c->rio, EV_READ);
    if (!conn_flush(c))
        return;
    conn_run(c); /* conn_watch re-arms the backend read once `out` has room again */
}

/* ---- what the exchange asks of its carrier ---- */

static sg_conn *conn_of(sg_exchange *x)
{
    return SG_CONTAINER_OF(x, sg_conn, x);
}

static void x_progress(sg_exchange *x)
{
    conn_run(conn_of(x));
}

static void x_abort(sg_exchange *x)
{
    sg_conn_close(conn_of(x));
}

/* The parser paused at the end of the head with its final LF unread: not a body byte. */
static void x_prefetch_body(sg_exchange *x)
{
    sg_conn *c = conn_of(x);
    if (c->in.len && sg_buf_head(&c->in)[0] == '\n')
        sg_buf_consume(&c->in, 1);
    prefetch_body(c);
}

static const sg_exchange_ops exchange_ops = {
    .on_progress = x_progress,
    .on_abort = x_abort,
    .prefetch_body = x_prefetch_body,
};

sg_conn *sg_conn_new(sg_conn_host *host, int fd, const struct sockaddr *peer, socklen_t peerlen,
                     const char *listen_text, sg_tls_ctx *tls, bool redirect_https)
{
    SG_UNUSED(peerlen);
    sg_conn *c = sg_xcalloc(1, sizeof *c);
    sg_client *cl = &c->client;
    cl->redirect_https = redirect_https;
    if (tls) {
        c->flags |= SG_CF_TLS;
        if (sg_tls_accept(&c->tr, fd, tls) != SG_OK) /* its first read fails, and closes */
            sg_log_error(0, "cannot start a TLS session for a client on %s", listen_text);
    } else {
        sg_transport_init_plain(&c->tr, fd);
    }
    c->host = host;
    c->listen_text = listen_text;
    format_addr(peer, cl->remote_addr, sizeof cl->remote_addr, &cl->remote_port);
    if (peer->sa_family == AF_INET6)
        snprintf(cl->peer, sizeof cl->peer, "[%s]:%d", cl->remote_addr, cl->remote_port);
    else if (peer->sa_family == AF_INET)
        snprintf(cl->peer, sizeof cl->peer, "%s:%d", cl->remote_addr, cl->remote_port);
    else
        snprintf(cl->peer, sizeof cl->peer, "unix:");
    struct sockaddr_storage local;
    socklen_t llen = sizeof local;
    if (getsockname(fd, (struct sockaddr *)&local, &llen) == 0) {
        if (local.ss_family == AF_UNIX) {
            snprintf(cl->server_addr, sizeof cl->server_addr, "%s", listen_text);
            cl->server_port = 0;
        } else {
            format_addr((struct sockaddr *)&local, cl->server_addr, sizeof cl->server_addr,
                        &cl->server_port);
        }
    }
    sg_buf_init(&c->in);
    sg_exchange_init(&c->x, host, cl, &exchange_ops);
    c->x.resp.can_splice = (sg_transport_caps(&c->tr) & SG_TRANSPORT_SPLICE) != 0;
    const sg_config *cfg = sg_host_config(host);
    sg_http_init(&c->http, cfg->limits.header_bytes, cfg->limits.headers, on_body, c);
    struct ev_loop *loop = host->loop;
    ev_io_init(&c->rio, on_readable, fd, EV_READ);
    ev_io_init(&c->wio, on_writable, fd, EV_WRITE);
    ev_init(&c->timer, on_timer);
    start_head(c);
    /* the first request starts at the accept, and client_header counts from it */
    c->t_head = c->x.t_start = ev_now(loop);
    c->t_write = c->t_accept = ev_now(loop);
    conn_watch(c);
    return c;
}

void sg_conn_close(sg_conn *c)
{
    if (c->state == SG_CONN_CLOSING)
        return;
    struct ev_loop *loop = c->host->loop;
    if (c->x.cfg && c->state != SG_CONN_LINGER)
        sg_exchange_end(&c->x);
    else
        sg_exchange_abandon(&c->x);
    ev_io_stop(loop, &c->rio);
    ev_io_stop(loop, &c->wio);
    ev_timer_stop(loop, &c->timer);
    sg_transport_close(&c->tr);
    c->state = SG_CONN_CLOSING;
    c->host->ops->conn_closed(c->host, c);
}

void sg_conn_free(sg_conn *c)
{
    if (!c)
        return;
    sg_buf_free(&c->in);
    sg_exchange_free(&c->x);
    if (c->tls_info) {
        sg_tls_info_free(c->tls_info);
        free(c->tls_info);
    }
    free(c);
}

void sg_conn_shutdown(sg_conn *c)
{
    if (c->state == SG_CONN_READ_HEAD && c->http.head_bytes == 0 && c->in.len == 0)
        sg_conn_close(c);
}
