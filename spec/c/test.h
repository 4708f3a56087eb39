/*
 * test.h: a minimal test harness for the C unit tests. A test is a RUN(fn) call or a
 * CASE_BEGIN/CASE_END pair (one row of a table); it fails if any CHECK inside it fails.
 * test_report() prints "N passed, M failed" (the line make test sums).
 */
#ifndef SG_TEST_H
#define SG_TEST_H

#include <stdio.h>
#include <string.h>

static int test_passed, test_failed, check_failures, case_mark;

#define CASE_BEGIN() (case_mark = check_failures)
#define CASE_END() (check_failures == case_mark ? test_passed++ : test_failed++)
#define RUN(fn)                                                                                    \
    do {                                                                                           \
        CASE_BEGIN();                                                                              \
        fn();                                                                                      \
        CASE_END();                                                                                \
    } while (0)

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            check_failures++;                                                                      \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

#define CHECK_INT(a, b)                                                                            \
    CHECK((long long)(a) == (long long)(b), "%lld != %lld", (long long)(a), (long long)(b))
#define CHECK_STR(a, b) CHECK(strcmp((a), (b)) == 0, "\"%s\" != \"%s\"", (a), (b))
#define CHECK_MEM(a, alen, b, blen)                                                                \
    CHECK((alen) == (blen) && ((alen) == 0 || memcmp((a), (b), (alen)) == 0),                      \
          "%zu vs %zu bytes differ", (size_t)(alen), (size_t)(blen))

static int test_report(const char *suite)
{
    printf("%s: %d passed, %d failed\n", suite, test_passed, test_failed);
    printf("%d passed, %d failed\n", test_passed, test_failed);
    return test_failed ? 1 : 0;
}

#endif
