//! The C suite (tests/c/suite.c and the files beside it), built here with the system's C compiler. Each case runs twice
//! in the accel namespace, on the kernel and under exasock, against a kernel echo server in the
//! peer namespace; both runs must print the same results and errnos, line for line, and the
//! exasock run must really be accelerated.

use common::{attached, spawn_accelerated_for, PeerEcho, PeerTcp};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;
use testbed::{Side, Topology};

mod common;

const ECHO_PORT: u16 = 7990;
const BASE_PORT: &str = "8100";
/// Waits spin briefly, then sleep: 8 threads on 2 cores must not spin each other out.
const SPIN: &str = "EXASOCK_SPIN_USEC=50";

/// Compiles the suite once per test binary.
fn suite() -> &'static str {
    static BUILT: OnceLock<String> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/c");
        let sources = ["suite.c", "tcp_api.c", "udp_api.c"].map(|f| dir.join(f));
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("exasock-c-suite");
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let status = Command::new(&cc)
            .args(["-O2", "-Wall", "-Wextra", "-Werror", "-pthread", "-o"])
            .arg(&out)
            .args(&sources)
            .status()
            .unwrap_or_else(|e| panic!("cannot run {cc}: {e}"));
        assert!(status.success(), "{} did not compile", dir.display());
        out.to_string_lossy().into_owned()
    })
}

/// What one run printed, and what the accel namespace's kernel counted meanwhile.
struct Run {
    stdout: String,
    stderr: String,
    /// Datagrams the kernel received (UdpInDatagrams).
    kernel_received: u64,
    /// Connections the kernel accepted (TcpPassiveOpens).
    kernel_passive_opens: u64,
    /// TCP segments the kernel received and sent (TcpInSegs + TcpOutSegs).
    kernel_tcp_segments: u64,
}

/// The accel namespace kernel's counters a run is judged by.
const COUNTERS: [&str; 4] = ["UdpInDatagrams", "TcpPassiveOpens", "TcpInSegs", "TcpOutSegs"];

fn counters(topo: &Topology) -> [u64; 4] {
    COUNTERS.map(|c| topo.counter(Side::Accel, c).unwrap())
}

impl Run {
    fn of(out: &std::process::Output, delta: [u64; 4]) -> Run {
        Run {
            stdout: String::from_utf8_lossy(&out.stdout).into(),
            stderr: String::from_utf8_lossy(&out.stderr).into(),
            kernel_received: delta[0],
            kernel_passive_opens: delta[1],
            kernel_tcp_segments: delta[2] + delta[3],
        }
    }
}

fn args<'a>(topo: &Topology, case: &'a str, extra: &'a str, ip: &'a mut String) -> Vec<&'a str> {
    *ip = topo.peer.ip.to_string();
    let mut v = vec![suite(), case, ip.as_str(), "7990", BASE_PORT];
    if !extra.is_empty() {
        v.push(extra);
    }
    v
}

fn on_kernel(topo: &Topology, case: &str, extra: &str, timeout: Duration) -> Run {
    let mut ip = String::new();
    let argv = args(topo, case, extra, &mut ip);
    let out = topo.spawn(Side::Accel, &argv, timeout).unwrap().finish(timeout).unwrap();
    let run = Run::of(&out, [0; 4]);
    assert!(out.status.success(), "{case} failed on the kernel: {}\n{}", run.stdout, run.stderr);
    run
}

fn under_exasock(topo: &Topology, case: &str, extra: &str, timeout: Duration) -> Run {
    under_exasock_with(topo, case, extra, timeout, &[])
}

fn under_exasock_with(topo: &Topology, case: &str, extra: &str, timeout: Duration, env: &[&str]) -> Run {
    let mut ip = String::new();
    let argv = args(topo, case, extra, &mut ip);
    let before = counters(topo);
    let mut full_env = vec!["EXASOCK_DEBUG=1", SPIN];
    full_env.extend_from_slice(env);
    let out = spawn_accelerated_for(topo, &full_env, &argv, timeout).finish(timeout).unwrap();
    let after = counters(topo);
    let run = Run::of(&out, std::array::from_fn(|i| after[i] - before[i]));
    eprintln!("{case} under exasock:\n{}{}", run.stdout, run.stderr);
    assert!(out.status.success(), "{case} failed under exasock ({}): {}\n{}", out.status, run.stdout, run.stderr);
    run
}

/// Runs `case` both ways and requires the same output; returns the exasock run.
fn same_as_kernel(topo: &Topology, case: &str, extra: &str, timeout: Duration) -> Run {
    same_as_kernel_with(topo, case, extra, timeout, &[])
}

/// As `same_as_kernel`, with extra environment for the exasock run.
fn same_as_kernel_with(topo: &Topology, case: &str, extra: &str, timeout: Duration, env: &[&str]) -> Run {
    let kernel = on_kernel(topo, case, extra, timeout);
    let exasock = under_exasock_with(topo, case, extra, timeout, env);
    assert!(kernel.stdout.lines().count() >= 1, "{case} printed too little on the kernel:\n{}", kernel.stdout);
    for (k, e) in kernel.stdout.lines().zip(exasock.stdout.lines()) {
        assert_eq!(e, k, "\n{case} on the kernel:\n{}\nunder exasock:\n{}", kernel.stdout, exasock.stdout);
    }
    assert_eq!(
        kernel.stdout.lines().count(),
        exasock.stdout.lines().count(),
        "\n{case} on the kernel:\n{}\nunder exasock:\n{}",
        kernel.stdout,
        exasock.stdout
    );
    exasock
}

fn bypasses(run: &Run) -> usize {
    run.stderr.matches("enabled bypass").count()
}

#[test]
fn error_paths_signals_duplicates_and_epoll_flags_match_the_kernel() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let _echo = PeerEcho::start(&topo, ECHO_PORT);
    for (case, sockets) in [
        ("errors", 2),
        ("calls", 1),
        ("signals", 4),
        ("dup", 3),
        ("epoll", 3),
        ("epoll-ready", 200),
        ("stale", 3),
        ("handler-close", 2),
        ("mcast", 1),
    ] {
        let run = same_as_kernel(&topo, case, "", Duration::from_secs(60));
        assert!(bypasses(&run) >= sockets, "{case}: not accelerated:\n{}", run.stderr);
        assert_eq!(run.kernel_received, 0, "{case}: the exasock run received through the kernel");
    }
}

#[test]
fn eight_threads_on_one_socket_for_ten_seconds_and_on_four_account_for_every_datagram() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let _echo = PeerEcho::start(&topo, ECHO_PORT);
    let run = same_as_kernel(&topo, "threads", "10", Duration::from_secs(60));
    assert!(run.stdout.contains("missing=0 duplicated=0 phantom=0 bad=0 enough=1"), "{}", run.stdout);
    assert!(bypasses(&run) >= 1, "not accelerated:\n{}", run.stderr);
    assert_eq!(run.kernel_received, 0, "received through the kernel");
    // ...and on four sockets, two threads each.
    let split = same_as_kernel(&topo, "threads-split", "3", Duration::from_secs(60));
    assert!(split.stdout.contains("missing=0 duplicated=0 phantom=0 bad=0 enough=1"), "{}", split.stdout);
    assert!(bypasses(&split) >= 4, "not accelerated:\n{}", split.stderr);
    assert_eq!(split.kernel_received, 0, "received through the kernel");
}

#[test]
fn fork_and_exec_keep_sockets_working_as_on_the_kernel() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let _echo = PeerEcho::start(&topo, ECHO_PORT);
    // fork: the parent's socket, the child's own, the parent's new one.
    let fork = same_as_kernel(&topo, "fork", "", Duration::from_secs(60));
    assert!(fork.stdout.contains("fork-child-2 got: alone"), "{}", fork.stdout);
    assert!(bypasses(&fork) >= 3, "fork: not accelerated:\n{}", fork.stderr);
    // exec: two sockets before, the rebound one after.
    let exec = same_as_kernel(&topo, "exec", "", Duration::from_secs(60));
    assert!(exec.stdout.contains("exec-next got: inherited"), "{}", exec.stdout);
    assert!(bypasses(&exec) >= 3, "exec: not accelerated:\n{}", exec.stderr);
}

#[test]
fn a_signal_storm_for_thirty_seconds_loses_nothing_and_never_hangs() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let _echo = PeerEcho::start(&topo, ECHO_PORT);
    let drops = |side| topo.counter(side, "UdpRcvbufErrors").unwrap_or(0);
    let before = (drops(Side::Peer), drops(Side::Accel));
    let run = under_exasock(&topo, "storm", "30", Duration::from_secs(90));
    let dropped = (drops(Side::Peer) - before.0, drops(Side::Accel) - before.1);
    assert!(
        run.stdout.contains("storm lost=0 wrong=0 handler-lost=0 busy=1"),
        "{}\n{}\nkernel receive-queue drops since the start: peer {}, accelerated side {}",
        run.stdout,
        run.stderr,
        dropped.0,
        dropped.1
    );
    assert!(bypasses(&run) >= 2, "not accelerated:\n{}", run.stderr);
    eprintln!("{}", run.stderr.lines().find(|l| l.starts_with("storm:")).unwrap_or_default());
}

#[test]
fn a_fault_inside_an_accelerated_call_reaches_the_program_s_handler_at_once() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let _echo = PeerEcho::start(&topo, ECHO_PORT);
    let kernel = on_kernel(&topo, "fault", "", Duration::from_secs(20));
    assert_eq!(kernel.stdout.trim(), "fault sendto-unmapped: -1 EFAULT");
    // Under exasock the copy from the bad buffer faults under exasock's lock: the handler runs
    // then (a deferred fault would recur forever and the run would hit its timeout).
    let run = under_exasock(&topo, "fault", "", Duration::from_secs(20));
    assert!(
        run.stdout.trim() == kernel.stdout.trim() || run.stdout.trim() == "fault handler-ran",
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    assert!(bypasses(&run) >= 1, "not accelerated:\n{}", run.stderr);
}

#[test]
fn tcp_core_calls_match_the_kernel_with_tcp_left_on_the_kernel() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let _tcp = PeerTcp::start(&topo, ECHO_PORT);
    let run = same_as_kernel_with(&topo, "tcp", "", Duration::from_secs(60), &["EXASOCK_TCP=0"]);
    // The control socket (UDP) is accelerated; with EXASOCK_TCP=0 the TCP sockets are not.
    assert_eq!(bypasses(&run), 1, "only the UDP control socket:\n{}", run.stderr);
    assert!(run.kernel_passive_opens > 0, "with EXASOCK_TCP=0 the kernel accepts");
    for line in ["tcp peer-after-close: eof 3", "tcp peer-after-linger-0: reset", "tcp peer-after-our-fin: eof 0"] {
        assert!(run.stdout.contains(line), "{line} missing:\n{}", run.stdout);
    }
}

#[test]
fn tcp_core_calls_match_the_kernel_with_tcp_accelerated() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let _tcp = PeerTcp::start(&topo, ECHO_PORT);
    // The kernel run accepts three connections; under exasock the kernel of the accelerated
    // namespace must not see them.
    let run = same_as_kernel(&topo, "tcp", "", Duration::from_secs(60));
    // The control socket, the listener and the three accepted connections.
    assert!(bypasses(&run) >= 5, "not accelerated:\n{}", run.stderr);
    assert_eq!(run.kernel_passive_opens, 0, "the kernel accepted connections meant for the accelerated listener");
    assert_eq!(run.kernel_tcp_segments, 0, "the accel namespace's kernel carried TCP segments");
}

/// Datagrams and connections that reach an accelerated UDP socket and listener through the
/// kernel (loopback) are reported by epoll, and once read or accepted are not reported again,
/// as on the kernel. A stale report hung event loops that read with blocking calls (a Python
/// selectors echo server blocked in recvfrom while its TCP connection's data waited).
#[test]
fn epoll_reports_kernel_path_traffic_once_and_not_after_it_is_taken() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let run = same_as_kernel(&topo, "epoll-loopback", "", Duration::from_secs(60));
    assert!(bypasses(&run) >= 2, "the UDP socket and the listener were not accelerated:\n{}", run.stderr);
}

#[test]
fn tcp_readiness_in_epoll_and_select_matches_the_kernel_with_tcp_accelerated() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let _tcp = PeerTcp::start(&topo, ECHO_PORT);
    let run = same_as_kernel(&topo, "tcp-epoll", "", Duration::from_secs(60));
    // The control socket, the listener and the accepted connection.
    assert!(bypasses(&run) >= 3, "not accelerated:\n{}", run.stderr);
    assert_eq!(run.kernel_passive_opens, 0, "the kernel accepted the connection");
    assert_eq!(run.kernel_tcp_segments, 0, "the accel namespace's kernel carried TCP segments");
}

/// TCP across fork and exec prints what the kernel prints: a connection the child uses (the
/// parent hands it over when the child asks), one the parent closes while a child still uses
/// it, one passed across exec. The three connections were accelerated first.
#[test]
fn tcp_across_fork_and_exec_matches_the_kernel() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let _tcp = PeerTcp::start(&topo, ECHO_PORT);
    let run = same_as_kernel(&topo, "tcp-fork", "", Duration::from_secs(60));
    assert!(bypasses(&run) >= 3, "not accelerated:\n{}", run.stderr);
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
}

/// Dual-stack sockets: an AF_INET6 listener on `::` serves an IPv4 peer accelerated, naming it
/// IPv4-mapped exactly as the kernel does; an AF_INET6 client reaches an IPv4-mapped address
/// accelerated; IPv6-only sockets and mismatched address families get the kernel's answers.
#[test]
fn dual_stack_sockets_serve_ipv4_accelerated_with_the_kernels_addresses() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let _tcp = PeerTcp::start(&topo, ECHO_PORT);
    let run = same_as_kernel(&topo, "tcp-dual", "", Duration::from_secs(60));
    // The control socket, the listener, the accepted connection and the client.
    assert!(bypasses(&run) >= 4, "not accelerated:\n{}", run.stderr);
    assert_eq!(run.kernel_passive_opens, 0, "the kernel accepted the IPv4 connection");
    assert_eq!(run.kernel_tcp_segments, 0, "the accel namespace's kernel carried TCP segments");
    assert!(run.stderr.contains("stays on the kernel: it is IPv6-only"), "no reason given:\n{}", run.stderr);
}

/// sendfile (with an offset and with the file position), splice from a pipe into a connection
/// and from a connection into a pipe, non-blocking sendfile of 4 MB interleaved with reading
/// the echo: the kernel's results, byte-exact, accelerated.
#[test]
fn sendfile_and_splice_on_accelerated_connections_match_the_kernel() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let _tcp = PeerTcp::start(&topo, ECHO_PORT);
    let run = same_as_kernel(&topo, "tcp-transfer", "", Duration::from_secs(60));
    assert!(bypasses(&run) >= 1, "not accelerated:\n{}", run.stderr);
    assert_eq!(run.kernel_tcp_segments, 0, "the accel namespace's kernel carried TCP segments");
    assert!(run.stdout.contains(&format!("sent {n} echoed {n} in-order 1", n = 4 << 20)), "{}", run.stdout);
}

/// Options on a listener that accepted connections inherit, the options that describe a
/// socket, O_NONBLOCK both ways, and the queue ioctls (FIONREAD/SIOCINQ, SIOCOUTQ, a listener's
/// EINVAL): the kernel's answers on accelerated sockets.
#[test]
fn socket_options_inheritance_and_queue_ioctls_match_the_kernel() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let _tcp = PeerTcp::start(&topo, ECHO_PORT);
    let run = same_as_kernel(&topo, "tcp-options", "", Duration::from_secs(60));
    // The control socket, the listener and the accepted connection.
    assert!(bypasses(&run) >= 3, "not accelerated:\n{}", run.stderr);
    // What exasock does not do, it says (docs/ARCHITECTURE.md, "what exasock refuses").
    assert!(run.stderr.contains("warning: SO_PRIORITY on fd"), "no warning for SO_PRIORITY:\n{}", run.stderr);
    assert_eq!(run.kernel_passive_opens, 0, "the kernel accepted the connection");
    assert!(run.stdout.contains("siocoutq-holds-bytes: 1"), "{}", run.stdout);
}

/// Four threads on one listener, each waiting in its own epoll set with EPOLLEXCLUSIVE, then
/// four in blocking accept: each of 2 x 40 connections accepted exactly once.
#[test]
fn threads_sharing_a_listener_accept_every_connection_once() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let _tcp = PeerTcp::start(&topo, ECHO_PORT);
    let run = same_as_kernel_with(&topo, "tcp-accept-threads", "", Duration::from_secs(90), &[]);
    assert!(bypasses(&run) >= 80, "not accelerated:\n{}", run.stderr);
    assert_eq!(run.kernel_passive_opens, 0, "the kernel accepted connections");
    for line in ["epoll-exclusive: accepted 40 bad 0", "blocking: accepted 40 bad 0", "peer-saw-eof: 40"] {
        assert!(run.stdout.contains(line), "{line} missing:\n{}", run.stdout);
    }
}

/// The flags and options that change what a connection sends or how it reads: SO_PEEK_OFF,
/// MSG_TRUNC, MSG_MORE, TCP_CORK, MSG_OOB sent and received (SIOCATMARK, POLLPRI), SO_RCVLOWAT,
/// TCP_MAXSEG before connect, TCP_CONGESTION, SIOCOUTQNSD: the kernel's results, accelerated.
#[test]
fn recv_and_send_flags_and_stream_options_match_the_kernel() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let _tcp = PeerTcp::start(&topo, ECHO_PORT);
    let run = same_as_kernel(&topo, "tcp-flags", "", Duration::from_secs(60));
    // The control socket, the connection, the listener and the accepted connection.
    assert!(bypasses(&run) >= 4, "not accelerated:\n{}", run.stderr);
    assert_eq!(run.kernel_tcp_segments, 0, "the accel namespace's kernel carried TCP segments");
    for line in ["tcp-flags oob: Y", "tcp-flags at-mark: 1", "tcp-flags echo-within-50ms: 0"] {
        assert!(run.stdout.contains(line), "{line} missing:\n{}", run.stdout);
    }
}

/// Four listeners in one process form a SO_REUSEPORT group and share 1,000 connections from
/// the peer, each accepted once, every listener taking some, none through the kernel.
#[test]
fn a_reuseport_group_of_four_listeners_shares_1000_connections() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let _tcp = PeerTcp::start(&topo, ECHO_PORT);
    let run = same_as_kernel(&topo, "tcp-reuseport", "", Duration::from_secs(120));
    assert!(run.stdout.contains("accepted 1000 listeners-used 4 peer-answers 1000"), "{}", run.stdout);
    assert!(bypasses(&run) >= 1000, "not accelerated:\n{}", run.stderr.lines().last().unwrap_or(""));
    assert_eq!(run.kernel_passive_opens, 0, "the kernel accepted connections");
    eprintln!("{}", run.stderr.lines().find(|l| l.starts_with("tcp-reuseport:")).unwrap_or_default());
}

/// recvmsg's control messages on accelerated UDP (IP_PKTINFO, IP_RECVTOS, IP_RECVTTL,
/// IP_RECVORIGDSTADDR, SO_RXQ_OVFL, SO_TIMESTAMPNS), cut with MSG_CTRUNC as the kernel cuts
/// them, for unicast and for each of several groups on one socket; sendmsg's IP_TOS, IP_TTL
/// and IP_PKTINFO with the kernel's errnos: the kernel's results, accelerated, with the
/// accelerated namespace's kernel receiving none of the datagrams.
#[test]
fn control_messages_both_ways_match_the_kernel() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let _echo = PeerEcho::start(&topo, ECHO_PORT);
    let run = same_as_kernel(&topo, "ancillary", "", Duration::from_secs(60));
    assert!(bypasses(&run) >= 2, "not accelerated:\n{}", run.stderr);
    assert_eq!(run.kernel_received, 0, "the exasock run received through the kernel");
    for line in [
        "ancillary unicast:   IP_PKTINFO ifindex=veth spec_dst=10.99.0.1 addr=10.99.0.1",
        "ancillary group-2:   IP_PKTINFO ifindex=veth spec_dst=10.99.0.1 addr=239.1.9.22",
        "ancillary send-tos-ttl: peer saw tos=16 ttl=33 from=10.99.0.1 to=10.99.0.2",
        "ancillary after-drops:   SO_RXQ_OVFL >0=1",
    ] {
        assert!(run.stdout.contains(line), "{line} missing:\n{}", run.stdout);
    }
}

/// Broadcast: datagrams to the subnet's directed broadcast and to 255.255.255.255 reach every
/// wildcard socket of the port (two here) and none bound to our unicast address; sending to
/// either needs SO_BROADCAST (EACCES without it, as Linux) and then reaches a wildcard peer;
/// the limited broadcast needs a route or a source address (ENETUNREACH otherwise, as Linux);
/// a broadcast sent by an accelerated socket reaches this host's sockets of the port too.
#[test]
fn broadcast_reaches_every_wildcard_receiver_and_needs_so_broadcast_to_send() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let _echo = PeerEcho::start(&topo, ECHO_PORT);
    let _wildcard = PeerEcho::start_on(&topo, std::net::Ipv4Addr::UNSPECIFIED, ECHO_PORT + 2);
    let run = same_as_kernel(&topo, "broadcast", "", Duration::from_secs(60));
    assert!(bypasses(&run) >= 4, "not accelerated:\n{}", run.stderr);
    // Only the looped broadcast, which the kernel delivers to its three local receivers.
    assert_eq!(run.kernel_received, 3, "the exasock run received the peer's datagrams through the kernel");
    for line in [
        "broadcast directed-b:   IP_PKTINFO ifindex=veth spec_dst=10.99.0.1 addr=10.99.0.255",
        "broadcast limited-a:   IP_PKTINFO ifindex=veth spec_dst=10.99.0.1 addr=255.255.255.255",
        "broadcast unicast-bound-gets-none: -1 EAGAIN",
        "broadcast send-directed-denied: -1 EACCES",
        "broadcast send-limited-from-our-address: peer saw tos=0 ttl=64 from=10.99.0.1 to=255.255.255.255",
        "broadcast looped-b: 6 \"looped\" controllen 32",
        "broadcast looped-kernel: 6 \"looped\"",
    ] {
        assert!(run.stdout.contains(line), "{line} missing:\n{}", run.stdout);
    }
}

/// Delivery as Linux's: a wildcard socket takes its groups and unicast, a socket bound to the
/// unicast address no group, one bound to a group only that group, a connected one only its
/// peer's 4-tuple.
#[test]
fn multicast_delivery_follows_the_bound_address_and_the_connected_peer_as_the_kernel_does() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let _echo = PeerEcho::start(&topo, ECHO_PORT);
    let run = same_as_kernel(&topo, "mcast-deliver", "", Duration::from_secs(60));
    assert!(bypasses(&run) >= 4, "not accelerated:\n{}", run.stderr);
    for line in [
        "mcast-deliver g1 wildcard: 2 \"g1\" controllen 0",
        "mcast-deliver g1 unicast-bound: -1 EAGAIN",
        "mcast-deliver g1 group-bound: 2 \"g1\" controllen 0",
        "mcast-deliver g1 connected: -1 EAGAIN",
        "mcast-deliver g2 wildcard: 2 \"g2\" controllen 0",
        "mcast-deliver g2 group-bound: -1 EAGAIN",
        "mcast-deliver unicast wildcard: -1 EAGAIN",
        "mcast-deliver unicast unicast-bound: 7 \"unicast\" controllen 0",
        "mcast-deliver unicast group-bound: -1 EAGAIN",
        "mcast-deliver unicast connected: -1 EAGAIN",
        "mcast-deliver unicast-again wildcard: 13 \"unicast-again\"",
        "mcast-deliver unicast-again connected: -1 EAGAIN",
    ] {
        assert!(run.stdout.contains(line), "{line} missing:\n{}", run.stdout);
    }
}

/// IP_MULTICAST_ALL, on by default as on Linux: wildcard sockets of a port receive a group
/// that one socket of the port joined, and one that a socket of another port joined (through
/// the kernel socket: this process's ring takes a group only on the ports that joined it);
/// with it off, only their own joins; a group nobody joined, or left, reaches nobody.
#[test]
fn multicast_all_delivers_every_group_joined_on_the_host_as_the_kernel_does() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let _echo = PeerEcho::start(&topo, ECHO_PORT);
    let run = same_as_kernel(&topo, "mcast-all", "", Duration::from_secs(60));
    assert!(bypasses(&run) >= 6, "not accelerated:\n{}", run.stderr);
    for line in [
        "mcast-all g1-to-p all: 7 \"g1-to-p\" controllen 32",
        "mcast-all g1-to-p own: -1 EAGAIN",
        "mcast-all g2-to-p member: 7 \"g2-to-p\" controllen 32",
        "mcast-all g1-to-p2 elsewhere: 8 \"g1-to-p2\" controllen 32",
        "mcast-all g3-to-p all: -1 EAGAIN",
        "mcast-all after-leave all: -1 EAGAIN",
    ] {
        assert!(run.stdout.contains(line), "{line} missing:\n{}", run.stdout);
    }
}

/// IP_MULTICAST_LOOP, on by default: a datagram an accelerated socket sends to a group reaches
/// an accelerated member in the same process and a kernel socket of the host (its TTL-0 copy
/// through the kernel); off, neither. The peer still gets it from the wire. With
/// EXASOCK_MCAST_LOOP=0 no local member gets it even with the option on.
#[test]
fn multicast_loop_reaches_local_members_as_the_kernel_does_and_off_reaches_none() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let _echo = PeerEcho::start(&topo, ECHO_PORT);
    // A member on the peer: the looped copy (TTL 0, a wrong UDP checksum) must not reach it.
    let _member = PeerEcho::start_member(&topo, std::net::Ipv4Addr::new(239, 1, 9, 41), 8181);
    let bad_before = topo.counter(Side::Peer, "UdpInCsumErrors").unwrap();
    let run = same_as_kernel(&topo, "mcast-loop", "", Duration::from_secs(60));
    assert!(bypasses(&run) >= 2, "not accelerated:\n{}", run.stderr);
    let leaked = topo.counter(Side::Peer, "UdpInCsumErrors").unwrap() - bad_before;
    assert_eq!(leaked, 0, "looped copies reached the wire");
    for line in [
        "mcast-loop loop-on member: 7 \"loop-on\" controllen 32",
        "mcast-loop loop-on kernel-member: 7 \"loop-on\"",
        "mcast-loop loop-off member: -1 EAGAIN",
        "mcast-loop loop-off kernel-member: -1 EAGAIN",
    ] {
        assert!(run.stdout.contains(line), "{line} missing:\n{}", run.stdout);
    }
    let switched_off = under_exasock_with(&topo, "mcast-loop", "", Duration::from_secs(60), &["EXASOCK_MCAST_LOOP=0"]);
    assert!(
        switched_off.stdout.contains("mcast-loop loop-on kernel-member: -1 EAGAIN"),
        "EXASOCK_MCAST_LOOP=0 still looped:\n{}",
        switched_off.stdout
    );
}

/// Sending to a group: the source from the bound address, else IP_MULTICAST_IF (by address,
/// ip_mreq or ip_mreqn), else the route (none: ENETUNREACH); the TTL from IP_MULTICAST_TTL (0
/// still leaves when no socket on the host is a member, as Linux), IP_TOS; a peer member sees
/// what the kernel's sends show, once each (no looped copy leaks: no local member). Source-
/// specific memberships (through the kernel socket) let only the named source's datagrams in.
#[test]
fn multicast_sources_ttl_and_source_specific_membership_match_the_kernel() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let _echo = PeerEcho::start(&topo, ECHO_PORT);
    let _member = PeerEcho::start_member(&topo, std::net::Ipv4Addr::new(239, 1, 9, 51), ECHO_PORT + 3);
    let bad_before = topo.counter(Side::Peer, "UdpInCsumErrors").unwrap();
    let run = same_as_kernel(&topo, "mcast-tx", "", Duration::from_secs(60));
    assert!(bypasses(&run) >= 3, "not accelerated:\n{}", run.stderr);
    let leaked = topo.counter(Side::Peer, "UdpInCsumErrors").unwrap() - bad_before;
    assert_eq!(leaked, 0, "looped copies reached the wire");
    for line in [
        "mcast-tx send-no-route: -1 ENETUNREACH",
        "mcast-tx send-if-addr: peer saw tos=0 ttl=1 from=10.99.0.1 to=239.1.9.51",
        "mcast-tx send-ttl-tos: peer saw tos=32 ttl=7 from=10.99.0.1 to=239.1.9.51",
        "mcast-tx send-ttl-0: peer saw tos=32 ttl=0 from=10.99.0.1 to=239.1.9.51",
        "mcast-tx send-from-bound: peer saw tos=0 ttl=1 from=10.99.0.1 to=239.1.9.51",
        "mcast-tx from-source: 11 \"from-source\" controllen 32",
        "mcast-tx not-from-source: -1 EAGAIN",
        "mcast-tx any-source all: 10 \"any-source\" controllen 32",
        "mcast-tx any-source other-source-member: -1 EAGAIN",
        "mcast-tx any-source other-source-member-gsr: -1 EAGAIN",
        "mcast-tx unblocked other-source-member-gsr: -1 EAGAIN",
        "mcast-tx blocked all: -1 EAGAIN",
        "mcast-tx blocked other-source-member: -1 EAGAIN",
        "mcast-tx unblocked all: 9 \"unblocked\" controllen 32",
        "mcast-tx unblocked other-source-member: -1 EAGAIN",
    ] {
        assert!(run.stdout.contains(line), "{line} missing:\n{}", run.stdout);
    }
}
