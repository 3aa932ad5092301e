/* The UDP socket API beyond bytes (issue 17): control messages both ways, broadcast, groups.
 * The peer's echo server takes two commands (tests/common): "@what" answers with the TOS, TTL,
 * source and destination of what it received; "@send TOS TTL ADDR PORT COUNT TEXT" makes the
 * peer send datagrams with that TOS and TTL, then answer "sent COUNT". */
#include "suite.h"
#include <ifaddrs.h>
#include <net/if.h>

/* Our address toward the peer (the kernel's route). */
static struct in_addr local_toward_peer(void) {
    struct sockaddr_in me;
    socklen_t ml = sizeof me;
    int probe = socket(AF_INET, SOCK_DGRAM, 0);
    connect(probe, (struct sockaddr *)&peer, sizeof peer);
    getsockname(probe, (struct sockaddr *)&me, &ml);
    close(probe);
    return me.sin_addr;
}

/* Sends a command to the peer's echo server from `ctl` and prints its answer. */
static void peer_says(int ctl, const char *step, const char *cmd) {
    char answer[256];
    if (sendto(ctl, cmd, strlen(cmd), 0, (struct sockaddr *)&peer, sizeof peer) < 0) {
        SAY("%s: send failed: %s", step, strerrorname_np(errno));
        return;
    }
    long n = recv(ctl, answer, sizeof answer - 1, 0);
    if (n < 0) {
        SAY("%s: no answer: %s", step, strerrorname_np(errno));
        return;
    }
    answer[n] = 0;
    SAY("%s: %s", step, answer);
}

/* Asks the peer to send TEXT to ADDR:PORT with TOS and TTL, COUNT times. */
static void peer_sends(int ctl, const char *step, int tos, int ttl, const char *addr, int port, int count,
                       const char *text) {
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "@send %d %d %s %d %d %s", tos, ttl, addr, port, count, text);
    peer_says(ctl, step, cmd);
}

static const char *ifname(int index) {
    static char name[IF_NAMESIZE];
    if (!if_indextoname(index, name)) return "?";
    /* The accelerated interface's name changes from run to run of the test. */
    return strcmp(name, "lo") ? "veth" : "lo";
}

/* Prints one received message's payload, flags and control messages, decoded. */
static void show_message(const char *step, long n, struct msghdr *m, const char *data) {
    if (n < 0) {
        SAY("%s: -1 %s", step, strerrorname_np(errno));
        return;
    }
    SAY("%s: %ld \"%.*s\" controllen %zu%s%s", step, n, (int)(n > 40 ? 40 : n), data, (size_t)m->msg_controllen,
        m->msg_flags & MSG_CTRUNC ? " CTRUNC" : "", m->msg_flags & MSG_TRUNC ? " TRUNC" : "");
    for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
        size_t len = c->cmsg_len >= CMSG_LEN(0) ? c->cmsg_len - CMSG_LEN(0) : 0;
        unsigned char *d = CMSG_DATA(c);
        char a[INET_ADDRSTRLEN], b[INET_ADDRSTRLEN];
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO && len >= sizeof(struct in_pktinfo)) {
            struct in_pktinfo p;
            memcpy(&p, d, sizeof p);
            inet_ntop(AF_INET, &p.ipi_spec_dst, a, sizeof a);
            inet_ntop(AF_INET, &p.ipi_addr, b, sizeof b);
            SAY("%s:   IP_PKTINFO ifindex=%s spec_dst=%s addr=%s", step, ifname(p.ipi_ifindex), a, b);
        } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TTL && len >= sizeof(int)) {
            int v;
            memcpy(&v, d, sizeof v);
            SAY("%s:   IP_TTL %d", step, v);
        } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TOS && len >= 1) {
            SAY("%s:   IP_TOS 0x%02x (%zu byte)", step, d[0], len);
        } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_ORIGDSTADDR && len >= sizeof(struct sockaddr_in)) {
            struct sockaddr_in s;
            memcpy(&s, d, sizeof s);
            inet_ntop(AF_INET, &s.sin_addr, a, sizeof a);
            SAY("%s:   IP_ORIGDSTADDR family=%d %s:%d", step, s.sin_family, a, ntohs(s.sin_port) - base_port);
        } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL && len >= 4) {
            uint32_t v;
            memcpy(&v, d, sizeof v);
            SAY("%s:   SO_RXQ_OVFL >0=%d", step, v > 0);
        } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS && len >= sizeof(struct timespec)) {
            struct timespec t, now_rt;
            memcpy(&t, d, sizeof t);
            clock_gettime(CLOCK_REALTIME, &now_rt);
            double age = (now_rt.tv_sec - t.tv_sec) + (now_rt.tv_nsec - t.tv_nsec) / 1e9;
            SAY("%s:   SCM_TIMESTAMPNS recent=%d", step, age >= 0 && age < 5);
        } else {
            SAY("%s:   level %d type %d, %zu bytes", step, c->cmsg_level, c->cmsg_type, len);
        }
    }
}

/* recvmsg with a control buffer of `space` bytes (a null buffer when `space` < 0). */
static void receive_shown(int s, const char *step, int space, int flags) {
    char data[2048];
    union {
        struct cmsghdr align;
        char buf[512];
    } control;
    memset(&control, 0x55, sizeof control);
    struct sockaddr_in from;
    struct iovec iov = {.iov_base = data, .iov_len = sizeof data};
    struct msghdr m = {.msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &iov, .msg_iovlen = 1};
    m.msg_control = space < 0 ? NULL : control.buf;
    m.msg_controllen = space < 0 ? 0 : space;
    errno = 0;
    long n = recvmsg(s, &m, flags);
    show_message(step, n, &m, data);
}

static void set_on(int s, int level, int name, const char *step) {
    int on = 1;
    SHOW(step, setsockopt(s, level, name, &on, sizeof on));
}

/* Reads the peer's answer to "@what" and prints it without our port (it changes from run to
 * run). */
static void show_answer(int s, const char *step) {
    char answer[256];
    long n = recv(s, answer, sizeof answer - 1, 0);
    if (n < 0) {
        SAY("%s: no answer: %s", step, strerrorname_np(errno));
        return;
    }
    answer[n] = 0;
    char *colon = strchr(answer, ':');
    char *to = strstr(answer, " to=");
    if (colon && to && colon < to) memmove(colon, to, strlen(to) + 1);
    SAY("%s: peer saw %s", step, answer);
}

/* sendmsg of `text` to the peer's echo server with the control messages in `control`, then
 * the peer's "@what" answer. */
static void send_with_control(int s, const char *step, void *control, size_t len) {
    char text[] = "@what";
    struct iovec iov = {.iov_base = text, .iov_len = strlen(text)};
    struct msghdr m = {.msg_name = &peer, .msg_namelen = sizeof peer, .msg_iov = &iov, .msg_iovlen = 1};
    m.msg_control = control;
    m.msg_controllen = len;
    errno = 0;
    long r = sendmsg(s, &m, 0);
    show(step, r, errno);
    if (r >= 0) show_answer(s, step);
}

/* A control buffer with one message of `level`/`type` and `len` bytes of `data`. */
struct control_buf {
    union {
        struct cmsghdr align;
        char buf[256];
    } u;
    size_t used;
};

static void add_cmsg(struct control_buf *c, int level, int type, const void *data, size_t len) {
    struct cmsghdr *h = (struct cmsghdr *)(c->u.buf + c->used);
    h->cmsg_level = level;
    h->cmsg_type = type;
    h->cmsg_len = CMSG_LEN(len);
    memcpy(CMSG_DATA(h), data, len);
    c->used += CMSG_SPACE(len);
}

void case_ancillary(void) {
    current = "ancillary";
    int s = udp_bound(50, 0);
    int ctl = udp_bound(52, 0);
    set_rcvtimeo(s, 3000);
    set_rcvtimeo(ctl, 3000);
    struct in_addr me_addr = local_toward_peer();
    char me[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &me_addr, me, sizeof me);
    int port = base_port + 50;

    /* Nothing asked for: no control messages. */
    peer_sends(ctl, "plain-sent", 0x28, 9, me, port, 1, "plain");
    receive_shown(s, "plain", 256, 0);

    set_on(s, IPPROTO_IP, IP_PKTINFO, "set-pktinfo");
    set_on(s, IPPROTO_IP, IP_RECVTOS, "set-recvtos");
    set_on(s, IPPROTO_IP, IP_RECVTTL, "set-recvttl");
    set_on(s, IPPROTO_IP, IP_RECVORIGDSTADDR, "set-origdstaddr");
    set_on(s, SOL_SOCKET, SO_TIMESTAMPNS, "set-timestampns");
    set_on(s, SOL_SOCKET, SO_RXQ_OVFL, "set-rxq-ovfl");
    int v = 0;
    socklen_t vl = sizeof v;
    SHOW("get-pktinfo", getsockopt(s, IPPROTO_IP, IP_PKTINFO, &v, &vl));
    SAY("pktinfo: %d", v);

    /* Everything, with room for it. */
    peer_sends(ctl, "unicast-sent", 0x28, 9, me, port, 1, "unicast");
    receive_shown(s, "unicast", 256, 0);
    /* MSG_PEEK gives them too, and the datagram stays. */
    peer_sends(ctl, "peek-sent", 0xb8, 200, me, port, 1, "peeked");
    receive_shown(s, "peek", 256, MSG_PEEK);
    receive_shown(s, "after-peek", 256, 0);

    /* Too little room: cut as the kernel cuts (MSG_CTRUNC, a partial last message). */
    peer_sends(ctl, "short-sent", 0x04, 64, me, port, 5, "short");
    receive_shown(s, "no-buffer", -1, 0);
    receive_shown(s, "under-a-header", 10, 0);
    receive_shown(s, "one-and-a-bit", CMSG_SPACE(sizeof(struct timespec)) + 20, 0);
    receive_shown(s, "two-exactly", CMSG_SPACE(sizeof(struct timespec)) + CMSG_SPACE(sizeof(struct in_pktinfo)), 0);
    receive_shown(s, "all-but-one-byte",
                  CMSG_SPACE(sizeof(struct timespec)) + CMSG_SPACE(sizeof(struct in_pktinfo)) + CMSG_SPACE(sizeof(int)) +
                      CMSG_SPACE(1) + CMSG_LEN(sizeof(struct sockaddr_in)) - 1,
                  0);

    /* Several groups on one socket: each datagram says which. */
    struct ip_mreq mr = {.imr_interface = me_addr};
    inet_pton(AF_INET, "239.1.9.21", &mr.imr_multiaddr);
    SHOW("join-1", setsockopt(s, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof mr));
    inet_pton(AF_INET, "239.1.9.22", &mr.imr_multiaddr);
    SHOW("join-2", setsockopt(s, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof mr));
    peer_sends(ctl, "group-1-sent", 0x10, 5, "239.1.9.21", port, 1, "to group 1");
    receive_shown(s, "group-1", 256, 0);
    peer_sends(ctl, "group-2-sent", 0x10, 6, "239.1.9.22", port, 1, "to group 2");
    receive_shown(s, "group-2", 256, 0);

    /* sendmsg's control messages: IP_TOS (an int, a byte), IP_TTL, IP_PKTINFO's source. */
    struct control_buf c = {.used = 0};
    int tos = 0x10, ttl = 33;
    add_cmsg(&c, IPPROTO_IP, IP_TOS, &tos, sizeof tos);
    add_cmsg(&c, IPPROTO_IP, IP_TTL, &ttl, sizeof ttl);
    send_with_control(ctl, "send-tos-ttl", c.u.buf, c.used);
    c.used = 0;
    unsigned char tos_byte = 0x20;
    add_cmsg(&c, IPPROTO_IP, IP_TOS, &tos_byte, 1);
    send_with_control(ctl, "send-tos-byte", c.u.buf, c.used);
    c.used = 0;
    struct in_pktinfo pi = {.ipi_ifindex = 0, .ipi_spec_dst = me_addr};
    add_cmsg(&c, IPPROTO_IP, IP_PKTINFO, &pi, sizeof pi);
    send_with_control(ctl, "send-pktinfo-source", c.u.buf, c.used);
    c.used = 0;
    /* The interface toward the peer, by index (the namespace has it and lo). */
    struct in_pktinfo by_index = {.ipi_ifindex = 0};
    char name[IF_NAMESIZE];
    for (int i = 1; i < 64 && !by_index.ipi_ifindex; i++)
        if (if_indextoname(i, name) && strcmp(name, "lo")) by_index.ipi_ifindex = i;
    add_cmsg(&c, IPPROTO_IP, IP_PKTINFO, &by_index, sizeof by_index);
    send_with_control(ctl, "send-pktinfo-ifindex", c.u.buf, c.used);
    /* The errnos. */
    c.used = 0;
    int zero = 0;
    add_cmsg(&c, IPPROTO_IP, IP_TTL, &zero, sizeof zero);
    send_with_control(ctl, "send-ttl-0", c.u.buf, c.used);
    c.used = 0;
    int big = 256;
    add_cmsg(&c, IPPROTO_IP, IP_TTL, &big, sizeof big);
    send_with_control(ctl, "send-ttl-256", c.u.buf, c.used);
    c.used = 0;
    add_cmsg(&c, IPPROTO_IP, IP_TOS, &big, sizeof big);
    send_with_control(ctl, "send-tos-256", c.u.buf, c.used);
    c.used = 0;
    add_cmsg(&c, IPPROTO_IP, IP_PKTINFO, &pi, sizeof pi - 1);
    send_with_control(ctl, "send-pktinfo-short", c.u.buf, c.used);
    c.used = 0;
    add_cmsg(&c, IPPROTO_IP, IP_TTL, &ttl, sizeof ttl);
    ((struct cmsghdr *)c.u.buf)->cmsg_len = c.used + 8;
    send_with_control(ctl, "send-cmsg-past-the-end", c.u.buf, c.used);
    send_with_control(ctl, "send-null-control", NULL, 16);
    c.used = 0;
    int ignored = 7;
    add_cmsg(&c, IPPROTO_TCP, 1, &ignored, sizeof ignored);
    send_with_control(ctl, "send-other-level-ignored", c.u.buf, c.used);
    c.used = 0;
    struct in_pktinfo foreign = {.ipi_ifindex = 0};
    inet_pton(AF_INET, "10.99.0.77", &foreign.ipi_spec_dst);
    add_cmsg(&c, IPPROTO_IP, IP_PKTINFO, &foreign, sizeof foreign);
    {
        char text[] = "@what";
        struct iovec iov = {.iov_base = text, .iov_len = 5};
        struct msghdr m = {.msg_name = &peer, .msg_namelen = sizeof peer, .msg_iov = &iov, .msg_iovlen = 1};
        m.msg_control = c.u.buf;
        m.msg_controllen = c.used;
        SHOW("send-foreign-source", sendmsg(ctl, &m, 0));
    }

    /* SO_RXQ_OVFL: datagrams queued after drops carry the socket's drop count. A burst into a
     * small queue: those queued came before any drop; the next one after the drops says so. */
    int small = 1;
    SHOW("small-rcvbuf", setsockopt(s, SOL_SOCKET, SO_RCVBUF, &small, sizeof small));
    char big_text[1001];
    memset(big_text, 'x', 1000);
    big_text[1000] = 0;
    peer_sends(ctl, "burst-sent", 0, 64, me, port, 40, big_text);
    msleep(200);
    int queued = 0, with_ovfl = 0;
    for (;;) {
        char data[2048];
        union {
            struct cmsghdr align;
            char buf[256];
        } control;
        struct iovec iov = {.iov_base = data, .iov_len = sizeof data};
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                           .msg_controllen = sizeof control};
        if (recvmsg(s, &m, MSG_DONTWAIT) < 0) break;
        queued++;
        for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h))
            if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SO_RXQ_OVFL) with_ovfl++;
    }
    fprintf(stderr, "ancillary: burst of 40: %d queued\n", queued);
    SAY("burst: some-dropped=%d ovfl-on-queued=%d", queued < 40, with_ovfl);
    peer_sends(ctl, "after-drops-sent", 0, 64, me, port, 1, "after");
    receive_shown(s, "after-drops", 256, 0);
    close(s);
    close(ctl);
}

/* A UDP socket with SO_REUSEADDR bound to addr:port. */
static int reuse_bound(struct in_addr addr, int port) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    int on = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr = addr};
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0) {
        SAY("setup: cannot bind port %d: %s", port, strerror(errno));
        exit(2);
    }
    setsockopt(s, IPPROTO_IP, IP_PKTINFO, &on, sizeof on);
    return s;
}

/* The directed broadcast address of the subnet of `me` (its prefix's). */
static struct in_addr broadcast_of(struct in_addr me) {
    struct in_addr b = {.s_addr = INADDR_NONE};
    struct ifaddrs *all, *i;
    if (getifaddrs(&all) != 0) return b;
    for (i = all; i; i = i->ifa_next)
        if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET && i->ifa_netmask &&
            ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr == me.s_addr)
            b.s_addr = me.s_addr | ~((struct sockaddr_in *)i->ifa_netmask)->sin_addr.s_addr;
    freeifaddrs(all);
    return b;
}

/* Broadcast (issue 17): datagrams to the subnet's directed broadcast and to 255.255.255.255
 * reach every socket of the port bound to the wildcard, none bound to our unicast address;
 * sending to a broadcast address needs SO_BROADCAST (EACCES without it). A wildcard echo
 * server listens on the peer at the echo port + 2. */
void case_broadcast(void) {
    current = "broadcast";
    int port = base_port + 60;
    struct in_addr any = {.s_addr = INADDR_ANY}, me = local_toward_peer(), bcast = broadcast_of(me);
    char bcast_text[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &bcast, bcast_text, sizeof bcast_text);
    int a = reuse_bound(any, port), b = reuse_bound(any, port), u = reuse_bound(me, port);
    int ctl = udp_bound(62, 0);
    set_rcvtimeo(a, 3000);
    set_rcvtimeo(b, 3000);
    set_rcvtimeo(ctl, 3000);
    peer_sends(ctl, "directed-sent", 0, 64, bcast_text, port, 1, "directed");
    receive_shown(a, "directed-a", 256, 0);
    receive_shown(b, "directed-b", 256, 0);
    peer_sends(ctl, "limited-sent", 0, 64, "255.255.255.255", port, 1, "limited");
    receive_shown(a, "limited-a", 256, 0);
    receive_shown(b, "limited-b", 256, 0);
    msleep(100);
    receive_shown(u, "unicast-bound-gets-none", 256, MSG_DONTWAIT);

    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(ntohs(peer.sin_port) + 2), .sin_addr = bcast};
    struct sockaddr_in limited = to;
    limited.sin_addr.s_addr = INADDR_BROADCAST;
    int v = -1;
    socklen_t vl = sizeof v;
    SHOW("get-broadcast", getsockopt(ctl, SOL_SOCKET, SO_BROADCAST, &v, &vl));
    SAY("broadcast: %d", v);
    SHOW("send-directed-denied", sendto(ctl, "@what", 5, 0, (struct sockaddr *)&to, sizeof to));
    SHOW("send-limited-denied", sendto(ctl, "@what", 5, 0, (struct sockaddr *)&limited, sizeof limited));
    int on = 1, off = 0;
    SHOW("set-broadcast", setsockopt(ctl, SOL_SOCKET, SO_BROADCAST, &on, sizeof on));
    SHOW("send-directed", sendto(ctl, "@what", 5, 0, (struct sockaddr *)&to, sizeof to));
    show_answer(ctl, "send-directed");
    /* No route for 255.255.255.255 here: ENETUNREACH, unless a source address names the
     * interface (IP_PKTINFO here; a bind to it, IP_MULTICAST_IF, as well). */
    SHOW("send-limited", sendto(ctl, "@what", 5, 0, (struct sockaddr *)&limited, sizeof limited));
    show_answer(ctl, "send-limited");
    {
        struct control_buf c = {.used = 0};
        struct in_pktinfo pi = {.ipi_ifindex = 0, .ipi_spec_dst = me};
        add_cmsg(&c, IPPROTO_IP, IP_PKTINFO, &pi, sizeof pi);
        char text[] = "@what";
        struct iovec iov = {.iov_base = text, .iov_len = 5};
        struct msghdr m = {.msg_name = &limited, .msg_namelen = sizeof limited, .msg_iov = &iov, .msg_iovlen = 1};
        m.msg_control = c.u.buf;
        m.msg_controllen = c.used;
        SHOW("send-limited-from-our-address", sendmsg(ctl, &m, 0));
        show_answer(ctl, "send-limited-from-our-address");
    }
    /* A broadcast the host sends reaches its own sockets of the port too (Linux loops every
     * one): the accelerated wildcard sockets and a kernel socket (raw syscalls). */
    int k = (int)syscall(SYS_socket, AF_INET, SOCK_DGRAM, 0);
    syscall(SYS_setsockopt, k, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    struct sockaddr_in ka = any_port(port);
    SHOW("kernel-bind", syscall(SYS_bind, k, &ka, sizeof ka));
    struct sockaddr_in here = to;
    here.sin_port = htons(port);
    SHOW("send-to-our-port", sendto(ctl, "looped", 6, 0, (struct sockaddr *)&here, sizeof here));
    msleep(100);
    receive_shown(a, "looped-a", 256, MSG_DONTWAIT);
    receive_shown(b, "looped-b", 256, MSG_DONTWAIT);
    receive_shown(u, "looped-unicast-bound", 256, MSG_DONTWAIT);
    char kbuf[64];
    long kn = syscall(SYS_recvfrom, k, kbuf, sizeof kbuf, MSG_DONTWAIT, NULL, NULL);
    if (kn < 0) SAY("looped-kernel: -1 %s", strerrorname_np(errno));
    else SAY("looped-kernel: %ld \"%.*s\"", kn, (int)kn, kbuf);
    syscall(SYS_close, k);
    SHOW("clear-broadcast", setsockopt(ctl, SOL_SOCKET, SO_BROADCAST, &off, sizeof off));
    SHOW("send-directed-denied-again", sendto(ctl, "@what", 5, 0, (struct sockaddr *)&to, sizeof to));
    close(a);
    close(b);
    close(u);
    close(ctl);
}

/* Joins `group` on our interface toward the peer. */
static void join(int s, const char *step, const char *group, struct in_addr me) {
    struct ip_mreq mr = {.imr_interface = me};
    inet_pton(AF_INET, group, &mr.imr_multiaddr);
    SHOW(step, setsockopt(s, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof mr));
}

/* IP_MULTICAST_ALL (issue 17), on by default as on Linux: a socket bound to the wildcard
 * receives every group joined on the host on its port, not only its own joins; off, only its
 * own. Four wildcard sockets: `member` (joins G1) and `all` and `own` (IP_MULTICAST_ALL off)
 * on port P, `elsewhere` on port P2; `other` joins G2 on port P3. */
void case_mcast_all(void) {
    current = "mcast-all";
    struct in_addr any = {.s_addr = INADDR_ANY}, me = local_toward_peer();
    int p = base_port + 70, p2 = base_port + 71;
    int member = reuse_bound(any, p), all = reuse_bound(any, p), own = reuse_bound(any, p);
    int elsewhere = reuse_bound(any, p2), other = reuse_bound(any, base_port + 72);
    int ctl = udp_bound(73, 0);
    set_rcvtimeo(ctl, 3000);
    int off = 0, v = -1;
    socklen_t vl = sizeof v;
    SHOW("get-default", getsockopt(all, IPPROTO_IP, IP_MULTICAST_ALL, &v, &vl));
    SAY("default: %d", v);
    SHOW("set-off", setsockopt(own, IPPROTO_IP, IP_MULTICAST_ALL, &off, sizeof off));
    vl = sizeof v;
    SHOW("get-off", getsockopt(own, IPPROTO_IP, IP_MULTICAST_ALL, &v, &vl));
    SAY("off: %d", v);
    join(member, "join-g1", "239.1.9.31", me);
    join(other, "join-g2-on-p3", "239.1.9.32", me);
    struct {
        const char *name, *group;
        int port;
    } sends[] = {
        {"g1-to-p", "239.1.9.31", p},
        {"g2-to-p", "239.1.9.32", p},
        {"g3-to-p", "239.1.9.33", p},
        {"g1-to-p2", "239.1.9.31", p2},
    };
    int socks[] = {member, all, own, elsewhere};
    const char *names[] = {"member", "all", "own", "elsewhere"};
    for (size_t i = 0; i < sizeof sends / sizeof sends[0]; i++) {
        char step[64];
        snprintf(step, sizeof step, "%s-sent", sends[i].name);
        peer_sends(ctl, step, 0, 4, sends[i].group, sends[i].port, 1, sends[i].name);
        msleep(150);
        for (int k = 0; k < 4; k++) {
            snprintf(step, sizeof step, "%s %s", sends[i].name, names[k]);
            receive_shown(socks[k], step, 256, MSG_DONTWAIT);
        }
    }
    /* The member leaves: G1 is joined no more, nobody gets it. */
    struct ip_mreq mr = {.imr_interface = me};
    inet_pton(AF_INET, "239.1.9.31", &mr.imr_multiaddr);
    SHOW("leave-g1", setsockopt(member, IPPROTO_IP, IP_DROP_MEMBERSHIP, &mr, sizeof mr));
    peer_sends(ctl, "g1-after-leave-sent", 0, 4, "239.1.9.31", p, 1, "after-leave");
    msleep(150);
    for (int k = 0; k < 4; k++) {
        char step[64];
        snprintf(step, sizeof step, "after-leave %s", names[k]);
        receive_shown(socks[k], step, 256, MSG_DONTWAIT);
    }
    for (int k = 0; k < 4; k++) close(socks[k]);
    close(other);
    close(ctl);
}

/* IP_MULTICAST_LOOP (issue 17), on by default: a datagram sent to a group reaches this host's
 * members of it, an accelerated socket of this process and a kernel socket (made with raw
 * syscalls, which exasock never sees); off, none of them. */
void case_mcast_loop(void) {
    current = "mcast-loop";
    struct in_addr any = {.s_addr = INADDR_ANY}, me = local_toward_peer();
    int p = base_port + 81;
    int s = udp_bound(80, 0);
    int member = reuse_bound(any, p);
    join(member, "join", "239.1.9.41", me);
    /* The kernel's own member. */
    int k = (int)syscall(SYS_socket, AF_INET, SOCK_DGRAM, 0);
    int on = 1;
    syscall(SYS_setsockopt, k, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    struct sockaddr_in ka = any_port(p);
    SHOW("kernel-bind", syscall(SYS_bind, k, &ka, sizeof ka));
    struct ip_mreq mr = {.imr_interface = me};
    inet_pton(AF_INET, "239.1.9.41", &mr.imr_multiaddr);
    SHOW("kernel-join", syscall(SYS_setsockopt, k, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof mr));
    /* (Other members' joins reach exasock within a millisecond.) */
    msleep(5);
    SHOW("multicast-if", setsockopt(s, IPPROTO_IP, IP_MULTICAST_IF, &me, sizeof me));
    int v = -1;
    socklen_t vl = sizeof v;
    SHOW("get-loop", getsockopt(s, IPPROTO_IP, IP_MULTICAST_LOOP, &v, &vl));
    SAY("loop: %d", v);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(p), .sin_addr = mr.imr_multiaddr};
    const char *texts[] = {"loop-on", "loop-off"};
    for (int round = 0; round < 2; round++) {
        char step[64];
        if (round == 1) {
            int off = 0;
            SHOW("set-loop-off", setsockopt(s, IPPROTO_IP, IP_MULTICAST_LOOP, &off, sizeof off));
            vl = sizeof v;
            SHOW("get-loop-off", getsockopt(s, IPPROTO_IP, IP_MULTICAST_LOOP, &v, &vl));
            SAY("loop: %d", v);
        }
        snprintf(step, sizeof step, "%s-send", texts[round]);
        SHOW(step, sendto(s, texts[round], strlen(texts[round]), 0, (struct sockaddr *)&to, sizeof to));
        msleep(150);
        snprintf(step, sizeof step, "%s member", texts[round]);
        receive_shown(member, step, 256, MSG_DONTWAIT);
        char buf[64];
        long n = syscall(SYS_recvfrom, k, buf, sizeof buf, MSG_DONTWAIT, NULL, NULL);
        if (n < 0) SAY("%s kernel-member: -1 %s", texts[round], strerrorname_np(errno));
        else SAY("%s kernel-member: %ld \"%.*s\"", texts[round], n, (int)n, buf);
    }
    close(s);
    close(member);
    syscall(SYS_close, k);
}

/* Sending to a group (issue 17): the source is the bound address, else IP_MULTICAST_IF's, else
 * the route's (none here: ENETUNREACH); the TTL is IP_MULTICAST_TTL's (0 leaves the host when
 * no socket here is a member);
 * IP_TOS applies. A peer member on the echo port + 3 answers "@what". Then source-specific
 * membership: only the named source's datagrams arrive. */
void case_mcast_tx(void) {
    current = "mcast-tx";
    struct in_addr me = local_toward_peer(), any = {.s_addr = INADDR_ANY};
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(ntohs(peer.sin_port) + 3)};
    inet_pton(AF_INET, "239.1.9.51", &to.sin_addr);
    int s = udp_bound(90, 0);
    set_rcvtimeo(s, 2000);
    SHOW("send-no-route", sendto(s, "@what", 5, 0, (struct sockaddr *)&to, sizeof to));
    SHOW("multicast-if-addr", setsockopt(s, IPPROTO_IP, IP_MULTICAST_IF, &me, sizeof me));
    SHOW("send-if-addr", sendto(s, "@what", 5, 0, (struct sockaddr *)&to, sizeof to));
    show_answer(s, "send-if-addr");
    int ttl = 7, tos = 0x20;
    SHOW("multicast-ttl", setsockopt(s, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof ttl));
    SHOW("tos", setsockopt(s, IPPROTO_IP, IP_TOS, &tos, sizeof tos));
    SHOW("send-ttl-tos", sendto(s, "@what", 5, 0, (struct sockaddr *)&to, sizeof to));
    show_answer(s, "send-ttl-tos");
    struct ip_mreqn by_index = {.imr_ifindex = 0};
    char name[IF_NAMESIZE];
    for (int i = 1; i < 64 && !by_index.imr_ifindex; i++)
        if (if_indextoname(i, name) && strcmp(name, "lo")) by_index.imr_ifindex = i;
    SHOW("multicast-if-index", setsockopt(s, IPPROTO_IP, IP_MULTICAST_IF, &by_index, sizeof by_index));
    SHOW("send-if-index", sendto(s, "@what", 5, 0, (struct sockaddr *)&to, sizeof to));
    show_answer(s, "send-if-index");
    struct ip_mreq by_mreq = {.imr_multiaddr = to.sin_addr, .imr_interface = me};
    SHOW("multicast-if-mreq", setsockopt(s, IPPROTO_IP, IP_MULTICAST_IF, &by_mreq, sizeof by_mreq));
    SHOW("send-if-mreq", sendto(s, "@what", 5, 0, (struct sockaddr *)&to, sizeof to));
    show_answer(s, "send-if-mreq");
    int zero = 0;
    SHOW("multicast-ttl-0", setsockopt(s, IPPROTO_IP, IP_MULTICAST_TTL, &zero, sizeof zero));
    set_rcvtimeo(s, 500);
    SHOW("send-ttl-0", sendto(s, "@what", 5, 0, (struct sockaddr *)&to, sizeof to));
    show_answer(s, "send-ttl-0");
    int bound = reuse_bound(me, base_port + 91);
    set_rcvtimeo(bound, 2000);
    SHOW("send-from-bound", sendto(bound, "@what", 5, 0, (struct sockaddr *)&to, sizeof to));
    show_answer(bound, "send-from-bound");

    /* Source-specific membership. */
    int r = reuse_bound(any, base_port + 92);
    int ctl = udp_bound(93, 0);
    set_rcvtimeo(ctl, 3000);
    struct ip_mreq_source ms = {.imr_interface = me, .imr_sourceaddr = peer.sin_addr};
    inet_pton(AF_INET, "239.1.9.52", &ms.imr_multiaddr);
    SHOW("join-source", setsockopt(r, IPPROTO_IP, IP_ADD_SOURCE_MEMBERSHIP, &ms, sizeof ms));
    peer_sends(ctl, "from-source-sent", 0, 4, "239.1.9.52", base_port + 92, 1, "from-source");
    msleep(150);
    receive_shown(r, "from-source", 256, MSG_DONTWAIT);
    SHOW("leave-source", setsockopt(r, IPPROTO_IP, IP_DROP_SOURCE_MEMBERSHIP, &ms, sizeof ms));
    inet_pton(AF_INET, "10.99.0.77", &ms.imr_sourceaddr);
    SHOW("join-other-source", setsockopt(r, IPPROTO_IP, IP_ADD_SOURCE_MEMBERSHIP, &ms, sizeof ms));
    peer_sends(ctl, "not-from-source-sent", 0, 4, "239.1.9.52", base_port + 92, 1, "not-from-source");
    msleep(150);
    receive_shown(r, "not-from-source", 256, MSG_DONTWAIT);

    /* Another socket of the port joins the group for any source: it gets the peer's datagrams,
     * `r` (a member for another source only) still none, as ip_mc_sf_allow filters them, even
     * though the group is now joined on the host (IP_MULTICAST_ALL). Blocking the peer on the
     * any-source member stops them there too; unblocking brings them back. */
    int all = reuse_bound(any, base_port + 92);
    /* The same source-specific membership through the protocol-independent API. */
    int r2 = reuse_bound(any, base_port + 92);
    struct group_source_req gsr = {.gsr_interface = by_index.imr_ifindex};
    struct sockaddr_in *gsr_group = (struct sockaddr_in *)&gsr.gsr_group, *gsr_source = (struct sockaddr_in *)&gsr.gsr_source;
    gsr_group->sin_family = gsr_source->sin_family = AF_INET;
    gsr_group->sin_addr = ms.imr_multiaddr;
    inet_pton(AF_INET, "10.99.0.77", &gsr_source->sin_addr);
    SHOW("mcast-join-other-source", setsockopt(r2, IPPROTO_IP, MCAST_JOIN_SOURCE_GROUP, &gsr, sizeof gsr));
    struct ip_mreq m = {.imr_multiaddr = ms.imr_multiaddr, .imr_interface = me};
    SHOW("join-any-source", setsockopt(all, IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof m));
    peer_sends(ctl, "any-source-sent", 0, 4, "239.1.9.52", base_port + 92, 1, "any-source");
    msleep(150);
    receive_shown(all, "any-source all", 256, MSG_DONTWAIT);
    receive_shown(r, "any-source other-source-member", 256, MSG_DONTWAIT);
    receive_shown(r2, "any-source other-source-member-gsr", 256, MSG_DONTWAIT);
    struct ip_mreq_source block = {.imr_multiaddr = ms.imr_multiaddr, .imr_interface = me,
                                   .imr_sourceaddr = peer.sin_addr};
    SHOW("block-source", setsockopt(all, IPPROTO_IP, IP_BLOCK_SOURCE, &block, sizeof block));
    peer_sends(ctl, "blocked-sent", 0, 4, "239.1.9.52", base_port + 92, 1, "blocked");
    msleep(150);
    receive_shown(all, "blocked all", 256, MSG_DONTWAIT);
    receive_shown(r, "blocked other-source-member", 256, MSG_DONTWAIT);
    SHOW("unblock-source", setsockopt(all, IPPROTO_IP, IP_UNBLOCK_SOURCE, &block, sizeof block));
    peer_sends(ctl, "unblocked-sent", 0, 4, "239.1.9.52", base_port + 92, 1, "unblocked");
    msleep(150);
    receive_shown(all, "unblocked all", 256, MSG_DONTWAIT);
    receive_shown(r, "unblocked other-source-member", 256, MSG_DONTWAIT);
    receive_shown(r2, "unblocked other-source-member-gsr", 256, MSG_DONTWAIT);
    close(all);
    close(r2);
    close(s);
    close(bound);
    close(r);
    close(ctl);
}

/* Delivery (issue 17): a wildcard socket takes its two groups and unicast; a socket bound to
 * our unicast address takes no group; one bound to a group takes only that group; a wildcard
 * socket connected to the peer's echo port, a member of the groups, takes none of the
 * datagrams the peer sends from another port (the 4-tuple filters). */
void case_mcast_deliver(void) {
    current = "mcast-deliver";
    struct in_addr any = {.s_addr = INADDR_ANY}, me = local_toward_peer(), g1;
    inet_pton(AF_INET, "239.1.9.61", &g1);
    int p = base_port + 95;
    int w = reuse_bound(any, p), u = reuse_bound(me, p), g = reuse_bound(g1, p), c = reuse_bound(any, p);
    int ctl = udp_bound(96, 0);
    set_rcvtimeo(ctl, 3000);
    join(w, "join-w-g1", "239.1.9.61", me);
    join(w, "join-w-g2", "239.1.9.62", me);
    join(g, "join-g-g1", "239.1.9.61", me);
    join(c, "join-c-g1", "239.1.9.61", me);
    join(c, "join-c-g2", "239.1.9.62", me);
    SHOW("connect-c", connect(c, (struct sockaddr *)&peer, sizeof peer));
    char mine[32];
    inet_ntop(AF_INET, &me, mine, sizeof mine);
    struct {
        const char *name, *addr;
    } sends[] = {{"g1", "239.1.9.61"}, {"g2", "239.1.9.62"}, {"unicast", mine}};
    int socks[] = {w, u, g, c};
    const char *names[] = {"wildcard", "unicast-bound", "group-bound", "connected"};
    for (size_t i = 0; i < sizeof sends / sizeof sends[0]; i++) {
        char step[64];
        snprintf(step, sizeof step, "%s-sent", sends[i].name);
        peer_sends(ctl, step, 0, 4, sends[i].addr, p, 1, sends[i].name);
        msleep(150);
        for (int k = 0; k < 4; k++) {
            snprintf(step, sizeof step, "%s %s", sends[i].name, names[k]);
            receive_shown(socks[k], step, 0, MSG_DONTWAIT);
        }
    }
    /* Without the socket bound to the address, unicast is the wildcard member's too. */
    close(u);
    peer_sends(ctl, "unicast-again-sent", 0, 4, mine, p, 1, "unicast-again");
    msleep(150);
    receive_shown(w, "unicast-again wildcard", 0, MSG_DONTWAIT);
    receive_shown(c, "unicast-again connected", 0, MSG_DONTWAIT);
    close(w);
    close(g);
    close(c);
    close(ctl);
}
