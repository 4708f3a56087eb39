/*
 * fuzz_common.h: shared bits of the libFuzzer harnesses in spec/fuzz (built by run.sh, never
 * by the main Makefile). A failed property prints "fuzz check failed [tag]: ..." and aborts,
 * which libFuzzer reports as a crash; run.sh names saved crashers after the tag. Tags listed
 * in $SG_FUZZ_IGNORE (comma-separated) are skipped, so a session can keep exploring past a
 * known, already reported bug. No state beyond that list lives here.
 */
#ifndef SG_FUZZ_COMMON_H
#define SG_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline bool fuzz_ignored(const char *tag)
{
    const char *list = getenv("SG_FUZZ_IGNORE");
    size_t tlen = strlen(tag);
    while (list && *list) {
        const char *comma = strchr(list, ',');
        size_t n = comma ? (size_t)(comma - list) : strlen(list);
        if (n == tlen && memcmp(list, tag, n) == 0)
            return true;
        list = comma ? comma + 1 : NULL;
    }
    return false;
}

/* `tag` is a short kebab-case name for the property; run.sh turns it into a file name. */
#define FUZZ_CHECK(cond, tag, ...)                                                                 \
    do {                                                                                           \
        if (!(cond) && !fuzz_ignored(tag)) {                                                       \
            fprintf(stderr, "fuzz check failed [%s] at %s:%d: %s: ", tag, __FILE__, __LINE__,      \
                    #cond);                                                                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* A growable byte log: each harness writes an outcome transcript and compares two runs. */
typedef struct fuzz_log {
    char *data;
    size_t len, cap;
} fuzz_log;

static inline void fuzz_log_put(fuzz_log *l, const void *p, size_t n)
{
    if (l->len + n > l->cap) {
        size_t cap = l->cap ? l->cap : 256;
        while (cap < l->len + n)
            cap *= 2;
        char *d = realloc(l->data, cap);
        if (!d)
            abort();
        l->data = d;
        l->cap = cap;
    }
    if (n)
        memcpy(l->data + l->len, p, n);
    l->len += n;
}

static inline void fuzz_log_str(fuzz_log *l, const char *s)
{
    fuzz_log_put(l, s, strlen(s) + 1); /* keep the NUL: fields stay unambiguous */
}

static inline void fuzz_log_mem(fuzz_log *l, const void *p, size_t n)
{
    uint64_t n64 = n;
    fuzz_log_put(l, &n64, sizeof n64);
    fuzz_log_put(l, p, n);
}

static inline void fuzz_log_int(fuzz_log *l, int64_t v)
{
    fuzz_log_put(l, &v, sizeof v);
}

static inline void fuzz_log_free(fuzz_log *l)
{
    free(l->data);
    l->data = NULL;
    l->len = l->cap = 0;
}

/* Length of the common prefix of two logs, to say where two runs diverged. */
static inline size_t fuzz_log_diverge(const fuzz_log *a, const fuzz_log *b)
{
    size_t i = 0;
    while (i < a->len && i < b->len && a->data[i] == b->data[i])
        i++;
    return i;
}

/* Prints up to 96 bytes of a log from `from` on, escaped, to show where two runs differ. */
static inline void fuzz_log_show(const char *label, const fuzz_log *l, size_t from)
{
    fprintf(stderr, "  %s @%zu: \"", label, from);
    for (size_t i = from; i < l->len && i < from + 96; i++) {
        unsigned char c = (unsigned char)l->data[i];
        if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"')
            fputc(c, stderr);
        else
            fprintf(stderr, "\\x%02x", c);
    }
    fprintf(stderr, "\"\n");
}

#endif
