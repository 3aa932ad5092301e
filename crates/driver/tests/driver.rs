//! The driver on an attached interface in the namespace topology.

use driver::Driver;
use std::net::{Ipv4Addr, SocketAddrV4};
use testbed::{Side, Topology};

/// Datagrams to a neighbour the kernel has not resolved go to the kernel whole; the driver asks
/// the kernel's neighbour table about it once (the rtnetlink monitor reports the resolution),
/// not once per datagram under the runtime lock.
#[test]
fn an_unresolved_neighbour_is_asked_about_once_not_per_datagram() {
    let Some(_serial) = testbed::require() else { return };
    let topo = Topology::create().unwrap();
    let iface = topo.accel.iface.clone();
    let accel = topo.accel.ip;
    let queries = topo
        .in_ns(Side::Accel, move || {
            nic::control::attach(&iface).unwrap();
            let mut driver = Driver::open(&iface).unwrap();
            let h = driver.stack().udp_open();
            driver.stack().udp_bind(h, SocketAddrV4::new(accel, 7000)).unwrap();
            // Nobody answers ARP for this address: it stays unresolved.
            let nobody = SocketAddrV4::new(Ipv4Addr::new(10, 99, 0, 77), 9);
            for _ in 0..50 {
                driver.send(|stack, tx| stack.udp_send(h, b"x", Some(nobody), tx)).unwrap();
                driver.poll();
            }
            driver.neighbour_queries()
        })
        .unwrap();
    assert!(queries <= 1, "{queries} neighbour queries for 50 datagrams to one neighbour");
}
