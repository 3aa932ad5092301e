//! libexasock_preload.so: moves an unmodified program's sockets onto the user-space stack.
//!
//! Loaded with LD_PRELOAD (by the `exasock` launcher), it exports the socket functions of libc.
//! Each export is a thin shim (`intercept/`): one look at the fd table; a descriptor that is not
//! accelerated goes straight to the real libc function with no lock, no allocation and no
//! logging. Accelerated descriptors are served by the runtime (`runtime.rs`): one driver and
//! stack for the attached interface, created with the first accelerated socket. This layer maps
//! POSIX semantics onto the stack and owns no protocol logic.
//!
//! Now: UDP sockets are accelerated on bind, connect, send auto-bind, group joins and
//! SO_BINDTODEVICE on the attached interface; every socket call, the multiplexers (poll, ppoll,
//! select, pselect, epoll), ioctl FIONREAD, SOL_EXASOCK, timestamps, the signal functions and
//! the resolver guard are interposed; TCP passes through to the kernel until the TCP engine is
//! wired in. dup* share one accelerated socket; fork hands the child's sockets to the kernel and
//! exec returns flows first (fork.rs); signal handlers never run while exasock holds a lock
//! (lock.rs).

pub mod config;
mod epoll;
mod errno;
mod fatal;
pub mod fdtable;
mod fork;
mod inherit;
mod init;
mod intercept;
mod lock;
mod log;
pub mod real;
mod runtime;
mod signals;
mod trace;
