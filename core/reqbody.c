/*
 * reqbody.c: the request body source (see reqbody.h). Raw bytes go from the client's
 * buffer or socket into `buf` with one copy at most; a chunked body is kept whole, in memory
 * and past SG_SPOOL_MEM in an unlinked temp file that vanishes with its descriptor.
 */
#include "reqbody.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "util.h"

void sg_reqbody_init(sg_reqbody *b)
{
    sg_buf_init(&b->buf);
    b->spool_fd = -1;
    b->received = b->left = 0;
    b->raw = b->complete = b->discard = false;
}

void sg_reqbody_drop(sg_reqbody *b)
{
    sg_buf_reset(&b->buf);
    if (b->spool_fd >= 0) {
        close(b->spool_fd);
        b->spool_fd = -1;
    }
}

void sg_reqbody_reset_slow(sg_reqbody *b)
{
    sg_reqbody_drop(b);
    if (b->buf.cap > SG_BODY_MAX) /* a spooled chunked body: give the memory back */
        sg_buf_free(&b->buf);
}

void sg_reqbody_free(sg_reqbody *b)
{
    sg_reqbody_drop(b);
    sg_buf_free(&b->buf);
}

static void raw_done(sg_reqbody *b, size_t n)
{
    b->left -= n;
    b->received += n;
    if (b->left == 0)
        b->complete = true;
}

size_t sg_reqbody_take(sg_reqbody *b, sg_buf *in)
{
    size_t n = in->len < b->left ? in->len : (size_t)b->left;
    if (!b->discard && n > sg_reqbody_room(b))
        n = sg_reqbody_room(b);
    if (n == 0)
        return 0;
    if (!b->discard)
        sg_buf_append(&b->buf, sg_buf_head(in), n);
    sg_buf_consume(in, n);
    raw_done(b, n);
    return n;
}

ssize_t sg_reqbody_read(sg_reqbody *b, sg_transport *t)
{
    size_t room = sg_reqbody_room(b);
    if (room > b->left)
        room = (size_t)b->left;
    if (room == 0)
        return SG_DECLINED;
    ssize_t r = sg_transport_read_buf(t, &b->buf, room);
    if (r > 0)
        raw_done(b, (size_t)r);
    return r;
}

static int spool_write(sg_reqbody *b, const char *data, size_t len, const char **err)
{
    while (len) {
        ssize_t n = write(b->spool_fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            *err = "writing the request body to a temp file failed";
            b->discard = true;
            return SG_ERR;
        }
        data += n;
        len -= (size_t)n;
    }
    return SG_OK;
}

int sg_reqbody_spool(sg_reqbody *b, const char *data, size_t len, const char **err)
{
    if (b->spool_fd < 0 && b->buf.len + len > SG_SPOOL_MEM) {
        b->spool_fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (b->spool_fd < 0) {
            char tmpl[] = "/tmp/scgi-lua-body.XXXXXX";
            b->spool_fd = mkostemp(tmpl, O_CLOEXEC);
            if (b->spool_fd >= 0)
                unlink(tmpl);
        }
        if (b->spool_fd < 0) {
            *err = "cannot create a temp file for the request body";
            b->discard = true;
            return SG_ERR;
        }
        int rc = spool_write(b, sg_buf_head(&b->buf), b->buf.len, err);
        sg_buf_reset(&b->buf);
        if (rc != SG_OK)
            return rc;
    }
    if (b->spool_fd >= 0)
        return spool_write(b, data, len, err);
    sg_buf_append(&b->buf, data, len);
    return SG_OK;
}
