//! What arrives: segment processing of RFC 9293 3.10.7, with RFC 5961's defences (exact-match
//! RST, challenge ACKs for in-window RSTs and SYNs, ACK range check), and in-order delivery
//! through the reassembler. When to acknowledge is decided in `ack.rs`, what a duplicate or
//! new ACK means for loss recovery in `recovery.rs`.

use super::connection::{Connection, Timer};
use super::error::TcpError;
use super::recv_buffer::Arrival;
use super::seq::Seq;
use super::state::State;
use crate::time::Instant;
use wire::{TcpFlags, TcpRepr};

impl Connection {
    /// Processes one segment addressed to this connection.
    pub fn handle_segment(&mut self, now: Instant, repr: &TcpRepr, payload: &[u8]) {
        self.info.segs_in += 1;
        let payload = &payload[..payload.len().min(repr.payload_len)];
        match self.state {
            State::Closed | State::Listen => {}
            State::SynSent => self.on_syn_sent(now, repr),
            _ => self.on_synchronized(now, repr, payload),
        }
    }

    fn on_syn_sent(&mut self, now: Instant, repr: &TcpRepr) {
        let flags = repr.flags;
        if let Some(ack) = repr.ack.map(Seq) {
            if ack <= self.snd.iss || ack > self.snd.max {
                if !flags.contains(TcpFlags::RST) {
                    self.rst_pending = Some(ack);
                }
                return;
            }
        }
        if flags.contains(TcpFlags::RST) {
            if repr.ack.is_some() {
                self.fail(Some(TcpError::ConnectionRefused));
            }
            return;
        }
        if !flags.contains(TcpFlags::SYN) {
            return;
        }
        self.take_syn_options(now, repr);
        self.rcv.irs = Seq(repr.seq);
        self.rcv.nxt = self.rcv.irs + 1;
        self.rcv.adv = self.rcv.nxt;
        self.rcv.wup = self.rcv.nxt;
        self.last_recv = now;
        self.snd.wl1 = self.rcv.irs;
        match repr.ack.map(Seq) {
            Some(ack) => {
                // Our SYN is acknowledged. The window of a SYN is never scaled (RFC 7323 2.2).
                self.snd.wnd = u32::from(repr.window);
                self.snd.max_wnd = self.snd.wnd;
                self.snd.wl2 = ack;
                self.snd.una = ack;
                self.snd.nxt = self.snd.nxt.max(ack);
                if self.loss.retries == 0 {
                    if let Some((_, sent)) = self.loss.timing {
                        self.rtt.sample(now.saturating_since(sent));
                    }
                } else {
                    // A retransmitted SYN: only the echoed timestamp tells which copy came back.
                    self.sample_echoed_timestamp(now, repr);
                }
                self.loss.timing = None;
                self.timers[Timer::Retransmit] = None;
                self.loss.backoff = 0;
                self.loss.retries = 0;
                self.enter_established(now);
                self.ack.now = true;
            }
            None => {
                // Simultaneous open: answer with SYN-ACK (the same ISS).
                self.snd.wnd = u32::from(repr.window);
                self.snd.max_wnd = self.snd.wnd;
                self.state = State::SynReceived;
                self.snd.nxt = self.snd.iss;
                self.timers[Timer::Retransmit] = None;
            }
        }
    }

    pub(crate) fn enter_established(&mut self, now: Instant) {
        // shutdown(SHUT_WR) during the handshake takes effect now.
        self.state = if self.snd.fin_queued { State::FinWait1 } else { State::Established };
        // A handshake that lost segments (Linux's tcp_init_transfer and tcp_init_metrics): no
        // RTT sample leaves the data phase RFC 6298 5.7's 3 s RTO instead of the initial 1 s,
        // and more than one retransmission of the SYN or SYN-ACK an initial window of one
        // segment (RFC 5681 3.1; Linux forgives one, which the 1 s RTO alone may cause).
        self.rtt.fall_back(self.config.rto_fallback);
        if self.info.timeout_retransmits > 1 {
            self.cc = self.options.congestion.build(1, self.snd.mss);
        }
        self.ack.quickacks = self.config.quickacks;
        self.init_rcv_space(now);
        if self.options.keepalive {
            self.timers[Timer::Keepalive] = Some(now + self.options.keep_idle);
        }
        self.arrived();
    }

    fn on_synchronized(&mut self, now: Instant, repr: &TcpRepr, payload: &[u8]) {
        let flags = repr.flags;
        let seq = Seq(repr.seq);
        let rcv_wnd = self.rcv.adv.since(self.rcv.nxt);
        let seg_len =
            payload.len() as u32 + u32::from(flags.contains(TcpFlags::SYN)) + u32::from(flags.contains(TcpFlags::FIN));
        // Idle longer than an RTO since the last segment: back to quick ACKs (Linux's
        // tcp_event_data_recv measures from the last receipt).
        let idle_receiver = now.saturating_since(self.last_recv) > self.rtt.rto();

        // 0. PAWS (RFC 7323 5.3): a segment with an older timestamp than the last one taken
        //    is an old duplicate, answered like any unacceptable segment. A RST is exempt.
        if !flags.contains(TcpFlags::RST) && self.paws_rejects(now, repr, payload.len()) {
            self.info.rcv_dropped += 1;
            self.info.paws_rejected += 1;
            let bare = seg_len == 0;
            self.ack_unacceptable(now, bare);
            return;
        }

        // 1. Sequence number check (RSTs follow RFC 5961 3.2 instead).
        if flags.contains(TcpFlags::RST) {
            if seq == self.rcv.nxt {
                self.on_reset();
            } else if seq.in_range(self.rcv.nxt, self.rcv.nxt + rcv_wnd.max(1)) {
                self.challenge_ack(now);
            }
            return;
        }
        // Linux's tcp_sequence: not wholly before the left edge of the window last
        // advertised, not starting past its right edge. Old duplicates still carry a useful ACK.
        let window_end = self.rcv.nxt + rcv_wnd;
        let acceptable = seq + seg_len >= self.rcv.wup && seq <= window_end;
        // 2. SYN in a synchronized state: a retransmitted SYN gets its SYN-ACK again,
        //    anything else a challenge ACK (RFC 5961 4).
        let mut seq = seq;
        let mut acceptable = acceptable;
        if flags.contains(TcpFlags::SYN) {
            let simultaneous_synack = self.state == State::SynReceived
                && !self.passive
                && seq + 1 == self.rcv.nxt
                && repr.ack == Some(self.snd.nxt.0);
            if simultaneous_synack {
                // Simultaneous open: the peer's SYN-ACK acknowledges ours (RFC 9293 figure 8).
                seq = self.rcv.nxt;
                acceptable = true;
            } else if self.state == State::SynReceived && seq == self.rcv.irs && repr.ack.is_none() {
                // The peer did not get our SYN-ACK: send it again, and time neither (Karn: the
                // final ACK could answer either copy).
                self.snd.nxt = self.snd.iss;
                self.loss.timing = None;
                return;
            } else {
                self.challenge_ack(now);
                return;
            }
        }
        let mut data = payload;
        let mut fin = flags.contains(TcpFlags::FIN);
        if !acceptable {
            self.info.rcv_dropped += 1;
            self.ack_unacceptable(now, data.is_empty() && !fin);
            return;
        }
        // TS.Recent follows the segments that start at or before the point our last ACK
        // acknowledged (RFC 7323 4.3; Linux's tcp_replace_ts_recent checks against rcv_wup).
        if let (Some(ts), Some((tsval, _))) = (self.ts.as_mut(), repr.options.timestamp) {
            if seq <= self.rcv.wup {
                ts.update_recent(tsval, now);
            }
        }
        // Only an acceptable segment shows the peer alive (keepalive) or restarts TIME_WAIT.
        self.last_recv = now;
        self.keep_probes = 0;
        if self.state == State::TimeWait && fin {
            // A retransmitted FIN: our last ACK was lost. Acknowledge again, wait 2 MSL again.
            self.timers[Timer::Close] = Some(now + self.config.time_wait);
            self.ack.now = true;
        }

        // 3. ACK.
        let Some(ack) = repr.ack.map(Seq) else { return };
        // An arriving ACK pushes pending data under the socket's own Nagle and cork settings
        // (Linux's tcp_data_snd_check): MSG_MORE held only the push of its own call.
        self.snd.more = false;
        if self.state == State::SynReceived {
            if ack <= self.snd.una || ack > self.snd.max {
                self.rst_pending = Some(ack);
                return;
            }
            // The SYN-ACK of a simultaneous open carries an unscaled window (RFC 7323 2.2).
            self.snd.wnd = u32::from(repr.window) << if flags.contains(TcpFlags::SYN) { 0 } else { self.snd.wscale };
            self.snd.max_wnd = self.snd.wnd;
            self.snd.wl1 = seq;
            self.snd.wl2 = ack;
            self.syn_acked(now, ack, repr);
            self.enter_established(now);
        }
        if ack > self.snd.max {
            self.ack.now = true;
            return;
        }
        if ack < self.snd.una - self.snd.max_wnd.max(self.snd.mss) {
            self.challenge_ack(now);
            return;
        }
        let window = u32::from(repr.window) << if flags.contains(TcpFlags::SYN) { 0 } else { self.snd.wscale };
        // The peer answers: zero-window probes count toward the limit only while unanswered
        // (RFC 9293 3.8.6.1; Linux's tcp_ack clears icsk_probes_out on every ACK not older
        // than snd_una).
        if ack >= self.snd.una {
            self.probes = 0;
        }
        let (old_una, sacked_before) = (self.snd.una, self.sk().map_or(0, |sk| sk.sb.sacked_bytes()));
        let pipe_before = if self.sack_ok { self.in_flight() } else { 0 };
        if self.sack_ok {
            self.take_sack_blocks(now, repr, ack);
        }
        if ack > self.snd.una {
            self.on_new_ack(now, ack, repr);
        } else if !self.sack_ok
            && ack == self.snd.una
            && data.is_empty()
            && !fin
            && window == self.snd.wnd
            && self.snd.max > self.snd.una
        {
            self.on_dup_ack();
        }
        if ack >= self.snd.una && (self.snd.wl1 < seq || (self.snd.wl1 == seq && self.snd.wl2 <= ack)) {
            if window > 0 && self.snd.wnd == 0 {
                self.timers[Timer::Persist] = None;
                self.persist_backoff = 0;
                self.probes_since = None;
            }
            self.snd.wnd = window;
            self.snd.max_wnd = self.snd.max_wnd.max(window);
            self.snd.wl1 = seq;
            self.snd.wl2 = ack;
        }
        if self.state == State::Closed {
            return;
        }
        if self.sack_ok && ack >= old_una {
            self.on_sack_ack(now, old_una, sacked_before, pipe_before);
        }

        // 3b. URG (Linux's tcp_urg, before the data is queued).
        if self.state.can_receive() && !self.orphan {
            self.on_urgent(repr, data);
        }

        // 4. Data.
        if seq < self.rcv.nxt {
            let old = self.rcv.nxt.since(seq) as usize;
            if self.sack_ok && !data.is_empty() && self.state.can_receive() {
                // Bytes received before: reported once in a D-SACK block (RFC 2883).
                let end = seq + old.min(data.len()) as u32;
                self.sk_mut().dsack = Some((seq, end));
                self.ack.now = true;
            }
            if old >= data.len() && (!data.is_empty() || fin) {
                // A duplicate: acknowledge at once so the sender learns where we are.
                self.ack.now = true;
            }
            if old > data.len() {
                // The FIN was seen already too.
                fin = false;
            }
            data = &data[old.min(data.len())..];
        }
        let start = seq.max(self.rcv.nxt);
        if !data.is_empty() {
            if self.orphan {
                // New data for a socket the application closed: Linux resets.
                self.reset(None);
                return;
            }
            if !self.state.can_receive() {
                data = &[];
                fin = false;
            }
        }
        if !data.is_empty() {
            let offset = start.since(self.rcv.nxt) as usize;
            if self.sack_ok && offset > 0 {
                self.note_duplicate_out_of_order(offset as u32, data.len() as u32);
            }
            let had_holes = self.rcv.buf.has_holes();
            match self.rcv.buf.insert(offset, data) {
                Arrival::InOrder(n) => {
                    self.rcv.nxt = self.rcv.nxt + n as u32;
                    self.info.bytes_received += n as u64;
                    self.rcv_rtt_measure(now, repr, data.len());
                    self.rcv_space_adjust(now);
                    self.rcv.mss = self.rcv.mss.max((data.len() as u32).min(self.rcv.our_mss));
                    self.arrived();
                    // A hole filled or still open is news for the sender at once.
                    let holes = had_holes || n > data.len() || self.rcv.buf.has_holes();
                    self.ack_in_order(now, n as u32, holes, idle_receiver);
                    if n < data.len() {
                        fin = false;
                    }
                }
                Arrival::OutOfOrder => {
                    self.rcv.last_ooo = start;
                    self.ack_out_of_order();
                    if fin {
                        self.rcv.fin_pending = Some(start + data.len() as u32);
                    }
                    fin = false;
                }
                Arrival::Dropped => {
                    self.info.rcv_dropped += 1;
                    self.ack.now = true;
                    fin = false;
                }
            }
        }

        // 5. FIN.
        if fin && !self.rcv.fin_received {
            let fin_seq = start + data.len() as u32;
            if fin_seq == self.rcv.nxt {
                self.on_fin(now);
            } else if fin_seq > self.rcv.nxt {
                self.rcv.fin_pending = Some(fin_seq);
            }
        } else if let Some(f) = self.rcv.fin_pending {
            if f == self.rcv.nxt && !self.rcv.fin_received {
                self.rcv.fin_pending = None;
                self.on_fin(now);
            }
        }
    }

    fn on_reset(&mut self) {
        match self.state {
            State::SynReceived if self.passive => self.fail(None),
            State::SynReceived => self.fail(Some(TcpError::ConnectionRefused)),
            State::Established | State::FinWait1 | State::FinWait2 | State::CloseWait => {
                self.fail(Some(TcpError::ConnectionReset))
            }
            _ => self.fail(None),
        }
    }

    fn on_fin(&mut self, now: Instant) {
        self.rcv.nxt = self.rcv.nxt + 1;
        self.rcv.fin_received = true;
        self.ack.now = true;
        self.arrived();
        match self.state {
            State::SynReceived | State::Established => self.state = State::CloseWait,
            State::FinWait1 => self.state = State::Closing,
            State::FinWait2 => self.enter_time_wait(now),
            _ => {}
        }
    }

    pub(crate) fn enter_time_wait(&mut self, now: Instant) {
        self.state = State::TimeWait;
        self.timers[Timer::Retransmit] = None;
        self.timers[Timer::Persist] = None;
        self.timers[Timer::Keepalive] = None;
        self.timers[Timer::Close] = Some(now + self.config.time_wait);
        self.arrived();
    }

    /// Our SYN (or SYN-ACK) is acknowledged by `ack`: it takes its one sequence number and no
    /// byte of the send buffer. Only the SYN_SENT and SYN_RECEIVED transitions call this, so
    /// an ACK that lands on the ISS again 2^32 bytes later is an ordinary ACK.
    fn syn_acked(&mut self, now: Instant, ack: Seq, repr: &TcpRepr) {
        match self.loss.timing {
            Some((timed, sent)) if ack > timed => {
                self.rtt.sample(now.saturating_since(sent));
                self.loss.timing = None;
            }
            _ => self.sample_echoed_timestamp(now, repr),
        }
        self.snd.una = self.snd.iss + 1;
        self.snd.nxt = self.snd.nxt.max(self.snd.una);
        self.loss.backoff = 0;
        self.loss.retries = 0;
        // on_new_ack re-arms it if more than the SYN is acknowledged and data is in flight.
        self.timers[Timer::Retransmit] = None;
    }

    fn on_new_ack(&mut self, now: Instant, ack: Seq, repr: &TcpRepr) {
        let acked = ack.since(self.snd.una);
        // The timed segment gives the finer sample; without one (Karn's rule after a
        // retransmission, or in recovery) the echoed timestamp gives one (Linux's
        // tcp_ack_update_rtt), so the RTO keeps following the path through loss.
        // With SACK the send log dates the first newly acknowledged byte to the microsecond
        // (Linux's seq_rtt); echoed timestamps tick in milliseconds, too coarse for a LAN's RTT,
        // and serve only when that byte may have been sent twice.
        let logged = self.sk().and_then(|sk| sk.sb.rtt_sent_at(self.snd.una));
        match (self.loss.timing, logged) {
            (Some((timed, sent)), _) if ack > timed => {
                self.rtt.sample(now.saturating_since(sent));
                self.loss.timing = None;
            }
            (_, Some(sent)) => self.rtt.sample(now.saturating_since(sent)),
            _ => self.sample_echoed_timestamp(now, repr),
        }
        self.loss.backoff = 0;
        self.loss.retries = 0;
        self.probes = 0;
        let data = acked.min(self.snd.buf.len() as u32);
        if data > 0 {
            // Data sent by a probe (a corked tail) was acknowledged: the next hold starts from
            // the base probe interval again (Linux resets icsk_backoff on an RTT sample).
            self.persist_backoff = 0;
        }
        self.snd.buf.ack(data as usize);
        self.info.bytes_acked += u64::from(data);
        let in_flight_before = self.snd.max.since(self.snd.una);
        if self.sack_ok {
            let (una, min_rtt) = (self.snd.una, self.rtt.min_rtt());
            let sk = self.sk_mut();
            let mut news = sk.news;
            sk.sb.on_cumulative_ack(una, ack, now, min_rtt, &mut news);
            sk.news = news;
        }
        self.snd.una = ack;
        if self.snd.nxt < self.snd.una {
            self.snd.nxt = self.snd.una;
        }
        // Minshall's mark follows snd_una (it only matters while ahead of it), so that it is
        // never left 2^31 bytes behind, where circular order would put it ahead again.
        if self.snd.sml < self.snd.una {
            self.snd.sml = self.snd.una;
        }
        self.urgent_acked();
        if !self.sack_ok {
            self.on_ack_for_recovery(now, ack, acked, data, in_flight_before);
        }
        self.timers[Timer::Retransmit] = if self.snd.una == self.snd.max { None } else { Some(now + self.rtt.rto()) };
        if data > 0 {
            self.arrived();
        }
        if self.fin_acked() {
            match self.state {
                State::FinWait1 => {
                    self.state = State::FinWait2;
                    if self.orphan {
                        self.timers[Timer::Close] = Some(now + self.config.fin_timeout);
                    }
                }
                State::Closing => self.enter_time_wait(now),
                State::LastAck => {
                    self.enter_closed();
                    self.arrived();
                }
                _ => {}
            }
        }
    }

    /// An out-of-order segment at `offset` past rcv.nxt, `len` bytes long: any part of it
    /// already held is reported once in a D-SACK block (RFC 2883 4.1.2, Linux's
    /// tcp_data_queue_ofo).
    fn note_duplicate_out_of_order(&mut self, offset: u32, len: u32) {
        let end = offset + len;
        if let Some(&(a, b)) = self.rcv.buf.out_of_order().iter().find(|&&(a, b)| a < end && offset < b) {
            let (s, e) = (a.max(offset), b.min(end));
            let nxt = self.rcv.nxt;
            self.sk_mut().dsack = Some((nxt + s, nxt + e));
        }
    }

    /// An RTT sample from the TSecr of a segment that acknowledges something new.
    fn sample_echoed_timestamp(&mut self, now: Instant, repr: &TcpRepr) {
        if let (Some(ts), Some((_, tsecr))) = (self.ts, repr.options.timestamp) {
            if let Some(rtt) = ts.rtt(tsecr, now) {
                self.rtt.sample(rtt);
            }
        }
    }

    /// PAWS with Linux's exception for a reordered pure duplicate ACK (tcp_disordered_ack):
    /// one that changes nothing, with a TSval behind by less than an RTO, is let through so
    /// that its duplicate-ACK count is not lost.
    fn paws_rejects(&self, now: Instant, repr: &TcpRepr, payload_len: usize) -> bool {
        let (Some(ts), Some((tsval, _))) = (self.ts, repr.options.timestamp) else { return false };
        if !ts.paws_rejects(tsval, now) {
            return false;
        }
        let seq = Seq(repr.seq);
        let Some(ack) = repr.ack.map(Seq) else { return true };
        let window = u32::from(repr.window) << self.snd.wscale;
        let updates_window = ack > self.snd.una || seq > self.snd.wl1 || (seq == self.snd.wl1 && window > self.snd.wnd);
        let pure_duplicate = payload_len == 0
            && !repr.flags.intersects(TcpFlags::SYN | TcpFlags::FIN)
            && seq == self.rcv.nxt
            && ack == self.snd.una
            && !updates_window;
        let replay_window = self.rtt.rto().as_millis() as u32;
        !(pure_duplicate && ts.behind(tsval, now) <= replay_window)
    }
}
