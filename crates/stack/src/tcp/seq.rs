//! Sequence numbers: 32-bit values compared modulo 2^32 (RFC 9293 3.4), so that every
//! comparison in the engine stays right across wrap-around.

use std::cmp::Ordering;
use std::fmt;
use std::ops::{Add, Sub};

/// A TCP sequence number. Ordering is circular: `a < b` when `b - a` (wrapping) is in
/// `1..2^31`, which is meaningful for numbers less than 2^31 apart (every window is).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Seq(pub u32);

impl Seq {
    /// Signed distance from `other` to `self`.
    pub fn diff(self, other: Seq) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }

    /// Bytes from `other` up to `self`, 0 when `self` is not after `other`.
    pub fn since(self, other: Seq) -> u32 {
        self.diff(other).max(0) as u32
    }

    /// The later of two.
    pub fn max(self, other: Seq) -> Seq {
        if self > other {
            self
        } else {
            other
        }
    }

    /// The earlier of two.
    pub fn min(self, other: Seq) -> Seq {
        if self < other {
            self
        } else {
            other
        }
    }

    /// Whether `self` lies in `[start, end)`.
    pub fn in_range(self, start: Seq, end: Seq) -> bool {
        start <= self && self < end
    }
}

impl Add<u32> for Seq {
    type Output = Seq;
    fn add(self, n: u32) -> Seq {
        Seq(self.0.wrapping_add(n))
    }
}

impl Sub<u32> for Seq {
    type Output = Seq;
    fn sub(self, n: u32) -> Seq {
        Seq(self.0.wrapping_sub(n))
    }
}

impl PartialOrd for Seq {
    fn partial_cmp(&self, other: &Seq) -> Option<Ordering> {
        Some(self.diff(*other).cmp(&0))
    }
}

impl fmt::Debug for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn comparisons_survive_wrap_around() {
        let a = Seq(u32::MAX - 10);
        let b = a + 20;
        assert_eq!(b.0, 9);
        assert!(a < b);
        assert!(b > a);
        assert_eq!(b.diff(a), 20);
        assert_eq!(a.diff(b), -20);
        assert_eq!(b.since(a), 20);
        assert_eq!(a.since(b), 0);
        assert!(Seq(5).in_range(a, b));
        assert!(!b.in_range(a, b));
        assert_eq!(a.max(b), b);
        assert_eq!(a.min(b), a);
    }

    proptest! {
        #[test]
        fn order_matches_unbounded_integers(base: u32, x in 0u32..1 << 30, y in 0u32..1 << 30) {
            let (a, b) = (Seq(base) + x, Seq(base) + y);
            prop_assert_eq!(a < b, x < y);
            prop_assert_eq!(a == b, x == y);
            prop_assert_eq!(b.diff(a) as i64, y as i64 - x as i64);
            prop_assert_eq!(a + y.wrapping_sub(x), b);
        }
    }
}
