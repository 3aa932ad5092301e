//! The sans-IO protocol engine.
//!
//! Deterministic protocol logic and nothing else: frames and the current time come in as
//! arguments, frames go out through a sink the caller provides, and readiness comes out as
//! events. No syscalls, no threads, no clock reads: the driver (crates/driver) owns the port,
//! the kernel tables and the clock, so every behaviour here can be tested in simulated time.

mod engine;
pub mod fuzzing;
mod hash;
pub mod iface;
pub mod ipv4;
pub mod neighbour;
pub mod route;
pub mod socket;
pub mod stats;
pub mod tcp;
pub mod testing;
pub mod time;
pub mod timer;
pub mod udp;

pub use engine::{
    BuildGso, Event, RxChecksum, Segmentation, Stack, StackConfig, Transmit, TxBusy, DEFAULT_RCVBUF, MAX_UDP_PAYLOAD,
};
pub use iface::{IfAddr, Interface};
pub use socket::SocketHandle;
pub use time::Instant;
