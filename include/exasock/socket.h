/*
 * <exasock/socket.h>: exasock's private socket options and message flags.
 *
 * Programs include this to control acceleration per socket; it works with or without exasock
 * loaded (without it, the kernel rejects SOL_EXASOCK with ENOPROTOOPT).
 */
#ifndef EXASOCK_SOCKET_H
#define EXASOCK_SOCKET_H

#include <errno.h>
#include <sys/socket.h>

/* The setsockopt()/getsockopt() level of every option below. */
#define SOL_EXASOCK 0x200

/*
 * SO_EXA_NO_ACCEL (int, boolean). 1: never accelerate this socket (permanent; EPERM once the
 * socket is accelerated). 0: allow acceleration of a socket created under --no-auto
 * (EXASOCK_DEFAULT_DISABLE); EPERM on a socket already disabled. getsockopt() reports whether
 * the socket is disabled or not yet allowed.
 */
#define SO_EXA_NO_ACCEL 1

/*
 * SO_EXA_MCAST_LISTEN (struct ip_mreqn or struct ip_mreq): receive a multicast group arriving
 * on an accelerated interface (or any of them, with INADDR_ANY / ifindex 0) without sending an
 * IGMP join. EINVAL if the address is not multicast or the interface is not accelerated;
 * EPERM if the socket is not a datagram socket or its acceleration is disabled; EADDRINUSE
 * for a duplicate; EOPNOTSUPP if the socket joined a group on an interface that is not
 * accelerated. On a socket not yet bound the membership starts when it is bound.
 */
#define SO_EXA_MCAST_LISTEN 2

/*
 * SO_EXA_ATE (int): the ExaNIC Accelerated TCP Engine a TCP socket is to use (-1: none). No
 * commodity NIC has one: connect() of such a socket fails with EOPNOTSUPP.
 */
#define SO_EXA_ATE 3

/*
 * MSG_EXA_WARM: a send() flag that runs the send path without sending, to keep it in cache
 * just before a real send. The length is returned; nothing reaches the wire.
 */
#define MSG_EXA_WARM 0x100000

/* Disables acceleration on fd: setsockopt(SO_EXA_NO_ACCEL, 1). */
static inline int exasock_disable_acceleration(int fd)
{
    int one = 1;
    return setsockopt(fd, SOL_EXASOCK, SO_EXA_NO_ACCEL, &one, sizeof(one));
}

/* Sets SO_EXA_ATE to ate_id (EINVAL when negative), then connects fd to addr. */
static inline int exasock_ate_connect(int fd, int ate_id, const struct sockaddr *addr, socklen_t addrlen)
{
    if (ate_id < 0) {
        errno = EINVAL;
        return -1;
    }
    if (setsockopt(fd, SOL_EXASOCK, SO_EXA_ATE, &ate_id, sizeof(ate_id)) != 0)
        return -1;
    return connect(fd, addr, addrlen);
}

#endif /* EXASOCK_SOCKET_H */
