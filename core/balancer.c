/*
 * balancer.c: which member gets the next request (README "Balancers"), after mod_proxy_balancer's
 * proxy_balancer_get_best_worker and its lbmethods. Everything here is a pure function of the
 * member flags, the shared runtime state and `now`; connecting, retrying, counting bytes and
 * logging belong to the caller, which logs once with the request's context.
 */
#include "balancer.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

sg_member_state *sg_member_state_new(const char *url)
{
    sg_member_state *st = sg_xcalloc(1, sizeof *st);
    st->url = sg_xstrdup(url);
    st->refs = 1;
    return st;
}

sg_member_state *sg_member_state_ref(sg_member_state *st)
{
    assert(st && st->refs > 0 && "sg_member_state_ref on a freed state");
    st->refs++;
    return st;
}

void sg_member_state_unref(sg_member_state *st)
{
    if (!st)
        return;
    assert(st->refs > 0 && "sg_member_state_unref: too many unrefs");
    if (--st->refs > 0)
        return;
    free(st->url);
    free(st);
}

static bool in_error(const sg_lb_member *m, double now)
{
    return m->st->error_until > now;
}

/* Apache's PROXY_WORKER_IS_USABLE: draining members still count (they take sticky requests). */
static bool alive(const sg_lb_member *m, double now)
{
    return !(m->flags & SG_MEMBER_DISABLED) && !in_error(m, now) && !m->st->check_failed;
}

bool sg_lb_usable(const sg_lb_member *m, double now)
{
    assert(m->st && "sg_lb_member without state");
    return alive(m, now) && !(m->flags & SG_MEMBER_DRAIN);
}

size_t sg_lb_candidates(const sg_lb *lb, double now, const uint64_t *exclude, size_t *idx,
                        size_t cap)
{
    assert(lb->nmembers <= SG_LB_MAX_MEMBERS && "too many balancer members");
    /* the tier: lowest lbset holding any usable, non-excluded member (ordinary or standby) */
    int lbset = -1;
    bool ordinary = false;
    for (size_t i = 0; i < lb->nmembers; i++) {
        const sg_lb_member *m = &lb->members[i];
        if (sg_lb_excluded(exclude, i) || !sg_lb_usable(m, now))
            continue;
        if (lbset < 0 || m->lbset < lbset) {
            lbset = m->lbset;
            ordinary = false;
        }
        if (m->lbset == lbset && !(m->flags & SG_MEMBER_HOT_STANDBY))
            ordinary = true;
    }
    size_t n = 0;
    if (lbset < 0)
        return 0;
    /* standbys only when the tier has no usable ordinary member */
    for (size_t i = 0; i < lb->nmembers && n < cap; i++) {
        const sg_lb_member *m = &lb->members[i];
        if (m->lbset != lbset || sg_lb_excluded(exclude, i) || !sg_lb_usable(m, now))
            continue;
        bool standby = (m->flags & SG_MEMBER_HOT_STANDBY) != 0;
        if (standby != ordinary)
            idx[n++] = i;
    }
    return n;
}

/* Smooth weighted round-robin over cand[0..n): the strictly greatest lbstatus wins, so ties go
 * to the earliest in config order; the winner pays back the sum, keeping the total at zero. */
static int choose_byrequests(sg_lb *lb, const size_t *cand, size_t n)
{
    int64_t total = 0;
    sg_lb_member *best = NULL;
    size_t besti = 0;
    for (size_t k = 0; k < n; k++) {
        sg_lb_member *m = &lb->members[cand[k]];
        m->st->lbstatus += m->loadfactor;
        total += m->loadfactor;
        if (!best || m->st->lbstatus > best->st->lbstatus) {
            best = m;
            besti = cand[k];
        }
    }
    if (!best)
        return -1;
    best->st->lbstatus -= total;
    return (int)besti;
}

static uint64_t traffic(const sg_member_state *st)
{
    uint64_t t = st->bytes_to + st->bytes_from;
    return t < st->bytes_to ? UINT64_MAX : t; /* saturate rather than wrap */
}

static int loadfactor(const sg_lb_member *m)
{
    return m->loadfactor > 0 ? m->loadfactor : 1; /* config validates 1..100; never divide by 0 */
}

/* a/la < b/lb, exactly: integer parts first, then the remainders cross-multiplied (< 100*100). */
static bool ratio_less(uint64_t a, int la, uint64_t b, int lb)
{
    uint64_t qa = a / (uint64_t)la, qb = b / (uint64_t)lb;
    if (qa != qb)
        return qa < qb;
    return (a % (uint64_t)la) * (uint64_t)lb < (b % (uint64_t)lb) * (uint64_t)la;
}

static int choose_bytraffic(sg_lb *lb, const size_t *cand, size_t n)
{
    int best = -1;
    for (size_t k = 0; k < n; k++) {
        const sg_lb_member *m = &lb->members[cand[k]];
        if (best < 0 || ratio_less(traffic(m->st), loadfactor(m), traffic(lb->members[best].st),
                                   loadfactor(&lb->members[best])))
            best = (int)cand[k];
    }
    return best;
}

/* Apache accumulates lbstatus over every candidate; we let only the tied ones take part, so a
 * member that is busy for a while does not come back with a lead over the others. */
static int choose_bybusyness(sg_lb *lb, const size_t *cand, size_t n)
{
    size_t tied[SG_LB_MAX_MEMBERS], ntied = 0;
    unsigned least = 0;
    for (size_t k = 0; k < n; k++) {
        unsigned busy = lb->members[cand[k]].st->busy;
        if (ntied == 0 || busy < least) {
            least = busy;
            ntied = 0;
        }
        if (busy == least)
            tied[ntied++] = cand[k];
    }
    return choose_byrequests(lb, tied, ntied);
}

typedef int (*chooser)(sg_lb *lb, const size_t *cand, size_t n);

static const chooser choosers[] = {
    [SG_LB_BYREQUESTS] = choose_byrequests,
    [SG_LB_BYTRAFFIC] = choose_bytraffic,
    [SG_LB_BYBUSYNESS] = choose_bybusyness,
    [SG_LB_LUA] = choose_byrequests, /* Lua chooses from sg_lb_candidates(); this is a fallback */
};

int sg_lb_sticky(sg_lb *lb, double now, const char *route, const uint64_t *exclude)
{
    if (!route)
        return -1;
    size_t i;
    for (i = 0; i < lb->nmembers; i++) {
        const sg_lb_member *m = &lb->members[i];
        if (m->route && strcmp(m->route, route) == 0 && !sg_lb_excluded(exclude, i) &&
            alive(m, now))
            break;
    }
    if (i == lb->nmembers)
        return -1;
    /* Apache updates lbstatus on sticky hits too (proxy_balancer_pre_request) so that pinned
     * traffic counts in the rotation. It adds to every usable member of every lbset, which lets
     * idle tiers and drained members build up an unbounded lead; we charge the tier a normal pick
     * would use, plus the sticky member itself. */
    size_t cand[SG_LB_MAX_MEMBERS];
    size_t n = sg_lb_candidates(lb, now, exclude, cand, SG_LB_MAX_MEMBERS);
    int64_t total = 0;
    bool inside = false;
    for (size_t k = 0; k < n; k++) {
        sg_lb_member *m = &lb->members[cand[k]];
        m->st->lbstatus += m->loadfactor;
        total += m->loadfactor;
        inside = inside || cand[k] == i;
    }
    sg_lb_member *s = &lb->members[i];
    if (!inside) {
        s->st->lbstatus += s->loadfactor;
        total += s->loadfactor;
    }
    s->st->lbstatus -= total;
    return (int)i;
}

bool sg_lb_recover(sg_lb *lb, double now, const uint64_t *exclude)
{
    bool helps = false;
    for (size_t i = 0; i < lb->nmembers; i++) {
        const sg_lb_member *m = &lb->members[i];
        if (m->flags & SG_MEMBER_DISABLED)
            continue;
        if (!in_error(m, now) || (m->flags & SG_MEMBER_DRAIN) || m->st->check_failed)
            return false; /* something is out for another reason, or not out at all */
        helps = helps || !sg_lb_excluded(exclude, i);
    }
    /* all of them already failed for this request: clearing would only hand the next request
     * members that have just failed, before their retry time */
    if (!helps)
        return false;
    for (size_t i = 0; i < lb->nmembers; i++)
        if (!(lb->members[i].flags & SG_MEMBER_DISABLED))
            lb->members[i].st->error_until = 0;
    return true;
}

static int pick_once(sg_lb *lb, double now, const char *route, const uint64_t *exclude)
{
    int i = sg_lb_sticky(lb, now, route, exclude);
    if (i >= 0)
        return i;
    size_t cand[SG_LB_MAX_MEMBERS];
    size_t n = sg_lb_candidates(lb, now, exclude, cand, SG_LB_MAX_MEMBERS);
    if (n == 0)
        return -1;
    assert((unsigned)lb->method < SG_ARRAY_LEN(choosers) && "unknown lbmethod");
    return choosers[lb->method](lb, cand, n);
}

int sg_lb_pick(sg_lb *lb, double now, const char *route, const uint64_t *exclude, bool *recovered)
{
    int i = pick_once(lb, now, route, exclude);
    bool rec = false;
    if (i < 0 && sg_lb_recover(lb, now, exclude)) {
        rec = true;
        i = pick_once(lb, now, route, exclude);
    }
    if (recovered)
        *recovered = rec;
    return i;
}

void sg_lb_fail(sg_lb_member *m, double now, const char *why)
{
    sg_member_state *st = m->st;
    st->failures++;
    snprintf(st->last_error, sizeof st->last_error, "%s", why ? why : "");
    if (!(m->flags & SG_MEMBER_IGNORE_ERRORS))
        st->error_until = now + m->retry;
}

/* The route in a sticky value: what follows its last '.', if that is non-empty and fits. */
static bool route_of(const char *v, size_t len, char *out, size_t cap)
{
    const char *dot = NULL;
    for (size_t k = len; k > 0; k--)
        if (v[k - 1] == '.') {
            dot = v + k - 1;
            break;
        }
    if (!dot)
        return false;
    size_t rlen = (size_t)(v + len - (dot + 1));
    if (rlen == 0 || rlen >= cap)
        return false;
    memcpy(out, dot + 1, rlen);
    out[rlen] = '\0';
    return true;
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Value of the first `name`=value pair in s[0..len), pairs separated by `sep`; optional
 * whitespace around each pair is skipped (cookies use "; ", query strings none). */
static bool find_pair(const char *s, size_t len, char sep, const char *name, const char **val,
                      size_t *vlen)
{
    size_t nlen = strlen(name);
    const char *end = s + len;
    while (s < end) {
        const char *p = memchr(s, sep, (size_t)(end - s));
        const char *next = p ? p + 1 : end;
        const char *e = p ? p : end;
        while (s < e && is_ows(*s))
            s++;
        while (e > s && is_ows(e[-1]))
            e--;
        if ((size_t)(e - s) > nlen && memcmp(s, name, nlen) == 0 && s[nlen] == '=') {
            *val = s + nlen + 1;
            *vlen = (size_t)(e - *val);
            return true;
        }
        s = next;
    }
    return false;
}

bool sg_lb_sticky_route(const char *cookie, size_t cookie_len, const char *query, size_t query_len,
                        const char *name, char *out, size_t cap)
{
    const char *v;
    size_t vlen;
    if (!name || !*name || cap == 0)
        return false;
    /* the URL first, as Apache does: it is how clients without cookies carry the route */
    if (query && find_pair(query, query_len, '&', name, &v, &vlen) && route_of(v, vlen, out, cap))
        return true;
    if (cookie && find_pair(cookie, cookie_len, ';', name, &v, &vlen)) {
        if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"') { /* RFC 6265 quoted cookie-value */
            v++;
            vlen -= 2;
        }
        return route_of(v, vlen, out, cap);
    }
    return false;
}

sg_member_state *sg_lb_registry_get(sg_lb_registry *r, const char *url)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->v[i]->url, url) == 0)
            return sg_member_state_ref(r->v[i]);
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->v = sg_xrealloc(r->v, r->cap * sizeof *r->v);
    }
    r->v[r->n++] = sg_member_state_new(url);
    return sg_member_state_ref(r->v[r->n - 1]);
}

void sg_lb_registry_prune(sg_lb_registry *r)
{
    size_t w = 0;
    for (size_t i = 0; i < r->n; i++) {
        if (r->v[i]->refs == 1)
            sg_member_state_unref(r->v[i]);
        else
            r->v[w++] = r->v[i];
    }
    r->n = w;
}

void sg_lb_registry_free(sg_lb_registry *r)
{
    for (size_t i = 0; i < r->n; i++)
        sg_member_state_unref(r->v[i]);
    free(r->v);
    r->v = NULL;
    r->n = r->cap = 0;
}
