/*
 * udp-timestamp: receive timestamps with SO_TIMESTAMPING. Binds UDP PORT on ADDR, asks for
 * software receive timestamps, and for each of COUNT datagrams prints its length, whether a
 * timestamp came with it and how old the timestamp was when recvmsg returned (microseconds,
 * CLOCK_REALTIME), then echoes the datagram to its sender.
 *
 *     exasock ./udp-timestamp ADDR PORT COUNT
 *
 * Under exasock the timestamp is taken when the stack receives the frame from the ring; on the
 * kernel, when the kernel's stack receives it. Prints "ready" once bound.
 *
 * Build: cc -I include -o udp-timestamp examples/udp-timestamp.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <linux/net_tstamp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <exasock/extensions.h>

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s ADDR PORT COUNT\n", argv[0]);
        return 2;
    }
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2])) };
    if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) {
        fprintf(stderr, "udp-timestamp: bad address %s\n", argv[1]);
        return 2;
    }
    int count = atoi(argv[3]);
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    int flags = SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE;
    if (s == -1 || setsockopt(s, SOL_SOCKET, SO_TIMESTAMPING, &flags, sizeof flags) == -1 ||
        bind(s, (struct sockaddr *)&addr, sizeof addr) == -1) {
        perror("udp-timestamp");
        return 1;
    }
    printf("ready (exasock %s)\n", exasock_loaded() ? "loaded" : "not loaded");
    fflush(stdout);
    for (int i = 0; i < count; i++) {
        char data[2048], control[256];
        struct sockaddr_in from;
        struct iovec iov = { data, sizeof data };
        struct msghdr m = { .msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &iov,
                            .msg_iovlen = 1, .msg_control = control,
                            .msg_controllen = sizeof control };
        ssize_t n = recvmsg(s, &m, 0);
        if (n == -1) {
            perror("recvmsg");
            return 1;
        }
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        const struct timespec *stamp = NULL;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c != NULL; c = CMSG_NXTHDR(&m, c))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPING)
                stamp = (const struct timespec *)CMSG_DATA(c); /* [0]: software */
        if (stamp != NULL && (stamp[0].tv_sec != 0 || stamp[0].tv_nsec != 0)) {
            long long age = (now.tv_sec - stamp[0].tv_sec) * 1000000LL + (now.tv_nsec - stamp[0].tv_nsec) / 1000;
            printf("datagram %d: %zd bytes, timestamped, %lld us before recvmsg returned\n", i, n, age);
        } else {
            printf("datagram %d: %zd bytes, no timestamp\n", i, n);
        }
        fflush(stdout);
        sendto(s, data, (size_t)n, 0, (struct sockaddr *)&from, sizeof from);
    }
    close(s);
    return 0;
}
