//! CUBIC (RFC 9438, after Linux's tcp_cubic.c without HyStart): after a loss the window grows
//! along a cubic function of the time since, W(t) = C (t - K)^3 + W_max, concave up to the
//! window the loss happened at and convex beyond, with a Reno-friendly lower bound (the window
//! Reno with CUBIC's β would have), fast convergence (a flow whose losses come at smaller
//! windows gives up more) and β = 0.7. Slow start, fast recovery and the timeout follow the
//! connection's bookkeeping as NewReno does. Windows are kept in bytes (as f64 inside, for the
//! fractions the cubic function gives).

use super::CongestionControl;
use crate::time::Instant;
use std::time::Duration;

/// β_cubic: the window kept after a loss (Linux's 717/1024).
const BETA: f64 = 0.7;
/// C: the cubic function's scale, in segments per second cubed (Linux's bic_scale 41).
const C: f64 = 0.4;
/// α_cubic: the Reno-friendly region's growth per RTT, 3 (1 - β) / (1 + β) (RFC 9438 4.3).
const ALPHA: f64 = 3.0 * (1.0 - BETA) / (1.0 + BETA);

/// CUBIC's window state.
#[derive(Debug, Clone)]
pub struct Cubic {
    cwnd: f64,
    ssthresh: u32,
    initial: u32,
    /// The window at the last loss (after fast convergence), bytes; 0 after a timeout.
    w_max: f64,
    /// When the current congestion-avoidance epoch began.
    epoch_start: Option<Instant>,
    /// Seconds from the epoch's start until the cubic function reaches its origin.
    k: f64,
    /// The window the cubic function plateaus at, bytes.
    origin: f64,
    /// The Reno-friendly estimate, bytes.
    w_est: f64,
    /// The smallest RTT seen (Linux's delay_min): the cubic function looks one RTT ahead.
    delay_min: Option<Duration>,
}

impl Cubic {
    /// Initial window of `initial_segments` full segments; ssthresh starts unbounded.
    pub fn new(initial_segments: u32, mss: u32) -> Cubic {
        let initial = initial_segments.max(1).saturating_mul(mss);
        Cubic {
            cwnd: f64::from(initial),
            ssthresh: u32::MAX,
            initial,
            w_max: 0.0,
            epoch_start: None,
            k: 0.0,
            origin: 0.0,
            w_est: 0.0,
            delay_min: None,
        }
    }

    /// A loss: W_max with fast convergence, ssthresh = β cwnd (bictcp_recalc_ssthresh).
    fn on_loss(&mut self, mss: u32) {
        self.epoch_start = None;
        self.w_max = if self.cwnd < self.w_max { self.cwnd * (1.0 + BETA) / 2.0 } else { self.cwnd };
        self.ssthresh = ((self.cwnd * BETA) as u32).max(2 * mss);
    }

    /// Congestion avoidance for `acked` bytes (RFC 9438 4.2 to 4.4).
    fn avoid(&mut self, now: Instant, acked: u32, mss: u32) {
        let seg = f64::from(mss);
        if self.epoch_start.is_none() {
            self.epoch_start = Some(now);
            self.w_est = self.cwnd;
            if self.cwnd < self.w_max {
                self.k = ((self.w_max - self.cwnd) / seg / C).cbrt();
                self.origin = self.w_max;
            } else {
                self.k = 0.0;
                self.origin = self.cwnd;
            }
        }
        let start = self.epoch_start.unwrap_or(now);
        let t = now.saturating_since(start) + self.delay_min.unwrap_or_default();
        let dt = t.as_secs_f64() - self.k;
        let target = (self.origin + C * dt * dt * dt * seg).clamp(self.cwnd, 1.5 * self.cwnd);
        let acked = f64::from(acked);
        self.w_est += ALPHA * seg * acked / self.cwnd;
        if target < self.w_est {
            // Reno-friendly region: at least what Reno would have.
            self.cwnd = self.w_est.max(self.cwnd);
        } else {
            self.cwnd += (target - self.cwnd) * acked / self.cwnd;
        }
    }

    fn new_epoch(&mut self) {
        self.epoch_start = None;
    }
}

impl CongestionControl for Cubic {
    fn window(&self) -> u32 {
        self.cwnd.min(f64::from(u32::MAX)) as u32
    }

    fn ssthresh(&self) -> u32 {
        self.ssthresh
    }

    fn on_rtt(&mut self, rtt: Duration) {
        if !rtt.is_zero() {
            self.delay_min = Some(self.delay_min.map_or(rtt, |d| d.min(rtt)));
        }
    }

    fn on_ack(&mut self, now: Instant, acked: u32, mss: u32) {
        if self.window() < self.ssthresh {
            // Slow start, with RFC 3465's limit of L = 2 segments per ACK (as NewReno here).
            self.cwnd += f64::from(acked.min(2 * mss));
            return;
        }
        self.avoid(now, acked, mss);
    }

    fn on_fast_retransmit(&mut self, _in_flight: u32, mss: u32) {
        self.on_loss(mss);
        self.new_epoch();
        self.cwnd = f64::from(self.ssthresh.saturating_add(3 * mss));
    }

    fn on_recovery_dup_ack(&mut self, mss: u32) {
        self.cwnd += f64::from(mss);
    }

    fn on_partial_ack(&mut self, acked: u32, mss: u32) {
        self.cwnd = (self.cwnd - f64::from(acked) + f64::from(mss)).max(f64::from(mss));
    }

    fn on_recovery_exit(&mut self, in_flight: u32, mss: u32) {
        self.cwnd = f64::from(self.ssthresh.min(in_flight.saturating_add(mss)).max(mss));
        self.new_epoch();
    }

    fn on_timeout(&mut self, _in_flight: u32, mss: u32) {
        self.on_loss(mss);
        // Linux resets CUBIC's state on entering loss (bictcp_state): the next epoch starts
        // from the window reached, with no memory of W_max.
        self.w_max = 0.0;
        self.new_epoch();
        self.cwnd = f64::from(mss);
    }

    fn on_idle_restart(&mut self, _mss: u32) {
        self.cwnd = self.cwnd.min(f64::from(self.initial));
        self.new_epoch();
    }

    fn resume(&mut self, cwnd: u32, ssthresh: u32) {
        self.cwnd = f64::from(cwnd);
        self.ssthresh = ssthresh;
        self.w_max = 0.0;
        self.new_epoch();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: u32 = 1000;

    fn at(ms: u64) -> Instant {
        Instant::from_nanos(ms * 1_000_000)
    }

    /// One window's worth of ACKs at `t` ms.
    fn ack_window(c: &mut Cubic, t: u64) {
        let w = c.window();
        let mut acked = 0;
        while acked < w {
            c.on_ack(at(t), MSS, MSS);
            acked += MSS;
        }
    }

    #[test]
    fn loss_keeps_seven_tenths_and_fast_convergence_lowers_w_max() {
        let mut c = Cubic::new(100, MSS);
        c.ssthresh = 0;
        c.on_fast_retransmit(0, MSS);
        assert_eq!(c.ssthresh(), 70 * MSS);
        assert_eq!(c.window(), 73 * MSS, "inflated by three segments during recovery");
        assert_eq!(c.w_max, f64::from(100 * MSS));
        c.on_recovery_exit(100 * MSS, MSS);
        assert_eq!(c.window(), 70 * MSS);
        // A second loss below the last W_max: W_max = cwnd (1 + β) / 2.
        c.on_fast_retransmit(0, MSS);
        assert_eq!(c.w_max, f64::from(70 * MSS) * 0.85);
        assert_eq!(c.ssthresh(), 49 * MSS);
    }

    #[test]
    fn growth_is_concave_to_w_max_then_convex() {
        let mut c = Cubic::new(100, MSS);
        c.ssthresh = 0;
        c.on_rtt(Duration::from_millis(100));
        c.on_fast_retransmit(0, MSS);
        c.on_recovery_exit(100 * MSS, MSS);
        // K = cbrt(30 / 0.4) = 4.2 s: the window plateaus near 100 segments around then.
        let mut windows = Vec::new();
        for rtt in 0..100u64 {
            ack_window(&mut c, rtt * 100);
            windows.push(c.window() / MSS);
        }
        let at_k = windows[41];
        assert!((98..=102).contains(&at_k), "near W_max at K: {at_k}");
        let early = windows[10] - windows[0];
        let plateau = windows[45] - windows[37];
        let late = windows[99] - windows[91];
        assert!(early > plateau && late > plateau, "concave then convex: {windows:?}");
        assert!(windows.windows(2).all(|w| w[1] >= w[0]), "never shrinks without loss");
    }

    #[test]
    fn reno_friendly_region_grows_at_least_like_reno_with_beta() {
        // A small window and a short RTT: the cubic function is slow, the estimate leads.
        let mut c = Cubic::new(10, MSS);
        c.ssthresh = 0;
        c.on_rtt(Duration::from_millis(1));
        c.on_fast_retransmit(0, MSS);
        c.on_recovery_exit(10 * MSS, MSS);
        let start = c.window();
        for rtt in 0..100u64 {
            ack_window(&mut c, rtt);
        }
        // α = 0.53 segments per RTT: about 53 segments in 100 RTTs.
        let grown = (c.window() - start) / MSS;
        assert!((45..=60).contains(&grown), "Reno-friendly growth {grown}");
    }

    #[test]
    fn timeout_forgets_w_max_and_restarts_from_one_segment() {
        let mut c = Cubic::new(50, MSS);
        c.on_timeout(0, MSS);
        assert_eq!((c.window(), c.ssthresh(), c.w_max), (MSS, 35 * MSS, 0.0));
    }
}
