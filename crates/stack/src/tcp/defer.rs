//! TCP_DEFER_ACCEPT: a listener does not queue a connection for accept while its handshake has
//! brought no data. Linux keeps the handshake as a request socket, drops the bare final ACK
//! (inet_rsk(req)->acked = 1, tcp_check_req) and lets the SYN-ACK timer run on: while waiting
//! for data it does not resend the SYN-ACK, until the last retransmission of the deferral
//! period, which gives the peer's ACK one more chance; that ACK (or any segment with data or
//! a FIN) then completes the handshake. A handshake that ran out of both its SYN-ACK retries
//! and the deferral is dropped silently (syn_ack_recalc, reqsk_timer_handler).
//!
//! Here the handshake is a connection in SYN_RECEIVED that is not yet in the accept queue, so
//! the same rules apply to it: its data is kept and readable after accept. The difference:
//! Linux counts the deferral against the request's SYN-ACK timeouts and so do we, but our
//! connection already exists (it costs what a connection costs, not a request socket).

use super::config::TcpConfig;
use super::connection::{Connection, Timer};
use super::seq::Seq;
use super::state::State;
use crate::time::Instant;
use wire::{TcpFlags, TcpRepr};

/// Linux's secs_to_retrans: the fewest SYN-ACK retransmissions whose timeouts, from the
/// initial RTO doubling up to the maximum, cover `seconds`.
pub(crate) fn secs_to_retrans(seconds: i32, config: &TcpConfig) -> u8 {
    if seconds <= 0 {
        return 0;
    }
    let (mut timeout, rto_max) = rto_secs(config);
    let mut period = timeout;
    let mut res = 1u8;
    while i64::from(seconds) > period && res < 255 {
        res += 1;
        timeout = (timeout * 2).min(rto_max);
        period += timeout;
    }
    res
}

/// Linux's retrans_to_secs: the seconds `retrans` retransmissions stand for.
pub(crate) fn retrans_to_secs(retrans: u8, config: &TcpConfig) -> i32 {
    if retrans == 0 {
        return 0;
    }
    let (mut timeout, rto_max) = rto_secs(config);
    let mut period = timeout;
    for _ in 1..retrans {
        timeout = (timeout * 2).min(rto_max);
        period += timeout;
    }
    period.min(i64::from(i32::MAX)) as i32
}

/// The initial and maximum RTO in whole seconds (Linux's TCP_TIMEOUT_INIT/HZ, TCP_RTO_MAX/HZ).
fn rto_secs(config: &TcpConfig) -> (i64, i64) {
    (config.rto_initial.as_secs().max(1) as i64, config.rto_max.as_secs().max(1) as i64)
}

impl Connection {
    /// Whether a segment to this passive handshake is a bare final ACK that TCP_DEFER_ACCEPT
    /// drops (it ends at the peer's ISN + 1: no data, no FIN), while fewer SYN-ACK timeouts
    /// than the deferral have passed. Marks the handshake as acknowledged if so.
    pub(crate) fn defer_bare_ack(&mut self, repr: &TcpRepr) -> bool {
        let Some(ack) = repr.ack.map(Seq) else { return false };
        let bare = repr.payload_len == 0
            && !repr.flags.intersects(TcpFlags::SYN | TcpFlags::FIN | TcpFlags::RST)
            && Seq(repr.seq) == self.rcv.irs + 1;
        let deferring = self.passive
            && self.state == State::SynReceived
            && self.loss.retries < u32::from(self.options.defer_accept)
            && ack == self.snd.iss + 1;
        if bare && deferring {
            self.deferred_ack = true;
            return true;
        }
        false
    }

    /// The SYN-ACK timer of a deferred handshake (Linux's syn_ack_recalc): it expires once the
    /// SYN-ACK retries are spent and, if the peer acknowledged, the deferral too; while waiting
    /// for data after a bare ACK it does not resend, except from the deferral's last
    /// retransmission on.
    pub(crate) fn on_deferred_synack_timeout(&mut self, now: Instant, synack_retries: u32) {
        let n = self.loss.retries;
        let defer = u32::from(self.options.defer_accept);
        let expire = n >= synack_retries && (!self.deferred_ack || n >= defer);
        if expire {
            self.fail(None);
            return;
        }
        let resend = !self.deferred_ack || n + 1 >= defer;
        if resend {
            self.on_retransmission_loss();
        } else {
            self.loss.retries += 1;
            self.loss.backoff += 1;
            self.timers[Timer::Retransmit] = Some(now + self.rtt.backed_off(self.loss.backoff));
        }
    }
}
