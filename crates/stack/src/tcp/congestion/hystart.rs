//! HyStart++ (RFC 9406): leaves the initial slow start before it overshoots, when the RTT of a
//! round rises by a threshold over the last round's, into Conservative Slow Start (CSS: a
//! quarter of slow start's growth) for up to five rounds, then congestion avoidance. An RTT
//! that falls back below the baseline in CSS means the rise was spurious: slow start resumes.
//! Only the first slow start of a connection uses it (RFC 9406 4.3); after a loss slow start
//! is the standard one. Sequence numbers are compared in circular order.

use std::time::Duration;

/// Samples a round needs before its RTT is compared (N_RTT_SAMPLE).
pub const N_RTT_SAMPLE: u32 = 8;
/// Bounds of the RTT rise that ends slow start (MIN_RTT_THRESH, MAX_RTT_THRESH).
pub const MIN_RTT_THRESH: Duration = Duration::from_millis(4);
pub const MAX_RTT_THRESH: Duration = Duration::from_millis(16);
/// The threshold is the last round's RTT over this (MIN_RTT_DIVISOR).
pub const MIN_RTT_DIVISOR: u32 = 8;
/// CSS grows the window by slow start's increase over this (CSS_GROWTH_DIVISOR).
pub const CSS_GROWTH_DIVISOR: u32 = 4;
/// Rounds spent in CSS before congestion avoidance (CSS_ROUNDS).
pub const CSS_ROUNDS: u32 = 5;

/// Where the initial slow start stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Standard slow start, watching the RTT.
    SlowStart,
    /// Conservative slow start since the RTT rose to `baseline`, for `rounds` rounds so far.
    Css { baseline: Duration, rounds: u32 },
    /// Slow start is over (CSS ran its rounds, or a loss ended it): the caller sets ssthresh.
    Done,
}

/// HyStart++'s state over the rounds of the initial slow start.
#[derive(Debug, Clone, Copy)]
pub struct HyStart {
    pub phase: Phase,
    /// The sequence number whose acknowledgment ends the round (windowEnd); `None` before the
    /// first ACK.
    window_end: Option<u32>,
    last_round_min: Option<Duration>,
    current_round_min: Option<Duration>,
    samples: u32,
}

impl Default for HyStart {
    fn default() -> Self {
        HyStart { phase: Phase::SlowStart, window_end: None, last_round_min: None, current_round_min: None, samples: 0 }
    }
}

/// Whether `a` is at or after `b` in circular sequence order.
fn at_or_after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) >= 0
}

impl HyStart {
    /// An ACK of the initial slow start acknowledging up to `ack`, with `snd_nxt` the next
    /// sequence number to send and `rtt` its RTT sample. Returns the phase to grow in.
    pub fn on_ack(&mut self, ack: u32, snd_nxt: u32, rtt: Option<Duration>) -> Phase {
        if self.phase == Phase::Done {
            return Phase::Done;
        }
        match self.window_end {
            None => self.window_end = Some(snd_nxt),
            Some(end) if at_or_after(ack, end) => {
                // A new round (RFC 9406 4.2): the last one's minimum is the reference.
                self.last_round_min = self.current_round_min;
                self.current_round_min = None;
                self.samples = 0;
                self.window_end = Some(snd_nxt);
                if let Phase::Css { baseline, rounds } = self.phase {
                    self.phase = if rounds + 1 >= CSS_ROUNDS {
                        Phase::Done
                    } else {
                        Phase::Css { baseline, rounds: rounds + 1 }
                    };
                    if self.phase == Phase::Done {
                        return Phase::Done;
                    }
                }
            }
            Some(_) => {}
        }
        if let Some(rtt) = rtt {
            self.current_round_min = Some(self.current_round_min.map_or(rtt, |m| m.min(rtt)));
            self.samples += 1;
        }
        if self.samples >= N_RTT_SAMPLE {
            if let (Some(current), Some(last)) = (self.current_round_min, self.last_round_min) {
                match self.phase {
                    Phase::SlowStart => {
                        let thresh = (last / MIN_RTT_DIVISOR).clamp(MIN_RTT_THRESH, MAX_RTT_THRESH);
                        if current >= last + thresh {
                            self.phase = Phase::Css { baseline: current, rounds: 0 };
                        }
                    }
                    Phase::Css { baseline, .. } if current < baseline => {
                        // The rise was spurious: back to slow start.
                        self.phase = Phase::SlowStart;
                    }
                    _ => {}
                }
            }
        }
        self.phase
    }

    /// Slow start is over (a loss, or the window reached ssthresh).
    pub fn finish(&mut self) {
        self.phase = Phase::Done;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// One round of `acks` ACKs, each acknowledging 1000 bytes, all with RTT `rtt`; the
    /// sender has `ahead` bytes past the last ACK in flight. Returns the phase after it.
    fn round(h: &mut HyStart, seq: &mut u32, acks: u32, rtt: Duration) -> Phase {
        let mut phase = h.phase;
        for _ in 0..acks {
            *seq = seq.wrapping_add(1000);
            let snd_nxt = seq.wrapping_add(acks * 1000);
            phase = h.on_ack(*seq, snd_nxt, Some(rtt));
        }
        phase
    }

    #[test]
    fn a_round_whose_rtt_rose_by_the_threshold_enters_css_and_five_rounds_end_it() {
        let mut h = HyStart::default();
        let mut seq = u32::MAX - 5_000; // across the wrap
        assert_eq!(round(&mut h, &mut seq, 10, 100 * MS), Phase::SlowStart);
        assert_eq!(round(&mut h, &mut seq, 10, 100 * MS), Phase::SlowStart);
        // Threshold: clamp(100 / 8, 4, 16) = 12.5 ms. A rise of 12 ms is not enough.
        assert_eq!(round(&mut h, &mut seq, 10, 112 * MS), Phase::SlowStart);
        // From 112 ms: 14 ms more is (threshold 14 ms).
        assert_eq!(round(&mut h, &mut seq, 10, 126 * MS), Phase::Css { baseline: 126 * MS, rounds: 0 });
        for r in 1..CSS_ROUNDS {
            assert_eq!(round(&mut h, &mut seq, 10, 130 * MS), Phase::Css { baseline: 126 * MS, rounds: r });
        }
        assert_eq!(round(&mut h, &mut seq, 10, 130 * MS), Phase::Done);
    }

    #[test]
    fn an_rtt_back_below_the_baseline_in_css_resumes_slow_start() {
        let mut h = HyStart::default();
        let mut seq = 0;
        round(&mut h, &mut seq, 10, 10 * MS);
        // Small RTTs: the threshold's floor is 4 ms.
        assert_eq!(round(&mut h, &mut seq, 10, 13 * MS), Phase::SlowStart);
        assert_eq!(round(&mut h, &mut seq, 10, 17 * MS), Phase::Css { baseline: 17 * MS, rounds: 0 });
        assert_eq!(round(&mut h, &mut seq, 10, 16 * MS), Phase::SlowStart);
    }

    #[test]
    fn fewer_than_eight_samples_decide_nothing() {
        let mut h = HyStart::default();
        let mut seq = 0;
        round(&mut h, &mut seq, 7, 10 * MS);
        assert_eq!(round(&mut h, &mut seq, 7, 50 * MS), Phase::SlowStart);
        let mut h = HyStart::default();
        // Large RTTs: the threshold's ceiling is 16 ms.
        round(&mut h, &mut seq, 8, 400 * MS);
        assert_eq!(round(&mut h, &mut seq, 8, 415 * MS), Phase::SlowStart);
        assert_eq!(round(&mut h, &mut seq, 8, 431 * MS), Phase::Css { baseline: 431 * MS, rounds: 0 });
    }
}
