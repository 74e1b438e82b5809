/* The floor for echo benchmarks: a single-threaded, level-triggered epoll echo server with one
 * read and one write per readiness event and nothing else. Listens on 127.0.0.1:PORT (0 picks a
 * free port) and reports the bound port on stderr. */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum { kReadSize = 256 * 1024, kMaxEvents = 256 };

struct conn {
    int fd;
    char* pending; /* bytes the socket did not take yet; reading pauses until they are written */
    size_t pending_len;
    size_t pending_off;
};

static char g_buffer[kReadSize];

static void drop(int epfd, struct conn* c) {
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->pending);
    free(c);
}

static void watch(int epfd, struct conn* c, unsigned events) {
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Writes what is pending; returns -1 when the connection must go. */
static int flush_pending(int epfd, struct conn* c) {
    while (c->pending_off < c->pending_len) {
        ssize_t n = write(c->fd, c->pending + c->pending_off, c->pending_len - c->pending_off);
        if (n < 0) {
            if (errno == EAGAIN) return 0;
            if (errno == EINTR) continue;
            return -1;
        }
        c->pending_off += (size_t)n;
    }
    c->pending_len = c->pending_off = 0;
    watch(epfd, c, EPOLLIN);
    return 0;
}

static int echo_once(int epfd, struct conn* c) {
    ssize_t got = read(c->fd, g_buffer, sizeof g_buffer);
    if (got == 0) return -1;
    if (got < 0) return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
    ssize_t sent = write(c->fd, g_buffer, (size_t)got);
    if (sent < 0) {
        if (errno != EAGAIN && errno != EINTR) return -1;
        sent = 0;
    }
    if (sent == got) return 0;
    size_t rest = (size_t)(got - sent);
    char* copy = realloc(c->pending, rest);
    if (copy == NULL) return -1;
    memcpy(copy, g_buffer + sent, rest);
    c->pending = copy;
    c->pending_len = rest;
    c->pending_off = 0;
    watch(epfd, c, EPOLLOUT);
    return 0;
}

int main(int argc, char** argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: epoll_echo PORT\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr*)&addr, sizeof addr) != 0 || listen(lfd, 4096) != 0) {
        perror("epoll_echo: bind/listen");
        return 1;
    }
    socklen_t len = sizeof addr;
    getsockname(lfd, (struct sockaddr*)&addr, &len);
    fprintf(stderr, "epoll_echo listening on 127.0.0.1:%u\n", ntohs(addr.sin_port));

    int epfd = epoll_create1(0);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev);
    struct epoll_event events[kMaxEvents];
    for (;;) {
        int n = epoll_wait(epfd, events, kMaxEvents, -1);
        if (n < 0 && errno != EINTR) {
            perror("epoll_echo: epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; ++i) {
            struct conn* c = events[i].data.ptr;
            if (c == NULL) {
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct conn* nc = calloc(1, sizeof *nc);
                    if (nc == NULL) {
                        close(fd);
                        continue;
                    }
                    nc->fd = fd;
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = nc};
                    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
                }
                continue;
            }
            int rc = (events[i].events & EPOLLOUT) ? flush_pending(epfd, c) : echo_once(epfd, c);
            /* Errors and hang-ups surface as a failed read or write. */
            if (rc != 0) drop(epfd, c);
        }
    }
}
