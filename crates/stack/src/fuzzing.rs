//! Entry points for the fuzz targets (fuzz/fuzz_targets/tcp_*.rs), shared with the corpus
//! replay test (tests/fuzz_corpus.rs) so every committed input stays a regression test where
//! cargo-fuzz is not installed.
//!
//! The input drives a stack that has a listener, a connection it opened and one it accepted:
//! segments with fuzzed flags, numbers (near the right ones, or anywhere), windows, options and
//! payloads, for any of them or for nobody; ICMP errors quoting their segments; time passing;
//! the application's calls. Whatever
//! comes, the engine must not panic, must keep its memory bounded (a fixed number of sockets,
//! buffers of their configured size), must not answer one segment with a storm, and must keep
//! both byte streams exact: the peer's bytes are a function of their sequence number
//! (`testing::stream_byte`), so every byte the application reads must be the stream at its
//! offset, and every byte sent must be what the application wrote at that offset. A
//! connection never has more unacknowledged than its send buffer holds (plus SYN and FIN),
//! nor offers more window than its receive buffer.

use crate::tcp::TcpConfig;
use crate::testing::{lan_stack, stream_at, stream_mismatch, tcp_frame, SimulatedDriver};
use crate::{Instant, RxChecksum, SocketHandle, Stack, StackConfig, Transmit, TxBusy};
use std::net::{Ipv4Addr, SocketAddrV4};
use wire::{EthernetAddress, EthernetFrame, Ipv4Packet, TcpFlags, TcpOptions, TcpRepr, TcpSegment};

const OUR_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 1]);
const PEER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 2]);
const OURS: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const LISTEN_PORT: u16 = 80;
const ACTIVE_PORT: u16 = 5000;
const PEER_ISS: u32 = 1000;
/// Sockets the stack may hold at most: the three made here, the listener's SYN and accept
/// queues (backlog 4 each), and what the operations open.
const MAX_CONNECTIONS: usize = 64;
/// Segments one input segment or call may cause at most (a window's worth of data).
const MAX_SEGMENTS_PER_STEP: usize = 200;

/// Buffers of every connection (small, so the fuzzer reaches their edges).
const BUFFER: usize = 16_384;

/// Counts what the stack sends and remembers the last segment's sequence numbers.
#[derive(Default)]
struct Sink {
    frames: usize,
    /// (destination port, seq, ack) of the latest segments, for learning our ISS.
    last: Vec<(u16, u32, u32)>,
    /// (destination port, seq, payload) of data segments since the last check.
    data: Vec<(u16, u32, Vec<u8>)>,
}

impl Transmit for Sink {
    fn frame(&mut self, build: &mut dyn FnMut(&mut [u8]) -> usize) -> Result<(), TxBusy> {
        let mut buf = [0u8; 2048];
        let n = build(&mut buf);
        self.frames += 1;
        if let Ok(eth) = EthernetFrame::new_checked(&buf[..n]) {
            if let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) {
                if let Ok(tcp) = TcpSegment::new_checked(ip.payload()) {
                    if self.last.len() == 16 {
                        self.last.remove(0);
                    }
                    self.last.push((tcp.dst_port(), tcp.seq_number(), tcp.ack_number()));
                    if !tcp.payload().is_empty() {
                        self.data.push((tcp.dst_port(), tcp.seq_number(), tcp.payload().to_vec()));
                    }
                }
            }
        }
        Ok(())
    }

    fn to_kernel(&mut self, _ip_packet: &[u8]) {
        self.frames += 1;
    }
}

/// Reads the fuzz input as a little-endian stream; zeros once it runs out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from(self.u8()) | u16::from(self.u8()) << 8
    }
    fn u32(&mut self) -> u32 {
        u32::from(self.u16()) | u32::from(self.u16()) << 16
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One of the two connections the application holds.
#[derive(Clone, Copy, Default)]
struct Conn {
    /// The application's handle (None once closed).
    handle: Option<SocketHandle>,
    our_port: u16,
    peer_port: u16,
    /// Our ISS, learnt from the SYN or SYN-ACK.
    iss: u32,
    /// Bytes the application wrote and read (each a prefix of its stream).
    written: u32,
    read: u32,
}

/// The harness: the stack, its clock and the two connections' numbers.
struct World {
    stack: Stack,
    now: Instant,
    sink: Sink,
    listener: SocketHandle,
    conns: [Conn; 2],
}

impl World {
    fn new() -> World {
        let tcp = TcpConfig {
            rcvbuf: BUFFER,
            sndbuf: BUFFER,
            rcvbuf_max: BUFFER,
            sndbuf_max: BUFFER,
            ..TcpConfig::default()
        };
        let mut stack = lan_stack(OURS, OUR_MAC, 1500, PEER, PEER_MAC, StackConfig { tcp, ..StackConfig::default() });
        // Fuzzed segments may carry URG: with SO_OOBINLINE the urgent bytes stay in the stream
        // (reads still stop at the mark), so what the application reads is the whole stream.
        let inline = |stack: &mut Stack, h: SocketHandle| {
            if let Ok(mut o) = stack.tcp_options(h) {
                o.oob_inline = true;
                let _ = stack.tcp_set_options(h, o, Instant::ZERO);
            }
        };
        let listener = stack.tcp_open();
        inline(&mut stack, listener);
        let _ = stack.tcp_bind(listener, SocketAddrV4::new(OURS, LISTEN_PORT));
        let _ = stack.tcp_listen(listener, 4);
        let mut w = World { stack, now: Instant::ZERO, sink: Sink::default(), listener, conns: [Conn::default(); 2] };
        // One we open...
        let h = w.stack.tcp_open();
        inline(&mut w.stack, h);
        let _ = w.stack.tcp_bind(h, SocketAddrV4::new(OURS, ACTIVE_PORT));
        let _ = w.stack.tcp_connect(h, SocketAddrV4::new(PEER, 7000), w.now);
        let iss = w.flush_iss(7000);
        w.inject(ACTIVE_PORT, 7000, PEER_ISS, Some(iss.wrapping_add(1)), TcpFlags::SYN, 65_535, mss_ws(), &[]);
        w.conns[0] = Conn { handle: Some(h), our_port: ACTIVE_PORT, peer_port: 7000, iss, ..Conn::default() };
        // ...and one we accept.
        w.inject(LISTEN_PORT, 7001, PEER_ISS, None, TcpFlags::SYN, 65_535, mss_ws(), &[]);
        let iss = w.flush_iss(7001);
        w.inject(LISTEN_PORT, 7001, PEER_ISS + 1, Some(iss.wrapping_add(1)), TcpFlags::empty(), 65_535, none(), &[]);
        let accepted = w.stack.tcp_accept(w.listener).ok().map(|(h, _)| h);
        w.conns[1] = Conn { handle: accepted, our_port: LISTEN_PORT, peer_port: 7001, iss, ..Conn::default() };
        w
    }

    /// Transmits and returns the sequence number of the latest segment sent to `peer_port`
    /// (the SYN or SYN-ACK: our ISS).
    fn flush_iss(&mut self, peer_port: u16) -> u32 {
        self.flush();
        self.sink.last.iter().rev().find(|s| s.0 == peer_port).map_or(0, |s| s.1)
    }

    #[allow(clippy::too_many_arguments)]
    fn inject(
        &mut self,
        dst_port: u16,
        src_port: u16,
        seq: u32,
        ack: Option<u32>,
        flags: TcpFlags,
        window: u16,
        options: TcpOptions,
        payload: &[u8],
    ) {
        let repr =
            TcpRepr { src_port, dst_port, seq, ack, flags, window, urgent: 0, options, payload_len: payload.len() };
        let f = tcp_frame((PEER_MAC, PEER), (OUR_MAC, OURS), &repr, payload);
        self.stack.receive(self.now, &f, RxChecksum::Unverified);
        self.flush();
    }

    fn check(&mut self) {
        let n = self.stack.tcp_connections().len();
        assert!(n <= MAX_CONNECTIONS, "{n} connections: memory is not bounded");
        for c in &self.conns {
            let Some(info) = c.handle.and_then(|h| self.stack.tcp_info(h).ok()) else { continue };
            assert!(info.unacked as usize <= BUFFER + 2, "{} bytes unacknowledged", info.unacked);
            let scale_unit = 1u32 << info.rcv_wscale;
            assert!(info.rcv_wnd as usize <= BUFFER + scale_unit as usize, "a window of {}", info.rcv_wnd);
        }
    }

    /// What the application reads from connection `i`: its stream, in order.
    fn check_read(&mut self, i: usize, data: &[u8], peek: bool) {
        let c = &mut self.conns[i];
        assert_eq!(stream_mismatch(c.read, data), None, "read at stream offset {}", c.read);
        if !peek {
            c.read = c.read.wrapping_add(data.len() as u32);
        }
    }

    /// What the stack sent: each data segment of the two connections is what their application
    /// wrote, at its offset.
    fn check_sent(&mut self) {
        for (port, seq, payload) in self.sink.data.drain(..) {
            let Some(c) = self.conns.iter().find(|c| c.peer_port == port) else { continue };
            let at = seq.wrapping_sub(c.iss).wrapping_sub(1);
            assert!(at.wrapping_add(payload.len() as u32) <= c.written, "sent past what was written");
            assert_eq!(stream_mismatch(at, &payload), None, "sent at stream offset {at}");
        }
    }
}

impl SimulatedDriver for World {
    fn stack_mut(&mut self) -> &mut Stack {
        &mut self.stack
    }

    fn clock(&mut self) -> &mut Instant {
        &mut self.now
    }

    fn flush(&mut self) {
        let before = self.sink.frames;
        self.stack.transmit(self.now, &mut self.sink);
        while self.stack.poll_event().is_some() {}
        let sent = self.sink.frames - before;
        assert!(sent <= MAX_SEGMENTS_PER_STEP, "{sent} segments for one step");
        self.check_sent();
    }
}

fn mss_ws() -> TcpOptions {
    TcpOptions { mss: Some(1460), window_scale: Some(7), ..TcpOptions::NONE }
}

fn none() -> TcpOptions {
    TcpOptions::NONE
}

/// Feeds segments and calls read from `data` to a listener and two connections.
pub fn tcp_engine(data: &[u8]) {
    let mut w = World::new();
    let mut input = Input(data);
    let mut buf = [0u8; 4096];
    let mut payload = [0u8; 2048];
    while !input.is_empty() {
        let op = input.u8();
        let which = (op >> 4) as usize % 4;
        match op & 0x0f {
            // A segment near the right numbers for a connection, the listener, or nobody.
            0..=7 => {
                let flags = TcpFlags::from_bits_truncate(u16::from(input.u8()) & 0x3f);
                let seq_off = input.u16() as i16 as i32;
                let ack_off = input.u16() as i16 as i32;
                let window = input.u16();
                let len = usize::from(input.u8()) * 8;
                let opts = input.u8();
                let (dst, src, iss) = match which {
                    0 | 1 => (w.conns[which].our_port, w.conns[which].peer_port, w.conns[which].iss),
                    2 => (LISTEN_PORT, 7002 + u16::from(opts & 7), 0),
                    _ => (4444, 7000, 0),
                };
                let seq = (PEER_ISS + 1).wrapping_add(seq_off as u32);
                let ack = (flags.bits() & 0x10 != 0).then(|| iss.wrapping_add(1).wrapping_add(ack_off as u32));
                let options = if opts & 0x80 != 0 {
                    TcpOptions {
                        mss: Some(u16::from(opts & 0x7f) * 20),
                        window_scale: Some(opts & 0x1f),
                        ..TcpOptions::NONE
                    }
                } else {
                    none()
                };
                let flags = TcpFlags::from_bits_truncate(flags.bits() & !0x10);
                let payload = peer_bytes(&mut payload, flags, seq, len);
                w.inject(dst, src, seq, ack, flags, window, options, payload);
            }
            // An ICMP error quoting a segment of a connection: any type, code and MTU, a sequence
            // number near its first (icmp.rs).
            8 if (op >> 4) & 2 != 0 => {
                let (kind, code, mtu) = (input.u8(), input.u8(), input.u16());
                let seq_off = input.u16() as i16 as i32;
                let c = w.conns[which % 2];
                let seq = c.iss.wrapping_add(1).wrapping_add(seq_off as u32);
                let quoted = crate::testing::quoted_tcp(
                    SocketAddrV4::new(OURS, c.our_port),
                    SocketAddrV4::new(PEER, c.peer_port),
                    seq,
                );
                let f = crate::testing::icmp_error_frame((PEER_MAC, PEER), (OUR_MAC, OURS), kind, code, mtu, &quoted);
                w.stack.receive(w.now, &f, RxChecksum::Unverified);
                w.flush();
                w.check();
            }
            // A segment with numbers from anywhere.
            8 => {
                let flags = TcpFlags::from_bits_truncate(u16::from(input.u8()));
                let (seq, ack, window) = (input.u32(), input.u32(), input.u16());
                let (dst, src) = (w.conns[which % 2].our_port, w.conns[which % 2].peer_port);
                let ack = (flags.bits() & 0x10 != 0).then_some(ack);
                let flags = TcpFlags::from_bits_truncate(flags.bits() & !0x10);
                let payload = peer_bytes(&mut payload, flags, seq, usize::from(input.u8()));
                w.inject(dst, src, seq, ack, flags, window, none(), payload);
            }
            // Time passes, timers run.
            9 => {
                let ms = u64::from(input.u16()) * u64::from(1 + input.u8() % 16);
                let until = Instant::from_nanos(w.now.as_nanos() + ms * 1_000_000);
                w.run_until(until);
            }
            // The application.
            op => {
                let i = which % 2;
                let Some(h) = w.conns[i].handle else { continue };
                let n = usize::from(input.u16()) % buf.len();
                match op {
                    10 => {
                        let data = &mut buf[..n];
                        stream_at(w.conns[i].written, data);
                        if let Ok(k) = w.stack.tcp_send(h, data) {
                            w.conns[i].written = w.conns[i].written.wrapping_add(k as u32);
                        }
                    }
                    11 => {
                        let peek = which >= 2;
                        if let Ok(k) = w.stack.tcp_recv(h, &mut buf[..n], peek) {
                            w.check_read(i, &buf[..k], peek);
                        }
                    }
                    12 => drop(w.stack.tcp_shutdown(h, which & 1 != 0, true)),
                    13 => {
                        let _ = w.stack.tcp_close(h, w.now);
                        w.conns[i].handle = None;
                    }
                    14 => {
                        let _ = w.stack.tcp_abort(h);
                    }
                    _ => {
                        if let Ok((c, _)) = w.stack.tcp_accept(w.listener) {
                            let _ = w.stack.tcp_close(c, w.now);
                        }
                    }
                }
                w.flush();
            }
        }
        w.check();
    }
}

/// `len` bytes of the peer's stream for a segment with sequence number `seq` (its data starts
/// one past a SYN), in `buf`.
fn peer_bytes(buf: &mut [u8], flags: TcpFlags, seq: u32, len: usize) -> &[u8] {
    let first = seq.wrapping_add(u32::from(flags.contains(TcpFlags::SYN))).wrapping_sub(PEER_ISS + 1);
    let len = len.min(buf.len());
    let out = &mut buf[..len];
    stream_at(first, out);
    out
}

/// A fuzz entry point.
pub type Entry = fn(&[u8]);

/// Every TCP target with its entry point, for the corpus replay.
pub const TARGETS: &[(&str, Entry)] = &[("tcp_engine", tcp_engine)];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::State;

    #[test]
    fn the_fuzzed_world_starts_with_two_established_connections_and_a_listener() {
        let w = World::new();
        for c in w.conns {
            assert_eq!(w.stack.tcp_state(c.handle.expect("connected")), Ok(State::Established));
        }
        assert_eq!(w.stack.tcp_state(w.listener), Ok(State::Listen));
    }
}
