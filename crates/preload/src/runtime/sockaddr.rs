//! The kernel socket behind an fd as a source of facts (bound address, timeouts, O_NONBLOCK)
//! and sockaddr conversions at the POSIX boundary.

use super::*;
use driver::inet::{self, Parsed, RawAddr};

/// Reads the kernel socket's SO_RCVTIMEO (or SO_SNDTIMEO), which the program set on it.
pub fn socket_timeout(fd: i32, name: i32) -> Option<Duration> {
    let mut tv = libc::timeval { tv_sec: 0, tv_usec: 0 };
    let mut len = std::mem::size_of::<libc::timeval>() as libc::socklen_t;
    // SAFETY: getsockopt into a timeval we own.
    let r = unsafe {
        crate::real::getsockopt(fd, libc::SOL_SOCKET, name, (&mut tv as *mut libc::timeval).cast(), &mut len)
    };
    (r == 0 && (tv.tv_sec > 0 || tv.tv_usec > 0))
        .then(|| Duration::from_secs(tv.tv_sec as u64) + Duration::from_micros(tv.tv_usec as u64))
}

/// Whether the kernel socket is non-blocking (O_NONBLOCK, set by fcntl or SOCK_NONBLOCK).
pub fn nonblocking(fd: i32) -> bool {
    // SAFETY: F_GETFL takes no argument.
    let flags = unsafe { crate::real::fcntl(fd, libc::F_GETFL, 0) };
    flags >= 0 && flags & libc::O_NONBLOCK != 0
}

/// Reads a sockaddr_in the program passed, if it is one.
///
/// # Safety
/// `addr` must be null or point to `len` readable bytes.
pub unsafe fn read_sockaddr(addr: *const libc::sockaddr, len: libc::socklen_t) -> Option<SocketAddrV4> {
    if addr.is_null() || (len as usize) < std::mem::size_of::<libc::sockaddr_in>() {
        return None;
    }
    let sin = &*(addr as *const libc::sockaddr_in);
    (sin.sin_family as i32 == libc::AF_INET)
        .then(|| SocketAddrV4::new(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)), u16::from_be(sin.sin_port)))
}

/// Writes `a` into the program's sockaddr buffer, truncating as the kernel does, and sets the
/// length to the full size.
///
/// # Safety
/// `addr`/`len` must be null or valid for writes as the socket API specifies.
pub unsafe fn write_sockaddr(a: SocketAddrV4, addr: *mut libc::sockaddr, len: *mut libc::socklen_t) {
    if addr.is_null() || len.is_null() {
        return;
    }
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(*a.ip()).to_be() },
        sin_zero: [0; 8],
    };
    let full = std::mem::size_of::<libc::sockaddr_in>();
    let n = (*len as usize).min(full);
    std::ptr::copy_nonoverlapping((&sin as *const libc::sockaddr_in).cast::<u8>(), addr.cast::<u8>(), n);
    *len = full as libc::socklen_t;
}

/// The address the kernel socket is bound to.
pub fn kernel_local(fd: i32) -> Option<SocketAddrV4> {
    // SAFETY: a zeroed sockaddr_in buffer we own.
    unsafe {
        let mut sin: libc::sockaddr_in = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        if crate::real::getsockname(fd, (&mut sin as *mut libc::sockaddr_in).cast(), &mut len) != 0 {
            return None;
        }
        read_sockaddr((&sin as *const libc::sockaddr_in).cast(), len)
    }
}

/// An int option of the kernel socket behind `fd` (None when getsockopt fails).
pub fn kernel_int(fd: i32, level: i32, name: i32) -> Option<libc::c_int> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt into an int we own; the real function, not our export.
    let r = unsafe { crate::real::getsockopt(fd, level, name, (&mut v as *mut libc::c_int).cast(), &mut len) };
    (r == 0).then_some(v)
}

/// Binds the kernel socket behind `fd` to INADDR_ANY with a port the kernel picks (auto-bind,
/// and a connect's port reservation); a dual-stack socket to ::ffff:0.0.0.0, the IPv4 side
/// only. Whether it worked.
pub fn bind_any_port(fd: i32) -> bool {
    let family = Family::of(fd).unwrap_or(Family::V4);
    let any = RawAddr::new(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0), family);
    // SAFETY: binding an address we own, with its family's length; the real function, not
    // our export.
    unsafe { crate::real::bind(fd, any.as_ptr(), RawAddr::len(family)) == 0 }
}

/// The IPv4 address a TCP candidate's kernel socket is bound to: an AF_INET socket's, or a
/// dual-stack AF_INET6 socket's IPv4 side (`::` is INADDR_ANY, `::ffff:a.b.c.d` is a.b.c.d).
/// Err says why the socket stays on the kernel (EXASOCK_DEBUG prints it).
pub fn tcp_kernel_local(fd: i32) -> Result<SocketAddrV4, &'static str> {
    let family = Family::of(fd).ok_or("it is not an IP socket")?;
    if family == Family::V6 && inet::v6_only(fd) {
        return Err("it is IPv6-only (IPV6_V6ONLY), and exasock serves IPv4");
    }
    match inet::local_of(fd, family) {
        Parsed::V4(a) => Ok(a),
        Parsed::V6 => Err("it is bound to an IPv6 address, and exasock serves IPv4"),
        Parsed::Invalid => Err("its address cannot be read"),
    }
}

/// The IPv4 peer a TCP candidate's connect names, for its family (a dual-stack socket names
/// an IPv4 peer IPv4-mapped). Err says why the connection stays on the kernel; None: the
/// kernel judges the address (and gives the errno).
///
/// # Safety
/// `addr` must be null or point to `len` readable bytes.
pub unsafe fn tcp_remote(
    fd: i32,
    addr: *const libc::sockaddr,
    len: libc::socklen_t,
) -> Result<SocketAddrV4, &'static str> {
    let family = Family::of(fd).ok_or("it is not an IP socket")?;
    match inet::parse(addr, len, family) {
        Parsed::V4(_) if family == Family::V6 && inet::v6_only(fd) => {
            Err("it is IPv6-only (IPV6_V6ONLY), and exasock serves IPv4")
        }
        Parsed::V4(a) => Ok(a),
        Parsed::V6 => Err("it connects to an IPv6 address, and exasock serves IPv4"),
        Parsed::Invalid => Err("the address is not one for its family"),
    }
}

/// Writes `a` into a program's buffer as a socket of the slot's family names it.
///
/// # Safety
/// As [`write_sockaddr`].
pub unsafe fn write_slot_sockaddr(slot: u32, a: SocketAddrV4, addr: *mut libc::sockaddr, len: *mut libc::socklen_t) {
    RawAddr::write_out(a, slot_family(slot), addr, len);
}

/// The address family of the descriptor behind a slot (AF_INET when it is gone).
pub fn slot_family(slot: u32) -> Family {
    lock().as_ref().and_then(|rt| rt.slot(slot)).map_or(Family::V4, |s| s.family)
}
