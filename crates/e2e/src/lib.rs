//! Support for end-to-end tests and benchmarks: programs that drive a datapath with no stack,
//! to prove the steering and to measure the raw-frame floor the stack is held to.

pub mod raw;
pub mod stop;
pub mod tap_engine;
