//! socket, bind, connect, close, dup2, dup3, and every other call that makes a descriptor
//! (accept, socketpair, pipe, open...), which resets whatever a number closed behind our back
//! (a raw close syscall) left in the table.

use crate::fdtable::{self, FdState};
use crate::init::ready;
use crate::runtime::{self, NotAccelerated};
use crate::{config, errno, log, real};
use libc::{c_int, sockaddr, socklen_t};

/// Exported by `intercept::traced` (which traces it under EXASOCK_TRACE).
pub unsafe extern "C" fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int {
    let fd = real::socket(domain, ty, protocol);
    if fd >= 0 {
        fresh(fd);
        let udp =
            domain == libc::AF_INET && ty & 0xf == libc::SOCK_DGRAM && (protocol == 0 || protocol == libc::IPPROTO_UDP);
        // AF_INET6 too: a dual-stack socket's IPv4 side is accelerated.
        let tcp = config::tcp()
            && (domain == libc::AF_INET || domain == libc::AF_INET6)
            && ty & 0xf == libc::SOCK_STREAM
            && (protocol == 0 || protocol == libc::IPPROTO_TCP);
        let state = match (udp, tcp, ready(), config::default_disable()) {
            (true, _, true, false) => FdState::UdpCandidate,
            (true, _, true, true) => FdState::UdpInactive,
            (_, true, true, false) => FdState::TcpCandidate,
            (_, true, true, true) => FdState::TcpInactive,
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
    if local.ip().is_multicast() && !runtime::pending_member(fd, *local.ip()) {
        // A socket bound to a group is accelerated only by joining it on an attached interface
        // (before the bind: the membership waits for it).
        return;
    }
    match runtime::accelerate_udp(fd, local, remote) {
        // Its epoll memberships move from the kernel's sets to ours.
        Ok(()) => crate::epoll::promote(fd),
        Err(NotAccelerated::NoInterface | NotAccelerated::NoPrivilege | NotAccelerated::NotOurs) => {}
        Err(NotAccelerated::Failed(why)) => {
            log::warning!("socket fd={fd} stays on the kernel: {why}");
            fdtable::set(fd, FdState::Disabled);
        }
    }
}

/// Exported by `intercept::traced` (which traces it under EXASOCK_TRACE).
pub unsafe extern "C" fn bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    let r = real::bind(fd, addr, len);
    if r == 0 && ready() && fdtable::get(fd) == FdState::UdpCandidate {
        try_accelerate(fd, None);
    }
    r
}

/// Exported by `intercept::traced` (which traces it under EXASOCK_TRACE).
pub unsafe extern "C" fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    match fdtable::get(fd) {
        FdState::Accel(slot) if fdtable::is_tcp(fd) => return tcp_connect_again(fd, slot, addr, len),
        FdState::TcpCandidate if ready() => {
            if let Some(r) = tcp_connect(fd, addr, len) {
                return r;
            }
        }
        _ => {}
    }
    let r = real::connect(fd, addr, len);
    if r != 0 || !ready() {
        return r;
    }
    let unspec = !addr.is_null() && len as usize >= 2 && i32::from((*addr).sa_family) == libc::AF_UNSPEC;
    let remote = runtime::read_sockaddr(addr, len);
    match fdtable::get(fd) {
        FdState::Accel(slot) => {
            let _ = runtime::connect_udp(slot, if unspec { None } else { remote });
            crate::epoll::kernel_state_changed();
        }
        FdState::UdpCandidate if remote.is_some() => try_accelerate(fd, remote),
        _ => {}
    }
    r
}

/// connect on a TCP candidate routed through an attached interface: the kernel socket reserves
/// the local port (bind to port 0 unless bound), the stack opens the connection, and the call
/// waits as the kernel's would (EINPROGRESS when non-blocking or when SO_SNDTIMEO passes,
/// EINTR on a signal, the handshake going on). None: not ours, the kernel connects.
unsafe fn tcp_connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> Option<c_int> {
    let remote = match runtime::tcp_remote(fd, addr, len) {
        Ok(r) => r,
        Err(why) => {
            stays_on_kernel(fd, why);
            return None;
        }
    };
    if remote.ip().is_unspecified() || remote.ip().is_loopback() || !runtime::routed_via_attached(remote) {
        return None;
    }
    if runtime::tcp_kernel_local(fd).ok()?.port() == 0 && !runtime::bind_any_port(fd) {
        return None;
    }
    let local = match runtime::tcp_kernel_local(fd) {
        Ok(l) => l,
        Err(why) => {
            stays_on_kernel(fd, why);
            return None;
        }
    };
    let slot = match runtime::accelerate_tcp_connect(fd, local, remote) {
        Ok(slot) => slot,
        Err(NotAccelerated::Failed(why)) => {
            log::warning!("socket fd={fd} stays on the kernel: {why}");
            fdtable::set(fd, FdState::Disabled);
            return None;
        }
        Err(_) => return None,
    };
    crate::epoll::promote(fd);
    Some(wait_connected(fd, slot, true))
}

/// Waits for an accelerated connect to finish: 0 once connected, its error, or EINPROGRESS
/// (non-blocking, or SO_SNDTIMEO passed), EINTR (a signal; the handshake goes on).
unsafe fn wait_connected(fd: c_int, slot: u32, first: bool) -> c_int {
    use stack::tcp::State;
    if first && runtime::nonblocking(fd) {
        runtime::connect_pending(slot, Some(true));
        return errno::fail(libc::EINPROGRESS);
    }
    let mut waiter: Option<runtime::Waiter> = None;
    loop {
        runtime::poll_once();
        let state = runtime::with_tcp(slot, |stack, h, _| stack.tcp_state(h));
        match state {
            Ok(State::SynSent | State::SynReceived) => {}
            Ok(State::Closed) | Err(_) => {
                let e = runtime::with_tcp(slot, |stack, h, _| stack.tcp_take_error(h)).ok().flatten();
                return errno::fail(e.map_or(libc::ECONNREFUSED, |e| e.errno()));
            }
            Ok(_) => return 0,
        }
        let w = waiter.get_or_insert_with(|| {
            let timeout = runtime::socket_timeout(fd, libc::SO_SNDTIMEO);
            runtime::Waiter::new(timeout, timeout.is_some())
        });
        // The handshake's answer comes on the ring: nothing to watch in the kernel.
        match w.wait_on(Some(&[])) {
            Ok(()) => {}
            Err(runtime::WaitEnd::TimedOut) => {
                runtime::connect_pending(slot, Some(true));
                return errno::fail(libc::EINPROGRESS);
            }
            Err(runtime::WaitEnd::Interrupted) => {
                runtime::connect_pending(slot, Some(true));
                return errno::fail(libc::EINTR);
            }
        }
    }
}

/// connect on an accelerated TCP socket: EALREADY while the handshake runs; after an
/// EINPROGRESS, how it ended (0 once, as Linux); EISCONN afterwards.
unsafe fn tcp_connect_again(fd: c_int, slot: u32, addr: *const sockaddr, len: socklen_t) -> c_int {
    use stack::tcp::State;
    // No address, or AF_UNSPEC (a disconnect): the kernel socket answers. Any other address
    // gets the connection's state, as the kernel checks it first (EISCONN, EALREADY).
    if addr.is_null() || (len as usize) < 2 || i32::from((*addr).sa_family) == libc::AF_UNSPEC {
        return real::connect(fd, addr, len);
    }
    runtime::poll_once();
    match runtime::with_tcp(slot, |stack, h, _| stack.tcp_state(h)) {
        Ok(State::SynSent | State::SynReceived) => {
            if runtime::nonblocking(fd) {
                errno::fail(libc::EALREADY)
            } else {
                wait_connected(fd, slot, false)
            }
        }
        Ok(State::Listen) => errno::fail(libc::EISCONN),
        _ if runtime::connect_pending(slot, Some(false)) => {
            let e = runtime::with_tcp(slot, |stack, h, _| stack.tcp_take_error(h)).ok().flatten();
            match e {
                Some(e) => errno::fail(e.errno()),
                None => 0,
            }
        }
        _ => errno::fail(libc::EISCONN),
    }
}

/// Under EXASOCK_DEBUG, says why a TCP socket that might have been accelerated is not.
fn stays_on_kernel(fd: c_int, why: &str) {
    if config::debug() {
        log::emit(format_args!("exasock: fd {fd} stays on the kernel: {why}\n"));
    }
}

/// Lets go of whatever the stack held for `fd`.
fn forget(fd: c_int) {
    if runtime::in_vfork_child() {
        // The table is the parent's (shared memory): a vfork child changes nothing in it.
        return;
    }
    if fdtable::is_tcp(fd) && linger_zero(fd) {
        // SO_LINGER with a zero timeout: close resets the connection (its last descriptor).
        if let FdState::Accel(slot) = fdtable::get_raw(fd) {
            runtime::abort_if_last(slot);
        }
    }
    if matches!(fdtable::get_raw(fd), FdState::Accel(_)) && !crate::signals::in_handler() {
        runtime::release_closing(fd);
    } else if let FdState::Accel(slot) = fdtable::take(fd) {
        // close() is async-signal-safe: freeing the socket's buffers is not. The worker does
        // it (the number is free for reuse already).
        runtime::release_later(slot);
    }
}

/// Exported by `intercept::traced` (which traces it under EXASOCK_TRACE).
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    match fdtable::get_raw(fd) {
        FdState::Kernel => {}
        // A vfork child closing what it inherited: its descriptor goes, the parent's socket
        // and our table (shared memory) stay as they are.
        _ if runtime::in_vfork_child() => return real::close(fd),
        // exasock's own code closing a descriptor (its lock held: the driver, aya objects, std):
        // no refusal and no bookkeeping, which would take locks out of order.
        _ if crate::lock::holding() => {
            fdtable::set(fd, FdState::Kernel);
            return real::close(fd);
        }
        // Ours: to the program it is not an open descriptor.
        FdState::Internal => return errno::fail(libc::EBADF),
        _ => forget(fd),
    }
    crate::epoll::forget(fd);
    real::close(fd)
}

/// The kernel just gave out `fd`: anything the table still says of that number belongs to a
/// descriptor closed behind our back (a raw close syscall) and goes. One load when clean.
pub(crate) fn fresh(fd: c_int) {
    match fdtable::get_raw(fd) {
        // Ours cannot be reused unless closed behind our back; the number is the program's now.
        FdState::Kernel | FdState::Internal => {}
        _ => forget(fd),
    }
    if crate::epoll::tracked(fd) || crate::epoll::is_epoll(fd) {
        crate::epoll::forget(fd);
    }
}

/// `fresh` for a call's result, passed through.
fn made(fd: c_int) -> c_int {
    if fd >= 0 {
        fresh(fd);
    }
    fd
}

/// `fresh` for the two descriptors of pipe and socketpair.
unsafe fn made_pair(r: c_int, fds: *mut c_int) -> c_int {
    if r == 0 && !fds.is_null() {
        fresh(*fds);
        fresh(*fds.add(1));
    }
    r
}

/// listen(2): a TCP candidate bound to an attached address or INADDR_ANY becomes an accelerated
/// listener; its kernel socket listens too (clients on this host and on other interfaces reach
/// it, and it tells the steering program that we live). An unbound socket (which listen binds
/// to an ephemeral port) stays on the kernel, as in the original.
/// Exported by `intercept::traced` (which traces it under EXASOCK_TRACE).
pub unsafe extern "C" fn listen(fd: c_int, backlog: c_int) -> c_int {
    match fdtable::get(fd) {
        FdState::Accel(slot) if fdtable::is_tcp(fd) => {
            let r = real::listen(fd, backlog);
            if r == 0 {
                let _ = runtime::with_tcp(slot, |stack, h, _| stack.tcp_listen(h, backlog.max(0) as usize));
            }
            r
        }
        FdState::TcpCandidate if ready() => {
            // The stack listens and the flow is claimed before the kernel socket listens, so
            // no SYN reaches a kernel listener the steering program then starves.
            let local = match runtime::tcp_kernel_local(fd) {
                Ok(l) => Some(l).filter(|l| l.port() != 0),
                Err(why) => {
                    stays_on_kernel(fd, why);
                    None
                }
            };
            let accelerated = match local.map(|l| runtime::accelerate_tcp_listener(fd, l, backlog)) {
                Some(Ok(())) => true,
                None
                | Some(Err(NotAccelerated::NoInterface | NotAccelerated::NoPrivilege | NotAccelerated::NotOurs)) => {
                    false
                }
                Some(Err(NotAccelerated::Failed(why))) => {
                    log::warning!("socket fd={fd} stays on the kernel: {why}");
                    fdtable::set(fd, FdState::Disabled);
                    false
                }
            };
            let r = real::listen(fd, backlog);
            if accelerated {
                if r == 0 {
                    crate::epoll::promote(fd);
                } else {
                    let e = errno::get();
                    forget(fd);
                    fdtable::set(fd, FdState::TcpCandidate);
                    errno::fail::<i8>(e);
                }
            }
            r
        }
        _ => real::listen(fd, backlog),
    }
}

/// Exported by `intercept::traced` (which traces it under EXASOCK_TRACE).
pub unsafe extern "C" fn accept(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    accept4(fd, addr, len, 0)
}

/// Exported by `intercept::traced` (which traces it under EXASOCK_TRACE).
pub unsafe extern "C" fn accept4(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t, flags: c_int) -> c_int {
    match fdtable::get(fd) {
        FdState::Accel(slot) if fdtable::is_tcp(fd) => accelerated_accept(fd, slot, addr, len, flags),
        _ => made(real::accept4(fd, addr, len, flags)),
    }
}

/// accept on an accelerated listener: a connection from the stack's accept queue (given a kernel
/// socket of its own as its descriptor, with accept4's flags), or one that reached the kernel
/// listener (loopback, other interfaces); waits as a blocking accept does.
unsafe fn accelerated_accept(fd: c_int, slot: u32, addr: *mut sockaddr, len: *mut socklen_t, flags: c_int) -> c_int {
    use stack::tcp::TcpError;
    if flags & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) != 0 {
        return errno::fail(libc::EINVAL);
    }
    // A listener parked by a fork takes its SYNs back: this process accepts on it.
    runtime::unpark_listener(slot);
    let mut waiter = None;
    let mut spins = 0u32;
    loop {
        match runtime::tcp_accept(slot) {
            Ok(a) => {
                // The connection's descriptor is of its listener's family.
                let family = runtime::slot_family(slot);
                let new = real::socket(family.domain(), libc::SOCK_STREAM | flags, 0);
                if new < 0 {
                    let e = errno::get();
                    runtime::abort_accepted(a);
                    return errno::fail(e);
                }
                fresh(new);
                if let Err(why) = runtime::adopt_accepted(new, a) {
                    log::warning!("an accepted connection was reset: {why:?}");
                    real::close(new);
                    return errno::fail(libc::ECONNABORTED);
                }
                if runtime::has_inheritable_options(slot) {
                    runtime::copy_inherited_options(fd, new);
                }
                driver::inet::RawAddr::write_out(a.remote, family, addr, len);
                return new;
            }
            Err(TcpError::WouldBlock) => {}
            // Handed to the kernel while this call waited (a forced detach): its listening
            // kernel socket takes the connections from now on.
            Err(TcpError::BadHandle) if fdtable::get(fd) == FdState::Kernel => {
                return made(real::accept4(fd, addr, len, flags));
            }
            Err(e) => return errno::fail(e.errno()),
        }
        // Connections that reached the kernel's listener (loopback, other interfaces).
        if spins.is_multiple_of(64) {
            let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
            if real::poll(&mut p, 1, 0) == 1 && p.revents & libc::POLLIN != 0 {
                let new = real::accept4(fd, addr, len, flags | libc::SOCK_NONBLOCK);
                if new >= 0 {
                    // What poll() said of the listener's kernel socket is stale: epoll waits
                    // ask it again at once (a stale report would block the next accept).
                    crate::epoll::kernel_state_changed();
                    if flags & libc::SOCK_NONBLOCK == 0 {
                        let fl = real::fcntl(new, libc::F_GETFL, 0);
                        real::fcntl(new, libc::F_SETFL, (fl & !libc::O_NONBLOCK) as libc::c_ulong);
                    }
                    return made(new);
                }
            }
        }
        spins = spins.wrapping_add(1);
        if let Err(e) = super::data::wait_for_data(fd, 0, &mut waiter) {
            return errno::fail(e);
        }
    }
}

/// getsockname/getpeername of an accelerated TCP connection come from the stack (an accepted
/// connection's kernel socket is a placeholder); everything else, listeners included (their
/// kernel socket is bound as the program bound it, `::` too), asks the kernel.
unsafe fn tcp_name(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t, peer: bool) -> Option<c_int> {
    let FdState::Accel(slot) = fdtable::get(fd) else { return None };
    if !fdtable::is_tcp_connection(fd) {
        return None;
    }
    let (local, remote) = runtime::with_tcp(slot, |stack, h, _| stack.tcp_addresses(h)).ok()?;
    if addr.is_null() || len.is_null() {
        return Some(errno::fail(libc::EFAULT));
    }
    match if peer { remote } else { local } {
        Some(a) => {
            runtime::write_slot_sockaddr(slot, a, addr, len);
            Some(0)
        }
        None if peer => Some(errno::fail(libc::ENOTCONN)),
        None => None,
    }
}

/// Exported by `intercept::traced` (which traces it under EXASOCK_TRACE).
pub unsafe extern "C" fn getsockname(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    if fdtable::is_tcp(fd) {
        if let Some(r) = tcp_name(fd, addr, len, false) {
            return r;
        }
    }
    real::getsockname(fd, addr, len)
}

/// Exported by `intercept::traced` (which traces it under EXASOCK_TRACE).
pub unsafe extern "C" fn getpeername(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    if fdtable::is_tcp(fd) {
        if let Some(r) = tcp_name(fd, addr, len, true) {
            return r;
        }
    }
    real::getpeername(fd, addr, len)
}

#[no_mangle]
pub unsafe extern "C" fn socketpair(domain: c_int, ty: c_int, protocol: c_int, fds: *mut c_int) -> c_int {
    made_pair(real::socketpair(domain, ty, protocol, fds), fds)
}

#[no_mangle]
pub unsafe extern "C" fn pipe(fds: *mut c_int) -> c_int {
    made_pair(real::pipe(fds), fds)
}

#[no_mangle]
pub unsafe extern "C" fn pipe2(fds: *mut c_int, flags: c_int) -> c_int {
    made_pair(real::pipe2(fds, flags), fds)
}

// open and openat are variadic in C; their mode argument is passed as a fixed one would be on
// x86-64 and aarch64 (as fcntl's), and is only read by the kernel with O_CREAT or O_TMPFILE.

#[no_mangle]
pub unsafe extern "C" fn open(path: *const libc::c_char, flags: c_int, mode: libc::mode_t) -> c_int {
    made(real::open(path, flags, mode))
}

#[no_mangle]
pub unsafe extern "C" fn open64(path: *const libc::c_char, flags: c_int, mode: libc::mode_t) -> c_int {
    made(real::open64(path, flags, mode))
}

#[no_mangle]
pub unsafe extern "C" fn openat(dirfd: c_int, path: *const libc::c_char, flags: c_int, mode: libc::mode_t) -> c_int {
    made(real::openat(dirfd, path, flags, mode))
}

#[no_mangle]
pub unsafe extern "C" fn openat64(dirfd: c_int, path: *const libc::c_char, flags: c_int, mode: libc::mode_t) -> c_int {
    made(real::openat64(dirfd, path, flags, mode))
}

#[no_mangle]
pub unsafe extern "C" fn __open_2(path: *const libc::c_char, flags: c_int) -> c_int {
    made(real::__open_2(path, flags))
}

#[no_mangle]
pub unsafe extern "C" fn __open64_2(path: *const libc::c_char, flags: c_int) -> c_int {
    made(real::__open64_2(path, flags))
}

#[no_mangle]
pub unsafe extern "C" fn __openat_2(dirfd: c_int, path: *const libc::c_char, flags: c_int) -> c_int {
    made(real::__openat_2(dirfd, path, flags))
}

#[no_mangle]
pub unsafe extern "C" fn __openat64_2(dirfd: c_int, path: *const libc::c_char, flags: c_int) -> c_int {
    made(real::__openat64_2(dirfd, path, flags))
}

#[no_mangle]
pub unsafe extern "C" fn creat(path: *const libc::c_char, mode: libc::mode_t) -> c_int {
    made(real::creat(path, mode))
}

#[no_mangle]
pub unsafe extern "C" fn creat64(path: *const libc::c_char, mode: libc::mode_t) -> c_int {
    made(real::creat64(path, mode))
}

#[no_mangle]
pub unsafe extern "C" fn eventfd(init: libc::c_uint, flags: c_int) -> c_int {
    made(real::eventfd(init, flags))
}

#[no_mangle]
pub unsafe extern "C" fn signalfd(fd: c_int, mask: *const libc::sigset_t, flags: c_int) -> c_int {
    made(real::signalfd(fd, mask, flags))
}

#[no_mangle]
pub unsafe extern "C" fn timerfd_create(clock: c_int, flags: c_int) -> c_int {
    made(real::timerfd_create(clock, flags))
}

#[no_mangle]
pub unsafe extern "C" fn memfd_create(name: *const libc::c_char, flags: libc::c_uint) -> c_int {
    made(real::memfd_create(name, flags))
}

#[no_mangle]
pub unsafe extern "C" fn inotify_init() -> c_int {
    made(real::inotify_init())
}

#[no_mangle]
pub unsafe extern "C" fn inotify_init1(flags: c_int) -> c_int {
    made(real::inotify_init1(flags))
}

/// A duplicate `new` of `old` now exists: it names the same accelerated socket.
fn duplicated(old: c_int, new: c_int) {
    if let FdState::Accel(slot) = fdtable::get(old) {
        runtime::share(slot);
        fdtable::copy(old, new);
    } else {
        fdtable::set(new, fdtable::get(old));
    }
}

/// dup2/dup3 onto `new`: refused for exasock's own descriptors; whatever `new` named is let go.
fn before_dup_onto(old: c_int, new: c_int) -> Result<(), c_int> {
    let internal = fdtable::get_raw(new) == FdState::Internal || fdtable::get(old) == FdState::Internal;
    if internal && !crate::lock::holding() {
        return Err(libc::EBADF);
    }
    if old != new {
        if fdtable::get_raw(new) != FdState::Kernel {
            forget(new);
        }
        // The file `new` named is closed: its epoll registrations go with it, as on Linux.
        if crate::epoll::tracked(new) || crate::epoll::is_epoll(new) {
            crate::epoll::forget(new);
        }
    }
    Ok(())
}

#[no_mangle]
pub unsafe extern "C" fn dup(old: c_int) -> c_int {
    if fdtable::get(old) == FdState::Internal && !crate::lock::holding() {
        return errno::fail(libc::EBADF);
    }
    let new = real::dup(old);
    if new >= 0 && fdtable::get(old) != FdState::Kernel {
        duplicated(old, new);
    }
    new
}

#[no_mangle]
pub unsafe extern "C" fn dup2(old: c_int, new: c_int) -> c_int {
    if let Err(e) = before_dup_onto(old, new) {
        return errno::fail(e);
    }
    let r = real::dup2(old, new);
    if r >= 0 && old != new && fdtable::get(old) != FdState::Kernel {
        duplicated(old, new);
    }
    r
}

#[no_mangle]
pub unsafe extern "C" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    if let Err(e) = before_dup_onto(old, new) {
        return errno::fail(e);
    }
    let r = real::dup3(old, new, flags);
    if r >= 0 && fdtable::get(old) != FdState::Kernel {
        duplicated(old, new);
    }
    r
}

/// fcntl is variadic in C; its third argument is an int or a pointer, passed the same way as a
/// fixed unsigned long on x86-64 and aarch64. Only F_DUPFD and F_DUPFD_CLOEXEC need us.
/// Exported by `intercept::traced` (which traces it under EXASOCK_TRACE).
pub unsafe extern "C" fn fcntl(fd: c_int, cmd: c_int, arg: libc::c_ulong) -> c_int {
    if (cmd == libc::F_DUPFD || cmd == libc::F_DUPFD_CLOEXEC) && fdtable::get(fd) != FdState::Kernel {
        if fdtable::get(fd) == FdState::Internal && !crate::lock::holding() {
            return errno::fail(libc::EBADF);
        }
        let new = real::fcntl(fd, cmd, arg);
        if new >= 0 {
            duplicated(fd, new);
        }
        return new;
    }
    let r = real::fcntl(fd, cmd, arg);
    if r == 0 && matches!(cmd, libc::F_SETFL | libc::F_SETOWN | F_SETOWN_EX) {
        if let FdState::Accel(slot) = fdtable::get(fd) {
            // O_ASYNC and the owner: the stack's readiness and urgent data signal the owner
            // (the kernel socket signals only for what reaches it).
            let o_async = (cmd == libc::F_SETFL).then_some(arg as c_int & libc::O_ASYNC != 0);
            runtime::set_async(slot, fd, o_async);
        }
    }
    r
}

/// F_SETOWN_EX (asm-generic/fcntl.h; the libc crate lacks it on some targets).
const F_SETOWN_EX: c_int = 15;

/// fcntl64: the same function under the name large-file builds call.
#[no_mangle]
pub unsafe extern "C" fn fcntl64(fd: c_int, cmd: c_int, arg: libc::c_ulong) -> c_int {
    super::traced::fcntl(fd, cmd, arg)
}

/// close_range: our own descriptors in the range stay open (the range is closed around them);
/// accelerated ones are let go first.
#[no_mangle]
pub unsafe extern "C" fn close_range(first: libc::c_uint, last: libc::c_uint, flags: c_int) -> c_int {
    let top = last.min(fdtable::MAX_FDS as libc::c_uint - 1);
    let mut start = first;
    let mut fd = first;
    while fd <= top {
        match fdtable::get_raw(fd as c_int) {
            FdState::Internal => {
                if fd > start {
                    let r = libc::syscall(libc::SYS_close_range, start, fd - 1, flags) as c_int;
                    if r != 0 {
                        return r;
                    }
                }
                start = fd + 1;
            }
            FdState::Kernel => {}
            _ if flags & libc::CLOSE_RANGE_CLOEXEC as c_int == 0 => {
                forget(fd as c_int);
                crate::epoll::forget(fd as c_int);
            }
            _ => {}
        }
        fd += 1;
    }
    if start <= last {
        return libc::syscall(libc::SYS_close_range, start, last, flags) as c_int;
    }
    0
}

/// Whether the kernel socket behind `fd` has SO_LINGER on with a zero timeout.
fn linger_zero(fd: c_int) -> bool {
    let mut l = libc::linger { l_onoff: 0, l_linger: 0 };
    let mut len = std::mem::size_of::<libc::linger>() as socklen_t;
    // SAFETY: getsockopt into a linger we own.
    let r = unsafe {
        real::getsockopt(fd, libc::SOL_SOCKET, libc::SO_LINGER, (&mut l as *mut libc::linger).cast(), &mut len)
    };
    r == 0 && l.l_onoff != 0 && l.l_linger == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::Lock;

    fn is_open(fd: c_int) -> bool {
        // SAFETY: F_GETFD takes no argument.
        unsafe { libc::syscall(libc::SYS_fcntl, fd, libc::F_GETFD) >= 0 }
    }

    fn fresh_fd() -> c_int {
        // SAFETY: a plain socket made by syscall, owned by the test.
        unsafe { libc::syscall(libc::SYS_socket, libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) as c_int }
    }

    /// Code of exasock's own (the driver, aya, std, under an exasock lock) that closes one of
    /// exasock's descriptors must close it: the program's refusal (EBADF) is not for it, or the
    /// descriptor leaks. A socket it opens never becomes a candidate for acceleration.
    #[test]
    fn exasocks_own_code_is_not_treated_as_the_programs() {
        let lock = Lock::new(());
        let fd = fresh_fd();
        fdtable::set(fd, FdState::Internal);
        // The program cannot close it...
        // SAFETY: our export on a descriptor we own.
        assert_eq!(unsafe { close(fd) }, -1);
        assert!(is_open(fd));
        {
            // ...exasock's own code, holding its lock, can.
            let _held = lock.lock();
            // SAFETY: as above.
            assert_eq!(unsafe { close(fd) }, 0);
        }
        assert!(!is_open(fd), "exasock's own close left its descriptor open");
        assert_eq!(fdtable::get(fd), FdState::Kernel);

        crate::init::set_ready_for_tests();
        let _held = lock.lock();
        // SAFETY: socket(2) through our export.
        let s = unsafe { socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
        assert!(s >= 0);
        assert_eq!(fdtable::get(s), FdState::Kernel, "exasock's own UDP socket became a candidate");
        // SAFETY: closing it.
        assert_eq!(unsafe { close(s) }, 0);
    }
}
