/*
 * lua_bridge.c: the Lua runtime, its budget, config loading and hook calls. The Lua side
 * (scgilua.config) owns validation and its messages; config_decode.c reads the normalised
 * table into the C structs (and resolves host names, which Lua cannot do without extra
 * libraries). Every call into Lua goes through pcall_traceback().
 */
#include "lua_bridge.h"

#include <lauxlib.h>
#include <lua.h>
#include <luajit.h>
#include <lualib.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config_decode.h"
#include "util.h"

static void jobs_init(lua_State *L);

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg)
        msg = lua_typename(L, lua_type(L, 1));
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* ---- the budget: hooks run inside the event loop, so they may not hang or hoard ---- */

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char BUDGET_KEY = 0; /* registry key: lightuserdata -> the sg_config */

/* Running the config file happens in the event loop too (reloads): a file that never
 * returns must fail like any broken config instead of freezing the server. */
#define SG_LOAD_TIME 5
#define SG_LOAD_MEMORY_MB 256

/*
 * Called every few thousand VM instructions while a hook runs. The JIT is off in config
 * states because compiled code never calls count hooks; the interpreter is fast enough
 * for routing policy, and a runaway hook costs one request instead of the whole server.
 */
#define SG_BUDGET_COUNT 1000

static void on_budget(lua_State *L, lua_Debug *ar);

/*
 * Once tripped the budget is sticky: the deadline stays passed, the memory limit drops to
 * zero (so a collection cannot un-trip it) and the hook fires on every instruction, so a
 * pcall inside the sandbox that catches the error can run at most one instruction before
 * it is raised again; it ends only when the hook is back in C (budget_disarm).
 */
static void budget_trip(lua_State *L, sg_config *cfg, bool memory)
{
    if (memory)
        cfg->hook_memory_kb = 0;
    if (lua_gethookcount(L) != 1)
        lua_sethook(L, on_budget, LUA_MASKCOUNT, 1);
}

static void on_budget(lua_State *L, lua_Debug *ar)
{
    SG_UNUSED(ar);
    lua_pushlightuserdata(L, (void *)&BUDGET_KEY);
    lua_rawget(L, LUA_REGISTRYINDEX);
    sg_config *cfg = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (!cfg || cfg->hook_deadline == 0)
        return;
    if (cfg->loading && cfg->cancel && atomic_load(cfg->cancel)) {
        budget_trip(L, cfg, false);
        luaL_error(L, "the load was cancelled (stopping)");
    }
    if (mono_now() > cfg->hook_deadline) {
        budget_trip(L, cfg, false);
        if (cfg->loading)
            luaL_error(L, "the configuration ran longer than %d s (a loop that never ends?)",
                       SG_LOAD_TIME);
        luaL_error(L, "hook ran longer than limits.hook_time (%.3g s)", cfg->limits.hook_time);
    }
    if ((size_t)lua_gc(L, LUA_GCCOUNT, 0) > cfg->hook_memory_kb) {
        budget_trip(L, cfg, true);
        if (cfg->loading)
            luaL_error(L, "the configuration made the Lua heap exceed %d MiB", SG_LOAD_MEMORY_MB);
        luaL_error(L, "hook made the Lua heap exceed limits.lua_memory (%zu bytes)",
                   cfg->limits.lua_memory);
    }
}

/* The count hook stays installed for the state's life (installing one rebuilds LuaJIT's
 * dispatch table, a few hundred instructions per call); only the deadline comes and goes. */
/*
 * The heap limit, enforced where memory is taken: one string.rep or table.concat can ask
 * for a gigabyte inside a single C call, where no count hook runs. While a budget is armed,
 * an allocation that takes the heap past the limit trips the budget and makes the count
 * hook fire on the very next instruction, which raises an ordinary error there. Only an
 * allocation that would overshoot the limit by half again is refused outright. Refusing
 * every allocation past the limit would be simpler, but the LuaJIT 2.1 of Debian 12 can
 * corrupt its stack while raising "not enough memory" from inside a Lua frame (upstream
 * issue 906, fixed after that snapshot): a config growing its heap step by step crashed the
 * process that way. Outside a budget nothing is refused, so the C side never meets an
 * allocation error it cannot catch. LuaJIT 2.1 GC64 (Debian's x86_64 build) honours
 * lua_setallocf; the default allocator does the real work.
 */
typedef struct heap_cap {
    lua_Alloc next;
    void *next_ud;
    sg_config *cfg; /* set once the config exists; NULL before */
    size_t used;    /* bytes the state holds */
    size_t limit;   /* 0: nothing is refused */
    bool refused;   /* an allocation was refused since the last arm */
} heap_cap;

static void *heap_cap_alloc(void *ud, void *p, size_t osize, size_t nsize)
{
    heap_cap *h = ud;
    size_t old = p ? osize : 0;
    size_t after = h->used - (old < h->used ? old : h->used) + nsize;
    if (nsize > old && h->limit && after > h->limit) {
        h->refused = true;
        if (h->cfg) { /* sticky, as budget_trip: the hook raises before the next instruction */
            h->cfg->hook_memory_kb = 0;
            if (lua_gethookcount(h->cfg->L) != 1)
                lua_sethook(h->cfg->L, on_budget, LUA_MASKCOUNT, 1);
        }
        if (after - h->limit > h->limit / 2)
            return NULL; /* a single huge request: nothing of it is granted */
    }
    void *r = h->next(h->next_ud, p, osize, nsize);
    if (r || nsize == 0) {
        h->used -= old < h->used ? old : h->used;
        h->used += nsize;
    }
    return r;
}

static heap_cap *heap_cap_of(lua_State *L)
{
    void *ud;
    return lua_getallocf(L, &ud) == heap_cap_alloc ? ud : NULL;
}

static void heap_cap_install(lua_State *L)
{
    heap_cap *h = sg_xcalloc(1, sizeof *h);
    h->next = lua_getallocf(L, &h->next_ud);
    h->used = (size_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB, 0);
    lua_setallocf(L, heap_cap_alloc, h);
}

/* lua_close for states made by sg_config_load (which own a heap_cap). */
static void state_close(lua_State *L)
{
    heap_cap *h = heap_cap_of(L);
    /* LuaJIT frees its own allocator's arena on close only if that allocator is the
     * state's current one: put it back first, or every reload leaks the old heap */
    if (h)
        lua_setallocf(L, h->next, h->next_ud);
    lua_close(L);
    free(h);
}

static void budget_install(sg_config *cfg)
{
    lua_sethook(cfg->L, on_budget, LUA_MASKCOUNT, SG_BUDGET_COUNT);
}

static void budget_arm(sg_config *cfg, double seconds, size_t memory_bytes)
{
    cfg->hook_deadline = mono_now() + seconds;
    cfg->hook_memory_kb = memory_bytes / 1024;
    heap_cap *h = heap_cap_of(cfg->L);
    if (h) {
        h->cfg = cfg;
        h->limit = memory_bytes;
        h->refused = false;
    }
}

static void budget_disarm(sg_config *cfg)
{
    cfg->hook_deadline = 0;
    heap_cap *h = heap_cap_of(cfg->L);
    if (h)
        h->limit = 0;
    if (lua_gethookcount(cfg->L) != SG_BUDGET_COUNT)
        budget_install(cfg); /* only after a trip */
}

static const char TRACEBACK_KEY = 0; /* registry key: lightuserdata -> traceback() */

/* Calls the function below `nargs` arguments; on error appends the traceback to err. */
static int pcall_traceback(lua_State *L, int nargs, int nres, sg_buf *err)
{
    int base = lua_gettop(L) - nargs;
    lua_pushlightuserdata(L, (void *)&TRACEBACK_KEY);
    lua_rawget(L, LUA_REGISTRYINDEX); /* made once (sg_config_load): a C closure is an allocation */
    lua_insert(L, base);
    int rc = lua_pcall(L, nargs, nres, base);
    lua_remove(L, base);
    if (rc != 0) {
        size_t len;
        const char *m = lua_tolstring(L, -1, &len);
        if (err && m) {
            /* one log line: fold the traceback */
            for (size_t i = 0; i < len; i++) {
                char c = m[i];
                if (c == '\n')
                    sg_buf_append_str(err, " | ");
                else if (c != '\t')
                    sg_buf_append(err, &c, 1);
            }
        }
        lua_pop(L, 1);
        return SG_ERR;
    }
    return SG_OK;
}

/* A hook call: pcall_traceback under the per-call time and memory budget. */
static int pcall_hook(sg_config *cfg, int nargs, int nres, sg_buf *err)
{
    budget_arm(cfg, cfg->limits.hook_time, cfg->limits.lua_memory);
    int rc = pcall_traceback(cfg->L, nargs, nres, err);
    bool memory_tripped = cfg->hook_memory_kb == 0; /* see budget_trip */
    heap_cap *h = heap_cap_of(cfg->L);
    if (rc != SG_OK && h && h->refused && err)
        sg_buf_appendf(err,
                       " (an allocation would take the Lua heap past limits.lua_memory, %zu bytes)",
                       cfg->limits.lua_memory);
    budget_disarm(cfg);
    /* A failing hook costs only itself: a full collection walks the whole heap (the
     * config's data included), so a client that makes hooks fail could buy that per
     * request. Only when the heap limit was the cause is it worth giving memory back. */
    if (rc != SG_OK && memory_tripped)
        lua_gc(cfg->L, LUA_GCCOLLECT, 0);
    return rc;
}

/* ---- the req object ---- */

/*
 * The req object (scgi-lua(8) "Lua hooks") is a plain table whose fields are filled on first read:
 * a balancer method that only looks at members, or a match on req.method, then costs one
 * empty table instead of eight strings and a headers table per request. A weak map
 * (req table -> hook context) tells __index which request a table belongs to; the entry
 * goes when the request ends, so a table a hook kept reads as empty afterwards instead
 * of reaching freed memory.
 */
static void push_headers(lua_State *L, const sg_request *r)
{
    lua_createtable(L, 0, (int)r->nheaders);
    for (size_t i = 0; i < r->nheaders; i++) {
        const sg_req_header *h = &r->headers[i];
        char lname[256];
        size_t n = h->name_len < sizeof lname ? h->name_len : sizeof lname - 1;
        for (size_t j = 0; j < n; j++)
            lname[j] = (char)((h->name[j] >= 'A' && h->name[j] <= 'Z') ? h->name[j] + 32
                                                                       : h->name[j]);
        lua_pushlstring(L, lname, n);
        lua_rawget(L, -2);
        if (lua_isstring(L, -1)) { /* repeated: join with ", " */
            lua_pushstring(L, ", ");
            lua_pushlstring(L, h->value, h->value_len);
            lua_concat(L, 3);
        } else {
            lua_pop(L, 1);
            lua_pushlstring(L, h->value, h->value_len);
        }
        lua_pushlstring(L, lname, n);
        lua_insert(L, -2);
        lua_rawset(L, -3);
    }
}

/* req.tls: what the connection negotiated (the backend's SSL_* variables, README "TLS"). */
static void push_tls(lua_State *L, const sg_tls_info *t)
{
    lua_createtable(L, 0, 8);
    lua_pushstring(L, t->protocol);
    lua_setfield(L, -2, "protocol");
    lua_pushstring(L, t->cipher);
    lua_setfield(L, -2, "cipher");
    if (t->sni[0]) {
        lua_pushstring(L, t->sni);
        lua_setfield(L, -2, "sni");
    }
    lua_pushstring(L, t->verify);
    lua_setfield(L, -2, "client_verify");
    if (t->s_dn) {
        lua_pushstring(L, t->s_dn);
        lua_setfield(L, -2, "client_s_dn");
        lua_pushstring(L, t->i_dn);
        lua_setfield(L, -2, "client_i_dn");
        lua_pushstring(L, t->serial);
        lua_setfield(L, -2, "client_serial");
    }
}

/* __index(req, key), upvalue 1: the weak map. Pushes the field and caches it in req. */
static int req_index(lua_State *L)
{
    lua_pushvalue(L, 1);
    lua_rawget(L, lua_upvalueindex(1));
    const sg_hook_ctx *ctx = lua_touserdata(L, -1);
    size_t klen;
    const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tolstring(L, 2, &klen) : NULL;
    if (!ctx || !k)
        return 0;
    const sg_request *r = ctx->req;
    if (klen == 6 && memcmp(k, "method", 6) == 0)
        lua_pushstring(L, r->method);
    else if (klen == 3 && memcmp(k, "uri", 3) == 0)
        lua_pushlstring(L, r->uri, r->uri_len_view);
    else if (klen == 4 && memcmp(k, "path", 4) == 0)
        lua_pushlstring(L, r->path, r->path_len);
    else if (klen == 5 && memcmp(k, "query", 5) == 0)
        lua_pushlstring(L, r->query, r->query_len);
    else if (klen == 4 && memcmp(k, "host", 4) == 0 && r->host)
        lua_pushlstring(L, r->host, r->host_len);
    else if (klen == 7 && memcmp(k, "headers", 7) == 0)
        push_headers(L, r);
    else if (klen == 11 && memcmp(k, "remote_addr", 11) == 0)
        lua_pushstring(L, ctx->client->remote_addr);
    else if (klen == 11 && memcmp(k, "remote_port", 11) == 0)
        lua_pushinteger(L, ctx->client->remote_port);
    else if (klen == 6 && memcmp(k, "scheme", 6) == 0)
        lua_pushstring(L, ctx->client->tls ? "https" : "http");
    else if (klen == 3 && memcmp(k, "tls", 3) == 0 && ctx->client->tls)
        push_tls(L, ctx->client->tls);
    else
        return 0;
    lua_pushvalue(L, 2);
    lua_pushvalue(L, -2);
    lua_rawset(L, 1);
    return 1;
}

/* Registry entries behind req tables, made once per config state. */
static void req_meta_init(sg_config *cfg)
{
    lua_State *L = cfg->L;
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    cfg->req_map_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_createtable(L, 0, 2);
    lua_insert(L, -2);
    lua_pushcclosure(L, req_index, 1);
    lua_setfield(L, -2, "__index");
    /* shared by every req table: a hook must not be able to change it for the others */
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    cfg->req_mt_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

/* Pushes this request's req table, creating it (empty, lazily filled) on first use. */
static void push_req(sg_hook_ctx *ctx)
{
    lua_State *L = ctx->cfg->L;
    if (ctx->table_ref != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, ctx->table_ref);
        return;
    }
    lua_createtable(L, 0, 4);
    lua_rawgeti(L, LUA_REGISTRYINDEX, ctx->cfg->req_mt_ref);
    lua_setmetatable(L, -2);
    lua_rawgeti(L, LUA_REGISTRYINDEX, ctx->cfg->req_map_ref);
    lua_pushvalue(L, -2);
    lua_pushlightuserdata(L, ctx);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    ctx->table_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

/* ---- loading a config (the table is decoded by config_decode.c) ---- */

static void config_free(sg_config *cfg)
{
    sg_config_decode_free(cfg);
    free(cfg->file);
    if (cfg->L)
        state_close(cfg->L);
    free(cfg);
}

sg_config *sg_config_load(const char *file, const char *lua_dir, unsigned generation,
                          sg_lb_registry *reg, sg_buf *report)
{
    return sg_config_load_source(file, NULL, 0, lua_dir, generation, reg, report);
}

sg_config *sg_config_load_source(const char *file, const char *src, size_t len, const char *lua_dir,
                                 unsigned generation, sg_lb_registry *reg, sg_buf *report)
{
    return sg_config_load_cancellable(file, src, len, lua_dir, generation, reg, NULL, report);
}

/* member state of `st`'s URL from `reg`, replacing the private one the loader made */
static void rebind(sg_member_state **st, sg_lb_registry *reg)
{
    if (!*st)
        return;
    sg_member_state *shared = sg_lb_registry_get(reg, (*st)->url);
    sg_member_state_unref(*st);
    *st = shared;
}

void sg_config_bind_registry(sg_config *cfg, sg_lb_registry *reg)
{
    for (size_t i = 0; i < cfg->nroutes; i++)
        rebind(&cfg->routes[i].st, reg);
    for (size_t i = 0; i < cfg->nbalancers; i++)
        for (size_t j = 0; j < cfg->balancers[i].lb.nmembers; j++)
            rebind(&cfg->balancers[i].lb.members[j].st, reg);
}

sg_config *sg_config_load_cancellable(const char *file, const char *src, size_t len,
                                      const char *lua_dir, unsigned generation, sg_lb_registry *reg,
                                      const _Atomic int *cancel, sg_buf *report)
{
    lua_State *L = luaL_newstate();
    if (!L) {
        sg_buf_appendf(report, "scgi-lua: cannot create a Lua state for %s\n", file);
        return NULL;
    }
    heap_cap_install(L);
    luaL_openlibs(L);
    luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
    lua_pushlightuserdata(L, (void *)&TRACEBACK_KEY);
    lua_pushcfunction(L, traceback);
    lua_rawset(L, LUA_REGISTRYINDEX);
    jobs_init(L);
    /* modules: ours first, then the directory of the config file (for its own requires) */
    const char *slash = strrchr(file, '/');
    int dirlen = slash ? (int)(slash - file) : 1;
    const char *dir = slash ? file : ".";
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "path");
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s;%s", lua_dir, lua_dir, lua_tostring(L, -1), "");
    lua_pushlstring(L, dir, (size_t)dirlen);
    lua_pushstring(L, "/?.lua");
    lua_concat(L, 3);
    lua_setfield(L, -3, "path");
    lua_pop(L, 2);

    sg_config *cfg = sg_xcalloc(1, sizeof *cfg);
    cfg->L = L;
    cfg->heap_cap = heap_cap_of(L);
    lua_pushlightuserdata(L, (void *)&BUDGET_KEY);
    lua_pushlightuserdata(L, cfg);
    lua_rawset(L, LUA_REGISTRYINDEX);
    budget_install(cfg);
    cfg->loading = true;
    cfg->cancel = cancel;
    budget_arm(cfg, SG_LOAD_TIME, (size_t)SG_LOAD_MEMORY_MB * 1024 * 1024);

    sg_buf err;
    sg_buf_init(&err);
    lua_getglobal(L, "require");
    lua_pushstring(L, "scgilua.config");
    if (pcall_traceback(L, 1, 1, &err) != SG_OK) {
        sg_buf_appendf(report, "scgi-lua: cannot load the Lua modules from %s: %.*s\n", lua_dir,
                       (int)err.len, sg_buf_head(&err));
        sg_buf_free(&err);
        state_close(L);
        free(cfg);
        return NULL;
    }
    lua_getfield(L, -1, "load_file");
    lua_pushstring(L, file);
    if (src)
        lua_pushlstring(L, src, len);
    else
        lua_pushnil(L);
    if (pcall_traceback(L, 2, 2, &err) != SG_OK) {
        sg_buf_appendf(report, "scgi-lua: invalid configuration in %s\n  %.*s\n", file,
                       (int)err.len, sg_buf_head(&err));
        sg_buf_free(&err);
        state_close(L);
        free(cfg);
        return NULL;
    }
    sg_buf_free(&err);
    if (lua_type(L, -2) != LUA_TTABLE) {
        sg_buf_appendf(report, "scgi-lua: invalid configuration in %s\n", file);
        if (lua_type(L, -1) == LUA_TTABLE) {
            size_t n = lua_objlen(L, -1);
            for (size_t i = 1; i <= n; i++) {
                lua_rawgeti(L, -1, (int)i);
                sg_buf_appendf(report, "  %s\n", lua_tostring(L, -1) ? lua_tostring(L, -1) : "?");
                lua_pop(L, 1);
            }
        } else if (lua_isstring(L, -1)) {
            sg_buf_appendf(report, "  %s\n", lua_tostring(L, -1));
        }
        state_close(L);
        free(cfg);
        return NULL;
    }
    lua_pop(L, 1); /* the nil error slot */
    budget_disarm(cfg);
    cfg->loading = false;
    cfg->cancel = NULL;
    req_meta_init(cfg);
    cfg->refs = 1;
    cfg->generation = generation;
    cfg->file = sg_xstrdup(file);
    sg_buf problems;
    sg_buf_init(&problems);
    int rc = sg_config_decode(L, cfg, reg, &problems);
    lua_setfield(L, LUA_REGISTRYINDEX, "scgilua.cfg");
    lua_pop(L, 1); /* module table */
    if (rc != SG_OK) {
        sg_buf_appendf(report, "scgi-lua: invalid configuration in %s\n%.*s", file,
                       (int)problems.len, sg_buf_head(&problems));
        sg_buf_free(&problems);
        config_free(cfg);
        return NULL;
    }
    sg_buf_free(&problems);
    return cfg;
}

sg_config *sg_config_ref(sg_config *cfg)
{
    cfg->refs++;
    return cfg;
}

void sg_config_unref(sg_config *cfg)
{
    if (cfg && --cfg->refs == 0)
        config_free(cfg);
}

void sg_config_summary(sg_config *cfg, sg_buf *out)
{
    lua_State *L = cfg->L;
    lua_getglobal(L, "require");
    lua_pushstring(L, "scgilua.config");
    if (pcall_traceback(L, 1, 1, out) != SG_OK)
        return;
    lua_getfield(L, -1, "summary");
    lua_getfield(L, LUA_REGISTRYINDEX, "scgilua.cfg");
    if (pcall_traceback(L, 1, 1, out) == SG_OK) {
        size_t n = lua_type(L, -1) == LUA_TTABLE ? lua_objlen(L, -1) : 0;
        for (size_t i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, (int)i);
            sg_buf_appendf(out, "%s\n", lua_tostring(L, -1) ? lua_tostring(L, -1) : "");
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

/* ---- hooks ---- */

void sg_hook_ctx_init(sg_hook_ctx *ctx, sg_config *cfg, const sg_request *req,
                      const sg_client *client)
{
    ctx->cfg = cfg;
    ctx->req = req;
    ctx->client = client;
    ctx->table_ref = LUA_NOREF;
}

void sg_hook_ctx_release(sg_hook_ctx *ctx)
{
    if (ctx->table_ref != LUA_NOREF && ctx->cfg) {
        lua_State *L = ctx->cfg->L;
        /* a req table a hook kept must not reach this context once it is reused */
        lua_rawgeti(L, LUA_REGISTRYINDEX, ctx->cfg->req_map_ref);
        lua_rawgeti(L, LUA_REGISTRYINDEX, ctx->table_ref);
        lua_pushnil(L);
        lua_rawset(L, -3);
        lua_pop(L, 1);
        luaL_unref(L, LUA_REGISTRYINDEX, ctx->table_ref);
    }
    ctx->table_ref = LUA_NOREF;
}

/*
 * Each hook call below is a job: a C function that does ALL of its Lua work (pushing
 * arguments, calling the hook, reading what it returned) inside one protected call. Values
 * a hook returns or was handed are Lua's to change (metatables, removed fields, a clobbered
 * global), and any API call on them may raise; outside a pcall that is a PANIC, so nothing
 * at request time touches them unprotected.
 */
typedef struct job {
    int (*fn)(lua_State *L, void *arg);
    void *arg;
} job;

static const char RUN_JOB_KEY = 0; /* registry key: lightuserdata -> run_job() */
static const char FIND_KEY = 0;    /* registry key: lightuserdata -> string.find at load */

static int run_job(lua_State *L)
{
    job *j = lua_touserdata(L, 1);
    lua_settop(L, 0);
    return j->fn(L, j->arg);
}

/* Runs fn(L, arg) protected, under the hook budget; a Lua error lands in err. */
static int run_protected(sg_config *cfg, int (*fn)(lua_State *, void *), void *arg, sg_buf *err)
{
    job j = { fn, arg };
    lua_State *L = cfg->L;
    lua_pushlightuserdata(L, (void *)&RUN_JOB_KEY);
    lua_rawget(L, LUA_REGISTRYINDEX); /* made once: pushing a C function allocates */
    lua_pushlightuserdata(L, &j);
    return pcall_hook(cfg, 1, 0, err);
}

/* Made once per state, before the config file runs (which may reassign the globals). */
static void jobs_init(lua_State *L)
{
    lua_pushlightuserdata(L, (void *)&RUN_JOB_KEY);
    lua_pushcfunction(L, run_job);
    lua_rawset(L, LUA_REGISTRYINDEX);
    lua_pushlightuserdata(L, (void *)&FIND_KEY);
    lua_getglobal(L, "string");
    lua_getfield(L, -1, "find");
    lua_remove(L, -2);
    lua_rawset(L, LUA_REGISTRYINDEX);
}

typedef struct match_job {
    sg_hook_ctx *ctx;
    const sg_route *rt;
    bool ok;
} match_job;

static int match_fn(lua_State *L, void *arg)
{
    match_job *m = arg;
    const sg_request *r = m->ctx->req;
    if (m->rt->match_pattern) {
        /* string.find as it was before any config code ran: route selection does not
         * depend on globals a hook may have reassigned */
        lua_pushlightuserdata(L, (void *)&FIND_KEY);
        lua_rawget(L, LUA_REGISTRYINDEX);
        lua_pushlstring(L, r->path, r->path_len);
        lua_pushstring(L, m->rt->match_pattern);
        lua_call(L, 2, 1);
        m->ok = !lua_isnil(L, -1);
    } else {
        lua_rawgeti(L, LUA_REGISTRYINDEX, m->rt->match_ref);
        push_req(m->ctx);
        lua_call(L, 1, 1);
        m->ok = lua_toboolean(L, -1);
    }
    return 0;
}

int sg_lua_match(sg_hook_ctx *ctx, const sg_route *rt, bool *ok, sg_buf *err)
{
    match_job m = { ctx, rt, false };
    *ok = false;
    if (run_protected(ctx->cfg, match_fn, &m, err) != SG_OK)
        return SG_ERR;
    *ok = m.ok;
    return SG_OK;
}

typedef struct access_job {
    sg_hook_ctx *ctx;
    const sg_route *route;
    int *status;
    sg_buf *body, *err;
    bool bad; /* the hook returned something it may not; why is in err */
} access_job;

static int access_fn(lua_State *L, void *arg)
{
    access_job *a = arg;
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->route->access_ref);
    push_req(a->ctx);
    lua_call(L, 1, 2);
    if (lua_type(L, 1) == LUA_TNUMBER) {
        lua_Number n = lua_tonumber(L, 1);
        if (!(n >= 100 && n <= 599)) {
            sg_buf_appendf(a->err, "access hook returned an invalid status %d",
                           n > -1e9 && n < 1e9 ? (int)n : -1);
            a->bad = true;
            return 0;
        }
        *a->status = (int)n;
        if (lua_type(L, 2) == LUA_TSTRING || lua_type(L, 2) == LUA_TNUMBER) {
            size_t len;
            const char *b = lua_tolstring(L, 2, &len);
            sg_buf_append(a->body, b, len);
        }
    } else if (!lua_isnil(L, 1)) {
        sg_buf_appendf(a->err, "access hook returned a %s, expected nothing or a status",
                       lua_typename(L, lua_type(L, 1)));
        a->bad = true;
    }
    return 0;
}

int sg_lua_access(sg_hook_ctx *ctx, const sg_route *route, int *status, sg_buf *body, sg_buf *err)
{
    *status = 0;
    if (route->access_ref == LUA_NOREF)
        return SG_OK;
    access_job a = { ctx, route, status, body, err, false };
    if (run_protected(ctx->cfg, access_fn, &a, err) != SG_OK || a.bad) {
        *status = 0;
        return SG_ERR;
    }
    return SG_OK;
}

typedef struct env_job {
    sg_hook_ctx *ctx;
    const sg_env_entry *e;
    sg_buf *value, *err;
    bool *present;
    bool bad;
} env_job;

static int env_fn(lua_State *L, void *arg)
{
    env_job *j = arg;
    lua_rawgeti(L, LUA_REGISTRYINDEX, j->e->fn_ref);
    push_req(j->ctx);
    lua_call(L, 1, 1);
    if (lua_type(L, 1) == LUA_TSTRING || lua_type(L, 1) == LUA_TNUMBER) {
        size_t len;
        const char *v = lua_tolstring(L, 1, &len);
        sg_buf_append(j->value, v, len);
        *j->present = true;
    } else if (!lua_isnil(L, 1) && !(lua_type(L, 1) == LUA_TBOOLEAN && !lua_toboolean(L, 1))) {
        sg_buf_appendf(j->err, "env.%s returned a %s, expected a string or nil", j->e->name,
                       lua_typename(L, lua_type(L, 1)));
        j->bad = true;
    }
    return 0;
}

int sg_lua_env(sg_hook_ctx *ctx, const sg_env_entry *e, sg_buf *value, bool *present, sg_buf *err)
{
    *present = false;
    env_job j = { ctx, e, value, err, present, false };
    if (run_protected(ctx->cfg, env_fn, &j, err) != SG_OK || j.bad) {
        *present = false;
        return SG_ERR;
    }
    return SG_OK;
}

typedef struct balance_job {
    sg_hook_ctx *ctx;
    const sg_balancer *b;
    const bool *usable;
    int *idx;
    sg_buf *err;
    bool bad;
} balance_job;

static void rawset_field(lua_State *L, const char *k)
{
    lua_pushstring(L, k);
    lua_insert(L, -2);
    lua_rawset(L, -3);
}

/*
 * The member tables live in b->members_ref, which Lua never sees; the method gets a fresh
 * list of them per call, so removing, reordering or replacing entries changes nothing for
 * the next call, and the member it returns is found by identity in the C-owned list.
 */
static int balance_fn(lua_State *L, void *arg)
{
    balance_job *j = arg;
    const sg_balancer *b = j->b;
    int n = (int)b->lb.nmembers;
    lua_rawgeti(L, LUA_REGISTRYINDEX, b->members_ref); /* 1: the members, C-owned */
    lua_rawgeti(L, LUA_REGISTRYINDEX, b->method_ref);  /* 2 */
    lua_createtable(L, n, 0);                          /* 3: the list handed to Lua */
    for (int i = 0; i < n; i++) {
        const sg_member_state *st = b->lb.members[i].st;
        lua_rawgeti(L, 1, i + 1);
        lua_pushinteger(L, (lua_Integer)st->busy);
        rawset_field(L, "busy");
        lua_pushnumber(L, (lua_Number)st->requests);
        rawset_field(L, "requests");
        lua_pushboolean(L, j->usable[i]);
        rawset_field(L, "usable");
        lua_rawseti(L, 3, i + 1);
    }
    push_req(j->ctx);
    lua_call(L, 2, 1);
    if (lua_istable(L, 2)) {
        for (int i = 0; i < n && *j->idx < 0; i++) {
            lua_rawgeti(L, 1, i + 1);
            if (lua_rawequal(L, -1, 2))
                *j->idx = i;
            lua_pop(L, 1);
        }
        if (*j->idx < 0) {
            sg_buf_append_str(j->err,
                              "balancer method returned a table that is not one of its members");
            j->bad = true;
        }
    } else if (!lua_isnil(L, 2)) {
        sg_buf_appendf(j->err, "balancer method returned a %s, expected a member or nil",
                       lua_typename(L, lua_type(L, 2)));
        j->bad = true;
    }
    return 0;
}

int sg_lua_balance(sg_hook_ctx *ctx, const sg_balancer *b, const bool *usable, int *idx,
                   sg_buf *err)
{
    *idx = -1;
    balance_job j = { ctx, b, usable, idx, err, false };
    if (run_protected(ctx->cfg, balance_fn, &j, err) != SG_OK || j.bad) {
        *idx = -1;
        return SG_ERR;
    }
    return SG_OK;
}

typedef struct log_job {
    sg_hook_ctx *ctx;
    const sg_log_fields *f;
    sg_buf *line, *err;
    bool bad;
} log_job;

static int log_fn(lua_State *L, void *arg)
{
    log_job *j = arg;
    const sg_log_fields *f = j->f;
    lua_rawgeti(L, LUA_REGISTRYINDEX, j->ctx->cfg->log_format_ref);
    push_req(j->ctx);
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, f->status);
    rawset_field(L, "status");
    lua_pushnumber(L, (lua_Number)f->bytes);
    rawset_field(L, "bytes");
    lua_pushnumber(L, f->duration);
    rawset_field(L, "duration");
    if (f->backend) {
        lua_pushstring(L, f->backend);
        rawset_field(L, "backend");
    }
    lua_pushstring(L, f->time_local);
    rawset_field(L, "time_local");
    lua_call(L, 2, 1);
    if (lua_type(L, 1) != LUA_TSTRING && lua_type(L, 1) != LUA_TNUMBER) {
        sg_buf_appendf(j->err, "log_format returned a %s, expected a string",
                       lua_typename(L, lua_type(L, 1)));
        j->bad = true;
        return 0;
    }
    size_t len;
    const char *s = lua_tolstring(L, 1, &len);
    sg_buf_append(j->line, s, len);
    if (len == 0 || s[len - 1] != '\n')
        sg_buf_append(j->line, "\n", 1);
    return 0;
}

int sg_lua_log_format(sg_hook_ctx *ctx, const sg_log_fields *f, sg_buf *line, sg_buf *err)
{
    log_job j = { ctx, f, line, err, false };
    if (run_protected(ctx->cfg, log_fn, &j, err) != SG_OK || j.bad)
        return SG_ERR;
    return SG_OK;
}
