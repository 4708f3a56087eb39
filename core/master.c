/*
 * master.c: the supervisor of a multi-worker setup. Signals are blocked and taken with
 * sigtimedwait(), so there is no async-signal-safety puzzle and no event loop to carry
 * across fork(). A listen change on reload cannot be applied to running workers (they
 * cannot receive new sockets), so the master opens the new sockets, starts a new set of
 * workers on them and stops the old set gracefully; any other change is a HUP to each worker.
 */
#include "master.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "listen.h"
#include "log.h"
#include "lua_bridge.h"
#include "server.h"
#include "util.h"

typedef struct worker {
    pid_t pid;         /* 0: not running */
    double started;    /* monotonic seconds */
    double restart_at; /* when to start it again after a crash, 0: not pending */
    double backoff;
    bool retiring;     /* from an older listen set: not restarted */
} worker;

typedef struct master {
    sg_config *cfg;    /* current generation (one reference) */
    const char *lua_dir;
    int *fds;          /* owned listening sockets of the current set */
    char **texts;      /* owned */
    char **keys;       /* owned: configured address text, to match across reloads */
    char **unix_paths; /* owned */
    size_t nfds;
    worker *workers;   /* owned: current set first, retiring ones after */
    size_t nworkers, cap;
    int want;          /* workers per set */
    bool stopping;
    int stop_status;
    struct timespec mtime, ctime;
    ino_t ino;
    off_t size;
    sigset_t oldmask;
} master;

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void remember_file(master *m)
{
    struct stat st;
    if (stat(m->cfg->file, &st) == 0) {
        m->mtime = st.st_mtim;
        m->ctime = st.st_ctim;
        m->ino = st.st_ino;
        m->size = st.st_size;
    }
}

static bool file_changed(master *m)
{
    struct stat st;
    if (stat(m->cfg->file, &st) != 0)
        return false; /* mid-rename: look again next tick */
    return st.st_ino != m->ino || st.st_size != m->size ||
           st.st_mtim.tv_sec != m->mtime.tv_sec || st.st_mtim.tv_nsec != m->mtime.tv_nsec ||
           st.st_ctim.tv_sec != m->ctime.tv_sec || st.st_ctim.tv_nsec != m->ctime.tv_nsec;
}

static pid_t spawn(master *m)
{
    sg_config *cfg = m->cfg;
    pid_t pid = fork();
    if (pid != 0)
        return pid; /* parent (or -1) */
    /* worker: a fresh loop and server on the inherited sockets; the master's file watch
     * and signals are not ours */
    sigprocmask(SIG_SETMASK, &m->oldmask, NULL);
    struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
    sg_lb_registry reg = { 0 };
    sg_server *s = sg_server_new(loop, sg_config_ref(cfg), m->lua_dir, &reg);
    sg_server_adopt(s, m->fds, m->texts, m->nfds);
    sg_log_info(0, "worker started");
    int status = sg_server_run(s);
    sg_server_free(s);
    /* _exit: the master's copies of its own objects live on in this address space */
    _exit(status);
}

static worker *add_worker(master *m)
{
    if (m->nworkers == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 8;
        m->workers = sg_xrealloc(m->workers, m->cap * sizeof *m->workers);
    }
    worker *w = &m->workers[m->nworkers++];
    memset(w, 0, sizeof *w);
    return w;
}

static void start_worker(master *m, worker *w)
{
    pid_t pid = spawn(m);
    if (pid < 0) {
        sg_log_error(errno, "fork failed, retrying in 1 s");
        w->restart_at = mono() + 1;
        return;
    }
    w->pid = pid;
    w->started = mono();
    w->restart_at = 0;
}

static void signal_workers(master *m, int sig, bool retiring_too)
{
    for (size_t i = 0; i < m->nworkers; i++)
        if (m->workers[i].pid > 0 && (retiring_too || !m->workers[i].retiring))
            kill(m->workers[i].pid, sig);
}

static size_t running(const master *m)
{
    size_t n = 0;
    for (size_t i = 0; i < m->nworkers; i++)
        n += m->workers[i].pid > 0;
    return n;
}

static void reap(master *m)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (size_t i = 0; i < m->nworkers; i++) {
            worker *w = &m->workers[i];
            if (w->pid != pid)
                continue;
            w->pid = 0;
            if (m->stopping || w->retiring) {
                sg_log_info(0, "worker %d exited", (int)pid);
                break;
            }
            /* a crash loop must not become a fork loop: back off while it dies young */
            double lived = mono() - w->started;
            w->backoff = lived < 2 ? (w->backoff ? w->backoff * 2 : 0.5) : 0;
            if (w->backoff > 30)
                w->backoff = 30;
            if (WIFSIGNALED(status))
                sg_log_error(0, "worker %d killed by signal %d, restarting in %.1f s", (int)pid,
                             WTERMSIG(status), w->backoff);
            else
                sg_log_error(0, "worker %d exited with status %d, restarting in %.1f s",
                             (int)pid, WEXITSTATUS(status), w->backoff);
            w->restart_at = mono() + w->backoff;
            break;
        }
    }
    /* forget retired slots that are gone */
    size_t k = 0;
    for (size_t i = 0; i < m->nworkers; i++)
        if (!(m->workers[i].retiring && m->workers[i].pid == 0))
            m->workers[k++] = m->workers[i];
    m->nworkers = k;
}

static void free_listen_set(int *fds, char **texts, char **keys, char **paths, size_t n,
                            const int *keep, size_t nkeep)
{
    for (size_t i = 0; i < n; i++) {
        bool kept = false;
        for (size_t j = 0; j < nkeep; j++)
            kept = kept || keep[j] == fds[i];
        if (!kept)
            sg_listen_close(fds[i], paths[i]);
        free(texts[i]);
        free(keys[i]);
        free(paths[i]);
    }
    free(fds);
    free(texts);
    free(keys);
    free(paths);
}

/* Builds the socket set of `cfg`, reusing open sockets with the same configured address. */
static int open_set(master *m, const sg_config *cfg, int **fds, char ***texts, char ***keys,
                    char ***paths, char err[SG_ERR_LEN])
{
    size_t n = cfg->nlisten;
    *fds = sg_xcalloc(n ? n : 1, sizeof **fds);
    *texts = sg_xcalloc(n ? n : 1, sizeof **texts);
    *keys = sg_xcalloc(n ? n : 1, sizeof **keys);
    *paths = sg_xcalloc(n ? n : 1, sizeof **paths);
    for (size_t i = 0; i < n; i++) {
        const sg_listen *ls = &cfg->listen[i];
        int fd = -1;
        for (size_t j = 0; j < m->nfds && fd < 0; j++)
            if (strcmp(m->keys[j], ls->text) == 0) {
                fd = m->fds[j];
                (*texts)[i] = sg_xstrdup(m->texts[j]);
            }
        if (fd < 0) {
            char text[160];
            fd = sg_listen_open(ls, text, sizeof text, err);
            if (fd < 0) {
                free_listen_set(*fds, *texts, *keys, *paths, i, m->fds, m->nfds);
                return SG_ERR;
            }
            (*texts)[i] = sg_xstrdup(text);
            sg_log_info(0, "listening on %s", text);
        }
        (*fds)[i] = fd;
        (*keys)[i] = sg_xstrdup(ls->text);
        (*paths)[i] = ls->is_unix ? sg_xstrdup(ls->unix_path) : NULL;
    }
    return SG_OK;
}

static bool same_listen(const master *m, const sg_config *cfg)
{
    if (cfg->nlisten != m->nfds)
        return false;
    for (size_t i = 0; i < m->nfds; i++)
        if (strcmp(m->keys[i], cfg->listen[i].text) != 0)
            return false;
    return true;
}

static void reload(master *m, const char *why)
{
    sg_buf report;
    sg_buf_init(&report);
    sg_config *cfg = sg_config_load(m->cfg->file, m->lua_dir, m->cfg->generation + 1, NULL,
                                    &report);
    remember_file(m);
    if (!cfg) {
        /* reported once, here; no worker is asked to reload */
        char *p = sg_buf_head(&report), *end = p + report.len;
        while (p < end) {
            char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
            sg_log_error(0, "reload (%s) failed, workers keep generation %u: %.*s", why,
                         m->cfg->generation, (int)len, p);
            p += len + 1;
        }
        sg_buf_free(&report);
        return;
    }
    sg_buf_free(&report);
    unsigned old = m->cfg->generation;
    if (same_listen(m, cfg)) {
        sg_config_unref(m->cfg);
        m->cfg = cfg;
        sg_log_info(0, "reload (%s): generation %u -> %u, %zu routes, %zu balancers; telling %zu workers",
                    why, old, cfg->generation, cfg->nroutes, cfg->nbalancers, running(m));
        signal_workers(m, SIGHUP, false);
        return;
    }
    int *fds;
    char **texts, **keys, **paths;
    char err[SG_ERR_LEN];
    if (open_set(m, cfg, &fds, &texts, &keys, &paths, err) != SG_OK) {
        sg_log_error(0, "reload (%s) failed, workers keep generation %u: %s", why, old, err);
        sg_config_unref(cfg);
        return;
    }
    /* new sockets, new workers; the old set finishes what it accepted, then exits */
    for (size_t i = 0; i < m->nworkers; i++)
        m->workers[i].retiring = true;
    signal_workers(m, SIGTERM, true);
    free_listen_set(m->fds, m->texts, m->keys, m->unix_paths, m->nfds, fds, cfg->nlisten);
    m->fds = fds;
    m->texts = texts;
    m->keys = keys;
    m->unix_paths = paths;
    m->nfds = cfg->nlisten;
    sg_config_unref(m->cfg);
    m->cfg = cfg;
    for (int i = 0; i < m->want; i++)
        start_worker(m, add_worker(m));
    sg_log_info(0, "reload (%s): generation %u -> %u with new listen addresses; %d new workers started",
                why, old, cfg->generation, m->want);
}

int sg_master_run(sg_config *cfg, const char *lua_dir, int nworkers)
{
    master m;
    memset(&m, 0, sizeof m);
    m.cfg = cfg;
    m.lua_dir = lua_dir;
    m.want = nworkers;
    sg_log_set_level((enum sg_log_level)cfg->log_level);
    char err[SG_ERR_LEN];
    if (open_set(&m, cfg, &m.fds, &m.texts, &m.keys, &m.unix_paths, err) != SG_OK) {
        sg_log_error(0, "%s", err);
        sg_config_unref(cfg);
        return 1;
    }
    m.nfds = cfg->nlisten;
    remember_file(&m);

    sigset_t set;
    sigemptyset(&set);
    int sigs[] = { SIGCHLD, SIGHUP, SIGTERM, SIGINT, SIGUSR1 };
    for (size_t i = 0; i < SG_ARRAY_LEN(sigs); i++)
        sigaddset(&set, sigs[i]);
    sigprocmask(SIG_BLOCK, &set, &m.oldmask);
    signal(SIGPIPE, SIG_IGN);

    for (int i = 0; i < nworkers; i++)
        start_worker(&m, add_worker(&m));
    sg_log_info(0, "%s master started with %d workers, configuration %s", SG_SOFTWARE, nworkers,
                cfg->file);

    double next_stat = mono() + 1;
    for (;;) {
        if (m.stopping && running(&m) == 0)
            break;
        double now = mono(), wait = next_stat - now;
        for (size_t i = 0; i < m.nworkers; i++)
            if (m.workers[i].restart_at > 0 && m.workers[i].restart_at - now < wait)
                wait = m.workers[i].restart_at - now;
        if (wait < 0.01)
            wait = 0.01;
        struct timespec ts = { (time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9) };
        siginfo_t info;
        int sig = sigtimedwait(&set, &info, &ts);
        now = mono();
        if (sig == SIGCHLD) {
            reap(&m);
        } else if (sig == SIGHUP) {
            if (!m.stopping)
                reload(&m, "SIGHUP");
        } else if (sig == SIGUSR1) {
            signal_workers(&m, SIGUSR1, true);
        } else if (sig == SIGTERM || sig == SIGINT) {
            if (m.stopping) {
                sg_log_warn(0, "second stop signal: workers exit now");
                signal_workers(&m, SIGTERM, true);
                m.stop_status = 1;
            } else {
                sg_log_info(0, "stopping: %zu workers finish their requests", running(&m));
                m.stopping = true;
                signal_workers(&m, sig, true);
            }
        }
        if (!m.stopping) {
            for (size_t i = 0; i < m.nworkers; i++) {
                worker *w = &m.workers[i];
                if (w->pid == 0 && !w->retiring && w->restart_at > 0 && w->restart_at <= now)
                    start_worker(&m, w);
            }
            if (now >= next_stat) {
                next_stat = now + 1;
                if (file_changed(&m))
                    reload(&m, "file changed");
            }
        }
    }
    sg_log_info(0, "stopped");
    free_listen_set(m.fds, m.texts, m.keys, m.unix_paths, m.nfds, NULL, 0);
    free(m.workers);
    sg_config_unref(m.cfg);
    return m.stop_status;
}
