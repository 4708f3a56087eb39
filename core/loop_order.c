/*
 * loop_order.c: makes the event loop serve ready sockets in the order they became ready.
 * libev queues the watchers of one epoll_wait in the order the kernel lists them and then
 * invokes that queue from its end, so in a busy iteration the client that became ready
 * first is served last and waits a whole iteration more; that was the tail of a pinned
 * benchmark (p99 1.2 times nginx's at the same p50, where nginx serves in kernel order).
 * This definition takes the place of libc's epoll_wait for libev (the binary exports its
 * symbols, so the dynamic linker binds libev's call here) and hands libev the kernel's
 * list reversed; it has no other effect. Measured in README "Performance".
 */
#include <dlfcn.h>
#include <stddef.h>
#include <sys/epoll.h>

typedef int (*epoll_wait_fn)(int, struct epoll_event *, int, int);

int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout)
{
    static epoll_wait_fn next; /* libc's, or a preloaded probe's (spec/bench/loopprobe.c) */
    if (!next)
        next = (epoll_wait_fn)dlsym(RTLD_NEXT, "epoll_wait");
    int n = next(epfd, events, maxevents, timeout);
    for (int i = 0, j = n - 1; i < j; i++, j--) {
        struct epoll_event t = events[i];
        events[i] = events[j];
        events[j] = t;
    }
    return n;
}
