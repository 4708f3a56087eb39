/*
 * response.c: the response writer (see response.h). Heads are written straight into `out`;
 * body bytes are framed as they are added, so a chunked body read from a socket costs no
 * extra copy (read behind room for the size line), a large sized body can stay in the
 * kernel (splice through a pipe) and a file goes out by sendfile. What the client transport
 * cannot do (sendfile, splice: TLS) is asked of it, never assumed. Keep-alive and logging
 * are the caller's.
 */
#include "response.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "scgi.h"
#include "util.h"

const char sg_response_write_failed[] = "write failed";
const char sg_response_file_shrank[] = "sendfile target shrank while being sent";
const char sg_response_sendfile_failed[] = "sendfile failed";
const char sg_response_file_read_failed[] = "reading the file body failed";

void sg_response_init(sg_response *r, const sg_request *req)
{
    sg_buf_init(&r->out);
    sg_pipe_init(&r->pipe);
    r->req = req;
    r->file_fd = -1;
    sg_response_reset(r);
}

void sg_response_free(sg_response *r)
{
    sg_response_reset(r);
    sg_buf_free(&r->out);
    sg_pipe_close(&r->pipe);
}

void sg_response_begin(sg_response *r, int status, const char *reason, size_t reason_len)
{
    if (status >= 200) {
        r->status = status;
        r->started = true;
        r->no_body = !sg_http_response_has_body(status, r->req->head_only);
    }
    if (!reason) {
        reason = sg_http_reason(status);
        reason_len = strlen(reason);
    }
    char *t;
    sg_buf_reserve(&r->out, 9 + 4 + reason_len + 2);
    t = sg_buf_tail(&r->out);
    memcpy(t, "HTTP/1.1 ", 9);
    t[9] = (char)('0' + status / 100);
    t[10] = (char)('0' + status / 10 % 10);
    t[11] = (char)('0' + status % 10);
    t[12] = ' ';
    memcpy(t + 13, reason, reason_len);
    memcpy(t + 13 + reason_len, "\r\n", 2);
    r->out.len += 15 + reason_len;
}

void sg_response_add_header(sg_response *r, const char *name, size_t nlen, const char *value,
                            size_t vlen)
{
    sg_buf_reserve(&r->out, nlen + vlen + 4);
    sg_buf_append(&r->out, name, nlen);
    sg_buf_append(&r->out, ": ", 2);
    sg_buf_append(&r->out, value, vlen);
    sg_buf_append(&r->out, "\r\n", 2);
}

void sg_response_end_interim(sg_response *r)
{
    sg_buf_append(&r->out, "\r\n", 2);
}

bool sg_response_end_head(sg_response *r, int64_t content_length, const char *extra,
                          size_t extra_len, bool keep_alive, const char *date)
{
    r->chunked = r->until_close = false;
    r->remaining = r->no_body ? 0 : content_length;
    if (!sg_http_status_has_body(r->status)) {
        /* no framing: the head's blank line ends the message */
    } else if (content_length >= 0) {
        char n[24];
        sg_buf_append(&r->out, "Content-Length: ", 16);
        sg_buf_append(&r->out, n, sg_fmt_u64(n, (unsigned long long)content_length, 10));
        sg_buf_append(&r->out, "\r\n", 2);
    } else if (r->no_body) {
        /* HEAD of a length-less body: nothing to announce */
    } else if (r->req->http_minor >= 1) {
        r->chunked = true;
        sg_buf_append_str(&r->out, "Transfer-Encoding: chunked\r\n");
    } else {
        r->until_close = true;
        keep_alive = false;
    }
    if (extra_len)
        sg_buf_append(&r->out, extra, extra_len);
    if (keep_alive) {
        if (r->req->http_minor == 0)
            sg_buf_append_str(&r->out, "Connection: keep-alive\r\n");
    } else {
        sg_buf_append_str(&r->out, "Connection: close\r\n");
    }
    sg_buf_append(&r->out, "Date: ", 6);
    sg_buf_append_str(&r->out, date);
    sg_buf_append(&r->out, "\r\n\r\n", 4);
    return keep_alive;
}

/* Writes the "<hex size>\r\n" that opens a chunk; returns its length (at most 18). */
static size_t chunk_line(char *out, size_t n)
{
    size_t hl = sg_fmt_u64(out, n, 16);
    out[hl++] = '\r';
    out[hl++] = '\n';
    return hl;
}

void sg_response_body(sg_response *r, const char *data, size_t len)
{
    if (r->remaining >= 0 && (uint64_t)len > (uint64_t)r->remaining)
        len = (size_t)r->remaining; /* a source sending more than it announced */
    if (len == 0)
        return;
    if (r->chunked) {
        char hex[24];
        sg_buf_append(&r->out, hex, chunk_line(hex, len));
    }
    sg_buf_append(&r->out, data, len);
    if (r->chunked)
        sg_buf_append(&r->out, "\r\n", 2);
    if (r->remaining >= 0)
        r->remaining -= (int64_t)len;
    r->bytes_out += len;
}

ssize_t sg_response_splice(sg_response *r, int fd, size_t max)
{
    if ((uint64_t)max > (uint64_t)r->remaining)
        max = (size_t)r->remaining;
    ssize_t n = sg_pipe_fill(&r->pipe, fd, max);
    if (n > 0) {
        r->remaining -= n;
        r->bytes_out += (uint64_t)n;
    }
    return n;
}

void sg_response_set_file(sg_response *r, int fd, off_t off, uint64_t len)
{
    r->file_fd = fd;
    r->file_off = off;
    r->file_left = len;
}

/* The file body is through: its descriptor goes, the response is done. */
static void file_done(sg_response *r)
{
    close(r->file_fd);
    r->file_fd = -1;
    r->done = true;
}

/* Returns 1 when bytes left, 0 when none could, SG_ERR with *err set. */
static int send_file(sg_response *r, sg_transport *t, const char **err)
{
    size_t turn = SG_SENDFILE_TURN;
    int wrote = 0;
    while (r->file_left > 0 && turn > 0) {
        size_t chunk = r->file_left > turn ? turn : (size_t)r->file_left;
        ssize_t n = sg_transport_sendfile(t, r->file_fd, &r->file_off, chunk);
        if (n > 0) {
            r->file_left -= (uint64_t)n;
            turn -= (size_t)n;
            r->bytes_out += (uint64_t)n;
            wrote = 1;
            continue;
        }
        if (n == SG_AGAIN)
            return wrote;
        /* 0: the file shrank under us; the promised length cannot be kept */
        *err = n == 0 ? sg_response_file_shrank : sg_response_sendfile_failed;
        return SG_ERR;
    }
    if (r->file_left > 0)
        return wrote; /* this turn is over; the write watcher brings the caller back */
    file_done(r);
    return wrote;
}

/*
 * send_file for a transport that cannot sendfile (TLS without kTLS): the file goes through
 * `out` one piece at a time, so memory stays bounded by the piece whatever the file's size,
 * and the same turn bounds the loop. A piece counts as given once it is in `out`, as a
 * memory body does. Called with `out` empty; returns as send_file does.
 */
static int copy_file(sg_response *r, sg_transport *t, const char **err)
{
    size_t turn = SG_SENDFILE_TURN;
    int wrote = 0;
    for (;;) {
        if (r->out.len == 0) {
            if (r->file_fd < 0 || turn == 0)
                return wrote;
            if (r->file_left == 0) {
                file_done(r);
                return wrote;
            }
            size_t piece = SG_FILE_PIECE < turn ? SG_FILE_PIECE : turn;
            if ((uint64_t)piece > r->file_left)
                piece = (size_t)r->file_left;
            sg_buf_reserve(&r->out, piece);
            ssize_t n;
            do
                n = pread(r->file_fd, sg_buf_tail(&r->out), piece, r->file_off);
            while (n < 0 && errno == EINTR);
            if (n <= 0) {
                *err = n == 0 ? sg_response_file_shrank : sg_response_file_read_failed;
                return SG_ERR;
            }
            r->out.len += (size_t)n;
            r->file_off += n;
            r->file_left -= (uint64_t)n;
            r->bytes_out += (uint64_t)n;
            turn -= (size_t)n;
            if (r->file_left == 0)
                file_done(r);
        }
        ssize_t w = sg_transport_write(t, sg_buf_head(&r->out), r->out.len);
        if (w == SG_ERR) {
            *err = sg_response_write_failed;
            return SG_ERR;
        }
        if (w <= 0)
            return wrote; /* SG_AGAIN: the rest waits in `out` for the next flush */
        sg_buf_consume(&r->out, (size_t)w);
        wrote = 1;
    }
}

int sg_response_flush(sg_response *r, sg_transport *t, const char **err)
{
    int wrote = 0;
    if (r->out.len) {
        ssize_t n = sg_transport_write(t, sg_buf_head(&r->out), r->out.len);
        if (n == SG_ERR) {
            *err = sg_response_write_failed;
            return SG_ERR;
        }
        if (n > 0) {
            wrote = 1;
            sg_buf_consume(&r->out, (size_t)n);
        }
    }
    if (r->out.len == 0 && r->pipe.len) {
        /* the pipe is opened only for a transport that splices (response.h) */
        if (!(sg_transport_caps(t) & SG_TRANSPORT_SPLICE)) {
            errno = EINVAL;
            *err = sg_response_write_failed;
            return SG_ERR;
        }
        ssize_t n = sg_transport_splice(t, &r->pipe);
        if (n == SG_ERR) {
            *err = sg_response_write_failed;
            return SG_ERR;
        }
        if (n > 0)
            wrote = 1;
    }
    if (r->out.len == 0 && r->file_fd >= 0) {
        int rc = sg_transport_caps(t) & SG_TRANSPORT_SENDFILE ? send_file(r, t, err)
                                                              : copy_file(r, t, err);
        return rc < 0 ? rc : (rc | wrote);
    }
    return wrote;
}
