//! socket, bind, connect, close, dup2, dup3.

use crate::fdtable::{self, FdState};
use crate::init::ready;
use crate::runtime::{self, NotAccelerated};
use crate::{config, errno, log, real};
use libc::{c_int, sockaddr, socklen_t};

#[no_mangle]
pub unsafe extern "C" fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int {
    let fd = real::socket(domain, ty, protocol);
    if fd >= 0 {
        let udp =
            domain == libc::AF_INET && ty & 0xf == libc::SOCK_DGRAM && (protocol == 0 || protocol == libc::IPPROTO_UDP);
        let state = match (udp && ready(), config::default_disable()) {
            (true, false) => FdState::UdpCandidate,
            (true, true) => FdState::UdpInactive,
            _ => FdState::Kernel,
        };
        fdtable::set(fd, state);
    }
    fd
}

/// Tries to accelerate a bound (and maybe connected) candidate; on failure it stays on the
/// kernel, with one warning when something went wrong.
fn try_accelerate(fd: c_int, remote: Option<std::net::SocketAddrV4>) {
    let Some(local) = runtime::kernel_local(fd) else { return };
    if local.ip().is_multicast() {
        // A socket bound to a group is accelerated only by joining it on an attached interface.
        return;
    }
    match runtime::accelerate_udp(fd, local, remote) {
        // Its epoll memberships move from the kernel's sets to ours.
        Ok(()) => crate::epoll::promote(fd),
        Err(NotAccelerated::NoInterface) | Err(NotAccelerated::NotOurs) => {}
        Err(NotAccelerated::Failed(why)) => {
            log::warning!("socket fd={fd} stays on the kernel: {why}");
            fdtable::set(fd, FdState::Disabled);
        }
    }
}

#[no_mangle]
pub unsafe extern "C" fn bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    let r = real::bind(fd, addr, len);
    if r == 0 && ready() && fdtable::get(fd) == FdState::UdpCandidate {
        try_accelerate(fd, None);
    }
    r
}

#[no_mangle]
pub unsafe extern "C" fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    let r = real::connect(fd, addr, len);
    if r != 0 || !ready() {
        return r;
    }
    let unspec = !addr.is_null() && len as usize >= 2 && i32::from((*addr).sa_family) == libc::AF_UNSPEC;
    let remote = runtime::read_sockaddr(addr, len);
    match fdtable::get(fd) {
        FdState::Udp(slot) => {
            let _ = runtime::connect_udp(slot, if unspec { None } else { remote });
        }
        FdState::UdpCandidate if remote.is_some() => try_accelerate(fd, remote),
        _ => {}
    }
    r
}

/// Lets go of whatever the stack held for `fd`.
fn forget(fd: c_int) {
    if let FdState::Udp(slot) = fdtable::take(fd) {
        runtime::release(slot);
    }
}

#[no_mangle]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    match fdtable::get(fd) {
        FdState::Kernel => {}
        // Ours: to the program it is not an open descriptor.
        FdState::Internal => return errno::fail(libc::EBADF),
        _ => forget(fd),
    }
    crate::epoll::forget(fd);
    real::close(fd)
}

#[no_mangle]
pub unsafe extern "C" fn dup2(old: c_int, new: c_int) -> c_int {
    if fdtable::get(new) == FdState::Internal || fdtable::get(old) == FdState::Internal {
        return errno::fail(libc::EBADF);
    }
    if old != new && fdtable::get(new) != FdState::Kernel {
        forget(new);
    }
    real::dup2(old, new)
}

#[no_mangle]
pub unsafe extern "C" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    if fdtable::get(new) == FdState::Internal || fdtable::get(old) == FdState::Internal {
        return errno::fail(libc::EBADF);
    }
    if old != new && fdtable::get(new) != FdState::Kernel {
        forget(new);
    }
    real::dup3(old, new, flags)
}
