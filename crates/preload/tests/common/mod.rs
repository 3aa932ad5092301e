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
    let iface = topo.accel.iface.clone();
    topo.in_ns(Side::Accel, move || nic::control::attach_with(&iface, &nic::control::AttachOptions::for_tests()))
        .unwrap()
        .unwrap();
    topo
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

/// A kernel UDP echo server in the peer namespace, stopped when dropped.
pub struct PeerEcho {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PeerEcho {
    pub fn start(topo: &Topology, port: u16) -> PeerEcho {
        let peer_ip = topo.peer.ip;
        let echo = topo.in_ns(Side::Peer, move || UdpSocket::bind((peer_ip, port))).unwrap().unwrap();
        echo.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        // A deep receive queue (SO_RCVBUFFORCE: root goes past rmem_max): this thread shares two
        // cores with the program under test and the build, and a storm test must not count the
        // datagrams a starved echo thread's socket dropped as the program's loss.
        let deep: libc::c_int = 8 << 20;
        // SAFETY: an int option on a socket we own, with its size.
        unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&echo),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&deep as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 70_000];
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok((n, from)) = echo.recv_from(&mut buf) {
                    let _ = echo.send_to(&buf[..n], from);
                }
            }
        });
        PeerEcho { stop, thread: Some(thread) }
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
