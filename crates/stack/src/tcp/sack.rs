//! The sender's SACK scoreboard (RFC 2018, RFC 6675) in a form that costs O(holes), not
//! O(segments in flight): the ranges the peer SACKed above snd.una, the ranges retransmitted and
//! not yet delivered (each with the time it left), a "lost" frontier below which every byte
//! neither SACKed nor retransmitted is deemed lost (RACK, `rack.rs`, moves it; so does a
//! retransmission timeout), and a log of when original data left, one entry per burst, which
//! RACK reads a segment's send time from (sequence order is send order for original data).
//!
//! Linux keeps a mark per sk_buff and walks them (tcp_sacktag_write_queue); the ranges here
//! hold the same information for a stream whose SACKed, lost and retransmitted parts are runs.
//! Storage is reserved once, when the first SACK block or the first send needs it, and never
//! grows: a full table gives up the least useful information (which only makes the sender more
//! cautious), never allocates on the packet path.

use super::seq::Seq;
use crate::time::Instant;
use std::collections::VecDeque;

/// SACKed ranges kept (a peer reports at most a few new ones per ACK; Linux's receiver keeps
/// at most 4 blocks' worth of news, but its out-of-order queue may hold more holes).
pub(crate) const MAX_SACKED: usize = 32;
/// Retransmitted ranges kept.
pub(crate) const MAX_RETRANSMITTED: usize = 2 * MAX_SACKED + 2;
/// Bursts of original data whose send time is remembered.
pub(crate) const MAX_SENDS: usize = 64;

/// Retransmitted ranges remembered for D-SACK undo.
pub(crate) const MAX_UNDO_RANGES: usize = 16;

/// What an ACK's SACK blocks changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SackNews {
    /// Bytes newly SACKed.
    pub(crate) sacked: u32,
    /// The latest send time among the bytes newly SACKed (a retransmission's own), with the end
    /// of the range it belongs to: what RACK advances to. `None` when nothing new was SACKed or
    /// the only news was a retransmission that came back too soon to be the one delivered.
    pub(crate) latest: Option<(Instant, Seq)>,
    /// Bytes newly SACKed that had been retransmitted (the RTT of such a delivery is ambiguous).
    pub(crate) retransmitted: bool,
    /// Newly SACKed bytes lie below data SACKed before and were never retransmitted: the
    /// network reordered (Linux's tcp_check_sack_reordering).
    pub(crate) reordered: bool,
    /// The highest SACKed sequence number before this ACK.
    pub(crate) highest: Seq,
}

/// A SACK connection's loss-recovery state, boxed so that connections that never send pay a
/// pointer for it.
#[derive(Debug)]
pub(crate) struct SackState {
    pub(crate) sb: Scoreboard,
    pub(crate) rack: super::rack::Rack,
    /// What the SACK blocks of the ACK being processed changed.
    pub(crate) news: SackNews,
    /// Proportional rate reduction in recovery (RFC 6937).
    pub(crate) prr: super::connection::Prr,
    /// What undoing the current or last reduction restores (cwnd, ssthresh), and how many of
    /// its retransmissions no D-SACK has shown spurious yet (Linux's undo_marker and
    /// undo_retrans).
    pub(crate) undo: Option<(u32, u32)>,
    pub(crate) undo_retrans: u32,
    /// The ranges retransmitted since the reduction began (Linux's TCPCB_EVER_RETRANS marks):
    /// only a D-SACK for one of them shows a retransmission needless; a D-SACK for data sent
    /// once means the network duplicated it. At most `MAX_UNDO_RANGES`; past that the
    /// reduction can no longer be proven needless and stays.
    pub(crate) undo_ranges: Vec<(Seq, Seq)>,
    /// A retransmission found the scoreboard's table full: no more lost data goes out until
    /// the next ACK (so that a pipe that cannot count it never lets the same bytes out again).
    pub(crate) rtx_full: bool,
    /// As a receiver: a duplicate segment's range, reported once as the first SACK block of
    /// the next ACK (D-SACK, RFC 2883).
    pub(crate) dsack: Option<(Seq, Seq)>,
}

impl SackState {
    /// A reduction begins with `prior` (cwnd, ssthresh) to restore if it proves needless.
    pub(crate) fn start_undo(&mut self, prior: (u32, u32)) {
        self.undo = Some(prior);
        self.undo_retrans = 0;
        self.undo_ranges.clear();
    }

    /// [`start`, `end`) was retransmitted during the reduction.
    pub(crate) fn note_undo_retransmit(&mut self, start: Seq, end: Seq) {
        if self.undo.is_none() {
            return;
        }
        self.undo_retrans += 1;
        if let Some(last) = self.undo_ranges.last_mut() {
            if last.1 == start || (last.0 <= start && end <= last.1) {
                last.1 = last.1.max(end);
                return;
            }
        }
        if self.undo_ranges.len() == MAX_UNDO_RANGES {
            // Too many to tell a duplicate from a needless retransmission: keep the reduction.
            self.undo = None;
            return;
        }
        self.undo_ranges.push((start, end));
    }

    /// Whether [`start`, `end`) overlaps a range retransmitted during the reduction.
    pub(crate) fn was_retransmitted(&self, start: Seq, end: Seq) -> bool {
        self.undo_ranges.iter().any(|&(s, e)| s < end && start < e)
    }

    /// Fresh state for data from `una` (the scoreboard's tables are reserved when first used).
    pub(crate) fn new(una: Seq) -> SackState {
        SackState {
            sb: Scoreboard::new(una),
            rack: super::rack::Rack::default(),
            news: SackNews::default(),
            prr: super::connection::Prr::default(),
            undo: None,
            undo_retrans: 0,
            undo_ranges: Vec::with_capacity(MAX_UNDO_RANGES),
            rtx_full: false,
            dsack: None,
        }
    }
}

/// The scoreboard.
#[derive(Debug, Default)]
pub(crate) struct Scoreboard {
    /// SACKed ranges above snd.una, sorted, disjoint and not touching.
    sacked: Vec<(Seq, Seq)>,
    sacked_bytes: u32,
    /// Retransmitted ranges, neither delivered nor deemed lost again: (start, end, when sent).
    /// Sorted by sequence, disjoint, never overlapping a SACKed range.
    rtx: Vec<(Seq, Seq, Instant)>,
    rtx_bytes: u32,
    /// Every byte below this that is neither SACKed nor in `rtx` is lost.
    lost_high: Seq,
    /// Original transmissions: (end of the burst, when its last byte left), oldest first.
    sends: VecDeque<(Seq, Instant)>,
    /// Set once storage is reserved.
    reserved: bool,
    /// The end of the highest retransmission so far: data below it may have left twice, and
    /// its send time says nothing certain about an ACK's round trip (Karn).
    rtx_high: Option<Seq>,
}

impl Scoreboard {
    /// An empty scoreboard for a connection whose data starts at `una` (no storage yet).
    pub(crate) fn new(una: Seq) -> Scoreboard {
        Scoreboard { lost_high: una, ..Scoreboard::default() }
    }

    fn reserve(&mut self) {
        if !self.reserved {
            self.reserved = true;
            self.sacked.reserve_exact(MAX_SACKED);
            self.rtx.reserve_exact(MAX_RETRANSMITTED);
            self.sends.reserve_exact(MAX_SENDS);
        }
    }

    /// Nothing SACKed, lost or retransmitted: the pipe is the flight (the fast path).
    pub(crate) fn is_clear(&self, una: Seq) -> bool {
        self.sacked.is_empty() && self.rtx.is_empty() && self.lost_high <= una
    }

    /// Bytes SACKed above snd.una.
    pub(crate) fn sacked_bytes(&self) -> u32 {
        self.sacked_bytes
    }

    /// The SACKed ranges, lowest first.
    #[cfg(test)]
    pub(crate) fn sacked(&self) -> &[(Seq, Seq)] {
        &self.sacked
    }

    /// The highest SACKed sequence number (`una` when none).
    pub(crate) fn highest_sacked(&self, una: Seq) -> Seq {
        self.sacked.last().map_or(una, |r| r.1)
    }

    /// Where the lost frontier is.
    pub(crate) fn lost_high(&self) -> Seq {
        self.lost_high
    }

    /// Whether `seq` lies in a SACKed range; if so, the range's end.
    pub(crate) fn sacked_end(&self, seq: Seq) -> Option<Seq> {
        self.sacked.iter().find(|r| r.0 <= seq && seq < r.1).map(|r| r.1)
    }

    /// The first SACKed range starting above `seq`.
    pub(crate) fn next_sacked_start(&self, seq: Seq) -> Option<Seq> {
        self.sacked.iter().find(|r| r.0 > seq).map(|r| r.0)
    }

    /// Bytes neither SACKed nor retransmitted below the lost frontier (RFC 6675's lost
    /// octets not yet resent), from `una`.
    pub(crate) fn lost_unrepaired(&self, una: Seq) -> u32 {
        if self.lost_high <= una {
            return 0;
        }
        let mut lost = self.lost_high.since(una);
        for &(s, e) in &self.sacked {
            if s >= self.lost_high {
                break;
            }
            lost -= e.min(self.lost_high).since(s.max(una));
        }
        for &(s, e, _) in &self.rtx {
            if s >= self.lost_high {
                break;
            }
            lost = lost.saturating_sub(e.min(self.lost_high).since(s.max(una)));
        }
        lost
    }

    /// RFC 6675's pipe for `flight` bytes outstanding from `una`: each byte neither SACKed nor
    /// lost counts once, each retransmitted byte once more (Linux's tcp_packets_in_flight:
    /// packets_out - sacked_out - lost_out + retrans_out).
    pub(crate) fn pipe(&self, una: Seq, flight: u32) -> u32 {
        if self.is_clear(una) {
            return flight;
        }
        let lost = self.lost_unrepaired(una) + self.rtx_below_lost(una);
        flight.saturating_sub(self.sacked_bytes).saturating_sub(lost).saturating_add(self.rtx_bytes)
    }

    /// Retransmitted bytes below the lost frontier (lost, then resent: they count once).
    fn rtx_below_lost(&self, una: Seq) -> u32 {
        self.rtx
            .iter()
            .take_while(|r| r.0 < self.lost_high)
            .map(|&(s, e, _)| e.min(self.lost_high).since(s.max(una)))
            .sum()
    }

    /// The first lost byte not yet retransmitted, and how many follow it in the same run
    /// (up to the next SACKed or retransmitted range, or the frontier): RFC 6675's NextSeg()
    /// rule 1.
    pub(crate) fn next_lost(&self, una: Seq) -> Option<(Seq, u32)> {
        let mut at = una;
        loop {
            if at >= self.lost_high {
                return None;
            }
            if let Some(end) = self.sacked_end(at) {
                at = end;
                continue;
            }
            if let Some(&(_, end, _)) = self.rtx.iter().find(|r| r.0 <= at && at < r.1) {
                at = end;
                continue;
            }
            let mut stop = self.lost_high;
            if let Some(s) = self.next_sacked_start(at) {
                stop = stop.min(s);
            }
            if let Some(r) = self.rtx.iter().find(|r| r.0 > at) {
                stop = stop.min(r.0);
            }
            return Some((at, stop.since(at)));
        }
    }

    /// Takes in a SACK block [`start`, `end`) (already checked to lie within (una, snd.max]),
    /// updating `news`. `min_rtt` and `now` tell a retransmission delivered from one whose
    /// original was (Linux's tcp_rack_advance: an ACK sooner than the minimum RTT after the
    /// retransmission answers the original).
    pub(crate) fn add_sacked(
        &mut self,
        una: Seq,
        start: Seq,
        end: Seq,
        now: Instant,
        min_rtt: Option<std::time::Duration>,
        news: &mut SackNews,
    ) {
        let start = start.max(una);
        if start >= end {
            return;
        }
        self.reserve();
        // The parts of [start, end) not yet SACKed, one at a time (between existing ranges).
        let mut at = start;
        while at < end {
            if let Some(e) = self.sacked_end(at) {
                at = e;
                continue;
            }
            let stop = self.next_sacked_start(at).map_or(end, |s| s.min(end));
            self.note_delivered(at, stop, now, min_rtt, news);
            news.sacked += stop.since(at);
            at = stop;
        }
        self.insert_sacked(start, end);
    }

    /// Bytes [`start`, `end`), newly delivered (SACKed or cumulatively acknowledged): what
    /// RACK learns from them, and the retransmitted ranges they end.
    pub(crate) fn note_delivered(
        &mut self,
        start: Seq,
        end: Seq,
        now: Instant,
        min_rtt: Option<std::time::Duration>,
        news: &mut SackNews,
    ) {
        let mut rtx_covered = 0u32;
        let mut i = 0;
        while i < self.rtx.len() {
            let (s, e, t) = self.rtx[i];
            if s >= end {
                break;
            }
            if e <= start {
                i += 1;
                continue;
            }
            news.retransmitted = true;
            rtx_covered += e.min(end).since(s.max(start));
            let too_soon = min_rtt.is_some_and(|m| now.saturating_since(t) < m);
            if !too_soon && news.latest.is_none_or(|(lt, le)| t > lt || (t == lt && e.min(end) > le)) {
                news.latest = Some((t, e.min(end)));
            }
            i += self.cut_rtx(i, start, end);
        }
        // Original data: its send time is the burst's (sequence order is send order).
        if rtx_covered < end.since(start) {
            if let Some(t) = self.sent_at(end - 1) {
                if news.latest.is_none_or(|(lt, le)| t > lt || (t == lt && end > le)) {
                    news.latest = Some((t, end));
                }
            }
            if start < news.highest {
                news.reordered = true;
            }
        }
    }

    /// Removes [`start`, `end`) from the retransmitted range at `i`; returns how far the
    /// caller's index moves (0 when the range went, 1 or 2 when parts stay).
    fn cut_rtx(&mut self, i: usize, start: Seq, end: Seq) -> usize {
        let (s, e, t) = self.rtx[i];
        let cut = e.min(end).since(s.max(start));
        self.rtx_bytes -= cut;
        match (s < start, e > end) {
            (false, false) => {
                self.rtx.remove(i);
                0
            }
            (true, false) => {
                self.rtx[i].1 = start;
                1
            }
            (false, true) => {
                self.rtx[i].0 = end;
                1
            }
            (true, true) => {
                if self.rtx.len() == MAX_RETRANSMITTED {
                    // No room to split: the upper part is deemed lost again (resent if due).
                    self.rtx_bytes -= e.since(end);
                    self.rtx[i].1 = start;
                } else {
                    self.rtx[i].1 = start;
                    self.rtx.insert(i + 1, (end, e, t));
                }
                2
            }
        }
    }

    fn insert_sacked(&mut self, start: Seq, end: Seq) {
        // Ranges that touch [start, end) merge into it.
        let first = self.sacked.iter().position(|r| r.1 >= start).unwrap_or(self.sacked.len());
        let mut last = first;
        let (mut s, mut e) = (start, end);
        while last < self.sacked.len() && self.sacked[last].0 <= end {
            s = s.min(self.sacked[last].0);
            e = e.max(self.sacked[last].1);
            last += 1;
        }
        let removed: u32 = self.sacked[first..last].iter().map(|r| r.1.since(r.0)).sum();
        self.sacked_bytes = self.sacked_bytes - removed + e.since(s);
        if last > first {
            self.sacked[first] = (s, e);
            self.sacked.drain(first + 1..last);
        } else if self.sacked.len() < MAX_SACKED {
            self.sacked.insert(first, (s, e));
        } else if first < self.sacked.len() {
            // Full: the highest range gives way to a lower one (what is lost below matters
            // first); the bytes it covered are merely not known delivered any more.
            let (hs, he) = self.sacked.pop().expect("full");
            self.sacked_bytes -= he.since(hs);
            self.sacked.insert(first, (s, e));
        } else {
            self.sacked_bytes -= e.since(s);
        }
    }

    /// The cumulative ACK moved from `una` to `ack`: the bytes not SACKed before were
    /// delivered (`news`), and what lies below `ack` leaves the scoreboard. A SACKed range
    /// that then starts at the new snd.una means the peer reneged (discarded data it SACKed,
    /// RFC 2018 8): the SACKs are forgotten, and the data will be resent.
    pub(crate) fn on_cumulative_ack(
        &mut self,
        una: Seq,
        ack: Seq,
        now: Instant,
        min_rtt: Option<std::time::Duration>,
        news: &mut SackNews,
    ) {
        if !self.is_clear(una) || !self.sends.is_empty() {
            let mut at = una;
            while at < ack {
                if let Some(e) = self.sacked_end(at) {
                    at = e;
                    continue;
                }
                let stop = self.next_sacked_start(at).map_or(ack, |s| s.min(ack));
                self.note_delivered(at, stop, now, min_rtt, news);
                at = stop;
            }
        }
        self.advance(ack);
        if self.sacked.first().is_some_and(|r| r.0 == ack) {
            self.forget_sacked();
        }
    }

    /// snd.una moved to `una`: what lies below goes.
    pub(crate) fn advance(&mut self, una: Seq) {
        while let Some(&(s, e)) = self.sacked.first() {
            if e <= una {
                self.sacked_bytes -= e.since(s);
                self.sacked.remove(0);
            } else {
                if s < una {
                    self.sacked_bytes -= una.since(s);
                    self.sacked[0].0 = una;
                }
                break;
            }
        }
        while let Some(&(s, e, _)) = self.rtx.first() {
            if e <= una {
                self.rtx_bytes -= e.since(s);
                self.rtx.remove(0);
            } else {
                if s < una {
                    self.rtx_bytes -= una.since(s);
                    self.rtx[0].0 = una;
                }
                break;
            }
        }
        while self.sends.front().is_some_and(|&(e, _)| e <= una) {
            self.sends.pop_front();
        }
        if self.lost_high < una {
            self.lost_high = una;
        }
    }

    /// Original data [.., `end`) left at `now`.
    pub(crate) fn on_send(&mut self, end: Seq, now: Instant) {
        self.reserve();
        if let Some(last) = self.sends.back_mut() {
            if last.1 == now || end <= last.0 {
                last.0 = last.0.max(end);
                last.1 = now;
                return;
            }
        }
        if self.sends.len() == MAX_SENDS {
            // Full: the two oldest bursts become one that left when the later did (their
            // loss is detected later, never sooner).
            let (_, _) = self.sends.pop_front().expect("full");
        }
        self.sends.push_back((end, now));
    }

    /// When `seq`, never retransmitted, left (Linux's RTT sample from the first newly acked
    /// segment's send time, tcp_clean_rtx_queue): `None` when it may have been sent twice.
    pub(crate) fn rtt_sent_at(&self, seq: Seq) -> Option<Instant> {
        if self.rtx_high.is_some_and(|h| seq < h) {
            return None;
        }
        self.sent_at(seq)
    }

    /// When the original transmission of `seq` left (the end of its burst), if remembered.
    pub(crate) fn sent_at(&self, seq: Seq) -> Option<Instant> {
        self.sends.iter().find(|&&(e, _)| seq < e).map(|&(_, t)| t)
    }

    /// The bursts of original data, oldest first.
    pub(crate) fn sends(&self) -> impl Iterator<Item = (Seq, Instant)> + '_ {
        self.sends.iter().copied()
    }

    /// The retransmitted ranges.
    pub(crate) fn retransmitted(&self) -> &[(Seq, Seq, Instant)] {
        &self.rtx
    }

    /// [`start`, `end`) was retransmitted at `now`; false when the table had no room for it.
    pub(crate) fn on_retransmit(&mut self, start: Seq, end: Seq, now: Instant) -> bool {
        if start >= end {
            return true;
        }
        self.reserve();
        self.rtx_high = Some(self.rtx_high.map_or(end, |h| h.max(end)));
        // Drop what an earlier retransmission of the same bytes recorded.
        let mut i = 0;
        while i < self.rtx.len() {
            let (s, e, _) = self.rtx[i];
            if s >= end {
                break;
            }
            if e <= start {
                i += 1;
                continue;
            }
            i += self.cut_rtx(i, start, end);
        }
        // A retransmission that continues the run before it joins it and dates it: NextSeg
        // goes up the holes in order, so the table holds about one range per hole. (The older
        // bytes then look sent later, which only delays RACK's verdict on them.)
        let at = self.rtx.iter().position(|r| r.0 >= end).unwrap_or(self.rtx.len());
        if at > 0 && self.rtx[at - 1].1 == start {
            self.rtx[at - 1].1 = end;
            self.rtx[at - 1].2 = now;
        } else if at < self.rtx.len() && self.rtx[at].0 == end {
            self.rtx[at].0 = start;
            self.rtx[at].2 = now;
        } else if self.rtx.len() < MAX_RETRANSMITTED {
            self.rtx.insert(at, (start, end, now));
        } else {
            // No room: the caller sends no more lost data until the next ACK.
            return false;
        }
        self.rtx_bytes += end.since(start);
        true
    }

    /// The retransmitted range at index `i` is deemed lost again (RACK): it leaves the table
    /// and the frontier covers it.
    pub(crate) fn retransmission_lost(&mut self, i: usize) {
        let (s, e, _) = self.rtx.remove(i);
        self.rtx_bytes -= e.since(s);
        self.lost_high = self.lost_high.max(e);
    }

    /// Everything up to `seq` not SACKed is lost (RACK's verdict on original data).
    pub(crate) fn mark_lost_to(&mut self, seq: Seq) {
        self.lost_high = self.lost_high.max(seq);
    }

    /// A retransmission timeout: everything outstanding not SACKed is lost, and no
    /// retransmission is in flight any more (Linux's tcp_timeout_mark_lost).
    pub(crate) fn on_timeout(&mut self, max: Seq) {
        self.rtx.clear();
        self.rtx_bytes = 0;
        self.lost_high = self.lost_high.max(max);
    }

    /// The peer reneged (an ACK below what it SACKed): forget the SACKs (RFC 2018 8: the
    /// sender must be ready to resend SACKed data).
    pub(crate) fn forget_sacked(&mut self) {
        self.sacked.clear();
        self.sacked_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(us: u64) -> Instant {
        Instant::from_nanos(us * 1000)
    }

    #[test]
    fn sacked_ranges_merge_and_the_pipe_counts_lost_and_retransmitted_bytes() {
        let una = Seq(1000);
        let mut sb = Scoreboard::new(una);
        for (i, s) in (0..10u32).enumerate() {
            sb.on_send(una + (s + 1) * 100, t(i as u64));
        }
        let mut news = SackNews { highest: una, ..SackNews::default() };
        sb.add_sacked(una, Seq(1300), Seq(1400), t(50), None, &mut news);
        sb.add_sacked(una, Seq(1500), Seq(1600), t(50), None, &mut news);
        sb.add_sacked(una, Seq(1400), Seq(1500), t(50), None, &mut news);
        assert_eq!(sb.sacked(), &[(Seq(1300), Seq(1600))]);
        assert_eq!((news.sacked, sb.sacked_bytes()), (300, 300));
        assert_eq!(news.latest, Some((t(5), Seq(1600))), "the latest burst among them");
        assert_eq!(sb.pipe(una, 1000), 700);
        sb.mark_lost_to(Seq(1300));
        assert_eq!(sb.pipe(una, 1000), 400, "300 lost bytes leave the pipe");
        assert_eq!(sb.next_lost(una), Some((una, 300)));
        sb.on_retransmit(una, Seq(1100), t(60));
        assert_eq!(sb.pipe(una, 1000), 500);
        assert_eq!(sb.next_lost(una), Some((Seq(1100), 200)));
        sb.on_retransmit(Seq(1100), Seq(1300), t(60));
        assert_eq!(sb.retransmitted(), &[(una, Seq(1300), t(60))], "one run, one range");
        assert_eq!(sb.next_lost(una), None);
        let mut news = SackNews::default();
        sb.add_sacked(una, Seq(1100), Seq(1200), t(70), None, &mut news);
        assert!(news.retransmitted);
        assert_eq!(news.latest, Some((t(60), Seq(1200))));
        assert_eq!(sb.retransmitted(), &[(una, Seq(1100), t(60)), (Seq(1200), Seq(1300), t(60))]);
        sb.advance(Seq(1250));
        assert_eq!(sb.retransmitted(), &[(Seq(1250), Seq(1300), t(60))]);
        assert_eq!(sb.sacked(), &[(Seq(1300), Seq(1600))]);
        assert_eq!(sb.pipe(Seq(1250), 750), 750 - 300, "the lost bytes below were all resent");
    }

    #[test]
    fn a_full_table_gives_up_the_highest_range() {
        let una = Seq(0);
        let mut sb = Scoreboard::new(una);
        let mut news = SackNews::default();
        for i in 0..MAX_SACKED as u32 + 1 {
            sb.add_sacked(una, Seq(1000 + i * 200), Seq(1100 + i * 200), t(0), None, &mut news);
        }
        assert_eq!(sb.sacked().len(), MAX_SACKED);
        assert_eq!(sb.sacked_bytes(), 100 * MAX_SACKED as u32);
        sb.add_sacked(una, Seq(500), Seq(600), t(0), None, &mut news);
        assert_eq!(sb.sacked()[0], (Seq(500), Seq(600)));
        assert_eq!(sb.sacked_bytes(), 100 * MAX_SACKED as u32);
    }
}
