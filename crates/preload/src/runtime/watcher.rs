//! The watcher: a small process left beside a program once it serves TCP connections, which
//! waits for the program to die and then makes the peer of each connection the program still
//! had learn of it, as the kernel's close would.
//!
//! Why: when a process dies the kernel resets its connections; nobody resets ours. A peer that
//! sends learns at its next segment (the kernel, with no such connection, answers RST), but a
//! peer that only waits to receive (a download from a server that was killed) would wait
//! forever. For each TCP connection the dead program published (its exasock-stat records, a
//! shared mapping the watcher inherits), the watcher sends the peer a bare ACK half the
//! sequence space away from the published SND.NXT: surely outside the peer's window, so the
//! peer answers it with an ACK (RFC 9293 3.10.7.4). That ACK reaches this host's kernel (the
//! dead owner's flows go back to it), which has no such connection and resets it with exactly
//! the sequence number the peer expects.
//!
//! Without disturbing the program: it is cloned with no exit signal (the program gets no
//! SIGCHLD and its wait() never sees it) into an intermediate that forks the watcher and exits
//! at once, reaped here; the watcher starts its own session (a signal to the program's process
//! group does not reach it), closes every descriptor it inherited but the program's pidfd,
//! and blocks on the pidfd. Only raw system calls and code that neither allocates nor locks
//! run after the clone: other threads' locks stay held in the copy.

use super::publish;
use stat_format::{Kind, SocketRecord, State};
use std::sync::atomic::{AtomicBool, Ordering};
use wire::{IpProtocol, Ipv4Packet, Ipv4Repr, TcpFlags, TcpOptions, TcpRepr, TcpSegment};

/// This process has its watcher (reset in a fork child, which needs its own).
static STARTED: AtomicBool = AtomicBool::new(false);

/// Starts the watcher unless it runs already (the first TCP listener or connection calls
/// this). Failure costs only the reset of peers after a kill.
pub(super) fn ensure_started() {
    if STARTED.swap(true, Ordering::Relaxed) {
        return;
    }
    let Some(mapping) = publish::mapping() else { return };
    // SAFETY: raw system calls on our own pid and descriptors; the children run `intermediate`
    // and `watch`, which make only raw system calls and never return.
    unsafe {
        let pid = libc::getpid();
        let pidfd = libc::syscall(libc::SYS_pidfd_open, pid, 0) as i32;
        if pidfd < 0 {
            return;
        }
        // clone(flags 0): a copy of this process whose exit signals nobody.
        let child = libc::syscall(libc::SYS_clone, 0, 0, 0, 0, 0);
        if child == 0 {
            intermediate(pidfd, pid, mapping);
        }
        libc::syscall(libc::SYS_close, pidfd);
        if child > 0 {
            let mut status = 0;
            libc::waitpid(child as i32, &mut status, libc::__WALL);
        }
    }
}

/// In a fork child: the parent's watcher watches the parent.
pub(super) fn forget_in_child() {
    STARTED.store(false, Ordering::Relaxed);
}

/// The intermediate: forks the watcher (an ordinary child, which init reaps) and exits.
unsafe fn intermediate(pidfd: i32, pid: i32, mapping: publish::Mapping) -> ! {
    if libc::syscall(libc::SYS_clone, libc::SIGCHLD, 0, 0, 0, 0) == 0 {
        watch(pidfd, pid, mapping);
    }
    libc::syscall(libc::SYS_exit_group, 0);
    unreachable!()
}

/// The watcher itself.
unsafe fn watch(pidfd: i32, pid: i32, mapping: publish::Mapping) -> ! {
    libc::syscall(libc::SYS_setsid);
    // Nothing of the program's but the pidfd: its sockets must close when it dies.
    libc::syscall(libc::SYS_dup3, pidfd, 3, libc::O_CLOEXEC);
    libc::syscall(libc::SYS_close_range, 4u32, u32::MAX, 0u32);
    let null = libc::syscall(libc::SYS_openat, libc::AT_FDCWD, c"/dev/null".as_ptr(), libc::O_RDWR) as i32;
    for fd in 0..3 {
        libc::syscall(libc::SYS_dup3, null, fd, 0);
    }
    if null > 3 {
        libc::syscall(libc::SYS_close, null);
    }
    let name = c"exasock-watch";
    libc::syscall(libc::SYS_prctl, libc::PR_SET_NAME, name.as_ptr(), 0, 0, 0);
    // Block until the program is gone.
    let mut p = libc::pollfd { fd: 3, events: libc::POLLIN, revents: 0 };
    while libc::syscall(libc::SYS_poll, &mut p as *mut libc::pollfd, 1, -1) < 0 {}
    // Twice: Linux answers out-of-window segments at most once per 500 ms per connection
    // (tcp_invalid_ratelimit), and a peer may have answered another just before.
    let raw = libc::syscall(libc::SYS_socket, libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) as i32;
    if raw >= 0 {
        for round in 0..2 {
            if round > 0 {
                let ts = libc::timespec { tv_sec: 0, tv_nsec: 600_000_000 };
                libc::syscall(libc::SYS_nanosleep, &ts as *const libc::timespec, 0usize);
            }
            if let Some(region) = mapping.region() {
                if region.process().is_some_and(|p| p.pid == pid as u32) {
                    for (_, r) in region.records() {
                        poke(raw, &r);
                    }
                }
            }
        }
    }
    libc::syscall(libc::SYS_exit_group, 0);
    unreachable!()
}

/// Whether the peer of a connection in this state still holds it open.
fn peer_holds(r: &SocketRecord) -> bool {
    r.kind == Kind::TcpConn
        && r.remote.1 != 0
        && matches!(
            r.state,
            Some(
                State::Established
                    | State::CloseWait
                    | State::FinWait1
                    | State::FinWait2
                    | State::Closing
                    | State::LastAck
            )
        )
}

/// Sends the peer of `r` a bare ACK outside its window (see the module's comment).
unsafe fn poke(raw: i32, r: &SocketRecord) {
    if !peer_holds(r) {
        return;
    }
    let mut buf = [0u8; 40];
    let Some(len) = ack_outside_window(r, &mut buf) else { return };
    let to = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr { s_addr: u32::from(r.remote.0).to_be() },
        sin_zero: [0; 8],
    };
    libc::syscall(
        libc::SYS_sendto,
        raw,
        buf.as_ptr(),
        len,
        0,
        &to as *const libc::sockaddr_in,
        std::mem::size_of::<libc::sockaddr_in>(),
    );
}

/// The IPv4 packet of that ACK, in `buf`; its length.
fn ack_outside_window(r: &SocketRecord, buf: &mut [u8; 40]) -> Option<usize> {
    let tcp = TcpRepr {
        src_port: r.local.1,
        dst_port: r.remote.1,
        seq: r.snd_nxt.wrapping_add(1 << 31),
        ack: Some(r.rcv_nxt),
        flags: TcpFlags::empty(),
        window: 0,
        urgent: 0,
        options: TcpOptions::default(),
        payload_len: 0,
    };
    let ip = Ipv4Repr {
        src_addr: r.local.0,
        dst_addr: r.remote.0,
        protocol: IpProtocol::TCP,
        payload_len: tcp.buffer_len(),
        ttl: 64,
        tos: 0,
        ident: 0,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
    };
    let mut packet = Ipv4Packet::new_unchecked(&mut buf[..]);
    ip.emit(&mut packet).ok()?;
    let mut segment = TcpSegment::new_unchecked(&mut buf[20..]);
    tcp.emit(&mut segment, r.local.0, r.remote.0).ok()?;
    Some(20 + tcp.buffer_len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use wire::ChecksumMode;

    #[test]
    fn the_ack_is_half_the_sequence_space_from_snd_nxt_and_checks_out() {
        let r = SocketRecord {
            kind: Kind::TcpConn,
            state: Some(State::Established),
            local: (Ipv4Addr::new(10, 0, 0, 1), 5000),
            remote: (Ipv4Addr::new(10, 0, 0, 2), 40000),
            snd_nxt: 0x1000,
            rcv_nxt: 0xfeed,
            ..SocketRecord::default()
        };
        assert!(peer_holds(&r));
        let mut buf = [0u8; 40];
        let len = ack_outside_window(&r, &mut buf).unwrap();
        assert_eq!(len, 40);
        let ip = Ipv4Repr::parse(&Ipv4Packet::new_checked(&buf[..len]).unwrap(), ChecksumMode::Verify).unwrap();
        assert_eq!((ip.src_addr, ip.dst_addr, ip.protocol), (r.local.0, r.remote.0, IpProtocol::TCP));
        let seg = TcpSegment::new_checked(&buf[20..len]).unwrap();
        let tcp = TcpRepr::parse(&seg, r.local.0, r.remote.0, ChecksumMode::Verify).unwrap();
        assert_eq!((tcp.src_port, tcp.dst_port, tcp.seq, tcp.ack), (5000, 40000, 0x8000_1000, Some(0xfeed)));
        assert!(tcp.flags.is_empty() && tcp.payload_len == 0);
        for s in [State::Listen, State::SynSent, State::SynReceived, State::TimeWait, State::Closed] {
            assert!(!peer_holds(&SocketRecord { state: Some(s), ..r }), "{s:?}");
        }
    }
}
