//! RACK-TLP loss detection (RFC 8985), as Linux runs it by default (tcp_recovery.c): a
//! segment is lost once a segment sent after it has been delivered and a reordering window has
//! passed since; a tail loss probe makes the last segments of a flight draw an ACK when their
//! loss would otherwise wait for the retransmission timeout. Both need SACK: without it the
//! connection keeps RFC 6582's duplicate-ACK recovery (recovery.rs).
//!
//! Linux's choices where the RFC leaves one: the reordering window is a quarter of the minimum
//! RTT times a step count that D-SACKs raise, at most the smoothed RTT, and zero until reordering
//! has been seen once recovery runs or three segments' worth are SACKed (tcp_rack_reo_wnd); the
//! RACK and TLP timers wait two more milliseconds (TCP_TIMEOUT_MIN); the probe timeout is two
//! smoothed RTTs, plus the 200 ms delayed-ACK allowance when one segment is in flight.

use super::connection::{Connection, Timer};
use super::seq::Seq;
use crate::time::Instant;
use std::time::Duration;

/// Linux's TCP_TIMEOUT_MIN: what the RACK and TLP timers add to their deadline.
const TIMEOUT_MIN: Duration = Duration::from_millis(2);
/// The worst-case delayed ACK a probe of a single segment allows for (RFC 8985's WCDelAckT).
const DELAYED_ACK_MAX: Duration = Duration::from_millis(200);
/// Most steps of the reordering window (Linux's 0xFF).
const MAX_REO_STEPS: u32 = 255;

/// RACK-TLP's state.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Rack {
    /// The most recently sent segment that was delivered: when it was sent, and its end.
    pub(crate) xmit: Option<(Instant, Seq)>,
    /// That segment's round-trip time.
    pub(crate) rtt: Duration,
    /// The reordering window in quarters of the minimum RTT, less one (D-SACKs raise it).
    pub(crate) reo_steps: u32,
    /// When a D-SACK last raised the steps (once per round trip at most).
    pub(crate) reo_raised_at: Option<Instant>,
    /// The network was seen to reorder.
    pub(crate) reord_seen: bool,
    /// A tail loss probe is outstanding until snd.una reaches this (tlp_high_seq).
    pub(crate) tlp_high: Option<Seq>,
    /// The probe was a retransmission (not new data).
    pub(crate) tlp_retrans: bool,
    /// The probe timer fired: a probe goes out at the next transmit.
    pub(crate) tlp_due: bool,
    /// The `Rack` timer is the probe's (else RACK's reordering timer).
    pub(crate) probe: bool,
}

impl Connection {
    /// RACK learns of a delivered segment sent at `sent` ending at `end` (RFC 8985 6.2 step 2).
    pub(crate) fn rack_advance(&mut self, now: Instant, sent: Instant, end: Seq) {
        let rtt = now.saturating_since(sent);
        self.rtt.note_min(rtt);
        let rack = &mut self.sk_mut().rack;
        let newer = match rack.xmit {
            None => true,
            Some((t, e)) => sent > t || (sent == t && end > e),
        };
        if newer {
            rack.xmit = Some((sent, end));
            rack.rtt = rtt;
        }
    }

    /// Whether recovery (or the loss state after a timeout) is running: until snd.una
    /// reaches what was outstanding when it began (Linux leaves TCP_CA_Loss and
    /// TCP_CA_Recovery once snd_una is not before high_seq).
    pub(crate) fn in_loss_episode(&self) -> bool {
        self.loss.recover.is_some() || self.snd.una < self.loss.recover_mark
    }

    /// The reordering window (RFC 8985 6.2 step 4, Linux's tcp_rack_reo_wnd).
    pub(crate) fn rack_reo_wnd(&self) -> Duration {
        let Some(sk) = self.sk() else { return Duration::ZERO };
        if !sk.rack.reord_seen && (self.in_loss_episode() || sk.sb.sacked_bytes() >= 3 * self.snd.mss) {
            return Duration::ZERO;
        }
        let min_rtt = self.rtt.min_rtt().unwrap_or_default();
        (min_rtt * (sk.rack.reo_steps + 1) / 4).min(self.rtt.srtt())
    }

    /// A D-SACK arrived: the reordering window widens by a step, once per round trip.
    pub(crate) fn rack_widen(&mut self, now: Instant) {
        let srtt = self.rtt.srtt();
        let rack = &mut self.sk_mut().rack;
        if rack.reo_raised_at.is_none_or(|t| now.saturating_since(t) >= srtt) {
            rack.reo_steps = (rack.reo_steps + 1).min(MAX_REO_STEPS);
            rack.reo_raised_at = Some(now);
        }
    }

    /// RACK's loss detection (RFC 8985 6.2 step 5, Linux's tcp_rack_detect_loss): every
    /// segment sent before the most recently delivered one, and longer ago than its RTT and the
    /// reordering window, is lost; for the others sent before it, the reordering timer is
    /// armed. Returns whether anything was newly deemed lost.
    pub(crate) fn rack_detect_loss(&mut self, now: Instant) -> bool {
        if self.sk().is_some_and(|sk| !sk.rack.probe) {
            self.timers[Timer::Rack] = None;
        }
        let Some((xt, xend)) = self.sk_mut().rack.xmit else { return false };
        let wait = self.sk_mut().rack.rtt + self.rack_reo_wnd();
        let before = self.sk_mut().sb.lost_high();
        let mut lost_to = before;
        let mut timer: Option<Instant> = None;
        // Original data, in sequence (= send) order from the frontier.
        for (end, t) in self.sk_mut().sb.sends() {
            if end <= lost_to {
                continue;
            }
            if t > xt {
                break;
            }
            let deadline = t + wait;
            if deadline > now {
                timer = Some(deadline);
                break;
            }
            if t == xt {
                // The delivered segment's own burst: only what precedes it was sent before it.
                lost_to = lost_to.max(end.min(xend));
                break;
            }
            lost_to = end;
        }
        self.sk_mut().sb.mark_lost_to(lost_to);
        // Retransmissions: lost again once something sent after them is delivered.
        let mut rtx_lost = false;
        let mut i = 0;
        while let Some(&(_, e, t)) = self.sk_mut().sb.retransmitted().get(i) {
            if t < xt || (t == xt && e <= xend) {
                let deadline = t + wait;
                if deadline <= now {
                    self.sk_mut().sb.retransmission_lost(i);
                    rtx_lost = true;
                    continue;
                }
                timer = Some(timer.map_or(deadline, |d| d.min(deadline)));
            }
            i += 1;
        }
        if let Some(d) = timer {
            // RACK's timer replaces a probe's (RFC 8985 7.2: no probe while it runs).
            self.timers[Timer::Rack] = Some(d + TIMEOUT_MIN);
            self.sk_mut().rack.probe = false;
        }
        rtx_lost || self.sk_mut().sb.lost_high() > before
    }

    /// The `Rack` timer fired: the probe's or the reordering window's.
    pub(crate) fn on_rack_timeout(&mut self, now: Instant) {
        match self.sk() {
            Some(sk) if sk.rack.probe => self.on_loss_probe_timeout(now),
            Some(_) => self.on_reorder_timeout(now),
            None => {}
        }
    }

    /// The reordering timer: segments that waited out the window are lost now.
    fn on_reorder_timeout(&mut self, now: Instant) {
        if !self.sack_ok || !self.state.is_synchronized() || self.snd.max == self.snd.una {
            return;
        }
        let pipe_before = self.in_flight();
        if self.rack_detect_loss(now) {
            if !self.in_loss_episode() {
                self.enter_sack_recovery(pipe_before);
            }
            if self.loss.recover.is_some() {
                self.prr_update(0);
            }
        }
    }

    /// Arms the tail loss probe (RFC 8985 7.2, Linux's tcp_schedule_loss_probe): with SACK,
    /// outside recovery, data in flight, an RTT measured and no probe outstanding; never later
    /// than the retransmission timer, which a probe due at the same time replaces (one timer
    /// in Linux; the RTO is armed again once the probe is out).
    pub(crate) fn schedule_loss_probe(&mut self, now: Instant) {
        match self.sk() {
            Some(sk) if !sk.rack.probe && self.timers[Timer::Rack].is_some() => return,
            _ => self.timers[Timer::Rack] = None,
        }
        if !self.sack_ok
            || !self.state.is_synchronized()
            || self.snd.max == self.snd.una
            || self.in_loss_episode()
            || self.sk().is_some_and(|sk| sk.rack.tlp_high.is_some())
            || !self.rtt.has_sample()
        {
            return;
        }
        let srtt = self.rtt.srtt();
        let extra = if self.snd.max.since(self.snd.una) <= self.snd.mss { DELAYED_ACK_MAX } else { TIMEOUT_MIN };
        let mut at = now + srtt * 2 + extra;
        if let Some(rto) = self.timers[Timer::Retransmit] {
            at = at.min(rto);
        }
        self.timers[Timer::Rack] = Some(at);
        self.sk_mut().rack.probe = true;
    }

    /// The probe timer fired: a probe is due.
    fn on_loss_probe_timeout(&mut self, now: Instant) {
        if self.sack_ok
            && self.state.is_synchronized()
            && self.snd.max != self.snd.una
            && !self.in_loss_episode()
            && self.sk().is_none_or(|sk| sk.rack.tlp_high.is_none())
        {
            self.sk_mut().rack.tlp_due = true;
            if self.timers[Timer::Retransmit].is_some_and(|rto| rto <= now) {
                // The probe goes instead of the RTO due with it; sending it arms the RTO again.
                self.timers[Timer::Retransmit] = Some(self.retransmit_deadline(now));
            }
        }
    }

    /// An ACK during a probe's episode (RFC 8985 7.4, Linux's tcp_process_tlp_ack): an ACK
    /// past the probe without a D-SACK for it shows the probe repaired a loss, which the
    /// congestion window answers for as for any loss.
    pub(crate) fn tlp_on_ack(&mut self) {
        let Some(high) = self.sk().and_then(|sk| sk.rack.tlp_high) else { return };
        if self.snd.una < high {
            return;
        }
        if !self.sk_mut().rack.tlp_retrans {
            self.sk_mut().rack.tlp_high = None;
        } else if self.snd.una > high {
            self.sk_mut().rack.tlp_high = None;
            self.info.loss_probe_recoveries += 1;
            self.cc.on_fast_retransmit(self.cc.window(), self.snd.mss);
            let pipe = self.in_flight();
            self.cc.on_recovery_exit(pipe.max(self.cc.ssthresh()), self.snd.mss);
        }
    }
}
