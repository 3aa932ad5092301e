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

/// The driver claims all three kinds of flow, counts claims per flow (the entry goes with the
/// last), and reports its liveness anchor among its internal descriptors (a UDP socket bound to
/// 127.0.0.1, close-on-exec), which the preload library protects and closes in a fork child.
#[test]
fn the_driver_claims_every_kind_of_flow_and_reports_its_anchor_as_internal() {
    use nic::steering::{Flow, Steering};
    let Some(_serial) = testbed::require() else { return };
    let topo = Topology::create().unwrap();
    let iface = topo.accel.iface.clone();
    let accel = topo.accel.ip;
    topo.in_ns(Side::Accel, move || {
        nic::control::attach(&iface).unwrap();
        let mut driver = Driver::open(&iface).unwrap();
        // The kernel sockets that hold the port, as an owner's do.
        let _udp = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 7700)).unwrap();
        let _tcp = std::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, 7700)).unwrap();
        let local = SocketAddrV4::new(accel, 7700);
        let flows = [
            Flow::udp(Ipv4Addr::UNSPECIFIED, 7700),
            Flow::tcp_listener(Ipv4Addr::UNSPECIFIED, 7700),
            Flow::tcp_connection(local, SocketAddrV4::new(Ipv4Addr::new(10, 99, 0, 2), 40000)),
            Flow::tcp_connection(local, SocketAddrV4::new(Ipv4Addr::new(10, 99, 0, 2), 40001)),
        ];
        for f in flows {
            driver.claim(f).unwrap();
        }
        driver.claim(flows[2]).unwrap();
        let inspect = Steering::open(&iface).unwrap();
        let listed = |s: &Steering| {
            let mut v: Vec<Flow> = s.entries().into_iter().map(|e| e.flow).collect();
            v.sort_by_key(|f| format!("{f}"));
            v
        };
        assert_eq!(listed(&inspect).len(), 4, "{:?}", inspect.entries());
        let tokens: std::collections::HashSet<u64> = inspect.entries().iter().map(|e| e.token).collect();
        assert_eq!(tokens.len(), 1, "one token per process");
        assert!(inspect.entries().iter().all(|e| e.owner_alive()));

        // Counted per flow: one connection claimed twice outlives one release.
        driver.release(flows[2]).unwrap();
        assert!(listed(&inspect).contains(&flows[2]));
        driver.release(flows[2]).unwrap();
        assert!(!listed(&inspect).contains(&flows[2]));
        driver.release(flows[1]).unwrap();
        assert!(listed(&inspect).contains(&flows[3]), "a connection went with its listener");

        // The anchor: among the internal descriptors, a UDP socket bound to loopback, CLOEXEC.
        let anchors: Vec<i32> = driver
            .internal_fds()
            .into_iter()
            .filter(|&fd| {
                let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
                let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
                // SAFETY: getsockname into a sockaddr_in we own.
                let r = unsafe { libc::getsockname(fd, &mut sa as *mut _ as *mut libc::sockaddr, &mut len) };
                r == 0
                    && i32::from(sa.sin_family) == libc::AF_INET
                    && u32::from_be(sa.sin_addr.s_addr) == u32::from(Ipv4Addr::LOCALHOST)
            })
            .collect();
        assert_eq!(anchors.len(), 1, "the anchor is not among the internal fds");
        // SAFETY: F_GETFD on a descriptor of ours.
        assert!(unsafe { libc::fcntl(anchors[0], libc::F_GETFD) } & libc::FD_CLOEXEC != 0);
        // Gone with the driver: every entry it left behind is a dead owner's.
        drop(driver);
        let mut again = Steering::open(&iface).unwrap();
        assert_eq!(again.swept_on_open(), 2, "entries of a dropped driver's anchor were not swept");
        assert!(again.sweep().is_empty() && again.entries().is_empty());
    })
    .unwrap();
}
