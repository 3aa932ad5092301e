//! The TCP engine: segments and calls against a listener and two connections
//! (`stack::fuzzing::tcp_engine`). No panic, bounded memory, no storm of segments.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| stack::fuzzing::tcp_engine(data));
