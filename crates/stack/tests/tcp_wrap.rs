//! Sequence numbers past 2^31 and 2^32 bytes: packet scripts over a 65,535-byte MTU, so a
//! connection moves gigabytes in tens of thousands of segments, each acknowledged at once by
//! the scripted peer. Circular comparisons that are right for a window but wrong for a whole
//! stream (anything compared with the ISS long after the handshake) show up here.

mod common;

use common::*;
use stack::tcp::{State, TcpConfig, TcpError};
use stack::SocketHandle;

const MTU: usize = 65_535;
const MSS: u16 = 65_495;
/// Stream byte `i` is `i % 251`: a prime period, so a stream shifted by one byte anywhere (also
/// across 2^32) never matches.
const PERIOD: u64 = 251;

/// A bulk sender on an established big-MTU connection, acknowledged segment by segment.
struct Bulk {
    p: Script,
    h: SocketHandle,
    table: Vec<u8>,
    /// Stream bytes the application has written.
    written: u64,
    /// Stream bytes the peer has acknowledged.
    acked: u64,
    /// Stream bytes sent for the first time.
    sent: u64,
}

impl Bulk {
    fn new() -> Bulk {
        let mut p = Script::with_mtu(TcpConfig::default(), MTU);
        let h = p.established_scaled(MSS, 7, 65_535, |o| {
            o.sndbuf = 8 << 20;
            o.nodelay = true;
        });
        let table = (0..PERIOD as usize + 65_536).map(|i| (i as u64 % PERIOD) as u8).collect();
        Bulk { p, h, table, written: 0, acked: 0, sent: 0 }
    }

    /// The stream offset of a segment with our relative sequence number `seq`, taken as the
    /// one nearest what is acknowledged.
    fn offset(&self, seq: u32) -> u64 {
        let d = seq.wrapping_sub(1).wrapping_sub(self.acked as u32) as i32;
        (self.acked as i64 + i64::from(d)) as u64
    }

    /// The application writes up to `limit` stream bytes (as the send buffer allows).
    fn write_up_to(&mut self, limit: u64) {
        while self.written < limit {
            let n = (limit - self.written).min(65_536) as usize;
            let from = (self.written % PERIOD) as usize;
            match self.p.stack.tcp_send(self.h, &self.table[from..from + n]) {
                Ok(k) => self.written += k as u64,
                Err(TcpError::WouldBlock) => break,
                Err(e) => panic!("send: {e}"),
            }
        }
    }

    /// Writes, sends and acknowledges until `limit` stream bytes are acknowledged; segments
    /// starting at or past `verify_from` are checked byte for byte.
    fn pump(&mut self, limit: u64, verify_from: u64) {
        while self.acked < limit {
            self.write_up_to(limit);
            self.p.flush();
            let mut progress = false;
            while let Some(o) = self.p.sent.pop_front() {
                if o.payload.is_empty() {
                    continue;
                }
                let off = self.offset(o.seq);
                if off + o.payload.len() as u64 > verify_from {
                    for (i, b) in o.payload.iter().enumerate() {
                        let at = off + i as u64;
                        assert_eq!(u64::from(*b), at % PERIOD, "stream byte {at} (segment at {off}) is wrong");
                    }
                }
                let end = off + o.payload.len() as u64;
                self.sent = self.sent.max(end);
                if end > self.acked {
                    self.acked = end;
                    let ack = (end + 1) as u32;
                    self.p.inject(seg(".", 1001).ack(ack).win(65_535));
                    progress = true;
                }
            }
            assert!(progress || self.p.sent.is_empty(), "stalled at {} acknowledged", self.acked);
            if !progress {
                // Nothing went out: let timers run (nothing should be due).
                let t = self.p.now.as_nanos() / 1_000_000 + 1;
                self.p.run_until(t);
                assert!(!self.p.sent.is_empty(), "stalled at {} acknowledged, {} written", self.acked, self.written);
            }
        }
    }
}

/// Must-fix 1: an ACK that lands exactly on the ISS 2^32 bytes later was taken for the SYN's,
/// and every later byte went out shifted by one.
#[test]
fn an_ack_landing_on_the_iss_after_4_gib_does_not_shift_the_stream() {
    let mut b = Bulk::new();
    // Stream byte 2^32 - 1 has relative sequence number 2^32, which is the ISS again: send
    // exactly up to it, so one ACK lands there.
    let wrap = (1u64 << 32) - 1;
    b.pump(wrap, wrap);
    assert_eq!(b.acked, wrap, "an ACK landed on the ISS");
    b.pump(wrap + (16 << 20), wrap);
    let info = b.p.stack.tcp_info(b.h).unwrap();
    assert_eq!(info.bytes_acked, wrap + (16 << 20));
    assert_eq!(info.unacked, 0);
    assert_eq!(b.p.state(b.h), State::Established);
}

/// Must-fix 2: `recover_mark` started at the ISS and moved only on loss, so after 2 GiB without
/// loss three duplicate ACKs no longer started fast retransmit.
#[test]
fn fast_retransmit_still_works_after_2_gib_without_loss() {
    let mut b = Bulk::new();
    let past = (1u64 << 31) + (8 << 20);
    b.pump(past, u64::MAX);
    // Five more segments; the first is lost.
    b.write_up_to(past + 5 * u64::from(MSS));
    b.p.flush();
    let out: Vec<_> = std::iter::from_fn(|| b.p.sent.pop_front()).collect();
    assert_eq!(out.len(), 5);
    assert_eq!(b.offset(out[0].seq), past);
    let ack = (past + 1) as u32;
    for _ in 0..3 {
        b.p.inject(seg(".", 1001).ack(ack).win(65_535));
    }
    let rtx = b.p.expect();
    assert_eq!((b.offset(rtx.seq), rtx.payload.len()), (past, usize::from(MSS)), "retransmitted at once");
    let info = b.p.stack.tcp_info(b.h).unwrap();
    assert_eq!((info.fast_retransmits, info.timeouts), (1, 0));
}
