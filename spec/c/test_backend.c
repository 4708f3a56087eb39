/* Unit tests for core/backend.c, one SCGI exchange alone, against a fake SCGI server in this
 * file (a loopback listener the test accepts on and writes to by hand): the netstring and the
 * body as sent (buffered and spooled), a head split across reads, interim heads before the
 * final one and their cap, an oversize head, a close before the head, a refused connect, a
 * body streamed to completion (copied, spliced, chunked in place) and a sized body cut short. */
#include "../../core/backend.c"
#include "test.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>

#define DATE "Mon, 07 Dec 2026 17:00:00 GMT"

static struct ev_loop *loop;
static int lfd = -1; /* the fake server's listener */
static struct sockaddr_in laddr;
static sg_backend_conn bk;
static sg_request req;
static sg_response resp;
static sg_reqbody rb;
static uint64_t to_count, from_count;
static char body[512 * 1024]; /* what reached the "client": body bytes drained */
static size_t body_len;

/* what the callbacks saw */
static int n_interim, interim_status[16], n_head, head_status, n_end, n_error, n_closed;
static bool end_whole, end_fin, error_replay, use_pipe;
static int end_err, error_err;
static enum sg_backend_err error_kind;
static const char *error_why;

static void cb_interim(sg_backend_conn *b, const sg_cgi_head *h)
{
    SG_UNUSED(b);
    if (n_interim < 16)
        interim_status[n_interim] = h->status;
    n_interim++;
}

static int cb_head(sg_backend_conn *b, const sg_cgi_head *h)
{
    n_head++;
    head_status = h->status;
    sg_response_begin(b->resp, h->status, h->reason, h->reason_len);
    sg_response_end_head(b->resp, h->content_length, NULL, 0, true, DATE);
    sg_buf_reset(&b->resp->out); /* the tests look at body bytes only */
    return SG_OK;
}

static void cb_big_body(sg_backend_conn *b)
{
    if (use_pipe)
        CHECK_INT(sg_pipe_open(&b->resp->pipe), SG_OK);
}

static void cb_end(sg_backend_conn *b, bool whole, bool fin, int err)
{
    SG_UNUSED(b);
    n_end++;
    end_whole = whole;
    end_fin = fin;
    end_err = err;
}

static void cb_error(sg_backend_conn *b, enum sg_backend_err kind, bool replay, const char *why,
                     int err)
{
    n_error++;
    error_kind = kind;
    error_replay = replay;
    error_why = why;
    error_err = err;
    sg_backend_close(b);
}

static void cb_write_closed(sg_backend_conn *b, int err)
{
    SG_UNUSED(b);
    SG_UNUSED(err);
    n_closed++;
}

/* the owner's kick: drain what the writer holds (as a client write would), then re-watch */
static void drain(void)
{
    size_t n = resp.out.len;
    if (body_len + n <= sizeof body)
        memcpy(body + body_len, sg_buf_head(&resp.out), n);
    body_len += n;
    sg_buf_reset(&resp.out);
    while (resp.pipe.len > 0) {
        ssize_t k = read(resp.pipe.rfd, body + body_len, sizeof body - body_len);
        if (k <= 0)
            break;
        body_len += (size_t)k;
        resp.pipe.len -= (size_t)k;
    }
}

static void cb_io_done(sg_backend_conn *b)
{
    drain();
    sg_backend_watch(b);
}

static const sg_backend_cbs cbs = { cb_interim, cb_head,         cb_big_body, cb_end,
                                    cb_error,   cb_write_closed, cb_io_done };

static void start(const char *reqbody, size_t reqbody_len)
{
    memset(&req, 0, sizeof req);
    req.http_major = 1;
    req.http_minor = 1;
    sg_response_init(&resp, &req);
    sg_reqbody_init(&rb);
    if (reqbody)
        sg_reqbody_append(&rb, reqbody, reqbody_len);
    n_interim = n_head = n_end = n_error = n_closed = 0;
    head_status = 0;
    error_why = NULL;
    body_len = 0;
    use_pipe = false;
    to_count = from_count = 0;
    sg_backend_init(&bk, loop, &cbs);
    sg_backend_prepare(&bk, &rb, &resp, reqbody_len);
    bk.bytes_to = &to_count;
    bk.bytes_from = &from_count;
}

static void stop(void)
{
    sg_backend_free(&bk);
    sg_pipe_close(&resp.pipe);
    sg_response_free(&resp);
    sg_reqbody_free(&rb);
}

/* The netstring of a small GET-like request, in bk.req; `copy` gets the same bytes. */
static void encode(uint64_t clen, sg_buf *copy)
{
    sg_scgi_vars v;
    sg_scgi_vars_init(&v);
    sg_scgi_set_str(&v, "REQUEST_METHOD", "POST");
    sg_scgi_set_str(&v, "REQUEST_URI", "/x");
    sg_scgi_encode(&v, clen, &bk.req);
    sg_scgi_vars_free(&v);
    sg_buf_init(copy);
    sg_buf_append(copy, sg_buf_head(&bk.req), bk.req.len);
}

/* Connects to the fake server and accepts there; returns the server's end. */
static int connect_and_accept(void)
{
    sg_backend_connect(&bk, (const struct sockaddr *)&laddr, sizeof laddr, false);
    sg_backend_watch(&bk);
    int s = accept(lfd, NULL, NULL);
    CHECK(s >= 0, "accept: %s", strerror(errno));
    return s;
}

/* Runs the loop until `cond` holds or a second passes. */
#define RUN_UNTIL(cond)                                                                            \
    do {                                                                                           \
        ev_tstamp t0_ = ev_time();                                                                 \
        while (!(cond) && ev_time() - t0_ < 1.0)                                                   \
            ev_run(loop, EVRUN_ONCE | EVRUN_NOWAIT), usleep(1000);                                 \
    } while (0)

/* Reads exactly `n` bytes from the server's end (one second at most). */
static size_t srv_read(int s, char *buf, size_t n)
{
    size_t got = 0;
    ev_tstamp t0 = ev_time();
    while (got < n && ev_time() - t0 < 1.0) {
        ev_run(loop, EVRUN_ONCE | EVRUN_NOWAIT); /* the backend sends on writability */
        struct pollfd p = { s, POLLIN, 0 };
        if (poll(&p, 1, 10) <= 0)
            continue;
        ssize_t k = read(s, buf + got, n - got);
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    return got;
}

static void srv_write(int s, const char *data)
{
    size_t n = strlen(data);
    CHECK(write(s, data, n) == (ssize_t)n, "server write");
}

static void test_netstring_and_body(void)
{
    start("hello", 5);
    sg_buf want;
    encode(5, &want);
    sg_buf_append(&want, "hello", 5);
    CHECK(memmem(sg_buf_head(&want), want.len,
                 "CONTENT_LENGTH\0"
                 "5\0",
                 17) != NULL,
          "CONTENT_LENGTH first in the netstring");
    int s = connect_and_accept();
    char got[512];
    size_t n = srv_read(s, got, want.len);
    CHECK_MEM(got, n, sg_buf_head(&want), want.len);
    RUN_UNTIL(bk.phase == SG_UP_HEAD);
    CHECK_INT(bk.phase, SG_UP_HEAD);
    CHECK_INT(bk.body_sent, 5);
    CHECK_INT(to_count, want.len);
    CHECK(!sg_backend_unsent(&bk), "nothing left to send");
    CHECK_INT(rb.buf.len, 0);
    close(s);
    sg_buf_free(&want);
    stop();
}

static void test_spooled_body(void)
{
    start(NULL, 0);
    char tmpl[] = "/tmp/sg_test_backend_XXXXXX";
    int fd = mkstemp(tmpl);
    CHECK(fd >= 0, "mkstemp");
    unlink(tmpl);
    static char big[100000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)('a' + i % 26);
    CHECK(write(fd, big, sizeof big) == (ssize_t)sizeof big, "spool write");
    rb.spool_fd = fd; /* as sg_reqbody_spool leaves a large chunked body */
    sg_backend_prepare(&bk, &rb, &resp, sizeof big);
    sg_buf want;
    encode(sizeof big, &want);
    int s = connect_and_accept();
    static char got[sizeof big + 512];
    size_t n = srv_read(s, got, want.len + sizeof big);
    CHECK_INT(n, want.len + sizeof big);
    CHECK(memcmp(got, sg_buf_head(&want), want.len) == 0, "netstring");
    CHECK(memcmp(got + want.len, big, sizeof big) == 0, "the file's bytes, by sendfile");
    RUN_UNTIL(bk.phase == SG_UP_HEAD);
    CHECK_INT(bk.phase, SG_UP_HEAD);
    close(s);
    sg_buf_free(&want);
    stop();
}

/* a GET: the netstring only, read and thrown away by the server */
static int start_get(void)
{
    start(NULL, 0);
    sg_buf want;
    encode(0, &want);
    int s = connect_and_accept();
    char got[512];
    CHECK_INT(srv_read(s, got, want.len), want.len);
    sg_buf_free(&want);
    return s;
}

static void test_head_split_across_reads(void)
{
    int s = start_get();
    srv_write(s, "Status: 200 OK\r\nContent-Ty");
    RUN_UNTIL(bk.got_bytes);
    ev_run(loop, EVRUN_NOWAIT);
    CHECK(bk.got_bytes, "first part read");
    CHECK_INT(n_head, 0);
    srv_write(s, "pe: text/plain\r");
    RUN_UNTIL(from_count == 41);
    CHECK_INT(n_head, 0);
    srv_write(s, "\nContent-Length: 5\r\n\r\nhel");
    RUN_UNTIL(n_head == 1 && body_len == 3);
    CHECK_INT(n_head, 1);
    CHECK_INT(head_status, 200);
    CHECK_INT(bk.phase, SG_UP_RELAY);
    srv_write(s, "lo");
    RUN_UNTIL(n_end == 1);
    CHECK_INT(n_end, 1);
    CHECK(end_whole && end_fin, "whole");
    CHECK_MEM(body, body_len, "hello", 5);
    CHECK_INT(bk.phase, SG_UP_DONE);
    close(s);
    stop();
}

static void test_interim_then_final(void)
{
    int s = start_get();
    srv_write(s, "Status: 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
                 "Status: 100 Continue\r\n\r\n"
                 "Status: 201 Created\r\nContent-Length: 2\r\n\r\nok");
    RUN_UNTIL(n_end == 1);
    CHECK_INT(n_interim, 2);
    CHECK_INT(interim_status[0], 103);
    CHECK_INT(interim_status[1], 100);
    CHECK_INT(n_head, 1);
    CHECK_INT(head_status, 201);
    CHECK(end_whole, "whole");
    CHECK_MEM(body, body_len, "ok", 2);
    close(s);
    stop();
}

static void test_interim_cap(void)
{
    int s = start_get();
    for (int i = 0; i <= SG_UP_MAX_INTERIM; i++)
        srv_write(s, "Status: 103 Early Hints\r\n\r\n");
    srv_write(s, "Status: 200 OK\r\n\r\n");
    RUN_UNTIL(n_error == 1);
    CHECK_INT(n_error, 1);
    CHECK_INT(error_kind, SG_BACKEND_EBADHEAD);
    CHECK(!error_replay, "not replayable");
    CHECK(error_why && strstr(error_why, "interim"), "why: %s", error_why ? error_why : "-");
    CHECK_INT(n_interim, SG_UP_MAX_INTERIM);
    CHECK_INT(n_head, 0);
    close(s);
    stop();
}

static void test_oversize_head(void)
{
    int s = start_get();
    static char line[SG_UP_HEAD_MAX + 64];
    memcpy(line, "X-Big: ", 7);
    memset(line + 7, 'x', sizeof line - 8);
    line[sizeof line - 1] = 0;
    srv_write(s, "Status: 200 OK\r\n");
    srv_write(s, line);
    RUN_UNTIL(n_error == 1);
    CHECK_INT(n_error, 1);
    CHECK_INT(error_kind, SG_BACKEND_ETOOLARGE);
    CHECK_INT(n_head, 0);
    close(s);
    stop();
}

static void test_close_before_head(void)
{
    int s = start_get();
    srv_write(s, "Status: 200 OK\r\nX-A: b\r\n");
    close(s);
    RUN_UNTIL(n_error == 1);
    CHECK_INT(n_error, 1);
    CHECK_INT(error_kind, SG_BACKEND_ECLOSED);
    CHECK(error_why && strstr(error_why, "middle"), "why: %s", error_why ? error_why : "-");
    CHECK_INT(error_err, 0);
    stop();

    s = start_get();
    close(s);
    RUN_UNTIL(n_error == 1);
    CHECK_INT(error_kind, SG_BACKEND_ECLOSED);
    CHECK(error_why && strstr(error_why, "without"), "why: %s", error_why ? error_why : "-");
    CHECK(!bk.got_bytes, "no response byte");
    stop();
}

static void test_bad_head(void)
{
    int s = start_get();
    srv_write(s, "Status: 101 Switching Protocols\r\n\r\n");
    RUN_UNTIL(n_error == 1);
    CHECK_INT(error_kind, SG_BACKEND_EBADHEAD);
    close(s);
    stop();
}

static void test_connect_refused(void)
{
    start(NULL, 0);
    int t = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof a;
    bind(t, (struct sockaddr *)&a, sizeof a);
    getsockname(t, (struct sockaddr *)&a, &al);
    close(t); /* a port nobody listens on */
    sg_buf want;
    encode(0, &want);
    sg_backend_connect(&bk, (const struct sockaddr *)&a, sizeof a, false);
    sg_backend_watch(&bk);
    RUN_UNTIL(n_error == 1);
    CHECK_INT(n_error, 1);
    CHECK_INT(error_kind, SG_BACKEND_ECONNECT);
    CHECK(error_replay, "a refused connect is replayable");
    CHECK_INT(error_err, ECONNREFUSED);
    sg_buf_free(&want);
    stop();
}

/* A sized body larger than the writer's cap, fed slowly: copied, or spliced through a pipe. */
static void stream_sized(bool pipe)
{
    int s = start_get();
    use_pipe = pipe;
    static char big[300000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)('A' + i % 23);
    char head[64];
    snprintf(head, sizeof head, "Content-Length: %zu\r\n\r\n", sizeof big);
    srv_write(s, head);
    size_t off = 0;
    ev_tstamp t0 = ev_time();
    while (n_end == 0 && ev_time() - t0 < 2.0) {
        if (off < sizeof big) {
            ssize_t k = send(s, big + off, sizeof big - off, MSG_DONTWAIT);
            if (k > 0)
                off += (size_t)k;
        }
        ev_run(loop, EVRUN_ONCE | EVRUN_NOWAIT);
        usleep(200);
    }
    CHECK_INT(n_end, 1);
    CHECK(end_whole, "whole");
    CHECK(sg_pipe_is_open(&resp.pipe) == pipe, "pipe %s", pipe ? "used" : "not used");
    CHECK_INT(body_len, sizeof big);
    CHECK(body_len == sizeof big && memcmp(body, big, sizeof big) == 0, "the body's bytes");
    CHECK_INT(from_count, strlen(head) + sizeof big);
    close(s);
    stop();
}

static void test_body_streamed_copy(void)
{
    stream_sized(false);
}

static void test_body_streamed_splice(void)
{
    stream_sized(true);
}

static void test_body_until_close_chunked(void)
{
    int s = start_get();
    srv_write(s, "Content-Type: text/plain\r\n\r\nabc");
    RUN_UNTIL(body_len > 0);
    CHECK(resp.chunked, "HTTP/1.1 without a length: chunked");
    srv_write(s, "defg");
    close(s);
    RUN_UNTIL(n_end == 1);
    CHECK_INT(n_end, 1);
    CHECK(end_whole && end_fin, "a FIN ends a length-less body whole");
    const char *want = "3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n";
    drain(); /* the last chunk was written by sg_response_end */
    CHECK_MEM(body, body_len, want, strlen(want));
    stop();
}

static void test_sized_body_cut_short(void)
{
    int s = start_get();
    srv_write(s, "Content-Length: 10\r\n\r\nabcd");
    RUN_UNTIL(n_head == 1);
    close(s);
    RUN_UNTIL(n_end == 1);
    CHECK_INT(n_end, 1);
    CHECK(!end_whole, "cut short: not whole");
    CHECK(end_fin, "but the backend closed (not a reset)");
    CHECK_INT(resp.remaining, 6);
    CHECK_MEM(body, body_len, "abcd", 4);
    stop();
}

int main(void)
{
    loop = ev_loop_new(EVFLAG_AUTO);
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    laddr = (struct sockaddr_in){ .sin_family = AF_INET,
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof laddr;
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&laddr, sizeof laddr) != 0 ||
        listen(lfd, 16) != 0 || getsockname(lfd, (struct sockaddr *)&laddr, &al) != 0) {
        perror("listener");
        return 1;
    }
    RUN(test_netstring_and_body);
    RUN(test_spooled_body);
    RUN(test_head_split_across_reads);
    RUN(test_interim_then_final);
    RUN(test_interim_cap);
    RUN(test_oversize_head);
    RUN(test_close_before_head);
    RUN(test_bad_head);
    RUN(test_connect_refused);
    RUN(test_body_streamed_copy);
    RUN(test_body_streamed_splice);
    RUN(test_body_until_close_chunked);
    RUN(test_sized_body_cut_short);
    close(lfd);
    ev_loop_destroy(loop);
    return test_report("backend");
}
