//! What time does: retransmission timeout with backoff and retry limits (tcp_retries2,
//! tcp_syn_retries, tcp_synack_retries), persist probes, delayed ACK, keepalive, TIME_WAIT and
//! the FIN_WAIT_2 timeout, and giving back buffers that went idle (connection.rs).

use super::connection::{Connection, Timer};
use super::error::TcpError;
use super::state::State;
use crate::time::Instant;
use std::time::Duration;

/// Linux's retransmits_timed_out: how long `boundary` retransmissions take when the RTO starts
/// at `base` and doubles up to `max`.
pub(crate) fn retries_timeout(boundary: u32, base: Duration, max: Duration) -> Duration {
    let base_ms = base.as_millis().max(1) as u64;
    let thresh = (max.as_millis() as u64 / base_ms).max(1).ilog2();
    let ms = if boundary <= thresh {
        ((2u64 << boundary) - 1) * base_ms
    } else {
        ((2u64 << thresh) - 1) * base_ms + u64::from(boundary - thresh) * max.as_millis() as u64
    };
    Duration::from_millis(ms)
}

fn due(at: Option<Instant>, now: Instant) -> bool {
    at.is_some_and(|t| t <= now)
}

impl Connection {
    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if due(self.timers[Timer::Close], now) {
            self.timers[Timer::Close] = None;
            match self.state {
                State::TimeWait => {
                    self.enter_closed();
                    self.arrived();
                }
                State::FinWait2 => self.reset(None),
                _ => {}
            }
        }
        if due(self.timers[Timer::Retransmit], now) {
            self.timers[Timer::Retransmit] = None;
            self.on_retransmission_timeout(now);
        }
        if due(self.timers[Timer::Persist], now) {
            self.timers[Timer::Persist] = None;
            self.on_persist_timeout();
        }
        if due(self.timers[Timer::DelayedAck], now) {
            self.timers[Timer::DelayedAck] = None;
            self.ack.now = true;
        }
        if due(self.timers[Timer::Keepalive], now) {
            self.timers[Timer::Keepalive] = None;
            self.on_keepalive_timeout(now);
        }
        if due(self.timers[Timer::Release], now) {
            self.timers[Timer::Release] = None;
            self.on_release_timeout(now);
        }
    }

    fn on_retransmission_timeout(&mut self, now: Instant) {
        let limit = match self.state {
            State::SynSent => self.config.syn_retries,
            State::SynReceived if self.passive => self.config.synack_retries,
            State::Closed | State::Listen | State::TimeWait => return,
            _ => self.config.retries2,
        };
        if self.snd.max == self.snd.una {
            return;
        }
        if self.loss.retries == 0 {
            // The episode started when the timer was armed (the head's last transmission).
            self.loss.retrans_stamp = now - self.rtt.backed_off(self.loss.backoff);
        }
        // The peer shrank its window to zero under our data: the retransmissions are window
        // probes, and as Linux does the connection lives while the peer answers within rto_max.
        let zero_window = self.state.is_synchronized() && self.snd.wnd == 0 && !self.orphan;
        let out_of_retries = if zero_window {
            now.saturating_since(self.last_recv) > self.config.rto_max
        } else if self.state.is_synchronized() {
            // Linux counts tcp_retries2 as time: what that many doublings from the minimum
            // RTO add up to (924.6 s for 15), so long RTTs give up after fewer retries.
            let timeout = retries_timeout(limit, self.config.rto_min, self.config.rto_max);
            self.loss.retries > 0 && now.saturating_since(self.loss.retrans_stamp) >= timeout
        } else {
            self.loss.retries >= limit
        };
        if out_of_retries {
            if self.state == State::SynReceived && self.passive {
                self.fail(None);
            } else {
                self.fail(Some(TcpError::TimedOut));
            }
            return;
        }
        self.on_retransmission_loss();
    }

    fn on_persist_timeout(&mut self) {
        if !self.state.is_synchronized() || self.unsent() == 0 {
            return;
        }
        if self.probes >= self.config.retries2 {
            self.fail(Some(TcpError::TimedOut));
            return;
        }
        self.probes += 1;
        self.persist_backoff += 1;
        if self.snd.wnd > 0 {
            self.force_send = true;
        } else {
            self.ack.send_probe = true;
            self.info.window_probes += 1;
        }
    }

    fn on_keepalive_timeout(&mut self, now: Instant) {
        if !self.options.keepalive
            || !matches!(self.state, State::Established | State::CloseWait | State::FinWait2 | State::FinWait1)
        {
            return;
        }
        let idle = now.saturating_since(self.last_recv);
        if self.snd.max != self.snd.una || self.unsent() > 0 {
            // Data in flight has its own timer.
            self.timers[Timer::Keepalive] = Some(now + self.options.keep_idle);
            return;
        }
        if self.keep_probes == 0 && idle < self.options.keep_idle {
            self.timers[Timer::Keepalive] = Some(self.last_recv + self.options.keep_idle);
            return;
        }
        if self.keep_probes >= self.options.keep_count {
            self.reset(Some(TcpError::TimedOut));
            return;
        }
        self.keep_probes += 1;
        self.ack.send_probe = true;
        self.info.keepalive_probes += 1;
        self.timers[Timer::Keepalive] = Some(now + self.options.keep_interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries2_of_15_is_linux_924_6_seconds() {
        let t = retries_timeout(15, Duration::from_millis(200), Duration::from_secs(120));
        assert_eq!(t, Duration::from_millis(924_600));
        assert_eq!(
            retries_timeout(4, Duration::from_millis(200), Duration::from_secs(120)),
            Duration::from_millis(6_200)
        );
    }
}
