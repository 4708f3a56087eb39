/*
 * listen.c: listening sockets. IPv6 sockets are v6-only so "[::]:80" and "0.0.0.0:80" can
 * both be configured; a stale unix socket file from a previous run is removed before bind.
 */
#include "listen.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

int sg_listen_open(const sg_listen *ls, char *text, size_t cap, char err[SG_ERR_LEN])
{
    int fd = socket(ls->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, SG_ERR_LEN, "socket for %s: %s", ls->text, strerror(errno));
        return -1;
    }
    int one = 1;
    if (!ls->is_unix) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (ls->addr.ss_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    } else {
        struct stat st;
        if (stat(ls->unix_path, &st) == 0 && S_ISSOCK(st.st_mode))
            unlink(ls->unix_path);
    }
    if (bind(fd, (const struct sockaddr *)&ls->addr, ls->addrlen) != 0 || listen(fd, 511) != 0) {
        snprintf(err, SG_ERR_LEN, "cannot listen on %s: %s", ls->text, strerror(errno));
        close(fd);
        return -1;
    }
    snprintf(text, cap, "%s", ls->text);
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    if (!ls->is_unix && getsockname(fd, (struct sockaddr *)&bound, &blen) == 0) {
        int port = bound.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&bound)->sin_port)
                                              : ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
        char *colon = strrchr(text, ':');
        if (colon)
            snprintf(colon + 1, cap - (size_t)(colon + 1 - text), "%d", port);
    }
    return fd;
}

void sg_listen_close(int fd, const char *unix_path)
{
    if (fd >= 0)
        close(fd);
    if (unix_path)
        unlink(unix_path);
}
