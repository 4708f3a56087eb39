/*
 * backend.c: one SCGI exchange over one socket (the contract is in backend.h). The request
 * goes out while the response comes in, so a backend that answers early (and stops reading)
 * still has its answer relayed. A full response writer pauses reads; it is the client that
 * is slow then. Nothing here logs or knows the connection: every outcome is a callback.
 */
#include "backend.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/sendfile.h>
#include <sys/uio.h>
#include <unistd.h>

#include "util.h"

#define SG_XSTR(x) #x
#define SG_STR(x) SG_XSTR(x)

static void on_read(struct ev_loop *loop, ev_io *w, int revents);
static void on_write(struct ev_loop *loop, ev_io *w, int revents);

void sg_backend_init(sg_backend_conn *b, struct ev_loop *loop, const sg_backend_cbs *cbs)
{
    *b = (sg_backend_conn){ .fd = -1, .phase = SG_UP_IDLE, .loop = loop, .cbs = cbs };
    sg_buf_init(&b->req);
    sg_buf_init(&b->head);
    ev_init(&b->rio, on_read);
    ev_init(&b->wio, on_write);
}

void sg_backend_prepare(sg_backend_conn *b, sg_reqbody *rb, sg_response *resp, uint64_t body_len)
{
    b->rb = rb;
    b->resp = resp;
    b->body_len = body_len;
    b->body_sent = 0;
    b->head_scan = 0;
    b->interim = 0;
    b->write_closed = b->got_bytes = false;
    sg_buf_reset(&b->req);
    sg_buf_reset(&b->head);
}

void sg_backend_close_fd(sg_backend_conn *b)
{
    if (b->fd >= 0) {
        ev_io_stop(b->loop, &b->rio);
        ev_io_stop(b->loop, &b->wio);
        close(b->fd);
        b->fd = -1;
    }
}

void sg_backend_close(sg_backend_conn *b)
{
    sg_backend_close_fd(b);
    if (b->phase != SG_UP_IDLE)
        b->phase = SG_UP_DONE;
    sg_buf_reset(&b->req);
    sg_buf_reset(&b->head);
}

void sg_backend_reset(sg_backend_conn *b)
{
    sg_backend_close_fd(b);
    b->phase = SG_UP_IDLE;
    b->rb = NULL;
    b->resp = NULL;
    b->bytes_to = b->bytes_from = NULL;
    sg_buf_reset(&b->req);
    sg_buf_reset(&b->head);
    b->head_scan = 0;
    b->body_len = b->body_sent = 0;
    b->t_io = 0;
    b->write_closed = b->got_bytes = false;
    b->interim = 0;
}

void sg_backend_free(sg_backend_conn *b)
{
    sg_backend_close_fd(b);
    sg_buf_free(&b->req);
    sg_buf_free(&b->head);
}

static void stop_watchers(sg_backend_conn *b)
{
    ev_io_stop(b->loop, &b->rio);
    ev_io_stop(b->loop, &b->wio);
}

static void fail(sg_backend_conn *b, enum sg_backend_err kind, bool replay, const char *why,
                 int err)
{
    stop_watchers(b);
    b->cbs->on_error(b, kind, replay, why, err);
}

void sg_backend_connect(sg_backend_conn *b, const struct sockaddr *addr, socklen_t addrlen,
                        bool nodelay)
{
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        b->cbs->on_error(b, SG_BACKEND_ESOCKET, false, strerror(e), e);
        return;
    }
    if (nodelay) {
        /* the netstring alone goes out in one write; a streamed body may end in a small
         * segment that Nagle would hold back */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    b->fd = fd;
    b->phase = SG_UP_CONNECTING;
    b->t_io = ev_now(b->loop);
    ev_io_set(&b->rio, fd, EV_READ);
    ev_io_set(&b->wio, fd, EV_WRITE);
    if (connect(fd, addr, addrlen) != 0) {
        if (errno != EINPROGRESS) {
            int e = errno;
            fail(b, SG_BACKEND_ECONNECT, true,
                 e == EAGAIN ? "the backend's listen queue is full" : strerror(e), e);
            return;
        }
        /* on loopback the handshake is usually done already: try to send right away and
         * only wait for writability if the kernel says so (saves a loop turn) */
    } else {
        b->phase = SG_UP_SENDING;
    }
    sg_backend_pump(b);
}

/* Sends netstring and body bytes while the socket takes them. */
void sg_backend_pump(sg_backend_conn *b)
{
    if ((b->phase != SG_UP_SENDING && b->phase != SG_UP_CONNECTING) || b->write_closed)
        return;
    sg_reqbody *rb = b->rb;
    for (;;) {
        ssize_t n;
        size_t pending = rb ? sg_reqbody_pending(rb) : 0;
        if (b->req.len || pending) {
            struct iovec iov[2];
            int cnt = 0;
            if (b->req.len)
                iov[cnt++] = (struct iovec){ sg_buf_head(&b->req), b->req.len };
            if (pending)
                iov[cnt++] = (struct iovec){ (void *)sg_reqbody_data(rb), pending };
            struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)cnt };
            n = sendmsg(b->fd, &mh, MSG_NOSIGNAL);
            if (n > 0) {
                if (b->bytes_to)
                    *b->bytes_to += (uint64_t)n;
                size_t k = (size_t)n, from_req = k < b->req.len ? k : b->req.len;
                sg_buf_consume(&b->req, from_req);
                k -= from_req;
                if (k)
                    sg_reqbody_sent(rb, k);
                b->body_sent += k;
            }
        } else if (rb && sg_reqbody_file(rb) >= 0 && b->body_sent < b->body_len) {
            off_t off = (off_t)b->body_sent;
            n = sendfile(b->fd, sg_reqbody_file(rb), &off, (size_t)(b->body_len - b->body_sent));
            if (n > 0) {
                b->body_sent += (uint64_t)n;
                if (b->bytes_to)
                    *b->bytes_to += (uint64_t)n;
            }
        } else {
            break;
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return; /* still connecting, or the socket buffer is full */
            int e = errno;
            if (b->phase == SG_UP_CONNECTING) {
                /* the connect itself failed: nothing was sent, another member may serve */
                fail(b, SG_BACKEND_ECONNECT, true, strerror(e), e);
                return;
            }
            b->write_closed = true;
            b->cbs->on_write_closed(b, e);
            return;
        }
        if (b->phase == SG_UP_CONNECTING)
            b->phase = SG_UP_SENDING;
        b->t_io = ev_now(b->loop);
    }
    if (b->phase == SG_UP_CONNECTING)
        return; /* nothing to send cannot happen: the netstring is always there */
    /* everything sent: half-close is not used, some SCGI servers treat it as abort */
    if (b->req.len == 0 && b->body_sent >= b->body_len && b->phase == SG_UP_SENDING)
        b->phase = SG_UP_HEAD;
}

static void on_write(struct ev_loop *loop, ev_io *w, int revents)
{
    sg_backend_conn *b = SG_CONTAINER_OF(w, sg_backend_conn, wio);
    SG_UNUSED(loop);
    SG_UNUSED(revents);
    /* a finished connect shows up as writability; pump sends, or reports why it failed */
    sg_backend_pump(b);
    b->cbs->on_io_done(b);
}

/* ---- the response ---- */

/*
 * The body ended. `clean`: its end was seen (the announced length reached, or a FIN);
 * otherwise the backend reset (errno `err`), or our own send to it had failed, which only a
 * reset causes, so a later EOF proves nothing. The socket is closed by the owner after the
 * client write: the FIN exchange then costs the client no latency.
 */
static void finish(sg_backend_conn *b, bool clean, int err)
{
    bool whole = sg_response_end(b->resp, clean) == SG_OK;
    stop_watchers(b);
    b->phase = SG_UP_DONE;
    b->cbs->on_end(b, whole, clean, err);
}

/* The read side ended with read() returning `n` (0 or SG_ERR, errno set). */
static void ended(sg_backend_conn *b, ssize_t n)
{
    /* write_closed: a send to the backend failed, so its EOF follows a reset, not a FIN */
    if (n == 0)
        finish(b, !b->write_closed, 0);
    else
        finish(b, false, errno);
}

/* Bookkeeping after `n` body bytes came; true when the response is whole (and finished). */
static bool relayed(sg_backend_conn *b, size_t n)
{
    b->t_io = ev_now(b->loop);
    if (b->bytes_from)
        *b->bytes_from += (uint64_t)n;
    if (b->resp->remaining != 0)
        return false;
    finish(b, true, 0);
    return true;
}

static void read_body(sg_backend_conn *b);

/* read_body for a piped response: the bytes stay in the kernel until they reach the client */
static void splice_body(sg_backend_conn *b)
{
    sg_response *r = b->resp;
    while (sg_pipe_room(&r->pipe) > 0) {
        size_t max = sg_pipe_room(&r->pipe);
        if ((uint64_t)max > (uint64_t)r->remaining)
            max = (size_t)r->remaining;
        ssize_t n = sg_response_splice(r, b->fd, max);
        if (n == SG_AGAIN)
            return;
        if (n == SG_ERR && errno == EINVAL && r->pipe.len == 0) {
            /* a socket type splice(2) does not serve: copy through user space instead */
            sg_pipe_close(&r->pipe);
            read_body(b);
            return;
        }
        if (n == 0 || n == SG_ERR) {
            ended(b, n);
            return;
        }
        if (relayed(b, (size_t)n))
            return;
        if ((size_t)n < max)
            return; /* drained for now: epoll says when more comes, no EAGAIN probe */
    }
}

static void read_body(sg_backend_conn *b)
{
    sg_response *r = b->resp;
    if (sg_pipe_is_open(&r->pipe)) {
        splice_body(b);
        return;
    }
    while (r->out.len < SG_OUT_MAX) {
        ssize_t n = sg_response_read(r, b->fd, SG_OUT_MAX - r->out.len);
        if (n == SG_AGAIN)
            return;
        if (n == 0 || n == SG_ERR) {
            /* an early answer (the backend closes with our upload unread) also ends in a
             * reset: it arrives whole when its Content-Length was reached, which
             * relayed() saw already; a length-less one cannot be told from a cut one */
            ended(b, n);
            return;
        }
        if (relayed(b, (size_t)n))
            return;
    }
}

/*
 * Acts on the complete head in head[0, head_scan). Returns SG_OK when the body relay
 * starts, SG_AGAIN after an interim head (the next head follows in `head`), or SG_ERR when
 * the exchange is over (an error reported, or the owner answered otherwise).
 */
static int got_head(sg_backend_conn *b)
{
    sg_cgi_head h;
    const char *err = NULL;
    if (sg_cgi_parse(sg_buf_head(&b->head), b->head_scan, &h, &err) != SG_OK) {
        fail(b, SG_BACKEND_EBADHEAD, false, err, 0);
        return SG_ERR;
    }
    if (h.status == 101) {
        /* SCGI has no way to hand the connection over: an Upgrade cannot be relayed */
        fail(b, SG_BACKEND_EBADHEAD, false, "101 Switching Protocols over SCGI", 0);
        return SG_ERR;
    }
    if (h.status < 200) {
        /* interim (RFC 9110 §15.2): capped, so that a backend cannot keep a request, and the
         * writer's buffer, growing with them */
        if (++b->interim > SG_UP_MAX_INTERIM) {
            fail(b, SG_BACKEND_EBADHEAD, false,
                 "more than " SG_STR(SG_UP_MAX_INTERIM) " interim (1xx) heads", 0);
            return SG_ERR;
        }
        if (b->cbs->on_interim)
            b->cbs->on_interim(b, &h);
        sg_buf_consume(&b->head, h.head_len);
        b->head_scan = 0;
        return SG_AGAIN;
    }
    if (b->cbs->on_head(b, &h) != SG_OK)
        return SG_ERR;
    b->phase = SG_UP_RELAY;
    return SG_OK;
}

static void read_head(sg_backend_conn *b)
{
    size_t want = SG_UP_HEAD_MAX + 1 - b->head.len;
    ssize_t n = sg_buf_read(&b->head, b->fd, want > 16384 ? 16384 : want);
    if (n == SG_AGAIN)
        return;
    if (n <= 0) {
        int e = n < 0 ? errno : 0;
        fail(b, SG_BACKEND_ECLOSED, false,
             b->head.len ? "in the middle of the response head" : "without a response", e);
        return;
    }
    b->got_bytes = true;
    b->t_io = ev_now(b->loop);
    if (b->bytes_from)
        *b->bytes_from += (uint64_t)n;
    long end;
    for (;;) { /* interim heads first, each consumed; then the final one */
        end = sg_cgi_head_end(sg_buf_head(&b->head), b->head.len, &b->head_scan, SG_UP_HEAD_MAX);
        if (end == SG_AGAIN)
            return;
        if (end == SG_ERR) {
            fail(b, SG_BACKEND_ETOOLARGE, false, "response head too large", 0);
            return;
        }
        b->head_scan = (size_t)end;
        int rc = got_head(b);
        if (rc == SG_OK)
            break;
        if (rc != SG_AGAIN)
            return;
    }
    sg_response *r = b->resp;
    if (r->remaining == 0) {
        finish(b, true, 0);
        return;
    }
    sg_response_body(r, sg_buf_head(&b->head) + end, b->head.len - (size_t)end);
    sg_buf_reset(&b->head);
    if (r->remaining == 0) {
        finish(b, true, 0);
        return;
    }
    /* a large sized body goes through a pipe, never copied into our memory; without one
     * (no descriptors, or a pipe quota) it is copied as any other */
    if (!r->chunked && r->remaining >= SG_SPLICE_MIN && b->cbs->on_big_body)
        b->cbs->on_big_body(b);
    read_body(b); /* the end is often already there: one write to the client, not two */
}

static void on_read(struct ev_loop *loop, ev_io *w, int revents)
{
    sg_backend_conn *b = SG_CONTAINER_OF(w, sg_backend_conn, rio);
    SG_UNUSED(loop);
    SG_UNUSED(revents);
    if (b->phase == SG_UP_RELAY)
        read_body(b);
    else
        read_head(b);
    b->cbs->on_io_done(b);
}

ev_tstamp sg_backend_watch(sg_backend_conn *b)
{
    if (b->fd < 0 || b->phase == SG_UP_DONE || b->phase == SG_UP_IDLE)
        return 0;
    bool want_write = b->phase == SG_UP_CONNECTING ||
                      (b->phase == SG_UP_SENDING && !b->write_closed && sg_backend_unsent(b));
    const sg_response *r = b->resp;
    bool room = !r ||
                (sg_pipe_is_open(&r->pipe) ? sg_pipe_room(&r->pipe) > 0 : r->out.len < SG_OUT_MAX);
    bool want_read = b->phase != SG_UP_CONNECTING && (b->phase != SG_UP_RELAY || room);
    if (want_write)
        ev_io_start(b->loop, &b->wio);
    else
        ev_io_stop(b->loop, &b->wio);
    if (want_read)
        ev_io_start(b->loop, &b->rio);
    else
        ev_io_stop(b->loop, &b->rio);
    if (b->phase == SG_UP_RELAY && !room)
        return 0; /* the client is the slow side; the send timeout covers it */
    if (!want_read && !want_write)
        return 0;
    return b->t_io;
}
