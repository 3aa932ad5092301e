//! EXASOCK_TRACE (the launcher's `--trace`): one strace-like line on stderr per intercepted call
//! on an accelerated or candidate socket, as the original's lib/socket/trace.c:
//! `[pid TID] sendto(3, "ping", 4, 0, {sa_family=AF_INET, sin_port=htons(7921),
//! sin_addr=inet_addr("10.0.0.2")}, 16) = 4`, errors as `= -1 EAGAIN (Resource temporarily
//! unavailable)`, buffers C-escaped to 32 bytes then `...`.
//!
//! Off (the default), a traced export costs one relaxed load of a flag set once by the
//! constructor. On, calls on plain kernel descriptors are still not traced. Lines are
//! formatted into a stack buffer and written with the real `write` (no allocation, no lock);
//! errno is kept as the call left it.

use crate::fdtable::{self, FdState};
use libc::{c_void, sockaddr, socklen_t};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

static ON: AtomicBool = AtomicBool::new(false);

/// Reads EXASOCK_TRACE (a presence test, as the original's).
pub fn load() {
    // SAFETY: a NUL-terminated literal; getenv allocates nothing.
    ON.store(unsafe { !libc::getenv(c"EXASOCK_TRACE".as_ptr()).is_null() }, Ordering::Relaxed);
}

/// Whether calls are traced: the one load the untraced path pays.
#[inline(always)]
pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Whether `fd` is a socket exasock serves or may serve (traced), not a plain kernel fd.
pub fn watched(fd: i32) -> bool {
    !matches!(fdtable::get_raw(fd), FdState::Kernel | FdState::Internal | FdState::Disabled)
}

/// Writes `[pid TID] <call> = <ret>` (with the errno's name and text when `ret` is -1).
pub fn emit(call: fmt::Arguments<'_>, ret: i64) {
    // SAFETY: errno is thread-local and ours to read; gettid has no preconditions.
    let (err, tid) = unsafe { (*libc::__errno_location(), libc::syscall(libc::SYS_gettid) as i32) };
    if ret == -1 {
        let mut text = [0u8; 128];
        // SAFETY: strerror_r (XSI) writes a NUL-terminated message into our buffer.
        unsafe { libc::strerror_r(err, text.as_mut_ptr().cast(), text.len()) };
        let end = text.iter().position(|b| *b == 0).unwrap_or(0);
        let text = std::str::from_utf8(&text[..end]).unwrap_or("?");
        crate::log::emit(format_args!("[pid {tid:>5}] {call} = -1 {} ({text})\n", ErrnoName(err)));
    } else {
        crate::log::emit(format_args!("[pid {tid:>5}] {call} = {ret}\n"));
    }
    // SAFETY: restoring the thread's errno as the call left it.
    unsafe { *libc::__errno_location() = err };
}

/// An errno's symbolic name.
struct ErrnoName(i32);

impl fmt::Display for ErrnoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            libc::EPERM => "EPERM",
            libc::ENOENT => "ENOENT",
            libc::EINTR => "EINTR",
            libc::EBADF => "EBADF",
            libc::EAGAIN => "EAGAIN",
            libc::ENOMEM => "ENOMEM",
            libc::EACCES => "EACCES",
            libc::EFAULT => "EFAULT",
            libc::EINVAL => "EINVAL",
            libc::EPIPE => "EPIPE",
            libc::ENOTSOCK => "ENOTSOCK",
            libc::EMSGSIZE => "EMSGSIZE",
            libc::ENOPROTOOPT => "ENOPROTOOPT",
            libc::EOPNOTSUPP => "EOPNOTSUPP",
            libc::EADDRINUSE => "EADDRINUSE",
            libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
            libc::ENETUNREACH => "ENETUNREACH",
            libc::ECONNABORTED => "ECONNABORTED",
            libc::ECONNRESET => "ECONNRESET",
            libc::EISCONN => "EISCONN",
            libc::ENOTCONN => "ENOTCONN",
            libc::ETIMEDOUT => "ETIMEDOUT",
            libc::ECONNREFUSED => "ECONNREFUSED",
            libc::EHOSTUNREACH => "EHOSTUNREACH",
            libc::EALREADY => "EALREADY",
            libc::EINPROGRESS => "EINPROGRESS",
            libc::EDESTADDRREQ => "EDESTADDRREQ",
            n => return write!(f, "E{n}"),
        };
        f.write_str(name)
    }
}

/// A buffer of `len` bytes, C-escaped in quotes, at most 32 bytes then `...`.
pub struct Buf(pub *const c_void, pub isize);

impl fmt::Display for Buf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_null() {
            return f.write_str("NULL");
        }
        let len = self.1.max(0) as usize;
        // SAFETY: the caller's buffer holds `len` bytes (the call read or wrote them).
        let bytes = unsafe { std::slice::from_raw_parts(self.0.cast::<u8>(), len.min(32)) };
        f.write_str("\"")?;
        for b in bytes {
            match b {
                b'"' => f.write_str("\\\"")?,
                b'\\' => f.write_str("\\\\")?,
                b'\n' => f.write_str("\\n")?,
                b'\r' => f.write_str("\\r")?,
                b'\t' => f.write_str("\\t")?,
                0x20..=0x7e => write!(f, "{}", *b as char)?,
                _ => write!(f, "\\{b:o}")?,
            }
        }
        f.write_str("\"")?;
        if len > 32 {
            f.write_str("...")?;
        }
        Ok(())
    }
}

/// A socket address as strace prints it (`NULL`, AF_INET in full, others by family).
pub struct Addr(pub *const sockaddr, pub socklen_t);

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_null() {
            return f.write_str("NULL");
        }
        // SAFETY: the caller's address holds at least a family when non-null.
        let family = i32::from(unsafe { (*self.0).sa_family });
        if family == libc::AF_INET && self.1 as usize >= std::mem::size_of::<libc::sockaddr_in>() {
            // SAFETY: an AF_INET address of sockaddr_in's size.
            let sin = unsafe { &*self.0.cast::<libc::sockaddr_in>() };
            let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            return write!(
                f,
                "{{sa_family=AF_INET, sin_port=htons({}), sin_addr=inet_addr(\"{ip}\")}}",
                u16::from_be(sin.sin_port)
            );
        }
        let name = match family {
            libc::AF_UNSPEC => "AF_UNSPEC",
            libc::AF_INET6 => "AF_INET6",
            libc::AF_UNIX => "AF_UNIX",
            _ => return write!(f, "{{sa_family={family}}}"),
        };
        write!(f, "{{sa_family={name}, ...}}")
    }
}

/// A socket() domain and type, by name where common.
pub struct SocketArgs(pub i32, pub i32, pub i32);

impl fmt::Display for SocketArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            libc::AF_INET => f.write_str("AF_INET")?,
            libc::AF_INET6 => f.write_str("AF_INET6")?,
            d => write!(f, "{d}")?,
        }
        f.write_str(", ")?;
        match self.1 & 0xf {
            libc::SOCK_DGRAM => f.write_str("SOCK_DGRAM")?,
            libc::SOCK_STREAM => f.write_str("SOCK_STREAM")?,
            t => write!(f, "{t}")?,
        }
        if self.1 & libc::SOCK_NONBLOCK != 0 {
            f.write_str("|SOCK_NONBLOCK")?;
        }
        if self.1 & libc::SOCK_CLOEXEC != 0 {
            f.write_str("|SOCK_CLOEXEC")?;
        }
        match self.2 {
            libc::IPPROTO_UDP => f.write_str(", IPPROTO_UDP"),
            libc::IPPROTO_TCP => f.write_str(", IPPROTO_TCP"),
            p => write!(f, ", {p}"),
        }
    }
}

/// A socket option level, by name where common.
pub struct Level(pub i32);

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            libc::SOL_SOCKET => f.write_str("SOL_SOCKET"),
            libc::IPPROTO_IP => f.write_str("SOL_IP"),
            libc::IPPROTO_TCP => f.write_str("SOL_TCP"),
            libc::IPPROTO_UDP => f.write_str("SOL_UDP"),
            l => write!(f, "{l}"),
        }
    }
}

/// An option value: an int as `[N]`, anything else as its length.
pub struct OptVal(pub *const c_void, pub socklen_t);

impl fmt::Display for OptVal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_null() {
            return f.write_str("NULL");
        }
        if self.1 as usize == std::mem::size_of::<i32>() {
            // SAFETY: the caller's value holds an int.
            return write!(f, "[{}]", unsafe { self.0.cast::<i32>().read_unaligned() });
        }
        write!(f, "{:p}", self.0)
    }
}
