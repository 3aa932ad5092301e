//! Loss recovery: what duplicate and new ACKs mean for it (fast retransmit on the third
//! duplicate ACK, RFC 6582's NewReno recovery with partial ACKs, limited transmit of RFC 3042),
//! and what a retransmission timeout resets. The congestion controller (`congestion/`) only
//! decides the window; the bookkeeping is here. The future home of SACK and RACK.

use super::connection::Connection;
use super::seq::Seq;
use crate::time::Instant;

impl Connection {
    /// A duplicate ACK (same ACK, no data, same window, data outstanding).
    pub(crate) fn on_dup_ack(&mut self) {
        self.loss.dupacks += 1;
        if self.loss.recover.is_some() {
            self.cc.on_recovery_dup_ack(self.snd.mss);
        } else if self.loss.dupacks == 3 && self.snd.una > self.loss.recover_mark {
            // What limited transmit sent beyond the congestion window is not counted.
            let flight = self.snd.max.since(self.snd.una).min(self.cc.window());
            self.cc.on_fast_retransmit(flight, self.snd.mss);
            self.loss.recover = Some(self.snd.max);
            self.loss.recover_mark = self.snd.max;
            self.loss.retransmit_now = true;
            self.loss.timing = None;
        }
    }

    /// A new ACK moved snd.una to `ack`: `acked` sequence numbers, `data` bytes of them, while
    /// `in_flight_before` were outstanding. Ends or continues recovery, or grows the window.
    pub(crate) fn on_ack_for_recovery(&mut self, now: Instant, ack: Seq, acked: u32, data: u32, in_flight_before: u32) {
        match self.loss.recover {
            Some(recover) if ack >= recover => {
                self.loss.recover = None;
                self.loss.dupacks = 0;
                let flight = self.snd.max.since(self.snd.una);
                self.cc.on_recovery_exit(flight, self.snd.mss);
            }
            Some(_) => {
                self.cc.on_partial_ack(acked, self.snd.mss);
                self.loss.retransmit_now = true;
            }
            None => {
                self.loss.dupacks = 0;
                // RFC 6582's "recover" follows snd_una outside recovery: a mark left behind
                // would be more than 2^31 bytes back after 2 GiB without loss, and circular
                // order would then put it ahead of snd_una and block fast retransmit forever.
                if self.snd.una - 1 > self.loss.recover_mark {
                    self.loss.recover_mark = self.snd.una - 1;
                }
                // Grow only a window that was in use (Linux's tcp_is_cwnd_limited), so an
                // application-limited sender does not build an unearned window.
                if data > 0 && in_flight_before.saturating_mul(2) >= self.cc.window() {
                    self.cc.on_rtt(self.rtt.srtt());
                    self.cc.on_ack(now, data, self.snd.mss);
                }
            }
        }
    }

    /// What the congestion window lets us have in flight, with limited transmit (RFC 3042):
    /// the first and second duplicate ACK outside recovery each let one more segment out, the
    /// congestion window itself unchanged, so a small flight that lost a segment still draws
    /// the third duplicate ACK fast retransmit needs. (Linux gets the same from counting
    /// duplicate ACKs as segments that left the network, tcp_packets_in_flight.)
    pub(crate) fn send_window(&self) -> u32 {
        let limited_transmit = if self.loss.recover.is_none() { self.loss.dupacks.min(2) * self.snd.mss } else { 0 };
        self.cc.window().saturating_add(limited_transmit)
    }

    /// A retransmission timeout: recovery ends, the window collapses (once synchronized), and
    /// sending goes back to snd.una, the head at once whatever the windows.
    pub(crate) fn on_retransmission_loss(&mut self) {
        self.info.timeouts += 1;
        self.loss.retries += 1;
        self.loss.backoff += 1;
        if self.state.is_synchronized() {
            let flight = self.snd.max.since(self.snd.una);
            self.cc.on_timeout(flight, self.snd.mss);
        }
        self.loss.recover = None;
        self.loss.dupacks = 0;
        self.loss.recover_mark = self.snd.max;
        self.loss.timing = None;
        self.loss.retransmit_now = false;
        // Go back: the head at once, whatever the windows; the rest as they allow.
        self.snd.nxt = self.snd.una;
        self.loss.rto_head = self.state.is_synchronized();
    }
}
