//! The exports that EXASOCK_TRACE traces: each calls the untraced shim of its family
//! (lifecycle, data, options) and, only when tracing is on and the descriptor is an
//! accelerated or candidate socket (before or after the call), writes one line (crate::trace).
//! Tracing off, each costs one relaxed load before the shim.

use super::{data, lifecycle, options, transfer};
use crate::trace::{self, Addr, Buf, Level, OptVal, SocketArgs};
use libc::{c_int, c_void, msghdr, size_t, sockaddr, socklen_t, ssize_t};

/// Runs `call` on `fd`; traced with `line` when tracing is on and `fd` is watched before or
/// after it.
#[inline(always)]
unsafe fn traced<R: Copy>(fd: c_int, call: impl FnOnce() -> R, line: impl FnOnce(R)) -> R {
    if !trace::on() {
        return call();
    }
    let before = trace::watched(fd);
    let r = call();
    if before || trace::watched(fd) {
        line(r);
    }
    r
}

/// The length a receive filled (0 on error), for printing its buffer.
fn filled(r: isize) -> isize {
    r.max(0)
}

#[no_mangle]
pub unsafe extern "C" fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int {
    if !trace::on() {
        return lifecycle::socket(domain, ty, protocol);
    }
    let fd = lifecycle::socket(domain, ty, protocol);
    if trace::watched(fd) {
        trace::emit(format_args!("socket({})", SocketArgs(domain, ty, protocol)), fd.into());
    }
    fd
}

#[no_mangle]
pub unsafe extern "C" fn bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    traced(
        fd,
        || lifecycle::bind(fd, addr, len),
        |r| trace::emit(format_args!("bind({fd}, {}, {len})", Addr(addr, len)), r.into()),
    )
}

#[no_mangle]
pub unsafe extern "C" fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    traced(
        fd,
        || lifecycle::connect(fd, addr, len),
        |r| trace::emit(format_args!("connect({fd}, {}, {len})", Addr(addr, len)), r.into()),
    )
}

#[no_mangle]
pub unsafe extern "C" fn listen(fd: c_int, backlog: c_int) -> c_int {
    traced(fd, || lifecycle::listen(fd, backlog), |r| trace::emit(format_args!("listen({fd}, {backlog})"), r.into()))
}

#[no_mangle]
pub unsafe extern "C" fn accept(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    traced(
        fd,
        || lifecycle::accept(fd, addr, len),
        |r| {
            let l = if len.is_null() { 0 } else { *len };
            let a = if r >= 0 { Addr(addr, l) } else { Addr(std::ptr::null(), 0) };
            trace::emit(format_args!("accept({fd}, {a}, [{l}])"), r.into())
        },
    )
}

#[no_mangle]
pub unsafe extern "C" fn accept4(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t, flags: c_int) -> c_int {
    traced(
        fd,
        || lifecycle::accept4(fd, addr, len, flags),
        |r| {
            let l = if len.is_null() { 0 } else { *len };
            let a = if r >= 0 { Addr(addr, l) } else { Addr(std::ptr::null(), 0) };
            trace::emit(format_args!("accept4({fd}, {a}, [{l}], {flags})"), r.into())
        },
    )
}

#[no_mangle]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    traced(fd, || lifecycle::close(fd), |r| trace::emit(format_args!("close({fd})"), r.into()))
}

#[no_mangle]
pub unsafe extern "C" fn shutdown(fd: c_int, how: c_int) -> c_int {
    traced(fd, || data::shutdown(fd, how), |r| trace::emit(format_args!("shutdown({fd}, {how})"), r.into()))
}

#[no_mangle]
pub unsafe extern "C" fn recv(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int) -> ssize_t {
    traced(
        fd,
        || data::recv(fd, buf, len, flags),
        |r| trace::emit(format_args!("recv({fd}, {}, {len}, {flags})", Buf(buf, filled(r))), r as i64),
    )
}

#[no_mangle]
pub unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, len: size_t) -> ssize_t {
    traced(
        fd,
        || data::read(fd, buf, len),
        |r| trace::emit(format_args!("read({fd}, {}, {len})", Buf(buf, filled(r))), r as i64),
    )
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
    traced(
        fd,
        || data::recvfrom(fd, buf, len, flags, addr, alen),
        |r| {
            let l = if alen.is_null() { 0 } else { *alen };
            let a = if r >= 0 { Addr(addr, l) } else { Addr(std::ptr::null(), 0) };
            trace::emit(format_args!("recvfrom({fd}, {}, {len}, {flags}, {a}, [{l}])", Buf(buf, filled(r))), r as i64)
        },
    )
}

#[no_mangle]
pub unsafe extern "C" fn recvmsg(fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t {
    traced(
        fd,
        || data::recvmsg(fd, msg, flags),
        |r| trace::emit(format_args!("recvmsg({fd}, {}, {flags})", Msg(msg, r)), r as i64),
    )
}

#[no_mangle]
pub unsafe extern "C" fn send(fd: c_int, buf: *const c_void, len: size_t, flags: c_int) -> ssize_t {
    traced(
        fd,
        || data::send(fd, buf, len, flags),
        |r| trace::emit(format_args!("send({fd}, {}, {len}, {flags})", Buf(buf, len as isize)), r as i64),
    )
}

#[no_mangle]
pub unsafe extern "C" fn write(fd: c_int, buf: *const c_void, len: size_t) -> ssize_t {
    traced(
        fd,
        || data::write(fd, buf, len),
        |r| trace::emit(format_args!("write({fd}, {}, {len})", Buf(buf, len as isize)), r as i64),
    )
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
    traced(
        fd,
        || data::sendto(fd, buf, len, flags, addr, alen),
        |r| {
            trace::emit(
                format_args!("sendto({fd}, {}, {len}, {flags}, {}, {alen})", Buf(buf, len as isize), Addr(addr, alen)),
                r as i64,
            )
        },
    )
}

#[no_mangle]
pub unsafe extern "C" fn sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t {
    traced(
        fd,
        || data::sendmsg(fd, msg, flags),
        |r| trace::emit(format_args!("sendmsg({fd}, {}, {flags})", Msg(msg, -1)), r as i64),
    )
}

#[no_mangle]
pub unsafe extern "C" fn setsockopt(fd: c_int, level: c_int, name: c_int, val: *const c_void, len: socklen_t) -> c_int {
    traced(
        fd,
        || options::setsockopt(fd, level, name, val, len),
        |r| {
            trace::emit(
                format_args!("setsockopt({fd}, {}, {name}, {}, {len})", Level(level), OptVal(val, len)),
                r.into(),
            )
        },
    )
}

#[no_mangle]
pub unsafe extern "C" fn getsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *mut c_void,
    len: *mut socklen_t,
) -> c_int {
    traced(
        fd,
        || options::getsockopt(fd, level, name, val, len),
        |r| {
            let l = if len.is_null() { 0 } else { *len };
            let v = if r == 0 { OptVal(val, l) } else { OptVal(std::ptr::null(), 0) };
            trace::emit(format_args!("getsockopt({fd}, {}, {name}, {v}, [{l}])", Level(level)), r.into())
        },
    )
}

/// A msghdr as strace abbreviates it: its name, how many iovecs, and the first one's bytes
/// (`filled` of them after a receive; all of them, up to 32, for a send: -1).
struct Msg(*const msghdr, isize);

impl std::fmt::Display for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_null() {
            return f.write_str("NULL");
        }
        // SAFETY: the caller's msghdr, which the call read (or filled).
        let m = unsafe { &*self.0 };
        let first = if m.msg_iov.is_null() || m.msg_iovlen == 0 {
            Buf(std::ptr::null(), 0)
        } else {
            // SAFETY: msg_iovlen > 0: the first iovec exists.
            let v = unsafe { &*m.msg_iov };
            let n = if self.1 < 0 { v.iov_len as isize } else { self.1.min(v.iov_len as isize) };
            Buf(v.iov_base, n)
        };
        write!(
            f,
            "{{msg_name={}, msg_namelen={}, msg_iov=[{{iov_base={first}, ...}}], msg_iovlen={}}}",
            Addr(m.msg_name as *const sockaddr, m.msg_namelen),
            m.msg_namelen,
            m.msg_iovlen
        )
    }
}

#[no_mangle]
pub unsafe extern "C" fn readv(fd: c_int, iov: *const libc::iovec, n: c_int) -> ssize_t {
    traced(fd, || data::readv(fd, iov, n), |r| trace::emit(format_args!("readv({fd}, [{n} iovecs])"), r as i64))
}

#[no_mangle]
pub unsafe extern "C" fn writev(fd: c_int, iov: *const libc::iovec, n: c_int) -> ssize_t {
    traced(fd, || data::writev(fd, iov, n), |r| trace::emit(format_args!("writev({fd}, [{n} iovecs])"), r as i64))
}

#[no_mangle]
pub unsafe extern "C" fn getsockname(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    traced_name("getsockname", fd, addr, len, || lifecycle::getsockname(fd, addr, len))
}

#[no_mangle]
pub unsafe extern "C" fn getpeername(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    traced_name("getpeername", fd, addr, len, || lifecycle::getpeername(fd, addr, len))
}

/// getsockname and getpeername, traced with the address they gave.
unsafe fn traced_name(
    call_name: &str,
    fd: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
    call: impl FnOnce() -> c_int,
) -> c_int {
    traced(fd, call, |r| {
        let l = if len.is_null() { 0 } else { *len };
        let a = if r == 0 { Addr(addr, l) } else { Addr(std::ptr::null(), 0) };
        trace::emit(format_args!("{call_name}({fd}, {a}, [{l}])"), r.into())
    })
}

#[no_mangle]
pub unsafe extern "C" fn ioctl(fd: c_int, request: libc::c_ulong, arg: *mut c_void) -> c_int {
    traced(
        fd,
        || options::ioctl(fd, request, arg),
        |r| {
            // The requests answered with an int show it.
            let value = if r == 0 && !arg.is_null() { *(arg as *const c_int) } else { 0 };
            trace::emit(format_args!("ioctl({fd}, {request:#x}, [{value}])"), r.into())
        },
    )
}

/// fcntl is variadic in C: see `lifecycle::fcntl`.
#[no_mangle]
pub unsafe extern "C" fn fcntl(fd: c_int, cmd: c_int, arg: libc::c_ulong) -> c_int {
    traced(
        fd,
        || lifecycle::fcntl(fd, cmd, arg),
        |r| trace::emit(format_args!("fcntl({fd}, {cmd}, {arg:#x})"), r.into()),
    )
}

#[no_mangle]
pub unsafe extern "C" fn sendfile(out_fd: c_int, in_fd: c_int, offset: *mut libc::off_t, count: size_t) -> ssize_t {
    traced(
        out_fd,
        || transfer::sendfile(out_fd, in_fd, offset, count),
        |r| {
            let at = if offset.is_null() { -1 } else { *offset };
            trace::emit(format_args!("sendfile({out_fd}, {in_fd}, [{at}], {count})"), r as i64)
        },
    )
}
