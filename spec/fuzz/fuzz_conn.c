/*
 * fuzz_conn.c: end-to-end libFuzzer harness, as OSS-Fuzz's nginx harness is: a client's
 * bytes and a backend's reply go through the real gateway (every core/ file but main.c),
 * from accept(2) on a real listener through the conn state machine, routing, Lua hooks,
 * the balancer, the SCGI exchange and the response relay, to the bytes the client reads.
 * A small fixed config is loaded once (tcp listener on 127.0.0.1:0; routes to a backend on a
 * unix socket in a temp dir: plain, with Lua hooks, through a balancer, with X-Sendfile; the
 * status endpoint). The backend is played by this harness in the same process.
 * It does not exercise timeouts: every timeout is 30 s and the loop never waits for one.
 *
 * Input: CLIENT ["\n@@backend@@\n" REPLY]. REPLY may hold "\n@@next@@\n" marks: the n-th
 * backend connection sends the n-th reply (the last one again when there are fewer), so an
 * internal redirect or a failover can get another answer. Client and replies may hold
 * "\n@@pause@@\n" marks that cut them into segments. Step k writes client segment k and, on every
 * backend connection, its next reply segment (a connection accepted at step j sends segment 0 at
 * once, segment i at step j + i), then runs the loop until nothing is left to do. A backend
 * connection half-closes after its last segment (no REPLY: at once) and reads until the gateway
 * closes. Then the client half-closes, the backends are closed, the client resets the connection.
 * "@DIR@" in REPLY stands for the temp dir, which holds f.txt for X-Sendfile (/sf/ route).
 *
 * Properties: the loop settles (no busy loop on a descriptor nobody serves); what the client
 * reads starts "HTTP/1.1 DDD " with DDD in 100..599; what a backend reads starts as an SCGI
 * request ("<len>:CONTENT_LENGTH\0"); once client and backends are gone no connection is
 * left, every member's busy count is back at 0, and no socket (and no pipe beyond the
 * splice-pipe pool) is left open. Memory leaks are LeakSanitizer's (per input in libFuzzer,
 * at exit in the replay).
 *
 * Built two ways: by spec/fuzz/run.sh with -fsanitize=fuzzer (libFuzzer's main), and by the
 * Makefile with -DSG_FUZZ_REPLAY as spec/fuzz/fuzz_conn.bin, whose main() replays every
 * file of spec/fuzz/corpus/fuzz_conn once, each in a child process, for `make test`.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ev.h>

#include "balancer.h"
#include "config.h"
#include "log.h"
#include "lua_bridge.h"
#include "server.h"

#include "fuzz_common.h"

#define SEP_BACKEND "\n@@backend@@\n"
#define SEP_PAUSE "\n@@pause@@\n"
#define SEP_NEXT "\n@@next@@\n"
#define MAX_REPLIES 8
#define MAX_SEGS 64      /* per part; the rest of a part is its last segment */
#define MAX_BACKENDS 16  /* backend connections per input; more are closed at once */
#define SETTLE_MAX 20000 /* loop iterations one step may take before it counts as a spin */
#define POOL_PIPES 32    /* sg_server's splice-pipe pool (core/server.c) */

typedef struct seg {
    const uint8_t *p;
    size_t n;
} seg;

typedef struct part {
    seg s[MAX_SEGS];
    size_t n;
} part;

typedef struct backend_conn {
    int fd;
    int accepted_at;   /* step */
    const part *reply; /* what it sends */
    size_t seg, off;   /* next byte to send: segment, offset in it */
    bool wr_closed;
    char head[32]; /* the first bytes the gateway sent, for the SCGI check */
    size_t in_len;
} backend_conn;

static struct {
    bool ready;
    char dir[64], sock[2][128], lua_dir[PATH_MAX];
    struct ev_loop *loop;
    sg_server *server;
    sg_config *cfg; /* borrowed from the server */
    int listen_port;
    int backend_lfd[2];    /* be.sock, be2.sock: the same backend */
    unsigned pending;      /* watchers invoked during one ev_run */
    unsigned pending_idle; /* ... by an idle loop (the server's sweep check) */
    int base_sockets, base_pipes;
    bool trace; /* $SG_FUZZ_CONN_TRACE: print what the client read (to check seeds) */
} H;

static struct {
    part client, reply[MAX_REPLIES];
    size_t nreplies; /* 0: backends answer nothing */
    int step;
    int cfd;
    size_t cseg, coff; /* next client byte to send */
    bool c_wr_closed, c_eof;
    char head[16];
    size_t out_len;
    backend_conn be[MAX_BACKENDS];
    int nbe, naccepted;
    size_t reply_len;
} R;

/* ---- set-up, once per process ---- */

static void die(const char *what)
{
    fprintf(stderr, "fuzz_conn: %s: %s\n", what, strerror(errno));
    abort();
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0)
        die(path);
}

/* The temp dir of process `pid`: named after it, so that the replay can remove the dir of a
 * child that crashed (a crash in a libFuzzer session leaves its dir behind). */
static void dir_of(pid_t pid, char *out, size_t cap)
{
    snprintf(out, cap, "/tmp/sg-fuzz-conn.%ld", (long)pid);
}

static void remove_dir(const char *dir)
{
    static const char *const files[] = { "gw.lua", "f.txt", "be.sock", "be2.sock" };
    char p[256];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
}

static void cleanup(void)
{
    remove_dir(H.dir);
}

static void on_invoke(struct ev_loop *loop)
{
    H.pending += (unsigned)ev_pending_count(loop);
    ev_invoke_pending(loop);
}

/* The port of the server's TCP listener: the one listening AF_INET socket we have. */
static int find_listen_port(void)
{
    for (int fd = 3; fd < 1024; fd++) {
        int on = 0;
        socklen_t len = sizeof on;
        struct sockaddr_in a;
        socklen_t alen = sizeof a;
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == 0 && on &&
            getsockname(fd, (struct sockaddr *)&a, &alen) == 0 && a.sin_family == AF_INET)
            return ntohs(a.sin_port);
    }
    return -1;
}

static void count_fds(int *sockets, int *pipes)
{
    *sockets = *pipes = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        die("/proc/self/fd");
    int self = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        int fd = atoi(e->d_name);
        struct stat st;
        if (e->d_name[0] == '.' || fd == self || fstat(fd, &st) != 0)
            continue;
        *sockets += S_ISSOCK(st.st_mode);
        *pipes += S_ISFIFO(st.st_mode);
    }
    closedir(d);
}

static void init(void)
{
    signal(SIGPIPE, SIG_IGN); /* as main.c: writes to a closed peer */
    dir_of(getpid(), H.dir, sizeof H.dir);
    remove_dir(H.dir); /* left by a crashed process of the same pid */
    if (mkdir(H.dir, 0700) != 0)
        die(H.dir);
    atexit(cleanup);
    for (int i = 0; i < 2; i++) {
        snprintf(H.sock[i], sizeof H.sock[i], "%s/be%s.sock", H.dir, i ? "2" : "");
        H.backend_lfd[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        struct sockaddr_un un = { .sun_family = AF_UNIX };
        snprintf(un.sun_path, sizeof un.sun_path, "%s", H.sock[i]);
        if (H.backend_lfd[i] < 0 ||
            bind(H.backend_lfd[i], (struct sockaddr *)&un, sizeof un) != 0 ||
            listen(H.backend_lfd[i], 64) != 0)
            die("backend socket");
    }

    char path[256], cfg[4096];
    snprintf(path, sizeof path, "%s/f.txt", H.dir);
    write_file(path, "a file served with sendfile(2)\n");
    snprintf(
        cfg, sizeof cfg,
        "local be = 'scgi+unix:%s'\n"
        "return {\n"
        "  listen = '127.0.0.1:0', workers = 1, log_level = 'error', access_log = false,\n"
        "  timeouts = { client_header = 30, client_body = 30, keepalive = 30, connect = 30,\n"
        "               backend = 30, send = 30, shutdown = 1 },\n"
        "  limits = { header_bytes = 4096, headers = 32, body_bytes = 65536,\n"
        "             connections = 64 },\n"
        "  status = { path = '/status' },\n"
        "  balancers = { b = { members = { { url = be, retry = 0 },\n"
        "    { url = 'unix:%s|scgi://localhost/', retry = 0, route = 'two' } },\n"
        "    sticky = 'ROUTEID' } },\n"
        "  routes = {\n"
        "    { path = '/lua/', pass = be,\n"
        "      access = function(req) if req.query == 'deny' then return 403, 'no\\n' end end,\n"
        "      env = { X_HOOK = function(req) return req.headers['x-a'] end, STATIC = '1' } },\n"
        "    { path = '/bal/', pass = 'balancer://b/' },\n"
        "    { path = '/sf/', pass = be, sendfile = true, sendfile_root = '%s' },\n"
        "    { path = '/', pass = be },\n"
        "  },\n"
        "}\n",
        H.sock[0], H.sock[1], H.dir);
    snprintf(path, sizeof path, "%s/gw.lua", H.dir);
    write_file(path, cfg);

    const char *env = getenv("SCGI_LUA_PATH");
    if (!realpath(env && *env ? env : "lua", H.lua_dir))
        die("the Lua module directory (run from the repository root or set SCGI_LUA_PATH)");
    sg_buf report;
    sg_buf_init(&report);
    sg_lb_registry reg = { 0 };
    sg_config *c = sg_config_load(path, H.lua_dir, 1, &reg, &report);
    if (!c) {
        fprintf(stderr, "fuzz_conn: the harness config does not load:\n%.*s", (int)report.len,
                sg_buf_head(&report));
        abort();
    }
    sg_buf_free(&report);
    H.cfg = c;
    H.loop = ev_default_loop(EVFLAG_AUTO);
    H.server = sg_server_new(H.loop, c, H.lua_dir, &reg);
    char err[SG_ERR_LEN];
    if (sg_server_listen(H.server, err) != SG_OK) {
        fprintf(stderr, "fuzz_conn: %s\n", err);
        abort();
    }
    H.listen_port = find_listen_port();
    if (H.listen_port < 0)
        die("no listener");
    ev_set_invoke_pending_cb(H.loop, on_invoke);
    H.pending_idle = UINT_MAX;
    for (int i = 0; i < 8; i++) {
        H.pending = 0;
        ev_run(H.loop, EVRUN_NOWAIT);
        if (H.pending < H.pending_idle)
            H.pending_idle = H.pending;
    }
    count_fds(&H.base_sockets, &H.base_pipes);
    H.trace = getenv("SG_FUZZ_CONN_TRACE") != NULL;
    H.ready = true;
}

/* ---- one input ---- */

static void split(part *out, const uint8_t *p, size_t n)
{
    out->n = 0;
    const size_t sl = sizeof SEP_PAUSE - 1;
    for (;;) {
        const uint8_t *m = out->n + 1 < MAX_SEGS ? memmem(p, n, SEP_PAUSE, sl) : NULL;
        if (!m) {
            out->s[out->n++] = (seg){ p, n };
            return;
        }
        out->s[out->n++] = (seg){ p, (size_t)(m - p) };
        n -= (size_t)(m - p) + sl;
        p = m + sl;
    }
}

/* Sends what `n` segments of `pt` allow from (*si, *off) on. Returns bytes sent, -1 on error. */
static ssize_t send_segments(int fd, const part *pt, size_t nseg, size_t *si, size_t *off)
{
    ssize_t total = 0;
    while (*si < nseg && *si < pt->n) {
        const seg *s = &pt->s[*si];
        if (*off < s->n) {
            ssize_t w = send(fd, s->p + *off, s->n - *off, MSG_NOSIGNAL);
            if (w < 0)
                return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? total : -1;
            *off += (size_t)w;
            total += w;
            if (*off < s->n)
                return total;
        }
        (*si)++;
        *off = 0;
    }
    return total;
}

/* Reads what is there into the first `cap` bytes of `head` (counting all in *len); returns
 * the bytes read, and sets *eof at EOF or on an error. */
static ssize_t drain(int fd, bool *eof, char *head, size_t cap, size_t *len, bool client)
{
    static char buf[65536];
    ssize_t total = 0;
    for (;;) {
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        if (r > 0) {
            size_t room = *len < cap ? cap - *len : 0;
            if (room)
                memcpy(head + *len, buf, (size_t)r < room ? (size_t)r : room);
            *len += (size_t)r;
            if (client && H.trace)
                fwrite(buf, 1, (size_t)r, stderr);
            total += r;
            continue;
        }
        if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            *eof = true;
        return total;
    }
}

/* What a backend connection got starts as an SCGI request must: "<len>:CONTENT_LENGTH\0<n>\0
 * SCGI\0001\0" (the SCGI spec: CONTENT_LENGTH first, then SCGI=1). */
static void check_scgi_head(const backend_conn *b)
{
    static const char want[] = "CONTENT_LENGTH\0";
    size_t n = b->in_len < sizeof b->head ? b->in_len : sizeof b->head;
    size_t i = 0;
    while (i < n && b->head[i] >= '0' && b->head[i] <= '9')
        i++;
    bool ok = i > 0 && b->head[0] != '0';
    if (ok && i < n)
        ok = b->head[i] == ':';
    for (size_t k = 0; ok && k < sizeof want - 1 && i + 1 + k < n; k++)
        ok = b->head[i + 1 + k] == want[k];
    FUZZ_CHECK(ok, "scgi-head", "a backend got \"%.*s\"...", (int)n, b->head);
}

/* A copy of the reply with every "@DIR@" replaced by the temp dir; its length in R.reply_len. */
static uint8_t *expand_dir(const uint8_t *p, size_t n)
{
    size_t dl = strlen(H.dir), count = 0;
    for (const uint8_t *m = p; (m = memmem(m, n - (size_t)(m - p), "@DIR@", 5)); m += 5)
        count++;
    uint8_t *out = malloc(n + count * dl + 1), *o = out;
    if (!out)
        abort();
    const uint8_t *end = p + n;
    while (p < end) {
        const uint8_t *m = memmem(p, (size_t)(end - p), "@DIR@", 5);
        size_t k = m ? (size_t)(m - p) : (size_t)(end - p);
        memcpy(o, p, k);
        o += k;
        p += k;
        if (m) {
            memcpy(o, H.dir, dl);
            o += dl;
            p += 5;
        }
    }
    R.reply_len = (size_t)(o - out);
    return out;
}

static void backend_close(int i)
{
    if (R.be[i].in_len)
        check_scgi_head(&R.be[i]);
    close(R.be[i].fd);
    R.be[i] = R.be[--R.nbe];
}

/* The harness's side of every socket: accept, send what the step allows, read, close. */
static bool pump(void)
{
    bool progress = false;
    for (int l = 0; l < 2;) {
        int fd = accept4(H.backend_lfd[l], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            l++;
            continue;
        }
        progress = true;
        R.naccepted++;
        if (R.nbe == MAX_BACKENDS) {
            close(fd);
            continue;
        }
        size_t k = (size_t)R.naccepted - 1;
        if (k >= R.nreplies)
            k = R.nreplies - 1; /* (size_t)-1 when there are none: no reply */
        R.be[R.nbe++] = (backend_conn){ .fd = fd,
                                        .accepted_at = R.step,
                                        .reply = R.nreplies ? &R.reply[k] : NULL };
    }
    for (int i = 0; i < R.nbe; i++) {
        backend_conn *b = &R.be[i];
        bool eof = false;
        if (drain(b->fd, &eof, b->head, sizeof b->head, &b->in_len, false) > 0)
            progress = true;
        size_t allowed = (size_t)(R.step - b->accepted_at) + 1;
        ssize_t w = b->reply ? send_segments(b->fd, b->reply, allowed, &b->seg, &b->off) : 0;
        if (w > 0)
            progress = true;
        if (w >= 0 && !b->wr_closed && (!b->reply || b->seg >= b->reply->n)) {
            shutdown(b->fd, SHUT_WR);
            b->wr_closed = true;
            progress = true;
        }
        if (eof || w < 0) { /* the gateway is done with it */
            backend_close(i--);
            progress = true;
        }
    }
    if (R.cfd >= 0) {
        if (!R.c_wr_closed) {
            ssize_t w = send_segments(R.cfd, &R.client, (size_t)R.step + 1, &R.cseg, &R.coff);
            if (w > 0)
                progress = true;
        }
        if (!R.c_eof && drain(R.cfd, &R.c_eof, R.head, sizeof R.head, &R.out_len, true) > 0)
            progress = true;
    }
    return progress;
}

/* Runs the loop and the harness until neither has anything left to do. */
static void settle(void)
{
    int quiet = 0;
    for (int i = 0; i < SETTLE_MAX; i++) {
        bool progress = pump();
        H.pending = 0;
        ev_run(H.loop, EVRUN_NOWAIT);
        if (!progress && H.pending <= H.pending_idle) {
            if (++quiet == 3)
                return;
        } else {
            quiet = 0;
        }
    }
    FUZZ_CHECK(false, "busy-loop", "still busy after %d loop iterations (step %d)", SETTLE_MAX,
               R.step);
}

static void reset_member(sg_member_state *st)
{
    if (!st)
        return;
    st->error_until = 0;
    st->lbstatus = 0;
    st->check_failed = false;
}

static void check_members(void)
{
    for (size_t i = 0; i < H.cfg->nroutes; i++)
        if (H.cfg->routes[i].st)
            FUZZ_CHECK(H.cfg->routes[i].st->busy == 0, "busy-leak", "route %zu busy %u", i,
                       H.cfg->routes[i].st->busy);
    for (size_t i = 0; i < H.cfg->nbalancers; i++)
        for (size_t j = 0; j < H.cfg->balancers[i].lb.nmembers; j++) {
            const sg_member_state *st = H.cfg->balancers[i].lb.members[j].st;
            FUZZ_CHECK(st->busy == 0, "busy-leak", "member %zu busy %u", j, st->busy);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!H.ready)
        init();
    memset(&R, 0, sizeof R);
    R.cfd = -1;
    const uint8_t *sep = memmem(data, size, SEP_BACKEND, sizeof SEP_BACKEND - 1);
    size_t clen = sep ? (size_t)(sep - data) : size;
    split(&R.client, data, clen);
    uint8_t *reply = NULL; /* owned: REPLY with @DIR@ replaced */
    if (sep) {
        size_t off = clen + sizeof SEP_BACKEND - 1;
        reply = expand_dir(data + off, size - off);
        const uint8_t *p = reply, *end = reply + R.reply_len;
        const size_t nl = sizeof SEP_NEXT - 1;
        for (;;) {
            const uint8_t *m = R.nreplies + 1 < MAX_REPLIES
                                   ? memmem(p, (size_t)(end - p), SEP_NEXT, nl)
                                   : NULL;
            split(&R.reply[R.nreplies++], p, m ? (size_t)(m - p) : (size_t)(end - p));
            if (!m)
                break;
            p = m + nl;
        }
    }
    /* the same start for every input: no member left out of service by the previous one */
    for (size_t i = 0; i < H.cfg->nroutes; i++)
        reset_member(H.cfg->routes[i].st);
    for (size_t i = 0; i < H.cfg->nbalancers; i++)
        for (size_t j = 0; j < H.cfg->balancers[i].lb.nmembers; j++)
            reset_member(H.cfg->balancers[i].lb.members[j].st);

    R.cfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (R.cfd < 0)
        die("client socket");
    struct linger lg = { 1, 0 }; /* close with a reset: no TIME_WAIT port per input */
    setsockopt(R.cfd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    struct sockaddr_in a = { .sin_family = AF_INET,
                             .sin_port = htons((uint16_t)H.listen_port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (connect(R.cfd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS)
        die("connect");

    size_t most = R.client.n;
    for (size_t i = 0; i < R.nreplies; i++)
        most = R.reply[i].n > most ? R.reply[i].n : most;
    int steps = (int)most;
    for (R.step = 0; R.step < steps + MAX_SEGS; R.step++) {
        settle();
        bool client_done = R.cseg >= R.client.n;
        bool backends_done = true;
        for (int i = 0; i < R.nbe; i++)
            backends_done = backends_done && (!R.be[i].reply || R.be[i].seg >= R.be[i].reply->n);
        if (R.step >= steps && client_done && backends_done)
            break;
    }
    shutdown(R.cfd, SHUT_WR);
    R.c_wr_closed = true;
    settle();
    while (R.nbe)
        backend_close(0);
    settle();
    close(R.cfd);
    R.cfd = -1;
    settle();
    free(reply);

    if (H.trace)
        fprintf(stderr, "\n[fuzz_conn: the client read %zu bytes; %d backend connections]\n",
                R.out_len, R.naccepted);
    if (R.out_len) {
        size_t n = R.out_len < sizeof R.head ? R.out_len : sizeof R.head;
        bool ok = n >= 13 && memcmp(R.head, "HTTP/1.1 ", 9) == 0 && R.head[12] == ' ';
        int status = ok ? (R.head[9] - '0') * 100 + (R.head[10] - '0') * 10 + (R.head[11] - '0')
                        : 0;
        FUZZ_CHECK(ok && status >= 100 && status <= 599, "response-start",
                   "the client read \"%.*s\"... (%zu bytes)", (int)n, R.head, R.out_len);
    }
    FUZZ_CHECK(sg_server_nconns(H.server) == 0, "conn-leak",
               "%zu connections left after client and backends went away",
               sg_server_nconns(H.server));
    check_members();
    int sockets, pipes;
    count_fds(&sockets, &pipes);
    FUZZ_CHECK(sockets == H.base_sockets, "fd-leak", "%d sockets open, %d before", sockets,
               H.base_sockets);
    FUZZ_CHECK(pipes <= H.base_pipes + 2 * POOL_PIPES, "fd-leak", "%d pipes open, %d before", pipes,
               H.base_pipes);
    return 0;
}

#ifdef SG_FUZZ_REPLAY
/* ---- make test: every corpus file once, each in its own process ---- */

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int replay_one(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    static uint8_t buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    char log[] = "/tmp/sg-fuzz-conn-log.XXXXXX";
    int lfd = mkstemp(log);
    if (lfd < 0)
        return -1;
    unlink(log);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(lfd, 2); /* the gateway's log lines, shown only when the input fails */
        LLVMFuzzerTestOneInput(buf, n);
        exit(0);
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid)
        st = -1;
    if (pid > 0) {
        char dir[64];
        dir_of(pid, dir, sizeof dir);
        remove_dir(dir);
    }
    bool ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    if (!ok) {
        printf("FAIL %s (%s %d); its output:\n", path, WIFSIGNALED(st) ? "signal" : "exit",
               WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
        char chunk[4096];
        ssize_t r;
        lseek(lfd, 0, SEEK_SET);
        while ((r = read(lfd, chunk, sizeof chunk)) > 0)
            fwrite(chunk, 1, (size_t)r, stdout);
    }
    close(lfd);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "spec/fuzz/corpus/fuzz_conn";
    DIR *d = opendir(dir);
    if (!d) {
        printf("fuzz_conn: no corpus at %s\n0 passed, 1 failed\n", dir);
        return 1;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        names = realloc(names, (n + 1) * sizeof *names);
        if (!names || asprintf(&names[n], "%s/%s", dir, e->d_name) < 0)
            abort();
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof *names, by_name);
    int passed = 0, failed = 0;
    for (size_t i = 0; i < n; i++) {
        fflush(stdout);
        if (replay_one(names[i]) == 0)
            passed++;
        else
            failed++;
        free(names[i]);
    }
    free(names);
    printf("fuzz_conn: replayed %s\n%d passed, %d failed\n", dir, passed, failed);
    return failed ? 1 : 0;
}
#endif
