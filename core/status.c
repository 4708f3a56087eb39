/*
 * status.c: the status endpoint's renderer (scgi-lua(8) "STATUS ENDPOINT"). One pass over a
 * sg_status_view produces JSON, Prometheus text format 0.0.4 or a small self-contained HTML page.
 * Everything that comes from the config or from a backend (URLs, names, paths, last errors) is
 * escaped for the target format. Pure: it only appends to the caller's buffer; no I/O, no logging,
 * no access control.
 */
#include "status.h"

#include <arpa/inet.h>

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

/* ------------------------------------------------------------------------------------------ */
/* Format selection                                                                           */

static const struct {
    const char *name;
    enum sg_status_format f;
} formats[] = {
    { "json", SG_STATUS_JSON },
    { "prometheus", SG_STATUS_PROMETHEUS },
    { "html", SG_STATUS_HTML },
};

int sg_status_format_parse(const char *query, size_t len)
{
    if (!query)
        return SG_STATUS_JSON;
    if (len && query[0] == '?') { /* tolerate the raw "?..." part of a request-target */
        query++;
        len--;
    }
    size_t i = 0;
    while (i < len) {
        size_t start = i;
        while (i < len && query[i] != '&')
            i++;
        const char *p = query + start;
        size_t n = i - start;
        i++; /* past '&' */
        if (n < 6 || memcmp(p, "format", 6) != 0 || (n > 6 && p[6] != '='))
            continue; /* another parameter (or "formatx=...") */
        if (n == 6)
            return -1; /* "format" without a value */
        /* the first format= decides; an empty or unknown value is an error, not a fallback */
        for (size_t k = 0; k < SG_ARRAY_LEN(formats); k++)
            if (sg_strieq(p + 7, n - 7, formats[k].name))
                return (int)formats[k].f;
        return -1;
    }
    return SG_STATUS_JSON;
}

const char *sg_status_content_type(enum sg_status_format f)
{
    switch (f) {
    case SG_STATUS_PROMETHEUS:
        return "text/plain; version=0.0.4; charset=utf-8";
    case SG_STATUS_HTML:
        return "text/html; charset=utf-8";
    case SG_STATUS_JSON:
    default:
        return "application/json";
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Backend rows: every balancer member, and every direct backend once, with its state         */

/*
 * A direct backend's counters belong to its URL (the member state registry keys them so), and
 * several routes may pass to one URL: such a backend is one row naming all its routes, so that
 * no row shows another route's requests as its own.
 */
typedef struct row {
    const sg_balancer *bal;       /* borrowed; NULL for a direct backend */
    const sg_route *route;        /* borrowed: a direct backend's first route (see same_backend) */
    const sg_lb_member *m;        /* borrowed; NULL for a direct backend */
    const sg_member_check *check; /* borrowed; NULL when the member has no active check */
    const char *url;              /* borrowed */
    const sg_member_state *st;    /* borrowed; never NULL (zero_state stands in) */
    const char *state;            /* static */
    double error_left;            /* seconds until the error state ends, 0 if not in error */
    bool up;
} row;

/* A member or route not (yet) given a state by the server is shown with zero counters. */
static const sg_member_state zero_state;

/*
 * A member's state, most severe first (the first that applies wins):
 *   "disabled"     +D: never chosen, not even by its sticky route;
 *   "error"        out of service until error_until (failed connect, bad response);
 *   "check-failed" the active health check says down;
 *   "draining"     +N: no new requests, sticky ones still go;
 *   "standby"      +H and otherwise healthy: used only when no ordinary member is usable;
 *   "ok".
 * Administrative states come first because they persist, error and check-failed end by
 * themselves. "up" (the Prometheus gauge) is 1 for ok, standby and draining: the member
 * serves requests.
 */
static const char *member_state(unsigned flags, const sg_member_state *st, double now)
{
    if (flags & SG_MEMBER_DISABLED)
        return "disabled";
    if (st->error_until > now)
        return "error";
    if (st->check_failed)
        return "check-failed";
    if (flags & SG_MEMBER_DRAIN)
        return "draining";
    if (flags & SG_MEMBER_HOT_STANDBY)
        return "standby";
    return "ok";
}

static void row_finish(row *r, unsigned flags, double now)
{
    if (r->m)
        r->state = member_state(flags, r->st, now);
    else /* direct backends have no flags and no health check */
        r->state = r->st->error_until > now ? "error" : "ok";
    r->error_left = r->st->error_until > now ? ceil(r->st->error_until - now) : 0;
    r->up = strcmp(r->state, "ok") == 0 || strcmp(r->state, "standby") == 0 ||
            strcmp(r->state, "draining") == 0;
}

static bool is_direct(const sg_route *rt)
{
    return rt->balancer == NULL;
}

static const char *direct_url(const sg_route *rt)
{
    if (rt->be.text)
        return rt->be.text;
    if (rt->text)
        return rt->text;
    return rt->st && rt->st->url ? rt->st->url : "";
}

/* Whether two direct routes pass to the same backend, i.e. share its counters. */
static bool same_backend(const sg_route *a, const sg_route *b)
{
    if (a->st && b->st)
        return a->st == b->st;
    return strcmp(direct_url(a), direct_url(b)) == 0;
}

/* Whether direct route i is the first (config order) to pass to its backend. */
static bool first_of_backend(const sg_config *cfg, size_t i)
{
    for (size_t j = 0; j < i; j++)
        if (is_direct(&cfg->routes[j]) && same_backend(&cfg->routes[j], &cfg->routes[i]))
            return false;
    return true;
}

/* All rows: balancers (config order, members in order) first, then each direct backend once,
 * in the order of the first route passing to it. */
static row *collect_rows(const sg_status_view *v, size_t *nrows)
{
    const sg_config *cfg = v->cfg;
    size_t n = 0;
    *nrows = 0;
    if (!cfg)
        return NULL;
    for (size_t b = 0; b < cfg->nbalancers; b++)
        n += cfg->balancers[b].lb.nmembers;
    for (size_t i = 0; i < cfg->nroutes; i++)
        n += is_direct(&cfg->routes[i]) && first_of_backend(cfg, i);
    if (!n)
        return NULL;
    row *rows = sg_xcalloc(n, sizeof *rows);
    size_t k = 0;
    for (size_t b = 0; b < cfg->nbalancers; b++) {
        const sg_balancer *bal = &cfg->balancers[b];
        for (size_t i = 0; i < bal->lb.nmembers; i++) {
            const sg_lb_member *m = &bal->lb.members[i];
            row *r = &rows[k++];
            r->bal = bal;
            r->m = m;
            r->st = m->st ? m->st : &zero_state;
            r->url = m->url ? m->url : (r->st->url ? r->st->url : "");
            if (bal->checks && bal->checks[i].interval > 0)
                r->check = &bal->checks[i];
            row_finish(r, m->flags, v->now);
        }
    }
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const sg_route *rt = &cfg->routes[i];
        if (!is_direct(rt) || !first_of_backend(cfg, i))
            continue;
        row *r = &rows[k++];
        r->route = rt;
        r->st = rt->st ? rt->st : &zero_state;
        r->url = direct_url(rt);
        row_finish(r, 0, v->now);
    }
    *nrows = k;
    return rows;
}

/* last_error is a fixed array: never trust it to be terminated. */
static size_t last_error_len(const sg_member_state *st)
{
    return strnlen(st->last_error, sizeof st->last_error);
}

static const char *method_name(enum sg_lb_method m)
{
    switch (m) {
    case SG_LB_BYREQUESTS:
        return "byrequests";
    case SG_LB_BYTRAFFIC:
        return "bytraffic";
    case SG_LB_BYBUSYNESS:
        return "bybusyness";
    case SG_LB_LUA:
        return "lua";
    }
    return "unknown";
}

/* "+HDNI" as in the config's `status`, "" when no flag is set. */
static void flags_text(unsigned flags, char out[8])
{
    size_t n = 0;
    if (flags &
        (SG_MEMBER_HOT_STANDBY | SG_MEMBER_DISABLED | SG_MEMBER_DRAIN | SG_MEMBER_IGNORE_ERRORS))
        out[n++] = '+';
    if (flags & SG_MEMBER_HOT_STANDBY)
        out[n++] = 'H';
    if (flags & SG_MEMBER_DISABLED)
        out[n++] = 'D';
    if (flags & SG_MEMBER_DRAIN)
        out[n++] = 'N';
    if (flags & SG_MEMBER_IGNORE_ERRORS)
        out[n++] = 'I';
    out[n] = '\0';
}

static double uptime(const sg_status_view *v)
{
    double up = v->now - v->stats->started;
    return up > 0 ? floor(up * 1000) / 1000 : 0; /* milliseconds are plenty */
}

static uint64_t latency_count(const sg_stats *s)
{
    uint64_t n = s->latency_over;
    for (int i = 0; i < SG_STATS_BUCKETS; i++)
        n += s->latency[i];
    return n;
}

/*
 * Numbers: integral values print without a fraction (JSON consumers and Prometheus both read
 * "3" as 3), others with 15 significant digits, which round-trips the decimal bounds exactly.
 * JSON has no NaN or infinity: they become null there.
 */
static void put_num(sg_buf *o, double d, bool json)
{
    if (isnan(d))
        sg_buf_append_str(o, json ? "null" : "NaN");
    else if (isinf(d))
        sg_buf_append_str(o, json ? "null" : d > 0 ? "+Inf" : "-Inf");
    else if (d == floor(d) && fabs(d) < 9007199254740992.0) /* 2^53: exact integers */
        sg_buf_appendf(o, "%.0f", d);
    else
        sg_buf_appendf(o, "%.15g", d);
}

static void put_u64(sg_buf *o, uint64_t n)
{
    sg_buf_appendf(o, "%" PRIu64, n);
}

/* ------------------------------------------------------------------------------------------ */
/* JSON                                                                                       */

/* A JSON string: quote, backslash and control characters escaped, bytes >= 0x80 as they are. */
static void json_strn(sg_buf *o, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t plain = 0; /* start of the bytes not yet appended (copied in runs, not one by one) */
    sg_buf_append(o, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[7] = "\\";
        size_t elen = 2;
        if (c == '"' || c == '\\')
            esc[1] = (char)c;
        else if (c == '\n')
            esc[1] = 'n';
        else if (c == '\r')
            esc[1] = 'r';
        else if (c == '\t')
            esc[1] = 't';
        else if (c < 0x20) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            elen = 6;
        } else
            continue;
        sg_buf_append(o, s + plain, i - plain);
        sg_buf_append(o, esc, elen);
        plain = i + 1;
    }
    sg_buf_append(o, s + plain, n - plain);
    sg_buf_append(o, "\"", 1);
}

/* A JSON string, or null for NULL. */
static void json_str(sg_buf *o, const char *s)
{
    if (s)
        json_strn(o, s, strlen(s));
    else
        sg_buf_append_str(o, "null");
}

/* Counters and state shared by balancer members and direct backends. */
static void json_backend_fields(sg_buf *o, const row *r)
{
    const sg_member_state *st = r->st;
    size_t elen = last_error_len(st);
    sg_buf_append_str(o, "\"state\":");
    json_str(o, r->state);
    sg_buf_append_str(o, ",\"error_seconds_left\":");
    put_num(o, r->error_left, true);
    sg_buf_appendf(o, ",\"busy\":%u,\"requests\":", st->busy);
    put_u64(o, st->requests);
    sg_buf_append_str(o, ",\"failures\":");
    put_u64(o, st->failures);
    sg_buf_append_str(o, ",\"bytes_to\":");
    put_u64(o, st->bytes_to);
    sg_buf_append_str(o, ",\"bytes_from\":");
    put_u64(o, st->bytes_from);
    sg_buf_append_str(o, ",\"last_error\":");
    if (elen)
        json_strn(o, st->last_error, elen);
    else
        sg_buf_append_str(o, "null");
    sg_buf_append_str(o, ",\"last_check\":");
    if (st->last_check > 0)
        put_num(o, st->last_check, true);
    else
        sg_buf_append_str(o, "null");
}

static void json_member(sg_buf *o, const row *r)
{
    char flags[8];
    flags_text(r->m->flags, flags);
    json_str(o, r->url);
    sg_buf_append_str(o, ":{\"route\":");
    json_str(o, r->m->route);
    sg_buf_appendf(o, ",\"loadfactor\":%d,\"lbset\":%d,\"flags\":", r->m->loadfactor, r->m->lbset);
    json_str(o, flags);
    sg_buf_append_str(o, ",\"check\":");
    if (r->check) {
        sg_buf_append_str(o, "{\"interval\":");
        put_num(o, r->check->interval, true);
        sg_buf_append_str(o, ",\"path\":");
        json_str(o, r->check->path);
        sg_buf_append_str(o, "}");
    } else {
        sg_buf_append_str(o, "null");
    }
    sg_buf_append_str(o, ",");
    json_backend_fields(o, r);
    sg_buf_append_str(o, "}");
}

static void render_json(const sg_status_view *v, const row *rows, size_t nrows, sg_buf *o)
{
    const sg_stats *s = v->stats;
    const sg_config *cfg = v->cfg;

    sg_buf_append_str(o, "{\"version\":");
    json_str(o, v->version ? v->version : SG_VERSION);
    sg_buf_appendf(o, ",\"pid\":%d,\"uptime_seconds\":", v->pid);
    put_num(o, uptime(v), true);
    sg_buf_appendf(o, ",\"generation\":%u,\"reloads\":{\"ok\":", v->generation);
    put_u64(o, s->reloads_ok);
    sg_buf_append_str(o, ",\"failed\":");
    put_u64(o, s->reloads_failed);
    sg_buf_appendf(o, "},\"connections\":{\"open\":%zu,\"total\":", v->connections_open);
    put_u64(o, s->connections_total);
    sg_buf_append_str(o, "},\"requests\":{\"total\":");
    put_u64(o, s->requests_total);
    for (int c = 1; c <= 5; c++) {
        sg_buf_appendf(o, ",\"%dxx\":", c);
        put_u64(o, s->by_class[c]);
    }

    /* cumulative buckets, as Prometheus has them, so both outputs read the same way */
    sg_buf_append_str(o, "},\"latency_seconds\":{\"buckets\":[");
    uint64_t cum = 0;
    for (int i = 0; i < SG_STATS_BUCKETS; i++) {
        cum += s->latency[i];
        sg_buf_append_str(o, i ? ",{\"le\":" : "{\"le\":");
        put_num(o, sg_stats_bounds[i], true);
        sg_buf_append_str(o, ",\"count\":");
        put_u64(o, cum);
        sg_buf_append_str(o, "}");
    }
    sg_buf_append_str(o, ",{\"le\":\"+Inf\",\"count\":");
    put_u64(o, cum + s->latency_over);
    sg_buf_append_str(o, "}],\"sum\":");
    put_num(o, s->latency_sum, true);
    sg_buf_append_str(o, ",\"count\":");
    put_u64(o, latency_count(s));
    sg_buf_append_str(o, "},\"balancers\":{");

    size_t k = 0; /* rows are ordered as the balancers and their members */
    for (size_t b = 0; cfg && b < cfg->nbalancers; b++) {
        const sg_balancer *bal = &cfg->balancers[b];
        if (b)
            sg_buf_append_str(o, ",");
        json_str(o, bal->name ? bal->name : "");
        sg_buf_append_str(o, ":{\"method\":");
        json_str(o, method_name(bal->lb.method));
        sg_buf_append_str(o, ",\"members\":{");
        for (size_t i = 0; i < bal->lb.nmembers; i++, k++) {
            if (i)
                sg_buf_append_str(o, ",");
            json_member(o, &rows[k]);
        }
        sg_buf_append_str(o, "}}");
    }

    /* direct backends by URL, each with the routes passing to it; a route names its backend */
    sg_buf_append_str(o, "},\"backends\":{");
    for (size_t first = k; k < nrows; k++) {
        const row *r = &rows[k];
        if (k > first)
            sg_buf_append_str(o, ",");
        json_str(o, r->url);
        sg_buf_append_str(o, ":{\"routes\":[");
        bool any = false;
        for (size_t i = 0; i < cfg->nroutes; i++) {
            const sg_route *rt = &cfg->routes[i];
            if (is_direct(rt) && same_backend(rt, r->route)) {
                sg_buf_appendf(o, "%s%d", any ? "," : "", rt->index);
                any = true;
            }
        }
        sg_buf_append_str(o, "],");
        json_backend_fields(o, r);
        sg_buf_append_str(o, "}");
    }

    sg_buf_append_str(o, "},\"routes\":[");
    for (size_t i = 0; cfg && i < cfg->nroutes; i++) {
        const sg_route *rt = &cfg->routes[i];
        sg_buf_appendf(o, "%s{\"index\":%d,\"path\":", i ? "," : "", rt->index);
        json_str(o, rt->path);
        sg_buf_append_str(o, ",\"pass\":");
        json_str(o, rt->text);
        if (is_direct(rt)) {
            sg_buf_append_str(o, ",\"backend\":");
            json_str(o, direct_url(rt));
        } else {
            sg_buf_append_str(o, ",\"balancer\":");
            json_str(o, rt->balancer->name);
        }
        sg_buf_append_str(o, "}");
    }
    sg_buf_append_str(o, "]}\n");
    assert(k == nrows && "status rows out of step with the config");
}

/* ------------------------------------------------------------------------------------------ */
/* Prometheus text format 0.0.4                                                               */

/* A label value: backslash, double quote and newline escaped, everything else as it is. */
static void prom_label(sg_buf *o, const char *s)
{
    size_t plain = 0, i = 0;
    for (; s[i]; i++) {
        const char *esc;
        if (s[i] == '\\')
            esc = "\\\\";
        else if (s[i] == '"')
            esc = "\\\"";
        else if (s[i] == '\n')
            esc = "\\n";
        else
            continue;
        sg_buf_append(o, s + plain, i - plain);
        sg_buf_append_str(o, esc);
        plain = i + 1;
    }
    sg_buf_append(o, s + plain, i - plain);
}

/* HELP and TYPE, once per family and before its samples (help texts are static, no escaping). */
static void prom_family(sg_buf *o, const char *name, const char *type, const char *help)
{
    sg_buf_appendf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The labels that identify a backend row: its balancer and URL, or (a direct backend) its URL
 * alone; which routes use it is in scgi_lua_route_info. */
static void prom_row_labels(sg_buf *o, const row *r)
{
    if (r->bal) {
        sg_buf_append_str(o, "{balancer=\"");
        prom_label(o, r->bal->name ? r->bal->name : "");
        sg_buf_append_str(o, "\",member=\"");
    } else {
        sg_buf_append_str(o, "{member=\"");
    }
    prom_label(o, r->url);
    sg_buf_append_str(o, "\"} ");
}

enum row_metric { RM_UP, RM_BUSY, RM_REQUESTS, RM_FAILURES, RM_BYTES_TO, RM_BYTES_FROM };

static const struct {
    enum row_metric which;
    const char *name, *type, *help;
} row_families[] = {
    { RM_UP, "scgi_lua_member_up", "gauge",
      "1 if the backend serves requests (state ok, standby or draining), else 0." },
    { RM_BUSY, "scgi_lua_member_busy", "gauge", "Requests in flight to the backend." },
    { RM_REQUESTS, "scgi_lua_member_requests_total", "counter", "Requests sent to the backend." },
    { RM_FAILURES, "scgi_lua_member_failures_total", "counter",
      "Failures of the backend (connect, timeout, bad response, health check)." },
    { RM_BYTES_TO, "scgi_lua_member_sent_bytes_total", "counter", "Bytes sent to the backend." },
    { RM_BYTES_FROM, "scgi_lua_member_received_bytes_total", "counter",
      "Bytes received from the backend." },
};

static void render_prometheus(const sg_status_view *v, const row *rows, size_t nrows, sg_buf *o)
{
    const sg_stats *s = v->stats;

    prom_family(o, "scgi_lua_build_info", "gauge", "Always 1; the version is a label.");
    sg_buf_append_str(o, "scgi_lua_build_info{version=\"");
    prom_label(o, v->version ? v->version : SG_VERSION);
    sg_buf_append_str(o, "\"} 1\n");

    prom_family(o, "scgi_lua_uptime_seconds", "gauge", "Seconds since the gateway started.");
    sg_buf_append_str(o, "scgi_lua_uptime_seconds ");
    put_num(o, uptime(v), false);
    sg_buf_append_str(o, "\n");

    prom_family(o, "scgi_lua_config_generation", "gauge",
                "Generation of the configuration in use (1 at start, +1 per reload).");
    sg_buf_appendf(o, "scgi_lua_config_generation %u\n", v->generation);

    prom_family(o, "scgi_lua_reloads_total", "counter", "Configuration reloads by result.");
    sg_buf_appendf(o, "scgi_lua_reloads_total{result=\"ok\"} %" PRIu64 "\n", s->reloads_ok);
    sg_buf_appendf(o, "scgi_lua_reloads_total{result=\"failed\"} %" PRIu64 "\n", s->reloads_failed);

    prom_family(o, "scgi_lua_connections_open", "gauge", "Client connections open now.");
    sg_buf_appendf(o, "scgi_lua_connections_open %zu\n", v->connections_open);

    prom_family(o, "scgi_lua_connections_total", "counter", "Client connections accepted.");
    sg_buf_appendf(o, "scgi_lua_connections_total %" PRIu64 "\n", s->connections_total);

    prom_family(o, "scgi_lua_requests_total", "counter", "Requests answered, by status class.");
    for (int c = 1; c <= 5; c++)
        sg_buf_appendf(o, "scgi_lua_requests_total{class=\"%dxx\"} %" PRIu64 "\n", c,
                       s->by_class[c]);

    prom_family(o, "scgi_lua_request_duration_seconds", "histogram",
                "Time from the first byte of the request head (the accept, for a "
                "connection's first request) to the end of the response.");
    uint64_t cum = 0;
    for (int i = 0; i < SG_STATS_BUCKETS; i++) {
        cum += s->latency[i];
        sg_buf_append_str(o, "scgi_lua_request_duration_seconds_bucket{le=\"");
        put_num(o, sg_stats_bounds[i], false);
        sg_buf_appendf(o, "\"} %" PRIu64 "\n", cum);
    }
    cum += s->latency_over;
    sg_buf_appendf(o, "scgi_lua_request_duration_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n", cum);
    sg_buf_append_str(o, "scgi_lua_request_duration_seconds_sum ");
    put_num(o, s->latency_sum, false);
    sg_buf_appendf(o, "\nscgi_lua_request_duration_seconds_count %" PRIu64 "\n", cum);

    /* what each route passes to: the join between routes and the backend series below */
    const sg_config *cfg = v->cfg;
    if (cfg && cfg->nroutes) {
        prom_family(o, "scgi_lua_route_info", "gauge",
                    "Always 1; a route's index, path prefix and its balancer or direct backend.");
        for (size_t i = 0; i < cfg->nroutes; i++) {
            const sg_route *rt = &cfg->routes[i];
            sg_buf_appendf(o, "scgi_lua_route_info{route=\"%d\",path=\"", rt->index);
            prom_label(o, rt->path ? rt->path : "");
            if (is_direct(rt)) {
                sg_buf_append_str(o, "\",member=\"");
                prom_label(o, direct_url(rt));
            } else {
                sg_buf_append_str(o, "\",balancer=\"");
                prom_label(o, rt->balancer->name ? rt->balancer->name : "");
            }
            sg_buf_append_str(o, "\"} 1\n");
        }
    }

    /* a family's samples must be contiguous: families outside, backends inside */
    for (size_t f = 0; nrows && f < SG_ARRAY_LEN(row_families); f++) {
        prom_family(o, row_families[f].name, row_families[f].type, row_families[f].help);
        for (size_t i = 0; i < nrows; i++) {
            const sg_member_state *st = rows[i].st;
            sg_buf_append_str(o, row_families[f].name);
            prom_row_labels(o, &rows[i]);
            switch (row_families[f].which) {
            case RM_UP:
                sg_buf_append_str(o, rows[i].up ? "1" : "0");
                break;
            case RM_BUSY:
                sg_buf_appendf(o, "%u", st->busy);
                break;
            case RM_REQUESTS:
                put_u64(o, st->requests);
                break;
            case RM_FAILURES:
                put_u64(o, st->failures);
                break;
            case RM_BYTES_TO:
                put_u64(o, st->bytes_to);
                break;
            case RM_BYTES_FROM:
                put_u64(o, st->bytes_from);
                break;
            }
            sg_buf_append_str(o, "\n");
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* HTML                                                                                       */

/* Text or attribute content: markup characters as entities, control characters (which HTML
 * does not allow) as U+FFFD, bytes >= 0x80 as they are (the page is UTF-8). */
static void html_strn(sg_buf *o, const char *s, size_t n)
{
    size_t plain = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc;
        switch (c) {
        case '&':
            esc = "&amp;";
            break;
        case '<':
            esc = "&lt;";
            break;
        case '>':
            esc = "&gt;";
            break;
        case '"':
            esc = "&quot;";
            break;
        case '\'':
            esc = "&#39;";
            break;
        default:
            esc = (c < 0x20 && c != '\t' && c != '\n') || c == 0x7f ? "&#xFFFD;" : NULL;
        }
        if (!esc)
            continue;
        sg_buf_append(o, s + plain, i - plain);
        sg_buf_append_str(o, esc);
        plain = i + 1;
    }
    sg_buf_append(o, s + plain, n - plain);
}

static void html_str(sg_buf *o, const char *s)
{
    if (s)
        html_strn(o, s, strlen(s));
}

static void html_kv_u64(sg_buf *o, const char *k, uint64_t n)
{
    sg_buf_appendf(o, "<tr><th class=\"k\">%s</th><td>%" PRIu64 "</td></tr>\n", k, n);
}

/* "3d 04:05:06" */
static void html_duration(sg_buf *o, double secs)
{
    uint64_t t = (uint64_t)secs;
    if (t >= 86400)
        sg_buf_appendf(o, "%" PRIu64 "d ", t / 86400);
    sg_buf_appendf(o, "%02u:%02u:%02u", (unsigned)(t % 86400 / 3600), (unsigned)(t % 3600 / 60),
                   (unsigned)(t % 60));
}

static void html_backend_cells(sg_buf *o, const row *r, double now)
{
    const sg_member_state *st = r->st;
    sg_buf_appendf(o, "<td class=\"st %s\">%s", r->state, r->state);
    if (r->error_left > 0)
        sg_buf_appendf(o, " (%.0f s)", r->error_left);
    sg_buf_appendf(o,
                   "</td><td>%u</td><td>%" PRIu64 "</td><td>%" PRIu64 "</td><td>%" PRIu64
                   "</td><td>%" PRIu64 "</td><td class=\"err\">",
                   st->busy, st->requests, st->failures, st->bytes_to, st->bytes_from);
    html_strn(o, st->last_error, last_error_len(st));
    sg_buf_append_str(o, "</td><td>");
    if (st->last_check > 0 && now >= st->last_check)
        sg_buf_appendf(o, "%.0f s ago", floor(now - st->last_check));
    else if (st->last_check > 0)
        sg_buf_append_str(o, "just now");
    else
        sg_buf_append_str(o, "&ndash;");
    sg_buf_append_str(o, "</td>");
}

static const char html_head[] =
    "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<title>scgi-lua status</title>\n<style>\n"
    "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}\n"
    "table{border-collapse:collapse;margin:.5em 0 1.5em}\n"
    "th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}\n"
    "th{background:#f3f3f3}td.url,td.err,th.k{text-align:left}\n"
    "td.url{font-family:monospace}td.err{max-width:30em;overflow-wrap:anywhere}\n"
    ".st{font-weight:bold;text-align:left}.ok{color:#080}.standby{color:#06c}\n"
    ".draining{color:#a60}.error,.check-failed{color:#c00}.disabled{color:#777}\n"
    "</style>\n</head>\n<body>\n<h1>scgi-lua status</h1>\n";

static const char html_cols[] =
    "<th>State</th><th>Busy</th><th>Requests</th><th>Failures</th><th>Bytes to</th>"
    "<th>Bytes from</th><th>Last error</th><th>Last check</th></tr>\n";

static void render_html(const sg_status_view *v, const row *rows, size_t nrows, sg_buf *o)
{
    const sg_stats *s = v->stats;
    const sg_config *cfg = v->cfg;
    static const char *const classes[] = { "", "1xx", "2xx", "3xx", "4xx", "5xx" };

    sg_buf_append_str(o, html_head);
    sg_buf_append_str(o, "<table>\n<tr><th class=\"k\">Version</th><td>");
    html_str(o, v->version ? v->version : SG_VERSION);
    sg_buf_appendf(o, "</td></tr>\n<tr><th class=\"k\">PID</th><td>%d</td></tr>\n", v->pid);
    sg_buf_append_str(o, "<tr><th class=\"k\">Uptime</th><td>");
    html_duration(o, uptime(v));
    sg_buf_appendf(o, "</td></tr>\n<tr><th class=\"k\">Config generation</th><td>%u</td></tr>\n",
                   v->generation);
    html_kv_u64(o, "Reloads ok", s->reloads_ok);
    html_kv_u64(o, "Reloads failed", s->reloads_failed);
    html_kv_u64(o, "Connections open", v->connections_open);
    html_kv_u64(o, "Connections total", s->connections_total);
    html_kv_u64(o, "Requests total", s->requests_total);
    for (int c = 1; c <= 5; c++) {
        char k[32];
        snprintf(k, sizeof k, "Requests %s", classes[c]);
        html_kv_u64(o, k, s->by_class[c]);
    }
    uint64_t count = latency_count(s);
    sg_buf_append_str(o, "<tr><th class=\"k\">Mean latency</th><td>");
    if (count)
        sg_buf_appendf(o, "%.3f ms", s->latency_sum / (double)count * 1000);
    else
        sg_buf_append_str(o, "&ndash;");
    sg_buf_append_str(o, "</td></tr>\n</table>\n");

    sg_buf_append_str(o, "<h2>Latency</h2>\n<table>\n<tr><th>&le; seconds</th>");
    for (int i = 0; i < SG_STATS_BUCKETS; i++) {
        sg_buf_append_str(o, "<th>");
        put_num(o, sg_stats_bounds[i], false);
        sg_buf_append_str(o, "</th>");
    }
    sg_buf_append_str(o, "<th>all</th></tr>\n<tr><th>requests</th>");
    uint64_t cum = 0;
    for (int i = 0; i < SG_STATS_BUCKETS; i++) {
        cum += s->latency[i];
        sg_buf_appendf(o, "<td>%" PRIu64 "</td>", cum);
    }
    sg_buf_appendf(o, "<td>%" PRIu64 "</td></tr>\n</table>\n", cum + s->latency_over);

    size_t k = 0;
    for (size_t b = 0; cfg && b < cfg->nbalancers; b++) {
        const sg_balancer *bal = &cfg->balancers[b];
        sg_buf_append_str(o, "<h2>Balancer <code>");
        html_str(o, bal->name);
        sg_buf_appendf(o,
                       "</code> (%s)</h2>\n<table>\n<tr><th>Member</th><th>Route</th>"
                       "<th>Load factor</th><th>Set</th><th>Flags</th>%s",
                       method_name(bal->lb.method), html_cols);
        for (size_t i = 0; i < bal->lb.nmembers; i++, k++) {
            const row *r = &rows[k];
            char flags[8];
            flags_text(r->m->flags, flags);
            sg_buf_append_str(o, "<tr><td class=\"url\">");
            html_str(o, r->url);
            sg_buf_append_str(o, "</td><td class=\"url\">");
            html_str(o, r->m->route);
            sg_buf_appendf(o, "</td><td>%d</td><td>%d</td><td>%s</td>", r->m->loadfactor,
                           r->m->lbset, flags);
            html_backend_cells(o, r, v->now);
            sg_buf_append_str(o, "</tr>\n");
        }
        sg_buf_append_str(o, "</table>\n");
    }

    if (k < nrows) {
        sg_buf_appendf(o,
                       "<h2>Direct backends</h2>\n<table>\n<tr><th>Backend</th><th>Routes</th>%s",
                       html_cols);
        for (; k < nrows; k++) {
            const row *r = &rows[k];
            sg_buf_append_str(o, "<tr><td class=\"url\">");
            html_str(o, r->url);
            sg_buf_append_str(o, "</td><td class=\"url\">");
            bool any = false;
            for (size_t i = 0; i < cfg->nroutes; i++) {
                const sg_route *rt = &cfg->routes[i];
                if (!is_direct(rt) || !same_backend(rt, r->route))
                    continue;
                sg_buf_appendf(o, "%s%d&nbsp;", any ? ", " : "", rt->index);
                html_str(o, rt->path ? rt->path : "(match)");
                any = true;
            }
            sg_buf_append_str(o, "</td>");
            html_backend_cells(o, r, v->now);
            sg_buf_append_str(o, "</tr>\n");
        }
        sg_buf_append_str(o, "</table>\n");
    }
    sg_buf_append_str(o, "</body>\n</html>\n");
}

/* ------------------------------------------------------------------------------------------ */

void sg_status_render(const sg_status_view *v, enum sg_status_format f, sg_buf *out)
{
    assert(v && v->stats && out && "sg_status_render needs a view with stats and a buffer");
    size_t nrows;
    row *rows = collect_rows(v, &nrows);
    switch (f) {
    case SG_STATUS_PROMETHEUS:
        render_prometheus(v, rows, nrows, out);
        break;
    case SG_STATUS_HTML:
        render_html(v, rows, nrows, out);
        break;
    case SG_STATUS_JSON:
    default:
        render_json(v, rows, nrows, out);
        break;
    }
    free(rows);
}

bool sg_status_allowed(const sg_config *cfg, const char *remote_addr)
{
    unsigned char addr[16];
    int fam = strchr(remote_addr, ':') ? AF_INET6 : AF_INET;
    if (inet_pton(fam, remote_addr, addr) != 1)
        return false;
    for (size_t i = 0; i < cfg->nstatus_allow; i++) {
        const sg_allow *a = &cfg->status_allow[i];
        if (a->family != fam)
            continue;
        int bits = a->prefix, k = 0;
        for (; bits >= 8; bits -= 8, k++)
            if (a->addr[k] != addr[k])
                break;
        if (bits >= 8)
            continue;
        if (bits == 0 || ((a->addr[k] ^ addr[k]) & (0xff << (8 - bits))) == 0)
            return true;
    }
    return false;
}
