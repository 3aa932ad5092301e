//! The driver: binds the sans-IO stack to a `Port`, the kernel's routing and neighbour tables
//! and the clock. Everything here may make syscalls; nothing here knows a protocol's rules.

pub mod clock;
mod driver;
pub mod handover;
pub mod inet;
pub mod netlink;
mod transmit;

pub use driver::Driver;
pub use transmit::KernelPath;
