/*
 * <exasock/extensions.h>: the exasock extension API.
 *
 * Link with -lexasock_ext. The stub library answers "not loaded" (exasock_loaded() == 0,
 * exasock_version_code() == 0, exasock_version_text() == NULL) and fails everything that needs
 * exasock with -1 and errno EOPNOTSUPP (the two header helpers, exasock_tcp_set_length and
 * exasock_tcp_calc_checksum, are pure and work); under exasock the preload library's
 * definitions take precedence.
 */
#ifndef EXASOCK_EXTENSIONS_H
#define EXASOCK_EXTENSIONS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define EXASOCK_VERSION(maj, min, rev) (((maj) << 16) + ((min) << 8) + (rev))

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when the program runs under exasock, 0 otherwise. */
int exasock_loaded(void);

/* EXASOCK_VERSION(major, minor, revision) of the running exasock; 0 without it. */
uint32_t exasock_version_code(void);

/* The running exasock's version as text; NULL without it. */
const char *exasock_version_text(void);

/*
 * The interface an accelerated TCP socket (connection or listener) uses, as a NUL-terminated
 * name in dev (truncated to dev_len bytes), and 0 in *port_num (port_num may be NULL).
 * 0, or -1 with errno EOPNOTSUPP for any other descriptor.
 */
int exasock_tcp_get_device(int fd, char *dev, size_t dev_len, int *port_num);

/*
 * Prebuilt segments. A connection's next segment can be prepared ahead of time and sent
 * through a raw-frame path at the last moment:
 *
 *     ssize_t hlen = exasock_tcp_build_header(fd, frame, sizeof frame, 0, 0);
 *     memcpy(frame + hlen, payload, n);
 *     exasock_tcp_set_length(frame, hlen, n);
 *     exasock_tcp_calc_checksum(frame, hlen, frame + hlen, n);
 *     exasock_tcp_send_frame(fd, frame, hlen + n);   (or a packet socket: see below)
 *     exasock_tcp_send_advance(fd, frame + hlen, n);
 *
 * A header is valid until the connection sends anything else (a send(), our FIN): build it
 * again after such a call. The header's TCP options (timestamps, when the connection uses
 * them) are part of it; the helpers find the headers from the front of the block, so it must
 * be passed whole, exactly as built.
 */

/*
 * Writes the Ethernet, IPv4 and TCP headers of the connection's next segment (current
 * sequence and acknowledgement numbers, window, and the connection's TCP options: ACK|PSH,
 * zero length, valid checksums) at the start of buf; offset and flags must be 0 (EINVAL
 * otherwise). Returns the header length, or -1 with errno:
 *   EOPNOTSUPP  not an accelerated TCP socket;
 *   ENOTCONN    not connected (a listener, a socket never connected);
 *   EAGAIN      not ready yet: the handshake is not done, the neighbour's MAC is unknown (a
 *               resolution is started), or bytes written earlier are not all sent yet;
 *   EPIPE       the sending side is closed (shutdown, FIN, reset);
 *   ENOBUFS     len is shorter than the header (nothing is written);
 *   EFAULT      buf is NULL.
 */
ssize_t exasock_tcp_build_header(int fd, void *buf, size_t len, size_t offset, int flags);

/*
 * Sets the IPv4 total length in a header block from exasock_tcp_build_header (hdr_len bytes,
 * exactly as built) for data_len bytes of payload, updating the IPv4 checksum incrementally
 * (RFC 1624). A pure function: it works without exasock too. 0, or -1 with errno EINVAL
 * (hdr is no such block) or EFAULT (hdr is NULL).
 */
int exasock_tcp_set_length(void *hdr, size_t hdr_len, size_t data_len);

/*
 * Computes the TCP checksum of such a header block and the data_len bytes of payload at data
 * (which need not follow the header in memory) into the header. A pure function: it works
 * without exasock too. 0, or -1 with errno EINVAL or EFAULT.
 */
int exasock_tcp_calc_checksum(void *hdr, size_t hdr_len, const void *data, size_t data_len);

/*
 * Transmits frame (len bytes: a complete Ethernet frame, checksums filled in) through this
 * process's own datapath ring, the ring exasock sends the socket's segments on, with no
 * system call. It must be the connection's next segment: the addresses and ports of fd's
 * connection, the sequence number exasock_tcp_build_header gave, ACK set and no SYN, FIN or
 * RST. The frame is only transmitted: call exasock_tcp_send_advance next, or the stack does
 * not know the bytes were sent. Returns len, or -1 with errno:
 *   EOPNOTSUPP  not an accelerated TCP socket (and always in the stub library: send the
 *               frame on an AF_PACKET socket bound to exasock_tcp_get_device's interface);
 *   ENOTCONN, EPIPE   as exasock_tcp_build_header;
 *   EINVAL      not an IPv4 TCP frame of this connection, or lengths that do not agree;
 *   EPROTO      not the next segment in sequence (the header is stale: build it again);
 *   EMSGSIZE    larger than the interface's MTU;
 *   EAGAIN      the transmit ring stayed full;
 *   EFAULT      frame is NULL.
 */
ssize_t exasock_tcp_send_frame(int fd, const void *frame, size_t len);

/*
 * Records that len bytes (a copy of them at buf) were sent outside exasock's send path at
 * the connection's next sequence number, as by exasock_tcp_send_frame or a packet socket:
 * they join the send buffer as if sent (retransmitted from it if lost; the peer's window is
 * not checked, as in the original), and later sends continue after them. 0, or -1 with
 * errno EOPNOTSUPP, ENOTCONN, EPIPE (as exasock_tcp_build_header), EPROTO (bytes written
 * earlier are not all sent: the frame cannot have been the next segment) or EFAULT.
 *
 * If the peer's acknowledgement of such bytes arrives before this call, exasock ignores it
 * (it acknowledges data exasock did not send) and the bytes are acknowledged again after a
 * retransmission: call this right after sending the frame.
 */
int exasock_tcp_send_advance(int fd, const void *buf, size_t len);

/*
 * Latency measurement hooks. The original records them only in builds made with
 * MEASURE_LATENCY=1; exasock has no such build: both do nothing and set errno to EOPNOTSUPP,
 * with or without exasock.
 */
void print_exasock_latencies(void);
void clear_latencies(void);

#ifdef __cplusplus
}
#endif

#endif /* EXASOCK_EXTENSIONS_H */
