/*
 * master.c: the supervisor of a multi-worker setup. Signals are blocked and taken with
 * sigtimedwait(), so there is no async-signal-safety puzzle and no event loop to carry
 * across fork(). The master tells each worker what to do over a socketpair of its own
 * (reload, stop, stop now, reopen the log), never with a signal: a message waits until the
 * worker's loop reads it, and a signal sent to the whole process group (Ctrl-C) is one stop,
 * not one from the terminal plus one forwarded. A reload hands the workers a sealed memfd
 * holding the exact bytes the master validated. A listen change cannot be applied to
 * running workers, so the master opens the new sockets, starts a new set of workers on
 * them and stops the old set gracefully.
 */
#include "master.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "filewatch.h"
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
    bool retiring; /* from an older listen set: not restarted */
    int chan;      /* owned: the master's end of the socketpair to it, -1: none */
} worker;

/* One message master -> worker (SOCK_SEQPACKET: one message per recvmsg). */
enum { MSG_RELOAD = 1, MSG_STOP, MSG_STOP_NOW, MSG_REOPEN_LOG };
typedef struct msg {
    uint32_t cmd;
    uint32_t generation; /* MSG_RELOAD; its memfd travels as SCM_RIGHTS */
    char why[32];        /* for the worker's log line: "SIGHUP", "file changed", ... */
} msg;

typedef struct master {
    sg_config *cfg; /* current generation (one reference) */
    const char *lua_dir;
    int *fds;          /* owned listening sockets of the current set */
    char **texts;      /* owned */
    char **keys;       /* owned: configured address text, to match across reloads */
    char **unix_paths; /* owned */
    size_t nfds;
    sg_lb_registry reg; /* member states of cfg: a forked worker continues with its copy */
    worker *workers;    /* owned: current set first, retiring ones after */
    size_t nworkers, cap;
    int want; /* workers per set */
    bool stopping;
    int stop_status;
    sg_filewatch files; /* the config file and its TLS files, as at the last (attempted) load */
    sigset_t oldmask;
} master;

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the worker side of the channel (runs in the child) ---- */

typedef struct channel {
    ev_io io;
    sg_server *server; /* borrowed */
} channel;

/* The whole memfd into `out`. */
static int read_all_fd(int fd, sg_buf *out)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return SG_ERR;
    size_t size = (size_t)st.st_size;
    sg_buf_reserve(out, size ? size : 1);
    while (out->len < size) {
        ssize_t n = pread(fd, sg_buf_tail(out), size - out->len, (off_t)out->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO; /* shorter than fstat said: a sealed memfd cannot be */
            return SG_ERR;
        }
        out->len += (size_t)n;
    }
    return SG_OK;
}

static void on_channel(struct ev_loop *loop, ev_io *w, int revents)
{
    channel *ch = SG_CONTAINER_OF(w, channel, io);
    SG_UNUSED(revents);
    for (;;) {
        msg mm;
        union {
            char buf[CMSG_SPACE(sizeof(int))];
            struct cmsghdr align;
        } ctl;
        struct iovec iov = { &mm, sizeof mm };
        struct msghdr mh = { .msg_iov = &iov,
                             .msg_iovlen = 1,
                             .msg_control = ctl.buf,
                             .msg_controllen = sizeof ctl.buf };
        ssize_t n = recvmsg(w->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        int fd = -1;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
                c->cmsg_len == CMSG_LEN(sizeof(int)))
                memcpy(&fd, CMSG_DATA(c), sizeof fd);
        if (n <= 0) {
            /* nobody restarts, reloads or stops us any more (as Apache's children, which
             * leave when the parent goes) */
            sg_log_warn(n < 0 ? errno : 0, "the master is gone: stopping");
            ev_io_stop(loop, w);
            close(w->fd);
            sg_server_stop(ch->server, false, "the master is gone");
            return;
        }
        mm.why[sizeof mm.why - 1] = '\0';
        if ((size_t)n != sizeof mm) {
            sg_log_error(0, "malformed message from the master (%zd bytes), ignored", n);
        } else if (mm.cmd == MSG_RELOAD) {
            sg_buf src;
            sg_buf_init(&src);
            if (fd < 0)
                sg_log_error(0, "reload (%s) failed: the master sent no configuration", mm.why);
            else if (read_all_fd(fd, &src) != SG_OK)
                sg_log_error(errno,
                             "reload (%s) failed: cannot read the configuration the "
                             "master sent",
                             mm.why);
            else
                sg_server_reload_source(ch->server, sg_buf_head(&src), src.len, mm.generation,
                                        mm.why);
            sg_buf_free(&src);
        } else if (mm.cmd == MSG_STOP || mm.cmd == MSG_STOP_NOW) {
            /* STOP while already stopping (the group's signal came first): nothing more */
            sg_server_stop(ch->server, mm.cmd == MSG_STOP_NOW, mm.why);
        } else if (mm.cmd == MSG_REOPEN_LOG) {
            sg_server_reopen_log(ch->server, mm.why);
        } else {
            sg_log_error(0, "unknown message %u from the master, ignored", (unsigned)mm.cmd);
        }
        if (fd >= 0)
            close(fd);
    }
}

/* In the child: `chan` is its end of the channel. Never returns. */
static void run_worker(master *m, int chan)
{
    /* the master's signals are still blocked here, and stay so until our handlers exist:
     * a signal that arrives in between waits instead of killing us with its default action */
    for (size_t i = 0; i < m->nworkers; i++) /* other workers' channels are not ours */
        if (m->workers[i].chan >= 0)
            close(m->workers[i].chan);
    fcntl(chan, F_SETFL, fcntl(chan, F_GETFL) | O_NONBLOCK);
    struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
    /* the registry is the master's, copied by fork() and consistent with cfg: reloads here
     * find the states this config already uses, so counters and errors carry on */
    sg_lb_registry reg = m->reg;
    memset(&m->reg, 0, sizeof m->reg);
    sg_server *s = sg_server_new(loop, sg_config_ref(m->cfg), m->lua_dir, &reg);
    sg_server_adopt(s, m->fds, m->texts, m->nfds);
    channel ch = { .server = s };
    ev_io_init(&ch.io, on_channel, chan, EV_READ);
    ev_io_start(loop, &ch.io);
    sigprocmask(SIG_SETMASK, &m->oldmask, NULL);
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
    w->chan = -1;
    return w;
}

static void start_worker(master *m, worker *w)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        sg_log_error(errno, "socketpair for a worker failed, retrying in 1 s");
        w->restart_at = mono() + 1;
        return;
    }
    pid_t pid = fork();
    if (pid == 0) {
        close(sv[0]);
        run_worker(m, sv[1]);
    }
    close(sv[1]);
    if (pid < 0) {
        sg_log_error(errno, "fork failed, retrying in 1 s");
        close(sv[0]);
        w->restart_at = mono() + 1;
        return;
    }
    w->chan = sv[0];
    w->pid = pid;
    w->started = mono();
    w->restart_at = 0;
}

/*
 * Sends `cmd` to every running worker (retiring ones too if asked), with `fd` (or -1)
 * attached. Never blocks: a worker whose queue is full is told by signal instead where one
 * means the same, else keeps what it has (logged); one that closed its end is stopping or
 * gone and is left alone. Returns how many were told.
 */
static size_t tell_workers(master *m, uint32_t cmd, unsigned generation, const char *why, int fd,
                           bool retiring_too)
{
    msg mm;
    memset(&mm, 0, sizeof mm);
    mm.cmd = cmd;
    mm.generation = generation;
    snprintf(mm.why, sizeof mm.why, "%s", why);
    size_t told = 0;
    for (size_t i = 0; i < m->nworkers; i++) {
        worker *w = &m->workers[i];
        if (w->pid <= 0 || (w->retiring && !retiring_too))
            continue;
        union {
            char buf[CMSG_SPACE(sizeof(int))];
            struct cmsghdr align;
        } ctl;
        memset(&ctl, 0, sizeof ctl);
        struct iovec iov = { &mm, sizeof mm };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        if (fd >= 0) {
            mh.msg_control = ctl.buf;
            mh.msg_controllen = sizeof ctl.buf;
            struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(c), &fd, sizeof fd);
        }
        ssize_t n;
        do
            n = w->chan >= 0 ? sendmsg(w->chan, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) : -1;
        while (n < 0 && errno == EINTR);
        if (n == (ssize_t)sizeof mm) {
            told++;
            continue;
        }
        if (w->chan >= 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            /* the worker closed its end: it is already stopping (a stop signal sent to the
             * whole process group reached it first) or gone, and reap() sees its exit. A
             * signal now would count as its second stop signal and cut its requests off. */
            sg_log_debug(errno, "worker %d no longer reads its channel (%s)", (int)w->pid, why);
            continue;
        }
        int sig = cmd == MSG_REOPEN_LOG ? SIGUSR1 : cmd == MSG_RELOAD ? 0 : SIGTERM;
        sg_log_error(w->chan >= 0 ? errno : EBADF, "cannot tell worker %d (%s)%s", (int)w->pid, why,
                     sig ? ", signalling it" : ", it keeps its configuration");
        if (sig && kill(w->pid, sig) == 0)
            told++;
    }
    return told;
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
            if (w->chan >= 0)
                close(w->chan);
            w->chan = -1;
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
                sg_log_error(0, "worker %d exited with status %d, restarting in %.1f s", (int)pid,
                             WEXITSTATUS(status), w->backoff);
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

/* Reads the config file into `out` once, remembering what the file looked like then. */
static int read_config(master *m, sg_buf *out, char err[SG_ERR_LEN])
{
    int fd = open(m->cfg->file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, SG_ERR_LEN, "cannot open %s: %s", m->cfg->file, strerror(errno));
        return SG_ERR;
    }
    for (;;) {
        ssize_t n = sg_buf_read(out, fd, 64 * 1024);
        if (n == 0)
            break;
        if (n < 0) {
            if (n == SG_ERR && errno == EINTR)
                continue;
            snprintf(err, SG_ERR_LEN, "cannot read %s: %s", m->cfg->file, strerror(errno));
            close(fd);
            return SG_ERR;
        }
    }
    close(fd);
    return SG_OK;
}

/* A sealed memfd holding `src`: the workers get these very bytes, and nobody can change
 * them on the way. Returns the fd, or -1 with `err` filled. */
static int seal_source(const sg_buf *src, char err[SG_ERR_LEN])
{
    int fd = memfd_create("scgi-lua-config", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) {
        snprintf(err, SG_ERR_LEN, "memfd_create: %s", strerror(errno));
        return -1;
    }
    const char *p = sg_buf_head(src);
    size_t left = src->len;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(err, SG_ERR_LEN, "writing the memfd: %s", strerror(n < 0 ? errno : EIO));
            close(fd);
            return -1;
        }
        p += n;
        left -= (size_t)n;
    }
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
        snprintf(err, SG_ERR_LEN, "sealing the memfd: %s", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static void reload(master *m, const char *why)
{
    unsigned old = m->cfg->generation;
    char err[SG_ERR_LEN];
    sg_buf src;
    sg_buf_init(&src);
    if (read_config(m, &src, err) != SG_OK) {
        sg_log_error(0, "reload (%s) failed, workers keep generation %u: %s", why, old, err);
        sg_buf_free(&src);
        return;
    }
    sg_buf report;
    sg_buf_init(&report);
    sg_config *cfg = sg_config_load_source(m->cfg->file, sg_buf_head(&src), src.len, m->lua_dir,
                                           old + 1, &m->reg, &report);
    if (!cfg) {
        /* reported once, here; no worker is asked to reload */
        char *p = sg_buf_head(&report), *end = p + report.len;
        while (p < end) {
            char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
            sg_log_error(0, "reload (%s) failed, workers keep generation %u: %.*s", why, old,
                         (int)len, p);
            p += len + 1;
        }
        sg_buf_free(&report);
        sg_buf_free(&src);
        sg_lb_registry_prune(&m->reg);
        return;
    }
    sg_buf_free(&report);
    for (size_t i = 0; i < cfg->nlisten; i++) /* said here once, not by every worker */
        if (cfg->listen[i].tls_warning)
            sg_log_warn(0, "%s", cfg->listen[i].tls_warning);
    if (same_listen(m, cfg)) {
        int fd = seal_source(&src, err);
        sg_buf_free(&src);
        if (fd < 0) {
            sg_log_error(0, "reload (%s) failed, workers keep generation %u: %s", why, old, err);
            sg_config_unref(cfg);
            sg_lb_registry_prune(&m->reg);
            return;
        }
        sg_config_unref(m->cfg);
        m->cfg = cfg;
        sg_filewatch_set(&m->files, cfg); /* it may read other certificate files */
        sg_lb_registry_prune(&m->reg);
        /* the descriptor in flight keeps the memfd alive after we close ours */
        size_t told = tell_workers(m, MSG_RELOAD, cfg->generation, why, fd, false);
        close(fd);
        sg_log_info(0,
                    "reload (%s): generation %u -> %u, %zu routes, %zu balancers; told %zu workers",
                    why, old, cfg->generation, cfg->nroutes, cfg->nbalancers, told);
        return;
    }
    sg_buf_free(&src);
    int *fds;
    char **texts, **keys, **paths;
    if (open_set(m, cfg, &fds, &texts, &keys, &paths, err) != SG_OK) {
        sg_log_error(0, "reload (%s) failed, workers keep generation %u: %s", why, old, err);
        sg_config_unref(cfg);
        sg_lb_registry_prune(&m->reg);
        return;
    }
    /* new sockets, new workers; the old set finishes what it accepted, then exits. The new
     * set starts from the master's member states: each worker's counters are its own, in a
     * process of its own that a new listen set does not inherit. */
    for (size_t i = 0; i < m->nworkers; i++)
        m->workers[i].retiring = true;
    tell_workers(m, MSG_STOP, 0, "listen addresses changed", -1, true);
    free_listen_set(m->fds, m->texts, m->keys, m->unix_paths, m->nfds, fds, cfg->nlisten);
    m->fds = fds;
    m->texts = texts;
    m->keys = keys;
    m->unix_paths = paths;
    m->nfds = cfg->nlisten;
    sg_config_unref(m->cfg);
    m->cfg = cfg;
    sg_filewatch_set(&m->files, cfg);
    sg_lb_registry_prune(&m->reg);
    for (int i = 0; i < m->want; i++)
        start_worker(m, add_worker(m));
    sg_log_info(
        0, "reload (%s): generation %u -> %u with new listen addresses; %d new workers started",
        why, old, cfg->generation, m->want);
}

static const char *signame(int sig)
{
    switch (sig) {
    case SIGTERM:
        return "SIGTERM";
    case SIGINT:
        return "SIGINT";
    case SIGQUIT:
        return "SIGQUIT";
    default:
        return "signal";
    }
}

static void on_stop_signal(master *m, int sig)
{
    char why[64];
    if (m->stopping) {
        snprintf(why, sizeof why, "second stop signal (%s)", signame(sig));
        sg_log_warn(0, "%s: workers exit now", why);
        tell_workers(m, MSG_STOP_NOW, 0, why, -1, true);
        m->stop_status = 1;
        return;
    }
    sg_log_info(0, "stopping (%s): listening sockets closed, %zu workers finish their requests",
                signame(sig), running(m));
    m->stopping = true;
    /* closed now, not when the last worker leaves: the kernel would otherwise queue new
     * connections nobody accepts until timeouts.shutdown, instead of refusing them so that
     * clients and load balancers go elsewhere at once (the workers close their copies) */
    free_listen_set(m->fds, m->texts, m->keys, m->unix_paths, m->nfds, NULL, 0);
    m->fds = NULL;
    m->texts = m->keys = m->unix_paths = NULL;
    m->nfds = 0;
    tell_workers(m, MSG_STOP, 0, signame(sig), -1, true);
}

int sg_master_run(sg_config *cfg, const char *lua_dir, int nworkers, sg_lb_registry *reg)
{
    master m;
    memset(&m, 0, sizeof m);
    m.reg = *reg; /* taken over */
    memset(reg, 0, sizeof *reg);
    m.cfg = cfg;
    m.lua_dir = lua_dir;
    m.want = nworkers;
    sg_log_set_level((enum sg_log_level)cfg->log_level);
    char err[SG_ERR_LEN];
    if (open_set(&m, cfg, &m.fds, &m.texts, &m.keys, &m.unix_paths, err) != SG_OK) {
        sg_log_error(0, "%s", err);
        sg_config_unref(cfg);
        sg_lb_registry_free(&m.reg);
        return 1;
    }
    m.nfds = cfg->nlisten;
    sg_filewatch_set(&m.files, m.cfg);

    sigset_t set;
    sigemptyset(&set);
    /* blocked from here on, and inherited so by each worker until its handlers exist */
    int sigs[] = { SIGCHLD, SIGHUP, SIGTERM, SIGINT, SIGQUIT, SIGUSR1 };
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
            if (m.stopping) {
                sg_log_info(0, "SIGHUP ignored: stopping");
            } else {
                sg_filewatch_changed(&m.files); /* a change seen now is this reload's */
                reload(&m, "SIGHUP");
            }
        } else if (sig == SIGUSR1) {
            tell_workers(&m, MSG_REOPEN_LOG, 0, "SIGUSR1", -1, true);
        } else if (sig == SIGTERM || sig == SIGINT || sig == SIGQUIT) {
            on_stop_signal(&m, sig);
        }
        if (!m.stopping) {
            for (size_t i = 0; i < m.nworkers; i++) {
                worker *w = &m.workers[i];
                if (w->pid == 0 && !w->retiring && w->restart_at > 0 && w->restart_at <= now)
                    start_worker(&m, w);
            }
            if (now >= next_stat) {
                next_stat = now + 1;
                if (sg_filewatch_changed(&m.files))
                    reload(&m, "file changed");
            }
        }
    }
    sg_log_info(0, "stopped");
    free_listen_set(m.fds, m.texts, m.keys, m.unix_paths, m.nfds, NULL, 0);
    for (size_t i = 0; i < m.nworkers; i++)
        if (m.workers[i].chan >= 0)
            close(m.workers[i].chan);
    free(m.workers);
    sg_config_unref(m.cfg);
    sg_filewatch_free(&m.files);
    sg_lb_registry_free(&m.reg);
    return m.stop_status;
}
