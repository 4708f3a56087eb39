/*
 * backend.h: one SCGI exchange over one socket. Connects without blocking (on loopback the
 * netstring usually goes out in the same turn), sends the netstring and then the request
 * body from its source (buffered bytes or the spool file), reads the CGI head (interim 1xx
 * heads first, each handed over and counted against a cap) and streams the body into the
 * response writer: chunk-framed in place, spliced through a pipe, or copied. It owns its
 * socket and watchers and reports to its owner through callbacks. It knows neither the
 * connection, nor balancers, nor what a head means (X-Sendfile, redirects, failover), and
 * it never logs: the owner logs once, with the reason it is given.
 */
#ifndef SG_BACKEND_H
#define SG_BACKEND_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "buf.h"
#include "reqbody.h"
#include "response.h"
#include "scgi.h"

/* backend response head limit (README "What the client receives") */
#define SG_UP_HEAD_MAX (16 * 1024)
/* 1xx heads a backend may send before its final head: a 100 and a few 103s is plenty */
#define SG_UP_MAX_INTERIM 8
#define SG_OUT_MAX                                                                                 \
    (128 * 1024)                  /* bytes queued for the client before backend reads pause:       \
                                     a 64 KiB body and its head fit in one read and one write */
#define SG_SPLICE_MIN (32 * 1024) /* sized bodies from this length go through a pipe */

enum sg_backend_phase {
    SG_UP_IDLE,
    SG_UP_CONNECTING, /* non-blocking connect in progress */
    SG_UP_SENDING,    /* netstring and body going out; response may already arrive */
    SG_UP_HEAD,       /* request sent, waiting for the complete response head */
    SG_UP_RELAY,      /* body bytes flowing to the response writer */
    SG_UP_DONE
};

/* Why an exchange failed before its final head (on_error). */
enum sg_backend_err {
    SG_BACKEND_ESOCKET,   /* no socket could be made (descriptors) */
    SG_BACKEND_ECONNECT,  /* socket, connect refused / failed: nothing reached the backend */
    SG_BACKEND_ECLOSED,   /* closed or reset before the head was whole */
    SG_BACKEND_ETOOLARGE, /* head beyond SG_UP_HEAD_MAX */
    SG_BACKEND_EBADHEAD   /* unparsable head, 101, or more than SG_UP_MAX_INTERIM 1xx heads */
};

typedef struct sg_backend_conn sg_backend_conn;

/*
 * The owner's side. Every callback may close the exchange, or start another on the same
 * struct (a failover): after one returns, the backend does not touch the exchange again.
 */
typedef struct sg_backend_cbs {
    /** A 1xx head (parsed, `h->head_len` bytes), before the cap was exceeded. */
    void (*on_interim)(sg_backend_conn *b, const sg_cgi_head *h);
    /**
     * The final head. SG_OK: relay the body into the writer (the owner began and ended the
     * head on it); anything else: the owner answered otherwise and closed the exchange.
     */
    int (*on_head)(sg_backend_conn *b, const sg_cgi_head *h);
    /** A sized body of SG_SPLICE_MIN or more is coming: the owner may open resp->pipe. */
    void (*on_big_body)(sg_backend_conn *b);
    /**
     * The body ended and the writer was ended (sg_response_end). `whole`: the response is
     * complete; otherwise it was cut (the announced length not reached, or a length-less body
     * whose end was not seen) and the client connection must close. `fin`: the backend closed
     * or the length was reached (not a reset, nor a failed send before); `err`: errno of a
     * failed read, else 0. The socket stays open until sg_backend_close.
     */
    void (*on_end)(sg_backend_conn *b, bool whole, bool fin, int err);
    /**
     * The exchange failed before its final head; its watchers are stopped, the socket and
     * the phase are left for the owner (sg_backend_close_fd, sg_backend_close). `replay`:
     * nothing of the request can have reached the backend (a connect failure). `why`: static
     * or strerror text; `err`: errno (0 for a close, a size or a parse error).
     */
    void (*on_error)(sg_backend_conn *b, enum sg_backend_err kind, bool replay, const char *why,
                     int err);
    /** The backend stopped reading the request (a failed send, errno `err`); not fatal. */
    void (*on_write_closed)(sg_backend_conn *b, int err);
    /** After every socket event, once the callbacks above returned (the owner's kick). */
    void (*on_io_done)(sg_backend_conn *b);
} sg_backend_cbs;

/* Embedded in its owner (watchers recovered with container_of). */
struct sg_backend_conn {
    ev_io rio, wio;
    int fd; /* owned */
    enum sg_backend_phase phase;
    struct ev_loop *loop;      /* borrowed */
    const sg_backend_cbs *cbs; /* borrowed, static */
    sg_reqbody *rb;            /* borrowed: the body source, NULL if none */
    sg_response *resp;         /* borrowed: the writer the body goes to, NULL if never relayed */
    uint64_t *bytes_to, *bytes_from; /* borrowed counters to add traffic to, NULL if none */
    sg_buf req;                      /* owned: the netstring not yet sent (the owner encodes it) */
    sg_buf head;                     /* owned: response head bytes */
    size_t head_scan;
    uint64_t body_len; /* CONTENT_LENGTH announced */
    uint64_t body_sent;
    ev_tstamp t_io;    /* last progress (connect, send or receive) */
    bool write_closed; /* backend stopped reading the request */
    bool got_bytes;    /* any response byte arrived */
    unsigned interim;  /* 1xx heads before the final one */
};

/** Sets up an idle exchange; nothing is allocated until used. */
void sg_backend_init(sg_backend_conn *b, struct ev_loop *loop, const sg_backend_cbs *cbs);
/**
 * Prepares a new exchange: forgets the previous one's progress and empties `req` for the
 * owner to encode the netstring into (body of `body_len` bytes from `rb`).
 */
void sg_backend_prepare(sg_backend_conn *b, sg_reqbody *rb, sg_response *resp, uint64_t body_len);
/**
 * Connects to `addr` and starts sending `req`. Failures come back through on_error
 * (possibly before this returns). `nodelay`: TCP_NODELAY (a TCP backend with a body).
 */
void sg_backend_connect(sg_backend_conn *b, const struct sockaddr *addr, socklen_t addrlen,
                        bool nodelay);
/** Sends netstring and body bytes while the socket takes them (more body arrived). */
void sg_backend_pump(sg_backend_conn *b);
/** Request bytes held here or in the source that the backend has not taken yet. */
static inline bool sg_backend_unsent(const sg_backend_conn *b)
{
    return b->req.len ||
           (b->rb && (b->rb->buf.len || (b->rb->spool_fd >= 0 && b->body_sent < b->body_len)));
}
/**
 * Starts and stops the watchers for the current phase; returns the deadline's origin
 * (t_io) when one applies, or 0 (idle, done, or paused on a full writer: the client is
 * then the slow side).
 */
ev_tstamp sg_backend_watch(sg_backend_conn *b);
/** Stops the watchers and closes the socket; the phase stays (the owner's failover reads it). */
void sg_backend_close_fd(sg_backend_conn *b);
/** Closes the socket and empties the buffers; an exchange that was started becomes DONE. */
void sg_backend_close(sg_backend_conn *b);
/**
 * Forgets the exchange (closing it first): progress and every borrowed pointer (the source,
 * the writer, the counters), so that nothing of one request reaches the next. The buffers'
 * memory, the loop and the callbacks stay.
 */
void sg_backend_reset(sg_backend_conn *b);
/** Frees the buffers (closes first). */
void sg_backend_free(sg_backend_conn *b);

#endif
