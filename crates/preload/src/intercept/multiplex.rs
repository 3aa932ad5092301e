//! poll, select and pselect over sets that may hold accelerated sockets (epoll: epoll.rs).

use super::epoll::{served_in_user_space, user_ready};
use crate::errno;
use crate::fdtable;
use crate::real;
use crate::runtime::{self, WaitEnd, Waiter};
use libc::{c_int, nfds_t, pollfd};
use std::time::Duration;

/// The kernel's descriptors are polled once per this many spins.
const KERNEL_CHECK_EVERY: u32 = 64;

/// The poll loop shared by poll and ppoll: `kernel` runs the real call with a zero timeout.
unsafe fn poll_loop(
    set: &mut [pollfd],
    timeout: Option<Duration>,
    kernel: &dyn Fn(*mut pollfd, nfds_t) -> c_int,
) -> c_int {
    let (fds, nfds) = (set.as_mut_ptr(), set.len() as nfds_t);
    let waiter = Waiter::new(timeout, true);
    let mut watch = [pollfd { fd: -1, events: 0, revents: 0 }; runtime::MAX_WATCHED];
    let watched = poll_watch(set, &mut watch);
    let mut spins = 0u32;
    // A signal ended the wait: one more look, and events found then are returned rather than
    // EINTR (Linux's do_poll reports ready events before a pending signal).
    let mut interrupted = false;
    loop {
        // Kernel descriptors (and the kernel sockets behind accelerated ones, which see
        // loopback traffic) now and then, and after every sleep (which one of them may have
        // ended); accelerated readiness on every spin.
        let mut ready = if interrupted || spins.is_multiple_of(KERNEL_CHECK_EVERY) || waiter.sleeping() {
            // An accelerated TCP connection's kernel socket is a placeholder: hidden from the
            // kernel's poll (a negative fd is skipped) and put back after.
            let hidden: Vec<(usize, c_int)> = set
                .iter_mut()
                .enumerate()
                .filter(|(_, p)| fdtable::is_tcp_connection(p.fd))
                .map(|(i, p)| (i, std::mem::replace(&mut p.fd, -1)))
                .collect();
            let n = kernel(fds, nfds);
            for (i, fd) in hidden {
                set[i].fd = fd;
            }
            if n < 0 {
                return n;
            }
            n
        } else {
            set.iter_mut().for_each(|p| p.revents = 0);
            0
        };
        spins = spins.wrapping_add(1);
        // Epoll sets holding accelerated sockets: readable when one of those is.
        for p in set.iter_mut().filter(|p| p.events & (libc::POLLIN | libc::POLLRDNORM) != 0) {
            if served_in_user_space(p.fd) && user_ready(p.fd) {
                if p.revents == 0 {
                    ready += 1;
                }
                p.revents |= p.events & (libc::POLLIN | libc::POLLRDNORM);
            }
        }
        {
            let mut guard = runtime::lock();
            if let Some(rt) = guard.as_mut() {
                rt.poll();
                for p in set.iter_mut() {
                    let fdtable::FdState::Accel(slot) = fdtable::get(p.fd) else { continue };
                    let ev = rt.events(slot) as libc::c_short;
                    let mut revents = ev & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL);
                    if ev & libc::POLLIN != 0 {
                        revents |= p.events & (libc::POLLIN | libc::POLLRDNORM);
                    }
                    if ev & libc::POLLOUT != 0 {
                        revents |= p.events & (libc::POLLOUT | libc::POLLWRNORM);
                    }
                    // POLLPRI: urgent data waits.
                    revents |= ev & p.events & (libc::POLLRDHUP | libc::POLLPRI);
                    if revents != 0 && p.revents == 0 {
                        ready += 1;
                    }
                    p.revents |= revents;
                }
            }
        }
        if ready > 0 || timeout == Some(Duration::ZERO) {
            return ready;
        }
        if interrupted {
            return errno::fail(libc::EINTR);
        }
        match waiter.wait_on(watched.map(|n| &watch[..n])) {
            Ok(()) => {}
            Err(WaitEnd::TimedOut) => return 0,
            Err(WaitEnd::Interrupted) => interrupted = true,
        }
    }
}

/// What a sleeping poll watches in the kernel: its kernel descriptors with their events, and
/// the kernel sockets behind its accelerated UDP sockets and listeners (POLLIN: loopback
/// traffic); an accelerated connection's placeholder is left out. The count written to
/// `out`; None when the set holds an epoll set we serve or more than `out` takes (then the
/// sleep is rechecked every millisecond).
fn poll_watch(set: &[pollfd], out: &mut [pollfd; runtime::MAX_WATCHED]) -> Option<usize> {
    let mut n = 0;
    for p in set.iter().filter(|p| p.fd >= 0) {
        let events = if fdtable::is_tcp_connection(p.fd) {
            continue;
        } else if fdtable::is_accelerated(p.fd) {
            libc::POLLIN
        } else if served_in_user_space(p.fd) {
            return None;
        } else {
            p.events
        };
        *out.get_mut(n)? = pollfd { fd: p.fd, events, revents: 0 };
        n += 1;
    }
    Some(n)
}

unsafe fn pollfds<'a>(fds: *mut pollfd, nfds: nfds_t) -> &'a mut [pollfd] {
    if fds.is_null() || nfds == 0 {
        &mut []
    } else {
        std::slice::from_raw_parts_mut(fds, nfds as usize)
    }
}

#[no_mangle]
pub unsafe extern "C" fn poll(fds: *mut pollfd, nfds: nfds_t, timeout: c_int) -> c_int {
    let set = pollfds(fds, nfds);
    if !set.iter().any(|p| fdtable::is_accelerated(p.fd) || served_in_user_space(p.fd)) {
        return real::poll(fds, nfds, timeout);
    }
    let t = (timeout >= 0).then(|| Duration::from_millis(timeout as u64));
    poll_loop(set, t, &|f, n| real::poll(f, n, 0))
}

#[no_mangle]
pub unsafe extern "C" fn __poll(fds: *mut pollfd, nfds: nfds_t, timeout: c_int) -> c_int {
    poll(fds, nfds, timeout)
}

extern "C" {
    fn __chk_fail() -> !;
}

#[no_mangle]
pub unsafe extern "C" fn __poll_chk(fds: *mut pollfd, nfds: nfds_t, timeout: c_int, fdslen: libc::size_t) -> c_int {
    if (fdslen / std::mem::size_of::<pollfd>()) < nfds as usize {
        __chk_fail();
    }
    poll(fds, nfds, timeout)
}

#[no_mangle]
pub unsafe extern "C" fn ppoll(
    fds: *mut pollfd,
    nfds: nfds_t,
    timeout: *const libc::timespec,
    mask: *const libc::sigset_t,
) -> c_int {
    let set = pollfds(fds, nfds);
    if !set.iter().any(|p| fdtable::is_accelerated(p.fd) || served_in_user_space(p.fd)) {
        return real::ppoll(fds, nfds, timeout, mask);
    }
    if !timeout.is_null() && ((*timeout).tv_sec < 0 || !(0..1_000_000_000).contains(&(*timeout).tv_nsec)) {
        return errno::fail(libc::EINVAL);
    }
    let t = (!timeout.is_null())
        .then(|| Duration::from_secs((*timeout).tv_sec as u64) + Duration::from_nanos((*timeout).tv_nsec as u64));
    let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    poll_loop(set, t, &|f, n| real::ppoll(f, n, &zero, mask))
}

#[no_mangle]
pub unsafe extern "C" fn __ppoll_chk(
    fds: *mut pollfd,
    nfds: nfds_t,
    timeout: *const libc::timespec,
    mask: *const libc::sigset_t,
    fdslen: libc::size_t,
) -> c_int {
    if (fdslen / std::mem::size_of::<pollfd>()) < nfds as usize {
        __chk_fail();
    }
    ppoll(fds, nfds, timeout, mask)
}

/// `poll_watch` for select's three sets (read: POLLIN, write: POLLOUT, exceptional: POLLPRI).
unsafe fn select_watch(
    nfds: c_int,
    wanted: &[Option<libc::fd_set>; 3],
    out: &mut [pollfd; runtime::MAX_WATCHED],
) -> Option<usize> {
    let mut set = [pollfd { fd: -1, events: 0, revents: 0 }; runtime::MAX_WATCHED];
    let mut n = 0;
    for fd in 0..nfds {
        let mut events = 0;
        for (s, bit) in wanted.iter().zip([libc::POLLIN, libc::POLLOUT, libc::POLLPRI]) {
            if s.as_ref().is_some_and(|s| libc::FD_ISSET(fd, s)) {
                events |= bit;
            }
        }
        if events != 0 {
            *set.get_mut(n)? = pollfd { fd, events, revents: 0 };
            n += 1;
        }
    }
    poll_watch(&set[..n], out)
}

/// Whether any fd below `nfds` in the three sets is accelerated (or an epoll set holding
/// accelerated sockets).
unsafe fn any_accelerated(nfds: c_int, sets: [*mut libc::fd_set; 3]) -> bool {
    (0..nfds.clamp(0, libc::FD_SETSIZE as c_int)).any(|fd| {
        (fdtable::is_accelerated(fd) || served_in_user_space(fd))
            && sets.iter().any(|s| !s.is_null() && libc::FD_ISSET(fd, *s))
    })
}

/// The select loop shared by select and pselect: `kernel` runs the real call with a zero
/// timeout on copies of the sets.
unsafe fn select_loop(
    nfds: c_int,
    sets: [*mut libc::fd_set; 3],
    timeout: Option<Duration>,
    kernel: &dyn Fn(*mut libc::fd_set, *mut libc::fd_set, *mut libc::fd_set) -> c_int,
) -> c_int {
    let nfds = nfds.clamp(0, libc::FD_SETSIZE as c_int);
    let wanted: [Option<libc::fd_set>; 3] = sets.map(|s| (!s.is_null()).then(|| *s));
    let waiter = Waiter::new(timeout, true);
    let mut watch = [pollfd { fd: -1, events: 0, revents: 0 }; runtime::MAX_WATCHED];
    let watched = select_watch(nfds, &wanted, &mut watch);
    let mut spins = 0u32;
    // As poll: after a signal, one more look whose ready descriptors win over EINTR.
    let mut interrupted = false;
    loop {
        let mut result: [libc::fd_set; 3] = std::mem::zeroed();
        let mut ready = 0;
        if interrupted || spins.is_multiple_of(KERNEL_CHECK_EVERY) || waiter.sleeping() {
            // The kernel part: every fd that is not accelerated.
            let mut copies = wanted;
            for c in copies.iter_mut().flatten() {
                for fd in 0..nfds {
                    if fdtable::is_accelerated(fd) {
                        libc::FD_CLR(fd, c);
                    }
                }
            }
            let ptr = |i: usize, c: &mut [Option<libc::fd_set>; 3]| {
                c[i].as_mut().map_or(std::ptr::null_mut(), |s| s as *mut _)
            };
            let n = kernel(ptr(0, &mut copies), ptr(1, &mut copies), ptr(2, &mut copies));
            if n < 0 {
                return n;
            }
            ready = n;
            for (r, c) in result.iter_mut().zip(copies.iter()) {
                if let Some(c) = c {
                    *r = *c;
                }
            }
        }
        spins = spins.wrapping_add(1);
        if let Some(r) = wanted[0].as_ref() {
            for fd in 0..nfds {
                if libc::FD_ISSET(fd, r)
                    && !libc::FD_ISSET(fd, &result[0])
                    && served_in_user_space(fd)
                    && user_ready(fd)
                {
                    libc::FD_SET(fd, &mut result[0]);
                    ready += 1;
                }
            }
        }
        {
            let mut guard = runtime::lock();
            if let Some(rt) = guard.as_mut() {
                rt.poll();
                for fd in 0..nfds {
                    let fdtable::FdState::Accel(slot) = fdtable::get(fd) else { continue };
                    let ev = rt.events(slot) as libc::c_short;
                    // select's readable: POLLIN, or a hang-up or error (a read returns at once).
                    let readable = ev & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0;
                    let writable = ev & (libc::POLLOUT | libc::POLLERR) != 0;
                    // select's exceptional condition: urgent data (POLLPRI).
                    let exceptional = ev & libc::POLLPRI != 0;
                    for (i, on) in [readable, writable, exceptional].into_iter().enumerate() {
                        if on && wanted[i].as_ref().is_some_and(|s| libc::FD_ISSET(fd, s)) {
                            libc::FD_SET(fd, &mut result[i]);
                            ready += 1;
                        }
                    }
                }
            }
        }
        let end = if ready > 0 || timeout == Some(Duration::ZERO) {
            Some(Ok(ready))
        } else if interrupted {
            Some(Err(libc::EINTR))
        } else {
            match waiter.wait_on(watched.map(|n| &watch[..n])) {
                Ok(()) => None,
                Err(WaitEnd::TimedOut) => Some(Ok(0)),
                Err(WaitEnd::Interrupted) => {
                    interrupted = true;
                    None
                }
            }
        };
        match end {
            None => {}
            Some(Ok(n)) => {
                for (s, r) in sets.iter().zip(result.iter()) {
                    if !s.is_null() {
                        **s = *r;
                    }
                }
                return n;
            }
            Some(Err(e)) => return errno::fail(e),
        }
    }
}

#[no_mangle]
pub unsafe extern "C" fn select(
    nfds: c_int,
    r: *mut libc::fd_set,
    w: *mut libc::fd_set,
    e: *mut libc::fd_set,
    timeout: *mut libc::timeval,
) -> c_int {
    if !any_accelerated(nfds, [r, w, e]) {
        return real::select(nfds, r, w, e, timeout);
    }
    let t = (!timeout.is_null()).then(|| {
        Duration::from_secs((*timeout).tv_sec.max(0) as u64) + Duration::from_micros((*timeout).tv_usec.max(0) as u64)
    });
    select_loop(nfds, [r, w, e], t, &|r, w, e| {
        let mut zero = libc::timeval { tv_sec: 0, tv_usec: 0 };
        real::select(nfds, r, w, e, &mut zero)
    })
}

#[no_mangle]
pub unsafe extern "C" fn pselect(
    nfds: c_int,
    r: *mut libc::fd_set,
    w: *mut libc::fd_set,
    e: *mut libc::fd_set,
    timeout: *const libc::timespec,
    mask: *const libc::sigset_t,
) -> c_int {
    if !any_accelerated(nfds, [r, w, e]) {
        return real::pselect(nfds, r, w, e, timeout, mask);
    }
    let t = (!timeout.is_null()).then(|| {
        Duration::from_secs((*timeout).tv_sec.max(0) as u64) + Duration::from_nanos((*timeout).tv_nsec.max(0) as u64)
    });
    select_loop(nfds, [r, w, e], t, &|r, w, e| {
        let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        real::pselect(nfds, r, w, e, &zero, mask)
    })
}
