//! `steer-claim`: claims one flow on an attached interface and holds it (and its liveness
//! anchor) until killed. The namespace tests kill it to check what a dead owner leaves behind.
//!
//! usage: steer-claim IFACE udp LOCAL_IP PORT
//!        steer-claim IFACE tcp-listen LOCAL_IP PORT
//!        steer-claim IFACE tcp-conn LOCAL_IP:PORT REMOTE_IP:PORT
//!
//! Prints `ready PID` once the flow is claimed.

use nic::steering::{Datapath, Flow, Steering};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4};
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
    let mut steering = Steering::open(iface).map_err(|e| e.to_string())?;
    steering.claim(flow, Datapath::AfPacket).map_err(|e| e.to_string())?;
    println!("ready {}", std::process::id());
    std::io::stdout().flush().ok();
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
