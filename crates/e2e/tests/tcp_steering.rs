//! TCP steering in the namespace topology, with kernel TCP on both sides and raw frames on the
//! ring (issue 12 groundwork): a listener's entry takes only opening SYNs, a connection's entry
//! takes exactly its 4-tuple, and a killed owner's connections go back to the kernel, which
//! resets them, through the per-process liveness anchor.

use nic::af_packet::{AfPacketConfig, AfPacketPort};
use nic::steering::{pid_alive, Datapath, Flow, Steering};
use nic::Port;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};
use testbed::{Side, Topology};
mod common;

use common::attached;

const T: Duration = Duration::from_secs(30);
const CLAIM: &str = env!("CARGO_BIN_EXE_steer-claim");
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;

/// One TCP segment seen on the ring.
#[derive(Debug, Clone, Copy)]
struct Segment {
    src: SocketAddrV4,
    dst: SocketAddrV4,
    flags: u8,
    payload: usize,
}

fn parse(frame: &[u8]) -> Option<Segment> {
    if frame.len() < 14 + 20 || frame[12..14] != [0x08, 0x00] {
        return None;
    }
    let ip = &frame[14..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    if ip[9] != 6 || ip.len() < ihl + 20 {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let tcp = &ip[ihl..];
    let doff = usize::from(tcp[12] >> 4) * 4;
    let addr =
        |a: &[u8], p: &[u8]| SocketAddrV4::new(Ipv4Addr::new(a[0], a[1], a[2], a[3]), u16::from_be_bytes([p[0], p[1]]));
    Some(Segment {
        src: addr(&ip[12..16], &tcp[0..2]),
        dst: addr(&ip[16..20], &tcp[2..4]),
        flags: tcp[13],
        payload: total.saturating_sub(ihl + doff),
    })
}

/// The TCP segments that reach the ring within `window`.
fn ring_segments(port: &mut AfPacketPort, window: Duration) -> Vec<Segment> {
    let mut out = Vec::new();
    let end = Instant::now() + window;
    while Instant::now() < end {
        if port.receive(64, &mut |f| out.extend(parse(f.data))) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    out
}

/// A kernel listener on the accel side (on every address: it is also what holds the port for
/// this process's claims) and `n` kernel connections to it from the peer: (peer end, accel end)
/// pairs.
fn connections(topo: &Topology, port: u16, n: usize) -> (TcpListener, Vec<(TcpStream, TcpStream)>) {
    let accel_ip = topo.accel.ip;
    let listener = topo.in_ns(Side::Accel, move || TcpListener::bind((Ipv4Addr::UNSPECIFIED, port))).unwrap().unwrap();
    let mut pairs = Vec::new();
    for _ in 0..n {
        let client = topo.in_ns(Side::Peer, move || TcpStream::connect((accel_ip, port))).unwrap().unwrap();
        let (server, from) = listener.accept().unwrap();
        assert_eq!(from, client.local_addr().unwrap());
        for s in [&client, &server] {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s.set_nodelay(true).unwrap();
        }
        pairs.push((client, server));
    }
    (listener, pairs)
}

fn v4(a: std::net::SocketAddr) -> SocketAddrV4 {
    match a {
        std::net::SocketAddr::V4(a) => a,
        other => panic!("not IPv4: {other}"),
    }
}

/// Bytes both ways over a kernel connection.
fn exchange(a: &mut TcpStream, b: &mut TcpStream, len: usize, what: &str) {
    one_way(a, b, len, 1, what);
    one_way(b, a, len, 2, what);
}

fn one_way(from: &TcpStream, to: &mut TcpStream, len: usize, tag: u8, what: &str) {
    {
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8 ^ tag).collect();
        let mut writer = from.try_clone().unwrap();
        let sent = data.clone();
        let w = std::thread::spawn(move || writer.write_all(&sent));
        let mut got = vec![0u8; len];
        to.read_exact(&mut got).unwrap_or_else(|e| panic!("{what}: no bytes through the kernel connection: {e}"));
        w.join().unwrap().unwrap();
        assert!(got == data, "{what}: bytes differ");
    }
}

/// This process's steering and ring on the accel interface.
fn owner(topo: &Topology) -> (Steering, AfPacketPort) {
    let iface = topo.accel.iface.clone();
    topo.in_ns(Side::Accel, move || {
        (Steering::open(&iface).unwrap(), AfPacketPort::open(&iface, AfPacketConfig::default()).unwrap())
    })
    .unwrap()
}

/// Whether a read of `s` finds nothing within its timeout (the kernel got no bytes).
fn reads_nothing(s: &mut TcpStream, timeout: Duration) -> bool {
    s.set_read_timeout(Some(timeout)).unwrap();
    let r = s.read(&mut [0u8; 64]);
    matches!(&r, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut))
}

#[test]
fn a_listener_entry_takes_only_opening_syns_and_kernel_connections_on_its_port_keep_working() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    const PORT: u16 = 7600;
    let (_listener, mut pairs) = connections(&topo, PORT, 1);
    let (mut client, mut server) = pairs.pop().unwrap();
    let kernel_peer = v4(client.local_addr().unwrap());

    let (mut steering, mut ring) = owner(&topo);
    let flow = Flow::tcp_listener(Ipv4Addr::UNSPECIFIED, PORT);
    steering.claim(flow, Datapath::AfPacket).unwrap();
    let opens0 = topo.counter(Side::Accel, "TcpPassiveOpens").unwrap();

    // The kernel connection already on the port keeps working, both ways...
    exchange(&mut client, &mut server, 256 << 10, "a kernel connection on a claimed listener's port");
    // ...and none of its segments reached the ring.
    let seen = ring_segments(&mut ring, Duration::from_millis(100));
    assert!(seen.iter().all(|s| s.src != kernel_peer), "the kernel connection's segments reached the ring: {seen:?}");

    // A new connection's SYN goes to the ring, not to the kernel (whose listener would accept).
    let accel_ip = topo.accel.ip;
    let connect = std::thread::spawn({
        let netns = topo.peer.netns.clone();
        move || {
            testbed::in_netns(&netns, move || {
                TcpStream::connect_timeout(&SocketAddrV4::new(accel_ip, PORT).into(), Duration::from_millis(1500))
            })
            .unwrap()
        }
    });
    let seen = ring_segments(&mut ring, Duration::from_millis(1000));
    let connected = connect.join().unwrap();
    assert!(connected.is_err(), "the kernel accepted a connection on a claimed listener's port");
    let syns: Vec<&Segment> =
        seen.iter().filter(|s| s.dst.port() == PORT && s.flags & (SYN | ACK) == SYN && s.src != kernel_peer).collect();
    assert!(!syns.is_empty(), "no opening SYN on the ring: {seen:?}");
    assert_eq!(topo.counter(Side::Accel, "TcpPassiveOpens").unwrap(), opens0, "the kernel saw the SYN");

    // Still fine after the SYNs.
    exchange(&mut client, &mut server, 4096, "the kernel connection after the SYNs");
    steering.release(flow).unwrap();
    assert!(steering.entries().is_empty());
}

#[test]
fn a_connection_entry_steers_its_4_tuple_and_the_ports_other_connections_stay_with_the_kernel() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    const PORT: u16 = 7610;
    let (_listener, mut pairs) = connections(&topo, PORT, 2);
    let (mut c2, mut s2) = pairs.pop().unwrap();
    let (mut c1, mut s1) = pairs.pop().unwrap();
    let (peer1, peer2) = (v4(c1.local_addr().unwrap()), v4(c2.local_addr().unwrap()));
    let local = SocketAddrV4::new(topo.accel.ip, PORT);

    let (mut steering, mut ring) = owner(&topo);
    let flow = Flow::tcp_connection(local, peer1);
    steering.claim(flow, Datapath::AfPacket).unwrap();
    let entries = steering.entries();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].flow, flow);
    assert!(entries[0].owner_alive() && entries[0].token == steering.anchor().unwrap().token());

    // The claimed connection's bytes go to the ring, not to the kernel socket.
    c1.write_all(b"to the ring").unwrap();
    let seen = ring_segments(&mut ring, Duration::from_millis(300));
    assert!(
        seen.iter().any(|s| s.src == peer1 && s.dst == local && s.payload == 11),
        "the claimed connection's segment is not on the ring: {seen:?}"
    );
    assert!(reads_nothing(&mut s1, Duration::from_millis(300)), "the kernel got a claimed connection's bytes");

    // The other connection on the same port stays the kernel's, both ways, and off the ring.
    exchange(&mut c2, &mut s2, 256 << 10, "another connection on the claimed connection's port");
    let seen = ring_segments(&mut ring, Duration::from_millis(100));
    assert!(seen.iter().all(|s| s.src != peer2), "another connection's segments reached the ring: {seen:?}");

    // Released, the connection is the kernel's again: the peer's retransmission arrives.
    steering.release(flow).unwrap();
    s1.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = [0u8; 11];
    s1.read_exact(&mut got).expect("the released connection's bytes never reached the kernel");
    assert_eq!(&got, b"to the ring");
}

#[test]
fn a_killed_owners_connection_is_reset_by_the_kernel_at_the_peers_next_segment_and_swept() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    const PORT: u16 = 7620;
    let (listener, mut pairs) = connections(&topo, PORT, 1);
    let (mut client, mut server) = pairs.pop().unwrap();
    exchange(&mut client, &mut server, 1024, "the connection before the claim");
    let local = SocketAddrV4::new(topo.accel.ip, PORT);
    let peer = v4(client.local_addr().unwrap());

    // The accel kernel forgets the connection without a word (TCP_REPAIR, then close): from
    // here on only its next owner knows it, as for a connection of the stack's.
    const TCP_REPAIR: libc::c_int = 19;
    let on: libc::c_int = 1;
    // SAFETY: setsockopt on a socket we own, with an int we own.
    let rc = unsafe {
        libc::setsockopt(
            server.as_raw_fd(),
            libc::SOL_TCP,
            TCP_REPAIR,
            &on as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "TCP_REPAIR: {}", std::io::Error::last_os_error());
    drop(server);
    drop(listener);

    // Another process owns the connection (as the stack would, after accepting it): it holds
    // the port with a kernel socket of its own, and claims the 4-tuple.
    let (l, r) = (local.to_string(), peer.to_string());
    let mut owner = topo.spawn(Side::Accel, &[CLAIM, &topo.accel.iface, "tcp-conn", &l, &r], T).unwrap();
    let line = owner.wait_for_line("ready", T).unwrap();
    let pid: u32 = line.split_whitespace().nth(1).and_then(|p| p.parse().ok()).expect("ready PID");
    let rsts = || topo.counter(Side::Accel, "TcpOutRsts").unwrap();
    let rsts0 = rsts();

    // While the owner lives, the connection's segments are its own: the kernel never sees them
    // (it would reset them), and the peer's connection stays up.
    client.write_all(b"alive?").unwrap();
    assert!(
        reads_nothing(&mut client, Duration::from_millis(700)),
        "the peer's connection failed while its owner lived"
    );
    assert_eq!(rsts() - rsts0, 0, "the kernel answered a live owner's connection");

    owner.kill();
    testbed::poll_until(T, "the killed owner to exit", || Ok(!pid_alive(pid))).unwrap();

    // The peer's next segment (its retransmission) reaches the kernel, which knows no such
    // connection and resets it.
    client.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let err = client.read(&mut [0u8; 64]).expect_err("the dead owner's connection was not reset");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
    assert!(rsts() > rsts0);

    // Status sweeps the dead owner's entry.
    let iface = topo.accel.iface.clone();
    let status = topo.in_ns(Side::Accel, nic::control::status).unwrap().unwrap();
    let ours = status.iter().find(|s| s.iface == iface).expect("interface listed");
    assert_eq!(ours.swept, 1, "{ours:?}");
    assert!(ours.flows.is_empty(), "{:?}", ours.flows);
}

#[test]
fn an_entry_whose_anchor_is_gone_is_swept_though_its_pid_lives() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let iface = topo.accel.iface.clone();
    let (mut steering, _ring) = owner(&topo);
    // The port is this process's: a kernel socket holds it.
    let _port = topo.in_ns(Side::Accel, || TcpListener::bind((Ipv4Addr::UNSPECIFIED, 7630))).unwrap().unwrap();
    let flow = Flow::tcp_listener(Ipv4Addr::UNSPECIFIED, 7630);
    steering.claim(flow, Datapath::AfPacket).unwrap();
    let token = steering.anchor().unwrap().token();
    // Dropping the Steering closes this process's anchor: its entries are a dead owner's,
    // though the pid (ours) lives, as when a pid is reused.
    drop(steering);
    let it = iface.clone();
    let again = topo.in_ns(Side::Accel, move || Steering::open(&it)).unwrap().unwrap();
    assert_eq!(again.swept_on_open(), 1, "an entry without its anchor was not swept");
    assert!(again.entries().iter().all(|e| e.token != token));
}

/// A bare ACK from `from` (the peer namespace's address, port `from_port`) to `to`, through a
/// raw socket of the namespace the caller runs in: a SYN cookie's final ACK as far as the
/// steering can tell.
fn send_bare_ack(from: SocketAddrV4, to: SocketAddrV4) -> std::io::Result<()> {
    use wire::{TcpFlags, TcpOptions, TcpRepr, TcpSegment};
    let repr = TcpRepr {
        src_port: from.port(),
        dst_port: to.port(),
        seq: 1000,
        ack: Some(2000),
        flags: TcpFlags::empty(),
        window: 512,
        urgent: 0,
        options: TcpOptions::NONE,
        payload_len: 0,
    };
    let mut segment = vec![0u8; repr.buffer_len()];
    repr.emit(&mut TcpSegment::new_unchecked(&mut segment[..]), *from.ip(), *to.ip()).unwrap();
    // SAFETY: plain socket calls on a descriptor this function owns and closes.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_TCP);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let sin = libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: 0,
            sin_addr: libc::in_addr { s_addr: u32::from(*to.ip()).to_be() },
            sin_zero: [0; 8],
        };
        let r = libc::sendto(
            fd,
            segment.as_ptr().cast(),
            segment.len(),
            0,
            (&sin as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        );
        let e = std::io::Error::last_os_error();
        libc::close(fd);
        if r < 0 {
            return Err(e);
        }
    }
    Ok(())
}

/// SYN cookies: once the owner marks its listener entry (it answered a SYN with a cookie), a
/// bare ACK that matches no connection goes to the owner's ring and not to the kernel (which
/// would reset it), while the kernel's own connections on the port, whose 4-tuples the kernel
/// knows, keep working.
#[test]
fn a_listener_marked_for_syn_cookies_takes_bare_acks_of_no_connection_and_spares_kernel_connections() {
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    const PORT: u16 = 7620;
    let (_listener, mut pairs) = connections(&topo, PORT, 1);
    let (mut client, mut server) = pairs.pop().unwrap();
    let (mut steering, mut ring) = owner(&topo);
    let flow = Flow::tcp_listener(Ipv4Addr::UNSPECIFIED, PORT);
    steering.claim(flow, Datapath::AfPacket).unwrap();
    let to = SocketAddrV4::new(topo.accel.ip, PORT);
    let stray = |port: u16| SocketAddrV4::new(topo.peer.ip, port);
    let rsts = || topo.counter(Side::Accel, "TcpOutRsts").unwrap();

    // Unmarked: the bare ACK is the kernel's, which resets it.
    let before = rsts();
    topo.in_ns(Side::Peer, move || send_bare_ack(stray(50_001), to)).unwrap().unwrap();
    testbed::poll_until(T, "the kernel's RST", || Ok(rsts() > before)).unwrap();
    assert!(ring_segments(&mut ring, Duration::from_millis(100)).iter().all(|s| s.src.port() != 50_001));

    // Marked: the ring gets it, the kernel neither sees nor resets it.
    assert!(steering.mark_cookies(flow).unwrap());
    let before = rsts();
    topo.in_ns(Side::Peer, move || send_bare_ack(stray(50_002), to)).unwrap().unwrap();
    let seen = ring_segments(&mut ring, Duration::from_millis(300));
    assert!(
        seen.iter().any(|s| s.src.port() == 50_002 && s.flags & (SYN | ACK) == ACK),
        "the bare ACK is not on the ring: {seen:?}"
    );
    assert_eq!(rsts(), before, "the kernel answered a bare ACK the listener's owner takes");

    // The kernel connection on the port still works both ways (its ACKs have a kernel socket).
    exchange(&mut client, &mut server, 256 << 10, "a kernel connection on a listener sending cookies");
    steering.release(flow).unwrap();
}

/// Issue 22: a process only claims a port its own kernel socket holds. A kernel program in the
/// accel namespace holds UDP 7640 and TCP 7641; another process's claims for them (steer-claim
/// without a socket of its own, this test binary) are refused with `NotBound`, naming the flow,
/// and write nothing. Once the program is gone and this process binds the ports itself, its
/// claims succeed, each as far as its socket reaches: a socket on one address does not hold
/// every address, a socket in another namespace holds nothing here, and a connection rides on
/// its listener's port.
#[test]
fn a_claim_for_a_port_this_process_has_not_bound_is_refused() {
    use nic::steering::SteeringError;
    let Some(_serial) = testbed::require() else { return };
    let topo = attached();
    let accel = topo.accel.ip;
    let holder = "import socket,time\n\
                  u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); u.bind(('0.0.0.0',7640))\n\
                  t=socket.create_server(('0.0.0.0',7641))\n\
                  print('ready',flush=True); time.sleep(60)";
    let mut kernel = topo.spawn(Side::Accel, &["python3", "-c", holder], T).unwrap();
    kernel.wait_for_line("ready", T).unwrap();

    // Another process, without a socket of its own on the port: refused, with the reason.
    let argv = [CLAIM, &topo.accel.iface, "udp", "0.0.0.0", "7640", "--no-bind"];
    let out = topo.spawn(Side::Accel, &argv, T).unwrap().finish(T).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "steer-claim claimed another process's port");
    assert!(
        err.contains("cannot claim udp *:7640: no UDP socket of this process is bound to port 7640 on every address"),
        "{err}"
    );

    // This process, likewise, for each kind of flow.
    let (mut steering, _ring) = owner(&topo);
    let peer = SocketAddrV4::new(topo.peer.ip, 40_000);
    for flow in [
        Flow::udp(Ipv4Addr::UNSPECIFIED, 7640),
        Flow::udp(accel, 7640),
        Flow::tcp_listener(Ipv4Addr::UNSPECIFIED, 7641),
        Flow::tcp_connection(SocketAddrV4::new(accel, 7641), peer),
    ] {
        match steering.claim(flow, Datapath::AfPacket) {
            Err(SteeringError::NotBound { flow: f }) => assert_eq!(f, flow),
            other => panic!("a claim of {flow} (another process's port) gave {other:?}"),
        }
        match steering.take_over(flow, Datapath::AfPacket) {
            Err(SteeringError::NotBound { .. }) => {}
            other => panic!("a take-over of {flow} gave {other:?}"),
        }
    }
    assert!(steering.entries().is_empty(), "a refused claim wrote an entry: {:?}", steering.entries());
    kernel.kill();

    // A socket in another namespace holds nothing here.
    let _elsewhere = topo.in_ns(Side::Peer, || std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 7640))).unwrap();
    assert!(matches!(
        steering.claim(Flow::udp(Ipv4Addr::UNSPECIFIED, 7640), Datapath::AfPacket),
        Err(SteeringError::NotBound { .. })
    ));

    // Its own sockets: the UDP port on every address; TCP on the accel address only.
    let mut udp = None;
    testbed::poll_until(T, "the kernel program's port to be free", || {
        udp = topo.in_ns(Side::Accel, || std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 7640))).unwrap().ok();
        Ok(udp.is_some())
    })
    .unwrap();
    let _tcp = topo.in_ns(Side::Accel, move || TcpListener::bind((accel, 7641))).unwrap().unwrap();
    steering.claim(Flow::udp(Ipv4Addr::UNSPECIFIED, 7640), Datapath::AfPacket).unwrap();
    let listener = Flow::tcp_listener(accel, 7641);
    steering.claim(listener, Datapath::AfPacket).unwrap();
    let err = steering.claim(Flow::tcp_listener(Ipv4Addr::UNSPECIFIED, 7641), Datapath::AfPacket).unwrap_err();
    assert!(err.to_string().contains("no TCP socket of this process is bound to port 7641 on every address"), "{err}");
    // A connection on the listener's port rides on it; one on a port nobody holds does not.
    steering.claim(Flow::tcp_connection(SocketAddrV4::new(accel, 7641), peer), Datapath::AfPacket).unwrap();
    let stray = Flow::tcp_connection(SocketAddrV4::new(accel, 7642), peer);
    let err = steering.claim(stray, Datapath::AfPacket).unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("cannot claim tcp {accel}:7642 <-> {peer}: no TCP socket of this process is bound to port 7642 on {accel} or every address")),
        "{err}"
    );
    // Naming the socket that holds a port (as an active open does) proves that port alone.
    let bound_only = topo.in_ns(Side::Accel, move || TcpListener::bind((accel, 7643))).unwrap().unwrap();
    assert!(!steering.vouch(std::io::stdin().as_raw_fd()), "stdin holds no port");
    assert!(steering.vouch(bound_only.as_raw_fd()));
    let other_port = Flow::tcp_connection(SocketAddrV4::new(accel, 7644), peer);
    assert!(matches!(steering.claim(other_port, Datapath::AfPacket), Err(SteeringError::NotBound { .. })));
    assert!(steering.vouch(bound_only.as_raw_fd()));
    steering.claim(Flow::tcp_connection(SocketAddrV4::new(accel, 7643), peer), Datapath::AfPacket).unwrap();
    assert_eq!(steering.entries().len(), 4, "{:?}", steering.entries());
    assert_eq!(steering.release_all_mine(), 4);
}
