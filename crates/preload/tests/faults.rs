//! Faults and hostile traffic (issue 22) through the real datapath between the namespaces: an
//! unmodified program under libexasock_preload.so against the kernel of the peer namespace.
//! Whatever happens, the program's data arrives whole or the program gets the error the kernel
//! would give, the flows map holds nothing of a dead process, and every drop is counted where
//! `exasock-stat` shows it.

use common::{assert_kernel_carried_at_most, attached, flows, spawn_accelerated, tcp_segments};
use std::io::{Read, Write};
use std::net::{SocketAddrV4, TcpStream, UdpSocket};
use std::time::{Duration, Instant};
use testbed::{NsChild, Side, Topology};

mod common;

const T: Duration = Duration::from_secs(60);

/// Serves one TCP echo connection on ARGV1:ARGV2, announcing its pid and descriptor, and holds
/// the connection open after the client's EOF until a line arrives on stdin.
const PY_ECHO_ONE: &str = r#"
import os, socket, sys
l = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind((sys.argv[1], int(sys.argv[2])))
l.listen(8)
print("ready", flush=True)
c, _ = l.accept()
print("accepted", os.getpid(), c.fileno(), flush=True)
while True:
    d = c.recv(65536)
    if not d:
        break
    c.sendall(d)
print("eof", flush=True)
sys.stdin.readline()
c.close()
"#;

/// The published record of `pid`'s socket behind `fd`, with its process's counters.
fn published(topo: &Topology, pid: u32, fd: i32) -> Option<stat_format::reader::Entry> {
    let all = topo
        .in_ns(Side::Accel, || stat_format::reader::read_all(std::path::Path::new(stat_format::naming::DIR), 0))
        .unwrap();
    all.into_iter().find(|e| e.process.pid == pid && e.socket.fds().contains(&fd))
}

fn words(line: &str) -> Vec<String> {
    line.split_whitespace().map(String::from).collect()
}

/// RFC 5961's blind attacks (resets and SYNs in and out of the window, data acknowledging
/// what was never sent) and segments no correct peer sends (bad checksums, lying header
/// lengths, every option malformed, SACK blocks for data never sent) injected into a live
/// accelerated connection from the peer namespace: the connection is neither reset nor
/// corrupted, the stream carries on byte for byte, and the drops and challenge ACKs are
/// counted in what exasock-stat shows of the connection.
#[test]
fn blind_injection_and_malformed_segments_neither_reset_nor_corrupt_a_connection() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let ip = topo.accel.ip.to_string();
    let mut server = spawn_accelerated(&topo, &["EXASOCK_DEBUG=1"], &["python3", "-c", PY_ECHO_ONE, &ip, "7600"]);
    server.wait_for_line("ready", T).unwrap();
    let before = tcp_segments(&topo);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/hostile_peer.py");
    let client = topo.spawn(Side::Peer, &["python3", script, &ip, "7600", &topo.peer.iface], T).unwrap();
    let accepted = words(&server.wait_for_line("accepted", T).unwrap());
    let (pid, fd): (u32, i32) = (accepted[1].parse().unwrap(), accepted[2].parse().unwrap());
    let out = client.finish(T).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ok 1048576"),
        "the stream did not survive: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.wait_for_line("eof", T).unwrap();
    // Counted: segments outside the window as drops, the resets and SYNs in it as challenge
    // ACKs (the record is refreshed every 100 ms).
    let mut rec = None;
    testbed::poll_until(Duration::from_secs(5), "the drops published", || {
        rec = published(&topo, pid, fd).map(|e| e.socket);
        Ok(rec.is_some_and(|r| r.challenge_acks >= 4 && r.drops_queue_full >= 100))
    })
    .unwrap_or_else(|e| panic!("{e}: {rec:?}"));
    writeln!(server.stdin().unwrap()).unwrap();
    let out = server.finish(T).unwrap();
    assert!(out.status.success(), "the server failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("enabled bypass"), "not accelerated");
    // The kernel of the accelerated namespace saw none of it (every injected segment names the
    // connection's 4-tuple, so its flow entry steers it to the stack).
    assert_kernel_carried_at_most(&topo, before, 0, "the attacked connection");
}

/// A client in the peer namespace that streams to `port` and reads the echo back until the
/// connection fails; returns how it failed and how long after `killed` was set it noticed.
fn stream_until_failure(
    topo: &Topology,
    port: u16,
    killed: std::sync::Arc<std::sync::Mutex<Option<Instant>>>,
) -> std::thread::JoinHandle<(std::io::ErrorKind, Duration, usize)> {
    let ip = topo.accel.ip;
    let s = topo.in_ns(Side::Peer, move || TcpStream::connect(SocketAddrV4::new(ip, port))).unwrap().unwrap();
    std::thread::spawn(move || {
        let mut s = s;
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let block: Vec<u8> = (0..16384u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut back = vec![0u8; block.len()];
        let mut echoed = 0usize;
        loop {
            let r = s.write_all(&block).and_then(|_| s.read_exact(&mut back));
            if let Err(e) = r {
                let after = killed.lock().unwrap().map(|t| t.elapsed()).unwrap_or_default();
                return (e.kind(), after, echoed);
            }
            assert!(back == block, "the echo differs after {echoed} bytes");
            echoed += block.len();
        }
    })
}

/// kill -9 of an accelerated TCP server mid-transfer: the peer's next segment is answered with
/// RST (the kernel gets the flow back at once), the flows map holds nothing of the dead
/// process, and a new accelerated server takes the same port at once and serves.
#[test]
fn a_server_killed_mid_transfer_resets_its_peer_and_frees_its_port_at_once() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let ip = topo.accel.ip.to_string();
    let mut server = spawn_accelerated(&topo, &["EXASOCK_DEBUG=1"], &["python3", "-c", PY_ECHO_ONE, &ip, "7601"]);
    server.wait_for_line("ready", T).unwrap();
    let killed = std::sync::Arc::new(std::sync::Mutex::new(None));
    let client = stream_until_failure(&topo, 7601, killed.clone());
    server.wait_for_line("accepted", T).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    *killed.lock().unwrap() = Some(Instant::now());
    server.kill_with(libc::SIGKILL);
    let _ = server.finish(T);
    let (kind, after, echoed) = client.join().unwrap();
    assert!(echoed > 0, "nothing was echoed before the kill");
    assert_eq!(kind, std::io::ErrorKind::ConnectionReset, "the peer saw {kind:?} after {after:?}, not a reset");
    assert!(after < Duration::from_secs(5), "the reset took {after:?}");
    testbed::poll_until(Duration::from_secs(5), "the dead server's flows to go", || {
        Ok(flows(&topo).iter().all(|f| f.flow.local_port != 7601))
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}", flows(&topo)));
    // A new server takes the port at once, accelerated, and serves.
    let mut again = spawn_accelerated(&topo, &["EXASOCK_DEBUG=1"], &["python3", "-c", PY_ECHO_ONE, &ip, "7601"]);
    again.wait_for_line("ready", T).unwrap();
    let peer = topo.accel.ip;
    let mut s = topo.in_ns(Side::Peer, move || TcpStream::connect(SocketAddrV4::new(peer, 7601))).unwrap().unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    s.write_all(b"again").unwrap();
    let mut buf = [0u8; 5];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"again");
    drop(s);
    again.wait_for_line("eof", T).unwrap();
    writeln!(again.stdin().unwrap()).unwrap();
    let out = again.finish(T).unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("enabled bypass"), "the new server was not accelerated");
}

/// Receives numbered UDP datagrams on ARGV1:ARGV2 until a datagram "end", then prints how many
/// arrived and whether each arrived whole and at most once.
const PY_UDP_COUNT: &str = r#"
import os, socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
print("ready", os.getpid(), s.fileno(), flush=True)
seen, bad = set(), 0
while True:
    d = s.recv(65536)
    if d == b"end":
        break
    n = struct.unpack("!I", d[:4])[0]
    if n in seen or d[4:] != bytes([n % 251]) * (len(d) - 4):
        bad += 1
    seen.add(n)
print("got", len(seen), "bad", bad, "max", max(seen, default=-1), flush=True)
sys.stdin.readline()
"#;

/// kill -9 of an accelerated UDP receiver while the peer sends to it: the peer's connected
/// socket learns of it from the kernel's port unreachable (ECONNREFUSED), the flows map holds
/// nothing of the dead process, and a new receiver takes the port at once.
#[test]
fn a_udp_receiver_killed_mid_stream_is_refused_to_its_sender_and_its_port_taken_at_once() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let ip = topo.accel.ip;
    let mut rx =
        spawn_accelerated(&topo, &["EXASOCK_DEBUG=1"], &["python3", "-c", PY_UDP_COUNT, &ip.to_string(), "7602"]);
    rx.wait_for_line("ready", T).unwrap();
    let tx = topo.in_ns(Side::Peer, move || UdpSocket::bind((std::net::Ipv4Addr::UNSPECIFIED, 0))).unwrap().unwrap();
    tx.connect((ip, 7602)).unwrap();
    let datagram = |n: u32| {
        let mut d = n.to_be_bytes().to_vec();
        d.extend(std::iter::repeat_n((n % 251) as u8, 200));
        d
    };
    for n in 0..500 {
        tx.send(&datagram(n)).unwrap();
    }
    std::thread::sleep(Duration::from_millis(100));
    rx.kill_with(libc::SIGKILL);
    let _ = rx.finish(T);
    let killed = Instant::now();
    let mut n = 500;
    let refused = loop {
        match tx.send(&datagram(n)) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break killed.elapsed(),
            Err(e) => panic!("the sender saw {e}"),
            Ok(_) => {}
        }
        n += 1;
        assert!(killed.elapsed() < Duration::from_secs(5), "no port unreachable reached the sender");
        std::thread::sleep(Duration::from_millis(2));
    };
    assert!(
        flows(&topo).iter().all(|f| f.flow.local_port != 7602),
        "the dead receiver's flow is left: {:?}",
        flows(&topo)
    );
    // A new receiver takes the port at once and gets everything sent to it.
    let mut again =
        spawn_accelerated(&topo, &["EXASOCK_DEBUG=1"], &["python3", "-c", PY_UDP_COUNT, &ip.to_string(), "7602"]);
    again.wait_for_line("ready", T).unwrap();
    for n in 0..200 {
        tx.send(&datagram(n)).unwrap();
    }
    tx.send(b"end").unwrap();
    let got = again.wait_for_line("got", T).unwrap();
    assert_eq!(got, "got 200 bad 0 max 199", "after a refusal {refused:?} after the kill");
    let out = again.finish(T).unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("enabled bypass"), "the new receiver was not accelerated");
}

/// Streams to HOST:PORT until a send fails, then prints the exception's name.
const PY_STREAM_OUT: &str = r#"
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
print("connected", flush=True)
block = bytes(range(256)) * 256
try:
    while True:
        s.sendall(block)
except OSError as e:
    print("failed", type(e).__name__, flush=True)
"#;

/// kill -9 of the kernel peer while an accelerated client streams to it: the client's send
/// fails as it fails on the kernel (the peer's kernel resets the connection: ECONNRESET, or
/// EPIPE once the reset was already seen), within moments, never a hang.
#[test]
fn a_killed_peer_fails_the_accelerated_sender_as_on_the_kernel() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let peer = topo.peer.ip.to_string();
    let mut outcomes = Vec::new();
    for (i, accelerated) in [false, true].into_iter().enumerate() {
        let port = (7603 + i).to_string();
        // A peer that reads slowly, so its queue holds data when it dies.
        let mut sink = topo
            .spawn(
                Side::Peer,
                &["python3", "-c", "import socket,sys,time\nl=socket.create_server((sys.argv[1],int(sys.argv[2])))\nprint('ready',flush=True)\nc,_=l.accept()\nwhile True:\n    c.recv(1000); time.sleep(0.01)", &peer, &port],
                T,
            )
            .unwrap();
        sink.wait_for_line("ready", T).unwrap();
        let argv = ["python3", "-c", PY_STREAM_OUT, &peer, &port];
        let mut client: NsChild = if accelerated {
            spawn_accelerated(&topo, &["EXASOCK_DEBUG=1"], &argv)
        } else {
            topo.spawn(Side::Accel, &argv, T).unwrap()
        };
        client.wait_for_line("connected", T).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        sink.kill_with(libc::SIGKILL);
        let _ = sink.finish(T);
        let killed = Instant::now();
        let failed = client.wait_for_line("failed", Duration::from_secs(10)).unwrap();
        let took = killed.elapsed();
        let out = client.finish(T).unwrap();
        if accelerated {
            assert!(String::from_utf8_lossy(&out.stderr).contains("enabled bypass"), "not accelerated");
        }
        assert!(took < Duration::from_secs(5), "the sender noticed after {took:?}");
        outcomes.push(failed);
    }
    for o in &outcomes {
        assert!(
            o == "failed ConnectionResetError" || o == "failed BrokenPipeError",
            "kernel, then exasock: {outcomes:?}"
        );
    }
}

/// A receiver that stops (SIGSTOP: the program and exasock's worker both) while the peer keeps
/// sending: the ring and the socket queue fill, every datagram lost is counted (the socket's
/// queue-full drops and the ring's no-buffer drops, as exasock-stat shows them), nothing that
/// arrives is corrupt or doubled, and once it runs again it receives everything sent after.
#[test]
fn a_stopped_receiver_loses_only_what_is_counted_and_receives_again_when_resumed() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let ip = topo.accel.ip;
    let mut rx =
        spawn_accelerated(&topo, &["EXASOCK_DEBUG=1"], &["python3", "-c", PY_UDP_COUNT, &ip.to_string(), "7605"]);
    let ready = words(&rx.wait_for_line("ready", T).unwrap());
    let (pid, fd): (u32, i32) = (ready[1].parse().unwrap(), ready[2].parse().unwrap());
    let tx = topo.in_ns(Side::Peer, move || UdpSocket::bind((std::net::Ipv4Addr::UNSPECIFIED, 0))).unwrap().unwrap();
    tx.connect((ip, 7605)).unwrap();
    let datagram = |n: u32| {
        let mut d = n.to_be_bytes().to_vec();
        d.extend(std::iter::repeat_n((n % 251) as u8, 1000));
        d
    };
    rx.kill_with(libc::SIGSTOP);
    // Paced, so that the veth's backlog (netdev_max_backlog) never drops: only exasock can.
    const STOPPED: u32 = 20_000;
    for n in 0..STOPPED {
        tx.send(&datagram(n)).unwrap();
        if n % 64 == 63 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    rx.kill_with(libc::SIGCONT);
    std::thread::sleep(Duration::from_millis(500));
    // Reading resumes: everything sent now arrives.
    const AFTER: u32 = 300;
    for n in STOPPED..STOPPED + AFTER {
        tx.send(&datagram(n)).unwrap();
        if n % 64 == 63 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    tx.send(b"end").unwrap();
    let got = words(&rx.wait_for_line("got", T).unwrap());
    let (received, bad, max): (u64, u64, i64) =
        (got[1].parse().unwrap(), got[3].parse().unwrap(), got[5].parse().unwrap());
    assert_eq!(bad, 0, "datagrams arrived corrupt or twice");
    assert_eq!(
        max,
        i64::from(STOPPED + AFTER - 1),
        "the datagrams sent after the receiver resumed were not all received"
    );
    // Every datagram not received is counted (the record is refreshed every 100 ms).
    let mut entry = None;
    let counted = |e: &stat_format::reader::Entry| e.socket.drops_queue_full + e.process.drops_no_buffer;
    let all_counted = testbed::poll_until(Duration::from_secs(5), "the receiver's drops", || {
        entry = published(&topo, pid, fd);
        Ok(entry.as_ref().is_some_and(|e| received + counted(e) >= u64::from(STOPPED + AFTER)))
    });
    let out = rx.finish(T).unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("enabled bypass"), "not accelerated");
    let e = entry.expect("the receiver's socket was published");
    eprintln!(
        "sent {}: {received} received, {} queue full, {} no buffer",
        STOPPED + AFTER,
        e.socket.drops_queue_full,
        e.process.drops_no_buffer
    );
    assert!(counted(&e) > 0, "nothing was dropped: the test did not fill the queue ({received} received)");
    assert!(
        all_counted.is_ok() && received + counted(&e) == u64::from(STOPPED + AFTER),
        "sent {}: {received} received, {} queue full, {} no buffer",
        STOPPED + AFTER,
        e.socket.drops_queue_full,
        e.process.drops_no_buffer
    );
}
