//! NewReno: slow start, congestion avoidance (RFC 5681) and fast recovery with partial ACKs
//! (RFC 6582).

use super::CongestionControl;
use crate::time::Instant;

/// NewReno's window state.
#[derive(Debug, Clone)]
pub struct NewReno {
    cwnd: u32,
    ssthresh: u32,
    initial: u32,
    /// Bytes acknowledged in congestion avoidance not yet turned into window (RFC 5681 3.1's
    /// byte counting: one MSS per window acknowledged).
    acked_in_ca: u32,
}

impl NewReno {
    /// Initial window of `initial_segments` full segments; ssthresh starts unbounded.
    pub fn new(initial_segments: u32, mss: u32) -> NewReno {
        let initial = initial_segments.max(1).saturating_mul(mss);
        NewReno { cwnd: initial, ssthresh: u32::MAX, initial, acked_in_ca: 0 }
    }
}

impl CongestionControl for NewReno {
    fn window(&self) -> u32 {
        self.cwnd
    }

    fn ssthresh(&self) -> u32 {
        self.ssthresh
    }

    fn on_ack(&mut self, _now: Instant, acked: u32, mss: u32) {
        if self.cwnd < self.ssthresh {
            // Slow start, with RFC 3465's limit of L = 2 segments per ACK.
            self.cwnd = self.cwnd.saturating_add(acked.min(2 * mss));
        } else {
            self.acked_in_ca = self.acked_in_ca.saturating_add(acked);
            if self.acked_in_ca >= self.cwnd {
                self.acked_in_ca -= self.cwnd;
                self.cwnd = self.cwnd.saturating_add(mss);
            }
        }
    }

    fn on_fast_retransmit(&mut self, in_flight: u32, mss: u32) {
        self.ssthresh = (in_flight / 2).max(2 * mss);
        self.cwnd = self.ssthresh.saturating_add(3 * mss);
    }

    fn on_recovery_dup_ack(&mut self, mss: u32) {
        self.cwnd = self.cwnd.saturating_add(mss);
    }

    fn on_partial_ack(&mut self, acked: u32, mss: u32) {
        self.cwnd = self.cwnd.saturating_sub(acked).saturating_add(mss).max(mss);
    }

    fn on_recovery_exit(&mut self, in_flight: u32, mss: u32) {
        self.cwnd = self.ssthresh.min(in_flight.saturating_add(mss)).max(mss);
        self.acked_in_ca = 0;
    }

    fn on_timeout(&mut self, in_flight: u32, mss: u32) {
        self.ssthresh = (in_flight / 2).max(2 * mss);
        self.cwnd = mss;
        self.acked_in_ca = 0;
    }

    fn resume(&mut self, cwnd: u32, ssthresh: u32) {
        self.cwnd = cwnd;
        self.ssthresh = ssthresh;
        self.acked_in_ca = 0;
    }

    fn on_idle_restart(&mut self, _mss: u32) {
        self.cwnd = self.cwnd.min(self.initial);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: u32 = 1000;

    #[test]
    fn slow_start_then_avoidance_then_halving() {
        let mut c = NewReno::new(10, MSS);
        assert_eq!(c.window(), 10 * MSS);
        c.on_ack(Instant::ZERO, MSS, MSS);
        assert_eq!(c.window(), 11 * MSS, "slow start: one MSS per MSS acked");
        c.on_fast_retransmit(20 * MSS, MSS);
        assert_eq!((c.ssthresh(), c.window()), (10 * MSS, 13 * MSS));
        c.on_recovery_dup_ack(MSS);
        assert_eq!(c.window(), 14 * MSS);
        c.on_recovery_exit(20 * MSS, MSS);
        assert_eq!(c.window(), 10 * MSS);
        for _ in 0..10 {
            c.on_ack(Instant::ZERO, MSS, MSS);
        }
        assert_eq!(c.window(), 11 * MSS, "avoidance: one MSS per window");
        c.on_timeout(8 * MSS, MSS);
        assert_eq!((c.ssthresh(), c.window()), (4 * MSS, MSS));
    }
}
