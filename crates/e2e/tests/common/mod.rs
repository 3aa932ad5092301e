//! What the namespace tests of this crate share: an attached topology, a program started in
//! it that announces readiness, peer sockets, and a seeded PRNG for payloads.

#![allow(dead_code)] // each test binary uses its own subset

use std::net::{SocketAddrV4, UdpSocket};
use std::time::Duration;
use testbed::{NsChild, Side, Topology};

/// A topology whose accel interface is attached.
pub fn attached() -> Topology {
    let topo = Topology::create().unwrap();
    let iface = topo.accel.iface.clone();
    let report = topo
        .in_ns(Side::Accel, move || nic::control::attach_with(&iface, &nic::control::AttachOptions::for_tests()))
        .unwrap()
        .unwrap();
    assert!(report.newly_attached);
    topo
}

/// Starts `program IFACE PORT extra...` in the accel namespace and waits for its `ready` line.
pub fn start(topo: &Topology, program: &str, port: u16, extra: &[&str], timeout: Duration) -> NsChild {
    let port = port.to_string();
    let mut argv = vec![program, &topo.accel.iface, &port];
    argv.extend_from_slice(extra);
    let mut child = topo.spawn(Side::Accel, &argv, timeout).unwrap();
    child.wait_for_line("ready", timeout).unwrap();
    child
}

/// A peer UDP socket bound to `bind` and connected to the accel side's `port`.
pub fn peer_socket(topo: &Topology, bind: std::net::Ipv4Addr, port: u16) -> UdpSocket {
    let accel = topo.accel.ip;
    let s = topo.in_ns(Side::Peer, move || UdpSocket::bind((bind, 0))).unwrap().unwrap();
    s.connect(SocketAddrV4::new(accel, port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s
}

/// xorshift64: reproducible payloads and sizes (the stack's shared test generator).
#[allow(unused_imports)]
pub use stack::testing::Xorshift as XorShift;
