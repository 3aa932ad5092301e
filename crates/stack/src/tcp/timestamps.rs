//! TCP timestamps (RFC 7323): the clock our TSval comes from, the peer's TS.Recent that we
//! echo, PAWS (protection against wrapped sequence numbers), and the RTT an echoed TSecr
//! measures, which, unlike a timed segment, Karn's rule does not forbid after a retransmission.
//! Linux's choices where the RFC leaves one: a millisecond clock, a per-connection offset, a
//! PAWS window of one tick, and TS.Recent taken from segments not past the last ACK's point.

use crate::time::Instant;
use std::time::Duration;

/// Bytes the option takes in every segment once negotiated (NOP, NOP, kind, length, TSval,
/// TSecr): what the MSS we send with gives up to it.
pub const OPTION_LEN: u32 = 12;

/// How long TS.Recent stays valid without being refreshed (RFC 7323 5.5: 24 days).
const RECENT_LIFETIME: Duration = Duration::from_secs(24 * 24 * 60 * 60);

/// A connection's timestamp state, present from our SYN (or the peer's, when we answer one
/// that offered the option) until the handshake shows the other end does not use them.
#[derive(Debug, Clone, Copy)]
pub struct Timestamps {
    /// Added to the millisecond clock (Linux's tsoffset): TSval differs per 4-tuple and tells
    /// nothing of how long the host has run.
    offset: u32,
    /// TS.Recent: the peer's TSval we echo, and when it was stored (`None` before the first).
    recent: Option<(u32, Instant)>,
}

impl Timestamps {
    /// Timestamps whose clock is `offset` ahead of the millisecond count of [`Instant`].
    pub fn new(offset: u32) -> Timestamps {
        Timestamps { offset, recent: None }
    }

    /// TSval at `now`.
    pub fn value(&self, now: Instant) -> u32 {
        self.offset.wrapping_add((now.as_nanos() / 1_000_000) as u32)
    }

    /// The option for a segment sent at `now`: our TSval and the TSecr to echo (0 before the
    /// peer's first TSval, as in an opening SYN).
    pub fn option(&self, now: Instant) -> (u32, u32) {
        (self.value(now), self.recent.map_or(0, |(v, _)| v))
    }

    /// The clock's offset (what a hand-over gives the kernel's TCP_TIMESTAMP).
    pub fn offset(&self) -> u32 {
        self.offset
    }

    /// TS.Recent, if one is stored.
    pub fn recent(&self) -> Option<u32> {
        self.recent.map(|(v, _)| v)
    }

    /// Whether TS.Recent still counts: stored, and refreshed within the last 24 days.
    fn recent_valid(&self, now: Instant) -> Option<u32> {
        self.recent.filter(|&(_, at)| now.saturating_since(at) <= RECENT_LIFETIME).map(|(v, _)| v)
    }

    /// How far `tsval` is behind TS.Recent, in ticks (0 when not behind or no valid TS.Recent).
    pub fn behind(&self, tsval: u32, now: Instant) -> u32 {
        match self.recent_valid(now) {
            Some(recent) => (recent.wrapping_sub(tsval) as i32).max(0) as u32,
            None => 0,
        }
    }

    /// PAWS (RFC 7323 5.3 R1, Linux's tcp_paws_check with a window of one tick): a segment
    /// whose TSval is older than TS.Recent is an old duplicate.
    pub fn paws_rejects(&self, tsval: u32, now: Instant) -> bool {
        self.behind(tsval, now) > 1
    }

    /// Stores `tsval` as TS.Recent unless it is older (RFC 7323 4.3; the caller checks that
    /// the segment starts at or before the point our last ACK acknowledged).
    pub fn update_recent(&mut self, tsval: u32, now: Instant) {
        if self.behind(tsval, now) == 0 {
            self.recent = Some((tsval, now));
        }
    }

    /// The round-trip time an echoed `tsecr` measures at `now`, if it is one of ours (not 0,
    /// not from the future).
    pub fn rtt(&self, tsecr: u32, now: Instant) -> Option<Duration> {
        let ticks = self.value(now).wrapping_sub(tsecr);
        (tsecr != 0 && (ticks as i32) >= 0).then(|| Duration::from_millis(u64::from(ticks)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_ms(ms: u64) -> Instant {
        Instant::from_nanos(ms * 1_000_000)
    }

    #[test]
    fn the_clock_ticks_in_milliseconds_from_the_offset_and_wraps() {
        let ts = Timestamps::new(u32::MAX - 1);
        assert_eq!(ts.value(at_ms(0)), u32::MAX - 1);
        assert_eq!(ts.value(at_ms(3)), 1, "wraps");
        assert_eq!(ts.option(at_ms(3)), (1, 0), "TSecr 0 before the peer's first TSval");
    }

    #[test]
    fn paws_rejects_an_older_tsval_across_the_wrap_and_forgets_after_24_days() {
        let mut ts = Timestamps::new(0);
        assert!(!ts.paws_rejects(5, at_ms(0)), "nothing stored: nothing rejected");
        ts.update_recent(2, at_ms(0));
        assert!(!ts.paws_rejects(1, at_ms(1)), "one tick behind is within the window");
        assert!(ts.paws_rejects(0, at_ms(1)));
        assert!(ts.paws_rejects(u32::MAX - 5, at_ms(1)), "before the wrap is older");
        ts.update_recent(u32::MAX - 5, at_ms(1));
        assert_eq!(ts.recent(), Some(2), "an older TSval never replaces TS.Recent");
        ts.update_recent(7, at_ms(2));
        assert_eq!(ts.option(at_ms(2)).1, 7);
        let later = at_ms(2 + 25 * 24 * 60 * 60 * 1000);
        assert!(!ts.paws_rejects(0, later), "TS.Recent older than 24 days no longer counts");
        ts.update_recent(0, later);
        assert_eq!(ts.recent(), Some(0));
    }

    #[test]
    fn an_echoed_tsval_measures_the_round_trip() {
        let ts = Timestamps::new(1000);
        let sent = ts.value(at_ms(50));
        assert_eq!(ts.rtt(sent, at_ms(73)), Some(Duration::from_millis(23)));
        assert_eq!(ts.rtt(0, at_ms(73)), None, "0 echoes nothing");
        assert_eq!(ts.rtt(sent.wrapping_add(10), at_ms(50)), None, "not from the future");
    }
}
