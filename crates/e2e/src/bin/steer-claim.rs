//! `steer-claim`: claims one flow on an attached interface and holds it (and its liveness
//! anchor) until killed. The namespace tests kill it to check what a dead owner leaves behind.
//!
//! usage: steer-claim IFACE udp LOCAL_IP PORT [--no-bind]
//!        steer-claim IFACE tcp-listen LOCAL_IP PORT [--no-bind]
//!        steer-claim IFACE tcp-conn LOCAL_IP:PORT REMOTE_IP:PORT [--no-bind]
//!
//! As a real owner does, it first binds a kernel socket to the flow's local address and port (a
//! UDP socket; a TCP listener; a bound-only TCP socket with SO_REUSEADDR for a connection),
//! which reserves the port and proves to the claim that the port is its own. `--no-bind` skips
//! that, to show that the claim is then refused.
//!
//! Prints `ready PID` once the flow is claimed.

use nic::steering::{Datapath, Flow, Protocol, Steering};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::ExitCode;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("steer-claim: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: steer-claim IFACE (udp IP PORT | tcp-listen IP PORT | tcp-conn LOCAL REMOTE)";
    let arg = |i: usize| args.get(i).map(String::as_str).ok_or(usage);
    let iface = arg(0)?;
    let ip = |i| arg(i)?.parse::<Ipv4Addr>().map_err(|_| usage);
    let port = |i| arg(i)?.parse::<u16>().map_err(|_| usage);
    let addr = |i| arg(i)?.parse::<SocketAddrV4>().map_err(|_| usage);
    let flow = match arg(1)? {
        "udp" => Flow::udp(ip(2)?, port(3)?),
        "tcp-listen" => Flow::tcp_listener(ip(2)?, port(3)?),
        "tcp-conn" => Flow::tcp_connection(addr(2)?, addr(3)?),
        _ => return Err(usage.into()),
    };
    let _reservation = if args.iter().any(|a| a == "--no-bind") { None } else { Some(reserve(flow)?) };
    let mut steering = Steering::open(iface).map_err(|e| e.to_string())?;
    steering.claim(flow, Datapath::AfPacket).map_err(|e| e.to_string())?;
    println!("ready {}", std::process::id());
    std::io::stdout().flush().ok();
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

/// A kernel socket bound to `flow`'s local address and port, as its owner holds one.
fn reserve(flow: Flow) -> Result<OwnedFd, String> {
    let local = SocketAddrV4::new(flow.local_ip, flow.local_port);
    let bind_err = |e: std::io::Error| format!("bind {local}: {e}");
    match (flow.protocol, flow.remote) {
        (Protocol::Udp, _) => UdpSocket::bind(local).map(OwnedFd::from).map_err(bind_err),
        (Protocol::Tcp, None) => TcpListener::bind(local).map(OwnedFd::from).map_err(bind_err),
        (Protocol::Tcp, Some(_)) => tcp_bound(local).map_err(bind_err),
    }
}

/// A TCP socket only bound (as a connect's reserved source port), with SO_REUSEADDR so that a
/// TIME_WAIT on the port does not stand in the way.
fn tcp_bound(local: SocketAddrV4) -> std::io::Result<OwnedFd> {
    // SAFETY: a socket we own from here on; setsockopt and bind read values we own.
    unsafe {
        let raw = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let fd = OwnedFd::from_raw_fd(raw);
        let on: libc::c_int = 1;
        libc::setsockopt(
            raw,
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: local.port().to_be(),
            sin_addr: libc::in_addr { s_addr: u32::from(*local.ip()).to_be() },
            sin_zero: [0; 8],
        };
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        if libc::bind(raw, (&addr as *const libc::sockaddr_in).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(fd)
    }
}
