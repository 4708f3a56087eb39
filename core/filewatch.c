/*
 * filewatch.c: the stat() poll behind config and certificate reloads (filewatch.h).
 */
#include "filewatch.h"

#include <stdlib.h>
#include <string.h>

#include "tls.h"
#include "util.h"

static void add(sg_filewatch *w, const char *path, size_t *cap)
{
    if (!path)
        return;
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->paths[i], path) == 0)
            return;
    if (w->n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        w->paths = sg_xrealloc(w->paths, *cap * sizeof *w->paths);
        w->seen = sg_xrealloc(w->seen, *cap * sizeof *w->seen);
        w->known = sg_xrealloc(w->known, *cap * sizeof *w->known);
    }
    w->paths[w->n] = sg_xstrdup(path);
    w->known[w->n] = stat(path, &w->seen[w->n]) == 0;
    w->n++;
}

void sg_filewatch_set(sg_filewatch *w, const sg_config *cfg)
{
    sg_filewatch_free(w);
    size_t cap = 0;
    add(w, cfg->file, &cap);
    for (size_t i = 0; i < cfg->nlisten; i++) {
        const sg_tls_conf *t = cfg->listen[i].tls;
        if (!t)
            continue;
        for (size_t k = 0; k < t->ncerts; k++) {
            add(w, t->certs[k].cert, &cap);
            add(w, t->certs[k].key, &cap);
            add(w, t->certs[k].ocsp, &cap);
        }
        add(w, t->client_ca, &cap);
    }
}

static bool same(const struct stat *a, const struct stat *b)
{
    return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
           a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

bool sg_filewatch_changed(sg_filewatch *w)
{
    bool changed = false;
    for (size_t i = 0; i < w->n; i++) {
        struct stat st;
        if (stat(w->paths[i], &st) != 0)
            continue; /* mid-rename: look again on the next tick */
        if (!w->known[i] || !same(&st, &w->seen[i]))
            changed = true;
        w->seen[i] = st;
        w->known[i] = true;
    }
    return changed;
}

void sg_filewatch_free(sg_filewatch *w)
{
    for (size_t i = 0; i < w->n; i++)
        free(w->paths[i]);
    free(w->paths);
    free(w->seen);
    free(w->known);
    memset(w, 0, sizeof *w);
}
