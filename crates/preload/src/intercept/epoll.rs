//! epoll_ctl, epoll_wait, epoll_pwait over sets that may hold accelerated sockets.

use crate::epoll::{self, Member};
use crate::fdtable::{self, FdState};
use crate::runtime::{self, WaitEnd, Waiter};
use crate::{errno, real};
use libc::{c_int, epoll_event, sigset_t};
use std::time::Duration;

/// The kernel's part of a mixed set is polled once per this many spins.
const KERNEL_CHECK_EVERY: u32 = 64;

const EPOLLIN: u32 = libc::EPOLLIN as u32;
const EPOLLOUT: u32 = libc::EPOLLOUT as u32;
const EPOLLET: u32 = libc::EPOLLET as u32;
const EPOLLONESHOT: u32 = libc::EPOLLONESHOT as u32;

#[no_mangle]
pub unsafe extern "C" fn epoll_ctl(epfd: c_int, op: c_int, fd: c_int, event: *mut epoll_event) -> c_int {
    let state = fdtable::get(fd);
    let accelerated = matches!(state, FdState::Udp(_));
    if !accelerated {
        let r = real::epoll_ctl(epfd, op, fd, event);
        // Candidates may turn accelerated later: remember where they are registered.
        if r == 0 && matches!(state, FdState::UdpCandidate | FdState::UdpInactive) {
            record(epfd, op, fd, event, false);
        }
        return r;
    }
    // An accelerated socket stays out of the kernel's set; check epfd is an epoll set.
    if real::fcntl(epfd, libc::F_GETFD, 0) < 0 {
        return errno::fail(libc::EBADF);
    }
    if op != libc::EPOLL_CTL_DEL && event.is_null() {
        return errno::fail(libc::EFAULT);
    }
    let exists = epoll::members().iter().any(|m| m.epfd == epfd && m.fd == fd);
    match (op, exists) {
        (libc::EPOLL_CTL_ADD, true) => errno::fail(libc::EEXIST),
        (libc::EPOLL_CTL_MOD | libc::EPOLL_CTL_DEL, false) => errno::fail(libc::ENOENT),
        (libc::EPOLL_CTL_ADD | libc::EPOLL_CTL_MOD | libc::EPOLL_CTL_DEL, _) => {
            record(epfd, op, fd, event, true);
            0
        }
        _ => errno::fail(libc::EINVAL),
    }
}

/// Adds, changes or removes a member in the registry.
unsafe fn record(epfd: c_int, op: c_int, fd: c_int, event: *mut epoll_event, accelerated: bool) {
    epoll::track(epfd);
    epoll::track(fd);
    let mut list = epoll::members();
    list.retain(|m| !(m.epfd == epfd && m.fd == fd));
    if op == libc::EPOLL_CTL_DEL {
        return;
    }
    let ev = *event;
    list.push(Member {
        epfd,
        fd,
        events: ev.events,
        data: ev.u64,
        accelerated,
        seen_arrivals: 0,
        reported_out: false,
        disarmed: false,
    });
}

/// Appends the accelerated members' events to `out[n..]`; returns the new count.
fn accelerated_events(epfd: c_int, out: &mut [epoll_event], mut n: usize) -> usize {
    let mut list = epoll::members();
    let mut guard = runtime::lock();
    let Some(rt) = guard.as_mut() else { return n };
    for m in list.iter_mut().filter(|m| m.epfd == epfd && m.accelerated && !m.disarmed) {
        if n >= out.len() {
            break;
        }
        let FdState::Udp(slot) = fdtable::get(m.fd) else { continue };
        let readable = m.events & EPOLLIN != 0 && rt.udp_readable(slot);
        let edge = m.events & EPOLLET != 0;
        // Edge-triggered: a new datagram is a new edge, even with older ones unread.
        let arrivals = if edge && readable { rt.udp_arrivals(slot) } else { 0 };
        let mut ev = 0;
        if readable && !(edge && arrivals == m.seen_arrivals) {
            ev |= EPOLLIN;
        }
        if m.events & EPOLLOUT != 0 && !(edge && m.reported_out) {
            ev |= EPOLLOUT;
        }
        if ev == 0 {
            continue;
        }
        if ev & EPOLLIN != 0 {
            m.seen_arrivals = arrivals;
        }
        m.reported_out |= ev & EPOLLOUT != 0;
        if m.events & EPOLLONESHOT != 0 {
            m.disarmed = true;
        }
        out[n] = epoll_event { events: ev, u64: m.data };
        n += 1;
    }
    n
}

unsafe fn wait(
    epfd: c_int,
    events: *mut epoll_event,
    max: c_int,
    timeout: c_int,
    kernel: &dyn Fn(*mut epoll_event, c_int, c_int) -> c_int,
) -> c_int {
    if !epoll::tracked(epfd) || !epoll::members().iter().any(|m| m.epfd == epfd && m.accelerated) {
        return kernel(events, max, timeout);
    }
    if max <= 0 || events.is_null() {
        return errno::fail(libc::EINVAL);
    }
    let out = std::slice::from_raw_parts_mut(events, max as usize);
    let waiter = Waiter::new((timeout >= 0).then(|| Duration::from_millis(timeout as u64)), true);
    let mut spins = 0u32;
    loop {
        let mut n = 0usize;
        if spins.is_multiple_of(KERNEL_CHECK_EVERY) {
            let k = kernel(events, max, 0);
            if k < 0 {
                return k;
            }
            n = k as usize;
        }
        spins = spins.wrapping_add(1);
        n = accelerated_events(epfd, out, n);
        if n > 0 || timeout == 0 {
            return n as c_int;
        }
        match waiter.wait() {
            Ok(()) => {}
            Err(WaitEnd::TimedOut) => return 0,
            Err(WaitEnd::Interrupted) => return errno::fail(libc::EINTR),
        }
    }
}

#[no_mangle]
pub unsafe extern "C" fn epoll_wait(epfd: c_int, events: *mut epoll_event, max: c_int, timeout: c_int) -> c_int {
    wait(epfd, events, max, timeout, &|e, m, t| real::epoll_wait(epfd, e, m, t))
}

#[no_mangle]
pub unsafe extern "C" fn epoll_pwait(
    epfd: c_int,
    events: *mut epoll_event,
    max: c_int,
    timeout: c_int,
    mask: *const sigset_t,
) -> c_int {
    wait(epfd, events, max, timeout, &|e, m, t| real::epoll_pwait(epfd, e, m, t, mask))
}
