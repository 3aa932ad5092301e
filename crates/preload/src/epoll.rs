//! epoll sets that hold descriptors served in user space.
//!
//! An accelerated fd is never in the kernel's epoll set (its kernel socket would answer for it):
//! we keep it here, with its events and data, and `epoll_wait` merges its readiness with the
//! kernel's. Candidates (sockets that may turn accelerated) that join a set are remembered too,
//! so that when one turns accelerated it moves from the kernel set to ours. An epoll fd inside
//! another epoll set is remembered as well: the kernel cannot see the accelerated members of
//! the inner set, so the outer set's waits ask the registry about them (nested epoll).

use crate::lock::{Guard, Lock};
use std::sync::atomic::{AtomicBool, Ordering};

/// Per fd: whether it is (or was) an epoll set or member we track, so that close() and
/// epoll_wait() of everything else never take the registry's lock.
static TRACKED: [AtomicBool; crate::fdtable::MAX_FDS] = [const { AtomicBool::new(false) }; crate::fdtable::MAX_FDS];
/// Per fd: whether it is an epoll instance (made by epoll_create*), for nesting.
static EPOLL_FD: [AtomicBool; crate::fdtable::MAX_FDS] = [const { AtomicBool::new(false) }; crate::fdtable::MAX_FDS];

fn flag(table: &'static [AtomicBool], fd: i32) -> Option<&'static AtomicBool> {
    usize::try_from(fd).ok().and_then(|i| table.get(i))
}

/// Marks `fd` as tracked.
pub fn track(fd: i32) {
    if let Some(t) = flag(&TRACKED, fd) {
        t.store(true, Ordering::Release);
    }
}

/// Whether `fd` is tracked (one atomic load).
#[inline]
pub fn tracked(fd: i32) -> bool {
    flag(&TRACKED, fd).is_some_and(|t| t.load(Ordering::Acquire))
}

/// Records that `fd` is an epoll instance.
pub fn mark_epoll(fd: i32) {
    if let Some(t) = flag(&EPOLL_FD, fd) {
        t.store(true, Ordering::Release);
    }
}

/// Whether `fd` is an epoll instance.
#[inline]
pub fn is_epoll(fd: i32) -> bool {
    flag(&EPOLL_FD, fd).is_some_and(|t| t.load(Ordering::Acquire))
}

/// How a member's readiness is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// By the kernel set (a candidate that has not turned accelerated).
    Kernel,
    /// By us: an accelerated socket (or one handed back to the kernel by fork, read by poll).
    User,
    /// By us: an epoll fd whose own members may be served by us.
    Nested,
}

/// One (epoll set, fd) registration.
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
    /// Who finds its readiness.
    pub served: Served,
    /// Edge-triggered: the socket's arrival count when readability was last reported.
    pub seen_arrivals: u64,
    /// Edge-triggered: the socket's count of sends that found its buffer full when
    /// writability was last reported.
    pub seen_send_blocks: u32,
    /// Edge-triggered: the readiness last seen (an edge is a bit that was not in it).
    pub last_level: u32,
    /// What poll() said of the fd itself at the last kernel check (loopback data on the
    /// kernel socket, errors, hang-ups; for a nested set, its kernel members).
    pub kernel_events: u32,
    /// EPOLLONESHOT fired: silent until EPOLL_CTL_MOD.
    pub disarmed: bool,
    /// When `kernel_events` was read (CLOCK_MONOTONIC ns; 0: never) and the kernel-state epoch
    /// then: it is read again after a millisecond, or at once after a shutdown or connect.
    pub refreshed: (u64, u64),
}

impl Member {
    /// A fresh registration (ADD, or MOD which re-arms).
    pub fn new(epfd: i32, fd: i32, events: u32, data: u64, served: Served) -> Member {
        Member {
            epfd,
            fd,
            events,
            data,
            served,
            seen_arrivals: 0,
            seen_send_blocks: 0,
            last_level: 0,
            kernel_events: 0,
            disarmed: false,
            refreshed: (0, 0),
        }
    }
}

/// Bumped when a call may change what poll() says of an accelerated fd's kernel socket
/// (shutdown, connect), so waits read it again at once rather than within a millisecond.
pub static KERNEL_EPOCH: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A call changed an accelerated fd's kernel socket.
pub fn kernel_state_changed() {
    KERNEL_EPOCH.fetch_add(1, Ordering::Release);
}

/// The registry.
pub static MEMBERS: Lock<Vec<Member>> = Lock::new(Vec::new());

/// The registry, locked (before the runtime, when both are needed).
pub fn members() -> Guard<'static, Vec<Member>> {
    crate::fork::install();

    MEMBERS.lock()
}

/// `fd` was closed: its registrations (as a member or as a set) go.
pub fn forget(fd: i32) {
    // Loads first: close() of every plain fd passes here, and a load costs less than a store.
    let epoll_set = flag(&EPOLL_FD, fd).filter(|e| e.load(Ordering::Relaxed));
    if (epoll_set.is_some() || tracked(fd)) && crate::runtime::in_vfork_child() {
        // A vfork child's close: the registry is the parent's (shared memory), and so is the
        // descriptor it names; nothing changes.
        return;
    }
    if let Some(e) = epoll_set {
        e.store(false, Ordering::Release);
    }
    if !tracked(fd) {
        return;
    }
    if let Some(t) = flag(&TRACKED, fd) {
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
    for m in list.iter_mut().filter(|m| m.fd == fd && m.served == Served::Kernel) {
        // SAFETY: EPOLL_CTL_DEL ignores the event argument on current kernels.
        unsafe { crate::real::epoll_ctl(m.epfd, libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut()) };
        m.served = Served::User;
    }
}

/// The kernel's depth limit for nested epoll sets (EP_MAX_NESTS).
const MAX_NESTS: u32 = 4;

/// Whether waits on `epfd` must run in user space: it has members we serve, directly or in
/// epoll sets nested in it.
pub fn needs_user_wait(list: &[Member], epfd: i32) -> bool {
    fn walk(list: &[Member], epfd: i32, depth: u32) -> bool {
        depth <= MAX_NESTS
            && list.iter().filter(|m| m.epfd == epfd).any(|m| match m.served {
                Served::User => true,
                Served::Nested => walk(list, m.fd, depth + 1),
                Served::Kernel => false,
            })
    }
    walk(list, epfd, 0)
}
