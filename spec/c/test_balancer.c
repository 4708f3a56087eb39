/* Unit tests for core/balancer.c: pick sequences and distributions per lbmethod (tables of
 * members -> expected letters), tiers, standbys, flags, error/retry over `now`, force recovery,
 * exclusion bitmaps, sticky routes (parser and pick), the Lua candidate list and refcounts. */
#include "../../core/balancer.c"
#include "test.h"

typedef struct mspec {
    const char *url; /* its first letter names the member in pick sequences */
    int lf, lbset;
    unsigned flags;
    const char *route;
} mspec;

#define MAXM 160
typedef struct fixture {
    sg_lb lb;
    sg_lb_member m[MAXM];
} fixture;

static void fx_init(fixture *f, enum sg_lb_method method, const mspec *s, size_t n)
{
    memset(f, 0, sizeof *f);
    f->lb.method = method;
    f->lb.members = f->m;
    f->lb.nmembers = n;
    for (size_t i = 0; i < n; i++) {
        sg_lb_member *m = &f->m[i];
        m->url = s[i].url;
        m->route = s[i].route;
        m->loadfactor = s[i].lf ? s[i].lf : 1;
        m->lbset = s[i].lbset;
        m->flags = s[i].flags;
        m->retry = 10;
        m->st = sg_member_state_new(s[i].url);
    }
}

#define W(url, lf)                                                                                 \
    {                                                                                              \
        url, lf, 0, 0, NULL                                                                        \
    } /* weight only */
#define FX(f, method, ...)                                                                         \
    fx_init(f, method, (const mspec[]){ __VA_ARGS__ },                                             \
            sizeof((const mspec[]){ __VA_ARGS__ }) / sizeof(mspec))

static void fx_free(fixture *f)
{
    for (size_t i = 0; i < f->lb.nmembers; i++)
        sg_member_state_unref(f->m[i].st);
}

/* n successive picks as the members' letters, '-' for none */
static const char *seq(fixture *f, double now, const char *route, const uint64_t *ex, int n)
{
    static char buf[1024];
    for (int k = 0; k < n; k++) {
        int i = sg_lb_pick(&f->lb, now, route, ex, NULL);
        buf[k] = i < 0 ? '-' : f->m[i].url[0];
    }
    buf[n] = '\0';
    return buf;
}

/* ---- sequences: one row per balancer ---- */

#define H SG_MEMBER_HOT_STANDBY
#define D SG_MEMBER_DISABLED
#define N SG_MEMBER_DRAIN
#define I SG_MEMBER_IGNORE_ERRORS

struct seq_case {
    const char *name;
    enum sg_lb_method method;
    mspec m[4];
    size_t n;
    const char *want;
};

static const struct seq_case seq_cases[] = {
    { "5:1:1", SG_LB_BYREQUESTS, { W("a", 5), W("b", 1), W("c", 1) }, 3, "aabacaaaabacaa" },
    { "1:1", SG_LB_BYREQUESTS, { W("a", 1), W("b", 1) }, 2, "abababab" },
    { "1:2", SG_LB_BYREQUESTS, { W("a", 1), W("b", 2) }, 2, "babbabbab" },
    { "1:1:1", SG_LB_BYREQUESTS, { W("a", 1), W("b", 1), W("c", 1) }, 3, "abcabc" },
    { "lbset 1 idle",
      SG_LB_BYREQUESTS,
      { W("a", 2), W("b", 1), { "c", 50, 1, 0, NULL } },
      3,
      "abaaba" },
    { "lbset order, not config order",
      SG_LB_BYREQUESTS,
      { { "a", 1, 2, 0, NULL }, { "b", 1, 1, 0, NULL } },
      2,
      "bbbb" },
    { "+D never", SG_LB_BYREQUESTS, { { "a", 5, 0, D, NULL }, W("b", 1), W("c", 1) }, 3, "bcbc" },
    { "+N no new requests", SG_LB_BYREQUESTS, { { "a", 5, 0, N, NULL }, W("b", 1) }, 2, "bbbb" },
    { "+H while others usable",
      SG_LB_BYREQUESTS,
      { { "h", 50, 0, H, NULL }, W("a", 1) },
      2,
      "aaaa" },
    { "only standbys",
      SG_LB_BYREQUESTS,
      { { "h", 1, 0, H, NULL }, { "i", 1, 0, H, NULL } },
      2,
      "hihi" },
    { "standby of set 0 before set 1",
      SG_LB_BYREQUESTS,
      { { "h", 1, 0, H, NULL }, { "b", 1, 1, 0, NULL } },
      2,
      "hhhh" },
    { "+I is usable", SG_LB_BYREQUESTS, { { "a", 1, 0, I, NULL }, W("b", 1) }, 2, "abab" },
    { "all +D", SG_LB_BYREQUESTS, { { "a", 1, 0, D, NULL }, { "b", 1, 0, D, NULL } }, 2, "----" },
    { "only +N and +D",
      SG_LB_BYREQUESTS,
      { { "a", 1, 0, N, NULL }, { "b", 1, 0, D, NULL } },
      2,
      "---" },
    { "empty", SG_LB_BYREQUESTS, { W("a", 1) }, 0, "--" },
    { "bybusyness idle = byrequests",
      SG_LB_BYBUSYNESS,
      { W("a", 5), W("b", 1), W("c", 1) },
      3,
      "aabacaa" },
    { "bytraffic idle: first", SG_LB_BYTRAFFIC, { W("a", 1), W("b", 5) }, 2, "aaaa" },
    { "lua fallback = byrequests", SG_LB_LUA, { W("a", 5), W("b", 1), W("c", 1) }, 3, "aabacaa" },
};

static void test_sequences(void)
{
    for (size_t i = 0; i < SG_ARRAY_LEN(seq_cases); i++) {
        const struct seq_case *t = &seq_cases[i];
        fixture f;
        CASE_BEGIN();
        fx_init(&f, t->method, t->m, t->n);
        const char *got = seq(&f, 1000, NULL, NULL, (int)strlen(t->want));
        CHECK(strcmp(got, t->want) == 0, "%s: got %s, want %s", t->name, got, t->want);
        fx_free(&f);
        CASE_END();
    }
}

/* ---- distributions ---- */

struct dist_case {
    mspec m[3];
    size_t n;
    int picks;
    int want[3];
};

static const struct dist_case dist_cases[] = {
    { { W("a", 5), W("b", 1), W("c", 1) }, 3, 700, { 500, 100, 100 } },
    { { W("a", 1), W("b", 2) }, 2, 300, { 100, 200 } },
    { { W("a", 1), W("b", 1) }, 2, 301, { 151, 150 } },
    { { W("a", 100), W("b", 1), W("c", 99) }, 3, 2000, { 1000, 10, 990 } },
};

static void test_distributions(void)
{
    for (size_t i = 0; i < SG_ARRAY_LEN(dist_cases); i++) {
        const struct dist_case *t = &dist_cases[i];
        fixture f;
        int got[3] = { 0 };
        CASE_BEGIN();
        fx_init(&f, SG_LB_BYREQUESTS, t->m, t->n);
        for (int k = 0; k < t->picks; k++) {
            int j = sg_lb_pick(&f.lb, 1, NULL, NULL, NULL);
            CHECK(j >= 0 && (size_t)j < t->n, "row %zu: pick %d", i, j);
            if (j >= 0 && j < 3)
                got[j]++;
        }
        for (size_t j = 0; j < t->n; j++)
            CHECK(got[j] == t->want[j], "row %zu member %zu: %d picks, want %d", i, j, got[j],
                  t->want[j]);
        fx_free(&f);
        CASE_END();
    }
}

/* ---- states over time ---- */

static void test_usable(void)
{
    fixture f;
    FX(&f, SG_LB_BYREQUESTS, W("a", 1), { "b", 1, 0, D, NULL }, { "c", 1, 0, N, NULL },
       { "d", 1, 0, H, NULL }, { "e", 1, 0, I, NULL }, W("f", 1), W("g", 1));
    f.m[5].st->error_until = 50;
    f.m[6].st->check_failed = true;
    static const bool want[] = { true, false, false, true, true, false, false };
    for (size_t i = 0; i < SG_ARRAY_LEN(want); i++)
        CHECK(sg_lb_usable(&f.m[i], 49) == want[i], "member %s", f.m[i].url);
    CHECK(sg_lb_usable(&f.m[5], 50), "error_until == now is back in service");
    fx_free(&f);
}

static void test_error_until_now(void)
{
    fixture f;
    FX(&f, SG_LB_BYREQUESTS, W("a", 1), W("b", 1));
    sg_lb_fail(&f.m[0], 100, "connect refused");
    CHECK(f.m[0].st->error_until == 110, "error_until %g", f.m[0].st->error_until);
    CHECK_INT(f.m[0].st->failures, 1);
    CHECK_STR(f.m[0].st->last_error, "connect refused");
    CHECK_STR(seq(&f, 100, NULL, NULL, 3), "bbb");
    CHECK_STR(seq(&f, 109.9, NULL, NULL, 3), "bbb");
    CHECK(!sg_lb_usable(&f.m[0], 109.999), "still out just before retry elapses");
    CHECK(sg_lb_usable(&f.m[0], 110), "back when retry elapses");
    CHECK(strchr(seq(&f, 110, NULL, NULL, 4), 'a') != NULL, "a not picked after retry elapsed");
    /* retry 0: never out of service */
    f.m[1].retry = 0;
    sg_lb_fail(&f.m[1], 200, "timeout");
    CHECK(sg_lb_usable(&f.m[1], 200), "retry 0 took the member out");
    fx_free(&f);
}

static void test_fail_ignore_errors(void)
{
    fixture f;
    FX(&f, SG_LB_BYREQUESTS, { "a", 1, 0, I, NULL }, W("b", 1));
    sg_lb_fail(&f.m[0], 100, "refused");
    sg_lb_fail(&f.m[0], 101, NULL);
    CHECK(f.m[0].st->error_until == 0, "+I went out of service until %g", f.m[0].st->error_until);
    CHECK_INT(f.m[0].st->failures, 2);
    CHECK_STR(f.m[0].st->last_error, "");
    CHECK(sg_lb_usable(&f.m[0], 101), "+I unusable after failures");
    CHECK_STR(seq(&f, 101, NULL, NULL, 4), "abab");
    /* last_error is truncated, not overflowed */
    char why[300];
    memset(why, 'x', sizeof why - 1);
    why[sizeof why - 1] = '\0';
    sg_lb_fail(&f.m[1], 100, why);
    CHECK_INT(strlen(f.m[1].st->last_error), sizeof f.m[1].st->last_error - 1);
    CHECK(f.m[1].st->last_error[0] == 'x', "last_error not copied");
    fx_free(&f);
}

static void test_lbset_tiers(void)
{
    fixture f;
    FX(&f, SG_LB_BYREQUESTS, W("a", 1), W("b", 1), { "c", 1, 1, 0, NULL }, { "d", 1, 2, 0, NULL });
    bool rec = true;
    CHECK_STR(seq(&f, 100, NULL, NULL, 4), "abab");
    sg_lb_fail(&f.m[0], 100, "refused");
    CHECK_STR(seq(&f, 101, NULL, NULL, 3), "bbb");
    sg_lb_fail(&f.m[1], 101, "refused");
    CHECK_STR(seq(&f, 102, NULL, NULL, 3), "ccc");
    f.m[2].st->check_failed = true;
    CHECK_STR(seq(&f, 102, NULL, NULL, 2), "dd");
    f.m[2].st->check_failed = false;
    CHECK_INT(sg_lb_pick(&f.lb, 105, NULL, NULL, &rec), 2);
    CHECK(!rec, "recovered while set 1 was usable");
    /* a comes back first, then b: set 0 again, set 1 idle */
    CHECK_STR(seq(&f, 110, NULL, NULL, 3), "aaa");
    const char *s = seq(&f, 111, NULL, NULL, 6);
    CHECK(strchr(s, 'c') == NULL && strchr(s, 'a') && strchr(s, 'b'), "back in set 0: %s", s);
    fx_free(&f);
}

static void test_hot_standby(void)
{
    fixture f;
    FX(&f, SG_LB_BYREQUESTS, W("a", 1), { "h", 10, 0, H, NULL }, W("b", 1), { "c", 1, 1, 0, NULL });
    CHECK_STR(seq(&f, 100, NULL, NULL, 4), "abab");
    sg_lb_fail(&f.m[0], 100, "refused");
    CHECK_STR(seq(&f, 100, NULL, NULL, 3), "bbb");
    f.m[2].flags |= SG_MEMBER_DRAIN;
    CHECK_STR(seq(&f, 100, NULL, NULL, 3), "hhh"); /* before set 1 */
    f.m[1].flags |= SG_MEMBER_DISABLED;
    CHECK_STR(seq(&f, 100, NULL, NULL, 2), "cc");
    f.m[2].flags &= ~(unsigned)SG_MEMBER_DRAIN;
    CHECK_STR(seq(&f, 100, NULL, NULL, 2), "bb");
    fx_free(&f);
}

/* ---- force recovery ---- */

static void test_force_recovery(void)
{
    fixture f;
    bool rec = false;
    FX(&f, SG_LB_BYREQUESTS, W("a", 1), W("b", 1), W("c", 1), { "d", 1, 0, D, NULL });
    f.m[3].st->error_until = 500; /* disabled: neither counted nor cleared */
    for (int i = 0; i < 3; i++)
        sg_lb_fail(&f.m[i], 100, "refused");
    CHECK_INT(sg_lb_pick(&f.lb, 101, NULL, NULL, &rec), 0);
    CHECK(rec, "recovered flag not set");
    for (int i = 0; i < 3; i++)
        CHECK(f.m[i].st->error_until <= 101, "member %d still in error", i);
    CHECK(f.m[3].st->error_until == 500, "disabled member touched");
    CHECK_INT(sg_lb_pick(&f.lb, 101, NULL, NULL, &rec), 1);
    CHECK(!rec, "recovered flag on an ordinary pick");
    fx_free(&f);
}

struct recovery_case {
    const char *name;
    unsigned flags_b;
    bool check_failed_b, fail_b;
    uint64_t exclude;
    int want;
    bool recovered;
};

/* a always fails at 100; picks at 101 */
static const struct recovery_case recovery_cases[] = {
    { "both in error", 0, false, true, 0, 0, true },
    { "both in error, a excluded", 0, false, true, 1, 1, true },
    { "both in error, both excluded", 0, false, true, 3, -1, false },
    { "b draining blocks recovery", N, false, false, 0, -1, false },
    { "b draining and in error blocks", N, false, true, 0, -1, false },
    { "b check failed blocks", 0, true, false, 0, -1, false },
    { "b check failed and in error blocks", 0, true, true, 0, -1, false },
    { "b disabled is ignored", D, false, false, 0, 0, true },
    { "b usable: no recovery", 0, false, false, 0, 1, false },
    { "b usable but excluded: no recovery", 0, false, false, 2, -1, false },
};

static void test_recovery_cases(void)
{
    for (size_t i = 0; i < SG_ARRAY_LEN(recovery_cases); i++) {
        const struct recovery_case *t = &recovery_cases[i];
        fixture f;
        bool rec = !t->recovered;
        CASE_BEGIN();
        FX(&f, SG_LB_BYREQUESTS, W("a", 1), { "b", 1, 0, t->flags_b, NULL });
        f.m[1].st->check_failed = t->check_failed_b;
        sg_lb_fail(&f.m[0], 100, "refused");
        if (t->fail_b)
            sg_lb_fail(&f.m[1], 100, "refused");
        int got = sg_lb_pick(&f.lb, 101, NULL, &t->exclude, &rec);
        CHECK(got == t->want, "%s: picked %d, want %d", t->name, got, t->want);
        CHECK(rec == t->recovered, "%s: recovered %d", t->name, rec);
        if (!t->recovered)
            CHECK(f.m[0].st->error_until == 110, "%s: error cleared without recovery", t->name);
        fx_free(&f);
        CASE_END();
    }
}

/* ---- exclusion bitmap ---- */

static void test_exclude(void)
{
    fixture f;
    uint64_t ex[SG_LB_EXCLUDE_WORDS] = { 0 };
    bool rec = true;
    FX(&f, SG_LB_BYREQUESTS, W("a", 5), W("b", 1), W("c", 1));
    sg_lb_exclude(ex, 0);
    CHECK_STR(seq(&f, 1, NULL, ex, 4), "bcbc");
    sg_lb_exclude(ex, 2);
    CHECK_STR(seq(&f, 1, NULL, ex, 2), "bb");
    sg_lb_exclude(ex, 1);
    CHECK_INT(sg_lb_pick(&f.lb, 1, NULL, ex, &rec), -1);
    CHECK(!rec, "recovered members that are not in error");
    fx_free(&f);

    /* bits past the first word */
    static mspec many[130];
    for (size_t i = 0; i < SG_ARRAY_LEN(many); i++)
        many[i] = (mspec)W("m", 1);
    fx_init(&f, SG_LB_BYREQUESTS, many, SG_ARRAY_LEN(many));
    memset(ex, 0, sizeof ex);
    for (size_t i = 0; i < SG_ARRAY_LEN(many); i++)
        if (i != 65 && i != 129)
            sg_lb_exclude(ex, i);
    CHECK(!sg_lb_excluded(ex, 65) && sg_lb_excluded(ex, 64) && sg_lb_excluded(ex, 128), "bitmap");
    for (int k = 0; k < 4; k++) {
        int got = sg_lb_pick(&f.lb, 1, NULL, ex, NULL);
        CHECK(got == (k % 2 ? 129 : 65), "pick %d: %d", k, got);
    }
    sg_lb_exclude(ex, 65);
    sg_lb_exclude(ex, 129);
    CHECK_INT(sg_lb_pick(&f.lb, 1, NULL, ex, NULL), -1);
    CHECK(!sg_lb_excluded(NULL, 3), "NULL bitmap excludes");
    fx_free(&f);
}

/* ---- bytraffic ---- */

struct traffic_case {
    uint64_t to_a, from_a;
    int lf_a;
    uint64_t to_b, from_b;
    int lf_b;
    int want;
};

static const struct traffic_case traffic_cases[] = {
    { 1000, 0, 1, 500, 400, 1, 1 },
    { 500, 400, 1, 1000, 0, 1, 0 },
    { 450, 450, 1, 900, 0, 1, 0 }, /* tie: config order */
    { 900, 0, 1, 450, 450, 1, 0 }, /* tie: config order */
    { 2000, 0, 2, 1000, 0, 1, 0 }, /* 1000 vs 1000 */
    { 2000, 0, 2, 999, 0, 1, 1 },
    { 3, 0, 2, 1, 0, 1, 1 },                   /* 1.5 vs 1: remainders count */
    { 3, 0, 2, 2, 0, 1, 0 },                   /* 1.5 vs 2 */
    { 0, 199, 100, 1, 0, 1, 1 },               /* 1.99 vs 1 */
    { UINT64_MAX, 0, 1, UINT64_MAX, 5, 1, 0 }, /* saturates: tie, not a wrapped 4 */
};

static void test_bytraffic(void)
{
    for (size_t i = 0; i < SG_ARRAY_LEN(traffic_cases); i++) {
        const struct traffic_case *t = &traffic_cases[i];
        fixture f;
        CASE_BEGIN();
        FX(&f, SG_LB_BYTRAFFIC, W("a", t->lf_a), W("b", t->lf_b));
        f.m[0].st->bytes_to = t->to_a;
        f.m[0].st->bytes_from = t->from_a;
        f.m[1].st->bytes_to = t->to_b;
        f.m[1].st->bytes_from = t->from_b;
        for (int k = 0; k < 2; k++) {
            int got = sg_lb_pick(&f.lb, 1, NULL, NULL, NULL);
            CHECK(got == t->want, "row %zu: picked %d, want %d", i, got, t->want);
        }
        CHECK(f.m[0].st->lbstatus == 0 && f.m[1].st->lbstatus == 0, "bytraffic changed lbstatus");
        fx_free(&f);
        CASE_END();
    }
}

static void test_bytraffic_tiers(void)
{
    fixture f;
    FX(&f, SG_LB_BYTRAFFIC, { "a", 1, 1, 0, NULL }, W("b", 1), W("c", 1));
    f.m[1].st->bytes_to = 1000000;
    f.m[2].st->bytes_from = 999999;
    CHECK_STR(seq(&f, 1, NULL, NULL, 2), "cc");
    fx_free(&f);
}

/* ---- bybusyness ---- */

static void test_bybusyness(void)
{
    fixture f;
    FX(&f, SG_LB_BYBUSYNESS, W("a", 1), W("b", 1), W("c", 1));
    f.m[0].st->busy = 2;
    f.m[1].st->busy = 1;
    f.m[2].st->busy = 1;
    CHECK_STR(seq(&f, 1, NULL, NULL, 2), "bc");
    CHECK(f.m[0].st->lbstatus == 0, "busier member accumulated lbstatus %lld",
          (long long)f.m[0].st->lbstatus);
    f.m[0].st->busy = 1; /* now all tied: plain rotation, no lead for a (Apache: "aab") */
    CHECK_STR(seq(&f, 1, NULL, NULL, 3), "abc");
    f.m[1].st->busy = 0;
    CHECK_STR(seq(&f, 1, NULL, NULL, 3), "bbb");
    fx_free(&f);

    FX(&f, SG_LB_BYBUSYNESS, W("a", 1), W("b", 2), W("c", 1));
    f.m[0].st->busy = 2;
    f.m[1].st->busy = 1;
    f.m[2].st->busy = 1;
    CHECK_STR(seq(&f, 1, NULL, NULL, 6), "bcbbcb");
    fx_free(&f);

    /* standby with zero busy is still only a standby */
    FX(&f, SG_LB_BYBUSYNESS, { "h", 1, 0, H, NULL }, W("a", 1), W("b", 1));
    f.m[1].st->busy = 7;
    f.m[2].st->busy = 3;
    CHECK_STR(seq(&f, 1, NULL, NULL, 2), "bb");
    fx_free(&f);
}

/* ---- sticky routes: the parser ---- */

struct route_case {
    const char *cookie, *query, *name;
    size_t cap;
    const char *want; /* NULL: no route */
};

static const struct route_case route_cases[] = {
    { NULL, NULL, "ROUTEID", 32, NULL },
    { "", "", "ROUTEID", 32, NULL },
    { "a=1; ROUTEID=xyz.b; c=2", NULL, "ROUTEID", 32, "b" },
    { "ROUTEID=.b", NULL, "ROUTEID", 32, "b" },
    { "a=1;ROUTEID=x.b", NULL, "ROUTEID", 32, "b" },
    { "a=1;   ROUTEID=x.b   ; c=2", NULL, "ROUTEID", 32, "b" },
    { "\tROUTEID=x.web1\t", NULL, "ROUTEID", 32, "web1" },
    { "ROUTEID = x.b", NULL, "ROUTEID", 32, NULL },
    { "ROUTEID=xyz", NULL, "ROUTEID", 32, NULL },
    { "ROUTEID=xyz.", NULL, "ROUTEID", 32, NULL },
    { "ROUTEID=", NULL, "ROUTEID", 32, NULL },
    { "ROUTEID", NULL, "ROUTEID", 32, NULL },
    { "routeid=x.b", NULL, "ROUTEID", 32, NULL },
    { "XROUTEID=x.a", NULL, "ROUTEID", 32, NULL },
    { "XROUTEID=x.a; ROUTEID=y.b", NULL, "ROUTEID", 32, "b" },
    { "ROUTEIDX=x.a; ROUTEID=y.b", NULL, "ROUTEID", 32, "b" },
    { "ROUTEID=a.b.c", NULL, "ROUTEID", 32, "c" },
    { "ROUTEID=\"x.b\"", NULL, "ROUTEID", 32, "b" },
    { "ROUTEID=x.b; ROUTEID=y.c", NULL, "ROUTEID", 32, "b" },
    { "ROUTEID=x.1234567", NULL, "ROUTEID", 8, "1234567" },
    { "ROUTEID=x.12345678", NULL, "ROUTEID", 8, NULL },
    { "a=1; ROUTEID=x.b", NULL, "", 32, NULL },
    { NULL, "ROUTEID=xyz.b&x=1", "ROUTEID", 32, "b" },
    { NULL, "x=1&ROUTEID=xyz.b&y=2", "ROUTEID", 32, "b" },
    { NULL, "x=1&ROUTEID=xyz.b", "ROUTEID", 32, "b" },
    { NULL, "x=1&XROUTEID=xyz.b", "ROUTEID", 32, NULL },
    { NULL, "x=ROUTEID=q.z&ROUTEID=r.b", "ROUTEID", 32, "b" },
    { NULL, "ROUTEID=nodot", "ROUTEID", 32, NULL },
    { NULL, "ROUTEID", "ROUTEID", 32, NULL },
    { "ROUTEID=c.c", "ROUTEID=q.b", "ROUTEID", 32, "b" }, /* the URL first */
    { "ROUTEID=.c", "x=1", "ROUTEID", 32, "c" },
    { "ROUTEID=.c", "ROUTEID=nodot", "ROUTEID", 32, "c" },
};

static void test_route_cases(void)
{
    for (size_t i = 0; i < SG_ARRAY_LEN(route_cases); i++) {
        const struct route_case *t = &route_cases[i];
        char out[64];
        CASE_BEGIN();
        strcpy(out, "keep");
        bool ok = sg_lb_sticky_route(t->cookie, t->cookie ? strlen(t->cookie) : 0, t->query,
                                     t->query ? strlen(t->query) : 0, t->name, out, t->cap);
        CHECK(ok == (t->want != NULL), "row %zu (%s | %s): ok %d", i, t->cookie ? t->cookie : "-",
              t->query ? t->query : "-", ok);
        CHECK_STR(out, t->want ? t->want : "keep");
        CASE_END();
    }
}

static void test_route_lengths(void)
{
    char out[16];
    /* lengths are honoured: nothing past them is read */
    CHECK(sg_lb_sticky_route("ROUTEID=x.bc", 11, NULL, 0, "ROUTEID", out, sizeof out), "cookie");
    CHECK_STR(out, "b");
    CHECK(sg_lb_sticky_route(NULL, 0, "ROUTEID=x.de&zz", 11, "ROUTEID", out, sizeof out), "query");
    CHECK_STR(out, "d");
    CHECK(!sg_lb_sticky_route("ROUTEID=x.b", 10, NULL, 0, "ROUTEID", out, sizeof out), "empty");
    CHECK(!sg_lb_sticky_route("ROUTEID=x.b", 11, NULL, 0, "ROUTEID", out, 0), "cap 0");
}

/* ---- sticky routes: the pick ---- */

static void test_sticky_pick(void)
{
    fixture f;
    char route[32];
    FX(&f, SG_LB_BYREQUESTS, { "a", 5, 0, 0, "a" }, { "b", 1, 0, 0, "b" }, { "c", 1, 1, H, "c" });
    const char *cookie = "s=1; ROUTEID=sess.b", *query = "x=1&ROUTEID=.c";
    CHECK(sg_lb_sticky_route(cookie, strlen(cookie), NULL, 0, "ROUTEID", route, 32), "cookie");
    CHECK_STR(seq(&f, 1, route, NULL, 5), "bbbbb");
    CHECK(sg_lb_sticky_route(NULL, 0, query, strlen(query), "ROUTEID", route, 32), "query");
    CHECK_STR(seq(&f, 1, route, NULL, 3), "ccc"); /* standby of another lbset: sticky still goes */
    fx_free(&f);

    /* no route, unknown route: normal balancing */
    FX(&f, SG_LB_BYREQUESTS, { "a", 5, 0, 0, "a" }, { "b", 1, 0, 0, "b" }, { "c", 1, 0, 0, "c" });
    CHECK_STR(seq(&f, 1, NULL, NULL, 7), "aabacaa");
    CHECK_STR(seq(&f, 1, "zzz", NULL, 7), "aabacaa");
    fx_free(&f);

    /* routes of members that may not take it fall back; +N still takes its sticky requests */
    FX(&f, SG_LB_BYREQUESTS, { "a", 1, 0, N, "a" }, { "b", 1, 0, 0, "b" }, { "d", 1, 0, D, "d" },
       { "e", 1, 0, 0, "e" });
    CHECK_STR(seq(&f, 1, "a", NULL, 3), "aaa");
    CHECK_STR(seq(&f, 1, NULL, NULL, 2), "be");
    CHECK(strchr(seq(&f, 1, "d", NULL, 4), 'd') == NULL, "disabled member took its route");
    sg_lb_fail(&f.m[1], 10, "refused");
    CHECK_STR(seq(&f, 11, "b", NULL, 3), "eee");
    CHECK_STR(seq(&f, 20, "b", NULL, 3), "bbb");
    f.m[1].st->check_failed = true;
    CHECK_STR(seq(&f, 20, "b", NULL, 2), "ee");
    f.m[1].st->check_failed = false;
    uint64_t ex[SG_LB_EXCLUDE_WORDS] = { 2 }; /* b already tried */
    CHECK_STR(seq(&f, 20, "b", ex, 2), "ee");
    fx_free(&f);

    /* a second member with the same route takes over */
    FX(&f, SG_LB_BYREQUESTS, { "a", 1, 0, 0, "r" }, { "b", 1, 0, 0, "r" }, W("c", 1));
    CHECK_STR(seq(&f, 1, "r", NULL, 2), "aa");
    sg_lb_fail(&f.m[0], 1, "refused");
    CHECK_STR(seq(&f, 2, "r", NULL, 2), "bb");
    fx_free(&f);
}

static void test_sticky_lbstatus(void)
{
    fixture f;
    FX(&f, SG_LB_BYREQUESTS, { "a", 1, 0, 0, "a" }, { "b", 1, 0, 0, "b" });
    CHECK_INT(sg_lb_pick(&f.lb, 1, "b", NULL, NULL), 1);
    CHECK_INT(f.m[0].st->lbstatus, 1);
    CHECK_INT(f.m[1].st->lbstatus, -1);
    CHECK_STR(seq(&f, 1, NULL, NULL, 3), "aab");
    fx_free(&f);

    /* a drained sticky member pays for the tier it is not part of; other tiers are untouched */
    FX(&f, SG_LB_BYREQUESTS, { "a", 1, 0, N, "a" }, W("b", 2), W("c", 1), { "d", 5, 1, 0, NULL });
    CHECK_INT(sg_lb_pick(&f.lb, 1, "a", NULL, NULL), 0);
    CHECK_INT(f.m[0].st->lbstatus, -3);
    CHECK_INT(f.m[1].st->lbstatus, 2);
    CHECK_INT(f.m[2].st->lbstatus, 1);
    CHECK_INT(f.m[3].st->lbstatus, 0);
    fx_free(&f);
}

/* ---- the Lua path ---- */

static void test_candidates(void)
{
    fixture f;
    size_t idx[SG_LB_MAX_MEMBERS];
    uint64_t ex[SG_LB_EXCLUDE_WORDS] = { 0 };
    FX(&f, SG_LB_LUA, { "a", 1, 0, D, NULL }, W("b", 1), { "c", 1, 0, H, NULL },
       { "d", 1, 1, 0, NULL }, { "e", 1, 1, N, NULL }, { "f", 1, 1, 0, NULL });
    CHECK_INT(sg_lb_candidates(&f.lb, 1, NULL, idx, SG_LB_MAX_MEMBERS), 1);
    CHECK_INT(idx[0], 1);
    sg_lb_fail(&f.m[1], 1, "refused");
    CHECK_INT(sg_lb_candidates(&f.lb, 2, NULL, idx, SG_LB_MAX_MEMBERS), 1);
    CHECK_INT(idx[0], 2);
    sg_lb_exclude(ex, 2);
    CHECK_INT(sg_lb_candidates(&f.lb, 2, ex, idx, SG_LB_MAX_MEMBERS), 2);
    CHECK(idx[0] == 3 && idx[1] == 5, "set 1: %zu %zu", idx[0], idx[1]);
    CHECK_INT(sg_lb_candidates(&f.lb, 2, ex, idx, 1), 1); /* truncated to cap */
    CHECK_INT(idx[0], 3);
    sg_lb_exclude(ex, 3);
    sg_lb_exclude(ex, 5);
    CHECK_INT(sg_lb_candidates(&f.lb, 2, ex, idx, SG_LB_MAX_MEMBERS), 0);
    /* the sticky step alone */
    CHECK_INT(sg_lb_sticky(&f.lb, 2, NULL, NULL), -1);
    f.m[4].route = "e";
    CHECK_INT(sg_lb_sticky(&f.lb, 2, "e", ex), 4);
    CHECK_INT(sg_lb_sticky(&f.lb, 2, "x", ex), -1);
    fx_free(&f);

    /* everything in error: no candidates until sg_lb_recover */
    FX(&f, SG_LB_LUA, W("a", 1), W("b", 1));
    sg_lb_fail(&f.m[0], 1, "refused");
    sg_lb_fail(&f.m[1], 1, "refused");
    CHECK_INT(sg_lb_candidates(&f.lb, 2, NULL, idx, SG_LB_MAX_MEMBERS), 0);
    memset(ex, 0, sizeof ex);
    sg_lb_exclude(ex, 0);
    sg_lb_exclude(ex, 1);
    CHECK(!sg_lb_recover(&f.lb, 2, ex), "recovered with everything excluded");
    CHECK(sg_lb_recover(&f.lb, 2, NULL), "no recovery");
    CHECK_INT(sg_lb_candidates(&f.lb, 2, NULL, idx, SG_LB_MAX_MEMBERS), 2);
    CHECK(!sg_lb_recover(&f.lb, 2, NULL), "recovered usable members");
    fx_free(&f);
}

/* ---- shared state ---- */

static void test_member_state_refs(void)
{
    char url[] = "scgi://127.0.0.1:4000/";
    sg_member_state *st = sg_member_state_new(url);
    url[0] = 'X';
    CHECK_STR(st->url, "scgi://127.0.0.1:4000/");
    CHECK_INT(st->refs, 1);
    CHECK(st->lbstatus == 0 && st->busy == 0 && st->failures == 0 && st->error_until == 0 &&
              !st->check_failed && st->last_error[0] == '\0' && st->last_check == 0,
          "not zeroed");
    /* a reload: the new generation takes a reference, the old one drops its own */
    sg_lb_member gen1 = { .url = "u", .loadfactor = 1, .retry = 10, .st = st };
    sg_lb_member gen2 = { .url = "u", .loadfactor = 1, .retry = 10, .st = sg_member_state_ref(st) };
    CHECK(gen2.st == st, "ref returned another pointer");
    CHECK_INT(st->refs, 2);
    sg_lb_fail(&gen1, 100, "refused");
    sg_member_state_unref(gen1.st);
    CHECK_INT(gen2.st->refs, 1);
    CHECK_INT(gen2.st->failures, 1);
    CHECK(!sg_lb_usable(&gen2, 105), "error state lost across generations");
    sg_member_state_unref(gen2.st); /* freed: ASan reports a leak or a double free */
    sg_member_state_unref(NULL);
}

int main(void)
{
    test_sequences();
    test_distributions();
    RUN(test_usable);
    RUN(test_error_until_now);
    RUN(test_fail_ignore_errors);
    RUN(test_lbset_tiers);
    RUN(test_hot_standby);
    RUN(test_force_recovery);
    test_recovery_cases();
    RUN(test_exclude);
    test_bytraffic();
    RUN(test_bytraffic_tiers);
    RUN(test_bybusyness);
    test_route_cases();
    RUN(test_route_lengths);
    RUN(test_sticky_pick);
    RUN(test_sticky_lbstatus);
    RUN(test_candidates);
    RUN(test_member_state_refs);
    return test_report("test_balancer");
}
