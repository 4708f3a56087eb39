/*
 * reqbody.h: the request body of one request, on its way to the backend. A sized body
 * (Content-Length) is raw: its bytes are moved from the client's buffer or socket without
 * the parser. A chunked body is decoded by the parser (http.c) and kept whole before the
 * backend is asked: in memory up to SG_SPOOL_MEM, then in an unlinked temp file. The backend
 * pumps from one source API: buffered bytes (sg_reqbody_pending) or a file range. Nothing
 * here logs; nothing here knows the connection or the backend.
 */
#ifndef SG_REQBODY_H
#define SG_REQBODY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "transport.h"

#define SG_BODY_MAX (64 * 1024)    /* request body bytes buffered towards the backend */
#define SG_SPOOL_MEM (1024 * 1024) /* chunked bodies beyond this go to a temp file */

/* Embedded in its owner (the hot path reads the flags inline). */
typedef struct sg_reqbody {
    sg_buf buf;        /* owned: body bytes for the backend (or the in-memory spool) */
    int spool_fd;      /* owned: temp file of a large chunked body, -1 if none */
    uint64_t received; /* body bytes the client sent so far */
    uint64_t left;     /* raw: bytes still to come */
    bool raw;          /* a sized body, moved without the parser */
    bool complete;     /* the whole body arrived */
    bool discard;      /* nobody takes it any more: further bytes are dropped */
} sg_reqbody;

void sg_reqbody_init(sg_reqbody *b);
void sg_reqbody_reset_slow(sg_reqbody *b);
/** Per request: closes the spool, empties the buffer (freed if a spool grew it). */
static inline void sg_reqbody_reset(sg_reqbody *b)
{
    if (b->spool_fd >= 0 || b->buf.cap > SG_BODY_MAX)
        sg_reqbody_reset_slow(b);
    sg_buf_reset(&b->buf);
    b->received = b->left = 0;
    b->raw = b->complete = b->discard = false;
}
void sg_reqbody_free(sg_reqbody *b);

/** Room left in the buffer towards the backend. */
static inline size_t sg_reqbody_room(const sg_reqbody *b)
{
    return b->buf.len < SG_BODY_MAX ? SG_BODY_MAX - b->buf.len : 0;
}

/** Starts a raw body of `len` bytes. */
static inline void sg_reqbody_start_raw(sg_reqbody *b, uint64_t len)
{
    b->raw = true;
    b->left = len;
}

/**
 * Moves raw body bytes from `in` (what arrived with the head), at most the buffer's room
 * unless discarding. Returns the bytes taken from `in`.
 */
size_t sg_reqbody_take(sg_reqbody *b, sg_buf *in);
/**
 * Reads raw body bytes from the client transport straight into the buffer, never past the
 * body's end. Returns what sg_transport_read does, or SG_DECLINED when the buffer is full.
 */
ssize_t sg_reqbody_read(sg_reqbody *b, sg_transport *t);
/**
 * Keeps `len` decoded bytes of a chunked body whole (memory, then a temp file past
 * SG_SPOOL_MEM). Returns SG_OK, or SG_ERR with *err static and errno kept: the body is
 * then discarded, and the caller answers.
 */
int sg_reqbody_spool(sg_reqbody *b, const char *data, size_t len, const char **err);
/** Appends decoded bytes of a chunked body being streamed (not spooled). */
static inline void sg_reqbody_append(sg_reqbody *b, const char *data, size_t len)
{
    sg_buf_append(&b->buf, data, len);
}

/* ---- the source the backend pumps from ---- */

/** Buffered bytes not yet sent (spooled bodies excluded: they go by sg_reqbody_file). */
static inline size_t sg_reqbody_pending(const sg_reqbody *b)
{
    return b->spool_fd < 0 ? b->buf.len : 0;
}
static inline const char *sg_reqbody_data(const sg_reqbody *b)
{
    return sg_buf_head(&b->buf);
}
/** `n` buffered bytes went out. */
static inline void sg_reqbody_sent(sg_reqbody *b, size_t n)
{
    sg_buf_consume(&b->buf, n);
}
/** The spool file (-1 if none): its bytes [0, length) are the whole body. */
static inline int sg_reqbody_file(const sg_reqbody *b)
{
    return b->spool_fd;
}
/** Drops what is buffered and spooled (the backend stopped reading, or a redirect). */
void sg_reqbody_drop(sg_reqbody *b);

#endif
