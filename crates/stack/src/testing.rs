//! Building blocks for the stack's tests, benchmarks and fuzz targets (and the interop harness
//! in crates/e2e), written once: a stack on a /24 with its one peer's MAC known, the frames
//! that peer sends, transmit sinks (`Capture`, `TransmitWith` over a datapath), simulated time
//! that runs every timer at its deadline (`SimulatedDriver::run_until`), a seeded generator
//! (`Xorshift`) and a test byte stream whose bytes depend on their offset only
//! (`stream_byte`), and the kernel's GSO in software (`segment`). Not used by the driver, which fills routes and neighbours from the kernel.

mod segment;

pub use segment::{segment_frame, SendFrame};

use crate::engine::Segmentation;
use crate::route::Route;
use crate::{IfAddr, Instant, Interface, Stack, StackConfig, Transmit, TxBusy};
use std::net::Ipv4Addr;
use wire::{EtherType, EthernetAddress, EthernetFrame, IpProtocol, Ipv4Packet, TcpRepr, TcpSegment};

/// A stack at `addr`/24 with `mac` and `mtu`, the /24 routed directly, and `peer`'s MAC known.
pub fn lan_stack(
    addr: Ipv4Addr,
    mac: EthernetAddress,
    mtu: usize,
    peer: Ipv4Addr,
    peer_mac: EthernetAddress,
    config: StackConfig,
) -> Stack {
    let iface = Interface { mac, addrs: vec![IfAddr::new(addr, 24)], mtu, ifindex: 2 };
    let mut stack = Stack::new(iface, config);
    let o = addr.octets();
    stack.routes_mut().insert(Route {
        prefix: Ipv4Addr::new(o[0], o[1], o[2], 0),
        prefix_len: 24,
        gateway: None,
        src: None,
        mtu: None,
    });
    stack.neighbours_mut().insert(peer, peer_mac);
    stack
}

/// One end of a frame: MAC and IPv4 address.
pub type Endpoint = (EthernetAddress, Ipv4Addr);

/// The Ethernet frame carrying the TCP segment `repr` with `payload` from `src` to `dst` (DF
/// set, TTL 64, checksums filled).
pub fn tcp_frame(src: Endpoint, dst: Endpoint, repr: &TcpRepr, payload: &[u8]) -> Vec<u8> {
    let tcp_len = repr.buffer_len();
    let mut frame = vec![0u8; 14 + 20 + tcp_len];
    {
        let mut eth = EthernetFrame::new_unchecked(&mut frame[..]);
        eth.set_dst_addr(dst.0);
        eth.set_src_addr(src.0);
        eth.set_ethertype(EtherType::IPV4);
    }
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut frame[14..34]);
        ip.set_version_and_header_len(4, 20);
        ip.set_total_len((20 + tcp_len) as u16);
        ip.set_flags_and_frag_offset(true, false, 0);
        ip.set_ttl(64);
        ip.set_protocol(IpProtocol::TCP);
        ip.set_src_addr(src.1);
        ip.set_dst_addr(dst.1);
        ip.fill_checksum();
    }
    let hl = repr.header_len();
    let n = payload.len().min(frame.len() - 34 - hl);
    frame[34 + hl..34 + hl + n].copy_from_slice(&payload[..n]);
    let mut tcp = TcpSegment::new_unchecked(&mut frame[34..]);
    let _ = repr.emit(&mut tcp, src.1, dst.1);
    frame
}

/// The Ethernet frame carrying an ICMP error of `kind`/`code` (with next-hop MTU `mtu` in
/// the header's second half, as fragmentation needed carries it) from `src` to `dst`, quoting
/// `quoted` (an IPv4 header and the start of what it carried).
pub fn icmp_error_frame(src: Endpoint, dst: Endpoint, kind: u8, code: u8, mtu: u16, quoted: &[u8]) -> Vec<u8> {
    let icmp_len = 8 + quoted.len();
    let mut frame = vec![0u8; 14 + 20 + icmp_len];
    {
        let mut eth = EthernetFrame::new_unchecked(&mut frame[..]);
        eth.set_dst_addr(dst.0);
        eth.set_src_addr(src.0);
        eth.set_ethertype(EtherType::IPV4);
    }
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut frame[14..34]);
        ip.set_version_and_header_len(4, 20);
        ip.set_total_len((20 + icmp_len) as u16);
        ip.set_ttl(64);
        ip.set_protocol(IpProtocol::ICMP);
        ip.set_src_addr(src.1);
        ip.set_dst_addr(dst.1);
        ip.fill_checksum();
    }
    let icmp = &mut frame[34..];
    icmp[0] = kind;
    icmp[1] = code;
    icmp[6..8].copy_from_slice(&mtu.to_be_bytes());
    icmp[8..].copy_from_slice(quoted);
    let sum = wire::checksum::finish(wire::checksum::data(icmp));
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    frame
}

/// The first 28 bytes of a TCP segment as an ICMP error quotes it: the IPv4 header (from
/// `src` to `dst`) and the ports and sequence number.
pub fn quoted_tcp(src: std::net::SocketAddrV4, dst: std::net::SocketAddrV4, seq: u32) -> [u8; 28] {
    let mut q = [0u8; 28];
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut q[..20]);
        ip.set_version_and_header_len(4, 20);
        ip.set_total_len(1500);
        ip.set_flags_and_frag_offset(true, false, 0);
        ip.set_ttl(64);
        ip.set_protocol(IpProtocol::TCP);
        ip.set_src_addr(*src.ip());
        ip.set_dst_addr(*dst.ip());
        ip.fill_checksum();
    }
    q[20..22].copy_from_slice(&src.port().to_be_bytes());
    q[22..24].copy_from_slice(&dst.port().to_be_bytes());
    q[24..28].copy_from_slice(&seq.to_be_bytes());
    q
}

/// xorshift64: a seeded, reproducible source of numbers for tests, benchmarks and fuzz
/// harnesses (not for anything a peer must not guess).
#[derive(Debug, Clone, Copy)]
pub struct Xorshift(pub u64);

impl Xorshift {
    /// A generator from `seed` (0 is replaced: xorshift stays at 0 forever).
    pub fn new(seed: u64) -> Xorshift {
        Xorshift(if seed == 0 { 0x9e37_79b9_7f4a_7c15 } else { seed })
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The byte at offset `i` of the test stream: what a simulated peer sends at sequence number
/// ISN + 1 + `i` and what a check expects to read there (a function of the offset alone, so a
/// segment resent, cut or overlapped carries the same bytes, and a byte delivered at the wrong
/// place shows).
pub fn stream_byte(i: u32) -> u8 {
    let x = i.wrapping_mul(0x9e37_79b9) ^ (i >> 13);
    (x >> 24) as u8 ^ (x as u8)
}

/// Fills `out` with the test stream from offset `from`.
pub fn stream_at(from: u32, out: &mut [u8]) {
    for (k, b) in out.iter_mut().enumerate() {
        *b = stream_byte(from.wrapping_add(k as u32));
    }
}

/// The index of the first byte of `data` that is not the test stream from offset `from`.
pub fn stream_mismatch(from: u32, data: &[u8]) -> Option<usize> {
    data.iter().enumerate().position(|(k, &b)| b != stream_byte(from.wrapping_add(k as u32)))
}

/// A `Transmit` that keeps every frame, for tests: `room` models a transmit ring that fills
/// (`Err(TxBusy)` once it is out of slots), `to_kernel` what went to the kernel whole.
#[derive(Debug, Default)]
pub struct Capture {
    /// Frames built, in order.
    pub frames: Vec<Vec<u8>>,
    /// IP packets handed to the kernel (unknown neighbour).
    pub to_kernel: Vec<Vec<u8>>,
    /// Largest frame (0: 1518 bytes).
    pub max_frame: usize,
    /// Transmit slots left before the datapath refuses frames (None: never full).
    pub room: Option<usize>,
    /// Frames refused because no slot was free.
    pub refused: usize,
    /// Largest IP packet taken as a super-frame to cut (0: the datapath has no GSO).
    pub gso_max: usize,
    /// Beside each frame of `frames`: how the datapath was told to cut it (None: sent as is).
    pub cuts: Vec<Option<Segmentation>>,
}

impl Transmit for Capture {
    fn frame(&mut self, build: &mut dyn FnMut(&mut [u8]) -> usize) -> Result<(), TxBusy> {
        if let Some(room) = self.room.as_mut() {
            if *room == 0 {
                self.refused += 1;
                return Err(TxBusy);
            }
            *room -= 1;
        }
        let max = if self.max_frame == 0 { 1518 } else { self.max_frame };
        let mut buf = vec![0u8; max];
        let n = build(&mut buf);
        if n == 0 {
            // The slot was given back.
            if let Some(room) = self.room.as_mut() {
                *room += 1;
            }
            return Ok(());
        }
        buf.truncate(n);
        self.frames.push(buf);
        self.cuts.push(None);
        Ok(())
    }

    fn to_kernel(&mut self, ip_packet: &[u8]) {
        self.to_kernel.push(ip_packet.to_vec());
    }

    fn gso_max(&self) -> usize {
        self.gso_max
    }

    fn frame_gso(&mut self, build: &mut crate::BuildGso<'_>) -> Result<(), TxBusy> {
        if self.gso_max == 0 {
            return self.frame(&mut |buf| build(buf).0);
        }
        if let Some(room) = self.room.as_mut() {
            if *room == 0 {
                self.refused += 1;
                return Err(TxBusy);
            }
            *room -= 1;
        }
        let mut buf = vec![0u8; 14 + self.gso_max];
        let (n, cut) = build(&mut buf);
        if n == 0 {
            if let Some(room) = self.room.as_mut() {
                *room += 1;
            }
            return Ok(());
        }
        buf.truncate(n);
        self.frames.push(buf);
        self.cuts.push(cut);
        Ok(())
    }
}

/// A `Transmit` over any datapath's transmit call (a `nic::Port`, a test's wire): `send` gets
/// the builder and says whether a slot took the frame. Kernel hand-offs go to `kernel`.
pub struct TransmitWith<F, K = fn(&[u8])> {
    /// Builds a frame in a slot; false when the datapath is full.
    pub send: F,
    /// Takes IP packets for the kernel.
    pub kernel: K,
}

impl<F: FnMut(&mut dyn FnMut(&mut [u8]) -> usize) -> bool> TransmitWith<F> {
    /// A sink whose neighbours are all known: a kernel hand-off is a test failure.
    pub fn new(send: F) -> TransmitWith<F> {
        TransmitWith { send, kernel: |_| panic!("the neighbours are known: nothing should go to the kernel") }
    }
}

impl<F: FnMut(&mut dyn FnMut(&mut [u8]) -> usize) -> bool, K: FnMut(&[u8])> Transmit for TransmitWith<F, K> {
    fn frame(&mut self, build: &mut dyn FnMut(&mut [u8]) -> usize) -> Result<(), TxBusy> {
        if (self.send)(build) {
            Ok(())
        } else {
            Err(TxBusy)
        }
    }

    fn to_kernel(&mut self, ip_packet: &[u8]) {
        (self.kernel)(ip_packet)
    }
}

/// A test's driver in simulated time: a stack, its clock, and what it does after each call
/// into the stack (transmit, collect events). Packet scripts and the fuzz harness share its
/// runner, `run_until`.
pub trait SimulatedDriver {
    /// The stack driven.
    fn stack_mut(&mut self) -> &mut Stack;
    /// The simulated clock.
    fn clock(&mut self) -> &mut Instant;
    /// After each call into the stack: transmit what is due (and look at it).
    fn flush(&mut self);

    /// Moves time to `until`, running every timer at its own deadline on the way (as a driver
    /// sleeping on `poll_timeout` would) and flushing after each run. Time never goes back.
    fn run_until(&mut self, until: Instant) {
        while let Some(next) = self.stack_mut().poll_timeout().filter(|&t| t <= until) {
            let now = (*self.clock()).max(next);
            *self.clock() = now;
            self.stack_mut().handle_timeout(now);
            self.flush();
        }
        let now = (*self.clock()).max(until);
        *self.clock() = now;
        self.stack_mut().handle_timeout(now);
        self.flush();
    }
}
