/* Unit tests for core/router.c, the part that needs no Lua: prefix order, the first route
 * wins, a catch-all, the "/code" -> "/code/" redirect, and the limits.match_path_bytes 414
 * (checked before any pattern runs). Match patterns and functions are covered end to end by
 * the integration specs, since running them takes a config's Lua state. */
#include "../../core/router.c"
#include "test.h"

#define MAXR 8
typedef struct fixture {
    sg_config cfg;
    sg_route r[MAXR];
    sg_request req;
    sg_hook_ctx ctx;
    sg_client client;
} fixture;

/* paths: NULL is a route without a prefix; a leading '~' gives the route a match pattern */
static void fx_init(fixture *f, const char *const *paths, size_t n, const char *req_path)
{
    memset(f, 0, sizeof *f);
    for (size_t i = 0; i < n; i++) {
        sg_route *rt = &f->r[i];
        const char *p = paths[i];
        rt->index = (int)i + 1;
        rt->match_ref = LUA_NOREF;
        rt->access_ref = LUA_NOREF;
        if (p && p[0] == '~') {
            rt->match_pattern = (char *)"x";
            p++;
        }
        rt->path = (char *)p;
        rt->path_len = p ? strlen(p) : 0;
    }
    f->cfg.routes = f->r;
    f->cfg.nroutes = n;
    f->cfg.limits.match_path_bytes = 16;
    f->req.path = req_path;
    f->req.path_len = strlen(req_path);
    snprintf(f->client.remote_addr, sizeof f->client.remote_addr, "127.0.0.1");
    f->client.remote_port = 1;
    sg_hook_ctx_init(&f->ctx, &f->cfg, &f->req, &f->client);
}

typedef struct row {
    const char *paths[4];
    size_t n;
    const char *path;
    int rc;
    int route, slash; /* 1-based index, 0 for none */
} row;

static const row rows[] = {
    { { "/a/", "/" }, 2, "/a/x", SG_OK, 1, 0 },
    { { "/a/", "/" }, 2, "/b", SG_OK, 2, 0 },
    { { "/", "/a/" }, 2, "/a/x", SG_OK, 1, 0 }, /* order, not length, decides */
    { { "/a/", "/b/" }, 2, "/c", SG_OK, 0, 0 },
    { { "/a/", NULL }, 2, "/zzz", SG_OK, 2, 0 },                /* no prefix: every path */
    { { "/code/", "/x/" }, 2, "/code", SG_OK, 0, 1 },           /* redirect to the slash */
    { { "/x/", "/code/", "/code/" }, 3, "/code", SG_OK, 0, 2 }, /* the first such route */
    { { "/code/", "/" }, 2, "/code", SG_OK, 2, 0 },             /* a match wins over the redirect */
    { { "/", "/code/" }, 2, "/code", SG_OK, 1, 0 },
    { { "/c/" }, 1, "/c", SG_OK, 0, 1 },
    { { "/" }, 1, "", SG_OK, 0, 0 },     /* "/" itself never redirects */
    { { "/ab" }, 1, "/a", SG_OK, 0, 0 }, /* only a trailing slash redirects */
    { { "~/p/" }, 1, "/p/0123456789abcdef", SG_DECLINED, 0, 0 }, /* 19 bytes > 16 */
    { { "~/q/", "/" }, 2, "/p/0123456789abcdef", SG_OK, 2, 0 },  /* prefix first */
};

static void test_rows(void)
{
    for (size_t i = 0; i < SG_ARRAY_LEN(rows); i++) {
        const row *w = &rows[i];
        fixture f;
        fx_init(&f, w->paths, w->n, w->path);
        const sg_route *route = (const sg_route *)1, *slash = (const sg_route *)1;
        sg_buf err;
        sg_buf_init(&err);
        CASE_BEGIN();
        int rc = sg_router_select(&f.ctx, &route, &slash, &err);
        CHECK(rc == w->rc, "row %zu: rc %d, expected %d", i, rc, w->rc);
        CHECK(route == (w->route ? &f.r[w->route - 1] : NULL), "row %zu: route", i);
        CHECK(slash == (w->slash ? &f.r[w->slash - 1] : NULL), "row %zu: redirect", i);
        if (w->rc == SG_DECLINED)
            CHECK(strstr(sg_buf_head(&err), "limits.match_path_bytes (16)") != NULL, "row %zu: %s",
                  i, sg_buf_head(&err));
        else
            CHECK_INT(err.len, 0);
        CASE_END();
        sg_buf_free(&err);
    }
}

int main(void)
{
    test_rows();
    return test_report("router");
}
