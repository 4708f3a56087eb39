/*
 * http.h: the only user of http-parser. Feeds client bytes to the parser and turns its
 * callbacks into an sg_request plus a stream of de-chunked body bytes. It enforces the
 * head limits (414/431), the framing rules of RFC 9112 §6 (no CL+TE, one valid
 * Content-Length, chunked last, no Transfer-Encoding in HTTP/1.0, no CONNECT), field syntax
 * (token names, no obs-fold, OWS stripped), Host and the request-target (origin-form or an
 * http(s) absolute-form whose authority wins), and builds the routing path. It pauses the
 * parser at the end of each head and each message so that pipelined requests stay unread
 * until the current response is done. It never does I/O and never logs.
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
    sg_request *req; /* borrowed: the request being parsed */
    sg_http_body_cb on_body;
    void *ud;
    size_t header_bytes_limit, headers_limit;
    size_t head_bytes; /* bytes of the current head so far (its last byte even unconsumed) */
    int status;        /* error status decided in a callback (400/431/501) */
    const char *err;   /* static reason for `status` */
    int tok;           /* kind of the token being appended (SG_TOK_*) */
    bool head_done, msg_done;
    /* strict chunked framing, checked beside http-parser (which is lenient about it) */
    int ck_state;
    uint64_t ck_left; /* data bytes left in the current chunk */
    unsigned ck_digits;
    bool ck_skip_lf;
    char ck_name[18]; /* the trailer field name being read, to refuse framing fields */
    size_t ck_name_len;
    size_t ck_line;            /* bytes of the current chunk-size line, or of the trailers */
    bool cr_pending;           /* the last head byte fed was a CR: the next must be LF */
    bool lf_pending;           /* the last head byte fed was a LF: the next may not be SP/HTAB */
    bool too_many;             /* a header beyond limits.headers started */
    bool views;                /* req's pointers are taken (the head ended or was rejected) */
    size_t path_off, path_len; /* the path inside raw (SIZE_MAX: none, means "/") */
} sg_http;

enum { SG_TOK_NONE, SG_TOK_URL, SG_TOK_FIELD, SG_TOK_VALUE };

/* The largest limits.header_bytes the config accepts (lua/scgilua/config.lua). http-parser's
 * own cap is process-global, so it is set above this once and ours is the one that answers. */
#define SG_HTTP_HEAD_MAX (1024 * 1024)
enum { SG_HTTP_NEED_MORE = 0, SG_HTTP_HEAD = 1, SG_HTTP_DONE = 2 };

void sg_http_init(sg_http *h, size_t header_bytes, size_t headers, sg_http_body_cb on_body,
                  void *ud);
/** Starts parsing a new request into `req` (which is reset). */
void sg_http_start(sg_http *h, sg_request *req);

/**
 * Feeds `len` bytes. Returns bytes consumed (>= 0) and sets *events to a mask of
 * SG_HTTP_HEAD (the head just completed; req is filled) and SG_HTTP_DONE (the message
 * ended). On a protocol error returns SG_ERR with *status (400/413/414/431/501/505) and *err
 * set; a rejected head leaves req in a defined state (see request.h). Does not log.
 * After SG_HTTP_HEAD with a body pending, feed body bytes in whatever slices backpressure
 * allows; each consumed body byte is passed to the body callback.
 */
long sg_http_feed(sg_http *h, const char *data, size_t len, int *events, int *status,
                  const char **err);

/** Tells the parser the client closed; returns SG_ERR if a request was cut short. */
int sg_http_eof(sg_http *h);

/**
 * Points the request at a new local target (internal redirect): new raw URI, path
 * and query; GET unless HEAD; no content type. The old strings stay valid in raw.
 * Returns SG_OK, or SG_ERR with *err (static) for a target that is not a clean local path.
 */
int sg_request_retarget(sg_request *r, const char *target, size_t len, const char **err);

void sg_request_init(sg_request *r);
void sg_request_free(sg_request *r);

/**
 * The routing path of path[0,len) (which starts with "/"), as nginx and Apache build it:
 * decodes %XX except %2F, which stays "%2F" (upper case) and is no separator; merges runs of
 * "/"; removes dot segments (RFC 3986 §5.2.4), so "/a/%2e%2e/b" is "/b". Writes to out
 * (room for len + 1, NUL-terminated) and sets *encoded_slash if a %2F was kept.
 * Returns the new length, or -1 for a NUL byte, a bad escape, or ".." above the root.
 */
long sg_http_normalize_path(const char *path, size_t len, char *out, bool *encoded_slash);

/**
 * Appends s[0,len) to out for a quoted access log field, as nginx escapes them: '"', '\',
 * control bytes and bytes from 0x7f up become "\xHH" (upper-case hex). Pure; does not log.
 */
void sg_http_log_escape(sg_buf *out, const char *s, size_t len);

#endif
