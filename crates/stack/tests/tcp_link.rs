//! Two stacks over a simulated link (nic::memory) with seeded loss, reordering, duplication
//! and delay: bulk data each way must arrive byte-exact and both sides must close cleanly.
//!
//! 64 MiB each way on every link (well under a second each with the test profile); set
//! EXASOCK_TCP_LINK_MIB to move another amount, EXASOCK_TCP_LINK_CC to run another congestion
//! control ("cubic"). A sweep over many seeds and harsher
//! impairments runs with smaller transfers; EXASOCK_TCP_LINK_SEEDS widens it. Every byte is
//! checked where it is read; lossy links must also show that fast retransmit, not the timer,
//! repaired most losses (a sender that can only recover by RTO still completes). One transfer
//! starts with both ISNs just below 2^32; an ignored one moves 5 GiB each way with random ISNs.

use nic::memory::{pair, BurstLoss, Impairments, LinkConfig, LinkControl, MemoryPort};
use nic::Port;
use stack::tcp::{State, TcpConfig, TcpInfo};
use stack::testing::{lan_stack, segment_frame, TransmitWith, Xorshift};
use stack::{Instant, RxChecksum, SocketHandle, Stack, StackConfig, Transmit, TxBusy};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;
use wire::EthernetAddress;

thread_local! {
    /// The transfers of this thread send super-segments, cut into MSS frames before the link
    /// (and its loss) sees them, as the kernel's GSO cuts what the AF_PACKET datapath hands it.
    static GSO: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// A datapath with GSO over a memory port: super-frames are built in `scratch`, cut, and each
/// piece queued in a slot of its own.
struct GsoPort<'a> {
    port: &'a mut MemoryPort,
    scratch: &'a mut Vec<u8>,
}

impl Transmit for GsoPort<'_> {
    fn frame(&mut self, build: &mut dyn FnMut(&mut [u8]) -> usize) -> Result<(), TxBusy> {
        self.port.transmit(build).map(|_| ()).map_err(|_| TxBusy)
    }

    fn to_kernel(&mut self, _: &[u8]) {
        panic!("the neighbours are known: nothing should go to the kernel");
    }

    fn gso_max(&self) -> usize {
        65_535
    }

    fn frame_gso(&mut self, build: &mut stack::BuildGso<'_>) -> Result<(), TxBusy> {
        self.scratch.resize(14 + 65_535, 0);
        let (n, cut) = build(self.scratch);
        let frame = &self.scratch[..n];
        match cut {
            _ if n == 0 => {}
            None => {
                self.port
                    .transmit(&mut |b| {
                        b[..n].copy_from_slice(frame);
                        n
                    })
                    .map_err(|_| TxBusy)?;
            }
            Some(cut) => {
                let port = &mut *self.port;
                let pieces = segment_frame(frame, cut, &mut |b| port.transmit(b).is_ok());
                assert!(pieces > 1, "a super-frame of one piece: {cut:?}");
            }
        }
        Ok(())
    }
}

const A_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

/// Period of the data pattern: a prime, so no segment or buffer size lines up with it.
const PERIOD: usize = 1_048_573;

/// Pseudo-random bytes; stream byte `i` of a side is `table[(i + salt) % PERIOD]`.
fn pattern_table() -> Vec<u8> {
    let mut x = Xorshift::new(0x9e37_79b9_7f4a_7c15);
    let mut t: Vec<u8> = (0..PERIOD).map(|_| (x.next_u64() >> 24) as u8).collect();
    // Periodic past the end, so a send can take 64 KiB from any offset.
    t.extend_from_within(..65_536);
    t
}

fn trace_frame(now: Instant, name: u64, frame: &[u8]) {
    let Ok(eth) = wire::EthernetFrame::new_checked(frame) else { return };
    let Ok(ip) = wire::Ipv4Packet::new_checked(eth.payload()) else { return };
    let Ok(tcp) = wire::TcpSegment::new_checked(ip.payload()) else { return };
    eprintln!(
        "{:.6} to {name}: {:?} seq {} ack {} win {} len {}",
        now.as_nanos() as f64 / 1e9,
        tcp.flags(),
        tcp.seq_number(),
        tcp.ack_number(),
        tcp.window_len(),
        tcp.payload().len()
    );
}

/// A setsockopt the application makes mid-transfer: once it has received `at` bytes, SO_RCVBUF
/// and SO_SNDBUF (as getsockopt reports them) become these.
#[derive(Debug, Clone, Copy)]
struct Resize {
    at: u64,
    rcvbuf: usize,
    sndbuf: usize,
}

struct Node {
    stack: Stack,
    /// Still to apply, in order.
    resizes: Vec<Resize>,
    /// The largest send and receive buffer allocations seen, and the largest limits set.
    peak: (usize, usize),
    peak_limit: (usize, usize),
    port: MemoryPort,
    sock: Option<SocketHandle>,
    listener: Option<SocketHandle>,
    sent: u64,
    received: u64,
    eof: bool,
    shut: bool,
    salt_out: u64,
    salt_in: u64,
    buf: Vec<u8>,
    scratch: Vec<u8>,
    table: std::rc::Rc<Vec<u8>>,
    failed: Option<String>,
}

impl Node {
    fn new(
        ip: Ipv4Addr,
        peer: Ipv4Addr,
        mac: [u8; 6],
        peer_mac: [u8; 6],
        port: MemoryPort,
        table: std::rc::Rc<Vec<u8>>,
        isn_key: [u64; 2],
    ) -> Node {
        // EXASOCK_TCP_LINK_CC names the congestion control to run ("reno", "cubic").
        let congestion = std::env::var("EXASOCK_TCP_LINK_CC")
            .ok()
            .and_then(|n| stack::tcp::congestion::Algorithm::from_name(&n))
            .unwrap_or_default();
        let tcp = TcpConfig { isn_key, congestion, ..TcpConfig::default() };
        let config = StackConfig { tcp, ..StackConfig::default() };
        let stack = lan_stack(ip, EthernetAddress(mac), 1500, peer, EthernetAddress(peer_mac), config);
        Node {
            stack,
            resizes: Vec::new(),
            peak: (0, 0),
            peak_limit: (0, 0),
            port,
            sock: None,
            listener: None,
            sent: 0,
            received: 0,
            eof: false,
            shut: false,
            salt_out: u64::from(mac[5]) * 1000,
            salt_in: u64::from(peer_mac[5]) * 1000,
            buf: vec![0u8; 64 * 1024],
            scratch: Vec::new(),
            table,
            failed: None,
        }
    }

    /// One round: receive what arrived, run timers, let the application work, transmit.
    fn step(&mut self, now: Instant, total: u64) {
        let stack = &mut self.stack;
        let trace = std::env::var("EXASOCK_TCP_TRACE").is_ok();
        let name = self.salt_out;
        self.port.receive(usize::MAX, &mut |f| {
            if trace {
                trace_frame(now, name, f.data);
            }
            stack.receive(now, f.data, RxChecksum::Unverified)
        });
        self.stack.handle_timeout(now);
        if self.sock.is_none() {
            if let Some(l) = self.listener {
                if let Ok((h, _)) = self.stack.tcp_accept(l) {
                    let info = self.stack.tcp_info(h).unwrap();
                    assert_eq!(info.send_buffer_bytes, 0, "the send buffer starts empty");
                    self.sock = Some(h);
                }
            }
        }
        if let Some(h) = self.sock {
            self.app(h, total);
            self.watch_buffers(h);
        }
        let port = &mut self.port;
        if GSO.get() {
            self.stack.transmit(now, &mut GsoPort { port, scratch: &mut self.scratch });
        } else {
            self.stack.transmit(now, &mut TransmitWith::new(|build| port.transmit(build).is_ok()));
        }
        self.port.flush().unwrap();
    }

    /// Buffers never grow past the largest limit they had.
    fn watch_buffers(&mut self, h: SocketHandle) {
        let Ok(i) = self.stack.tcp_info(h) else { return };
        self.peak_limit = (self.peak_limit.0.max(i.send_buffer_limit), self.peak_limit.1.max(i.recv_buffer_limit));
        self.peak = (self.peak.0.max(i.send_buffer_bytes), self.peak.1.max(i.recv_buffer_bytes));
        assert!(
            self.peak.0 <= self.peak_limit.0 && self.peak.1 <= self.peak_limit.1,
            "buffers {:?} past their limits {:?}",
            self.peak,
            self.peak_limit
        );
    }

    fn app(&mut self, h: SocketHandle, total: u64) {
        while let Some(r) = self.resizes.first().copied().filter(|r| r.at <= self.received) {
            self.resizes.remove(0);
            let mut o = self.stack.tcp_options(h).unwrap();
            (o.rcvbuf, o.sndbuf) = (r.rcvbuf, r.sndbuf);
            self.stack.tcp_set_options(h, o, Instant::ZERO).unwrap();
        }
        while self.sent < total {
            let n = ((total - self.sent) as usize).min(65_536);
            let from = ((self.sent + self.salt_out) % PERIOD as u64) as usize;
            match self.stack.tcp_send(h, &self.table[from..from + n]) {
                Ok(k) => self.sent += k as u64,
                Err(stack::tcp::TcpError::WouldBlock) => break,
                Err(e) => {
                    self.failed = Some(format!("send failed after {} bytes: {e}", self.sent));
                    break;
                }
            }
        }
        if self.sent == total && !self.shut && self.stack.tcp_state(h).is_ok_and(|s| s.is_synchronized()) {
            self.stack.tcp_shutdown(h, false, true).unwrap();
            self.shut = true;
        }
        loop {
            match self.stack.tcp_recv(h, &mut self.buf, false) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => {
                    let from = ((self.received + self.salt_in) % PERIOD as u64) as usize;
                    let n1 = n.min(PERIOD - from);
                    let ok = self.buf[..n1] == self.table[from..from + n1] && self.buf[n1..n] == self.table[..n - n1];
                    assert!(ok, "bytes {}..{} differ", self.received, self.received + n as u64);
                    self.received += n as u64;
                }
                Err(stack::tcp::TcpError::WouldBlock) => break,
                Err(e) => {
                    self.failed = Some(format!("recv failed after {} bytes: {e}", self.received));
                    break;
                }
            }
        }
    }
}

/// What a transfer measured.
struct Outcome {
    /// Simulated time until both sides had read everything.
    took: Duration,
    /// The listener's side and the connecting side, at the end.
    infos: [TcpInfo; 2],
    /// Their largest send and receive buffer allocations.
    peaks: [(usize, usize); 2],
}

/// Moves `bytes` each way between two stacks over a link shaped by `impair`; returns the
/// simulated time until both sides had read everything (the close and TIME_WAIT follow).
fn transfer(impair: Impairments, seed: u64, bytes: u64) -> Outcome {
    transfer_on(LinkConfig::symmetric(impair, seed), bytes)
}

fn transfer_on(link: LinkConfig, bytes: u64) -> Outcome {
    transfer_keyed(link, bytes, None)
}

const A_PORT: u16 = 5001;
const B_PORT: u16 = 40001;

/// `isn_keys` are the listener's and the connecting side's ISN keys (by default, from the MACs).
fn transfer_keyed(link: LinkConfig, bytes: u64, isn_keys: Option<[[u64; 2]; 2]>) -> Outcome {
    transfer_planned(link, bytes, isn_keys, [Vec::new(), Vec::new()])
}

/// `resizes` are the listener's and the connecting side's setsockopt calls mid-transfer.
fn transfer_planned(
    link: LinkConfig,
    bytes: u64,
    isn_keys: Option<[[u64; 2]; 2]>,
    resizes: [Vec<Resize>; 2],
) -> Outcome {
    eprintln!("transfer: {bytes} bytes each way, {link:?}");
    let (pa, pb, ctrl): (MemoryPort, MemoryPort, LinkControl) = pair(link);
    let (mac_a, mac_b) = (pa.mac(), pb.mac());
    let isn_keys = isn_keys.unwrap_or([[u64::from(mac_a[5]), 7], [u64::from(mac_b[5]), 7]]);
    let table = std::rc::Rc::new(pattern_table());
    let mut a = Node::new(A_IP, B_IP, mac_a, mac_b, pa, table.clone(), isn_keys[0]);
    let mut b = Node::new(B_IP, A_IP, mac_b, mac_a, pb, table, isn_keys[1]);
    [a.resizes, b.resizes] = resizes;
    let l = a.stack.tcp_open();
    a.stack.tcp_bind(l, SocketAddrV4::new(A_IP, A_PORT)).unwrap();
    a.stack.tcp_listen(l, 16).unwrap();
    a.listener = Some(l);
    let h = b.stack.tcp_open();
    b.stack.tcp_bind(h, SocketAddrV4::new(B_IP, B_PORT)).unwrap();
    b.stack.tcp_connect(h, SocketAddrV4::new(A_IP, A_PORT), Instant::ZERO).unwrap();
    b.sock = Some(h);
    let info = b.stack.tcp_info(h).unwrap();
    assert_eq!((info.send_buffer_bytes, info.recv_buffer_bytes), (0, 0), "buffers start empty");
    let mut now = Duration::ZERO;
    let mut done_at = None;
    let limit = Duration::from_secs(3_600);
    loop {
        ctrl.set_now(now);
        let t = Instant::from_nanos(now.as_nanos() as u64);
        a.step(t, bytes);
        b.step(t, bytes);
        if a.failed.is_some() || b.failed.is_some() {
            panic!("at {now:?}: a {:?} {:?}\nb {:?} {:?}", a.failed, state(&a), b.failed, state(&b));
        }
        if done_at.is_none() && a.received == bytes && b.received == bytes {
            done_at = Some(now);
        }
        let closed = |n: &Node| n.sock.is_some_and(|h| n.stack.tcp_state(h) == Ok(State::Closed));
        if closed(&a) && closed(&b) {
            break;
        }
        let next = [
            ctrl.next_arrival(),
            a.stack.poll_timeout().map(|i| Duration::from_nanos(i.as_nanos())),
            b.stack.poll_timeout().map(|i| Duration::from_nanos(i.as_nanos())),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or_else(|| panic!("nothing left to happen at {now:?}: a {:?} b {:?}", state(&a), state(&b)));
        now = next.max(now);
        assert!(now < limit, "not done after {limit:?}: a {:?} b {:?}", state(&a), state(&b));
    }
    for n in [&a, &b] {
        assert_eq!((n.sent, n.received, n.eof), (bytes, bytes, true), "each side sent and received everything");
        let h = n.sock.unwrap();
        assert!(!n.stack.tcp_readiness(h).unwrap().error, "closed without error");
    }
    if GSO.get() {
        for n in [&a, &b] {
            let st = n.stack.stats();
            assert!(st.tcp_gso_frames > 0, "no super-segment was sent");
            eprintln!("  {} super-segments, {} segments", st.tcp_gso_frames, st.tcp_out_segs);
        }
    }
    let info = |n: &Node| n.stack.tcp_info(n.sock.unwrap()).unwrap();
    let infos = [info(&a), info(&b)];
    for i in &infos {
        eprintln!(
            "  sent {} retransmitted {} B: {} fast, {} after {} timeouts",
            i.bytes_sent, i.bytes_retransmitted, i.fast_retransmits, i.timeout_retransmits, i.timeouts
        );
    }
    let took = done_at.unwrap_or(now);
    eprintln!("  took {took:?}");
    Outcome { took, infos, peaks: [a.peak, b.peak] }
}

/// Loss was repaired mostly by fast retransmit (three duplicate ACKs), not by timeouts: a
/// sender whose fast retransmit had stopped working still completes, only slowly.
fn assert_fast_recovery(o: &Outcome) {
    for i in &o.infos {
        if i.bytes_retransmitted == 0 {
            continue;
        }
        assert!(
            i.fast_retransmits > 0 && i.fast_retransmits > i.timeouts,
            "loss repaired by timeouts: {} fast retransmits, {} timeouts",
            i.fast_retransmits,
            i.timeouts
        );
    }
}

fn state(n: &Node) -> Option<(State, u64, u64, stack::tcp::TcpInfo)> {
    let h = n.sock?;
    Some((n.stack.tcp_state(h).ok()?, n.sent, n.received, n.stack.tcp_info(h).ok()?))
}

fn mib(default: u64) -> u64 {
    std::env::var("EXASOCK_TCP_LINK_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(default) << 20
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn clean_link_moves_64_mib_each_way() {
    let imp = Impairments { delay: ms(1), ..Impairments::default() };
    transfer(imp, 1, mib(64));
}

/// 1% loss, duplication and reordering over a 1 ms link with 100 µs of jitter.
fn one_percent_of_everything() -> Impairments {
    Impairments {
        delay: ms(1),
        jitter: Duration::from_micros(100),
        loss: 0.01,
        duplicate: 0.01,
        reorder: 0.01,
        reorder_delay: ms(2),
        ..Impairments::default()
    }
}

#[test]
fn one_percent_loss_dup_reorder_moves_64_mib_each_way() {
    let imp = one_percent_of_everything();
    for seed in [11, 12] {
        assert_fast_recovery(&transfer(imp, seed, mib(64)));
    }
}

/// The same over datapaths that cut super-segments (GSO) before the link loses, duplicates
/// and reorders their pieces: every byte arrives, loss is repaired by fast retransmit.
#[test]
fn gso_super_segments_cut_into_lossy_frames_move_64_mib_each_way() {
    GSO.set(true);
    let clean = Impairments { delay: ms(1), ..Impairments::default() };
    transfer(clean, 3, mib(64));
    let imp = one_percent_of_everything();
    for seed in [11, 12] {
        assert_fast_recovery(&transfer(imp, seed, mib(64)));
    }
    for seed in 0..8 {
        transfer(harsh(seed, 50, seed % 2 == 1), seed, 1 << 20);
    }
}

/// Buffers start empty, grow on demand and follow setsockopt mid-transfer over a lossy link:
/// 64 MiB each way byte-exact, while each side lowers both its buffers (SO_RCVBUF to 32 KiB,
/// SO_SNDBUF to 16 KiB: the receive limit only comes down as reads free what was promised)
/// and later raises them past the defaults (1 MiB, of which window scale 3 offers 512 KiB).
/// The buffers never grow past a limit they had, the send buffers reach their largest, and
/// closing gives everything back.
#[test]
fn buffers_grow_from_nothing_and_follow_setsockopt_over_a_lossy_link() {
    let imp = one_percent_of_everything();
    let bytes = mib(64);
    let plan = |first: u64, then: u64| {
        vec![
            Resize { at: bytes / 8 * first, rcvbuf: 32 << 10, sndbuf: 16 << 10 },
            Resize { at: bytes / 8 * then, rcvbuf: 1 << 20, sndbuf: 1 << 20 },
        ]
    };
    let o = transfer_planned(LinkConfig::symmetric(imp, 13), bytes, None, [plan(2, 5), plan(3, 4)]);
    for (peak, info) in o.peaks.iter().zip(&o.infos) {
        eprintln!("  peak buffers: send {} receive {}", peak.0, peak.1);
        assert_eq!(peak.0, 1 << 20, "the send buffer grew to its largest limit");
        // The application reads at every step: the receive buffer holds what one step brings
        // (64 KiB here, out-of-order data included), never more than a limit it had (checked
        // at every step).
        assert!(peak.1 >= 4096, "the receive buffer grew from nothing");
        assert_eq!((info.send_buffer_bytes, info.recv_buffer_bytes), (0, 0), "closed: given back");
    }
}

#[test]
fn a_rate_limited_link_with_a_short_queue_is_shared_by_congestion_control() {
    // 100 Mbit/s and 64 frames of queue: losses come from the queue overflowing, as on a real
    // bottleneck, and NewReno must back off and recover.
    let imp = Impairments { delay: ms(2), rate_bps: Some(100_000_000), ..Impairments::default() };
    let link = LinkConfig { capacity: 64, ..LinkConfig::symmetric(imp, 41) };
    let o = transfer_on(link, mib(16));
    assert_fast_recovery(&o);
    let took = o.took;
    eprintln!("16 MiB each way took {took:?}");
    // 16 MiB each way over 100 Mbit/s needs at least 1.34 s; a working congestion control
    // keeps the link busy most of the time.
    assert!(took < Duration::from_secs(4), "took {took:?}");
}

#[test]
fn five_percent_loss_moves_data_each_way() {
    let imp = Impairments {
        delay: ms(2),
        loss: 0.05,
        duplicate: 0.02,
        reorder: 0.02,
        reorder_delay: ms(3),
        ..Impairments::default()
    };
    assert_fast_recovery(&transfer(imp, 21, mib(64)));
}

#[test]
fn bursty_loss_moves_data_each_way() {
    let imp = Impairments {
        delay: ms(5),
        burst: Some(BurstLoss { enter: 0.005, exit: 0.2, loss_in_burst: 0.7 }),
        ..Impairments::default()
    };
    assert_fast_recovery(&transfer(imp, 31, mib(64)));
}

/// Seeds of the sweep that once failed, kept as regressions (seed, loss per mille, burst).
/// (The seeds of the fixed-size tests above, 11, 12, 21 and 31, are the ones that found the
/// receive-ring and ACK-acceptability bugs; they stay there. Seed 105 of an earlier, harsher
/// burst model ended in a legitimate ETIMEDOUT: 90% loss in bursts left per frame with
/// probability 0.1 black-holed every retransmission; that model is no longer swept.)
const REGRESSIONS: &[(u64, u32, bool)] = &[(105, 10, true)];

fn harsh(seed: u64, loss_per_mille: u32, burst: bool) -> Impairments {
    Impairments {
        delay: Duration::from_micros(200 + seed % 5_000),
        jitter: Duration::from_micros(seed % 300),
        loss: f64::from(loss_per_mille) / 1000.0,
        burst: burst.then_some(BurstLoss { enter: 0.01, exit: 0.3, loss_in_burst: 0.6 }),
        duplicate: 0.03,
        reorder: 0.05,
        reorder_delay: ms(1 + seed % 7),
        ..Impairments::default()
    }
}

#[test]
fn many_seeds_with_harsh_impairments_move_data_each_way() {
    let seeds: u64 = std::env::var("EXASOCK_TCP_LINK_SEEDS").ok().and_then(|v| v.parse().ok()).unwrap_or(24);
    for &(seed, loss, burst) in REGRESSIONS {
        transfer(harsh(seed, loss, burst), seed, 1 << 20);
    }
    for seed in 100..100 + seeds {
        let loss = [0, 10, 50, 100][(seed % 4) as usize];
        let burst = seed % 3 == 0;
        transfer(harsh(seed, loss, burst), seed, 1 << 20);
    }
}

/// An ISN key under which the ISN of `local` → `remote` at time zero lies `below` bytes or
/// less under 2^32 (and at least 64 KiB under it): the sequence numbers wrap early in the
/// transfer. Found by trying keys, as the ISN is a keyed hash.
fn key_with_isn_below_wrap(local: SocketAddrV4, remote: SocketAddrV4, below: u32, salt: u64) -> [u64; 2] {
    (0..)
        .map(|i| [salt, i])
        .find(|k| {
            let isn = stack::tcp::isn::initial_sequence(*k, local, remote, Instant::ZERO);
            isn.wrapping_neg() <= below && isn.wrapping_neg() >= 1 << 16
        })
        .unwrap()
}

/// Both ISNs just below 2^32, with loss: every comparison of sequence numbers must hold across
/// the wrap, and fast retransmit must keep working there (CI's form of the 5 GiB test below).
#[test]
fn isns_just_below_the_wrap_move_data_each_way() {
    let (a, b) = (SocketAddrV4::new(A_IP, A_PORT), SocketAddrV4::new(B_IP, B_PORT));
    let keys = [key_with_isn_below_wrap(a, b, 4 << 20, 1), key_with_isn_below_wrap(b, a, 2 << 20, 2)];
    for (k, (l, r)) in keys.iter().zip([(a, b), (b, a)]) {
        eprintln!("ISN {:#010x}", stack::tcp::isn::initial_sequence(*k, l, r, Instant::ZERO));
    }
    let imp = Impairments { delay: ms(1), loss: 0.01, reorder: 0.01, reorder_delay: ms(2), ..Impairments::default() };
    let o = transfer_keyed(LinkConfig::symmetric(imp, 51), mib(32), Some(keys));
    assert_fast_recovery(&o);
}

/// 5 GiB each way with random ISNs and 0.1% loss: both sequence spaces wrap at least once, an
/// ACK may land on an ISN again, and recovery must stay fast retransmit throughout. Byte-exact
/// (the receiver checks every byte). About 5 s of simulated transfer; it prints its seed, and
/// EXASOCK_TCP_LINK_ISN_SEED replays one (EXASOCK_TCP_LINK_MIB changes the amount).
#[test]
fn five_gib_each_way_with_random_isns() {
    let seed = std::env::var("EXASOCK_TCP_LINK_ISN_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        use std::hash::BuildHasher;
        std::collections::hash_map::RandomState::new().hash_one(0u8) | 1
    });
    eprintln!("EXASOCK_TCP_LINK_ISN_SEED={seed}");
    let mut x = Xorshift::new(seed);
    let keys = [[x.next_u64(), x.next_u64()], [x.next_u64(), x.next_u64()]];
    let imp = Impairments { delay: ms(1), loss: 0.001, reorder: 0.001, reorder_delay: ms(2), ..Impairments::default() };
    let wall = std::time::Instant::now();
    let o = transfer_keyed(LinkConfig::symmetric(imp, seed), mib(5 << 10), Some(keys));
    eprintln!("simulated {:?}, wall {:?}", o.took, wall.elapsed());
    assert_fast_recovery(&o);
}
