/* The TCP socket API beyond the core calls (tests/c_suite.rs runs each case on the kernel and
 * under exasock and compares the output line by line). */
#include "suite.h"

/* The IPv4 address `a` holds, when it is an AF_INET6 socket's IPv4-mapped form; 0 otherwise. */
static in_addr_t mapped_v4(const struct sockaddr_in6 *a) {
    if (a->sin6_family != AF_INET6 || !IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) return 0;
    in_addr_t v;
    memcpy(&v, &a->sin6_addr.s6_addr[12], 4);
    return v;
}

static void say_name(const char *step, int r, const struct sockaddr_in6 *a, socklen_t len, in_addr_t want) {
    char text[INET6_ADDRSTRLEN] = "?";
    inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof text);
    int is_any = a->sin6_family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(&a->sin6_addr);
    SAY("%s: %d family %s len %u mapped %d expected-ip %d any %d port-set %d", step, r,
        a->sin6_family == AF_INET6 ? "inet6" : a->sin6_family == AF_INET ? "inet" : "?", (unsigned)len,
        mapped_v4(a) != 0, want && mapped_v4(a) == want, is_any, a->sin6_port != 0);
}

static int domain_of(int fd) {
    int d = -1;
    getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &d, &(socklen_t){sizeof d});
    return d;
}

/* Dual-stack sockets: an AF_INET6 listener on :: (IPV6_V6ONLY off) serves an IPv4 peer, which
 * it names ::ffff:a.b.c.d; an AF_INET6 client connects to an IPv4-mapped address; an IPv6-only
 * socket cannot. */
void case_tcp_dual(void) {
    current = "tcp-dual";
    char buf[64] = {0};
    int ctl = udp_bound(31, 0);

    int l = socket(AF_INET6, SOCK_STREAM, 0);
    int off = 0, one = 1;
    SHOW("v6only-off", setsockopt(l, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off));
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in6 any6 = {.sin6_family = AF_INET6, .sin6_port = htons(base_port + 30), .sin6_addr = in6addr_any};
    SHOW("bind-any6", bind(l, (struct sockaddr *)&any6, sizeof any6));
    SHOW("listen", listen(l, 8));
    struct sockaddr_in6 name;
    socklen_t nl = sizeof name;
    int r = getsockname(l, (struct sockaddr *)&name, &nl);
    say_name("listener-name", r, &name, nl, 0);

    ask_peer_to_connect(ctl, base_port + 30);
    SHOW("poll-listener", revents_of(l, POLLIN, 5000));
    struct sockaddr_in6 from;
    socklen_t fl = sizeof from;
    int s = accept(l, (struct sockaddr *)&from, &fl);
    SAY("accept: %d", s >= 0);
    say_name("accepted-from", 0, &from, fl, peer.sin_addr.s_addr);
    SAY("accepted-domain-inet6: %d", domain_of(s) == AF_INET6);
    nl = sizeof name;
    r = getpeername(s, (struct sockaddr *)&name, &nl);
    say_name("accepted-peer", r, &name, nl, peer.sin_addr.s_addr);
    nl = sizeof name;
    r = getsockname(s, (struct sockaddr *)&name, &nl);
    say_name("accepted-local", r, &name, nl, 0);
    SAY("accepted-local-port: %d", ntohs(name.sin6_port) == base_port + 30);
    /* A short buffer: truncated, the full length reported. */
    char small[8];
    socklen_t sl = sizeof small;
    SHOW("getpeername-short", getpeername(s, (struct sockaddr *)small, &sl));
    SAY("getpeername-short-len: %u", (unsigned)sl);
    SHOW("recv-hello", recv(s, buf, 15, MSG_WAITALL));
    SAY("data: %.15s", buf);
    SHOW("send", send(s, "dual", 4, 0));
    SHOW("recv-echo", recv(s, buf, 4, MSG_WAITALL));
    SAY("data: %.4s", buf);
    SHOW("close-accepted", close(s));
    peer_answer(ctl, "peer-after-close");
    close(l);

    /* An AF_INET6 client to the IPv4 peer, IPv4-mapped. */
    struct sockaddr_in6 to = {.sin6_family = AF_INET6, .sin6_port = peer.sin_port};
    to.sin6_addr.s6_addr[10] = 0xff;
    to.sin6_addr.s6_addr[11] = 0xff;
    memcpy(&to.sin6_addr.s6_addr[12], &peer.sin_addr.s_addr, 4);
    int c = socket(AF_INET6, SOCK_STREAM, 0);
    SHOW("connect-mapped", connect(c, (struct sockaddr *)&to, sizeof to));
    SHOW("connect-mapped-again", connect(c, (struct sockaddr *)&to, sizeof to));
    nl = sizeof name;
    r = getpeername(c, (struct sockaddr *)&name, &nl);
    say_name("client-peer", r, &name, nl, peer.sin_addr.s_addr);
    SAY("client-peer-port: %d", name.sin6_port == peer.sin_port);
    nl = sizeof name;
    r = getsockname(c, (struct sockaddr *)&name, &nl);
    say_name("client-local", r, &name, nl, 0);
    SHOW("send", send(c, "mapped", 6, 0));
    memset(buf, 0, sizeof buf);
    SHOW("recv-echo", recv(c, buf, 6, MSG_WAITALL));
    SAY("data: %.6s", buf);
    struct sockaddr_in6 src;
    socklen_t srcl = sizeof src;
    SHOW("send-more", send(c, "x", 1, 0));
    SHOW("recvfrom", recvfrom(c, buf, 1, MSG_WAITALL, (struct sockaddr *)&src, &srcl));
    SAY("recvfrom-len: %u", (unsigned)srcl);
    /* A sockaddr_in on an AF_INET6 socket is refused as the kernel refuses it. */
    SHOW("connect-inet-on-inet6", connect(c, (struct sockaddr *)&peer, sizeof peer));
    SHOW("close", close(c));

    /* IPv6-only: no IPv4 peer. */
    int o = socket(AF_INET6, SOCK_STREAM, 0);
    SHOW("v6only-on", setsockopt(o, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one));
    SHOW("connect-mapped-v6only", connect(o, (struct sockaddr *)&to, sizeof to));
    close(o);
    /* A sockaddr_in6 on an AF_INET socket. */
    int f = socket(AF_INET, SOCK_STREAM, 0);
    SHOW("connect-inet6-on-inet", connect(f, (struct sockaddr *)&to, sizeof to));
    close(f);
    close(ctl);
}

static unsigned char pattern_at(long i) { return (unsigned char)(i * 7 % 251); }

/* Reads `n` bytes from `s` and checks them against the pattern from `from`; 1 when they match. */
static int read_pattern(int s, long from, long n) {
    static unsigned char buf[65536];
    long got = 0;
    int ok = 1;
    while (got < n) {
        long want = n - got < (long)sizeof buf ? n - got : (long)sizeof buf;
        long r = recv(s, buf, want, 0);
        if (r <= 0) return 0;
        for (long i = 0; i < r; i++) ok &= buf[i] == pattern_at(from + got + i);
        got += r;
    }
    return ok;
}

/* sendfile and splice to and from a connection (a kernel echo server on the peer), with and
 * without an offset, blocking and not; copy_file_range with a socket. */
void case_tcp_transfer(void) {
    current = "tcp-transfer";
    enum { SIZE = 4 << 20 };
    char path[] = "/tmp/exasock-suite-XXXXXX";
    int file = mkstemp(path);
    unlink(path);
    static unsigned char content[SIZE];
    for (long i = 0; i < SIZE; i++) content[i] = pattern_at(i);
    if (write(file, content, SIZE) != SIZE) SAY("setup: cannot write the file");

    int c = tcp_socket(0);
    SHOW("connect", connect(c, (struct sockaddr *)&peer, sizeof peer));
    off_t off = 0;
    SHOW("sendfile-offset", sendfile(c, file, &off, 100000));
    SAY("offset-after: %ld file-position: %ld", (long)off, (long)lseek(file, 0, SEEK_CUR));
    SAY("echo-matches: %d", read_pattern(c, 0, 100000));
    lseek(file, 100000, SEEK_SET);
    SHOW("sendfile-position", sendfile(c, file, NULL, 50000));
    SAY("file-position: %ld", (long)lseek(file, 0, SEEK_CUR));
    SAY("echo-matches: %d", read_pattern(c, 100000, 50000));
    off = SIZE - 10;
    SHOW("sendfile-past-end", sendfile(c, file, &off, 100));
    SAY("offset-after: %ld", (long)off);
    SAY("echo-matches: %d", read_pattern(c, SIZE - 10, 10));
    off = SIZE;
    SHOW("sendfile-at-end", sendfile(c, file, &off, 100));
    off = -1;
    SHOW("sendfile-negative-offset", sendfile(c, file, &off, 100));
    SHOW("sendfile-zero", sendfile(c, file, NULL, 0));
    SHOW("sendfile-bad-in", sendfile(c, 999, NULL, 10));

    /* Pipes: into the connection, and the echo out of it. */
    int in[2], out[2];
    if (pipe(in) || pipe(out)) SAY("setup: no pipe");
    SHOW("pipe-write", write(in[1], content, 5000));
    SHOW("splice-pipe-to-socket", splice(in[0], NULL, c, NULL, 5000, 0));
    long spliced = 0;
    while (spliced < 5000) {
        if (revents_of(c, POLLIN, 5000) <= 0) break;
        long r = splice(c, NULL, out[1], NULL, 5000 - spliced, 0);
        if (r <= 0) break;
        spliced += r;
    }
    SAY("spliced-from-socket: %ld", spliced);
    static unsigned char back[5000];
    long got = read(out[0], back, sizeof back);
    SAY("pipe-read: %ld matches: %d", got, got == 5000 && !memcmp(back, content, 5000));
    loff_t loff = 0;
    SHOW("splice-socket-offset", splice(in[0], NULL, c, &loff, 10, 0));
    fcntl(c, F_SETFL, fcntl(c, F_GETFL) | O_NONBLOCK);
    SHOW("splice-empty-nonblocking-socket", splice(c, NULL, out[1], NULL, 10, 0));
    fcntl(c, F_SETFL, fcntl(c, F_GETFL) & ~O_NONBLOCK);
    SHOW("splice-empty-pipe-nonblock", splice(in[0], NULL, c, NULL, 10, SPLICE_F_NONBLOCK));
    SHOW("copy-file-range-socket", copy_file_range(file, NULL, c, NULL, 10, 0));

    /* MSG_ZEROCOPY: ignored without SO_ZEROCOPY; with it, each send's completion arrives in
     * the error queue (POLLERR until read). */
    SHOW("zerocopy-send-without-option", send(c, content, 1000, MSG_ZEROCOPY));
    SAY("echo-matches: %d", read_pattern(c, 0, 1000));
    char control[256];
    struct msghdr em = {.msg_control = control, .msg_controllen = sizeof control};
    SHOW("errqueue-empty", recvmsg(c, &em, MSG_ERRQUEUE));
    int on = 1;
    SHOW("so-zerocopy", setsockopt(c, SOL_SOCKET, SO_ZEROCOPY, &on, sizeof on));
    for (int i = 0; i < 3; i++) SHOW("zerocopy-send", send(c, content + i * 1000, 1000, MSG_ZEROCOPY));
    SAY("echo-matches: %d", read_pattern(c, 0, 3000));
    long lo = -1, hi = -1;
    int origin_ok = 1, pollerr = 0;
    double zc_deadline = now() + 5;
    while (hi < 2 && now() < zc_deadline) {
        pollerr |= (revents_of(c, 0, 1000) & POLLERR) != 0;
        em.msg_control = control;
        em.msg_controllen = sizeof control;
        if (recvmsg(c, &em, MSG_ERRQUEUE) < 0) continue;
        struct cmsghdr *cm = CMSG_FIRSTHDR(&em);
        if (!cm || cm->cmsg_level != SOL_IP || cm->cmsg_type != IP_RECVERR) {
            origin_ok = 0;
            break;
        }
        struct sock_extended_err *ee = (struct sock_extended_err *)CMSG_DATA(cm);
        origin_ok &= ee->ee_origin == SO_EE_ORIGIN_ZEROCOPY && ee->ee_errno == 0;
        if (lo < 0) lo = ee->ee_info;
        hi = ee->ee_data;
    }
    SAY("zerocopy-completions: %ld..%ld origin-zerocopy %d pollerr %d", lo, hi, origin_ok, pollerr);
    em.msg_control = control;
    em.msg_controllen = sizeof control;
    SHOW("errqueue-drained", recvmsg(c, &em, MSG_ERRQUEUE));
    SHOW("pollerr-gone", revents_of(c, 0, 0));

    /* Non-blocking: sendfile takes what fits; the file offset says what went; nothing is lost. */
    fcntl(c, F_SETFL, fcntl(c, F_GETFL) | O_NONBLOCK);
    off = 0;
    long sent = 0, echoed = 0, calls = 0, partial = 0;
    int ok = 1;
    static unsigned char buf[65536];
    double deadline = now() + 20;
    while (echoed < SIZE && now() < deadline) {
        struct pollfd p = {.fd = c, .events = POLLIN | (sent < SIZE ? POLLOUT : 0)};
        poll(&p, 1, 1000);
        if (p.revents & POLLOUT) {
            long r = sendfile(c, file, &off, SIZE - sent);
            if (r > 0) {
                calls++;
                partial += r < SIZE - sent;
                sent += r;
                ok &= off == sent;
            } else if (errno != EAGAIN) {
                SAY("sendfile-nonblock: %s", strerrorname_np(errno));
                break;
            }
        }
        if (p.revents & POLLIN) {
            long r = recv(c, buf, sizeof buf, 0);
            if (r <= 0) break;
            for (long i = 0; i < r; i++) ok &= buf[i] == pattern_at(echoed + i);
            echoed += r;
        }
    }
    SAY("nonblocking: sent %ld echoed %ld in-order %d", sent, echoed, ok);
    /* Whether a call took less than asked depends on the send buffer of the moment. */
    fprintf(stderr, "tcp-transfer: %ld sendfile calls, %ld partial\n", calls, partial);

    /* Edge-triggered EPOLLOUT: after a send found the buffer full, the socket's next writable
     * moment is an edge (nginx and other event loops wait for exactly that). */
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLET, .data.u64 = 7};
    SHOW("epoll-add-et-out", epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev));
    struct epoll_event got_ev;
    SHOW("first-edge", epoll_wait(ep, &got_ev, 1, 1000));
    SHOW("no-second-edge", epoll_wait(ep, &got_ev, 1, 50));
    long filled = 0;
    while (1) {
        long r = send(c, content, 65536, 0);
        if (r < 0) break;
        filled += r;
    }
    SAY("filled-until: %s", strerrorname_np(errno));
    long drained = 0;
    int edge = 0;
    deadline = now() + 10;
    while (!edge && now() < deadline) {
        long r = recv(c, buf, sizeof buf, 0);
        if (r > 0) drained += r;
        edge = epoll_wait(ep, &got_ev, 1, 10) == 1 && (got_ev.events & EPOLLOUT);
    }
    SAY("edge-after-eagain: %d", edge);
    close(ep);
    /* Finish the exchange before exit (otherwise what is still queued is the kernel's to
     * deliver after a hand-over): our FIN, then the rest of the echo and the peer's FIN. */
    fcntl(c, F_SETFL, fcntl(c, F_GETFL) & ~O_NONBLOCK);
    set_rcvtimeo(c, 10000);
    shutdown(c, SHUT_WR);
    long r;
    while ((r = recv(c, buf, sizeof buf, 0)) > 0) drained += r;
    SAY("peer-end: %ld", r);
    close(c);
    close(file);
    close(in[0]);
    close(in[1]);
    close(out[0]);
    close(out[1]);
}

static int int_opt(int fd, int level, int name) {
    int v = -12345;
    socklen_t l = sizeof v;
    if (getsockopt(fd, level, name, &v, &l) != 0) return -errno;
    return v;
}

static void set_int(int fd, int level, int name, int v, const char *step) {
    SHOW(step, setsockopt(fd, level, name, &v, sizeof v));
}

static atomic_int sigios, rt_ios, rt_fd, rt_code;
static atomic_long rt_band;
static void on_sigio(int sig) { (void)sig; sigios++; }
static void on_rt_io(int sig, siginfo_t *info, void *uc) {
    (void)sig;
    (void)uc;
    rt_fd = info->si_fd;
    rt_band = info->si_band;
    rt_code = info->si_code;
    rt_ios++;
}

/* Socket options on a listener and what its accepted connections inherit; the queues' ioctls;
 * the options that describe the socket. */
void case_tcp_options(void) {
    current = "tcp-options";
    char buf[256];
    int ctl = udp_bound(41, 0);
    int l = tcp_socket(0);
    struct sockaddr_in a = any_port(base_port + 40);
    SHOW("bind", bind(l, (struct sockaddr *)&a, sizeof a));
    set_int(l, IPPROTO_TCP, TCP_NODELAY, 1, "listener-nodelay");
    set_int(l, SOL_SOCKET, SO_KEEPALIVE, 1, "listener-keepalive");
    set_int(l, IPPROTO_TCP, TCP_KEEPIDLE, 77, "listener-keepidle");
    set_int(l, IPPROTO_TCP, TCP_KEEPCNT, 4, "listener-keepcnt");
    set_int(l, IPPROTO_IP, IP_TOS, 0x20, "listener-tos");
    set_int(l, IPPROTO_IP, IP_TTL, 33, "listener-ttl");
    set_int(l, SOL_SOCKET, SO_RCVBUF, 50000, "listener-rcvbuf");
    struct linger lg = {.l_onoff = 1, .l_linger = 5};
    SHOW("listener-linger", setsockopt(l, SOL_SOCKET, SO_LINGER, &lg, sizeof lg));
    struct timeval tv = {.tv_sec = 3};
    SHOW("listener-rcvtimeo", setsockopt(l, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    set_int(l, SOL_SOCKET, SO_SNDLOWAT, 100, "listener-sndlowat");
    SHOW("listen", listen(l, 8));
    set_int(l, IPPROTO_TCP, TCP_KEEPINTVL, 9, "listener-keepintvl-after-listen");
    SAY("listener acceptconn %d type %d domain %d protocol %d", int_opt(l, SOL_SOCKET, SO_ACCEPTCONN),
        int_opt(l, SOL_SOCKET, SO_TYPE), int_opt(l, SOL_SOCKET, SO_DOMAIN), int_opt(l, SOL_SOCKET, SO_PROTOCOL));
    int q = -1;
    SHOW("listener-fionread", ioctl(l, FIONREAD, &q));
    SHOW("listener-siocoutq", ioctl(l, SIOCOUTQ, &q));

    ask_peer_to_connect(ctl, base_port + 40);
    int s = accept(l, NULL, NULL);
    SAY("accept: %d", s >= 0);
    SAY("accepted acceptconn %d type %d domain %d protocol %d", int_opt(s, SOL_SOCKET, SO_ACCEPTCONN),
        int_opt(s, SOL_SOCKET, SO_TYPE), int_opt(s, SOL_SOCKET, SO_DOMAIN), int_opt(s, SOL_SOCKET, SO_PROTOCOL));
    SAY("inherited nodelay %d keepalive %d keepidle %d keepintvl %d keepcnt %d tos %#x ttl %d rcvbuf %d",
        int_opt(s, IPPROTO_TCP, TCP_NODELAY), int_opt(s, SOL_SOCKET, SO_KEEPALIVE),
        int_opt(s, IPPROTO_TCP, TCP_KEEPIDLE), int_opt(s, IPPROTO_TCP, TCP_KEEPINTVL),
        int_opt(s, IPPROTO_TCP, TCP_KEEPCNT), int_opt(s, IPPROTO_IP, IP_TOS), int_opt(s, IPPROTO_IP, IP_TTL),
        int_opt(s, SOL_SOCKET, SO_RCVBUF));
    struct linger got_lg = {0};
    socklen_t ll = sizeof got_lg;
    getsockopt(s, SOL_SOCKET, SO_LINGER, &got_lg, &ll);
    struct timeval got_tv = {0};
    socklen_t tl = sizeof got_tv;
    getsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &got_tv, &tl);
    SAY("inherited linger %d/%d rcvtimeo %ld", got_lg.l_onoff, got_lg.l_linger, (long)got_tv.tv_sec);
    SHOW("recv-hello", recv(s, buf, 15, MSG_WAITALL));

    /* O_NONBLOCK both ways. */
    SHOW("set-nonblock", fcntl(s, F_SETFL, fcntl(s, F_GETFL) | O_NONBLOCK));
    SHOW("recv-nonblock", recv(s, buf, sizeof buf, 0));
    SHOW("clear-nonblock", fcntl(s, F_SETFL, fcntl(s, F_GETFL) & ~O_NONBLOCK));
    struct timeval short_tv = {.tv_usec = 100000};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &short_tv, sizeof short_tv);
    SHOW("recv-blocking-times-out", recv(s, buf, sizeof buf, 0));

    /* The queues: what waits to be read; what waits to be acknowledged. */
    SHOW("send", send(s, "0123456789", 10, 0));
    SHOW("poll-in", revents_of(s, POLLIN, 3000));
    msleep(50);
    q = -1;
    SHOW("fionread", ioctl(s, FIONREAD, &q));
    SAY("fionread-value: %d", q);
    q = -1;
    SHOW("siocinq", ioctl(s, SIOCINQ, &q));
    SAY("siocinq-value: %d", q);
    SHOW("recv-echo", recv(s, buf, 10, MSG_WAITALL));

    /* O_ASYNC: SIGIO to the owner when data arrives; with F_SETSIG, that signal carrying the
     * descriptor and the band. */
    signal(SIGIO, on_sigio);
    SHOW("f-setown", fcntl(s, F_SETOWN, getpid()));
    SHOW("o-async", fcntl(s, F_SETFL, fcntl(s, F_GETFL) | O_ASYNC));
    SHOW("send-for-sigio", send(s, "ping", 4, 0));
    for (int i = 0; i < 200 && !sigios; i++) msleep(10);
    SAY("sigio-on-data: %d", sigios > 0);
    SHOW("recv-ping", recv(s, buf, 4, MSG_WAITALL));
    struct sigaction sa = {.sa_sigaction = on_rt_io, .sa_flags = SA_SIGINFO | SA_RESTART};
    sigaction(SIGRTMIN + 1, &sa, NULL);
    SHOW("f-setsig", fcntl(s, F_SETSIG, SIGRTMIN + 1));
    SHOW("send-for-rt", send(s, "pong", 4, 0));
    for (int i = 0; i < 200 && !rt_ios; i++) msleep(10);
    /* si_code is POLL_IN from the kernel; exasock's worker can only queue SI_QUEUE. */
    SAY("rt-signal: %d fd-matches %d band-in %d", rt_ios > 0, rt_fd == s, (rt_band & POLLIN) != 0);
    fprintf(stderr, "tcp-options: si_code %d\n", (int)rt_code);
    SHOW("recv-pong", recv(s, buf, 4, MSG_WAITALL));
    SHOW("o-async-off", fcntl(s, F_SETFL, fcntl(s, F_GETFL) & ~O_ASYNC));
    signal(SIGIO, SIG_IGN);

    /* SO_PRIORITY is kept (exasock warns once that accelerated segments do not carry it). */
    set_int(s, SOL_SOCKET, SO_PRIORITY, 3, "so-priority");
    SAY("so-priority-value: %d", int_opt(s, SOL_SOCKET, SO_PRIORITY));

    /* Fill both directions (the peer echoes, we do not read): the send queue holds bytes. */
    fcntl(s, F_SETFL, fcntl(s, F_GETFL) | O_NONBLOCK);
    static char big[65536];
    long total = 0;
    /* Until the socket stays unwritable for 300 ms: the peer's receive buffer is full too. */
    for (int i = 0; i < 100000; i++) {
        long r = send(s, big, sizeof big, 0);
        if (r > 0) {
            total += r;
            continue;
        }
        if (errno != EAGAIN || revents_of(s, POLLOUT, 300) == 0) break;
    }
    SAY("filled: %s", strerrorname_np(errno));
    q = -1;
    SHOW("siocoutq", ioctl(s, SIOCOUTQ, &q));
    int sndbuf = int_opt(s, SOL_SOCKET, SO_SNDBUF);
    /* The kernel's queue may pass its SO_SNDBUF (it accounts buffers, not bytes): not compared. */
    SAY("siocoutq-holds-bytes: %d", q > 0);
    fprintf(stderr, "tcp-options: %ld bytes sent, SIOCOUTQ %d, SO_SNDBUF %d\n", total, q, sndbuf);
    q = -1;
    SHOW("fionread-full", ioctl(s, FIONREAD, &q));
    SAY("fionread-positive: %d", q > 0);
    struct linger zero = {.l_onoff = 1, .l_linger = 0};
    setsockopt(s, SOL_SOCKET, SO_LINGER, &zero, sizeof zero);
    close(s);
    peer_answer(ctl, "peer-after-reset");
    close(l);
    close(ctl);
}

enum { ACCEPT_THREADS = 4, PER_THREAD = 10, CONNS = ACCEPT_THREADS * PER_THREAD };
static int shared_listener;
static atomic_int accepted_total, bad_hello;
static atomic_int accepted_by[ACCEPT_THREADS];

/* Reads the peer's greeting and closes: the peer then reports "eof 0". */
static void serve_one(int s) {
    char buf[16] = {0};
    if (recv(s, buf, 15, MSG_WAITALL) != 15 || memcmp(buf, "hello from peer", 15)) bad_hello++;
    close(s);
}

/* Waits on its own epoll set with EPOLLEXCLUSIVE and accepts until EAGAIN. */
static void *exclusive_acceptor(void *arg) {
    int me = (int)(long)arg;
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.u32 = me};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, shared_listener, &ev)) bad_hello += 1000;
    double deadline = now() + 20;
    while (accepted_total < CONNS && now() < deadline) {
        struct epoll_event out;
        if (epoll_wait(ep, &out, 1, 100) != 1) continue;
        for (;;) {
            int s = accept4(shared_listener, NULL, NULL, 0);
            if (s < 0) break;
            accepted_by[me]++;
            accepted_total++;
            serve_one(s);
        }
    }
    close(ep);
    return NULL;
}

/* Blocking accept, PER_THREAD times. */
static void *blocking_acceptor(void *arg) {
    (void)arg;
    for (int i = 0; i < PER_THREAD; i++) {
        int s = accept(shared_listener, NULL, NULL);
        if (s < 0) {
            bad_hello += 1000;
            break;
        }
        accepted_total++;
        serve_one(s);
    }
    return NULL;
}

/* Counts the peer's reports, one per connection. */
static int peer_reports(int ctl, int n) {
    int eofs = 0;
    set_rcvtimeo(ctl, 10000);
    for (int i = 0; i < n; i++) {
        char ans[64] = {0};
        if (recv(ctl, ans, sizeof ans - 1, 0) <= 0) break;
        eofs += !strcmp(ans, "eof 0");
    }
    return eofs;
}

/* Threads sharing one listener: each on its own epoll set with EPOLLEXCLUSIVE (non-blocking
 * listener), then each in a blocking accept. Every connection is accepted exactly once. */
void case_tcp_accept_threads(void) {
    current = "tcp-accept-threads";
    int ctl = udp_bound(51, 0);
    pthread_t t[ACCEPT_THREADS];

    shared_listener = tcp_socket(SOCK_NONBLOCK);
    struct sockaddr_in a = any_port(base_port + 50);
    SHOW("bind", bind(shared_listener, (struct sockaddr *)&a, sizeof a));
    SHOW("listen", listen(shared_listener, 64));
    accepted_total = 0;
    for (long i = 0; i < ACCEPT_THREADS; i++) pthread_create(&t[i], NULL, exclusive_acceptor, (void *)i);
    for (int i = 0; i < CONNS; i++) ask_peer_to_connect(ctl, base_port + 50);
    for (int i = 0; i < ACCEPT_THREADS; i++) pthread_join(t[i], NULL);
    int busy = 0;
    for (int i = 0; i < ACCEPT_THREADS; i++) busy += accepted_by[i] > 0;
    SAY("epoll-exclusive: accepted %d bad %d", (int)accepted_total, (int)bad_hello);
    SAY("peer-saw-eof: %d", peer_reports(ctl, CONNS));
    fprintf(stderr, "tcp-accept-threads: %d of %d epoll threads accepted\n", busy, ACCEPT_THREADS);
    close(shared_listener);

    shared_listener = tcp_socket(0);
    a = any_port(base_port + 52);
    SHOW("bind-2", bind(shared_listener, (struct sockaddr *)&a, sizeof a));
    SHOW("listen-2", listen(shared_listener, 64));
    accepted_total = 0;
    for (long i = 0; i < ACCEPT_THREADS; i++) pthread_create(&t[i], NULL, blocking_acceptor, (void *)i);
    for (int i = 0; i < CONNS; i++) ask_peer_to_connect(ctl, base_port + 52);
    for (int i = 0; i < ACCEPT_THREADS; i++) pthread_join(t[i], NULL);
    SAY("blocking: accepted %d bad %d", (int)accepted_total, (int)bad_hello);
    SAY("peer-saw-eof: %d", peer_reports(ctl, CONNS));
    close(shared_listener);
    close(ctl);
}

/* Whether `n` bytes come back from the echo within `ms` (1), and reads them. */
static int echo_within(int s, long n, int ms, char *buf) {
    long got = 0;
    double end = now() + ms / 1000.0;
    while (got < n) {
        int left = (int)((end - now()) * 1000);
        if (left <= 0 || revents_of(s, POLLIN, left) <= 0) return 0;
        long r = recv(s, buf + got, n - got, MSG_DONTWAIT);
        if (r <= 0) return 0;
        got += r;
    }
    return 1;
}

static void say_congestion(int s, const char *step) {
    char name[16] = {0};
    socklen_t l = sizeof name;
    int r = getsockopt(s, IPPROTO_TCP, TCP_CONGESTION, name, &l);
    SAY("%s: %d %s", step, r, r == 0 ? name : strerrorname_np(errno));
}

static atomic_int sigurgs;
static void on_sigurg(int sig) { (void)sig; sigurgs++; }

/* recv and send flags (SO_PEEK_OFF, MSG_TRUNC, MSG_MORE, TCP_CORK, MSG_OOB both ways),
 * SO_RCVLOWAT, TCP_MAXSEG before connect, TCP_CONGESTION, SIOCOUTQNSD. */
void case_tcp_flags(void) {
    current = "tcp-flags";
    char buf[256] = {0};
    int c = tcp_socket(0);
    int v = 1000;
    SHOW("maxseg-before-connect", setsockopt(c, IPPROTO_TCP, TCP_MAXSEG, &v, sizeof v));
    v = 20;
    SHOW("maxseg-too-small", setsockopt(c, IPPROTO_TCP, TCP_MAXSEG, &v, sizeof v));
    SHOW("connect", connect(c, (struct sockaddr *)&peer, sizeof peer));
    int mss = 0;
    getsockopt(c, IPPROTO_TCP, TCP_MAXSEG, &mss, &(socklen_t){sizeof mss});
    SAY("maxseg-after-connect: %d", mss);

    /* SO_PEEK_OFF: peeks move on, reads move back. */
    SHOW("send", send(c, "abcdefghij", 10, 0));
    SHOW("poll", revents_of(c, POLLIN, 3000));
    msleep(30);
    v = 0;
    SHOW("peek-off-0", setsockopt(c, SOL_SOCKET, SO_PEEK_OFF, &v, sizeof v));
    memset(buf, 0, sizeof buf);
    SHOW("peek-3", recv(c, buf, 3, MSG_PEEK));
    SAY("data: %s", buf);
    SHOW("peek-3-more", recv(c, buf, 3, MSG_PEEK));
    SAY("data: %.3s", buf);
    int off = -2;
    getsockopt(c, SOL_SOCKET, SO_PEEK_OFF, &off, &(socklen_t){sizeof off});
    SAY("peek-off: %d", off);
    SHOW("recv-2", recv(c, buf, 2, 0));
    getsockopt(c, SOL_SOCKET, SO_PEEK_OFF, &off, &(socklen_t){sizeof off});
    SAY("peek-off-after-read: %d", off);
    SHOW("peek-2", recv(c, buf, 2, MSG_PEEK));
    SAY("data: %.2s", buf);
    v = -1;
    SHOW("peek-off-off", setsockopt(c, SOL_SOCKET, SO_PEEK_OFF, &v, sizeof v));
    /* MSG_TRUNC consumes without copying; with MSG_PEEK it only counts. */
    SHOW("trunc-peek", recv(c, NULL, 3, MSG_TRUNC | MSG_PEEK));
    SHOW("trunc-3", recv(c, NULL, 3, MSG_TRUNC));
    memset(buf, 0, sizeof buf);
    SHOW("recv-rest", recv(c, buf, sizeof buf, 0));
    SAY("data: %s", buf);

    /* MSG_MORE and TCP_CORK hold a partial segment; the next plain send or uncorking pushes. */
    SHOW("send-more", send(c, "more", 4, MSG_MORE));
    SAY("echo-within-50ms: %d", echo_within(c, 4, 50, buf));
    SHOW("send-rest", send(c, "!", 1, 0));
    SAY("echo-within-1s: %d", echo_within(c, 5, 1000, buf));
    v = 1;
    SHOW("cork-on", setsockopt(c, IPPROTO_TCP, TCP_CORK, &v, sizeof v));
    SHOW("send-corked", send(c, "corked", 6, 0));
    SAY("echo-within-50ms: %d", echo_within(c, 6, 50, buf));
    v = 0;
    SHOW("cork-off", setsockopt(c, IPPROTO_TCP, TCP_CORK, &v, sizeof v));
    SAY("echo-within-1s: %d", echo_within(c, 6, 1000, buf));

    /* Urgent data sent: the peer's kernel takes the last byte out of the stream (no
     * SO_OOBINLINE there), so the echo lacks it. */
    SHOW("send-oob", send(c, "abc", 3, MSG_OOB));
    memset(buf, 0, sizeof buf);
    SAY("echo-within-1s: %d data: %s", echo_within(c, 2, 1000, buf), buf);
    SHOW("nothing-more", recv(c, buf, sizeof buf, MSG_DONTWAIT));

    /* SO_RCVLOWAT: readable only once that many bytes wait. */
    v = 8;
    SHOW("rcvlowat", setsockopt(c, SOL_SOCKET, SO_RCVLOWAT, &v, sizeof v));
    SHOW("send-5", send(c, "12345", 5, 0));
    msleep(50);
    SHOW("poll-below-lowat", revents_of(c, POLLIN, 200));
    SHOW("send-5-more", send(c, "67890", 5, 0));
    SHOW("poll-at-lowat", revents_of(c, POLLIN, 3000));
    memset(buf, 0, sizeof buf);
    SHOW("recv-lowat", recv(c, buf, sizeof buf, MSG_WAITALL & 0));
    SAY("data: %s", buf);
    v = 1;
    setsockopt(c, SOL_SOCKET, SO_RCVLOWAT, &v, sizeof v);

    /* TCP_CONGESTION: what exists, and nothing else. */
    char name[16] = {0};
    socklen_t nl = sizeof name;
    SAY("congestion-default-has-name: %d", getsockopt(c, IPPROTO_TCP, TCP_CONGESTION, name, &nl) == 0 && name[0]);
    SHOW("set-reno", setsockopt(c, IPPROTO_TCP, TCP_CONGESTION, "reno", 4));
    say_congestion(c, "congestion");
    SHOW("set-cubic", setsockopt(c, IPPROTO_TCP, TCP_CONGESTION, "cubic", 5));
    say_congestion(c, "congestion");
    SHOW("set-nosuch", setsockopt(c, IPPROTO_TCP, TCP_CONGESTION, "nosuch", 6));
    say_congestion(c, "congestion");
    SHOW("send-after-switch", send(c, "switch", 6, 0));
    SAY("echo-within-1s: %d", echo_within(c, 6, 1000, buf));

    /* Options read back as set, and what they change on an idle connection. */
    v = 1;
    SHOW("quickack", setsockopt(c, IPPROTO_TCP, TCP_QUICKACK, &v, sizeof v));
    SAY("quickack-value: %d", int_opt(c, IPPROTO_TCP, TCP_QUICKACK));
    v = 5000;
    SHOW("user-timeout", setsockopt(c, IPPROTO_TCP, TCP_USER_TIMEOUT, &v, sizeof v));
    SAY("user-timeout-value: %d", int_opt(c, IPPROTO_TCP, TCP_USER_TIMEOUT));
    v = -1;
    SHOW("user-timeout-negative", setsockopt(c, IPPROTO_TCP, TCP_USER_TIMEOUT, &v, sizeof v));
    v = 1;
    SHOW("notsent-lowat", setsockopt(c, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &v, sizeof v));
    SAY("notsent-lowat-value: %d", int_opt(c, IPPROTO_TCP, TCP_NOTSENT_LOWAT));
    SHOW("poll-out-nothing-unsent", revents_of(c, POLLOUT, 1000));
    SHOW("send-under-notsent-lowat", send(c, "lowat", 5, 0));
    SAY("echo-within-1s: %d", echo_within(c, 5, 1000, buf));

    /* SIOCOUTQNSD: nothing waits unsent on an idle connection. */
    int q = -1;
    SHOW("siocoutqnsd", ioctl(c, SIOCOUTQNSD, &q));
    SAY("siocoutqnsd-value: %d", q);
    SHOW("siocatmark", ioctl(c, SIOCATMARK, &q));
    SAY("siocatmark-value: %d", q);
    close(c);

    /* Urgent data received: the peer sends "hello from peer", "X", the urgent "Y", "tail". */
    int ctl = udp_bound(61, 0);
    int l = tcp_socket(0);
    struct sockaddr_in a = any_port(base_port + 60);
    bind(l, (struct sockaddr *)&a, sizeof a);
    /* TCP_DEFER_ACCEPT: kept in SYN-ACK retransmissions, read back rounded (5 s reads 7); the
     * peer's greeting comes at once, so the connection is accepted at once. */
    v = 5;
    SHOW("defer-accept", setsockopt(l, IPPROTO_TCP, TCP_DEFER_ACCEPT, &v, sizeof v));
    SAY("defer-accept-value: %d", int_opt(l, IPPROTO_TCP, TCP_DEFER_ACCEPT));
    listen(l, 4);
    char req[32];
    int n = snprintf(req, sizeof req, "urgent %d", base_port + 60);
    sendto(ctl, req, n, 0, (struct sockaddr *)&connector, sizeof connector);
    int s = accept(l, NULL, NULL);
    SAY("accept: %d", s >= 0);
    signal(SIGURG, on_sigurg);
    SHOW("f-setown", fcntl(s, F_SETOWN, getpid()));
    SHOW("recv-hello", recv(s, buf, 15, MSG_WAITALL));
    SHOW("poll-pri", revents_of(s, POLLPRI, 3000));
    for (int i = 0; i < 100 && !sigurgs; i++) msleep(10);
    SAY("sigurg: %d", sigurgs > 0);
    msleep(100);
    int mark = -1;
    ioctl(s, SIOCATMARK, &mark);
    SAY("at-mark-before: %d", mark);
    memset(buf, 0, sizeof buf);
    SHOW("recv-to-mark", recv(s, buf, sizeof buf, 0));
    SAY("data: %s", buf);
    ioctl(s, SIOCATMARK, &mark);
    SAY("at-mark: %d", mark);
    char oob = 0;
    SHOW("recv-oob", recv(s, &oob, 1, MSG_OOB));
    SAY("oob: %c", oob);
    SHOW("recv-oob-again", recv(s, &oob, 1, MSG_OOB));
    memset(buf, 0, sizeof buf);
    SHOW("recv-tail", recv(s, buf, 4, MSG_WAITALL));
    SAY("data: %s", buf);
    close(s);
    peer_answer(ctl, "peer-after-close");
    close(l);
    close(ctl);
}

/* Four listeners in one SO_REUSEPORT group share 1,000 connections: each accepted once, every
 * listener taking some. */
void case_tcp_reuseport(void) {
    current = "tcp-reuseport";
    enum { LISTENERS = 4, TOTAL = 1000 };
    int ctl = udp_bound(71, 0);
    int l[LISTENERS];
    int one = 1;
    for (int i = 0; i < LISTENERS; i++) {
        l[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        SHOW("reuseport", setsockopt(l[i], SOL_SOCKET, SO_REUSEPORT, &one, sizeof one));
        struct sockaddr_in a = any_port(base_port + 70);
        SHOW("bind", bind(l[i], (struct sockaddr *)&a, sizeof a));
        SHOW("listen", listen(l[i], 256));
    }
    int plain = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = any_port(base_port + 70);
    SHOW("bind-without-reuseport", bind(plain, (struct sockaddr *)&a, sizeof a));
    close(plain);
    int per[LISTENERS] = {0};
    int accepted = 0, asked = 0, answers = 0, eofs = 0;
    set_rcvtimeo(ctl, 1);
    double deadline = now() + 60;
    while ((accepted < TOTAL || answers < TOTAL) && now() < deadline) {
        /* At most 50 connections outstanding at the peer. */
        while (asked < TOTAL && asked - answers < 50) {
            ask_peer_to_connect(ctl, base_port + 70);
            asked++;
        }
        struct pollfd p[LISTENERS + 1];
        for (int i = 0; i < LISTENERS; i++) p[i] = (struct pollfd){.fd = l[i], .events = POLLIN};
        p[LISTENERS] = (struct pollfd){.fd = ctl, .events = POLLIN};
        poll(p, LISTENERS + 1, 100);
        for (int i = 0; i < LISTENERS; i++) {
            for (;;) {
                int s = accept(l[i], NULL, NULL);
                if (s < 0) break;
                per[i]++;
                accepted++;
                close(s);
            }
        }
        char ans[64];
        long r;
        while ((r = recv(ctl, ans, sizeof ans - 1, MSG_DONTWAIT)) > 0) {
            ans[r] = 0;
            answers++;
            eofs += !strncmp(ans, "eof", 3);
        }
    }
    int used = 0, min = TOTAL;
    for (int i = 0; i < LISTENERS; i++) {
        used += per[i] > 0;
        if (per[i] < min) min = per[i];
    }
    /* Closed with the greeting unread: the peer sees a reset or an end, as the race goes. */
    SAY("accepted %d listeners-used %d peer-answers %d", accepted, used, answers);
    fprintf(stderr, "tcp-reuseport: the peer saw %d ends of stream\n", eofs);
    fprintf(stderr, "tcp-reuseport: per listener %d %d %d %d (fewest %d)\n", per[0], per[1], per[2], per[3], min);
    for (int i = 0; i < LISTENERS; i++) close(l[i]);
    close(ctl);
}
