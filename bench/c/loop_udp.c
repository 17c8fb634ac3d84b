/* Plain C baseline for bench/test_loop_udp.py: UDP ping-pong over loopback with epoll.
 *
 *   loop_udp PAIRS MESSAGES IDLE
 *
 * PAIRS pairs of connected UDP sockets on 127.0.0.1, IDLE more sockets registered but
 * silent; one datagram bounces inside each pair (every socket echoes what it reads).
 * Stops after MESSAGES datagrams were read. Prints "<cpu seconds> <messages>" for the
 * ping-pong only (setup excluded): one recv() and one send() per message, as a
 * straightforward C daemon would do it.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static int udp_socket(struct sockaddr_in *addr) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    socklen_t len = sizeof(*addr);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        getsockname(fd, (struct sockaddr *)addr, &len) < 0) {
        perror("socket");
        exit(1);
    }
    return fd;
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec * 1e-6;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s PAIRS MESSAGES IDLE\n", argv[0]);
        return 2;
    }
    int pairs = atoi(argv[1]), idle = atoi(argv[3]);
    long messages = atol(argv[2]), count = 0;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN}, events[1024];
    char buf[2048], msg[64] = "ping";
    for (int i = 0; i < idle; i++) {
        struct sockaddr_in a;
        ev.data.fd = udp_socket(&a);
        epoll_ctl(ep, EPOLL_CTL_ADD, ev.data.fd, &ev);
    }
    int *first = malloc(sizeof(int) * (size_t)pairs);
    for (int i = 0; i < pairs; i++) {
        struct sockaddr_in a, b;
        int fa = udp_socket(&a), fb = udp_socket(&b);
        if (connect(fa, (struct sockaddr *)&b, sizeof(b)) < 0 || connect(fb, (struct sockaddr *)&a, sizeof(a)) < 0) {
            perror("connect");
            return 1;
        }
        ev.data.fd = fa;
        epoll_ctl(ep, EPOLL_CTL_ADD, fa, &ev);
        ev.data.fd = fb;
        epoll_ctl(ep, EPOLL_CTL_ADD, fb, &ev);
        first[i] = fa;
    }
    double c0 = cpu_seconds();
    for (int i = 0; i < pairs; i++)
        send(first[i], msg, 32, 0);
    while (count < messages) {
        int n = epoll_wait(ep, events, 1024, -1);
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
            if (r > 0) {
                count++;
                send(fd, buf, (size_t)r, MSG_DONTWAIT);
            }
        }
    }
    printf("%.6f %ld\n", cpu_seconds() - c0, count);
    return 0;
}
