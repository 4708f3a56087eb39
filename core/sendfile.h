/*
 * sendfile.h: files a backend names in its X-Sendfile header (README "X-Sendfile and internal
 * redirects", scgi-lua(8) "Routes": sendfile, sendfile_root). This module opens and vets the file
 * (absolute path, regular, readable, inside sendfile_root after symlinks, judged on the opened
 * descriptor so a swapped symlink cannot escape) and plans the answer (validators, conditional
 * requests, a single byte range). response.c streams the bytes with sendfile(2). Nothing here logs
 * or touches sockets.
 */
#ifndef SG_SENDFILE_H
#define SG_SENDFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "request.h"

/**
 * Opens `path` (len bytes, not NUL-terminated). Returns an fd >= 0 with *st filled, or -1 with
 * *status (404 missing, 403 unreadable/directory/outside the roots, 502 relative path) and
 * *err (static) set. `roots` are real paths without trailing slash (may be NULL).
 */
int sg_sendfile_open(const char *path, size_t len, char *const *roots, size_t nroots,
                     struct stat *st, int *status, const char **err);

typedef struct sg_sendfile_plan {
    int status;       /* 200 (or the backend's), 206, 304, 412 or 416 */
    off_t start, len; /* bytes of the file to send */
    char etag[64];    /* computed strong validator, used unless the backend sent one */
    char last_modified[40];
} sg_sendfile_plan;

/**
 * Decides the answer for `req` given the file and the backend's status and validators
 * (etag/last_modified may be NULL when the backend sent none). Conditionals and Range only
 * apply to a backend 200 for GET/HEAD; a multi-range request gets the whole file. A backend
 * status without a body (sg_http_status_has_body: 204, 304) keeps its status with len 0.
 */
void sg_sendfile_plan_make(const sg_request *req, int backend_status, const struct stat *st,
                           const char *etag, size_t etag_len, const char *last_modified,
                           size_t lm_len, sg_sendfile_plan *plan);

/** Resolves a configured root to its real path (malloc'd), or NULL if it does not exist. */
char *sg_sendfile_root_resolve(const char *root);

#endif
