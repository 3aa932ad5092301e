/* The preload library's C test suite: each case prints what a program would see (results and
 * errno names) on stdout, one line per step, so that a run on the kernel and a run under
 * exasock can be compared line by line (tests/c_suite.rs). Counts that differ from run to run
 * go to stderr.
 *
 * usage: suite CASE PEER_IP ECHO_PORT BASE_PORT [SECONDS]
 *   CASE: errors signals threads dup epoll epoll-ready fork exec storm tcp tcp-epoll tcp-fork, or one of
 *   the exec children.
 *   A kernel UDP echo server listens on PEER_IP:ECHO_PORT; nothing listens on PEER_IP:9.
 *   Each case binds its own ports from BASE_PORT up.
 */
#include "suite.h"

const char *current = "";
struct sockaddr_in peer, closed_port;
int base_port;
static const char *self_path = "/proc/self/exe";

void show(const char *step, long r, int e) {
    if (r < 0)
        printf("%s %s: -1 %s\n", current, step, strerrorname_np(e) ? strerrorname_np(e) : "?");
    else
        printf("%s %s: %ld\n", current, step, r);
    fflush(stdout);
}


double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

void msleep(int ms) { usleep(ms * 1000); }

struct sockaddr_in any_port(int port) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = INADDR_ANY};
    return a;
}

/* A UDP socket bound to BASE_PORT + offset. */
int udp_bound(int offset, int type_flags) {
    int s = socket(AF_INET, SOCK_DGRAM | type_flags, 0);
    struct sockaddr_in a = any_port(base_port + offset);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0) {
        printf("%s setup: cannot bind port %d: %s\n", current, base_port + offset, strerror(errno));
        exit(2);
    }
    return s;
}

void set_rcvtimeo(int s, int ms) {
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

static long echo(int s, const char *msg, char *back, size_t cap) {
    if (sendto(s, msg, strlen(msg), 0, (struct sockaddr *)&peer, sizeof peer) < 0) return -1;
    long n = recv(s, back, cap - 1, 0);
    if (n >= 0) back[n] = 0;
    return n;
}

/* ---------------------------------------------------------------------------------------- */

static atomic_int sigpipes;
static void on_sigpipe(int sig) { (void)sig; sigpipes++; }

static void case_errors(void) {
    current = "errors";
    char buf[128];
    int s = udp_bound(0, 0);
    struct sockaddr_in a = any_port(base_port);
    SHOW("bind-again", bind(s, (struct sockaddr *)&a, sizeof a));
    SHOW("recv-bad-fd", recv(-1, buf, sizeof buf, MSG_DONTWAIT));
    SHOW("recv-closed-fd", recv(1000, buf, sizeof buf, MSG_DONTWAIT));
    SHOW("recv-empty-dontwait", recv(s, buf, sizeof buf, MSG_DONTWAIT));
    SHOW("sendto-short-addrlen", sendto(s, "x", 1, 0, (struct sockaddr *)&peer, 3));
    struct sockaddr_in6 six = {.sin6_family = AF_INET6};
    SHOW("sendto-inet6-addr", sendto(s, "x", 1, 0, (struct sockaddr *)&six, sizeof six));
    SHOW("sendto-null-buffer", sendto(s, NULL, 10, 0, (struct sockaddr *)&peer, sizeof peer));
    SHOW("send-unconnected", send(s, "x", 1, 0));
    static char big[65508];
    SHOW("sendto-too-big", sendto(s, big, sizeof big, 0, (struct sockaddr *)&peer, sizeof peer));
    SHOW("send-oob", sendto(s, "x", 1, MSG_OOB, (struct sockaddr *)&peer, sizeof peer));
    SHOW("recv-errqueue-empty", recv(s, buf, sizeof buf, MSG_ERRQUEUE));
    SHOW("recv-oob", recv(s, buf, sizeof buf, MSG_OOB | MSG_DONTWAIT));
    int avail = -1;
    SHOW("fionread-empty", ioctl(s, FIONREAD, &avail));
    SAY("fionread-value: %d", avail);
    SHOW("shutdown-bad-how", shutdown(s, 7));
    SHOW("getsockopt-bad-level", getsockopt(s, 12345, 1, buf, &(socklen_t){4}));
    /* A timeout: EAGAIN after about the time set. */
    set_rcvtimeo(s, 200);
    double t0 = now();
    SHOW("recv-rcvtimeo", recv(s, buf, sizeof buf, 0));
    double waited = now() - t0;
    SAY("rcvtimeo-waited-enough: %d", waited >= 0.19 && waited < 2.0);
    set_rcvtimeo(s, 0);
    /* Data, then the NULL buffer error, then a real receive. */
    SHOW("sendto", sendto(s, "hello", 5, 0, (struct sockaddr *)&peer, sizeof peer));
    struct pollfd p = {.fd = s, .events = POLLIN};
    SHOW("poll-data", poll(&p, 1, 3000));
    SHOW("recv-null-buffer", recv(s, NULL, 10, MSG_PEEK));
    SHOW("recv", recv(s, buf, sizeof buf, 0));
    /* A closed port answers with ICMP: the connected socket gets ECONNREFUSED, once. */
    int c = udp_bound(1, 0);
    SHOW("connect-closed-port", connect(c, (struct sockaddr *)&closed_port, sizeof closed_port));
    SHOW("send-to-closed-port", send(c, "x", 1, 0));
    msleep(200);
    int err = -1;
    SHOW("so-error", getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &(socklen_t){sizeof err}));
    SAY("so-error-value: %s", strerrorname_np(err) ? strerrorname_np(err) : "0");
    SHOW("send-to-closed-port-2", send(c, "x", 1, 0));
    msleep(200);
    SHOW("recv-after-icmp", recv(c, buf, sizeof buf, MSG_DONTWAIT));
    SHOW("recv-after-icmp-again", recv(c, buf, sizeof buf, MSG_DONTWAIT));
    /* EPIPE after SHUT_WR: SIGPIPE unless MSG_NOSIGNAL. */
    signal(SIGPIPE, on_sigpipe);
    SHOW("connect-peer", connect(c, (struct sockaddr *)&peer, sizeof peer));
    SHOW("shutdown-wr", shutdown(c, SHUT_WR));
    SHOW("send-after-shut-wr", send(c, "x", 1, 0));
    SAY("sigpipes: %d", sigpipes);
    SHOW("send-after-shut-wr-nosignal", send(c, "x", 1, MSG_NOSIGNAL));
    SAY("sigpipes: %d", sigpipes);
    SHOW("write-after-shut-wr", write(c, "x", 1));
    SAY("sigpipes: %d", sigpipes);
    SHOW("close", close(c));
    SHOW("send-after-close", send(c, "x", 1, 0));
    SHOW("close-again", close(c));
    close(s);
}

/* Every intercepted call on an accelerated socket, with arguments the kernel refuses or
 * nothing to receive: the errnos must be the kernel's. */
static void case_calls(void) {
    current = "calls";
    char buf[64];
    int s = udp_bound(5, 0);
    struct iovec iov = {.iov_base = buf, .iov_len = sizeof buf};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    struct sockaddr_in6 six = {.sin6_family = AF_INET6};
    /* Receives with nothing queued. */
    SHOW("recvmsg-dontwait", recvmsg(s, &m, MSG_DONTWAIT));
    struct mmsghdr mm = {.msg_hdr = m};
    SHOW("recvmmsg-dontwait", recvmmsg(s, &mm, 1, MSG_DONTWAIT, NULL));
    SHOW("recvmmsg-zero", recvmmsg(s, &mm, 0, MSG_DONTWAIT, NULL));
    SHOW("recvfrom-dontwait", recvfrom(s, buf, sizeof buf, MSG_DONTWAIT, NULL, NULL));
    int fl = fcntl(s, F_GETFL);
    SHOW("set-nonblock", fcntl(s, F_SETFL, fl | O_NONBLOCK));
    SHOW("read-nonblock", read(s, buf, sizeof buf));
    SHOW("readv-nonblock", readv(s, &iov, 1));
    SHOW("recv-nonblock", recv(s, buf, sizeof buf, 0));
    SHOW("clear-nonblock", fcntl(s, F_SETFL, fl));
    set_rcvtimeo(s, 100);
    SHOW("recvmsg-timeout", recvmsg(s, &m, 0));
    SHOW("read-timeout", read(s, buf, sizeof buf));
    SHOW("readv-timeout", readv(s, &iov, 1));
    set_rcvtimeo(s, 0);
    /* Bad arguments. */
    volatile int negative = -1; /* (the compiler refuses a literal) */
    SHOW("readv-negative-count", readv(s, &iov, negative));
    SHOW("writev-negative-count", writev(s, &iov, negative));
    static struct iovec many[1025];
    SHOW("writev-too-many", writev(s, many, 1025));
    m.msg_name = &six;
    m.msg_namelen = sizeof six;
    SHOW("sendmsg-inet6-name", sendmsg(s, &m, 0));
    m.msg_name = &peer;
    m.msg_namelen = 3;
    SHOW("sendmsg-short-name", sendmsg(s, &m, 0));
    m.msg_name = NULL;
    m.msg_namelen = 0;
    SHOW("sendmsg-no-destination", sendmsg(s, &m, 0));
    SHOW("write-unconnected", write(s, "x", 1));
    SHOW("writev-unconnected", writev(s, &iov, 1));
    SHOW("sendmmsg-zero", sendmmsg(s, &mm, 0, 0));
    SHOW("sendmmsg-unconnected", sendmmsg(s, &mm, 1, 0));
    SHOW("setsockopt-short", setsockopt(s, SOL_SOCKET, SO_RCVBUF, buf, 1));
    SHOW("setsockopt-unknown", setsockopt(s, SOL_SOCKET, 12345, buf, 4));
    SHOW("getsockopt-null-len", getsockopt(s, SOL_SOCKET, SO_RCVBUF, buf, NULL));
    socklen_t zero = 0;
    SHOW("getsockopt-zero-len", getsockopt(s, SOL_SOCKET, SO_RCVBUF, buf, &zero));
    SAY("zero-len-after: %u", zero);
    SHOW("ioctl-unknown", ioctl(s, 0x1234, buf));
    struct sockaddr_in a = any_port(base_port + 6);
    SHOW("bind-bound", bind(s, (struct sockaddr *)&a, sizeof a));
    SHOW("connect-short", connect(s, (struct sockaddr *)&peer, 3));
    SHOW("connect-inet6", connect(s, (struct sockaddr *)&six, sizeof six));
    SHOW("getpeername-unconnected", getpeername(s, (struct sockaddr *)&a, &(socklen_t){sizeof a}));
    struct pollfd p = {.fd = s, .events = POLLIN};
    SHOW("poll-empty", poll(&p, 1, 0));
    SHOW("poll-negative-timeout-empty-set", poll(NULL, 0, 10));
    SHOW("select-negative-nfds", select(-1, NULL, NULL, NULL, NULL));
    struct timespec ts = {.tv_nsec = 2000000000};
    SHOW("ppoll-bad-timeout", ppoll(&p, 1, &ts, NULL));
    fd_set r;
    FD_ZERO(&r);
    FD_SET(s, &r);
    struct timeval tv = {.tv_usec = 1000};
    SHOW("select-empty", select(s + 1, &r, NULL, NULL, &tv));
    SHOW("pselect-bad-timeout", pselect(s + 1, &r, NULL, NULL, &ts, NULL));
    /* Data: each call receives one datagram. */
    const char *calls[] = {"recvmsg", "recvmmsg", "read", "readv", "recvfrom"};
    for (int i = 0; i < 5; i++) {
        sendto(s, calls[i], strlen(calls[i]), 0, (struct sockaddr *)&peer, sizeof peer);
        SHOW("poll-data", poll(&p, 1, 3000));
        long n = -1;
        memset(buf, 0, sizeof buf);
        m.msg_name = NULL;
        m.msg_namelen = 0;
        switch (i) {
        case 0: n = recvmsg(s, &m, 0); break;
        case 1: mm.msg_hdr = m; n = recvmmsg(s, &mm, 1, 0, NULL); break;
        case 2: n = read(s, buf, sizeof buf); break;
        case 3: n = readv(s, &iov, 1); break;
        case 4: n = recvfrom(s, buf, sizeof buf, 0, NULL, NULL); break;
        }
        SAY("%s: %ld %s", calls[i], n, buf);
    }
    /* sendmsg with several iovecs goes the way of every send: lengths that wrap, that are
     * negative as ssize_t or that exceed a datagram are refused, not copied. */
    static char part[40000];
    struct iovec two[2] = {{.iov_base = part, .iov_len = 10}, {.iov_base = part, .iov_len = 10}};
    struct msghdr g = {.msg_name = &peer, .msg_namelen = sizeof peer, .msg_iov = two, .msg_iovlen = 2};
    two[0].iov_len = SIZE_MAX;
    two[1].iov_len = 2;
    SHOW("sendmsg-iov-wraps", sendmsg(s, &g, 0));
    two[0].iov_len = (size_t)1 << 63;
    SHOW("sendmsg-iov-negative", sendmsg(s, &g, 0));
    two[0].iov_len = sizeof part;
    two[1].iov_len = sizeof part;
    SHOW("sendmsg-iov-too-big", sendmsg(s, &g, 0));
    two[0].iov_base = (void *)0xffffffffffff0000ull;
    two[0].iov_len = 10;
    SHOW("sendmsg-iov-kernel-address", sendmsg(s, &g, 0));
    two[0].iov_base = part;
    two[1].iov_len = 10;
    g.msg_name = &six;
    g.msg_namelen = sizeof six;
    SHOW("sendmsg-iov-inet6-name", sendmsg(s, &g, 0));
    g.msg_name = &peer;
    g.msg_namelen = sizeof peer;
    SHOW("sendmsg-iov-oob", sendmsg(s, &g, MSG_OOB));
    SHOW("sendto-kernel-address", sendto(s, (void *)0xffffffffffff0000ull, 10, 0, (struct sockaddr *)&peer, sizeof peer));
    SHOW("recv-kernel-address", recv(s, (void *)0xffffffffffff0000ull, 10, MSG_DONTWAIT));
    SHOW("sendmsg-iov", sendmsg(s, &g, 0));
    SHOW("poll-echo", poll(&p, 1, 3000));
    SHOW("recv-echo", recv(s, buf, sizeof buf, 0));
    SHOW("connect-peer", connect(s, (struct sockaddr *)&peer, sizeof peer));
    SHOW("shutdown-wr", shutdown(s, SHUT_WR));
    g.msg_name = NULL;
    g.msg_namelen = 0;
    SHOW("sendmsg-iov-after-shut-wr", sendmsg(s, &g, MSG_NOSIGNAL));
    int nb = fcntl(s, F_GETFL);
    fcntl(s, F_SETFL, nb | O_NONBLOCK);
    SHOW("sendmsg-iov-after-shut-wr-nonblock", sendmsg(s, &g, MSG_NOSIGNAL));
    close(s);
}

/* ---------------------------------------------------------------------------------------- */

static atomic_int handled;
static void on_signal(int sig) { (void)sig; handled++; }

static void handle(int sig, int restart) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = restart ? SA_RESTART : 0;
    sigaction(sig, &sa, NULL);
}

struct later {
    int fd;
    int ms;
    pthread_t target;
    int sig;
};

/* After a delay: a signal to a thread, or a datagram (via the echo server) to a socket. */
static void *signal_later(void *arg) {
    struct later *l = arg;
    msleep(l->ms);
    pthread_kill(l->target, l->sig);
    return NULL;
}

static void *echo_later(void *arg) {
    struct later *l = arg;
    msleep(l->ms);
    sendto(l->fd, "late", 4, 0, (struct sockaddr *)&peer, sizeof peer);
    return NULL;
}

static void in_background(void *(*f)(void *), struct later *l) {
    pthread_t t;
    pthread_create(&t, NULL, f, l);
    pthread_detach(t);
}

static void *blocked_recv(void *arg) {
    int fd = *(int *)arg;
    char buf[16];
    errno = 0;
    long n = recv(fd, buf, sizeof buf, 0);
    int e = errno;
    char line[64];
    snprintf(line, sizeof line, "other-thread-recv");
    show(line, n, e);
    return NULL;
}

static void case_signals(void) {
    current = "signals";
    char buf[64];
    int s = udp_bound(10, 0);
    pthread_t me = pthread_self();
    /* SA_RESTART: the blocked recv carries on and gets the datagram. */
    handle(SIGUSR1, 1);
    struct later sig = {.ms = 100, .target = me, .sig = SIGUSR1};
    struct later data = {.fd = s, .ms = 400};
    in_background(signal_later, &sig);
    in_background(echo_later, &data);
    handled = 0;
    SHOW("recv-sa-restart", recv(s, buf, sizeof buf, 0));
    SAY("handled: %d", handled);
    /* No SA_RESTART: EINTR. */
    handle(SIGUSR1, 0);
    in_background(signal_later, &sig);
    SHOW("recv-no-restart", recv(s, buf, sizeof buf, 0));
    /* SA_RESTART but SO_RCVTIMEO set: EINTR all the same (signal(7)). */
    handle(SIGUSR1, 1);
    set_rcvtimeo(s, 3000);
    in_background(signal_later, &sig);
    SHOW("recv-rcvtimeo-sa-restart", recv(s, buf, sizeof buf, 0));
    set_rcvtimeo(s, 0);
    /* The multiplexers never restart. */
    struct pollfd p = {.fd = s, .events = POLLIN};
    in_background(signal_later, &sig);
    SHOW("poll-sa-restart", poll(&p, 1, 3000));
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 1};
    epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
    in_background(signal_later, &sig);
    SHOW("epoll-wait-sa-restart", epoll_wait(ep, &ev, 1, 3000));
    fd_set r;
    FD_ZERO(&r);
    FD_SET(s, &r);
    struct timeval tv = {.tv_sec = 3};
    in_background(signal_later, &sig);
    SHOW("select-sa-restart", select(s + 1, &r, NULL, NULL, &tv));
    /* A signal to another thread interrupts that thread's wait, not this one's. */
    handle(SIGUSR2, 0);
    int other = udp_bound(11, 0);
    pthread_t t;
    pthread_create(&t, NULL, blocked_recv, &other);
    msleep(100);
    struct later to_other = {.ms = 100, .target = t, .sig = SIGUSR2};
    struct later data2 = {.fd = s, .ms = 500};
    in_background(signal_later, &to_other);
    in_background(echo_later, &data2);
    SHOW("this-thread-recv", recv(s, buf, sizeof buf, 0));
    pthread_join(t, NULL);
    /* A blocked waiter and a close() from another thread: the waiter returns when its
     * timeout ends, as on Linux (close does not wake it). */
    int victim = udp_bound(12, 0);
    set_rcvtimeo(victim, 500);
    pthread_create(&t, NULL, blocked_recv, &victim);
    msleep(100);
    SHOW("close-while-waiting", close(victim));
    pthread_join(t, NULL);
    /* ...and a shutdown() wakes it at once with 0. */
    victim = udp_bound(12, 0);
    SHOW("connect-peer", connect(victim, (struct sockaddr *)&peer, sizeof peer));
    pthread_create(&t, NULL, blocked_recv, &victim);
    msleep(100);
    /* Printed after the waiter's own line: which thread prints first is the scheduler's. */
    errno = 0;
    int shut = shutdown(victim, SHUT_RD), shut_errno = errno;
    pthread_join(t, NULL);
    show("shutdown-while-waiting", shut, shut_errno);
    close(victim);
    close(ep);
    close(other);
    close(s);
}

/* ---------------------------------------------------------------------------------------- */

#define THREADS 8
#define WINDOW 4
#define MAX_SEQ (1 << 20)

static int thread_fds[THREADS];
static atomic_int stop_sending;
static atomic_uint_least8_t received[THREADS][MAX_SEQ];
static atomic_long received_by[THREADS];
static atomic_long bad;

static void *thread_worker(void *arg) {
    int me = (int)(intptr_t)arg;
    int shared_fd = thread_fds[me];
    long sent = 0;
    char buf[64];
    while (!stop_sending && sent < MAX_SEQ) {
        if (sent - received_by[me] < WINDOW) {
            int n = snprintf(buf, sizeof buf, "%d:%ld", me, sent);
            if (sendto(shared_fd, buf, n, 0, (struct sockaddr *)&peer, sizeof peer) == n) sent++;
            else bad++;
        }
        long r = recv(shared_fd, buf, sizeof buf - 1, 0);
        if (r > 0) {
            buf[r] = 0;
            int t;
            long seq;
            if (sscanf(buf, "%d:%ld", &t, &seq) == 2 && t >= 0 && t < THREADS && seq >= 0 && seq < MAX_SEQ) {
                received[t][seq]++;
                received_by[t]++;
            } else {
                bad++;
            }
        }
    }
    return (void *)sent;
}

/* THREADS threads send and receive for SECONDS on `sockets` sockets (threads i, i + sockets...
 * share one): every datagram sent comes back exactly once (the echo server is on a lossless
 * veth and each thread keeps at most WINDOW in flight, so no queue overflows). */
static void case_threads(int seconds, int sockets) {
    current = sockets == 1 ? "threads" : "threads-split";
    int fds[THREADS];
    for (int i = 0; i < sockets; i++) {
        fds[i] = udp_bound(20 + i, 0);
        set_rcvtimeo(fds[i], 50);
    }
    for (int i = 0; i < THREADS; i++) thread_fds[i] = fds[i % sockets];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, thread_worker, (void *)(intptr_t)i);
    msleep(seconds * 1000);
    stop_sending = 1;
    long sent[THREADS], total = 0;
    for (int i = 0; i < THREADS; i++) {
        void *r;
        pthread_join(t[i], &r);
        sent[i] = (long)r;
        total += sent[i];
    }
    /* Whatever is still in flight arrives now. */
    char buf[64];
    for (int i = 0; i < sockets;) {
        long r = recv(fds[i], buf, sizeof buf - 1, 0);
        if (r <= 0) {
            i++;
            continue;
        }
        buf[r] = 0;
        int th;
        long seq;
        if (sscanf(buf, "%d:%ld", &th, &seq) == 2 && th >= 0 && th < THREADS && seq >= 0 && seq < MAX_SEQ) {
            received[th][seq]++;
            received_by[th]++;
        }
    }
    long missing = 0, duplicated = 0, phantom = 0;
    for (int i = 0; i < THREADS; i++)
        for (long q = 0; q < MAX_SEQ; q++) {
            if (q < sent[i] && received[i][q] == 0) missing++;
            if (received[i][q] > 1) duplicated++;
            if (q >= sent[i] && received[i][q] > 0) phantom++;
        }
    fprintf(stderr, "%s: %d threads on %d socket(s), %ld datagrams each way in %d s\n", current, THREADS, sockets,
            total, seconds);
    SAY("missing=%ld duplicated=%ld phantom=%ld bad=%ld enough=%d", missing, duplicated, phantom, (long)bad,
        total >= 1000);
    for (int i = 0; i < sockets; i++) close(fds[i]);
}

/* ---------------------------------------------------------------------------------------- */

static void case_dup(void) {
    current = "dup";
    char buf[64];
    int s = udp_bound(30, 0);
    set_rcvtimeo(s, 2000);
    int d = dup(s);
    SHOW("dup-echo-send-on-dup", sendto(d, "one", 3, 0, (struct sockaddr *)&peer, sizeof peer));
    SHOW("recv-on-original", recv(s, buf, sizeof buf, 0));
    SHOW("close-original", close(s));
    SHOW("echo-on-dup", echo(d, "two", buf, sizeof buf));
    int hi = fcntl(d, F_DUPFD_CLOEXEC, 200);
    SHOW("f-dupfd-cloexec-at-least-200", hi >= 200);
    SHOW("f-getfd", fcntl(hi, F_GETFD));
    SHOW("echo-on-f-dupfd", echo(hi, "three", buf, sizeof buf));
    int other = udp_bound(31, 0);
    SHOW("dup2-over-other", dup2(d, other) == other);
    SHOW("echo-on-dup2", echo(other, "four", buf, sizeof buf));
    struct sockaddr_in a;
    socklen_t alen = sizeof a;
    getsockname(other, (struct sockaddr *)&a, &alen);
    SAY("dup2-port-offset: %d", ntohs(a.sin_port) - base_port);
    /* Port 31 was freed by dup2: binding it again works. */
    int again = udp_bound(31, 0);
    SHOW("echo-on-rebound", echo(again, "five", buf, sizeof buf));
    int d3 = dup3(again, 150, O_CLOEXEC);
    SHOW("dup3", d3);
    SHOW("dup3-cloexec", fcntl(d3, F_GETFD));
    SHOW("dup3-same-fd", dup3(d3, d3, 0));
    SHOW("dup2-same-fd", dup2(d3, d3));
    close(d);
    close(hi);
    close(other);
    SHOW("echo-after-closing-dups", echo(again, "six", buf, sizeof buf));
    close(again);
    close(d3);
}

/* ---------------------------------------------------------------------------------------- */

static int wait_events(int ep, int timeout, uint32_t *events, uint64_t *data) {
    struct epoll_event ev[8];
    int n = epoll_wait(ep, ev, 8, timeout);
    if (n > 0) {
        *events = ev[0].events;
        *data = ev[0].data.u64;
    }
    return n;
}

static void case_epoll(void) {
    current = "epoll";
    char buf[64];
    uint32_t events = 0;
    uint64_t data = 0;
    /* Added before it turns accelerated (bind): it is served by us from then on, once. */
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 7};
    SHOW("add-before-bind", epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev));
    struct sockaddr_in a = any_port(base_port + 40);
    SHOW("bind", bind(s, (struct sockaddr *)&a, sizeof a));
    SHOW("wait-empty", epoll_wait(ep, &ev, 1, 100));
    sendto(s, "x", 1, 0, (struct sockaddr *)&peer, sizeof peer);
    SHOW("wait-data", wait_events(ep, 3000, &events, &data));
    SAY("events=%#x data=%lu", events, (unsigned long)data);
    /* One-shot: reported once, silent until re-armed by MOD. */
    ev.events = EPOLLIN | EPOLLONESHOT;
    SHOW("mod-oneshot", epoll_ctl(ep, EPOLL_CTL_MOD, s, &ev));
    SHOW("oneshot-first", epoll_wait(ep, &ev, 1, 100));
    SHOW("oneshot-again", epoll_wait(ep, &ev, 1, 100));
    SHOW("rearm", epoll_ctl(ep, EPOLL_CTL_MOD, s, &ev));
    SHOW("oneshot-rearmed", epoll_wait(ep, &ev, 1, 100));
    SHOW("drain", recv(s, buf, sizeof buf, 0));
    /* ctl errors. */
    SHOW("add-twice", epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev));
    SHOW("del", epoll_ctl(ep, EPOLL_CTL_DEL, s, NULL));
    SHOW("del-again", epoll_ctl(ep, EPOLL_CTL_DEL, s, NULL));
    SHOW("mod-absent", epoll_ctl(ep, EPOLL_CTL_MOD, s, &ev));
    SHOW("bad-op", epoll_ctl(ep, 99, s, &ev));
    SHOW("bad-epfd", epoll_ctl(1000, EPOLL_CTL_ADD, s, &ev));
    SHOW("not-an-epfd", epoll_ctl(s, EPOLL_CTL_ADD, s, &ev));
    SHOW("add-null-event", epoll_ctl(ep, EPOLL_CTL_ADD, s, NULL));
    SHOW("add-self", epoll_ctl(ep, EPOLL_CTL_ADD, ep, &ev));
    /* EPOLLEXCLUSIVE: accepted on ADD, refused on MOD and with ONESHOT. */
    ev.events = EPOLLIN | EPOLLEXCLUSIVE;
    SHOW("add-exclusive", epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev));
    SHOW("mod-exclusive", epoll_ctl(ep, EPOLL_CTL_MOD, s, &ev));
    ev.events = EPOLLIN;
    SHOW("mod-from-exclusive", epoll_ctl(ep, EPOLL_CTL_MOD, s, &ev));
    SHOW("del-exclusive", epoll_ctl(ep, EPOLL_CTL_DEL, s, NULL));
    ev.events = EPOLLIN | EPOLLEXCLUSIVE | EPOLLONESHOT;
    SHOW("add-exclusive-oneshot", epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev));
    /* One fd in two sets: both report it. */
    int ep2 = epoll_create1(0);
    ev.events = EPOLLIN;
    ev.data.u64 = 1;
    SHOW("add-set-1", epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev));
    ev.data.u64 = 2;
    SHOW("add-set-2", epoll_ctl(ep2, EPOLL_CTL_ADD, s, &ev));
    sendto(s, "y", 1, 0, (struct sockaddr *)&peer, sizeof peer);
    SHOW("set-1", wait_events(ep, 3000, &events, &data));
    SAY("data=%lu", (unsigned long)data);
    SHOW("set-2", wait_events(ep2, 3000, &events, &data));
    SAY("data=%lu", (unsigned long)data);
    /* Nested: the outer set reports the inner one when the socket in it is readable. */
    int outer = epoll_create1(0);
    ev.events = EPOLLIN;
    ev.data.u64 = 99;
    SHOW("nest", epoll_ctl(outer, EPOLL_CTL_ADD, ep2, &ev));
    SHOW("outer", wait_events(outer, 3000, &events, &data));
    SAY("events=%#x data=%lu", events, (unsigned long)data);
    /* poll and select see the set holding the readable socket as readable. */
    struct pollfd pe = {.fd = ep2, .events = POLLIN};
    SHOW("poll-on-epoll-fd", poll(&pe, 1, 3000));
    SAY("revents=%#x", pe.revents);
    fd_set rs;
    FD_ZERO(&rs);
    FD_SET(ep2, &rs);
    struct timeval stv = {.tv_sec = 3};
    SHOW("select-on-epoll-fd", select(ep2 + 1, &rs, NULL, NULL, &stv));
    ev.data.u64 = 5;
    SHOW("nest-loop", epoll_ctl(ep2, EPOLL_CTL_ADD, outer, &ev));
    SHOW("drain", recv(s, buf, sizeof buf, 0));
    SHOW("outer-after-drain", epoll_wait(outer, &ev, 1, 100));
    SHOW("poll-on-epoll-fd-after-drain", poll(&pe, 1, 100));
    /* epoll_pwait2's timespec. */
    struct timespec ts = {.tv_nsec = 50 * 1000 * 1000};
    SHOW("pwait2-empty", epoll_pwait2(ep, &ev, 1, &ts, NULL));
    sendto(s, "z", 1, 0, (struct sockaddr *)&peer, sizeof peer);
    ts.tv_sec = 3;
    SHOW("pwait2-data", epoll_pwait2(ep, &ev, 1, &ts, NULL));
    ts.tv_nsec = -1;
    SHOW("pwait2-bad-timeout", epoll_pwait2(ep, &ev, 1, &ts, NULL));
    SHOW("drain", recv(s, buf, sizeof buf, 0));
    /* Shutdown: RDHUP, then HUP. */
    SHOW("connect", connect(s, (struct sockaddr *)&peer, sizeof peer));
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
    SHOW("mod-rdhup", epoll_ctl(ep, EPOLL_CTL_MOD, s, &ev));
    SHOW("writable", wait_events(ep, 100, &events, &data));
    SAY("events=%#x", events);
    SHOW("shutdown-rd", shutdown(s, SHUT_RD));
    SHOW("after-shut-rd", wait_events(ep, 100, &events, &data));
    SAY("events=%#x", events);
    SHOW("shutdown-wr", shutdown(s, SHUT_WR));
    SHOW("after-shut-rdwr", wait_events(ep, 100, &events, &data));
    SAY("events=%#x", events);
    /* An ICMP error: EPOLLERR (asked for or not). */
    int c = udp_bound(41, 0);
    connect(c, (struct sockaddr *)&closed_port, sizeof closed_port);
    ev.events = EPOLLIN;
    ev.data.u64 = 41;
    int ep4 = epoll_create1(0);
    SHOW("add-erring", epoll_ctl(ep4, EPOLL_CTL_ADD, c, &ev));
    send(c, "x", 1, 0);
    msleep(200);
    SHOW("err", wait_events(ep4, 3000, &events, &data));
    SAY("events=%#x data=%lu", events, (unsigned long)data);
    /* Edge-triggered output: once. */
    ev.events = EPOLLOUT | EPOLLET;
    ev.data.u64 = 3;
    int w = udp_bound(42, 0);
    int ep3 = epoll_create1(0);
    SHOW("add-et-out", epoll_ctl(ep3, EPOLL_CTL_ADD, w, &ev));
    SHOW("et-out-first", epoll_wait(ep3, &ev, 1, 100));
    SHOW("et-out-again", epoll_wait(ep3, &ev, 1, 100));
    close(c);
    close(w);
    close(s);
    close(ep);
    close(ep2);
    close(ep3);
    close(ep4);
    close(outer);
}


/* Collects the data words of the events `ep` reports within `ms` until `want` distinct ones
 * came (events arrive as the echoes do); returns how many distinct ones. */
static int collect(int ep, int want, int ms, uint64_t *seen) {
    int got = 0;
    double end = now() + ms / 1000.0;
    while (got < want && now() < end) {
        struct epoll_event ev[16];
        int n = epoll_wait(ep, ev, 16, 50);
        for (int i = 0; i < n; i++) {
            int dup = 0;
            for (int j = 0; j < got; j++) dup |= seen[j] == ev[i].data.u64;
            if (!dup && got < want) seen[got++] = ev[i].data.u64;
        }
    }
    return got;
}

static int has(const uint64_t *list, int n, uint64_t x) {
    for (int i = 0; i < n; i++)
        if (list[i] == x) return 1;
    return 0;
}

/* A set of many sockets, a few of them ready: exactly those are reported; level-triggered
 * members are reported again (round robin past maxevents) until drained; edge-triggered ones
 * once per arrival; a closed member never; a dup'd descriptor as its own member. */
static void case_epoll_ready(void) {
    current = "epoll-ready";
    enum { N = 200 };
    static int s[N];
    char buf[64];
    uint64_t seen[8];
    int ep = epoll_create1(0);
    int ok = 1;
    for (int i = 0; i < N; i++) {
        s[i] = socket(AF_INET, SOCK_DGRAM, 0);
        struct sockaddr_in a = any_port(0);
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = i};
        ok &= bind(s[i], (struct sockaddr *)&a, sizeof a) == 0 && epoll_ctl(ep, EPOLL_CTL_ADD, s[i], &ev) == 0;
    }
    SAY("setup: %d", ok);
    struct epoll_event ev[8];
    SHOW("wait-none", epoll_wait(ep, ev, 8, 100));
    int pick[3] = {10, 100, 190};
    for (int k = 0; k < 3; k++) sendto(s[pick[k]], "x", 1, 0, (struct sockaddr *)&peer, sizeof peer);
    int got = collect(ep, 3, 3000, seen);
    SAY("ready: %d picked: %d %d %d", got, has(seen, got, 10), has(seen, got, 100), has(seen, got, 190));
    /* Level-triggered, two at a time: the third comes in the next call. */
    int n1 = epoll_wait(ep, ev, 2, 0);
    uint64_t first[2] = {ev[0].data.u64, ev[1].data.u64};
    int n2 = epoll_wait(ep, ev, 2, 0);
    int third = -1;
    for (int k = 0; k < 3; k++)
        if (!has(first, 2, pick[k])) third = pick[k];
    SAY("lt: %d then %d, the rest next: %d", n1, n2, n2 > 0 && (ev[0].data.u64 == (uint64_t)third || ev[1].data.u64 == (uint64_t)third));
    for (int k = 0; k < 3; k++) recv(s[pick[k]], buf, sizeof buf, 0);
    SHOW("drained", epoll_wait(ep, ev, 8, 100));
    /* Edge-triggered: one report per arrival, none for data already reported. */
    struct epoll_event et = {.events = EPOLLIN | EPOLLET, .data.u64 = 10};
    SHOW("mod-et", epoll_ctl(ep, EPOLL_CTL_MOD, s[10], &et));
    sendto(s[10], "a", 1, 0, (struct sockaddr *)&peer, sizeof peer);
    SHOW("et-first", collect(ep, 1, 3000, seen));
    SHOW("et-again", epoll_wait(ep, ev, 8, 100));
    sendto(s[10], "b", 1, 0, (struct sockaddr *)&peer, sizeof peer);
    SHOW("et-second-arrival", collect(ep, 1, 3000, seen));
    SHOW("et-read-one", recv(s[10], buf, sizeof buf, 0));
    SHOW("et-after-partial-read", epoll_wait(ep, ev, 8, 100));
    SHOW("et-read-two", recv(s[10], buf, sizeof buf, 0));
    /* A member closed while readable is never reported. */
    sendto(s[100], "c", 1, 0, (struct sockaddr *)&peer, sizeof peer);
    SHOW("ready-before-close", collect(ep, 1, 3000, seen));
    close(s[100]);
    SHOW("after-close", epoll_wait(ep, ev, 8, 100));
    /* A dup is its own member: both report the one socket. */
    int d = dup(s[190]);
    struct epoll_event de = {.events = EPOLLIN, .data.u64 = 1000};
    SHOW("add-dup", epoll_ctl(ep, EPOLL_CTL_ADD, d, &de));
    sendto(s[190], "d", 1, 0, (struct sockaddr *)&peer, sizeof peer);
    got = collect(ep, 2, 3000, seen);
    SAY("dup-ready: %d both: %d", got, has(seen, got, 190) && has(seen, got, 1000));
    recv(s[190], buf, sizeof buf, 0);
    SHOW("dup-drained", epoll_wait(ep, ev, 8, 100));
    close(d);
    for (int i = 0; i < N; i++)
        if (i != 100) close(s[i]);
    close(ep);
}

/* ---------------------------------------------------------------------------------------- */

static void case_fork(void) {
    current = "fork";
    char buf[64];
    int s = udp_bound(50, 0);
    set_rcvtimeo(s, 2000);
    SHOW("echo-before-fork", echo(s, "before", buf, sizeof buf));
    pid_t pid = fork();
    if (pid == 0) {
        /* The child sends on the shared socket and makes a socket of its own. */
        current = "fork-child";
        SHOW("send", sendto(s, "from-child", 10, 0, (struct sockaddr *)&peer, sizeof peer));
        int own = udp_bound(51, 0);
        set_rcvtimeo(own, 2000);
        SHOW("echo-own-socket", echo(own, "own", buf, sizeof buf));
        SAY("got: %s", buf);
        close(own);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    SAY("child-exit: %d", WEXITSTATUS(status));
    /* The parent still serves the socket: the child's echo came here. */
    SHOW("recv-child-echo", recv(s, buf, sizeof buf - 1, 0));
    SHOW("echo-after-fork", echo(s, "after", buf, sizeof buf));
    SAY("got: %s", buf);
    /* Parent closes its copy: the child carries on with the socket alone. */
    pid = fork();
    if (pid == 0) {
        current = "fork-child-2";
        msleep(200);
        SHOW("echo-alone", echo(s, "alone", buf, sizeof buf));
        SAY("got: %s", buf);
        _exit(0);
    }
    SHOW("parent-close", close(s));
    waitpid(pid, &status, 0);
    SAY("child-2-exit: %d", WEXITSTATUS(status));
    /* The parent makes new sockets as before. */
    int again = udp_bound(52, 0);
    set_rcvtimeo(again, 2000);
    SHOW("echo-new-socket", echo(again, "new", buf, sizeof buf));
    close(again);
}

/* ---------------------------------------------------------------------------------------- */

/* The process execs itself (same pid): the socket it inherits works in the new program, and
 * the port of the one closed by CLOEXEC can be bound and served again there. */
static void case_exec(const char *peer_ip, const char *echo_port, const char *base) {
    current = "exec";
    char buf[64], fds[32];
    int s = udp_bound(60, 0);
    int c = udp_bound(61, SOCK_CLOEXEC);
    set_rcvtimeo(s, 2000);
    set_rcvtimeo(c, 2000);
    SHOW("echo-inherited-before", echo(s, "before", buf, sizeof buf));
    SHOW("echo-cloexec-before", echo(c, "before", buf, sizeof buf));
    /* A failed exec changes nothing. */
    char *none[] = {"/nonexistent", NULL};
    SHOW("failed-exec", execv("/nonexistent/program", none));
    SHOW("echo-after-failed-exec", echo(s, "after", buf, sizeof buf));
    snprintf(fds, sizeof fds, "%d", s * 1000 + c);
    execl(self_path, self_path, "exec-next", peer_ip, echo_port, base, fds, (char *)NULL);
    SHOW("exec", -1);
}

static int exec_next(int fds) {
    current = "exec-next";
    char buf[64];
    int s = fds / 1000, c = fds % 1000;
    SHOW("cloexec-fd-closed", fcntl(c, F_GETFD));
    SHOW("echo-inherited", echo(s, "inherited", buf, sizeof buf));
    SAY("got: %s", buf);
    int again = udp_bound(61, 0);
    set_rcvtimeo(again, 2000);
    SHOW("echo-rebound", echo(again, "rebound", buf, sizeof buf));
    SAY("got: %s", buf);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */

static int storm_fd;
static atomic_long storm_signals, handler_sent, handler_echoed;

/* Runs on every timer signal: a send and a non-blocking receive on an accelerated socket, so
 * it lands in the middle of exasock's calls (and its locks) on the interrupted thread. */
static void storm_handler(int sig) {
    (void)sig;
    int saved = errno;
    storm_signals++;
    char buf[32];
    while (recv(storm_fd, buf, sizeof buf, MSG_DONTWAIT) > 0) handler_echoed++;
    if (sendto(storm_fd, "h", 1, MSG_DONTWAIT, (struct sockaddr *)&peer, sizeof peer) == 1) handler_sent++;
    errno = saved;
}

/* SECONDS of ping-pong while a timer fires every 100 µs: every datagram of the main loop
 * comes back in order, every one the handler sent comes back, nothing hangs. */
static void case_storm(int seconds) {
    current = "storm";
    int s = udp_bound(70, 0);
    storm_fd = udp_bound(71, 0);
    set_rcvtimeo(s, 3000);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = storm_handler;
    sigaction(SIGALRM, &sa, NULL); /* no SA_RESTART: calls return EINTR and are retried */
    struct itimerval it = {.it_interval = {.tv_usec = 100}, .it_value = {.tv_usec = 100}};
    setitimer(ITIMER_REAL, &it, NULL);
    double end = now() + seconds;
    long seq = 0, lost = 0, wrong = 0, eintr = 0;
    char buf[32], want[32];
    while (now() < end) {
        int n = snprintf(want, sizeof want, "%ld", seq);
        while (sendto(s, want, n, 0, (struct sockaddr *)&peer, sizeof peer) < 0) {
            if (errno != EINTR) {
                lost++;
                break;
            }
            eintr++;
        }
        long r;
        double give_up = now() + 3;
        while ((r = recv(s, buf, sizeof buf - 1, 0)) < 0 && errno == EINTR && now() < give_up) eintr++;
        if (r < 0) {
            lost++;
        } else {
            buf[r] = 0;
            if (strcmp(buf, want) != 0) wrong++;
        }
        seq++;
    }
    struct itimerval off = {0};
    setitimer(ITIMER_REAL, &off, NULL);
    /* The handler's last echoes. */
    char b[32];
    set_rcvtimeo(storm_fd, 500);
    while (handler_echoed < handler_sent && recv(storm_fd, b, sizeof b, 0) > 0) handler_echoed++;
    fprintf(stderr, "storm: %ld round trips, %ld signals, %ld EINTR, handler sent %ld, echoed %ld\n", seq,
            (long)storm_signals, eintr, (long)handler_sent, (long)handler_echoed);
    SAY("lost=%ld wrong=%ld handler-lost=%ld busy=%d", lost, wrong, (long)(handler_sent - handler_echoed),
        seq > 1000 && storm_signals > 1000 && handler_sent > 100);
    close(s);
    close(storm_fd);
}

/* Descriptors closed behind exasock's back (a raw close syscall) and numbers reused by other
 * calls: a pipe, a file or a dup2 target must behave as what it now is, not as the accelerated
 * socket that had the number before; an epoll registration goes with its file. */
static void case_stale(void) {
    current = "stale";
    char buf[16] = {0};
    int s = udp_bound(8, 0);
    SHOW("raw-close", syscall(SYS_close, s));
    int p[2];
    SHOW("pipe", pipe(p));
    SAY("pipe-reuses-number: %d", p[0] == s || p[1] == s);
    SHOW("pipe-write", write(p[1], "abc", 3));
    SHOW("pipe-read", read(p[0], buf, sizeof buf));
    close(p[0]);
    close(p[1]);
    int s2 = udp_bound(9, 0);
    SHOW("raw-close-2", syscall(SYS_close, s2));
    int zero = open("/dev/zero", O_RDONLY);
    SAY("open-reuses-number: %d", zero == s2);
    SHOW("read-dev-zero", read(zero, buf, 4));
    close(zero);
    int u = udp_bound(10, 0);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 77};
    SHOW("epoll-add", epoll_ctl(ep, EPOLL_CTL_ADD, u, &ev));
    int q[2];
    SHOW("pipe-2", pipe(q));
    SHOW("pipe-2-write", write(q[1], "x", 1));
    SHOW("dup2-pipe-over-member", dup2(q[0], u));
    struct epoll_event out;
    SHOW("epoll-wait-after-dup2", epoll_wait(ep, &out, 1, 100));
    SHOW("read-dup2-target", read(u, buf, 1));
    close(u);
    close(q[0]);
    close(q[1]);
    close(ep);
}

/* TCP: the core calls against the peer's kernel, an echo server on ECHO_PORT and a connector
 * on UDP ECHO_PORT + 1 (a datagram "PORT" makes the peer connect to us at PORT, send "hello
 * from peer", echo until EOF and answer "eof N", "reset" or "refused"). Every result as the
 * kernel gives it. Nothing listens at PEER_IP:9; 10.99.0.99 does not exist (no ARP answer). */
struct sockaddr_in connector;

int tcp_socket(int flags) {
    int s = socket(AF_INET, SOCK_STREAM | flags, 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    return s;
}

/* Asks the peer to connect to our PORT; the answer comes later on `ctl`. */
void ask_peer_to_connect(int ctl, int port) {
    char msg[16];
    int n = snprintf(msg, sizeof msg, "%d", port);
    sendto(ctl, msg, n, 0, (struct sockaddr *)&connector, sizeof connector);
}

void peer_answer(int ctl, const char *step) {
    char ans[64] = {0};
    set_rcvtimeo(ctl, 10000);
    long n = recv(ctl, ans, sizeof ans - 1, 0);
    SAY("%s: %s", step, n > 0 ? ans : "(no answer)");
}

int revents_of(int fd, short events, int ms) {
    struct pollfd p = {.fd = fd, .events = events};
    int r = poll(&p, 1, ms);
    return r < 0 ? -1 : p.revents;
}

static void case_tcp(void) {
    current = "tcp";
    char buf[256] = {0};
    struct sockaddr_in got;
    socklen_t gl;
    int err;
    connector = peer;
    connector.sin_port = htons(ntohs(peer.sin_port) + 1);
    struct sockaddr_in nowhere = peer;
    inet_pton(AF_INET, "10.99.0.99", &nowhere.sin_addr);
    signal(SIGPIPE, on_sigpipe);
    sigpipes = 0;

    /* Unconnected. */
    int u = tcp_socket(0);
    SHOW("recv-unconnected", recv(u, buf, sizeof buf, MSG_DONTWAIT));
    SHOW("read-unconnected", read(u, buf, sizeof buf));
    SHOW("send-unconnected", send(u, "x", 1, MSG_NOSIGNAL));
    SHOW("getpeername-unconnected", getpeername(u, (struct sockaddr *)&got, &(socklen_t){sizeof got}));
    SHOW("shutdown-unconnected", shutdown(u, SHUT_WR));
    close(u);

    /* A blocking connect and the data calls. */
    int c = tcp_socket(0);
    SHOW("connect", connect(c, (struct sockaddr *)&peer, sizeof peer));
    SHOW("connect-again", connect(c, (struct sockaddr *)&peer, sizeof peer));
    gl = sizeof got;
    SHOW("getpeername", getpeername(c, (struct sockaddr *)&got, &gl));
    SAY("peer-matches: %d", got.sin_addr.s_addr == peer.sin_addr.s_addr && got.sin_port == peer.sin_port);
    gl = sizeof got;
    SHOW("getsockname", getsockname(c, (struct sockaddr *)&got, &gl));
    SAY("local-port-set: %d", got.sin_port != 0);
    SHOW("send", send(c, "hello", 5, 0));
    SHOW("recv-waitall", recv(c, buf, 5, MSG_WAITALL));
    SAY("data: %.5s", buf);
    SHOW("write", write(c, "peek-me", 7));
    SHOW("poll-in", revents_of(c, POLLIN, 3000));
    msleep(50);
    SHOW("recv-peek", recv(c, buf, 7, MSG_PEEK));
    SHOW("recv-after-peek", recv(c, buf, 7, 0));
    SAY("data: %.7s", buf);
    struct iovec two[2] = {{.iov_base = "ab", .iov_len = 2}, {.iov_base = "cd", .iov_len = 2}};
    SHOW("writev", writev(c, two, 2));
    SHOW("recv-waitall-4", recv(c, buf, 4, MSG_WAITALL));
    /* TCP_INFO: what the connection's own state says, in the fields both stacks agree on. */
    struct tcp_info ti;
    socklen_t tl = sizeof ti;
    memset(&ti, 0, sizeof ti);
    SHOW("tcp-info", getsockopt(c, IPPROTO_TCP, TCP_INFO, &ti, &tl));
    int maxseg = 0;
    SHOW("tcp-maxseg", getsockopt(c, IPPROTO_TCP, TCP_MAXSEG, &maxseg, &(socklen_t){sizeof maxseg}));
    SAY("tcp-maxseg: %d", maxseg);
    SAY("tcp-info: state %d timestamps %d wscale %d snd_mss %u rtt-measured %d unacked %u",
        ti.tcpi_state, !!(ti.tcpi_options & TCPI_OPT_TIMESTAMPS), !!(ti.tcpi_options & TCPI_OPT_WSCALE),
        ti.tcpi_snd_mss, ti.tcpi_rtt > 0, ti.tcpi_unacked);
    SAY("data: %.4s", buf);
    struct iovec one = {.iov_base = "xyz", .iov_len = 3};
    struct msghdr m = {.msg_name = &peer, .msg_namelen = sizeof peer, .msg_iov = &one, .msg_iovlen = 1};
    SHOW("sendmsg-with-name", sendmsg(c, &m, 0));
    msleep(50);
    int avail = -1;
    SHOW("fionread", ioctl(c, FIONREAD, &avail));
    SAY("fionread-value: %d", avail);
    int outq = -1;
    SHOW("siocoutq", ioctl(c, SIOCOUTQ, &outq));
    SAY("siocoutq-value: %d", outq);
    char in[3];
    struct iovec back = {.iov_base = in, .iov_len = sizeof in};
    struct sockaddr_in name;
    struct msghdr r = {.msg_name = &name, .msg_namelen = sizeof name, .msg_iov = &back, .msg_iovlen = 1};
    SHOW("recvmsg", recvmsg(c, &r, 0));
    SAY("recvmsg-namelen: %u flags: %d data: %.3s", (unsigned)r.msg_namelen, r.msg_flags, in);
    SHOW("recv-empty-dontwait", recv(c, buf, sizeof buf, MSG_DONTWAIT));
    SHOW("shutdown-wr", shutdown(c, SHUT_WR));
    SHOW("recv-eof", recv(c, buf, sizeof buf, 0));
    SHOW("recv-eof-again", recv(c, buf, sizeof buf, 0));
    SHOW("send-after-shut-wr", send(c, "x", 1, 0));
    SAY("sigpipes: %d", sigpipes);
    SHOW("send-after-shut-wr-nosignal", send(c, "x", 1, MSG_NOSIGNAL));
    SAY("sigpipes: %d", sigpipes);
    SHOW("close", close(c));

    /* Non-blocking connect: in progress, then connected. */
    int n = tcp_socket(SOCK_NONBLOCK);
    SHOW("connect-nonblock", connect(n, (struct sockaddr *)&peer, sizeof peer));
    SHOW("poll-out", revents_of(n, POLLOUT, 3000));
    err = -1;
    SHOW("so-error", getsockopt(n, SOL_SOCKET, SO_ERROR, &err, &(socklen_t){sizeof err}));
    SAY("so-error-value: %d", err);
    SHOW("connect-nonblock-again", connect(n, (struct sockaddr *)&peer, sizeof peer));
    SHOW("send-nonblock", send(n, "nb", 2, 0));
    SHOW("recv-nonblock-waitall", revents_of(n, POLLIN, 3000));
    msleep(20);
    SHOW("recv-nonblock", recv(n, buf, sizeof buf, 0));
    close(n);

    /* A connect that cannot progress (no such host): EALREADY while it tries. */
    int w = tcp_socket(SOCK_NONBLOCK);
    SHOW("connect-nowhere", connect(w, (struct sockaddr *)&nowhere, sizeof nowhere));
    SHOW("connect-nowhere-again", connect(w, (struct sockaddr *)&nowhere, sizeof nowhere));
    SHOW("poll-nowhere", revents_of(w, POLLOUT, 100));
    close(w);
    int t = tcp_socket(0);
    struct timeval tv = {.tv_usec = 200000};
    setsockopt(t, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    SHOW("connect-nowhere-sndtimeo", connect(t, (struct sockaddr *)&nowhere, sizeof nowhere));
    close(t);

    /* Refused, blocking and not. */
    int f = tcp_socket(0);
    SHOW("connect-refused", connect(f, (struct sockaddr *)&closed_port, sizeof closed_port));
    close(f);
    f = tcp_socket(SOCK_NONBLOCK);
    SHOW("connect-refused-nonblock", connect(f, (struct sockaddr *)&closed_port, sizeof closed_port));
    SHOW("poll-refused", revents_of(f, POLLOUT, 3000));
    err = -1;
    SHOW("so-error-refused", getsockopt(f, SOL_SOCKET, SO_ERROR, &err, &(socklen_t){sizeof err}));
    SAY("so-error-value: %s", strerrorname_np(err) ? strerrorname_np(err) : "0");
    err = -1;
    SHOW("so-error-cleared", getsockopt(f, SOL_SOCKET, SO_ERROR, &err, &(socklen_t){sizeof err}));
    SAY("so-error-value: %d", err);
    close(f);

    /* The listening side: the peer connects on request. */
    int ctl = udp_bound(21, 0);
    int l = tcp_socket(0);
    struct sockaddr_in a = any_port(base_port + 20);
    SHOW("bind", bind(l, (struct sockaddr *)&a, sizeof a));
    int l2 = tcp_socket(0);
    SHOW("bind-in-use", bind(l2, (struct sockaddr *)&a, sizeof a));
    close(l2);
    SHOW("listen", listen(l, 4));
    SHOW("listen-again", listen(l, 8));
    int fl = fcntl(l, F_GETFL);
    fcntl(l, F_SETFL, fl | O_NONBLOCK);
    SHOW("accept-none", accept(l, NULL, NULL));
    fcntl(l, F_SETFL, fl);
    ask_peer_to_connect(ctl, base_port + 20);
    SHOW("poll-listener", revents_of(l, POLLIN, 5000));
    gl = sizeof got;
    int s1 = accept4(l, (struct sockaddr *)&got, &gl, SOCK_NONBLOCK | SOCK_CLOEXEC);
    SAY("accept4: %d", s1 >= 0);
    SAY("accepted-from-peer: %d", got.sin_addr.s_addr == peer.sin_addr.s_addr);
    SAY("accept4-nonblock: %d cloexec: %d", (fcntl(s1, F_GETFL) & O_NONBLOCK) != 0, (fcntl(s1, F_GETFD) & FD_CLOEXEC) != 0);
    fcntl(s1, F_SETFL, fcntl(s1, F_GETFL) & ~O_NONBLOCK);
    memset(buf, 0, sizeof buf);
    SHOW("recv-hello", recv(s1, buf, 15, MSG_WAITALL));
    SAY("data: %s", buf);
    SHOW("send-bye", send(s1, "bye", 3, 0));
    SHOW("recv-bye", recv(s1, buf, 3, MSG_WAITALL));
    SHOW("close-accepted", close(s1));
    peer_answer(ctl, "peer-after-close");

    /* SO_LINGER 0: the peer sees a reset. */
    ask_peer_to_connect(ctl, base_port + 20);
    int s2 = accept(l, NULL, NULL);
    SAY("accept: %d", s2 >= 0);
    SHOW("recv-hello-2", recv(s2, buf, 15, MSG_WAITALL));
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    SHOW("so-linger-0", setsockopt(s2, SOL_SOCKET, SO_LINGER, &lg, sizeof lg));
    SHOW("close-reset", close(s2));
    peer_answer(ctl, "peer-after-linger-0");

    /* Half-close: our FIN, the peer's EOF and FIN, then RDHUP and HUP here. */
    ask_peer_to_connect(ctl, base_port + 20);
    int s3 = accept(l, NULL, NULL);
    SAY("accept: %d", s3 >= 0);
    SHOW("recv-hello-3", recv(s3, buf, 15, MSG_WAITALL));
    SHOW("shutdown-wr-accepted", shutdown(s3, SHUT_WR));
    peer_answer(ctl, "peer-after-our-fin");
    SHOW("poll-rdhup", revents_of(s3, POLLIN | POLLRDHUP, 3000));
    SHOW("recv-eof-accepted", recv(s3, buf, sizeof buf, 0));
    close(s3);
    close(l);
    close(ctl);
    signal(SIGPIPE, SIG_DFL);
}

/* TCP readiness through epoll (level and edge-triggered, RDHUP) and select, on a listener and
 * an accepted connection, as an event loop uses them. */
/* Waits up to 5 s on `ep` and prints how many events came, the first one's mask and data. */
static void say_wait(int ep, const char *step) {
    struct epoll_event out[4];
    int n = epoll_wait(ep, out, 4, 5000);
    SAY("%s: %d events=%u data=%llu", step, n, n > 0 ? out[0].events : 0, n > 0 ? (unsigned long long)out[0].data.u64 : 0ULL);
}

static void case_tcp_epoll(void) {
    current = "tcp-epoll";
    char buf[256];
    struct epoll_event ev, out[4];
    connector = peer;
    connector.sin_port = htons(ntohs(peer.sin_port) + 1);
    int ctl = udp_bound(31, 0);
    int l = tcp_socket(SOCK_NONBLOCK);
    struct sockaddr_in a = any_port(base_port + 30);
    SHOW("bind", bind(l, (struct sockaddr *)&a, sizeof a));
    SHOW("listen", listen(l, 8));
    int ep = epoll_create1(0);
    ev = (struct epoll_event){.events = EPOLLIN, .data.u64 = 1};
    SHOW("epoll-add-listener", epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev));
    SHOW("epoll-wait-nothing", epoll_wait(ep, out, 4, 50));
    ask_peer_to_connect(ctl, base_port + 30);
    say_wait(ep, "epoll-wait-listener");
    int c = accept4(l, NULL, NULL, SOCK_NONBLOCK);
    SAY("accept4: %d", c >= 0);
    SHOW("accept-again", accept4(l, NULL, NULL, SOCK_NONBLOCK));
    ev = (struct epoll_event){.events = EPOLLIN | EPOLLET | EPOLLRDHUP, .data.u64 = 2};
    SHOW("epoll-add-conn-et", epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev));
    say_wait(ep, "epoll-wait-hello");
    msleep(50);
    long got = 0, r;
    while ((r = recv(c, buf, sizeof buf, 0)) > 0) got += r;
    SAY("read-until-eagain: %ld then %s", got, r < 0 && errno == EAGAIN ? "EAGAIN" : "other");
    SHOW("epoll-wait-edge-consumed", epoll_wait(ep, out, 4, 50));
    SHOW("send-bye", send(c, "bye", 3, 0));
    say_wait(ep, "epoll-wait-echo");
    msleep(50);
    SHOW("recv-echo", recv(c, buf, sizeof buf, 0));
    fd_set w;
    FD_ZERO(&w);
    FD_SET(c, &w);
    struct timeval tv = {.tv_sec = 1};
    SHOW("select-writable", select(c + 1, NULL, &w, NULL, &tv));
    SAY("select-writable-set: %d", FD_ISSET(c, &w) != 0);
    SHOW("shutdown-wr", shutdown(c, SHUT_WR));
    peer_answer(ctl, "peer-after-our-fin");
    say_wait(ep, "epoll-wait-peer-fin");
    SHOW("recv-eof", recv(c, buf, sizeof buf, 0));
    SHOW("epoll-del", epoll_ctl(ep, EPOLL_CTL_DEL, c, NULL));
    close(c);
    close(l);
    close(ep);
    close(ctl);
}

/* Traffic that reaches an accelerated socket through the kernel (loopback) is reported by
 * epoll, and once read or accepted the next look finds nothing more, as on the kernel (an
 * event loop that trusted a stale report would block in its next recv or accept). */
static void case_epoll_loopback(void) {
    current = "epoll-loopback";
    char buf[64];
    uint64_t seen[8];
    struct epoll_event ev[8], out[4];
    int ep = epoll_create1(0);
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in me = any_port(base_port + 45);
    SHOW("bind-udp", bind(u, (struct sockaddr *)&me, sizeof me));
    struct epoll_event ue = {.events = EPOLLIN, .data.u64 = 10};
    SHOW("add-udp", epoll_ctl(ep, EPOLL_CTL_ADD, u, &ue));
    me.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int lo = socket(AF_INET, SOCK_DGRAM, 0);
    for (int k = 0; k < 3; k++) {
        SHOW("send-loopback", sendto(lo, "l", 1, 0, (struct sockaddr *)&me, sizeof me));
        SHOW("loopback-ready", collect(ep, 1, 3000, seen));
        SHOW("read-loopback", recv(u, buf, sizeof buf, 0));
        SHOW("after-read", epoll_wait(ep, ev, 8, 0));
    }
    close(lo);
    SHOW("del-udp", epoll_ctl(ep, EPOLL_CTL_DEL, u, NULL));
    int l = tcp_socket(SOCK_NONBLOCK);
    struct sockaddr_in a = any_port(base_port + 46);
    SHOW("bind-listener", bind(l, (struct sockaddr *)&a, sizeof a));
    SHOW("listen", listen(l, 8));
    struct epoll_event le = {.events = EPOLLIN, .data.u64 = 1};
    SHOW("add-listener", epoll_ctl(ep, EPOLL_CTL_ADD, l, &le));
    struct sockaddr_in lo_addr = a;
    lo_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int k = 0; k < 3; k++) {
        int lc = tcp_socket(0);
        SHOW("connect-loopback", connect(lc, (struct sockaddr *)&lo_addr, sizeof lo_addr));
        int n = epoll_wait(ep, out, 4, 5000);
        SAY("listener-ready: %d events=%u data=%llu", n, n > 0 ? out[0].events : 0, n > 0 ? (unsigned long long)out[0].data.u64 : 0ULL);
        int la = accept(l, NULL, NULL);
        SAY("accept-loopback: %d", la >= 0);
        SHOW("after-accept", epoll_wait(ep, out, 4, 0));
        close(la);
        close(lc);
    }
    close(l);
    close(u);
    close(ep);
}

/* close() from a signal handler (async-signal-safe: exasock leaves the freeing to its worker):
 * the number is closed at once, and the port can be bound and used again right away. */
static int handler_close_fd = -1;
static void close_in_handler(int sig) {
    (void)sig;
    close(handler_close_fd);
}

static void case_handler_close(void) {
    current = "handler-close";
    char buf[32] = {0};
    handler_close_fd = udp_bound(11, 0);
    signal(SIGALRM, close_in_handler);
    SHOW("raise", raise(SIGALRM));
    SHOW("send-after-close", sendto(handler_close_fd, "x", 1, 0, (struct sockaddr *)&peer, sizeof peer));
    int t = udp_bound(11, 0);
    SAY("rebound: %d", t >= 0);
    SHOW("sendto", sendto(t, "again", 5, 0, (struct sockaddr *)&peer, sizeof peer));
    set_rcvtimeo(t, 3000);
    SHOW("recv", recv(t, buf, sizeof buf, 0));
    SAY("echo: %s", buf);
    close(t);
    signal(SIGALRM, SIG_DFL);
}

/* A program whose own bad pointer faults inside an accelerated call, with a SIGSEGV handler:
 * on the kernel the call gives EFAULT; under exasock the copy faults, and the handler must run
 * at once (deferred until exasock lets go of its lock, the fault would recur forever). Either
 * way the program ends promptly; the test accepts both outputs. */
static void on_fault(int sig) {
    (void)sig;
    static const char msg[] = "fault handler-ran\n";
    write(1, msg, sizeof msg - 1);
    _exit(0);
}

static void case_fault(void) {
    current = "fault";
    int s = udp_bound(7, 0);
    struct sigaction sa = {.sa_handler = on_fault};
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
    SHOW("sendto-unmapped", sendto(s, (void *)4096, 10, 0, (struct sockaddr *)&peer, sizeof peer));
    close(s);
}

/* TCP across fork and exec (the echo server on ECHO_PORT): a connection made before fork is
 * used by the child, then by the parent again; one the parent closes after a fork stays open in
 * the child; one passed across exec works in the new program. */
static void echo_tcp(int fd, const char *step, const char *msg) {
    char buf[64] = {0};
    int n = (int)strlen(msg);
    char name[64];
    snprintf(name, sizeof name, "%s-send", step);
    SHOW(name, send(fd, msg, n, MSG_NOSIGNAL));
    snprintf(name, sizeof name, "%s-recv", step);
    SHOW(name, recv(fd, buf, n, MSG_WAITALL));
    SAY("%s: %.*s", step, n, buf);
}

static void case_tcp_fork(const char *peer_ip, const char *echo_port, const char *base) {
    current = "tcp-fork";
    int a = tcp_socket(0), b = tcp_socket(0);
    SHOW("connect-a", connect(a, (struct sockaddr *)&peer, sizeof peer));
    SHOW("connect-b", connect(b, (struct sockaddr *)&peer, sizeof peer));
    echo_tcp(a, "a-before-fork", "one");
    pid_t pid = fork();
    if (pid == 0) {
        current = "tcp-fork-child";
        echo_tcp(a, "a-in-child", "child");
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    SAY("child-exit: %d", WEXITSTATUS(status));
    echo_tcp(a, "a-in-parent-after", "after");
    echo_tcp(b, "b-in-parent", "bee");
    pid = fork();
    if (pid == 0) {
        current = "tcp-fork-child-2";
        msleep(200);
        echo_tcp(b, "b-alone-in-child", "alone");
        SHOW("b-shutdown", shutdown(b, SHUT_WR));
        char buf[8];
        SHOW("b-eof", recv(b, buf, sizeof buf, 0));
        _exit(0);
    }
    SHOW("parent-close-b", close(b));
    waitpid(pid, &status, 0);
    SAY("child-2-exit: %d", WEXITSTATUS(status));
    close(a);
    int e = tcp_socket(0);
    SHOW("connect-e", connect(e, (struct sockaddr *)&peer, sizeof peer));
    echo_tcp(e, "e-before-exec", "exec");
    char fds[16];
    snprintf(fds, sizeof fds, "%d", e);
    execl(self_path, self_path, "tcp-exec-next", peer_ip, echo_port, base, fds, (char *)NULL);
    SHOW("exec", -1);
}

static int tcp_exec_next(int fd) {
    current = "tcp-exec-next";
    echo_tcp(fd, "e-after-exec", "inherited");
    SHOW("shutdown", shutdown(fd, SHUT_WR));
    char buf[8];
    SHOW("eof", recv(fd, buf, sizeof buf, 0));
    SHOW("close", close(fd));
    return 0;
}

/* ---------------------------------------------------------------------------------------- */

/* Multicast memberships on an accelerated socket: the errnos Linux gives (issue 17). */
static void case_mcast(void) {
    current = "mcast";
    int s = udp_bound(40, 0);
    struct ip_mreqn mr = {.imr_ifindex = 0};
    inet_pton(AF_INET, "239.1.9.1", &mr.imr_multiaddr);
    struct sockaddr_in me;
    socklen_t ml = sizeof me;
    /* The interface by the address the kernel routes the peer from. */
    int probe = socket(AF_INET, SOCK_DGRAM, 0);
    connect(probe, (struct sockaddr *)&peer, sizeof peer);
    getsockname(probe, (struct sockaddr *)&me, &ml);
    close(probe);
    struct ip_mreq m = {.imr_multiaddr = mr.imr_multiaddr, .imr_interface = me.sin_addr};
    SHOW("join", setsockopt(s, IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof m));
    SHOW("join-duplicate", setsockopt(s, IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof m));
    SHOW("join-short", setsockopt(s, IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, 4));
    struct ip_mreq bad = m;
    inet_pton(AF_INET, "10.1.2.3", &bad.imr_multiaddr);
    SHOW("join-unicast", setsockopt(s, IPPROTO_IP, IP_ADD_MEMBERSHIP, &bad, sizeof bad));
    mr.imr_address = me.sin_addr;
    inet_pton(AF_INET, "239.1.9.2", &mr.imr_multiaddr);
    SHOW("join-mreqn", setsockopt(s, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof mr));
    SHOW("join-mreqn-duplicate", setsockopt(s, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof mr));
    SHOW("drop", setsockopt(s, IPPROTO_IP, IP_DROP_MEMBERSHIP, &m, sizeof m));
    SHOW("drop-again", setsockopt(s, IPPROTO_IP, IP_DROP_MEMBERSHIP, &m, sizeof m));
    SHOW("drop-mreqn", setsockopt(s, IPPROTO_IP, IP_DROP_MEMBERSHIP, &mr, sizeof mr));
    SHOW("rejoin", setsockopt(s, IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof m));
    struct ip_mreqn no_dev = {.imr_multiaddr = mr.imr_multiaddr, .imr_ifindex = 9999};
    SHOW("join-no-device", setsockopt(s, IPPROTO_IP, IP_ADD_MEMBERSHIP, &no_dev, sizeof no_dev));
    struct ip_mreq other_if = m;
    inet_pton(AF_INET, "10.1.2.3", &other_if.imr_interface);
    SHOW("join-no-such-address", setsockopt(s, IPPROTO_IP, IP_ADD_MEMBERSHIP, &other_if, sizeof other_if));
    SHOW("drop-wrong-interface", setsockopt(s, IPPROTO_IP, IP_DROP_MEMBERSHIP, &other_if, sizeof other_if));
    struct ip_mreq_source ms = {.imr_multiaddr = m.imr_multiaddr, .imr_interface = me.sin_addr,
                                .imr_sourceaddr = peer.sin_addr};
    /* A group joined for any source may block a source. */
    SHOW("block", setsockopt(s, IPPROTO_IP, IP_BLOCK_SOURCE, &ms, sizeof ms));
    SHOW("block-again", setsockopt(s, IPPROTO_IP, IP_BLOCK_SOURCE, &ms, sizeof ms));
    SHOW("unblock", setsockopt(s, IPPROTO_IP, IP_UNBLOCK_SOURCE, &ms, sizeof ms));
    SHOW("unblock-again", setsockopt(s, IPPROTO_IP, IP_UNBLOCK_SOURCE, &ms, sizeof ms));
    SHOW("source-join-on-any-source", setsockopt(s, IPPROTO_IP, IP_ADD_SOURCE_MEMBERSHIP, &ms, sizeof ms));
    inet_pton(AF_INET, "239.1.9.3", &ms.imr_multiaddr);
    SHOW("block-not-member", setsockopt(s, IPPROTO_IP, IP_BLOCK_SOURCE, &ms, sizeof ms));
    SHOW("source-join", setsockopt(s, IPPROTO_IP, IP_ADD_SOURCE_MEMBERSHIP, &ms, sizeof ms));
    SHOW("source-join-duplicate", setsockopt(s, IPPROTO_IP, IP_ADD_SOURCE_MEMBERSHIP, &ms, sizeof ms));
    struct ip_mreq any_source = {.imr_multiaddr = ms.imr_multiaddr, .imr_interface = me.sin_addr};
    SHOW("any-source-join-on-source-specific",
         setsockopt(s, IPPROTO_IP, IP_ADD_MEMBERSHIP, &any_source, sizeof any_source));
    SHOW("source-drop", setsockopt(s, IPPROTO_IP, IP_DROP_SOURCE_MEMBERSHIP, &ms, sizeof ms));
    SHOW("source-drop-again", setsockopt(s, IPPROTO_IP, IP_DROP_SOURCE_MEMBERSHIP, &ms, sizeof ms));
    /* Linux's igmp_max_memberships per socket: ENOBUFS past it. */
    int joined = 0, e = 0;
    for (int i = 0; i < 100 && !e; i++) {
        struct ip_mreq g = {.imr_interface = me.sin_addr};
        char addr[32];
        snprintf(addr, sizeof addr, "239.1.10.%d", i + 1);
        inet_pton(AF_INET, addr, &g.imr_multiaddr);
        if (setsockopt(s, IPPROTO_IP, IP_ADD_MEMBERSHIP, &g, sizeof g) == 0) joined++;
        else e = errno;
    }
    SAY("join-many: %d joined, then %s", joined, e ? strerrorname_np(e) : "none");
    int v = -1;
    socklen_t vl = sizeof v;
    SHOW("get-loop", getsockopt(s, IPPROTO_IP, IP_MULTICAST_LOOP, &v, &vl));
    SAY("loop: %d", v);
    vl = sizeof v;
    SHOW("get-ttl", getsockopt(s, IPPROTO_IP, IP_MULTICAST_TTL, &v, &vl));
    SAY("ttl: %d", v);
    close(s);
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s CASE PEER_IP ECHO_PORT BASE_PORT [SECONDS|FD]\n", argv[0]);
        return 2;
    }
    const char *which = argv[1];
    peer.sin_family = AF_INET;
    peer.sin_port = htons(atoi(argv[3]));
    inet_pton(AF_INET, argv[2], &peer.sin_addr);
    closed_port = peer;
    closed_port.sin_port = htons(9);
    /* A TCP peer takes connect requests on the port after the echo port (tests/common). */
    connector = peer;
    connector.sin_port = htons(ntohs(peer.sin_port) + 1);
    base_port = atoi(argv[4]);
    int extra = argc > 5 ? atoi(argv[5]) : 0;
    if (!strcmp(which, "errors")) case_errors();
    else if (!strcmp(which, "calls")) case_calls();
    else if (!strcmp(which, "signals")) case_signals();
    else if (!strcmp(which, "threads")) case_threads(extra ? extra : 10, 1);
    else if (!strcmp(which, "threads-split")) case_threads(extra ? extra : 10, 4);
    else if (!strcmp(which, "dup")) case_dup();
    else if (!strcmp(which, "mcast")) case_mcast();
    else if (!strcmp(which, "ancillary")) case_ancillary();
    else if (!strcmp(which, "broadcast")) case_broadcast();
    else if (!strcmp(which, "mcast-all")) case_mcast_all();
    else if (!strcmp(which, "mcast-loop")) case_mcast_loop();
    else if (!strcmp(which, "mcast-tx")) case_mcast_tx();
    else if (!strcmp(which, "mcast-deliver")) case_mcast_deliver();
    else if (!strcmp(which, "epoll")) case_epoll();
    else if (!strcmp(which, "epoll-ready")) case_epoll_ready();
    else if (!strcmp(which, "epoll-loopback")) case_epoll_loopback();
    else if (!strcmp(which, "fork")) case_fork();
    else if (!strcmp(which, "exec")) case_exec(argv[2], argv[3], argv[4]);
    else if (!strcmp(which, "exec-next")) return exec_next(extra);
    else if (!strcmp(which, "storm")) case_storm(extra ? extra : 30);
    else if (!strcmp(which, "fault")) case_fault();
    else if (!strcmp(which, "stale")) case_stale();
    else if (!strcmp(which, "handler-close")) case_handler_close();
    else if (!strcmp(which, "tcp")) case_tcp();
    else if (!strcmp(which, "tcp-epoll")) case_tcp_epoll();
    else if (!strcmp(which, "tcp-dual")) case_tcp_dual();
    else if (!strcmp(which, "tcp-transfer")) case_tcp_transfer();
    else if (!strcmp(which, "tcp-options")) case_tcp_options();
    else if (!strcmp(which, "tcp-accept-threads")) case_tcp_accept_threads();
    else if (!strcmp(which, "tcp-flags")) case_tcp_flags();
    else if (!strcmp(which, "tcp-reuseport")) case_tcp_reuseport();
    else if (!strcmp(which, "tcp-fork")) case_tcp_fork(argv[2], argv[3], argv[4]);
    else if (!strcmp(which, "tcp-exec-next")) return tcp_exec_next(extra);
    else {
        fprintf(stderr, "unknown case %s\n", which);
        return 2;
    }
    return 0;
}
