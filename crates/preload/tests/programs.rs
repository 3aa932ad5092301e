//! Well-known, unmodified TCP programs under libexasock_preload.so in the accelerated namespace,
//! against kernel clients and servers in the peer namespace: the bytes are exact, EXASOCK_DEBUG
//! shows the bypass, and the accelerated namespace's kernel carries (almost) none of their
//! segments. CI runs small sizes; bench/apps.sh runs the full ones and times them.

use common::{assert_kernel_carried_at_most, attached, spawn_accelerated, tcp_segments};
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
    // The remainder: socat exits as soon as its side is closed, and its connection goes to the
    // kernel (TCP_REPAIR) with whatever the peer had not acknowledged yet (its last ACKs may be
    // in flight), which the kernel sends again, with the FIN handshake: a few segments of the
    // 11,600 each way.
    assert_kernel_carried_at_most(&topo, before, 12, "socat");
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

/// An epoll (selectors) echo server: any number of connections, each answered line by line.
const PY_EPOLL_ECHO: &str = r#"
import selectors, socket, sys
sel = selectors.DefaultSelector()
l = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind((sys.argv[1], int(sys.argv[2])))
l.listen(4096)
l.setblocking(False)
sel.register(l, selectors.EVENT_READ)
print("ready", flush=True)
while True:
    for key, _ in sel.select():
        s = key.fileobj
        if s is l:
            while True:
                try:
                    c, _ = l.accept()
                except BlockingIOError:
                    break
                c.setblocking(False)
                sel.register(c, selectors.EVENT_READ)
            continue
        try:
            d = s.recv(4096)
        except ConnectionError:
            d = b""
        if d:
            s.sendall(d)
        else:
            sel.unregister(s)
            s.close()
"#;

/// The peer's client: opens COUNT connections, sends one line on each and checks the echo,
/// then ROUNDS more on connections picked at random; prints the mean time per request over
/// the first 100 connections and over all of them, then "ok".
const PY_MANY_CLIENT: &str = r#"
import random, resource, socket, sys, time
host, port, count, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
resource.setrlimit(resource.RLIMIT_NOFILE, (count + 100, count + 100))
conns = []
for i in range(count):
    try:
        conns.append(socket.create_connection((host, port), timeout=20))
    except OSError as e:
        sys.exit("connection %d: %s" % (i, e))
def ask(i, n):
    msg = b"%d %d\n" % (i, n)
    conns[i].sendall(msg)
    got = b""
    while len(got) < len(msg):
        got += conns[i].recv(64)
    assert got == msg, (got, msg)
for i in range(count):
    ask(i, 0)
def timed(k):
    t = time.perf_counter()
    for n in range(rounds):
        ask(random.randrange(k), n)
    return (time.perf_counter() - t) / rounds * 1e6
print("per-request us: first 100 %.1f, all %d %.1f" % (timed(100), count, timed(count)), flush=True)
print("ok", flush=True)
"#;

/// The program a spawned wrapper runs: the last process down its chain of first children
/// (`timeout`, `ip netns exec`, `env` exec or fork their way to it).
fn program_pid(mut pid: u32) -> u32 {
    while let Some(child) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .ok()
        .and_then(|c| c.split_whitespace().next().and_then(|p| p.parse().ok()))
    {
        pid = child;
    }
    pid
}

/// VmRSS of process `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// An epoll server under exasock holds 10,000 concurrent connections from the peer: each
/// echoes its line, requests on connections picked at random all come back, and the server's
/// memory grows modestly per connection (printed; the bench times the requests).
#[test]
fn an_epoll_server_holds_10000_connections() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let ip = topo.accel.ip.to_string();
    // No EXASOCK_DEBUG: 10,000 "enabled bypass" lines would fill the stderr pipe, which the
    // harness reads only at the end. The kernel's counters show the bypass instead.
    let mut server =
        spawn_accelerated(&topo, &["EXASOCK_SPIN_USEC=50"], &["python3", "-c", PY_EPOLL_ECHO, &ip, "7601"]);
    let opens = topo.counter(Side::Accel, "TcpPassiveOpens").unwrap();
    server.wait_for_line("ready", T).unwrap();
    let program = program_pid(server.pid());
    let before_rss = rss_kib(program);
    let before = tcp_segments(&topo);
    const COUNT: u32 = 10_000;
    let client =
        topo.spawn(Side::Peer, &["python3", "-c", PY_MANY_CLIENT, &ip, "7601", &COUNT.to_string(), "2000"], T).unwrap();
    let out = client.finish(Duration::from_secs(120)).unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    if !(out.status.success() && text.contains("ok")) {
        server.kill_with(libc::SIGTERM);
        let said = server.finish(T).map(|o| String::from_utf8_lossy(&o.stderr).into_owned()).unwrap_or_default();
        let said: Vec<&str> = said.lines().filter(|l| !l.contains("enabled bypass")).collect();
        panic!("the client failed: {text}{}\nthe server said: {said:?}", String::from_utf8_lossy(&out.stderr));
    }
    let after_rss = rss_kib(program);
    let per_connection = (after_rss.saturating_sub(before_rss)) * 1024 / u64::from(COUNT);
    eprintln!(
        "10,000 connections: {} server RSS {before_rss} -> {after_rss} KiB, {per_connection} bytes per connection",
        text.lines().next().unwrap_or("")
    );
    // The connections' own memory: the stack's connection and its buffers, the program's
    // socket object, our placeholder's bookkeeping; a leak or full-size buffers would be far more.
    assert!(per_connection < 64 * 1024, "{per_connection} bytes per connection");
    assert_kernel_carried_at_most(&topo, before, 3, "the epoll server");
    assert_eq!(topo.counter(Side::Accel, "TcpPassiveOpens").unwrap(), opens, "the kernel accepted connections");
    server.kill_with(libc::SIGTERM);
    let _ = server.finish(T);
}

/// dnsmasq in its default mode (one socket on 0.0.0.0:53 that learns each query's interface
/// and destination from IP_PKTINFO and sends each answer from that address with IP_PKTINFO)
/// answers `dig` from the peer accelerated, from the address dig asked (dig warns of a reply
/// "from unexpected source" otherwise), with the accelerated namespace's kernel receiving none
/// of the queries; a query over loopback reaches it through the kernel socket, with the
/// kernel's control messages.
#[test]
fn dnsmasq_in_its_default_mode_answers_dig_accelerated() {
    let Some(_serial) = testbed::require() else { return };
    if !installed("dnsmasq") || !installed("dig") {
        return;
    }
    let topo = attached();
    let pid_file = std::env::temp_dir().join(format!("exasock-dnsmasq-{}.pid", std::process::id()));
    let pid_arg = format!("--pid-file={}", pid_file.display());
    let server = spawn_accelerated(
        &topo,
        &ENV,
        &[
            "dnsmasq",
            "--keep-in-foreground",
            "--log-facility=-",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--user=root",
            &pid_arg,
            "--address=/exasock.test/10.9.8.7",
            "--host-record=peer.exasock.test,10.9.8.6",
        ],
    );
    topo.wait_listening(Side::Accel, Proto::Udp, 53, T).unwrap();
    // The kernel socket is bound before exasock has claimed its flow: wait for the claim.
    let claimed = || {
        let it = topo.accel.iface.clone();
        let status = topo.in_ns(Side::Accel, nic::control::status).unwrap().unwrap();
        let flows = status.into_iter().find(|s| s.iface == it).map(|s| s.flows).unwrap_or_default();
        flows.iter().any(|f| f.flow.protocol == nic::steering::Protocol::Udp && f.flow.local_port == 53)
    };
    let deadline = std::time::Instant::now() + T;
    while !claimed() {
        assert!(std::time::Instant::now() < deadline, "dnsmasq's port 53 was never claimed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let ip = format!("@{}", topo.accel.ip);
    let dig = |side: Side, server: &str, name: &str| {
        let argv = ["dig", server, name, "+tries=1", "+time=3", "+notcp"];
        let out = topo.spawn(side, &argv, T).unwrap().finish(T).unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        assert!(!text.contains("unexpected source"), "the answer came from another address:\n{text}");
        let short = ["dig", server, name, "+tries=1", "+time=3", "+notcp", "+short"];
        let out = topo.spawn(side, &short, T).unwrap().finish(T).unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let before = topo.counter(Side::Accel, "UdpInDatagrams").unwrap();
    for _ in 0..3 {
        assert_eq!(dig(Side::Peer, &ip, "www.exasock.test"), "10.9.8.7");
        assert_eq!(dig(Side::Peer, &ip, "peer.exasock.test"), "10.9.8.6");
    }
    let received = topo.counter(Side::Accel, "UdpInDatagrams").unwrap() - before;
    assert_eq!(received, 0, "the accelerated namespace's kernel received dnsmasq's queries");
    // Over loopback: the kernel socket behind the accelerated one.
    assert_eq!(dig(Side::Accel, "@127.0.0.1", "www.exasock.test"), "10.9.8.7");
    let err = stopped_accelerated(server, libc::SIGTERM, 1, "dnsmasq");
    let _ = std::fs::remove_file(&pid_file);
    assert!(err.contains("started, version"), "{err}");
}
