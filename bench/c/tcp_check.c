/* Plain C baseline for bench/test_loop_connect.py: Keepalived-style TCP connect checks.
 *
 *   tcp_check PORTS SECONDS
 *
 * PORTS listening sockets on 127.0.0.1 (never accepted: the kernel completes the
 * handshake into the backlog); every port gets one check per second, the checks spread
 * evenly over the second: socket(non-blocking) + connect + epoll for EPOLLOUT (1 s
 * timeout) + getsockopt(SO_ERROR) + close. Runs SECONDS seconds of checks, waits for the
 * last results, prints "<cpu seconds> <checks> <failures>" (setup excluded).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec * 1e-6;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s PORTS SECONDS\n", argv[0]);
        return 2;
    }
    int nports = atoi(argv[1]), seconds = atoi(argv[2]);
    struct sockaddr_in *addrs = calloc((size_t)nports, sizeof(*addrs));
    for (int i = 0; i < nports; i++) {
        int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        socklen_t len = sizeof(addrs[i]);
        addrs[i].sin_family = AF_INET;
        addrs[i].sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (l < 0 || bind(l, (struct sockaddr *)&addrs[i], sizeof(addrs[i])) < 0 || listen(l, 4096) < 0 ||
            getsockname(l, (struct sockaddr *)&addrs[i], &len) < 0) {
            perror("listen");
            return 1;
        }
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    /* deadline of the pending check on each fd (0: none) */
    int maxfd = 65536;
    double *deadline = calloc((size_t)maxfd, sizeof(double));
    struct epoll_event ev, events[1024];
    long total = (long)nports * seconds, started = 0, done = 0, failed = 0, pending = 0;
    double t0 = now() + 0.01, next_scan = t0 + 0.1, c0 = cpu_seconds();
    while (done < total) {
        double t = now();
        while (started < total && t0 + started * (1.0 / nports) <= t) {
            int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            struct sockaddr_in *a = &addrs[started % nports];
            started++;
            if (fd < 0 || fd >= maxfd) {
                perror("socket");
                return 1;
            }
            if (connect(fd, (struct sockaddr *)a, sizeof(*a)) == 0 || errno != EINPROGRESS) {
                failed += errno != 0 && errno != EINPROGRESS;
                close(fd);
                done++;
                continue;
            }
            ev.events = EPOLLOUT;
            ev.data.fd = fd;
            epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
            deadline[fd] = t + 1.0;
            pending++;
        }
        if (t >= next_scan) { /* timeouts (none expected on loopback) */
            for (int fd = 0; fd < maxfd && pending; fd++)
                if (deadline[fd] != 0 && deadline[fd] <= t) {
                    deadline[fd] = 0;
                    close(fd);
                    pending--;
                    done++;
                    failed++;
                }
            next_scan = t + 0.1;
        }
        int wait = started < total ? (int)((t0 + started * (1.0 / nports) - t) * 1000) + 1 : 100;
        int n = epoll_wait(ep, events, 1024, wait < 0 ? 0 : wait);
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd, err = 0;
            socklen_t len = sizeof(err);
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
            failed += err != 0;
            deadline[fd] = 0;
            close(fd);
            pending--;
            done++;
        }
    }
    printf("%.6f %ld %ld\n", cpu_seconds() - c0, done, failed);
    return 0;
}
