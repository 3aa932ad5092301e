//! The raw datapaths and their BPF steering, in the namespace topology against the kernel.
//!
//! `raw-echo` (this crate's binary) claims a UDP port on the attached interface and answers over
//! its datapath with no stack; kernel sockets in the peer namespace talk to it. The tests run
//! on whichever datapath the topology is attached with (EXASOCK_TEST_DATAPATH=xdp: AF_XDP for
//! the first process on the interface, AF_PACKET for any other); the last ones attach XDP
//! themselves.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::time::Duration;
mod common;

use common::{attached, XorShift};
use testbed::{Side, Topology};

const T: Duration = Duration::from_secs(30);
const ECHO: &str = env!("CARGO_BIN_EXE_raw-echo");

fn start_echo(topo: &Topology, port: u16, extra: &[&str]) -> testbed::NsChild {
    common::start(topo, ECHO, port, extra, T)
}

/// A peer UDP socket connected to the accel side's `port`.
fn peer_socket(topo: &Topology, port: u16) -> UdpSocket {
    common::peer_socket(topo, topo.peer.ip, port)
}

fn ping(sock: &UdpSocket, rng: &mut XorShift, max_len: usize) {
    let len = (rng.next_u64() % (max_len as u64 + 1)) as usize;
    let data: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
    sock.send(&data).unwrap();
    let mut buf = [0u8; 2048];
    let n = sock.recv(&mut buf).unwrap_or_else(|e| panic!("no echo of a {len}-byte datagram: {e}"));
    assert_eq!(&buf[..n], &data[..], "echo of a {len}-byte datagram differs");
}

#[test]
fn echo_of_10000_datagrams_while_kernel_traffic_flows_beside_it() {
    let Some(_serial) = testbed::require() else {
        return;
    };
    let topo = attached();
    let echo = start_echo(&topo, 7000, &["--count", "10000"]);
    let counters = |name| topo.counter(Side::Accel, name).unwrap();
    let (in0, noport0, unreach0) =
        (counters("UdpInDatagrams"), counters("UdpNoPorts"), counters("IcmpOutDestUnreachs"));

    // Side traffic for the kernel on the same interface: UDP to port 7100, TCP on port 7101.
    const SIDE: usize = 500;
    let accel_ip = topo.accel.ip;
    let side_rx = topo.in_ns(Side::Accel, move || UdpSocket::bind((accel_ip, 7100))).unwrap().unwrap();
    side_rx.set_read_timeout(Some(T)).unwrap();
    let side_tx = peer_socket(&topo, 7100);
    let listener = topo.in_ns(Side::Accel, move || TcpListener::bind((accel_ip, 7101))).unwrap().unwrap();
    let tcp_client = topo.in_ns(Side::Peer, move || TcpStream::connect((accel_ip, 7101))).unwrap().unwrap();

    let sock = peer_socket(&topo, 7000);
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..SIDE {
                side_tx.send(&(i as u32).to_be_bytes()).unwrap();
                std::thread::sleep(Duration::from_micros(200));
            }
        });
        s.spawn(|| {
            let mut buf = [0u8; 16];
            for i in 0..SIDE {
                let n = side_rx.recv(&mut buf).expect("kernel side traffic lost");
                assert_eq!(&buf[..n], &(i as u32).to_be_bytes());
            }
        });
        s.spawn(|| {
            let (mut server, _) = listener.accept().unwrap();
            let mut client = &tcp_client;
            let data: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
            let expect = data.clone();
            let writer = std::thread::spawn(move || server.write_all(&data).unwrap());
            let mut got = vec![0u8; expect.len()];
            client.read_exact(&mut got).unwrap();
            writer.join().unwrap();
            assert!(got == expect, "kernel TCP beside the accelerated flow was corrupted");
        });
        let mut rng = XorShift(0x5eed);
        for _ in 0..10_000 {
            ping(&sock, &mut rng, 1472);
        }
    });

    let out = echo.finish(T).unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("echoed 10000 foreign 0 fragments 0 dropped 0"), "raw-echo said: {report}");
    // The kernel saw exactly the side traffic: none of the accelerated datagrams, and it
    // answered none of them.
    assert_eq!(counters("UdpInDatagrams") - in0, SIDE as u64);
    assert_eq!(counters("UdpNoPorts") - noport0, 0);
    assert_eq!(counters("IcmpOutDestUnreachs") - unreach0, 0);
}

#[test]
fn two_processes_on_one_interface_each_receive_only_their_own_flows() {
    let Some(_serial) = testbed::require() else {
        return;
    };
    let topo = attached();
    let first = start_echo(&topo, 7200, &["--count", "200"]);
    let second = start_echo(&topo, 7201, &["--count", "200"]);
    let (a, b) = (peer_socket(&topo, 7200), peer_socket(&topo, 7201));
    let mut rng = XorShift(7);
    for _ in 0..200 {
        ping(&a, &mut rng, 600);
        ping(&b, &mut rng, 600);
    }
    for child in [first, second] {
        let out = child.finish(T).unwrap();
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(report.contains("echoed 200 foreign 0"), "a process saw another's frames: {report}");
    }
}

#[test]
fn a_killed_owners_port_goes_back_to_the_kernel_and_can_be_claimed_again() {
    let Some(_serial) = testbed::require() else {
        return;
    };
    let topo = attached();
    let iface = topo.accel.iface.clone();
    let mut echo = start_echo(&topo, 7300, &[]);
    let sock = peer_socket(&topo, 7300);
    let mut rng = XorShift(9);
    ping(&sock, &mut rng, 100);
    let unreach0 = topo.counter(Side::Accel, "IcmpOutDestUnreachs").unwrap();

    let it = iface.clone();
    let before = topo.in_ns(Side::Accel, nic::control::status).unwrap().unwrap();
    let owner = before.iter().find(|s| s.iface == it).unwrap().flows[0].owner_pid;

    echo.kill();
    // Dying takes a moment (releasing a packet ring waits for an RCU grace period).
    testbed::poll_until(T, "the killed owner to exit", || Ok(!nic::steering::pid_alive(owner))).unwrap();
    // No process serves the port now, so the kernel answers: ICMP port unreachable, which a
    // connected UDP socket reports as ECONNREFUSED.
    sock.send(b"anyone?").unwrap();
    let err = sock.recv(&mut [0u8; 64]).expect_err("a dead owner's port must not answer");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    assert_eq!(topo.counter(Side::Accel, "IcmpOutDestUnreachs").unwrap() - unreach0, 1);

    // Status sweeps the dead owner's entry and shows none of it.
    let it = iface.clone();
    let status = topo.in_ns(Side::Accel, nic::control::status).unwrap().unwrap();
    let ours = status.iter().find(|s| s.iface == it).expect("interface listed");
    assert!(ours.program_attached);
    assert_eq!(ours.swept, 1, "{ours:?}");
    assert!(ours.flows.is_empty(), "{:?}", ours.flows);

    // A new process takes the port.
    let again = start_echo(&topo, 7300, &["--count", "1"]);
    ping(&sock, &mut rng, 100);
    assert!(String::from_utf8_lossy(&again.finish(T).unwrap().stdout).contains("echoed 1 foreign 0"));
}

#[test]
fn later_fragments_follow_their_first_to_the_flow_owner() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let echo = start_echo(&topo, 7500, &[]);
    let counters = |name| topo.counter(Side::Accel, name).unwrap();
    let (in0, reasm0) = (counters("UdpInDatagrams"), counters("IpReasmReqds"));
    // 3,000 bytes over a 1,500-byte MTU: three fragments, only the first carries the ports.
    let sock = peer_socket(&topo, 7500);
    sock.send(&[7u8; 3000]).unwrap();
    // Ordinary traffic after it, echoed, so we know the fragments were processed before it.
    let mut rng = XorShift(11);
    ping(&sock, &mut rng, 100);
    let mut echo = echo;
    echo.kill_with(libc::SIGTERM);
    let out = echo.finish(T).unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("echoed 1 foreign 0 fragments 3"), "raw-echo said: {report}");
    // The kernel saw none of them: no reassembly started, nothing delivered to its socket.
    assert_eq!(counters("IpReasmReqds") - reasm0, 0);
    assert_eq!(counters("UdpInDatagrams") - in0, 0);
}

/// Attaches the topology's accel interface with the XDP program (SKB mode: a veth).
fn attach_xdp(topo: &Topology) {
    let iface = topo.accel.iface.clone();
    let options = nic::control::AttachOptions {
        datapath: nic::control::AttachDatapath::Xdp,
        xdp_mode: nic::control::XdpMode::Auto,
    };
    let report = topo.in_ns(Side::Accel, move || nic::control::attach_with(&iface, &options)).unwrap().unwrap();
    assert_eq!(report.datapath, "xdp (skb mode)");
}

fn start_echo_on(topo: &Topology, port: u16, extra: &[&str]) -> (testbed::NsChild, String) {
    let port_s = port.to_string();
    let mut argv = vec![ECHO, &topo.accel.iface, &port_s];
    argv.extend_from_slice(extra);
    let mut child = topo.spawn(Side::Accel, &argv, T).unwrap();
    let datapath = child.wait_for_line("datapath ", T).unwrap();
    child.wait_for_line("ready", T).unwrap();
    (child, datapath.trim().to_string())
}

#[test]
fn af_xdp_owner_binds_every_queue_a_second_process_falls_back_and_a_killed_owner_goes_back_to_the_kernel() {
    let Some(_serial) = testbed::require() else { return };
    let topo = Topology::create().unwrap();
    attach_xdp(&topo);
    let iface = topo.accel.iface.clone();
    let it = iface.clone();
    assert_eq!(
        topo.in_ns(Side::Accel, move || nic::af_xdp::rx_queues(&it)).unwrap(),
        2,
        "the test veth has 2 RX queues"
    );

    // The first process takes AF_XDP (every queue), the second AF_PACKET beside it; both echo.
    let (mut first, dp1) = start_echo_on(&topo, 7600, &[]);
    assert_eq!(dp1, "datapath af_xdp");
    let (second, dp2) = start_echo_on(&topo, 7601, &["--count", "100"]);
    assert_eq!(dp2, "datapath af_packet");
    let (a, b) = (peer_socket(&topo, 7600), peer_socket(&topo, 7601));
    let mut rng = XorShift(21);
    for _ in 0..100 {
        ping(&a, &mut rng, 1472);
        ping(&b, &mut rng, 1472);
    }
    let out = second.finish(T).unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("echoed 100 foreign 0"));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("this process uses AF_PACKET"),
        "no log line for the fallback: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Asked for AF_XDP explicitly while it is taken: a clear error, no fallback.
    let argv = ["env", "EXASOCK_DATAPATH=xdp", ECHO, &iface, "7602"];
    let err = topo.run(Side::Accel, &argv, T).expect_err("a second AF_XDP owner must fail");
    assert!(err.to_string().contains("already bound by another AF_XDP socket"), "{err}");

    // The kernel saw none of the AF_XDP flow's datagrams, and answered none.
    let unreach0 = topo.counter(Side::Accel, "IcmpOutDestUnreachs").unwrap();
    let it = iface.clone();
    let status = topo.in_ns(Side::Accel, nic::control::status).unwrap().unwrap();
    let ours = status.iter().find(|s| s.iface == it).unwrap();
    assert_eq!(ours.datapath, "xdp (skb mode)");
    let flow = ours.flows.iter().find(|f| f.flow.local_port == 7600).expect("the AF_XDP owner's flow");
    assert_eq!(flow.datapath, nic::steering::Datapath::AfXdp);
    let owner = flow.owner_pid;
    first.kill();
    testbed::poll_until(T, "the killed owner to exit", || Ok(!nic::steering::pid_alive(owner))).unwrap();
    // At once: the kernel answers the dead owner's port (its XSKs left the XSKMAP).
    a.send(b"anyone?").unwrap();
    let err = a.recv(&mut [0u8; 64]).expect_err("a dead owner's port must not answer");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    assert_eq!(topo.counter(Side::Accel, "IcmpOutDestUnreachs").unwrap() - unreach0, 1);

    // A new process takes the interface over AF_XDP, and the port.
    let (again, dp) = start_echo_on(&topo, 7600, &["--count", "50"]);
    assert_eq!(dp, "datapath af_xdp");
    for _ in 0..50 {
        ping(&a, &mut rng, 1472);
    }
    assert!(String::from_utf8_lossy(&again.finish(T).unwrap().stdout).contains("echoed 50 foreign 0"));
}
