/*
 * request.h: sg_request, one parsed client request head. All strings live in one owned
 * buffer (`raw`) and are addressed by offset while parsing; sg_http fills the pointer view
 * (method, uri, path, query, headers) once the head is complete. Read-only after that.
 */
#ifndef SG_REQUEST_H
#define SG_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

typedef struct sg_req_header {
    size_t name_off, name_len, value_off, value_len; /* into raw */
    const char *name, *value;                        /* valid after the head is complete */
} sg_req_header;

typedef struct sg_request {
    sg_buf raw; /* owned: every string below, NUL-terminated */
    sg_req_header *headers; /* owned */
    size_t nheaders, cap_headers;
    size_t uri_off, uri_len;

    const char *method;  /* static (http_method_str) */
    int method_id;       /* enum http_method */
    const char *uri;     /* raw request-target */
    size_t uri_len_view;
    const char *path;    /* decoded, dot-segment normalised */
    size_t path_len;
    const char *query;   /* raw query, "" if none */
    size_t query_len;
    const char *host;    /* Host without port, or NULL */
    size_t host_len;
    const char *content_type; /* or NULL */
    int http_major, http_minor;
    int64_t content_length;   /* -1: none */
    bool chunked, expect_continue, keepalive, head_only, has_body;
} sg_request;

/** Returns the first header named `name` (case-insensitive), or NULL. */
const sg_req_header *sg_request_header(const sg_request *r, const char *name);

#endif
