/* Unit tests for core/response.c, the response writer alone: status lines, framing decisions
 * (length, chunked, until close) for HTTP/1.0 and 1.1, the no-body rule (1xx, 204, 304, HEAD),
 * interim heads, in-place chunk framing of bytes read from a socket, the end of a cut or a
 * whole body, and flushing memory and file bodies to a socket (the plain transport; a
 * transport without sendfile is spec/c/test_transport.c's). */
#include "../../core/response.c"
#include "test.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>

static sg_request req;
static sg_response resp;

static void start(int minor, bool head)
{
    memset(&req, 0, sizeof req);
    req.http_major = 1;
    req.http_minor = minor;
    req.head_only = head;
    sg_response_init(&resp, &req);
}

static void stop(void)
{
    sg_response_free(&resp);
}

static bool out_is(const char *want)
{
    size_t n = strlen(want);
    bool ok = resp.out.len == n && memcmp(sg_buf_head(&resp.out), want, n) == 0;
    if (!ok)
        fprintf(stderr, "got [%.*s]\nwant [%s]\n", (int)resp.out.len, sg_buf_head(&resp.out), want);
    return ok;
}

/* `out` is not NUL-terminated: search it by length */
static bool out_has(const char *needle)
{
    return memmem(sg_buf_head(&resp.out), resp.out.len, needle, strlen(needle)) != NULL;
}

#define DATE "Mon, 07 Dec 2026 17:00:00 GMT"

static void test_status_line_and_length(void)
{
    start(1, false);
    sg_response_begin(&resp, 200, NULL, 0);
    sg_response_add_header(&resp, "X-A", 3, "b", 1);
    bool ka = sg_response_end_head(&resp, 5, NULL, 0, true, DATE);
    CHECK(ka, "length-framed 1.1 keeps the connection");
    CHECK(resp.started && !resp.done, "started, not done");
    CHECK_INT(resp.remaining, 5);
    CHECK(out_is("HTTP/1.1 200 OK\r\nX-A: b\r\nContent-Length: 5\r\nDate: " DATE "\r\n\r\n"),
          "head");
    sg_buf_reset(&resp.out);
    sg_response_body(&resp, "hello world", 11); /* more than announced: cut at 5 */
    CHECK(out_is("hello"), "body clamped to Content-Length");
    CHECK_INT(resp.remaining, 0);
    CHECK_INT(resp.bytes_out, 5);
    CHECK_INT(sg_response_end(&resp, true), SG_OK);
    CHECK(resp.done, "done");
    stop();
}

static void test_reason_given(void)
{
    start(1, false);
    sg_response_begin(&resp, 404, "Gone Fishing", 12);
    sg_response_end_head(&resp, 0, NULL, 0, false, DATE);
    CHECK(out_is(
              "HTTP/1.1 404 Gone Fishing\r\nContent-Length: 0\r\nConnection: close\r\nDate: " DATE
              "\r\n\r\n"),
          "reason and Connection: close");
    stop();
}

static void test_chunked_11(void)
{
    start(1, false);
    sg_response_begin(&resp, 200, NULL, 0);
    bool ka = sg_response_end_head(&resp, -1, "Set-Cookie: a=1\r\n", 17, true, DATE);
    CHECK(ka && resp.chunked && !resp.until_close, "1.1 without length: chunked");
    CHECK(out_is("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nSet-Cookie: a=1\r\nDate: " DATE
                 "\r\n\r\n"),
          "chunked head with extra lines");
    sg_buf_reset(&resp.out);
    sg_response_body(&resp, "abcdefghijklmnopq", 17);
    sg_response_body(&resp, "", 0); /* an empty piece is no chunk (it would end the body) */
    CHECK_INT(sg_response_end(&resp, true), SG_OK);
    CHECK(out_is("11\r\nabcdefghijklmnopq\r\n0\r\n\r\n"), "chunks and the last chunk");
    stop();
}

static void test_until_close_10(void)
{
    start(0, false);
    sg_response_begin(&resp, 200, NULL, 0);
    bool ka = sg_response_end_head(&resp, -1, NULL, 0, true, DATE);
    CHECK(!ka && resp.until_close && !resp.chunked, "1.0 without length: until close");
    CHECK(out_is("HTTP/1.1 200 OK\r\nConnection: close\r\nDate: " DATE "\r\n\r\n"), "head");
    sg_buf_reset(&resp.out);
    sg_response_body(&resp, "xyz", 3);
    CHECK(out_is("xyz"), "raw bytes");
    CHECK_INT(sg_response_end(&resp, true), SG_OK);
    CHECK(out_is("xyz"), "no terminator");
    stop();
}

static void test_keepalive_10(void)
{
    start(0, false);
    sg_response_begin(&resp, 200, NULL, 0);
    CHECK(sg_response_end_head(&resp, 2, NULL, 0, true, DATE), "kept");
    CHECK(out_is("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\nDate: " DATE
                 "\r\n\r\n"),
          "1.0 keep-alive is announced");
    stop();
}

static void test_no_body_statuses(void)
{
    static const int codes[] = { 204, 304 };
    for (size_t i = 0; i < 2; i++) {
        CASE_BEGIN();
        start(1, false);
        sg_response_begin(&resp, codes[i], NULL, 0);
        CHECK(resp.no_body, "%d has no body", codes[i]);
        sg_response_end_head(&resp, 42, NULL, 0, true, DATE);
        CHECK(!out_has("Content-Length"), "%d: no length", codes[i]);
        CHECK(!out_has("Transfer-Encoding"), "%d: no TE", codes[i]);
        CHECK_INT(resp.remaining, 0);
        size_t before = resp.out.len;
        sg_response_body(&resp, "zz", 2);
        CHECK_INT(resp.out.len, before);
        CHECK_INT(sg_response_end(&resp, true), SG_OK);
        stop();
        CASE_END();
    }
    /* no length either way: a 204 never turns chunked */
    start(1, false);
    sg_response_begin(&resp, 204, NULL, 0);
    CHECK(sg_response_end_head(&resp, -1, NULL, 0, true, DATE), "204 keeps the connection");
    CHECK(!resp.chunked && !resp.until_close, "no framing at all");
    stop();
}

static void test_head_keeps_length(void)
{
    start(1, true);
    sg_response_begin(&resp, 200, NULL, 0);
    CHECK(resp.no_body, "HEAD: no body");
    sg_response_end_head(&resp, 10, NULL, 0, true, DATE);
    CHECK(out_has("Content-Length: 10\r\n"), "HEAD keeps the GET's length");
    CHECK_INT(resp.remaining, 0);
    size_t before = resp.out.len;
    sg_response_body(&resp, "0123456789", 10);
    CHECK_INT(resp.out.len, before);
    stop();
    /* HEAD of a length-less body: neither chunked nor until close */
    start(1, true);
    sg_response_begin(&resp, 200, NULL, 0);
    CHECK(sg_response_end_head(&resp, -1, NULL, 0, true, DATE), "kept");
    CHECK(!resp.chunked && !resp.until_close, "HEAD: nothing to frame");
    CHECK(!out_has("Transfer-Encoding"), "no TE");
    stop();
}

static void test_interim_heads(void)
{
    start(1, false);
    sg_response_begin(&resp, 103, NULL, 0);
    CHECK(!resp.started && resp.status == 0, "an interim head does not start the response");
    sg_response_add_header(&resp, "Link", 4, "</a.css>", 8);
    sg_response_end_interim(&resp);
    sg_response_begin(&resp, 200, NULL, 0);
    CHECK(resp.started && resp.status == 200, "final");
    sg_response_end_head(&resp, 0, NULL, 0, true, DATE);
    CHECK(out_is("HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
                 "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nDate: " DATE "\r\n\r\n"),
          "interim then final");
    stop();
}

static void test_cut_bodies(void)
{
    start(1, false);
    sg_response_begin(&resp, 200, NULL, 0);
    sg_response_end_head(&resp, 10, NULL, 0, true, DATE);
    sg_response_body(&resp, "abc", 3);
    CHECK_INT(sg_response_end(&resp, true), SG_ERR); /* 7 bytes short */
    CHECK(resp.done, "done anyway");
    stop();
    start(1, false);
    sg_response_begin(&resp, 200, NULL, 0);
    sg_response_end_head(&resp, -1, NULL, 0, true, DATE);
    sg_buf_reset(&resp.out);
    sg_response_body(&resp, "abc", 3);
    CHECK_INT(sg_response_end(&resp, false), SG_ERR); /* a reset: never looks whole */
    CHECK(out_is("3\r\nabc\r\n"), "no last chunk after a reset");
    stop();
}

/* sg_response_read: chunk-framed in place, split at every size, and clamped by length */
static void test_read_chunked_in_place(void)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    start(1, false);
    sg_response_begin(&resp, 200, NULL, 0);
    sg_response_end_head(&resp, -1, NULL, 0, true, DATE);
    sg_buf_reset(&resp.out);
    CHECK_INT(sg_response_read(&resp, sv[0], 100), SG_AGAIN);
    char big[300];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)('a' + i % 26);
    CHECK_INT(write(sv[1], big, sizeof big), (ssize_t)sizeof big);
    CHECK_INT(sg_response_read(&resp, sv[0], 256), 256);
    CHECK_INT(sg_response_read(&resp, sv[0], 256), 44);
    close(sv[1]);
    CHECK_INT(sg_response_read(&resp, sv[0], 256), 0);
    CHECK_INT(sg_response_end(&resp, true), SG_OK);
    sg_buf want;
    sg_buf_init(&want);
    sg_buf_append_str(&want, "100\r\n");
    sg_buf_append(&want, big, 256);
    sg_buf_append_str(&want, "\r\n2c\r\n");
    sg_buf_append(&want, big + 256, 44);
    sg_buf_append_str(&want, "\r\n0\r\n\r\n");
    CHECK_MEM(sg_buf_head(&resp.out), resp.out.len, sg_buf_head(&want), want.len);
    CHECK_INT(resp.bytes_out, 300);
    sg_buf_free(&want);
    stop();
    close(sv[0]);

    /* sized: never reads past the announced length */
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
    start(1, false);
    sg_response_begin(&resp, 200, NULL, 0);
    sg_response_end_head(&resp, 4, NULL, 0, true, DATE);
    sg_buf_reset(&resp.out);
    CHECK_INT(write(sv[1], "abcdefgh", 8), 8);
    CHECK_INT(sg_response_read(&resp, sv[0], 1000), 4);
    CHECK(out_is("abcd"), "clamped");
    CHECK_INT(resp.remaining, 0);
    char rest[8];
    CHECK_INT(read(sv[0], rest, sizeof rest), 4); /* the rest stays in the socket */
    stop();
    close(sv[0]);
    close(sv[1]);
}

static void test_flush_memory_and_file(void)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
    char path[] = "/tmp/sg-test-response.XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "temp file");
    unlink(path);
    CHECK_INT(write(fd, "0123456789", 10), 10);
    sg_transport tr; /* the socket stays the test's: never sg_transport_close'd */
    sg_transport_init_plain(&tr, sv[0]);
    start(1, false);
    const char *err = NULL;
    CHECK_INT(sg_response_flush(&resp, &tr, &err), 0); /* nothing to write */
    sg_response_begin(&resp, 200, NULL, 0);
    sg_response_end_head(&resp, 4, NULL, 0, true, DATE);
    sg_response_set_file(&resp, fd, 3, 4);
    CHECK(sg_response_pending(&resp), "pending");
    size_t head_len = resp.out.len;
    CHECK_INT(sg_response_flush(&resp, &tr, &err), 1);
    CHECK(!sg_response_pending(&resp) && resp.done, "all written, file body done");
    CHECK_INT(resp.file_fd, -1);
    char got[256];
    ssize_t n = read(sv[1], got, sizeof got);
    CHECK_INT(n, (ssize_t)head_len + 4);
    CHECK_MEM(got + head_len, (size_t)4, "3456", (size_t)4);
    stop();

    /* a file that shrank under us: the promised length cannot be kept */
    char path2[] = "/tmp/sg-test-response.XXXXXX";
    fd = mkstemp(path2); /* empty */
    unlink(path2);
    start(1, false);
    sg_response_begin(&resp, 200, NULL, 0);
    sg_response_end_head(&resp, 4, NULL, 0, true, DATE);
    sg_response_set_file(&resp, fd, 0, 4);
    CHECK_INT(sg_response_flush(&resp, &tr, &err), SG_ERR);
    CHECK(err == sg_response_file_shrank, "shrank");
    stop(); /* closes the file */

    /* the peer is gone */
    close(sv[1]);
    start(1, false);
    sg_response_begin(&resp, 200, NULL, 0);
    sg_response_end_head(&resp, 0, NULL, 0, true, DATE);
    err = NULL;
    CHECK_INT(sg_response_flush(&resp, &tr, &err), SG_ERR);
    CHECK(err == sg_response_write_failed, "write failed");
    stop();
    close(sv[0]);
}

static void test_reset(void)
{
    start(1, false);
    sg_response_begin(&resp, 500, NULL, 0);
    sg_response_end_head(&resp, -1, NULL, 0, true, DATE);
    sg_response_set_file(&resp, open("/dev/null", O_RDONLY), 0, 1);
    sg_response_reset(&resp);
    CHECK(!resp.started && !resp.done && !resp.chunked && resp.status == 0, "fields cleared");
    CHECK_INT(resp.remaining, -1);
    CHECK_INT(resp.file_fd, -1);
    CHECK(resp.out.len > 0, "out is the connection's: it stays");
    stop();
}

int main(void)
{
    RUN(test_status_line_and_length);
    RUN(test_reason_given);
    RUN(test_chunked_11);
    RUN(test_until_close_10);
    RUN(test_keepalive_10);
    test_no_body_statuses();
    RUN(test_head_keeps_length);
    RUN(test_interim_heads);
    RUN(test_cut_bodies);
    RUN(test_read_chunked_in_place);
    RUN(test_flush_memory_and_file);
    RUN(test_reset);
    return test_report("test_response");
}
