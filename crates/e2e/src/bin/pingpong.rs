//! `pingpong`: UDP or TCP ping-pong latency, one side of it, for bench/pingpong.sh.
//!
//! ```text
//! pingpong serve IP:PORT [--spin]                  kernel UDP echo (blocking, or busy-polling)
//! pingpong kernel IP:PORT [--spin] [-n N] [-s S]   kernel UDP client
//! pingpong serve-tcp IP:PORT [--spin]              kernel TCP echo of one connection at a time
//! pingpong tcp IP:PORT [--spin] [-n N] [-s S]      kernel TCP client (TCP_NODELAY)
//! pingpong raw IFACE SRC_IP:PORT DST_IP:PORT DST_MAC [-n N] [-s S]
//!                                                  raw frames over AF_PACKET, spinning, no stack
//! ```
//! Clients print `RESULT p50_ns p99_ns p999_ns` of the one-way latency (round trip / 2) over N
//! exchanges of S-byte payloads, after 1,000 warm-up exchanges.

use nic::steering::{Flow, Steering};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::time::Instant;
use wire::{EtherType, EthernetAddress, EthernetFrame, IpProtocol, Ipv4Packet, UdpPacket};

const WARMUP: usize = 1000;

fn main() {
    if let Err(e) = run() {
        eprintln!("pingpong: {e}");
        std::process::exit(1);
    }
}

fn flag(args: &[String], name: &str, default: usize) -> usize {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)?.parse().ok()).unwrap_or(default)
}

fn addr(s: Option<&String>) -> Result<SocketAddrV4, String> {
    s.ok_or("missing address")?.parse().map_err(|e| format!("bad address: {e}"))
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let spin = args.iter().any(|a| a == "--spin");
    let (count, size) = (flag(&args, "-n", 50_000), flag(&args, "-s", 32));
    match args.first().map(String::as_str) {
        Some("serve") => serve(addr(args.get(1))?, spin),
        Some("kernel") => report(kernel_client(addr(args.get(1))?, spin, count, size)?),
        Some("serve-tcp") => serve_tcp(addr(args.get(1))?, spin),
        Some("tcp") => report(tcp_client(addr(args.get(1))?, spin, count, size)?),
        Some("raw") => {
            let iface = args.get(1).ok_or("missing IFACE")?;
            let mac: Vec<u8> = args
                .get(4)
                .ok_or("missing DST_MAC")?
                .split(':')
                .map(|b| u8::from_str_radix(b, 16).map_err(|e| e.to_string()))
                .collect::<Result<_, _>>()?;
            let mac = EthernetAddress::from_bytes(&mac).ok_or("bad DST_MAC")?;
            report(raw_client(iface, addr(args.get(2))?, addr(args.get(3))?, mac, count, size)?)
        }
        _ => Err("usage: see the doc comment of crates/e2e/src/bin/pingpong.rs".into()),
    }
}

fn serve(at: SocketAddrV4, spin: bool) -> Result<(), String> {
    let sock = UdpSocket::bind(at).map_err(|e| format!("bind {at}: {e}"))?;
    sock.set_nonblocking(spin).map_err(|e| e.to_string())?;
    let mut buf = [0u8; 2048];
    loop {
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                sock.send_to(&buf[..n], from).map_err(|e| e.to_string())?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::hint::spin_loop(),
            Err(e) => return Err(e.to_string()),
        }
    }
}

fn serve_tcp(at: SocketAddrV4, spin: bool) -> Result<(), String> {
    let listener = TcpListener::bind(at).map_err(|e| format!("bind {at}: {e}"))?;
    loop {
        let (mut conn, _) = listener.accept().map_err(|e| e.to_string())?;
        conn.set_nodelay(true).map_err(|e| e.to_string())?;
        conn.set_nonblocking(spin).map_err(|e| e.to_string())?;
        let mut buf = [0u8; 65536];
        loop {
            match conn.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => conn.write_all(&buf[..n]).map_err(|e| e.to_string())?,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::hint::spin_loop(),
                Err(_) => break,
            }
        }
    }
}

/// Reads exactly `buf.len()` bytes, spinning on WouldBlock when `spin`.
fn read_exact_spin(conn: &mut TcpStream, buf: &mut [u8], spin: bool) -> Result<(), String> {
    let mut got = 0;
    while got < buf.len() {
        match conn.read(&mut buf[got..]) {
            Ok(0) => return Err("connection closed".into()),
            Ok(n) => got += n,
            Err(e) if spin && e.kind() == std::io::ErrorKind::WouldBlock => std::hint::spin_loop(),
            Err(e) => return Err(format!("no answer: {e}")),
        }
    }
    Ok(())
}

fn tcp_client(to: SocketAddrV4, spin: bool, count: usize, size: usize) -> Result<Vec<u64>, String> {
    let mut conn = TcpStream::connect(to).map_err(|e| format!("connect {to}: {e}"))?;
    conn.set_nodelay(true).map_err(|e| e.to_string())?;
    conn.set_nonblocking(spin).map_err(|e| e.to_string())?;
    conn.set_read_timeout(if spin { None } else { Some(std::time::Duration::from_secs(2)) }).ok();
    let payload = vec![0x5a; size];
    let mut buf = vec![0u8; size];
    let mut samples = Vec::with_capacity(count);
    for i in 0..WARMUP + count {
        let start = Instant::now();
        conn.write_all(&payload).map_err(|e| e.to_string())?;
        read_exact_spin(&mut conn, &mut buf, spin)?;
        if i >= WARMUP {
            samples.push(start.elapsed().as_nanos() as u64 / 2);
        }
    }
    Ok(samples)
}

fn kernel_client(to: SocketAddrV4, spin: bool, count: usize, size: usize) -> Result<Vec<u64>, String> {
    let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).map_err(|e| e.to_string())?;
    sock.connect(to).map_err(|e| e.to_string())?;
    sock.set_nonblocking(spin).map_err(|e| e.to_string())?;
    sock.set_read_timeout(if spin { None } else { Some(std::time::Duration::from_secs(2)) }).ok();
    let payload = vec![0x5a; size];
    let mut buf = [0u8; 2048];
    let mut samples = Vec::with_capacity(count);
    for i in 0..WARMUP + count {
        let start = Instant::now();
        sock.send(&payload).map_err(|e| e.to_string())?;
        loop {
            match sock.recv(&mut buf) {
                Ok(_) => break,
                Err(e) if spin && e.kind() == std::io::ErrorKind::WouldBlock => std::hint::spin_loop(),
                Err(e) => return Err(format!("no answer: {e}")),
            }
        }
        if i >= WARMUP {
            samples.push(start.elapsed().as_nanos() as u64 / 2);
        }
    }
    Ok(samples)
}

/// Writes an Ethernet/IPv4/UDP frame with `payload_len` bytes into `buf`; returns its length.
fn build_frame(
    buf: &mut [u8],
    src_mac: EthernetAddress,
    dst_mac: EthernetAddress,
    from: SocketAddrV4,
    to: SocketAddrV4,
    payload_len: usize,
) -> usize {
    let total = 14 + 20 + 8 + payload_len;
    let mut eth = EthernetFrame::new_unchecked(&mut buf[..total]);
    eth.set_src_addr(src_mac);
    eth.set_dst_addr(dst_mac);
    eth.set_ethertype(EtherType::IPV4);
    let mut ip = Ipv4Packet::new_unchecked(&mut buf[14..total]);
    ip.set_version_and_header_len(4, 20);
    ip.set_tos(0);
    ip.set_total_len((20 + 8 + payload_len) as u16);
    ip.set_ident(0);
    ip.set_flags_and_frag_offset(true, false, 0);
    ip.set_ttl(64);
    ip.set_protocol(IpProtocol::UDP);
    ip.set_src_addr(*from.ip());
    ip.set_dst_addr(*to.ip());
    ip.fill_checksum();
    let mut udp = UdpPacket::new_unchecked(&mut buf[34..total]);
    udp.set_src_port(from.port());
    udp.set_dst_port(to.port());
    udp.set_len((8 + payload_len) as u16);
    udp.payload_mut().fill(0x5a);
    udp.fill_checksum(*from.ip(), *to.ip());
    total
}

fn raw_client(
    iface: &str,
    from: SocketAddrV4,
    to: SocketAddrV4,
    dst_mac: EthernetAddress,
    count: usize,
    size: usize,
) -> Result<Vec<u64>, String> {
    let _reservation = UdpSocket::bind(from).map_err(|e| format!("bind {from}: {e}"))?;
    let flow = Flow::udp(*from.ip(), from.port());
    let mut steering = Steering::open(iface).map_err(|e| e.to_string())?;
    let (mut port, datapath) = e2e::raw::open_port(iface, &mut steering)?;
    steering.claim(flow, datapath).map_err(|e| e.to_string())?;
    let src_mac = EthernetAddress(port.mac());
    let mut template = vec![0u8; 2048];
    let len = build_frame(&mut template, src_mac, dst_mac, from, to, size);
    let mut samples = Vec::with_capacity(count);
    for i in 0..WARMUP + count {
        let start = Instant::now();
        port.transmit(&mut |buf| {
            buf[..len].copy_from_slice(&template[..len]);
            len
        })
        .map_err(|e| e.to_string())?;
        port.flush().map_err(|e| e.to_string())?;
        let mut answered = false;
        while !answered {
            if start.elapsed().as_secs() >= 2 {
                return Err(format!("no answer to exchange {i}"));
            }
            port.receive(8, &mut |f| answered |= f.data.len() == len);
        }
        if i >= WARMUP {
            samples.push(start.elapsed().as_nanos() as u64 / 2);
        }
    }
    steering.release(flow).map_err(|e| e.to_string())?;
    Ok(samples)
}

fn report(mut samples: Vec<u64>) -> Result<(), String> {
    if samples.is_empty() {
        return Err("no samples".into());
    }
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!("RESULT {} {} {}", at(0.50), at(0.99), at(0.999));
    Ok(())
}
