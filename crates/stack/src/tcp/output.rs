//! What leaves: one segment per `poll_transmit` call, in priority order (RST, SYN, fast
//! retransmission, data and FIN under the send window, the congestion window, Nagle and
//! sender-side silly-window avoidance, probes, pure ACKs and window updates). Given room for
//! more, new data may leave as one super-segment of several MSS (`gso.rs` decides how much) for
//! a datapath that segments it, as the kernel's TSO/GSO does.

use super::connection::{Connection, Timer};
use super::seq::Seq;
use super::state::State;
use crate::time::Instant;
use wire::{TcpFlags, TcpOptions, TcpRepr, TcpSegment};

/// A segment `poll_transmit` wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outgoing {
    /// Length of the TCP segment (header and payload) at the start of the buffer.
    pub len: usize,
    /// A super-segment: the payload size of each segment it must be cut into (the MSS); 0 for
    /// an ordinary segment, which goes as it is.
    pub segment_size: u32,
    /// Length of the TCP header (with options) at the start of the buffer.
    pub header_len: usize,
}

/// What kind of data segment is being sent.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Send {
    New,
    /// A tail loss probe's new data: one segment past the congestion window and Nagle.
    ProbeNew,
    Fast,
    /// With SACK: a lost run of at most this many bytes (RFC 6675's NextSeg).
    Lost(u32),
    /// A tail loss probe that retransmits the last segment.
    Probe,
    /// The head after a retransmission timeout: sent whatever the windows say (Linux's
    /// tcp_retransmit_timer), so an RTO into a zero window still probes and re-arms the timer.
    Head,
}

impl Connection {
    /// Writes the next segment to send into `buf` (which must hold an MSS plus 60 bytes of
    /// header); `None` when nothing is due now.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Outgoing> {
        self.poll_transmit_gso(now, buf, 0)
    }

    /// As [`poll_transmit`](Self::poll_transmit), but new data the windows let out at once may
    /// leave as one super-segment of up to `max_payload` bytes of payload (whole MSS pieces but
    /// for the last), for a datapath that cuts it into MSS segments (GSO). The sequence space
    /// moves exactly as if the pieces had been sent one by one; 0 sends single segments.
    pub fn poll_transmit_gso(&mut self, now: Instant, buf: &mut [u8], max_payload: usize) -> Option<Outgoing> {
        if let Some(seq) = self.rst_pending.take() {
            let ack = self.state_had_peer().then_some(self.rcv.nxt);
            let flags = TcpFlags::RST;
            return self.emit(now, buf, seq, ack, flags, 0, TcpOptions::NONE, 0, false);
        }
        match self.state {
            State::Closed | State::Listen => return None,
            State::SynSent | State::SynReceived if self.snd.nxt == self.snd.iss => return self.send_syn(now, buf),
            State::SynSent => return None,
            _ => {}
        }
        if self.state.is_synchronized() && self.state != State::TimeWait {
            if self.loss.rto_head {
                self.loss.rto_head = false;
                if self.snd.max > self.snd.una && (self.snd.nxt == self.snd.una || self.sack_ok) {
                    if let Some(out) = self.send_data(now, buf, self.snd.una, Send::Head, 0) {
                        return Some(out);
                    }
                }
            }
            if self.loss.retransmit_now {
                self.loss.retransmit_now = false;
                if self.snd.max > self.snd.una {
                    if let Some(out) = self.send_data(now, buf, self.snd.una, Send::Fast, 0) {
                        return Some(out);
                    }
                }
            }
            if self.sack_ok {
                if let Some(out) = self.send_lost(now, buf) {
                    return Some(out);
                }
                if self.sk().is_some_and(|sk| sk.rack.tlp_due) {
                    self.sk_mut().rack.tlp_due = false;
                    if let Some(out) = self.send_loss_probe(now, buf) {
                        return Some(out);
                    }
                }
            }
            if let Some(out) = self.send_data(now, buf, self.snd.nxt, Send::New, max_payload) {
                return Some(out);
            }
            if self.ack.send_probe {
                self.ack.send_probe = false;
                let seq = self.snd.una - 1;
                return self.emit(now, buf, seq, Some(self.rcv.nxt), TcpFlags::empty(), 0, TcpOptions::NONE, 0, false);
            }
        }
        if self.ack.now || self.ack.dupacks_owed > 0 {
            // One pure ACK per out-of-order segment (a data segment is no duplicate ACK).
            self.ack.dupacks_owed = self.ack.dupacks_owed.saturating_sub(1);
            let seq = self.acceptable_seq();
            return self.emit(now, buf, seq, Some(self.rcv.nxt), TcpFlags::empty(), 0, TcpOptions::NONE, 0, false);
        }
        // Nothing more to send: a buffer left empty is given back once the connection is quiet.
        self.snd.push = false;
        self.arm_buffer_release();
        None
    }

    /// The sequence number of a segment without data (Linux's tcp_acceptable_seq): snd_max,
    /// not snd_nxt (after a timeout snd_nxt went back, and an ACK carrying an old sequence
    /// number fails the peer's window check), unless snd_max lies past the right edge of the
    /// peer's window: then that edge. A peer whose buffer filled drops data it had offered room
    /// for; an ACK numbered beyond its window is discarded unread (only a duplicate ACK comes
    /// back), so our acknowledgments never reach it, its send buffer never drains, its
    /// application stops reading and both ends stall (the TAP interop's 100 MiB echo did).
    pub(crate) fn acceptable_seq(&self) -> Seq {
        let wnd_end = self.snd.una + self.snd.wnd;
        let beyond = self.snd.max.diff(wnd_end);
        // Within one unit of the peer's window scale: its rounding, not a closed window.
        if beyond <= 0 || (beyond as u32) < (1u32 << self.snd.wscale.min(14)) {
            self.snd.max
        } else {
            wnd_end
        }
    }

    /// Whether we know the peer's sequence numbers (a RST then carries an ACK).
    fn state_had_peer(&self) -> bool {
        self.rcv.nxt != Seq(0) || self.rcv.irs != Seq(0)
    }

    fn send_syn(&mut self, now: Instant, buf: &mut [u8]) -> Option<Outgoing> {
        let synack = self.state == State::SynReceived;
        let options = TcpOptions {
            mss: Some(self.rcv.our_mss.min(65_535) as u16),
            // Offered in a SYN always; in a SYN-ACK only if the peer offered it.
            window_scale: (!synack || self.snd.wscale > 0 || self.rcv.wscale > 0).then_some(self.rcv.wscale),
            sack_permitted: if synack { self.sack_ok } else { self.config.sack },
            ..TcpOptions::NONE
        };
        let retransmit = self.snd.max != self.snd.iss;
        if retransmit {
            self.info.timeout_retransmits += 1;
        } else {
            self.loss.timing = Some((self.snd.iss, now));
        }
        let ack = synack.then_some(self.rcv.nxt);
        let out = self.emit(now, buf, self.snd.iss, ack, TcpFlags::SYN, 0, options, 0, false)?;
        self.snd.nxt = self.snd.iss + 1;
        self.snd.max = self.snd.max.max(self.snd.nxt);
        if self.timers[Timer::Retransmit].is_none() {
            self.timers[Timer::Retransmit] = Some(self.retransmit_deadline(now));
        }
        Some(out)
    }

    /// With SACK, the next lost run (RFC 6675's NextSeg), if the pipe leaves room.
    fn send_lost(&mut self, now: Instant, buf: &mut [u8]) -> Option<Outgoing> {
        let sk = self.sk()?;
        if sk.sb.lost_high() <= self.snd.una || sk.rtx_full {
            return None;
        }
        let (start, run) = sk.sb.next_lost(self.snd.una)?;
        if self.in_flight() >= self.send_window() {
            return None;
        }
        self.send_data(now, buf, start, Send::Lost(run), 0)
    }

    /// The tail loss probe (RFC 8985 7.3, Linux's tcp_send_loss_probe): a segment of new data
    /// if the peer's window takes one, else the last segment again; then the retransmission
    /// timer runs again from now.
    fn send_loss_probe(&mut self, now: Instant, buf: &mut [u8]) -> Option<Outgoing> {
        let wnd_end = self.snd.una + self.snd.wnd;
        let mut out = None;
        let mut retrans = false;
        if self.unsent() > 0 && wnd_end > self.snd.nxt {
            out = self.send_data(now, buf, self.snd.nxt, Send::ProbeNew, 0);
        }
        if out.is_none() {
            let data_end = self.snd.una + self.snd.buf.len() as u32;
            let end = if self.snd.max > data_end { data_end } else { self.snd.max };
            let start = if end.since(self.snd.una) > self.snd.mss { end - self.snd.mss } else { self.snd.una };
            out = self.send_data(now, buf, start, Send::Probe, 0);
            retrans = true;
        }
        if out.is_some() {
            self.info.loss_probes += 1;
            self.sk_mut().rack.tlp_high = Some(self.snd.max);
            self.sk_mut().rack.tlp_retrans = retrans;
            self.timers[Timer::Rack] = None;
            self.timers[Timer::Retransmit] = Some(self.retransmit_deadline(now));
        }
        out
    }

    /// A data (and/or FIN) segment starting at `seq`, if the windows and Nagle allow one; new
    /// data of more than one full segment may grow into a super-segment of up to `gso_max`
    /// bytes of payload.
    fn send_data(&mut self, now: Instant, buf: &mut [u8], seq: Seq, kind: Send, gso_max: usize) -> Option<Outgoing> {
        let data_end = self.snd.una + self.snd.buf.len() as u32;
        let fin_wanted = self.fin_wanted_at(seq) && seq <= data_end;
        let available = data_end.since(seq);
        let retransmission = seq < self.snd.max;
        let mut len = available.min(self.snd.mss);
        let probe = kind == Send::ProbeNew;
        if kind == Send::New || probe {
            let wnd_end = self.snd.una + self.snd.wnd;
            let wnd_avail = wnd_end.since(seq);
            let cwnd_avail = if probe { u32::MAX } else { self.send_window().saturating_sub(self.in_flight()) };
            len = len.min(wnd_avail).min(cwnd_avail);
            if len < available.min(self.snd.mss) && !self.force_send && !probe {
                // Window- or congestion-limited: a segment smaller than it could be waits,
                // unless it is at least half the largest window the peer offered.
                let half_window = self.snd.max_wnd > 0 && len >= self.snd.max_wnd / 2;
                if !(half_window && len > 0) {
                    self.arm_persist(now);
                    return None;
                }
            }
            if len == 0 && !(fin_wanted && available == 0) {
                return None;
            }
            if len < self.snd.mss && len == available && !retransmission && !self.force_send && !self.snd.push && !probe
            {
                // TCP_CORK or MSG_MORE (Linux's TCP_NAGLE_CORK in tcp_nagle_check): a partial
                // segment waits, unless the FIN goes with it, for the probe timer at most.
                if (self.options.cork || self.snd.more) && !fin_wanted && self.snd.up.is_none() {
                    self.arm_persist(now);
                    return None;
                }
                // Nagle with Minshall's rule (Linux's tcp_nagle_check and tcp_minshall_check):
                // a small segment waits while an earlier small segment is unacknowledged,
                // unless TCP_NODELAY or the FIN goes with it. The tail of a message of one or
                // two MSS thus leaves with its full segments instead of waiting for their
                // (delayed) ACK.
                let small_in_flight = self.snd.sml > self.snd.una && self.snd.sml <= self.snd.nxt;
                let nagle = !self.options.nodelay && small_in_flight && !fin_wanted && self.snd.up.is_none();
                if nagle {
                    return None;
                }
            }
            self.force_send = false;
            self.snd.push = false;
            if !retransmission
                && self.in_flight() == 0
                && self.config.slow_start_after_idle
                && now.saturating_since(self.snd.last_data_sent) > self.rtt.rto()
            {
                self.cc.on_idle_restart(self.snd.mss);
            }
        } else {
            len = len.min(self.snd.max.since(seq));
            if let Send::Lost(run) = kind {
                len = len.min(run);
            }
            if len == 0 && !fin_wanted {
                return None;
            }
        }
        // SACK blocks ride on every segment while out-of-order data is held (Linux does the
        // same): their room comes out of this segment's payload, as Linux's tcp_current_mss.
        let header = self.data_header_len() + self.sack_room();
        let mut len = len.min(self.snd.mss.saturating_sub((header - self.data_header_len()) as u32).max(1));
        if kind == Send::New && len == self.snd.mss && !retransmission {
            len = self.super_segment_len(seq, gso_max.min(buf.len().saturating_sub(header)) as u32);
        }
        let fin_sent_before = kind == Send::New || probe || self.snd.max > data_end;
        let with_fin = fin_wanted && fin_sent_before && seq + len == data_end;
        let mut flags = TcpFlags::empty();
        if with_fin {
            flags |= TcpFlags::FIN;
        }
        if len > 0 && seq + len == data_end {
            flags |= TcpFlags::PSH;
        }
        let room = buf.len().saturating_sub(header);
        let len = len.min(room as u32);
        let offset = seq.since(self.snd.una) as usize;
        let copied = self.snd.buf.read_at(offset, &mut buf[header..header + len as usize]);
        let segment_size = if copied as u32 > self.snd.mss { self.snd.mss } else { 0 };
        let mut out =
            self.emit(now, buf, seq, Some(self.rcv.nxt), flags, copied, TcpOptions::NONE, header, segment_size > 0)?;
        if segment_size > 0 {
            out.segment_size = segment_size;
            // emit counted one segment; the datapath sends one per piece.
            self.info.segs_out += u64::from((copied as u32).div_ceil(segment_size) - 1);
        }
        if with_fin {
            self.snd.fin_sent = Some(seq + copied as u32);
        }
        let used = copied as u32 + u32::from(with_fin);
        let end = seq + used;
        if retransmission {
            let fast = match kind {
                Send::Fast | Send::Probe => true,
                Send::Lost(_) => self.loss.recover.is_some(),
                _ => false,
            };
            if fast {
                self.info.fast_retransmits += 1;
            } else {
                self.info.timeout_retransmits += 1;
            }
            self.info.bytes_retransmitted += copied as u64;
            let fresh = end.since(self.snd.max);
            self.info.bytes_sent += u64::from(fresh.min(copied as u32));
            if self.sack_ok {
                let (max, recovering) = (self.snd.max, self.loss.recover.is_some());
                let sk = self.sk_mut();
                if !sk.sb.on_retransmit(seq, end.min(max), now) {
                    sk.rtx_full = true;
                }
                sk.note_undo_retransmit(seq, end.min(max));
                if recovering {
                    sk.prr.out = sk.prr.out.saturating_add(used);
                }
            }
        } else {
            if self.sack_ok {
                let recovering = self.loss.recover.is_some();
                let sk = self.sk_mut();
                sk.sb.on_send(end, now);
                if recovering {
                    sk.prr.out = sk.prr.out.saturating_add(used);
                }
            }
            self.info.bytes_sent += copied as u64;
            self.snd.last_data_sent = now;
            // The last piece of a super-segment is the one that may be short.
            if copied > 0 && !(copied as u32).is_multiple_of(self.snd.mss) {
                self.snd.sml = seq + copied as u32;
            }
            if self.loss.timing.is_none() && self.loss.recover.is_none() && copied > 0 {
                self.loss.timing = Some((seq, now));
            }
        }
        match kind {
            Send::New | Send::ProbeNew => self.snd.nxt = end,
            Send::Head => self.snd.nxt = self.snd.nxt.max(end),
            Send::Fast | Send::Lost(_) | Send::Probe => {}
        }
        self.snd.max = self.snd.max.max(end);
        self.timers[Timer::Persist] = None;
        if self.timers[Timer::Retransmit].is_none() {
            self.timers[Timer::Retransmit] = Some(self.retransmit_deadline(now));
        }
        if kind == Send::New && self.sack_ok {
            // A probe armed when one segment was out waits for a delayed ACK (200 ms more): the
            // second segment of the flight brings it back to two RTTs (Linux schedules the
            // probe once the whole write is out, with the flight it left).
            let lone = self.snd.max.since(self.snd.una) <= 2 * self.snd.mss
                && self.sk().is_some_and(|sk| sk.rack.probe)
                && self.snd.max.since(self.snd.una) > self.snd.mss;
            if self.timers[Timer::Rack].is_none() || lone {
                self.schedule_loss_probe(now);
            }
        }
        Some(out)
    }

    /// Starts the persist timer when data waits on the peer's window and nothing is in flight
    /// (so no ACK will come to open it).
    pub(crate) fn arm_persist(&mut self, now: Instant) {
        if self.timers[Timer::Persist].is_none()
            && self.snd.max == self.snd.una
            && self.timers[Timer::Retransmit].is_none()
        {
            let base = self.rtt.rto().max(self.config.rto_min);
            let when = base.checked_mul(1 << self.persist_backoff.min(16)).unwrap_or(self.config.rto_max);
            let when = self.clamp_probe_to_user_timeout(now, when.min(self.config.rto_max));
            self.timers[Timer::Persist] = Some(now + when);
        }
    }

    /// SACK blocks while out-of-order data is held (RFC 2018): the block with the latest
    /// arrival first, then the others from the highest; as many as fit beside the other options
    /// (three with timestamps).
    fn sack_blocks(&self, options: &mut TcpOptions) {
        if !self.sack_ok {
            return;
        }
        let mut n = 0;
        if let Some((s, e)) = self.sk().and_then(|sk| sk.dsack) {
            // A D-SACK block comes first (RFC 2883 4).
            options.sack_blocks[0] = Some((s.0, e.0));
            n = 1;
        }
        let ranges = self.rcv.buf.out_of_order();
        if ranges.is_empty() {
            return;
        }
        let room = if options.timestamp.is_some() { 3 } else { wire::tcp::MAX_SACK_BLOCKS };
        let latest = self.rcv.last_ooo.since(self.rcv.nxt);
        let block = |r: &(u32, u32)| Some(((self.rcv.nxt + r.0).0, (self.rcv.nxt + r.1).0));
        let first = ranges.iter().position(|r| r.0 <= latest && latest < r.1);
        if let Some(i) = first {
            options.sack_blocks[n] = block(&ranges[i]);
            n += 1;
        }
        for (i, r) in ranges.iter().enumerate().rev() {
            if n == room {
                break;
            }
            if Some(i) != first {
                options.sack_blocks[n] = block(r);
                n += 1;
            }
        }
    }

    /// The bytes SACK blocks add to a segment's header now (0 without out-of-order data).
    fn sack_room(&self) -> usize {
        if !self.sack_ok || (!self.rcv.buf.has_holes() && self.sk().is_none_or(|sk| sk.dsack.is_none())) {
            return 0;
        }
        let mut o = TcpOptions::NONE;
        o.timestamp = self.ts.map(|_| (0, 0));
        let base = o.encoded_len();
        self.sack_blocks(&mut o);
        o.encoded_len() - base
    }

    /// The header of a segment other than a SYN: 20 bytes, and the timestamp option if on.
    fn data_header_len(&self) -> usize {
        wire::tcp::HEADER_LEN + if self.ts.is_some() { super::timestamps::OPTION_LEN as usize } else { 0 }
    }

    /// Writes a segment whose payload (`payload_len` bytes) is already at `payload_at`. Every
    /// segment but a RST carries the timestamp option once it is on. A super-segment gets the
    /// partial checksum the segmenting datapath completes (`partial_checksum`).
    #[allow(clippy::too_many_arguments)]
    fn emit(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        seq: Seq,
        ack: Option<Seq>,
        flags: TcpFlags,
        payload_len: usize,
        mut options: TcpOptions,
        payload_at: usize,
        partial_checksum: bool,
    ) -> Option<Outgoing> {
        let syn = flags.contains(TcpFlags::SYN);
        let rst = flags.contains(TcpFlags::RST);
        if let (Some(ts), false) = (self.ts, rst) {
            options.timestamp = Some(ts.option(now));
        }
        let mut dsack = false;
        if !syn && !rst && ack.is_some() {
            self.sack_blocks(&mut options);
            dsack = self.sack_ok && self.sk().is_some_and(|sk| sk.dsack.is_some());
        }
        let window = if rst {
            0
        } else if syn {
            ((self.rcv.buf.free() as u32).saturating_sub(self.rcv.slack).min(65_535)) as u16
        } else {
            // Rounded to the scale, the window never moves the right edge already advertised
            // to the left (Linux's ALIGN in tcp_select_window): the promised edge is rounded
            // up, within the storage the buffer's slack keeps for it.
            let ws = self.rcv.wscale;
            let promised = self.rcv.adv.since(self.rcv.nxt);
            let keep_edge = promised.div_ceil(1 << ws);
            let backed = self.rcv.buf.free() as u32 >> ws;
            let scaled = (self.advertisable_window() >> ws).max(keep_edge.min(backed)).min(65_535);
            self.rcv.adv = self.rcv.adv.max(self.rcv.nxt + (scaled << ws));
            scaled as u16
        };
        if syn {
            self.rcv.adv = self.rcv.adv.max(self.rcv.nxt + u32::from(window));
        }
        let urgent = if syn || rst { None } else { self.urgent_field(seq) };
        let repr = TcpRepr {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            seq: seq.0,
            ack: ack.map(|a| a.0),
            flags: if urgent.is_some() { flags | TcpFlags::URG } else { flags },
            window,
            urgent: urgent.unwrap_or(0),
            options,
            payload_len,
        };
        let header = repr.header_len();
        if payload_len > 0 && payload_at != header {
            // Options moved the payload: shift it (data segments are built at
            // data_header_len, so this does not happen on the data path).
            buf.copy_within(payload_at..payload_at + payload_len, header);
        }
        let mut segment = TcpSegment::new_unchecked(&mut *buf);
        if partial_checksum {
            repr.emit_partial(&mut segment, *self.local.ip(), *self.remote.ip()).ok()?;
        } else {
            repr.emit(&mut segment, *self.local.ip(), *self.remote.ip()).ok()?;
        }
        if ack.is_some() {
            self.ack_sent();
        }
        if dsack {
            // Reported once.
            self.sk_mut().dsack = None;
            self.info.dsacks_sent += 1;
        }
        self.info.segs_out += 1;
        self.last_send = now;
        Some(Outgoing { len: repr.buffer_len(), segment_size: 0, header_len: header })
    }
}
