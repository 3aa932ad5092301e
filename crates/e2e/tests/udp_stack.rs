//! The user-space UDP stack in the namespace topology: `udp-echo` (this crate's binary) serves
//! a port through the driver and the stack; kernel sockets in the peer namespace talk to it.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;
mod common;

use common::{attached, XorShift};
use testbed::{Side, Topology};

const T: Duration = Duration::from_secs(60);
const ECHO: &str = env!("CARGO_BIN_EXE_udp-echo");

fn start_echo(topo: &Topology, port: u16, extra: &[&str]) -> testbed::NsChild {
    common::start(topo, ECHO, port, extra, T)
}

fn peer_socket(topo: &Topology, bind: Ipv4Addr, port: u16) -> UdpSocket {
    let s = common::peer_socket(topo, bind, port);
    let size: libc::c_int = 8 << 20;
    // SAFETY: setsockopt with an int option on our socket.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&size as *const libc::c_int).cast(),
            4,
        );
    }
    s
}

fn ping(sock: &UdpSocket, len: usize, rng: &mut XorShift) {
    let data: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
    sock.send(&data).unwrap();
    let mut buf = vec![0u8; 65_536];
    let n = sock.recv(&mut buf).unwrap_or_else(|e| panic!("no echo of a {len}-byte datagram: {e}"));
    assert!(buf[..n] == data[..], "echo of a {len}-byte datagram differs");
}

fn finish(echo: testbed::NsChild) -> String {
    let mut echo = echo;
    echo.kill_with(libc::SIGTERM);
    let out = echo.finish(T).unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// The value of `name: N` in the stack's printed counters.
fn counter(report: &str, name: &str) -> u64 {
    let at = report.find(&format!("{name}: ")).unwrap_or_else(|| panic!("{name} not in {report}"));
    report[at + name.len() + 2..].split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
}

#[test]
fn echoes_10000_datagrams_of_0_to_65507_bytes_byte_exact() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let echo = start_echo(&topo, 7600, &[]);
    let sock = peer_socket(&topo, topo.peer.ip, 7600);
    let mut rng = XorShift(0xfeed);
    // Every size class: empty, one frame, the one-frame limit and one past it, many fragments,
    // the largest; then random sizes over the whole range.
    let mut sizes = vec![0, 1, 1472, 1473, 2952, 2953, 8000, 65_507];
    while sizes.len() < 10_000 {
        let len = match rng.next_u64() % 4 {
            0 => rng.next_u64() % 1473,
            1 => rng.next_u64() % 9000,
            _ => rng.next_u64() % 65_508,
        };
        sizes.push(len as usize);
    }
    for len in sizes {
        ping(&sock, len, &mut rng);
    }
    let report = finish(echo);
    assert!(report.contains("echoed 10000"), "{report}");
    assert_eq!(counter(&report, "udp_bad_checksum"), 0, "{report}");
    assert!(counter(&report, "frag_reassembled") > 5000, "{report}");
}

#[test]
fn the_first_datagram_to_an_unresolved_neighbour_arrives_through_the_kernel() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let neigh = testbed::ns_exec(&topo.accel.netns, &["ip", "neigh", "show", "dev", &topo.accel.iface]).unwrap();
    assert!(neigh.trim().is_empty(), "the accel kernel already knows a neighbour: {neigh}");
    let peer_ip = topo.peer.ip;
    let listener = topo.in_ns(Side::Peer, move || UdpSocket::bind((peer_ip, 6000))).unwrap().unwrap();
    listener.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let hello = format!("{}:6000", topo.peer.ip);
    let echo = start_echo(&topo, 7601, &["--hello", &hello]);
    let mut buf = [0u8; 64];
    let (n, from) = listener.recv_from(&mut buf).expect("the first datagram to an unresolved peer was lost");
    assert_eq!(&buf[..n], b"hello");
    assert_eq!(from, std::net::SocketAddr::V4(SocketAddrV4::new(topo.accel.ip, 7601)));
    // After the kernel resolved it, the stack sends frames itself.
    let sock = peer_socket(&topo, topo.peer.ip, 7601);
    let mut rng = XorShift(3);
    for _ in 0..50 {
        ping(&sock, 100, &mut rng);
    }
    let report = finish(echo);
    assert_eq!(counter(&report, "tx_to_kernel"), 1, "only the first datagram needed the kernel: {report}");
    assert!(counter(&report, "tx_frames") >= 50, "{report}");
}

#[test]
fn a_route_through_a_gateway_is_honoured() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    // 10.98.0.2 lives behind the peer (on its loopback); the accel side reaches it via 10.99.0.2.
    testbed::ns_exec(&topo.peer.netns, &["ip", "addr", "add", "10.98.0.2/32", "dev", "lo"]).unwrap();
    let via = topo.peer.ip.to_string();
    testbed::ns_exec(&topo.accel.netns, &["ip", "route", "add", "10.98.0.0/24", "via", &via]).unwrap();
    // The accel kernel knows the gateway's MAC before the stack starts and copies its table.
    testbed::ns_exec(&topo.accel.netns, &["ping", "-c1", "-W2", &via]).unwrap();
    let echo = start_echo(&topo, 7602, &[]);
    let sock = peer_socket(&topo, Ipv4Addr::new(10, 98, 0, 2), 7602);
    let mut rng = XorShift(5);
    for len in [10, 3000, 20] {
        ping(&sock, len, &mut rng);
    }
    let report = finish(echo);
    assert!(report.contains("echoed 3"), "{report}");
    // The route came from the kernel's table (without it the stack has no route and sends
    // nothing), and every echo left as a frame to the gateway's MAC: none needed the kernel.
    assert_eq!(counter(&report, "tx_to_kernel"), 0, "{report}");
    assert!(counter(&report, "tx_frames") >= 4, "{report}");
}

fn ip_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet + IPv4 frame with `l4` as IP payload; `fix` may damage it after the fact.
fn raw_frame(topo: &Topology, src: Ipv4Addr, ident: u16, frag: u16, l4: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(34 + l4.len());
    f.extend_from_slice(&topo.accel.mac);
    f.extend_from_slice(&topo.peer.mac);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + l4.len()) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[4..6].copy_from_slice(&ident.to_be_bytes());
    ip[6..8].copy_from_slice(&frag.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&topo.accel.ip.octets());
    let c = ip_checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(l4);
    f
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_flood_of_bogus_fragments_and_malformed_frames_leaves_memory_bounded_and_the_echo_working() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let echo = start_echo(&topo, 7700, &[]);
    let pid = testbed::ip(&["netns", "pids", &topo.accel.netns])
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().parse::<u32>().ok())
        .find(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "udp-echo"))
        .expect("udp-echo pid");
    let sock = peer_socket(&topo, topo.peer.ip, 7700);
    let mut rng = XorShift(77);
    ping(&sock, 3000, &mut rng);
    let rss_before = rss_kib(pid);

    let mut frames = Vec::new();
    let udp_header = |len: u16, csum: u16| -> Vec<u8> {
        let mut h = vec![0x12, 0x34, (7700u16 >> 8) as u8, (7700u16 & 0xff) as u8];
        h.extend_from_slice(&len.to_be_bytes());
        h.extend_from_slice(&csum.to_be_bytes());
        h
    };
    for i in 0..30_000u32 {
        let r = rng.next_u64();
        // Spoofed sources, so per-source limits do not stop them: the table limit must.
        let src = Ipv4Addr::new(10, 99, (r >> 8) as u8, (r >> 16) as u8 | 3);
        let ident = (r >> 24) as u16;
        let mut first = udp_header(4000, 0x1111);
        first.extend(std::iter::repeat_n(i as u8, 1472));
        frames.push(raw_frame(&topo, src, ident, 0x2000, &first)); // MF, offset 0: starts a datagram
        let body = vec![0xabu8; 8 * (1 + (r % 150) as usize)];
        frames.push(raw_frame(&topo, src, ident, 0x2000 | ((r >> 40) as u16 % 8000), &body)); // overlapping junk
                                                                                              // Malformed: bad UDP checksum, UDP length past the packet, IP length past the frame.
        let mut bad = udp_header(20, 0xdead);
        bad.extend_from_slice(&[1; 12]);
        frames.push(raw_frame(&topo, topo.peer.ip, ident, 0, &bad));
        let mut long = udp_header(900, 0);
        long.extend_from_slice(&[2; 12]);
        frames.push(raw_frame(&topo, topo.peer.ip, ident, 0, &long));
        let mut cut = raw_frame(&topo, topo.peer.ip, ident, 0, &udp_header(20, 0));
        cut[16..18].copy_from_slice(&1400u16.to_be_bytes());
        frames.push(cut);
    }
    topo.send_raw_frames(Side::Peer, frames, Duration::ZERO).unwrap();

    // Ordinary datagrams still echo, and the memory the stack uses did not grow with the flood.
    for _ in 0..20 {
        ping(&sock, 500, &mut rng);
    }
    let rss_after = rss_kib(pid);
    assert!(rss_after < rss_before + 2048, "RSS grew from {rss_before} KiB to {rss_after} KiB under the flood");
    let report = finish(echo);
    assert!(counter(&report, "frag_dropped") > 1000, "{report}");
    assert!(counter(&report, "udp_bad_checksum") > 1000, "{report}");
    assert!(counter(&report, "udp_malformed") + counter(&report, "ip_malformed") > 1000, "{report}");
    assert!(report.contains("echoed 21"), "{report}");
}
