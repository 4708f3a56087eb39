/*
 * loader.c: the off-loop config load (loader.h). A load that loops, grows its heap or waits
 * for a name server costs the thread, never the loop: the loop only starts threads, and
 * swaps in what a finished one built. Nothing here is shared with the thread while it runs
 * but its job (written by the thread, read by the loop only after pthread_join) and the
 * cancel flag; the thread gets reg = NULL, so the live member-state registry stays the
 * loop's (the owner binds the new config to it, sg_config_bind_registry).
 */
#include "loader.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lua_bridge.h"
#include "util.h"

typedef struct job {
    char *src; /* owned, or NULL: read the file */
    size_t len;
    unsigned generation;
    char *why; /* owned */
    /* written by the thread, read after the join */
    sg_config *cfg;
    sg_buf report;
    double seconds;
} job;

struct sg_loader {
    struct ev_loop *loop;
    ev_async done;        /* the thread's "finished" */
    char *file, *lua_dir; /* owned */
    sg_loader_cb cb;
    void *data;
    job *cur;             /* owned: the load running, or NULL */
    job *next;            /* owned: the one queued, or NULL */
    pthread_t thread;     /* valid while cur */
    _Atomic int finished; /* cur's thread has written its result */
    _Atomic int cancel;
};

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void job_free(job *j)
{
    if (!j)
        return;
    sg_config_unref(j->cfg);
    sg_buf_free(&j->report);
    free(j->src);
    free(j->why);
    free(j);
}

static void *run(void *arg)
{
    sg_loader *l = arg;
    job *j = l->cur;
    double t0 = mono_now();
    j->cfg = sg_config_load_cancellable(l->file, j->src, j->len, l->lua_dir, j->generation, NULL,
                                        &l->cancel, &j->report);
    j->seconds = mono_now() - t0;
    atomic_store(&l->finished, 1);
    ev_async_send(l->loop, &l->done);
    return NULL;
}

/* Starts l->next on a thread of its own. */
static int start(sg_loader *l)
{
    l->cur = l->next;
    l->next = NULL;
    atomic_store(&l->finished, 0);
    /* the loop's signal watchers must stay the only ones to see signals */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&l->thread, NULL, run, l);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        job_free(l->cur);
        l->cur = NULL;
        errno = rc;
        return SG_ERR;
    }
    return SG_OK;
}

static void on_done(struct ev_loop *loop, ev_async *w, int revents)
{
    sg_loader *l = SG_CONTAINER_OF(w, sg_loader, done);
    SG_UNUSED(loop);
    SG_UNUSED(revents);
    if (!l->cur || !atomic_load(&l->finished))
        return;
    pthread_join(l->thread, NULL);
    job *j = l->cur;
    l->cur = NULL;
    sg_load_result res = { j->cfg, &j->report, j->generation, j->why, j->seconds };
    j->cfg = NULL; /* the callback's now */
    /* the queued load starts first: the callback may ask for another (it then queues) */
    if (l->next)
        start(l); /* on failure the queued request is dropped; the next one tries again */
    l->cb(l->data, &res);
    job_free(j);
}

sg_loader *sg_loader_new(struct ev_loop *loop, const char *file, const char *lua_dir,
                         sg_loader_cb cb, void *data)
{
    sg_loader *l = sg_xcalloc(1, sizeof *l);
    l->loop = loop;
    l->file = sg_xstrdup(file);
    l->lua_dir = sg_xstrdup(lua_dir);
    l->cb = cb;
    l->data = data;
    ev_async_init(&l->done, on_done);
    ev_async_start(loop, &l->done);
    ev_unref(loop); /* a loader waiting for work keeps no loop alive */
    return l;
}

int sg_loader_request(sg_loader *l, const char *src, size_t len, unsigned generation,
                      const char *why)
{
    job *j = sg_xcalloc(1, sizeof *j);
    if (src) {
        j->src = sg_xmalloc(len ? len : 1);
        memcpy(j->src, src, len);
    }
    j->len = len;
    j->generation = generation;
    j->why = sg_xstrdup(why);
    sg_buf_init(&j->report);
    job_free(l->next); /* coalesced: only the latest request still matters */
    l->next = j;
    if (l->cur)
        return SG_OK;
    return start(l);
}

bool sg_loader_busy(const sg_loader *l)
{
    return l->cur || l->next;
}

void sg_loader_free(sg_loader *l)
{
    if (!l)
        return;
    job_free(l->next);
    if (l->cur) {
        atomic_store(&l->cancel, 1);
        pthread_join(l->thread, NULL);
        job_free(l->cur);
    }
    ev_ref(l->loop);
    ev_async_stop(l->loop, &l->done);
    free(l->file);
    free(l->lua_dir);
    free(l);
}
