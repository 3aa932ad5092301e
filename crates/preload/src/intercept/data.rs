//! recv, recvfrom, recvmsg, read and their _chk forms; send, sendto, sendmsg, write.

use super::stream;
use crate::fdtable::{self, FdState};
use crate::runtime::{self, WaitEnd, Waiter};
use crate::{errno, real};
use libc::{c_int, c_void, msghdr, size_t, sockaddr, socklen_t, ssize_t};
use stack::udp::queue::DatagramInfo;
use stack::udp::UdpError;
use std::net::SocketAddrV4;

/// MSG_EXA_WARM of <exasock/socket.h>: run the send path, send nothing.
const MSG_EXA_WARM: c_int = 0x100000;
/// The kernel socket (traffic via loopback or other interfaces) is checked once per this many
/// spins, so a waiting call makes no syscall on most iterations.
const KERNEL_CHECK_EVERY: u32 = 64;

extern "C" {
    fn __chk_fail() -> !;
}

/// msg_iovlen as a count (its C type differs between libcs).
#[allow(clippy::unnecessary_cast)]
fn iov_count(m: &msghdr) -> usize {
    m.msg_iovlen as usize
}

/// The most iovecs a call takes (UIO_MAXIOV).
const MAX_IOV: usize = 1024;

/// A msghdr's iovecs, checked as the kernel checks them: EMSGSIZE for more than UIO_MAXIOV,
/// EFAULT for a missing array or a missing buffer with a length.
unsafe fn iovecs<'a>(m: &msghdr) -> Result<&'a [libc::iovec], c_int> {
    let n = iov_count(m);
    if n > MAX_IOV {
        return Err(libc::EMSGSIZE);
    }
    if n == 0 {
        return Ok(&[]);
    }
    if m.msg_iov.is_null() {
        return Err(libc::EFAULT);
    }
    let iovs = std::slice::from_raw_parts(m.msg_iov, n);
    if iovs.iter().any(|v| v.iov_base.is_null() && v.iov_len > 0) {
        return Err(libc::EFAULT);
    }
    Ok(iovs)
}

/// The highest user-space address on x86-64 and aarch64 (48-bit): a range reaching past it is
/// one the kernel's access_ok refuses with EFAULT.
const USER_TOP: usize = 0x7fff_ffff_f000;

/// Whether `len` bytes at `ptr` may be user memory, as the kernel's access_ok judges: EFAULT
/// otherwise. (Unmapped user pages still fault: see the crate README.)
fn user_range_ok(ptr: *const c_void, len: usize) -> bool {
    len == 0 || (ptr as usize).checked_add(len).is_some_and(|end| end <= USER_TOP)
}

/// The total length of `iovs`, checked as the kernel's import_iovec checks it: EINVAL for a
/// length negative as ssize_t, EFAULT for a range outside user space; a total past
/// `limit` is EMSGSIZE (a datagram's payload limit).
fn gathered_len(iovs: &[libc::iovec], limit: usize) -> Result<usize, c_int> {
    let mut total = 0usize;
    for v in iovs {
        if v.iov_len > isize::MAX as usize {
            return Err(libc::EINVAL);
        }
        if !user_range_ok(v.iov_base, v.iov_len) {
            return Err(libc::EFAULT);
        }
        total = total.saturating_add(v.iov_len);
    }
    if total > limit {
        return Err(libc::EMSGSIZE);
    }
    Ok(total)
}

/// Where a received datagram came from.
enum Got {
    Stack { len: usize, copied: usize, src: SocketAddrV4, at: stack::Instant },
    Kernel(ssize_t),
}

/// Waits for a datagram for an accelerated socket, from the stack or (for traffic that reached
/// the kernel socket, checked once per KERNEL_CHECK_EVERY spins) the kernel; honours
/// MSG_DONTWAIT, O_NONBLOCK, SO_RCVTIMEO, signals and SHUT_RD. `from_stack` receives from the
/// polled stack, `from_kernel` tries the kernel socket without blocking.
unsafe fn receive_loop(
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
        return if n >= 0 { Ok(Got::Kernel(n)) } else { Err(errno::get()) };
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
            let s = rt.slot(slot).ok_or(libc::EBADF)?;
            rt.poll();
            match from_stack(rt, s) {
                Ok(info) => {
                    return Ok(Got::Stack { len: info.len, copied: info.copied, src: info.src, at: info.timestamp })
                }
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
                return Ok(Got::Kernel(n));
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

/// A datagram into one buffer.
unsafe fn udp_receive(
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

/// After a receive found nothing: EAGAIN for a non-blocking call (decided once per call, on
/// the first miss, so spinning makes no syscall), else one spin or sleep, and EAGAIN once
/// SO_RCVTIMEO has passed.
pub(crate) fn wait_for_data(fd: c_int, flags: c_int, waiter: &mut Option<Waiter>) -> Result<(), c_int> {
    if waiter.is_none() {
        if flags & libc::MSG_DONTWAIT != 0 || runtime::nonblocking(fd) {
            return Err(libc::EAGAIN);
        }
        let timeout = runtime::socket_timeout(fd, libc::SO_RCVTIMEO);
        *waiter = Some(Waiter::new(timeout, timeout.is_some()));
    }
    match waiter.as_ref().map_or(Ok(()), Waiter::wait) {
        Ok(()) => Ok(()),
        Err(WaitEnd::TimedOut) => Err(libc::EAGAIN),
        Err(WaitEnd::Interrupted) => Err(libc::EINTR),
    }
}

unsafe fn accelerated_recvfrom(
    fd: c_int,
    slot: u32,
    buf: *mut c_void,
    len: size_t,
    flags: c_int,
    addr: *mut sockaddr,
    alen: *mut socklen_t,
) -> ssize_t {
    if (buf.is_null() && len > 0) || !user_range_ok(buf, len) {
        return errno::fail(libc::EFAULT);
    }
    let buf: &mut [u8] = if len == 0 { &mut [] } else { std::slice::from_raw_parts_mut(buf.cast(), len) };
    if fdtable::is_tcp(fd) {
        // A stream has no source address to give (recvfrom leaves a zero length, as Linux).
        if !alen.is_null() && !addr.is_null() {
            *alen = 0;
        }
        return stream::ssize(stream::receive(fd, slot, buf, flags));
    }
    match udp_receive(fd, slot, buf, flags, addr, alen) {
        Ok(Got::Stack { len, copied, src, .. }) => {
            runtime::write_sockaddr(src, addr, alen);
            (if flags & libc::MSG_TRUNC != 0 { len } else { copied }) as ssize_t
        }
        Ok(Got::Kernel(n)) => n,
        Err(e) => errno::fail(e),
    }
}

#[no_mangle]
pub unsafe extern "C" fn recvfrom(
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    flags: c_int,
    addr: *mut sockaddr,
    alen: *mut socklen_t,
) -> ssize_t {
    match fdtable::get(fd) {
        FdState::Accel(slot) => accelerated_recvfrom(fd, slot, buf, len, flags, addr, alen),
        _ => real::recvfrom(fd, buf, len, flags, addr, alen),
    }
}

#[no_mangle]
pub unsafe extern "C" fn recv(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int) -> ssize_t {
    match fdtable::get(fd) {
        FdState::Accel(slot) => {
            accelerated_recvfrom(fd, slot, buf, len, flags, std::ptr::null_mut(), std::ptr::null_mut())
        }
        _ => real::recv(fd, buf, len, flags),
    }
}

#[no_mangle]
pub unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, len: size_t) -> ssize_t {
    match fdtable::get(fd) {
        FdState::Accel(slot) => accelerated_recvfrom(fd, slot, buf, len, 0, std::ptr::null_mut(), std::ptr::null_mut()),
        _ => real::read(fd, buf, len),
    }
}

#[no_mangle]
pub unsafe extern "C" fn __read_chk(fd: c_int, buf: *mut c_void, len: size_t, buflen: size_t) -> ssize_t {
    if len > buflen {
        __chk_fail();
    }
    read(fd, buf, len)
}

#[no_mangle]
pub unsafe extern "C" fn __recv_chk(fd: c_int, buf: *mut c_void, len: size_t, buflen: size_t, flags: c_int) -> ssize_t {
    if len > buflen {
        __chk_fail();
    }
    recv(fd, buf, len, flags)
}

#[no_mangle]
pub unsafe extern "C" fn __recvfrom_chk(
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    buflen: size_t,
    flags: c_int,
    addr: *mut sockaddr,
    alen: *mut socklen_t,
) -> ssize_t {
    if len > buflen {
        __chk_fail();
    }
    recvfrom(fd, buf, len, flags, addr, alen)
}

#[no_mangle]
pub unsafe extern "C" fn recvmsg(fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t {
    let FdState::Accel(slot) = fdtable::get(fd) else { return real::recvmsg(fd, msg, flags) };
    if msg.is_null() {
        return errno::fail(libc::EFAULT);
    }
    let m = &mut *msg;
    let iovs = match iovecs(m) {
        Ok(v) => v,
        Err(e) => return errno::fail(e),
    };
    if fdtable::is_tcp(fd) {
        return tcp_recvmsg(fd, slot, m, iovs, flags);
    }
    let (name, namelen) = (m.msg_name as *mut sockaddr, &mut m.msg_namelen as *mut socklen_t);
    let name_wanted = !name.is_null();
    let result = if iovs.len() == 1 {
        let buf = if iovs[0].iov_len == 0 {
            &mut [][..]
        } else {
            std::slice::from_raw_parts_mut(iovs[0].iov_base.cast(), iovs[0].iov_len)
        };
        udp_receive(
            fd,
            slot,
            buf,
            flags,
            if name_wanted { name } else { std::ptr::null_mut() },
            if name_wanted { namelen } else { std::ptr::null_mut() },
        )
    } else {
        // Several buffers: receive whole into the runtime's scratch, then scatter.
        let total: usize = iovs.iter().map(|v| v.iov_len).sum();
        scatter_receive(fd, slot, iovs, total, flags, name, namelen)
    };
    m.msg_flags = 0;
    match result {
        Ok(Got::Stack { len, copied, src, at }) => {
            let ts = {
                let guard = runtime::lock();
                guard.as_ref().and_then(|rt| rt.slot(slot)).map(|s| s.timestamps).unwrap_or_default()
            };
            write_timestamps(m, ts, at);
            if name_wanted {
                runtime::write_sockaddr(src, name, namelen);
            } else {
                m.msg_namelen = 0;
            }
            if copied < len {
                m.msg_flags |= libc::MSG_TRUNC;
            }
            (if flags & libc::MSG_TRUNC != 0 { len } else { copied }) as ssize_t
        }
        Ok(Got::Kernel(n)) => {
            // Read from the kernel socket without its control data.
            m.msg_controllen = 0;
            n
        }
        Err(e) => {
            m.msg_controllen = 0;
            errno::fail(e)
        }
    }
}

/// recvmsg on an accelerated TCP socket: the stream into the iovecs in order (a short read
/// ends it unless MSG_WAITALL), no address, no control data.
unsafe fn tcp_recvmsg(fd: c_int, slot: u32, m: &mut msghdr, iovs: &[libc::iovec], flags: c_int) -> ssize_t {
    m.msg_namelen = 0;
    m.msg_controllen = 0;
    m.msg_flags = 0;
    let mut total = 0usize;
    for (i, v) in iovs.iter().enumerate() {
        if v.iov_len == 0 {
            continue;
        }
        if !user_range_ok(v.iov_base, v.iov_len) {
            return if total > 0 { total as ssize_t } else { errno::fail(libc::EFAULT) };
        }
        let buf = std::slice::from_raw_parts_mut(v.iov_base.cast::<u8>(), v.iov_len);
        // After the first bytes, later buffers take only what is there already.
        let f = if total > 0 && flags & libc::MSG_WAITALL == 0 { flags | libc::MSG_DONTWAIT } else { flags };
        match stream::receive(fd, slot, buf, f) {
            Ok(n) => {
                total += n;
                if n < v.iov_len || i + 1 == iovs.len() {
                    return total as ssize_t;
                }
            }
            Err(_) if total > 0 => return total as ssize_t,
            Err(e) => return errno::fail(e),
        }
    }
    total as ssize_t
}

/// Fills msg_control with the receive timestamps the socket asked for (software, taken when
/// the stack received the datagram, in CLOCK_REALTIME); MSG_CTRUNC when they do not fit.
#[allow(clippy::unnecessary_cast)] // msg_controllen's C type differs between libcs
unsafe fn write_timestamps(m: &mut msghdr, ts: runtime::Timestamps, at: stack::Instant) {
    let capacity = m.msg_controllen;
    m.msg_controllen = 0;
    if !ts.any() {
        return;
    }
    let mut real_now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    libc::clock_gettime(libc::CLOCK_REALTIME, &mut real_now);
    let age = driver::clock::now().saturating_since(at);
    let stamp = std::time::Duration::new(real_now.tv_sec as u64, real_now.tv_nsec as u32).saturating_sub(age);
    let spec = libc::timespec { tv_sec: stamp.as_secs() as _, tv_nsec: stamp.subsec_nanos() as _ };
    let val = libc::timeval { tv_sec: stamp.as_secs() as _, tv_usec: stamp.subsec_micros() as _ };
    let software = ts.timestamping & (libc::SOF_TIMESTAMPING_SOFTWARE | libc::SOF_TIMESTAMPING_RX_SOFTWARE) != 0;
    let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    let triple = [if software { spec } else { zero }, zero, zero];
    let mut used = 0usize;
    let mut push = |m: &mut msghdr, ty: libc::c_int, data: *const u8, len: usize| {
        let space = libc::CMSG_SPACE(len as u32) as usize;
        if m.msg_control.is_null() || used + space > capacity as usize {
            m.msg_flags |= libc::MSG_CTRUNC;
            return;
        }
        let c = (m.msg_control as *mut u8).add(used) as *mut libc::cmsghdr;
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = ty;
        (*c).cmsg_len = libc::CMSG_LEN(len as u32) as _;
        std::ptr::copy_nonoverlapping(data, libc::CMSG_DATA(c), len);
        used += space;
    };
    if ts.micro {
        push(m, libc::SCM_TIMESTAMP, (&val as *const libc::timeval).cast(), std::mem::size_of::<libc::timeval>());
    }
    if ts.nano {
        push(m, libc::SCM_TIMESTAMPNS, (&spec as *const libc::timespec).cast(), std::mem::size_of::<libc::timespec>());
    }
    if software {
        push(m, libc::SCM_TIMESTAMPING, triple.as_ptr().cast(), std::mem::size_of_val(&triple));
    }
    m.msg_controllen = used as _;
}

/// recvmsg with several iovecs: the datagram lands in the runtime's scratch buffer under the
/// lock and is scattered from there (no allocation).
unsafe fn scatter_receive(
    fd: c_int,
    slot: u32,
    iovs: &[libc::iovec],
    total: usize,
    flags: c_int,
    name: *mut sockaddr,
    namelen: *mut socklen_t,
) -> Result<Got, c_int> {
    let peek = flags & libc::MSG_PEEK != 0;
    receive_loop(
        fd,
        slot,
        flags,
        &mut |rt, s| {
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
        &mut || {
            let mut kmsg: msghdr = std::mem::zeroed();
            kmsg.msg_iov = iovs.as_ptr() as *mut libc::iovec;
            kmsg.msg_iovlen = iovs.len() as _;
            kmsg.msg_name = name.cast();
            kmsg.msg_namelen = if namelen.is_null() { 0 } else { *namelen };
            let n = real::recvmsg(fd, &mut kmsg, flags | libc::MSG_DONTWAIT);
            if n >= 0 && !namelen.is_null() {
                *namelen = kmsg.msg_namelen;
            }
            n
        },
    )
}

/// What a send carries: one buffer, or iovecs gathered into the runtime's scratch under its
/// lock (no allocation), with their checked total.
#[derive(Clone, Copy)]
enum Payload<'a> {
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
/// Destinations the stack cannot route (loopback, other interfaces) go out through the kernel
/// socket (`kernel`), as they would without exasock.
unsafe fn udp_transmit(
    fd: c_int,
    slot: u32,
    payload: Payload<'_>,
    flags: c_int,
    dst: Option<SocketAddrV4>,
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
                Payload::Flat(data) => rt.udp_send(slot, data, dst),
                Payload::Gather(iovs, total) => rt.udp_send_gathered(slot, iovs, total, dst),
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

/// The destination a send names: None without one, the errno the kernel gives for one that is
/// not a usable sockaddr_in.
unsafe fn destination(addr: *const sockaddr, alen: socklen_t) -> Result<Option<SocketAddrV4>, c_int> {
    if addr.is_null() {
        return Ok(None);
    }
    match runtime::read_sockaddr(addr, alen) {
        Some(a) => Ok(Some(a)),
        None if alen as usize >= 2 && i32::from((*addr).sa_family) != libc::AF_INET => Err(libc::EAFNOSUPPORT),
        None => Err(libc::EINVAL),
    }
}

/// EPIPE after SHUT_WR. No SIGPIPE: Linux raises it for stream sockets only (MSG_NOSIGNAL
/// changes nothing for UDP).
fn broken_pipe() -> ssize_t {
    errno::fail(libc::EPIPE)
}

unsafe fn accelerated_sendto(
    fd: c_int,
    slot: u32,
    buf: *const c_void,
    len: size_t,
    flags: c_int,
    addr: *const sockaddr,
    alen: socklen_t,
) -> ssize_t {
    if fdtable::is_tcp(fd) {
        // A connected stream ignores the address, as Linux does.
        if (buf.is_null() && len > 0) || !user_range_ok(buf, len) {
            return errno::fail(libc::EFAULT);
        }
        let data: &[u8] = if len == 0 { &[] } else { std::slice::from_raw_parts(buf.cast(), len) };
        return stream::ssize(stream::send(fd, slot, &[data], flags));
    }
    let dst = match destination(addr, alen) {
        Ok(d) => d,
        Err(e) => return errno::fail(e),
    };
    if (buf.is_null() && len > 0) || !user_range_ok(buf, len) {
        return errno::fail(libc::EFAULT);
    }
    let data: &[u8] = if len == 0 { &[] } else { std::slice::from_raw_parts(buf.cast(), len) };
    udp_transmit(fd, slot, Payload::Flat(data), flags, dst, &|| real::sendto(fd, buf, len, flags, addr, alen))
}

#[no_mangle]
pub unsafe extern "C" fn sendto(
    fd: c_int,
    buf: *const c_void,
    len: size_t,
    flags: c_int,
    addr: *const sockaddr,
    alen: socklen_t,
) -> ssize_t {
    match fdtable::get(fd) {
        FdState::Accel(slot) => accelerated_sendto(fd, slot, buf, len, flags, addr, alen),
        FdState::UdpCandidate if crate::init::ready() && !fdtable::hinted_bound(fd) => {
            match runtime::read_sockaddr(addr, alen) {
                Some(dst) if runtime::auto_bind(fd, dst) => sendto(fd, buf, len, flags, addr, alen),
                _ => real::sendto(fd, buf, len, flags, addr, alen),
            }
        }
        _ => real::sendto(fd, buf, len, flags, addr, alen),
    }
}

#[no_mangle]
pub unsafe extern "C" fn send(fd: c_int, buf: *const c_void, len: size_t, flags: c_int) -> ssize_t {
    match fdtable::get(fd) {
        FdState::Accel(slot) => accelerated_sendto(fd, slot, buf, len, flags, std::ptr::null(), 0),
        _ => real::send(fd, buf, len, flags),
    }
}

#[no_mangle]
pub unsafe extern "C" fn write(fd: c_int, buf: *const c_void, len: size_t) -> ssize_t {
    match fdtable::get(fd) {
        FdState::Accel(slot) => accelerated_sendto(fd, slot, buf, len, 0, std::ptr::null(), 0),
        _ => real::write(fd, buf, len),
    }
}

#[no_mangle]
pub unsafe extern "C" fn sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t {
    let slot = match fdtable::get(fd) {
        FdState::Accel(slot) => slot,
        FdState::UdpCandidate if crate::init::ready() && !msg.is_null() && !fdtable::hinted_bound(fd) => {
            match runtime::read_sockaddr((*msg).msg_name as *const sockaddr, (*msg).msg_namelen) {
                Some(dst) if runtime::auto_bind(fd, dst) => return sendmsg(fd, msg, flags),
                _ => return real::sendmsg(fd, msg, flags),
            }
        }
        _ => return real::sendmsg(fd, msg, flags),
    };
    if msg.is_null() {
        return errno::fail(libc::EFAULT);
    }
    let m = &*msg;
    let iovs = match iovecs(m) {
        Ok(v) => v,
        Err(e) => return errno::fail(e),
    };
    if iovs.len() <= 1 {
        let (p, n) = iovs.first().map_or((std::ptr::null(), 0), |v| (v.iov_base as *const c_void, v.iov_len));
        return accelerated_sendto(fd, slot, p, n, flags, m.msg_name as *const sockaddr, m.msg_namelen);
    }
    if fdtable::is_tcp(fd) {
        if let Err(e) = gathered_len(iovs, usize::MAX) {
            return errno::fail(e);
        }
        // At most a handful of parts on the stack; more are sent in groups, in order.
        let mut sent = 0usize;
        for group in iovs.chunks(16) {
            let mut parts: [&[u8]; 16] = [&[]; 16];
            for (p, v) in parts.iter_mut().zip(group) {
                if v.iov_len > 0 {
                    *p = std::slice::from_raw_parts(v.iov_base.cast::<u8>(), v.iov_len);
                }
            }
            let want: usize = group.iter().map(|v| v.iov_len).sum();
            match stream::send(fd, slot, &parts[..group.len()], flags) {
                Ok(n) => {
                    sent += n;
                    if n < want {
                        break;
                    }
                }
                Err(_) if sent > 0 => break,
                Err(e) => return errno::fail(e),
            }
        }
        return sent as ssize_t;
    }
    // Several buffers: checked as the kernel checks them, gathered under the lock.
    let total = match gathered_len(iovs, stack::MAX_UDP_PAYLOAD) {
        Ok(t) => t,
        Err(e) => return errno::fail(e),
    };
    let dst = match destination(m.msg_name as *const sockaddr, m.msg_namelen) {
        Ok(d) => d,
        Err(e) => return errno::fail(e),
    };
    udp_transmit(fd, slot, Payload::Gather(iovs, total), flags, dst, &|| real::sendmsg(fd, msg, flags))
}

/// A msghdr over `n` iovecs with no address, for readv/writev (EINVAL for a count below 0 or
/// above UIO_MAXIOV).
fn iov_msghdr(iov: *const libc::iovec, n: c_int) -> Result<msghdr, c_int> {
    if n < 0 || n as usize > MAX_IOV {
        return Err(libc::EINVAL);
    }
    // SAFETY: msghdr is plain data; all-zero is a valid empty header.
    let mut m: msghdr = unsafe { std::mem::zeroed() };
    m.msg_iov = iov as *mut libc::iovec;
    m.msg_iovlen = n as _;
    Ok(m)
}

#[no_mangle]
pub unsafe extern "C" fn readv(fd: c_int, iov: *const libc::iovec, n: c_int) -> ssize_t {
    if !fdtable::is_accelerated(fd) {
        return real::readv(fd, iov, n);
    }
    match iov_msghdr(iov, n) {
        Ok(mut m) => recvmsg(fd, &mut m, 0),
        Err(e) => errno::fail(e),
    }
}

#[no_mangle]
pub unsafe extern "C" fn writev(fd: c_int, iov: *const libc::iovec, n: c_int) -> ssize_t {
    if !fdtable::is_accelerated(fd) {
        return real::writev(fd, iov, n);
    }
    match iov_msghdr(iov, n) {
        Ok(m) => sendmsg(fd, &m, 0),
        Err(e) => errno::fail(e),
    }
}

/// recvmmsg: datagrams one by one through recvmsg, each msg_len set. The first waits as a
/// blocking receive does (unless MSG_DONTWAIT); after that, MSG_WAITFORONE or an empty queue
/// ends the call. The timeout is checked between datagrams, as the kernel does.
#[no_mangle]
pub unsafe extern "C" fn recvmmsg(
    fd: c_int,
    msgs: *mut libc::mmsghdr,
    n: libc::c_uint,
    flags: c_int,
    timeout: *mut libc::timespec,
) -> c_int {
    if !fdtable::is_accelerated(fd) {
        return real::recvmmsg(fd, msgs, n, flags, timeout);
    }
    if msgs.is_null() && n > 0 {
        return errno::fail(libc::EFAULT);
    }
    let deadline = (!timeout.is_null()).then(|| {
        std::time::Instant::now()
            + std::time::Duration::new((*timeout).tv_sec.max(0) as u64, (*timeout).tv_nsec.clamp(0, 999_999_999) as u32)
    });
    let mut got = 0;
    let mut call_flags = flags & !libc::MSG_WAITFORONE;
    while got < n {
        let m = &mut *msgs.add(got as usize);
        let r = recvmsg(fd, &mut m.msg_hdr, call_flags);
        if r < 0 {
            if got > 0 && errno::get() == libc::EAGAIN {
                break;
            }
            return if got > 0 { got as c_int } else { -1 };
        }
        m.msg_len = r as libc::c_uint;
        got += 1;
        if flags & libc::MSG_WAITFORONE != 0 {
            call_flags |= libc::MSG_DONTWAIT;
        }
        if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            break;
        }
    }
    got as c_int
}

/// sendmmsg: one sendmsg per message, msg_len set; stops at the first error, which is returned
/// only when nothing was sent.
#[no_mangle]
pub unsafe extern "C" fn sendmmsg(fd: c_int, msgs: *mut libc::mmsghdr, n: libc::c_uint, flags: c_int) -> c_int {
    if !fdtable::is_accelerated(fd) {
        return real::sendmmsg(fd, msgs, n, flags);
    }
    if msgs.is_null() && n > 0 {
        return errno::fail(libc::EFAULT);
    }
    let mut sent = 0;
    while sent < n {
        let m = &mut *msgs.add(sent as usize);
        let r = sendmsg(fd, &m.msg_hdr, flags);
        if r < 0 {
            return if sent > 0 { sent as c_int } else { -1 };
        }
        m.msg_len = r as libc::c_uint;
        sent += 1;
    }
    sent as c_int
}

#[no_mangle]
pub unsafe extern "C" fn shutdown(fd: c_int, how: c_int) -> c_int {
    if fdtable::is_tcp(fd) {
        return tcp_shutdown(fd, how);
    }
    // The kernel socket keeps the kernel's view (and gives the errno: ENOTCONN when
    // unconnected, though Linux records the shutdown even then).
    let r = real::shutdown(fd, how);
    if let FdState::Accel(slot) = fdtable::get(fd) {
        let e = errno::get();
        if r == 0 || e == libc::ENOTCONN {
            let rd = how == libc::SHUT_RD || how == libc::SHUT_RDWR;
            let wr = how == libc::SHUT_WR || how == libc::SHUT_RDWR;
            if let Some(rt) = runtime::lock().as_mut() {
                rt.shutdown(slot, rd, wr);
            }
            crate::epoll::kernel_state_changed();
        }
        errno::fail::<i8>(e);
    }
    r
}

/// shutdown on an accelerated TCP socket: the stack's connection sends its FIN (SHUT_WR) or
/// stops reading (SHUT_RD); the kernel socket behind it is not the connection.
unsafe fn tcp_shutdown(fd: c_int, how: c_int) -> c_int {
    let FdState::Accel(slot) = fdtable::get(fd) else { return errno::fail(libc::EBADF) };
    if !(libc::SHUT_RD..=libc::SHUT_RDWR).contains(&how) {
        return errno::fail(libc::EINVAL);
    }
    let rd = how == libc::SHUT_RD || how == libc::SHUT_RDWR;
    let wr = how == libc::SHUT_WR || how == libc::SHUT_RDWR;
    match runtime::with_tcp(slot, |stack, h, _| stack.tcp_shutdown(h, rd, wr)) {
        Ok(()) => {
            if let Some(rt) = runtime::lock().as_mut() {
                rt.shutdown(slot, rd, wr);
            }
            crate::epoll::kernel_state_changed();
            0
        }
        Err(e) => errno::fail(e.errno()),
    }
}
