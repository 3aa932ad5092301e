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

/// A duplicate of `fd` at or above the base (close-on-exec): unlike `try_clone`, it never
/// takes, even for a moment, a low number a program may be about to reuse.
pub fn dup_placed(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let base = BASE.load(Ordering::Relaxed);
    if base < 0 {
        return fd.try_clone_to_owned();
    }
    // SAFETY: F_DUPFD_CLOEXEC of a descriptor the caller keeps open; the result is checked.
    let dup = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, base) };
    if dup < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(dup) })
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
