/*
 * log.h: the error log (stderr, "time level [worker pid] message") and the access log
 * (Combined Log Format + request time + backend). The logger is the one piece of
 * process-wide state outside the loop and config objects: every module logs, and threading
 * a logger pointer through pure helpers would break the rule that helpers never log anyway.
 */
#ifndef SG_LOG_H
#define SG_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum sg_log_level { SG_LOG_DEBUG, SG_LOG_INFO, SG_LOG_WARN, SG_LOG_ERROR };

/** Parses "debug"/"info"/"warn"/"error"; returns -1 if unknown. */
int sg_log_level_parse(const char *s);
void sg_log_set_level(enum sg_log_level level);
bool sg_log_enabled(enum sg_log_level level);

/** Logs one line; `err` != 0 appends ": strerror(err)". */
void sg_log(enum sg_log_level level, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define sg_log_debug(err, ...)                                                                     \
    do {                                                                                           \
        if (sg_log_enabled(SG_LOG_DEBUG))                                                          \
            sg_log(SG_LOG_DEBUG, err, __VA_ARGS__);                                                \
    } while (0)
#define sg_log_info(err, ...) sg_log(SG_LOG_INFO, err, __VA_ARGS__)
#define sg_log_warn(err, ...) sg_log(SG_LOG_WARN, err, __VA_ARGS__)
#define sg_log_error(err, ...) sg_log(SG_LOG_ERROR, err, __VA_ARGS__)

/**
 * Points the access log at "stderr", a file path (opened for append), or NULL (off).
 * Returns 0, or -1 with errno set if the file cannot be opened (the old target is kept).
 */
int sg_access_log_open(const char *target);
bool sg_access_log_enabled(void);
void sg_access_log_write(const char *line, size_t len);

#endif
