/*
 * request.h: sg_request, one parsed client request head. All strings live in one owned
 * buffer (`raw`) and are addressed by offset while parsing; sg_http fills the pointer view
 * (method, uri, path, query, headers) once the head is complete, or once it is rejected:
 * after sg_http_feed fails every pointer is NULL-or-valid (names and values always valid,
 * method NULL if the request line itself was not understood). Read-only after that.
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
    sg_buf raw;             /* owned: every string below, NUL-terminated */
    sg_req_header *headers; /* owned */
    size_t nheaders, cap_headers;
    size_t uri_off, uri_len;

    const char *method; /* static (http_method_str) */
    int method_id;      /* enum http_method */
    const char *uri;    /* raw request-target */
    size_t uri_len_view;
    const char *path; /* decoded except %2F, slashes merged, dot segments removed */
    size_t path_len;
    const char *query; /* raw query, "" if none */
    size_t query_len;
    const char *host; /* validated host without port or trailing dot, from the
                       * absolute-form target if there is one, else Host; or NULL */
    size_t host_len;
    const char *content_type; /* or NULL */
    int http_major, http_minor;
    int64_t content_length; /* -1: none */
    bool chunked, expect_continue, keepalive, head_only, has_body;
    bool encoded_slash; /* the path spelled a slash %2F (kept encoded in `path`, unless a
                         * dot segment removed it: the request is refused all the same) */
} sg_request;

/** Returns the first header named `name` (case-insensitive), or NULL. */
/* Where a request came from (the carrier's addresses), for the variables, the status endpoint's
 * allow list and logs. */
/* What a TLS connection negotiated, for the backend's SSL_* variables and req.tls. */
typedef struct sg_tls_info {
    const char *protocol; /* static (OpenSSL's): "TLSv1.3" */
    char cipher[64];
    char sni[256];            /* "" without SNI */
    bool client_verify_asked; /* the listener asks for client certificates */
    char verify[128];         /* "NONE", "SUCCESS" or "FAILED:reason" (mod_ssl's values) */
    char *s_dn, *i_dn;        /* owned, RFC 2253; NULL without a client certificate */
    char serial[80];          /* hex */
    char *cert_pem;           /* owned: with export_client_cert, else NULL */
} sg_tls_info;

typedef struct sg_client {
    char peer[80]; /* "ip:port" for logs */
    char remote_addr[64];
    int remote_port;
    char server_addr[64];
    int server_port;
    const sg_tls_info *tls; /* NULL on a plain connection (or before its handshake ended) */
    bool redirect_https;    /* its listener sends every request to https:// */
} sg_client;

const sg_req_header *sg_request_header(const sg_request *r, const char *name);

#endif
