//! IPv4 socket addresses as the kernel takes and gives them: a `sockaddr_in` for an AF_INET
//! socket, an IPv4-mapped `sockaddr_in6` (`::ffff:a.b.c.d`) for an AF_INET6 socket serving
//! IPv4 (a dual-stack socket: IPV6_V6ONLY off). The stack speaks IPv4 only; this is where the
//! two families meet it. Its questions to the kernel are raw syscalls: inside the preload
//! library the libc names are the library's own exports (traced, intercepted).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4};
use std::os::fd::RawFd;

/// The address family of a socket exasock may serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// AF_INET.
    V4,
    /// AF_INET6: its IPv4 peers appear as IPv4-mapped addresses.
    V6,
}

impl Family {
    /// The AF_* constant.
    pub fn domain(self) -> libc::c_int {
        match self {
            Family::V4 => libc::AF_INET,
            Family::V6 => libc::AF_INET6,
        }
    }

    /// The family of the socket behind `fd` (SO_DOMAIN); None for other families or no socket.
    pub fn of(fd: RawFd) -> Option<Family> {
        let (r, domain) = int_option(fd, libc::SOL_SOCKET, libc::SO_DOMAIN);
        match (r, domain) {
            (0, libc::AF_INET) => Some(Family::V4),
            (0, libc::AF_INET6) => Some(Family::V6),
            _ => None,
        }
    }
}

/// Room for a socket address of either family, as the kernel lays it out.
#[repr(C)]
pub union RawAddr {
    v4: libc::sockaddr_in,
    v6: libc::sockaddr_in6,
}

impl RawAddr {
    /// `addr` as a socket of `family` names it.
    pub fn new(addr: SocketAddrV4, family: Family) -> RawAddr {
        match family {
            Family::V4 => RawAddr {
                v4: libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: addr.port().to_be(),
                    sin_addr: libc::in_addr { s_addr: u32::from(*addr.ip()).to_be() },
                    sin_zero: [0; 8],
                },
            },
            Family::V6 => RawAddr {
                v6: libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: addr.port().to_be(),
                    sin6_flowinfo: 0,
                    sin6_addr: libc::in6_addr { s6_addr: addr.ip().to_ipv6_mapped().octets() },
                    sin6_scope_id: 0,
                },
            },
        }
    }

    /// The sockaddr pointer for bind, connect, sendto.
    pub fn as_ptr(&self) -> *const libc::sockaddr {
        (self as *const RawAddr).cast()
    }

    /// Its length for the family it was made for.
    pub fn len(family: Family) -> libc::socklen_t {
        match family {
            Family::V4 => std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            Family::V6 => std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
        }
    }

    /// Writes `addr`, as a socket of `family` names it, into a caller's buffer the way the
    /// kernel does (accept, getsockname, recvfrom): truncated to `*len`, and `*len` set to the
    /// full size.
    ///
    /// # Safety
    /// `out`/`len` must be null or valid for writes as the socket API specifies.
    pub unsafe fn write_out(addr: SocketAddrV4, family: Family, out: *mut libc::sockaddr, len: *mut libc::socklen_t) {
        if out.is_null() || len.is_null() {
            return;
        }
        let raw = RawAddr::new(addr, family);
        let full = RawAddr::len(family);
        let n = (*len).min(full) as usize;
        std::ptr::copy_nonoverlapping(raw.as_ptr().cast::<u8>(), out.cast::<u8>(), n);
        *len = full;
    }
}

/// What a socket address a program passed names, for a socket of `family`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// An IPv4 address (a sockaddr_in, or an IPv4-mapped sockaddr_in6; `::` is 0.0.0.0).
    V4(SocketAddrV4),
    /// An IPv6 address that is not IPv4-mapped: the kernel's to serve.
    V6,
    /// Not a socket address of that family (too short, another family): the kernel says what
    /// is wrong with it.
    Invalid,
}

/// Reads the socket address at `addr` as the kernel would for a socket of `family`: an AF_INET
/// socket takes sockaddr_in, an AF_INET6 socket sockaddr_in6.
///
/// # Safety
/// `addr` must be null or point to `len` readable bytes.
pub unsafe fn parse(addr: *const libc::sockaddr, len: libc::socklen_t, family: Family) -> Parsed {
    if addr.is_null() || (len as usize) < std::mem::size_of::<libc::sa_family_t>() {
        return Parsed::Invalid;
    }
    let af = i32::from((*addr).sa_family);
    match family {
        Family::V4 if af == libc::AF_INET && len as usize >= std::mem::size_of::<libc::sockaddr_in>() => {
            let sin = &*(addr as *const libc::sockaddr_in);
            Parsed::V4(SocketAddrV4::new(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)), u16::from_be(sin.sin_port)))
        }
        Family::V6 if af == libc::AF_INET6 && len as usize >= std::mem::size_of::<libc::sockaddr_in6>() => {
            let sin6 = &*(addr as *const libc::sockaddr_in6);
            let port = u16::from_be(sin6.sin6_port);
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            match ip.to_ipv4_mapped() {
                Some(v4) => Parsed::V4(SocketAddrV4::new(v4, port)),
                None if ip.is_unspecified() => Parsed::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)),
                None => Parsed::V6,
            }
        }
        _ => Parsed::Invalid,
    }
}

/// The address the socket `fd` is bound to (getsockname), as `parse` reads it.
pub fn local_of(fd: RawFd, family: Family) -> Parsed {
    // SAFETY: getsockname into a buffer we own, large enough for either family.
    unsafe {
        let mut raw: RawAddr = std::mem::zeroed();
        let mut len = RawAddr::len(Family::V6);
        if libc::syscall(libc::SYS_getsockname, fd, &mut raw as *mut RawAddr, &mut len) != 0 {
            return Parsed::Invalid;
        }
        parse(raw.as_ptr(), len, family)
    }
}

/// Whether the AF_INET6 socket `fd` serves IPv6 only (IPV6_V6ONLY): then no IPv4 peer can
/// reach it or be reached from it.
pub fn v6_only(fd: RawFd) -> bool {
    let (r, v) = int_option(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY);
    r == 0 && v != 0
}

/// getsockopt of an int option by raw syscall: (result, value).
fn int_option(fd: RawFd, level: libc::c_int, name: libc::c_int) -> (i64, libc::c_int) {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt into an int we own, with its length.
    let r = unsafe { libc::syscall(libc::SYS_getsockopt, fd, level, name, &mut v as *mut libc::c_int, &mut len) };
    (r, v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(a: SocketAddrV4, family: Family) -> Parsed {
        let raw = RawAddr::new(a, family);
        // SAFETY: a RawAddr we built, with its family's length.
        unsafe { parse(raw.as_ptr(), RawAddr::len(family), family) }
    }

    #[test]
    fn both_families_carry_an_ipv4_address_and_refuse_the_other_family() {
        let a = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 7), 4242);
        assert_eq!(round_trip(a, Family::V4), Parsed::V4(a));
        assert_eq!(round_trip(a, Family::V6), Parsed::V4(a));
        // An AF_INET socket is not given a sockaddr_in6, nor the other way round.
        let raw6 = RawAddr::new(a, Family::V6);
        // SAFETY: as above.
        assert_eq!(unsafe { parse(raw6.as_ptr(), RawAddr::len(Family::V6), Family::V4) }, Parsed::Invalid);
        let raw4 = RawAddr::new(a, Family::V4);
        // SAFETY: as above.
        assert_eq!(unsafe { parse(raw4.as_ptr(), RawAddr::len(Family::V4), Family::V6) }, Parsed::Invalid);
        // Too short for its family.
        // SAFETY: as above.
        assert_eq!(unsafe { parse(raw6.as_ptr(), 16, Family::V6) }, Parsed::Invalid);
    }

    #[test]
    fn the_ipv6_wildcard_is_the_ipv4_wildcard_and_real_ipv6_is_the_kernels() {
        let mut raw = RawAddr::new(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80), Family::V6);
        raw.v6.sin6_addr.s6_addr = Ipv6Addr::UNSPECIFIED.octets();
        // SAFETY: as above.
        let any = unsafe { parse(raw.as_ptr(), RawAddr::len(Family::V6), Family::V6) };
        assert_eq!(any, Parsed::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80)));
        raw.v6.sin6_addr.s6_addr = "2001:db8::1".parse::<Ipv6Addr>().unwrap().octets();
        // SAFETY: as above.
        assert_eq!(unsafe { parse(raw.as_ptr(), RawAddr::len(Family::V6), Family::V6) }, Parsed::V6);
    }

    #[test]
    fn written_out_as_the_kernel_writes_truncated_with_the_full_length() {
        let a = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 9);
        let mut buf = [0u8; 28];
        let mut len: libc::socklen_t = 28;
        // SAFETY: a buffer of 28 bytes.
        unsafe { RawAddr::write_out(a, Family::V6, buf.as_mut_ptr().cast(), &mut len) };
        assert_eq!(len, 28);
        // SAFETY: the bytes just written.
        assert_eq!(unsafe { parse(buf.as_ptr().cast(), len, Family::V6) }, Parsed::V4(a));
        let mut short = [0u8; 8];
        let mut len: libc::socklen_t = 8;
        // SAFETY: a buffer of 8 bytes.
        unsafe { RawAddr::write_out(a, Family::V6, short.as_mut_ptr().cast(), &mut len) };
        assert_eq!(len, 28, "the full length is reported");
        assert_eq!(&short[..4], &[libc::AF_INET6 as u8, 0, 0, 9]);
    }
}
