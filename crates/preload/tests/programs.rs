//! Well-known, unmodified TCP programs under libexasock_preload.so in the accelerated namespace,
//! against kernel clients and servers in the peer namespace: the bytes are exact, EXASOCK_DEBUG
//! shows the bypass, and the accelerated namespace's kernel carries (almost) none of their
//! segments. CI runs small sizes; bench/apps.sh runs the full ones and times them.

use common::{attached, spawn_accelerated, tcp_segments};
use std::io::{Read, Write};
use std::net::{SocketAddrV4, TcpStream};
use std::time::Duration;
use testbed::{Proto, Side, Topology};

mod common;

const T: Duration = Duration::from_secs(60);
const ENV: [&str; 2] = ["EXASOCK_DEBUG=1", "EXASOCK_SPIN_USEC=50"];

/// Whether `program` is installed (scripts/setup.sh installs them all); a test without it says
/// so and skips.
fn installed(program: &str) -> bool {
    let found = std::process::Command::new("sh").args(["-c", &format!("command -v {program}")]).output();
    let ok = found.is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipped: {program} is not installed (scripts/setup.sh installs it)");
    }
    ok
}

/// What the accelerated namespace's kernel carried of TCP since `before`: at most `limit`
/// segments each way (the remainder each test names: a hand-over's last ACK, say).
fn assert_kernel_carried_at_most(topo: &Topology, before: (u64, u64), limit: u64, what: &str) {
    let (inn, out) = tcp_segments(topo);
    assert!(
        inn - before.0 <= limit && out - before.1 <= limit,
        "the accel namespace's kernel carried {what}'s TCP: {} segments in, {} out",
        inn - before.0,
        out - before.1
    );
}

/// Stops a server under exasock with `signal` and checks that it accelerated at least
/// `sockets` sockets.
fn stopped_accelerated(mut server: testbed::NsChild, signal: i32, sockets: usize, what: &str) -> String {
    server.kill_with(signal);
    let out = server.finish(T).unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(err.matches("enabled bypass").count() >= sockets, "{what} was not accelerated:\n{err}");
    err
}

fn pattern(len: usize, seed: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 31 + seed) % 251) as u8).collect()
}

/// Sends `data` to `ip:port` from the peer namespace, half-closes, and returns all it reads back.
fn exchange(topo: &Topology, ip: std::net::Ipv4Addr, port: u16, data: Vec<u8>) -> Vec<u8> {
    let mut s = topo.in_ns(Side::Peer, move || TcpStream::connect(SocketAddrV4::new(ip, port))).unwrap().unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        w.write_all(&data).unwrap();
        w.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    writer.join().unwrap();
    got
}

/// socat relaying a connection to `cat` it runs beside it (EXEC: fork and exec of a child that
/// talks to socat through a socketpair): 8 MB each way, echoed byte for byte.
#[test]
fn socat_relays_a_connection_through_exec_cat() {
    let Some(_serial) = testbed::require() else { return };
    if !installed("socat") {
        return;
    }
    let topo = attached();
    let server = spawn_accelerated(&topo, &ENV, &["socat", "TCP-LISTEN:7501,reuseaddr", "EXEC:cat"]);
    topo.wait_listening(Side::Accel, Proto::Tcp, 7501, T).unwrap();
    let before = tcp_segments(&topo);
    let data = pattern(8 << 20, 1);
    let got = exchange(&topo, topo.accel.ip, 7501, data.clone());
    assert!(got == data, "socat's echo differs ({} of {} bytes)", got.len(), data.len());
    assert_kernel_carried_at_most(&topo, before, 3, "socat");
    let out = server.finish(T).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.matches("enabled bypass").count() >= 2, "socat was not accelerated:\n{err}");
}

/// redis-server (its default listeners: 0.0.0.0 and ::) with redis-benchmark from the peer,
/// SET and GET with 20 clients.
#[test]
fn redis_serves_redis_benchmark_accelerated() {
    let Some(_serial) = testbed::require() else { return };
    if !installed("redis-server") || !installed("redis-benchmark") {
        return;
    }
    let topo = attached();
    let server = spawn_accelerated(
        &topo,
        &ENV,
        &["redis-server", "--port", "7502", "--save", "", "--appendonly", "no", "--protected-mode", "no"],
    );
    topo.wait_listening(Side::Accel, Proto::Tcp, 7502, T).unwrap();
    let before = tcp_segments(&topo);
    let ip = topo.accel.ip.to_string();
    let argv = ["redis-benchmark", "-h", &ip, "-p", "7502", "-t", "set,get", "-n", "20000", "-c", "20", "-q"];
    let bench = topo.spawn(Side::Peer, &argv, T).unwrap().finish(T).unwrap();
    let text = String::from_utf8_lossy(&bench.stdout);
    assert!(bench.status.success(), "redis-benchmark failed: {text}{}", String::from_utf8_lossy(&bench.stderr));
    for op in ["SET: ", "GET: "] {
        assert!(text.contains(op) && text.contains("requests per second"), "no {op} result: {text}");
    }
    // A value written and read back whole.
    let value: String = (0..20_000).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    let cli = |args: &[&str]| {
        let mut argv = vec!["redis-cli", "-h", ip.as_str(), "-p", "7502"];
        argv.extend_from_slice(args);
        let out = topo.spawn(Side::Peer, &argv, T).unwrap().finish(T).unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(cli(&["SET", "big", &value]), "OK");
    assert!(cli(&["GET", "big"]) == value, "the value read back differs");
    assert_kernel_carried_at_most(&topo, before, 2, "redis");
    eprintln!("redis under exasock: {}", text.trim().replace('\n', "; "));
    stopped_accelerated(server, libc::SIGTERM, 21, "redis-server");
}

/// A memcached text-protocol client for the peer: sets COUNT keys of varied sizes, reads them
/// back with multi-key gets, and prints "ok COUNT" when every value came back exact.
const PY_MEMCACHED_CLIENT: &str = r#"
import socket, sys
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.create_connection((host, port), timeout=20)
f = s.makefile("rb")
def value(i):
    return (b"%d-" % i) * (1 + i % 300)
for i in range(count):
    v = value(i)
    s.sendall(b"set key%d 0 0 %d\r\n%s\r\n" % (i, len(v), v))
    assert f.readline() == b"STORED\r\n"
good = 0
for start in range(0, count, 100):
    keys = [b"key%d" % i for i in range(start, min(count, start + 100))]
    s.sendall(b"get " + b" ".join(keys) + b"\r\n")
    for k in keys:
        head = f.readline().split()
        assert head[0] == b"VALUE" and head[1] == k, head
        data = f.read(int(head[3]) + 2)[:-2]
        good += data == value(int(k[3:]))
    assert f.readline() == b"END\r\n"
print("ok", good, flush=True)
"#;

/// memcached with four threads: a peer client sets 3,000 keys and reads them all back.
#[test]
fn memcached_with_four_threads_stores_and_returns_every_key() {
    let Some(_serial) = testbed::require() else { return };
    if !installed("memcached") {
        return;
    }
    let topo = attached();
    let server =
        spawn_accelerated(&topo, &ENV, &["memcached", "-t", "4", "-p", "7503", "-U", "0", "-u", "root", "-m", "256"]);
    topo.wait_listening(Side::Accel, Proto::Tcp, 7503, T).unwrap();
    let before = tcp_segments(&topo);
    let ip = topo.accel.ip.to_string();
    let client = topo
        .spawn(Side::Peer, &["python3", "-c", PY_MEMCACHED_CLIENT, &ip, "7503", "3000"], T)
        .unwrap()
        .finish(T)
        .unwrap();
    let text = String::from_utf8_lossy(&client.stdout);
    assert!(client.status.success(), "the client failed: {text}{}", String::from_utf8_lossy(&client.stderr));
    assert_eq!(text.trim(), "ok 3000", "values read back");
    assert_kernel_carried_at_most(&topo, before, 2, "memcached");
    stopped_accelerated(server, libc::SIGTERM, 2, "memcached");
}

/// sockperf's TCP server under exasock, a kernel sockperf client pinging it for two seconds.
#[test]
fn sockperf_tcp_ping_pong_against_an_accelerated_server() {
    let Some(_serial) = testbed::require() else { return };
    if !installed("sockperf") {
        return;
    }
    let topo = attached();
    let ip = topo.accel.ip.to_string();
    let server = spawn_accelerated(&topo, &ENV, &["sockperf", "sr", "--tcp", "-i", &ip, "-p", "7504"]);
    topo.wait_listening(Side::Accel, Proto::Tcp, 7504, T).unwrap();
    let before = tcp_segments(&topo);
    let argv = ["sockperf", "pp", "--tcp", "-i", &ip, "-p", "7504", "-t", "2", "-m", "32"];
    let client = topo.spawn(Side::Peer, &argv, T).unwrap().finish(T).unwrap();
    let text = String::from_utf8_lossy(&client.stdout);
    assert!(client.status.success(), "sockperf failed: {text}{}", String::from_utf8_lossy(&client.stderr));
    let summary = text.lines().find(|l| l.contains("Summary: Latency is")).unwrap_or_else(|| panic!("{text}"));
    assert!(text.contains("ReceivedMessages=") && !text.contains("ReceivedMessages=0 "), "{text}");
    assert_kernel_carried_at_most(&topo, before, 2, "sockperf");
    eprintln!("sockperf TCP, accelerated server: {summary}");
    stopped_accelerated(server, libc::SIGTERM, 2, "sockperf sr");
}

/// The accelerated side as a client: wget, curl and python's urllib download 5 MB each from a
/// kernel HTTP server in the peer namespace.
#[test]
fn wget_curl_and_urllib_download_from_a_kernel_server_accelerated() {
    let Some(_serial) = testbed::require() else { return };
    if !installed("wget") || !installed("curl") {
        return;
    }
    let topo = attached();
    let dir = std::env::temp_dir().join(format!("exasock-clients-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let body = pattern(5_000_000, 7);
    std::fs::write(dir.join("body.bin"), &body).unwrap();
    let peer_ip = topo.peer.ip.to_string();
    let dir_s = dir.display().to_string();
    let _http = topo
        .spawn(Side::Peer, &["python3", "-m", "http.server", "--bind", &peer_ip, "--directory", &dir_s, "7505"], T)
        .unwrap();
    topo.wait_listening(Side::Peer, Proto::Tcp, 7505, T).unwrap();
    let url = format!("http://{peer_ip}:7505/body.bin");
    let out = dir.join("got.bin").display().to_string();
    let urllib =
        format!("import urllib.request, sys; open(sys.argv[1], 'wb').write(urllib.request.urlopen('{url}').read())");
    let clients: [(&str, Vec<&str>); 3] = [
        ("wget", vec!["wget", "-q", "-O", &out, &url]),
        ("curl", vec!["curl", "-sS", "-o", &out, &url]),
        ("urllib", vec!["python3", "-c", &urllib, &out]),
    ];
    for (name, argv) in clients {
        let _ = std::fs::remove_file(&out);
        let before = tcp_segments(&topo);
        let run = spawn_accelerated(&topo, &ENV, &argv).finish(T).unwrap();
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(run.status.success(), "{name} failed: {err}");
        assert!(err.contains("enabled bypass"), "{name} was not accelerated: {err}");
        assert!(std::fs::read(&out).unwrap() == body, "{name}'s download differs");
        // At most the end of the connection, handed to the kernel at exit (its last ACK).
        assert_kernel_carried_at_most(&topo, before, 3, name);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
