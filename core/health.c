/*
 * health.c: the probes. Each is one SCGI exchange of backend.c (its socket work: connect,
 * send, read the head) plus one timer (the interval while idle, check.timeout while a check
 * runs); the response body is never read. Results go to the member's shared state, so they
 * survive a reload of an unchanged member. State changes are logged once, not every interval.
 */
#include "health.h"

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "backend.h"
#include "buf.h"
#include "log.h"
#include "lua_bridge.h"
#include "scgi.h"
#include "util.h"

typedef struct probe {
    ev_timer timer;
    sg_backend_conn b; /* the check in flight */
    bool running;      /* a check is in flight (else the timer waits for the next) */
    sg_balancer *bal;  /* borrowed from the config the set holds */
    size_t idx;
    struct ev_loop *loop;
} probe;

struct sg_health {
    struct ev_loop *loop;
    sg_config *cfg; /* one reference */
    probe *probes;  /* owned */
    size_t n;
};

static const sg_member_check *check_of(const probe *p)
{
    return &p->bal->checks[p->idx];
}

static void probe_close(probe *p)
{
    sg_backend_reset(&p->b);
    p->running = false;
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
        sg_log_warn(
            0, "health check of %s (balancer %s) failed: %s; out of service until a check passes",
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
    sg_scgi_encode(&v, 0, &p->b.req);
    sg_scgi_vars_free(&v);
}

/* ---- what the exchange reports ---- */

static probe *probe_of(sg_backend_conn *b)
{
    return SG_CONTAINER_OF(b, probe, b);
}

/* The final head decides; the body is not wanted (the exchange is closed, not relayed). */
static int on_head(sg_backend_conn *b, const sg_cgi_head *h)
{
    char why[32];
    snprintf(why, sizeof why, "status %d", h->status);
    finish(probe_of(b), h->status >= 200 && h->status < 400, why);
    return SG_DECLINED;
}

static void on_error(sg_backend_conn *b, enum sg_backend_err kind, bool replay, const char *why,
                     int err)
{
    SG_UNUSED(replay);
    if (kind == SG_BACKEND_ECLOSED)
        why = err ? strerror(err) : "closed without a response head";
    else if (kind == SG_BACKEND_ETOOLARGE)
        why = "response head too large";
    finish(probe_of(b), false, why);
}

static void on_write_closed(sg_backend_conn *b, int err)
{
    finish(probe_of(b), false, strerror(err));
}

static void on_end(sg_backend_conn *b, bool whole, bool fin, int err)
{
    /* never called: on_head never lets a body relay start */
    SG_UNUSED(b);
    SG_UNUSED(whole);
    SG_UNUSED(fin);
    SG_UNUSED(err);
}

static void on_io_done(sg_backend_conn *b)
{
    sg_backend_watch(b); /* the probe's own timer bounds the check */
}

static const sg_backend_cbs probe_cbs = {
    .on_head = on_head,
    .on_end = on_end,
    .on_error = on_error,
    .on_write_closed = on_write_closed,
    .on_io_done = on_io_done,
};

static void start(probe *p)
{
    const sg_backend *be = &p->bal->backends[p->idx];
    p->running = true;
    sg_backend_prepare(&p->b, NULL, NULL, 0);
    build_request(p);
    schedule(p, check_of(p)->timeout);
    sg_backend_connect(&p->b, (const struct sockaddr *)&be->addr, be->addrlen, false);
    if (p->running)
        sg_backend_watch(&p->b);
}

static void on_probe_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    probe *p = SG_CONTAINER_OF(w, probe, timer);
    SG_UNUSED(loop);
    SG_UNUSED(revents);
    if (!p->running)
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
            p->bal = b;
            p->idx = j;
            p->loop = loop;
            sg_backend_init(&p->b, loop, &probe_cbs);
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
        sg_backend_free(&h->probes[i].b);
    }
    free(h->probes);
    sg_config_unref(h->cfg);
    free(h);
}
