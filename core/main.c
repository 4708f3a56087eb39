/*
 * main.c: command line, the Lua module directory, and the hand-off to the server.
 * scgi-lua runs in the foreground and logs to stderr; process supervision (systemd,
 * a container runtime) is left to the platform.
 */
#include <ev.h>
#include <limits.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <luajit.h>

#include "log.h"
#include "lua_bridge.h"
#include "master.h"
#include "server.h"
#include "tls.h"
#include "util.h"

#ifndef SG_LUA_DIR
#define SG_LUA_DIR "/usr/local/share/lua/5.1"
#endif

static void usage(FILE *f)
{
    fprintf(f, "usage: scgi-lua [-t] [-V] [-h] CONFIG.lua\n"
               "  -t  load and validate the configuration, print a summary, exit\n"
               "  -V  print the version\n"
               "  -h  this help\n"
               "signals: HUP reloads the configuration, TERM/INT/QUIT stop gracefully\n"
               "         (a second one: at once), USR1 reopens the access log\n");
}

/* Lua modules: $SCGI_LUA_PATH, else lua/ next to the binary (a source checkout), else the
 * installed directory. */
static void find_lua_dir(char *out, size_t len)
{
    const char *env = getenv("SCGI_LUA_PATH");
    if (env && *env) {
        snprintf(out, len, "%s", env);
        return;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            char probe[PATH_MAX + 64];
            snprintf(probe, sizeof probe, "%s/lua/scgilua/config.lua", exe);
            struct stat st;
            if (stat(probe, &st) == 0 && strlen(exe) + 5 <= len) {
                strcpy(out, exe);
                strcat(out, "/lua");
                return;
            }
            /* a relocated install (DESTDIR, luarocks tree): PREFIX/bin/../share/lua/5.1 */
            snprintf(probe, sizeof probe, "%s/../share/lua/5.1/scgilua/config.lua", exe);
            if (stat(probe, &st) == 0 && strlen(exe) + 20 <= len) {
                strcpy(out, exe);
                strcat(out, "/../share/lua/5.1");
                return;
            }
        }
    }
    snprintf(out, len, "%s", SG_LUA_DIR);
}

int main(int argc, char **argv)
{
    bool test_only = false;
    int opt;
    while ((opt = getopt(argc, argv, "tVh")) != -1) {
        switch (opt) {
        case 't':
            test_only = true;
            break;
        case 'V':
            printf("scgi-lua %s (%s)\n", SG_VERSION, LUAJIT_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    const char *file = argv[optind];
    if (sg_tls_global_init() != SG_OK) {
        fprintf(stderr, "scgi-lua: cannot initialise TLS: no random bytes\n");
        return 1;
    }
    char lua_dir[PATH_MAX];
    find_lua_dir(lua_dir, sizeof lua_dir);

    sg_buf report;
    sg_buf_init(&report);
    sg_lb_registry reg = { 0 };
    sg_config *cfg = sg_config_load(file, lua_dir, 1, &reg, &report);
    if (!cfg) {
        fwrite(sg_buf_head(&report), 1, report.len, stderr);
        sg_buf_free(&report);
        sg_lb_registry_free(&reg);
        return 1;
    }
    for (size_t i = 0; i < cfg->nlisten; i++) /* not errors: said once, at start and -t */
        if (cfg->listen[i].tls_warning)
            sg_log_warn(0, "%s", cfg->listen[i].tls_warning);
    if (test_only) {
        sg_buf_reset(&report);
        sg_config_summary(cfg, &report);
        printf("configuration OK: %s\n", file);
        fwrite(sg_buf_head(&report), 1, report.len, stdout);
        sg_buf_free(&report);
        sg_config_unref(cfg);
        sg_lb_registry_free(&reg);
        return 0;
    }
    sg_buf_free(&report);
#ifdef __GLIBC__
    /* Request buffers (up to SG_OUT_MAX + SG_BODY_MAX) are freed between keep-alive requests.
     * glibc's defaults would hand them back to the kernel and fault them in again on the
     * next request (9 page faults and a brk per 64 KiB POST): keep freed heap while busy;
     * the server trims it once traffic stops (sg_server's idle timer). */
    mallopt(M_MMAP_THRESHOLD, 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, 32 * 1024 * 1024);
#endif
    signal(SIGPIPE, SIG_IGN); /* sendfile(2) to a closed socket would raise it */
    if (cfg->workers != 1) {
        long n = cfg->workers > 0 ? cfg->workers : sysconf(_SC_NPROCESSORS_ONLN);
        return sg_master_run(cfg, lua_dir, n > 0 ? (int)n : 1, &reg);
    }

    struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
    sg_server *s = sg_server_new(loop, cfg, lua_dir, &reg);
    char err[SG_ERR_LEN];
    if (sg_server_listen(s, err) != SG_OK) {
        sg_log_error(0, "%s", err);
        sg_server_free(s);
        return 1;
    }
    sg_log_info(0, "%s started, configuration %s", SG_SOFTWARE, file);
    int status = sg_server_run(s);
    sg_log_info(0, "stopped");
    sg_server_free(s);
    ev_loop_destroy(loop);
    return status;
}
