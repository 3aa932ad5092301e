//! TCP sockets across fork, lazily (../shared/DESIGN.md, "fork, lazily"). fork itself hands
//! nothing over: the parent keeps its sockets accelerated, and a child's descriptors of them
//! are `Inherited`. The first call a child makes on one (any but close) asks the parent, over a
//! channel made with the runtime, to give that socket to the kernel (TCP_REPAIR for a
//! connection; a listener just stops being steered to the parent), and waits for the answer;
//! then both processes use the kernel socket. A parent that closes a socket a child may still
//! hold hands it over instead of ending the connection (runtime::lifetime).
//!
//! The channel: a SOCK_SEQPACKET pair. The runtime's worker reads requests on one end; the
//! other end is inherited by children, who write to it. A request is the kernel socket's inode
//! and, passed with SCM_RIGHTS, one end of a fresh pair the answer comes back on, so that
//! children asking at once each get their own answer.

use crate::fdtable::{self, FdState};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

/// The end this process's worker reads children's requests on (-1: none).
pub(crate) static REQUESTS: AtomicI32 = AtomicI32::new(-1);
/// The end this process's children write their requests to (-1: none).
static CHILDREN_END: AtomicI32 = AtomicI32::new(-1);
/// In a child: the end its parent reads requests on (-1: none, or not a child of ours).
static PARENT: AtomicI32 = AtomicI32::new(-1);

/// The parent answered: the socket is the kernel's now (or was already).
const DONE: u8 = 0;
/// The parent could not hand it over (the message said why in its stderr).
const FAILED: u8 = 1;

/// How long a child waits for its parent's answer before giving up on the connection.
const ANSWER_WAIT: Duration = Duration::from_secs(30);

/// Makes the channel (with the runtime): returns the end the worker reads, placed among
/// exasock's own descriptors; both ends are Internal.
pub(crate) fn open_channel() -> Option<i32> {
    let fds = seqpacket_pair()?;
    let place = |fd: i32| {
        // SAFETY: the fd was just created and is ours alone.
        let owned = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        nic::fdplace::place(owned).ok().map(std::os::fd::IntoRawFd::into_raw_fd)
    };
    let (requests, children) = (place(fds[0])?, place(fds[1])?);
    // The worker must never block on it.
    // SAFETY: F_SETFL on our own descriptor; the real fcntl.
    unsafe { crate::real::fcntl(requests, libc::F_SETFL, libc::O_NONBLOCK as libc::c_ulong) };
    fdtable::set(requests, FdState::Internal);
    fdtable::set(children, FdState::Internal);
    REQUESTS.store(requests, Ordering::Relaxed);
    CHILDREN_END.store(children, Ordering::Relaxed);
    Some(requests)
}

/// A close-on-exec SOCK_SEQPACKET pair (a raw syscall, not our export).
fn seqpacket_pair() -> Option<[i32; 2]> {
    let mut fds = [-1i32; 2];
    // SAFETY: socketpair into a two-int array.
    let r = unsafe {
        libc::syscall(
            libc::SYS_socketpair,
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    (r == 0).then_some(fds)
}

/// In a fork child (with no other thread): the parent's children end is how this process
/// asks for its inherited sockets; the request end is the parent's alone and is closed.
/// Returns the descriptor the child keeps (not to be closed with exasock's others).
pub(crate) fn in_child() -> i32 {
    let requests = REQUESTS.swap(-1, Ordering::Relaxed);
    if requests >= 0 {
        fdtable::set(requests, FdState::Kernel);
        // SAFETY: the child's copy of the parent's request end.
        unsafe { crate::real::close(requests) };
    }
    let up = CHILDREN_END.swap(-1, Ordering::Relaxed);
    if up >= 0 {
        // A grandchild asks this process (which asks its own parent in turn), not the first.
        let old = PARENT.swap(up, Ordering::Relaxed);
        if old >= 0 && old != up {
            fdtable::set(old, FdState::Kernel);
            // SAFETY: the end to a grandparent, replaced by the end to the parent.
            unsafe { crate::real::close(old) };
        }
    }
    PARENT.load(Ordering::Relaxed)
}

/// Asks the parent to give the inherited socket `fd` to the kernel and waits for it; `fd` is
/// a kernel socket afterwards whatever the answer (without one, its connection is lost with
/// the parent's state, and the calls on it say so as the kernel's would: not connected).
pub(crate) fn claim(fd: i32) {
    let parent = PARENT.load(Ordering::Relaxed);
    let answer = if parent >= 0 { ask(parent, crate::runtime::socket_inode(fd)) } else { None };
    // A parent that ended handed its connections over on the way out: then the socket works.
    if answer != Some(DONE) && !in_use_by_kernel(fd) {
        crate::log::warning!(
            "fd {fd}: the process that accelerated this TCP socket before fork did not hand it over ({}): it is not connected here",
            if answer.is_none() { "it is gone" } else { "it failed" }
        );
    }
    fdtable::set(fd, FdState::Kernel);
}

/// Before exec, in a fork child: inherited sockets the new program keeps (no FD_CLOEXEC) are
/// claimed now, since it cannot ask for them.
pub(crate) fn claim_for_exec() {
    if PARENT.load(Ordering::Relaxed) < 0 {
        return;
    }
    for fd in 0..fdtable::MAX_FDS as i32 {
        if fdtable::get_raw(fd) == FdState::Inherited {
            // SAFETY: F_GETFD takes no argument.
            let cloexec = unsafe { crate::real::fcntl(fd, libc::F_GETFD, 0) } & libc::FD_CLOEXEC != 0;
            if !cloexec {
                claim(fd);
            }
        }
    }
}

/// Whether the kernel socket behind `fd` is connected or listening (so a hand-over happened).
fn in_use_by_kernel(fd: i32) -> bool {
    // SAFETY: getpeername and getsockopt into locals we own, with their lengths; the real ones.
    unsafe {
        let mut sa: libc::sockaddr_storage = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        if crate::real::getpeername(fd, (&mut sa as *mut libc::sockaddr_storage).cast(), &mut len) == 0 {
            return true;
        }
        let mut listening = 0i32;
        let mut len = 4 as libc::socklen_t;
        crate::real::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&mut listening as *mut i32).cast(),
            &mut len,
        ) == 0
            && listening != 0
    }
}

/// One request: `inode` and an answer pair's end; the answer byte, if one came.
fn ask(parent: i32, inode: u64) -> Option<u8> {
    let pair = seqpacket_pair()?;
    let sent = send_with_fd(parent, &inode.to_ne_bytes(), pair[1]);
    // SAFETY: our end for the parent; the parent has its copy if the request went.
    unsafe { crate::real::close(pair[1]) };
    let answer = if sent {
        let mut p = libc::pollfd { fd: pair[0], events: libc::POLLIN, revents: 0 };
        // SAFETY: one pollfd; then a one-byte read into a local.
        unsafe {
            if crate::real::poll(&mut p, 1, ANSWER_WAIT.as_millis() as i32) == 1 {
                let mut b = 0u8;
                (crate::real::recv(pair[0], (&mut b as *mut u8).cast(), 1, 0) == 1).then_some(b)
            } else {
                None
            }
        }
    } else {
        None
    };
    // SAFETY: our answer end.
    unsafe { crate::real::close(pair[0]) };
    answer
}

/// sendmsg of `data` with `fd` in SCM_RIGHTS; whether it went.
fn send_with_fd(socket: i32, data: &[u8], fd: i32) -> bool {
    // SAFETY: a msghdr over a live buffer and a control buffer sized for one descriptor.
    unsafe {
        let mut iov = libc::iovec { iov_base: data.as_ptr() as *mut _, iov_len: data.len() };
        let mut control = [0u64; 4];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(4) as usize;
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(4) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<i32>(), fd);
        crate::real::sendmsg(socket, &msg, libc::MSG_NOSIGNAL) == data.len() as isize
    }
}

/// One request read from the channel: the inode asked for and the answer descriptor.
pub(crate) struct Request {
    /// The kernel socket's inode.
    pub inode: u64,
    answer: i32,
}

impl Request {
    /// Sends the answer and closes its descriptor.
    pub(crate) fn answer(self, done: bool) {
        let b = if done { DONE } else { FAILED };
        // SAFETY: a one-byte send, then closing the answer descriptor we received.
        unsafe {
            crate::real::send(self.answer, (&b as *const u8).cast(), 1, libc::MSG_NOSIGNAL);
            crate::real::close(self.answer);
        }
    }
}

/// The next request waiting on the channel, if any (never blocks). Messages that are not
/// requests are dropped, a few per call at most; at the end of the channel (no process holds
/// the children's end any more: none can ask) the request end is closed, so that the worker
/// does not wake on it again.
pub(crate) fn next_request() -> Option<Request> {
    const MAX_DROPPED: usize = 16;
    let fd = REQUESTS.load(Ordering::Relaxed);
    if fd < 0 {
        return None;
    }
    for _ in 0..MAX_DROPPED {
        // SAFETY: recvmsg into a local buffer and a control buffer sized for one descriptor.
        unsafe {
            let mut data = [0u8; 8];
            let mut iov = libc::iovec { iov_base: data.as_mut_ptr().cast(), iov_len: 8 };
            let mut control = [0u64; 4];
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = std::mem::size_of_val(&control);
            let n = crate::real::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC);
            if n < 0 {
                return None;
            }
            let c = libc::CMSG_FIRSTHDR(&msg);
            if n == 0 && c.is_null() {
                // The end of the channel.
                if REQUESTS.compare_exchange(fd, -1, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
                    fdtable::set(fd, FdState::Kernel);
                    crate::real::close(fd);
                }
                return None;
            }
            if c.is_null() || (*c).cmsg_type != libc::SCM_RIGHTS {
                continue;
            }
            if n != 8 {
                // Not a request of ours: its descriptor is dropped, and the asker gets no answer.
                crate::real::close(std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<i32>()));
                continue;
            }
            let answer = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<i32>());
            fdtable::set(answer, FdState::Kernel);
            return Some(Request { inode: u64::from_ne_bytes(data), answer });
        }
    }
    None
}
