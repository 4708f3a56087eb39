/*
 * conn.h: one HTTP/1 client connection: an explicit state machine that reads request heads,
 * hands each request to the exchange it owns (exchange.h: one at a time), and writes
 * responses in order with keep-alive, pipelining and lingering close. One activity timer
 * per connection covers every timeout of scgi-lua.8 "Timeouts".
 */
#ifndef SG_CONN_H
#define SG_CONN_H

#include <stdbool.h>
#include <sys/socket.h>

#include "conn_host.h"
#include "tls.h"

/**
 * Takes ownership of the accepted, non-blocking `fd`; with `tls` (the listener's context, a
 * reference taken) the connection is a TLS session, else plain; `redirect_https`: its
 * listener answers every request with a redirect to https://.
 */
sg_conn *sg_conn_new(sg_conn_host *host, int fd, const struct sockaddr *peer, socklen_t peerlen,
                     const char *listen_text, sg_tls_ctx *tls, bool redirect_https);
void sg_conn_free(sg_conn *c);
/** Graceful stop: closes the connection now if it is idle between requests. */
void sg_conn_shutdown(sg_conn *c);
/** Closes now (never frees: the server sweeps closed connections later). */
void sg_conn_close(sg_conn *c);
/** For the server's connection list. */
sg_conn *sg_conn_next(sg_conn *c);
void sg_conn_link(sg_conn *c, sg_conn **head);
void sg_conn_unlink(sg_conn *c, sg_conn **head);

#endif
