/*
 * util.h: the few definitions every scgi-lua C file shares: return codes, container_of,
 * allocation helpers that abort on OOM (memory is bounded by configured limits instead),
 * and the version string. No state lives here.
 */
#ifndef SG_UTIL_H
#define SG_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define SG_VERSION "0.1.0"
#define SG_SOFTWARE "scgi-lua/" SG_VERSION

enum { SG_OK = 0, SG_ERR = -1, SG_AGAIN = -2, SG_DECLINED = -3 };

#define SG_ERR_LEN 256
#define SG_UNUSED(x) ((void)(x))
#define SG_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#define SG_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define SG_EXPORT __attribute__((visibility("default")))

void *sg_xmalloc(size_t n);
void *sg_xcalloc(size_t n, size_t size);
void *sg_xrealloc(void *p, size_t n);
char *sg_xstrdup(const char *s);
char *sg_xstrndup(const char *s, size_t n);

/** Writes `v` in decimal (radix 10) or lower-case hex (16) to out (room for 21 bytes), no NUL.
 * Returns the length. The hot path's printf replacement. */
size_t sg_fmt_u64(char *out, unsigned long long v, unsigned radix);

/**
 * Steps through a comma-separated field value (RFC 9110 §5.6.1): returns false at the end,
 * else sets *elem and *len to the next element without surrounding whitespace (may be empty).
 */
bool sg_list_next(const char **p, const char *end, const char **elem, size_t *len);

/** RFC 9110 §5.6.2 tchar (ALPHA / DIGIT / "!#$%&'*+-.^_`|~") as a table: every byte of every
 * request and response header name is checked against it. */
extern const unsigned char sg_tchar_table[256];
static inline bool sg_is_tchar(unsigned char c)
{
    return sg_tchar_table[c];
}

/** Case-insensitive comparison of `a` (length `alen`) with the NUL-terminated `b`. */
int sg_strieq(const char *a, size_t alen, const char *b);

#endif
