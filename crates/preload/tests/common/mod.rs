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

/// A fresh topology with the accel interface attached.
pub fn attached() -> Topology {
    let topo = Topology::create().unwrap();
    let iface = topo.accel.iface.clone();
    topo.in_ns(Side::Accel, move || nic::control::attach(&iface)).unwrap().unwrap();
    topo
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
