//! The TCP socket options the stack follows. The kernel socket behind an accelerated fd takes
//! every setsockopt first (it validates, clamps and doubles as Linux does, and getsockopt reads
//! it back); the stack then copies the effective value of the options that change what its TCP
//! does, here, from one table for both moments: when a socket turns accelerated (options set
//! before connect or listen) and after each setsockopt.

use super::*;
use stack::tcp::congestion::Algorithm;
use stack::tcp::{TcpConfig, TcpSocketOptions};

/// The (level, name) pairs the stack follows, buffer sizes aside.
pub const FOLLOWED: [(i32, i32); 16] = [
    (libc::IPPROTO_TCP, libc::TCP_NODELAY),
    (libc::SOL_SOCKET, libc::SO_REUSEADDR),
    (libc::SOL_SOCKET, libc::SO_REUSEPORT),
    (libc::SOL_SOCKET, libc::SO_KEEPALIVE),
    (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE),
    (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL),
    (libc::IPPROTO_TCP, libc::TCP_KEEPCNT),
    (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT),
    (libc::IPPROTO_TCP, libc::TCP_CORK),
    (libc::IPPROTO_TCP, libc::TCP_MAXSEG),
    (libc::IPPROTO_TCP, libc::TCP_NOTSENT_LOWAT),
    (libc::IPPROTO_TCP, libc::TCP_DEFER_ACCEPT),
    (libc::SOL_SOCKET, libc::SO_RCVLOWAT),
    (libc::SOL_SOCKET, libc::SO_OOBINLINE),
    (libc::IPPROTO_IP, libc::IP_TTL),
    (libc::IPPROTO_IP, libc::IP_TOS),
];

/// The stack's field for a followed option that is on or off (any non-zero value turns it on,
/// and the kernel reads back 0 or 1), so a setsockopt the kernel took needs no reading back.
pub fn boolean_option(o: &mut TcpSocketOptions, level: i32, name: i32) -> Option<&mut bool> {
    match (level, name) {
        (libc::IPPROTO_TCP, libc::TCP_NODELAY) => Some(&mut o.nodelay),
        (libc::IPPROTO_TCP, libc::TCP_CORK) => Some(&mut o.cork),
        (libc::SOL_SOCKET, libc::SO_REUSEADDR) => Some(&mut o.reuse_addr),
        (libc::SOL_SOCKET, libc::SO_REUSEPORT) => Some(&mut o.reuse_port),
        (libc::SOL_SOCKET, libc::SO_KEEPALIVE) => Some(&mut o.keepalive),
        (libc::SOL_SOCKET, libc::SO_OOBINLINE) => Some(&mut o.oob_inline),
        _ => None,
    }
}

/// Linux's TCP_MSS_DEFAULT: what TCP_MAXSEG reads on a socket that never had it set.
const MSS_DEFAULT: i32 = 536;

/// Copies the kernel socket's effective value of option (`level`, `name`) into `o`. False when
/// the stack does not follow it (or the kernel cannot say).
pub fn follow_kernel_option(fd: i32, o: &mut TcpSocketOptions, config: &TcpConfig, level: i32, name: i32) -> bool {
    let name = match (level, name) {
        (libc::SOL_SOCKET, libc::SO_RCVBUFFORCE) => libc::SO_RCVBUF,
        (libc::SOL_SOCKET, libc::SO_SNDBUFFORCE) => libc::SO_SNDBUF,
        _ => name,
    };
    let Some(v) = kernel_int(fd, level, name) else { return false };
    let secs = |v: i32| Duration::from_secs(v.max(1) as u64);
    match (level, name) {
        (libc::IPPROTO_TCP, libc::TCP_NODELAY) => o.nodelay = v != 0,
        (libc::SOL_SOCKET, libc::SO_REUSEADDR) => o.reuse_addr = v != 0,
        (libc::SOL_SOCKET, libc::SO_REUSEPORT) => o.reuse_port = v != 0,
        (libc::SOL_SOCKET, libc::SO_KEEPALIVE) => o.keepalive = v != 0,
        (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE) => o.keep_idle = secs(v),
        (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL) => o.keep_interval = secs(v),
        (libc::IPPROTO_TCP, libc::TCP_KEEPCNT) => o.keep_count = v.max(1) as u32,
        (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT) => {
            o.user_timeout = (v > 0).then(|| Duration::from_millis(v as u64))
        }
        (libc::IPPROTO_TCP, libc::TCP_CORK) => o.cork = v != 0,
        // The kernel reads back 536 when none was set (and the user MSS while CLOSE or LISTEN).
        (libc::IPPROTO_TCP, libc::TCP_MAXSEG) if v != MSS_DEFAULT => return o.set_max_seg(v).is_ok(),
        (libc::IPPROTO_TCP, libc::TCP_MAXSEG) => return false,
        // 0 (unset: the sysctl tcp_notsent_lowat applies, UINT_MAX by default) and UINT_MAX
        // (-1 as an int) are off.
        (libc::IPPROTO_TCP, libc::TCP_NOTSENT_LOWAT) => o.notsent_lowat = (v > 0).then_some(v as u32),
        (libc::IPPROTO_TCP, libc::TCP_DEFER_ACCEPT) => o.set_defer_accept(v, config),
        (libc::SOL_SOCKET, libc::SO_RCVLOWAT) => o.set_rcvlowat(v),
        (libc::SOL_SOCKET, libc::SO_OOBINLINE) => o.oob_inline = v != 0,
        (libc::IPPROTO_IP, libc::IP_TTL) => o.ttl = v.clamp(1, 255) as u8,
        // The kernel keeps the ECN bits of a TCP socket's TOS to itself; so do we.
        (libc::IPPROTO_IP, libc::IP_TOS) => o.tos = (v & 0xfc) as u8,
        // The kernel's effective (doubled, capped) sizes.
        (libc::SOL_SOCKET, libc::SO_RCVBUF) if v > 0 => {
            o.rcvbuf = v as usize;
            o.rcvbuf_locked = true;
        }
        (libc::SOL_SOCKET, libc::SO_SNDBUF) if v > 0 => {
            o.sndbuf = v as usize;
            o.sndbuf_locked = true;
        }
        _ => return false,
    }
    true
}

/// The congestion control the kernel socket behind `fd` was given (TCP_CONGESTION).
pub fn kernel_congestion(fd: i32) -> Option<Algorithm> {
    let mut name = [0u8; 16];
    let mut len = name.len() as libc::socklen_t;
    // SAFETY: getsockopt into a buffer we own, with its length; the real function.
    let r = unsafe {
        crate::real::getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_CONGESTION, name.as_mut_ptr().cast(), &mut len)
    };
    if r != 0 {
        return None;
    }
    let end = name.iter().position(|b| *b == 0).unwrap_or(name.len());
    std::str::from_utf8(&name[..end]).ok().and_then(Algorithm::from_name)
}

/// The options a socket's kernel socket holds, for the stack socket it turns into. Buffer
/// sizes only when the program set them (otherwise the stack's defaults, which grow on demand),
/// and the congestion control only when the program chose one.
pub fn tcp_options_of(fd: i32, mut o: TcpSocketOptions, config: &TcpConfig) -> TcpSocketOptions {
    for (level, name) in FOLLOWED {
        follow_kernel_option(fd, &mut o, config, level, name);
    }
    let set = fdtable::tcp_options_set(fd);
    if set & fdtable::BUF_RCV != 0 {
        follow_kernel_option(fd, &mut o, config, libc::SOL_SOCKET, libc::SO_RCVBUF);
    }
    if set & fdtable::BUF_SND != 0 {
        follow_kernel_option(fd, &mut o, config, libc::SOL_SOCKET, libc::SO_SNDBUF);
    }
    if set & fdtable::CONGESTION_SET != 0 {
        if let Some(a) = kernel_congestion(fd) {
            o.congestion = a;
        }
    }
    o
}

/// The options an accepted connection inherits from its listener on Linux (an accepted socket
/// is a clone of it), as (level, name); SO_LINGER, SO_RCVTIMEO and SO_SNDTIMEO too, below.
const INHERITED: [(i32, i32); 18] = [
    (libc::IPPROTO_TCP, libc::TCP_NODELAY),
    (libc::IPPROTO_TCP, libc::TCP_CORK),
    (libc::SOL_SOCKET, libc::SO_KEEPALIVE),
    (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE),
    (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL),
    (libc::IPPROTO_TCP, libc::TCP_KEEPCNT),
    (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT),
    (libc::IPPROTO_TCP, libc::TCP_NOTSENT_LOWAT),
    (libc::IPPROTO_TCP, libc::TCP_MAXSEG),
    (libc::IPPROTO_TCP, libc::TCP_DEFER_ACCEPT),
    (libc::IPPROTO_IP, libc::IP_TTL),
    (libc::IPPROTO_IP, libc::IP_TOS),
    (libc::SOL_SOCKET, libc::SO_PRIORITY),
    (libc::SOL_SOCKET, libc::SO_RCVLOWAT),
    (libc::SOL_SOCKET, libc::SO_OOBINLINE),
    (libc::SOL_SOCKET, libc::SO_MARK),
    (libc::SOL_SOCKET, libc::SO_RCVBUF),
    (libc::SOL_SOCKET, libc::SO_SNDBUF),
];

/// Whether setting (`level`, `name`) on a listener changes what its accepted connections
/// inherit.
pub fn is_inherited(level: i32, name: i32) -> bool {
    INHERITED.contains(&(level, name))
        || matches!(
            (level, name),
            (libc::SOL_SOCKET, libc::SO_LINGER | libc::SO_RCVTIMEO | libc::SO_SNDTIMEO)
                | (libc::SOL_SOCKET, libc::SO_RCVBUFFORCE | libc::SO_SNDBUFFORCE)
        )
}

/// Gives an accepted connection's new kernel socket `to` what it inherits from its listener's
/// kernel socket `from`, so getsockopt on it answers as Linux would (the stack's connection
/// inherited the same from the stack's listener). Only options that differ are set.
pub fn copy_inherited_options(from: i32, to: i32) {
    for (level, name) in INHERITED {
        let (Some(v), Some(now)) = (kernel_int(from, level, name), kernel_int(to, level, name)) else { continue };
        if v == now {
            continue;
        }
        // The kernel reports buffer sizes doubled and doubles what it is given.
        let v = if matches!(name, libc::SO_RCVBUF | libc::SO_SNDBUF) && level == libc::SOL_SOCKET { v / 2 } else { v };
        set_int(to, level, name, v);
    }
    copy_raw::<libc::linger>(from, to, libc::SO_LINGER);
    copy_raw::<libc::timeval>(from, to, libc::SO_RCVTIMEO);
    copy_raw::<libc::timeval>(from, to, libc::SO_SNDTIMEO);
}

fn set_int(fd: i32, level: i32, name: i32, v: i32) {
    // SAFETY: setsockopt from an int we own; the real function, not our export.
    unsafe {
        crate::real::setsockopt(fd, level, name, (&v as *const i32).cast(), std::mem::size_of::<i32>() as u32);
    }
}

/// Copies a SOL_SOCKET option of type `T` (plain data) from `from` to `to` when it is set.
fn copy_raw<T: Copy>(from: i32, to: i32, name: i32) {
    // SAFETY: T is plain data (linger, timeval); all zeros is a valid value, and getsockopt and
    // setsockopt are given its size.
    unsafe {
        let mut v: T = std::mem::zeroed();
        let mut len = std::mem::size_of::<T>() as libc::socklen_t;
        let r = crate::real::getsockopt(from, libc::SOL_SOCKET, name, (&mut v as *mut T).cast(), &mut len);
        let bytes = std::slice::from_raw_parts((&v as *const T).cast::<u8>(), std::mem::size_of::<T>());
        if r == 0 && bytes.iter().any(|b| *b != 0) {
            crate::real::setsockopt(to, libc::SOL_SOCKET, name, (&v as *const T).cast(), len);
        }
    }
}
