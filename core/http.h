/*
 * http.h: the only user of http-parser. Feeds client bytes to the parser and turns its
 * callbacks into an sg_request plus a stream of de-chunked body bytes. It enforces the
 * head limits and the framing rules of RFC 9112 §6 (no CL+TE, one valid Content-Length,
 * chunked last), and pauses the parser at the end of each head and each message so that
 * pipelined requests stay unread until the current response is done. It never does I/O.
 */
#ifndef SG_HTTP_H
#define SG_HTTP_H

#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "request.h"

typedef void (*sg_http_body_cb)(void *ud, const char *data, size_t len);

typedef struct sg_http {
    http_parser parser;
    sg_request *req;       /* borrowed: the request being parsed */
    sg_http_body_cb on_body;
    void *ud;
    size_t header_bytes_limit, headers_limit;
    size_t head_bytes;     /* bytes consumed by the current head so far */
    int status;            /* error status decided in a callback (400/431/501) */
    const char *err;       /* static reason for `status` */
    int tok;               /* kind of the token being appended (SG_TOK_*) */
    bool head_done, msg_done;
    /* strict chunked framing, checked beside http-parser (which is lenient about it) */
    int ck_state;
    uint64_t ck_left;      /* data bytes left in the current chunk */
    unsigned ck_digits;
    bool ck_skip_lf;
    char ck_name[18];      /* the trailer field name being read, to refuse framing fields */
    size_t ck_name_len;
    bool cr_pending;
    bool too_many;         /* a header beyond limits.headers started */       /* the last head byte fed was a CR: the next must be LF */
} sg_http;

enum { SG_TOK_NONE, SG_TOK_URL, SG_TOK_FIELD, SG_TOK_VALUE };
enum { SG_HTTP_NEED_MORE = 0, SG_HTTP_HEAD = 1, SG_HTTP_DONE = 2 };

void sg_http_init(sg_http *h, size_t header_bytes, size_t headers, sg_http_body_cb on_body,
                  void *ud);
/** Starts parsing a new request into `req` (which is reset). */
void sg_http_start(sg_http *h, sg_request *req);

/**
 * Feeds `len` bytes. Returns bytes consumed (>= 0) and sets *events to a mask of
 * SG_HTTP_HEAD (the head just completed; req is filled) and SG_HTTP_DONE (the message
 * ended). On a protocol error returns SG_ERR with *status (400/413/431/501) and *err set.
 * After SG_HTTP_HEAD with a body pending, feed body bytes in whatever slices backpressure
 * allows; each consumed body byte is passed to the body callback.
 */
long sg_http_feed(sg_http *h, const char *data, size_t len, int *events, int *status,
                  const char **err);

/** Tells the parser the client closed; returns SG_ERR if a request was cut short. */
int sg_http_eof(sg_http *h);

/**
 * Points the request at a new local target (internal redirect, SPEC §7): new raw URI, path
 * and query; GET unless HEAD; no content type. The old strings stay valid in raw.
 * Returns SG_OK, or SG_ERR with *err (static) for a target that is not a clean local path.
 */
int sg_request_retarget(sg_request *r, const char *target, size_t len, const char **err);

void sg_request_init(sg_request *r);
void sg_request_free(sg_request *r);

/**
 * Decodes %XX in path[0,len) and removes dot segments, writing to out (room for len + 1).
 * Returns the new length, or -1 for a NUL byte, a bad escape, or ".." above the root.
 */
long sg_http_normalize_path(const char *path, size_t len, char *out);

#endif
