//! The published state of exasock processes, as `exasock-stat` reads it: one shared-memory file
//! per process (`naming`), a header and fixed-size socket records (`layout`), each written under
//! a seqlock (`seqlock`) so that readers in other processes never stop or slow the writer.
//!
//! The preload library writes (raw syscalls, no allocation after the file is mapped: its I/O is
//! its own); the tools read through `reader` (std I/O, read-only mappings).

pub mod layout;
pub mod naming;
pub mod reader;
pub mod seqlock;

pub use layout::{Kind, ProcessInfo, Region, SocketRecord, State};
