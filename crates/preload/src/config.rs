//! The environment the program was started with (read once, by the constructor).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

static DEBUG: AtomicBool = AtomicBool::new(false);
static NOWARN: AtomicBool = AtomicBool::new(false);
static DEFAULT_DISABLE: AtomicBool = AtomicBool::new(false);
static SPIN_USEC: AtomicU64 = AtomicU64::new(u64::MAX);
static TCP: AtomicBool = AtomicBool::new(true);
static MCAST_LOOP: AtomicBool = AtomicBool::new(true);

fn present(name: &[u8]) -> bool {
    // SAFETY: name is NUL-terminated; getenv reads the environment without allocating.
    unsafe { !libc::getenv(name.as_ptr().cast()).is_null() }
}

/// Reads EXASOCK_DEBUG, EXASOCK_NOWARN, EXASOCK_DEFAULT_DISABLE (presence tests, as the
/// original), EXASOCK_SPIN_USEC, EXASOCK_TCP (0 turns TCP acceleration off) and
/// EXASOCK_MCAST_LOOP (0: no multicast loopback).
pub fn load() {
    DEBUG.store(present(b"EXASOCK_DEBUG\0"), Ordering::Relaxed);
    crate::trace::load();
    NOWARN.store(present(b"EXASOCK_NOWARN\0"), Ordering::Relaxed);
    DEFAULT_DISABLE.store(present(b"EXASOCK_DEFAULT_DISABLE\0"), Ordering::Relaxed);
    // SAFETY: as above; a value getenv returns is NUL-terminated, so its first byte exists.
    let tcp_off = unsafe {
        let v = libc::getenv(c"EXASOCK_TCP".as_ptr());
        !v.is_null() && *v == b'0' as libc::c_char
    };
    TCP.store(!tcp_off, Ordering::Relaxed);
    // SAFETY: as above.
    let loop_off = unsafe {
        let v = libc::getenv(c"EXASOCK_MCAST_LOOP".as_ptr());
        !v.is_null() && *v == b'0' as libc::c_char
    };
    MCAST_LOOP.store(!loop_off, Ordering::Relaxed);
    // SAFETY: as above; the value is parsed from a C string without allocating.
    let spin = unsafe { libc::getenv(c"EXASOCK_SPIN_USEC".as_ptr()) };
    if !spin.is_null() {
        // SAFETY: getenv returned a NUL-terminated string.
        let text = unsafe { std::ffi::CStr::from_ptr(spin) }.to_bytes();
        if let Some(v) = std::str::from_utf8(text).ok().and_then(|t| t.trim().parse().ok()) {
            SPIN_USEC.store(v, Ordering::Relaxed);
        }
    }
}

/// EXASOCK_DEBUG: print `exasock: enabled bypass on fd N`.
pub fn debug() -> bool {
    DEBUG.load(Ordering::Relaxed)
}

/// EXASOCK_NOWARN: no `exasock warning: ...` lines.
pub fn nowarn() -> bool {
    NOWARN.load(Ordering::Relaxed)
}

/// EXASOCK_DEFAULT_DISABLE: new sockets are not accelerated unless they ask.
pub fn default_disable() -> bool {
    DEFAULT_DISABLE.load(Ordering::Relaxed)
}

/// How long a blocked call spins before it sleeps (EXASOCK_SPIN_USEC; unset: spin forever, as
/// the original).
pub fn spin_usec() -> u64 {
    SPIN_USEC.load(Ordering::Relaxed)
}

/// TCP listeners, their connections and connects are accelerated unless EXASOCK_TCP=0 (then
/// every TCP socket stays on the kernel, as before TCP acceleration existed).
pub fn tcp() -> bool {
    TCP.load(Ordering::Relaxed)
}

/// Whether a datagram an accelerated socket sends to a group also reaches this host's members
/// when its IP_MULTICAST_LOOP is on (the default, as Linux): a copy with TTL 0 goes through the
/// kernel, which loops it to them and never sends it, a syscall per send; and whether a
/// broadcast goes through the kernel socket, which loops it to this host's sockets of the port
/// as Linux always does. EXASOCK_MCAST_LOOP=0 saves both for programs that need no local copy
/// (as Onload's EF_MCAST_SEND): then no local socket gets the datagram, whatever the option
/// says, and broadcasts are accelerated.
pub fn mcast_loop() -> bool {
    MCAST_LOOP.load(Ordering::Relaxed)
}
