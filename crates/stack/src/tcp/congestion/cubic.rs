//! CUBIC (RFC 9438, after Linux's tcp_cubic.c, with HyStart++ of RFC 9406 in place of
//! Linux's HyStart to end the initial slow start: hystart.rs): after a loss the window grows
//! along a cubic function of the time since, W(t) = C (t - K)^3 + W_max, concave up to the
//! window the loss happened at and convex beyond, with a Reno-friendly lower bound (the window
//! Reno with CUBIC's β would have), fast convergence (a flow whose losses come at smaller
//! windows gives up more) and β = 0.7. Slow start, fast recovery and the timeout follow the
//! connection's bookkeeping as NewReno does. Windows are kept in bytes (as f64 inside, for the
//! fractions the cubic function gives).

use super::hystart::{HyStart, Phase, CSS_GROWTH_DIVISOR};
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
    /// The window just before the last loss (RFC 9438's cwnd_prior): once the Reno-friendly
    /// estimate reaches it, the estimate grows by one segment per RTT, as Reno's (4.3).
    prior: f64,
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
    /// HyStart++ while the initial slow start lasts.
    hystart: HyStart,
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
            prior: 0.0,
            epoch_start: None,
            k: 0.0,
            origin: 0.0,
            w_est: 0.0,
            delay_min: None,
            hystart: HyStart::default(),
        }
    }

    /// A loss: W_max with fast convergence, ssthresh = β cwnd (bictcp_recalc_ssthresh).
    fn on_loss(&mut self, mss: u32) {
        self.hystart.finish();
        self.epoch_start = None;
        self.prior = self.cwnd;
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
        let t = now.saturating_since(start).as_secs_f64();
        let rtt = self.delay_min.unwrap_or_default().as_secs_f64();
        // W_cubic (equation 1), in bytes.
        let w_cubic = |t: f64| {
            let dt = t - self.k;
            self.origin + C * dt * dt * dt * seg
        };
        // The target one RTT ahead, within [cwnd, 1.5 cwnd] (4.2).
        let target = w_cubic(t + rtt).clamp(self.cwnd, 1.5 * self.cwnd);
        let acked = f64::from(acked);
        // The Reno-friendly estimate (equation 4), growing as Reno's once past cwnd_prior.
        let alpha = if self.w_est >= self.prior { 1.0 } else { ALPHA };
        self.w_est += alpha * seg * acked / self.cwnd;
        if w_cubic(t) < self.w_est {
            // Reno-friendly region (4.3): at least what Reno would have.
            self.cwnd = self.w_est.max(self.cwnd);
        } else {
            // Concave or convex region (4.4, 4.5): close the gap to the target per ACK.
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

    fn on_ack_sample(&mut self, ack: u32, snd_nxt: u32, rtt: Option<Duration>) {
        if self.ssthresh == u32::MAX && self.hystart.on_ack(ack, snd_nxt, rtt) == Phase::Done {
            // CSS ran its rounds: congestion avoidance from here (RFC 9406 4.2).
            self.ssthresh = self.window();
        }
    }

    fn on_ack(&mut self, now: Instant, acked: u32, mss: u32) {
        if self.window() < self.ssthresh {
            // Slow start, with RFC 3465's limit of L = 2 segments per ACK (as NewReno here);
            // HyStart++'s conservative slow start grows a quarter as fast.
            let mut grow = acked.min(2 * mss);
            if let (u32::MAX, Phase::Css { .. }) = (self.ssthresh, self.hystart.phase) {
                grow /= CSS_GROWTH_DIVISOR;
            }
            self.cwnd += f64::from(grow);
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
        self.prior = 0.0;
        if ssthresh != u32::MAX {
            self.hystart.finish();
        }
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
        // α = 0.53 segments per RTT until the window before the loss (10 segments, about 6
        // RTTs), then one per RTT as Reno's (RFC 9438 4.3): about 97 in 100 RTTs.
        let grown = (c.window() - start) / MSS;
        assert!((92..=99).contains(&grown), "Reno-friendly growth {grown}");
    }

    /// RFC 9438 over simulated time: after a loss at W_max, one window of ACKs per RTT, all
    /// of a round at one instant. The window follows RFC 9438's rules written out here in
    /// segments (4.2 to 4.5: W_cubic(t) = C (t - K)^3 + W_max with K = cbrt((W_max -
    /// cwnd_epoch) / C), the target W_cubic(t + RTT) within [cwnd, 1.5 cwnd] approached by
    /// (target - cwnd) / cwnd per ACK, the Reno-friendly W_est growing by α_cubic / cwnd per
    /// ACK, 1 / cwnd past cwnd_prior), and stays between the closed forms W_cubic(t) and
    /// W_cubic(t + RTT) wherever the cubic function leads.
    #[test]
    fn the_window_follows_rfc_9438_formulas_over_simulated_time() {
        for (w_max, rtt_ms) in [(100.0f64, 100u64), (1000.0, 20), (40.0, 2), (300.0, 250), (20.0, 1)] {
            let mut c = Cubic::new(w_max as u32, MSS);
            c.ssthresh = 0;
            c.on_rtt(Duration::from_millis(rtt_ms));
            c.on_fast_retransmit(0, MSS);
            c.on_recovery_exit(w_max as u32 * MSS, MSS);
            let epoch = BETA * w_max;
            assert_eq!(c.window(), epoch as u32 * MSS, "cwnd_epoch = β W_max");
            let k = ((w_max - epoch) / C).cbrt();
            let rtt = rtt_ms as f64 / 1000.0;
            let w_cubic = |t: f64| C * (t - k).powi(3) + w_max;
            let (mut cwnd, mut w_est) = (epoch, epoch);
            let (mut cubic_rounds, mut friendly_rounds) = (0, 0);
            for round in 0..(3.0 * k / rtt) as u64 {
                let t = round as f64 * rtt;
                let acks = c.window().div_ceil(MSS);
                for _ in 0..acks {
                    c.on_ack(at(round * rtt_ms), MSS, MSS);
                    let target = w_cubic(t + rtt).clamp(cwnd, 1.5 * cwnd);
                    w_est += if w_est >= w_max { 1.0 } else { ALPHA } / cwnd;
                    if w_cubic(t) < w_est {
                        cwnd = w_est.max(cwnd);
                    } else {
                        cwnd += (target - cwnd) / cwnd;
                    }
                }
                let ours = c.cwnd / f64::from(MSS);
                assert!(
                    (ours - cwnd).abs() < 1e-6 * cwnd,
                    "W_max {w_max}, RTT {rtt_ms} ms, t {t:.3} s: window {ours:.3}, RFC 9438 {cwnd:.3}"
                );
                if w_cubic(t) >= w_est {
                    cubic_rounds += 1;
                    assert!(
                        ours >= w_cubic(t) - 1.0 && ours <= w_cubic(t + rtt).min(1.5 * ours) + 1e-9,
                        "W_max {w_max}, t {t:.3}: {ours:.2} outside [{:.2}, {:.2}]",
                        w_cubic(t),
                        w_cubic(t + rtt)
                    );
                } else {
                    friendly_rounds += 1;
                }
            }
            if rtt_ms >= 20 {
                assert!(cubic_rounds > 0, "W_max {w_max}, RTT {rtt_ms} ms: the cubic region was reached");
            } else {
                assert!(friendly_rounds > 0, "a short RTT spends time in the Reno-friendly region");
            }
        }
    }

    /// HyStart++ in the initial slow start: rounds at a steady RTT double the window; a
    /// round whose RTT rose by the threshold slows growth to a quarter (CSS), and five CSS
    /// rounds end slow start with ssthresh at the window reached.
    #[test]
    fn hystart_plus_plus_leaves_slow_start_when_the_rtt_rises() {
        let mut c = Cubic::new(10, MSS);
        let (mut acked, mut t) = (0u32, 0u64);
        let mut round = |c: &mut Cubic, rtt_ms: u64| {
            let w = c.window();
            let snd_nxt = acked.wrapping_add(w);
            let mut n = 0;
            while n < w {
                acked = acked.wrapping_add(MSS);
                c.on_ack_sample(acked, snd_nxt.wrapping_add(n + MSS), Some(Duration::from_millis(rtt_ms)));
                c.on_ack(at(t), MSS, MSS);
                n += MSS;
            }
            t += rtt_ms;
            c.window() / MSS
        };
        assert_eq!(round(&mut c, 50), 20);
        assert_eq!(round(&mut c, 50), 40);
        assert_eq!(round(&mut c, 51), 80, "a rise under the threshold (6.25 ms) changes nothing");
        // 58 ms >= 51 + 6.4: CSS from the round's eighth sample, a quarter of the growth.
        let w = round(&mut c, 58);
        assert!((100..120).contains(&w), "{w}");
        assert_eq!(c.ssthresh(), u32::MAX);
        let mut last = w;
        for _ in 0..4 {
            let w = round(&mut c, 58);
            assert!(w <= last * 3 / 2 && w > last, "CSS grows by a quarter per round: {last} -> {w}");
            last = w;
        }
        // The fifth CSS round ends slow start.
        round(&mut c, 58);
        assert!(c.ssthresh() != u32::MAX && c.ssthresh() <= c.window(), "{} {}", c.ssthresh(), c.window());
    }

    #[test]
    fn timeout_forgets_w_max_and_restarts_from_one_segment() {
        let mut c = Cubic::new(50, MSS);
        c.on_timeout(0, MSS);
        assert_eq!((c.window(), c.ssthresh(), c.w_max), (MSS, 35 * MSS, 0.0));
    }
}
