//! The compiled BPF object (bpf/exasock.bpf.c) and the layouts it shares with Rust.

use aya::Pod;

/// The BPF object, built by build.rs, aligned as aya requires.
pub(crate) fn object() -> &'static [u8] {
    #[repr(C, align(8))]
    struct Aligned<B: ?Sized>(B);
    static OBJECT: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/exasock.bpf.o")));
    &OBJECT.0
}

/// Name of the tc ingress program in the object.
pub(crate) const TC_PROGRAM: &str = "exasock_tc";
/// Name of the per-process socket filter in the object.
pub(crate) const SOCKET_FILTER: &str = "exasock_sock";
/// The global the socket filter compares owners against.
pub(crate) const OWNER_GLOBAL: &str = "OWNER_PID";
/// Name of the flows map (pinned).
pub(crate) const FLOWS_MAP: &str = "flows";
/// Name of the map of addresses wildcard flows answer for (pinned).
pub(crate) const LOCAL_ADDRS_MAP: &str = "local_addrs";

/// `struct flow_key` of bpf/flows.h: a flow the stack serves, in network byte order.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct RawFlowKey {
    pub dst_ip: [u8; 4],
    pub dst_port: [u8; 2],
    pub proto: u8,
    pub pad: u8,
}

/// `struct flow_value` of bpf/flows.h.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawFlowValue {
    pub owner_pid: u32,
    pub datapath: u8,
    pub shared: u8,
    pub pad: [u8; 2],
}

// SAFETY: plain-old-data C layouts with no padding holes (explicit pad fields).
unsafe impl Pod for RawFlowKey {}
// SAFETY: as above.
unsafe impl Pod for RawFlowValue {}
