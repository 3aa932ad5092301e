//! Loss recovery: what duplicate and new ACKs mean for it (fast retransmit on the third
//! duplicate ACK, RFC 6582's NewReno recovery with partial ACKs, limited transmit of RFC 3042),
//! and what a retransmission timeout resets. The congestion controller (`congestion/`) only
//! decides the window; the bookkeeping is here. The future home of SACK and RACK.

use super::connection::{Connection, Prr, Timer};
use super::sack::SackNews;
use super::seq::Seq;
use crate::time::Instant;
use wire::TcpRepr;

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
                let rtt = self.rtt.take_last();
                self.cc.on_ack_sample(ack.0, self.snd.nxt.0, rtt);
                if data > 0 && in_flight_before.saturating_mul(2) >= self.cc.window() {
                    self.cc.on_rtt(self.rtt.srtt());
                    self.cc.on_ack(now, data, self.snd.mss);
                    self.expand_sndbuf();
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
        if self.sack_ok {
            // SACKed segments left the network: the pipe already counts them out, so RFC 6675
            // needs no limited transmit; in recovery PRR sets the window.
            return match (self.loss.recover, self.sk()) {
                (Some(_), Some(sk)) => sk.prr.cwnd,
                _ => self.cc.window(),
            };
        }
        let limited_transmit = if self.loss.recover.is_none() { self.loss.dupacks.min(2) * self.snd.mss } else { 0 };
        self.cc.window().saturating_add(limited_transmit)
    }

    /// A retransmission timeout: recovery ends, the window collapses (once synchronized), and
    /// sending goes back to snd.una, the head at once whatever the windows.
    pub(crate) fn on_retransmission_loss(&mut self) {
        let prior = (self.cc.window(), self.cc.ssthresh());
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
        self.loss.rto_head = self.state.is_synchronized();
        if self.sack_ok && self.state.is_synchronized() {
            // Everything outstanding and not SACKed is lost (Linux's tcp_timeout_mark_lost):
            // the head goes at once, the rest as the window allows, SACKed data skipped. The
            // reduction may be undone if D-SACKs show every retransmission needless.
            if self.loss.retries == 1 {
                self.sk_mut().start_undo(prior);
            }
            let max = self.snd.max;
            self.sk_mut().sb.on_timeout(max);
            self.sk_mut().rack.tlp_high = None;
            self.sk_mut().rack.tlp_due = false;
            self.timers[Timer::Rack] = None;
            return;
        }
        // Go back: the head at once, whatever the windows; the rest as they allow.
        self.snd.nxt = self.snd.una;
    }
}

/// SACK-based loss recovery (RFC 6675 with RFC 6937's proportional rate reduction, as Linux
/// runs it): the scoreboard (sack.rs) says what is SACKed, lost and retransmitted, RACK
/// (rack.rs) what is lost, and the pipe, not duplicate ACKs, what may be sent.
impl Connection {
    /// Takes an ACK's SACK blocks: a first block below the cumulative ACK, or inside the
    /// second, is a D-SACK (RFC 2883 4); the others go to the scoreboard once checked (Linux's
    /// tcp_is_sackblock_valid: within what was sent, above what is acknowledged).
    pub(crate) fn take_sack_blocks(&mut self, now: Instant, repr: &TcpRepr, ack: Seq) {
        let una = self.snd.una;
        let blocks = &repr.options.sack_blocks;
        if blocks[0].is_none() && self.sk().is_none() {
            // Nothing sent yet and nothing reported: no state to make.
            return;
        }
        let sk = self.sk_mut();
        sk.news = SackNews { highest: sk.sb.highest_sacked(una), ..SackNews::default() };
        let Some((l0, r0)) = blocks[0] else { return };
        let (l0, r0) = (Seq(l0), Seq(r0));
        let inside_second = blocks[1].is_some_and(|(l1, r1)| Seq(l1) <= l0 && r0 <= Seq(r1));
        let dsack = l0 < r0 && (l0 < ack || inside_second);
        if dsack {
            self.on_dsack(now, l0, r0);
        }
        let from = una.max(ack);
        let min_rtt = self.rtt.min_rtt();
        let mut news = self.sk_mut().news;
        for &(l, r) in blocks[usize::from(dsack)..].iter().flatten() {
            let (l, r) = (Seq(l), Seq(r));
            if l >= r || r > self.snd.max || r <= from || l < una - self.snd.max_wnd.max(self.snd.mss) {
                continue;
            }
            self.sk_mut().sb.add_sacked(from, l, r, now, min_rtt, &mut news);
        }
        self.sk_mut().news = news;
    }

    /// A D-SACK for [`start`, `end`): a retransmission of the current or last episode was not
    /// needed (or the network duplicated a segment). When every retransmission of the episode
    /// proves needless, the window reduction is undone (Linux's tcp_try_undo_dsack); either
    /// way RACK widens its reordering window.
    fn on_dsack(&mut self, now: Instant, start: Seq, end: Seq) {
        self.info.dsacks_received += 1;
        // Only a duplicate of what we retransmitted says a retransmission was needless (Linux
        // counts D-SACKs against undo_retrans only for TCPCB_RETRANS segments); the network's
        // own duplicates of data sent once say nothing about loss or reordering.
        let sk = self.sk_mut();
        if let Some(high) = sk.rack.tlp_high {
            if sk.rack.tlp_retrans && end >= high && start < high {
                // The probe itself came back twice: nothing was lost.
                sk.rack.tlp_high = None;
                return;
            }
        }
        if !sk.was_retransmitted(start, end) {
            return;
        }
        if sk.undo.is_some() && sk.undo_retrans > 0 {
            let seen = std::mem::replace(&mut sk.rack.reord_seen, true);
            let segments = end.since(start).div_ceil(self.snd.mss.max(1)).max(1);
            let sk = self.sk_mut();
            sk.undo_retrans = sk.undo_retrans.saturating_sub(segments);
            let undo = sk.undo_retrans == 0;
            if !seen {
                self.info.reord_seen += 1;
            }
            if undo {
                self.undo_reduction();
            }
        }
        if self.sk_mut().rack.reord_seen {
            // RACK widens its window on D-SACKs once reordering was seen (tcp_dsack_seen).
            self.rack_widen(now);
        }
    }

    /// Restores the window from before the reduction that proved needless.
    fn undo_reduction(&mut self) {
        let Some((cwnd, ssthresh)) = self.sk_mut().undo.take() else { return };
        let (cwnd, ssthresh) = if self.loss.recover.is_some() {
            (cwnd, ssthresh)
        } else {
            (cwnd.max(self.cc.window()), ssthresh.max(self.cc.ssthresh()))
        };
        self.cc.resume(cwnd, ssthresh);
        // The episode is over (Linux goes back to TCP_CA_Open): probes and a new recovery may
        // follow.
        self.loss.recover = None;
        self.loss.recover_mark = self.snd.una - 1;
        self.info.dsack_undos += 1;
    }

    /// The end of an ACK's processing with SACK on: RACK advances and looks for losses,
    /// recovery starts, continues (PRR sets how much may be sent) or ends, and outside
    /// recovery the window grows.
    pub(crate) fn on_sack_ack(&mut self, now: Instant, old_una: Seq, sacked_before: u32, pipe_before: u32) {
        if self.sk().is_none() {
            // Nothing was ever sent: nothing to recover, grow or probe.
            return;
        }
        let news = self.sk_mut().news;
        self.sk_mut().rtx_full = false;
        let acked = self.snd.una.since(old_una);
        let delivered = (acked + self.sk_mut().sb.sacked_bytes()).saturating_sub(sacked_before);
        if let Some((sent, end)) = news.latest {
            self.rack_advance(now, sent, end);
        }
        if news.reordered && !self.sk_mut().rack.reord_seen {
            self.sk_mut().rack.reord_seen = true;
            self.info.reord_seen += 1;
        }
        self.tlp_on_ack();
        if let Some(recover) = self.loss.recover {
            if self.snd.una >= recover {
                // The window is ssthresh again (RFC 6937, Linux's tcp_end_cwnd_reduction),
                // not the pipe left at the end: a pipe near empty would leave one segment,
                // whose loss only the retransmission timer could then repair.
                self.loss.recover = None;
                let ssthresh = self.cc.ssthresh();
                self.cc.on_recovery_exit(ssthresh, self.snd.mss);
            }
        }
        let una = self.snd.una;
        let lost = !self.sk_mut().sb.is_clear(una) && self.rack_detect_loss(now);
        if lost && !self.in_loss_episode() {
            self.enter_sack_recovery(pipe_before);
        }
        if self.loss.recover.is_some() {
            self.prr_update(delivered);
        } else {
            if self.snd.una - 1 > self.loss.recover_mark {
                self.loss.recover_mark = self.snd.una - 1;
            }
            let rtt = self.rtt.take_last();
            let (una, nxt) = (self.snd.una.0, self.snd.nxt.0);
            self.cc.on_ack_sample(una, nxt, rtt);
            if acked > 0 && pipe_before.saturating_mul(2) >= self.cc.window() {
                self.cc.on_rtt(self.rtt.srtt());
                self.cc.on_ack(now, acked, self.snd.mss);
                self.expand_sndbuf();
            }
        }
        self.schedule_loss_probe(now);
    }

    /// Fast recovery begins on RACK's verdict, with `pipe_before` in flight before the ACK.
    pub(crate) fn enter_sack_recovery(&mut self, pipe_before: u32) {
        let prior = (self.cc.window(), self.cc.ssthresh());
        self.sk_mut().start_undo(prior);
        // ssthresh from the congestion window, as Linux's ssthresh hooks take it (Reno's
        // cwnd / 2, CUBIC's 0.7 cwnd), not from the flight, which an echo or a PRR-limited
        // sender keeps below the window and would cut it again each episode.
        let window = self.cc.window();
        self.cc.on_fast_retransmit(window, self.snd.mss);
        self.loss.recover = Some(self.snd.max);
        self.loss.recover_mark = self.snd.max;
        self.sk_mut().prr = Prr { recover_fs: pipe_before.max(1), delivered: 0, out: 0, cwnd: 0 };
        self.loss.timing = None;
        if self.sk().is_some_and(|sk| sk.rack.probe) {
            self.timers[Timer::Rack] = None;
        }
        self.info.sack_recoveries += 1;
    }

    /// Proportional rate reduction (RFC 6937, Linux's tcp_cwnd_reduction) after `delivered`
    /// more bytes reached the peer: the window in recovery is the pipe plus what PRR allows,
    /// at least one segment until the first retransmission is out.
    pub(crate) fn prr_update(&mut self, delivered: u32) {
        let ssthresh = u64::from(self.cc.ssthresh());
        let mss = u64::from(self.snd.mss);
        let pipe = u64::from(self.in_flight());
        let prr = &mut self.sk_mut().prr;
        prr.delivered = prr.delivered.saturating_add(delivered);
        let (d, out) = (u64::from(prr.delivered), u64::from(prr.out));
        let sndcnt = if pipe > ssthresh {
            let fs = u64::from(prr.recover_fs.max(1));
            (d * ssthresh).div_ceil(fs).saturating_sub(out)
        } else {
            let limit = d.saturating_sub(out).max(u64::from(delivered)) + mss;
            (ssthresh - pipe).min(limit)
        };
        let sndcnt = if prr.out == 0 { sndcnt.max(mss) } else { sndcnt };
        prr.cwnd = (pipe + sndcnt).min(u64::from(u32::MAX)) as u32;
    }

    /// Bytes in flight with SACK: RFC 6675's pipe.
    pub(crate) fn sack_pipe(&self) -> u32 {
        let flight = self.snd.max.since(self.snd.una);
        self.sk().map_or(flight, |sk| sk.sb.pipe(self.snd.una, flight))
    }
}
