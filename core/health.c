/*
 * health.c: the probes. Each is a tiny non-blocking SCGI client driven by one io watcher and
 * one timer (the interval while idle, check.timeout while a check runs). Results go to the
 * member's shared state, so they survive a reload of an unchanged member. State changes are
 * logged once, not every interval.
 */
#include "health.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "lua_bridge.h"
#include "scgi.h"
#include "util.h"

enum probe_phase { PROBE_IDLE, PROBE_CONNECTING, PROBE_SENDING, PROBE_READING };

typedef struct probe {
    ev_timer timer;
    ev_io io;
    int fd;
    enum probe_phase phase;
    sg_buf buf;               /* owned: request, then response head */
    size_t scan;
    sg_balancer *bal;         /* borrowed from the config the set holds */
    size_t idx;
    struct ev_loop *loop;
} probe;

struct sg_health {
    struct ev_loop *loop;
    sg_config *cfg;           /* one reference */
    probe *probes;            /* owned */
    size_t n;
};

static const sg_member_check *check_of(const probe *p)
{
    return &p->bal->checks[p->idx];
}

static void probe_close(probe *p)
{
    if (p->fd >= 0) {
        ev_io_stop(p->loop, &p->io);
        close(p->fd);
        p->fd = -1;
    }
    sg_buf_reset(&p->buf);
    p->scan = 0;
    p->phase = PROBE_IDLE;
}

static void schedule(probe *p, double after)
{
    ev_timer_stop(p->loop, &p->timer);
    ev_timer_set(&p->timer, after, 0.);
    ev_timer_start(p->loop, &p->timer);
}

static void finish(probe *p, bool ok, const char *why)
{
    sg_lb_member *m = &p->bal->lb.members[p->idx];
    sg_member_state *st = m->st;
    st->last_check = ev_now(p->loop);
    if (ok && st->check_failed)
        sg_log_info(0, "health check of %s (balancer %s) passes again, back in service", m->url,
                    p->bal->name);
    else if (!ok && !st->check_failed)
        sg_log_warn(0, "health check of %s (balancer %s) failed: %s; out of service until a check passes",
                    m->url, p->bal->name, why);
    if (!ok)
        snprintf(st->last_error, sizeof st->last_error, "health check: %s", why);
    st->check_failed = !ok;
    probe_close(p);
    schedule(p, check_of(p)->interval);
}

static void build_request(probe *p)
{
    const sg_member_check *ck = check_of(p);
    const char *path = ck->path ? ck->path : "/";
    const char *q = strchr(path, '?');
    size_t plen = q ? (size_t)(q - path) : strlen(path);
    sg_scgi_vars v;
    sg_scgi_vars_init(&v);
    sg_scgi_set_str(&v, "REQUEST_METHOD", "GET");
    sg_scgi_set_str(&v, "REQUEST_URI", path);
    sg_scgi_set_str(&v, "QUERY_STRING", q ? q + 1 : "");
    sg_scgi_set(&v, "SCRIPT_NAME", 11, path, plen);
    sg_scgi_set_str(&v, "SERVER_PROTOCOL", "HTTP/1.1");
    sg_scgi_set_str(&v, "SERVER_NAME", "localhost");
    sg_scgi_set_str(&v, "SERVER_PORT", "0");
    sg_scgi_set_str(&v, "SERVER_SOFTWARE", SG_SOFTWARE);
    sg_scgi_set_str(&v, "REMOTE_ADDR", "127.0.0.1");
    sg_scgi_set_str(&v, "REMOTE_PORT", "0");
    sg_scgi_set_str(&v, "REQUEST_SCHEME", "http");
    sg_scgi_set_str(&v, "GATEWAY_INTERFACE", "CGI/1.1");
    sg_scgi_set_str(&v, "HTTP_USER_AGENT", "scgi-lua health check");
    sg_scgi_encode(&v, 0, &p->buf);
    sg_scgi_vars_free(&v);
}

static void on_probe_io(struct ev_loop *loop, ev_io *w, int revents);

static void start(probe *p)
{
    const sg_backend *be = &p->bal->backends[p->idx];
    p->fd = socket(be->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (p->fd < 0) {
        finish(p, false, strerror(errno));
        return;
    }
    build_request(p);
    schedule(p, check_of(p)->timeout);
    if (connect(p->fd, (const struct sockaddr *)&be->addr, be->addrlen) != 0 &&
        errno != EINPROGRESS) {
        finish(p, false, strerror(errno));
        return;
    }
    p->phase = PROBE_CONNECTING;
    ev_io_init(&p->io, on_probe_io, p->fd, EV_WRITE);
    ev_io_start(p->loop, &p->io);
}

static void on_probe_io(struct ev_loop *loop, ev_io *w, int revents)
{
    probe *p = SG_CONTAINER_OF(w, probe, io);
    SG_UNUSED(revents);
    if (p->phase == PROBE_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
            finish(p, false, strerror(err));
            return;
        }
        p->phase = PROBE_SENDING;
    }
    if (p->phase == PROBE_SENDING) {
        ssize_t n = sg_buf_write(&p->buf, p->fd);
        if (n == SG_ERR) {
            finish(p, false, strerror(errno));
            return;
        }
        if (p->buf.len)
            return;
        sg_buf_reset(&p->buf);
        p->phase = PROBE_READING;
        ev_io_stop(loop, &p->io);
        ev_io_set(&p->io, p->fd, EV_READ);
        ev_io_start(loop, &p->io);
        return;
    }
    ssize_t n = sg_buf_read(&p->buf, p->fd, 4096);
    if (n == SG_AGAIN)
        return;
    long end = n > 0 ? sg_cgi_head_end(sg_buf_head(&p->buf), p->buf.len, &p->scan, 16384)
                     : SG_ERR;
    if (end == SG_AGAIN)
        return;
    if (end < 0) {
        finish(p, false, n == 0 ? "closed without a response head"
                      : n < 0 ? strerror(errno) : "response head too large");
        return;
    }
    sg_cgi_head h;
    const char *err = NULL;
    if (sg_cgi_parse(sg_buf_head(&p->buf), (size_t)end, &h, &err) != SG_OK) {
        finish(p, false, err);
        return;
    }
    char why[32];
    snprintf(why, sizeof why, "status %d", h.status);
    finish(p, h.status >= 200 && h.status < 400, why);
}

static void on_probe_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    probe *p = SG_CONTAINER_OF(w, probe, timer);
    SG_UNUSED(loop);
    SG_UNUSED(revents);
    if (p->phase == PROBE_IDLE)
        start(p);
    else
        finish(p, false, "timed out");
}

sg_health *sg_health_new(struct ev_loop *loop, sg_config *cfg)
{
    size_t n = 0;
    for (size_t i = 0; i < cfg->nbalancers; i++)
        for (size_t j = 0; j < cfg->balancers[i].lb.nmembers; j++)
            n += cfg->balancers[i].checks[j].interval > 0;
    if (n == 0)
        return NULL;
    sg_health *h = sg_xcalloc(1, sizeof *h);
    h->loop = loop;
    h->cfg = sg_config_ref(cfg);
    h->probes = sg_xcalloc(n, sizeof *h->probes);
    for (size_t i = 0; i < cfg->nbalancers; i++) {
        sg_balancer *b = &cfg->balancers[i];
        for (size_t j = 0; j < b->lb.nmembers; j++) {
            if (b->checks[j].interval <= 0)
                continue;
            probe *p = &h->probes[h->n++];
            p->fd = -1;
            p->bal = b;
            p->idx = j;
            p->loop = loop;
            sg_buf_init(&p->buf);
            ev_init(&p->timer, on_probe_timer);
            /* first check soon, spread a little so many members do not probe in lockstep */
            schedule(p, 0.05 + 0.01 * (double)(h->n % 50));
        }
    }
    return h;
}

void sg_health_free(sg_health *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->n; i++) {
        probe_close(&h->probes[i]);
        ev_timer_stop(h->loop, &h->probes[i].timer);
        sg_buf_free(&h->probes[i].buf);
    }
    free(h->probes);
    sg_config_unref(h->cfg);
    free(h);
}
