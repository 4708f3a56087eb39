/*
 * scgi.h: the SCGI wire format, both directions, as pure functions.
 *  - sg_scgi_vars: an ordered, duplicate-free variable set and its netstring encoding
 *    (CONTENT_LENGTH first, SCGI=1 second, as the SCGI spec requires).
 *  - sg_cgi_head: the CGI-style response head a backend sends back ("Name: value" lines,
 *    "\n" or "\r\n", optional HTTP status line), found and parsed without copying.
 * Nothing here does I/O or logs.
 */
#ifndef SG_SCGI_H
#define SG_SCGI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

typedef struct sg_scgi_var {
    size_t name_off, name_len;   /* into sg_scgi_vars.strings */
    size_t value_off, value_len; /* into sg_scgi_vars.strings */
    bool removed;
} sg_scgi_var;

typedef struct sg_scgi_vars {
    sg_scgi_var *v; /* owned */
    size_t n, cap;
    sg_buf strings; /* owned: every name and value, NUL-separated */
} sg_scgi_vars;

void sg_scgi_vars_init(sg_scgi_vars *vars);
void sg_scgi_vars_reset(sg_scgi_vars *vars);
void sg_scgi_vars_free(sg_scgi_vars *vars);
/** Sets `name` to `value`, replacing an earlier value in place (first position wins). */
void sg_scgi_set(sg_scgi_vars *vars, const char *name, size_t name_len, const char *value,
                 size_t value_len);
void sg_scgi_set_str(sg_scgi_vars *vars, const char *name, const char *value);
/** Appends a variable the caller knows is not set yet (no duplicate check). */
void sg_scgi_add(sg_scgi_vars *vars, const char *name, size_t name_len, const char *value,
                 size_t value_len);
/** Appends `sep` + `value` to an existing variable, or sets it. */
void sg_scgi_join(sg_scgi_vars *vars, const char *name, size_t name_len, const char *value,
                  size_t value_len, const char *sep);
void sg_scgi_remove(sg_scgi_vars *vars, const char *name, size_t name_len);
/** Returns the value of `name` (NUL-terminated, borrowed) or NULL. */
const char *sg_scgi_get(const sg_scgi_vars *vars, const char *name, size_t *value_len);

/**
 * Writes "HTTP_" + the upper-cased header name with '-' as '_' into `out` (room for
 * 5 + name_len + 1). Returns the length, or 0 when the name holds a character outside
 * [A-Za-z0-9-] and must not be passed (underscore smuggling, RFC 3875 §4.1.18).
 */
size_t sg_scgi_http_name(const char *name, size_t name_len, char *out);

/**
 * Appends the netstring for CONTENT_LENGTH=`content_length`, SCGI=1, then every variable
 * in order (skipping removed ones and any CONTENT_LENGTH/SCGI the set holds) to `out`.
 * A value holding a NUL is cut there, so client input can never break the framing.
 */
void sg_scgi_encode(const sg_scgi_vars *vars, uint64_t content_length, sg_buf *out);

/** Bytes "<len>:" payload "," takes. */
size_t sg_netstring_size(size_t len);

/* ---- response head ---- */

#define SG_CGI_MAX_HEADERS 128

typedef struct sg_cgi_header {
    const char *name; /* borrowed from the parsed buffer */
    size_t name_len;
    const char *value;
    size_t value_len;
} sg_cgi_header;

typedef struct sg_cgi_head {
    int status;         /* final status after the Status/Location rules */
    const char *reason; /* borrowed; may be NULL */
    size_t reason_len;
    int64_t content_length;                    /* -1 when absent */
    const sg_cgi_header *location;             /* borrowed pointer into headers[], or NULL */
    sg_cgi_header headers[SG_CGI_MAX_HEADERS]; /* passed-through headers, in order */
    size_t nheaders;
    size_t head_len; /* bytes of the head including the blank line */
} sg_cgi_head;

/**
 * Looks for the end of a response head in buf[0, len), resuming the scan at *scan (start
 * at 0). Returns the head length once a blank line is found, SG_AGAIN if more is needed,
 * or SG_ERR when `max` bytes hold no complete head.
 */
long sg_cgi_head_end(const char *buf, size_t len, size_t *scan, size_t max);

/**
 * Parses a complete head of `head_len` bytes (from sg_cgi_head_end). Hop-by-hop headers
 * (the fixed list, Connection, and every name a Connection header lists) and Status are not
 * copied to headers[]. A control byte other than tab (0x00-0x1f, 0x7f) anywhere in a line,
 * reason phrase included, is an error: such bytes must never reach a client. A 1xx status
 * parses like any other; what it means is the caller's decision. Returns SG_OK, or SG_ERR
 * with *err a static description ("invalid Status", "control character in header", ...).
 */
int sg_cgi_parse(const char *buf, size_t head_len, sg_cgi_head *h, const char **err);

/**
 * The one "no body" rule (RFC 9110 §6.4.1, RFC 9112 §6.3): false for 1xx, 204 and 304,
 * whose responses carry neither body bytes nor Content-Length / Transfer-Encoding.
 */
bool sg_http_status_has_body(int status);

/**
 * Whether body bytes follow the head of a response with `status` to a request that was
 * (`head_request`) or was not a HEAD. A HEAD response has no body but keeps the framing
 * headers a GET would get, so callers still ask sg_http_status_has_body for those.
 */
bool sg_http_response_has_body(int status, bool head_request);

/** The standard reason phrase for `status`, or "Unknown". */
const char *sg_http_reason(int status);

#endif
