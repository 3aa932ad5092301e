//! What leaves: one segment per `poll_transmit` call, in priority order (RST, SYN, fast
//! retransmission, data and FIN under the send window, the congestion window, Nagle and
//! sender-side silly-window avoidance, probes, pure ACKs and window updates).

use super::connection::Connection;
use super::seq::Seq;
use super::state::State;
use crate::time::Instant;
use wire::{TcpFlags, TcpOptions, TcpRepr, TcpSegment};

/// A segment `poll_transmit` wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outgoing {
    /// Length of the TCP segment (header and payload) at the start of the buffer.
    pub len: usize,
}

/// What kind of data segment is being sent.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Send {
    New,
    Fast,
    /// The head after a retransmission timeout: sent whatever the windows say (Linux's
    /// tcp_retransmit_timer), so an RTO into a zero window still probes and re-arms the timer.
    Head,
}

impl Connection {
    /// Writes the next segment to send into `buf` (which must hold an MSS plus 60 bytes of
    /// header); `None` when nothing is due now.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Outgoing> {
        if let Some(seq) = self.rst_pending.take() {
            let ack = self.state_had_peer().then_some(self.rcv_nxt);
            let flags = TcpFlags::RST;
            return self.emit(now, buf, seq, ack, flags, 0, TcpOptions::NONE, 0);
        }
        match self.state {
            State::Closed | State::Listen => return None,
            State::SynSent | State::SynReceived if self.snd_nxt == self.iss => return self.send_syn(now, buf),
            State::SynSent => return None,
            _ => {}
        }
        if self.state.is_synchronized() && self.state != State::TimeWait {
            if self.rto_head {
                self.rto_head = false;
                if self.snd_max > self.snd_una && self.snd_nxt == self.snd_una {
                    if let Some(out) = self.send_data(now, buf, self.snd_una, Send::Head) {
                        return Some(out);
                    }
                }
            }
            if self.retransmit_now {
                self.retransmit_now = false;
                if self.snd_max > self.snd_una {
                    if let Some(out) = self.send_data(now, buf, self.snd_una, Send::Fast) {
                        return Some(out);
                    }
                }
            }
            if let Some(out) = self.send_data(now, buf, self.snd_nxt, Send::New) {
                return Some(out);
            }
            if self.send_probe {
                self.send_probe = false;
                let seq = self.snd_una - 1;
                return self.emit(now, buf, seq, Some(self.rcv_nxt), TcpFlags::empty(), 0, TcpOptions::NONE, 0);
            }
        }
        if self.ack_now || self.dupacks_owed > 0 {
            // One pure ACK per out-of-order segment (a data segment is no duplicate ACK).
            self.dupacks_owed = self.dupacks_owed.saturating_sub(1);
            // snd_max, not snd_nxt: after a timeout snd_nxt went back, and an ACK carrying an
            // old sequence number would fail the peer's window check and be ignored.
            let seq = self.snd_max;
            return self.emit(now, buf, seq, Some(self.rcv_nxt), TcpFlags::empty(), 0, TcpOptions::NONE, 0);
        }
        None
    }

    /// Whether we know the peer's sequence numbers (a RST then carries an ACK).
    fn state_had_peer(&self) -> bool {
        self.rcv_nxt != Seq(0) || self.irs != Seq(0)
    }

    fn send_syn(&mut self, now: Instant, buf: &mut [u8]) -> Option<Outgoing> {
        let synack = self.state == State::SynReceived;
        let options = TcpOptions {
            mss: Some(self.our_mss.min(65_535) as u16),
            // Offered in a SYN always; in a SYN-ACK only if the peer offered it.
            window_scale: (!synack || self.snd_wscale > 0 || self.rcv_wscale > 0).then_some(self.rcv_wscale),
            ..TcpOptions::NONE
        };
        let retransmit = self.snd_max != self.iss;
        if retransmit {
            self.info.timeout_retransmits += 1;
        } else {
            self.timing = Some((self.iss, now));
        }
        let ack = synack.then_some(self.rcv_nxt);
        let out = self.emit(now, buf, self.iss, ack, TcpFlags::SYN, 0, options, 0)?;
        self.snd_nxt = self.iss + 1;
        self.snd_max = self.snd_max.max(self.snd_nxt);
        if self.rto_at.is_none() {
            self.rto_at = Some(now + self.rtt.backed_off(self.backoff));
        }
        Some(out)
    }

    /// A data (and/or FIN) segment starting at `seq`, if the windows and Nagle allow one.
    fn send_data(&mut self, now: Instant, buf: &mut [u8], seq: Seq, kind: Send) -> Option<Outgoing> {
        let data_end = self.snd_una + self.send_buf.len() as u32;
        let fin_wanted = self.fin_wanted_at(seq) && seq <= data_end;
        let available = data_end.since(seq);
        let retransmission = seq < self.snd_max;
        let mut len = available.min(self.mss);
        if kind == Send::New {
            let wnd_end = self.snd_una + self.snd_wnd;
            let wnd_avail = wnd_end.since(seq);
            let cwnd_avail = self.send_window().saturating_sub(self.in_flight());
            len = len.min(wnd_avail).min(cwnd_avail);
            if len < available.min(self.mss) && !self.force_send {
                // Window- or congestion-limited: a segment smaller than it could be waits,
                // unless it is at least half the largest window the peer offered.
                let half_window = self.max_snd_wnd > 0 && len >= self.max_snd_wnd / 2;
                if !(half_window && len > 0) {
                    self.arm_persist(now);
                    return None;
                }
            }
            if len == 0 && !(fin_wanted && available == 0) {
                return None;
            }
            if len < self.mss && len == available && !retransmission && !self.force_send {
                // Nagle with Minshall's rule (Linux's tcp_nagle_check and tcp_minshall_check):
                // a small segment waits while an earlier small segment is unacknowledged,
                // unless TCP_NODELAY or the FIN goes with it. The tail of a message of one or
                // two MSS thus leaves with its full segments instead of waiting for their
                // (delayed) ACK.
                let small_in_flight = self.snd_sml > self.snd_una && self.snd_sml <= self.snd_nxt;
                let nagle = !self.options.nodelay && small_in_flight && !fin_wanted;
                if nagle {
                    return None;
                }
            }
            self.force_send = false;
            if !retransmission
                && self.in_flight() == 0
                && self.config.slow_start_after_idle
                && now.saturating_since(self.last_data_sent) > self.rtt.rto()
            {
                self.cc.on_idle_restart(self.mss);
            }
        } else {
            len = len.min(self.snd_max.since(seq));
            if len == 0 && !fin_wanted {
                return None;
            }
        }
        let fin_sent_before = kind == Send::New || self.snd_max > data_end;
        let with_fin = fin_wanted && fin_sent_before && seq + len == data_end;
        let mut flags = TcpFlags::empty();
        if with_fin {
            flags |= TcpFlags::FIN;
        }
        if len > 0 && seq + len == data_end {
            flags |= TcpFlags::PSH;
        }
        let header = wire::tcp::HEADER_LEN;
        let room = buf.len().saturating_sub(header);
        let len = len.min(room as u32);
        let offset = seq.since(self.snd_una) as usize;
        let copied = self.send_buf.read_at(offset, &mut buf[header..header + len as usize]);
        let out = self.emit(now, buf, seq, Some(self.rcv_nxt), flags, copied, TcpOptions::NONE, header)?;
        if with_fin {
            self.fin_sent = Some(seq + copied as u32);
        }
        let used = copied as u32 + u32::from(with_fin);
        let end = seq + used;
        if retransmission {
            if kind == Send::Fast {
                self.info.fast_retransmits += 1;
            } else {
                self.info.timeout_retransmits += 1;
            }
            self.info.bytes_retransmitted += copied as u64;
            let fresh = end.since(self.snd_max);
            self.info.bytes_sent += u64::from(fresh.min(copied as u32));
        } else {
            self.info.bytes_sent += copied as u64;
            self.last_data_sent = now;
            if copied > 0 && (copied as u32) < self.mss {
                self.snd_sml = seq + copied as u32;
            }
            if self.timing.is_none() && self.recovery.is_none() && copied > 0 {
                self.timing = Some((seq, now));
            }
        }
        match kind {
            Send::New => self.snd_nxt = end,
            Send::Head => self.snd_nxt = self.snd_nxt.max(end),
            Send::Fast => {}
        }
        self.snd_max = self.snd_max.max(end);
        self.persist_at = None;
        if self.rto_at.is_none() {
            self.rto_at = Some(now + self.rtt.backed_off(self.backoff));
        }
        Some(out)
    }

    /// What the congestion window lets us have in flight, with limited transmit (RFC 3042):
    /// the first and second duplicate ACK outside recovery each let one more segment out, the
    /// congestion window itself unchanged, so a small flight that lost a segment still draws
    /// the third duplicate ACK fast retransmit needs. (Linux gets the same from counting
    /// duplicate ACKs as segments that left the network, tcp_packets_in_flight.)
    pub(crate) fn send_window(&self) -> u32 {
        let limited_transmit = if self.recovery.is_none() { self.dupacks.min(2) * self.mss } else { 0 };
        self.cc.window().saturating_add(limited_transmit)
    }

    /// Starts the persist timer when data waits on the peer's window and nothing is in flight
    /// (so no ACK will come to open it).
    pub(crate) fn arm_persist(&mut self, now: Instant) {
        if self.persist_at.is_none() && self.snd_max == self.snd_una && self.rto_at.is_none() {
            let base = self.rtt.rto().max(self.config.rto_min);
            let when = base.checked_mul(1 << self.persist_backoff.min(16)).unwrap_or(self.config.rto_max);
            self.persist_at = Some(now + when.min(self.config.rto_max));
        }
    }

    /// Writes a segment whose payload (`payload_len` bytes) is already at `payload_at`.
    #[allow(clippy::too_many_arguments)]
    fn emit(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        seq: Seq,
        ack: Option<Seq>,
        flags: TcpFlags,
        payload_len: usize,
        options: TcpOptions,
        payload_at: usize,
    ) -> Option<Outgoing> {
        let syn = flags.contains(TcpFlags::SYN);
        let rst = flags.contains(TcpFlags::RST);
        let window = if rst {
            0
        } else if syn {
            ((self.recv.free() as u32).saturating_sub(self.rcv_slack).min(65_535)) as u16
        } else {
            // Rounded to the scale, the window never moves the right edge already advertised
            // to the left (Linux's ALIGN in tcp_select_window): the promised edge is rounded
            // up, within the storage the buffer's slack keeps for it.
            let ws = self.rcv_wscale;
            let promised = self.rcv_adv.since(self.rcv_nxt);
            let keep_edge = promised.div_ceil(1 << ws);
            let backed = self.recv.free() as u32 >> ws;
            let scaled = (self.advertisable_window() >> ws).max(keep_edge.min(backed)).min(65_535);
            self.rcv_adv = self.rcv_adv.max(self.rcv_nxt + (scaled << ws));
            scaled as u16
        };
        if syn {
            self.rcv_adv = self.rcv_adv.max(self.rcv_nxt + u32::from(window));
        }
        let repr = TcpRepr {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            seq: seq.0,
            ack: ack.map(|a| a.0),
            flags,
            window,
            urgent: 0,
            options,
            payload_len,
        };
        let header = repr.header_len();
        if payload_len > 0 && payload_at != header {
            // Options moved the payload: shift it (only SYNs carry options, and they carry no
            // payload, so this does not happen on the data path).
            buf.copy_within(payload_at..payload_at + payload_len, header);
        }
        let mut segment = TcpSegment::new_unchecked(&mut *buf);
        repr.emit(&mut segment, *self.local.ip(), *self.remote.ip()).ok()?;
        if ack.is_some() {
            self.rcv_wup = self.rcv_nxt;
            self.ack_now = false;
            self.delack_at = None;
            self.unacked_bytes = 0;
        }
        self.info.segs_out += 1;
        self.last_send = now;
        Some(Outgoing { len: repr.buffer_len() })
    }
}
