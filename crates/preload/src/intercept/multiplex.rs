//! poll (select and epoll come next).

use crate::fdtable;
use crate::real;
use crate::runtime::{self, Waiter};
use libc::{c_int, nfds_t, pollfd};
use std::time::Duration;

/// The kernel's descriptors are polled once per this many spins.
const KERNEL_CHECK_EVERY: u32 = 64;

#[no_mangle]
pub unsafe extern "C" fn poll(fds: *mut pollfd, nfds: nfds_t, timeout: c_int) -> c_int {
    let set: &mut [pollfd] =
        if fds.is_null() || nfds == 0 { &mut [] } else { std::slice::from_raw_parts_mut(fds, nfds as usize) };
    if !set.iter().any(|p| fdtable::is_accelerated(p.fd)) {
        return real::poll(fds, nfds, timeout);
    }
    let waiter = Waiter::new((timeout >= 0).then(|| Duration::from_millis(timeout as u64)));
    let mut spins = 0u32;
    loop {
        // Kernel descriptors (and the kernel sockets behind accelerated ones, which see
        // loopback traffic) now and then; accelerated readiness on every spin.
        let mut ready = if spins.is_multiple_of(KERNEL_CHECK_EVERY) {
            let n = real::poll(fds, nfds, 0);
            if n < 0 {
                return n;
            }
            n
        } else {
            set.iter_mut().for_each(|p| p.revents = 0);
            0
        };
        spins = spins.wrapping_add(1);
        {
            let mut guard = runtime::lock();
            if let Some(rt) = guard.as_mut() {
                for p in set.iter_mut() {
                    let fdtable::FdState::Udp(slot) = fdtable::get(p.fd) else { continue };
                    let mut revents = 0;
                    if p.events & (libc::POLLIN | libc::POLLRDNORM) != 0 && rt.udp_readable(slot) {
                        revents |= p.events & (libc::POLLIN | libc::POLLRDNORM);
                    }
                    // A UDP socket can always be written.
                    revents |= p.events & (libc::POLLOUT | libc::POLLWRNORM);
                    if revents != 0 && p.revents == 0 {
                        ready += 1;
                    }
                    p.revents |= revents;
                }
            }
        }
        if ready > 0 || timeout == 0 || !waiter.wait() {
            return ready;
        }
    }
}
