//! recv, recvfrom, recvmsg, read and their _chk forms; send, sendto, sendmsg, write.

use super::stream;
use crate::fdtable::{self, FdState};
use crate::runtime::{self, WaitEnd, Waiter};
use crate::{errno, real};
use libc::{c_int, c_void, msghdr, size_t, sockaddr, socklen_t, ssize_t};
use stack::tcp::RecvInto;
use stack::udp::queue::DatagramInfo;
use stack::udp::UdpError;
use std::net::SocketAddrV4;

mod cmsg;
mod datagram;

use cmsg::*;
use datagram::*;

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
    // The call's one source outside the stack: the kernel socket behind the fd (loopback and
    // other interfaces reach a UDP socket or a listener there; a connection's is a placeholder).
    let watch = [libc::pollfd { fd, events: libc::POLLIN, revents: 0 }];
    let kernel: &[libc::pollfd] = if fdtable::is_tcp_connection(fd) { &[] } else { &watch };
    match waiter.as_ref().map_or(Ok(()), |w| w.wait_on(Some(kernel))) {
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
    let tcp = fdtable::is_tcp(fd);
    if tcp && flags & libc::MSG_TRUNC != 0 {
        // MSG_TRUNC on a stream consumes `len` bytes without copying them (no buffer needed).
        return stream::ssize(stream::receive(fd, slot, RecvInto::Discard(len), flags));
    }
    if (buf.is_null() && len > 0) || !user_range_ok(buf, len) {
        return errno::fail(libc::EFAULT);
    }
    let buf: &mut [u8] = if len == 0 { &mut [] } else { std::slice::from_raw_parts_mut(buf.cast(), len) };
    if tcp {
        // A stream has no source address to give (recvfrom leaves a zero length, as Linux).
        if !alen.is_null() && !addr.is_null() {
            *alen = 0;
        }
        return stream::ssize(stream::receive(fd, slot, RecvInto::Buf(buf), flags));
    }
    match udp_receive(fd, slot, buf, flags, addr, alen) {
        Ok(Got::Stack(info, _)) => {
            runtime::write_sockaddr(info.src, addr, alen);
            (if flags & libc::MSG_TRUNC != 0 { info.len } else { info.copied }) as ssize_t
        }
        Ok(Got::Kernel(n)) => n,
        Err(e) => errno::fail(e),
    }
}

/// Exported by `intercept::traced` (which traces it under EXASOCK_TRACE).
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

/// Exported by `intercept::traced` (which traces it under EXASOCK_TRACE).
pub unsafe extern "C" fn recv(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int) -> ssize_t {
    match fdtable::get(fd) {
        FdState::Accel(slot) => {
            accelerated_recvfrom(fd, slot, buf, len, flags, std::ptr::null_mut(), std::ptr::null_mut())
        }
        _ => real::recv(fd, buf, len, flags),
    }
}

/// Exported by `intercept::traced` (which traces it under EXASOCK_TRACE).
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

/// Exported by `intercept::traced` (which traces it under EXASOCK_TRACE).
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
    match message_receive(fd, slot, msg, iovs, flags) {
        Ok(Got::Stack(info, ancillary)) => {
            let m = &mut *msg;
            m.msg_flags = 0;
            write_control(m, ancillary, &info);
            if m.msg_name.is_null() {
                m.msg_namelen = 0;
            } else {
                runtime::write_sockaddr(info.src, m.msg_name.cast(), &mut m.msg_namelen);
            }
            if info.copied < info.len {
                m.msg_flags |= libc::MSG_TRUNC;
            }
            (if flags & libc::MSG_TRUNC != 0 { info.len } else { info.copied }) as ssize_t
        }
        // The kernel filled in the msghdr.
        Ok(Got::Kernel(n)) => n,
        Err(e) => errno::fail(e),
    }
}

/// recvmsg on an accelerated TCP socket: the stream into the iovecs in order (a short read
/// ends it unless MSG_WAITALL), no address, no control data.
unsafe fn tcp_recvmsg(fd: c_int, slot: u32, m: &mut msghdr, iovs: &[libc::iovec], flags: c_int) -> ssize_t {
    if flags & libc::MSG_ERRQUEUE != 0 {
        return zerocopy_notification(slot, m);
    }
    m.msg_namelen = 0;
    m.msg_controllen = 0;
    // An urgent byte read says so (Linux's tcp_recv_urg); with no room for it, MSG_TRUNC too.
    m.msg_flags = if flags & libc::MSG_OOB != 0 { libc::MSG_OOB } else { 0 };
    if flags & libc::MSG_OOB != 0 && iovs.iter().all(|v| v.iov_len == 0) {
        let mut none = [0u8; 0];
        return match stream::receive(fd, slot, RecvInto::Buf(&mut none), flags) {
            Ok(n) => {
                m.msg_flags |= libc::MSG_TRUNC;
                n as ssize_t
            }
            Err(e) => errno::fail(e),
        };
    }
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
        let into = if flags & libc::MSG_TRUNC != 0 { RecvInto::Discard(v.iov_len) } else { RecvInto::Buf(buf) };
        match stream::receive(fd, slot, into, f) {
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

/// recvmsg(MSG_ERRQUEUE) on an accelerated connection: the zero-copy completions waiting, as
/// one IP_RECVERR (IPV6_RECVERR for an AF_INET6 socket) control message carrying Linux's
/// sock_extended_err; EAGAIN when there are none.
unsafe fn zerocopy_notification(slot: u32, m: &mut msghdr) -> ssize_t {
    m.msg_namelen = 0;
    m.msg_flags = 0;
    let Some((lo, hi)) = runtime::take_zerocopy_completions(slot) else {
        m.msg_controllen = 0;
        return errno::fail(libc::EAGAIN);
    };
    let err = libc::sock_extended_err {
        ee_errno: 0,
        ee_origin: SO_EE_ORIGIN_ZEROCOPY,
        ee_type: 0,
        ee_code: SO_EE_CODE_ZEROCOPY_COPIED,
        ee_pad: 0,
        ee_info: lo,
        ee_data: hi,
    };
    let (level, ty) = match runtime::slot_family(slot) {
        driver::inet::Family::V4 => (libc::SOL_IP, libc::IP_RECVERR),
        driver::inet::Family::V6 => (libc::SOL_IPV6, libc::IPV6_RECVERR),
    };
    let len = std::mem::size_of::<libc::sock_extended_err>();
    let space = libc::CMSG_SPACE(len as u32) as usize;
    #[allow(clippy::unnecessary_cast)] // msg_controllen's C type differs between libcs
    if m.msg_control.is_null() || (m.msg_controllen as usize) < space {
        m.msg_controllen = 0;
        m.msg_flags = libc::MSG_ERRQUEUE | libc::MSG_CTRUNC;
        return 0;
    }
    let c = m.msg_control as *mut libc::cmsghdr;
    (*c).cmsg_level = level;
    (*c).cmsg_type = ty;
    (*c).cmsg_len = libc::CMSG_LEN(len as u32) as _;
    std::ptr::copy_nonoverlapping((&err as *const libc::sock_extended_err).cast::<u8>(), libc::CMSG_DATA(c), len);
    m.msg_controllen = space as _;
    m.msg_flags = libc::MSG_ERRQUEUE;
    0
}

/// linux/errqueue.h: a MSG_ZEROCOPY completion.
const SO_EE_ORIGIN_ZEROCOPY: u8 = 5;
/// linux/errqueue.h: the kernel copied a MSG_ZEROCOPY send's bytes.
const SO_EE_CODE_ZEROCOPY_COPIED: u8 = 1;

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
        if flags & MSG_EXA_WARM != 0 {
            return stream::ssize(stream::warm(slot, data));
        }
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
    let kernel = || real::sendto(fd, buf, len, flags, addr, alen);
    udp_transmit(fd, slot, Payload::Flat(data), flags, dst, &Default::default(), &kernel)
}

/// Exported by `intercept::traced` (which traces it under EXASOCK_TRACE).
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
                _ if flags & MSG_EXA_WARM != 0 && warm_skipped(fd) => len as ssize_t,
                _ => real::sendto(fd, buf, len, flags, addr, alen),
            }
        }
        _ if flags & MSG_EXA_WARM != 0 && warm_skipped(fd) => len as ssize_t,
        _ => real::sendto(fd, buf, len, flags, addr, alen),
    }
}

/// MSG_EXA_WARM on a descriptor exasock does not accelerate: when it is a socket, nothing is
/// sent and the original's warning is printed, every time (the caller returns the length, as
/// the original does); any other descriptor goes to the kernel, which gives its errno.
fn warm_skipped(fd: c_int) -> bool {
    let mut ty: c_int = 0;
    let mut len = std::mem::size_of::<c_int>() as socklen_t;
    // SAFETY: getsockopt into a local int.
    let socket =
        unsafe { real::getsockopt(fd, libc::SOL_SOCKET, libc::SO_TYPE, (&mut ty as *mut c_int).cast(), &mut len) == 0 };
    if socket {
        crate::log::warning!("sending MSG_EXA_WARM message on not accelerated socket (fd={fd}) - skipped");
    }
    socket
}

/// What a skipped warm sendmsg returns: the bytes its iovecs hold, or the kernel's errno for
/// bad ones.
unsafe fn warm_total(msg: *const msghdr) -> ssize_t {
    match iovecs(&*msg).and_then(|v| gathered_len(v, usize::MAX)) {
        Ok(total) => total as ssize_t,
        Err(e) => errno::fail(e),
    }
}

/// Exported by `intercept::traced` (which traces it under EXASOCK_TRACE).
pub unsafe extern "C" fn send(fd: c_int, buf: *const c_void, len: size_t, flags: c_int) -> ssize_t {
    match fdtable::get(fd) {
        FdState::Accel(slot) => accelerated_sendto(fd, slot, buf, len, flags, std::ptr::null(), 0),
        _ if flags & MSG_EXA_WARM != 0 && warm_skipped(fd) => len as ssize_t,
        _ => real::send(fd, buf, len, flags),
    }
}

/// Exported by `intercept::traced` (which traces it under EXASOCK_TRACE).
pub unsafe extern "C" fn write(fd: c_int, buf: *const c_void, len: size_t) -> ssize_t {
    match fdtable::get(fd) {
        FdState::Accel(slot) => accelerated_sendto(fd, slot, buf, len, 0, std::ptr::null(), 0),
        _ => real::write(fd, buf, len),
    }
}

/// Exported by `intercept::traced` (which traces it under EXASOCK_TRACE).
pub unsafe extern "C" fn sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t {
    let slot = match fdtable::get(fd) {
        FdState::Accel(slot) => slot,
        FdState::UdpCandidate if crate::init::ready() && !msg.is_null() && !fdtable::hinted_bound(fd) => {
            match runtime::read_sockaddr((*msg).msg_name as *const sockaddr, (*msg).msg_namelen) {
                Some(dst) if runtime::auto_bind(fd, dst) => return sendmsg(fd, msg, flags),
                _ if flags & MSG_EXA_WARM != 0 && warm_skipped(fd) => return warm_total(msg),
                _ => return real::sendmsg(fd, msg, flags),
            }
        }
        _ if flags & MSG_EXA_WARM != 0 && !msg.is_null() && warm_skipped(fd) => return warm_total(msg),
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
    if !fdtable::is_tcp(fd) {
        return udp_sendmsg(fd, slot, msg, iovs, flags);
    }
    if iovs.len() <= 1 {
        let (p, n) = iovs.first().map_or((std::ptr::null(), 0), |v| (v.iov_base as *const c_void, v.iov_len));
        return accelerated_sendto(fd, slot, p, n, flags, m.msg_name as *const sockaddr, m.msg_namelen);
    }
    let total = match gathered_len(iovs, usize::MAX) {
        Ok(t) => t,
        Err(e) => return errno::fail(e),
    };
    if flags & MSG_EXA_WARM != 0 {
        // The segment a send starts with: its first bytes come from the first buffer.
        let first = iovs.iter().find(|v| v.iov_len > 0);
        let data = first.map_or(&[][..], |v| std::slice::from_raw_parts(v.iov_base.cast::<u8>(), v.iov_len));
        return stream::ssize(stream::warm(slot, data).map(|_| total));
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
    sent as ssize_t
}

/// sendmsg on an accelerated UDP socket: the destination, the buffers (checked as the kernel
/// checks them; several are gathered under the lock) and the control messages (IP_PKTINFO's
/// source and interface, IP_TOS, IP_TTL for this datagram). What the stack cannot do goes
/// through the kernel socket with the whole msghdr.
unsafe fn udp_sendmsg(fd: c_int, slot: u32, msg: *const msghdr, iovs: &[libc::iovec], flags: c_int) -> ssize_t {
    let m = &*msg;
    let dst = match destination(m.msg_name as *const sockaddr, m.msg_namelen) {
        Ok(d) => d,
        Err(e) => return errno::fail(e),
    };
    let control = match read_control(m) {
        Ok(c) if c.kernel_only => return real::sendmsg(fd, msg, flags),
        Ok(c) => c.stack,
        Err(e) => return errno::fail(e),
    };
    let kernel = || real::sendmsg(fd, msg, flags);
    if let [one] = iovs {
        let (buf, len) = (one.iov_base as *const c_void, one.iov_len);
        if (buf.is_null() && len > 0) || !user_range_ok(buf, len) {
            return errno::fail(libc::EFAULT);
        }
        let data: &[u8] = if len == 0 { &[] } else { std::slice::from_raw_parts(buf.cast(), len) };
        return udp_transmit(fd, slot, Payload::Flat(data), flags, dst, &control, &kernel);
    }
    let total = match gathered_len(iovs, stack::MAX_UDP_PAYLOAD) {
        Ok(t) => t,
        Err(e) => return errno::fail(e),
    };
    udp_transmit(fd, slot, Payload::Gather(iovs, total), flags, dst, &control, &kernel)
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

/// Exported by `intercept::traced` (which traces it under EXASOCK_TRACE).
pub unsafe extern "C" fn readv(fd: c_int, iov: *const libc::iovec, n: c_int) -> ssize_t {
    if !fdtable::is_accelerated(fd) {
        return real::readv(fd, iov, n);
    }
    match iov_msghdr(iov, n) {
        Ok(mut m) => recvmsg(fd, &mut m, 0),
        Err(e) => errno::fail(e),
    }
}

/// Exported by `intercept::traced` (which traces it under EXASOCK_TRACE).
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

/// Exported by `intercept::traced` (which traces it under EXASOCK_TRACE).
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
    // The stack keeps the shutdown state (reads return 0, writes EPIPE, readiness follows);
    // calls sleeping on the socket look again.
    let r = runtime::with_tcp(slot, |stack, h, _| stack.tcp_shutdown(h, rd, wr));
    runtime::wake_sleepers();
    match r {
        Ok(()) => 0,
        Err(e) => errno::fail(e.errno()),
    }
}
