//! Buffer autotuning, as Linux's dynamic right-sizing (tcp_rcv_space_adjust, tcp_rcv_rtt_*,
//! tcp_sndbuf_expand), within the memory model of the buffers: they grow on demand to a limit,
//! and autotuning moves the limit.
//! - Receive: once per receiver RTT, if the application read more than in the RTT before, the
//!   receive buffer grows to twice what it read plus 16 segments, plus twice the growth
//!   (Linux's formula), up to `TcpConfig::rcvbuf_max` (tcp_rmem[2]); the window follows the
//!   buffer. The window scale is chosen for that bound at the handshake. The receiver's RTT is
//!   the least time a window takes to arrive, or the echoed timestamp's when it ticks.
//! - Send: the send buffer grows to twice the congestion window, up to
//!   `TcpConfig::sndbuf_max` (tcp_wmem[2]), so the window is never starved by the buffer.
//!
//! Either stops once the application sets SO_RCVBUF or SO_SNDBUF (Linux's buffer locks).

use super::connection::Connection;
use crate::time::Instant;
use std::time::Duration;
use wire::TcpRepr;

/// Linux's TCP_INIT_CWND: the first measure of what the application reads per RTT is at most
/// this many segments (tcp_init_buffer_space).
const INIT_SEGMENTS: u32 = 10;

impl Connection {
    /// The connection is established: the first measure starts (tcp_init_buffer_space).
    pub(crate) fn init_rcv_space(&mut self, now: Instant) {
        let window = self.rcv.adv.since(self.rcv.nxt).max(self.rcv.buf.free() as u32);
        self.rcv.space = window.min(INIT_SEGMENTS * self.rcv.our_mss).max(1);
        self.rcv.space_seq = self.copied_seq();
        self.rcv.space_at = now;
    }

    /// An in-order segment of `len` bytes arrived: the receiver's RTT (Linux's
    /// tcp_rcv_rtt_measure and tcp_rcv_rtt_measure_ts).
    pub(crate) fn rcv_rtt_measure(&mut self, now: Instant, repr: &TcpRepr, len: usize) {
        // A window's worth: the time from announcing a window to receiving its end.
        match self.rcv.rtt_at {
            Some(at) if self.rcv.nxt >= self.rcv.rtt_seq => {
                self.rcv_rtt_update(now.saturating_since(at), true);
                self.new_rtt_measure(now);
            }
            Some(_) => {}
            None => self.new_rtt_measure(now),
        }
        // The echoed timestamp, once per TSecr, on a full segment.
        if let (Some(ts), Some((_, tsecr))) = (self.ts, repr.options.timestamp) {
            if tsecr != 0 && tsecr != self.rcv.rtt_tsecr && len as u32 >= self.rcv.mss {
                self.rcv.rtt_tsecr = tsecr;
                if let Some(rtt) = ts.rtt(tsecr, now).filter(|r| !r.is_zero()) {
                    self.rcv_rtt_update(rtt, false);
                }
            }
        }
    }

    fn new_rtt_measure(&mut self, now: Instant) {
        self.rcv.rtt_seq = self.rcv.nxt + self.rcv.adv.since(self.rcv.nxt).max(1);
        self.rcv.rtt_at = Some(now);
    }

    /// Linux's tcp_rcv_rtt_update: a smaller sample is taken at once; a larger one moves a
    /// timestamp estimate by an eighth and is ignored from a window measurement (a stalled
    /// sender would inflate it).
    fn rcv_rtt_update(&mut self, sample: Duration, window_dependent: bool) {
        let sample = sample.max(Duration::from_micros(1));
        self.rcv.rtt = match self.rcv.rtt {
            Some(old) if sample >= old => {
                if window_dependent {
                    return;
                }
                Some(old - old / 8 + sample / 8)
            }
            _ => Some(sample),
        };
    }

    /// Linux's tcp_rcv_space_adjust, at each in-order arrival: once per receiver RTT, grows the
    /// receive buffer when the application read more than in the last measure.
    pub(crate) fn rcv_space_adjust(&mut self, now: Instant) {
        let Some(rtt) = self.rcv.rtt else { return };
        if now.saturating_since(self.rcv.space_at) < rtt {
            return;
        }
        let copied = self.copied_seq().since(self.rcv.space_seq);
        if copied > self.rcv.space {
            if !self.options.rcvbuf_locked {
                let space = u64::from(self.rcv.space.max(1));
                let mut window = 2 * u64::from(copied) + 16 * u64::from(self.rcv.our_mss);
                let grow = window * (u64::from(copied) - space) / space;
                window += 2 * grow;
                let rcvbuf = window.min(self.config.rcvbuf_max as u64) as usize;
                if rcvbuf > self.rcv.rcvbuf {
                    let before = self.advertisable_window();
                    self.rcv.rcvbuf = rcvbuf;
                    self.rcv.limit = rcvbuf + self.rcv.slack as usize;
                    self.settle_recv_limit();
                    self.info.rcvbuf_grows += 1;
                    self.maybe_window_update(before);
                }
            }
            self.rcv.space = copied;
        }
        self.rcv.space_seq = self.copied_seq();
        self.rcv.space_at = now;
    }

    /// Linux's tcp_sndbuf_expand after the congestion window grew: the send buffer holds twice
    /// the window (at least the initial window's worth), up to the bound, unless locked.
    pub(crate) fn expand_sndbuf(&mut self) {
        if self.options.sndbuf_locked {
            return;
        }
        let want = (2 * u64::from(self.cc.window())).min(self.config.sndbuf_max as u64) as usize;
        if want > self.snd.buf.limit() {
            self.snd.buf.set_limit(want);
            self.info.sndbuf_grows += 1;
        }
    }
}
