//! epoll sets that hold accelerated sockets.
//!
//! An accelerated fd is never in the kernel's epoll set (its kernel socket would answer for it):
//! we keep it here, with its events and data, and `epoll_wait` merges its readiness with the
//! kernel's. Candidates (sockets that may turn accelerated) that join a set are remembered too,
//! so that when one turns accelerated it moves from the kernel set to ours.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Per fd: whether it is (or was) an epoll set or member we track, so that close() and
/// epoll_wait() of everything else never take the registry's lock.
static TRACKED: [AtomicBool; crate::fdtable::MAX_FDS] = [const { AtomicBool::new(false) }; crate::fdtable::MAX_FDS];

/// Marks `fd` as known to the registry.
pub fn track(fd: i32) {
    if let Some(t) = usize::try_from(fd).ok().and_then(|i| TRACKED.get(i)) {
        t.store(true, Ordering::Release);
    }
}

/// Whether the registry may know `fd`: one atomic load.
#[inline]
pub fn tracked(fd: i32) -> bool {
    usize::try_from(fd).ok().and_then(|i| TRACKED.get(i)).is_some_and(|t| t.load(Ordering::Acquire))
}

/// One fd in one epoll set.
#[derive(Debug, Clone, Copy)]
pub struct Member {
    /// The epoll fd.
    pub epfd: i32,
    /// The member fd.
    pub fd: i32,
    /// EPOLLIN, EPOLLOUT, EPOLLET, EPOLLONESHOT... as registered.
    pub events: u32,
    /// The program's data word.
    pub data: u64,
    /// Served by us (true) or by the kernel set (a candidate, false).
    pub accelerated: bool,
    /// Edge-triggered: the socket's arrival count when readability was last reported.
    pub seen_arrivals: u64,
    /// Edge-triggered: writability reported once.
    pub reported_out: bool,
    /// EPOLLONESHOT fired: silent until EPOLL_CTL_MOD.
    pub disarmed: bool,
}

static MEMBERS: Mutex<Vec<Member>> = Mutex::new(Vec::new());

/// The registry (poisoning ignored: a panic aborts the process).
pub fn members() -> MutexGuard<'static, Vec<Member>> {
    MEMBERS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Forgets `fd` everywhere (it was closed), and every member of `fd` if it was an epoll set.
pub fn forget(fd: i32) {
    if !tracked(fd) {
        return;
    }
    if let Some(t) = usize::try_from(fd).ok().and_then(|i| TRACKED.get(i)) {
        t.store(false, Ordering::Release);
    }
    members().retain(|m| m.fd != fd && m.epfd != fd);
}

/// `fd` turned accelerated: its memberships leave the kernel's sets and become ours.
pub fn promote(fd: i32) {
    if !tracked(fd) {
        return;
    }
    let mut list = members();
    for m in list.iter_mut().filter(|m| m.fd == fd && !m.accelerated) {
        // SAFETY: EPOLL_CTL_DEL ignores the event argument on current kernels.
        unsafe { crate::real::epoll_ctl(m.epfd, libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut()) };
        m.accelerated = true;
    }
}
