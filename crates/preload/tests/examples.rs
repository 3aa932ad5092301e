//! The programs in examples/ (and a C check of the extension API's errors), built here against
//! include/ and libexasock_ext with the system's C compiler, each run under exasock in the accel
//! namespace against a kernel peer that checks every byte.

use common::{assert_kernel_carried_at_most, attached, spawn_accelerated, tcp_segments};
use std::io::Read;
use std::net::{SocketAddrV4, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use testbed::{Direction, Filter, Impairment, Proto, Side, Topology};

mod common;

const T: Duration = Duration::from_secs(30);
const RAW_PAYLOAD: &[u8] = b"raw-sent payload, prebuilt headers";
const SENT_PAYLOAD: &[u8] = b"then a normal send()";

/// Compiles a C program (an example, or a test's own source) linked with libexasock_ext; the
/// stub's soname is found beside the binary (rpath).
fn build(name: &str, source: &Path) -> String {
    let deps = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
    let lib = deps.join("libexasock_ext.so");
    assert!(lib.exists(), "{} was not built", lib.display());
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("exasock-examples");
    std::fs::create_dir_all(&dir).unwrap();
    let soname = dir.join("libexasock_ext.so.1");
    let _ = std::fs::remove_file(&soname);
    std::os::unix::fs::symlink(&lib, &soname).unwrap();
    let out = dir.join(name);
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let result = Command::new(&cc)
        .args(["-O2", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&out)
        .arg(source)
        .arg(format!("-I{}", root.join("include").display()))
        .arg(format!("-L{}", deps.display()))
        .arg(format!("-Wl,-rpath,{}", dir.display()))
        .arg("-lexasock_ext")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cc}: {e}"));
    assert!(result.status.success(), "{name}: {}", String::from_utf8_lossy(&result.stderr));
    out.to_string_lossy().into_owned()
}

fn example(name: &str) -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    build(name, &root.join(format!("{name}.c")))
}

/// A kernel listener in the peer namespace: accepts one connection and reads it to its end.
fn peer_reader(topo: &Topology, port: u16) -> std::thread::JoinHandle<Vec<u8>> {
    let ip = topo.peer.ip;
    let listener = topo.in_ns(Side::Peer, move || TcpListener::bind(SocketAddrV4::new(ip, port))).unwrap().unwrap();
    topo.wait_listening(Side::Peer, Proto::Tcp, port, T).unwrap();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(T)).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        got
    })
}

/// tcpdump -A on the peer's interface for `filter`, capturing once this returns.
fn capture(topo: &Topology, filter: &str) -> testbed::NsChild {
    let sockets = || topo.run(Side::Peer, &["cat", "/proc/net/packet"], T).unwrap().lines().count();
    let before = sockets();
    let c = topo.spawn(Side::Peer, &["tcpdump", "-l", "-n", "-A", "-i", &topo.peer.iface, filter], T).unwrap();
    testbed::poll_until(T, "tcpdump capturing", || Ok(sockets() > before)).unwrap();
    c
}

fn expected() -> Vec<u8> {
    [RAW_PAYLOAD, SENT_PAYLOAD].concat()
}

/// tcp-raw-send under exasock, through exasock's ring and through a packet socket: the peer
/// reads both payloads in order, byte-exact, then a clean close; the warm send before them
/// moved no TCP_INFO counter and never reached the wire (the peer's capture); the accelerated
/// namespace's kernel carried none of it.
#[test]
fn tcp_raw_send_delivers_a_prebuilt_frame_then_a_send_in_order() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let exe = example("tcp-raw-send");
    for (i, mode) in ["ring", "afpacket"].into_iter().enumerate() {
        let port = 7600 + i as u16;
        let reader = peer_reader(&topo, port);
        let mut tcpdump = capture(&topo, &format!("tcp port {port}"));
        let before = tcp_segments(&topo);
        let out = spawn_accelerated(
            &topo,
            &["EXASOCK_DEBUG=1", "EXASOCK_SPIN_USEC=50"],
            &[&exe, &topo.peer.ip.to_string(), &port.to_string(), mode],
        )
        .finish(T)
        .unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{mode}: {stdout}{stderr}");
        assert!(stderr.contains("enabled bypass"), "{mode}: not accelerated: {stderr}");
        let got = reader.join().unwrap();
        assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&expected()), "{mode}: what the peer read");
        assert!(stdout.contains("TCP_INFO unchanged: yes"), "{mode}: the warm send moved TCP_INFO:\n{stdout}");
        let path = if mode == "ring" { "through exasock's ring" } else { "on a packet socket" };
        assert!(stdout.contains(path), "{mode}: {stdout}");
        assert!(stdout.contains(&format!("acknowledged by the peer: {}", expected().len())), "{mode}: {stdout}");
        assert_kernel_carried_at_most(&topo, before, 0, mode);
        std::thread::sleep(Duration::from_millis(100));
        tcpdump.kill_with(libc::SIGINT);
        let seen = String::from_utf8_lossy(&tcpdump.finish(T).unwrap().stdout).into_owned();
        assert!(seen.contains("raw-sent payload"), "{mode}: the capture saw no data:\n{seen}");
        assert!(!seen.contains("WARM-ONLY"), "{mode}: the warm send reached the wire:\n{seen}");
    }
}

/// The prebuilt frame is dropped once on the way to the peer (the testbed's impairment, on the
/// raw frame's length only): the stack retransmits it from the bytes send_advance recorded,
/// and the peer still reads every byte in order.
#[test]
fn a_lost_raw_sent_segment_is_retransmitted_by_the_stack() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let exe = example("tcp-raw-send");
    let port = 7610;
    let reader = peer_reader(&topo, port);
    // Ethernet, IPv4, TCP with (or without) timestamps, and the raw payload: only that frame.
    let raw_len = (14 + 20 + 20 + RAW_PAYLOAD.len()) as u32;
    let filter = Filter { ip_proto: Some(6), min_len: raw_len, max_len: Some(raw_len + 12), ..Filter::default() };
    topo.impair(Direction::ToPeer, &Impairment { loss: 1.0, seed: 1, filter, ..Impairment::none() }).unwrap();
    let child = spawn_accelerated(
        &topo,
        &["EXASOCK_DEBUG=1", "EXASOCK_SPIN_USEC=50"],
        &[&exe, &topo.peer.ip.to_string(), &port.to_string(), "ring"],
    );
    testbed::poll_until(T, "the raw frame dropped", || Ok(topo.impair_stats(Direction::ToPeer)?.dropped >= 1)).unwrap();
    topo.impair(Direction::ToPeer, &Impairment::none()).unwrap();
    let out = child.finish(T).unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("through exasock's ring"), "{stdout}");
    let got = reader.join().unwrap();
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&expected()), "what the peer read");
}

/// The extension API's answers under exasock, from C: EOPNOTSUPP for what is not an
/// accelerated TCP socket, ENOTCONN for a listener, EINVAL/ENOBUFS/EFAULT for bad arguments,
/// EPROTO for a stale header, EINVAL for a frame of another connection, EPIPE after shutdown;
/// and a warm send on a kernel socket prints the original's warning and sends nothing.
const EXT_ERRORS: &str = r#"
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <exasock/extensions.h>
#include <exasock/socket.h>

static void show(const char *what, long r) { printf("%s=%ld %s\n", what, r, r < 0 ? strerrorname_np(errno) : "ok"); }

int main(int argc, char **argv)
{
    if (argc < 5) return 2;
    struct sockaddr_in peer = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[2])) };
    inet_pton(AF_INET, argv[1], &peer.sin_addr);
    struct sockaddr_in mine = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[4])) };
    inet_pton(AF_INET, argv[3], &mine.sin_addr);
    char dev[32]; int port = -1; unsigned char hdr[128], frame[256];
    int pipes[2]; if (pipe(pipes)) return 1;
    show("device_pipe", exasock_tcp_get_device(pipes[0], dev, sizeof dev, &port));
    int udp = socket(AF_INET, SOCK_DGRAM, 0);
    show("header_udp", exasock_tcp_build_header(udp, hdr, sizeof hdr, 0, 0));
    int l = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1; setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    bind(l, (struct sockaddr *)&mine, sizeof mine); listen(l, 1);
    show("header_listener", exasock_tcp_build_header(l, hdr, sizeof hdr, 0, 0));
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(s, (struct sockaddr *)&peer, sizeof peer) == -1) { perror("connect"); return 1; }
    show("device", exasock_tcp_get_device(s, dev, sizeof dev, &port));
    printf("dev=%s port=%d\n", dev, port);
    show("header_offset", exasock_tcp_build_header(s, hdr, sizeof hdr, 1, 0));
    show("header_short", exasock_tcp_build_header(s, hdr, 20, 0, 0));
    show("header_null", exasock_tcp_build_header(s, NULL, 100, 0, 0));
    long h; while ((h = exasock_tcp_build_header(s, hdr, sizeof hdr, 0, 0)) == -1 && errno == EAGAIN) usleep(1000);
    show("header", h);
    memcpy(frame, hdr, h); memcpy(frame + h, "ab", 2);
    exasock_tcp_set_length(frame, h, 2); exasock_tcp_calc_checksum(frame, h, frame + h, 2);
    show("frame_garbage", exasock_tcp_send_frame(s, "not a frame", 11));
    show("frame_null", exasock_tcp_send_frame(s, NULL, 60));
    show("frame_other_fd", exasock_tcp_send_frame(udp, frame, h + 2));
    show("advance_null", exasock_tcp_send_advance(s, NULL, 2));
    show("send", send(s, "xy", 2, 0));
    show("frame_stale", exasock_tcp_send_frame(s, frame, h + 2));
    shutdown(s, SHUT_WR);
    show("header_shut", exasock_tcp_build_header(s, hdr, sizeof hdr, 0, 0));
    show("advance_shut", exasock_tcp_send_advance(s, "ab", 2));
    show("warm_shut", send(s, "ab", 2, MSG_EXA_WARM));
    /* A kernel socket (exasock disabled on it before connect): warning, nothing sent. */
    int k = socket(AF_INET, SOCK_STREAM, 0);
    exasock_disable_acceleration(k);
    if (connect(k, (struct sockaddr *)&peer, sizeof peer) == -1) { perror("connect"); return 1; }
    show("warm_kernel", send(k, "WARM-ONLY", 9, MSG_EXA_WARM));
    show("device_kernel", exasock_tcp_get_device(k, dev, sizeof dev, &port));
    show("send_kernel", send(k, "kernel", 6, 0));
    close(k); close(s);
    return 0;
}
"#;

#[test]
fn the_extension_api_s_errors_under_exasock_and_a_warm_send_on_a_kernel_socket() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("exasock-examples");
    std::fs::create_dir_all(&dir).unwrap();
    let source = dir.join("ext-errors.c");
    std::fs::write(&source, EXT_ERRORS).unwrap();
    let exe = build("ext-errors", &source);
    let port = 7620;
    // Two connections in turn: the accelerated one, then the kernel one.
    let ip = topo.peer.ip;
    let listener = topo.in_ns(Side::Peer, move || TcpListener::bind(SocketAddrV4::new(ip, port))).unwrap().unwrap();
    let reader = std::thread::spawn(move || {
        (0..2)
            .map(|_| {
                let (mut s, _) = listener.accept().unwrap();
                s.set_read_timeout(Some(T)).unwrap();
                let mut got = Vec::new();
                let _ = s.read_to_end(&mut got);
                String::from_utf8_lossy(&got).into_owned()
            })
            .collect::<Vec<_>>()
    });
    let out = spawn_accelerated(
        &topo,
        &["EXASOCK_SPIN_USEC=50"],
        &[&exe, &ip.to_string(), &port.to_string(), &topo.accel.ip.to_string(), "7621"],
    )
    .finish(T)
    .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    let want = format!(
        "device_pipe=-1 EOPNOTSUPP\nheader_udp=-1 EOPNOTSUPP\nheader_listener=-1 ENOTCONN\ndevice=0 ok\n\
         dev={} port=0\nheader_offset=-1 EINVAL\nheader_short=-1 ENOBUFS\nheader_null=-1 EFAULT\n",
        topo.accel.iface
    );
    assert!(stdout.starts_with(&want), "got:\n{stdout}\nwanted first:\n{want}");
    let rest: Vec<&str> = stdout.lines().skip(8).collect();
    assert!(rest[0].starts_with("header=") && rest[0].ends_with(" ok"), "{stdout}");
    assert_eq!(
        rest[1..],
        [
            "frame_garbage=-1 EINVAL",
            "frame_null=-1 EFAULT",
            "frame_other_fd=-1 EOPNOTSUPP",
            "advance_null=-1 EFAULT",
            "send=2 ok",
            "frame_stale=-1 EPROTO",
            "header_shut=-1 EPIPE",
            "advance_shut=-1 EPIPE",
            "warm_shut=-1 EPIPE",
            "warm_kernel=9 ok",
            "device_kernel=-1 EOPNOTSUPP",
            "send_kernel=6 ok",
        ],
        "{stdout}"
    );
    let warning = "exasock warning: sending MSG_EXA_WARM message on not accelerated socket";
    assert_eq!(stderr.matches(warning).count(), 1, "{stderr}");
    let got = reader.join().unwrap();
    assert_eq!(got, ["xy", "kernel"], "the peer read the sends, and nothing of the warm send");
}

/// udp-timestamp under exasock: every datagram from the peer comes with a software receive
/// timestamp (SO_TIMESTAMPING) taken moments before recvmsg returned, and is echoed.
#[test]
fn udp_timestamp_reports_a_receive_timestamp_for_every_datagram() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let exe = example("udp-timestamp");
    let port = 7630u16;
    let mut rx = spawn_accelerated(
        &topo,
        &["EXASOCK_DEBUG=1", "EXASOCK_SPIN_USEC=50"],
        &[&exe, &topo.accel.ip.to_string(), &port.to_string(), "3"],
    );
    rx.wait_for_line("ready (exasock loaded)", T).unwrap();
    let peer_ip = topo.peer.ip;
    let tx = topo.in_ns(Side::Peer, move || UdpSocket::bind((peer_ip, 0))).unwrap().unwrap();
    tx.set_read_timeout(Some(T)).unwrap();
    for i in 0..3 {
        let msg = format!("stamp me {i}");
        tx.send_to(msg.as_bytes(), (topo.accel.ip, port)).unwrap();
        let mut buf = [0u8; 64];
        let n = tx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], msg.as_bytes(), "the echo of datagram {i}");
    }
    let out = rx.finish(T).unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && stderr.contains("enabled bypass"), "{stdout}{stderr}");
    for line in stdout.lines().filter(|l| l.starts_with("datagram")) {
        let age: i64 =
            line.split(", ").nth(2).and_then(|a| a.split(' ').next()).and_then(|a| a.parse().ok()).unwrap_or(-1);
        assert!(line.contains("timestamped") && (0..1_000_000).contains(&age), "{line}\n{stdout}");
    }
    assert_eq!(stdout.lines().filter(|l| l.starts_with("datagram")).count(), 3, "{stdout}");
}

/// multicast-echo under exasock: datagrams the peer sends to the group are received through
/// the stack (the accelerated namespace's kernel receives none) and echoed to the sender.
#[test]
fn multicast_echo_answers_each_group_datagram() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let exe = example("multicast-echo");
    let port = 7640u16;
    let before = topo.counter(Side::Accel, "UdpInDatagrams").unwrap();
    let mut rx = spawn_accelerated(
        &topo,
        &["EXASOCK_DEBUG=1", "EXASOCK_SPIN_USEC=50"],
        &[&exe, "239.1.2.4", &port.to_string(), &topo.accel.ip.to_string(), "3"],
    );
    rx.wait_for_line("ready (exasock loaded)", T).unwrap();
    let peer_ip = topo.peer.ip;
    let tx = topo.in_ns(Side::Peer, move || UdpSocket::bind((peer_ip, 0))).unwrap().unwrap();
    tx.set_multicast_ttl_v4(1).unwrap();
    tx.set_read_timeout(Some(T)).unwrap();
    for i in 0..3 {
        tx.send_to(format!("m{i}").as_bytes(), ("239.1.2.4", port)).unwrap();
        let mut buf = [0u8; 64];
        let n = tx.recv(&mut buf).unwrap();
        assert_eq!(String::from_utf8_lossy(&buf[..n]), format!("echo m{i}"));
    }
    let out = rx.finish(T).unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && stderr.contains("enabled bypass"), "{stdout}{stderr}");
    assert_eq!(
        topo.counter(Side::Accel, "UdpInDatagrams").unwrap(),
        before,
        "the kernel received the group's datagrams"
    );
}
