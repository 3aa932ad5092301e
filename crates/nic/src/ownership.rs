//! Whether this process holds a kernel socket bound to a flow's port: the proof a claim needs.
//!
//! A process may only steer to itself the traffic of a port that its own kernel socket
//! reserves, as the kernel would only deliver it there. The kernel sockets of the process are
//! its descriptors: `/proc/self/fd` lists them, and getsockname on each says where it is bound.
//! That sees bound-only TCP sockets too (a connect's reserved source port), which the
//! `/proc/net/tcp` tables and sock_diag dumps of this kernel generation do not list. Everything
//! here is a raw syscall: under the preload library, libc's socket calls are ours.

use crate::steering::Protocol;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::RawFd;

/// SO_NETNS_COOKIE (Linux 5.14).
const SO_NETNS_COOKIE: libc::c_int = 71;

/// What a kernel socket is bound to, as far as IPv4 flows care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bound {
    protocol: Protocol,
    /// `UNSPECIFIED` for INADDR_ANY (or a dual-stack `::`).
    ip: Ipv4Addr,
    port: u16,
}

/// Whether a socket bound as `b` reserves (`protocol`, `ip`, `port`) for its process: same
/// protocol and port, and bound to that address or to every address.
fn covers(b: Bound, protocol: Protocol, ip: Ipv4Addr, port: u16) -> bool {
    b.protocol == protocol && b.port == port && (b.ip.is_unspecified() || b.ip == ip)
}

fn getsockopt_int(fd: RawFd, level: libc::c_int, name: libc::c_int) -> Option<u64> {
    let mut v = 0u64;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into a u64 we own.
    let r = unsafe {
        libc::syscall(libc::SYS_getsockopt, fd, level, name, &mut v as *mut u64, &mut len as *mut libc::socklen_t)
    };
    (r == 0).then_some(if len == 4 { v & 0xffff_ffff } else { v })
}

/// Where the socket `fd` is bound, if it is a UDP or TCP socket of the IPv4 family, or an IPv6
/// one that takes IPv4 (bound to `::` without IPV6_V6ONLY, or to a v4-mapped address), bound
/// to a port, in the network namespace of cookie `netns`. None for everything else (not a
/// socket, closed meanwhile, unbound, another namespace).
fn bound(fd: RawFd, netns: u64) -> Option<Bound> {
    // SAFETY: sockaddr_storage is plain bytes; getsockname writes at most `len` of them.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: as above.
    let r = unsafe {
        libc::syscall(
            libc::SYS_getsockname,
            fd,
            &mut ss as *mut libc::sockaddr_storage,
            &mut len as *mut libc::socklen_t,
        )
    };
    if r != 0 {
        return None;
    }
    let (ip, port) = match i32::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in.
            let sin = unsafe { &*(&ss as *const libc::sockaddr_storage as *const libc::sockaddr_in) };
            (Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)), u16::from_be(sin.sin_port))
        }
        libc::AF_INET6 => {
            // SAFETY: the kernel wrote a sockaddr_in6.
            let sin6 = unsafe { &*(&ss as *const libc::sockaddr_storage as *const libc::sockaddr_in6) };
            let addr = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            let ip = if addr.is_unspecified() {
                if getsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY)? != 0 {
                    return None;
                }
                Ipv4Addr::UNSPECIFIED
            } else {
                addr.to_ipv4_mapped()?
            };
            (ip, u16::from_be(sin6.sin6_port))
        }
        _ => return None,
    };
    if port == 0 {
        return None;
    }
    let protocol = match getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_PROTOCOL)? as i32 {
        libc::IPPROTO_UDP => Protocol::Udp,
        libc::IPPROTO_TCP => Protocol::Tcp,
        _ => return None,
    };
    if getsockopt_int(fd, libc::SOL_SOCKET, SO_NETNS_COOKIE)? != netns {
        return None;
    }
    Some(Bound { protocol, ip, port })
}

/// Where the socket `fd` of this process is bound, if it is a UDP or TCP socket that takes IPv4
/// in the network namespace of cookie `netns` (one getsockname and two getsockopts): for a
/// caller that knows which socket holds a port.
pub(crate) fn socket_bound(fd: RawFd, netns: u64) -> Option<(Protocol, Ipv4Addr, u16)> {
    bound(fd, netns).map(|b| (b.protocol, b.ip, b.port))
}

/// Whether a socket bound to (`b.0`, `b.1`, `b.2`) reserves (`protocol`, `ip`, `port`).
pub(crate) fn reserves(b: (Protocol, Ipv4Addr, u16), protocol: Protocol, ip: Ipv4Addr, port: u16) -> bool {
    covers(Bound { protocol: b.0, ip: b.1, port: b.2 }, protocol, ip, port)
}

/// Whether one of this process's descriptors is a kernel socket of the network namespace of
/// cookie `netns` that reserves (`protocol`, `ip`, `port`): bound to that port and to `ip` or
/// every address (`ip` `UNSPECIFIED`: only a socket bound to every address does). One
/// getsockname per descriptor until one does.
pub(crate) fn process_holds(protocol: Protocol, ip: Ipv4Addr, port: u16, netns: u64) -> io::Result<bool> {
    // SAFETY: a NUL-terminated path; the descriptor is closed below.
    let dir = unsafe {
        libc::syscall(
            libc::SYS_openat,
            libc::AT_FDCWD,
            c"/proc/self/fd".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    } as RawFd;
    if dir < 0 {
        return Err(io::Error::last_os_error());
    }
    let result = scan(dir, |fd| fd != dir && bound(fd, netns).is_some_and(|b| covers(b, protocol, ip, port)));
    // SAFETY: our own descriptor, closed once.
    unsafe { libc::syscall(libc::SYS_close, dir) };
    result
}

/// Calls `found` with each descriptor number listed in the directory `dir` (`/proc/self/fd`)
/// until it returns true.
fn scan(dir: RawFd, mut found: impl FnMut(RawFd) -> bool) -> io::Result<bool> {
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: getdents64 writes at most `buf.len()` bytes into our buffer.
        let n = unsafe { libc::syscall(libc::SYS_getdents64, dir, buf.as_mut_ptr(), buf.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n == 0 {
            return Ok(false);
        }
        let mut at = 0usize;
        let n = n as usize;
        // struct linux_dirent64: u64 ino, i64 off, u16 reclen, u8 type, then the NUL-terminated name.
        while at + 19 <= n {
            let reclen = usize::from(u16::from_ne_bytes([buf[at + 16], buf[at + 17]]));
            if reclen == 0 || at + reclen > n {
                break;
            }
            let name = &buf[at + 19..at + reclen];
            let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
            if let Some(fd) = std::str::from_utf8(name).ok().and_then(|s| s.parse::<RawFd>().ok()) {
                if found(fd) {
                    return Ok(true);
                }
            }
            at += reclen;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn cookie() -> u64 {
        crate::steering::netns_cookie().unwrap()
    }

    #[test]
    fn a_bound_socket_reserves_its_port_for_its_address_or_every_address() {
        let b = Bound { protocol: Protocol::Udp, ip: Ipv4Addr::new(10, 0, 0, 1), port: 53 };
        assert!(covers(b, Protocol::Udp, Ipv4Addr::new(10, 0, 0, 1), 53));
        assert!(!covers(b, Protocol::Udp, Ipv4Addr::UNSPECIFIED, 53), "a specific address is not every address");
        assert!(!covers(b, Protocol::Udp, Ipv4Addr::new(10, 0, 0, 2), 53));
        assert!(!covers(b, Protocol::Tcp, Ipv4Addr::new(10, 0, 0, 1), 53));
        assert!(!covers(b, Protocol::Udp, Ipv4Addr::new(10, 0, 0, 1), 54));
        let any = Bound { ip: Ipv4Addr::UNSPECIFIED, ..b };
        assert!(covers(any, Protocol::Udp, Ipv4Addr::UNSPECIFIED, 53));
        assert!(covers(any, Protocol::Udp, Ipv4Addr::new(10, 9, 9, 9), 53));
    }

    #[test]
    fn this_processs_sockets_are_found_by_port_protocol_and_address() {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        let netns = cookie();
        assert_eq!(
            bound(udp.as_raw_fd(), netns),
            Some(Bound { protocol: Protocol::Udp, ip: Ipv4Addr::LOCALHOST, port })
        );
        assert!(process_holds(Protocol::Udp, Ipv4Addr::LOCALHOST, port, netns).unwrap());
        assert!(!process_holds(Protocol::Tcp, Ipv4Addr::LOCALHOST, port, netns).unwrap());
        assert!(!process_holds(Protocol::Udp, Ipv4Addr::UNSPECIFIED, port, netns).unwrap());
        assert!(!process_holds(Protocol::Udp, Ipv4Addr::LOCALHOST, port, netns + 1).unwrap(), "another namespace");
        drop(udp);
        assert!(!process_holds(Protocol::Udp, Ipv4Addr::LOCALHOST, port, netns).unwrap());

        // A dual-stack TCP listener on `::` holds the IPv4 wildcard.
        let tcp = std::net::TcpListener::bind("[::]:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        assert!(process_holds(Protocol::Tcp, Ipv4Addr::UNSPECIFIED, port, netns).unwrap());
        assert!(process_holds(Protocol::Tcp, Ipv4Addr::new(10, 0, 0, 1), port, netns).unwrap());
        // Not a socket, or not bound: nothing.
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        assert_eq!(bound(file.as_raw_fd(), netns), None);
    }
}
