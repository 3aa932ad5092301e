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
    /// The accelerated socket (slot id) behind the fd when it was registered or promoted:
    /// its readiness changes put this member on its set's ready list.
    slot: Option<u32>,
    /// On its set's ready list.
    queued: bool,
    /// In its set's list of members the kernel is asked about.
    polled: bool,
    /// Its index in its set's `members`.
    pos: usize,
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
            slot: None,
            queued: false,
            polled: false,
            pos: 0,
        }
    }
}

/// One epoll set's registrations, as indexes into the registry.
#[derive(Debug, Default)]
pub struct Set {
    /// Every member.
    members: Vec<usize>,
    /// How many are served by us.
    user: usize,
    /// The epoll sets nested in it (looked at by every wait).
    pub nested: Vec<usize>,
    /// Members served by us whose fd the kernel is asked about (what poll() says of it):
    /// UDP sockets and listeners (loopback traffic reaches their kernel sockets), sockets
    /// handed back to the kernel. Not TCP connections, whose kernel socket holds nothing.
    pub polled: Vec<usize>,
    /// Members that may be ready, each once: the next wait looks at them and drops those that
    /// are not (a level-triggered member that is stays, as Linux's ready list).
    pub ready: std::collections::VecDeque<usize>,
}

/// Every (epoll set, fd) registration, indexed by set, by member fd and by accelerated socket,
/// so that a wait looks at what may be ready (the ready list, fed by the stack's readiness
/// events) rather than at every member: 10,000 idle connections cost a wait nothing.
#[derive(Debug)]
pub struct Registry {
    slab: Vec<Option<Member>>,
    free: Vec<usize>,
    /// By epoll fd.
    sets: Vec<Option<Set>>,
    /// Member indexes by member fd.
    by_fd: Vec<Vec<usize>>,
    /// Member indexes by the index half of their slot id.
    by_slot: Vec<Vec<usize>>,
    /// `fdtable::DEMOTIONS` when the polled lists were last rebuilt.
    demotions_seen: u64,
}

fn entry<T: Default>(v: &mut Vec<T>, i: usize) -> &mut T {
    if v.len() <= i {
        v.resize_with(i + 1, T::default);
    }
    &mut v[i]
}

fn slot_index(id: u32) -> usize {
    (id & 0xffff) as usize
}

impl Registry {
    const fn new() -> Registry {
        Registry {
            slab: Vec::new(),
            free: Vec::new(),
            sets: Vec::new(),
            by_fd: Vec::new(),
            by_slot: Vec::new(),
            demotions_seen: 0,
        }
    }

    /// A member by index.
    pub fn get(&self, i: usize) -> Option<&Member> {
        self.slab.get(i)?.as_ref()
    }

    /// A member by index, to change.
    pub fn get_mut(&mut self, i: usize) -> Option<&mut Member> {
        self.slab.get_mut(i)?.as_mut()
    }

    /// The set of an epoll fd, if it has members.
    pub fn set(&self, epfd: i32) -> Option<&Set> {
        self.sets.get(usize::try_from(epfd).ok()?)?.as_ref()
    }

    /// The set of an epoll fd, to change.
    pub fn set_mut(&mut self, epfd: i32) -> Option<&mut Set> {
        self.sets.get_mut(usize::try_from(epfd).ok()?)?.as_mut()
    }

    /// The registration of `fd` in `epfd`.
    pub fn find(&self, epfd: i32, fd: i32) -> Option<usize> {
        let list = self.by_fd.get(usize::try_from(fd).ok()?)?;
        list.iter().copied().find(|&i| self.get(i).is_some_and(|m| m.epfd == epfd))
    }

    /// Whether the kernel should be asked what it says of this member's fd.
    fn wants_poll(m: &Member) -> bool {
        m.served == Served::User && !crate::fdtable::is_tcp_connection(m.fd)
    }

    /// Adds a registration (its readiness is looked at by the next wait, as Linux does at
    /// EPOLL_CTL_ADD). Returns its index.
    pub fn add(&mut self, mut m: Member) -> usize {
        let (Ok(ep), Ok(fd)) = (usize::try_from(m.epfd), usize::try_from(m.fd)) else { return usize::MAX };
        let i = self.free.pop().unwrap_or_else(|| {
            self.slab.push(None);
            self.slab.len() - 1
        });
        let set = entry(&mut self.sets, ep).get_or_insert_with(Set::default);
        m.pos = set.members.len();
        set.members.push(i);
        match m.served {
            Served::User => set.user += 1,
            Served::Nested => set.nested.push(i),
            Served::Kernel => {}
        }
        if Self::wants_poll(&m) {
            m.polled = true;
            set.polled.push(i);
        }
        m.queued = false;
        m.slot = None;
        entry(&mut self.by_fd, fd).push(i);
        self.slab[i] = Some(m);
        self.attach_slot(i);
        self.queue(i);
        i
    }

    /// Links a member served by us to the accelerated socket behind its fd now.
    fn attach_slot(&mut self, i: usize) {
        let Some(m) = self.get(i) else { return };
        if m.served != Served::User {
            return;
        }
        if let crate::fdtable::FdState::Accel(id) = crate::fdtable::get(m.fd) {
            if m.slot == Some(id) {
                return;
            }
            self.detach_slot(i);
            entry(&mut self.by_slot, slot_index(id)).push(i);
            if let Some(m) = self.get_mut(i) {
                m.slot = Some(id);
            }
        }
    }

    fn detach_slot(&mut self, i: usize) {
        let Some(id) = self.get_mut(i).and_then(|m| m.slot.take()) else { return };
        if let Some(list) = self.by_slot.get_mut(slot_index(id)) {
            list.retain(|&x| x != i);
        }
    }

    /// Removes a registration.
    pub fn remove(&mut self, i: usize) {
        self.detach_slot(i);
        let Some(m) = self.slab.get_mut(i).and_then(Option::take) else { return };
        if let Some(list) = usize::try_from(m.fd).ok().and_then(|fd| self.by_fd.get_mut(fd)) {
            list.retain(|&x| x != i);
        }
        if let Some(set) = self.set_mut(m.epfd) {
            set.members.swap_remove(m.pos);
            if let Some(&moved) = set.members.get(m.pos) {
                if let Some(Some(other)) = self.slab.get_mut(moved) {
                    other.pos = m.pos;
                }
            }
            let set = self.set_mut(m.epfd).expect("looked up above");
            match m.served {
                Served::User => set.user -= 1,
                Served::Nested => set.nested.retain(|&x| x != i),
                Served::Kernel => {}
            }
            if m.polled {
                set.polled.retain(|&x| x != i);
            }
            if m.queued {
                set.ready.retain(|&x| x != i);
            }
            if set.members.is_empty() {
                self.sets[m.epfd as usize] = None;
            }
        }
        self.free.push(i);
    }

    /// Puts a member on its set's ready list (once).
    pub fn queue(&mut self, i: usize) {
        let Some(m) = self.slab.get_mut(i).and_then(Option::as_mut) else { return };
        if m.queued || m.served == Served::Kernel {
            return;
        }
        m.queued = true;
        let epfd = m.epfd;
        if let Some(set) = self.set_mut(epfd) {
            set.ready.push_back(i);
        }
    }

    /// Takes the next member off a set's ready list.
    pub fn pop_ready(&mut self, epfd: i32) -> Option<usize> {
        let i = self.set_mut(epfd)?.ready.pop_front()?;
        if let Some(m) = self.get_mut(i) {
            m.queued = false;
        }
        Some(i)
    }

    /// An accelerated socket's readiness may have changed: its members go on their ready lists.
    pub fn slot_changed(&mut self, id: u32) {
        let Some(list) = self.by_slot.get(slot_index(id)) else { return };
        // Few members per socket (one per set it is in, per descriptor naming it).
        for k in 0..list.len() {
            let i = self.by_slot[slot_index(id)][k];
            if self.get(i).is_some_and(|m| m.slot == Some(id)) {
                self.queue(i);
            }
        }
    }

    /// Readiness changes were lost: every member we serve goes on its ready list.
    pub fn all_changed(&mut self) {
        for i in 0..self.slab.len() {
            self.queue(i);
        }
    }

    /// After descriptors stopped being accelerated (`fdtable::DEMOTIONS`): which members the
    /// kernel is asked about is worked out again, and every member is looked at.
    pub fn follow_demotions(&mut self) {
        let now = crate::fdtable::DEMOTIONS.load(Ordering::Acquire);
        if now == self.demotions_seen {
            return;
        }
        self.demotions_seen = now;
        for i in 0..self.slab.len() {
            let Some(m) = self.get(i).copied() else { continue };
            if !m.polled && Self::wants_poll(&m) {
                if let Some(set) = self.set_mut(m.epfd) {
                    set.polled.push(i);
                }
                if let Some(m) = self.get_mut(i) {
                    m.polled = true;
                }
            }
            self.queue(i);
        }
    }

    /// Drops from a set's polled list the members that became TCP connections (a connect):
    /// the kernel socket behind a connection holds nothing to report.
    pub fn prune_polled(&mut self, epfd: i32) {
        let Some(set) = self.sets.get_mut(epfd as usize).and_then(Option::as_mut) else { return };
        let slab = &mut self.slab;
        set.polled.retain(|&i| match slab.get_mut(i).and_then(Option::as_mut) {
            Some(m) if Self::wants_poll(m) => true,
            Some(m) => {
                m.polled = false;
                false
            }
            None => false,
        });
    }

    /// The member indexes of `fd` (as a member).
    fn of_fd(&self, fd: i32) -> Vec<usize> {
        usize::try_from(fd).ok().and_then(|f| self.by_fd.get(f)).cloned().unwrap_or_default()
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
pub static MEMBERS: Lock<Registry> = Lock::new(Registry::new());

/// The registry, locked (before the runtime, when both are needed).
pub fn members() -> Guard<'static, Registry> {
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
    let mut reg = members();
    for i in reg.of_fd(fd) {
        reg.remove(i);
    }
    if let Some(set) = reg.set(fd) {
        let all = set.members.clone();
        for i in all {
            reg.remove(i);
        }
    }
}

/// `fd` turned accelerated: its memberships leave the kernel's sets and become ours.
pub fn promote(fd: i32) {
    if !tracked(fd) {
        return;
    }
    let mut reg = members();
    for i in reg.of_fd(fd) {
        let Some(m) = reg.get(i).copied() else { continue };
        if m.served != Served::Kernel {
            continue;
        }
        // SAFETY: EPOLL_CTL_DEL ignores the event argument on current kernels.
        unsafe { crate::real::epoll_ctl(m.epfd, libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut()) };
        // Registered again as ours, keeping the program's events and data.
        reg.remove(i);
        reg.add(Member::new(m.epfd, m.fd, m.events, m.data, Served::User));
    }
}

/// The kernel's depth limit for nested epoll sets (EP_MAX_NESTS).
const MAX_NESTS: u32 = 4;

/// Whether waits on `epfd` must run in user space: it has members we serve, directly or in
/// epoll sets nested in it.
pub fn needs_user_wait(reg: &Registry, epfd: i32) -> bool {
    fn walk(reg: &Registry, epfd: i32, depth: u32) -> bool {
        let Some(set) = reg.set(epfd) else { return false };
        depth <= MAX_NESTS
            && (set.user > 0 || set.nested.iter().any(|&i| reg.get(i).is_some_and(|m| walk(reg, m.fd, depth + 1))))
    }
    walk(reg, epfd, 0)
}
