//! The ACK policy: when to acknowledge (at once, or delayed up to 40 ms; quick ACKs at the start
//! and after idle; one duplicate ACK per out-of-order segment; every second full segment), the
//! rate limits on ACKs to unacceptable segments (RFC 5961 challenge ACKs, Linux's
//! tcp_oow_rate_limited), and window updates after the application reads.

use super::connection::{Connection, Timer};
use crate::time::Instant;
use std::time::Duration;

/// The most duplicate ACKs owed at once (a burst of out-of-order segments in one batch).
const MAX_DUPACKS_OWED: u32 = 64;
/// Least time between ACKs to out-of-window segments without data (tcp_invalid_ratelimit).
const OOW_ACK_INTERVAL: Duration = Duration::from_millis(500);

impl Connection {
    /// RFC 5961 challenge ACK, rate-limited per second.
    pub(crate) fn challenge_ack(&mut self, now: Instant) {
        if now.saturating_since(self.ack.challenge_start) >= Duration::from_secs(1) {
            self.ack.challenge_start = now;
            self.ack.challenge_count = 0;
        }
        if self.ack.challenge_count < self.config.challenge_ack_limit {
            self.ack.challenge_count += 1;
            self.info.challenge_acks += 1;
            self.ack.now = true;
        }
    }

    /// An unacceptable segment is answered, but one without data or FIN (`bare`) at most once
    /// per 500 ms (Linux's tcp_oow_rate_limited), so two confused ends cannot ACK each other
    /// in a loop.
    pub(crate) fn ack_unacceptable(&mut self, now: Instant, bare: bool) {
        let limited = bare && self.ack.oow_at.is_some_and(|t| now.saturating_since(t) < OOW_ACK_INTERVAL);
        if !limited {
            self.ack.oow_at = Some(now);
            self.ack.now = true;
        }
    }

    /// `n` bytes arrived in order (`holes`: a hole was filled or is still open; `idle`: the
    /// receiver was idle longer than an RTO, which brings quick ACKs back, as Linux's
    /// tcp_event_data_recv does): acknowledge at once, or arm the delayed ACK.
    pub(crate) fn ack_in_order(&mut self, now: Instant, n: u32, holes: bool, idle: bool) {
        // The ACK now moves: the duplicates owed for the old point are moot.
        self.ack.dupacks_owed = 0;
        self.ack.unacked_bytes = self.ack.unacked_bytes.saturating_add(n);
        if idle && self.ack.quickacks == 0 {
            self.ack.quickacks = self.config.quickacks;
        }
        if holes {
            self.ack.now = true;
        } else if self.ack.quickacks > 0 {
            self.ack.quickacks -= 1;
            self.ack.now = true;
        } else if self.ack.unacked_bytes > self.rcv.mss {
            self.ack.now = true;
        } else if self.timers[Timer::DelayedAck].is_none() {
            self.timers[Timer::DelayedAck] = Some(now + self.config.delayed_ack);
        }
    }

    /// A segment was stored past a hole: a duplicate ACK of its own is owed.
    pub(crate) fn ack_out_of_order(&mut self) {
        self.ack.now = true;
        self.ack.dupacks_owed = (self.ack.dupacks_owed + 1).min(MAX_DUPACKS_OWED);
    }

    /// A segment carrying our ACK went out: nothing is owed any more.
    pub(crate) fn ack_sent(&mut self) {
        self.rcv.wup = self.rcv.nxt;
        self.ack.now = false;
        self.timers[Timer::DelayedAck] = None;
        self.ack.unacked_bytes = 0;
    }

    /// After the application read: announce a window that opened enough (Linux's
    /// tcp_cleanup_rbuf rule: the new window is at least twice the one the peer knows).
    pub(crate) fn maybe_window_update(&mut self, _before: u32) {
        if !self.state.can_receive() {
            return;
        }
        let now_offered = self.rcv.adv.since(self.rcv.nxt);
        if 2 * now_offered as usize <= self.rcv.buf.limit() {
            let new = self.advertisable_window();
            if new > now_offered && new >= 2 * now_offered {
                self.ack.now = true;
            }
        }
    }
}
