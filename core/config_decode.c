/*
 * config_decode.c: the normalised config table (what scgilua.config returns) into the C
 * structs of config.h. See config_decode.h for the contract; runs on the loader thread, so
 * it never logs and touches nothing but the Lua state and the sg_config it is given.
 * Defaults live in the Lua schema alone: a field it always fills is read here as required.
 */
#include "config_decode.h"

#include <arpa/inet.h>
#include <lauxlib.h>
#include <lua.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "log.h"
#include "sendfile.h"
#include "tls.h"
#include "util.h"

/* The dotted path of the table being read ("routes[2]", "balancers.web.members[1]"), for
 * the messages; cut if ever longer (a balancer name is unbounded). A path with a suffix
 * appended gets PATH_LEN + 32. */
#define PATH_LEN 160

/*
 * A field the schema always fills is absent or of another type: not a user error (the schema
 * reports those, all of them) but a break of the contract with scgilua.config, so the decode
 * fails naming the field instead of guessing a value. The reload that hit it then fails like
 * an invalid file; the running generation is untouched.
 */
static int broken(lua_State *L, const char *where, const char *key, const char *want,
                  sg_buf *report)
{
    const char *sep = *where ? "." : "";
    if (lua_isnil(L, -1))
        sg_buf_appendf(report, "  config decode: %s%s%s missing\n", where, sep, key);
    else
        sg_buf_appendf(report, "  config decode: %s%s%s: %s expected, got %s\n", where, sep, key,
                       want, luaL_typename(L, -1));
    return SG_ERR;
}

/* A required number; 0 after a break (reported, *rc set). */
static double req_number(lua_State *L, int t, const char *where, const char *key, sg_buf *report,
                         int *rc)
{
    lua_getfield(L, t, key);
    double v = 0;
    if (lua_type(L, -1) == LUA_TNUMBER)
        v = lua_tonumber(L, -1);
    else
        *rc = broken(L, where, key, "number", report);
    lua_pop(L, 1);
    return v;
}

static bool req_bool(lua_State *L, int t, const char *where, const char *key, sg_buf *report,
                     int *rc)
{
    lua_getfield(L, t, key);
    bool v = false;
    if (lua_type(L, -1) == LUA_TBOOLEAN)
        v = lua_toboolean(L, -1);
    else
        *rc = broken(L, where, key, "boolean", report);
    lua_pop(L, 1);
    return v;
}

/* A required string, as an owned copy; NULL after a break. */
static char *req_string(lua_State *L, int t, const char *where, const char *key, sg_buf *report,
                        int *rc)
{
    lua_getfield(L, t, key);
    char *s = NULL;
    if (lua_type(L, -1) == LUA_TSTRING)
        s = sg_xstrdup(lua_tostring(L, -1));
    else
        *rc = broken(L, where, key, "string", report);
    lua_pop(L, 1);
    return s;
}

/* A required string or false (the feature is off): an owned copy, or NULL for false. */
static char *req_string_or_false(lua_State *L, int t, const char *where, const char *key,
                                 sg_buf *report, int *rc)
{
    lua_getfield(L, t, key);
    char *s = NULL;
    if (lua_type(L, -1) == LUA_TSTRING)
        s = sg_xstrdup(lua_tostring(L, -1));
    else if (lua_type(L, -1) != LUA_TBOOLEAN || lua_toboolean(L, -1))
        *rc = broken(L, where, key, "string or false", report);
    lua_pop(L, 1);
    return s;
}

/* Pushes the required table t[key] and returns true; after a break pushes nothing. */
static bool req_table(lua_State *L, int t, const char *where, const char *key, sg_buf *report,
                      int *rc)
{
    lua_getfield(L, t, key);
    if (lua_type(L, -1) == LUA_TTABLE)
        return true;
    *rc = broken(L, where, key, "table", report);
    lua_pop(L, 1);
    return false;
}

/* Pushes the optional table t[key] and returns true; nil pushes nothing and returns false,
 * as does another type (a break: reported). */
static bool opt_table(lua_State *L, int t, const char *where, const char *key, sg_buf *report,
                      int *rc)
{
    lua_getfield(L, t, key);
    if (lua_type(L, -1) == LUA_TTABLE)
        return true;
    if (!lua_isnil(L, -1))
        *rc = broken(L, where, key, "table", report);
    lua_pop(L, 1);
    return false;
}

/* Element i (1-based) of the list at `lt` pushed if it is a table; else reported, nothing
 * pushed. `path` names the list ("routes", "balancers.web.members"). */
static bool req_element(lua_State *L, int lt, size_t i, const char *path, sg_buf *report, int *rc)
{
    char key[PATH_LEN];
    lua_rawgeti(L, lt, (int)i);
    if (lua_type(L, -1) == LUA_TTABLE)
        return true;
    snprintf(key, sizeof key, "%s[%zu]", path, i);
    *rc = broken(L, "", key, "table", report);
    lua_pop(L, 1);
    return false;
}

/* Optional fields (nil means none): a copy, or NULL. */
static char *opt_string(lua_State *L, int t, const char *key)
{
    lua_getfield(L, t, key);
    char *s = lua_type(L, -1) == LUA_TSTRING ? sg_xstrdup(lua_tostring(L, -1)) : NULL;
    lua_pop(L, 1);
    return s;
}

static int opt_ref(lua_State *L, int t, const char *key)
{
    lua_getfield(L, t, key);
    if (lua_type(L, -1) == LUA_TFUNCTION)
        return luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pop(L, 1);
    return LUA_NOREF;
}

static int resolve(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len,
                   bool passive, sg_buf *report, const char *what)
{
    struct addrinfo hints = { 0 }, *res = NULL;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0 || !res) {
        sg_buf_appendf(report, "  %s: cannot resolve \"%s\": %s\n", what, host,
                       rc ? gai_strerror(rc) : "no address");
        return SG_ERR;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return SG_OK;
}

static int unix_addr(const char *path, struct sockaddr_storage *ss, socklen_t *len, sg_buf *report,
                     const char *what)
{
    struct sockaddr_un *un = (struct sockaddr_un *)ss;
    if (strlen(path) >= sizeof un->sun_path) {
        sg_buf_appendf(report, "  %s: unix socket path too long\n", what);
        return SG_ERR;
    }
    memset(un, 0, sizeof *un);
    un->sun_family = AF_UNIX;
    strcpy(un->sun_path, path);
    *len = (socklen_t)sizeof *un;
    return SG_OK;
}

/* Reads a normalised pass table at the stack top into `be`; `what` is its path. */
static int read_backend(lua_State *L, sg_backend *be, sg_buf *report, const char *what)
{
    int t = lua_gettop(L), rc = SG_OK, miss = SG_OK;
    char *kind = req_string(L, t, what, "kind", report, &rc);
    be->text = opt_string(L, t, "text");
    be->url_path = req_string(L, t, what, "url_path", report, &rc);
    be->kind = SG_PASS_TCP;
    if (kind && strcmp(kind, "tcp") == 0) {
        char *host = req_string(L, t, what, "host", report, &miss);
        int port = (int)req_number(L, t, what, "port", report, &miss);
        if (miss != SG_OK ||
            resolve(host, port, &be->addr, &be->addrlen, false, report, what) != SG_OK)
            rc = SG_ERR;
        free(host);
    } else if (kind && strcmp(kind, "unix") == 0) {
        char *path = req_string(L, t, what, "path", report, &miss);
        be->kind = SG_PASS_UNIX;
        if (miss != SG_OK || unix_addr(path, &be->addr, &be->addrlen, report, what) != SG_OK)
            rc = SG_ERR;
        free(path);
    } else if (kind && strcmp(kind, "balancer") == 0) {
        be->kind = SG_PASS_BALANCER;
    } else if (kind) {
        sg_buf_appendf(report, "  config decode: %s.kind: unknown kind \"%s\"\n", what, kind);
        rc = SG_ERR;
    }
    free(kind);
    return rc;
}

static void free_backend(sg_backend *be)
{
    free(be->text);
    free(be->url_path);
}

static unsigned member_flags(lua_State *L, int t, const char *where, sg_buf *report, int *rc)
{
    unsigned f = 0;
    if (req_bool(L, t, where, "hot_standby", report, rc))
        f |= SG_MEMBER_HOT_STANDBY;
    if (req_bool(L, t, where, "disabled", report, rc))
        f |= SG_MEMBER_DISABLED;
    if (req_bool(L, t, where, "drain", report, rc))
        f |= SG_MEMBER_DRAIN;
    if (req_bool(L, t, where, "ignore_errors", report, rc))
        f |= SG_MEMBER_IGNORE_ERRORS;
    return f;
}

static int read_member(lua_State *L, sg_balancer *b, size_t i, sg_lb_registry *reg, sg_buf *report)
{
    int t = lua_gettop(L), rc = SG_OK;
    sg_lb_member *m = &b->lb.members[i];
    char what[PATH_LEN], sub[PATH_LEN + 32];
    snprintf(what, sizeof what, "balancers.%s.members[%zu]", b->name, i + 1);
    b->member_urls[i] = req_string(L, t, what, "url", report, &rc);
    b->member_routes[i] = opt_string(L, t, "route");
    m->url = b->member_urls[i] ? b->member_urls[i] : ""; /* only when the decode fails */
    m->route = b->member_routes[i];
    m->loadfactor = (int)req_number(L, t, what, "loadfactor", report, &rc);
    m->lbset = (int)req_number(L, t, what, "lbset", report, &rc);
    m->retry = req_number(L, t, what, "retry", report, &rc);
    m->flags = member_flags(L, t, what, report, &rc);
    m->st = reg ? sg_lb_registry_get(reg, m->url) : sg_member_state_new(m->url);
    if (opt_table(L, t, what, "check", report, &rc)) { /* none: no active check */
        snprintf(sub, sizeof sub, "%s.check", what);
        b->checks[i].interval = req_number(L, -1, sub, "interval", report, &rc);
        b->checks[i].timeout = req_number(L, -1, sub, "timeout", report, &rc);
        b->checks[i].path = req_string(L, -1, sub, "path", report, &rc);
        lua_pop(L, 1);
    }
    if (req_table(L, t, what, "pass", report, &rc)) {
        snprintf(sub, sizeof sub, "%s.pass", what);
        if (read_backend(L, &b->backends[i], report, sub) != SG_OK)
            rc = SG_ERR;
        lua_pop(L, 1);
    }
    /* the table a Lua method sees: static fields now, live ones refreshed per call */
    lua_rawgeti(L, LUA_REGISTRYINDEX, b->members_ref);
    lua_createtable(L, 0, 6);
    lua_pushstring(L, m->url);
    lua_setfield(L, -2, "url");
    if (m->route) {
        lua_pushstring(L, m->route);
        lua_setfield(L, -2, "route");
    }
    lua_pushinteger(L, m->loadfactor);
    lua_setfield(L, -2, "loadfactor");
    lua_rawseti(L, -2, (int)i + 1);
    lua_pop(L, 1);
    return rc;
}

static int read_balancers(lua_State *L, int cfgt, sg_config *cfg, sg_lb_registry *reg,
                          sg_buf *report)
{
    int rc = SG_OK;
    if (!req_table(L, cfgt, "", "balancers", report, &rc))
        return rc;
    int bt = lua_gettop(L);
    size_t n = 0;
    for (lua_pushnil(L); lua_next(L, bt); lua_pop(L, 1))
        n++;
    cfg->balancers = sg_xcalloc(n ? n : 1, sizeof *cfg->balancers);
    for (lua_pushnil(L); lua_next(L, bt); lua_pop(L, 1)) {
        sg_balancer *b = &cfg->balancers[cfg->nbalancers++];
        int t = lua_gettop(L);
        char what[PATH_LEN];
        b->name = sg_xstrdup(lua_tostring(L, -2));
        b->method_ref = b->members_ref = LUA_NOREF;
        snprintf(what, sizeof what, "balancers.%s", b->name);
        if (lua_type(L, t) != LUA_TTABLE) {
            rc = broken(L, "", what, "table", report);
            continue;
        }
        char *method = req_string(L, t, what, "method", report, &rc);
        int lbm = !method                             ? SG_LB_BYREQUESTS
                  : strcmp(method, "byrequests") == 0 ? SG_LB_BYREQUESTS
                  : strcmp(method, "bytraffic") == 0  ? SG_LB_BYTRAFFIC
                  : strcmp(method, "bybusyness") == 0 ? SG_LB_BYBUSYNESS
                  : strcmp(method, "lua") == 0        ? SG_LB_LUA
                                                      : -1;
        if (lbm < 0) {
            sg_buf_appendf(report, "  config decode: %s.method: unknown method \"%s\"\n", what,
                           method);
            lbm = SG_LB_BYREQUESTS;
            rc = SG_ERR;
        }
        b->lb.method = (enum sg_lb_method)lbm;
        free(method);
        b->method_ref = opt_ref(L, t, "method_fn");
        b->sticky = opt_string(L, t, "sticky");
        b->maxattempts = (int)req_number(L, t, what, "maxattempts", report, &rc);
        lua_newtable(L);
        b->members_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        if (!req_table(L, t, what, "members", report, &rc))
            continue;
        int mt = lua_gettop(L);
        size_t nm = lua_objlen(L, mt);
        if (nm > SG_LB_MAX_MEMBERS) {
            sg_buf_appendf(report, "  balancers.%s.members: more than %d members\n", b->name,
                           SG_LB_MAX_MEMBERS);
            nm = SG_LB_MAX_MEMBERS;
            rc = SG_ERR;
        }
        b->lb.nmembers = nm;
        b->lb.members = sg_xcalloc(nm ? nm : 1, sizeof *b->lb.members);
        b->backends = sg_xcalloc(nm ? nm : 1, sizeof *b->backends);
        b->checks = sg_xcalloc(nm ? nm : 1, sizeof *b->checks);
        b->member_urls = sg_xcalloc(nm ? nm : 1, sizeof(char *));
        b->member_routes = sg_xcalloc(nm ? nm : 1, sizeof(char *));
        char list[PATH_LEN + 32];
        snprintf(list, sizeof list, "%s.members", what);
        for (size_t i = 0; i < nm; i++) {
            if (!req_element(L, mt, i + 1, list, report, &rc))
                continue;
            if (read_member(L, b, i, reg, report) != SG_OK)
                rc = SG_ERR;
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return rc;
}

static int read_env(lua_State *L, int t, sg_route *r, const char *where, sg_buf *report)
{
    int rc = SG_OK;
    if (!req_table(L, t, where, "env", report, &rc))
        return rc;
    int et = lua_gettop(L);
    char list[PATH_LEN], what[PATH_LEN + 32];
    snprintf(list, sizeof list, "%s.env", where);
    r->nenv = lua_objlen(L, et);
    r->env = sg_xcalloc(r->nenv ? r->nenv : 1, sizeof *r->env);
    for (size_t i = 0; i < r->nenv; i++) {
        sg_env_entry *e = &r->env[i];
        e->fn_ref = LUA_NOREF;
        if (!req_element(L, et, i + 1, list, report, &rc))
            continue;
        snprintf(what, sizeof what, "%s[%zu]", list, i + 1);
        e->name = req_string(L, -1, what, "name", report, &rc);
        e->name_len = e->name ? strlen(e->name) : 0;
        lua_getfield(L, -1, "value");
        if (lua_type(L, -1) == LUA_TFUNCTION) {
            e->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
            r->has_hooks = true;
        } else {
            if (lua_type(L, -1) == LUA_TSTRING) {
                size_t len;
                const char *v = lua_tolstring(L, -1, &len);
                e->value = sg_xstrndup(v, len);
                e->value_len = len;
            } else if (lua_type(L, -1) != LUA_TBOOLEAN || lua_toboolean(L, -1)) {
                rc = broken(L, what, "value", "string, false or function", report);
            } /* false: the variable is removed */
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return rc;
}

static int read_route(lua_State *L, sg_config *cfg, sg_route *r, int idx, sg_lb_registry *reg,
                      sg_buf *report)
{
    int t = lua_gettop(L), rc = SG_OK;
    char where[32], what[64];
    snprintf(where, sizeof where, "routes[%d]", idx);
    snprintf(what, sizeof what, "routes[%d].pass", idx);
    r->index = idx;
    r->path = opt_string(L, t, "path");
    r->path_len = r->path ? strlen(r->path) : 0;
    lua_getfield(L, t, "match");
    if (lua_type(L, -1) == LUA_TSTRING) {
        r->match_pattern = sg_xstrdup(lua_tostring(L, -1));
        r->match_ref = LUA_NOREF;
        lua_pop(L, 1);
    } else if (lua_type(L, -1) == LUA_TFUNCTION) {
        r->match_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    } else {
        r->match_ref = LUA_NOREF;
        lua_pop(L, 1);
    }
    r->access_ref = opt_ref(L, t, "access");
    if (req_table(L, t, where, "pass", report, &rc)) {
        r->text = opt_string(L, -1, "text");
        if (read_backend(L, &r->be, report, what) != SG_OK)
            rc = SG_ERR;
        if (r->be.kind == SG_PASS_BALANCER) {
            int miss = SG_OK;
            char *name = req_string(L, -1, what, "name", report, &miss);
            for (size_t i = 0; name && i < cfg->nbalancers; i++)
                if (strcmp(cfg->balancers[i].name, name) == 0)
                    r->balancer = &cfg->balancers[i];
            if (miss != SG_OK) {
                rc = SG_ERR;
            } else if (!r->balancer) {
                sg_buf_appendf(report, "  %s: unknown balancer\n", what);
                rc = SG_ERR;
            }
            free(name);
        } else {
            const char *key = r->be.text ? r->be.text : "";
            r->st = reg ? sg_lb_registry_get(reg, key) : sg_member_state_new(key);
        }
        lua_pop(L, 1);
    }
    r->internal_redirect = req_string_or_false(L, t, where, "internal_redirect", report, &rc);
    r->sendfile = req_string_or_false(L, t, where, "sendfile", report, &rc);
    if (opt_table(L, t, where, "sendfile_root", report, &rc)) {
        r->nroots = lua_objlen(L, -1);
        r->sendfile_root = sg_xcalloc(r->nroots ? r->nroots : 1, sizeof(char *));
        for (size_t i = 0; i < r->nroots; i++) {
            lua_rawgeti(L, -1, (int)i + 1);
            const char *root = lua_tostring(L, -1) ? lua_tostring(L, -1) : "";
            /* compared with the real path of the opened file, so resolve it the same way */
            r->sendfile_root[i] = sg_sendfile_root_resolve(root);
            if (!r->sendfile_root[i]) {
                sg_buf_appendf(report, "  routes[%d].sendfile_root: \"%s\" does not exist\n", idx,
                               root);
                r->sendfile_root[i] = sg_xstrdup("/nonexistent");
                rc = SG_ERR;
            }
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    r->pathinfo = req_bool(L, t, where, "pathinfo", report, &rc);
    r->pass_auth = req_bool(L, t, where, "pass_auth", report, &rc);
    r->allow_encoded_slashes = req_bool(L, t, where, "allow_encoded_slashes", report, &rc);
    r->https_only = req_bool(L, t, where, "https_only", report, &rc);
    r->timeout = req_number(L, t, where, "timeout", report, &rc);
    if (read_env(L, t, r, where, report) != SG_OK)
        rc = SG_ERR;
    if (r->match_ref != LUA_NOREF || r->access_ref != LUA_NOREF)
        r->has_hooks = true;
    return rc;
}

/*
 * listen[i].tls (the table at `t`) into l->tls, and its OpenSSL context built now: a
 * certificate or key that cannot be used fails this generation with OpenSSL's reason, so a
 * reload keeps the certificates in service and `-t` names the file.
 */
static int read_tls(lua_State *L, int t, sg_listen *l, const char *what, sg_buf *report)
{
    int rc = SG_OK;
    char where[PATH_LEN + 32];
    snprintf(where, sizeof where, "%s.tls", what);
    sg_tls_conf *c = sg_xcalloc(1, sizeof *c);
    l->tls = c;
    if (req_table(L, t, where, "certs", report, &rc)) {
        int ct = lua_gettop(L);
        char certs[PATH_LEN + 48];
        snprintf(certs, sizeof certs, "%s.certs", where);
        c->ncerts = lua_objlen(L, ct);
        c->certs = sg_xcalloc(c->ncerts ? c->ncerts : 1, sizeof *c->certs);
        for (size_t k = 0; k < c->ncerts; k++) {
            if (!req_element(L, ct, k + 1, certs, report, &rc))
                continue;
            char one[PATH_LEN + 96];
            snprintf(one, sizeof one, "%s[%zu]", certs, k + 1);
            c->certs[k].cert = req_string(L, -1, one, "cert", report, &rc);
            c->certs[k].key = req_string(L, -1, one, "key", report, &rc);
            c->certs[k].ocsp = opt_string(L, -1, "ocsp");
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    char *proto = req_string(L, t, where, "protocols", report, &rc);
    c->tls13_only = proto && strcmp(proto, "TLSv1.3") == 0;
    free(proto);
    c->ciphers = opt_string(L, t, "ciphers");
    c->client_ca = opt_string(L, t, "client_ca");
    char *verify = opt_string(L, t, "verify_client");
    c->verify_client = !verify                           ? SG_TLS_VERIFY_NONE
                       : strcmp(verify, "optional") == 0 ? SG_TLS_VERIFY_OPTIONAL
                                                         : SG_TLS_VERIFY_REQUIRE;
    free(verify);
    c->export_client_cert = req_bool(L, t, where, "export_client_cert", report, &rc);
    if (rc != SG_OK || c->ncerts == 0)
        return SG_ERR;
    char err[512], warn[256];
    l->tls_ctx = sg_tls_ctx_new(c, err, sizeof err, warn, sizeof warn);
    if (!l->tls_ctx) {
        sg_buf_appendf(report, "  %s.%s\n", where, err);
        return SG_ERR;
    }
    if (warn[0]) {
        size_t n = strlen(where) + strlen(warn) + 2;
        l->tls_warning = sg_xmalloc(n);
        snprintf(l->tls_warning, n, "%s.%s", where, warn);
    }
    return SG_OK;
}

static void free_tls(sg_listen *l)
{
    sg_tls_ctx_free(l->tls_ctx);
    if (l->tls) {
        for (size_t k = 0; k < l->tls->ncerts; k++) {
            free(l->tls->certs[k].cert);
            free(l->tls->certs[k].key);
            free(l->tls->certs[k].ocsp);
        }
        free(l->tls->certs);
        free(l->tls->ciphers);
        free(l->tls->client_ca);
        free(l->tls);
    }
    free(l->tls_warning);
}

static int read_listen(lua_State *L, int cfgt, sg_config *cfg, sg_buf *report)
{
    int rc = SG_OK;
    if (!req_table(L, cfgt, "", "listen", report, &rc))
        return rc;
    int lt = lua_gettop(L);
    cfg->nlisten = lua_objlen(L, lt);
    cfg->listen = sg_xcalloc(cfg->nlisten ? cfg->nlisten : 1, sizeof *cfg->listen);
    for (size_t i = 0; i < cfg->nlisten; i++) {
        sg_listen *l = &cfg->listen[i];
        if (!req_element(L, lt, i + 1, "listen", report, &rc))
            continue;
        int t = lua_gettop(L), miss = SG_OK;
        char what[32];
        snprintf(what, sizeof what, "listen[%zu]", i + 1);
        char *kind = req_string(L, t, what, "kind", report, &rc);
        l->text = opt_string(L, t, "text");
        if (kind && strcmp(kind, "unix") == 0) {
            l->is_unix = true;
            l->unix_path = req_string(L, t, what, "path", report, &miss);
            if (miss != SG_OK ||
                unix_addr(l->unix_path, &l->addr, &l->addrlen, report, what) != SG_OK)
                rc = SG_ERR;
        } else if (kind && strcmp(kind, "tcp") == 0) {
            char *host = req_string(L, t, what, "host", report, &miss);
            int port = (int)req_number(L, t, what, "port", report, &miss);
            if (miss != SG_OK ||
                resolve(host, port, &l->addr, &l->addrlen, true, report, what) != SG_OK)
                rc = SG_ERR;
            free(host);
        } else if (kind) {
            sg_buf_appendf(report, "  config decode: %s.kind: unknown kind \"%s\"\n", what, kind);
            rc = SG_ERR;
        }
        free(kind);
        lua_getfield(L, t, "tls");
        if (lua_type(L, -1) == LUA_TTABLE && read_tls(L, lua_gettop(L), l, what, report) != SG_OK)
            rc = SG_ERR;
        lua_pop(L, 1);
        lua_getfield(L, t, "redirect_https"); /* only a { addr = } entry can have it */
        l->redirect_https = lua_toboolean(L, -1);
        lua_pop(L, 1);
        if (l->tls && !cfg->https_port && l->addr.ss_family == AF_INET)
            cfg->https_port = ntohs(((struct sockaddr_in *)&l->addr)->sin_port);
        else if (l->tls && !cfg->https_port && l->addr.ss_family == AF_INET6)
            cfg->https_port = ntohs(((struct sockaddr_in6 *)&l->addr)->sin6_port);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return rc;
}

/* "10.0.0.0/8", "::1", "127.0.0.1" -> an sg_allow entry */
static int parse_allow(const char *s, sg_allow *a)
{
    char ip[64];
    const char *slash = strchr(s, '/');
    size_t n = slash ? (size_t)(slash - s) : strlen(s);
    if (n >= sizeof ip)
        return SG_ERR;
    memcpy(ip, s, n);
    ip[n] = '\0';
    memset(a, 0, sizeof *a);
    if (inet_pton(AF_INET, ip, a->addr) == 1) {
        a->family = AF_INET;
        a->prefix = 32;
    } else if (inet_pton(AF_INET6, ip, a->addr) == 1) {
        a->family = AF_INET6;
        a->prefix = 128;
    } else {
        return SG_ERR;
    }
    if (slash) {
        char *end;
        long p = strtol(slash + 1, &end, 10);
        if (*end || p < 0 || p > a->prefix)
            return SG_ERR;
        a->prefix = (int)p;
    }
    return SG_OK;
}

static int read_status(lua_State *L, int cfgt, sg_config *cfg, sg_buf *report)
{
    int rc = SG_OK;
    if (!opt_table(L, cfgt, "", "status", report, &rc)) /* none: no status endpoint */
        return rc;
    int t = lua_gettop(L);
    cfg->status_path = req_string(L, t, "status", "path", report, &rc);
    if (req_table(L, t, "status", "allow", report, &rc)) {
        size_t n = lua_objlen(L, -1);
        cfg->status_allow = sg_xcalloc(n ? n : 1, sizeof *cfg->status_allow);
        for (size_t i = 0; i < n; i++) {
            lua_rawgeti(L, -1, (int)i + 1);
            const char *v = lua_tostring(L, -1);
            if (!v || parse_allow(v, &cfg->status_allow[cfg->nstatus_allow]) != SG_OK) {
                sg_buf_appendf(report, "  status.allow[%zu]: not an address or CIDR: \"%s\"\n",
                               i + 1, v ? v : "?");
                rc = SG_ERR;
            } else {
                cfg->nstatus_allow++;
            }
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return rc;
}

int sg_config_decode(lua_State *L, sg_config *cfg, sg_lb_registry *reg, sg_buf *report)
{
    int t = lua_gettop(L), rc = SG_OK;
    if (req_table(L, t, "", "timeouts", report, &rc)) {
        int tt = lua_gettop(L);
        sg_timeouts *to = &cfg->timeouts;
        to->client_header = req_number(L, tt, "timeouts", "client_header", report, &rc);
        to->client_body = req_number(L, tt, "timeouts", "client_body", report, &rc);
        to->keepalive = req_number(L, tt, "timeouts", "keepalive", report, &rc);
        to->connect = req_number(L, tt, "timeouts", "connect", report, &rc);
        to->backend = req_number(L, tt, "timeouts", "backend", report, &rc);
        to->send = req_number(L, tt, "timeouts", "send", report, &rc);
        to->shutdown = req_number(L, tt, "timeouts", "shutdown", report, &rc);
        to->tls_handshake = req_number(L, tt, "timeouts", "tls_handshake", report, &rc);
        lua_pop(L, 1);
    }
    if (req_table(L, t, "", "limits", report, &rc)) {
        int tt = lua_gettop(L);
        sg_limits *li = &cfg->limits;
        li->header_bytes = (size_t)req_number(L, tt, "limits", "header_bytes", report, &rc);
        li->headers = (size_t)req_number(L, tt, "limits", "headers", report, &rc);
        li->body_bytes = (uint64_t)req_number(L, tt, "limits", "body_bytes", report, &rc);
        li->connections = (size_t)req_number(L, tt, "limits", "connections", report, &rc);
        li->hook_time = req_number(L, tt, "limits", "hook_time", report, &rc);
        li->lua_memory = (size_t)req_number(L, tt, "limits", "lua_memory", report, &rc);
        li->match_path_bytes = (size_t)req_number(L, tt, "limits", "match_path_bytes", report, &rc);
        lua_pop(L, 1);
    }
    cfg->workers = (int)req_number(L, t, "", "workers", report, &rc);
    cfg->access_log = req_string_or_false(L, t, "", "access_log", report, &rc);
    cfg->log_format_ref = opt_ref(L, t, "log_format");
    char *level = req_string(L, t, "", "log_level", report, &rc);
    cfg->log_level = level ? sg_log_level_parse(level) : SG_LOG_INFO;
    if (cfg->log_level < 0) {
        sg_buf_appendf(report, "  config decode: log_level: unknown level \"%s\"\n", level);
        cfg->log_level = SG_LOG_INFO;
        rc = SG_ERR;
    }
    free(level);
    if (read_listen(L, t, cfg, report) != SG_OK)
        rc = SG_ERR;
    if (read_status(L, t, cfg, report) != SG_OK)
        rc = SG_ERR;
    if (read_balancers(L, t, cfg, reg, report) != SG_OK)
        rc = SG_ERR;
    if (req_table(L, t, "", "routes", report, &rc)) {
        int rt = lua_gettop(L);
        cfg->nroutes = lua_objlen(L, rt);
        cfg->routes = sg_xcalloc(cfg->nroutes ? cfg->nroutes : 1, sizeof *cfg->routes);
        for (size_t i = 0; i < cfg->nroutes; i++) {
            sg_route *r = &cfg->routes[i];
            r->match_ref = r->access_ref = LUA_NOREF;
            if (!req_element(L, rt, i + 1, "routes", report, &rc))
                continue;
            if (read_route(L, cfg, r, (int)i + 1, reg, report) != SG_OK)
                rc = SG_ERR;
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    return rc;
}

void sg_config_decode_free(sg_config *cfg)
{
    for (size_t i = 0; i < cfg->nroutes; i++) {
        sg_route *r = &cfg->routes[i];
        sg_member_state_unref(r->st);
        free(r->path);
        free(r->match_pattern);
        free(r->text);
        free_backend(&r->be);
        free(r->internal_redirect);
        free(r->sendfile);
        for (size_t j = 0; j < r->nroots; j++)
            free(r->sendfile_root[j]);
        free(r->sendfile_root);
        for (size_t j = 0; j < r->nenv; j++) {
            free(r->env[j].name);
            free(r->env[j].value);
        }
        free(r->env);
    }
    free(cfg->routes);
    for (size_t i = 0; i < cfg->nbalancers; i++) {
        sg_balancer *b = &cfg->balancers[i];
        for (size_t j = 0; j < b->lb.nmembers; j++) {
            free_backend(&b->backends[j]);
            sg_member_state_unref(b->lb.members[j].st);
            free(b->checks[j].path);
            free(b->member_urls[j]);
            free(b->member_routes[j]);
        }
        free(b->lb.members);
        free(b->backends);
        free(b->checks);
        free(b->member_urls);
        free(b->member_routes);
        free(b->sticky);
        free(b->name);
    }
    free(cfg->balancers);
    for (size_t i = 0; i < cfg->nlisten; i++) {
        free(cfg->listen[i].text);
        free(cfg->listen[i].unix_path);
        free_tls(&cfg->listen[i]);
    }
    free(cfg->listen);
    free(cfg->access_log);
    free(cfg->status_path);
    free(cfg->status_allow);
}
