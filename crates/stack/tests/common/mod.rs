//! A packetdrill-style script helper for TCP at the `Stack` level: segments from a simulated
//! peer go in at simulated times, segments the stack sends come out with the time they left.
//!
//! Sequence numbers of our side are relative to our ISS (as packetdrill prints them); the
//! peer's are absolute, chosen by the test. Flags are written as packetdrill does: `S`, `S.`,
//! `.`, `P.`, `F.`, `R`, `R.` (`.` is ACK).

#![allow(dead_code)]

use stack::tcp::{State, TcpConfig, TcpError, TcpSocketOptions};
pub use stack::testing::Capture;
use stack::testing::{lan_stack, tcp_frame, SimulatedDriver};
use stack::{Instant, RxChecksum, SocketHandle, Stack, StackConfig};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;
use wire::{
    EtherType, EthernetAddress, EthernetFrame, IpProtocol, Ipv4Packet, TcpFlags, TcpOptions, TcpRepr, TcpSegment,
};

pub const OUR_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x01]);
pub const PEER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x02]);
pub const OURS: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
pub const OUR_PORT: u16 = 8080;
pub const PEER_PORT: u16 = 40000;

/// Milliseconds as an `Instant`.
pub fn ms(n: u64) -> Instant {
    Instant::from_nanos(n * 1_000_000)
}

/// A stack on 10.0.0.1/24 with the peer's MAC known.
pub fn stack_with(config: TcpConfig) -> Stack {
    stack_with_mtu(config, 1500)
}

/// The same with another MTU (up to 65,535: the big-MTU scripts move gigabytes in few segments).
pub fn stack_with_mtu(config: TcpConfig, mtu: usize) -> Stack {
    lan_stack(OURS, OUR_MAC, mtu, PEER, PEER_MAC, StackConfig { tcp: config, ..StackConfig::default() })
}

/// A segment the stack sent, as a test checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Out {
    /// When it left.
    pub at: Instant,
    /// packetdrill-style flags.
    pub flags: String,
    /// Our sequence number, relative to our ISS.
    pub seq: u32,
    /// Acknowledgment (absolute: the peer's numbers).
    pub ack: Option<u32>,
    pub win: u16,
    pub options: TcpOptions,
    pub payload: Vec<u8>,
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub ttl: u8,
    pub tos: u8,
    pub df: bool,
    /// The urgent pointer when URG is set.
    pub urg: Option<u16>,
    /// A super-segment for a GSO datapath: the size of the pieces it is cut into (0: none).
    pub gso: u16,
}

impl Out {
    /// Elapsed milliseconds at which it left.
    pub fn ms(&self) -> u64 {
        self.at.as_nanos() / 1_000_000
    }
}

fn flag_string(repr: &TcpRepr) -> String {
    let mut s = String::new();
    for (f, c) in [(TcpFlags::SYN, 'S'), (TcpFlags::FIN, 'F'), (TcpFlags::RST, 'R'), (TcpFlags::PSH, 'P')] {
        if repr.flags.contains(f) {
            s.push(c);
        }
    }
    if repr.ack.is_some() {
        s.push('.');
    }
    s
}

/// A segment from the peer, built up with setters.
#[derive(Debug, Clone)]
pub struct Seg {
    flags: TcpFlags,
    ack_set: bool,
    seq: u32,
    ack: u32,
    win: u16,
    options: TcpOptions,
    payload: Vec<u8>,
    src_port: u16,
    dst_port: u16,
    /// SACK blocks were given in our relative sequence numbers (ISS added when framed).
    sack_rel: bool,
    urgent: u16,
}

/// A peer segment with packetdrill flags and the peer's sequence number.
pub fn seg(flags: &str, seq: u32) -> Seg {
    let mut f = TcpFlags::empty();
    let mut ack_set = false;
    for c in flags.chars() {
        match c {
            'S' => f |= TcpFlags::SYN,
            'F' => f |= TcpFlags::FIN,
            'R' => f |= TcpFlags::RST,
            'P' => f |= TcpFlags::PSH,
            '.' => ack_set = true,
            _ => panic!("unknown flag {c}"),
        }
    }
    Seg {
        flags: f,
        ack_set,
        seq,
        ack: 0,
        win: 65_535,
        options: TcpOptions::NONE,
        payload: Vec::new(),
        src_port: PEER_PORT,
        dst_port: OUR_PORT,
        sack_rel: false,
        urgent: 0,
    }
}

impl Seg {
    /// Acknowledges our relative sequence number `n`.
    pub fn ack(mut self, n: u32) -> Seg {
        self.ack = n;
        self.ack_set = true;
        self
    }
    pub fn win(mut self, w: u16) -> Seg {
        self.win = w;
        self
    }
    pub fn mss(mut self, m: u16) -> Seg {
        self.options.mss = Some(m);
        self
    }
    pub fn ws(mut self, s: u8) -> Seg {
        self.options.window_scale = Some(s);
        self
    }
    /// One SACK block `[left, right)` in our relative sequence numbers (added after any others).
    pub fn sack(mut self, left: u32, right: u32) -> Seg {
        if let Some(slot) = self.options.sack_blocks.iter_mut().find(|b| b.is_none()) {
            *slot = Some((left, right));
        }
        self.sack_rel = true;
        self
    }
    /// SACK-permitted (in a SYN or SYN-ACK).
    pub fn sack_perm(mut self) -> Seg {
        self.options.sack_permitted = true;
        self
    }
    /// The timestamp option: the peer's TSval and the TSecr it echoes (our absolute TSval).
    pub fn ts(mut self, tsval: u32, tsecr: u32) -> Seg {
        self.options.timestamp = Some((tsval, tsecr));
        self
    }
    /// URG with urgent pointer `ptr` (Linux takes the byte before seq + ptr as urgent).
    pub fn urg(mut self, ptr: u16) -> Seg {
        self.flags |= TcpFlags::URG;
        self.urgent = ptr;
        self
    }
    pub fn data(mut self, d: &[u8]) -> Seg {
        self.payload = d.to_vec();
        self
    }
    /// `n` bytes of a recognisable pattern.
    pub fn len(mut self, n: usize) -> Seg {
        self.payload = (0..n).map(|i| (i % 251) as u8).collect();
        self
    }
    pub fn src_port(mut self, p: u16) -> Seg {
        self.src_port = p;
        self
    }
    pub fn dst_port(mut self, p: u16) -> Seg {
        self.dst_port = p;
        self
    }
}

/// A stack, simulated time, and what it sent.
pub struct Script {
    pub stack: Stack,
    pub now: Instant,
    pub sent: std::collections::VecDeque<Out>,
    /// Our ISS per peer port, learnt from our SYN or SYN-ACK.
    pub iss: std::collections::HashMap<u16, u32>,
    /// The stack's MTU.
    pub mtu: usize,
    /// Transmit slots the datapath has at the next flushes (None: never full).
    pub tx_room: Option<usize>,
    /// Frames the datapath refused so far.
    pub tx_refused: usize,
    /// The datapath takes super-frames up to this IP length and cuts them (0: no GSO).
    pub gso_max: usize,
}

impl Script {
    pub fn new() -> Script {
        Script::with(TcpConfig::default())
    }

    pub fn with(config: TcpConfig) -> Script {
        Script::with_mtu(config, 1500)
    }

    pub fn with_mtu(config: TcpConfig, mtu: usize) -> Script {
        Script {
            stack: stack_with_mtu(config, mtu),
            now: Instant::ZERO,
            sent: Default::default(),
            iss: Default::default(),
            mtu,
            tx_room: None,
            tx_refused: 0,
            gso_max: 0,
        }
    }

    /// Collects what the stack has to send now.
    pub fn flush(&mut self) {
        SimulatedDriver::flush(self);
    }
}

impl SimulatedDriver for Script {
    fn stack_mut(&mut self) -> &mut Stack {
        &mut self.stack
    }

    fn clock(&mut self) -> &mut Instant {
        &mut self.now
    }

    fn flush(&mut self) {
        let mut cap =
            Capture { max_frame: self.mtu + 14, room: self.tx_room, gso_max: self.gso_max, ..Capture::default() };
        self.stack.transmit(self.now, &mut cap);
        if self.tx_room.is_some() {
            self.tx_room = cap.room;
        }
        self.tx_refused += cap.refused;
        assert!(cap.to_kernel.is_empty(), "the neighbour is known: nothing should go to the kernel");
        for (frame, cut) in cap.frames.into_iter().zip(cap.cuts) {
            let out = self.parse(&frame, cut);
            self.sent.push_back(out);
        }
    }
}

impl Script {
    fn parse(&mut self, frame: &[u8], cut: Option<stack::Segmentation>) -> Out {
        let eth = EthernetFrame::new_checked(frame).expect("ethernet");
        assert_eq!(eth.ethertype(), EtherType::IPV4);
        assert_eq!(eth.dst_addr(), PEER_MAC);
        let ip = Ipv4Packet::new_checked(eth.payload()).expect("ipv4");
        assert!(ip.verify_checksum());
        assert_eq!(ip.protocol(), IpProtocol::TCP);
        let tcp = TcpSegment::new_checked(ip.payload()).expect("tcp");
        let mode = if let Some(cut) = cut {
            // What the kernel's virtio_net_hdr_to_skb and tcp_gso_segment take.
            let header = 14 + 20 + tcp.header_len() as usize;
            assert!(ip.payload().len() - tcp.header_len() as usize > usize::from(cut.segment_size), "{cut:?}");
            assert_eq!((cut.csum_start, cut.csum_offset, usize::from(cut.header_len)), (34, 16, header));
            let pseudo =
                wire::checksum::pseudo_header(ip.src_addr(), ip.dst_addr(), IpProtocol::TCP, ip.payload().len() as u16);
            assert_eq!(tcp.checksum(), pseudo, "the partial checksum of CHECKSUM_PARTIAL");
            assert!(frame.len() - 14 <= self.gso_max);
            wire::ChecksumMode::Ignore
        } else {
            assert!(frame.len() <= self.mtu + 14, "a frame above the MTU without GSO");
            wire::ChecksumMode::Verify
        };
        let repr = TcpRepr::parse(&tcp, ip.src_addr(), ip.dst_addr(), mode).expect("checksum");
        if repr.flags.contains(TcpFlags::SYN) {
            self.iss.insert(repr.dst_port, repr.seq);
        }
        let iss = self.iss.get(&repr.dst_port).copied().unwrap_or(0);
        Out {
            at: self.now,
            flags: flag_string(&repr),
            seq: repr.seq.wrapping_sub(iss),
            ack: repr.ack,
            win: repr.window,
            options: repr.options,
            payload: tcp.payload().to_vec(),
            src: SocketAddrV4::new(ip.src_addr(), repr.src_port),
            dst: SocketAddrV4::new(ip.dst_addr(), repr.dst_port),
            ttl: ip.ttl(),
            tos: ip.tos(),
            df: ip.dont_frag(),
            urg: repr.flags.contains(TcpFlags::URG).then_some(repr.urgent),
            gso: cut.map_or(0, |c| c.segment_size),
        }
    }

    /// A frame sent outside `transmit` (a prebuilt segment), as a test checks it.
    pub fn parse_frame(&mut self, frame: &[u8]) -> Out {
        self.parse(frame, None)
    }

    /// Moves time to `t` (milliseconds), running every timer at its deadline on the way.
    pub fn run_until(&mut self, t: u64) {
        SimulatedDriver::run_until(self, ms(t));
    }

    /// The peer sends `s` now.
    pub fn inject(&mut self, s: Seg) {
        let frame = self.frame(&s);
        self.stack.receive(self.now, &frame, RxChecksum::Unverified);
        self.flush();
    }

    /// The peer sends `s` at `t` ms.
    pub fn inject_at(&mut self, t: u64, s: Seg) {
        self.run_until(t);
        self.inject(s);
    }

    /// The peer side (a router) sends an ICMP error `kind`/`code` (next-hop MTU `mtu`)
    /// quoting our segment to PEER_PORT that started at our relative sequence number `seq`.
    pub fn inject_icmp(&mut self, kind: u8, code: u8, mtu: u16, seq: u32) {
        let iss = self.iss.get(&PEER_PORT).copied().unwrap_or(0);
        let quoted = stack::testing::quoted_tcp(
            SocketAddrV4::new(OURS, OUR_PORT),
            SocketAddrV4::new(PEER, PEER_PORT),
            seq.wrapping_add(iss),
        );
        let frame = stack::testing::icmp_error_frame((PEER_MAC, PEER), (OUR_MAC, OURS), kind, code, mtu, &quoted);
        self.stack.receive(self.now, &frame, RxChecksum::Unverified);
        self.flush();
    }

    pub fn frame(&self, s: &Seg) -> Vec<u8> {
        let iss = self.iss.get(&s.src_port).copied().unwrap_or(0);
        let mut options = s.options;
        if s.sack_rel {
            for b in options.sack_blocks.iter_mut().flatten() {
                *b = (b.0.wrapping_add(iss), b.1.wrapping_add(iss));
            }
        }
        let repr = TcpRepr {
            src_port: s.src_port,
            dst_port: s.dst_port,
            seq: s.seq,
            ack: s.ack_set.then_some(s.ack.wrapping_add(self.iss.get(&s.src_port).copied().unwrap_or(0))),
            flags: s.flags,
            window: s.win,
            urgent: s.urgent,
            options,
            payload_len: s.payload.len(),
        };
        tcp_frame((PEER_MAC, PEER), (OUR_MAC, OURS), &repr, &s.payload)
    }

    /// The next segment the stack sent (running time forward to `until` ms at most).
    pub fn expect_by(&mut self, until: u64) -> Out {
        while self.sent.is_empty() {
            let Some(next) = self.stack.poll_timeout() else { break };
            if next > ms(until) {
                break;
            }
            self.now = self.now.max(next);
            self.stack.handle_timeout(self.now);
            self.flush();
        }
        self.sent.pop_front().unwrap_or_else(|| panic!("nothing sent by {until} ms (now {:?})", self.now))
    }

    /// The next segment already sent.
    pub fn expect(&mut self) -> Out {
        self.sent.pop_front().expect("a segment was sent")
    }

    /// Nothing was sent.
    pub fn expect_none(&mut self) {
        assert!(self.sent.is_empty(), "unexpected segment: {:?}", self.sent.front());
    }

    /// Nothing is sent until `t` ms.
    pub fn expect_silence_until(&mut self, t: u64) {
        self.run_until(t);
        self.expect_none();
    }

    // ---- application calls ----

    pub fn options(&self, h: SocketHandle) -> TcpSocketOptions {
        self.stack.tcp_options(h).unwrap()
    }

    /// A listener on OURS:OUR_PORT.
    pub fn listen(&mut self, backlog: usize) -> SocketHandle {
        let h = self.stack.tcp_open();
        self.stack.tcp_bind(h, SocketAddrV4::new(OURS, OUR_PORT)).unwrap();
        self.stack.tcp_listen(h, backlog).unwrap();
        h
    }

    /// connect() from OURS:OUR_PORT to the peer; the SYN is collected.
    pub fn connect(&mut self) -> SocketHandle {
        self.connect_with(|_| {})
    }

    pub fn connect_with(&mut self, set: impl FnOnce(&mut TcpSocketOptions)) -> SocketHandle {
        let h = self.stack.tcp_open();
        self.stack.tcp_bind(h, SocketAddrV4::new(OURS, OUR_PORT)).unwrap();
        let mut o = self.options(h);
        set(&mut o);
        self.stack.tcp_set_options(h, o, self.now).unwrap();
        self.stack.tcp_connect(h, SocketAddrV4::new(PEER, PEER_PORT), self.now).unwrap();
        self.flush();
        h
    }

    /// An established connection (active open, peer ISN 1000, peer MSS 1460, no window
    /// scaling), the handshake's segments consumed. The peer's next sequence number is 1001.
    pub fn established(&mut self) -> SocketHandle {
        self.established_with(|_| {})
    }

    pub fn established_with(&mut self, set: impl FnOnce(&mut TcpSocketOptions)) -> SocketHandle {
        let h = self.connect_with(set);
        let syn = self.expect();
        assert_eq!(syn.flags, "S");
        self.inject_at(self.now.as_nanos() / 1_000_000 + 100, seg("S.", 1000).ack(1).mss(1460));
        let ack = self.expect();
        assert_eq!((ack.flags.as_str(), ack.seq, ack.ack), (".", 1, Some(1001)));
        assert_eq!(self.stack.tcp_state(h), Ok(State::Established));
        h
    }

    /// An established connection whose peer (ISN 1000) offered MSS `mss` and window scale `ws`
    /// and opens a window of `win << ws` bytes; the handshake's segments consumed.
    pub fn established_scaled(
        &mut self,
        mss: u16,
        ws: u8,
        win: u16,
        set: impl FnOnce(&mut TcpSocketOptions),
    ) -> SocketHandle {
        let h = self.connect_with(set);
        let syn = self.expect();
        assert_eq!(syn.flags, "S");
        assert!(syn.options.window_scale.is_some());
        self.inject_at(self.now.as_nanos() / 1_000_000 + 100, seg("S.", 1000).ack(1).mss(mss).ws(ws).win(win));
        let ack = self.expect();
        assert_eq!((ack.flags.as_str(), ack.seq, ack.ack), (".", 1, Some(1001)));
        assert_eq!(self.stack.tcp_state(h), Ok(State::Established));
        h
    }

    pub fn send(&mut self, h: SocketHandle, data: &[u8]) -> Result<usize, TcpError> {
        let r = self.stack.tcp_send(h, data);
        self.flush();
        r
    }

    pub fn recv(&mut self, h: SocketHandle, n: usize) -> Result<Vec<u8>, TcpError> {
        let mut buf = vec![0u8; n];
        let r = self.stack.tcp_recv(h, &mut buf, false);
        self.flush();
        r.map(|k| buf[..k].to_vec())
    }

    pub fn close(&mut self, h: SocketHandle) {
        self.stack.tcp_close(h, self.now).unwrap();
        self.flush();
    }

    pub fn shutdown_write(&mut self, h: SocketHandle) {
        self.stack.tcp_shutdown(h, false, true).unwrap();
        self.flush();
    }

    pub fn state(&self, h: SocketHandle) -> State {
        self.stack.tcp_state(h).unwrap()
    }
}

/// The default configuration with buffers that keep their initial 256 KiB limits (no
/// autotuning past them, window scale 3 as for a fixed 256 KiB buffer): for scripts that check
/// exact windows and limits. Autotuning has scripts of its own (tcp_script/autotune.rs).
pub fn fixed_buffers() -> TcpConfig {
    let d = TcpConfig::default();
    TcpConfig { rcvbuf_max: d.rcvbuf, sndbuf_max: d.sndbuf, ..d }
}

/// Shorthand for a Duration in milliseconds.
pub fn dms(n: u64) -> Duration {
    Duration::from_millis(n)
}
