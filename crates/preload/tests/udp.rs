//! Unmodified programs under libexasock_preload.so in the namespace topology: their UDP sockets
//! move onto the stack, everything else stays on the kernel, and they cannot tell.

use common::{attached, flows, library, spawn_accelerated, PeerEcho};
use std::net::{SocketAddrV4, UdpSocket};
use std::time::Duration;
use testbed::{Side, Topology};

mod common;

const T: Duration = Duration::from_secs(30);

fn peer_socket(topo: &Topology, port: u16) -> UdpSocket {
    let (peer, accel) = (topo.peer.ip, topo.accel.ip);
    let s = topo.in_ns(Side::Peer, move || UdpSocket::bind((peer, 0))).unwrap().unwrap();
    s.connect(SocketAddrV4::new(accel, port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s
}

/// A UDP echo server in Python, using only the socket module's plain calls.
const PY_ECHO: &str = "
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
if len(sys.argv) > 2 and sys.argv[2] == 'noaccel':
    s.setsockopt(0x200, 1, 1)
s.bind(('0.0.0.0', int(sys.argv[1])))
print('ready', flush=True)
while True:
    data, peer = s.recvfrom(65535)
    if data == b'quit':
        break
    s.sendto(data, peer)
try:
    s.setsockopt(0x200, 1, 1)
    print('disable: ok', flush=True)
except OSError as e:
    print('disable:', e.errno, flush=True)
";

#[test]
fn nc_receives_from_a_kernel_peer_with_the_bypass_line_and_the_kernel_sees_nothing() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let before = topo.counter(Side::Accel, "UdpInDatagrams").unwrap();
    let mut nc = spawn_accelerated(&topo, &["EXASOCK_DEBUG=1"], &["nc", "-u", "-l", "1234"]);
    testbed::poll_until(T, "nc's flow", || {
        let it = topo.accel.iface.clone();
        Ok(topo
            .in_ns(Side::Accel, nic::control::status)
            .unwrap()
            .map_err(std::io::Error::other)?
            .iter()
            .any(|s| s.iface == it && !s.flows.is_empty()))
    })
    .unwrap();
    let sock = peer_socket(&topo, 1234);
    for line in ["one\n", "two\n", "three\n"] {
        sock.send(line.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    nc.kill_with(libc::SIGTERM);
    let out = nc.finish(T).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "one\ntwo\nthree\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("exasock: enabled bypass on fd 3"), "stderr: {err}");
    assert_eq!(topo.counter(Side::Accel, "UdpInDatagrams").unwrap(), before, "the kernel saw the datagrams");
}

#[test]
fn a_python_udp_echo_server_runs_accelerated_byte_exact() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let before = topo.counter(Side::Accel, "UdpInDatagrams").unwrap();
    let mut echo = spawn_accelerated(&topo, &[], &["python3", "-c", PY_ECHO, "7800"]);
    echo.wait_for_line("ready", T).unwrap();
    let sock = peer_socket(&topo, 7800);
    let mut buf = vec![0u8; 65_536];
    for (i, len) in [0usize, 1, 100, 1472, 1473, 4000, 20_000, 65_507].iter().cycle().take(400).enumerate() {
        let data: Vec<u8> = (0..*len).map(|j| (i * 31 + j) as u8).collect();
        sock.send(&data).unwrap();
        let n = sock.recv(&mut buf).unwrap_or_else(|e| panic!("no echo of {len} bytes: {e}"));
        assert!(buf[..n] == data[..], "echo of {len} bytes differs");
    }
    sock.send(b"quit").unwrap();
    let out = echo.finish(T).unwrap();
    // Disabling acceleration on an accelerated socket is refused (EPERM).
    assert!(String::from_utf8_lossy(&out.stdout).contains("disable: 1"), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(topo.counter(Side::Accel, "UdpInDatagrams").unwrap(), before, "the kernel saw the datagrams");
}

/// As another user than root (no capabilities), a program runs on the kernel: one line says
/// why and what to do, nothing else complains, and its sockets work (a datagram received, a
/// TCP connection accepted and echoed, both by the kernel).
#[test]
fn an_unprivileged_program_runs_on_the_kernel_with_one_line_saying_why() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let script = r#"
import socket
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", 7950))
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("0.0.0.0", 7951)); t.listen()
print("ready", flush=True)
print("udp", u.recv(100).decode(), flush=True)
c, _ = t.accept(); c.sendall(c.recv(100)); c.close()
print("tcp done", flush=True)
"#;
    let before = topo.counter(Side::Accel, "UdpInDatagrams").unwrap();
    let mut p = spawn_accelerated(
        &topo,
        &["EXASOCK_DEBUG=1"],
        // The system's python (setup.sh installs it): a per-user one under /root is not
        // nobody's to run.
        &["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", script],
    );
    p.wait_for_line("ready", T).unwrap();
    peer_socket(&topo, 7950).send(b"hi").unwrap();
    let accel = topo.accel.ip;
    let echoed = topo
        .in_ns(Side::Peer, move || {
            use std::io::{Read, Write};
            let mut c = std::net::TcpStream::connect((accel, 7951))?;
            c.write_all(b"hello")?;
            let mut got = Vec::new();
            c.read_to_end(&mut got)?;
            Ok::<_, std::io::Error>(got)
        })
        .unwrap()
        .unwrap();
    assert_eq!(echoed, b"hello");
    let out = p.finish(T).unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout, "udp hi\ntcp done\n", "{stderr}");
    let said: Vec<&str> = stderr.lines().filter(|l| l.contains("exasock")).collect();
    assert_eq!(said.len(), 1, "one line, no more: {said:?}");
    assert!(said[0].contains("needs root") && said[0].contains("CAP_NET_RAW"), "{}", said[0]);
    assert!(topo.counter(Side::Accel, "UdpInDatagrams").unwrap() > before, "the kernel received the datagram");
}

#[test]
fn opting_out_no_auto_and_no_interface_leave_sockets_on_the_kernel_working() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    // SO_EXA_NO_ACCEL before bind: the kernel serves it.
    let before = topo.counter(Side::Accel, "UdpInDatagrams").unwrap();
    let mut echo = spawn_accelerated(&topo, &["EXASOCK_DEBUG=1"], &["python3", "-c", PY_ECHO, "7801", "noaccel"]);
    echo.wait_for_line("ready", T).unwrap();
    let sock = peer_socket(&topo, 7801);
    sock.send(b"hi").unwrap();
    assert_eq!(sock.recv(&mut [0u8; 16]).unwrap(), 2);
    sock.send(b"quit").unwrap();
    let out = echo.finish(T).unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("enabled bypass"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("disable: ok"));
    assert_eq!(topo.counter(Side::Accel, "UdpInDatagrams").unwrap() - before, 2, "the kernel served both datagrams");

    // --no-auto (EXASOCK_DEFAULT_DISABLE): not accelerated unless the program asks.
    let mut echo = spawn_accelerated(
        &topo,
        &["EXASOCK_DEBUG=1", "EXASOCK_DEFAULT_DISABLE=1"],
        &["python3", "-c", PY_ECHO, "7802"],
    );
    echo.wait_for_line("ready", T).unwrap();
    let sock = peer_socket(&topo, 7802);
    sock.send(b"hi").unwrap();
    assert_eq!(sock.recv(&mut [0u8; 16]).unwrap(), 2);
    sock.send(b"quit").unwrap();
    assert!(!String::from_utf8_lossy(&echo.finish(T).unwrap().stderr).contains("enabled bypass"));

    // No interface attached: one warning, then the kernel serves the program.
    let plain = Topology::create().unwrap();
    let preload = format!("LD_PRELOAD={}", library());
    let mut echo = plain.spawn(Side::Accel, &["env", &preload, "python3", "-c", PY_ECHO, "7803"], T).unwrap();
    echo.wait_for_line("ready", T).unwrap();
    let (peer, accel) = (plain.peer.ip, plain.accel.ip);
    let s = plain.in_ns(Side::Peer, move || UdpSocket::bind((peer, 0))).unwrap().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s.send_to(b"hello", (accel, 7803)).unwrap();
    assert_eq!(s.recv(&mut [0u8; 16]).unwrap(), 5);
    s.send_to(b"quit", (accel, 7803)).unwrap();
    let err = String::from_utf8_lossy(&echo.finish(T).unwrap().stderr).into_owned();
    assert_eq!(err.matches("exasock warning: no interface is attached").count(), 1, "{err}");
    // EXASOCK_NOWARN silences it.
    let mut quiet =
        plain.spawn(Side::Accel, &["env", &preload, "EXASOCK_NOWARN=1", "python3", "-c", PY_ECHO, "7804"], T).unwrap();
    quiet.wait_for_line("ready", T).unwrap();
    s.send_to(b"quit", (accel, 7804)).unwrap();
    let err = String::from_utf8_lossy(&quiet.finish(T).unwrap().stderr).into_owned();
    assert!(!err.contains("exasock warning"), "{err}");
}

#[test]
fn a_program_that_accelerates_nothing_opens_no_ring_and_starts_no_thread() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    // A shell, and a program using TCP and a UDP socket it never binds: all on the kernel.
    let script = "import os, socket
t = socket.socket(); u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
links = []
for f in os.listdir('/proc/self/fd'):
    try: links.append(os.readlink('/proc/self/fd/' + f))
    except OSError: pass
packet = len(open('/proc/self/net/packet').read().splitlines()) - 1
bpf = sum('bpf' in l for l in links)
print('threads', len(os.listdir('/proc/self/task')), 'packet', packet, 'bpf', bpf)";
    let mut child = spawn_accelerated(&topo, &[], &["sh", "-c", &format!("python3 -c \"{script}\"")]);
    let line = child.wait_for_line("threads", T).unwrap();
    assert_eq!(line, "threads 1 packet 0 bpf 0");
    child.finish(T).unwrap();
}

/// `sockperf server` under the library in the accel namespace, `sockperf` from the peer.
#[test]
fn sockperf_server_answers_ping_pong_and_throughput_with_each_multiplexer() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let feed = std::env::temp_dir().join(format!("exasock-feed-{}", std::process::id()));
    std::fs::write(&feed, format!("U:{}:11112\n", topo.accel.ip)).unwrap();
    let feed = feed.to_string_lossy().into_owned();
    let ip = topo.accel.ip.to_string();
    for mode in ["epoll", "select", "poll"] {
        let before = topo.counter(Side::Accel, "UdpInDatagrams").unwrap();
        let args: Vec<&str> = match mode {
            "epoll" => vec!["sockperf", "server", "-i", &ip, "-p", "11112"],
            m => vec!["sockperf", "server", "-f", &feed, "-F", m],
        };
        let mut server = spawn_accelerated(&topo, &["EXASOCK_DEBUG=1"], &args);
        server.wait_for_line("sockperf: [tid", T).unwrap();
        let pp = topo
            .run(Side::Peer, &["sockperf", "ping-pong", "-i", &ip, "-p", "11112", "-t", "1", "--mps", "5000"], T)
            .unwrap();
        assert!(pp.contains("percentile 50.000"), "{mode}: no latency report:\n{pp}");
        let tp = topo.run(Side::Peer, &["sockperf", "throughput", "-i", &ip, "-p", "11112", "-t", "1"], T).unwrap();
        assert!(tp.contains("Summary: Message Rate"), "{mode}: no throughput report:\n{tp}");
        server.kill_with(libc::SIGKILL);
        let out = server.finish(T).unwrap();
        assert!(String::from_utf8_lossy(&out.stderr).contains("enabled bypass"), "{mode}: not accelerated");
        assert_eq!(topo.counter(Side::Accel, "UdpInDatagrams").unwrap(), before, "{mode}: the kernel saw datagrams");
    }
    std::fs::remove_file(&feed).ok();
}

/// An asyncio UDP echo server (non-blocking sockets, epoll) against a kernel client.
#[test]
fn a_python_asyncio_udp_echo_server_runs_accelerated() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let script = "
import asyncio
class Echo(asyncio.DatagramProtocol):
    def connection_made(self, t): self.t = t; print('ready', flush=True)
    def datagram_received(self, data, addr):
        if data == b'quit': asyncio.get_event_loop().stop()
        else: self.t.sendto(data, addr)
loop = asyncio.new_event_loop()
loop.run_until_complete(loop.create_datagram_endpoint(Echo, local_addr=('0.0.0.0', 7900)))
loop.run_forever()
";
    let before = topo.counter(Side::Accel, "UdpInDatagrams").unwrap();
    let mut server = spawn_accelerated(&topo, &["EXASOCK_DEBUG=1"], &["python3", "-c", script]);
    server.wait_for_line("ready", T).unwrap();
    let sock = peer_socket(&topo, 7900);
    let mut buf = vec![0u8; 65_536];
    for i in 0..300usize {
        // (asyncio does not send empty datagrams, so sizes start at 1.)
        let data: Vec<u8> = (0..1 + (i * 37) % 5000).map(|j| (i + j) as u8).collect();
        sock.send(&data).unwrap();
        let n = sock.recv(&mut buf).unwrap_or_else(|e| panic!("no echo {i}: {e}"));
        assert!(buf[..n] == data[..]);
    }
    sock.send(b"quit").unwrap();
    let out = server.finish(T).unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("enabled bypass"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(topo.counter(Side::Accel, "UdpInDatagrams").unwrap(), before);
}

/// Socket calls and their errnos, printed one per line by a Python program: run on the kernel
/// and under exasock, the two outputs must be identical.
const PY_CALLS: &str = r#"
import socket, errno, select, fcntl, termios, struct, ctypes, os, sys
peer = (sys.argv[1], int(sys.argv[2])); bcast = sys.argv[3]
def show(name, f):
    try: r = f()
    except OSError as e: r = 'errno %s' % errno.errorcode.get(e.errno, e.errno)
    print(name, r, flush=True)
def wait(s): return len(select.select([s], [], [], 3)[0])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('0.0.0.0', 7950))
show('getsockname', lambda: s.getsockname())
s.setblocking(False)
show('recv-empty-nonblocking', lambda: s.recv(10))
show('send-unconnected', lambda: s.send(b'x'))
show('sendto-too-big', lambda: s.sendto(b'x' * 65508, peer))
show('sendto-broadcast-denied', lambda: s.sendto(b'x', (bcast, 9)))
show('getpeername-unconnected', lambda: s.getpeername())
show('sendto', lambda: s.sendto(b'hello world', peer))
show('select', lambda: wait(s))
buf = bytearray(4)
show('fionread', lambda: struct.unpack('i', fcntl.ioctl(s, termios.FIONREAD, b'\0\0\0\0'))[0])
show('peek', lambda: s.recv(5, socket.MSG_PEEK))
show('recv-into-trunc', lambda: s.recv_into(buf, 4, socket.MSG_TRUNC))
show('trunc-bytes', lambda: bytes(buf))
show('sendto-2', lambda: s.sendto(b'0123456789', peer))
show('select-2', lambda: wait(s))
show('recvmsg-small', lambda: (lambda r: (r[0], r[2] & socket.MSG_TRUNC, r[3]))(s.recvmsg(4)))
show('sendto-empty', lambda: s.sendto(b'', peer))
show('select-3', lambda: wait(s))
show('recvfrom-empty', lambda: s.recvfrom(100))
import time
s.setsockopt(socket.SOL_SOCKET, 35, 1)  # SO_TIMESTAMPNS
show('sendto-ts', lambda: s.sendto(b'stamp', peer))
show('select-ts', lambda: wait(s))
def stamped():
    data, anc, flags, addr = s.recvmsg(100, 1024)
    kinds = [(lvl, typ, len(d)) for lvl, typ, d in anc]
    sec, nsec = struct.unpack('qq', anc[0][2]) if anc else (0, 0)
    return (data, kinds, abs(sec + nsec / 1e9 - time.time()) < 1.0, flags)
show('recvmsg-timestampns', stamped)
show('sendto-ts2', lambda: s.sendto(b'small', peer))
show('select-ts2', lambda: wait(s))
show('recvmsg-ctrunc', lambda: (lambda r: (r[0], r[1], r[2] & socket.MSG_CTRUNC))(s.recvmsg(100, 4)))
s.setsockopt(socket.SOL_SOCKET, 35, 0)
s.setblocking(True)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack('ll', 0, 200000))
show('rcvtimeo', lambda: s.recv(10))
show('connect', lambda: s.connect(peer))
show('getpeername', lambda: s.getpeername())
show('send-connected', lambda: s.send(b'abc'))
show('recv-connected', lambda: s.recv(10))
class iovec(ctypes.Structure): _fields_ = [('base', ctypes.c_void_p), ('len', ctypes.c_size_t)]
class msghdr(ctypes.Structure): _fields_ = [('name', ctypes.c_void_p), ('namelen', ctypes.c_uint32), ('iov', ctypes.POINTER(iovec)), ('iovlen', ctypes.c_size_t), ('control', ctypes.c_void_p), ('controllen', ctypes.c_size_t), ('flags', ctypes.c_int)]
class mmsghdr(ctypes.Structure): _fields_ = [('hdr', msghdr), ('len', ctypes.c_uint)]
libc_m = ctypes.CDLL(None, use_errno=True)
def mmsg(payloads):
    bufs = [ctypes.create_string_buffer(p, len(p)) for p in payloads]
    iovs = [iovec(ctypes.cast(b, ctypes.c_void_p), len(p)) for b, p in zip(bufs, payloads)]
    msgs = (mmsghdr * len(payloads))()
    for m, v in zip(msgs, iovs):
        m.hdr.iov = ctypes.pointer(v); m.hdr.iovlen = 1
    return bufs, iovs, msgs
def sendmmsg():
    keep = mmsg([b'one', b'three', b''])
    n = libc_m.sendmmsg(s.fileno(), keep[2], 3, 0)
    return n, [m.len for m in keep[2]]
def recvmmsg():
    time.sleep(0.3)
    keep = mmsg([b' ' * 8] * 4)
    n = libc_m.recvmmsg(s.fileno(), keep[2], 4, socket.MSG_DONTWAIT, None)
    return n, [m.len for m in keep[2]][:max(n, 0)], [keep[0][i].raw[:keep[2][i].len] for i in range(max(n, 0))]
show('sendmmsg', sendmmsg)
show('recvmmsg', recvmmsg)
show('writev', lambda: os.writev(s.fileno(), [b'ab', b'cd', b'']))
a, b = bytearray(3), bytearray(10)
show('readv', lambda: os.readv(s.fileno(), [a, b]))
show('readv-bytes', lambda: (bytes(a), bytes(b[:1])))
show('sendto-connected-elsewhere', lambda: s.sendto(b'x', (sys.argv[1], 9)))
show('shutdown-wr', lambda: s.shutdown(socket.SHUT_WR))
show('send-after-shut-wr', lambda: s.send(b'x'))
show('shutdown-rd', lambda: s.shutdown(socket.SHUT_RD))
show('recv-after-shut-rd', lambda: s.recv(10))
show('select-after-shut-rd', lambda: wait(s))
libc = ctypes.CDLL(None, use_errno=True)
unspec = ctypes.create_string_buffer(16)
show('connect-unspec', lambda: libc.connect(s.fileno(), unspec, 16))
show('getpeername-after-unspec', lambda: s.getpeername())
fd = s.fileno(); s.close()
show('recv-closed', lambda: os.read(fd, 1))
"#;

#[test]
fn socket_calls_give_the_same_results_and_errnos_as_on_the_kernel() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    // A kernel echo server in the peer namespace.
    let _echo = PeerEcho::start(&topo, 7951);
    let ip = topo.peer.ip.to_string();
    let args = ["python3", "-c", PY_CALLS, &ip, "7951", "10.99.0.255"];
    let kernel = topo.run(Side::Accel, &args, T).unwrap();
    let before = topo.counter(Side::Accel, "UdpInDatagrams").unwrap();
    let mut accelerated = spawn_accelerated(&topo, &["EXASOCK_DEBUG=1"], &args);
    let out = {
        let o = accelerated.wait_for_line("getsockname", T).map(|first| first + "\n");
        let rest = accelerated.finish(T).unwrap();
        (o.unwrap(), rest)
    };
    let exasock = out.0 + &String::from_utf8_lossy(&out.1.stdout);
    assert!(String::from_utf8_lossy(&out.1.stderr).contains("enabled bypass"), "not accelerated");
    assert_eq!(topo.counter(Side::Accel, "UdpInDatagrams").unwrap(), before, "the exasock run used the kernel");
    assert!(kernel.lines().count() >= 30, "the kernel run printed too little:\n{kernel}");
    // The batch calls did what they should on the kernel (and so, by the comparison, on exasock).
    assert!(kernel.contains("sendmmsg (3, [3, 5, 0])"), "{kernel}");
    assert!(kernel.contains("recvmmsg (3, [3, 5, 0], [b'one', b'three', b''])"), "{kernel}");
    for (k, e) in kernel.lines().zip(exasock.lines()) {
        assert_eq!(e, k, "\nkernel:\n{kernel}\nexasock:\n{exasock}");
    }
    assert_eq!(kernel.lines().count(), exasock.lines().count(), "\nkernel:\n{kernel}\nexasock:\n{exasock}");
}

#[test]
fn sockperf_ping_pong_completes_with_both_sides_accelerated() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    // The peer becomes an accelerated host too (its veth partner must not send TSO frames).
    testbed::ns_exec(&topo.accel.netns, &["ethtool", "-K", &topo.accel.iface, "tx", "off"]).unwrap();
    let peer_if = topo.peer.iface.clone();
    topo.in_ns(Side::Peer, move || nic::control::attach(&peer_if)).unwrap().unwrap();
    let ip = topo.accel.ip.to_string();
    let mut server = spawn_accelerated(&topo, &[], &["sockperf", "server", "-i", &ip, "-p", "11113"]);
    server.wait_for_line("sockperf: [tid", T).unwrap();
    let (accel_before, peer_before) =
        (topo.counter(Side::Accel, "UdpInDatagrams").unwrap(), topo.counter(Side::Peer, "UdpInDatagrams").unwrap());
    let preload = format!("LD_PRELOAD={}", library());
    let out = topo
        .run(
            Side::Peer,
            &["env", &preload, "EXASOCK_DEBUG=1", "sockperf", "ping-pong", "-i", &ip, "-p", "11113", "-t", "1"],
            T,
        )
        .unwrap();
    assert!(out.contains("percentile 50.000"), "{out}");
    server.kill_with(libc::SIGKILL);
    server.finish(T).unwrap();
    assert_eq!(topo.counter(Side::Accel, "UdpInDatagrams").unwrap(), accel_before);
    assert_eq!(
        topo.counter(Side::Peer, "UdpInDatagrams").unwrap(),
        peer_before,
        "the client's replies went to its kernel"
    );
}

/// A program that closes every descriptor it does not know of (as daemons do) and dup2s over
/// the rest cannot break exasock's own: the echo keeps working.
#[test]
fn the_program_cannot_close_or_dup2_over_exasocks_descriptors() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let script = "
import os, socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('0.0.0.0', 7960))
refused = 0
for fd in range(3, 256):
    if fd == s.fileno(): continue
    try: os.close(fd)
    except OSError: refused += 1
for fd in range(3, 256):
    if fd == s.fileno(): continue
    try: os.dup2(0, fd); os.close(fd)
    except OSError: pass
print('ready', refused, flush=True)
while True:
    data, peer = s.recvfrom(65535)
    if data == b'quit': break
    s.sendto(data, peer)
";
    let mut echo = spawn_accelerated(&topo, &["EXASOCK_DEBUG=1"], &["python3", "-c", script]);
    // (Without the protection the ring's socket would be closed or replaced by stdin here, and
    // no echo could leave.)
    echo.wait_for_line("ready", T).unwrap();
    let sock = peer_socket(&topo, 7960);
    for i in 0..50u8 {
        sock.send(&[i; 100]).unwrap();
        let mut buf = [0u8; 200];
        assert_eq!(sock.recv(&mut buf).unwrap(), 100, "echo {i} after the program closed everything");
    }
    sock.send(b"quit").unwrap();
    echo.finish(T).unwrap();
}

/// A multicast receiver that joins a group on the attached interface gets the group's
/// datagrams through the stack, bound to INADDR_ANY or to the group itself, whether it names
/// the interface by address (ip_mreq) or by index (ip_mreqn, MCAST_JOIN_GROUP's group_req),
/// after the bind or before it; a
/// join on another interface (lo, by index) leaves the socket on the kernel.
#[test]
fn multicast_joined_on_the_attached_interface_is_accelerated() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let script = "
import socket, struct, sys
bind, how, accel, iface = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
group = socket.inet_aton('239.1.2.3')
if how == 'addr' or how == 'before':
    mreq = struct.pack('4s4s', group, socket.inet_aton(accel))
elif how == 'group_req':
    mreq = struct.pack('=I4xHH4s8x', socket.if_nametoindex(iface), socket.AF_INET, 0, group) + bytes(112)
else:
    mreq = struct.pack('4s4si', group, socket.inet_aton('0.0.0.0'), socket.if_nametoindex(iface if how == 'index' else 'lo'))
if how == 'before':
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
s.bind((bind, 7990))
if how == 'group_req':
    s.setsockopt(socket.IPPROTO_IP, 42, mreq)  # MCAST_JOIN_GROUP
elif how != 'before':
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
print('ready', flush=True)
if how == 'lo':
    s.settimeout(0.5)
    try:
        print('got', s.recv(100).decode(), flush=True)
    except socket.timeout:
        print('none', flush=True)
    sys.exit(0)
for _ in range(3):
    print('got', s.recv(100).decode(), flush=True)
";
    let accel_ip = topo.accel.ip.to_string();
    for how in ["addr", "index", "before", "group_req", "lo"] {
        for bind in ["0.0.0.0", "239.1.2.3"] {
            let before = topo.counter(Side::Accel, "UdpInDatagrams").unwrap();
            let mut rx = spawn_accelerated(
                &topo,
                &["EXASOCK_DEBUG=1"],
                &["python3", "-c", script, bind, how, &accel_ip, &topo.accel.iface],
            );
            rx.wait_for_line("ready", T).unwrap();
            let peer_ip = topo.peer.ip;
            let tx = topo.in_ns(Side::Peer, move || UdpSocket::bind((peer_ip, 0))).unwrap().unwrap();
            tx.set_multicast_ttl_v4(1).unwrap();
            for i in 0..3 {
                tx.send_to(format!("m{i}").as_bytes(), ("239.1.2.3", 7990)).unwrap();
                std::thread::sleep(Duration::from_millis(30));
            }
            let out = rx.finish(T).unwrap();
            let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            if how == "lo" {
                assert_eq!(stdout, "none\n", "bound to {bind}, joined on lo");
                // Bound to INADDR_ANY the socket is accelerated at bind; to the group, never.
                assert_eq!(stderr.contains("enabled bypass"), bind == "0.0.0.0", "bound to {bind}, joined on lo");
                continue;
            }
            assert_eq!(stdout, "got m0\ngot m1\ngot m2\n", "bound to {bind}, {how}");
            assert!(stderr.contains("enabled bypass"), "bound to {bind}, {how}: not accelerated");
            assert_eq!(
                topo.counter(Side::Accel, "UdpInDatagrams").unwrap(),
                before,
                "bound to {bind}, {how}: the kernel got them"
            );
        }
    }
}

/// With EXASOCK_SPIN_USEC a blocked receive sleeps: a second of waiting costs little CPU (the
/// worker included), and the datagram still arrives.
#[test]
fn a_blocked_receive_sleeps_after_its_spin_budget() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let script = "
import socket, resource
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('0.0.0.0', 7975))
print('ready', flush=True)
r0 = resource.getrusage(resource.RUSAGE_SELF)
data = s.recv(100)
r1 = resource.getrusage(resource.RUSAGE_SELF)
cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
print('got', data.decode(), 'cpu', round(cpu, 3), flush=True)
";
    let mut rx = spawn_accelerated(&topo, &["EXASOCK_SPIN_USEC=50"], &["python3", "-c", script]);
    rx.wait_for_line("ready", T).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    peer_socket(&topo, 7975).send(b"late").unwrap();
    let line = rx.wait_for_line("got", T).unwrap();
    let cpu: f64 = line.split_whitespace().last().unwrap().parse().unwrap();
    assert!(line.starts_with("got late"), "{line}");
    assert!(cpu < 0.3, "waiting 1.5 s cost {cpu} s of CPU: {line}");
    rx.finish(T).unwrap();
}

/// The worker moves datagrams from the ring into the socket's queue while the program is busy
/// elsewhere, so a burst larger than the ring is not lost.
#[test]
fn the_worker_drains_the_ring_while_the_program_is_not_in_a_call() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let script = "
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE: past rmem_max, as root may
s.bind(('0.0.0.0', 7976))
print('ready', flush=True)
time.sleep(3)
s.setblocking(False)
n = 0
while True:
    try: s.recv(100); n += 1
    except BlockingIOError: break
print('received', n, flush=True)
";
    let mut rx = spawn_accelerated(&topo, &[], &["python3", "-c", script]);
    rx.wait_for_line("ready", T).unwrap();
    let sock = peer_socket(&topo, 7976);
    // More datagrams than the 4,096-frame ring holds, while the program sleeps.
    for i in 0..6000u32 {
        sock.send(&i.to_be_bytes()).unwrap();
        if i % 64 == 63 {
            std::thread::sleep(Duration::from_micros(500));
        }
    }
    let line = rx.wait_for_line("received", T).unwrap();
    assert_eq!(line, "received 6000");
    rx.finish(T).unwrap();
}

/// Sockets the resolver makes (getaddrinfo's DNS query) stay on the kernel, as in the
/// original, while the same connect made by the program itself is accelerated.
#[test]
fn resolver_sockets_are_never_accelerated() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    // `ip netns exec` bind-mounts /etc/netns/NAME/resolv.conf over /etc/resolv.conf.
    let dir = format!("/etc/netns/{}", topo.accel.netns);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        format!("{dir}/resolv.conf"),
        format!("nameserver {}\noptions timeout:1 attempts:1\n", topo.peer.ip),
    )
    .unwrap();
    let script = "
import socket, sys
try: socket.getaddrinfo('name.invalid', 80)
except OSError as e: print('resolver failed as expected', flush=True)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect((sys.argv[1], 53))
print('connected', flush=True)
";
    let peer = topo.peer.ip.to_string();
    let out = spawn_accelerated(&topo, &["EXASOCK_DEBUG=1"], &["python3", "-c", script, &peer]).finish(T).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("resolver failed as expected") && stdout.contains("connected"), "{stdout}{stderr}");
    // One bypass line: the program's own socket (fd 3 is the resolver's, closed by then).
    assert_eq!(stderr.matches("enabled bypass").count(), 1, "{stderr}");
}

/// Signals reach a program blocked in an accelerated call as they would on the kernel: Ctrl-C
/// (Python's SIGINT handler, no SA_RESTART) interrupts recv with EINTR, so KeyboardInterrupt is
/// raised; a handler that returns lets the call go on (PEP 475 retries) and the datagram that
/// comes later is received.
#[test]
fn signals_interrupt_or_restart_blocked_calls_as_on_the_kernel() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let script = "
import socket, signal, select, os
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('0.0.0.0', 7985))
hits = []
signal.signal(signal.SIGUSR1, lambda *a: hits.append(1))
print('ready', flush=True)
try:
    s.recv(100)
    print('not interrupted', flush=True)
except KeyboardInterrupt:
    print('keyboard interrupt', flush=True)
data = s.recv(100)
print('after usr1', len(hits), data.decode(), flush=True)
";
    let mut child = spawn_accelerated(&topo, &["EXASOCK_DEBUG=1"], &["python3", "-c", script]);
    child.wait_for_line("ready", T).unwrap();
    let pid = testbed::ip(&["netns", "pids", &topo.accel.netns])
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().parse::<i32>().ok())
        .find(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "python3"))
        .expect("python pid");
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: signalling the test's own child.
    unsafe { libc::kill(pid, libc::SIGINT) };
    assert_eq!(child.wait_for_line("keyboard", T).unwrap(), "keyboard interrupt");
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGUSR1) };
    std::thread::sleep(Duration::from_millis(300));
    peer_socket(&topo, 7985).send(b"later").unwrap();
    assert_eq!(child.wait_for_line("after", T).unwrap(), "after usr1 1 later");
    child.finish(T).unwrap();
}

/// exasock's descriptors sit at the top of the range: the program's next socket after an
/// accelerated one gets the next number, as without exasock.
#[test]
fn exasocks_descriptors_stay_out_of_the_programs_numbers() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let script = "
import os, socket
def fds(): return set(int(f) for f in os.listdir('/proc/self/fd'))
before = fds()
a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
a.bind(('0.0.0.0', 7995))
b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
# (listdir's own descriptor is gone once it returns: keep only what is still open)
others = sorted(f for f in fds() - before - {a.fileno(), b.fileno()} if os.path.exists('/proc/self/fd/%d' % f))
low = [f for f in others if f < 512]
print('next', b.fileno() - a.fileno(), 'low', low, 'high', len(others) - len(low), flush=True)
";
    let mut child = spawn_accelerated(&topo, &["EXASOCK_DEBUG=1"], &["python3", "-c", script]);
    let line = child.wait_for_line("next", T).unwrap();
    let out = child.finish(T).unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("enabled bypass"));
    let parts: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(parts[1], "1", "{line}");
    assert!(line.contains("low []"), "exasock left low descriptors: {line}");
    let high: usize = parts.last().unwrap().parse().unwrap();
    assert!(high >= 4, "exasock's descriptors were not moved high: {line}");
}

/// Edge-triggered epoll reports new data once, not while it sits unread; level-triggered
/// keeps reporting; EPOLLONESHOT reports once until re-armed. Same answers as the kernel.
#[test]
fn epoll_edge_level_and_oneshot_match_the_kernel() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    // A kernel echo server in the peer namespace.
    let _echo = PeerEcho::start(&topo, 7997);
    let script = "
import socket, select, sys, time
peer = (sys.argv[1], 7997)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('0.0.0.0', 7996))
def settle(): time.sleep(0.2)
for name, flags in [('level', select.EPOLLIN), ('edge', select.EPOLLIN | select.EPOLLET), ('oneshot', select.EPOLLIN | select.EPOLLONESHOT)]:
    ep = select.epoll()
    ep.register(s.fileno(), flags)
    s.sendto(b'a', peer); settle()
    first = len(ep.poll(1))
    again = len(ep.poll(0.2))
    s.sendto(b'b', peer); settle()
    after_new = len(ep.poll(1))
    s.recv(10); s.recv(10)
    empty = len(ep.poll(0.1))
    print(name, first, again, after_new, empty, flush=True)
    ep.close()
";
    let ip = topo.peer.ip.to_string();
    let args = ["python3", "-c", script, &ip];
    let kernel = topo.run(Side::Accel, &args, T).unwrap();
    let before = topo.counter(Side::Accel, "UdpInDatagrams").unwrap();
    let out = spawn_accelerated(&topo, &["EXASOCK_DEBUG=1"], &args).finish(T).unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("enabled bypass"));
    assert_eq!(topo.counter(Side::Accel, "UdpInDatagrams").unwrap(), before, "the exasock run used the kernel");
    assert_eq!(kernel.lines().count(), 3, "{kernel}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), kernel, "\nkernel:\n{kernel}");
}

/// SO_BINDTODEVICE to the attached interface keeps an accelerated socket accelerated; to another
/// device it hands the socket back to the kernel (its flow is released), which then serves it
/// as bound to that device.
#[test]
fn bind_to_device_follows_the_interface() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let script = "
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[2], 7998))
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, sys.argv[1].encode())
print('ready', flush=True)
data, peer = s.recvfrom(100)
s.sendto(data, peer)
t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
t.bind(('0.0.0.0', 7999))
t.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b'lo')
print('moved', flush=True)
time.sleep(1)
";
    let accel_ip = topo.accel.ip.to_string();
    let iface = topo.accel.iface.clone();
    let mut child = spawn_accelerated(&topo, &["EXASOCK_DEBUG=1"], &["python3", "-c", script, &iface, &accel_ip]);
    child.wait_for_line("ready", T).unwrap();
    let sock = peer_socket(&topo, 7998);
    sock.send(b"dev").unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(sock.recv(&mut buf).unwrap(), 3);
    child.wait_for_line("moved", T).unwrap();
    let it = iface.clone();
    let status = topo.in_ns(Side::Accel, nic::control::status).unwrap().unwrap();
    let flows = &status.iter().find(|s| s.iface == it).unwrap().flows;
    assert!(flows.iter().all(|f| f.flow.local_port != 7999), "a socket bound to lo kept its flow: {flows:?}");
    let out = child.finish(T).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).matches("enabled bypass").count(),
        2,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A duplicate of an accelerated socket (os.dup uses F_DUPFD_CLOEXEC, then dup2) is the same
/// socket: it receives through the stack after the original is closed, and the flow goes only
/// with the last descriptor. close_range over everything leaves exasock working.
#[test]
fn duplicates_share_the_accelerated_socket_and_close_range_spares_exasock() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let script = "
import os, socket, ctypes, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('0.0.0.0', 7993))
d = os.dup(s.fileno())
s.close()
os.dup2(d, 50)
print('ready', flush=True)
print('dup got', os.read(d, 100).decode(), flush=True)
os.close(d)
print('dup2 got', os.read(50, 100).decode(), flush=True)
os.close(50)
print('closed', flush=True)
sys.stdin.readline()
libc = ctypes.CDLL(None, use_errno=True)
print('close_range', libc.close_range(3, 0xffffffff, 0), flush=True)
t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
t.bind(('0.0.0.0', 7994))
print('again', flush=True)
print('new got', t.recv(100).decode(), flush=True)
";
    let before = topo.counter(Side::Accel, "UdpInDatagrams").unwrap();
    let mut child = spawn_accelerated(&topo, &["EXASOCK_DEBUG=1"], &["python3", "-c", script]);
    child.wait_for_line("ready", T).unwrap();
    let sock = peer_socket(&topo, 7993);
    sock.send(b"one").unwrap();
    assert_eq!(child.wait_for_line("dup got", T).unwrap(), "dup got one");
    sock.send(b"two").unwrap();
    assert_eq!(child.wait_for_line("dup2 got", T).unwrap(), "dup2 got two");
    child.wait_for_line("closed", T).unwrap();
    let it = topo.accel.iface.clone();
    let status = topo.in_ns(Side::Accel, nic::control::status).unwrap().unwrap();
    assert!(status.iter().find(|s| s.iface == it).unwrap().flows.is_empty(), "the flow outlived the last descriptor");
    std::io::Write::write_all(child.stdin().unwrap(), b"go\n").unwrap();
    assert_eq!(child.wait_for_line("close_range", T).unwrap(), "close_range 0");
    child.wait_for_line("again", T).unwrap();
    peer_socket(&topo, 7994).send(b"three").unwrap();
    assert_eq!(child.wait_for_line("new got", T).unwrap(), "new got three");
    child.finish(T).unwrap();
    assert_eq!(topo.counter(Side::Accel, "UdpInDatagrams").unwrap(), before, "the kernel delivered datagrams");
}

/// A namespace deleted while attached (a container that goes away) leaves its pinned state in
/// the bpffs; the next namespace gets the same inode number. Its programs must use their own
/// interface, never the dead namespace's (state is keyed by the never-reused netns cookie, and
/// interfaces that do not exist are ignored).
#[test]
fn a_new_namespace_never_sees_a_deleted_one_s_interfaces() {
    let Some(_serial) = testbed::require() else { return };
    use std::os::unix::fs::MetadataExt;
    let old = attached();
    let old_inode = std::fs::metadata(format!("/run/netns/{}", old.accel.netns)).unwrap().ino();
    let old_cookie = old.in_ns(Side::Accel, nic::steering::netns_cookie).unwrap().unwrap();
    // Deleted behind exasock's back: no detach, no clean-up of the bpffs.
    for ns in [&old.accel.netns, &old.peer.netns] {
        testbed::ip(&["netns", "del", ns]).unwrap();
    }
    // The kernel frees a deleted namespace's inode number in the background: make new ones
    // until the accelerated side gets it (the case that misled programs), for up to 5 s.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let (topo, inode) = loop {
        let topo = attached();
        let inode = std::fs::metadata(format!("/run/netns/{}", topo.accel.netns)).unwrap().ino();
        if inode == old_inode || std::time::Instant::now() > deadline {
            break (topo, inode);
        }
        drop(topo);
        std::thread::sleep(Duration::from_millis(50));
    };
    println!("old accel namespace inode {old_inode}, new {inode} (reused: {})", old_inode == inode);
    let mut nc = spawn_accelerated(&topo, &["EXASOCK_DEBUG=1"], &["nc", "-u", "-l", "1235"]);
    testbed::poll_until(T, "nc's socket", || {
        Ok(!testbed::ns_exec(&topo.accel.netns, &["ss", "-Hlun", "sport = :1235"])?.trim().is_empty())
    })
    .unwrap();
    let sock = peer_socket(&topo, 1235);
    sock.send(b"fresh\n").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    nc.kill_with(libc::SIGTERM);
    let out = nc.finish(T).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains(&old.accel.iface), "the dead namespace's interface was used: {err}");
    assert!(err.contains("exasock: enabled bypass"), "stderr: {err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "fresh\n");
    let _ = std::fs::remove_dir_all(format!("/run/exasock/{old_cookie}"));
    drop(old);
}

/// Two sockets of one process on one port (SO_REUSEADDR or SO_REUSEPORT) are both accelerated
/// and share one flow entry, which goes only when the last of them closes: closing one leaves
/// the other served by the stack (the newest SO_REUSEADDR socket gets unicast, as on Linux).
#[test]
fn two_sockets_on_one_port_share_the_flow_until_the_last_closes() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let script = "
import socket, sys
opt = socket.SO_REUSEADDR if sys.argv[1] == 'addr' else socket.SO_REUSEPORT
socks = []
for _ in range(2):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, opt, 1)
    s.bind(('0.0.0.0', 7940))
    socks.append(s)
a, b = socks
print('ready', flush=True)
if sys.argv[1] == 'addr':
    print('newest got', b.recv(100).decode(), flush=True)
else:
    sys.stdin.readline()
b.close()
print('closed one', flush=True)
print('other got', a.recv(100).decode(), flush=True)
a.close()
print('closed both', flush=True)
sys.stdin.readline()
";
    for opt in ["addr", "port"] {
        let before = topo.counter(Side::Accel, "UdpInDatagrams").unwrap();
        let mut child = spawn_accelerated(&topo, &["EXASOCK_DEBUG=1"], &["python3", "-c", script, opt]);
        child.wait_for_line("ready", T).unwrap();
        let sock = peer_socket(&topo, 7940);
        if opt == "addr" {
            sock.send(b"one").unwrap();
            assert_eq!(child.wait_for_line("newest got", T).unwrap(), "newest got one");
        } else {
            std::io::Write::write_all(child.stdin().unwrap(), b"go\n").unwrap();
        }
        child.wait_for_line("closed one", T).unwrap();
        let entry = flows(&topo).into_iter().find(|f| f.flow.local_port == 7940);
        let entry = entry.unwrap_or_else(|| panic!("SO_REUSE{opt}: the flow went with the first socket closed"));
        // The suite runs on either datapath (EXASOCK_TEST_DATAPATH): the flow is served by it.
        assert_eq!(entry.datapath, common::expected_datapath(), "SO_REUSE{opt}");
        sock.send(b"two").unwrap();
        assert_eq!(child.wait_for_line("other got", T).unwrap(), "other got two", "SO_REUSE{opt}");
        child.wait_for_line("closed both", T).unwrap();
        assert!(flows(&topo).iter().all(|f| f.flow.local_port != 7940), "SO_REUSE{opt}: the flow outlived both");
        std::io::Write::write_all(child.stdin().unwrap(), b"go\n").unwrap();
        let out = child.finish(T).unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.matches("enabled bypass").count(), 2, "SO_REUSE{opt}: {err}");
        assert!(!err.contains("warning"), "SO_REUSE{opt}: {err}");
        assert_eq!(topo.counter(Side::Accel, "UdpInDatagrams").unwrap(), before, "SO_REUSE{opt}: the kernel got some");
    }
}

/// A socket bound to INADDR_ANY takes only datagrams addressed to the interface: traffic to its
/// port that the kernel forwards (here to 10.77.0.0/24 behind the accel namespace) stays the
/// kernel's, while datagrams to the interface's address still reach the program.
#[test]
fn wildcard_flows_leave_forwarded_traffic_to_the_kernel() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let ns = topo.accel.netns.clone();
    testbed::ns_exec(&ns, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]).unwrap();
    testbed::ip(&["-n", &ns, "link", "add", "fwd0", "type", "veth", "peer", "name", "fwd1"]).unwrap();
    testbed::ip(&["-n", &ns, "addr", "add", "10.77.0.1/24", "dev", "fwd0"]).unwrap();
    testbed::ip(&["-n", &ns, "link", "set", "fwd0", "up"]).unwrap();
    testbed::ip(&["-n", &ns, "link", "set", "fwd1", "up"]).unwrap();
    testbed::ip(&["-n", &ns, "neigh", "replace", "10.77.0.5", "lladdr", "02:00:00:00:00:05", "dev", "fwd0"]).unwrap();
    let via = topo.accel.ip.to_string();
    testbed::ip(&["-n", &topo.peer.netns, "route", "add", "10.77.0.0/24", "via", &via]).unwrap();
    let script = "
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('0.0.0.0', 7930))
print('ready', flush=True)
while True:
    data = s.recv(100)
    print('got', data.decode(), flush=True)
    if data == b'local': break
";
    let mut child = spawn_accelerated(&topo, &["EXASOCK_DEBUG=1"], &["python3", "-c", script]);
    child.wait_for_line("ready", T).unwrap();
    let forwarded_before = topo.counter(Side::Accel, "IpForwDatagrams").unwrap();
    let peer_ip = topo.peer.ip;
    let tx = topo.in_ns(Side::Peer, move || UdpSocket::bind((peer_ip, 0))).unwrap().unwrap();
    for i in 0..5 {
        tx.send_to(format!("fwd{i}").as_bytes(), ("10.77.0.5", 7930)).unwrap();
    }
    std::thread::sleep(Duration::from_millis(200));
    tx.send_to(b"local", (topo.accel.ip, 7930)).unwrap();
    assert_eq!(child.wait_for_line("got", T).unwrap(), "got local", "the program got forwarded traffic");
    let out = child.finish(T).unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("enabled bypass"));
    assert_eq!(
        topo.counter(Side::Accel, "IpForwDatagrams").unwrap() - forwarded_before,
        5,
        "the kernel did not forward the datagrams to the wildcard flow's port"
    );
}

/// The REUSEPORT receiver of `processes_sharing_a_port_...`: counts datagrams until 2 s of quiet.
const PY_REUSEPORT_COUNT: &str = "
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
s.bind(('0.0.0.0', int(sys.argv[1])))
print('ready', flush=True)
s.settimeout(2)
n = 0
try:
    while True:
        s.recv(100); n += 1
except socket.timeout:
    pass
print('count', n, flush=True)
";

/// Sends `n` datagrams to `port` on the accel side, each from a new source port (so that the
/// REUSEPORT hash spreads them), then returns the two receivers' counts.
fn spread_and_count(
    topo: &Topology,
    port: u16,
    n: usize,
    a: &mut testbed::NsChild,
    b: &mut testbed::NsChild,
) -> (usize, usize) {
    let peer_ip = topo.peer.ip;
    let accel = topo.accel.ip;
    for i in 0..n {
        let tx = topo.in_ns(Side::Peer, move || UdpSocket::bind((peer_ip, 0))).unwrap().unwrap();
        tx.send_to(&[i as u8; 8], (accel, port)).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    let count = |line: String| -> usize { line.split_whitespace().last().unwrap().parse().unwrap() };
    (count(a.wait_for_line("count", T).unwrap()), count(b.wait_for_line("count", T).unwrap()))
}

/// A program outside exasock already serving a port with SO_REUSEPORT, then an exasock instance
/// joining it (a rolling migration): the newcomer sees the other socket when it claims the flow
/// and leaves the flow to the kernel, so the old instance keeps getting its share.
#[test]
fn an_exasock_process_joining_a_kernel_programs_reuseport_group_shares_the_port() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    const N: usize = 64;
    let mut plain = topo.spawn(Side::Accel, &["python3", "-c", PY_REUSEPORT_COUNT, "7921"], T).unwrap();
    plain.wait_for_line("ready", T).unwrap();
    let mut accel = spawn_accelerated(&topo, &["EXASOCK_DEBUG=1"], &["python3", "-c", PY_REUSEPORT_COUNT, "7921"]);
    accel.wait_for_line("ready", T).unwrap();
    let flow = flows(&topo).into_iter().find(|f| f.flow.local_port == 7921).expect("the exasock process's flow");
    assert!(flow.shared, "the flow is not marked shared: {flow:?}");
    let (a, b) = spread_and_count(&topo, 7921, N, &mut accel, &mut plain);
    let out = accel.finish(T).unwrap();
    plain.finish(T).unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("enabled bypass"), "not accelerated");
    assert!(a > 0 && b > 0, "one process got none of {N}: exasock {a}, kernel program {b}");
    assert_eq!(a + b, N, "{a} + {b} received of {N}");
}

/// Several processes on one UDP port with SO_REUSEPORT (instances of one program under exasock):
/// the first serves the port through its ring; the second's claim fails, and it marks the flow
/// shared, so the kernel delivers among all the port's sockets as Linux does (by the REUSEPORT
/// hash, the first's kernel socket included): none is black-holed, none gets a copy twice.
#[test]
fn processes_sharing_a_port_with_reuseport_each_get_their_datagrams() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    const N: usize = 64;
    let argv = ["python3", "-c", PY_REUSEPORT_COUNT, "7920"];
    let mut first = spawn_accelerated(&topo, &["EXASOCK_DEBUG=1"], &argv);
    first.wait_for_line("ready", T).unwrap();
    let mut second = spawn_accelerated(&topo, &["EXASOCK_DEBUG=1"], &argv);
    second.wait_for_line("ready", T).unwrap();
    let shared = flows(&topo).into_iter().find(|f| f.flow.local_port == 7920).expect("the first process's flow");
    assert!(shared.shared, "the flow is not marked shared: {shared:?}");
    let (a, b) = spread_and_count(&topo, 7920, N, &mut first, &mut second);
    let (out_a, out_b) = (first.finish(T).unwrap(), second.finish(T).unwrap());
    assert!(String::from_utf8_lossy(&out_a.stderr).contains("enabled bypass"), "the first was not accelerated");
    let err_b = String::from_utf8_lossy(&out_b.stderr);
    assert!(err_b.contains("shared with another process"), "{err_b}");
    assert!(a > 0 && b > 0, "one process got none of {N}: {a} and {b}");
    assert_eq!(a + b, N, "{a} + {b} received of {N}");
}

/// Datagrams that reach the kernel socket behind an accelerated one (loopback here; every
/// datagram of a shared flow, see above) are picked up at once by a receive that has gone to
/// sleep (EXASOCK_SPIN_USEC), not after dozens of one-millisecond naps.
#[test]
fn a_sleeping_receive_picks_up_kernel_socket_datagrams_promptly() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let echo = "
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('0.0.0.0', 7931))
print('ready', flush=True)
while True:
    data, peer = s.recvfrom(100)
    if data == b'quit': break
    s.sendto(data, peer)
";
    let client = "
import socket, time
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
c.settimeout(3)
t = time.time()
for i in range(20):
    time.sleep(0.01)
    c.sendto(b'%d' % i, ('127.0.0.1', 7931))
    assert c.recv(100) == b'%d' % i
print('ms', int((time.time() - t - 0.2) * 1000), flush=True)
c.sendto(b'quit', ('127.0.0.1', 7931))
";
    let mut server = spawn_accelerated(&topo, &["EXASOCK_DEBUG=1", "EXASOCK_SPIN_USEC=50"], &["python3", "-c", echo]);
    server.wait_for_line("ready", T).unwrap();
    let out = topo.run(Side::Accel, &["python3", "-c", client], T).unwrap();
    let ms: u64 = out.split_whitespace().last().unwrap().parse().unwrap();
    let err = server.finish(T).unwrap().stderr;
    assert!(String::from_utf8_lossy(&err).contains("enabled bypass"), "not accelerated");
    assert!(ms < 200, "20 loopback round trips to a sleeping accelerated receive took {ms} ms beyond the pauses");
}

/// The liveness anchor is one of exasock's own descriptors: a fork child closes its copy at
/// once, so a child that outlives its parent never keeps the parent's anchor (and with it the
/// parent's TCP flows) alive.
#[test]
fn a_fork_child_does_not_keep_its_killed_parents_anchor_alive() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let script = "
import os, socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('0.0.0.0', 7990))
if os.fork() == 0:
    time.sleep(60)
    os._exit(0)
print('ready', flush=True)
time.sleep(60)
";
    let mut prog = spawn_accelerated(&topo, &[], &["python3", "-c", script]);
    prog.wait_for_line("ready", T).unwrap();
    testbed::poll_until(T, "the parent's flow", || Ok(!flows(&topo).is_empty())).unwrap();
    let entry = flows(&topo)[0];
    assert!(entry.anchored && entry.token != 0, "{entry:?}");
    let it = topo.accel.iface.clone();
    let mut steering = topo.in_ns(Side::Accel, move || nic::steering::Steering::open(&it)).unwrap().unwrap();

    // SAFETY: kill has no memory-safety preconditions; the parent only, not its group.
    unsafe { libc::kill(entry.owner_pid as i32, libc::SIGKILL) };
    testbed::poll_until(T, "the parent to exit", || Ok(!nic::steering::pid_alive(entry.owner_pid))).unwrap();
    let swept = steering.sweep();
    assert_eq!(swept.len(), 1, "{swept:?}");
    assert!(!swept[0].anchored, "the fork child kept its parent's anchor: {swept:?}");
    prog.kill();
}

/// A small UDP program: every call on its socket, one line each.
const PY_TRACED: &str = "
import os, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 7920))
s.sendto(b'ping', (sys.argv[2], 7921))
data, peer = s.recvfrom(100)
s.close()
print('done', os.getpid(), file=sys.stderr, flush=True)
";

#[test]
fn exasock_trace_prints_each_call_on_an_accelerated_socket_as_strace_does() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let (ip, peer) = (topo.accel.ip.to_string(), topo.peer.ip.to_string());
    let echo = PeerEcho::start(&topo, 7921);
    let py = spawn_accelerated(&topo, &["EXASOCK_TRACE=1"], &["python3", "-c", PY_TRACED, &ip, &peer]);
    let out = py.finish(T).unwrap();
    drop(echo);
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("[pid")).collect();
    // The thread id is the process's (one thread): the pid python prints.
    let pid = err.lines().find_map(|l| l.strip_prefix("done ")).expect(&err).trim();
    let want = [
        "socket(AF_INET, SOCK_DGRAM|SOCK_CLOEXEC, 0) = 3".to_string(),
        format!("bind(3, {{sa_family=AF_INET, sin_port=htons(7920), sin_addr=inet_addr(\"{ip}\")}}, 16) = 0"),
        format!("sendto(3, \"ping\", 4, 0, {{sa_family=AF_INET, sin_port=htons(7921), sin_addr=inet_addr(\"{peer}\")}}, 16) = 4"),
        format!("recvfrom(3, \"ping\", 100, 0, {{sa_family=AF_INET, sin_port=htons(7921), sin_addr=inet_addr(\"{peer}\")}}, [16]) = 4"),
        "close(3) = 0".to_string(),
    ];
    assert_eq!(lines.len(), want.len(), "trace:\n{err}");
    for (got, want) in lines.iter().zip(&want) {
        assert_eq!(*got, format!("[pid {pid:>5}] {want}"), "trace:\n{err}");
    }
}

/// A multicast receiver in Python: `bind join listen count`, where join and listen are
/// comma-separated groups (or `-`) joined with IP_ADD_MEMBERSHIP on `ACCEL_IP` and received with
/// SO_EXA_MCAST_LISTEN; IP_MULTICAST_ALL off (so a wildcard socket gets only its own groups, as
/// Linux then delivers). Prints how many datagrams of each group arrived, within a second of
/// the last one or once `count` arrived.
const PY_MCAST_RX: &str = "
import socket, struct, sys, collections
bind, join, listen, count, accel = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
s.setsockopt(socket.IPPROTO_IP, 49, 0)
s.bind((bind, 7993))
for g in [g for g in join.split(',') if g != '-']:
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, struct.pack('4s4s', socket.inet_aton(g), socket.inet_aton(accel)))
for g in [g for g in listen.split(',') if g != '-']:
    s.setsockopt(0x200, 2, struct.pack('4s4si', socket.inet_aton(g), socket.inet_aton('0.0.0.0'), 0))
print('ready', flush=True)
got = collections.Counter()
s.settimeout(3)
try:
    while sum(got.values()) < count:
        got[s.recv(100).split(b' ')[0].decode()] += 1
        s.settimeout(1)
except socket.timeout:
    pass
print(' '.join(f'{g}={got[g]}' for g in sorted(got)), flush=True)
";

/// Issue 17: two exasock processes receive one group:port (each gets every datagram), a third
/// receives a group with SO_EXA_MCAST_LISTEN (no IGMP join) and a plain kernel program on the
/// accelerated side receives its own group; the kernel of the accelerated namespace counts only
/// the kernel program's datagrams. Every exasock process on AF_PACKET here.
#[test]
fn many_processes_and_a_kernel_program_each_receive_their_groups() {
    receivers_each_get_their_groups(&["EXASOCK_DATAPATH=af_packet"]);
}

/// The same on the run's datapath: over AF_XDP the first process is served by XSKs and the
/// group it shares goes to every receiver through the kernel.
#[test]
fn many_processes_and_a_kernel_program_each_receive_their_groups_on_the_default_datapath() {
    receivers_each_get_their_groups(&[]);
}

/// The two tests above: the exasock processes get `extra_env`.
fn receivers_each_get_their_groups(extra_env: &[&str]) {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let accel = topo.accel.ip.to_string();
    const N: usize = 200;
    let n = N.to_string();
    let n2 = (2 * N).to_string();
    let (g1, g2, g3) = ("239.1.7.1", "239.1.7.2", "239.1.7.3");
    let mut env = vec!["EXASOCK_DEBUG=1", "EXASOCK_SPIN_USEC=50"];
    env.extend_from_slice(extra_env);
    let on_xdp = !extra_env.contains(&"EXASOCK_DATAPATH=af_packet")
        && common::expected_datapath() == nic::steering::Datapath::AfXdp;
    // The first process, alone on the port when it claims its group's flow, is the one served
    // over AF_XDP in an xdp run; the others come after it.
    let mut a = spawn_accelerated(&topo, &env, &["python3", "-c", PY_MCAST_RX, g1, g1, "-", &n, &accel]);
    a.wait_for_line("ready", T).unwrap();
    let mut kernel =
        topo.spawn(Side::Accel, &["python3", "-c", PY_MCAST_RX, "0.0.0.0", g2, "-", &n, &accel], T).unwrap();
    kernel.wait_for_line("ready", T).unwrap();
    let mut b = spawn_accelerated(&topo, &env, &["python3", "-c", PY_MCAST_RX, "0.0.0.0", g1, g3, &n2, &accel]);
    b.wait_for_line("ready", T).unwrap();
    let mut c = spawn_accelerated(&topo, &env, &["python3", "-c", PY_MCAST_RX, g3, "-", g3, &n, &accel]);
    c.wait_for_line("ready", T).unwrap();
    let before = topo.counter(Side::Accel, "UdpInDatagrams").unwrap();
    let peer_ip = topo.peer.ip;
    let tx = topo.in_ns(Side::Peer, move || UdpSocket::bind((peer_ip, 0))).unwrap().unwrap();
    tx.set_multicast_ttl_v4(1).unwrap();
    for i in 0..N {
        for (name, g) in [("g1", g1), ("g2", g2), ("g3", g3)] {
            tx.send_to(format!("{name} {i}").as_bytes(), (g, 7993)).unwrap();
        }
        if i % 10 == 9 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let line = |p: testbed::NsChild| {
        let out = p.finish(T).unwrap();
        (String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or("").to_string(), out.stderr)
    };
    let (k, _) = line(kernel);
    let (ra, ea) = line(a);
    let (rb, eb) = line(b);
    let (rc, ec) = line(c);
    assert_eq!(
        [k.as_str(), &ra, &rb, &rc],
        [format!("g2={N}"), format!("g1={N}"), format!("g1={N} g3={N}"), format!("g3={N}")],
        "the kernel program, exasock processes bound to the group, to INADDR_ANY, listening\n{}\n{}\n{}",
        String::from_utf8_lossy(&ea),
        String::from_utf8_lossy(&eb),
        String::from_utf8_lossy(&ec)
    );
    for e in [ea, eb, ec] {
        assert!(String::from_utf8_lossy(&e).contains("enabled bypass"), "not accelerated");
    }
    // Over AF_XDP the first process's group, which another process receives too, reaches it
    // through its kernel socket (XDP cannot redirect one frame to several sockets).
    let through_kernel = if on_xdp { 2 * N } else { N };
    assert_eq!(
        topo.counter(Side::Accel, "UdpInDatagrams").unwrap() - before,
        through_kernel as u64,
        "the accelerated namespace's kernel delivered more than the kernel program's group"
    );
}

/// A receiver under exasock: SO_EXA_MCAST_LISTEN on LISTEN made before the bind (the original
/// adds it at bind), its errnos, then a bind to INADDR_ANY:7994 and an IP_ADD_MEMBERSHIP of
/// JOIN; it counts what it receives, then prints its kernel socket's receive queue (/proc/net/udp).
const PY_LISTEN_RX: &str = "
import socket, struct, sys, collections, errno
listen, join, count, accel = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
def mreq(g, i='0.0.0.0'):
    return struct.pack('4s4si', socket.inet_aton(g), socket.inet_aton(i), 0)
def err(s, g, i='0.0.0.0'):
    try:
        s.setsockopt(0x200, 2, mreq(g, i))
        return 'ok'
    except OSError as e:
        return errno.errorcode[e.errno]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
s.setsockopt(socket.IPPROTO_IP, 49, 0)
t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
k = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
k.bind(('0.0.0.0', 7995))
k.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, struct.pack('4s4si', socket.inet_aton('239.1.8.9'), socket.inet_aton('0.0.0.0'), socket.if_nametoindex('lo')))
print('errors', 'unbound=' + err(s, listen), 'duplicate=' + err(s, listen), 'unicast=' + err(s, '10.1.2.3'),
      'loopback-if=' + err(s, '239.1.8.9', '127.0.0.1'), 'stream=' + err(t, listen),
      'joined-elsewhere=' + err(k, listen), flush=True)
k.close()
s.bind(('0.0.0.0', 7994))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, struct.pack('4s4s', socket.inet_aton(join), socket.inet_aton(accel)))
print('ready', flush=True)
got = collections.Counter()
s.settimeout(5)
try:
    while sum(got.values()) < count:
        got[s.recv(100).split(b' ')[0].decode()] += 1
        s.settimeout(1)
except socket.timeout:
    pass
print(' '.join(f'{g}={got[g]}' for g in sorted(got)), flush=True)
queue = [l.split()[4].split(':')[1] for l in open('/proc/net/udp') if l.split()[1].endswith(':1F3A')]
print('kernel-queue', ' '.join(queue), flush=True)
def drop(g):
    try:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_DROP_MEMBERSHIP, mreq(g))
        return 'ok'
    except OSError as e:
        return errno.errorcode[e.errno]
print('drops', 'listen=' + drop(listen), 'again=' + drop(listen), flush=True)
";

/// Captures IGMP on the peer's interface for SECONDS and prints each group reported
/// (IGMPv2 and v3 reports), once.
const PY_IGMP_SEEN: &str = "
import socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.bind((sys.argv[1], 0))
s.settimeout(0.2)
seen = set()
print('ready', flush=True)
end = time.time() + float(sys.argv[2])
while time.time() < end:
    try:
        f = s.recv(2000)
    except socket.timeout:
        continue
    ip = f[14:]
    if len(ip) < 20 or ip[9] != 2:
        continue
    igmp = ip[(ip[0] & 15) * 4:]
    if igmp[0] in (0x12, 0x16, 0x17):
        seen.add(socket.inet_ntoa(igmp[4:8]))
    elif igmp[0] == 0x22:
        n, off = int.from_bytes(igmp[6:8], 'big'), 8
        for _ in range(n):
            aux, nsrc = igmp[off + 1], int.from_bytes(igmp[off + 2:off + 4], 'big')
            seen.add(socket.inet_ntoa(igmp[off + 4:off + 8]))
            off += 8 + 4 * nsrc + 4 * aux
print('reported', ' '.join(sorted(seen)), flush=True)
";

/// Issue 17: a group received with SO_EXA_MCAST_LISTEN alone (set before the bind) reaches the
/// socket while the accelerated namespace's kernel counts none of its datagrams and makes no
/// IGMP join for it (none in /proc/net/igmp, no report on the wire), with the group's MAC in the
/// device's filter for as long as it listens; a group the socket joins is in /proc/net/igmp and
/// reported to the peer; exasock's kernel socket, which gets the joined group's copies, never
/// queues them; everything is gone once the process exits.
#[test]
fn a_listen_only_group_is_received_with_no_join_its_mac_filtered_in_while_it_lasts() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let accel = topo.accel.ip.to_string();
    const N: usize = 300;
    let n2 = (2 * N).to_string();
    let (listen, join) = ("239.1.8.4", "239.1.8.5");
    let (listen_mac, join_igmp) = ("01:00:5e:01:08:04", "050801EF");
    let maddr = || topo.run(Side::Accel, &["ip", "maddr", "show", "dev", &topo.accel.iface], T).unwrap();
    let igmp = || topo.run(Side::Accel, &["cat", "/proc/net/igmp"], T).unwrap();
    assert!(!maddr().contains(listen_mac), "the group's MAC is in the filter before anyone listens");
    let mut capture = topo.spawn(Side::Peer, &["python3", "-c", PY_IGMP_SEEN, &topo.peer.iface, "4"], T).unwrap();
    capture.wait_for_line("ready", T).unwrap();
    let mut rx =
        spawn_accelerated(&topo, &["EXASOCK_DEBUG=1"], &["python3", "-c", PY_LISTEN_RX, listen, join, &n2, &accel]);
    let errors = rx.wait_for_line("errors", T).unwrap();
    // (Python names EOPNOTSUPP ENOTSUP: the same number on Linux.)
    assert_eq!(
        errors.trim(),
        "errors unbound=ok duplicate=EADDRINUSE unicast=EINVAL loopback-if=EINVAL stream=EPERM joined-elsewhere=ENOTSUP",
        "SO_EXA_MCAST_LISTEN's answers"
    );
    rx.wait_for_line("ready", T).unwrap();
    assert!(maddr().contains(listen_mac), "the listened group's MAC is not in the device's filter:\n{}", maddr());
    let joins = igmp();
    assert!(joins.contains(join_igmp), "the joined group is not in /proc/net/igmp:\n{joins}");
    assert!(!joins.contains("040801EF"), "the listened group is in /proc/net/igmp:\n{joins}");
    let udp = ["UdpInDatagrams", "UdpInErrors", "UdpNoPorts", "UdpRcvbufErrors"];
    let counters = || udp.map(|c| topo.counter(Side::Accel, c).unwrap());
    let before = counters();
    let peer_ip = topo.peer.ip;
    let tx = topo.in_ns(Side::Peer, move || UdpSocket::bind((peer_ip, 0))).unwrap().unwrap();
    tx.set_multicast_ttl_v4(1).unwrap();
    let send = |name: &str, g: &str| {
        for i in 0..N {
            tx.send_to(format!("{name} {i}").as_bytes(), (g, 7994)).unwrap();
            if i % 10 == 9 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    };
    send("listen", listen);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(counters(), before, "the kernel counted the listened group's datagrams ({udp:?})");
    let rcvbuf = topo.counter(Side::Accel, "UdpRcvbufErrors").unwrap();
    send("join", join);
    let out = rx.finish(T).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(String::from_utf8_lossy(&out.stderr).contains("enabled bypass"), "not accelerated");
    assert!(stdout.lines().any(|l| l == format!("join={N} listen={N}")), "{stdout}");
    assert!(stdout.lines().any(|l| l == "kernel-queue 00000000"), "exasock's kernel socket queued copies:\n{stdout}");
    // Left, the group is no membership: the kernel's answer for INADDR_ANY with no route to it.
    assert!(stdout.lines().any(|l| l == "drops listen=ok again=ENODEV"), "IP_DROP_MEMBERSHIP:\n{stdout}");
    assert_eq!(topo.counter(Side::Accel, "UdpRcvbufErrors").unwrap(), rcvbuf, "a kernel socket overflowed");
    let reported = capture.finish(T).unwrap();
    let reported = String::from_utf8_lossy(&reported.stdout).to_string();
    assert!(reported.contains(join), "the peer saw no IGMP report for the joined group: {reported}");
    assert!(!reported.contains(listen), "the peer saw an IGMP report for the listened group: {reported}");
    assert!(!maddr().contains(listen_mac), "the group's MAC stayed in the filter:\n{}", maddr());
    assert!(!igmp().contains(join_igmp), "the join outlived the process:\n{}", igmp());
}
