//! The compiled BPF object (bpf/exasock.bpf.c), the layouts it shares with Rust, and the loader
//! of each process's socket filter.

use crate::steering::state_dir;
use aya::programs::SocketFilter;
use aya::{EbpfLoader, Pod};
use std::io;

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
/// Name of the SOCKHASH of per-process anchors (pinned).
pub(crate) const ANCHORS_MAP: &str = "anchors";
/// Name of the map of multicast receivers, (group, pid, port) -> anchor token (pinned).
pub(crate) const MCAST_MAP: &str = "mcast";

/// `struct mcast_key` of bpf/flows.h (addresses and ports in network byte order).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct RawMcastKey {
    pub group: [u8; 4],
    pub pid: u32,
    pub port: [u8; 2],
    pub pad: [u8; 6],
}

const _: () = assert!(std::mem::size_of::<RawMcastKey>() == 16);
// SAFETY: plain-old-data C layout with explicit padding.
unsafe impl Pod for RawMcastKey {}

/// `struct flow_key` of bpf/flows.h: a flow the stack serves, in network byte order, named as
/// an arriving frame carries it (dst = local, src = remote; the remote half zero for UDP
/// sockets and TCP listeners).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct RawFlowKey {
    pub dst_ip: [u8; 4],
    pub src_ip: [u8; 4],
    pub dst_port: [u8; 2],
    pub src_port: [u8; 2],
    pub proto: u8,
    pub pad: [u8; 3],
}

/// `struct flow_value` of bpf/flows.h.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawFlowValue {
    pub owner_pid: u32,
    pub datapath: u8,
    pub shared: u8,
    pub cookies: u8,
    pub pad: u8,
    pub token: u64,
}

const _: () = assert!(std::mem::size_of::<RawFlowKey>() == 16);
const _: () = assert!(std::mem::size_of::<RawFlowValue>() == 16);

// SAFETY: plain-old-data C layouts with no padding holes (explicit pad fields).
unsafe impl Pod for RawFlowKey {}
// SAFETY: as above.
unsafe impl Pod for RawFlowValue {}

/// Loads this process's instance of the socket filter (owner = our pid) against the interface's
/// pinned flows map and attaches it to the socket. The socket then holds the program (and the
/// program its maps): the loader's descriptors are closed on return.
pub(crate) fn load_socket_filter(iface: &str, socket: std::os::fd::BorrowedFd<'_>) -> io::Result<()> {
    let dir = state_dir(iface)?;
    if !dir.join(FLOWS_MAP).exists() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{iface} is not accelerated in this network namespace: run `exasock-ctl attach {iface}`"),
        ));
    }
    let pid = std::process::id();
    let mut ebpf = EbpfLoader::new()
        .map_pin_path(&dir)
        .set_global(OWNER_GLOBAL, &pid, true)
        .load(object())
        .map_err(|e| io::Error::other(format!("cannot load the socket filter: {e:#}")))?;
    let prog: &mut SocketFilter = ebpf
        .program_mut(SOCKET_FILTER)
        .ok_or_else(|| io::Error::other("BPF object has no socket filter"))?
        .try_into()
        .map_err(|e| io::Error::other(format!("socket filter: {e}")))?;
    prog.load().map_err(|e| io::Error::other(format!("the kernel rejected the socket filter: {e}")))?;
    let link = prog.attach(socket).map_err(|e| io::Error::other(format!("cannot attach the socket filter: {e}")))?;
    // Taken out of the loader, the link is not detached when the loader goes (dropping the link
    // itself detaches nothing): the attachment lives as long as the socket.
    let _link = prog.take_link(link).map_err(|e| io::Error::other(format!("socket filter link: {e}")))?;
    drop(ebpf);
    Ok(())
}
