//! TCP as a sans-IO engine: connections (`Connection`), listeners, and the pieces they are
//! built from. The stack (engine.rs, tcp/api.rs) owns them, demultiplexes segments to them and
//! turns what they emit into frames.

mod ack;
mod api;
pub mod assembler;
mod autotune;
pub mod config;
pub mod congestion;
pub mod connection;
mod defer;
mod demux;
pub mod error;
pub mod flags;
mod gso;
pub mod icmp;
pub mod info;
mod input;
mod inspect;
pub mod isn;
pub mod listener;
pub mod options;
mod output;
pub mod prebuilt;
mod rack;
mod receive;
mod recovery;
pub mod recv_buffer;
pub mod repair;
mod reuseport;
mod ring;
pub mod rtt;
mod sack;
pub mod send_buffer;
pub mod seq;
pub(crate) mod socket;
pub mod state;
pub mod syncookie;
pub(crate) mod tables;
mod timers;
pub mod timestamps;
mod transmit;
mod urgent;

pub use config::TcpConfig;
pub use connection::{Connection, Readiness};
pub use error::TcpError;
pub use flags::{RecvFlags, RecvInto, SendFlags};
pub use info::{ListenerInfo, TcpInfo};
pub use options::TcpSocketOptions;
pub use output::Outgoing;
pub use prebuilt::PrebuiltError;
pub use state::State;
