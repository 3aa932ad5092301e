//! IPv4: receive checks, output, fragmentation and reassembly.

pub(crate) mod output;
pub mod reassembly;
