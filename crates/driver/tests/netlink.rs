//! The rtnetlink module against a real kernel, in the two-namespace topology: what it returns is
//! compared with what `ip` shows.

use driver::netlink::{
    Address, Change, Monitor, Netlink, Route, NUD_PERMANENT, RTN_UNICAST, RT_SCOPE_LINK, RT_TABLE_MAIN,
};
use std::ffi::CString;
use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::{Duration, Instant};
use testbed::{ns_exec, Side, Topology};

const WAIT: Duration = Duration::from_secs(10);

/// Runs `ip ARGS` in the accel namespace.
fn ip_accel(topo: &Topology, args: &[&str]) -> String {
    let mut argv = vec!["ip"];
    argv.extend_from_slice(args);
    ns_exec(&topo.accel.netns, &argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"))
}

/// The accel interface's index, as `ip -o link` prints it.
fn accel_ifindex(topo: &Topology) -> u32 {
    let out = ip_accel(topo, &["-o", "link", "show", &topo.accel.iface]);
    let index = out.split(':').next().unwrap().trim().parse().unwrap();
    // The same through the kernel's name lookup inside the namespace.
    let name = CString::new(topo.accel.iface.clone()).unwrap();
    // SAFETY: `name` is a valid NUL-terminated string.
    let by_name = topo.in_ns(Side::Accel, || unsafe { libc::if_nametoindex(name.as_ptr()) }).unwrap();
    assert_eq!(by_name, index);
    index
}

fn netlink_in_accel(topo: &Topology) -> Netlink {
    topo.in_ns(Side::Accel, Netlink::open).unwrap().unwrap()
}

fn assert_cloexec(fd: RawFd) {
    // SAFETY: fcntl on an open descriptor.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    assert!(flags >= 0 && flags & libc::FD_CLOEXEC != 0, "{flags}");
}

fn ip_addr(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[test]
fn route_to_matches_ip_route_get() {
    let Some(_serial) = testbed::require() else { return };
    let topo = Topology::create().unwrap();
    let ifindex = accel_ifindex(&topo);
    let mut nl = netlink_in_accel(&topo);
    assert_cloexec(nl.as_fd().as_raw_fd());

    // Connected destination.
    let r = nl.route_to(topo.peer.ip).unwrap();
    let shown = ip_accel(&topo, &["route", "get", "10.99.0.2"]);
    assert!(shown.contains(&format!("dev {}", topo.accel.iface)) && shown.contains("src 10.99.0.1"), "{shown}");
    assert_eq!(r.dst, topo.peer.ip);
    assert_eq!(r.oif, ifindex);
    assert_eq!(r.gateway, None);
    assert_eq!(r.src, Some(topo.accel.ip));
    assert_eq!(r.table, RT_TABLE_MAIN);
    assert_eq!(r.kind, RTN_UNICAST);
    assert_eq!(r.mtu, None);

    // Through a gateway.
    ip_accel(&topo, &["route", "add", "10.200.0.0/16", "via", "10.99.0.2"]);
    let r = nl.route_to(ip_addr("10.200.1.1")).unwrap();
    let shown = ip_accel(&topo, &["route", "get", "10.200.1.1"]);
    assert!(shown.contains("via 10.99.0.2"), "{shown}");
    assert_eq!(r.gateway, Some(topo.peer.ip));
    assert_eq!(r.oif, ifindex);
    assert_eq!(r.src, Some(topo.accel.ip));

    // No route: the kernel's errno.
    let err = nl.route_to(ip_addr("192.0.2.1")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENETUNREACH), "{err}");
    assert!(ns_exec(&topo.accel.netns, &["ip", "route", "get", "192.0.2.1"]).is_err());

    // A route with an MTU.
    ip_accel(&topo, &["route", "add", "10.201.0.0/16", "via", "10.99.0.2", "mtu", "1400"]);
    let r = nl.route_to(ip_addr("10.201.3.4")).unwrap();
    let shown = ip_accel(&topo, &["route", "get", "10.201.3.4"]);
    assert!(shown.contains("mtu 1400"), "{shown}");
    assert_eq!(r.mtu, Some(1400));
    assert_eq!(r.gateway, Some(topo.peer.ip));

    // The socket keeps working after an error, request after request.
    for _ in 0..50 {
        assert_eq!(nl.route_to(topo.peer.ip).unwrap().oif, ifindex);
    }
}

#[test]
fn routes_dump_has_connected_and_added_routes() {
    let Some(_serial) = testbed::require() else { return };
    let topo = Topology::create().unwrap();
    let ifindex = accel_ifindex(&topo);
    ip_accel(&topo, &["route", "add", "10.200.0.0/16", "via", "10.99.0.2"]);
    ip_accel(&topo, &["route", "add", "10.201.0.0/16", "via", "10.99.0.2", "mtu", "1400", "metric", "7"]);
    let mut nl = netlink_in_accel(&topo);
    let routes = nl.routes().unwrap();

    let find = |prefix: &str, len: u8| -> Route {
        let prefix = ip_addr(prefix);
        *routes
            .iter()
            .find(|r| r.table == RT_TABLE_MAIN && r.prefix == prefix && r.prefix_len == len)
            .unwrap_or_else(|| panic!("{prefix}/{len} not in {routes:#?}"))
    };
    let connected = find("10.99.0.0", 24);
    assert_eq!((connected.gateway, connected.oif, connected.kind), (None, ifindex, RTN_UNICAST));
    assert_eq!(connected.prefsrc, Some(topo.accel.ip));
    assert_eq!(connected.scope, RT_SCOPE_LINK);
    let via = find("10.200.0.0", 16);
    assert_eq!((via.gateway, via.oif), (Some(topo.peer.ip), ifindex));
    let with_mtu = find("10.201.0.0", 16);
    assert_eq!((with_mtu.gateway, with_mtu.mtu, with_mtu.metric), (Some(topo.peer.ip), Some(1400), 7));
    // The local table is there too (the caller filters).
    assert!(routes.iter().any(|r| r.prefix == topo.accel.ip && r.kind == driver::netlink::RTN_LOCAL));

    // Every main-table route `ip` lists is in the dump.
    let shown = ip_accel(&topo, &["-4", "route", "show", "table", "main"]);
    let main = routes.iter().filter(|r| r.table == RT_TABLE_MAIN).count();
    assert_eq!(shown.lines().count(), main, "{shown}\n{routes:#?}");
}

#[test]
fn addresses_match_ip_addr() {
    let Some(_serial) = testbed::require() else { return };
    let topo = Topology::create().unwrap();
    let ifindex = accel_ifindex(&topo);
    let mut nl = netlink_in_accel(&topo);
    let addrs = nl.addresses(Some(ifindex)).unwrap();
    assert_eq!(addrs, vec![Address { ifindex, addr: topo.accel.ip, prefix_len: 24, broadcast: None }]);
    // All interfaces: loopback too.
    let all = nl.addresses(None).unwrap();
    assert!(all.iter().any(|a| a.addr == Ipv4Addr::LOCALHOST && a.prefix_len == 8), "{all:?}");
    assert!(all.contains(&addrs[0]));
    // With a broadcast address configured.
    ip_accel(&topo, &["addr", "add", "10.98.0.1/16", "brd", "+", "dev", &topo.accel.iface]);
    let addrs = nl.addresses(Some(ifindex)).unwrap();
    let second = addrs.iter().find(|a| a.addr == ip_addr("10.98.0.1")).unwrap();
    assert_eq!((second.prefix_len, second.broadcast), (16, Some(ip_addr("10.98.255.255"))));
}

#[test]
fn neighbour_learnt_after_a_send_has_the_peer_mac() {
    let Some(_serial) = testbed::require() else { return };
    let topo = Topology::create().unwrap();
    let ifindex = accel_ifindex(&topo);
    let mut nl = netlink_in_accel(&topo);

    let sock = topo.in_ns(Side::Accel, || UdpSocket::bind("10.99.0.1:0")).unwrap().unwrap();
    sock.send_to(b"hello", (topo.peer.ip, 9)).unwrap();
    let deadline = Instant::now() + WAIT;
    let n = loop {
        match nl.neighbour(topo.peer.ip, ifindex).unwrap() {
            Some(n) if n.is_usable() => break n,
            other => assert!(Instant::now() < deadline, "neighbour not resolved: {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(n.mac, Some(topo.peer.mac));
    assert_eq!((n.ip, n.ifindex), (topo.peer.ip, ifindex));

    // The dump agrees, and so does `ip neigh`.
    let all = nl.neighbours(Some(ifindex)).unwrap();
    assert!(all.iter().any(|x| x.ip == topo.peer.ip && x.mac == Some(topo.peer.mac)), "{all:?}");
    let shown = ip_accel(&topo, &["neigh", "show", "10.99.0.2"]);
    let mac = topo.peer.mac.map(|b| format!("{b:02x}")).join(":");
    assert!(shown.contains(&mac), "{shown}");
    // Any interface (ifindex 0) answers from a dump.
    assert_eq!(nl.neighbour(topo.peer.ip, 0).unwrap().map(|n| n.mac), Some(Some(topo.peer.mac)));
}

#[test]
fn permanent_and_unknown_neighbours() {
    let Some(_serial) = testbed::require() else { return };
    let topo = Topology::create().unwrap();
    let ifindex = accel_ifindex(&topo);
    let iface = topo.accel.iface.clone();
    ip_accel(&topo, &["neigh", "add", "10.99.0.77", "lladdr", "02:11:22:33:44:55", "dev", &iface, "nud", "permanent"]);
    let mut nl = netlink_in_accel(&topo);
    let n = nl.neighbour(ip_addr("10.99.0.77"), ifindex).unwrap().expect("permanent entry");
    assert_eq!(n.mac, Some([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]));
    assert_eq!(n.state, NUD_PERMANENT);
    assert!(n.is_usable());
    assert!(nl.neighbours(None).unwrap().contains(&n));
    assert!(nl.neighbours(Some(ifindex + 1000)).unwrap().is_empty());

    assert_eq!(nl.neighbour(ip_addr("10.99.0.123"), ifindex).unwrap(), None);
    assert_eq!(nl.neighbour(ip_addr("10.99.0.123"), 0).unwrap(), None);
    // An interface that does not exist is the kernel's error, not "no entry".
    assert_eq!(nl.neighbour(ip_addr("10.99.0.77"), 999_999).unwrap_err().raw_os_error(), Some(libc::ENODEV));
}

/// Drains `mon` until `want` holds for some change, or panics after a while.
fn wait_change(mon: &mut Monitor, what: &str, want: impl Fn(&Change) -> bool) -> Change {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        let start = seen.len();
        mon.drain(&mut seen).unwrap();
        if let Some(c) = seen[start..].iter().find(|c| want(c)) {
            return *c;
        }
        assert!(Instant::now() < deadline, "no {what} among {seen:#?}");
        let mut pfd = libc::pollfd { fd: mon.fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, 50) };
    }
}

#[test]
fn monitor_reports_neighbour_route_and_address_changes() {
    let Some(_serial) = testbed::require() else { return };
    let topo = Topology::create().unwrap();
    let ifindex = accel_ifindex(&topo);
    let iface = topo.accel.iface.clone();
    let mut mon = topo.in_ns(Side::Accel, Monitor::open).unwrap().unwrap();

    // Non-blocking and close-on-exec.
    assert_cloexec(mon.fd());
    // SAFETY: fcntl on an open descriptor.
    assert!(unsafe { libc::fcntl(mon.fd(), libc::F_GETFL) } & libc::O_NONBLOCK != 0);
    let mut none = Vec::new();
    assert_eq!(mon.drain(&mut none).unwrap(), 0, "{none:?}");

    let neigh_ip = ip_addr("10.99.0.78");
    let mac = [0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee];
    ip_accel(&topo, &["neigh", "add", "10.99.0.78", "lladdr", "02:aa:bb:cc:dd:ee", "dev", &iface, "nud", "permanent"]);
    let c = wait_change(&mut mon, "neighbour add", |c| matches!(c, Change::Neighbour(n) if n.ip == neigh_ip));
    let Change::Neighbour(n) = c else { unreachable!() };
    assert_eq!((n.mac, n.ifindex, n.state), (Some(mac), ifindex, NUD_PERMANENT));
    ip_accel(&topo, &["neigh", "del", "10.99.0.78", "dev", &iface]);
    wait_change(&mut mon, "neighbour del", |c| matches!(c, Change::NeighbourGone(n) if n.ip == neigh_ip));

    let prefix = ip_addr("10.202.0.0");
    ip_accel(&topo, &["route", "add", "10.202.0.0/16", "via", "10.99.0.2"]);
    let c = wait_change(&mut mon, "route add", |c| matches!(c, Change::Route(r) if r.prefix == prefix));
    let Change::Route(r) = c else { unreachable!() };
    assert_eq!((r.prefix_len, r.gateway, r.oif, r.table), (16, Some(topo.peer.ip), ifindex, RT_TABLE_MAIN));
    ip_accel(&topo, &["route", "del", "10.202.0.0/16"]);
    wait_change(
        &mut mon,
        "route del",
        |c| matches!(c, Change::RouteGone(r) if r.prefix == prefix && r.prefix_len == 16),
    );

    let addr = ip_addr("10.99.0.9");
    ip_accel(&topo, &["addr", "add", "10.99.0.9/24", "dev", &iface]);
    let c = wait_change(&mut mon, "address add", |c| matches!(c, Change::Address(a) if a.addr == addr));
    assert_eq!(c, Change::Address(Address { ifindex, addr, prefix_len: 24, broadcast: None }));
    ip_accel(&topo, &["addr", "del", "10.99.0.9/24", "dev", &iface]);
    wait_change(&mut mon, "address del", |c| matches!(c, Change::AddressGone(a) if a.addr == addr));
}

#[test]
fn monitor_overrun_is_reported_and_a_dump_recovers() {
    let Some(_serial) = testbed::require() else { return };
    let topo = Topology::create().unwrap();
    let mut mon = topo.in_ns(Side::Accel, Monitor::open).unwrap().unwrap();
    let mut nl = netlink_in_accel(&topo);

    // Far more route notifications than the monitor's queue holds, none drained meanwhile.
    const N: usize = 20_000;
    let batch: String =
        (0..N).map(|i| format!("route add 10.150.{}.{}/32 via 10.99.0.2\n", i / 256, i % 256)).collect();
    let path = std::env::temp_dir().join(format!("netlink-test-{}.batch", std::process::id()));
    std::fs::write(&path, batch).unwrap();
    let added = ip_accel(&topo, &["-batch", path.to_str().unwrap()]);
    std::fs::remove_file(&path).unwrap();
    assert!(added.trim().is_empty(), "{added}");

    let mut changes = Vec::new();
    mon.drain(&mut changes).unwrap();
    assert!(changes.contains(&Change::Overrun), "{} changes, no overrun", changes.len());
    assert_eq!(changes.iter().filter(|c| **c == Change::Overrun).count(), 1);

    // Re-dump: a many-datagram dump with every route.
    let routes = nl.routes().unwrap();
    let added = routes.iter().filter(|r| r.prefix_len == 32 && r.prefix.octets()[..2] == [10, 150]).count();
    assert_eq!(added, N);

    // The monitor still works after the overrun.
    while mon.drain(&mut changes).unwrap() > 0 {}
    ip_accel(&topo, &["route", "add", "10.203.0.0/16", "via", "10.99.0.2"]);
    let prefix = ip_addr("10.203.0.0");
    wait_change(&mut mon, "route add after overrun", |c| matches!(c, Change::Route(r) if r.prefix == prefix));
}
