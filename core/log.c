/*
 * log.c: line-oriented logging. Each line is formatted into a stack buffer and written with
 * one write(2), so lines from several workers sharing stderr never interleave mid-line.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum sg_log_level min_level = SG_LOG_INFO;
static int access_fd = -1; /* -1: off; 2: stderr; else owned file */

static const char *level_names[] = { "debug", "info", "warn", "error" };

int sg_log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

void sg_log_set_level(enum sg_log_level level)
{
    min_level = level;
}

bool sg_log_enabled(enum sg_log_level level)
{
    return level >= min_level;
}

void sg_log(enum sg_log_level level, int err, const char *fmt, ...)
{
    if (level < min_level)
        return;
    char line[4096];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%SZ", &tm);
    n += (size_t)snprintf(line + n, sizeof line - n, " %s [%d] ", level_names[level],
                          (int)getpid());
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - n, fmt, ap);
    va_end(ap);
    n = m < 0 ? n : (n + (size_t)m >= sizeof line ? sizeof line - 1 : n + (size_t)m);
    if (err && n < sizeof line - 1) {
        m = snprintf(line + n, sizeof line - n, ": %s", strerror(err));
        n = m < 0 ? n : (n + (size_t)m >= sizeof line ? sizeof line - 1 : n + (size_t)m);
    }
    if (n >= sizeof line - 1)
        n = sizeof line - 2;
    line[n++] = '\n';
    ssize_t w = write(2, line, n);
    (void)w; /* nowhere better to report a failing stderr */
}

int sg_access_log_open(const char *target)
{
    int fd;
    if (!target)
        fd = -1;
    else if (strcmp(target, "stderr") == 0)
        fd = 2;
    else {
        fd = open(target, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0)
            return -1;
    }
    if (access_fd > 2)
        close(access_fd);
    access_fd = fd;
    return 0;
}

bool sg_access_log_enabled(void)
{
    return access_fd >= 0;
}

void sg_access_log_write(const char *line, size_t len)
{
    if (access_fd < 0)
        return;
    ssize_t w = write(access_fd, line, len);
    (void)w; /* a full disk must not take the gateway down */
}
