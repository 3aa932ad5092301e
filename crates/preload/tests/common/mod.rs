//! What the preload tests share: the library under test, an attached topology, programs run
//! under the library, and a kernel echo server in the peer namespace.
#![allow(dead_code)]

use std::net::UdpSocket;
use std::path::PathBuf;
use std::time::Duration;
use testbed::{NsChild, Side, Topology};

/// How long a spawned program may run unless a test says otherwise.
pub const T: Duration = Duration::from_secs(30);

/// The library, built beside this test binary (the crate is cdylib + rlib), or the copy that
/// EXASOCK_TEST_LIBRARY names: worktrees sharing one target directory overwrite each other's
/// `deps/libexasock_preload.so` (a cdylib's name carries no hash), so a run that must test its
/// own build copies it right after building and points this at the copy.
pub fn library() -> String {
    if let Some(lib) = std::env::var_os("EXASOCK_TEST_LIBRARY") {
        return lib.to_string_lossy().into_owned();
    }
    let dir: PathBuf = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
    let lib = dir.join("libexasock_preload.so");
    assert!(lib.exists(), "{} was not built", lib.display());
    lib.to_string_lossy().into_owned()
}

/// The accel namespace kernel's TCP segment counters (in, out): what it carried of
/// connections that should be the stack's.
pub fn tcp_segments(topo: &Topology) -> (u64, u64) {
    (topo.counter(Side::Accel, "TcpInSegs").unwrap(), topo.counter(Side::Accel, "TcpOutSegs").unwrap())
}

/// What the accelerated namespace's kernel carried of TCP since `before`: at most `limit`
/// segments each way (the remainder each test names: a hand-over's last ACK, say).
pub fn assert_kernel_carried_at_most(topo: &Topology, before: (u64, u64), limit: u64, what: &str) {
    let (inn, out) = tcp_segments(topo);
    assert!(
        inn - before.0 <= limit && out - before.1 <= limit,
        "the accel namespace's kernel carried {what}'s TCP: {} segments in, {} out",
        inn - before.0,
        out - before.1
    );
}

/// The datapath a single exasock process on the interface gets in this run of the suite
/// (EXASOCK_TEST_DATAPATH=xdp: AF_XDP; otherwise AF_PACKET).
pub fn expected_datapath() -> nic::steering::Datapath {
    match nic::control::AttachOptions::for_tests().datapath {
        nic::control::AttachDatapath::Xdp => nic::steering::Datapath::AfXdp,
        nic::control::AttachDatapath::AfPacket => nic::steering::Datapath::AfPacket,
    }
}

/// A fresh topology with the accel interface attached (with the datapath of this run).
pub fn attached() -> Topology {
    let topo = Topology::create().unwrap();
    attach(&topo);
    topo
}

/// Attaches the accel interface of `topo` (with the datapath of this run).
pub fn attach(topo: &Topology) {
    let iface = topo.accel.iface.clone();
    topo.in_ns(Side::Accel, move || nic::control::attach_with(&iface, &nic::control::AttachOptions::for_tests()))
        .unwrap()
        .unwrap();
}

/// The flows of this namespace's attached interface, as `exasock-ctl status` shows them.
pub fn flows(topo: &Topology) -> Vec<nic::steering::FlowEntry> {
    let it = topo.accel.iface.clone();
    let status = topo.in_ns(Side::Accel, nic::control::status).unwrap().unwrap();
    status.into_iter().find(|s| s.iface == it).map(|s| s.flows).unwrap_or_default()
}

/// Runs `argv` under the library in the accel namespace with extra environment.
pub fn spawn_accelerated(topo: &Topology, env: &[&str], argv: &[&str]) -> NsChild {
    spawn_accelerated_for(topo, env, argv, T)
}

/// As `spawn_accelerated`, killed after `timeout`.
pub fn spawn_accelerated_for(topo: &Topology, env: &[&str], argv: &[&str], timeout: Duration) -> NsChild {
    let preload = format!("LD_PRELOAD={}", library());
    let mut full = vec!["env", &preload];
    full.extend_from_slice(env);
    full.extend_from_slice(argv);
    topo.spawn(Side::Accel, &full, timeout).unwrap()
}

/// A kernel UDP echo server in the peer namespace, stopped when dropped. Two commands make it
/// a peer for the tests of what a datagram carries besides its bytes:
/// - "@what": answered with what arrived with it: "tos=T ttl=L from=A:P to=D" (its TOS, TTL,
///   source and destination address);
/// - "@send TOS TTL ADDR PORT COUNT TEXT": sends TEXT COUNT times to ADDR:PORT (unicast, a
///   group or a broadcast address) from a new socket on the peer's address with that TOS and
///   TTL, then answers "sent COUNT".
pub struct PeerEcho {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The echo socket (open until the thread ends).
    fd: libc::c_int,
}

/// Sets an int socket option (test helper; the result is checked by the caller's outcome).
fn set_int(fd: libc::c_int, level: libc::c_int, name: libc::c_int, value: libc::c_int) {
    // SAFETY: an int option on a socket the caller owns, with its size.
    unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// One datagram and what arrived with it (IP_RECVTOS, IP_RECVTTL, IP_PKTINFO).
struct Received {
    len: usize,
    from: std::net::SocketAddrV4,
    tos: u8,
    ttl: i32,
    to: std::net::Ipv4Addr,
}

fn receive_with_header(fd: libc::c_int, buf: &mut [u8]) -> Option<Received> {
    // SAFETY: recvmsg into buffers we own, with their sizes; control messages read within the
    // length the kernel reports.
    unsafe {
        let mut from: libc::sockaddr_in = std::mem::zeroed();
        let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
        let mut control = [0u64; 32];
        let mut m: libc::msghdr = std::mem::zeroed();
        m.msg_name = (&mut from as *mut libc::sockaddr_in).cast();
        m.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        m.msg_iov = &mut iov;
        m.msg_iovlen = 1;
        m.msg_control = control.as_mut_ptr().cast();
        m.msg_controllen = std::mem::size_of_val(&control) as _;
        let n = libc::recvmsg(fd, &mut m, 0);
        if n < 0 {
            return None;
        }
        let mut r = Received {
            len: n as usize,
            from: std::net::SocketAddrV4::new(
                std::net::Ipv4Addr::from(u32::from_be(from.sin_addr.s_addr)),
                u16::from_be(from.sin_port),
            ),
            tos: 0,
            ttl: -1,
            to: std::net::Ipv4Addr::UNSPECIFIED,
        };
        let mut c = libc::CMSG_FIRSTHDR(&m);
        while !c.is_null() {
            let data = libc::CMSG_DATA(c);
            match ((*c).cmsg_level, (*c).cmsg_type) {
                (libc::IPPROTO_IP, libc::IP_TOS) => r.tos = *data,
                (libc::IPPROTO_IP, libc::IP_TTL) => r.ttl = (data as *const libc::c_int).read_unaligned(),
                (libc::IPPROTO_IP, libc::IP_PKTINFO) => {
                    let p = (data as *const libc::in_pktinfo).read_unaligned();
                    r.to = std::net::Ipv4Addr::from(u32::from_be(p.ipi_addr.s_addr));
                }
                _ => {}
            }
            c = libc::CMSG_NXTHDR(&m, c);
        }
        Some(r)
    }
}

/// "@send TOS TTL ADDR PORT COUNT TEXT" from the peer's address.
fn peer_send(netns: &str, peer_ip: std::net::Ipv4Addr, args: &str) -> String {
    let parts: Vec<&str> = args.splitn(6, ' ').collect();
    let [tos, ttl, addr, port, count, text] = parts[..] else { return "bad command".into() };
    let (Ok(tos), Ok(ttl), Ok(addr), Ok(port), Ok(count)) = (
        tos.parse::<i32>(),
        ttl.parse::<i32>(),
        addr.parse::<std::net::Ipv4Addr>(),
        port.parse::<u16>(),
        count.parse::<u32>(),
    ) else {
        return "bad command".into();
    };
    let Ok(Ok(sock)) = testbed::in_netns(netns, move || UdpSocket::bind((peer_ip, 0))) else {
        return "cannot bind".into();
    };
    let fd = std::os::fd::AsRawFd::as_raw_fd(&sock);
    set_int(fd, libc::IPPROTO_IP, libc::IP_TOS, tos);
    set_int(fd, libc::IPPROTO_IP, libc::IP_TTL, ttl);
    set_int(fd, libc::IPPROTO_IP, libc::IP_MULTICAST_TTL, ttl);
    set_int(fd, libc::SOL_SOCKET, libc::SO_BROADCAST, 1);
    let mut sent = 0;
    for _ in 0..count {
        if sock.send_to(text.as_bytes(), (addr, port)).is_ok() {
            sent += 1;
        }
    }
    format!("sent {sent}")
}

impl PeerEcho {
    pub fn start(topo: &Topology, port: u16) -> PeerEcho {
        PeerEcho::start_on(topo, topo.peer.ip, port)
    }

    /// An echo server on the wildcard address that joined `group` on the peer's interface.
    pub fn start_member(topo: &Topology, group: std::net::Ipv4Addr, port: u16) -> PeerEcho {
        let echo = PeerEcho::start_on(topo, std::net::Ipv4Addr::UNSPECIFIED, port);
        let peer_ip = topo.peer.ip;
        let fd = echo.fd;
        topo.in_ns(Side::Peer, move || {
            let mreq = libc::ip_mreq {
                imr_multiaddr: libc::in_addr { s_addr: u32::from(group).to_be() },
                imr_interface: libc::in_addr { s_addr: u32::from(peer_ip).to_be() },
            };
            // SAFETY: an ip_mreq option on the echo server's socket, with its size.
            let r = unsafe {
                libc::setsockopt(
                    fd,
                    libc::IPPROTO_IP,
                    libc::IP_ADD_MEMBERSHIP,
                    (&mreq as *const libc::ip_mreq).cast(),
                    std::mem::size_of::<libc::ip_mreq>() as libc::socklen_t,
                )
            };
            assert_eq!(r, 0, "the peer cannot join {group}");
        })
        .unwrap();
        echo
    }

    /// An echo server bound to `ip` (the wildcard: it also takes broadcasts).
    pub fn start_on(topo: &Topology, ip: std::net::Ipv4Addr, port: u16) -> PeerEcho {
        let peer_ip = topo.peer.ip;
        let netns = topo.peer.netns.clone();
        let echo = topo.in_ns(Side::Peer, move || UdpSocket::bind((ip, port))).unwrap().unwrap();
        echo.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&echo);
        // A deep receive queue (SO_RCVBUFFORCE: root goes past rmem_max): this thread shares two
        // cores with the program under test and the build, and a storm test must not count the
        // datagrams a starved echo thread's socket dropped as the program's loss.
        set_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 8 << 20);
        for name in [libc::IP_RECVTOS, libc::IP_RECVTTL, libc::IP_PKTINFO] {
            set_int(fd, libc::IPPROTO_IP, name, 1);
        }
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 70_000];
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let Some(r) = receive_with_header(fd, &mut buf) else { continue };
                let data = &buf[..r.len];
                let answer = if data.starts_with(b"@what") {
                    format!("tos={} ttl={} from={} to={}", r.tos, r.ttl, r.from, r.to)
                } else if let Some(args) = data.strip_prefix(b"@send ") {
                    peer_send(&netns, peer_ip, std::str::from_utf8(args).unwrap_or(""))
                } else {
                    let _ = echo.send_to(data, r.from);
                    continue;
                };
                let _ = echo.send_to(answer.as_bytes(), r.from);
            }
        });
        PeerEcho { stop, thread: Some(thread), fd }
    }
}

impl Drop for PeerEcho {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The kernel's TCP side in the peer namespace, stopped when dropped:
/// - an echo server on `port` (each connection echoed until EOF, then closed);
/// - a connector on UDP `port + 1`: a datagram "PORT" makes the peer connect to the sender's
///   address at PORT, send "hello from peer", echo what it reads until EOF or reset, and answer
///   the datagram's sender with "eof N" or "reset N" (N: bytes it read), or "refused".
pub struct PeerTcp {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

fn echo_stream(mut s: std::net::TcpStream) -> std::io::Result<u64> {
    use std::io::{Read, Write};
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut buf = [0u8; 65536];
    let mut total = 0u64;
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
        s.write_all(&buf[..n])?;
    }
}

impl PeerTcp {
    pub fn start(topo: &Topology, port: u16) -> PeerTcp {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let peer_ip = topo.peer.ip;
        let listener = topo.in_ns(Side::Peer, move || std::net::TcpListener::bind((peer_ip, port))).unwrap().unwrap();
        listener.set_nonblocking(true).unwrap();
        let control = topo.in_ns(Side::Peer, move || UdpSocket::bind((peer_ip, port + 1))).unwrap().unwrap();
        control.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let flag = stop.clone();
        threads.push(std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let _ = s.set_nonblocking(false);
                        std::thread::spawn(move || echo_stream(s));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        }));
        let flag = stop.clone();
        let netns = topo.peer.netns.clone();
        threads.push(std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            while !flag.load(Ordering::Relaxed) {
                let Ok((n, from)) = control.recv_from(&mut buf) else { continue };
                // "PORT": connect, greet, echo; "urgent PORT": the same with urgent data after
                // the greeting ("X" then the urgent "Y", then "tail").
                let text = std::str::from_utf8(&buf[..n]).unwrap_or("").trim().to_string();
                let urgent = text.starts_with("urgent ");
                let Some(target) = text.trim_start_matches("urgent ").parse::<u16>().ok() else {
                    continue;
                };
                let control = control.try_clone().unwrap();
                let netns = netns.clone();
                std::thread::spawn(move || {
                    let dest = std::net::SocketAddr::new(from.ip(), target);
                    let conn = testbed::in_netns(&netns, move || {
                        std::net::TcpStream::connect_timeout(&dest, Duration::from_secs(5))
                    });
                    let answer = match conn {
                        Ok(Ok(mut s)) => {
                            use std::io::Write;
                            let _ = s.write_all(b"hello from peer");
                            if urgent {
                                use std::os::fd::AsRawFd;
                                std::thread::sleep(Duration::from_millis(50));
                                // SAFETY: send on a socket we own, from a literal.
                                unsafe { libc::send(s.as_raw_fd(), b"XY".as_ptr().cast(), 2, libc::MSG_OOB) };
                                std::thread::sleep(Duration::from_millis(50));
                                let _ = s.write_all(b"tail");
                            }
                            match echo_stream(s) {
                                Ok(n) => format!("eof {n}"),
                                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => "reset".to_string(),
                                Err(e) => format!("error {e}"),
                            }
                        }
                        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => "refused".to_string(),
                        Ok(Err(e)) => format!("error {e}"),
                        Err(e) => format!("error {e}"),
                    };
                    let _ = control.send_to(answer.as_bytes(), from);
                });
            }
        }));
        PeerTcp { stop, threads }
    }
}

impl Drop for PeerTcp {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
