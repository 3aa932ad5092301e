//! The impaired link: the rates it produces, their reproducibility from a seed, its filters, a
//! kernel TCP transfer across it, and the shell flags. Every test needs root (`testbed::require`).

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::Duration;
use testbed::{Direction, Filter, ImpairStats, Impairment, Proto, Side, Topology};

const T: Duration = Duration::from_secs(20);
const PORT: u16 = 6100;

/// What a receiver saw of numbered datagrams 0..n (n itself marks the end).
#[derive(Debug, PartialEq, Eq)]
struct Observed {
    missing: BTreeSet<u32>,
    duplicated: BTreeSet<u32>,
    late: BTreeSet<u32>,
}

fn udp_filter() -> Filter {
    Filter { ethertype: Some(0x0800), ip_proto: Some(17), ..Filter::default() }
}

fn sides(dir: Direction) -> (Side, Side) {
    match dir {
        Direction::ToPeer => (Side::Accel, Side::Peer),
        Direction::FromPeer => (Side::Peer, Side::Accel),
    }
}

fn bind(topo: &Topology, side: Side, port: u16) -> UdpSocket {
    let ip = topo.host(side).ip;
    let sock = topo.in_ns(side, || UdpSocket::bind(SocketAddrV4::new(ip, port))).unwrap().unwrap();
    let big: libc::c_int = 16 << 20;
    // SAFETY: setsockopt on a valid socket with an int option; root may exceed rmem_max.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&big as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    sock.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    sock
}

/// Sends datagrams 0..n (padded to `len`) in direction `dir` through `imp`, then switches the
/// impairment off and sends end markers until one arrives (releasing any held frame); returns
/// what the receiver saw and the program's counters for the run.
fn numbered_run(topo: &Topology, dir: Direction, imp: &Impairment, n: u32, len: usize) -> (Observed, ImpairStats) {
    let (from, to) = sides(dir);
    let rx = bind(topo, to, PORT);
    let tx = bind(topo, from, 0);
    let dest = SocketAddrV4::new(topo.host(to).ip, PORT);
    // Resolve the neighbours before impairing, so no datagram waits for ARP.
    tx.send_to(&u32::MAX.to_be_bytes(), dest).unwrap();
    let mut buf = [0u8; 2048];
    rx.set_nonblocking(false).unwrap();
    assert_eq!(rx.recv(&mut buf).unwrap(), 4);

    topo.impair(dir, imp).unwrap();
    let mut frame = vec![0u8; len.max(4)];
    let mut seen = Vec::new();
    for seq in 0..n {
        frame[..4].copy_from_slice(&seq.to_be_bytes());
        tx.send_to(&frame, dest).unwrap();
        // Keep the receiver's queue short and the veth backlog from overflowing.
        if seq % 64 == 63 {
            drain(&rx, &mut seen, None);
        }
    }
    let stats = topo.impair_stats(dir).unwrap();
    topo.impair(dir, &Impairment::none()).unwrap();
    frame[..4].copy_from_slice(&n.to_be_bytes());
    for _ in 0..50 {
        tx.send_to(&frame, dest).unwrap();
        if drain(&rx, &mut seen, Some(n)) {
            break;
        }
    }
    (observe(&seen, n), stats)
}

/// Reads what is queued. With `end`, waits until nothing more comes for 100 ms and says whether
/// the end marker arrived (a frame it carried arrives just after it).
fn drain(rx: &UdpSocket, seen: &mut Vec<u32>, end: Option<u32>) -> bool {
    let mut buf = [0u8; 2048];
    rx.set_nonblocking(end.is_none()).unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    while let Ok(len) = rx.recv(&mut buf) {
        assert!(len >= 4);
        let seq = u32::from_be_bytes(buf[..4].try_into().unwrap());
        if seq != u32::MAX {
            seen.push(seq);
        }
    }
    end.is_some_and(|e| seen.contains(&e))
}

fn observe(seen: &[u32], n: u32) -> Observed {
    let mut first = BTreeSet::new();
    let mut duplicated = BTreeSet::new();
    let mut late = BTreeSet::new();
    let mut highest = None::<u32>;
    for &seq in seen.iter().filter(|&&s| s <= n) {
        if !first.insert(seq) {
            duplicated.insert(seq);
            continue;
        }
        if highest.is_some_and(|h| seq < h) {
            late.insert(seq);
        }
        highest = highest.max(Some(seq));
    }
    let missing = (0..n).filter(|s| !first.contains(s)).collect();
    duplicated.retain(|&s| s < n);
    Observed { missing, duplicated, late }
}

/// Asserts that `count` out of `trials` is within five standard deviations of rate `p`.
fn within_bounds(what: &str, count: u64, trials: u64, p: f64) {
    let mean = p * trials as f64;
    let sigma = (trials as f64 * p * (1.0 - p)).sqrt();
    assert!(
        (count as f64 - mean).abs() <= 5.0 * sigma + 1.0,
        "{what}: {count} of {trials}, expected {mean:.0} ± {:.0} (5σ)",
        5.0 * sigma
    );
}

#[test]
fn rates_match_the_configuration_and_the_seed_replays_them() {
    let Some(_serial) = testbed::require() else {
        return;
    };
    let topo = Topology::create().unwrap();
    const N: u32 = 4000;
    for dir in Direction::BOTH {
        let imp = Impairment { loss: 0.05, duplicate: 0.02, reorder: 0.03, seed: 7, filter: udp_filter() };
        let (seen, stats) = numbered_run(&topo, dir, &imp, N, 64);
        println!(
            "{dir:?}: {stats}; receiver: {} missing, {} duplicated, {} late",
            seen.missing.len(),
            seen.duplicated.len(),
            seen.late.len()
        );

        // The counters say exactly what the receiver saw: nothing else lost or reordered them.
        assert_eq!(stats.selected, u64::from(N), "{dir:?}: every datagram drew a decision");
        assert_eq!(seen.missing.len() as u64, stats.dropped, "{dir:?}: missing datagrams vs dropped");
        assert_eq!(seen.duplicated.len() as u64, stats.duplicated, "{dir:?}: duplicates vs counter");
        assert_eq!(seen.late.len() as u64, stats.reordered, "{dir:?}: late datagrams vs reordered");

        within_bounds("loss", stats.dropped, u64::from(N), 0.05);
        let survivors = u64::from(N) - stats.dropped;
        within_bounds("duplication", stats.duplicated, survivors, 0.02);
        within_bounds("reordering", stats.reordered + stats.held_over, survivors, 0.03);
        assert!(stats.reordered > 0, "{dir:?}: some frames were delivered out of order");

        // The same seed replays the same decisions; another seed makes others.
        let (again, _) = numbered_run(&topo, dir, &imp, N, 64);
        assert_eq!(again, seen, "{dir:?}: same seed, same traffic, same frames impaired");
        let (other, _) = numbered_run(&topo, dir, &Impairment { seed: 8, ..imp.clone() }, N, 64);
        assert_ne!(other.missing, seen.missing, "{dir:?}: another seed drops other frames");
    }
}

#[test]
fn filters_choose_what_is_impaired() {
    let Some(_serial) = testbed::require() else {
        return;
    };
    let topo = Topology::create().unwrap();

    // Only frames of 500 bytes or more, all of them dropped: small datagrams all arrive.
    let dir = Direction::FromPeer;
    let big_only = Impairment { loss: 1.0, filter: Filter { min_len: 500, ..udp_filter() }, ..Impairment::none() };
    let (seen, stats) = numbered_run(&topo, dir, &big_only, 300, 100);
    assert!(seen.missing.is_empty(), "small frames pass a min-length filter: {stats}");
    assert_eq!(stats.selected, 0, "{stats}");
    let (seen, stats) = numbered_run(&topo, dir, &big_only, 300, 800);
    assert_eq!(seen.missing.len(), 300, "large frames are all dropped: {stats}");
    assert_eq!(stats.dropped, 300);

    // A filter on UDP leaves TCP alone, and spared pure ACKs are never touched: a kernel TCP
    // transfer whose receiver sends only pure ACKs completes under 100% loss of the rest.
    let everything_else = Impairment {
        loss: 1.0,
        filter: Filter { ethertype: Some(0x0800), ip_proto: Some(6), spare_pure_acks: true, ..Filter::default() },
        ..Impairment::none()
    };
    let accel_ip = topo.accel.ip;
    let listener =
        topo.in_ns(Side::Peer, || TcpListener::bind(SocketAddrV4::new(topo.peer.ip, 6200))).unwrap().unwrap();
    topo.wait_listening(Side::Peer, Proto::Tcp, 6200, T).unwrap();
    let peer_ip = topo.peer.ip;
    let mut client = topo.in_ns(Side::Accel, || TcpStream::connect(SocketAddrV4::new(peer_ip, 6200))).unwrap().unwrap();
    let (mut server, from) = listener.accept().unwrap();
    assert_eq!(from.ip(), std::net::IpAddr::V4(accel_ip));
    topo.impair(Direction::FromPeer, &everything_else).unwrap();
    let data = pattern(1 << 20, 3);
    let writer = std::thread::spawn(move || {
        client.write_all(&data).unwrap();
        client
    });
    server.set_read_timeout(Some(T)).unwrap();
    let mut got = vec![0u8; 1 << 20];
    server.read_exact(&mut got).unwrap();
    drop(writer.join().unwrap());
    assert_eq!(got, pattern(1 << 20, 3));
    let stats = topo.impair_stats(Direction::FromPeer).unwrap();
    assert!(stats.seen > 20, "the receiver's ACKs crossed the program: {stats}");
    assert_eq!(stats.selected, 0, "pure ACKs are spared: {stats}");
}

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn kernel_tcp_crosses_five_percent_loss_byte_exact() {
    let Some(_serial) = testbed::require() else {
        return;
    };
    let topo = Topology::create().unwrap();
    let imp = Impairment { loss: 0.05, duplicate: 0.01, reorder: 0.02, seed: 3, filter: Filter::default() };
    let listener =
        topo.in_ns(Side::Accel, || TcpListener::bind(SocketAddrV4::new(topo.accel.ip, 6300))).unwrap().unwrap();
    topo.wait_listening(Side::Accel, Proto::Tcp, 6300, T).unwrap();
    for dir in Direction::BOTH {
        topo.impair(dir, &imp).unwrap();
    }
    let accel_ip = topo.accel.ip;
    let client = topo.in_ns(Side::Peer, || TcpStream::connect(SocketAddrV4::new(accel_ip, 6300))).unwrap().unwrap();
    let (server, _) = listener.accept().unwrap();
    const LEN: usize = 4 << 20;
    let exchange = |mut s: TcpStream, seed: u64| {
        std::thread::spawn(move || {
            s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
            let mut w = s.try_clone().unwrap();
            let writer = std::thread::spawn(move || {
                w.write_all(&pattern(LEN, seed)).unwrap();
                w.shutdown(std::net::Shutdown::Write).unwrap();
            });
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            writer.join().unwrap();
            got
        })
    };
    let from_peer = exchange(server, 11);
    let from_accel = exchange(client, 12);
    assert!(from_peer.join().unwrap() == pattern(LEN, 12), "the accel side read the peer's bytes exactly");
    assert!(from_accel.join().unwrap() == pattern(LEN, 11), "the peer read the accel side's bytes exactly");
    for dir in Direction::BOTH {
        let stats = topo.impair_stats(dir).unwrap();
        println!("{dir:?}: {stats}");
        assert!(stats.dropped > 0 && stats.duplicated > 0, "{dir:?} was impaired: {stats}");
        assert!(
            stats.seen as usize >= LEN / 1500,
            "{dir:?}: one decision per wire frame, not per super-frame: {stats}"
        );
    }
    let retrans =
        topo.counter(Side::Peer, "TcpRetransSegs").unwrap() + topo.counter(Side::Accel, "TcpRetransSegs").unwrap();
    assert!(retrans > 0, "the kernels retransmitted what was lost");
}

#[test]
fn shell_flags_impair_the_command_s_link() {
    let Some(_serial) = testbed::require() else {
        return;
    };
    let bin = env!("CARGO_BIN_EXE_exasock-testbed");
    let help = Command::new(bin).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in ["--loss", "--dup", "--reorder", "--seed", "--proto", "--spare-acks", "--min-len", "--max-len"] {
        assert!(text.contains(flag), "--help documents {flag}:\n{text}");
    }
    let ping = "ip netns exec $EXA_NS_PEER ping -c 2 -W 1 $EXA_IP_ACCEL >/dev/null";
    let run = |flags: &[&str]| {
        let out = Command::new(bin).arg("run").args(flags).args(["--", "sh", "-c", ping]).output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (ok, stderr) = run(&["--loss", "100%"]);
    assert!(!ok, "no ping crosses 100% loss: {stderr}");
    assert!(stderr.contains("FromPeer: seen 2 selected 2 dropped 2"), "counters printed: {stderr}");
    let (ok, stderr) = run(&["--loss", "100%", "--proto", "udp"]);
    assert!(ok, "ICMP passes a UDP-only impairment: {stderr}");
    let (ok, _) = run(&["--loss", "120%"]);
    assert!(!ok, "a rate over 100% is refused");
}

/// A segment the link drops on its way out of the peer is lost on the wire, not refused by the
/// peer's own device: the peer's TCP counts it sent and must retransmit it, so its
/// retransmissions are at least the segments dropped (pure ACKs are spared, so every drop is
/// data). A drop the sender hears of (NET_XMIT_DROP) is sent again as new data instead, and a
/// held segment delivered later lands beyond the sender's SND.NXT, where the receiver's ACK of
/// it stalls the connection for good.
#[test]
fn a_segment_dropped_leaving_the_peer_is_retransmitted_by_its_tcp() {
    let Some(_serial) = testbed::require() else {
        return;
    };
    let topo = Topology::create().unwrap();
    let listener =
        topo.in_ns(Side::Accel, || TcpListener::bind(SocketAddrV4::new(topo.accel.ip, 6400))).unwrap().unwrap();
    topo.wait_listening(Side::Accel, Proto::Tcp, 6400, T).unwrap();
    // Impaired before the connection opens: its segments are then sized for the link, one
    // decision each (the testbed caps GSO when it first impairs).
    let tcp_data = Filter { ethertype: Some(0x0800), ip_proto: Some(6), spare_pure_acks: true, ..Filter::default() };
    let imp = Impairment { loss: 0.05, duplicate: 0.0, reorder: 0.02, seed: 5, filter: tcp_data };
    topo.impair(Direction::FromPeer, &imp).unwrap();
    let before = topo.counter(Side::Peer, "TcpRetransSegs").unwrap();
    let accel_ip = topo.accel.ip;
    let mut client = topo.in_ns(Side::Peer, || TcpStream::connect(SocketAddrV4::new(accel_ip, 6400))).unwrap().unwrap();
    let (mut server, _) = listener.accept().unwrap();
    const LEN: usize = 2 << 20;
    let writer = std::thread::spawn(move || {
        client.write_all(&pattern(LEN, 21)).unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        client
    });
    server.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut got = Vec::new();
    server.read_to_end(&mut got).unwrap();
    drop(writer.join().unwrap());
    assert!(got == pattern(LEN, 21), "the accel side read the peer's bytes exactly");
    let stats = topo.impair_stats(Direction::FromPeer).unwrap();
    let retrans = topo.counter(Side::Peer, "TcpRetransSegs").unwrap() - before;
    println!("FromPeer: {stats}; the peer retransmitted {retrans} segments");
    assert!(stats.dropped > 20, "the link dropped segments: {stats}");
    assert!(
        retrans >= stats.dropped,
        "the peer retransmitted {retrans} segments, fewer than the {} the link dropped",
        stats.dropped
    );
}
