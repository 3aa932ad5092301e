//! The driver's clock: CLOCK_MONOTONIC as the stack's `Instant`.

use stack::Instant;

/// Now, on CLOCK_MONOTONIC (vDSO: no syscall).
pub fn now() -> Instant {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    Instant::from_nanos(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}
