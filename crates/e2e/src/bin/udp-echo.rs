//! `udp-echo IFACE PORT [--hello IP:PORT] [--count N]`: echoes UDP datagrams on PORT of an
//! attached interface through the user-space stack (reassembly, fragmentation, routes and
//! neighbours from the kernel). With --hello it first sends "hello" to IP:PORT (a destination
//! the kernel may never have resolved). Prints `ready` once serving and, at the end (after N
//! echoes or SIGTERM), `echoed N` and the stack's counters.

use driver::Driver;
use nic::steering::Flow;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::Duration;

fn main() {
    if let Err(e) = run() {
        eprintln!("udp-echo: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: udp-echo IFACE PORT [--hello IP:PORT] [--count N]";
    let iface = args.first().ok_or(usage)?;
    let port: u16 = args.get(1).and_then(|p| p.parse().ok()).ok_or(usage)?;
    let opt = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1));
    let hello: Option<SocketAddrV4> = opt("--hello").map(|a| a.parse().map_err(|_| usage)).transpose()?;
    let count: Option<u64> = opt("--count").map(|c| c.parse().map_err(|_| usage)).transpose()?;
    e2e::stop::install();

    // The kernel socket reserves the port (and tells the steering program we live).
    let _reservation = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)).map_err(|e| format!("bind {port}: {e}"))?;
    let mut driver = Driver::open(iface).map_err(|e| e.to_string())?;
    let local = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port);
    let stack = driver.stack();
    let sock = stack.udp_open();
    stack.udp_set_rcvbuf(sock, 8 << 20).map_err(|e| e.to_string())?;
    stack.udp_bind(sock, local).map_err(|e| e.to_string())?;
    let flow = Flow::udp(Ipv4Addr::UNSPECIFIED, port);
    driver.claim(flow).map_err(|e| e.to_string())?;
    if let Some(to) = hello {
        driver.send(|stack, tx| stack.udp_send(sock, b"hello", Some(to), tx)).map_err(|e| format!("hello: {e}"))?;
    }
    println!("ready");
    std::io::stdout().flush().ok();

    let mut buf = vec![0u8; 65_536];
    let mut echoed = 0u64;
    while !e2e::stop::requested() && count.is_none_or(|c| echoed < c) {
        if driver.poll() == 0 {
            driver.wait(Duration::from_millis(50));
            continue;
        }
        while let Ok(info) = driver.stack().udp_recv(sock, &mut buf, false) {
            let data = &buf[..info.copied];
            match driver.send(|stack, tx| stack.udp_send(sock, data, Some(info.src), tx)) {
                Ok(_) => echoed += 1,
                Err(e) => eprintln!("udp-echo: echo to {} failed: {e}", info.src),
            }
        }
    }
    driver.release(flow).map_err(|e| e.to_string())?;
    println!("echoed {echoed}");
    println!("{:?}", driver.stack().stats());
    println!("kernel_errors {}", driver.kernel_errors());
    Ok(())
}
