/*
 * config_decode.c: the normalised config table (what scgilua.config returns) into the C
 * structs of config.h. See config_decode.h for the contract; runs on the loader thread, so
 * it never logs and touches nothing but the Lua state and the sg_config it is given.
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
#include "util.h"

static char *opt_string(lua_State *L, int t, const char *key)
{
    lua_getfield(L, t, key);
    char *s = lua_type(L, -1) == LUA_TSTRING ? sg_xstrdup(lua_tostring(L, -1)) : NULL;
    lua_pop(L, 1);
    return s;
}

static double opt_number(lua_State *L, int t, const char *key, double dflt)
{
    lua_getfield(L, t, key);
    double v = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : dflt;
    lua_pop(L, 1);
    return v;
}

static bool opt_bool(lua_State *L, int t, const char *key, bool dflt)
{
    lua_getfield(L, t, key);
    bool v = lua_type(L, -1) == LUA_TBOOLEAN ? lua_toboolean(L, -1) : dflt;
    lua_pop(L, 1);
    return v;
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

/* Reads a normalised pass table at the stack top into `be`. */
static int read_backend(lua_State *L, sg_backend *be, sg_buf *report, const char *what)
{
    int t = lua_gettop(L);
    char *kind = opt_string(L, t, "kind");
    int rc = SG_OK;
    be->text = opt_string(L, t, "text");
    be->url_path = opt_string(L, t, "url_path");
    if (!be->url_path)
        be->url_path = sg_xstrdup("/");
    if (kind && strcmp(kind, "tcp") == 0) {
        char *host = opt_string(L, t, "host");
        be->kind = SG_PASS_TCP;
        rc = resolve(host ? host : "", (int)opt_number(L, t, "port", 0), &be->addr, &be->addrlen,
                     false, report, what);
        free(host);
    } else if (kind && strcmp(kind, "unix") == 0) {
        char *path = opt_string(L, t, "path");
        be->kind = SG_PASS_UNIX;
        rc = unix_addr(path ? path : "", &be->addr, &be->addrlen, report, what);
        free(path);
    } else {
        be->kind = SG_PASS_BALANCER;
    }
    free(kind);
    return rc;
}

static void free_backend(sg_backend *be)
{
    free(be->text);
    free(be->url_path);
}

static unsigned member_flags(lua_State *L, int t)
{
    unsigned f = 0;
    if (opt_bool(L, t, "hot_standby", false))
        f |= SG_MEMBER_HOT_STANDBY;
    if (opt_bool(L, t, "disabled", false))
        f |= SG_MEMBER_DISABLED;
    if (opt_bool(L, t, "drain", false))
        f |= SG_MEMBER_DRAIN;
    if (opt_bool(L, t, "ignore_errors", false))
        f |= SG_MEMBER_IGNORE_ERRORS;
    return f;
}

static int read_member(lua_State *L, sg_balancer *b, size_t i, sg_lb_registry *reg, sg_buf *report)
{
    int t = lua_gettop(L), rc = SG_OK;
    sg_lb_member *m = &b->lb.members[i];
    b->member_urls[i] = opt_string(L, t, "url");
    b->member_routes[i] = opt_string(L, t, "route");
    m->url = b->member_urls[i] ? b->member_urls[i] : "";
    m->route = b->member_routes[i];
    m->loadfactor = (int)opt_number(L, t, "loadfactor", 1);
    m->lbset = (int)opt_number(L, t, "lbset", 0);
    m->retry = opt_number(L, t, "retry", 10);
    m->flags = member_flags(L, t);
    m->st = reg ? sg_lb_registry_get(reg, m->url) : sg_member_state_new(m->url);
    lua_getfield(L, t, "check");
    if (lua_type(L, -1) == LUA_TTABLE) {
        b->checks[i].interval = opt_number(L, -1, "interval", 5);
        b->checks[i].timeout = opt_number(L, -1, "timeout", 2);
        b->checks[i].path = opt_string(L, -1, "path");
    }
    lua_pop(L, 1);
    lua_getfield(L, t, "pass");
    char what[160];
    snprintf(what, sizeof what, "balancers.%s.members[%zu]", b->name, i + 1);
    if (read_backend(L, &b->backends[i], report, what) != SG_OK)
        rc = SG_ERR;
    lua_pop(L, 1);
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
    lua_getfield(L, cfgt, "balancers");
    if (lua_type(L, -1) != LUA_TTABLE) {
        lua_pop(L, 1);
        return SG_OK;
    }
    int bt = lua_gettop(L);
    size_t n = 0;
    for (lua_pushnil(L); lua_next(L, bt); lua_pop(L, 1))
        n++;
    cfg->balancers = sg_xcalloc(n ? n : 1, sizeof *cfg->balancers);
    for (lua_pushnil(L); lua_next(L, bt); lua_pop(L, 1)) {
        sg_balancer *b = &cfg->balancers[cfg->nbalancers++];
        int t = lua_gettop(L);
        b->name = sg_xstrdup(lua_tostring(L, -2));
        char *method = opt_string(L, t, "method");
        b->lb.method = !method                             ? SG_LB_BYREQUESTS
                       : strcmp(method, "bytraffic") == 0  ? SG_LB_BYTRAFFIC
                       : strcmp(method, "bybusyness") == 0 ? SG_LB_BYBUSYNESS
                       : strcmp(method, "lua") == 0        ? SG_LB_LUA
                                                           : SG_LB_BYREQUESTS;
        free(method);
        b->method_ref = opt_ref(L, t, "method_fn");
        b->sticky = opt_string(L, t, "sticky");
        b->maxattempts = (int)opt_number(L, t, "maxattempts", 0);
        lua_newtable(L);
        b->members_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        lua_getfield(L, t, "members");
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
        for (size_t i = 0; i < nm; i++) {
            lua_rawgeti(L, mt, (int)i + 1);
            if (read_member(L, b, i, reg, report) != SG_OK)
                rc = SG_ERR;
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
    char what[64];
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
    lua_getfield(L, t, "pass");
    r->text = opt_string(L, -1, "text");
    if (read_backend(L, &r->be, report, what) != SG_OK)
        rc = SG_ERR;
    if (r->be.kind == SG_PASS_BALANCER) {
        char *name = opt_string(L, -1, "name");
        for (size_t i = 0; name && i < cfg->nbalancers; i++)
            if (strcmp(cfg->balancers[i].name, name) == 0)
                r->balancer = &cfg->balancers[i];
        if (!r->balancer) {
            sg_buf_appendf(report, "  %s: unknown balancer\n", what);
            rc = SG_ERR;
        }
        free(name);
    } else {
        const char *key = r->be.text ? r->be.text : "";
        r->st = reg ? sg_lb_registry_get(reg, key) : sg_member_state_new(key);
    }
    lua_pop(L, 1);
    lua_getfield(L, t, "internal_redirect");
    r->internal_redirect = lua_type(L, -1) == LUA_TSTRING ? sg_xstrdup(lua_tostring(L, -1)) : NULL;
    lua_pop(L, 1);
    lua_getfield(L, t, "sendfile");
    r->sendfile = lua_type(L, -1) == LUA_TSTRING ? sg_xstrdup(lua_tostring(L, -1)) : NULL;
    lua_pop(L, 1);
    lua_getfield(L, t, "sendfile_root");
    if (lua_type(L, -1) == LUA_TTABLE) {
        r->nroots = lua_objlen(L, -1);
        r->sendfile_root = sg_xcalloc(r->nroots, sizeof(char *));
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
    }
    lua_pop(L, 1);
    r->pathinfo = opt_bool(L, t, "pathinfo", false);
    r->pass_auth = opt_bool(L, t, "pass_auth", true);
    r->allow_encoded_slashes = opt_bool(L, t, "allow_encoded_slashes", false);
    r->timeout = opt_number(L, t, "timeout", cfg->timeouts.backend);
    lua_getfield(L, t, "env");
    if (lua_type(L, -1) == LUA_TTABLE) {
        int et = lua_gettop(L);
        r->nenv = lua_objlen(L, et);
        r->env = sg_xcalloc(r->nenv, sizeof *r->env);
        for (size_t i = 0; i < r->nenv; i++) {
            sg_env_entry *e = &r->env[i];
            lua_rawgeti(L, et, (int)i + 1);
            e->name = opt_string(L, -1, "name");
            e->name_len = e->name ? strlen(e->name) : 0;
            e->fn_ref = LUA_NOREF;
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
                }
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    if (r->match_ref != LUA_NOREF || r->access_ref != LUA_NOREF)
        r->has_hooks = true;
    return rc;
}

static int read_listen(lua_State *L, int cfgt, sg_config *cfg, sg_buf *report)
{
    int rc = SG_OK;
    lua_getfield(L, cfgt, "listen");
    int lt = lua_gettop(L);
    cfg->nlisten = lua_type(L, lt) == LUA_TTABLE ? lua_objlen(L, lt) : 0;
    cfg->listen = sg_xcalloc(cfg->nlisten, sizeof *cfg->listen);
    for (size_t i = 0; i < cfg->nlisten; i++) {
        sg_listen *l = &cfg->listen[i];
        lua_rawgeti(L, lt, (int)i + 1);
        int t = lua_gettop(L);
        char *kind = opt_string(L, t, "kind");
        char what[32];
        snprintf(what, sizeof what, "listen[%zu]", i + 1);
        l->text = opt_string(L, t, "text");
        if (kind && strcmp(kind, "unix") == 0) {
            l->is_unix = true;
            l->unix_path = opt_string(L, t, "path");
            if (unix_addr(l->unix_path ? l->unix_path : "", &l->addr, &l->addrlen, report, what) !=
                SG_OK)
                rc = SG_ERR;
        } else {
            char *host = opt_string(L, t, "host");
            if (resolve(host, (int)opt_number(L, t, "port", 0), &l->addr, &l->addrlen, true, report,
                        what) != SG_OK)
                rc = SG_ERR;
            free(host);
        }
        free(kind);
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
    lua_getfield(L, cfgt, "status");
    if (lua_type(L, -1) == LUA_TTABLE) {
        int t = lua_gettop(L);
        cfg->status_path = opt_string(L, t, "path");
        if (!cfg->status_path)
            cfg->status_path = sg_xstrdup("/.well-known/scgi-lua/status");
        lua_getfield(L, t, "allow");
        size_t n = lua_type(L, -1) == LUA_TTABLE ? lua_objlen(L, -1) : 0;
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
    lua_getfield(L, t, "timeouts");
    int tt = lua_gettop(L);
    cfg->timeouts.client_header = opt_number(L, tt, "client_header", 10);
    cfg->timeouts.client_body = opt_number(L, tt, "client_body", 60);
    cfg->timeouts.keepalive = opt_number(L, tt, "keepalive", 75);
    cfg->timeouts.connect = opt_number(L, tt, "connect", 5);
    cfg->timeouts.backend = opt_number(L, tt, "backend", 60);
    cfg->timeouts.send = opt_number(L, tt, "send", 60);
    cfg->timeouts.shutdown = opt_number(L, tt, "shutdown", 30);
    lua_pop(L, 1);
    lua_getfield(L, t, "limits");
    tt = lua_gettop(L);
    cfg->limits.header_bytes = (size_t)opt_number(L, tt, "header_bytes", 16384);
    cfg->limits.headers = (size_t)opt_number(L, tt, "headers", 100);
    cfg->limits.body_bytes = (uint64_t)opt_number(L, tt, "body_bytes", 1073741824.0);
    cfg->limits.connections = (size_t)opt_number(L, tt, "connections", 10000);
    cfg->limits.hook_time = opt_number(L, tt, "hook_time", 1);
    cfg->limits.lua_memory = (size_t)opt_number(L, tt, "lua_memory", 67108864.0);
    cfg->limits.match_path_bytes = (size_t)opt_number(L, tt, "match_path_bytes", 2048.0);
    lua_pop(L, 1);
    cfg->workers = (int)opt_number(L, t, "workers", 1);
    cfg->access_log = opt_string(L, t, "access_log");
    cfg->log_format_ref = opt_ref(L, t, "log_format");
    char *level = opt_string(L, t, "log_level");
    cfg->log_level = sg_log_level_parse(level ? level : "info");
    if (cfg->log_level < 0)
        cfg->log_level = SG_LOG_INFO;
    free(level);
    if (read_listen(L, t, cfg, report) != SG_OK)
        rc = SG_ERR;
    if (read_status(L, t, cfg, report) != SG_OK)
        rc = SG_ERR;
    if (read_balancers(L, t, cfg, reg, report) != SG_OK)
        rc = SG_ERR;
    lua_getfield(L, t, "routes");
    int rt = lua_gettop(L);
    cfg->nroutes = lua_objlen(L, rt);
    cfg->routes = sg_xcalloc(cfg->nroutes, sizeof *cfg->routes);
    for (size_t i = 0; i < cfg->nroutes; i++) {
        lua_rawgeti(L, rt, (int)i + 1);
        if (read_route(L, cfg, &cfg->routes[i], (int)i + 1, reg, report) != SG_OK)
            rc = SG_ERR;
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
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
    }
    free(cfg->listen);
    free(cfg->access_log);
    free(cfg->status_path);
    free(cfg->status_allow);
}
