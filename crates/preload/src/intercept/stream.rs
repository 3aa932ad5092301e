//! The stream (TCP) operations behind the data calls: what recv and send do on an accelerated
//! TCP socket. data.rs parses each call's arguments once and dispatches here on the slot's
//! protocol; waiting and signals go through the same `wait_for_data` and `Waiter` as UDP.

use super::data::wait_for_data;
use crate::errno;
use crate::runtime::{self, WaitEnd, Waiter};
use libc::c_int;
use stack::tcp::{RecvFlags, RecvInto, SendFlags, TcpError};

/// Receives from an accelerated TCP socket into `into` (a buffer, or with MSG_TRUNC a count of
/// bytes to consume uncopied, as Linux): what the stream has (0 at its end), waiting as a
/// blocking recv does, until SO_RCVLOWAT bytes (at most the buffer) are there; MSG_WAITALL waits
/// until the buffer is full, the stream ends, an error or a signal comes (returning what it
/// has, as Linux). MSG_PEEK starts at SO_PEEK_OFF when set; MSG_OOB reads the urgent byte
/// (never waiting: EINVAL without one, EAGAIN before it arrives). Errors are errnos.
pub(crate) fn receive(fd: c_int, slot: u32, into: RecvInto<'_>, flags: c_int) -> Result<usize, c_int> {
    receive_with(fd, slot, into, flags, true)
}

/// `receive`, with `peek_off` false for a peek that ignores SO_PEEK_OFF (splice's look ahead).
pub(crate) fn receive_with(
    fd: c_int,
    slot: u32,
    mut into: RecvInto<'_>,
    flags: c_int,
    peek_off: bool,
) -> Result<usize, c_int> {
    let peek = flags & libc::MSG_PEEK != 0;
    let recv_flags = RecvFlags { peek, peek_offset: 0, oob: flags & libc::MSG_OOB != 0 };
    if recv_flags.oob {
        return runtime::tcp_read(slot, into, recv_flags, false).map(|(n, _)| n).map_err(|e| e.errno());
    }
    let len = into.len();
    if len == 0 {
        return Ok(0);
    }
    let waitall = flags & libc::MSG_WAITALL != 0 && !peek;
    // Bytes to wait for: all with MSG_WAITALL, else SO_RCVLOWAT (learnt at the first read).
    let mut target = if waitall { len } else { 1 };
    let mut got = 0;
    let mut waiter: Option<Waiter> = None;
    // While waiting the call holds the socket (a close by another thread does not free it).
    let mut hold: Option<runtime::Hold> = None;
    loop {
        let rest = match &mut into {
            RecvInto::Buf(b) => RecvInto::Buf(&mut b[got..]),
            RecvInto::Discard(n) => RecvInto::Discard(*n - got),
        };
        match runtime::tcp_read(slot, rest, recv_flags, peek_off) {
            // The end of the stream (the peer's FIN, or SHUT_RD).
            Ok((0, _)) => return Ok(got),
            Ok((n, lowat)) => {
                got += n;
                if !waitall {
                    target = lowat.clamp(1, len);
                }
                if got >= target || peek {
                    return Ok(got);
                }
            }
            Err(TcpError::WouldBlock) => {}
            // What was read is returned; the error shows at the next call.
            Err(_) if got > 0 => return Ok(got),
            // Handed to the kernel while this call waited (a forced detach): the kernel
            // socket carries the stream on.
            Err(TcpError::BadHandle) if demoted(fd) => {
                let (ptr, n) = match &mut into {
                    RecvInto::Buf(b) => (b.as_mut_ptr(), b.len()),
                    RecvInto::Discard(n) => (std::ptr::null_mut(), *n),
                };
                // SAFETY: the caller's buffer (or none, with MSG_TRUNC), on a kernel socket.
                let r = unsafe { crate::real::recv(fd, ptr.cast(), n, flags) };
                return if r < 0 { Err(errno::get()) } else { Ok(r as usize) };
            }
            Err(e) => return Err(e.errno()),
        }
        if let Err(e) = wait_for_data(fd, flags, &mut waiter) {
            return if got > 0 { Ok(got) } else { Err(e) };
        }
        if hold.is_none() {
            hold = Some(runtime::Hold::new(slot).ok_or(libc::EBADF)?);
        }
    }
}

/// Sends `parts` (one buffer, or a writev's iovecs in order) on an accelerated TCP socket:
/// everything, waiting for send space as a blocking send does, or what fits (EAGAIN when
/// nothing) on a non-blocking one. EPIPE raises SIGPIPE unless MSG_NOSIGNAL. Returns the bytes
/// taken, or an errno. MSG_ZEROCOPY with SO_ZEROCOPY on queues a completion (the bytes were
/// copied: the buffer is free at once); without SO_ZEROCOPY the flag is ignored, as Linux does.
pub(crate) fn send(fd: c_int, slot: u32, parts: &[&[u8]], flags: c_int) -> Result<usize, c_int> {
    let r = send_copied(fd, slot, parts, flags);
    if flags & libc::MSG_ZEROCOPY != 0
        && matches!(r, Ok(n) if n > 0)
        && runtime::kernel_int(fd, libc::SOL_SOCKET, libc::SO_ZEROCOPY).is_some_and(|v| v != 0)
    {
        runtime::zerocopy_completed(slot);
    }
    r
}

/// MSG_EXA_WARM on an accelerated TCP socket: the frame a send of `data` would start with is
/// built in a transmit slot and given back; the connection does not change. The length, or
/// a send's errno (EPIPE without SIGPIPE: nothing was sent).
pub(crate) fn warm(slot: u32, data: &[u8]) -> Result<usize, c_int> {
    runtime::tcp_warm(slot, data).map_err(|e| e.errno())
}

fn send_copied(fd: c_int, slot: u32, parts: &[&[u8]], flags: c_int) -> Result<usize, c_int> {
    let send_flags = SendFlags { more: flags & libc::MSG_MORE != 0, oob: flags & libc::MSG_OOB != 0 };
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let (mut part, mut offset) = (0, 0);
    let r = send_loop(fd, slot, flags, total, &mut |stack, h| {
        while offset == parts[part].len() {
            part += 1;
            offset = 0;
        }
        let n = stack.tcp_send_with(h, &parts[part][offset..], send_flags)?;
        offset += n;
        Ok(n)
    });
    if r != Err(libc::EBADF) || !demoted(fd) {
        return r;
    }
    // Handed to the kernel before anything was taken (a forced detach): sent there.
    let mut iov: Vec<libc::iovec> =
        parts.iter().map(|p| libc::iovec { iov_base: p.as_ptr() as *mut _, iov_len: p.len() }).collect();
    // SAFETY: a zeroed msghdr is valid; the iovecs point at the caller's buffers.
    let n = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = iov.len() as _;
        crate::real::sendmsg(fd, &msg, flags)
    };
    if n < 0 {
        Err(errno::get())
    } else {
        Ok(n as usize)
    }
}

/// Whether `fd`, accelerated when the call began, is a kernel socket now: its socket was
/// handed to the kernel meanwhile (`exasock-ctl detach --force`), so the call goes on there.
fn demoted(fd: c_int) -> bool {
    crate::fdtable::get(fd) == crate::fdtable::FdState::Kernel
}

/// The wait and error handling of a send of `total` bytes on an accelerated TCP socket, each
/// step (`step`, under the runtime lock) queueing the next bytes: everything, waiting for send
/// space as a blocking send does, or what fits (EAGAIN when nothing) on a non-blocking one;
/// EPIPE raises SIGPIPE unless MSG_NOSIGNAL. A step that takes nothing without WouldBlock ends
/// it (sendfile's source ran dry). Returns the bytes taken, or an errno.
pub(crate) fn send_loop(
    fd: c_int,
    slot: u32,
    flags: c_int,
    total: usize,
    step: &mut dyn FnMut(&mut stack::Stack, stack::SocketHandle) -> Result<usize, TcpError>,
) -> Result<usize, c_int> {
    // Asked (an fcntl) only once a send must wait: most sends never do.
    let nonblocking = || flags & libc::MSG_DONTWAIT != 0 || runtime::nonblocking(fd);
    let mut sent = 0;
    let mut waiter: Option<Waiter> = None;
    while sent < total {
        match runtime::with_tcp(slot, |stack, h, _| step(stack, h)) {
            Ok(0) => return Ok(sent),
            Ok(n) => {
                sent += n;
                continue;
            }
            Err(TcpError::WouldBlock) => {}
            Err(_) if sent > 0 => return Ok(sent),
            Err(TcpError::BrokenPipe) => {
                if flags & libc::MSG_NOSIGNAL == 0 {
                    // SAFETY: raise has no preconditions; SIGPIPE goes to this thread, as the
                    // kernel sends it to the sender.
                    unsafe { libc::raise(libc::SIGPIPE) };
                }
                return Err(libc::EPIPE);
            }
            Err(e) => return Err(e.errno()),
        }
        if waiter.is_none() && nonblocking() {
            runtime::note_send_blocked(slot);
            return if sent > 0 { Ok(sent) } else { Err(libc::EAGAIN) };
        }
        let w = waiter.get_or_insert_with(|| {
            let timeout = runtime::socket_timeout(fd, libc::SO_SNDTIMEO);
            Waiter::new(timeout, timeout.is_some())
        });
        // Send space comes from ACKs on the ring: nothing to watch in the kernel.
        match w.wait_on(Some(&[])) {
            Ok(()) => {}
            Err(WaitEnd::TimedOut) if sent > 0 => return Ok(sent),
            Err(WaitEnd::TimedOut) => return Err(libc::EAGAIN),
            Err(WaitEnd::Interrupted) if sent > 0 => return Ok(sent),
            Err(WaitEnd::Interrupted) => return Err(libc::EINTR),
        }
        // Frames that free send space (ACKs) are taken by the next call's poll.
        runtime::poll_once();
    }
    Ok(sent)
}

/// Sets errno from a result and returns the C value.
pub(crate) fn ssize(r: Result<usize, c_int>) -> libc::ssize_t {
    match r {
        Ok(n) => n as libc::ssize_t,
        Err(e) => errno::fail(e),
    }
}
