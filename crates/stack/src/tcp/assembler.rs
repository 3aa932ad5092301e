//! Out-of-order bookkeeping: which byte ranges past the in-order point have arrived. A fixed
//! array of ranges, so the number of holes is bounded and nothing is allocated per segment; a
//! segment that would need one range more than the bound is refused (and dropped by the caller).

/// Ranges `[start, end)` in bytes past the in-order point, sorted, disjoint, not touching.
#[derive(Debug, Clone)]
pub struct Assembler {
    ranges: Box<[(u32, u32)]>,
    count: usize,
}

impl Assembler {
    /// An assembler keeping at most `max_ranges` separate ranges.
    pub fn new(max_ranges: usize) -> Assembler {
        Assembler { ranges: vec![(0, 0); max_ranges.max(1)].into_boxed_slice(), count: 0 }
    }

    /// Whether no out-of-order data is held.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Ranges held.
    pub fn ranges(&self) -> &[(u32, u32)] {
        &self.ranges[..self.count]
    }

    /// Records `[start, end)`; false (and nothing changed) when it would need too many ranges.
    pub fn add(&mut self, start: u32, end: u32) -> bool {
        if start >= end {
            return true;
        }
        // First range that ends at or after `start` (could merge), last that starts at or
        // before `end`.
        let first = self.ranges().iter().position(|r| r.1 >= start).unwrap_or(self.count);
        let last = self.ranges().iter().rposition(|r| r.0 <= end);
        match last {
            Some(last) if last >= first => {
                let merged = (start.min(self.ranges[first].0), end.max(self.ranges[last].1));
                self.ranges[first] = merged;
                let removed = last - first;
                self.ranges.copy_within(last + 1..self.count, first + 1);
                self.count -= removed;
                true
            }
            _ => {
                if self.count == self.ranges.len() {
                    return false;
                }
                self.ranges.copy_within(first..self.count, first + 1);
                self.ranges[first] = (start, end);
                self.count += 1;
                true
            }
        }
    }

    /// The in-order point moved `n` bytes: returns how many more bytes became in order from the
    /// front range (the caller advances by those too) and rebases every range.
    pub fn advance(&mut self, n: u32) -> u32 {
        // Ranges wholly before the new point are gone; one straddling or touching it extends it.
        let gone = self.ranges().iter().take_while(|r| r.1 < n).count();
        self.ranges.copy_within(gone..self.count, 0);
        self.count -= gone;
        let mut extra = 0;
        if self.count > 0 && self.ranges[0].0 <= n {
            extra = self.ranges[0].1 - n;
            self.ranges.copy_within(1..self.count, 0);
            self.count -= 1;
        }
        let shift = n + extra;
        for r in &mut self.ranges[..self.count] {
            *r = (r.0 - shift, r.1 - shift);
        }
        extra
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn merges_and_fills_holes() {
        let mut a = Assembler::new(2);
        assert!(a.add(10, 20));
        assert!(a.add(30, 40));
        assert!(!a.add(50, 60), "a third range is refused");
        assert!(a.add(20, 30), "filling the hole merges");
        assert_eq!(a.ranges(), &[(10, 40)]);
        assert_eq!(a.advance(5), 0);
        assert_eq!(a.ranges(), &[(5, 35)]);
        assert_eq!(a.advance(5), 30);
        assert!(a.is_empty());
    }

    proptest! {
        /// Against a bitmap model: whatever is accepted is held, and the in-order extension is
        /// exactly the run of held bytes after the in-order point.
        #[test]
        fn matches_a_bitmap(ops in proptest::collection::vec((0u32..200, 1u32..30, any::<bool>()), 1..100)) {
            let mut a = Assembler::new(4);
            let mut model = vec![false; 512];
            for (start, len, adv) in ops {
                if adv {
                    // Deliver in order `start % 20` bytes, as if they had arrived.
                    let n = start % 20;
                    let extra = a.advance(n);
                    let mut run = 0usize;
                    while model.get(n as usize + run).copied().unwrap_or(false) { run += 1; }
                    prop_assert_eq!(extra as usize, run);
                    model.drain(..(n as usize + run));
                    model.resize(512, false);
                } else {
                    let before = a.ranges().to_vec();
                    if a.add(start, start + len) {
                        for b in &mut model[start as usize..(start + len) as usize] { *b = true; }
                    } else {
                        prop_assert_eq!(a.ranges(), &before[..]);
                    }
                }
                let mut expect = Vec::new();
                let mut i = 0;
                while i < model.len() {
                    if model[i] { let s = i; while i < model.len() && model[i] { i += 1; } expect.push((s as u32, i as u32)); } else { i += 1; }
                }
                prop_assert_eq!(a.ranges(), &expect[..]);
            }
        }
    }
}
