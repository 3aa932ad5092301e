//! Socket I/O on netlink sockets.

use super::*;

pub(super) fn kernel_addr() -> libc::sockaddr_nl {
    // SAFETY: sockaddr_nl is plain old data; all zeroes is valid (pid 0 = the kernel, no groups).
    let mut addr: libc::sockaddr_nl = unsafe { zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    addr
}

/// A bound NETLINK_ROUTE socket, close-on-exec, with extra `type` flags.
pub(super) fn open_socket(extra: libc::c_int) -> io::Result<OwnedFd> {
    open_socket_of(libc::NETLINK_ROUTE, extra)
}

/// A bound netlink socket of `protocol`, close-on-exec, with extra `type` flags.
pub(super) fn open_socket_of(protocol: libc::c_int, extra: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let raw = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC | extra, protocol) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    let fd = nic::fdplace::place(unsafe { OwnedFd::from_raw_fd(raw) })?;
    // Binding to pid 0 lets the kernel choose a unique port id.
    let addr = kernel_addr();
    // SAFETY: `addr` is a valid sockaddr_nl and the length passed is its size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_nl).cast(),
            size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

pub(super) fn set_opt<T>(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to a live T of the size passed.
    let rc = unsafe {
        libc::setsockopt(fd.as_raw_fd(), level, name, (value as *const T).cast(), size_of::<T>() as libc::socklen_t)
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

pub(super) fn set_int_opt(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    set_opt(fd, level, name, &value)
}

pub(super) fn send_to_kernel(fd: RawFd, msg: &[u8]) -> io::Result<()> {
    let addr = kernel_addr();
    loop {
        // SAFETY: `msg` and `addr` are valid for the lengths passed.
        let n = unsafe {
            libc::sendto(
                fd,
                msg.as_ptr().cast(),
                msg.len(),
                0,
                (&addr as *const libc::sockaddr_nl).cast(),
                size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n as usize != msg.len() {
            return Err(io::Error::other("short send on a netlink socket"));
        }
        return Ok(());
    }
}

/// Receives one datagram from the kernel into `buf`, first growing `buf` to the datagram's size
/// (so nothing is ever truncated), and returns its length. Datagrams from other senders than the
/// kernel are dropped. EAGAIN surfaces as `WouldBlock`, ENOBUFS (overrun) as itself.
pub(super) fn recv_datagram(fd: RawFd, buf: &mut Vec<u8>) -> io::Result<usize> {
    loop {
        // SAFETY: a zero-length peek writes nothing; MSG_TRUNC makes it return the full length.
        let size = unsafe { libc::recv(fd, std::ptr::null_mut(), 0, libc::MSG_PEEK | libc::MSG_TRUNC) };
        if size < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if size as usize > buf.len() {
            buf.resize(size as usize, 0);
        }
        // SAFETY: sockaddr_nl and msghdr are plain old data; all zeroes is valid.
        let mut from: libc::sockaddr_nl = unsafe { zeroed() };
        let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
        // SAFETY: as above.
        let mut hdr: libc::msghdr = unsafe { zeroed() };
        hdr.msg_name = (&mut from as *mut libc::sockaddr_nl).cast();
        hdr.msg_namelen = size_of::<libc::sockaddr_nl>() as libc::socklen_t;
        hdr.msg_iov = &mut iov;
        hdr.msg_iovlen = 1;
        // SAFETY: `hdr` points to `from` and to `iov`, which covers `buf`; all outlive the call.
        let n = unsafe { libc::recvmsg(fd, &mut hdr, 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if hdr.msg_flags & libc::MSG_TRUNC != 0 {
            return Err(bad("netlink datagram truncated"));
        }
        if from.nl_pid != 0 {
            continue; // not from the kernel
        }
        return Ok(n as usize);
    }
}
