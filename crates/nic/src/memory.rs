//! Two ports joined in memory: the datapath of sans-IO tests and simulations.
//!
//! Frames cross the link in simulated time. The link has no clock of its own: the test moves
//! time with [`LinkControl::set_now`], and a frame becomes receivable once its arrival time has
//! come. Each direction can lose (independently or in bursts), duplicate, reorder, delay, jitter
//! and rate-limit frames, and every random draw comes from a PRNG seeded from
//! [`LinkConfig::seed`], so a run replays exactly from its seed.

use crate::port::{Port, PortStats, RxChecksum, RxFrame, TxError};
use crate::rng::Rng;
use std::collections::BinaryHeap;
use std::io;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Bursty loss after the Gilbert-Elliott model: a good and a bad state, lossy in the bad one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurstLoss {
    /// Probability, per frame, of moving from the good to the bad state.
    pub enter: f64,
    /// Probability, per frame, of moving from the bad back to the good state.
    pub exit: f64,
    /// Probability that a frame sent in the bad state is lost.
    pub loss_in_burst: f64,
}

/// What happens to frames in one direction of the link.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Impairments {
    /// Fixed one-way propagation delay.
    pub delay: Duration,
    /// Extra delay drawn uniformly from [0, jitter] per frame (may reorder close frames).
    pub jitter: Duration,
    /// Probability that a frame is lost (independent of bursts).
    pub loss: f64,
    /// Bursty loss on top of `loss`.
    pub burst: Option<BurstLoss>,
    /// Probability that a frame is delivered twice.
    pub duplicate: f64,
    /// Probability that a frame is held back by `reorder_delay`, so later frames overtake it.
    pub reorder: f64,
    /// How long a reordered frame is held back.
    pub reorder_delay: Duration,
    /// Serialisation rate in bits per second; `None` is infinitely fast.
    pub rate_bps: Option<u64>,
}

/// A link's shape: MTU, queue size, the two directions' impairments and the seed.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkConfig {
    /// IP MTU of both ports.
    pub mtu: usize,
    /// Frames a direction holds (in flight plus waiting to be received) before it drops more.
    pub capacity: usize,
    /// Impairments of frames sent by port A to port B.
    pub a_to_b: Impairments,
    /// Impairments of frames sent by port B to port A.
    pub b_to_a: Impairments,
    /// Seed of every random draw on the link.
    pub seed: u64,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            mtu: 1500,
            capacity: 4096,
            a_to_b: Impairments::default(),
            b_to_a: Impairments::default(),
            seed: 0,
        }
    }
}

impl LinkConfig {
    /// The same impairments in both directions.
    pub fn symmetric(impairments: Impairments, seed: u64) -> Self {
        LinkConfig { a_to_b: impairments, b_to_a: impairments, seed, ..LinkConfig::default() }
    }
}

/// What the link did to the frames of one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirectionStats {
    /// Frames handed to the link by the sender's flush.
    pub sent: u64,
    /// Frames lost by `loss` or a burst.
    pub lost: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Frames held back to be overtaken.
    pub reordered: u64,
    /// Frames dropped because the direction held `capacity` frames already.
    pub overflowed: u64,
    /// Frames received at the far end.
    pub delivered: u64,
}

/// One frame on the wire, ordered by arrival time and then by sending order.
#[derive(Debug, PartialEq, Eq)]
struct InFlight {
    arrival_ns: u64,
    seq: u64,
    frame: Vec<u8>,
}

impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // BinaryHeap is a max-heap: the earliest arrival must compare greatest.
        (other.arrival_ns, other.seq).cmp(&(self.arrival_ns, self.seq))
    }
}

impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// One direction of the link.
#[derive(Debug)]
struct Direction {
    impairments: Impairments,
    rng: Rng,
    in_burst: bool,
    wire_free_ns: u64,
    queue: BinaryHeap<InFlight>,
    stats: DirectionStats,
}

impl Direction {
    fn new(impairments: Impairments, seed: u64) -> Self {
        Direction {
            impairments,
            rng: Rng::new(seed),
            in_burst: false,
            wire_free_ns: 0,
            queue: BinaryHeap::new(),
            stats: DirectionStats::default(),
        }
    }

    /// Decides the fate of one frame sent at `now_ns`; `spare` recycles buffers.
    fn send(&mut self, now_ns: u64, frame: &[u8], seq: &mut u64, capacity: usize, spare: &mut Vec<Vec<u8>>) {
        let imp = self.impairments;
        self.stats.sent += 1;
        if self.queue.len() >= capacity {
            // Tail drop: a full queue refuses the frame before it takes any wire time.
            self.stats.overflowed += 1;
            return;
        }
        let mut lost = self.rng.chance(imp.loss);
        if let Some(burst) = imp.burst {
            self.in_burst = if self.in_burst { !self.rng.chance(burst.exit) } else { self.rng.chance(burst.enter) };
            if self.in_burst && self.rng.chance(burst.loss_in_burst) {
                lost = true;
            }
        }
        // Serialisation happens whether or not the frame survives the wire.
        let mut depart_ns = now_ns;
        if let Some(rate) = imp.rate_bps.filter(|r| *r > 0) {
            let start = self.wire_free_ns.max(now_ns);
            let bits = frame.len() as u128 * 8;
            self.wire_free_ns = start + (bits * 1_000_000_000 / rate as u128) as u64;
            depart_ns = self.wire_free_ns;
        }
        if lost {
            self.stats.lost += 1;
            return;
        }
        let copies = if self.rng.chance(imp.duplicate) { 2 } else { 1 };
        self.stats.duplicated += copies - 1;
        for _ in 0..copies {
            if self.queue.len() >= capacity {
                self.stats.overflowed += 1;
                continue;
            }
            let mut arrival_ns = depart_ns + imp.delay.as_nanos() as u64;
            arrival_ns += self.rng.below_inclusive(imp.jitter.as_nanos() as u64);
            if self.rng.chance(imp.reorder) {
                self.stats.reordered += 1;
                arrival_ns += imp.reorder_delay.as_nanos() as u64;
            }
            let mut buf = spare.pop().unwrap_or_default();
            buf.clear();
            buf.extend_from_slice(frame);
            *seq += 1;
            self.queue.push(InFlight { arrival_ns, seq: *seq, frame: buf });
        }
    }
}

/// Everything both ports and the control handle share.
#[derive(Debug)]
struct Link {
    now_ns: u64,
    capacity: usize,
    seq: u64,
    /// Index 0 carries frames from A to B, index 1 from B to A.
    dirs: [Direction; 2],
    spare: Vec<Vec<u8>>,
}

/// Creates a link and its two ends, A and B, plus the handle that moves simulated time.
pub fn pair(config: LinkConfig) -> (MemoryPort, MemoryPort, LinkControl) {
    let mut seeder = Rng::new(config.seed);
    let link = Arc::new(Mutex::new(Link {
        now_ns: 0,
        capacity: config.capacity,
        seq: 0,
        dirs: [Direction::new(config.a_to_b, seeder.next_u64()), Direction::new(config.b_to_a, seeder.next_u64())],
        spare: Vec::new(),
    }));
    let port = |side: usize| MemoryPort {
        link: link.clone(),
        side,
        mtu: config.mtu,
        mac: [0x02, 0, 0, 0, 0, 0x0a + side as u8],
        pending: Vec::new(),
        pending_len: 0,
        stats: PortStats::default(),
    };
    (port(0), port(1), LinkControl { link: link.clone() })
}

fn lock(link: &Mutex<Link>) -> MutexGuard<'_, Link> {
    // A panicking test thread must not hide the link from the others.
    link.lock().unwrap_or_else(|e| e.into_inner())
}

/// Moves simulated time on a link and reports what the link did.
#[derive(Debug, Clone)]
pub struct LinkControl {
    link: Arc<Mutex<Link>>,
}

impl LinkControl {
    /// Sets the link's clock; time never goes backwards, an earlier value is ignored.
    pub fn set_now(&self, now: Duration) {
        let mut link = lock(&self.link);
        link.now_ns = link.now_ns.max(now.as_nanos() as u64);
    }

    /// The link's clock.
    pub fn now(&self) -> Duration {
        Duration::from_nanos(lock(&self.link).now_ns)
    }

    /// When the next frame in either direction arrives, so a simulation can jump to it.
    pub fn next_arrival(&self) -> Option<Duration> {
        let link = lock(&self.link);
        link.dirs.iter().filter_map(|d| d.queue.peek().map(|f| f.arrival_ns)).min().map(Duration::from_nanos)
    }

    /// Counters of frames sent from A to B.
    pub fn a_to_b(&self) -> DirectionStats {
        lock(&self.link).dirs[0].stats
    }

    /// Counters of frames sent from B to A.
    pub fn b_to_a(&self) -> DirectionStats {
        lock(&self.link).dirs[1].stats
    }
}

/// One end of an in-memory link.
#[derive(Debug)]
pub struct MemoryPort {
    link: Arc<Mutex<Link>>,
    side: usize,
    mtu: usize,
    mac: [u8; 6],
    /// Frames built by `transmit` and not yet flushed, back to back.
    pending: Vec<u8>,
    /// Lengths of the frames in `pending`, in order.
    pending_len: usize,
    stats: PortStats,
}

impl MemoryPort {
    /// Replaces the port's MAC address (defaults are 02:00:00:00:00:0a for A and ...:0b for B).
    pub fn set_mac(&mut self, mac: [u8; 6]) {
        self.mac = mac;
    }

    /// Frames queued by `transmit` that the next `flush` will send.
    pub fn pending_frames(&self) -> usize {
        self.pending_len
    }
}

/// Frames waiting for flush are stored as a 4-byte length followed by the bytes.
const LEN_PREFIX: usize = 4;

impl Port for MemoryPort {
    fn receive(&mut self, budget: usize, deliver: &mut dyn FnMut(RxFrame<'_>)) -> usize {
        let mut delivered = 0;
        while delivered < budget {
            // Take one frame out under the lock, deliver it without holding the lock (the
            // callback may transmit on this port), then recycle its buffer.
            let frame = {
                let mut link = lock(&self.link);
                let now = link.now_ns;
                let dir = &mut link.dirs[1 - self.side];
                match dir.queue.peek() {
                    Some(f) if f.arrival_ns <= now => {
                        dir.stats.delivered += 1;
                        dir.queue.pop().map(|f| f.frame)
                    }
                    _ => None,
                }
            };
            let Some(frame) = frame else { break };
            self.stats.rx_frames += 1;
            self.stats.rx_bytes += frame.len() as u64;
            deliver(RxFrame { data: &frame, checksum: RxChecksum::Unverified });
            lock(&self.link).spare.push(frame);
            delivered += 1;
        }
        delivered
    }

    fn transmit(&mut self, build: &mut dyn FnMut(&mut [u8]) -> usize) -> Result<usize, TxError> {
        let max = self.max_frame_len();
        let start = self.pending.len();
        self.pending.resize(start + LEN_PREFIX + max, 0);
        let len = build(&mut self.pending[start + LEN_PREFIX..]);
        if len == 0 || len > max {
            self.pending.truncate(start);
            return if len == 0 { Ok(0) } else { Err(TxError::FrameTooLong { len, max }) };
        }
        self.pending[start..start + LEN_PREFIX].copy_from_slice(&(len as u32).to_ne_bytes());
        self.pending.truncate(start + LEN_PREFIX + len);
        self.pending_len += 1;
        Ok(len)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.pending_len == 0 {
            return Ok(());
        }
        let mut guard = lock(&self.link);
        let link = &mut *guard;
        let mut at = 0;
        while at < self.pending.len() {
            let mut len_bytes = [0u8; LEN_PREFIX];
            len_bytes.copy_from_slice(&self.pending[at..at + LEN_PREFIX]);
            let len = u32::from_ne_bytes(len_bytes) as usize;
            let frame = &self.pending[at + LEN_PREFIX..at + LEN_PREFIX + len];
            link.dirs[self.side].send(link.now_ns, frame, &mut link.seq, link.capacity, &mut link.spare);
            self.stats.tx_frames += 1;
            self.stats.tx_bytes += len as u64;
            at += LEN_PREFIX + len;
        }
        self.pending.clear();
        self.pending_len = 0;
        self.stats.tx_kicks += 1;
        Ok(())
    }

    fn wait_fd(&self) -> Option<RawFd> {
        None
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn stats(&self) -> PortStats {
        let mut stats = self.stats;
        let link = lock(&self.link);
        let incoming = &link.dirs[1 - self.side].stats;
        stats.rx_dropped = incoming.overflowed;
        stats
    }
}
