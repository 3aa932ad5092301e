//! The monitor socket: changes to the routing, neighbour and address tables as they happen.

use super::*;

/// A second socket subscribed to RTNLGRP_NEIGH, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV4_IFADDR and
/// (where the kernel has it) RTNLGRP_IPV4_MCADDR,
/// non-blocking, so a driver can learn of changes without polling the kernel on the fast path.
pub struct Monitor {
    fd: OwnedFd,
    buf: Vec<u8>,
}

impl fmt::Debug for Monitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Monitor").field("fd", &self.fd).finish()
    }
}

impl AsFd for Monitor {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Monitor {
    /// Opens the monitor in the calling thread's network namespace (non-blocking, close-on-exec).
    /// Changes made after this returns are reported by [`Monitor::drain`].
    pub fn open() -> io::Result<Monitor> {
        let fd = open_socket(libc::SOCK_NONBLOCK)?;
        // A bigger queue makes overruns rarer; FORCE needs CAP_NET_ADMIN, the plain one is capped
        // by net.core.rmem_max. Best effort either way.
        if set_int_opt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, MONITOR_RCVBUF).is_err() {
            let _ = set_int_opt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUF, MONITOR_RCVBUF);
        }
        for group in [RTNLGRP_NEIGH, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV4_IFADDR] {
            set_int_opt(&fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, group as libc::c_int)?;
        }
        // Groups joined by interfaces: only since Linux 6.13 (then `Netlink::groups` fails too).
        let _ = set_int_opt(&fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, RTNLGRP_IPV4_MCADDR as libc::c_int);
        Ok(Monitor { fd, buf: vec![0; RECV_BUF] })
    }

    /// The socket, to wait on with poll/epoll: readable when changes are pending.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Reads everything pending without blocking (up to a few thousand datagrams per call) and
    /// appends the IPv4 changes to `out`, in the order the kernel made them; returns how many
    /// were appended. An overrun appends [`Change::Overrun`] (once per call) where it happened.
    pub fn drain(&mut self, out: &mut Vec<Change>) -> io::Result<usize> {
        let start = out.len();
        let mut overrun = false;
        for _ in 0..DRAIN_MAX {
            match recv_datagram(self.fd.as_raw_fd(), &mut self.buf) {
                Ok(n) => {
                    parse_changes(&self.buf[..n], out)?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    if !overrun {
                        out.push(Change::Overrun);
                        overrun = true;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out.len() - start)
    }
}
