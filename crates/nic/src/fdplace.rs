//! Where exasock's own descriptors go: above a base the interposition layer sets, so that they
//! stay out of the numbers a program expects socket() and open() to return.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};

static BASE: AtomicI32 = AtomicI32::new(-1);

/// Sets the lowest number internal descriptors may take (None: leave them where they are).
pub fn set_base(base: Option<i32>) {
    BASE.store(base.unwrap_or(-1), Ordering::Relaxed);
}

/// Moves `fd` to the lowest free number at or above the base (close-on-exec), if one is set.
pub fn place(fd: OwnedFd) -> io::Result<OwnedFd> {
    let base = BASE.load(Ordering::Relaxed);
    if base < 0 {
        return Ok(fd);
    }
    // SAFETY: F_DUPFD_CLOEXEC on a descriptor we own; the result is checked.
    let moved = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, base) };
    if moved < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nothing else owns; the old one closes when `fd` drops.
    Ok(unsafe { OwnedFd::from_raw_fd(moved) })
}
