//! Datapaths: how frames get between the stack and a network device.
//!
//! Every datapath sits behind one [`Port`] trait, so the stack and its driver never know whether
//! frames travel through an AF_PACKET ring, AF_XDP rings or, in tests, an in-memory link. A port
//! moves whole Ethernet frames and nothing else: it knows no IP, no TCP and no sockets.
//!
//! Per-packet rules every implementation keeps: receiving lends each frame to a callback and takes
//! the buffer back when the callback returns (frames are never parked), transmitting builds the
//! frame in place in a transmit slot, and the device is kicked once per batch by [`Port::flush`].
//!
//! Beside the ports: [`steering`] (claiming flows in the BPF `flows` map) and [`control`] (what
//! `exasock-ctl` does to an interface).

pub mod af_packet;
pub mod af_xdp;
mod bpf;
pub mod control;
mod ethtool;
pub mod fdplace;
mod gso_tx;
mod ifindex;
pub mod memory;
mod ownership;
mod port;
mod rng;
pub mod select;
pub mod steering;
mod sys;

pub use ifindex::if_index;
pub use port::{BuildGso, Port, PortStats, RxChecksum, RxFrame, TcpGso, TxError};
