/*
 * <exasock/extensions.h>: the exasock extension API.
 *
 * Link with -lexasock_ext. The stub library answers "not loaded" (exasock_loaded() == 0,
 * exasock_version_code() == 0, exasock_version_text() == NULL) and fails everything else with
 * -1 and errno EOPNOTSUPP; under exasock the preload library's definitions take precedence.
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

/* The device name and port an accelerated TCP socket uses. 0, or -1 with errno. */
int exasock_tcp_get_device(int fd, char *dev, size_t dev_len, int *port_num);

/*
 * Writes the Ethernet, IP and TCP headers of the connection's next segment (current sequence,
 * acknowledgement and window, zero length) into buf; offset and flags must be 0. Returns the
 * header length, or -1 with errno (ENOTCONN, EAGAIN while the neighbour or the connection is
 * not ready, EPIPE once closed).
 */
ssize_t exasock_tcp_build_header(int fd, void *buf, size_t len, size_t offset, int flags);

/* Sets the IP total length in such a header for data_len bytes of payload (checksum updated). */
int exasock_tcp_set_length(void *hdr, size_t hdr_len, size_t data_len);

/* Computes the TCP checksum of such a header and its payload into the header. */
int exasock_tcp_calc_checksum(void *hdr, size_t hdr_len, const void *data, size_t data_len);

/* Records that len bytes were sent outside exasock: they join the retransmit buffer. */
int exasock_tcp_send_advance(int fd, const void *buf, size_t len);

/* Latency measurement hooks (only in measuring builds; otherwise errno EOPNOTSUPP). */
void print_exasock_latencies(void);
void clear_latencies(void);

#ifdef __cplusplus
}
#endif

#endif /* EXASOCK_EXTENSIONS_H */
