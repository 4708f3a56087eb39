/* Unit tests for core/transport.c, the client transport: the plain socket over a socketpair
 * (read, write, writev, EOF, EAGAIN both ways, a write to a gone peer without SIGPIPE,
 * sendfile, splice from a pipe, shutdown, close), capability flags, dispatch to an ops table,
 * and what a transport without sendfile or splice means to its users: the response writer
 * sends a file body through `out` in bounded pieces, and refuses a pipe; the request body
 * is read through the transport. */
#include "../../core/transport.c"
#include "test.h"

#include <fcntl.h>
#include <stdlib.h>

#include "reqbody.h"
#include "response.h"

static void nonblock(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static int temp_file(const char *data, size_t len)
{
    char path[] = "/tmp/sg-test-transport.XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "temp file");
    unlink(path);
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);
        CHECK(n > 0, "temp file write");
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    return fd;
}

static void test_plain_read_write_eof(void)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
    nonblock(sv[0]);
    sg_transport t;
    sg_transport_init_plain(&t, sv[0]);
    CHECK_INT(sg_transport_fd(&t), sv[0]);
    CHECK_INT(sg_transport_caps(&t), SG_TRANSPORT_SENDFILE | SG_TRANSPORT_SPLICE);
    CHECK(!sg_transport_pending(&t), "a socket holds nothing back");

    char got[64];
    CHECK_INT(sg_transport_read(&t, got, sizeof got), SG_AGAIN);
    CHECK_INT(write(sv[1], "request", 7), 7);
    CHECK_INT(sg_transport_read(&t, got, 3), 3); /* never more than asked */
    CHECK_MEM(got, (size_t)3, "req", (size_t)3);
    sg_buf b;
    sg_buf_init(&b);
    CHECK_INT(sg_transport_read_buf(&t, &b, 100), 4);
    CHECK_MEM(sg_buf_head(&b), b.len, "uest", (size_t)4);
    CHECK_INT(sg_transport_read_buf(&t, &b, 100), SG_AGAIN);
    CHECK_INT(b.len, 4);
    sg_buf_free(&b);

    CHECK_INT(sg_transport_write(&t, "hello", 5), 5);
    struct iovec iov[2] = { { .iov_base = "ab", .iov_len = 2 },
                            { .iov_base = "cde", .iov_len = 3 } };
    CHECK_INT(sg_transport_writev(&t, iov, 2), 5);
    CHECK_INT(read(sv[1], got, sizeof got), 10);
    CHECK_MEM(got, (size_t)10, "helloabcde", (size_t)10);

    /* write side shut: the peer reads EOF, our reads still work */
    CHECK_INT(sg_transport_shutdown(&t), SG_OK);
    CHECK_INT(read(sv[1], got, sizeof got), 0);
    CHECK_INT(write(sv[1], "x", 1), 1);
    CHECK_INT(sg_transport_read(&t, got, sizeof got), 1);
    close(sv[1]);
    CHECK_INT(sg_transport_read(&t, got, sizeof got), 0); /* EOF */

    sg_transport_close(&t);
    CHECK_INT(sg_transport_fd(&t), -1);
    sg_transport_close(&t); /* a second close is harmless */
}

/* A peer that does not read: the write side reports SG_AGAIN; a peer gone: SG_ERR, and the
 * test process is still alive (MSG_NOSIGNAL: SIGPIPE is not ignored here) */
static void test_plain_write_again_and_gone(void)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
    nonblock(sv[0]);
    sg_transport t;
    sg_transport_init_plain(&t, sv[0]);
    static char block[65536];
    ssize_t n = 0;
    for (int i = 0; i < 1000 && n != SG_AGAIN; i++) /* socket buffers are a few hundred KiB */
        n = sg_transport_write(&t, block, sizeof block);
    CHECK_INT(n, SG_AGAIN);
    struct iovec iov = { .iov_base = block, .iov_len = sizeof block };
    CHECK_INT(sg_transport_writev(&t, &iov, 1), SG_AGAIN);
    close(sv[1]);
    errno = 0;
    CHECK_INT(sg_transport_write(&t, "x", 1), SG_ERR);
    CHECK(errno == EPIPE || errno == ECONNRESET, "errno %d", errno);
    CHECK_INT(sg_transport_writev(&t, &iov, 1), SG_ERR);
    sg_transport_close(&t);
}

static void test_plain_sendfile_and_splice(void)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
    nonblock(sv[0]);
    sg_transport t;
    sg_transport_init_plain(&t, sv[0]);
    int fd = temp_file("0123456789", 10);
    off_t off = 3;
    CHECK_INT(sg_transport_sendfile(&t, fd, &off, 4), 4);
    CHECK_INT(off, 7);
    off = 10;
    CHECK_INT(sg_transport_sendfile(&t, fd, &off, 4), 0); /* the file ended */
    close(fd);
    char got[64];
    CHECK_INT(read(sv[1], got, sizeof got), 4);
    CHECK_MEM(got, (size_t)4, "3456", (size_t)4);

    sg_pipe p;
    sg_pipe_init(&p);
    CHECK_INT(sg_pipe_open(&p), SG_OK);
    CHECK_INT(write(p.wfd, "piped", 5), 5);
    p.len = 5;
    CHECK_INT(sg_transport_splice(&t, &p), 5);
    CHECK_INT(p.len, 0);
    CHECK_INT(read(sv[1], got, sizeof got), 5);
    CHECK_MEM(got, (size_t)5, "piped", (size_t)5);
    sg_pipe_close(&p);
    close(sv[1]);
    sg_transport_close(&t);
}

/* ---- a transport with an ops table and no capabilities (what TLS without kTLS will be) ---- */

typedef struct fake {
    const char *in; /* bytes the peer "sent" */
    size_t in_len;
    bool eof;        /* after `in`: EOF rather than SG_AGAIN */
    sg_buf sink;     /* what was written */
    size_t max_call; /* bytes taken per write at most, 0: all */
    int again_every; /* every n-th write call returns SG_AGAIN, 0: never */
    bool fail;       /* writes fail */
    bool held;       /* pending() answer */
    int writes, shutdowns, closes;
    size_t biggest; /* largest single write offered */
} fake;

static ssize_t fake_read(sg_transport *t, void *buf, size_t len)
{
    fake *f = t->ctx;
    if (f->in_len == 0)
        return f->eof ? 0 : SG_AGAIN;
    if (len > f->in_len)
        len = f->in_len;
    memcpy(buf, f->in, len);
    f->in += len;
    f->in_len -= len;
    return (ssize_t)len;
}

static ssize_t fake_writev(sg_transport *t, const struct iovec *iov, int iovcnt)
{
    fake *f = t->ctx;
    f->writes++;
    if (f->fail) {
        errno = ECONNRESET;
        return SG_ERR;
    }
    if (f->again_every && f->writes % f->again_every == 0)
        return SG_AGAIN;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++) {
        size_t n = iov[i].iov_len;
        if (n > f->biggest)
            f->biggest = n;
        if (f->max_call && total + n > f->max_call)
            n = f->max_call - total;
        sg_buf_append(&f->sink, iov[i].iov_base, n);
        total += n;
        if (n < iov[i].iov_len)
            break;
    }
    return (ssize_t)total;
}

static bool fake_pending(const sg_transport *t)
{
    return ((const fake *)t->ctx)->held;
}

static int fake_shutdown(sg_transport *t)
{
    ((fake *)t->ctx)->shutdowns++;
    return SG_OK;
}

static void fake_close(sg_transport *t)
{
    ((fake *)t->ctx)->closes++;
}

static const sg_transport_ops fake_ops = {
    .read = fake_read,
    .writev = fake_writev,
    .pending = fake_pending,
    .shutdown = fake_shutdown,
    .close = fake_close,
};

static void fake_init(fake *f, sg_transport *t)
{
    memset(f, 0, sizeof *f);
    sg_buf_init(&f->sink);
    /* fd -1: a sendfile or splice tried on it would fail with EBADF, never pass unseen */
    sg_transport_init(t, -1, 0, &fake_ops, f);
}

static void test_ops_dispatch(void)
{
    fake f;
    sg_transport t;
    fake_init(&f, &t);
    CHECK_INT(sg_transport_caps(&t), 0);
    f.in = "abcdef";
    f.in_len = 6;
    char got[4];
    CHECK_INT(sg_transport_read(&t, got, sizeof got), 4);
    CHECK(!sg_transport_pending(&t), "nothing held");
    f.held = true;
    CHECK(sg_transport_pending(&t), "held bytes reported");
    f.held = false;
    CHECK_INT(sg_transport_read(&t, got, sizeof got), 2);
    CHECK_INT(sg_transport_read(&t, got, sizeof got), SG_AGAIN);
    f.eof = true;
    CHECK_INT(sg_transport_read(&t, got, sizeof got), 0);
    CHECK_INT(sg_transport_write(&t, "xy", 2), 2);
    struct iovec iov[2] = { { .iov_base = "1", .iov_len = 1 }, { .iov_base = "23", .iov_len = 2 } };
    CHECK_INT(sg_transport_writev(&t, iov, 2), 3);
    CHECK_MEM(sg_buf_head(&f.sink), f.sink.len, "xy123", (size_t)5);
    CHECK_INT(sg_transport_shutdown(&t), SG_OK);
    CHECK_INT(f.shutdowns, 1);
    sg_transport_close(&t);
    sg_transport_close(&t);
    CHECK_INT(f.closes, 1); /* the state is released once */
    CHECK(t.ctx == NULL, "state forgotten");
    sg_buf_free(&f.sink);
}

/* the request body source reads through the transport, never past the body's end */
static void test_reqbody_reads_through_transport(void)
{
    fake f;
    sg_transport t;
    fake_init(&f, &t);
    f.in = "bodyNEXT";
    f.in_len = 8;
    sg_reqbody rb;
    sg_reqbody_init(&rb);
    sg_reqbody_start_raw(&rb, 4);
    CHECK_INT(sg_reqbody_read(&rb, &t), 4);
    CHECK(rb.complete, "whole");
    CHECK_MEM(sg_buf_head(&rb.buf), rb.buf.len, "body", (size_t)4);
    CHECK_INT(f.in_len, 4); /* the next request's bytes stay with the transport */
    CHECK_INT(sg_reqbody_read(&rb, &t), SG_DECLINED);
    sg_reqbody_free(&rb);
    sg_buf_free(&f.sink);
}

#define DATE "Mon, 07 Dec 2026 17:00:00 GMT"

static sg_request req;

static void file_response(sg_response *r, int fd, off_t off, uint64_t len)
{
    memset(&req, 0, sizeof req);
    req.http_major = req.http_minor = 1;
    sg_response_init(r, &req);
    sg_response_begin(r, 200, NULL, 0);
    sg_response_end_head(r, (int64_t)len, NULL, 0, true, DATE);
    sg_response_set_file(r, fd, off, len);
}

/* Flushes until nothing is pending (bounded); returns the last result. */
static int flush_all(sg_response *r, sg_transport *t, int *calls)
{
    const char *err = NULL;
    int rc = 0;
    for (*calls = 0; *calls < 100000 && sg_response_pending(r); (*calls)++) {
        rc = sg_response_flush(r, t, &err);
        if (rc < 0)
            break;
    }
    return rc;
}

static char *pattern(size_t n)
{
    char *p = malloc(n);
    for (size_t i = 0; i < n; i++)
        p[i] = (char)('a' + (i * 7 + i / 251) % 26);
    return p;
}

/* no sendfile: the file goes through `out` in pieces, partial writes and SG_AGAIN included */
static void test_flush_file_without_sendfile(void)
{
    size_t size = 100000;
    char *data = pattern(size);
    int fd = temp_file(data, size);
    fake f;
    sg_transport t;
    fake_init(&f, &t);
    f.max_call = 5000;
    f.again_every = 3;
    sg_response r;
    file_response(&r, fd, 1000, 90000);
    size_t head_len = r.out.len;
    int calls;
    CHECK_INT(flush_all(&r, &t, &calls), 1);
    CHECK(!sg_response_pending(&r) && r.done, "all written, done");
    CHECK_INT(r.file_fd, -1);
    CHECK_INT(r.bytes_out, 90000);
    CHECK_INT(f.sink.len, head_len + 90000);
    CHECK_MEM(sg_buf_head(&f.sink) + head_len, f.sink.len - head_len, data + 1000, (size_t)90000);
    CHECK(f.biggest <= SG_FILE_PIECE, "pieces of at most SG_FILE_PIECE (%zu)", f.biggest);
    CHECK(r.out.cap <= 2 * SG_FILE_PIECE, "out bounded by the piece (%zu)", r.out.cap);
    sg_response_free(&r);
    sg_buf_free(&f.sink);
    free(data);
}

/* one flush gives at most SG_SENDFILE_TURN file bytes, as sendfile does */
static void test_flush_file_turn(void)
{
    size_t size = SG_SENDFILE_TURN + SG_SENDFILE_TURN / 2;
    char *data = pattern(size);
    int fd = temp_file(data, size);
    fake f;
    sg_transport t;
    fake_init(&f, &t);
    sg_response r;
    file_response(&r, fd, 0, size);
    size_t head_len = r.out.len;
    const char *err = NULL;
    CHECK_INT(sg_response_flush(&r, &t, &err), 1);
    CHECK_INT(r.file_left, size - SG_SENDFILE_TURN);
    CHECK(sg_response_pending(&r) && !r.done, "the turn ended, the file did not");
    CHECK_INT(sg_response_flush(&r, &t, &err), 1);
    CHECK(!sg_response_pending(&r) && r.done, "done on the next turn");
    CHECK_INT(f.sink.len, head_len + size);
    CHECK_MEM(sg_buf_head(&f.sink) + head_len, f.sink.len - head_len, data, size);
    sg_response_free(&r);
    sg_buf_free(&f.sink);
    free(data);
}

static void test_flush_file_errors_without_sendfile(void)
{
    fake f;
    sg_transport t;
    fake_init(&f, &t);
    sg_response r;
    const char *err = NULL;

    /* the file shrank: the promised length cannot be kept */
    file_response(&r, temp_file("abc", 3), 0, 10);
    int calls;
    CHECK_INT(flush_all(&r, &t, &calls), SG_ERR);
    CHECK_INT(r.bytes_out, 3);
    err = NULL;
    CHECK_INT(sg_response_flush(&r, &t, &err), SG_ERR);
    CHECK(err == sg_response_file_shrank, "shrank");
    sg_response_free(&r);

    /* the file cannot be read */
    char path[] = "/tmp/sg-test-transport.XXXXXX";
    int tmp = mkstemp(path);
    CHECK_INT(write(tmp, "abc", 3), 3);
    int wfd = open(path, O_WRONLY | O_CLOEXEC);
    CHECK(wfd >= 0, "write-only reopen");
    close(tmp);
    unlink(path);
    file_response(&r, wfd, 0, 3); /* opened for writing only: pread fails */
    err = NULL;
    CHECK_INT(sg_response_flush(&r, &t, &err), SG_ERR);
    CHECK(err == sg_response_file_read_failed, "read failed");
    sg_response_free(&r);

    /* the client is gone */
    file_response(&r, temp_file("abc", 3), 0, 3);
    sg_buf_reset(&r.out);
    f.fail = true;
    err = NULL;
    CHECK_INT(sg_response_flush(&r, &t, &err), SG_ERR);
    CHECK(err == sg_response_write_failed, "write failed");
    sg_response_free(&r);

    /* a pipe is never opened for a transport that cannot splice: misuse is an error */
    f.fail = false;
    memset(&req, 0, sizeof req);
    sg_response_init(&r, &req);
    r.pipe.len = 1;
    err = NULL;
    CHECK_INT(sg_response_flush(&r, &t, &err), SG_ERR);
    CHECK(err == sg_response_write_failed && errno == EINVAL, "refused");
    r.pipe.len = 0;
    sg_response_free(&r);
    sg_buf_free(&f.sink);
}

int main(void)
{
    RUN(test_plain_read_write_eof);
    RUN(test_plain_write_again_and_gone);
    RUN(test_plain_sendfile_and_splice);
    RUN(test_ops_dispatch);
    RUN(test_reqbody_reads_through_transport);
    RUN(test_flush_file_without_sendfile);
    RUN(test_flush_file_turn);
    RUN(test_flush_file_errors_without_sendfile);
    return test_report("transport");
}
