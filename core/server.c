/*
 * server.c: listening sockets, the accept loop, signals and the config generation in use.
 * Accepting is bounded: at limits.connections, or when the process runs out of descriptors
 * (EMFILE), the listeners are paused and resumed by a timer or when a connection closes,
 * so a full server neither spins nor drops its queue. Connections are freed from an
 * ev_check sweep, never inside their own callbacks.
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "filewatch.h"
#include "health.h"
#include "listen.h"
#include "loader.h"
#include "log.h"
#include "lua_bridge.h"

typedef struct sg_listener {
    ev_io io;
    int fd;
    size_t conf; /* its entry in the current generation's listen list (TLS settings) */
    sg_server *server;
    char *text;      /* owned: bound address, for logs */
    char *key;       /* owned: the configured address, to match listeners across reloads */
    char *unix_path; /* owned; unlinked on close (not by workers: the master owns it) */
} sg_listener;

struct sg_server {
    struct ev_loop *loop;
    sg_config *cfg;          /* current generation (one reference) */
    char *lua_dir;           /* owned */
    sg_listener **listeners; /* owned; pointers, since libev holds the embedded watchers */
    size_t nlisteners;
    bool worker;    /* listeners inherited from a master, which also watches the file */
    sg_conn *conns; /* live connections */
    sg_conn *dead;  /* closed, waiting for the sweep */
    size_t nconns;
    bool accept_paused, stopping;
    unsigned stop_signals; /* stop signals this process received (only a second one exits now) */
    int exit_status;
    unsigned generation;
    /* never stopped before sg_server_free: a stopped ev_signal restores the default action,
     * which for HUP and USR1 is to die */
    ev_signal sigterm, sigint, sigquit, sighup, sigusr1;
    ev_check sweep;
    ev_timer resume_accept, shutdown_timer;
    ev_timer watch;     /* polls the config file once a second; not in workers */
    ev_timer housekeep; /* idle trimming, once a second in every serving process */
    sg_filewatch files; /* the config file and its TLS files, as at the last (attempted) load */
    sg_lb_registry registry; /* member state by URL, shared by config generations */
    sg_loader *loader;       /* reloads run on its threads; only the swap is on the loop */
    sg_health *health;       /* probes of the current generation, or NULL */
    sg_stats stats;
    uint64_t requests_last_tick, trimmed_at; /* idle heap trim (on_housekeep) */
    /* empty splice pipes kept between large responses: pipe2 + F_SETPIPE_SZ + two closes
     * per response would cost more than the copies they save on a 64 KiB body */
    sg_pipe pipes[32];
    size_t npipes;
    time_t date_sec;
    char date[64];
    sg_conn_host host; /* what its connections reach back through (conn_host.h) */
};

static sg_server *host_server(sg_conn_host *h)
{
    return SG_CONTAINER_OF(h, sg_server, host);
}

static sg_config *host_config(sg_conn_host *h)
{
    return host_server(h)->cfg;
}

static bool host_stopping(sg_conn_host *h)
{
    return host_server(h)->stopping;
}

static sg_stats *host_stats(sg_conn_host *h)
{
    return &host_server(h)->stats;
}

size_t sg_server_nconns(sg_server *s)
{
    return s->nconns;
}

static size_t host_nconns(sg_conn_host *h)
{
    return host_server(h)->nconns;
}

static const char *host_date(sg_conn_host *h)
{
    sg_server *s = host_server(h);
    time_t now = (time_t)ev_now(s->loop);
    if (now != s->date_sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(s->date, sizeof s->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        s->date_sec = now;
    }
    return s->date;
}

static void set_accepting(sg_server *s, bool on)
{
    for (size_t i = 0; i < s->nlisteners; i++) {
        if (on)
            ev_io_start(s->loop, &s->listeners[i]->io);
        else
            ev_io_stop(s->loop, &s->listeners[i]->io);
    }
    s->accept_paused = !on;
}

static void maybe_finish_stop(sg_server *s)
{
    if (s->stopping && s->nconns == 0)
        ev_break(s->loop, EVBREAK_ALL);
}

/* The connection closed: out of the live set now, freed by the sweep after this callback. */
static void host_conn_closed(sg_conn_host *h, sg_conn *c)
{
    sg_server *s = host_server(h);
    sg_conn_unlink(c, &s->conns);
    s->nconns--;
    sg_conn_link(c, &s->dead);
    if (s->accept_paused && !s->stopping && !ev_is_active(&s->resume_accept))
        set_accepting(s, true);
    maybe_finish_stop(s);
}

static void on_sweep(struct ev_loop *loop, ev_check *w, int revents)
{
    sg_server *s = SG_CONTAINER_OF(w, sg_server, sweep);
    SG_UNUSED(loop);
    SG_UNUSED(revents);
    while (s->dead) {
        sg_conn *c = s->dead;
        sg_conn_unlink(c, &s->dead);
        sg_conn_free(c);
    }
}

static void on_resume_accept(struct ev_loop *loop, ev_timer *w, int revents)
{
    sg_server *s = SG_CONTAINER_OF(w, sg_server, resume_accept);
    SG_UNUSED(loop);
    SG_UNUSED(revents);
    if (!s->stopping && s->nconns < s->cfg->limits.connections)
        set_accepting(s, true);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    sg_listener *l = SG_CONTAINER_OF(w, sg_listener, io);
    sg_server *s = l->server;
    SG_UNUSED(revents);
    /* a bounded batch per wakeup keeps one busy listener from starving the others */
    for (int i = 0; i < 64; i++) {
        if (s->nconns >= s->cfg->limits.connections) {
            sg_log_warn(0, "limits.connections (%zu) reached, pausing accept",
                        s->cfg->limits.connections);
            set_accepting(s, false);
            return;
        }
        struct sockaddr_storage peer;
        socklen_t plen = sizeof peer;
        int fd = accept4(l->fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                sg_log_error(errno, "accept on %s failed, pausing accept for 100 ms", l->text);
                set_accepting(s, false);
                ev_timer_set(&s->resume_accept, 0.1, 0.);
                ev_timer_start(loop, &s->resume_accept);
                return;
            }
            sg_log_error(errno, "accept on %s failed", l->text);
            return;
        }
        if (peer.ss_family != AF_UNIX) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        s->stats.connections_total++;
        const sg_listen *ls = l->conf < s->cfg->nlisten ? &s->cfg->listen[l->conf] : NULL;
        sg_conn *c = sg_conn_new(&s->host, fd, (struct sockaddr *)&peer, plen, l->text,
                                 ls ? ls->tls_ctx : NULL, ls && ls->redirect_https);
        sg_conn_link(c, &s->conns);
        s->nconns++;
    }
}

static sg_listener *add_listener(sg_server *s, int fd, const char *text, const char *key,
                                 const char *unix_path)
{
    sg_listener *l = sg_xcalloc(1, sizeof *l);
    l->fd = fd;
    l->server = s;
    l->text = sg_xstrdup(text);
    l->key = sg_xstrdup(key);
    l->unix_path = unix_path ? sg_xstrdup(unix_path) : NULL;
    ev_io_init(&l->io, on_accept, fd, EV_READ);
    if (!s->accept_paused)
        ev_io_start(s->loop, &l->io);
    return l;
}

static void free_listener(sg_server *s, sg_listener *l)
{
    ev_io_stop(s->loop, &l->io);
    sg_listen_close(l->fd, s->worker ? NULL : l->unix_path);
    free(l->unix_path);
    free(l->text);
    free(l->key);
    free(l);
}

int sg_server_listen(sg_server *s, char err[SG_ERR_LEN])
{
    s->listeners = sg_xcalloc(s->cfg->nlisten ? s->cfg->nlisten : 1, sizeof *s->listeners);
    for (size_t i = 0; i < s->cfg->nlisten; i++) {
        const sg_listen *ls = &s->cfg->listen[i];
        char text[160];
        int fd = sg_listen_open(ls, text, sizeof text, err);
        if (fd < 0)
            return SG_ERR;
        s->listeners[s->nlisteners] = add_listener(s, fd, text, ls->text, ls->unix_path);
        s->listeners[s->nlisteners++]->conf = i;
        sg_log_info(0, "listening on %s%s", text, ls->tls ? " (TLS)" : "");
    }
    return SG_OK;
}

int sg_server_adopt(sg_server *s, const int *fds, char *const *texts, size_t n)
{
    s->worker = true;
    ev_timer_stop(s->loop, &s->watch);
    s->listeners = sg_xcalloc(n ? n : 1, sizeof *s->listeners);
    for (size_t i = 0; i < n; i++) { /* the master passes them in the config's order */
        s->listeners[s->nlisteners] = add_listener(s, fds[i], texts[i], texts[i], NULL);
        s->listeners[s->nlisteners++]->conf = i;
    }
    return SG_OK;
}

/* Accepts what is already queued on a listener about to close: never reset a waiting client. */
static void drain_listener(sg_server *s, sg_listener *l)
{
    bool paused = s->accept_paused;
    s->accept_paused = false;
    for (;;) {
        size_t before = s->nconns;
        on_accept(s->loop, &l->io, EV_READ);
        if (s->nconns == before || s->accept_paused)
            break;
    }
    s->accept_paused = paused || s->accept_paused;
}

/* Reload: keep listeners whose configured address is unchanged, open new ones, close removed. */
static int sync_listeners(sg_server *s, const sg_config *cfg, char err[SG_ERR_LEN])
{
    sg_listener **next = sg_xcalloc(cfg->nlisten ? cfg->nlisten : 1, sizeof *next);
    bool *kept = sg_xcalloc(s->nlisteners ? s->nlisteners : 1, sizeof *kept);
    size_t opened = 0;
    for (size_t i = 0; i < cfg->nlisten; i++) {
        const sg_listen *ls = &cfg->listen[i];
        for (size_t j = 0; j < s->nlisteners && !next[i]; j++)
            if (!kept[j] && strcmp(s->listeners[j]->key, ls->text) == 0) {
                next[i] = s->listeners[j];
                kept[j] = true;
            }
        if (next[i])
            continue;
        char text[160];
        int fd = sg_listen_open(ls, text, sizeof text, err);
        if (fd < 0) {
            for (size_t k = 0; k < i; k++) { /* undo: close only what this reload opened */
                bool old = false;
                for (size_t j = 0; j < s->nlisteners; j++)
                    old = old || s->listeners[j] == next[k];
                if (!old)
                    free_listener(s, next[k]);
            }
            free(next);
            free(kept);
            return SG_ERR;
        }
        next[i] = add_listener(s, fd, text, ls->text, ls->unix_path);
        opened++;
        sg_log_info(0, "listening on %s", text);
    }
    size_t closed = 0;
    for (size_t j = 0; j < s->nlisteners; j++)
        if (!kept[j]) {
            sg_log_info(0, "no longer listening on %s", s->listeners[j]->text);
            drain_listener(s, s->listeners[j]);
            free_listener(s, s->listeners[j]);
            closed++;
        }
    free(kept);
    free(s->listeners);
    s->listeners = next;
    s->nlisteners = cfg->nlisten;
    for (size_t i = 0; i < s->nlisteners; i++) /* only now: a failed reload keeps the old */
        s->listeners[i]->conf = i;
    if (opened || closed)
        sg_log_info(0, "listen addresses: %zu opened, %zu closed", opened, closed);
    return SG_OK;
}

static void close_listeners(sg_server *s)
{
    for (size_t i = 0; i < s->nlisteners; i++)
        free_listener(s, s->listeners[i]);
    free(s->listeners);
    s->listeners = NULL;
    s->nlisteners = 0;
}

static void apply_logging(sg_config *cfg)
{
    sg_log_set_level((enum sg_log_level)cfg->log_level);
    if (sg_access_log_open(cfg->access_log) != 0)
        sg_log_error(errno, "cannot open the access log %s", cfg->access_log);
}

/* A load finished on the loader's thread: swap it in, or keep the generation in use. */
static void on_loaded(void *data, const sg_load_result *res)
{
    sg_server *s = data;
    sg_config *cfg = res->cfg;
    const char *why = res->why;
    ev_tstamp t0 = ev_time();
    if (s->stopping) {
        sg_log_info(0, "reload (%s) ignored: stopping", why);
        sg_config_unref(cfg);
        return;
    }
    if (!cfg) {
        /* the old generation keeps serving; print every problem, one log line each */
        const char *p = sg_buf_head((sg_buf *)res->report), *end = p + res->report->len;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
            sg_log_error(0, "reload (%s) failed, keeping generation %u: %.*s", why,
                         s->cfg->generation, (int)len, p);
            p += len + 1;
        }
        s->stats.reloads_failed++;
        return;
    }
    unsigned generation = res->generation ? res->generation : s->generation + 1;
    cfg->generation = generation;
    sg_config_bind_registry(cfg, &s->registry); /* counters carry on across the reload */
    char err[SG_ERR_LEN];
    if (!s->worker && sync_listeners(s, cfg, err) != SG_OK) {
        sg_log_error(0, "reload (%s) failed, keeping generation %u: %s", why, s->cfg->generation,
                     err);
        sg_config_unref(cfg);
        sg_lb_registry_prune(&s->registry);
        s->stats.reloads_failed++;
        return;
    }
    s->generation = generation;
    s->stats.reloads_ok++;
    for (size_t i = 0; !s->worker && i < cfg->nlisten; i++) /* a master says it for workers */
        if (cfg->listen[i].tls_warning)
            sg_log_warn(0, "%s", cfg->listen[i].tls_warning);
    sg_log_info(0, "reloaded %s (%s): generation %u -> %u, %zu routes, %zu balancers, %.1f ms",
                cfg->file, why, s->cfg->generation, cfg->generation, cfg->nroutes, cfg->nbalancers,
                (res->seconds + (ev_time() - t0)) * 1000);
    sg_health_free(s->health);
    sg_config_unref(s->cfg);
    s->cfg = cfg;
    s->health = sg_health_new(s->loop, cfg);
    if (!s->worker) /* the new generation may read other certificate files */
        sg_filewatch_set(&s->files, cfg);
    sg_lb_registry_prune(&s->registry); /* removed members, once no generation uses them */
    apply_logging(cfg);
}

/*
 * `src`: the file's bytes as a master validated them (NULL: the thread reads the file);
 * `generation` 0: the next one, numbered when it is swapped in. The load runs off the
 * loop (loader.c), so a slow or runaway config costs no request any latency.
 */
static void reload(sg_server *s, const char *why, const char *src, size_t src_len,
                   unsigned generation)
{
    if (sg_loader_request(s->loader, src, src_len, generation, why) != SG_OK) {
        sg_log_error(errno, "reload (%s) failed, keeping generation %u: cannot start the loader",
                     why, s->cfg->generation);
        s->stats.reloads_failed++;
    }
}

void sg_server_reload_source(sg_server *s, const char *src, size_t len, unsigned generation,
                             const char *why)
{
    if (s->stopping) {
        sg_log_info(0, "reload (%s) ignored: stopping", why);
        return;
    }
    reload(s, why, src, len, generation);
}

static void on_sighup(struct ev_loop *loop, ev_signal *w, int revents)
{
    sg_server *s = SG_CONTAINER_OF(w, sg_server, sighup);
    SG_UNUSED(loop);
    SG_UNUSED(revents);
    if (s->stopping) {
        /* the stop wins: a config loaded now would serve nothing new */
        sg_log_info(0, "SIGHUP ignored: stopping");
        return;
    }
    if (s->worker) {
        /* a HUP to the whole process group reaches the master too, which validates the file
         * once and hands every worker the same bytes */
        sg_log_info(0, "SIGHUP ignored: the master reloads the workers");
        return;
    }
    sg_filewatch_changed(&s->files); /* a change seen now is this reload's */
    reload(s, "SIGHUP", NULL, 0, 0);
}

void sg_server_reopen_log(sg_server *s, const char *why)
{
    if (sg_access_log_open(s->cfg->access_log) != 0)
        sg_log_error(errno, "%s: cannot reopen the access log %s", why, s->cfg->access_log);
    else
        sg_log_info(0, "%s: access log reopened", why);
}

/* logrotate: reopen the access log file under the same name (during a stop too: the
 * connections still draining write their lines to it) */
static void on_sigusr1(struct ev_loop *loop, ev_signal *w, int revents)
{
    sg_server *s = SG_CONTAINER_OF(w, sg_server, sigusr1);
    SG_UNUSED(loop);
    SG_UNUSED(revents);
    sg_server_reopen_log(s, "SIGUSR1");
}

static int host_pipe_take(sg_conn_host *h, sg_pipe *p)
{
    sg_server *s = host_server(h);
    if (s->npipes == 0)
        return sg_pipe_open(p);
    *p = s->pipes[--s->npipes];
    return SG_OK;
}

static void host_pipe_give(sg_conn_host *h, sg_pipe *p)
{
    sg_server *s = host_server(h);
    if (sg_pipe_is_open(p) && p->len == 0 && s->npipes < sizeof s->pipes / sizeof s->pipes[0]) {
        s->pipes[s->npipes++] = *p;
        sg_pipe_init(p);
        return;
    }
    sg_pipe_close(p);
}

static const sg_conn_host_ops host_ops = {
    .config = host_config,
    .stopping = host_stopping,
    .stats = host_stats,
    .nconns = host_nconns,
    .date = host_date,
    .conn_closed = host_conn_closed,
    .pipe_take = host_pipe_take,
    .pipe_give = host_pipe_give,
};

static void drain_pipes(sg_server *s)
{
    while (s->npipes)
        sg_pipe_close(&s->pipes[--s->npipes]);
}

static void on_file_change(struct ev_loop *loop, ev_timer *w, int revents)
{
    sg_server *s = SG_CONTAINER_OF(w, sg_server, watch);
    SG_UNUSED(loop);
    SG_UNUSED(revents);
    if (sg_filewatch_changed(&s->files))
        reload(s, "file changed", NULL, 0, 0);
}

/* A quiet second after traffic: close the pooled splice pipes and give the heap kept for
 * request buffers back. A timer of its own, since workers do not watch the file. */
static void on_housekeep(struct ev_loop *loop, ev_timer *w, int revents)
{
    sg_server *s = SG_CONTAINER_OF(w, sg_server, housekeep);
    SG_UNUSED(loop);
    SG_UNUSED(revents);
    if (s->stats.requests_total != s->trimmed_at) {
        if (s->stats.requests_total == s->requests_last_tick) {
            drain_pipes(s);
#ifdef __GLIBC__
            malloc_trim(0);
#endif
            s->trimmed_at = s->stats.requests_total;
        }
        s->requests_last_tick = s->stats.requests_total;
    }
}

static void on_shutdown_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    sg_server *s = SG_CONTAINER_OF(w, sg_server, shutdown_timer);
    SG_UNUSED(revents);
    sg_log_warn(0, "timeouts.shutdown reached with %zu connections open, exiting", s->nconns);
    s->exit_status = 0;
    ev_break(loop, EVBREAK_ALL);
}

void sg_server_stop(sg_server *s, bool now, const char *why)
{
    struct ev_loop *loop = s->loop;
    if (now) {
        sg_log_warn(0, "%s, exiting now with %zu connections open", why, s->nconns);
        s->exit_status = 1;
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    if (s->stopping)
        return;
    sg_log_info(0, "stopping: no new connections, finishing %zu open ones (up to %.0f s)",
                s->nconns, s->cfg->timeouts.shutdown);
    s->stopping = true;
    /* closed, not just unwatched: a connect() is refused at once instead of waiting in a
     * backlog nobody accepts from (in workers the master closes its copies too) */
    close_listeners(s);
    ev_timer_stop(loop, &s->resume_accept);
    ev_timer_stop(loop, &s->watch);
    sg_health_free(s->health);
    s->health = NULL;
    for (sg_conn *c = s->conns, *next; c; c = next) {
        next = sg_conn_next(c);
        sg_conn_shutdown(c);
    }
    ev_timer_set(&s->shutdown_timer, s->cfg->timeouts.shutdown, 0.);
    ev_timer_start(loop, &s->shutdown_timer);
    maybe_finish_stop(s);
}

/*
 * TERM, INT, QUIT: a graceful stop; a second stop SIGNAL during it: exit now. Counted per
 * signal, not by `stopping`: in a worker the master's stop message and the copy of a Ctrl-C
 * sent to the whole process group arrive in either order, and are one stop.
 */
static void on_stop_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    sg_server *s = w->data;
    SG_UNUSED(loop);
    SG_UNUSED(revents);
    const char *name = w->signum == SIGTERM  ? "SIGTERM"
                       : w->signum == SIGINT ? "SIGINT"
                                             : "SIGQUIT";
    char why[64];
    snprintf(why, sizeof why, "second stop signal (%s)", name);
    sg_server_stop(s, s->stop_signals++ > 0, why);
}

sg_server *sg_server_new(struct ev_loop *loop, sg_config *cfg, const char *lua_dir,
                         sg_lb_registry *reg)
{
    sg_server *s = sg_xcalloc(1, sizeof *s);
    s->registry = *reg; /* taken over */
    memset(reg, 0, sizeof *reg);
    s->loop = loop;
    s->host = (sg_conn_host){ .loop = loop, .ops = &host_ops };
    s->cfg = cfg;
    s->generation = cfg->generation;
    s->lua_dir = sg_xstrdup(lua_dir);
    s->stats.started = ev_time();
    apply_logging(cfg);
    ev_check_init(&s->sweep, on_sweep);
    ev_check_start(loop, &s->sweep);
    ev_init(&s->resume_accept, on_resume_accept);
    ev_init(&s->shutdown_timer, on_shutdown_timeout);
    ev_signal *stops[] = { &s->sigterm, &s->sigint, &s->sigquit };
    int stop_signums[] = { SIGTERM, SIGINT, SIGQUIT };
    for (size_t i = 0; i < SG_ARRAY_LEN(stops); i++) {
        ev_signal_init(stops[i], on_stop_signal, stop_signums[i]);
        stops[i]->data = s;
        ev_signal_start(loop, stops[i]);
    }
    ev_signal_init(&s->sighup, on_sighup, SIGHUP);
    ev_signal_start(loop, &s->sighup);
    ev_signal_init(&s->sigusr1, on_sigusr1, SIGUSR1);
    ev_signal_start(loop, &s->sigusr1);
    /* once a second keeps a change inside the 2 s the README promises */
    sg_filewatch_set(&s->files, cfg);
    ev_timer_init(&s->watch, on_file_change, 1.0, 1.0);
    ev_timer_start(loop, &s->watch);
    ev_timer_init(&s->housekeep, on_housekeep, 1.0, 1.0);
    ev_timer_start(loop, &s->housekeep);
    s->health = sg_health_new(loop, cfg);
    s->loader = sg_loader_new(loop, cfg->file, lua_dir, on_loaded, s);
    return s;
}

int sg_server_run(sg_server *s)
{
    ev_run(s->loop, 0);
    return s->exit_status;
}

void sg_server_free(sg_server *s)
{
    if (!s)
        return;
    s->stopping = true;
    sg_loader_free(s->loader); /* cancels a load still running, joins its thread */
    s->loader = NULL;
    while (s->conns)
        sg_conn_close(s->conns); /* moves it to the dead list */
    while (s->dead) {
        sg_conn *c = s->dead;
        sg_conn_unlink(c, &s->dead);
        sg_conn_free(c);
    }
    close_listeners(s);
    drain_pipes(s);
    sg_health_free(s->health);
    s->health = NULL;
    ev_check_stop(s->loop, &s->sweep);
    ev_timer_stop(s->loop, &s->watch);
    ev_timer_stop(s->loop, &s->housekeep);
    ev_timer_stop(s->loop, &s->shutdown_timer);
    ev_timer_stop(s->loop, &s->resume_accept);
    /* the process exits next: block before stopping the watchers (which restores the default
     * actions), so a late HUP cannot turn a clean exit into death by signal */
    ev_signal *sigs[] = { &s->sigterm, &s->sigint, &s->sigquit, &s->sighup, &s->sigusr1 };
    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < SG_ARRAY_LEN(sigs); i++)
        sigaddset(&set, sigs[i]->signum);
    sigprocmask(SIG_BLOCK, &set, NULL);
    for (size_t i = 0; i < SG_ARRAY_LEN(sigs); i++)
        ev_signal_stop(s->loop, sigs[i]);
    sg_config_unref(s->cfg);
    sg_lb_registry_free(&s->registry);
    sg_filewatch_free(&s->files);
    sg_access_log_open(NULL); /* close the file */
    free(s->lua_dir);
    free(s);
}
