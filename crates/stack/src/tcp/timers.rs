//! What time does: retransmission timeout with backoff and retry limits (tcp_retries2,
//! tcp_syn_retries, tcp_synack_retries), persist probes, delayed ACK, keepalive, TIME_WAIT and
//! the FIN_WAIT_2 timeout, and giving back buffers that went idle (connection.rs).

use super::connection::{Connection, Timer};
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
        // The probe first: armed no later than the RTO, it replaces an RTO due at the same time.
        if due(self.timers[Timer::Rack], now) {
            self.timers[Timer::Rack] = None;
            self.on_rack_timeout(now);
        }
        if due(self.timers[Timer::Retransmit], now) {
            self.timers[Timer::Retransmit] = None;
            self.on_retransmission_timeout(now);
        }
        if due(self.timers[Timer::Persist], now) {
            self.timers[Timer::Persist] = None;
            self.on_persist_timeout(now);
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
        if self.passive && self.state == State::SynReceived && self.options.defer_accept > 0 {
            self.on_deferred_synack_timeout(now, limit);
            return;
        }
        let elapsed = now.saturating_since(self.loss.retrans_stamp);
        let user_timeout = self.user_timeout();
        // The peer shrank its window to zero under our data: the retransmissions are window
        // probes, and as Linux does the connection lives while the peer answers within rto_max
        // (tcp_rtx_probe0_timed_out), or until TCP_USER_TIMEOUT since the first retransmission.
        let zero_window = self.state.is_synchronized() && self.snd.wnd == 0 && !self.orphan;
        let out_of_retries = if zero_window {
            now.saturating_since(self.last_recv) > self.config.rto_max
                || user_timeout.is_some_and(|t| self.loss.retries > 0 && elapsed > t)
        } else if self.state.is_synchronized() {
            // Linux counts tcp_retries2 as time: what that many doublings from the minimum
            // RTO add up to (924.6 s for 15), so long RTTs give up after fewer retries.
            // TCP_USER_TIMEOUT replaces that time (retransmits_timed_out).
            let timeout =
                user_timeout.unwrap_or_else(|| retries_timeout(limit, self.config.rto_min, self.config.rto_max));
            self.loss.retries > 0 && elapsed >= timeout
        } else {
            // A handshake gives up after its retry count, or TCP_USER_TIMEOUT after the first
            // SYN (tcp_write_timeout checks both).
            self.loss.retries >= limit || user_timeout.is_some_and(|t| self.loss.retries > 0 && elapsed >= t)
        };
        if out_of_retries {
            if self.state == State::SynReceived && self.passive {
                self.fail(None);
            } else {
                self.fail(Some(self.timeout_error()));
            }
            return;
        }
        self.on_retransmission_loss();
    }

    /// TCP_USER_TIMEOUT where it applies: not to a passive handshake, which Linux keeps as a
    /// request socket under the listener's SYN-ACK timer alone (reqsk_timer_handler).
    fn user_timeout(&self) -> Option<Duration> {
        let request = self.passive && self.state == State::SynReceived;
        self.options.user_timeout.filter(|_| !request)
    }

    /// The retransmission timer's next deadline: the backed-off RTO, clamped once
    /// retransmissions began so that TCP_USER_TIMEOUT aborts on time (Linux's
    /// tcp_clamp_rto_to_user_timeout: a timeout already past fires one millisecond later).
    pub(crate) fn retransmit_deadline(&self, now: Instant) -> Instant {
        let rto = now + self.rtt.backed_off(self.loss.backoff);
        match self.user_timeout() {
            Some(t) if self.loss.retries > 0 => {
                let end = self.loss.retrans_stamp + t;
                if end <= now {
                    now + Duration::from_millis(1)
                } else {
                    rto.min(end)
                }
            }
            _ => rto,
        }
    }

    /// The persist timer's next deadline `when` from now, clamped to what is left of
    /// TCP_USER_TIMEOUT since the first probe, but at least 2 ms (Linux's
    /// tcp_clamp_probe0_to_user_timeout and TCP_TIMEOUT_MIN).
    pub(crate) fn clamp_probe_to_user_timeout(&self, now: Instant, when: Duration) -> Duration {
        match (self.options.user_timeout, self.probes_since) {
            (Some(t), Some(since)) => {
                let left = t.saturating_sub(now.saturating_since(since)).max(Duration::from_millis(2));
                when.min(left)
            }
            _ => when,
        }
    }

    fn on_persist_timeout(&mut self, now: Instant) {
        if !self.state.is_synchronized() || self.unsent() == 0 {
            self.probes_since = None;
            return;
        }
        // TCP_USER_TIMEOUT bounds a zero-window episode even while the peer answers every
        // probe (Linux's tcp_probe_timer: icsk_probes_tstamp is set at the first probe).
        match (self.probes_since, self.options.user_timeout) {
            (None, _) => self.probes_since = Some(now),
            (Some(since), Some(t)) if now.saturating_since(since) >= t => {
                self.fail(Some(self.timeout_error()));
                return;
            }
            _ => {}
        }
        if self.probes >= self.config.retries2 {
            self.fail(Some(self.timeout_error()));
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
        // With TCP_USER_TIMEOUT, keepalive gives up once the peer has been silent that long
        // and at least one probe went unanswered, whatever TCP_KEEPCNT says
        // (tcp_keepalive_timer).
        let given_up = match self.options.user_timeout {
            Some(t) => idle >= t && self.keep_probes > 0,
            None => self.keep_probes >= self.options.keep_count,
        };
        if given_up {
            self.reset(Some(self.timeout_error()));
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
