/* Unit test for core/loop_order.c: the watchers of one wakeup run in the order their
 * sockets became ready. Three socketpairs become readable one after the other before the
 * loop waits; libev alone would call them last-ready-first. The binary exports the
 * epoll_wait included here, so libev calls it, as it does in the gateway. */
#include "../../core/loop_order.c"

#include <ev.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test.h"

#define N 3

static int order[N], seen;

static void on_ready(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    char c;
    if (read(w->fd, &c, 1) == 1 && seen < N)
        order[seen++] = (int)(c - '0');
}

static void test_first_ready_first(void)
{
    struct ev_loop *loop = ev_loop_new(EVBACKEND_EPOLL);
    CHECK(loop != NULL, "no epoll loop");
    int sv[N][2];
    ev_io w[N];
    for (int i = 0; i < N; i++) {
        socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]);
        ev_io_init(&w[i], on_ready, sv[i][0], EV_READ);
        ev_io_start(loop, &w[i]);
    }
    ev_run(loop, EVRUN_NOWAIT);   /* the watchers reach epoll before any byte is there */
    for (int i = 0; i < N; i++) { /* ready in the order 0, 1, 2 */
        char c = (char)('0' + i);
        CHECK(write(sv[i][1], &c, 1) == 1, "write");
    }
    ev_run(loop, EVRUN_ONCE);
    CHECK_INT(seen, N);
    for (int i = 0; i < N; i++)
        CHECK(order[i] == i, "position %d: socket %d (order %d %d %d)", i, order[i], order[0],
              order[1], order[2]);
    for (int i = 0; i < N; i++) {
        ev_io_stop(loop, &w[i]);
        close(sv[i][0]);
        close(sv[i][1]);
    }
    ev_loop_destroy(loop);
}

int main(void)
{
    RUN(test_first_ready_first);
    return test_report("loop_order");
}
