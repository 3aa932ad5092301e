//! exasock-stat against real programs under libexasock_preload.so in the namespace topology:
//! its output, line by line, is the text the original's formats (behaviour §7) give for the
//! sockets those programs hold; `--json` parses back to the same values; a killed process's
//! sockets vanish and its file is swept.

#[path = "../../preload/tests/common/mod.rs"]
mod common;

use common::{attached, spawn_accelerated};
use std::io::Write;
use std::net::{SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};
use testbed::{Side, Topology};

const T: Duration = Duration::from_secs(30);
const STAT: &str = env!("CARGO_BIN_EXE_exasock-stat");

/// One row of the list, as the original's printf formats it.
fn row(proto: &str, recv_q: i64, send_q: i64, local: &str, foreign: &str, state: &str) -> String {
    format!(" {proto:<5} | {recv_q:<8} | {send_q:<8} | {local:<24} | {foreign:<24} | {state:<12}")
}

fn header(extended: bool) -> String {
    let mut h = row("Proto", 0, 0, "Local Address", "Foreign Address", "State").replacen(
        " | 0        | 0        |",
        " | Recv-Q   | Send-Q   |",
        1,
    );
    if extended {
        h.push_str(&format!(" | {:<12} | {:<10} | {}", "User", "PID:FD", "Program"));
    }
    h
}

fn stat(topo: &Topology, args: &[&str]) -> String {
    let mut argv = vec![STAT];
    argv.extend_from_slice(args);
    topo.run(Side::Accel, &argv, T).unwrap()
}

/// Runs exasock-stat until its output is `want` (counters are refreshed every 100 ms).
fn stat_until(topo: &Topology, args: &[&str], want: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = stat(topo, args);
        if got == want {
            return;
        }
        if Instant::now() > deadline {
            let (g, w): (Vec<_>, Vec<_>) = (got.lines().collect(), want.lines().collect());
            for i in 0..g.len().max(w.len()) {
                assert_eq!(g.get(i), w.get(i), "line {i} of `exasock-stat {}`:\n{got}", args.join(" "));
            }
            assert_eq!(got, want);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Two UDP sockets: one bound (fd A, port 7900) and one connected to the peer (fd B).
const PY_UDP: &str = "
import os, socket, sys
a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
a.bind((sys.argv[1], 7900))
b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
b.bind((sys.argv[1], 0))
b.connect((sys.argv[2], 7901))
print('ready', a.fileno(), b.fileno(), b.getsockname()[1], os.getpid(), flush=True)
sys.stdin.readline()
";

fn words(line: &str) -> Vec<String> {
    line.split_whitespace().map(String::from).collect()
}

#[test]
fn udp_sockets_are_listed_as_the_original_formats_them_and_vanish_when_killed() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let (ip, peer) = (topo.accel.ip.to_string(), topo.peer.ip.to_string());
    let mut py = spawn_accelerated(&topo, &[], &["python3", "-c", PY_UDP, &ip, &peer]);
    let ready = words(&py.wait_for_line("ready", T).unwrap());
    let (fd_a, fd_b, port_b, pid) = (&ready[1], &ready[2], &ready[3], &ready[4]);
    let a = row("UDP", 0, 0, &format!("{ip}:7900"), "*:*", "-");
    let b = row("UDP", 0, 0, &format!("{ip}:{port_b}"), &format!("{peer}:7901"), "ESTABLISHED");
    let title = "\nActive ExaNIC Sockets accelerated connections";
    stat_until(&topo, &[], &format!("{title} (servers and established):\n{}\n{a}\n{b}\n\n", header(false)));
    stat_until(&topo, &["-u", "-l"], &format!("{title} (only servers):\n{}\n{a}\n\n", header(false)));
    stat_until(&topo, &["-c"], &format!("{title} (w/o servers):\n{}\n{b}\n\n", header(false)));
    stat_until(&topo, &["-t"], &format!("{title} (servers and established):\n{}\n\n", header(false)));
    let ext = |r: &str, fd: &str| format!("{r} | {:<12} | {:<10} | python3", "root", format!("{pid}:{fd}"));
    stat_until(
        &topo,
        &["-e"],
        &format!("{title} (servers and established):\n{}\n{}\n{}\n\n", header(true), ext(&a, fd_a), ext(&b, fd_b)),
    );
    // -s, with -e; and the original's "not found" line.
    let single = format!(
        "Socket (PID:FD): {pid}:{fd_b}\n    Proto: UDP  State: ESTABLISHED\n    Local Address: {ip}:{port_b}\n    Foreign Address: {peer}:7901\n    Recv-Q: 0\n    User: root  Program: python3\n\n"
    );
    stat_until(&topo, &["-s", &format!("{pid}:{fd_b}"), "-e"], &single);
    stat_until(&topo, &["--socket", &format!("{pid}:{fd_b}"), "-e"], &single);
    stat_until(
        &topo,
        &["-s", &format!("{pid}:99")],
        &format!("Socket {pid}:99 not found (not an active accelerated socket)\n\n"),
    );
    // Another network namespace lists none of them.
    let empty = format!("{title} (servers and established):\n{}\n\n", header(false));
    assert_eq!(topo.run(Side::Peer, &[STAT], T).unwrap(), empty);
    // --watch redraws (cleared screen, a title, the listing) until stopped.
    let watch = topo.spawn(Side::Accel, &[STAT, "--watch", "0.2", "-u", "-l"], Duration::from_millis(900)).unwrap();
    let out = String::from_utf8_lossy(&watch.finish(T).unwrap().stdout).into_owned();
    let frames: Vec<&str> = out.split("\x1b[H\x1b[2J").filter(|f| !f.is_empty()).collect();
    assert!(frames.len() >= 2, "{out:?}");
    assert!(frames[0].starts_with("Every 0.2s: "), "{out:?}");
    assert!(frames[0].ends_with(&format!("{title} (only servers):\n{}\n{a}\n\n", header(false))), "{out:?}");

    // A datagram nobody reads: Recv-Q counts it with its overhead, in the list and in --json.
    let s = topo.in_ns(Side::Peer, {
        let peer = topo.peer.ip;
        move || UdpSocket::bind((peer, 0))
    });
    let s = s.unwrap().unwrap();
    s.send_to(&[7u8; 100], SocketAddrV4::new(topo.accel.ip, 7900)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let json = loop {
        let out = stat(&topo, &["--json", "-u", "-l"]);
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        if v["recv_q"].as_u64().unwrap() > 0 || Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(json["recv_q"].as_u64().unwrap() >= 100, "{json}");
    assert_eq!(json["pid"].to_string(), *pid);
    assert_eq!(json["fd"].to_string(), *fd_a);
    assert_eq!(json["kind"], "udp");
    assert_eq!(json["state"], serde_json::Value::Null);
    assert_eq!(json["local"], format!("{ip}:7900"));
    assert_eq!(json["local_port"], 7900);
    assert_eq!(json["foreign"], "*:*");
    assert_eq!(json["program"], "python3");
    assert_eq!(json["rx_datagrams"], 1);
    let q = json["recv_q"].as_u64().unwrap() as i64;
    let a_queued = row("UDP", q, 0, &format!("{ip}:7900"), "*:*", "-");
    let drops = " internal diagnostics:\n     Drops: 0 (Receive Queue Full: 0, Checksum: 0, No Buffer: 0)\n\n";
    stat_until(
        &topo,
        &["-u", "-l", "-i"],
        &format!("{title} (only servers):\n{}\n{a_queued}\n{drops}\n", header(false)),
    );
    // --json: every selected socket, one object a line.
    let all: Vec<serde_json::Value> =
        stat(&topo, &["--json"]).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(all.len(), 2);
    assert_eq!(all[1]["kind"], "udp_conn");
    assert_eq!(all[1]["state"], "ESTABLISHED");
    assert_eq!(all[1]["foreign_port"], 7901);

    // kill -9: no exit path runs; the next listing shows nothing and sweeps the file.
    let dir = std::path::Path::new(stat_format::naming::DIR);
    let ours = |d: &std::path::Path| {
        std::fs::read_dir(d).unwrap().flatten().any(|e| e.file_name().to_string_lossy().starts_with(&format!("{pid}-")))
    };
    assert!(ours(dir), "the process publishes a file");
    py.kill_with(libc::SIGKILL);
    let _ = py.finish(T);
    stat_until(&topo, &[], &format!("{title} (servers and established):\n{}\n\n", header(false)));
    assert!(!ours(dir), "the dead process's file was swept");
}

/// A TCP listener on 7910 with one accepted connection whose 5 received bytes stay unread.
const PY_TCP: &str = "
import os, socket, sys
l = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind((sys.argv[1], 7910))
l.listen(8)
print('listening', l.fileno(), os.getpid(), flush=True)
c, peer = l.accept()
print('accepted', c.fileno(), peer[1], flush=True)
sys.stdin.readline()
";

#[test]
fn a_tcp_listener_and_its_connection_are_listed_with_their_queues_and_diagnostics() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let (ip, peer) = (topo.accel.ip.to_string(), topo.peer.ip.to_string());
    let mut py = spawn_accelerated(&topo, &[], &["python3", "-c", PY_TCP, &ip]);
    let listening = words(&py.wait_for_line("listening", T).unwrap());
    let (fd_l, pid) = (listening[1].clone(), listening[2].clone());
    let accel = topo.accel.ip;
    let mut client = topo
        .in_ns(Side::Peer, move || std::net::TcpStream::connect_timeout(&SocketAddrV4::new(accel, 7910).into(), T))
        .unwrap()
        .unwrap();
    client.write_all(b"hello").unwrap();
    let accepted = words(&py.wait_for_line("accepted", T).unwrap());
    let (fd_c, peer_port) = (&accepted[1], &accepted[2]);
    let title = "\nActive ExaNIC Sockets accelerated connections";
    let l = row("TCP", 0, 0, &format!("{ip}:7910"), "*:*", "LISTEN");
    let c = row("TCP", 5, 0, &format!("{ip}:7910"), &format!("{peer}:{peer_port}"), "ESTABLISHED");
    stat_until(&topo, &[], &format!("{title} (servers and established):\n{}\n{l}\n{c}\n\n", header(false)));
    stat_until(&topo, &["-l"], &format!("{title} (only servers):\n{}\n{l}\n\n", header(false)));
    stat_until(&topo, &["-u"], &format!("{title} (servers and established):\n{}\n\n", header(false)));

    // -i: the listener's requests, the connection's diagnostics; the values the text shows are
    // the ones --json gives.
    // The listener's counters are refreshed every 100 ms (its record was written when it
    // turned accelerated; the connection's when it was accepted): wait for the refresh.
    let deadline = Instant::now() + Duration::from_secs(5);
    let json: Vec<serde_json::Value> = loop {
        let json: Vec<serde_json::Value> =
            stat(&topo, &["--json", "-t"]).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        if json.first().is_some_and(|l| l["conn_established"].as_u64() == Some(1)) || Instant::now() > deadline {
            break json;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(json.len(), 2);
    let (jl, jc) = (&json[0], &json[1]);
    assert_eq!((jl["kind"].as_str(), jl["fd"].to_string()), (Some("tcp_listen"), fd_l.clone()));
    assert_eq!((jl["conn_requests"].as_u64(), jl["conn_established"].as_u64()), (Some(1), Some(1)));
    assert_eq!((jc["kind"].as_str(), jc["fd"].to_string()), (Some("tcp_conn"), fd_c.clone()));
    assert_eq!((jc["rx_bytes"].as_u64(), jc["rx_delivered_bytes"].as_u64()), (Some(5), Some(0)));
    assert_eq!(jc["recv_q"], 5);
    assert!(jc["mss_tx"].as_u64().unwrap() > 0 && jc["cwnd"].as_u64().unwrap() > 0, "{jc}");
    let n = |k: &str| jc[k].as_u64().unwrap();
    let diag = format!(
        " internal diagnostics:
     Rx Bytes: 5 (Delivered: 0)
     Tx Bytes: 0 (Acked: 0)
     Retransmitted Segments: 0 (Fast Retransmit: 0, Timeouts: 0)
     Retransmitted Bytes: 0
     Window (peer,local): {},{}  Scale (peer,local): {},{}
     Congestion Window: {}  Slow Start Threshold: {}  MSS (Tx,Rx): {},{}
     Drops: 0 (Receive Queue Full: 0, Checksum: 0, No Buffer: 0)
",
        n("window_peer"),
        n("window_local"),
        n("wscale_peer"),
        n("wscale_local"),
        n("cwnd"),
        n("ssthresh"),
        n("mss_tx"),
        n("mss_rx")
    );
    let ldiag = " internal diagnostics:
     Connection Requests: 1 (Established: 1)
     Drops: 0 (Receive Queue Full: 0, Checksum: 0, No Buffer: 0)
";
    stat_until(
        &topo,
        &["-t", "-i"],
        &format!("{title} (servers and established):\n{}\n{l}\n{ldiag}\n{c}\n{diag}\n\n", header(false)),
    );
    let single = format!(
        "Socket (PID:FD): {pid}:{fd_c}\n    Proto: TCP  State: ESTABLISHED\n    Local Address: {ip}:7910\n    Foreign Address: {peer}:{peer_port}\n    Recv-Q: 5  Send-Q: 0\n{}\n",
        diag.lines().map(|l| format!("   {l}\n")).collect::<String>()
    );
    stat_until(&topo, &["-s", &format!("{pid}:{fd_c}"), "-i"], &single);
    drop(client);
    py.kill_with(libc::SIGTERM);
    let _ = py.finish(T);
}
