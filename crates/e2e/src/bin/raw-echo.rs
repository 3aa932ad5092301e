//! `raw-echo IFACE PORT [--count N] [--spin]`: claims UDP PORT on an attached interface and
//! answers every datagram to it over the process's datapath (AF_PACKET, or AF_XDP on an interface attached with
//! `--datapath xdp`: `nic::select`) by swapping headers, with no stack. Prints
//! `datapath af_packet|af_xdp` and `ready` once serving, and `echoed N foreign M fragments F dropped D` when done (after N echoes, or at
//! SIGTERM/SIGINT). Without --spin it sleeps on the ring's fd between bursts.

use e2e::raw::{echo_burst, open_port, Echo};
use nic::steering::{Flow, Steering};
use std::io::Write;
use std::net::{Ipv4Addr, UdpSocket};

fn main() {
    if let Err(e) = run() {
        eprintln!("raw-echo: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: raw-echo IFACE PORT [--count N] [--spin]";
    let iface = args.first().ok_or(usage)?.clone();
    let udp_port: u16 = args.get(1).and_then(|p| p.parse().ok()).ok_or(usage)?;
    let count: Option<u64> = args.iter().position(|a| a == "--count").and_then(|i| args.get(i + 1)?.parse().ok());
    let spin = args.iter().any(|a| a == "--spin");
    e2e::stop::install();

    // The kernel socket reserves the port and tells the tc program we are alive.
    let _reservation =
        UdpSocket::bind((Ipv4Addr::UNSPECIFIED, udp_port)).map_err(|e| format!("bind {udp_port}: {e}"))?;
    let flow = Flow::udp(Ipv4Addr::UNSPECIFIED, udp_port);
    let mut steering = Steering::open(&iface).map_err(|e| e.to_string())?;
    let (mut port, datapath) = open_port(&iface, &mut steering)?;
    steering.claim(flow, datapath).map_err(|e| e.to_string())?;
    println!("datapath {}", datapath.name());
    println!("ready");
    std::io::stdout().flush().ok();

    let (mut echoed, mut foreign, mut fragments) = (0u64, 0u64, 0u64);
    let mut scratch = Vec::with_capacity(64 * 2048);
    while !e2e::stop::requested() && count.is_none_or(|c| echoed < c) {
        let results = echo_burst(port.as_mut(), 64, udp_port, &mut scratch);
        let got: u64 = results.iter().sum();
        echoed += results[Echo::Answered as usize];
        foreign += results[Echo::Foreign as usize];
        fragments += results[Echo::Fragment as usize];
        if got == 0 && !spin {
            let mut pfd = libc::pollfd { fd: port.wait_fd().unwrap_or(-1), events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut pfd, 1, 100) };
        }
    }
    steering.release(flow).map_err(|e| e.to_string())?;
    port.refresh_stats();
    println!("echoed {echoed} foreign {foreign} fragments {fragments} dropped {}", port.stats().rx_dropped);
    Ok(())
}
