/* What the C suite's source files share: includes, the printing macros, the peer's address and
 * small helpers (defined in suite.c). */
#ifndef EXASOCK_SUITE_H
#define EXASOCK_SUITE_H
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <linux/errqueue.h>
#include <linux/sockios.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern const char *current;
extern struct sockaddr_in peer, closed_port, connector;
extern int base_port;

void show(const char *step, long r, int e);

/* Runs an expression with errno cleared and prints its result (or -1 and the errno's name). */
#define SHOW(step, expr)                    \
    do {                                    \
        errno = 0;                          \
        long r_ = (long)(expr);             \
        show(step, r_, errno);              \
    } while (0)

#define SAY(...)                            \
    do {                                    \
        printf("%s ", current);             \
        printf(__VA_ARGS__);                \
        printf("\n");                       \
        fflush(stdout);                     \
    } while (0)

double now(void);
void msleep(int ms);
struct sockaddr_in any_port(int port);
int udp_bound(int offset, int type_flags);
void set_rcvtimeo(int s, int ms);
int tcp_socket(int flags);
void ask_peer_to_connect(int ctl, int port);
void peer_answer(int ctl, const char *step);
int revents_of(int fd, short events, int ms);

/* Cases in tcp_api.c. */
void case_tcp_dual(void);
void case_tcp_transfer(void);
void case_tcp_options(void);
void case_tcp_accept_threads(void);
void case_tcp_flags(void);
void case_tcp_reuseport(void);

/* Cases in udp_api.c. */
void case_ancillary(void);
void case_broadcast(void);
void case_mcast_all(void);
void case_mcast_loop(void);
void case_mcast_tx(void);
void case_mcast_deliver(void);

#endif
