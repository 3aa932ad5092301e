//! The sans-IO stack driven over a TAP device, for interop tests against the Linux kernel's own
//! TCP (the kernel side of the device is a real host: testbed::tap). The harness owns the clock
//! (real time since it started) and sits between the device and the stack, so it can drop,
//! duplicate and reorder frames in either direction, reproducibly from a seed.

use stack::testing::lan_stack;
use stack::{Instant, RxChecksum, Stack, StackConfig, Transmit, TxBusy};
use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;
use wire::EthernetAddress;

/// What the harness does to frames, per direction, each decided by the seeded generator.
#[derive(Debug, Clone, Copy, Default)]
pub struct Impairment {
    /// Probability that a frame is dropped.
    pub drop: f64,
    /// Probability that a frame is delivered twice.
    pub duplicate: f64,
    /// Probability that a frame is held back and delivered after the next few.
    pub reorder: f64,
}

/// Counts of what the harness did.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImpairStats {
    /// Frames passed on (copies included).
    pub delivered: u64,
    /// Frames dropped.
    pub dropped: u64,
    /// Extra copies delivered.
    pub duplicated: u64,
    /// Frames delivered late.
    pub reordered: u64,
}

/// One direction of frames through the harness.
struct Lane {
    impairment: Impairment,
    /// Frames held back, each with the number of later frames to let pass first.
    held: VecDeque<(u32, Vec<u8>)>,
    stats: ImpairStats,
}

impl Lane {
    fn new(impairment: Impairment) -> Lane {
        Lane { impairment, held: VecDeque::new(), stats: ImpairStats::default() }
    }

    /// Decides the fate of `frame`; `deliver` gets what passes, in order.
    fn pass(&mut self, rng: &mut Rng, frame: &[u8], deliver: &mut dyn FnMut(&[u8])) {
        let i = self.impairment;
        if rng.chance(i.drop) {
            self.stats.dropped += 1;
        } else if rng.chance(i.reorder) {
            self.stats.reordered += 1;
            self.held.push_back((1 + rng.below(3), frame.to_vec()));
            return;
        } else {
            let copies = if rng.chance(i.duplicate) { 2 } else { 1 };
            self.stats.duplicated += copies - 1;
            for _ in 0..copies {
                self.stats.delivered += 1;
                deliver(frame);
            }
        }
        // Held frames go once enough later ones passed.
        for h in self.held.iter_mut() {
            h.0 = h.0.saturating_sub(1);
        }
        while self.held.front().is_some_and(|h| h.0 == 0) {
            let (_, f) = self.held.pop_front().expect("checked");
            self.stats.delivered += 1;
            deliver(&f);
        }
    }

    /// Delivers everything held (when the link goes quiet, so nothing waits for ever).
    fn flush(&mut self, deliver: &mut dyn FnMut(&[u8])) {
        while let Some((_, f)) = self.held.pop_front() {
            self.stats.delivered += 1;
            deliver(&f);
        }
    }
}

/// A small seeded generator (xorshift64*): the runs are reproducible from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    fn below(&mut self, n: u32) -> u32 {
        (self.next() % u64::from(n)) as u32
    }
}

/// The stack on the engine's end of a TAP device.
pub struct TapEngine {
    /// The stack (the test calls its tcp_* API directly).
    pub stack: Stack,
    tap: OwnedFd,
    start: std::time::Instant,
    rng: Rng,
    inbound: Lane,
    outbound: Lane,
    frame: Vec<u8>,
    log: TraceLog,
    /// Frames the stack sent while outbound traffic is held (`hold_outbound`).
    held: Option<Vec<Vec<u8>>>,
}

/// The last frames through the harness, for the report of a failed run.
#[derive(Debug, Clone, Copy)]
struct Traced {
    at: u64,
    inbound: bool,
    seq: u32,
    ack: u32,
    flags: u8,
    win: u16,
    len: usize,
}

const TRACE_DEPTH: usize = 400;

/// The last frames through the harness, at most `depth` of them (EXASOCK_TAP_TRACE_DEPTH, or
/// TRACE_DEPTH).
struct TraceLog {
    frames: VecDeque<Traced>,
    depth: usize,
}

impl TraceLog {
    fn new() -> TraceLog {
        let depth =
            std::env::var("EXASOCK_TAP_TRACE_DEPTH").ok().and_then(|v| v.parse().ok()).unwrap_or(TRACE_DEPTH).max(1);
        TraceLog { frames: VecDeque::with_capacity(depth), depth }
    }

    /// Records a TCP frame (others are skipped).
    fn push(&mut self, at: Instant, inbound: bool, frame: &[u8]) {
        if frame.len() < 54 || frame[23] != 6 {
            return;
        }
        let ihl = usize::from(frame[14] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([frame[16], frame[17]]));
        let tcp = &frame[14 + ihl..];
        let doff = usize::from(tcp[12] >> 4) * 4;
        if self.frames.len() == self.depth {
            self.frames.pop_front();
        }
        self.frames.push_back(Traced {
            at: at.as_nanos() / 1000,
            inbound,
            seq: u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]),
            ack: u32::from_be_bytes([tcp[8], tcp[9], tcp[10], tcp[11]]),
            flags: tcp[13],
            win: u16::from_be_bytes([tcp[14], tcp[15]]),
            len: total.saturating_sub(ihl + doff),
        });
    }
}

/// Writes the stack's frames to the device through the outbound lane.
struct TapTx<'a> {
    fd: i32,
    held: Option<&'a mut Vec<Vec<u8>>>,
    now: Instant,
    log: &'a mut TraceLog,
    lane: &'a mut Lane,
    rng: &'a mut Rng,
    buf: &'a mut Vec<u8>,
}

fn write_frame(fd: i32, frame: &[u8]) {
    // SAFETY: writing our buffer to our descriptor. A full device queue drops the frame, as a
    // wire would; TCP recovers it.
    unsafe { libc::write(fd, frame.as_ptr().cast(), frame.len()) };
}

impl Transmit for TapTx<'_> {
    fn frame(&mut self, build: &mut dyn FnMut(&mut [u8]) -> usize) -> Result<(), TxBusy> {
        self.buf.resize(65_536, 0);
        let n = build(self.buf);
        if n > 0 {
            let fd = self.fd;
            if let Some(held) = self.held.as_mut() {
                held.push(self.buf[..n].to_vec());
                return Ok(());
            }
            let (log, now) = (&mut *self.log, self.now);
            self.lane.pass(self.rng, &self.buf[..n], &mut |f| {
                log.push(now, false, f);
                write_frame(fd, f)
            });
        }
        Ok(())
    }

    fn to_kernel(&mut self, _ip_packet: &[u8]) {
        // The kernel's MAC is in the neighbour cache from the start: nothing goes this way.
    }
}

impl TapEngine {
    /// A stack at `engine_ip`/24 with `engine_mac` on the device `tap`, whose kernel side is
    /// `kernel_ip` at `kernel_mac`; `inbound`/`outbound` impair frames to and from the stack.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        tap: OwnedFd,
        engine_ip: Ipv4Addr,
        engine_mac: [u8; 6],
        kernel_ip: Ipv4Addr,
        kernel_mac: [u8; 6],
        config: StackConfig,
        inbound: Impairment,
        outbound: Impairment,
        seed: u64,
    ) -> TapEngine {
        let stack =
            lan_stack(engine_ip, EthernetAddress(engine_mac), 1500, kernel_ip, EthernetAddress(kernel_mac), config);
        TapEngine {
            stack,
            tap,
            start: std::time::Instant::now(),
            rng: Rng(seed.max(1)),
            inbound: Lane::new(inbound),
            outbound: Lane::new(outbound),
            frame: vec![0u8; 65_536],
            held: None,
            log: TraceLog::new(),
        }
    }

    /// The stack's clock: time since the harness started.
    pub fn now(&self) -> Instant {
        Instant::from_nanos(self.start.elapsed().as_nanos() as u64)
    }

    /// One round: frames in, timers, frames out; then waits up to `wait` for the device (less
    /// if a timer is due sooner).
    pub fn step(&mut self, wait: Duration) {
        let fd = self.tap.as_raw_fd();
        let mut got = 0;
        loop {
            // SAFETY: reading into our buffer from our non-blocking descriptor.
            let n = unsafe { libc::read(fd, self.frame.as_mut_ptr().cast(), self.frame.len()) };
            if n <= 0 {
                break;
            }
            got += 1;
            let now = self.now();
            let (stack, lane, rng, log) = (&mut self.stack, &mut self.inbound, &mut self.rng, &mut self.log);
            lane.pass(rng, &self.frame[..n as usize], &mut |f| {
                log.push(now, true, f);
                stack.receive(now, f, RxChecksum::Unverified)
            });
        }
        let now = self.now();
        if got == 0 {
            let stack = &mut self.stack;
            self.inbound.flush(&mut |f| stack.receive(now, f, RxChecksum::Unverified));
        }
        self.stack.handle_timeout(now);
        self.transmit();
        if got == 0 {
            self.outbound.flush(&mut |f| write_frame(fd, f));
        }
        while self.stack.poll_event().is_some() {}
        let until_timer =
            self.stack.poll_timeout().map(|t| Duration::from_nanos(t.as_nanos().saturating_sub(now.as_nanos())));
        let mut wait = until_timer.map_or(wait, |t| t.min(wait));
        if !self.inbound.held.is_empty() || !self.outbound.held.is_empty() {
            // Frames held back go once the link is quiet, as `relay` lets them go after one
            // pass that moved nothing: if nothing is readable now, the next step reads nothing
            // and flushes them, instead of after a sleep of up to `wait` (which made the
            // engine's reordering last up to a millisecond, the kernels' microseconds).
            wait = Duration::ZERO;
        }
        if !wait.is_zero() {
            let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut p, 1, wait.as_millis().max(1) as i32) };
        }
    }

    /// Sends what the stack has due.
    pub fn transmit(&mut self) {
        let now = self.now();
        let mut tx = TapTx {
            fd: self.tap.as_raw_fd(),
            held: self.held.as_mut(),
            now,
            log: &mut self.log,
            lane: &mut self.outbound,
            rng: &mut self.rng,
            buf: &mut self.frame,
        };
        self.stack.transmit(now, &mut tx);
    }

    /// Holds what the stack sends (true) until released (false), when it goes out in order:
    /// to make both ends' FINs cross (simultaneous close).
    pub fn hold_outbound(&mut self, hold: bool) {
        if hold {
            self.held.get_or_insert_with(Vec::new);
            return;
        }
        let fd = self.tap.as_raw_fd();
        for frame in self.held.take().unwrap_or_default() {
            let now = self.now();
            self.log.push(now, false, &frame);
            write_frame(fd, &frame);
        }
    }

    /// Steps until `done` says true or `timeout` passes; returns whether it did.
    pub fn run_until(&mut self, timeout: Duration, mut done: impl FnMut(&mut TapEngine) -> bool) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if done(self) {
                return true;
            }
            self.step(Duration::from_millis(1));
        }
        done(self)
    }

    /// The last frames through the harness (after impairment), one per line, oldest first.
    pub fn trace(&self) -> String {
        self.log
            .frames
            .iter()
            .map(|t| {
                format!(
                    "{:>10} us {} seq {} ack {} flags {:#04x} win {} len {}\n",
                    t.at,
                    if t.inbound { "in " } else { "out" },
                    t.seq,
                    t.ack,
                    t.flags,
                    t.win,
                    t.len
                )
            })
            .collect()
    }

    /// What the harness did to frames (to the stack, from the stack).
    pub fn impair_stats(&self) -> (ImpairStats, ImpairStats) {
        (self.inbound.stats, self.outbound.stats)
    }
}

/// The test payload: byte `i` of a stream is `PATTERN[i % 65521]`, a prime period that no
/// segment size divides, so a misplaced segment shows.
pub fn pattern_byte(i: u64) -> u8 {
    let j = i % 65_521;
    (j.wrapping_mul(j).wrapping_mul(7).wrapping_add(j / 3).wrapping_add(13) % 256) as u8
}

/// Joins two TAP devices with the same impairments as a [`TapEngine`] gets (`ab` for frames
/// from `a` to `b`, `ba` back), until `done` says true: two kernels through the harness, the
/// baseline an engine's figures under impairment are compared with.
pub fn relay(
    a: &OwnedFd,
    b: &OwnedFd,
    ab: Impairment,
    ba: Impairment,
    seed: u64,
    mut done: impl FnMut() -> bool,
) -> (ImpairStats, ImpairStats) {
    let mut rng = Rng(seed.max(1));
    let mut lanes = [Lane::new(ab), Lane::new(ba)];
    let fds = [a.as_raw_fd(), b.as_raw_fd()];
    let mut frame = vec![0u8; 65_536];
    while !done() {
        let mut moved = 0;
        for (from, lane) in lanes.iter_mut().enumerate() {
            let to = fds[1 - from];
            loop {
                // SAFETY: reading into our buffer from a non-blocking descriptor we were lent.
                let n = unsafe { libc::read(fds[from], frame.as_mut_ptr().cast(), frame.len()) };
                if n <= 0 {
                    break;
                }
                moved += 1;
                lane.pass(&mut rng, &frame[..n as usize], &mut |f| write_frame(to, f));
            }
        }
        if moved == 0 {
            for (from, lane) in lanes.iter_mut().enumerate() {
                let to = fds[1 - from];
                lane.flush(&mut |f| write_frame(to, f));
            }
            let mut p = fds.map(|fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 });
            // SAFETY: two valid pollfds.
            unsafe { libc::poll(p.as_mut_ptr(), 2, 1) };
        }
    }
    (lanes[0].stats, lanes[1].stats)
}
