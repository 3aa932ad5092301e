//! The datagram (UDP) operations behind the data calls: waiting for a datagram from the stack
//! or the kernel socket, gathering and scattering iovecs, and the one send path.

use super::*;
use stack::udp::SendControl;

/// Where a received datagram came from: the stack (with the control messages the socket
/// asks for), or the kernel socket (which filled in everything itself).
pub(super) enum Got {
    Stack(DatagramInfo, runtime::Ancillary),
    Kernel(ssize_t),
}

/// Waits for a datagram for an accelerated socket, from the stack or (for traffic that reached
/// the kernel socket, checked once per KERNEL_CHECK_EVERY spins) the kernel; honours
/// MSG_DONTWAIT, O_NONBLOCK, SO_RCVTIMEO, signals and SHUT_RD. `from_stack` receives from the
/// polled stack, `from_kernel` tries the kernel socket without blocking.
pub(super) unsafe fn receive_loop(
    fd: c_int,
    slot: u32,
    flags: c_int,
    from_stack: &mut dyn FnMut(&mut runtime::Runtime, runtime::Slot) -> Result<DatagramInfo, UdpError>,
    from_kernel: &mut dyn FnMut() -> ssize_t,
) -> Result<Got, c_int> {
    if flags & (libc::MSG_ERRQUEUE | libc::MSG_OOB) != 0 {
        // The error queue and out-of-band data are the kernel socket's (for UDP: EAGAIN when
        // no error is queued, EOPNOTSUPP for MSG_OOB).
        let n = from_kernel();
        return if n >= 0 { Ok(taken_from_kernel(n)) } else { Err(errno::get()) };
    }
    let mut waiter: Option<Waiter> = None;
    // Once waiting, the call holds the socket: a close() by another thread does not end the
    // wait (as on Linux, where the call holds the file), the timeout or data does.
    let mut hold: Option<runtime::Hold> = None;
    let mut spins = 0u32;
    loop {
        {
            let mut guard = runtime::lock();
            let rt = guard.as_mut().ok_or(libc::EBADF)?;
            let Some(s) = rt.slot(slot) else {
                drop(guard);
                // Handed to the kernel while this call waited (a forced detach): the kernel
                // socket goes on receiving.
                return if fdtable::get(fd) == FdState::Kernel {
                    from_kernel_waiting(fd, flags, from_kernel)
                } else {
                    Err(libc::EBADF)
                };
            };
            rt.poll();
            match from_stack(rt, s) {
                Ok(info) => return Ok(Got::Stack(info, s.ancillary)),
                // Shut down for reading and empty: end of data.
                Err(UdpError::WouldBlock) if s.shut_rd => return Ok(Got::Kernel(0)),
                Err(UdpError::WouldBlock) => {}
                Err(e) => return Err(errno::udp(e)),
            }
        }
        // (After a close by another thread the number is no longer this socket's.) Once the
        // wait sleeps, every round looks: a nap is much longer than the syscall.
        let check = spins.is_multiple_of(KERNEL_CHECK_EVERY) || waiter.as_ref().is_some_and(Waiter::sleeping);
        if check && fdtable::get(fd) == FdState::Accel(slot) {
            let n = from_kernel();
            if n >= 0 {
                return Ok(taken_from_kernel(n));
            }
            let e = errno::get();
            if e != libc::EAGAIN {
                return Err(e);
            }
        }
        spins = spins.wrapping_add(1);
        wait_for_data(fd, flags, &mut waiter)?;
        if hold.is_none() {
            hold = Some(runtime::Hold::new(slot).ok_or(libc::EBADF)?);
        }
    }
}

/// A datagram (or a queued error) taken from an accelerated socket's kernel socket: what poll()
/// said of that socket is stale, so epoll waits ask it again at once rather than report it
/// readable for up to a millisecond more (an event loop would then block in its next read).
fn taken_from_kernel(n: ssize_t) -> Got {
    crate::epoll::kernel_state_changed();
    Got::Kernel(n)
}

/// A receive on what is now a kernel socket, waiting as a blocking one does (`from_kernel`
/// never waits: it adds MSG_DONTWAIT).
fn from_kernel_waiting(fd: c_int, flags: c_int, from_kernel: &mut dyn FnMut() -> ssize_t) -> Result<Got, c_int> {
    loop {
        let n = from_kernel();
        if n >= 0 {
            return Ok(Got::Kernel(n));
        }
        let e = errno::get();
        if e != libc::EAGAIN || flags & libc::MSG_DONTWAIT != 0 || runtime::nonblocking(fd) {
            return Err(e);
        }
        let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one pollfd of ours; the real poll, not our export.
        if unsafe { crate::real::poll(&mut p, 1, -1) } < 0 {
            return Err(errno::get());
        }
    }
}

/// A datagram into one buffer.
pub(super) unsafe fn udp_receive(
    fd: c_int,
    slot: u32,
    buf: &mut [u8],
    flags: c_int,
    addr: *mut sockaddr,
    alen: *mut socklen_t,
) -> Result<Got, c_int> {
    let peek = flags & libc::MSG_PEEK != 0;
    // Both closures write into the caller's buffer, one at a time: share it as a raw pointer.
    let (ptr, len) = (buf.as_mut_ptr(), buf.len());
    receive_loop(
        fd,
        slot,
        flags,
        &mut |rt, s| rt.driver.stack().udp_recv(s.handle, std::slice::from_raw_parts_mut(ptr, len), peek),
        &mut || real::recvfrom(fd, ptr.cast(), len, flags | libc::MSG_DONTWAIT, addr, alen),
    )
}

/// recvmsg: a datagram from the stack into the iovecs (one buffer straight, several through
/// the runtime's scratch buffer under the lock: no allocation), or from the kernel socket with
/// the caller's whole msghdr, so that its control messages and flags are the kernel's.
pub(super) unsafe fn message_receive(
    fd: c_int,
    slot: u32,
    msg: *mut msghdr,
    iovs: &[libc::iovec],
    flags: c_int,
) -> Result<Got, c_int> {
    let peek = flags & libc::MSG_PEEK != 0;
    let total: usize = iovs.iter().map(|v| v.iov_len).sum();
    receive_loop(
        fd,
        slot,
        flags,
        &mut |rt, s| {
            if let [one] = iovs {
                let buf = if one.iov_len == 0 {
                    &mut [][..]
                } else {
                    std::slice::from_raw_parts_mut(one.iov_base.cast::<u8>(), one.iov_len)
                };
                return rt.driver.stack().udp_recv(s.handle, buf, peek);
            }
            let limit = total.min(rt.scratch.len());
            let info = rt.driver.stack().udp_recv(s.handle, &mut rt.scratch[..limit], peek)?;
            let mut at = 0;
            for v in iovs {
                let n = v.iov_len.min(info.copied - at);
                if n > 0 {
                    std::ptr::copy_nonoverlapping(rt.scratch[at..].as_ptr(), v.iov_base.cast::<u8>(), n);
                }
                at += n;
            }
            Ok(info)
        },
        &mut || real::recvmsg(fd, msg, flags | libc::MSG_DONTWAIT),
    )
}

/// What a send carries: one buffer, or iovecs gathered into the runtime's scratch under its
/// lock (no allocation), with their checked total.
#[derive(Clone, Copy)]
pub(super) enum Payload<'a> {
    Flat(&'a [u8]),
    Gather(&'a [libc::iovec], usize),
}

impl Payload<'_> {
    fn len(&self) -> usize {
        match self {
            Payload::Flat(d) => d.len(),
            Payload::Gather(_, total) => *total,
        }
    }
}

/// Sends a datagram from an accelerated socket: the one send path of every send call.
/// Destinations the stack cannot route (loopback, other interfaces), and sources or interfaces
/// that a control message names elsewhere, go out through the kernel socket (`kernel`), as
/// they would without exasock.
pub(super) unsafe fn udp_transmit(
    fd: c_int,
    slot: u32,
    payload: Payload<'_>,
    flags: c_int,
    dst: Option<SocketAddrV4>,
    control: &SendControl,
    kernel: &dyn Fn() -> ssize_t,
) -> ssize_t {
    if flags & MSG_EXA_WARM != 0 {
        return payload.len() as ssize_t;
    }
    if flags & libc::MSG_OOB != 0 {
        return errno::fail(libc::EOPNOTSUPP);
    }
    let mut waiter: Option<Waiter> = None;
    loop {
        let r = {
            let mut guard = runtime::lock();
            let Some(rt) = guard.as_mut() else { return errno::fail(libc::EBADF) };
            if rt.slot(slot).is_some_and(|s| s.shut_wr) {
                drop(guard);
                return broken_pipe();
            }
            match payload {
                Payload::Flat(data) => rt.udp_send(slot, data, dst, control),
                Payload::Gather(iovs, total) => rt.udp_send_gathered(slot, iovs, total, dst, control),
            }
        };
        match r {
            Ok(n) => return n as ssize_t,
            Err(UdpError::NetworkUnreachable) => return kernel(),
            Err(UdpError::WouldBlock) if flags & libc::MSG_DONTWAIT == 0 && !runtime::nonblocking(fd) => {
                let w = waiter.get_or_insert_with(|| {
                    let timeout = runtime::socket_timeout(fd, libc::SO_SNDTIMEO);
                    Waiter::new(timeout, timeout.is_some())
                });
                match w.wait() {
                    Ok(()) => {}
                    Err(WaitEnd::TimedOut) => return errno::fail(libc::EAGAIN),
                    Err(WaitEnd::Interrupted) => return errno::fail(libc::EINTR),
                }
            }
            Err(e) => return runtime::fail_udp(e),
        }
    }
}

/// EPIPE after SHUT_WR. No SIGPIPE: Linux raises it for stream sockets only (MSG_NOSIGNAL
/// changes nothing for UDP).
pub(super) fn broken_pipe() -> ssize_t {
    errno::fail(libc::EPIPE)
}
