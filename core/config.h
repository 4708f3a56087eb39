/*
 * config.h: sg_config, the C view of one validated configuration generation. It is built by
 * lua_bridge from the table lua/scgilua/config.lua returns, owns the Lua state whose
 * functions its hooks reference, and is reference-counted: every connection holds the
 * generation its current request started with, so a reload never changes a request midway.
 */
#ifndef SG_CONFIG_H
#define SG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "balancer.h"

typedef struct lua_State lua_State;

enum sg_pass_kind { SG_PASS_TCP, SG_PASS_UNIX, SG_PASS_BALANCER };

typedef struct sg_backend {
    enum sg_pass_kind kind;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char *text;     /* owned: URL as configured, for logs */
    char *url_path; /* owned: path of the scgi:// URL, "/" by default */
} sg_backend;

typedef struct sg_member_check {
    double interval, timeout; /* interval 0: no active check */
    char *path;               /* owned */
} sg_member_check;

typedef struct sg_balancer {
    char *name;              /* owned */
    sg_lb lb;                /* lb.members owned (urls/routes owned via member_urls/routes) */
    sg_backend *backends;    /* owned, parallel to lb.members */
    sg_member_check *checks; /* owned, parallel to lb.members */
    char **member_urls, **member_routes; /* owned strings the sg_lb_members borrow */
    char *sticky;                        /* owned cookie/query name, or NULL */
    int maxattempts;
    int method_ref;  /* Lua function for SG_LB_LUA, else LUA_NOREF */
    int members_ref; /* Lua array of member tables handed to the method */
} sg_balancer;

typedef struct sg_env_entry {
    char *name; /* owned */
    size_t name_len;
    char *value; /* owned; NULL when removed or computed by fn_ref */
    size_t value_len;
    int fn_ref; /* LUA_NOREF unless the value is a function */
} sg_env_entry;

typedef struct sg_route {
    int index;
    char *path; /* owned prefix, or NULL */
    size_t path_len;
    char *match_pattern;     /* owned Lua pattern, or NULL */
    int match_ref;           /* function, or LUA_NOREF */
    int access_ref;          /* function, or LUA_NOREF */
    sg_backend be;           /* kind SG_PASS_BALANCER: use balancer */
    sg_balancer *balancer;   /* borrowed from sg_config.balancers */
    sg_member_state *st;     /* one reference: counters of a direct backend (NULL for balancers) */
    char *text;              /* owned: pass URL, for logs */
    char *internal_redirect; /* owned header name or NULL (off) */
    char *sendfile;          /* owned header name or NULL (off) */
    char **sendfile_root;
    size_t nroots;
    sg_env_entry *env; /* owned */
    size_t nenv;
    bool pathinfo, pass_auth, has_hooks;
    bool allow_encoded_slashes; /* a path with %2F may use this route (else 404) */
    bool https_only;            /* a request over plain HTTP is redirected to https:// */
    double timeout;             /* backend timeout (route override or global) */
} sg_route;

typedef struct sg_tls_conf sg_tls_conf; /* tls.h */
typedef struct sg_tls_ctx sg_tls_ctx;

typedef struct sg_listen {
    char *text;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    bool is_unix;
    char *unix_path;
    sg_tls_conf *tls;    /* owned: listen[i].tls, NULL for plain HTTP */
    sg_tls_ctx *tls_ctx; /* owned (one reference): built from `tls` with the generation */
    char *tls_warning;   /* owned: a problem worth a warning (a key readable by all), or NULL */
    bool redirect_https; /* plain listener: every request is redirected to https:// */
} sg_listen;

typedef struct sg_timeouts {
    double client_header, client_body, keepalive, connect, backend, send, shutdown;
    double tls_handshake; /* from accept to the end of a TLS handshake */
} sg_timeouts;

typedef struct sg_limits {
    size_t header_bytes, headers, connections;
    uint64_t body_bytes;
    double hook_time;        /* seconds one hook call may run */
    size_t lua_memory;       /* bytes the Lua heap may hold while a hook runs */
    size_t match_path_bytes; /* longest path a string-pattern route is matched against */
} sg_limits;

typedef struct sg_allow {
    int family; /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    int prefix; /* bits */
} sg_allow;

typedef struct sg_config {
    lua_State *L;   /* owned */
    void *heap_cap; /* borrowed: L's allocator state, freed with L; held here too because
                       L lives in memory leak checkers do not scan */
    int refs;
    unsigned generation;
    char *file; /* owned */
    sg_listen *listen;
    size_t nlisten;
    int https_port; /* the first TLS listener's port, for redirects to https://; 0 if none */
    int workers;
    sg_timeouts timeouts;
    sg_limits limits;
    char *access_log;   /* owned: "stderr", a path, or NULL (off) */
    int log_format_ref; /* Lua function(req, res) -> line, or LUA_NOREF */
    int req_mt_ref;     /* metatable of req tables: fields are built on first read */
    int req_map_ref;    /* weak-keyed: live req table -> its sg_hook_ctx (lightuserdata) */
    int log_level;
    sg_route *routes;
    size_t nroutes;
    sg_balancer *balancers;
    size_t nbalancers;
    char *status_path; /* owned; NULL: no status endpoint */
    sg_allow *status_allow;
    size_t nstatus_allow;
    double hook_deadline; /* monotonic seconds; 0 when no budget applies */
    size_t hook_memory_kb;
    bool loading;              /* the config file itself is running (its own budget) */
    const _Atomic int *cancel; /* borrowed, loading only: nonzero ends the load (loader.c) */
} sg_config;

#endif
