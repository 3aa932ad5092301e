//! epoll_create*, epoll_ctl, epoll_wait, epoll_pwait and epoll_pwait2 over sets that may hold
//! accelerated sockets, and sets nested in sets (the registry: ../epoll.rs).

use crate::epoll::{self, Member, Registry, Served};
use crate::fdtable::{self, FdState};
use crate::runtime::{self, Runtime, WaitEnd, Waiter};
use crate::{errno, real};
use libc::{c_int, epoll_event, sigset_t};
use std::time::Duration;

/// The kernel set (and the kernel sockets behind our members) is looked at once per this many
/// spins.
const KERNEL_CHECK_EVERY: u32 = 64;

const EPOLLIN: u32 = libc::EPOLLIN as u32;
const EPOLLOUT: u32 = libc::EPOLLOUT as u32;
const EPOLLERR: u32 = libc::EPOLLERR as u32;
const EPOLLHUP: u32 = libc::EPOLLHUP as u32;
const EPOLLET: u32 = libc::EPOLLET as u32;
const EPOLLONESHOT: u32 = libc::EPOLLONESHOT as u32;
const EPOLLEXCLUSIVE: u32 = libc::EPOLLEXCLUSIVE as u32;
/// The readiness bits (poll's and epoll's values are the same for these).
const READINESS: u32 = (libc::EPOLLIN
    | libc::EPOLLPRI
    | libc::EPOLLOUT
    | libc::EPOLLRDNORM
    | libc::EPOLLWRNORM
    | libc::EPOLLRDHUP
    | libc::EPOLLERR
    | libc::EPOLLHUP) as u32;

#[no_mangle]
pub unsafe extern "C" fn epoll_create(size: c_int) -> c_int {
    let fd = real::epoll_create(size);
    if fd >= 0 {
        super::lifecycle::fresh(fd);
    }
    epoll::mark_epoll(fd);
    fd
}

#[no_mangle]
pub unsafe extern "C" fn epoll_create1(flags: c_int) -> c_int {
    let fd = real::epoll_create1(flags);
    if fd >= 0 {
        super::lifecycle::fresh(fd);
    }
    epoll::mark_epoll(fd);
    fd
}

#[no_mangle]
pub unsafe extern "C" fn epoll_ctl(epfd: c_int, op: c_int, fd: c_int, event: *mut epoll_event) -> c_int {
    let state = fdtable::get(fd);
    let served = if matches!(state, FdState::Accel(_)) {
        Served::User
    } else if epoll::is_epoll(fd) {
        Served::Nested
    } else if epoll::tracked(fd) && {
        let reg = epoll::members();
        reg.find(epfd, fd).and_then(|i| reg.get(i)).is_some_and(|m| m.served == Served::User)
    } {
        // Served by us before a fork handed it back to the kernel (fork.rs).
        Served::User
    } else {
        let r = real::epoll_ctl(epfd, op, fd, event);
        if r == 0
            && matches!(
                state,
                FdState::UdpCandidate | FdState::UdpInactive | FdState::TcpCandidate | FdState::TcpInactive
            )
        {
            record(epfd, op, fd, event, Served::Kernel);
        }
        return r;
    };
    if real::fcntl(epfd, libc::F_GETFD, 0) < 0 {
        return errno::fail(libc::EBADF);
    }
    if op != libc::EPOLL_CTL_DEL && event.is_null() {
        return errno::fail(libc::EFAULT);
    }
    let existing = {
        let reg = epoll::members();
        reg.find(epfd, fd).and_then(|i| reg.get(i)).map(|m| m.events)
    };
    match (op, existing) {
        (libc::EPOLL_CTL_ADD, Some(_)) => return errno::fail(libc::EEXIST),
        (libc::EPOLL_CTL_MOD | libc::EPOLL_CTL_DEL, None) => return errno::fail(libc::ENOENT),
        (libc::EPOLL_CTL_MOD, Some(old)) if (old | (*event).events) & EPOLLEXCLUSIVE != 0 => {
            return errno::fail(libc::EINVAL)
        }
        (libc::EPOLL_CTL_ADD, None) => {
            // The kernel judges the request (EINVAL for flags it refuses, ELOOP, EPERM...);
            // an accelerated socket then leaves its set again, a nested set stays in it (its
            // kernel members are the kernel's to report).
            let r = real::epoll_ctl(epfd, op, fd, event);
            if r != 0 {
                return r;
            }
            if served == Served::User {
                real::epoll_ctl(epfd, libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut());
            }
        }
        (libc::EPOLL_CTL_MOD | libc::EPOLL_CTL_DEL, Some(_)) if served == Served::Nested => {
            let r = real::epoll_ctl(epfd, op, fd, event);
            if r != 0 {
                return r;
            }
        }
        (libc::EPOLL_CTL_MOD | libc::EPOLL_CTL_DEL, Some(_)) => {}
        _ => return errno::fail(libc::EINVAL),
    }
    record(epfd, op, fd, event, served);
    0
}

/// Applies a successful epoll_ctl to the registry (MOD re-arms, as the kernel does).
unsafe fn record(epfd: c_int, op: c_int, fd: c_int, event: *mut epoll_event, served: Served) {
    epoll::track(epfd);
    epoll::track(fd);
    let mut reg = epoll::members();
    if let Some(i) = reg.find(epfd, fd) {
        reg.remove(i);
    }
    if op == libc::EPOLL_CTL_DEL {
        return;
    }
    let ev = *event;
    reg.add(Member::new(epfd, fd, ev.events, ev.u64, served));
    // A wait sleeping on this set looks at its new member.
    runtime::wake_sleepers();
}

/// An accelerated socket's counters behind edge-triggered events.
#[derive(Debug, Clone, Copy, Default)]
struct Edges {
    /// Changes queued to it (data, FIN, connections, errors): a new EPOLLIN edge each.
    arrivals: u64,
    /// Sends that found its buffer full: a new EPOLLOUT edge once it is writable again.
    send_blocks: u32,
}

/// What a member we serve is ready for now, before its interest mask: readiness from the stack
/// for an accelerated socket, plus what poll() last said of the fd itself. Also returns the
/// socket's edge counters (edge-triggered members).
fn level(m: &Member, rt: Option<&mut Runtime>) -> (u32, Edges) {
    let mut level = m.kernel_events;
    let mut edges = Edges::default();
    if let (FdState::Accel(slot), Some(rt)) = (fdtable::get(m.fd), rt) {
        // EPOLLIN, EPOLLOUT, EPOLLRDHUP, EPOLLHUP and EPOLLERR have poll's values.
        level |= rt.events(slot);
        if m.events & EPOLLET != 0 {
            edges = Edges { arrivals: rt.arrivals(slot), send_blocks: rt.send_blocks(slot) };
        }
    }
    (level & (m.events | EPOLLERR | EPOLLHUP), edges)
}

/// The events to report for a level: all of it, or (edge-triggered) what is new.
fn fired(m: &Member, level: u32, edges: Edges) -> u32 {
    if m.events & EPOLLET == 0 {
        return level;
    }
    let mut ev = level & !m.last_level;
    if level & EPOLLIN != 0 && edges.arrivals != m.seen_arrivals {
        ev |= EPOLLIN;
    }
    if level & EPOLLOUT != 0 && edges.send_blocks != m.seen_send_blocks {
        ev |= EPOLLOUT;
    }
    ev
}

/// Feeds the epoll sets' ready lists with the accelerated sockets whose readiness changed
/// since the last wait (the stack's events, and calls that changed it).
fn absorb(reg: &mut Registry, rt: &mut Runtime) {
    if rt.take_ready(|slot| reg.slot_changed(slot)) {
        reg.all_changed();
    }
}

/// Whether an epoll set has something to report from the members we serve (nested sets; the
/// kernel reports its kernel members itself). Looks at its ready list without consuming it.
fn has_ready(reg: &Registry, mut rt: Option<&mut Runtime>, epfd: c_int, depth: u32) -> bool {
    let Some(set) = reg.set(epfd) else { return false };
    let user = set.ready.iter().filter_map(|&i| reg.get(i)).filter(|m| !m.disarmed && m.served == Served::User);
    for m in user {
        let (l, a) = level(m, rt.as_deref_mut());
        if fired(m, l, a) != 0 {
            return true;
        }
    }
    set.nested
        .iter()
        .filter_map(|&i| reg.get(i))
        .any(|m| !m.disarmed && depth < 4 && has_ready(reg, rt.as_deref_mut(), m.fd, depth + 1))
}

/// Whether `fd` is an epoll set with members we serve (directly or nested): poll and select
/// must then ask the registry about it too. Costs two atomic loads for any other fd.
pub(crate) fn served_in_user_space(fd: c_int) -> bool {
    epoll::is_epoll(fd) && epoll::tracked(fd) && epoll::needs_user_wait(&epoll::members(), fd)
}

/// What a sleeping epoll_wait on `epfd` watches in the kernel: the kernel's own set (its kernel
/// members) and the kernel sockets behind the accelerated UDP sockets and listeners we serve
/// (loopback traffic), not a connection's placeholder. None with a nested set we serve or too
/// many members (the sleep is then rechecked every millisecond).
fn epoll_watch(epfd: c_int, out: &mut [libc::pollfd; runtime::MAX_WATCHED]) -> Option<usize> {
    out[0] = libc::pollfd { fd: epfd, events: libc::POLLIN, revents: 0 };
    let mut n = 1;
    let mut reg = epoll::members();
    reg.follow_demotions();
    reg.prune_polled(epfd);
    let set = reg.set(epfd)?;
    if !set.nested.is_empty() || set.polled.len() >= runtime::MAX_WATCHED {
        return None;
    }
    for m in set.polled.iter().filter_map(|&i| reg.get(i)).filter(|m| !m.disarmed) {
        let events = if fdtable::is_accelerated(m.fd) {
            libc::POLLIN
        } else {
            (m.events & (EPOLLIN | EPOLLOUT | libc::EPOLLPRI as u32)) as i16
        };
        *out.get_mut(n)? = libc::pollfd { fd: m.fd, events, revents: 0 };
        n += 1;
    }
    Some(n)
}

/// Whether the epoll set `epfd` has something to report from the members we serve (poll and
/// select on an epoll fd: readable). Consumes nothing.
pub(crate) fn user_ready(epfd: c_int) -> bool {
    let mut reg = epoll::members();
    reg.follow_demotions();
    refresh_kernel_events(&mut reg, epfd, 0);
    let mut guard = runtime::lock();
    if let Some(rt) = guard.as_mut() {
        rt.poll();
        absorb(&mut reg, rt);
    }
    has_ready(&reg, guard.as_mut(), epfd, 0)
}

/// Refreshes what poll() says of the fds of the set's polled members (and of the sets nested
/// in it), for those last read over a millisecond ago or before a shutdown or connect (one
/// syscall per wait would double the cost of a busy event loop's epoll_wait); a member the
/// kernel reports something for goes on the ready list.
fn refresh_kernel_events(reg: &mut Registry, epfd: c_int, depth: u32) {
    const CHUNK: usize = 16;
    const EVERY_NS: u64 = 1_000_000;
    reg.prune_polled(epfd);
    let now = driver::clock::now().as_nanos();
    let epoch = epoll::KERNEL_EPOCH.load(std::sync::atomic::Ordering::Acquire);
    let due = |m: &Member| m.refreshed.1 != epoch || now.saturating_sub(m.refreshed.0) >= EVERY_NS;
    let count = reg.set(epfd).map_or(0, |s| s.polled.len());
    let mut at = 0;
    while at < count {
        let mut set = [libc::pollfd { fd: -1, events: 0, revents: 0 }; CHUNK];
        let mut index = [0usize; CHUNK];
        let mut n = 0;
        while at < count && n < CHUNK {
            let i = reg.set(epfd).map_or(usize::MAX, |s| s.polled[at]);
            if let Some(m) = reg.get(i).filter(|m| due(m)) {
                set[n] = libc::pollfd { fd: m.fd, events: (m.events & READINESS) as i16, revents: 0 };
                index[n] = i;
                n += 1;
            }
            at += 1;
        }
        // SAFETY: n valid pollfds on our stack; the real poll, not our export.
        if n > 0 && unsafe { real::poll(set.as_mut_ptr(), n as libc::nfds_t, 0) } >= 0 {
            for (p, &i) in set[..n].iter().zip(&index[..n]) {
                let Some(m) = reg.get_mut(i) else { continue };
                // POLLNVAL: closed behind our back; nothing to report.
                m.kernel_events = if p.revents & libc::POLLNVAL != 0 { 0 } else { p.revents as u16 as u32 };
                m.refreshed = (now, epoch);
                if m.kernel_events != 0 {
                    reg.queue(i);
                }
            }
        }
    }
    if depth < 4 {
        let nested: Vec<i32> =
            reg.set(epfd).map_or(Vec::new(), |s| s.nested.iter().filter_map(|&i| reg.get(i)).map(|m| m.fd).collect());
        for inner in nested {
            refresh_kernel_events(reg, inner, depth + 1);
        }
    }
}

/// Adds the events of the members we serve to `out[..n]` (which holds the kernel's answer):
/// the nested sets, and the members on the ready list, each looked at once.
fn user_events(epfd: c_int, out: &mut [epoll_event], kernel_n: usize, check_kernel: bool) -> usize {
    let mut reg = epoll::members();
    reg.follow_demotions();
    if check_kernel {
        refresh_kernel_events(&mut reg, epfd, 0);
    }
    let mut guard = runtime::lock();
    let mut rt = guard.as_mut();
    // One datapath poll for the whole set.
    if let Some(rt) = rt.as_deref_mut() {
        rt.poll();
        absorb(&mut reg, rt);
    }
    let mut n = kernel_n;
    let nested = reg.set(epfd).map_or(0, |s| s.nested.len());
    for k in 0..nested {
        if n >= out.len() {
            break;
        }
        let Some(i) = reg.set(epfd).and_then(|s| s.nested.get(k).copied()) else { break };
        let Some(m) = reg.get(i).copied().filter(|m| !m.disarmed) else { continue };
        let level = if has_ready(&reg, rt.as_deref_mut(), m.fd, 1) { EPOLLIN } else { 0 } & m.events;
        if let Some(ev) = report(&mut reg, i, level, Edges::default()) {
            // A nested set the kernel reported already (for its kernel members) is one event.
            if let Some(e) = out[..kernel_n].iter_mut().find(|e| { e.u64 } == m.data) {
                e.events |= ev;
                continue;
            }
            out[n] = epoll_event { events: ev, u64: m.data };
            n += 1;
        }
    }
    let queued = reg.set(epfd).map_or(0, |s| s.ready.len());
    for _ in 0..queued {
        if n >= out.len() {
            break;
        }
        let Some(i) = reg.pop_ready(epfd) else { break };
        let Some(m) = reg.get(i).copied().filter(|m| !m.disarmed && m.served == Served::User) else { continue };
        let (level, edges) = level(&m, rt.as_deref_mut());
        let Some(ev) = report(&mut reg, i, level, edges) else { continue };
        out[n] = epoll_event { events: ev, u64: m.data };
        n += 1;
        // Level-triggered and still armed: looked at again by the next wait, behind the rest.
        if m.events & (EPOLLET | EPOLLONESHOT) == 0 {
            reg.queue(i);
        }
    }
    n
}

/// Records what a member's check found (`level`, its edges) and returns the events to report,
/// if any: edge-triggered bookkeeping and EPOLLONESHOT's disarming.
fn report(reg: &mut Registry, i: usize, level: u32, edges: Edges) -> Option<u32> {
    let member = reg.get_mut(i)?;
    let ev = fired(member, level, edges);
    member.last_level = level;
    if ev == 0 {
        return None;
    }
    if ev & EPOLLIN != 0 {
        member.seen_arrivals = edges.arrivals;
    }
    if ev & EPOLLOUT != 0 {
        member.seen_send_blocks = edges.send_blocks;
    }
    if member.events & EPOLLONESHOT != 0 {
        member.disarmed = true;
    }
    Some(ev)
}

/// The wait shared by epoll_wait, epoll_pwait and epoll_pwait2: `kernel` runs the real call on
/// the kernel set (with the given timeout in ms, -1 forever, or 0 to look).
unsafe fn wait(
    epfd: c_int,
    events: *mut epoll_event,
    max: c_int,
    timeout: Option<Duration>,
    mask: *const sigset_t,
    kernel: &dyn Fn(*mut epoll_event, c_int, Option<Duration>) -> c_int,
) -> c_int {
    if !epoll::tracked(epfd) || !epoll::needs_user_wait(&epoll::members(), epfd) {
        return kernel(events, max, timeout);
    }
    if max <= 0 || events.is_null() {
        return errno::fail(libc::EINVAL);
    }
    let out = std::slice::from_raw_parts_mut(events, max as usize);
    let waiter = Waiter::new(timeout, true);
    let mut watch = [libc::pollfd { fd: -1, events: 0, revents: 0 }; runtime::MAX_WATCHED];
    let watched = epoll_watch(epfd, &mut watch);
    // The caller's mask holds while we wait, as the kernel's pwait sets it.
    let mut old: sigset_t = std::mem::zeroed();
    if !mask.is_null() {
        libc::pthread_sigmask(libc::SIG_SETMASK, mask, &mut old);
    }
    let mut spins = 0u32;
    // After a signal, one more look: events found then win over EINTR (as Linux's ep_poll).
    let mut interrupted = false;
    let r = loop {
        let mut n = 0usize;
        let check = interrupted || spins.is_multiple_of(KERNEL_CHECK_EVERY) || waiter.sleeping();
        if check {
            let k = kernel(events, max, Some(Duration::ZERO));
            if k < 0 {
                break k;
            }
            n = k as usize;
        }
        spins = spins.wrapping_add(1);
        n = user_events(epfd, out, n, check);
        if n > 0 || timeout == Some(Duration::ZERO) {
            break n as c_int;
        }
        if interrupted {
            break errno::fail(libc::EINTR);
        }
        match waiter.wait_on(watched.map(|n| &watch[..n])) {
            Ok(()) => {}
            Err(WaitEnd::TimedOut) => break 0,
            Err(WaitEnd::Interrupted) => interrupted = true,
        }
    };
    if !mask.is_null() {
        let e = errno::get();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        errno::fail::<i32>(e);
    }
    r
}

fn millis(timeout: c_int) -> Option<Duration> {
    (timeout >= 0).then(|| Duration::from_millis(timeout as u64))
}

fn to_millis(t: Option<Duration>) -> c_int {
    t.map_or(-1, |d| d.as_millis().min(i32::MAX as u128) as c_int)
}

#[no_mangle]
pub unsafe extern "C" fn epoll_wait(epfd: c_int, events: *mut epoll_event, max: c_int, timeout: c_int) -> c_int {
    wait(epfd, events, max, millis(timeout), std::ptr::null(), &|e, m, t| real::epoll_wait(epfd, e, m, to_millis(t)))
}

#[no_mangle]
pub unsafe extern "C" fn epoll_pwait(
    epfd: c_int,
    events: *mut epoll_event,
    max: c_int,
    timeout: c_int,
    mask: *const sigset_t,
) -> c_int {
    wait(epfd, events, max, millis(timeout), mask, &|e, m, t| real::epoll_pwait(epfd, e, m, to_millis(t), mask))
}

/// epoll_pwait2 (glibc 2.35): a timespec timeout. The kernel's is called by number, so the
/// library loads with older glibcs too.
#[no_mangle]
pub unsafe extern "C" fn epoll_pwait2(
    epfd: c_int,
    events: *mut epoll_event,
    max: c_int,
    timeout: *const libc::timespec,
    mask: *const sigset_t,
) -> c_int {
    let pwait2 = |e: *mut epoll_event, m: c_int, t: *const libc::timespec| {
        let r = libc::syscall(libc::SYS_epoll_pwait2, epfd, e, m, t, mask, std::mem::size_of::<u64>());
        r as c_int
    };
    if timeout.is_null() || ((*timeout).tv_sec >= 0 && (0..1_000_000_000).contains(&(*timeout).tv_nsec)) {
        let t = (!timeout.is_null())
            .then(|| Duration::from_secs((*timeout).tv_sec as u64) + Duration::from_nanos((*timeout).tv_nsec as u64));
        wait(epfd, events, max, t, mask, &|e, m, t| match t {
            None => pwait2(e, m, std::ptr::null()),
            Some(d) => {
                let ts = libc::timespec { tv_sec: d.as_secs() as _, tv_nsec: d.subsec_nanos() as _ };
                pwait2(e, m, &ts)
            }
        })
    } else {
        // A malformed timeout: the kernel's EINVAL.
        pwait2(events, max, timeout)
    }
}
