/*
 * loopprobe.c: an LD_PRELOAD shim that times every event loop iteration of a process from
 * the outside, to find where latency spikes come from without touching the gateway. It
 * wraps epoll_wait(2): the time from one return to the next call is the loop's own work
 * (callbacks), the time inside is waiting. For each iteration slower than LOOPPROBE_US
 * (default 2000) it records the wall time, the thread's CPU time (much less than wall:
 * the process was preempted or blocked in a syscall), involuntary context switches and the
 * number of events handled. Once a second and at exit it rewrites LOOPPROBE_OUT (default
 * stderr, at exit only) with a histogram and the slowest iterations: the rig may stop the
 * process with a signal that runs no exit handler. Used by spec/bench/loopprobe.sh; not part of the server.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>

typedef int (*epoll_wait_fn)(int, struct epoll_event *, int, int);

#define SLOW_MAX 64
typedef struct slow {
    double at_s, busy_ms, cpu_ms;
    long nivcsw;
    int events;
} slow;

static epoll_wait_fn real_wait;
static uint64_t last_ret_ns, last_cpu_ns, iterations;
static long last_nivcsw;
static int last_events;
static uint64_t thresh_ns = 2000000;
static uint64_t hist[8]; /* busy time: <0.1, <0.5, <1, <2, <5, <10, <50, >=50 ms */
static double busy_total_ms;
static slow slows[SLOW_MAX];
static size_t nslow;
static uint64_t start_ns, reported_ns;
static const char *out_path;
static void report(void);

static uint64_t ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static long nivcsw(void)
{
    struct rusage ru;
    getrusage(RUSAGE_THREAD, &ru);
    return ru.ru_nivcsw;
}

static void record(uint64_t now)
{
    uint64_t busy = now - last_ret_ns;
    uint64_t cpu = ns(CLOCK_THREAD_CPUTIME_ID) - last_cpu_ns;
    double ms = (double)busy / 1e6;
    static const double edges[] = { 0.1, 0.5, 1, 2, 5, 10, 50 };
    size_t b = 0;
    while (b < 7 && ms >= edges[b])
        b++;
    hist[b]++;
    busy_total_ms += ms;
    iterations++;
    if (busy < thresh_ns)
        return;
    slow s = { (double)(last_ret_ns - start_ns) / 1e9, ms, (double)cpu / 1e6,
               nivcsw() - last_nivcsw, last_events };
    if (nslow < SLOW_MAX) {
        slows[nslow++] = s;
        return;
    }
    size_t min = 0; /* keep the slowest */
    for (size_t i = 1; i < SLOW_MAX; i++)
        if (slows[i].busy_ms < slows[min].busy_ms)
            min = i;
    if (slows[min].busy_ms < s.busy_ms)
        slows[min] = s;
}

int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout)
{
    if (!real_wait) {
        real_wait = (epoll_wait_fn)dlsym(RTLD_NEXT, "epoll_wait");
        const char *t = getenv("LOOPPROBE_US");
        if (t)
            thresh_ns = (uint64_t)strtoull(t, NULL, 10) * 1000u;
        start_ns = ns(CLOCK_MONOTONIC);
        out_path = getenv("LOOPPROBE_OUT");
    }
    uint64_t now = ns(CLOCK_MONOTONIC);
    if (last_ret_ns)
        record(now);
    if (out_path && now - reported_ns > 1000000000u) {
        reported_ns = now;
        report();
    }
    int n = real_wait(epfd, events, maxevents, timeout);
    last_ret_ns = ns(CLOCK_MONOTONIC);
    last_cpu_ns = ns(CLOCK_THREAD_CPUTIME_ID);
    last_nivcsw = nivcsw();
    last_events = n;
    return n;
}

static int by_time(const void *a, const void *b)
{
    double x = ((const slow *)a)->at_s, y = ((const slow *)b)->at_s;
    return x < y ? -1 : x > y;
}

__attribute__((destructor)) static void report(void)
{
    if (!iterations)
        return;
    FILE *f = out_path ? fopen(out_path, "w") : stderr;
    if (!f)
        return;
    static const char *names[] = { "<0.1", "0.1-0.5", "0.5-1", "1-2", "2-5", "5-10", "10-50", ">=50" };
    fprintf(f, "loopprobe: %llu iterations, %.1f ms busy in callbacks, busy time per iteration:\n",
            (unsigned long long)iterations, busy_total_ms);
    for (size_t i = 0; i < 8; i++)
        fprintf(f, "  %-8s ms %llu\n", names[i], (unsigned long long)hist[i]);
    slow sorted[SLOW_MAX];
    memcpy(sorted, slows, nslow * sizeof *slows);
    qsort(sorted, nslow, sizeof *sorted, by_time);
    fprintf(f, "loopprobe: %zu iterations over %.1f ms (at_s busy_ms cpu_ms nivcsw events):\n", nslow,
            (double)thresh_ns / 1e6);
    for (size_t i = 0; i < nslow; i++)
        fprintf(f, "  %.3f %.2f %.2f %ld %d\n", sorted[i].at_s, sorted[i].busy_ms, sorted[i].cpu_ms,
                sorted[i].nivcsw, sorted[i].events);
    if (out_path)
        fclose(f);
}
