//! What we know of each file descriptor, read with one atomic load on every intercepted call.
//!
//! A static array (zeroed in .bss, so it needs no allocation and no initialisation): fds past
//! its end are never accelerated and always pass through. Zero means "not ours": the program's
//! call goes straight to libc.

use std::sync::atomic::{AtomicU64, Ordering};

/// Descriptors the table covers.
pub const MAX_FDS: usize = 65_536;

static TABLE: [AtomicU64; MAX_FDS] = [const { AtomicU64::new(0) }; MAX_FDS];

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
    /// Accelerated: the stack socket's slot in the runtime.
    Udp(u32),
    /// One of exasock's own descriptors (ring, netlink, raw socket, BPF objects): the program
    /// cannot close it or dup2 over it.
    Internal,
}

const KIND_SHIFT: u32 = 56;
const CANDIDATE: u64 = 1;
const INACTIVE: u64 = 2;
const DISABLED: u64 = 3;
const UDP: u64 = 4;
const INTERNAL: u64 = 5;

fn encode(state: FdState) -> u64 {
    match state {
        FdState::Kernel => 0,
        FdState::UdpCandidate => CANDIDATE << KIND_SHIFT,
        FdState::UdpInactive => INACTIVE << KIND_SHIFT,
        FdState::Disabled => DISABLED << KIND_SHIFT,
        FdState::Udp(slot) => (UDP << KIND_SHIFT) | u64::from(slot),
        FdState::Internal => INTERNAL << KIND_SHIFT,
    }
}

fn decode(word: u64) -> FdState {
    match word >> KIND_SHIFT {
        CANDIDATE => FdState::UdpCandidate,
        INACTIVE => FdState::UdpInactive,
        DISABLED => FdState::Disabled,
        UDP => FdState::Udp(word as u32),
        INTERNAL => FdState::Internal,
        _ => FdState::Kernel,
    }
}

fn slot(fd: i32) -> Option<&'static AtomicU64> {
    usize::try_from(fd).ok().and_then(|i| TABLE.get(i))
}

/// The state of `fd` (Kernel for negative or out-of-range fds).
#[inline]
pub fn get(fd: i32) -> FdState {
    slot(fd).map_or(FdState::Kernel, |s| decode(s.load(Ordering::Acquire)))
}

/// Whether `fd` is accelerated: the one check on every passthrough call.
#[inline]
pub fn is_accelerated(fd: i32) -> bool {
    slot(fd).is_some_and(|s| s.load(Ordering::Acquire) >> KIND_SHIFT == UDP)
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

/// Records the state of `fd` (ignored past the table's end).
pub fn set(fd: i32, state: FdState) {
    if let Some(s) = slot(fd) {
        s.store(encode(state), Ordering::Release);
    }
}

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
        set(200, FdState::Udp(3));
        hint_bound(200);
        assert_eq!(get(200), FdState::Udp(3));
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
            FdState::Udp(7),
        ] {
            set(100, st);
            assert_eq!(get(100), st);
        }
        assert!(is_accelerated(100));
        assert_eq!(take(100), FdState::Udp(7));
        assert_eq!(get(100), FdState::Kernel);
        set(-1, FdState::Udp(1));
        set(MAX_FDS as i32, FdState::Udp(1));
        assert_eq!(get(-1), FdState::Kernel);
        assert_eq!(get(MAX_FDS as i32), FdState::Kernel);
    }
}
