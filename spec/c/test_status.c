/* Unit tests for core/status.c: a synthetic config (two balancers, direct routes, every member
 * state, hostile strings) rendered as JSON (checked by a strict parser and path look-ups), as
 * Prometheus text 0.0.4 (checked line by line against the format's rules) and as HTML
 * (escaping), plus the member state order and ?format= parsing. */
#include "../../core/status.c"
#include "test.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>

/* ------------------------------------------------------------------------------------------ */
/* A strict JSON parser (RFC 8259): validates, and finds a value by a path of keys            */

typedef struct jp {
    const char *p, *end;
    const char *err; /* first error, static */
    const char *at;  /* where */
} jp;

static bool j_fail(jp *j, const char *why)
{
    if (!j->err) {
        j->err = why;
        j->at = j->p;
    }
    return false;
}

static void j_ws(jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* A string at j->p; decoded into out (cap bytes, NUL-terminated, truncated) if out != NULL.
 * \u escapes decode to UTF-8 (BMP only: all this renderer produces). */
static bool j_string(jp *j, char *out, size_t cap, size_t *outlen)
{
    size_t n = 0;
#define PUT(ch)                                                                                    \
    do {                                                                                           \
        if (out && n + 1 < cap)                                                                    \
            out[n] = (char)(ch);                                                                   \
        n++;                                                                                       \
    } while (0)
    if (j->p >= j->end || *j->p != '"')
        return j_fail(j, "string expected");
    j->p++;
    for (;;) {
        if (j->p >= j->end)
            return j_fail(j, "unterminated string");
        unsigned char c = (unsigned char)*j->p++;
        if (c == '"')
            break;
        if (c < 0x20)
            return j_fail(j, "raw control character in string");
        if (c != '\\') {
            PUT(c);
            continue;
        }
        if (j->p >= j->end)
            return j_fail(j, "unterminated escape");
        c = (unsigned char)*j->p++;
        switch (c) {
        case '"':
        case '\\':
        case '/':
            PUT(c);
            break;
        case 'b':
            PUT('\b');
            break;
        case 'f':
            PUT('\f');
            break;
        case 'n':
            PUT('\n');
            break;
        case 'r':
            PUT('\r');
            break;
        case 't':
            PUT('\t');
            break;
        case 'u': {
            if (j->end - j->p < 4)
                return j_fail(j, "short \\u escape");
            unsigned u = 0;
            for (int i = 0; i < 4; i++) {
                int h = hexval((unsigned char)j->p[i]);
                if (h < 0)
                    return j_fail(j, "bad \\u escape");
                u = u * 16 + (unsigned)h;
            }
            j->p += 4;
            if (u < 0x80) {
                PUT(u);
            } else if (u < 0x800) {
                PUT(0xc0 | (u >> 6));
                PUT(0x80 | (u & 0x3f));
            } else {
                PUT(0xe0 | (u >> 12));
                PUT(0x80 | ((u >> 6) & 0x3f));
                PUT(0x80 | (u & 0x3f));
            }
            break;
        }
        default:
            return j_fail(j, "bad escape");
        }
    }
    if (out)
        out[n < cap ? n : cap - 1] = '\0';
    if (outlen)
        *outlen = n;
    return true;
#undef PUT
}

static bool j_digits(jp *j)
{
    const char *s = j->p;
    while (j->p < j->end && isdigit((unsigned char)*j->p))
        j->p++;
    return j->p > s;
}

static bool j_number(jp *j)
{
    if (j->p < j->end && *j->p == '-')
        j->p++;
    if (j->p < j->end && *j->p == '0')
        j->p++;
    else if (!j_digits(j))
        return j_fail(j, "bad number");
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (!j_digits(j))
            return j_fail(j, "digits expected after '.'");
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
            j->p++;
        if (!j_digits(j))
            return j_fail(j, "digits expected in exponent");
    }
    return true;
}

static bool j_lit(jp *j, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0)
        return j_fail(j, "bad literal");
    j->p += n;
    return true;
}

#define J_MAX_KEYS 64
#define J_KEY_LEN 256

static bool j_value(jp *j, int depth)
{
    if (depth > 32)
        return j_fail(j, "too deep");
    j_ws(j);
    if (j->p >= j->end)
        return j_fail(j, "value expected");
    switch (*j->p) {
    case '{': {
        /* keys must be unique: the renderer never has a reason to repeat one */
        static char keys[33][J_MAX_KEYS][J_KEY_LEN];
        size_t nkeys = 0;
        j->p++;
        j_ws(j);
        if (j->p < j->end && *j->p == '}') {
            j->p++;
            return true;
        }
        for (;;) {
            j_ws(j);
            char key[J_KEY_LEN];
            if (!j_string(j, key, sizeof key, NULL))
                return false;
            for (size_t i = 0; i < nkeys && i < J_MAX_KEYS; i++)
                if (strcmp(keys[depth][i], key) == 0)
                    return j_fail(j, "duplicate key");
            if (nkeys < J_MAX_KEYS)
                memcpy(keys[depth][nkeys], key, sizeof key);
            nkeys++;
            j_ws(j);
            if (j->p >= j->end || *j->p != ':')
                return j_fail(j, "':' expected");
            j->p++;
            if (!j_value(j, depth + 1))
                return false;
            j_ws(j);
            if (j->p < j->end && *j->p == ',') {
                j->p++;
                continue;
            }
            if (j->p < j->end && *j->p == '}') {
                j->p++;
                return true;
            }
            return j_fail(j, "',' or '}' expected");
        }
    }
    case '[':
        j->p++;
        j_ws(j);
        if (j->p < j->end && *j->p == ']') {
            j->p++;
            return true;
        }
        for (;;) {
            if (!j_value(j, depth + 1))
                return false;
            j_ws(j);
            if (j->p < j->end && *j->p == ',') {
                j->p++;
                continue;
            }
            if (j->p < j->end && *j->p == ']') {
                j->p++;
                return true;
            }
            return j_fail(j, "',' or ']' expected");
        }
    case '"':
        return j_string(j, NULL, 0, NULL);
    case 't':
        return j_lit(j, "true");
    case 'f':
        return j_lit(j, "false");
    case 'n':
        return j_lit(j, "null");
    default:
        return j_number(j);
    }
}

/* Whole document: one value, then only whitespace. Returns NULL or the error. */
static const char *json_validate(const char *s, size_t n, size_t *at)
{
    jp j = { s, s + n, NULL, NULL };
    if (j_value(&j, 0)) {
        j_ws(&j);
        if (j.p != j.end)
            j_fail(&j, "trailing bytes");
    }
    if (at)
        *at = j.err ? (size_t)(j.at - s) : 0;
    return j.err;
}

/*
 * The value at a path in a (valid) document: each element is an object key, or "#N" for the
 * N-th array element. Returns a pointer to the value's first byte, or NULL if absent.
 */
static const char *jget(const char *doc, const char *const *path)
{
    jp j = { doc, doc + strlen(doc), NULL, NULL };
    j_ws(&j);
    for (; *path; path++) {
        if ((*path)[0] == '#') {
            long want = atol(*path + 1);
            if (*j.p != '[')
                return NULL;
            j.p++;
            for (long i = 0;; i++) {
                j_ws(&j);
                if (*j.p == ']')
                    return NULL;
                if (i == want)
                    break;
                if (!j_value(&j, 0))
                    return NULL;
                j_ws(&j);
                if (*j.p == ',')
                    j.p++;
            }
            continue;
        }
        if (*j.p != '{')
            return NULL;
        j.p++;
        for (;;) {
            j_ws(&j);
            if (*j.p == '}')
                return NULL;
            char key[J_KEY_LEN];
            if (!j_string(&j, key, sizeof key, NULL))
                return NULL;
            j_ws(&j);
            j.p++; /* ':' */
            j_ws(&j);
            if (strcmp(key, *path) == 0)
                break;
            if (!j_value(&j, 0))
                return NULL;
            j_ws(&j);
            if (*j.p == ',')
                j.p++;
        }
    }
    return j.p;
}

#define JGET(doc, ...) jget((doc), (const char *const[]){ __VA_ARGS__, NULL })

/* The decoded string at v ("<not a string>" otherwise), in a rotating static buffer. */
static const char *jstr(const char *v)
{
    static char bufs[4][512];
    static int k;
    char *out = bufs[k++ % 4];
    if (!v || *v != '"')
        return "<not a string>";
    jp j = { v, v + strlen(v), NULL, NULL };
    if (!j_string(&j, out, sizeof bufs[0], NULL))
        return "<bad string>";
    return out;
}

static bool jnull(const char *v)
{
    return v && strncmp(v, "null", 4) == 0;
}

/* The number at v as written (up to the next delimiter), for exact comparisons. */
static const char *jnum(const char *v)
{
    static char bufs[4][64];
    static int k;
    char *out = bufs[k++ % 4];
    size_t n = 0;
    if (!v)
        return "<absent>";
    while (v[n] && !strchr(",}] \n", v[n]) && n + 1 < sizeof bufs[0])
        n++;
    memcpy(out, v, n);
    out[n] = '\0';
    return out;
}

/* ------------------------------------------------------------------------------------------ */
/* Prometheus text format 0.0.4, checked line by line                                         */

#define P_MAX_FAMILIES 64
typedef struct pfam {
    char name[128];
    char type[16];
    bool help, typed, closed; /* closed: another family's samples came after this one's */
} pfam;

typedef struct pcheck {
    pfam fam[P_MAX_FAMILIES];
    size_t nfam;
    int cur; /* family of the previous sample, -1 none */
    char err[256];
} pcheck;

static bool p_fail(pcheck *c, size_t line, const char *fmt, ...)
{
    if (!c->err[0]) {
        int n = snprintf(c->err, sizeof c->err, "line %zu: ", line);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err + n, sizeof c->err - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return false;
}

static bool name_start(int ch)
{
    return isalpha(ch) || ch == '_' || ch == ':';
}

static bool name_char(int ch)
{
    return isalnum(ch) || ch == '_' || ch == ':';
}

static int p_find(pcheck *c, const char *name, size_t n)
{
    for (size_t i = 0; i < c->nfam; i++)
        if (strlen(c->fam[i].name) == n && memcmp(c->fam[i].name, name, n) == 0)
            return (int)i;
    return -1;
}

static int p_add(pcheck *c, const char *name, size_t n)
{
    int i = p_find(c, name, n);
    if (i >= 0 || c->nfam >= P_MAX_FAMILIES || n >= sizeof c->fam[0].name)
        return i;
    pfam *f = &c->fam[c->nfam];
    memset(f, 0, sizeof *f);
    memcpy(f->name, name, n);
    return (int)c->nfam++;
}

static bool ends_with(const char *s, size_t n, const char *suffix)
{
    size_t k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* The family a sample name belongs to (histograms own their _bucket/_sum/_count samples). */
static int p_family_of(pcheck *c, const char *name, size_t n)
{
    int i = p_find(c, name, n);
    if (i >= 0)
        return i;
    static const char *const suffixes[] = { "_bucket", "_sum", "_count" };
    for (size_t k = 0; k < 3; k++)
        if (ends_with(name, n, suffixes[k])) {
            i = p_find(c, name, n - strlen(suffixes[k]));
            if (i >= 0 && strcmp(c->fam[i].type, "histogram") == 0)
                return i;
        }
    return -1;
}

static bool p_value(const char *s, size_t n)
{
    if ((n == 4 && memcmp(s, "+Inf", 4) == 0) || (n == 4 && memcmp(s, "-Inf", 4) == 0) ||
        (n == 3 && memcmp(s, "NaN", 3) == 0))
        return true;
    char tmp[64];
    if (n == 0 || n >= sizeof tmp)
        return false;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    char *e;
    strtod(tmp, &e);
    return *e == '\0' && !isspace((unsigned char)tmp[0]);
}

static bool p_line(pcheck *c, const char *s, size_t n, size_t line)
{
    if (n == 0)
        return p_fail(c, line, "empty line");
    if (s[0] == '#') {
        /* "# HELP name text" / "# TYPE name type"; other comments are allowed */
        bool help = n > 7 && memcmp(s, "# HELP ", 7) == 0;
        bool type = n > 7 && memcmp(s, "# TYPE ", 7) == 0;
        if (!help && !type)
            return true;
        const char *nm = s + 7, *e = nm;
        if (!name_start((unsigned char)*e))
            return p_fail(c, line, "bad metric name in comment");
        while (e < s + n && name_char((unsigned char)*e))
            e++;
        if (e >= s + n || *e != ' ')
            return p_fail(c, line, "space expected after the name");
        int i = p_add(c, nm, (size_t)(e - nm));
        if (i < 0)
            return p_fail(c, line, "too many families");
        pfam *f = &c->fam[i];
        if (f->closed || (c->cur == i))
            return p_fail(c, line, "%s: HELP/TYPE after its samples", f->name);
        if (help) {
            if (f->help)
                return p_fail(c, line, "%s: HELP twice", f->name);
            f->help = true;
            return true;
        }
        if (f->typed)
            return p_fail(c, line, "%s: TYPE twice", f->name);
        size_t tl = (size_t)(s + n - (e + 1));
        if (tl >= sizeof f->type)
            return p_fail(c, line, "bad type");
        memcpy(f->type, e + 1, tl);
        f->type[tl] = '\0';
        if (strcmp(f->type, "counter") && strcmp(f->type, "gauge") &&
            strcmp(f->type, "histogram") && strcmp(f->type, "summary") &&
            strcmp(f->type, "untyped"))
            return p_fail(c, line, "unknown type \"%s\"", f->type);
        if (strcmp(f->type, "counter") == 0 && !ends_with(f->name, strlen(f->name), "_total"))
            return p_fail(c, line, "%s: counter not ending in _total", f->name);
        f->typed = true;
        return true;
    }
    /* sample: name [{label="value",...}] value */
    const char *p = s, *end = s + n;
    if (!name_start((unsigned char)*p))
        return p_fail(c, line, "bad metric name");
    while (p < end && name_char((unsigned char)*p))
        p++;
    int fi = p_family_of(c, s, (size_t)(p - s));
    if (fi < 0)
        return p_fail(c, line, "sample without HELP/TYPE");
    pfam *f = &c->fam[fi];
    if (!f->help || !f->typed)
        return p_fail(c, line, "%s: sample before HELP and TYPE", f->name);
    if (f->closed)
        return p_fail(c, line, "%s: samples not contiguous", f->name);
    if (c->cur >= 0 && c->cur != fi)
        c->fam[c->cur].closed = true;
    c->cur = fi;
    if (p < end && *p == '{') {
        p++;
        while (p < end && *p != '}') {
            if (!(isalpha((unsigned char)*p) || *p == '_'))
                return p_fail(c, line, "bad label name");
            while (p < end && (isalnum((unsigned char)*p) || *p == '_'))
                p++;
            if (end - p < 2 || p[0] != '=' || p[1] != '"')
                return p_fail(c, line, "=\" expected after a label name");
            p += 2;
            for (;;) {
                if (p >= end)
                    return p_fail(c, line, "unterminated label value");
                if (*p == '"')
                    break;
                if (*p == '\\') {
                    if (p + 1 >= end || !strchr("\\\"n", p[1]))
                        return p_fail(c, line, "bad escape in label value");
                    p += 2;
                    continue;
                }
                p++;
            }
            p++;
            if (p < end && *p == ',')
                p++;
            else if (p < end && *p != '}')
                return p_fail(c, line, "',' or '}' expected");
        }
        if (p >= end)
            return p_fail(c, line, "unterminated labels");
        p++;
    }
    if (p >= end || *p != ' ')
        return p_fail(c, line, "one space expected before the value");
    p++;
    const char *v = p;
    while (p < end && *p != ' ')
        p++;
    if (!p_value(v, (size_t)(p - v)))
        return p_fail(c, line, "bad value \"%.*s\"", (int)(p - v), v);
    if (p < end) /* optional integer timestamp (the renderer never writes one) */
        return p_fail(c, line, "unexpected timestamp");
    return true;
}

/* Returns NULL if `s` is valid exposition text, else a message (static buffer). */
static const char *prom_validate(const char *s, size_t n)
{
    static pcheck c;
    memset(&c, 0, sizeof c);
    c.cur = -1;
    if (n == 0 || s[n - 1] != '\n')
        return "output does not end with a newline";
    size_t line = 1;
    for (const char *p = s; p < s + n; line++) {
        const char *nl = memchr(p, '\n', (size_t)(s + n - p));
        if (!p_line(&c, p, (size_t)(nl - p), line))
            return c.err;
        p = nl + 1;
    }
    for (size_t i = 0; i < c.nfam; i++)
        if (!c.fam[i].help || !c.fam[i].typed)
            return "a family lacks HELP or TYPE";
    return NULL;
}

/* The value of the sample whose name+labels are exactly `key`, or NAN if absent. */
static double prom_get(const char *s, const char *key)
{
    size_t k = strlen(key);
    for (const char *p = s; *p;) {
        if (strncmp(p, key, k) == 0 && p[k] == ' ')
            return strtod(p + k + 1, NULL);
        const char *nl = strchr(p, '\n');
        if (!nl)
            break;
        p = nl + 1;
    }
    return NAN;
}

/* ------------------------------------------------------------------------------------------ */
/* The synthetic configuration                                                                */

#define EVIL_URL "scgi://evil\"host\\x\n:1"
#define EVIL_ERROR "said \"no\" \\ twice\nthen\x01 caf\xc3\xa9"
#define NOW 1700000000.0

typedef struct fixture {
    sg_stats stats;
    sg_config cfg;
    sg_status_view view;
} fixture;

static sg_member_state *mk_state(const char *url)
{
    return sg_member_state_new(url);
}

static void fx_init(fixture *fx)
{
    memset(fx, 0, sizeof *fx);
    sg_stats *s = &fx->stats;
    s->started = NOW - 3723.5;
    s->reloads_ok = 2;
    s->reloads_failed = 1;
    s->connections_total = 77;
    sg_stats_record(s, 200, 0.0005); /* first bucket */
    sg_stats_record(s, 200, 0.003);
    sg_stats_record(s, 201, 0.003);
    sg_stats_record(s, 302, 0.2);
    sg_stats_record(s, 404, 0.02);
    sg_stats_record(s, 503, 99);    /* above every bound: only +Inf */
    sg_stats_record(s, 101, 0.001); /* exactly on a bound: that bucket */

    sg_config *c = &fx->cfg;
    c->generation = 3;
    c->nbalancers = 2;
    c->balancers = calloc(2, sizeof *c->balancers);

    /* "web": one member in every state, plus the hostile URL and error text */
    static const struct {
        const char *url, *route;
        int lf, lbset;
        unsigned flags;
    } web[] = {
        { "scgi://127.0.0.1:4000", "a", 1, 0, 0 },                      /* ok */
        { "scgi://127.0.0.1:4001", "b", 2, 0, SG_MEMBER_HOT_STANDBY },  /* standby */
        { "scgi://127.0.0.1:4002", NULL, 1, 1, SG_MEMBER_DRAIN },       /* draining */
        { "scgi://127.0.0.1:4003", NULL, 1, 0, SG_MEMBER_DISABLED },    /* disabled */
        { EVIL_URL, NULL, 3, 0, SG_MEMBER_IGNORE_ERRORS },              /* error */
        { "scgi://127.0.0.1:4005", NULL, 1, 0, SG_MEMBER_HOT_STANDBY }, /* check-failed */
    };
    sg_balancer *b = &c->balancers[0];
    b->name = "web";
    b->lb.method = SG_LB_BYBUSYNESS;
    b->lb.nmembers = SG_ARRAY_LEN(web);
    b->lb.members = calloc(b->lb.nmembers, sizeof *b->lb.members);
    b->checks = calloc(b->lb.nmembers, sizeof *b->checks);
    for (size_t i = 0; i < SG_ARRAY_LEN(web); i++) {
        sg_lb_member *m = &b->lb.members[i];
        m->url = web[i].url;
        m->route = web[i].route;
        m->loadfactor = web[i].lf;
        m->lbset = web[i].lbset;
        m->flags = web[i].flags;
        m->retry = 10;
        m->st = mk_state(web[i].url);
    }
    sg_member_state *st = b->lb.members[0].st;
    st->busy = 2;
    st->requests = 1000;
    st->failures = 3;
    st->bytes_to = 123456;
    st->bytes_from = 9876543210ull;
    st->last_check = NOW - 4;
    b->checks[0].interval = 5;
    b->checks[0].path = "/health";
    st = b->lb.members[4].st; /* in error for 7.2 more seconds */
    st->error_until = NOW + 7.2;
    st->failures = 9;
    snprintf(st->last_error, sizeof st->last_error, "%s", EVIL_ERROR);
    b->lb.members[3].st->error_until = NOW + 100; /* disabled wins over error */
    b->lb.members[5].st->check_failed = true;
    snprintf(b->lb.members[5].st->last_error, sizeof st->last_error, "<script>alert(1)</script>");

    /* "api<script>": a name that needs escaping everywhere, one member without a state yet */
    b = &c->balancers[1];
    b->name = "api<script>";
    b->lb.method = SG_LB_LUA;
    b->lb.nmembers = 1;
    b->lb.members = calloc(1, sizeof *b->lb.members);
    b->lb.members[0].url = "scgi+unix:/run/api.sock";
    b->lb.members[0].loadfactor = 1;

    /* routes: balancer, direct (ok), direct without path (in error), balancer again, and a
     * second route to the first direct backend (sharing its state, as the registry does) */
    c->nroutes = 5;
    c->routes = calloc(c->nroutes, sizeof *c->routes);
    sg_route *r = &c->routes[0];
    r->index = 1;
    r->path = "/app/";
    r->text = "balancer://web/";
    r->be.kind = SG_PASS_BALANCER;
    r->balancer = &c->balancers[0];
    r = &c->routes[1];
    r->index = 2;
    r->path = "/scgi-bin/";
    r->text = "scgi://127.0.0.1:5000/";
    r->be.kind = SG_PASS_TCP;
    r->be.text = "scgi://127.0.0.1:5000/";
    r->st = mk_state(r->be.text);
    r->st->requests = 42;
    r->st->bytes_to = 10;
    r->st->bytes_from = 20;
    r = &c->routes[2];
    r->index = 3;
    r->path = NULL; /* match-only route */
    r->match_pattern = "^/x";
    r->text = "scgi+unix:/run/\"odd\".sock";
    r->be.kind = SG_PASS_UNIX;
    r->be.text = "scgi+unix:/run/\"odd\".sock";
    r->st = mk_state(r->be.text);
    r->st->error_until = NOW + 0.5;
    r->st->failures = 1;
    snprintf(r->st->last_error, sizeof r->st->last_error, "connect: refused");
    r = &c->routes[3];
    r->index = 4;
    r->path = "/api/";
    r->text = "balancer://api<script>/";
    r->be.kind = SG_PASS_BALANCER;
    r->balancer = &c->balancers[1];
    r = &c->routes[4];
    r->index = 5;
    r->path = "/files/";
    r->text = "scgi://127.0.0.1:5000/";
    r->be.kind = SG_PASS_TCP;
    r->be.text = "scgi://127.0.0.1:5000/";
    r->st = sg_member_state_ref(c->routes[1].st);

    fx->view.stats = &fx->stats;
    fx->view.cfg = c;
    fx->view.now = NOW;
    fx->view.generation = 3;
    fx->view.connections_open = 5;
    fx->view.pid = 4321;
    fx->view.version = SG_VERSION;
}

static void fx_free(fixture *fx)
{
    sg_config *c = &fx->cfg;
    for (size_t i = 0; i < c->nbalancers; i++) {
        for (size_t k = 0; k < c->balancers[i].lb.nmembers; k++)
            sg_member_state_unref(c->balancers[i].lb.members[k].st);
        free(c->balancers[i].lb.members);
        free(c->balancers[i].checks);
    }
    for (size_t i = 0; i < c->nroutes; i++)
        sg_member_state_unref(c->routes[i].st);
    free(c->balancers);
    free(c->routes);
}

/* The rendering as a NUL-terminated string (owned by the caller); *len = its length. */
static char *render(const sg_status_view *v, enum sg_status_format f, size_t *len)
{
    sg_buf b;
    sg_buf_init(&b);
    sg_buf_append_str(&b, "prefix"); /* render appends: what was there stays */
    sg_status_render(v, f, &b);
    CHECK(b.len >= 6 && memcmp(sg_buf_head(&b), "prefix", 6) == 0, "buffer head overwritten");
    size_t n = b.len - 6;
    char *s = malloc(n + 1);
    memcpy(s, sg_buf_head(&b) + 6, n);
    s[n] = '\0';
    sg_buf_free(&b);
    if (len)
        *len = n;
    return s;
}

/* ------------------------------------------------------------------------------------------ */
/* Tests                                                                                      */

static void test_json(void)
{
    fixture fx;
    fx_init(&fx);
    size_t n, at;
    char *s = render(&fx.view, SG_STATUS_JSON, &n);
    const char *err = json_validate(s, n, &at);
    CHECK(err == NULL, "invalid JSON: %s at %zu: %.40s", err, at, s + at);
    CHECK(strlen(s) == n, "NUL byte in the output");

    CHECK_STR(jstr(JGET(s, "version")), SG_VERSION);
    CHECK_STR(jnum(JGET(s, "pid")), "4321");
    CHECK_STR(jnum(JGET(s, "uptime_seconds")), "3723.5");
    CHECK_STR(jnum(JGET(s, "generation")), "3");
    CHECK_STR(jnum(JGET(s, "reloads", "ok")), "2");
    CHECK_STR(jnum(JGET(s, "reloads", "failed")), "1");
    CHECK_STR(jnum(JGET(s, "connections", "open")), "5");
    CHECK_STR(jnum(JGET(s, "connections", "total")), "77");
    CHECK_STR(jnum(JGET(s, "requests", "total")), "7");
    CHECK_STR(jnum(JGET(s, "requests", "1xx")), "1");
    CHECK_STR(jnum(JGET(s, "requests", "2xx")), "3");
    CHECK_STR(jnum(JGET(s, "requests", "3xx")), "1");
    CHECK_STR(jnum(JGET(s, "requests", "4xx")), "1");
    CHECK_STR(jnum(JGET(s, "requests", "5xx")), "1");

    /* histogram: cumulative, the bounds as plain numbers, "+Inf" last and equal to count */
    CHECK_STR(jnum(JGET(s, "latency_seconds", "buckets", "#0", "le")), "0.001");
    CHECK_STR(jnum(JGET(s, "latency_seconds", "buckets", "#0", "count")), "2");
    CHECK_STR(jnum(JGET(s, "latency_seconds", "buckets", "#1", "le")), "0.0025");
    CHECK_STR(jnum(JGET(s, "latency_seconds", "buckets", "#2", "count")), "4");
    CHECK_STR(jnum(JGET(s, "latency_seconds", "buckets", "#9", "le")), "1");
    char last[8];
    snprintf(last, sizeof last, "#%d", SG_STATS_BUCKETS);
    CHECK_STR(jstr(JGET(s, "latency_seconds", "buckets", last, "le")), "+Inf");
    CHECK_STR(jnum(JGET(s, "latency_seconds", "buckets", last, "count")), "7");
    snprintf(last, sizeof last, "#%d", SG_STATS_BUCKETS - 1);
    CHECK_STR(jnum(JGET(s, "latency_seconds", "buckets", last, "count")), "6");
    snprintf(last, sizeof last, "#%d", SG_STATS_BUCKETS + 1);
    CHECK(JGET(s, "latency_seconds", "buckets", last) == NULL, "bucket after +Inf");
    CHECK_STR(jnum(JGET(s, "latency_seconds", "count")), "7");
    double sum = strtod(JGET(s, "latency_seconds", "sum"), NULL);
    CHECK(fabs(sum - 99.2275) < 1e-9, "sum %g", sum);

    /* balancers and members keyed by URL */
    CHECK_STR(jstr(JGET(s, "balancers", "web", "method")), "bybusyness");
    const char *a = JGET(s, "balancers", "web", "members", "scgi://127.0.0.1:4000");
    CHECK(a != NULL, "member a missing");
    CHECK_STR(jstr(JGET(a, "route")), "a");
    CHECK_STR(jnum(JGET(a, "loadfactor")), "1");
    CHECK_STR(jnum(JGET(a, "lbset")), "0");
    CHECK_STR(jstr(JGET(a, "state")), "ok");
    CHECK_STR(jnum(JGET(a, "busy")), "2");
    CHECK_STR(jnum(JGET(a, "requests")), "1000");
    CHECK_STR(jnum(JGET(a, "failures")), "3");
    CHECK_STR(jnum(JGET(a, "bytes_to")), "123456");
    CHECK_STR(jnum(JGET(a, "bytes_from")), "9876543210");
    CHECK(jnull(JGET(a, "last_error")), "empty last_error is not null");
    CHECK_STR(jnum(JGET(a, "last_check")), "1699999996");
    CHECK_STR(jnum(JGET(a, "check", "interval")), "5");
    CHECK_STR(jstr(JGET(a, "check", "path")), "/health");
    CHECK_STR(jstr(JGET(a, "flags")), "");

    static const struct {
        const char *url, *state, *flags;
    } states[] = {
        { "scgi://127.0.0.1:4001", "standby", "+H" },
        { "scgi://127.0.0.1:4002", "draining", "+N" },
        { "scgi://127.0.0.1:4003", "disabled", "+D" },
        { EVIL_URL, "error", "+I" },
        { "scgi://127.0.0.1:4005", "check-failed", "+H" },
    };
    for (size_t i = 0; i < SG_ARRAY_LEN(states); i++) {
        const char *m = JGET(s, "balancers", "web", "members", states[i].url);
        CHECK(m != NULL, "member %zu missing", i);
        CHECK_STR(jstr(JGET(m, "state")), states[i].state);
        CHECK_STR(jstr(JGET(m, "flags")), states[i].flags);
        CHECK(jnull(JGET(m, "check")), "member %zu: check should be null", i);
        CHECK(jnull(JGET(m, "last_check")), "member %zu: never checked", i);
    }
    CHECK(jnull(JGET(s, "balancers", "web", "members", "scgi://127.0.0.1:4002", "route")),
          "no route -> null");
    CHECK_STR(jnum(JGET(s, "balancers", "web", "members", "scgi://127.0.0.1:4002", "lbset")), "1");

    /* the hostile strings round-trip exactly, and raw control characters never appear */
    const char *e = JGET(s, "balancers", "web", "members", EVIL_URL);
    CHECK_STR(jstr(JGET(e, "last_error")), EVIL_ERROR);
    CHECK_STR(jnum(JGET(e, "error_seconds_left")), "8"); /* 7.2 s rounded up */
    CHECK_STR(jnum(JGET(e, "failures")), "9");
    CHECK_STR(jnum(JGET(e, "loadfactor")), "3");
    CHECK(strstr(s, "\"scgi://evil\\\"host\\\\x\\n:1\"") != NULL, "URL escaping");
    CHECK(strstr(s, "said \\\"no\\\" \\\\ twice\\nthen\\u0001 caf\xc3\xa9") != NULL,
          "last_error escaping (UTF-8 passed through)");
    CHECK_STR(jnum(JGET(s, "balancers", "web", "members", "scgi://127.0.0.1:4003",
                        "error_seconds_left")),
              "100");
    CHECK_STR(jnum(JGET(a, "error_seconds_left")), "0");

    /* a member without a state (not wired yet) shows zeroes */
    const char *api = JGET(s, "balancers", "api<script>");
    CHECK_STR(jstr(JGET(api, "method")), "lua");
    CHECK_STR(jstr(JGET(api, "members", "scgi+unix:/run/api.sock", "state")), "ok");
    CHECK_STR(jnum(JGET(api, "members", "scgi+unix:/run/api.sock", "requests")), "0");

    /* routes: in order, naming their balancer or their direct backend's URL */
    CHECK_STR(jnum(JGET(s, "routes", "#0", "index")), "1");
    CHECK_STR(jstr(JGET(s, "routes", "#0", "path")), "/app/");
    CHECK_STR(jstr(JGET(s, "routes", "#0", "pass")), "balancer://web/");
    CHECK_STR(jstr(JGET(s, "routes", "#0", "balancer")), "web");
    CHECK(JGET(s, "routes", "#0", "backend") == NULL, "balancer route with a backend");
    CHECK_STR(jstr(JGET(s, "routes", "#1", "backend")), "scgi://127.0.0.1:5000/");
    CHECK(JGET(s, "routes", "#1", "balancer") == NULL, "direct route with a balancer");
    CHECK(jnull(JGET(s, "routes", "#2", "path")), "match-only route: path null");
    CHECK_STR(jstr(JGET(s, "routes", "#2", "backend")), "scgi+unix:/run/\"odd\".sock");
    CHECK_STR(jstr(JGET(s, "routes", "#3", "balancer")), "api<script>");
    CHECK_STR(jstr(JGET(s, "routes", "#4", "backend")), "scgi://127.0.0.1:5000/");
    CHECK(JGET(s, "routes", "#5") == NULL, "extra route");

    /* direct backends: one entry per URL, listing the routes that share its counters */
    const char *d = JGET(s, "backends", "scgi://127.0.0.1:5000/");
    CHECK(d != NULL, "direct backend missing");
    CHECK_STR(jnum(JGET(d, "routes", "#0")), "2");
    CHECK_STR(jnum(JGET(d, "routes", "#1")), "5");
    CHECK(JGET(d, "routes", "#2") == NULL, "a route listed that does not use the backend");
    CHECK_STR(jstr(JGET(d, "state")), "ok");
    CHECK_STR(jnum(JGET(d, "requests")), "42");
    CHECK_STR(jnum(JGET(d, "bytes_to")), "10");
    CHECK_STR(jnum(JGET(d, "bytes_from")), "20");
    d = JGET(s, "backends", "scgi+unix:/run/\"odd\".sock");
    CHECK(d != NULL, "escaped direct backend key missing");
    CHECK_STR(jnum(JGET(d, "routes", "#0")), "3");
    CHECK_STR(jstr(JGET(d, "state")), "error");
    CHECK_STR(jnum(JGET(d, "error_seconds_left")), "1");
    CHECK_STR(jstr(JGET(d, "last_error")), "connect: refused");
    CHECK(n > 0 && s[n - 1] == '\n', "JSON ends with a newline");
    free(s);

    /* the validator itself rejects what it must */
    static const char *const bad[] = {
        "{\"a\":1,}",
        "{\"a\":1 \"b\":2}",
        "[1,2",
        "\"a\nb\"",
        "{\"a\":01}",
        "{\"a\":1.}",
        "{\"a\":\"\\x\"}",
        "{\"a\":1,\"a\":2}",
        "{\"a\":1}x",
        "{'a':1}",
        "NaN",
    };
    for (size_t i = 0; i < SG_ARRAY_LEN(bad); i++)
        CHECK(json_validate(bad[i], strlen(bad[i]), NULL) != NULL, "accepted %s", bad[i]);
    const char *good = " {\"a\":[1,-2.5e3,true,false,null,\"\\u00e9\\/\"],\"b\":{}} ";
    CHECK(json_validate(good, strlen(good), NULL) == NULL, "rejected a valid document");
    fx_free(&fx);
}

static void test_prometheus(void)
{
    fixture fx;
    fx_init(&fx);
    size_t n;
    char *s = render(&fx.view, SG_STATUS_PROMETHEUS, &n);
    const char *err = prom_validate(s, n);
    CHECK(err == NULL, "invalid exposition: %s", err);

    CHECK(prom_get(s, "scgi_lua_uptime_seconds") == 3723.5, "uptime");
    CHECK(prom_get(s, "scgi_lua_config_generation") == 3, "generation");
    CHECK(prom_get(s, "scgi_lua_reloads_total{result=\"ok\"}") == 2, "reloads ok");
    CHECK(prom_get(s, "scgi_lua_reloads_total{result=\"failed\"}") == 1, "reloads failed");
    CHECK(prom_get(s, "scgi_lua_connections_open") == 5, "connections open");
    CHECK(prom_get(s, "scgi_lua_connections_total") == 77, "connections total");
    CHECK(prom_get(s, "scgi_lua_requests_total{class=\"2xx\"}") == 3, "2xx");
    CHECK(prom_get(s, "scgi_lua_requests_total{class=\"5xx\"}") == 1, "5xx");
    CHECK(strstr(s, "# TYPE scgi_lua_requests_total counter\n") != NULL, "requests TYPE");
    CHECK(strstr(s, "# TYPE scgi_lua_member_busy gauge\n") != NULL, "busy TYPE");
    CHECK(strstr(s, "# TYPE scgi_lua_member_up gauge\n") != NULL, "up TYPE");
    CHECK(strstr(s, "# TYPE scgi_lua_uptime_seconds gauge\n") != NULL, "uptime TYPE");

    /* the histogram: cumulative buckets in bound order, +Inf last and equal to _count */
    CHECK(strstr(s, "# TYPE scgi_lua_request_duration_seconds histogram\n") != NULL, "TYPE");
    double prev = -1;
    int nb = 0;
    bool inf_last = false;
    for (const char *p = s; (p = strstr(p, "scgi_lua_request_duration_seconds_bucket{le=\""));) {
        p += strlen("scgi_lua_request_duration_seconds_bucket{le=\"");
        const char *q = strchr(p, '"');
        inf_last = (size_t)(q - p) == 4 && memcmp(p, "+Inf", 4) == 0;
        if (!inf_last && nb < SG_STATS_BUCKETS)
            CHECK(strtod(p, NULL) == sg_stats_bounds[nb], "bucket %d bound %.*s", nb, (int)(q - p),
                  p);
        double c = strtod(q + 3, NULL);
        CHECK(c >= prev, "bucket %d not cumulative", nb);
        prev = c;
        nb++;
    }
    CHECK_INT(nb, SG_STATS_BUCKETS + 1);
    CHECK(inf_last, "+Inf is not the last bucket");
    CHECK(prom_get(s, "scgi_lua_request_duration_seconds_bucket{le=\"0.001\"}") == 2, "le 0.001");
    CHECK(prom_get(s, "scgi_lua_request_duration_seconds_bucket{le=\"0.005\"}") == 4, "le 0.005");
    CHECK(prev == prom_get(s, "scgi_lua_request_duration_seconds_count"), "+Inf != _count");
    CHECK(prev == 7, "count %g", prev);
    CHECK(fabs(prom_get(s, "scgi_lua_request_duration_seconds_sum") - 99.2275) < 1e-9, "sum");

    /* members by balancer and URL, direct backends by route; label values escaped */
    const char *ma = "{balancer=\"web\",member=\"scgi://127.0.0.1:4000\"}";
    char key[256];
    snprintf(key, sizeof key, "scgi_lua_member_requests_total%s", ma);
    CHECK(prom_get(s, key) == 1000, "requests of a");
    snprintf(key, sizeof key, "scgi_lua_member_received_bytes_total%s", ma);
    CHECK(prom_get(s, key) == 9876543210.0, "bytes from a");
    snprintf(key, sizeof key, "scgi_lua_member_sent_bytes_total%s", ma);
    CHECK(prom_get(s, key) == 123456, "bytes to a");
    snprintf(key, sizeof key, "scgi_lua_member_busy%s", ma);
    CHECK(prom_get(s, key) == 2, "busy of a");
    snprintf(key, sizeof key, "scgi_lua_member_up%s", ma);
    CHECK(prom_get(s, key) == 1, "a up");
    const char *me = "{balancer=\"web\",member=\"scgi://evil\\\"host\\\\x\\n:1\"}";
    snprintf(key, sizeof key, "scgi_lua_member_up%s", me);
    CHECK(prom_get(s, key) == 0, "evil member (error) up");
    snprintf(key, sizeof key, "scgi_lua_member_failures_total%s", me);
    CHECK(prom_get(s, key) == 9, "evil member failures");
    static const struct {
        const char *url;
        int up;
    } ups[] = {
        { "scgi://127.0.0.1:4001", 1 },
        { "scgi://127.0.0.1:4002", 1 },
        { "scgi://127.0.0.1:4003", 0 },
        { "scgi://127.0.0.1:4005", 0 },
    };
    for (size_t i = 0; i < SG_ARRAY_LEN(ups); i++) {
        snprintf(key, sizeof key, "scgi_lua_member_up{balancer=\"web\",member=\"%s\"}", ups[i].url);
        CHECK(prom_get(s, key) == ups[i].up, "up of %s", ups[i].url);
    }
    CHECK(prom_get(s, "scgi_lua_member_up{balancer=\"api<script>\","
                      "member=\"scgi+unix:/run/api.sock\"}") == 1,
          "api member");
    /* a direct backend: one series per URL, whichever routes share it */
    CHECK(prom_get(s, "scgi_lua_member_requests_total{member=\"scgi://127.0.0.1:5000/\"}") == 42,
          "direct backend requests");
    const char *first = strstr(s,
                               "scgi_lua_member_requests_total{member=\"scgi://127.0.0.1:5000/\"}");
    CHECK(first && !strstr(first + 1,
                           "scgi_lua_member_requests_total{member=\"scgi://127.0.0.1:5000/\"}"),
          "the shared backend has more than one series");
    CHECK(prom_get(s, "scgi_lua_member_up{member=\"scgi+unix:/run/\\\"odd\\\".sock\"}") == 0,
          "direct backend in error");
    /* which route uses what */
    CHECK(prom_get(s, "scgi_lua_route_info{route=\"1\",path=\"/app/\",balancer=\"web\"}") == 1,
          "route info of a balancer route");
    CHECK(prom_get(s, "scgi_lua_route_info{route=\"5\",path=\"/files/\","
                      "member=\"scgi://127.0.0.1:5000/\"}") == 1,
          "route info of a direct route");
    CHECK(prom_get(s, "scgi_lua_route_info{route=\"3\",path=\"\","
                      "member=\"scgi+unix:/run/\\\"odd\\\".sock\"}") == 1,
          "route info of a match-only route");
    CHECK(strstr(s, "scgi_lua_build_info{version=\"" SG_VERSION "\"} 1\n") != NULL, "info");
    free(s);

    /* the checker rejects what it must */
    static const char *const bad[] = {
        "x 1\n",                                         /* no HELP/TYPE */
        "# HELP x h\n# TYPE x gauge\nx 1",               /* no final newline */
        "# HELP x h\n# TYPE x gauge\nx 1\n# HELP x h\n", /* repeated */
        "# HELP x h\n# TYPE x counter\nx 1\n",           /* counter without _total */
        "# HELP x h\n# TYPE x gauge\nx{a=\"\\q\"} 1\n",  /* bad escape */
        "# HELP x h\n# TYPE x gauge\nx{a=b} 1\n",        /* unquoted */
        "# HELP x h\n# TYPE x gauge\n# HELP y h\n# TYPE y gauge\nx 1\ny 1\nx 2\n",
        "# HELP 1x h\n# TYPE 1x gauge\n1x 1\n", /* bad name */
        "# HELP x h\n# TYPE x gauge\nx one\n",  /* bad value */
    };
    for (size_t i = 0; i < SG_ARRAY_LEN(bad); i++)
        CHECK(prom_validate(bad[i], strlen(bad[i])) != NULL, "accepted bad[%zu]", i);
    fx_free(&fx);
}

static void test_html(void)
{
    fixture fx;
    fx_init(&fx);
    size_t n;
    char *s = render(&fx.view, SG_STATUS_HTML, &n);
    CHECK(strncmp(s, "<!DOCTYPE html>", 15) == 0, "doctype");
    CHECK(strstr(s, "<meta charset=\"utf-8\">") != NULL, "charset");
    CHECK(n > 8 && strcmp(s + n - 8, "</html>\n") == 0, "ends with </html>");
    /* nothing user-controlled comes through raw; no script, no external asset */
    CHECK(strstr(s, "<script") == NULL, "raw <script>");
    CHECK(strstr(s, "&lt;script&gt;alert(1)&lt;/script&gt;") != NULL, "escaped last_error");
    CHECK(strstr(s, "Balancer <code>api&lt;script&gt;</code> (lua)") != NULL, "escaped name");
    CHECK(strstr(s, "scgi://evil&quot;host\\x\n:1") != NULL, "escaped URL");
    CHECK(strstr(s, "said &quot;no&quot; \\ twice\nthen&#xFFFD; caf\xc3\xa9") != NULL,
          "escaped error with a control character");
    CHECK(strstr(s, "scgi+unix:/run/&quot;odd&quot;.sock") != NULL, "escaped direct URL");
    CHECK(strstr(s, "http://") == NULL && strstr(s, "https://") == NULL, "external asset");
    CHECK(strstr(s, "src=") == NULL && strstr(s, "href=") == NULL, "external reference");
    /* figures and states */
    CHECK(strstr(s, "<td>01:02:03</td>") != NULL, "uptime");
    CHECK(strstr(s, "<th class=\"k\">PID</th><td>4321</td>") != NULL, "pid");
    CHECK(strstr(s, "Balancer <code>web</code> (bybusyness)") != NULL, "balancer heading");
    static const char *const st[] = { ">ok<",          ">standby<",
                                      ">draining<",    ">disabled (100 s)<",
                                      ">error (8 s)<", ">check-failed<" };
    for (size_t i = 0; i < SG_ARRAY_LEN(st); i++)
        CHECK(strstr(s, st[i]) != NULL, "state %s", st[i]);
    CHECK(strstr(s, "<td>9876543210</td>") != NULL, "bytes from");
    CHECK(strstr(s, "4 s ago") != NULL, "last check");
    CHECK(strstr(s, "<h2>Direct backends</h2>") != NULL, "direct backends table");
    const char *drow = strstr(s, "<tr><td class=\"url\">scgi://127.0.0.1:5000/</td>");
    CHECK(drow != NULL, "shared direct backend row");
    const char *routes = drow ? strstr(drow, "2&nbsp;/scgi-bin/, 5&nbsp;/files/</td>") : NULL;
    CHECK(routes && routes < strstr(drow, "</tr>"), "the row names both routes");
    CHECK(drow && !strstr(drow + 5, "<td class=\"url\">scgi://127.0.0.1:5000/</td>"),
          "the shared backend has two rows");
    /* tags balance (the page has no void elements besides <meta>) */
    int open = 0, close = 0;
    for (const char *p = s; (p = strchr(p, '<')); p++) {
        if (p[1] == '/')
            close++;
        else if (p[1] != '!' && strncmp(p, "<meta", 5) != 0)
            open++;
    }
    CHECK_INT(open, close);
    free(s);
    fx_free(&fx);
}

/* No config (or an empty one) still renders valid documents, without member families. */
static void test_empty(void)
{
    sg_stats st;
    memset(&st, 0, sizeof st);
    st.started = NOW + 5; /* clock stepped back: uptime clamps to 0 */
    sg_config cfg;
    memset(&cfg, 0, sizeof cfg);
    sg_status_view v = { &st, NULL, NOW, 1, 0, 1, NULL };
    for (int pass = 0; pass < 2; pass++) {
        v.cfg = pass ? &cfg : NULL;
        size_t n;
        char *s = render(&v, SG_STATUS_JSON, &n);
        CHECK(json_validate(s, n, NULL) == NULL, "empty JSON invalid: %s", s);
        CHECK(strstr(s, "\"balancers\":{},\"backends\":{},\"routes\":[]}") != NULL,
              "empty lists: %s", s);
        CHECK_STR(jnum(JGET(s, "uptime_seconds")), "0");
        CHECK_STR(jstr(JGET(s, "version")), SG_VERSION);
        free(s);
        s = render(&v, SG_STATUS_PROMETHEUS, &n);
        const char *err = prom_validate(s, n);
        CHECK(err == NULL, "empty exposition invalid: %s", err);
        CHECK(strstr(s, "scgi_lua_member_") == NULL, "member families without members");
        CHECK(prom_get(s, "scgi_lua_request_duration_seconds_bucket{le=\"+Inf\"}") == 0, "inf");
        free(s);
        s = render(&v, SG_STATUS_HTML, &n);
        CHECK(strstr(s, "Direct backends") == NULL && strstr(s, "Balancer <code>") == NULL,
              "empty tables");
        free(s);
    }
}

static void test_json_escape(void)
{
    static const struct {
        const char *in, *want;
    } cases[] = {
        { "", "\"\"" },
        { "plain", "\"plain\"" },
        { "q\"b\\s/", "\"q\\\"b\\\\s/\"" },
        { "\n\r\t\b\f\x1f", "\"\\n\\r\\t\\u0008\\u000c\\u001f\"" },
        { "\x7f\xc3\xa9\xff", "\"\x7f\xc3\xa9\xff\"" },
    };
    for (size_t i = 0; i < SG_ARRAY_LEN(cases); i++) {
        CASE_BEGIN();
        sg_buf b;
        sg_buf_init(&b);
        json_str(&b, cases[i].in);
        CHECK_MEM(sg_buf_head(&b), b.len, cases[i].want, strlen(cases[i].want));
        sg_buf_free(&b);
        CASE_END();
    }
}

static void test_json_scalars(void)
{
    sg_buf b;
    sg_buf_init(&b);
    json_strn(&b, "a\0b", 3);
    CHECK_MEM(sg_buf_head(&b), b.len, "\"a\\u0000b\"", 10);
    sg_buf_reset(&b);
    json_str(&b, NULL);
    CHECK_MEM(sg_buf_head(&b), b.len, "null", 4);
    sg_buf_reset(&b);
    put_num(&b, 0.0025, true);
    sg_buf_append_str(&b, " ");
    put_num(&b, 1e20, true);
    sg_buf_append_str(&b, " ");
    put_num(&b, NAN, true);
    sg_buf_append_str(&b, " ");
    put_num(&b, INFINITY, false);
    sg_buf_append_str(&b, " ");
    put_num(&b, -3, false);
    CHECK_MEM(sg_buf_head(&b), b.len, "0.0025 1e+20 null +Inf -3", 25);
    sg_buf_free(&b);
}

static void test_state_order(void)
{
    static const struct {
        unsigned flags;
        double error_until;
        bool check_failed;
        const char *want;
    } cases[] = {
        { 0, 0, false, "ok" },
        { SG_MEMBER_IGNORE_ERRORS, 0, false, "ok" },
        { SG_MEMBER_HOT_STANDBY, 0, false, "standby" },
        { SG_MEMBER_DRAIN | SG_MEMBER_HOT_STANDBY, 0, false, "draining" },
        { SG_MEMBER_DRAIN, 0, true, "check-failed" },
        { SG_MEMBER_HOT_STANDBY, NOW + 1, true, "error" },
        { 0, NOW, false, "ok" }, /* error_until == now: over */
        { SG_MEMBER_DISABLED | SG_MEMBER_DRAIN, NOW + 1, true, "disabled" },
    };
    for (size_t i = 0; i < SG_ARRAY_LEN(cases); i++) {
        CASE_BEGIN();
        sg_member_state st;
        memset(&st, 0, sizeof st);
        st.error_until = cases[i].error_until;
        st.check_failed = cases[i].check_failed;
        CHECK_STR(member_state(cases[i].flags, &st, NOW), cases[i].want);
        CASE_END();
    }
}

static void test_format_parse(void)
{
    static const struct {
        const char *q;
        int want;
    } cases[] = {
        { "", SG_STATUS_JSON },
        { "x=1&y=2", SG_STATUS_JSON },
        { "format=json", SG_STATUS_JSON },
        { "format=prometheus", SG_STATUS_PROMETHEUS },
        { "format=prometheus&x=1", SG_STATUS_PROMETHEUS },
        { "x=1&format=html", SG_STATUS_HTML },
        { "a=b&format=HTML&c", SG_STATUS_HTML },
        { "?format=html", SG_STATUS_HTML },
        { "formats=html", SG_STATUS_JSON }, /* another parameter */
        { "xformat=html", SG_STATUS_JSON },
        { "&&format=prometheus&&", SG_STATUS_PROMETHEUS },
        { "format=html&format=json", SG_STATUS_HTML }, /* the first one decides */
        { "format=xml", -1 },
        { "format=", -1 },
        { "format", -1 },
        { "format=json2", -1 },
        { "format=jso", -1 },
        { "format=prometheus%20", -1 },
    };
    for (size_t i = 0; i < SG_ARRAY_LEN(cases); i++) {
        CASE_BEGIN();
        int got = sg_status_format_parse(cases[i].q, strlen(cases[i].q));
        CHECK(got == cases[i].want, "\"%s\": %d, want %d", cases[i].q, got, cases[i].want);
        CASE_END();
    }
    /* the length bounds the query: bytes after it are not looked at */
    CHECK_INT(sg_status_format_parse("format=htmlX", 11), SG_STATUS_HTML);
    CHECK_INT(sg_status_format_parse("x=1&format=html", 3), SG_STATUS_JSON);
    CHECK_INT(sg_status_format_parse(NULL, 0), SG_STATUS_JSON);
    CHECK_STR(sg_status_content_type(SG_STATUS_JSON), "application/json");
    CHECK_STR(sg_status_content_type(SG_STATUS_PROMETHEUS),
              "text/plain; version=0.0.4; charset=utf-8");
    CHECK_STR(sg_status_content_type(SG_STATUS_HTML), "text/html; charset=utf-8");
}

/* status.allow: CIDR ranges of either family; a family never matches the other's ranges */
static void test_allowed(void)
{
    sg_allow allow[3] = { { .family = AF_INET, .prefix = 8 },
                          { .family = AF_INET, .prefix = 27 },
                          { .family = AF_INET6, .prefix = 128 } };
    inet_pton(AF_INET, "10.0.0.0", allow[0].addr);
    inet_pton(AF_INET, "192.0.2.32", allow[1].addr);
    inet_pton(AF_INET6, "::1", allow[2].addr);
    sg_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.status_allow = allow;
    cfg.nstatus_allow = 3;
    static const struct {
        const char *addr;
        bool want;
    } cases[] = {
        { "10.1.2.3", true },
        { "11.0.0.1", false },
        { "192.0.2.32", true },
        { "192.0.2.63", true },
        { "192.0.2.64", false },
        { "192.0.2.31", false },
        { "::1", true },
        { "::2", false },
        { "::ffff:10.0.0.1", false },
        { "not an address", false },
        { "unix:", false },
    };
    for (size_t i = 0; i < SG_ARRAY_LEN(cases); i++) {
        CASE_BEGIN();
        bool got = sg_status_allowed(&cfg, cases[i].addr);
        CHECK(got == cases[i].want, "%s: %d, want %d", cases[i].addr, got, cases[i].want);
        CASE_END();
    }
    cfg.nstatus_allow = 0; /* an empty list allows nobody */
    CASE_BEGIN();
    CHECK(!sg_status_allowed(&cfg, "10.1.2.3"), "empty allow list");
    CASE_END();
}

int main(void)
{
    test_allowed();
    RUN(test_json);
    RUN(test_prometheus);
    RUN(test_html);
    RUN(test_empty);
    test_json_escape();
    RUN(test_json_scalars);
    test_state_order();
    test_format_parse();
    return test_report("test_status");
}
