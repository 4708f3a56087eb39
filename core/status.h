/*
 * status.h: the status endpoint's renderer (scgi-lua(8) "STATUS ENDPOINT" documents every field):
 * JSON, Prometheus text format 0.0.4 and a small read-only HTML page, from a snapshot the caller
 * fills. Pure: no I/O, no logging, no access control (conn.c checks `status.allow` before calling
 * it).
 */
#ifndef SG_STATUS_H
#define SG_STATUS_H

#include <stddef.h>

#include "buf.h"
#include "config.h"
#include "stats.h"

enum sg_status_format { SG_STATUS_JSON, SG_STATUS_PROMETHEUS, SG_STATUS_HTML };

typedef struct sg_status_view {
    const sg_stats *stats;
    const sg_config *cfg; /* routes and balancers with their member states */
    double now;           /* wall clock (epoch seconds) */
    unsigned generation;
    size_t connections_open;
    int pid;
    const char *version; /* SG_VERSION */
} sg_status_view;

/** Parses ?format=json|prometheus|html (default json); returns -1 for an unknown format. */
int sg_status_format_parse(const char *query, size_t len);
/** Content-Type for a format. */
const char *sg_status_content_type(enum sg_status_format f);
/** Whether `remote_addr` (text, IPv4 or IPv6) lies in one of the config's status.allow ranges. */
bool sg_status_allowed(const sg_config *cfg, const char *remote_addr);
/** Appends the rendering of `v` in format `f` to `out`. */
void sg_status_render(const sg_status_view *v, enum sg_status_format f, sg_buf *out);

#endif
