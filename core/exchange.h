/*
 * exchange.h: one request, from its complete head to the end of its response: the status
 * endpoint, route selection, the access hook, the SCGI variables, the backend attempts
 * behind a route (balancer member choice, failover, the head_timeout replay rule), and
 * what a backend head means (a relay, an X-Sendfile file, an internal redirect, an error),
 * with one log line per failure and the access log line at the end. It owns the request,
 * its body source and its response writer.
 *
 * It knows no HTTP/1 detail and no socket of the client: the carrier (conn.c for HTTP/1,
 * an HTTP/2 stream later) parses into `req`, feeds `rb`, writes `resp` out, and is called
 * back through sg_exchange_ops. An internal redirect is a step of the exchange: the backend
 * callback only marks it, and the exchange routes the retargeted request again once that
 * callback has returned.
 */
#ifndef SG_EXCHANGE_H
#define SG_EXCHANGE_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "buf.h"
#include "conn_host.h"
#include "lua_bridge.h"
#include "reqbody.h"
#include "request.h"
#include "response.h"
#include "scgi.h"

/* What the exchange is doing; the carrier decides its reads and writes from it. */
enum sg_exchange_phase {
    SG_X_IDLE,  /* no request yet, or between requests */
    SG_X_SPOOL, /* buffering a chunked body before the SCGI request */
    SG_X_PROXY, /* exchanging with the backend */
    SG_X_LOCAL  /* writing a response the gateway made itself */
};

typedef struct sg_exchange sg_exchange;

typedef struct sg_exchange_ops {
    /* a backend event (or a redirect step after one) moved the exchange: run the carrier */
    void (*on_progress)(sg_exchange *x);
    /* the response cannot be completed (it started, and then failed): drop the carrier,
     * which ends the exchange (sg_exchange_end) on its way */
    void (*on_abort)(sg_exchange *x);
    /* the backend is about to be connected: move body bytes the carrier already holds into
     * `rb`, so that the netstring and the first body bytes leave together */
    void (*prefetch_body)(sg_exchange *x);
} sg_exchange_ops;

/* The backend side of one request: the exchange (backend.c) and the attempts behind it. */
typedef struct sg_upstream {
    sg_backend_conn b; /* the current attempt's socket, request and response head */
    /* from here on, cleared in one memset when the request ends */
    const sg_backend *be; /* borrowed from the request's config */
    /* balancer://: the member serving this attempt, and the ones already tried */
    const sg_balancer *bal; /* borrowed from the request's config, or NULL */
    int member;             /* index into bal->lb.members, -1 if none */
    sg_member_state *st;    /* borrowed: counters of this attempt's backend, or NULL */
    int attempts;
    uint64_t tried[SG_LB_EXCLUDE_WORDS];
} sg_upstream;

/*
 * Embedded in its carrier (no allocation per request). The carrier reads `phase`,
 * `close_after`, `cfg` (the limits and timeouts of the request), `req`, `rb` and `resp`,
 * and writes `req` (its parser), `rb` (body bytes) and `t_start`; every other field is the
 * exchange's. Everything of one request is reset together by sg_exchange_end: nothing of a
 * request outlives it on the carrier.
 */
struct sg_exchange {
    sg_conn_host *host;         /* borrowed; outlives the carrier */
    const sg_client *client;    /* borrowed from the carrier */
    const sg_exchange_ops *ops; /* static */
    enum sg_exchange_phase phase;
    bool close_after;      /* the carrier must not be reused after this response */
    bool sent_continue;    /* "100 Continue" went out */
    bool redirect_pending; /* retargeted by an internal redirect: routed again by step() */
    sg_config *cfg;        /* one reference from sg_exchange_begin to sg_exchange_end */
    sg_request req;        /* owned: the request head (the carrier's parser fills it) */
    sg_reqbody rb;         /* owned: the request body on its way to the backend */
    sg_response resp;      /* owned: the response writer, its output buffer and body sources */
    sg_hook_ctx hook;
    const sg_route *route; /* borrowed from cfg */
    ev_tstamp t_start;     /* request start, for the log and the latency histogram */
    sg_upstream up;
    sg_scgi_vars vars; /* owned; reused per request */
    /* internal redirects (README "X-Sendfile and internal redirects") */
    int redirects;
    sg_buf redirect_cookies; /* owned: "Set-Cookie: …\r\n" lines kept for the final answer */
    sg_buf orig_uri;         /* owned: the client's request-target, for logs and REDIRECT_* */
    const char *orig_method; /* static */
};

void sg_exchange_init(sg_exchange *x, sg_conn_host *host, const sg_client *client,
                      const sg_exchange_ops *ops);
/** Releases everything; the exchange must have ended. */
void sg_exchange_free(sg_exchange *x);

/**
 * A complete head is in `req`: takes a reference on the config in force, then answers the
 * status endpoint, routes, runs the access hook and starts the backend, or answers itself.
 */
void sg_exchange_begin(sg_exchange *x);
/** The spooled (chunked) request body is complete: the backend exchange starts. */
void sg_exchange_body_complete(sg_exchange *x);
/** Body bytes were added to `rb`: moves them towards the backend. */
void sg_exchange_pump(sg_exchange *x);
/**
 * Answers `status` (final) with a short text body, or, if the response already started,
 * logs `cause` and aborts the carrier: a status can no longer be sent.
 */
void sg_exchange_error(sg_exchange *x, int status, const char *cause);
/** A log line carrying the client, the request and the route. */
void sg_exchange_log(sg_exchange *x, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/** Stops the backend exchange; an unsent rest of the request body is then discarded. */
void sg_exchange_abandon(sg_exchange *x);
/** The backend's deadline (connect or its timeout since the last progress), or 0. */
ev_tstamp sg_exchange_deadline(sg_exchange *x);
/** That deadline passed: fail over, answer 504, or abort a started response. */
void sg_exchange_timeout(sg_exchange *x);
/** Closes the backend socket of a finished exchange (kept open until the client write). */
void sg_exchange_reap(sg_exchange *x);
/**
 * The request is over: counts it, writes the access log line, releases what it held and
 * resets every field that described it (phase back to SG_X_IDLE).
 */
void sg_exchange_end(sg_exchange *x);
/** Between requests: gives back the per-request buffers' memory (they regrow on demand). */
void sg_exchange_shrink(sg_exchange *x);

#endif
