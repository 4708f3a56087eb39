/*
 * conn_impl.h: the sg_conn structure, shared by conn.c (client side) and upstream.c
 * (what the backend exchange means; the socket work is backend.c's) only. Everything else
 * sees sg_conn as opaque.
 */
#ifndef SG_CONN_IMPL_H
#define SG_CONN_IMPL_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "buf.h"
#include "conn.h"
#include "http.h"
#include "lua_bridge.h"
#include "pipe.h"
#include "reqbody.h"
#include "response.h"
#include "scgi.h"
#include "transport.h"

#define SG_IN_MAX (64 * 1024) /* unparsed client bytes held */
#define SG_LINGER_TIME 5.0    /* seconds to drain a client's unread body before closing */

enum sg_conn_state {
    SG_CONN_READ_HEAD,  /* waiting for or parsing a request head */
    SG_CONN_SPOOL_BODY, /* buffering a chunked body before the SCGI request */
    SG_CONN_PROXY,      /* exchanging with the backend (upstream.c) */
    SG_CONN_LOCAL,      /* writing a response the gateway made itself */
    SG_CONN_LINGER,     /* response sent, write side shut: draining an unread body */
    SG_CONN_CLOSING     /* unlinked; freed by the server's deferred sweep */
};

/* The backend side of one request: the exchange (backend.c) and the attempts behind it. */
typedef struct sg_upstream {
    sg_backend_conn b; /* the current attempt's socket, request and response head */
    /* from here on, cleared in one memset by sg_upstream_reset */
    const sg_backend *be; /* borrowed from the request's config */
    /* balancer://: the member serving this attempt, and the ones already tried */
    const sg_balancer *bal; /* borrowed from the request's config, or NULL */
    int member;             /* index into bal->lb.members, -1 if none */
    sg_member_state *st;    /* borrowed: counters of this attempt's backend, or NULL */
    int attempts;
    uint64_t tried[SG_LB_EXCLUDE_WORDS];
} sg_upstream;

/*
 * Fields that belong to one request are reset together by conn.c's end_request (borrowed
 * pointers into the request's configuration above all: nothing of a request may outlive it
 * on the connection); a new per-request field is reset there too. `up` is reset as a whole.
 */
struct sg_conn {
    ev_io rio, wio;
    ev_timer timer;
    sg_transport tr; /* owned: the client socket (plain, later TLS) */
    enum sg_conn_state state;
    sg_server *server;    /* borrowed; outlives every conn */
    sg_config *cfg;       /* one reference while a request is active */
    sg_conn *next, *prev; /* server's list */
    char peer[80];        /* "ip:port" for logs */
    char remote_addr[64];
    int remote_port;
    char server_addr[64];
    int server_port;
    const char *listen_text; /* borrowed */

    sg_http http;
    sg_request req;
    sg_hook_ctx hook;
    const sg_route *route; /* borrowed from cfg */
    sg_buf in;             /* owned: client bytes not parsed yet */
    sg_response resp;      /* owned: the response writer, its output buffer and body sources */
    sg_reqbody rb;         /* owned: the request body on its way to the backend */
    bool read_eof;         /* client half-closed */
    bool in_more;          /* the last client read filled its buffer: more is likely queued */
    bool close_after;      /* close once the response is written */
    bool sent_continue;
    unsigned requests;
    ev_tstamp t_start; /* request start: its head's first byte (accept for the first) */
    ev_tstamp t_head;  /* client_header origin: as t_start; 0 until a head byte came */
    ev_tstamp t_idle;  /* keep-alive origin: the end of the previous request */
    ev_tstamp t_read;  /* last client read progress */
    ev_tstamp t_write; /* last client write progress */
    sg_upstream up;
    sg_scgi_vars vars; /* owned; reused per request */

    /* internal redirects (README "X-Sendfile and internal redirects") */
    int redirects;
    bool redirect_pending;   /* retargeted by a redirect: sg_conn_kick routes it again */
    sg_buf redirect_cookies; /* owned: "Set-Cookie: …\r\n" lines kept for the final answer */
    sg_buf orig_uri;         /* owned: the client's request-target, for logs and REDIRECT_* */
    const char *orig_method; /* static */
};

/* conn.c services used by upstream.c */
void sg_conn_error(sg_conn *c, int status, const char *cause);
/** Ends the final head begun on c->resp: framing (response.c), then keep-alive and Date. */
void sg_conn_end_head(sg_conn *c, int64_t content_length);
void sg_conn_log_route(sg_conn *c, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/**
 * Runs the connection's state machine after a backend event (upstream.c callbacks); first
 * routes a request an internal redirect retargeted (redirect_pending).
 */
void sg_conn_kick(sg_conn *c);

/* upstream.c */
void sg_upstream_init(sg_conn *c);
/** Builds the SCGI request and connects; answers the client itself on failure. */
void sg_upstream_start(sg_conn *c);
/** Moves pending request body bytes towards the backend. */
void sg_upstream_pump(sg_conn *c);
/** Decides which backend watchers run; returns the backend deadline or 0. */
ev_tstamp sg_upstream_watch(sg_conn *c);
void sg_upstream_timeout(sg_conn *c);
void sg_upstream_close(sg_conn *c);
/** Closes the exchange and returns every field of c->up to its sg_upstream_init state. */
void sg_upstream_reset(sg_conn *c);
/** Closes the backend socket of a finished exchange (kept open until the client write). */
void sg_upstream_reap(sg_conn *c);

#endif
