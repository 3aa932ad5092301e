//! Every exported libc function, grouped by family. Each is a shim: fd table lookup, then the
//! real function or one call into the runtime.

pub(crate) mod data;
pub(crate) mod epoll;
mod ext;
pub(crate) mod lifecycle;
mod multiplex;
pub(crate) mod options;
mod process;
mod resolver;
mod signals;
mod stream;
mod traced;
pub(crate) mod transfer;
