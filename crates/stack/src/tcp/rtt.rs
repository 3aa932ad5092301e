//! The retransmission timeout of RFC 6298: smoothed RTT and its variation from samples (taken
//! per Karn's rule by the caller: never from a retransmitted segment), exponential backoff,
//! and Linux's bounds: RTO = srtt + max(4 rttvar, rto_min), at most rto_max.

use std::time::Duration;

/// RTT estimate and the RTO derived from it.
#[derive(Debug, Clone, Copy)]
pub struct RttEstimator {
    srtt: Option<Duration>,
    /// The last sample not yet handed to congestion control (HyStart++).
    last: Option<Duration>,
    /// The least sample in microseconds, u32::MAX before one (RACK's reordering window and its
    /// check of retransmissions).
    min_rtt_us: u32,
    rttvar: Duration,
    rto: Duration,
    min: Duration,
    max: Duration,
}

/// Clock granularity G of RFC 6298 (Linux's jiffy-free clock is finer; 1 ms is the wheel's).
const GRANULARITY: Duration = Duration::from_millis(1);

impl RttEstimator {
    /// No sample yet: the RTO is `initial`.
    pub fn new(initial: Duration, min: Duration, max: Duration) -> RttEstimator {
        RttEstimator {
            srtt: None,
            last: None,
            min_rtt_us: u32::MAX,
            rttvar: Duration::ZERO,
            rto: initial.clamp(min, max),
            min,
            max,
        }
    }

    /// Takes one RTT measurement.
    pub fn sample(&mut self, rtt: Duration) {
        self.note_min(rtt);
        self.last = Some(rtt);
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                let delta = srtt.abs_diff(rtt);
                self.rttvar = (self.rttvar * 3 + delta) / 4;
                self.srtt = Some((srtt * 7 + rtt) / 8);
            }
        }
        let srtt = self.srtt.unwrap_or(rtt);
        // Linux's form (tcp_set_rto: rttvar is at least tcp_rto_min): the minimum bounds the
        // variance term, not the sum, so a steady long RTT still leaves room for a delayed ACK.
        self.rto = (srtt + (self.rttvar * 4).max(GRANULARITY).max(self.min)).min(self.max);
    }

    /// Takes `rtt` into the minimum only (RACK's per-segment samples, which Karn's rule does
    /// not govern).
    pub fn note_min(&mut self, rtt: Duration) {
        let us = rtt.as_micros().min(u128::from(u32::MAX - 1)) as u32;
        self.min_rtt_us = self.min_rtt_us.min(us);
    }

    /// The sample taken since the last call, if any.
    pub fn take_last(&mut self) -> Option<Duration> {
        self.last.take()
    }

    /// The least RTT seen.
    pub fn min_rtt(&self) -> Option<Duration> {
        (self.min_rtt_us != u32::MAX).then(|| Duration::from_micros(u64::from(self.min_rtt_us)))
    }

    /// Whether a sample was taken.
    pub fn has_sample(&self) -> bool {
        self.srtt.is_some()
    }

    /// Without a sample yet, the RTO becomes `rto` (RFC 6298 5.7's 3 s after a handshake that
    /// gave none); the first sample replaces it.
    pub fn fall_back(&mut self, rto: Duration) {
        if self.srtt.is_none() {
            self.rto = rto.clamp(self.min, self.max);
        }
    }

    /// The RTO before backoff.
    pub fn rto(&self) -> Duration {
        self.rto
    }

    /// The RTO after `backoff` doublings, capped at the maximum.
    pub fn backed_off(&self, backoff: u32) -> Duration {
        self.rto.checked_mul(1u32 << backoff.min(16)).unwrap_or(self.max).min(self.max)
    }

    /// Smoothed RTT (zero before the first sample).
    pub fn srtt(&self) -> Duration {
        self.srtt.unwrap_or_default()
    }

    /// RTT variation.
    pub fn rttvar(&self) -> Duration {
        self.rttvar
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn follows_rfc6298_and_linux_bounds() {
        let mut r = RttEstimator::new(1000 * MS, 200 * MS, 120_000 * MS);
        assert_eq!(r.rto(), 1000 * MS);
        r.sample(100 * MS);
        // srtt 100, rttvar 50: 100 + 200 = 300.
        assert_eq!(r.rto(), 300 * MS);
        r.sample(100 * MS);
        // rttvar 37.5: 100 + max(150, 200) = 300 (Linux; RFC 6298 alone would give 250).
        assert_eq!(r.rto(), 300 * MS);
        for _ in 0..50 {
            r.sample(MS);
        }
        assert!(r.rto() >= 200 * MS && r.rto() < 202 * MS, "srtt + the minimum: {:?}", r.rto());
        assert_eq!(r.backed_off(3), r.rto() * 8);
        assert_eq!(r.backed_off(30), 120_000 * MS, "never above the maximum");
    }
}
