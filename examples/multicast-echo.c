/*
 * multicast-echo: joins GROUP on the interface that has address IFADDR, receives COUNT
 * datagrams sent to GROUP:PORT and echoes each to its sender (unicast), prefixed with "echo ".
 *
 *     exasock ./multicast-echo GROUP PORT IFADDR COUNT
 *
 * Under exasock a membership on an accelerated interface is served by the stack (the kernel
 * socket still joins, so the kernel sends the IGMP report). Prints "ready" once joined.
 *
 * Build: cc -I include -o multicast-echo examples/multicast-echo.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <exasock/extensions.h>

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s GROUP PORT IFADDR COUNT\n", argv[0]);
        return 2;
    }
    struct ip_mreq mreq;
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2])) };
    if (inet_pton(AF_INET, argv[1], &mreq.imr_multiaddr) != 1 ||
        inet_pton(AF_INET, argv[3], &mreq.imr_interface) != 1) {
        fprintf(stderr, "multicast-echo: bad address\n");
        return 2;
    }
    addr.sin_addr.s_addr = htonl(INADDR_ANY); /* replies leave from the interface's address */
    int count = atoi(argv[4]);
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    int one = 1;
    if (s == -1 || setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == -1 ||
        bind(s, (struct sockaddr *)&addr, sizeof addr) == -1 ||
        setsockopt(s, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreq, sizeof mreq) == -1) {
        perror("multicast-echo");
        return 1;
    }
    printf("ready (exasock %s)\n", exasock_loaded() ? "loaded" : "not loaded");
    fflush(stdout);
    for (int i = 0; i < count; i++) {
        char data[1500], reply[1600];
        struct sockaddr_in from;
        socklen_t len = sizeof from;
        ssize_t n = recvfrom(s, data, sizeof data, 0, (struct sockaddr *)&from, &len);
        if (n == -1) {
            perror("recvfrom");
            return 1;
        }
        int r = snprintf(reply, sizeof reply, "echo %.*s", (int)n, data);
        sendto(s, reply, (size_t)r, 0, (struct sockaddr *)&from, len);
        printf("echoed %zd bytes from %s\n", n, inet_ntoa(from.sin_addr));
        fflush(stdout);
    }
    close(s);
    return 0;
}
