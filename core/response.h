/*
 * response.h: the HTTP response writer of one connection. It owns the output buffer, the
 * status line, the headers it is given, the framing (Content-Length, chunked, or until the
 * connection closes) and the body sources: memory bytes, a splice pipe, a file (sendfile).
 * The "no body" rule (1xx, 204, 304, HEAD) is applied here and nowhere else. It does not
 * decide keep-alive, does not know the backend, and never logs: flush errors come back as
 * a static string with errno kept.
 */
#ifndef SG_RESPONSE_H
#define SG_RESPONSE_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "buf.h"
#include "pipe.h"
#include "request.h"
#include "transport.h"
#include "util.h"

/*
 * Embedded in the connection (the hot path reads its fields inline). Fields other than
 * `out`, `pipe` and `can_splice` describe one response and are reset by sg_response_reset.
 */
typedef struct sg_response {
    sg_buf out;            /* owned: bytes for the client (heads, framed body bytes) */
    sg_pipe pipe;          /* owned: body bytes for the client after `out` (splice); opened
                              only for a transport with SG_TRANSPORT_SPLICE */
    const sg_request *req; /* borrowed: the request answered (method, HTTP version) */
    bool can_splice;       /* the owner's transport has SG_TRANSPORT_SPLICE: a pipe may be used */
    int status;            /* final status, 0 until one began */
    bool started;          /* a final head was begun: an error can only close now */
    bool done;             /* nothing more will be appended */
    bool chunked;          /* body framed as chunks (HTTP/1.1, no length) */
    bool until_close;      /* body ends when the connection closes (HTTP/1.0, no length) */
    bool no_body;          /* the rule says no body bytes may follow the head */
    int64_t remaining;     /* Content-Length bytes still expected, -1 if none */
    uint64_t bytes_out;    /* body bytes given to the client, for the access log */
    int file_fd;           /* owned: the file body (X-Sendfile), -1 if none */
    off_t file_off;
    uint64_t file_left;
} sg_response;

/** Room left behind the data for the in-place chunk-size line (sg_response_read). */
#define SG_CHUNK_ROOM 12
/** At most this many file bytes per flush (see sg_response_flush). */
#define SG_SENDFILE_TURN (2 * 1024 * 1024)
/** File bytes read into `out` at a time for a transport without sendfile: one TLS record. */
#define SG_FILE_PIECE (16 * 1024)

/** Sets up a writer for answers to `req` (borrowed, outlives the writer). */
void sg_response_init(sg_response *r, const sg_request *req);
/** Per response: closes a file body, forgets every per-response field; `out`, `pipe` stay. */
static inline void sg_response_reset(sg_response *r)
{
    if (r->file_fd >= 0)
        close(r->file_fd);
    r->file_fd = -1;
    r->status = 0;
    r->started = r->done = r->chunked = r->until_close = r->no_body = false;
    r->remaining = -1;
    r->bytes_out = 0;
    r->file_off = 0;
    r->file_left = 0;
}
/** Releases everything (the pipe is closed, not pooled: give it back first if wanted). */
void sg_response_free(sg_response *r);

/**
 * Begins a head with the status line "HTTP/1.1 <status> <reason>" (reason NULL: the
 * standard phrase). A 1xx begins an interim head, ended by sg_response_end_interim; any
 * other status begins the final response and decides whether body bytes may follow.
 */
void sg_response_begin(sg_response *r, int status, const char *reason, size_t reason_len);
/** Appends one header line; callers never add Content-Length or Transfer-Encoding. */
void sg_response_add_header(sg_response *r, const char *name, size_t nlen, const char *value,
                            size_t vlen);
/** Appends a complete header line ("Name: value\r\n") the caller built. */
static inline void sg_response_add_raw(sg_response *r, const char *line, size_t len)
{
    sg_buf_append(&r->out, line, len);
}
/** Ends an interim (1xx) head. */
void sg_response_end_interim(sg_response *r);
/**
 * Ends the final head. First the framing header: content_length >= 0 frames by length; -1
 * means "until the source ends": chunked for HTTP/1.1, until close for HTTP/1.0 (which
 * rules keep-alive out). 1xx, 204 and 304 get no framing header at all and no body; a HEAD
 * response keeps its length. Then `extra` (complete header lines, may be empty), the
 * Connection header ("keep-alive" only to an HTTP/1.0 client, "close" when the connection
 * will not be kept), the Date header (`date`, the cached value) and the blank line.
 * `keep_alive` is the caller's wish; returns whether the connection is kept after all.
 */
bool sg_response_end_head(sg_response *r, int64_t content_length, const char *extra,
                          size_t extra_len, bool keep_alive, const char *date);

/** Body bytes from memory, framed; past the announced length they are dropped. */
void sg_response_body(sg_response *r, const char *data, size_t len);
/**
 * Reads body bytes from `fd` straight into `out` (at most `room`, and never past the
 * announced length), chunk-framed in place when chunked: the read lands SG_CHUNK_ROOM
 * bytes behind the tail and slides next to its size line. Returns the body bytes read
 * (> 0), 0 on EOF, SG_AGAIN, or SG_ERR (errno set).
 */
static inline ssize_t sg_response_read(sg_response *r, int fd, size_t room)
{
    ssize_t n;
    if (r->remaining >= 0 && (uint64_t)room > (uint64_t)r->remaining)
        room = (size_t)r->remaining;
    if (r->chunked) { /* inline: the hot path of a length-less backend answer */
        sg_buf_reserve(&r->out, room + SG_CHUNK_ROOM + 4);
        char *t = sg_buf_tail(&r->out);
        do
            n = read(fd, t + SG_CHUNK_ROOM, room);
        while (n < 0 && errno == EINTR);
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? SG_AGAIN : SG_ERR;
        if (n > 0) { /* "<hex size>\r\n" in front, then the data slid next to it */
            char hdr[24];
            size_t hl = sg_fmt_u64(hdr, (unsigned long long)n, 16);
            hdr[hl++] = '\r';
            hdr[hl++] = '\n';
            memmove(t + hl, t + SG_CHUNK_ROOM, (size_t)n);
            memcpy(t, hdr, hl);
            memcpy(t + hl + n, "\r\n", 2);
            r->out.len += hl + (size_t)n + 2;
            r->bytes_out += (uint64_t)n;
        }
        return n;
    }
    n = sg_buf_read(&r->out, fd, room);
    if (n > 0) {
        if (r->remaining >= 0)
            r->remaining -= n;
        r->bytes_out += (uint64_t)n;
    }
    return n;
}
/**
 * Splices up to `max` body bytes from `fd` into the open pipe (a sized response only).
 * Returns bytes (> 0), 0 on EOF, SG_AGAIN, SG_ERR (errno set; EINVAL with an empty pipe:
 * the socket type does not splice, close the pipe and use sg_response_read).
 */
ssize_t sg_response_splice(sg_response *r, int fd, size_t max);
/**
 * Takes `fd` (owned from now) as the body: `len` bytes from `off`, sent by sendfile, or read
 * into `out` piece by piece when the transport cannot sendfile (TLS).
 */
void sg_response_set_file(sg_response *r, int fd, off_t off, uint64_t len);
/**
 * The source ended. `clean`: its end was seen. A response whose announced length was not
 * reached, or a length-less one that did not end cleanly, is cut: SG_ERR, and the caller
 * must close the connection without completing it (a cut body must never look whole).
 * Otherwise the last chunk is written if chunked; SG_OK. Either way the response is done.
 */
static inline int sg_response_end(sg_response *r, bool clean)
{
    r->done = true;
    if (r->remaining > 0 || (r->remaining < 0 && !clean))
        return SG_ERR;
    if (r->chunked)
        sg_buf_append(&r->out, "0\r\n\r\n", 5);
    return 0;
}

/** Response bytes still on their way to the client: buffered, piped or in the file. */
static inline bool sg_response_pending(const sg_response *r)
{
    return r->out.len || r->pipe.len || r->file_left;
}

/** Why a flush failed (static strings, compare by address). */
extern const char sg_response_write_failed[], sg_response_file_shrank[],
    sg_response_sendfile_failed[], sg_response_file_read_failed[];
/**
 * Writes `out`, then the pipe, then up to SG_SENDFILE_TURN bytes of the file body to the
 * client transport `t` (a client that reads as fast as the kernel sends must not keep the
 * loop to itself). The file goes by sendfile when `t` has SG_TRANSPORT_SENDFILE, else
 * through `out` in pieces of SG_FILE_PIECE bytes. Returns 1 when any byte left, 0 when none
 * could, or SG_ERR with *err one of the strings above (errno set except for a shrunk file).
 * Bytes may still be pending after 1.
 */
int sg_response_flush(sg_response *r, sg_transport *t, const char **err);

#endif
