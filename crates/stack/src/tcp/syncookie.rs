//! SYN cookies (RFC 4987 3.6), as Linux's tcp_syncookies=1 makes them (net/ipv4/syncookies.c):
//! when a listener's SYN queue is full, its SYN-ACK carries the handshake's state in its
//! sequence number instead of a queued request, and the final ACK that echoes it rebuilds the
//! connection. A SYN flood then fills nothing, and real clients still connect.
//!
//! The ISN is Linux's: `H(0) + peer ISN + (count << 24) + ((H(count) + mss index) mod 2^24)`,
//! where `count` is the minute of the clock and `H` a keyed hash of the 4-tuple, so a cookie is
//! valid for two minutes and names one of four MSS values. When both ends use timestamps, the
//! low six bits of our SYN-ACK's TSval carry the peer's window scale (15: none) and whether it
//! offered SACK; the peer echoes them in the final ACK's TSecr (Linux's cookie_init_timestamp).
//! Without timestamps the connection runs without window scaling and SACK, as on Linux.

use crate::hash::KeyedState;
use crate::time::Instant;
use std::hash::BuildHasher;
use std::net::SocketAddrV4;

/// Bits of the cookie below the minute counter.
const COOKIE_BITS: u32 = 24;
const COOKIE_MASK: u32 = (1 << COOKIE_BITS) - 1;
/// Minutes a cookie stays valid (Linux's MAX_SYNCOOKIE_AGE).
const MAX_AGE: u32 = 2;
/// The minute of the cookie clock, in nanoseconds (Linux's TCP_SYNCOOKIE_PERIOD).
const PERIOD_NS: u64 = 60_000_000_000;
/// How long after the last cookie sent a listener still checks ACKs for one (Linux's
/// TCP_SYNCOOKIE_VALID: MAX_AGE periods).
pub(crate) const VALID_NS: u64 = MAX_AGE as u64 * PERIOD_NS;

/// The MSS values a cookie can name (Linux's msstab): the largest not above the peer's is taken.
pub const MSS_TABLE: [u16; 4] = [536, 1300, 1440, 1460];

/// Bits of the timestamp that carry the options (Linux's TSBITS).
const TS_BITS: u32 = 6;
const TS_WSCALE_MASK: u32 = 0xf;
const TS_SACK: u32 = 1 << 4;

/// Label of the cookie key derived from the ISN key.
const KEY_LABEL: u64 = 0x7379_6e63_6f6f_6b69;

/// What a cookie and its echoed timestamp give back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieOptions {
    /// The peer's MSS, rounded down to the table.
    pub mss: u16,
    /// The peer's window scale, if it offered one (only known with timestamps).
    pub window_scale: Option<u8>,
    /// The peer offered SACK (only known with timestamps).
    pub sack: bool,
    /// Both ends use timestamps.
    pub timestamps: bool,
}

fn hash(key: [u64; 2], local: SocketAddrV4, remote: SocketAddrV4, count: u32, c: u8) -> u32 {
    KeyedState::derived(key, KEY_LABEL).hash_one((local, remote, count, c)) as u32
}

fn minute(now: Instant) -> u32 {
    (now.as_nanos() / PERIOD_NS) as u32
}

/// The index in [`MSS_TABLE`] of the largest value not above `mss`.
pub fn mss_index(mss: u16) -> u32 {
    MSS_TABLE.iter().rposition(|&m| m <= mss).unwrap_or(0) as u32
}

/// The cookie ISN of a SYN from `remote` (ISN `peer_isn`, MSS `mss`) to `local` at `now`.
pub fn make(key: [u64; 2], local: SocketAddrV4, remote: SocketAddrV4, peer_isn: u32, mss: u16, now: Instant) -> u32 {
    let count = minute(now);
    let data = mss_index(mss);
    hash(key, local, remote, 0, 0)
        .wrapping_add(peer_isn)
        .wrapping_add(count << COOKIE_BITS)
        .wrapping_add(hash(key, local, remote, count, 1).wrapping_add(data) & COOKIE_MASK)
}

/// The MSS a final ACK's cookie names (`cookie` is its ACK number less one, `peer_isn` its
/// sequence number less one), or `None` if the cookie is not ours or too old.
pub fn check(
    key: [u64; 2],
    local: SocketAddrV4,
    remote: SocketAddrV4,
    peer_isn: u32,
    cookie: u32,
    now: Instant,
) -> Option<u16> {
    let count = minute(now);
    let rest = cookie.wrapping_sub(hash(key, local, remote, 0, 0).wrapping_add(peer_isn));
    let diff = count.wrapping_sub(rest >> COOKIE_BITS) & (u32::MAX >> COOKIE_BITS);
    if diff >= MAX_AGE {
        return None;
    }
    let data = rest.wrapping_sub(hash(key, local, remote, count.wrapping_sub(diff), 1)) & COOKIE_MASK;
    MSS_TABLE.get(data as usize).copied()
}

/// Our timestamp clock value `ts_now` (before the connection's offset) with its low bits
/// replaced by the options, never ahead of the clock (Linux's cookie_init_timestamp).
pub fn encode_timestamp(ts_now: u32, window_scale: Option<u8>, sack: bool) -> u32 {
    let mut options = window_scale.map_or(TS_WSCALE_MASK, |s| u32::from(s.min(14)));
    if sack {
        options |= TS_SACK;
    }
    let mut ts = (ts_now >> TS_BITS) << TS_BITS | options;
    if ts > ts_now {
        ts = ts.wrapping_sub(1 << TS_BITS);
    }
    ts
}

/// The options an echoed TSecr (less the connection's offset) carries: (window scale, SACK).
pub fn decode_timestamp(tsecr: u32) -> (Option<u8>, bool) {
    let scale = tsecr & TS_WSCALE_MASK;
    let window_scale = (scale != TS_WSCALE_MASK).then_some(scale.min(14) as u8);
    (window_scale, tsecr & TS_SACK != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn addr(last: u8, port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, last), port)
    }

    #[test]
    fn a_cookie_names_its_mss_for_two_minutes_and_only_for_its_tuple_and_key() {
        let key = [7, 9];
        let (l, r) = (addr(1, 80), addr(2, 40000));
        let t0 = Instant::from_nanos(5 * PERIOD_NS + 1);
        for (mss, want) in [(1460u16, 1460u16), (1500, 1460), (1459, 1440), (1400, 1300), (600, 536), (100, 536)] {
            let c = make(key, l, r, 1000, mss, t0);
            assert_eq!(check(key, l, r, 1000, c, t0), Some(want), "MSS {mss}");
            assert_eq!(check(key, l, r, 1000, c, t0 + std::time::Duration::from_secs(119)), Some(want));
            assert_eq!(check(key, l, r, 1000, c, Instant::from_nanos(7 * PERIOD_NS)), None, "too old");
            assert_eq!(check(key, l, r, 90_000, c, t0), None, "another peer ISN");
            assert_eq!(check(key, l, addr(2, 40001), 1000, c, t0), None, "another tuple");
            assert_eq!(check([7, 10], l, r, 1000, c, t0), None, "another key");
        }
    }

    #[test]
    fn forged_cookies_almost_never_pass() {
        let key = [1, 2];
        let (l, r) = (addr(1, 80), addr(2, 40000));
        let now = Instant::from_nanos(3 * PERIOD_NS);
        let passed = (0..100_000u32).filter(|i| check(key, l, r, 5, i.wrapping_mul(2_654_435_761), now).is_some());
        assert!(passed.count() <= 2, "4 values of 2^24 per minute, two minutes");
    }

    #[test]
    fn timestamp_options_round_trip_and_stay_behind_the_clock() {
        for now in [0u32, 5, 63, 64, 1000, u32::MAX] {
            for ws in [None, Some(0), Some(7), Some(14)] {
                for sack in [false, true] {
                    let ts = encode_timestamp(now, ws, sack);
                    assert_eq!(decode_timestamp(ts), (ws, sack));
                    assert!(now.wrapping_sub(ts) < 64, "at most 63 ticks behind");
                }
            }
        }
    }
}
