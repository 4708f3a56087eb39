/*
 * filewatch.h: notices when any of a set of files changed (the config file, and the
 * certificates and keys its TLS listeners read, which certbot and other ACME clients renew
 * in place or by rename). A plain stat() poll, not inotify: inotify follows the inode, and
 * an editor's save or a renewal by rename replaces it. A file that cannot be stat()ed right
 * now (mid-rename) counts as unchanged until it can. Nothing here logs.
 */
#ifndef SG_FILEWATCH_H
#define SG_FILEWATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

#include "config.h"

typedef struct sg_filewatch {
    char **paths;      /* owned */
    struct stat *seen; /* what each looked like at the last look */
    bool *known;       /* seen[i] is valid */
    size_t n;
} sg_filewatch;

/** Watches `cfg`'s file and the TLS files of its listeners, as they are now. */
void sg_filewatch_set(sg_filewatch *w, const sg_config *cfg);
/** Whether any file differs from the last look (which this call updates). */
bool sg_filewatch_changed(sg_filewatch *w);
void sg_filewatch_free(sg_filewatch *w);

#endif
