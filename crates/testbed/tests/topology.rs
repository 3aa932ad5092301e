//! The namespace topology: real kernel traffic across it, and nothing left behind afterwards,
//! whether the test passes, panics midway or its process is killed.
//!
//! Every test here needs root; they run serially (`testbed::require`).

use std::io::{Read, Write};
use std::net::{SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::time::Duration;
use testbed::{ip, ns_exec, poll_until, Proto, Side, Topology};

const T: Duration = Duration::from_secs(20);

fn namespaces() -> String {
    ip(&["netns", "list"]).unwrap()
}

/// True when no live (non-zombie) process has this pid.
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed)).collect()
}

#[test]
fn kernel_udp_and_tcp_cross_the_topology() {
    let Some(_serial) = testbed::require() else {
        return;
    };
    let topo = Topology::create().unwrap();
    let (a, b) = (topo.accel.clone(), topo.peer.clone());
    assert_ne!(a.mac, [0; 6]);
    assert!(a.netns.len() <= 15 && a.iface.len() <= 15);

    // UDP: 100 datagrams from a peer socket to an accel socket, counted by the accel kernel.
    let before = topo.counter(Side::Accel, "UdpInDatagrams").unwrap();
    let rx = topo.in_ns(Side::Accel, || UdpSocket::bind(SocketAddrV4::new(a.ip, 5000))).unwrap().unwrap();
    let tx = topo.in_ns(Side::Peer, || UdpSocket::bind(SocketAddrV4::new(b.ip, 0))).unwrap().unwrap();
    rx.set_read_timeout(Some(T)).unwrap();
    let mut buf = [0u8; 2000];
    for n in 0..100u8 {
        let data = payload(n as usize * 14, n);
        tx.send_to(&data, SocketAddrV4::new(a.ip, 5000)).unwrap();
        let (len, from) = rx.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..len], &data[..]);
        assert_eq!(from, std::net::SocketAddr::V4(tx.local_addr().unwrap().to_string().parse().unwrap()));
    }
    assert_eq!(topo.counter(Side::Accel, "UdpInDatagrams").unwrap() - before, 100);

    // TCP: 1 MiB each way between kernel sockets in the two namespaces.
    let listener = topo.in_ns(Side::Accel, || TcpListener::bind(SocketAddrV4::new(a.ip, 5001))).unwrap().unwrap();
    topo.wait_listening(Side::Accel, Proto::Tcp, 5001, T).unwrap();
    let client = topo.in_ns(Side::Peer, || TcpStream::connect(SocketAddrV4::new(a.ip, 5001))).unwrap().unwrap();
    let (server, _) = listener.accept().unwrap();
    let up = payload(1 << 20, 1);
    let down = payload(1 << 20, 2);
    std::thread::scope(|s| {
        for (mut from, mut to, data) in [(&client, &server, &up), (&server, &client, &down)] {
            s.spawn(move || from.write_all(data).unwrap());
            s.spawn(move || {
                let mut got = vec![0u8; data.len()];
                to.read_exact(&mut got).unwrap();
                assert!(got == *data, "TCP stream corrupted");
            });
        }
    });

    // Real programs: socat over TCP and UDP, spawned with a hard timeout, readiness by `ss`.
    let server = topo.spawn(Side::Accel, &["socat", "-u", "TCP-LISTEN:6000,reuseaddr", "STDOUT"], T).unwrap();
    topo.wait_listening(Side::Accel, Proto::Tcp, 6000, T).unwrap();
    let mut client = topo.spawn(Side::Peer, &["socat", "-u", "STDIN", &format!("TCP:{}:6000", a.ip)], T).unwrap();
    client.stdin().unwrap().write_all(b"hello over tcp\n").unwrap();
    assert!(client.finish(T).unwrap().status.success());
    assert_eq!(server.finish(T).unwrap().stdout, b"hello over tcp\n");

    let server = topo.spawn(Side::Accel, &["socat", "-u", "UDP-RECVFROM:6001", "STDOUT"], T).unwrap();
    topo.wait_listening(Side::Accel, Proto::Udp, 6001, T).unwrap();
    topo.run(Side::Peer, &["sh", "-c", &format!("printf 'hello over udp' | socat -u STDIN UDP:{}:6001", a.ip)], T)
        .unwrap();
    assert_eq!(server.finish(T).unwrap().stdout, b"hello over udp");

    drop(topo);
    let list = namespaces();
    assert!(!list.contains(&a.netns) && !list.contains(&b.netns), "namespaces left: {list}");
}

#[test]
fn spawned_programs_die_at_their_hard_timeout() {
    let Some(_serial) = testbed::require() else {
        return;
    };
    let topo = Topology::create().unwrap();
    let mut child = topo.spawn(Side::Peer, &["sleep", "300"], Duration::from_secs(1)).unwrap();
    poll_until(Duration::from_secs(10), "sleep killed by its timeout", || Ok(child.try_wait()?.is_some())).unwrap();
    let err = topo.spawn(Side::Peer, &["sleep", "300"], T).unwrap().finish(Duration::from_millis(200)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    let err = topo.wait_listening(Side::Accel, Proto::Udp, 7, Duration::from_millis(100)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    let err = topo.run(Side::Peer, &["false"], T).unwrap_err();
    assert!(err.to_string().contains("exited with"), "{err}");
}

#[test]
fn a_test_that_fails_midway_leaves_nothing_behind() {
    let Some(_serial) = testbed::require() else {
        return;
    };
    let (tx, rx) = std::sync::mpsc::channel();
    // The "test" runs on its own thread and panics with the topology up and programs running in
    // both namespaces, one of them started behind the helper's back.
    let failed = std::thread::spawn(move || {
        let topo = Topology::create().unwrap();
        let tracked = topo.spawn(Side::Accel, &["sleep", "300"], T).unwrap();
        let untracked = Command::new("ip")
            .args(["netns", "exec", &topo.peer.netns, "sleep", "300"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        poll_until(T, "sleep in the peer namespace", || Ok(!ip(&["netns", "pids", &topo.peer.netns])?.is_empty()))
            .unwrap();
        let in_ns: Vec<u32> = [&topo.accel.netns, &topo.peer.netns]
            .iter()
            .flat_map(|ns| ip(&["netns", "pids", ns]).unwrap().lines().map(|l| l.parse().unwrap()).collect::<Vec<_>>())
            .collect();
        tx.send((topo.accel.netns.clone(), topo.peer.netns.clone(), tracked.pid(), untracked.id(), in_ns)).unwrap();
        std::mem::forget(tracked);
        std::mem::forget(untracked);
        panic!("failing on purpose with the topology up");
    })
    .join();
    assert!(failed.is_err(), "the inner test was meant to fail");
    let (ns_a, ns_b, tracked, untracked, in_ns) = rx.recv().unwrap();
    assert!(in_ns.len() >= 2, "expected programs in both namespaces, saw {in_ns:?}");
    let list = namespaces();
    assert!(!list.contains(&ns_a) && !list.contains(&ns_b), "namespaces left: {list}");
    for pid in in_ns.iter().copied().chain([tracked, untracked]) {
        assert!(gone(pid), "process {pid} survived the failed test");
    }
    assert!(ip(&["link", "show", &ns_a]).is_err(), "veth end left in the root namespace");
}

#[test]
fn sweep_removes_leftovers_of_a_killed_run() {
    let Some(_serial) = testbed::require() else {
        return;
    };
    let ours = Topology::create().unwrap();
    // A shell-side run whose owner is SIGKILLed: no destructor runs, so the namespaces and the
    // program inside them stay behind until a sweep.
    let mut owner = Command::new(env!("CARGO_BIN_EXE_exasock-testbed"))
        .args(["run", "--", "sh", "-c", "exec ip netns exec $EXA_NS_PEER sleep 600"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let prefix = format!("xs{}-", owner.id());
    let ns_b = format!("{prefix}0b");
    // Setup runs short-lived tools in the namespace too: wait for the sleep itself.
    let sleeping =
        || -> Option<u32> {
            ip(&["netns", "pids", &ns_b]).ok()?.lines().filter_map(|l| l.trim().parse().ok()).find(|pid: &u32| {
                std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
            })
        };
    poll_until(T, "the child's sleep inside its namespace", || Ok(sleeping().is_some())).unwrap();
    let sleeper = sleeping().unwrap();
    owner.kill().unwrap();
    owner.wait().unwrap();
    assert!(namespaces().contains(&ns_b), "a killed owner cannot clean up");
    assert!(!gone(sleeper));

    let report = testbed::sweep();
    assert!(report.namespaces.contains(&ns_b), "sweep removed {:?}", report.namespaces);
    let list = namespaces();
    assert!(!list.contains(&prefix), "leftovers after sweep: {list}");
    assert!(gone(sleeper), "the leftover program survived the sweep");
    assert!(list.contains(&ours.accel.netns), "sweep removed a live owner's topology");
}

#[test]
fn a_tap_host_delivers_the_kernels_frames_to_the_device_and_takes_ours_and_leaves_nothing() {
    let Some(_serial) = testbed::require() else { return };
    let host = testbed::tap::TapHost::create(&[("net.ipv4.tcp_sack", "0")], 1500).unwrap();
    let netns = host.netns.clone();
    let tap = host.open().unwrap();
    assert_eq!(ns_exec(&netns, &["sysctl", "-n", "net.ipv4.tcp_sack"]).unwrap().trim(), "0");
    // The kernel pings the engine's address: the echo request comes out of the device, to the
    // engine's MAC (no ARP: the neighbour entry is permanent).
    let engine = host.engine_ip.to_string();
    let ping = host.spawn(&["ping", "-c", "1", "-W", "2", &engine], Duration::from_secs(5)).unwrap();
    let mut frame = [0u8; 2048];
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    let request = loop {
        // SAFETY: reading into our buffer from our non-blocking descriptor.
        let n = unsafe { libc::read(tap.as_raw_fd(), frame.as_mut_ptr().cast(), frame.len()) };
        if n > 0 && frame[12..14] == [0x08, 0x00] && frame[23] == 1 {
            break frame[..n as usize].to_vec();
        }
        assert!(std::time::Instant::now() < deadline, "no ICMP echo request came out of the device");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(request[..6], host.engine_mac);
    assert_eq!(request[6..12], host.kernel_mac);
    // Answer it: swap the addresses, make it a reply (type 0), recompute the ICMP checksum.
    let mut reply = request.clone();
    reply[..6].copy_from_slice(&host.kernel_mac);
    reply[6..12].copy_from_slice(&host.engine_mac);
    let (src, dst) = (request[26..30].to_vec(), request[30..34].to_vec());
    reply[26..30].copy_from_slice(&dst);
    reply[30..34].copy_from_slice(&src);
    reply[34] = 0;
    reply[36..38].fill(0);
    let sum = internet_checksum(&reply[34..]);
    reply[36..38].copy_from_slice(&sum.to_be_bytes());
    // SAFETY: writing our buffer to our descriptor.
    let n = unsafe { libc::write(tap.as_raw_fd(), reply.as_ptr().cast(), reply.len()) };
    assert_eq!(n as usize, reply.len());
    let out = ping.finish(Duration::from_secs(5)).unwrap();
    assert!(out.status.success(), "ping got no reply: {}", String::from_utf8_lossy(&out.stdout));
    drop(tap);
    drop(host);
    assert!(!testbed::ip(&["netns", "list"]).unwrap().contains(&netns), "{netns} was left behind");
}

/// RFC 1071.
fn internet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
