//! libexasock_preload.so: moves an unmodified program's sockets onto the user-space stack.
//!
//! Loaded with LD_PRELOAD (by the `exasock` launcher), it exports the socket functions of libc.
//! Each export is a thin shim (`intercept/`): one look at the fd table; a descriptor that is not
//! accelerated goes straight to the real libc function with no lock, no allocation and no
//! logging. Accelerated descriptors are served by the runtime (`runtime.rs`): one driver and
//! stack for the attached interface, created with the first accelerated socket. This layer maps
//! POSIX semantics onto the stack and owns no protocol logic.
//!
//! State of this first cut: UDP sockets are accelerated on bind or connect (socket, bind,
//! connect, close, dup2/dup3, recv*/read/readv/recvmmsg, send*/write/writev/sendmmsg, poll, select,
//! epoll, ioctl FIONREAD, SOL_EXASOCK options, the extension API). Send auto-bind, multicast,
//! timestamps, fork and signals are not handled yet: see the open issues.

pub mod config;
mod epoll;
mod errno;
pub mod fdtable;
mod init;
mod intercept;
mod log;
pub mod real;
mod runtime;
mod signals;
