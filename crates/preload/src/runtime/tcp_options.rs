//! The TCP socket options the stack follows. The kernel socket behind an accelerated fd takes
//! every setsockopt first (it validates, clamps and doubles as Linux does, and getsockopt reads
//! it back); the stack then copies the effective value of the options that change what its TCP
//! does, here, from one table for both moments: when a socket turns accelerated (options set
//! before connect or listen) and after each setsockopt.

use super::*;
use stack::tcp::TcpSocketOptions;

/// The (level, name) pairs the stack follows, buffer sizes aside.
pub const FOLLOWED: [(i32, i32); 8] = [
    (libc::IPPROTO_TCP, libc::TCP_NODELAY),
    (libc::SOL_SOCKET, libc::SO_REUSEADDR),
    (libc::SOL_SOCKET, libc::SO_KEEPALIVE),
    (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE),
    (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL),
    (libc::IPPROTO_TCP, libc::TCP_KEEPCNT),
    (libc::IPPROTO_IP, libc::IP_TTL),
    (libc::IPPROTO_IP, libc::IP_TOS),
];

/// Copies the kernel socket's effective value of option (`level`, `name`) into `o`. False when
/// the stack does not follow it (or the kernel cannot say).
pub fn follow_kernel_option(fd: i32, o: &mut TcpSocketOptions, level: i32, name: i32) -> bool {
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
        (libc::SOL_SOCKET, libc::SO_KEEPALIVE) => o.keepalive = v != 0,
        (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE) => o.keep_idle = secs(v),
        (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL) => o.keep_interval = secs(v),
        (libc::IPPROTO_TCP, libc::TCP_KEEPCNT) => o.keep_count = v.max(1) as u32,
        (libc::IPPROTO_IP, libc::IP_TTL) => o.ttl = v.clamp(1, 255) as u8,
        // The kernel keeps the ECN bits of a TCP socket's TOS to itself; so do we.
        (libc::IPPROTO_IP, libc::IP_TOS) => o.tos = (v & 0xfc) as u8,
        // The kernel's effective (doubled, capped) sizes.
        (libc::SOL_SOCKET, libc::SO_RCVBUF) if v > 0 => o.rcvbuf = v as usize,
        (libc::SOL_SOCKET, libc::SO_SNDBUF) if v > 0 => o.sndbuf = v as usize,
        _ => return false,
    }
    true
}

/// The options a socket's kernel socket holds, for the stack socket it turns into. Buffer
/// sizes only when the program set them (otherwise the stack's defaults, which grow on demand).
pub fn tcp_options_of(fd: i32, mut o: TcpSocketOptions) -> TcpSocketOptions {
    for (level, name) in FOLLOWED {
        follow_kernel_option(fd, &mut o, level, name);
    }
    let set = fdtable::tcp_buffers_set(fd);
    if set & fdtable::BUF_RCV != 0 {
        follow_kernel_option(fd, &mut o, libc::SOL_SOCKET, libc::SO_RCVBUF);
    }
    if set & fdtable::BUF_SND != 0 {
        follow_kernel_option(fd, &mut o, libc::SOL_SOCKET, libc::SO_SNDBUF);
    }
    o
}
