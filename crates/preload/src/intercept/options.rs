//! setsockopt, getsockopt and ioctl: SOL_EXASOCK here, SO_RCVBUF mirrored into the stack,
//! FIONREAD answered by the stack, the rest on the kernel socket (which also holds O_NONBLOCK,
//! so fcntl and FIONBIO need no interception).

use crate::fdtable::{self, FdState};
use crate::{errno, real, runtime};
use libc::{c_int, c_void, socklen_t};

/// SOL_EXASOCK of <exasock/socket.h>.
const SOL_EXASOCK: c_int = 0x200;
const SO_EXA_NO_ACCEL: c_int = 1;
const SO_EXA_MCAST_LISTEN: c_int = 2;
const SO_EXA_ATE: c_int = 3;

/// Whether `fd` is a socket (ENOTSOCK otherwise, as the original).
unsafe fn is_socket(fd: c_int) -> Result<(), c_int> {
    let mut ty: c_int = 0;
    let mut len = std::mem::size_of::<c_int>() as socklen_t;
    if real::getsockopt(fd, libc::SOL_SOCKET, libc::SO_TYPE, (&mut ty as *mut c_int).cast(), &mut len) == 0 {
        Ok(())
    } else {
        Err(errno::get())
    }
}

unsafe fn read_int(val: *const c_void, len: socklen_t) -> Result<c_int, c_int> {
    if val.is_null() || (len as usize) < std::mem::size_of::<c_int>() {
        return Err(libc::EINVAL);
    }
    Ok(*(val as *const c_int))
}

unsafe fn set_exasock(fd: c_int, name: c_int, val: *const c_void, len: socklen_t) -> Result<(), c_int> {
    is_socket(fd)?;
    match name {
        SO_EXA_NO_ACCEL => {
            let on = read_int(val, len)? != 0;
            match (fdtable::get(fd), on) {
                (FdState::Accel(_), true) | (FdState::Disabled, false) => Err(libc::EPERM),
                (_, true) => {
                    fdtable::set(fd, FdState::Disabled);
                    Ok(())
                }
                (FdState::UdpInactive, false) => {
                    fdtable::set(fd, FdState::UdpCandidate);
                    Ok(())
                }
                (FdState::TcpInactive, false) => {
                    fdtable::set(fd, FdState::TcpCandidate);
                    Ok(())
                }
                (_, false) => Ok(()),
            }
        }
        SO_EXA_MCAST_LISTEN => mcast_listen(fd, val, len),
        // The ATE comes with TCP.
        SO_EXA_ATE => Err(libc::EOPNOTSUPP),
        _ => Err(libc::ENOPROTOOPT),
    }
}

/// The group and interface of an ip_mreq or ip_mreqn (ifindex 0 for an ip_mreq).
unsafe fn read_mreq(val: *const c_void, len: socklen_t) -> Option<(std::net::Ipv4Addr, std::net::Ipv4Addr, i32)> {
    if val.is_null() || (len as usize) < std::mem::size_of::<libc::ip_mreq>() {
        return None;
    }
    let mreq = &*(val as *const libc::ip_mreq);
    let group = std::net::Ipv4Addr::from(u32::from_be(mreq.imr_multiaddr.s_addr));
    let interface = std::net::Ipv4Addr::from(u32::from_be(mreq.imr_interface.s_addr));
    let ifindex = if len as usize >= std::mem::size_of::<libc::ip_mreqn>() {
        (*(val as *const libc::ip_mreqn)).imr_ifindex
    } else {
        0
    };
    Some((group, interface, ifindex))
}

/// The group and interface index of a group_req or group_source_req (MCAST_JOIN_GROUP and the
/// other MCAST_* options), IPv4 groups only; the interface address is INADDR_ANY.
unsafe fn read_group_req(val: *const c_void, len: socklen_t) -> Option<(std::net::Ipv4Addr, std::net::Ipv4Addr, i32)> {
    if val.is_null() || (len as usize) < std::mem::size_of::<libc::group_req>() {
        return None;
    }
    let gr = std::ptr::read_unaligned(val as *const libc::group_req);
    if i32::from(gr.gr_group.ss_family) != libc::AF_INET {
        return None;
    }
    let sin = std::ptr::read_unaligned((&gr.gr_group as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>());
    let group = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
    Some((group, std::net::Ipv4Addr::UNSPECIFIED, gr.gr_interface as i32))
}

/// SO_EXA_MCAST_LISTEN: receive a group arriving on the attached interface (INADDR_ANY and
/// ifindex 0: any attached one) with no IGMP join; the kernel socket joins nothing, so the
/// kernel drops the group before UDP and only the ring (whose device filter gets the group's
/// MAC) sees it. As the original: EINVAL for a non-group or an interface that is not attached,
/// EPERM for a socket that is not a datagram socket or whose acceleration is off, EOPNOTSUPP
/// when no interface is attached, the socket joined a group on an interface that is not, or
/// it is bound to an address no group reaches. On a socket not yet bound the membership is
/// recorded and starts when the socket is bound (its port is the flow), as the original adds
/// it at bind; a duplicate gives EADDRINUSE.
unsafe fn mcast_listen(fd: c_int, val: *const c_void, len: socklen_t) -> Result<(), c_int> {
    // In the original's order: the socket, its other memberships, then the request.
    let mut ty: c_int = 0;
    let mut tlen = std::mem::size_of::<c_int>() as socklen_t;
    if real::getsockopt(fd, libc::SOL_SOCKET, libc::SO_TYPE, (&mut ty as *mut c_int).cast(), &mut tlen) != 0 {
        return Err(errno::get());
    }
    let state = fdtable::get(fd);
    if ty != libc::SOCK_DGRAM || matches!(state, FdState::Disabled | FdState::UdpInactive) || !crate::init::ready() {
        return Err(libc::EPERM);
    }
    if runtime::joined_elsewhere(fd) {
        // A group joined on an interface that is not attached arrives on the kernel socket
        // alone: the original refuses to mix them.
        return Err(libc::EOPNOTSUPP);
    }
    let Some((group, interface, ifindex)) = read_mreq(val, len) else { return Err(libc::EINVAL) };
    if !group.is_multicast() {
        return Err(libc::EINVAL);
    }
    let any = interface.is_unspecified() && ifindex == 0;
    if nic::steering::attached_interfaces().is_empty() {
        return Err(libc::EOPNOTSUPP);
    }
    if !any && !runtime::membership_on_attached(interface, ifindex) {
        return Err(libc::EINVAL);
    }
    if state == FdState::UdpCandidate {
        let Some(local) = runtime::kernel_local(fd) else { return Err(libc::EOPNOTSUPP) };
        if local.port() == 0 {
            // Not bound yet: the membership waits for the bind.
            return if runtime::pending_join(fd, group, true) { Ok(()) } else { Err(libc::EADDRINUSE) };
        }
        if !local.ip().is_unspecified() && *local.ip() != group {
            // Bound to a unicast address: no group would be delivered to it.
            return Err(libc::EOPNOTSUPP);
        }
        if runtime::accelerate_udp(fd, local, None).is_err() {
            return Err(libc::EOPNOTSUPP);
        }
        crate::epoll::promote(fd);
    }
    let FdState::Accel(slot) = fdtable::get(fd) else { return Err(libc::EPERM) };
    let mut guard = runtime::lock();
    let rt = guard.as_mut().ok_or(libc::EPERM)?;
    rt.membership(slot, group, true).map_err(|_| libc::EADDRINUSE)?;
    if let Some(s) = rt.slot(slot) {
        runtime::listening(s.inode, group, true);
    }
    Ok(())
}

/// Exported by `intercept::traced` (which traces it under EXASOCK_TRACE).
pub unsafe extern "C" fn setsockopt(fd: c_int, level: c_int, name: c_int, val: *const c_void, len: socklen_t) -> c_int {
    if level == SOL_EXASOCK {
        return match set_exasock(fd, name, val, len) {
            Ok(()) => 0,
            Err(e) => errno::fail(e),
        };
    }
    if (level, name) == (libc::IPPROTO_TCP, libc::TCP_CONGESTION) && fdtable::is_tcp(fd) && !stack_runs(val, len) {
        // The kernel may have it; the stack does not, and it is the stack that would run it.
        return errno::fail(libc::ENOENT);
    }
    let r = real::setsockopt(fd, level, name, val, len);
    if r != 0 && (level, name) == (libc::IPPROTO_IP, libc::IP_DROP_MEMBERSHIP) {
        // A group received with SO_EXA_MCAST_LISTEN: the kernel socket never joined it.
        let e = errno::get();
        if let (FdState::UdpCandidate, Some((group, _, _))) = (fdtable::get(fd), read_mreq(val, len)) {
            if runtime::pending_leave(fd, group, true) {
                return 0;
            }
        }
        if let (FdState::Accel(slot), Some((group, _, _))) = (fdtable::get(fd), read_mreq(val, len)) {
            if let Some(rt) = runtime::lock().as_mut() {
                let inode = rt.slot(slot).map(|s| s.inode).unwrap_or(0);
                if rt.is_member(slot, group)
                    && runtime::listening(inode, group, false)
                    && rt.membership(slot, group, false).is_ok()
                {
                    return 0;
                }
            }
            errno::set(e);
        }
    }
    if r == 0 && (level, name) == (libc::SOL_SOCKET, libc::SO_PEEK_OFF) && fdtable::is_tcp(fd) {
        if let (FdState::Accel(slot), Ok(v)) = (fdtable::get(fd), read_int(val, len)) {
            runtime::set_peek_off(slot, v);
        }
    }
    if r == 0
        && (level, name) == (libc::SOL_SOCKET, libc::SO_PRIORITY)
        && (fdtable::is_tcp(fd) || fdtable::get(fd) == FdState::TcpCandidate)
        && read_int(val, len).is_ok_and(|v| v != 0)
    {
        priority_not_applied(fd);
    }
    if r == 0 && fdtable::is_tcp(fd) {
        mirror_tcp_option(fd, level, name, val, len);
        if !fdtable::is_tcp_connection(fd) && runtime::is_inherited(level, name) {
            if let FdState::Accel(slot) = fdtable::get(fd) {
                runtime::note_inheritable_options(slot);
            }
        }
    }
    if r == 0 && fdtable::get(fd) == FdState::TcpCandidate {
        match (level, name) {
            (libc::SOL_SOCKET, libc::SO_RCVBUF | libc::SO_RCVBUFFORCE) => {
                fdtable::note_tcp_option(fd, fdtable::BUF_RCV)
            }
            (libc::SOL_SOCKET, libc::SO_SNDBUF | libc::SO_SNDBUFFORCE) => {
                fdtable::note_tcp_option(fd, fdtable::BUF_SND)
            }
            _ => {}
        }
        if runtime::is_inherited(level, name) {
            fdtable::note_tcp_option(fd, fdtable::INHERITABLE_SET);
        }
        if (level, name) == (libc::IPPROTO_TCP, libc::TCP_CONGESTION) {
            fdtable::note_tcp_option(fd, fdtable::CONGESTION_SET | fdtable::INHERITABLE_SET);
        }
    }
    // Only sockets that are or may become accelerated care (one load for every other fd).
    if r == 0 && level == libc::SOL_SOCKET && name == libc::SO_BINDTODEVICE && fdtable::get(fd) != FdState::Kernel {
        bind_to_device(fd, val, len);
    }
    if r == 0 && level == libc::IPPROTO_IP && (name == libc::IP_ADD_MEMBERSHIP || name == libc::IP_DROP_MEMBERSHIP) {
        if let Some(m) = read_mreq(val, len) {
            membership(fd, name == libc::IP_ADD_MEMBERSHIP, m);
        }
    }
    if r == 0 && level == libc::IPPROTO_IP && (name == libc::MCAST_JOIN_GROUP || name == libc::MCAST_LEAVE_GROUP) {
        if let Some(m) = read_group_req(val, len) {
            membership(fd, name == libc::MCAST_JOIN_GROUP, m);
        }
    }
    if r == 0
        && level == libc::IPPROTO_IP
        && matches!(
            name,
            libc::IP_ADD_SOURCE_MEMBERSHIP
                | libc::IP_DROP_SOURCE_MEMBERSHIP
                | libc::IP_BLOCK_SOURCE
                | libc::IP_UNBLOCK_SOURCE
                | libc::IP_DROP_MEMBERSHIP
        )
    {
        // ip_mreq and ip_mreq_source both start with the group and the interface's address.
        if let Some(m) = read_mreq(val, len.min(std::mem::size_of::<libc::ip_mreq>() as socklen_t)) {
            source_filter_changed(fd, m);
        }
    }
    if r == 0
        && level == libc::IPPROTO_IP
        && matches!(
            name,
            libc::MCAST_JOIN_SOURCE_GROUP
                | libc::MCAST_LEAVE_SOURCE_GROUP
                | libc::MCAST_BLOCK_SOURCE
                | libc::MCAST_UNBLOCK_SOURCE
                | libc::MCAST_LEAVE_GROUP
        )
    {
        if let Some(m) = read_group_req(val, len) {
            source_filter_changed(fd, m);
        }
    }
    if r == 0 && (runtime::is_udp_option(level, name) || runtime::Ancillary::is_option(level, name)) {
        // The stack follows the kernel socket's effective values.
        if let FdState::Accel(slot) = fdtable::get(fd) {
            if let Some(rt) = runtime::lock().as_mut() {
                rt.refresh_udp_options(slot, fd);
                rt.refresh_ancillary(slot, fd);
            }
        }
    }
    if r == 0 && level == libc::SOL_SOCKET && (name == libc::SO_RCVBUF || name == libc::SO_RCVBUFFORCE) {
        // The stack's queue takes the kernel's effective value (doubled, capped by rmem_max).
        if let (FdState::Accel(slot), Some(bytes)) = (fdtable::get(fd), runtime::kernel_rcvbuf(fd)) {
            if let Some(rt) = runtime::lock().as_mut() {
                if let Some(s) = rt.slot(slot) {
                    let _ = rt.driver.stack().udp_set_rcvbuf(s.handle, bytes);
                }
            }
        }
    }
    r
}

/// SO_PRIORITY sets the kernel's per-packet priority (qdisc class, VLAN PCP); the frames of an
/// accelerated connection leave through a ring whose priority is the ring socket's, so the
/// value is kept (getsockopt reads it back) but not applied: said once per process.
fn priority_not_applied(fd: c_int) {
    static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !SAID.swap(true, std::sync::atomic::Ordering::Relaxed) {
        crate::log::warning!(
            "SO_PRIORITY on fd {fd} is kept, but accelerated TCP segments leave with the ring's priority"
        );
    }
}

/// Whether the congestion control a TCP_CONGESTION value names is one the stack has.
unsafe fn stack_runs(val: *const c_void, len: socklen_t) -> bool {
    if val.is_null() || len == 0 {
        return true; // the kernel gives the errno
    }
    let bytes = std::slice::from_raw_parts(val as *const u8, (len as usize).min(16));
    let name = bytes.split(|b| *b == 0).next().unwrap_or(&[]);
    std::str::from_utf8(name).ok().and_then(stack::tcp::congestion::Algorithm::from_name).is_some()
}

/// SO_BINDTODEVICE: to the attached interface, a bound candidate is accelerated (as the
/// original); to any other device, the socket is left to the kernel for good, released from
/// the stack if it was accelerated (the kernel socket, bound to that device, serves it).
unsafe fn bind_to_device(fd: c_int, val: *const c_void, len: socklen_t) {
    if !crate::init::ready() || val.is_null() || len == 0 {
        return;
    }
    let bytes = std::slice::from_raw_parts(val as *const u8, len as usize);
    let name = bytes.split(|b| *b == 0).next().unwrap_or(&[]);
    if name.is_empty() {
        return;
    }
    let attached = nic::steering::attached_interfaces().iter().any(|i| i.as_bytes() == name);
    match (fdtable::get(fd), attached) {
        (FdState::UdpCandidate, true) => {
            if let Some(local) = runtime::kernel_local(fd).filter(|l| l.port() != 0 && !l.ip().is_multicast()) {
                if runtime::accelerate_udp(fd, local, None).is_ok() {
                    crate::epoll::promote(fd);
                }
            }
        }
        (FdState::Accel(slot), false) => {
            runtime::release(slot);
            fdtable::set(fd, FdState::Disabled);
        }
        (FdState::UdpCandidate | FdState::UdpInactive, false) => fdtable::set(fd, FdState::Disabled),
        _ => {}
    }
}

/// Mirrors a membership the kernel socket accepted into the stack. A socket bound to the group
/// itself (not accelerated at bind) turns accelerated when it joins on the attached interface;
/// one bound to INADDR_ANY already is.
unsafe fn membership(
    fd: c_int,
    join: bool,
    (group, interface, ifindex): (std::net::Ipv4Addr, std::net::Ipv4Addr, i32),
) {
    if !crate::init::ready() {
        return;
    }
    let state = fdtable::get(fd);
    // The interface the kernel joined on: the one named, else (INADDR_ANY, no index) the one
    // its route to the group leaves by, as Linux picks it. Only those arrive on our ring; a
    // group joined elsewhere reaches the kernel socket, which the receive path reads too.
    let attached = || {
        runtime::membership_on_attached(interface, ifindex)
            || (interface.is_unspecified()
                && ifindex == 0
                && runtime::routed_via_attached(std::net::SocketAddrV4::new(group, 0)))
    };
    let udp = matches!(state, FdState::UdpCandidate | FdState::Accel(_));
    if !join {
        if udp {
            runtime::joined_elsewhere_set(fd, group, false);
        }
        if state == FdState::UdpCandidate {
            runtime::pending_leave(fd, group, false);
        }
        if let FdState::Accel(slot) = state {
            if let Some(rt) = runtime::lock().as_mut() {
                if rt.is_member(slot, group) {
                    let _ = rt.membership(slot, group, false);
                }
            }
        }
        return;
    }
    if !udp {
        return;
    }
    if !attached() {
        // Joined on an interface that is not attached (SO_EXA_MCAST_LISTEN's EOPNOTSUPP).
        runtime::joined_elsewhere_set(fd, group, true);
        return;
    }
    if state == FdState::UdpCandidate {
        if runtime::kernel_local(fd).is_some_and(|l| l.port() == 0) {
            // Not bound yet: the stack takes the membership when the socket is accelerated.
            runtime::pending_join(fd, group, false);
            return;
        }
        if let Some(local) = runtime::kernel_local(fd).filter(|l| *l.ip() == group) {
            if runtime::accelerate_udp(fd, local, None).is_ok() {
                crate::epoll::promote(fd);
            }
        }
    }
    if let FdState::Accel(slot) = fdtable::get(fd) {
        if let Some(rt) = runtime::lock().as_mut() {
            let _ = rt.membership(slot, group, true);
        }
    }
}

/// A source filter of the socket changed (IP_ADD_SOURCE_MEMBERSHIP, IP_BLOCK_SOURCE and their
/// undoing, or the membership left): the kernel socket holds it (IP_MSFILTER reads it back),
/// the stack applies none, so while the group has one (include mode, or blocked sources) the
/// kernel socket alone gives the socket the group's datagrams, as ip_mc_sf_allow filters them.
unsafe fn source_filter_changed(fd: c_int, (group, interface, ifindex): (std::net::Ipv4Addr, std::net::Ipv4Addr, i32)) {
    let FdState::Accel(slot) = fdtable::get(fd) else { return };
    let e = errno::get();
    let (mode, sources) = if ifindex == 0 {
        // struct ip_msfilter with room for no source: group, interface, mode, count.
        let mut msf: [u32; 5] = [u32::from(group).to_be(), u32::from(interface).to_be(), 0, 0, 0];
        let mut mlen = std::mem::size_of_val(&msf) as socklen_t;
        match real::getsockopt(fd, libc::IPPROTO_IP, libc::IP_MSFILTER, msf.as_mut_ptr().cast(), &mut mlen) {
            0 => (msf[2], msf[3]),
            _ => (libc::MCAST_EXCLUDE as u32, 0),
        }
    } else {
        // struct group_filter with room for one source: the interface at 0, the group at 8,
        // mode and count at 136 and 140.
        let mut gf = [0u64; 34];
        let bytes = gf.as_mut_ptr().cast::<u8>();
        std::ptr::write_unaligned(bytes.cast::<u32>(), ifindex as u32);
        let mut sin: libc::sockaddr_in = std::mem::zeroed();
        sin.sin_family = libc::AF_INET as libc::sa_family_t;
        sin.sin_addr.s_addr = u32::from(group).to_be();
        std::ptr::write_unaligned(bytes.add(8).cast::<libc::sockaddr_in>(), sin);
        let mut glen = std::mem::size_of_val(&gf) as socklen_t;
        match real::getsockopt(fd, libc::IPPROTO_IP, libc::MCAST_MSFILTER, gf.as_mut_ptr().cast(), &mut glen) {
            0 => (
                std::ptr::read_unaligned(bytes.add(136).cast::<u32>()),
                std::ptr::read_unaligned(bytes.add(140).cast::<u32>()),
            ),
            _ => (libc::MCAST_EXCLUDE as u32, 0),
        }
    };
    errno::set(e);
    let filtered = mode == libc::MCAST_INCLUDE as u32 || sources > 0;
    if let Some(rt) = runtime::lock().as_mut() {
        rt.set_source_filtered(slot, group, filtered);
    }
}

/// Exported by `intercept::traced` (which traces it under EXASOCK_TRACE).
pub unsafe extern "C" fn getsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *mut c_void,
    len: *mut socklen_t,
) -> c_int {
    if level != SOL_EXASOCK {
        if level == libc::SOL_SOCKET && name == libc::SO_ERROR && fdtable::is_tcp(fd) {
            return tcp_so_error(fd, val, len);
        }
        let from_stack = matches!(
            (level, name),
            (libc::IPPROTO_TCP, libc::TCP_INFO | libc::TCP_MAXSEG)
                | (libc::SOL_SOCKET, libc::SO_SNDBUF | libc::SO_RCVBUF)
        );
        if from_stack && fdtable::is_tcp_connection(fd) {
            return tcp_stack_option(fd, level, name, val, len);
        }
        if matches!((level, name), (libc::IPPROTO_TCP, libc::TCP_CONGESTION) | (libc::SOL_SOCKET, libc::SO_PEEK_OFF))
            && fdtable::is_tcp(fd)
        {
            return tcp_socket_option(fd, name, val, len);
        }
        return real::getsockopt(fd, level, name, val, len);
    }
    if let Err(e) = is_socket(fd) {
        return errno::fail(e);
    }
    if name != SO_EXA_NO_ACCEL {
        return errno::fail(libc::ENOPROTOOPT);
    }
    if val.is_null() || len.is_null() || (*len as usize) < std::mem::size_of::<c_int>() {
        return errno::fail(libc::EINVAL);
    }
    let off = matches!(fdtable::get(fd), FdState::Disabled | FdState::UdpInactive | FdState::TcpInactive);
    *(val as *mut c_int) = c_int::from(off);
    *len = std::mem::size_of::<c_int>() as socklen_t;
    0
}

/// SO_ERROR of an accelerated TCP socket: the stack's pending error, cleared by the read.
unsafe fn tcp_so_error(fd: c_int, val: *mut c_void, len: *mut socklen_t) -> c_int {
    let FdState::Accel(slot) = fdtable::get(fd) else { return errno::fail(libc::EBADF) };
    if val.is_null() || len.is_null() {
        return errno::fail(libc::EFAULT);
    }
    let err = runtime::with_tcp(slot, |stack, h, _| stack.tcp_take_error(h)).ok().flatten().map_or(0, |e| e.errno());
    write_option(val, len, &err)
}

/// Copies an option's value out as getsockopt does (truncated to the caller's length, which
/// is set to what was written).
unsafe fn write_option<T>(val: *mut c_void, len: *mut socklen_t, value: &T) -> c_int {
    let n = (*len as usize).min(std::mem::size_of::<T>());
    std::ptr::copy_nonoverlapping((value as *const T).cast::<u8>(), val.cast::<u8>(), n);
    *len = n as socklen_t;
    0
}

/// Options of an accelerated connection that only the stack can answer (the kernel socket
/// behind the fd is a placeholder that knows nothing of it: CLOSE, MSS 536, its own buffer
/// sizes). TCP_INFO in struct tcp_info's units (times in µs, windows in bytes, the congestion
/// window and threshold in segments); TCP_MAXSEG the segment size, as Linux answers for a
/// connected socket; SO_SNDBUF and SO_RCVBUF the limits the stack's buffers grow to, reported
/// as Linux reports them (the doubled value).
unsafe fn tcp_stack_option(fd: c_int, level: c_int, name: c_int, val: *mut c_void, len: *mut socklen_t) -> c_int {
    let FdState::Accel(slot) = fdtable::get(fd) else { return errno::fail(libc::EBADF) };
    if val.is_null() || len.is_null() {
        return errno::fail(libc::EFAULT);
    }
    let answer =
        runtime::with_tcp(slot, |stack, h, _| Ok((stack.tcp_info(h)?, stack.tcp_options(h)?, stack.tcp_max_seg(h)?)));
    let Ok((i, o, max_seg)) = answer else { return errno::fail(libc::EBADF) };
    let int = |v: usize| v.min(c_int::MAX as usize) as c_int;
    match (level, name) {
        (libc::IPPROTO_TCP, libc::TCP_MAXSEG) => write_option(val, len, &(max_seg as c_int)),
        // The buffers in effect: the application's, or as autotuning grew them (sk_sndbuf and
        // sk_rcvbuf move the same way on Linux).
        (libc::SOL_SOCKET, libc::SO_SNDBUF) => write_option(val, len, &int(i.sndbuf.max(o.sndbuf))),
        (libc::SOL_SOCKET, libc::SO_RCVBUF) => write_option(val, len, &int(i.rcvbuf.max(o.rcvbuf))),
        _ => write_option(val, len, &linux_tcp_info(&i)),
    }
}

/// TCP_CONGESTION and SO_PEEK_OFF of an accelerated TCP socket (listener or connection): the
/// algorithm the stack runs (a name in 16 NUL-padded bytes, cut to the caller's length, as
/// Linux), and the peek offset the stack's reads keep moving (-1 when off).
unsafe fn tcp_socket_option(fd: c_int, name: c_int, val: *mut c_void, len: *mut socklen_t) -> c_int {
    let FdState::Accel(slot) = fdtable::get(fd) else { return errno::fail(libc::EBADF) };
    if val.is_null() || len.is_null() {
        return errno::fail(libc::EFAULT);
    }
    if name == libc::SO_PEEK_OFF {
        let off = runtime::peek_off(slot).map_or(-1, |o| o.min(c_int::MAX as usize) as c_int);
        return write_option(val, len, &off);
    }
    let Ok(algorithm) = runtime::with_tcp(slot, |stack, h, _| stack.tcp_congestion(h)) else {
        return errno::fail(libc::EBADF);
    };
    let mut padded = [0u8; 16];
    padded[..algorithm.len()].copy_from_slice(algorithm.as_bytes());
    write_option(val, len, &padded)
}

/// struct tcp_info from the stack's TcpInfo.
fn linux_tcp_info(i: &stack::tcp::TcpInfo) -> libc::tcp_info {
    // SAFETY: tcp_info is plain integers; all zeros is a valid value.
    let mut t: libc::tcp_info = unsafe { std::mem::zeroed() };
    t.tcpi_state = i.state.unwrap_or(stack::tcp::State::Closed).linux_number();
    let mss = i.snd_mss.max(1);
    let us = |d: std::time::Duration| d.as_micros().min(u128::from(u32::MAX)) as u32;
    // linux/tcp.h's TCPI_OPT_* (the libc crate has none).
    const TCPI_OPT_TIMESTAMPS: u8 = 1;
    const TCPI_OPT_SACK: u8 = 2;
    const TCPI_OPT_WSCALE: u8 = 4;
    t.tcpi_options = if i.timestamps { TCPI_OPT_TIMESTAMPS } else { 0 }
        | if i.sack { TCPI_OPT_SACK } else { 0 }
        | if i.snd_wscale > 0 || i.rcv_wscale > 0 { TCPI_OPT_WSCALE } else { 0 };
    t.tcpi_snd_rcv_wscale = (i.snd_wscale & 0xf) | (i.rcv_wscale & 0xf) << 4;
    t.tcpi_rto = us(i.rto);
    t.tcpi_ato = 40_000;
    t.tcpi_snd_mss = i.snd_mss;
    t.tcpi_rcv_mss = i.rcv_mss;
    t.tcpi_advmss = i.rcv_mss;
    t.tcpi_pmtu = i.pmtu;
    t.tcpi_unacked = i.unacked.div_ceil(mss);
    t.tcpi_rtt = us(i.srtt);
    t.tcpi_rttvar = us(i.rttvar);
    t.tcpi_snd_cwnd = i.cwnd / mss;
    t.tcpi_snd_ssthresh = if i.ssthresh == u32::MAX { 0x7fff_ffff } else { i.ssthresh / mss };
    t.tcpi_reordering = 3;
    let retransmitted = i.fast_retransmits + i.timeout_retransmits;
    t.tcpi_total_retrans = retransmitted.min(u64::from(u32::MAX)) as u32;
    t.tcpi_bytes_acked = i.bytes_acked;
    t.tcpi_bytes_received = i.bytes_received;
    t.tcpi_segs_out = i.segs_out as u32;
    t.tcpi_segs_in = i.segs_in as u32;
    t.tcpi_bytes_sent = i.bytes_sent + i.bytes_retransmitted;
    t.tcpi_bytes_retrans = i.bytes_retransmitted;
    t.tcpi_snd_wnd = i.snd_wnd;
    t.tcpi_rcv_wnd = i.rcv_wnd;
    t.tcpi_rcv_space = i.rcv_space;
    t.tcpi_rcv_rtt = us(i.rcv_rtt);
    t.tcpi_total_rto = i.timeouts.min(u64::from(u16::MAX)) as u16;
    t
}

/// After the kernel socket took a setsockopt: the stack follows what it changes (from the
/// kernel socket's effective value), and TCP_QUICKACK acts at once.
unsafe fn mirror_tcp_option(fd: c_int, level: c_int, name: c_int, val: *const c_void, len: socklen_t) {
    let FdState::Accel(slot) = fdtable::get(fd) else { return };
    let _ = runtime::with_tcp(slot, |stack, h, now| {
        if (level, name) == (libc::IPPROTO_TCP, libc::TCP_QUICKACK) {
            return match read_int(val, len) {
                Ok(v) if v != 0 => stack.tcp_quickack(h),
                _ => Ok(()),
            };
        }
        if (level, name) == (libc::IPPROTO_TCP, libc::TCP_CONGESTION) {
            return match runtime::kernel_congestion(fd) {
                Some(a) => stack.tcp_set_congestion(h, a.name(), now),
                None => Ok(()),
            };
        }
        let mut o = stack.tcp_options(h)?;
        let followed = if (level, name) == (libc::IPPROTO_TCP, libc::TCP_MAXSEG) {
            // The value given (the kernel reads back the segment size of a connected socket).
            read_int(val, len).is_ok_and(|v| o.set_max_seg(v).is_ok())
        } else if let (Some(flag), Ok(v)) = (runtime::boolean_option(&mut o, level, name), read_int(val, len)) {
            // On or off as given, which the kernel took: no getsockopt to read it back (nginx
            // sets and clears TCP_CORK around every response).
            *flag = v != 0;
            true
        } else {
            runtime::follow_kernel_option(fd, &mut o, stack.tcp_config(), level, name)
        };
        if !followed {
            return Ok(());
        }
        stack.tcp_set_options(h, o, now)
    });
}

/// ioctl is variadic in C; on x86-64 and aarch64 a fixed pointer-sized third argument is passed
/// the same way, so this signature is ABI-compatible for every request.
/// Exported by `intercept::traced` (which traces it under EXASOCK_TRACE).
pub unsafe extern "C" fn ioctl(fd: c_int, request: libc::c_ulong, arg: *mut c_void) -> c_int {
    let FdState::Accel(slot) = fdtable::get(fd) else { return real::ioctl(fd, request, arg) };
    let tcp = fdtable::is_tcp(fd);
    let answer = match request {
        // SIOCINQ is the same request.
        r if r == libc::FIONREAD as libc::c_ulong => Some(Queue::In),
        r if r == SIOCOUTQ && tcp => Some(Queue::Out),
        r if r == SIOCOUTQNSD && tcp => Some(Queue::Unsent),
        r if r == SIOCATMARK && tcp && fdtable::is_tcp_connection(fd) => Some(Queue::Mark),
        _ => None,
    };
    let Some(queue) = answer else { return real::ioctl(fd, request, arg) };
    if tcp && !fdtable::is_tcp_connection(fd) {
        // A listener has no queues (Linux: EINVAL).
        return errno::fail(libc::EINVAL);
    }
    if arg.is_null() {
        return errno::fail(libc::EFAULT);
    }
    let len = {
        let mut guard = runtime::lock();
        let Some(rt) = guard.as_mut() else { return errno::fail(libc::EBADF) };
        let Some(s) = rt.slot(slot) else { return errno::fail(libc::EBADF) };
        rt.poll();
        let stack = rt.driver.stack();
        match (tcp, queue) {
            // A stream's unread bytes; a datagram socket's next datagram (0 when none).
            (true, Queue::In) => stack.tcp_readable_len(s.handle).unwrap_or(0),
            (false, Queue::In) => stack.udp_next_len(s.handle).unwrap_or(0),
            // Bytes sent and not acknowledged, and those not sent yet.
            (_, Queue::Out) => stack.tcp_send_queued(s.handle).unwrap_or(0),
            // Those not sent yet.
            (_, Queue::Unsent) => stack.tcp_unsent(s.handle).unwrap_or(0),
            // Whether the next byte read is the urgent mark.
            (_, Queue::Mark) => usize::from(stack.tcp_at_mark(s.handle).unwrap_or(false)),
        }
    };
    *(arg as *mut c_int) = len.min(c_int::MAX as usize) as c_int;
    0
}

/// linux/sockios.h's SIOCOUTQ (TIOCOUTQ), SIOCOUTQNSD and SIOCATMARK.
const SIOCOUTQ: libc::c_ulong = 0x5411;
const SIOCOUTQNSD: libc::c_ulong = 0x894b;
const SIOCATMARK: libc::c_ulong = 0x8905;

/// Which queue (or mark) an ioctl asks about.
#[derive(Clone, Copy)]
enum Queue {
    In,
    Out,
    Unsent,
    Mark,
}
