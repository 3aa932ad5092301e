//! Packet scripts for TCP: segments from a simulated peer at simulated times, what the
//! application sees, and the segments the stack sends, with their times. One module per topic;
//! the script helper is tests/common (shared with the other TCP tests).

#[path = "../common/mod.rs"]
mod common;

mod acks;
mod autotune;
mod checks;
mod closing;
mod gso;
mod handshake;
mod icmp;
mod keepalive;
mod prebuilt;
mod recovery;
mod repair;
mod sack;
mod sack_recovery;
mod sending;
mod socket_api;
mod socket_options;
mod syncookies;
mod timestamps;
mod windows;
