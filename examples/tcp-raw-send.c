/*
 * tcp-raw-send: a TCP segment whose headers are built ahead of time and whose payload is filled
 * in at the last moment, sent through a raw-frame path, then recorded with
 * exasock_tcp_send_advance; a normal send() follows and continues the stream after it.
 *
 *     exasock ./tcp-raw-send PEER_IP PORT [ring|afpacket]
 *
 * Connects to PEER_IP:PORT and sends RAW_PAYLOAD through the prebuilt path, then SENT_PAYLOAD
 * with send(); the peer must read exactly RAW_PAYLOAD then SENT_PAYLOAD. Before that a
 * MSG_EXA_WARM send of WARM_PAYLOAD runs the send path without sending anything: TCP_INFO's
 * counters must not move. The frame goes out through exasock's own ring
 * (exasock_tcp_send_frame, "ring", the default) or an AF_PACKET socket on the interface
 * exasock_tcp_get_device names ("afpacket"; also the fallback when the ring path is refused).
 * Without exasock (exasock_loaded() == 0) both payloads go through send() and the warm send
 * is skipped.
 *
 * Build: cc -I include -o tcp-raw-send examples/tcp-raw-send.c -lexasock_ext
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <linux/tcp.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <exasock/extensions.h>
#include <exasock/socket.h>

#define RAW_PAYLOAD "raw-sent payload, prebuilt headers"
#define SENT_PAYLOAD "then a normal send()"
#define WARM_PAYLOAD "WARM-ONLY bytes that must never reach the peer"

static void die(const char *what)
{
    fprintf(stderr, "tcp-raw-send: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* Sends a complete Ethernet frame on an AF_PACKET socket bound to the connection's interface. */
static int send_on_packet_socket(int fd, const unsigned char *frame, size_t len)
{
    char dev[IF_NAMESIZE];
    int port;
    if (exasock_tcp_get_device(fd, dev, sizeof dev, &port) == -1)
        die("exasock_tcp_get_device");
    int ps = socket(AF_PACKET, SOCK_RAW, 0);
    if (ps == -1)
        die("socket(AF_PACKET)");
    struct sockaddr_ll to = { .sll_family = AF_PACKET, .sll_ifindex = (int)if_nametoindex(dev),
                              .sll_halen = 6 };
    memcpy(to.sll_addr, frame, 6);
    ssize_t r = sendto(ps, frame, len, 0, (struct sockaddr *)&to, sizeof to);
    close(ps);
    printf("sent the frame on a packet socket on %s (port %d)\n", dev, port);
    return r == (ssize_t)len ? 0 : -1;
}

static void tcp_info_of(int fd, struct tcp_info *info)
{
    socklen_t len = sizeof *info;
    memset(info, 0, sizeof *info);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, info, &len) == -1)
        die("getsockopt(TCP_INFO)");
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s PEER_IP PORT [ring|afpacket]\n", argv[0]);
        return 2;
    }
    int afpacket = argc > 3 && strcmp(argv[3], "afpacket") == 0;
    struct sockaddr_in peer = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2])) };
    if (inet_pton(AF_INET, argv[1], &peer.sin_addr) != 1) {
        fprintf(stderr, "tcp-raw-send: bad address %s\n", argv[1]);
        return 2;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd == -1)
        die("socket");
    if (connect(fd, (struct sockaddr *)&peer, sizeof peer) == -1)
        die("connect");

    if (!exasock_loaded()) {
        printf("not under exasock: both payloads through send()\n");
        if (send(fd, RAW_PAYLOAD, strlen(RAW_PAYLOAD), 0) == -1)
            die("send");
    } else {
        /* A warm send: the send path runs, nothing leaves, nothing moves. */
        struct tcp_info before, after;
        tcp_info_of(fd, &before);
        ssize_t w = send(fd, WARM_PAYLOAD, strlen(WARM_PAYLOAD), MSG_EXA_WARM);
        tcp_info_of(fd, &after);
        printf("warm send returned %zd; TCP_INFO unchanged: %s\n", w,
               before.tcpi_bytes_sent == after.tcpi_bytes_sent &&
               before.tcpi_segs_out == after.tcpi_segs_out &&
               before.tcpi_unacked == after.tcpi_unacked &&
               before.tcpi_notsent_bytes == after.tcpi_notsent_bytes ? "yes" : "NO");

        /* Headers ahead of time: EAGAIN until the connection is ready (neighbour, handshake). */
        unsigned char frame[256];
        ssize_t hlen;
        for (int tries = 0; (hlen = exasock_tcp_build_header(fd, frame, sizeof frame, 0, 0)) == -1; tries++) {
            if (errno != EAGAIN || tries == 1000)
                die("exasock_tcp_build_header");
            sleep_ms(1);
        }
        /* The last moment: the payload, its length, the checksum. */
        size_t n = strlen(RAW_PAYLOAD);
        memcpy(frame + hlen, RAW_PAYLOAD, n);
        if (exasock_tcp_set_length(frame, (size_t)hlen, n) == -1)
            die("exasock_tcp_set_length");
        if (exasock_tcp_calc_checksum(frame, (size_t)hlen, frame + hlen, n) == -1)
            die("exasock_tcp_calc_checksum");
        size_t len = (size_t)hlen + n;
        if (!afpacket && exasock_tcp_send_frame(fd, frame, len) == (ssize_t)len) {
            printf("sent the frame through exasock's ring (%zu bytes, header %zd)\n", len, hlen);
        } else {
            if (!afpacket)
                printf("exasock_tcp_send_frame: %s; falling back to a packet socket\n", strerror(errno));
            if (send_on_packet_socket(fd, frame, len) == -1)
                die("sendto(AF_PACKET)");
        }
        if (exasock_tcp_send_advance(fd, frame + hlen, n) == -1)
            die("exasock_tcp_send_advance");
    }
    if (send(fd, SENT_PAYLOAD, strlen(SENT_PAYLOAD), 0) != (ssize_t)strlen(SENT_PAYLOAD))
        die("send");

    /* A clean close: our FIN, then the peer's once it has checked every byte. */
    if (shutdown(fd, SHUT_WR) == -1)
        die("shutdown");
    char buf[64];
    ssize_t r;
    while ((r = recv(fd, buf, sizeof buf, 0)) > 0)
        ;
    if (r == -1)
        die("recv");
    struct tcp_info end;
    tcp_info_of(fd, &end);
    printf("bytes acknowledged by the peer: %llu\n", (unsigned long long)end.tcpi_bytes_acked);
    close(fd);
    printf("done\n");
    return 0;
}
