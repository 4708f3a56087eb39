/*
 * util.c: allocation wrappers. Running out of memory is treated as fatal (as redis and h2o
 * do): limits on headers, bodies and connections keep usage bounded, so OOM means the
 * machine is in trouble and limping on would only corrupt state.
 */
#include "util.h"

#include <stdio.h>

static void oom(size_t n)
{
    fprintf(stderr, "scgi-lua: out of memory allocating %zu bytes\n", n);
    abort();
}

void *sg_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *sg_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom(n * size);
    return p;
}

void *sg_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *sg_xstrndup(const char *s, size_t n)
{
    char *d = sg_xmalloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *sg_xstrdup(const char *s)
{
    return sg_xstrndup(s, strlen(s));
}

/* ASCII case folding, one pass, no strlen: the hot callers compare header names against
 * literals, and most comparisons fail at the first byte. Same answer as strlen(b) == alen &&
 * strncasecmp(a, b, alen) == 0 in the C locale (the only one this process runs in). */
int sg_strieq(const char *a, size_t alen, const char *b)
{
    for (size_t i = 0; i < alen; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (y == '\0')
            return 0; /* b is shorter */
        if (x != y && ((x | 0x20) != (y | 0x20) || (unsigned)((y | 0x20) - 'a') > 'z' - 'a'))
            return 0;
    }
    return b[alen] == '\0';
}

size_t sg_fmt_u64(char *out, unsigned long long v, unsigned radix)
{
    char tmp[24];
    size_t n = 0;
    if (radix == 10) { /* the common case: two digits per step, from a table */
        static const char pairs[] = "00010203040506070809101112131415161718192021222324"
                                    "25262728293031323334353637383940414243444546474849"
                                    "50515253545556575859606162636465666768697071727374"
                                    "75767778798081828384858687888990919293949596979899";
        char *p = tmp + sizeof tmp;
        while (v >= 100) {
            unsigned r = (unsigned)(v % 100);
            v /= 100;
            p -= 2;
            p[0] = pairs[2 * r];
            p[1] = pairs[2 * r + 1];
        }
        if (v >= 10) {
            p -= 2;
            p[0] = pairs[2 * v];
            p[1] = pairs[2 * v + 1];
        } else {
            *--p = (char)('0' + v);
        }
        n = (size_t)(tmp + sizeof tmp - p);
        for (size_t i = 0; i < n; i++)
            out[i] = p[i];
        return n;
    }
    do {
        unsigned d = (unsigned)(v % radix);
        tmp[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
        v /= radix;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

bool sg_list_next(const char **p, const char *end, const char **elem, size_t *len)
{
    const char *q = *p;
    while (q < end && (*q == ' ' || *q == '\t' || *q == ','))
        q++;
    if (q >= end) {
        *p = q;
        return false;
    }
    const char *s = q;
    while (q < end && *q != ',')
        q++;
    const char *e = q;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    *p = q;
    *elem = s;
    *len = (size_t)(e - s);
    return true;
}

const unsigned char sg_tchar_table[256] = {
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1,  ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1, ['A'] = 1, ['B'] = 1,  ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1,
    ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1,  ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1,
    ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1,  ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1,
    ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,  ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1,
    ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1,  ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1,
    ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1,  ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1,
    ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,  ['y'] = 1, ['z'] = 1, ['!'] = 1, ['#'] = 1,
    ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1,
    ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1,  ['~'] = 1,
};
