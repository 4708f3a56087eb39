/*
 * balancer.h: member selection for balancer://NAME/, after mod_proxy_balancer (the rules: README
 * "Balancers", scgi-lua(8) "Balancers"): sticky routes, lbset tiers, hot standbys, byrequests /
 * bytraffic / bybusyness, force recovery, and the per-member runtime state shared between config
 * generations. Pure: no I/O, no libev, no Lua, no logging; time comes in as `now` (seconds). It
 * does not connect, count requests or bytes (the caller updates busy/requests/bytes_*), nor own
 * the registry that maps URLs to member states.
 */
#ifndef SG_BALANCER_H
#define SG_BALANCER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** Most members one balancer may have: exclusion bitmaps are SG_LB_EXCLUDE_WORDS uint64_t. */
#define SG_LB_MAX_MEMBERS 256
#define SG_LB_EXCLUDE_WORDS (SG_LB_MAX_MEMBERS / 64)

enum sg_lb_method { SG_LB_BYREQUESTS, SG_LB_BYTRAFFIC, SG_LB_BYBUSYNESS, SG_LB_LUA };

/* status flags: +H, +D, +N, +I */
enum {
    SG_MEMBER_HOT_STANDBY = 1,  /* only when no ordinary member of its lbset is usable */
    SG_MEMBER_DISABLED = 2,     /* never chosen, not even by its sticky route */
    SG_MEMBER_DRAIN = 4,        /* no new requests; its sticky route still reaches it */
    SG_MEMBER_IGNORE_ERRORS = 8 /* sg_lb_fail never takes it out of service */
};

/*
 * Runtime state of one member, keyed by URL and shared between config generations so that
 * counters and error state survive a reload (refcounted; the registry lives elsewhere).
 */
typedef struct sg_member_state {
    char *url; /* owned */
    int refs;
    int64_t lbstatus; /* smooth WRR accumulator */
    unsigned busy;    /* requests in flight */
    uint64_t requests, failures, bytes_to, bytes_from;
    double error_until; /* > now: out of service (connect refused/timed out, malformed response) */
    bool check_failed;  /* the active health check says down */
    char last_error[128];
    double last_check; /* time of last health check, 0 = never */
} sg_member_state;

/** New state for `url` (copied), refs = 1, all counters 0. Aborts on OOM. */
sg_member_state *sg_member_state_new(const char *url);
/** Takes one more reference; returns `st`. */
sg_member_state *sg_member_state_ref(sg_member_state *st);
/** Drops one reference and frees the state at 0. NULL is a no-op. */
void sg_member_state_unref(sg_member_state *st);

/* Configuration of one member (one config generation). */
typedef struct sg_lb_member {
    const char *url;     /* borrowed from config */
    const char *route;   /* borrowed, or NULL */
    int loadfactor;      /* 1..100 */
    int lbset;           /* 0..99 */
    double retry;        /* seconds out of service after a failure */
    unsigned flags;      /* SG_MEMBER_* */
    sg_member_state *st; /* one reference */
} sg_lb_member;

typedef struct sg_lb {
    enum sg_lb_method method;
    sg_lb_member *members; /* borrowed array */
    size_t nmembers;       /* <= SG_LB_MAX_MEMBERS */
} sg_lb;

/*
 * Exclusion bitmaps: bit i set = member i was already tried for this request. NULL means none.
 * The caller provides at least nmembers bits (SG_LB_EXCLUDE_WORDS words always suffice).
 */
static inline void sg_lb_exclude(uint64_t *exclude, size_t i)
{
    exclude[i / 64] |= 1ull << (i % 64);
}
static inline bool sg_lb_excluded(const uint64_t *exclude, size_t i)
{
    return exclude && (exclude[i / 64] & (1ull << (i % 64)));
}

/**
 * Usable for a NEW request: not disabled, not draining, not in error (error_until <= now), and
 * the health check has not failed. Pure.
 */
bool sg_lb_usable(const sg_lb_member *m, double now);

/**
 * Picks a member for a request; returns its index, or -1 if none (the caller answers 503).
 *
 * 1. Sticky: if `route` is not NULL, the first member (config order) whose route equals it, that
 *    is not excluded, not disabled, not in error and whose check has not failed, is chosen, even
 *    when draining, a hot standby or in another lbset. lbstatus is then updated as a byrequests
 *    pick would: every member of the tier a normal pick would use (see sg_lb_candidates) plus the
 *    sticky member adds its loadfactor, and the sticky member loses the total.
 * 2. Otherwise: the lowest lbset with a usable non-excluded member; in it, the usable ordinary
 *    members, or if there are none, the usable hot standbys; among those, by method:
 *    byrequests: smooth weighted round-robin: each candidate adds loadfactor to lbstatus, the
 *      strictly greatest wins (ties: config order) and loses the sum. 5:1:1 gives a a b a c a a.
 *    bytraffic: least (bytes_to + bytes_from) / loadfactor, compared exactly (ties: config
 *      order); lbstatus untouched.
 *    bybusyness: fewest busy; among the members tied at that minimum, byrequests (only the tied
 *      members accumulate lbstatus, so busier members do not build up a lead while they wait).
 *    SG_LB_LUA: the caller normally asks Lua with sg_lb_candidates(); here it acts as byrequests.
 * 3. Force recovery (Apache's forcerecovery): if nothing was found, every non-disabled member is
 *    out only because of error_until (not draining, check not failed), and at least one of them is
 *    not excluded, their error_until is cleared, *recovered is set to true (if not NULL) and 1-2
 *    run once more. Otherwise *recovered is set to false.
 * Updates only lbstatus (and error_until on recovery); never logs.
 */
int sg_lb_pick(sg_lb *lb, double now, const char *route, const uint64_t *exclude, bool *recovered);

/**
 * Step 1 of sg_lb_pick alone, for the Lua method: the sticky member's index (lbstatus updated
 * as described there), or -1 if `route` is NULL or names no eligible member.
 */
int sg_lb_sticky(sg_lb *lb, double now, const char *route, const uint64_t *exclude);

/**
 * Step 3 of sg_lb_pick alone, for the Lua method: clears error_until of every non-disabled member
 * and returns true if the force-recovery condition holds, else changes nothing and returns false.
 */
bool sg_lb_recover(sg_lb *lb, double now, const uint64_t *exclude);

/**
 * Candidate list for a Lua method: fills idx[] (config order) with the indices sg_lb_pick would
 * choose among in step 2 (same lbset/standby rules, same exclusions) and returns how many it wrote
 * (at most cap; cap = SG_LB_MAX_MEMBERS never truncates). 0: none usable (try sg_lb_recover).
 */
size_t sg_lb_candidates(const sg_lb *lb, double now, const uint64_t *exclude, size_t *idx,
                        size_t cap);

/**
 * Records a failure: failures++ and last_error = why (truncated to 127 bytes; NULL = "").
 * Unless the member is +I, it is also out of service until now + retry (retry 0: not at all).
 */
void sg_lb_fail(sg_lb_member *m, double now, const char *why);

/**
 * Extracts the sticky route for `name` from a query string ("ROUTEID=xyz.b&x=1" -> "b") or, if
 * that gives none, from a Cookie header value ("a=1; ROUTEID=xyz.b; c=2" -> "b"): the part after
 * the LAST '.' of the value. Names match exactly (case-sensitive, no percent-decoding); only the
 * first occurrence of the name in each source counts; a cookie value in double quotes is unquoted.
 * Either source may be NULL. Writes the route NUL-terminated into out (cap bytes) and returns
 * true, or false if absent/empty/no dot/too long (then out is untouched). Pure, no allocation.
 */
bool sg_lb_sticky_route(const char *cookie, size_t cookie_len, const char *query, size_t query_len,
                        const char *name, char *out, size_t cap);

/*
 * The registry that makes member state survive reloads: one state per URL, shared by every
 * config generation that names it. The registry holds one reference of its own.
 */
typedef struct sg_lb_registry {
    sg_member_state **v; /* owned references */
    size_t n, cap;
} sg_lb_registry;

/** Returns a new reference to the state of `url`, creating it on first use. */
sg_member_state *sg_lb_registry_get(sg_lb_registry *r, const char *url);
/** Drops the states nothing but the registry refers to any more (removed members). */
void sg_lb_registry_prune(sg_lb_registry *r);
void sg_lb_registry_free(sg_lb_registry *r);

#endif
