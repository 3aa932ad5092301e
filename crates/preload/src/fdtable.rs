//! What we know of each file descriptor, read with one atomic load on every intercepted call.
//!
//! A static array (zeroed in .bss, so it needs no allocation and no initialisation): fds past
//! its end are never accelerated and always pass through. Zero means "not ours": the program's
//! call goes straight to libc.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Descriptors the table covers.
pub const MAX_FDS: usize = 65_536;

static TABLE: [AtomicU64; MAX_FDS] = [const { AtomicU64::new(0) }; MAX_FDS];

/// One past the highest descriptor ever recorded accelerated: scans for accelerated
/// descriptors (exasock-stat's publication) stop here instead of at MAX_FDS.
static ACCEL_END: AtomicUsize = AtomicUsize::new(0);

fn note_accel(fd: i32) {
    ACCEL_END.fetch_max(fd as usize + 1, Ordering::Relaxed);
}

/// Descriptors below this may be accelerated; none above ever was.
pub fn accel_end() -> usize {
    ACCEL_END.load(Ordering::Relaxed).min(MAX_FDS)
}

/// The state of one descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdState {
    /// Not a socket we may accelerate (or not a socket at all).
    Kernel,
    /// An AF_INET datagram socket that may still be accelerated (bind, connect, send).
    UdpCandidate,
    /// A candidate under --no-auto: accelerated only after SO_EXA_NO_ACCEL is set to 0.
    UdpInactive,
    /// Acceleration refused for good (SO_EXA_NO_ACCEL = 1, or a failed attempt).
    Disabled,
    /// Accelerated: the stack socket's slot in the runtime (the slot says its protocol).
    Accel(u32),
    /// An AF_INET stream socket that may still be accelerated (listen, connect).
    TcpCandidate,
    /// A TCP candidate under --no-auto: accelerated only after SO_EXA_NO_ACCEL is set to 0.
    TcpInactive,
    /// One of exasock's own descriptors (ring, netlink, raw socket, BPF objects): the program
    /// cannot close it or dup2 over it.
    Internal,
    /// In a forked child: a TCP socket the parent accelerated, whose connection (or listener)
    /// is still the parent's. The first call on it asks the parent to hand it to the kernel
    /// (`inherit::claim`); from then on it is a plain kernel socket in both processes.
    Inherited,
}

const KIND_SHIFT: u32 = 56;
const CANDIDATE: u64 = 1;
const INACTIVE: u64 = 2;
const DISABLED: u64 = 3;
const ACCEL: u64 = 4;
const INTERNAL: u64 = 5;
const TCP_CANDIDATE: u64 = 6;
const TCP_INACTIVE: u64 = 7;
const INHERITED: u64 = 8;

fn encode(state: FdState) -> u64 {
    match state {
        FdState::Kernel => 0,
        FdState::UdpCandidate => CANDIDATE << KIND_SHIFT,
        FdState::UdpInactive => INACTIVE << KIND_SHIFT,
        FdState::Disabled => DISABLED << KIND_SHIFT,
        FdState::Accel(slot) => (ACCEL << KIND_SHIFT) | u64::from(slot),
        FdState::Internal => INTERNAL << KIND_SHIFT,
        FdState::TcpCandidate => TCP_CANDIDATE << KIND_SHIFT,
        FdState::TcpInactive => TCP_INACTIVE << KIND_SHIFT,
        FdState::Inherited => INHERITED << KIND_SHIFT,
    }
}

fn decode(word: u64) -> FdState {
    match word >> KIND_SHIFT {
        CANDIDATE => FdState::UdpCandidate,
        INACTIVE => FdState::UdpInactive,
        DISABLED => FdState::Disabled,
        ACCEL => FdState::Accel(word as u32),
        INTERNAL => FdState::Internal,
        TCP_CANDIDATE => FdState::TcpCandidate,
        TCP_INACTIVE => FdState::TcpInactive,
        INHERITED => FdState::Inherited,
        _ => FdState::Kernel,
    }
}

fn slot(fd: i32) -> Option<&'static AtomicU64> {
    usize::try_from(fd).ok().and_then(|i| TABLE.get(i))
}

/// The state of `fd` (Kernel for negative or out-of-range fds), as a call on it sees it: an
/// inherited socket is first claimed from the parent, and is then a kernel socket.
#[inline]
pub fn get(fd: i32) -> FdState {
    match get_raw(fd) {
        FdState::Inherited => claimed(fd),
        state => state,
    }
}

/// The state of `fd` as recorded, inherited sockets included: for close, for descriptors
/// about to be replaced, and for scans that must not ask the parent for anything.
#[inline]
pub fn get_raw(fd: i32) -> FdState {
    slot(fd).map_or(FdState::Kernel, |s| decode(s.load(Ordering::Acquire)))
}

#[cold]
fn claimed(fd: i32) -> FdState {
    crate::inherit::claim(fd);
    get_raw(fd)
}

/// Whether `fd` is accelerated: the one check on every passthrough call (an inherited socket
/// is claimed from the parent first, then passes through).
#[inline]
pub fn is_accelerated(fd: i32) -> bool {
    slot(fd).is_some_and(|s| match s.load(Ordering::Acquire) >> KIND_SHIFT {
        ACCEL => true,
        INHERITED => claimed(fd) != FdState::Kernel,
        _ => false,
    })
}

/// A candidate found bound (with a port) by a send that stays on the kernel: its later sends
/// need no getsockname to learn that again. Kept in the candidate word's payload, so any state
/// change clears it.
const BOUND_HINT: u64 = 1;

/// Notes that candidate `fd` is bound (no effect on other states).
pub fn hint_bound(fd: i32) {
    if let Some(s) = slot(fd) {
        let _ = s.compare_exchange(
            CANDIDATE << KIND_SHIFT,
            CANDIDATE << KIND_SHIFT | BOUND_HINT,
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
    }
}

/// Whether candidate `fd` was noted bound.
#[inline]
pub fn hinted_bound(fd: i32) -> bool {
    slot(fd).is_some_and(|s| s.load(Ordering::Acquire) == CANDIDATE << KIND_SHIFT | BOUND_HINT)
}

/// In an accelerated fd's word: the slot's socket is TCP (one load tells a call which
/// protocol's operations to run).
const TCP_BIT: u64 = 1 << 40;

/// In an accelerated TCP fd's word: the socket is a connection (its kernel socket is only a
/// placeholder that poll must not ask: it would say POLLHUP), not a listener.
const CONNECTION_BIT: u64 = 1 << 41;

/// Records `fd` as an accelerated TCP socket in `slot`: a listener, or a connection.
pub fn set_tcp(fd: i32, id: u32, connection: bool) {
    if let Some(s) = slot(fd) {
        let bit = if connection { CONNECTION_BIT } else { 0 };
        note_accel(fd);
        s.store(encode(FdState::Accel(id)) | TCP_BIT | bit, Ordering::Release);
    }
}

/// Whether `fd` is an accelerated TCP connection: its readiness is the stack's alone.
#[inline]
pub fn is_tcp_connection(fd: i32) -> bool {
    slot(fd).is_some_and(|s| {
        let w = s.load(Ordering::Acquire);
        w >> KIND_SHIFT == ACCEL && w & (TCP_BIT | CONNECTION_BIT) == TCP_BIT | CONNECTION_BIT
    })
}

/// Whether `fd` is an accelerated TCP socket.
#[inline]
pub fn is_tcp(fd: i32) -> bool {
    slot(fd).is_some_and(|s| {
        let w = s.load(Ordering::Acquire);
        w >> KIND_SHIFT == ACCEL && w & TCP_BIT != 0
    })
}

/// Gives `to` the state of `from`, whole (dup).
pub fn copy(from: i32, to: i32) {
    if let (Some(a), Some(b)) = (slot(from), slot(to)) {
        note_accel(to);
        b.store(a.load(Ordering::Acquire), Ordering::Release);
    }
}

/// In a TCP candidate's word: the program set SO_RCVBUF (1) or SO_SNDBUF (2) on it, so the
/// stack follows the kernel socket's value instead of autotuning from its own default.
pub const BUF_RCV: u64 = 1;
/// See [`BUF_RCV`].
pub const BUF_SND: u64 = 2;
/// In a TCP candidate's word: the program set an option that connections accepted from it
/// inherit (as on Linux, where an accepted socket is a clone of its listener).
pub const INHERITABLE_SET: u64 = 4;
/// In a TCP candidate's word: the program chose a congestion control (TCP_CONGESTION).
pub const CONGESTION_SET: u64 = 8;

/// Notes that TCP candidate `fd` had options set (BUF_RCV, BUF_SND, INHERITABLE_SET,
/// CONGESTION_SET).
pub fn note_tcp_option(fd: i32, which: u64) {
    if let Some(s) = slot(fd) {
        let _ = s.fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
            (w >> KIND_SHIFT == TCP_CANDIDATE).then_some(w | which)
        });
    }
}

/// The options noted on TCP candidate `fd` (BUF_RCV, BUF_SND, INHERITABLE_SET, CONGESTION_SET).
pub fn tcp_options_set(fd: i32) -> u64 {
    slot(fd).map_or(0, |s| {
        let w = s.load(Ordering::Acquire);
        if w >> KIND_SHIFT == TCP_CANDIDATE {
            w & (BUF_RCV | BUF_SND | INHERITABLE_SET | CONGESTION_SET)
        } else {
            0
        }
    })
}

/// Records the state of `fd` (ignored past the table's end).
pub fn set(fd: i32, state: FdState) {
    if let Some(s) = slot(fd) {
        let accel = matches!(state, FdState::Accel(_));
        if accel {
            note_accel(fd);
        }
        let old = s.swap(encode(state), Ordering::AcqRel);
        if old >> KIND_SHIFT == ACCEL && !accel {
            DEMOTIONS.fetch_add(1, Ordering::Release);
        }
    }
}

/// How many times a descriptor stopped being accelerated while open (handed to the kernel at
/// fork, exec or exit): the epoll registry then asks the kernel about it again.
pub static DEMOTIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Clears `fd` and returns what it was.
pub fn take(fd: i32) -> FdState {
    slot(fd).map_or(FdState::Kernel, |s| decode(s.swap(0, Ordering::AcqRel)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_hint_belongs_to_candidates_and_goes_with_any_change() {
        set(200, FdState::UdpCandidate);
        assert!(!hinted_bound(200));
        hint_bound(200);
        assert!(hinted_bound(200));
        assert_eq!(get(200), FdState::UdpCandidate);
        set(200, FdState::UdpCandidate);
        assert!(!hinted_bound(200));
        set(200, FdState::Accel(3));
        hint_bound(200);
        assert_eq!(get(200), FdState::Accel(3));
        assert!(!hinted_bound(200));
        take(200);
    }

    #[test]
    fn states_round_trip_and_out_of_range_fds_are_kernel() {
        for st in [
            FdState::Kernel,
            FdState::UdpCandidate,
            FdState::UdpInactive,
            FdState::Disabled,
            FdState::Internal,
            FdState::Accel(7),
        ] {
            set(100, st);
            assert_eq!(get(100), st);
        }
        assert!(is_accelerated(100));
        assert_eq!(take(100), FdState::Accel(7));
        assert_eq!(get(100), FdState::Kernel);
        set(-1, FdState::Accel(1));
        set(MAX_FDS as i32, FdState::Accel(1));
        assert_eq!(get(-1), FdState::Kernel);
        assert_eq!(get(MAX_FDS as i32), FdState::Kernel);
    }
}
