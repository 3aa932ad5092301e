//! A byte ring: the storage under both the send and the receive buffer. It starts without
//! storage and grows when asked (`reserve`), by doubling from `MIN_ALLOC` bytes up to a limit
//! the caller gives, keeping every byte in place relative to its head: the held bytes and any
//! bytes written beyond them (out-of-order data). An empty ring can give its storage back
//! (`release`). Growing allocates once per doubling, never per write.

/// The first allocation of a ring, and the step that growth doubles from.
pub(crate) const MIN_ALLOC: usize = 4096;

/// The capacity a ring of `capacity` grows to so that it holds at least `needed` bytes, under
/// `limit`: doubling from `MIN_ALLOC`, and straight to the limit once the next doubling would
/// come within an eighth of it (so a limit that is no power of two, such as a receive buffer
/// and its slack, costs no extra allocation for its last few bytes).
pub(crate) fn grown_capacity(capacity: usize, needed: usize, limit: usize) -> usize {
    let mut cap = capacity.max(MIN_ALLOC);
    while cap < needed {
        cap = cap.saturating_mul(2);
    }
    if cap >= limit - limit / 8 {
        limit
    } else {
        cap
    }
}

/// Bytes `[head, head + len)` (modulo capacity) are held.
#[derive(Debug, Clone)]
pub(crate) struct Ring {
    buf: Box<[u8]>,
    head: usize,
    len: usize,
}

impl Ring {
    /// A ring with `capacity` bytes of storage (none: it grows on `reserve`).
    pub(crate) fn new(capacity: usize) -> Ring {
        Ring { buf: vec![0u8; capacity].into_boxed_slice(), head: 0, len: 0 }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn free(&self) -> usize {
        self.capacity() - self.len
    }

    /// Makes room for `needed` bytes from the head (held bytes and bytes to be written beyond
    /// them), growing under `limit` as `grown_capacity` says. Bytes already written keep their
    /// offsets from the head. Returns the capacity (which may stay below `needed` at the limit).
    #[inline]
    pub(crate) fn reserve(&mut self, needed: usize, limit: usize) -> usize {
        if needed > self.capacity() && self.capacity() < limit {
            self.grow(grown_capacity(self.capacity(), needed, limit));
        }
        self.capacity()
    }

    #[cold]
    fn grow(&mut self, new_capacity: usize) {
        if new_capacity <= self.capacity() {
            return;
        }
        let mut buf = vec![0u8; new_capacity].into_boxed_slice();
        // Unrolled from the head: offsets from the head stay what they were, for the held
        // bytes and for whatever was written beyond them.
        let cap = self.capacity();
        buf[..cap - self.head].copy_from_slice(&self.buf[self.head..]);
        buf[cap - self.head..cap].copy_from_slice(&self.buf[..self.head]);
        self.buf = buf;
        self.head = 0;
    }

    /// Gives the storage back; only for an empty ring with nothing written beyond (the caller
    /// knows: the receive buffer's reassembler is empty). Returns the bytes freed.
    pub(crate) fn release(&mut self) -> usize {
        debug_assert_eq!(self.len, 0);
        let freed = self.capacity();
        self.buf = Box::default();
        self.head = 0;
        freed
    }

    /// Writes `data` at `offset` bytes past the held bytes (without holding them); what does
    /// not fit in the capacity is cut. Returns the bytes written.
    pub(crate) fn write_beyond(&mut self, offset: usize, data: &[u8]) -> usize {
        let cap = self.capacity();
        if cap == 0 || offset >= self.free() {
            return 0;
        }
        let n = data.len().min(self.free() - offset);
        let start = (self.head + self.len + offset) % cap;
        let first = n.min(cap - start);
        self.buf[start..start + first].copy_from_slice(&data[..first]);
        self.buf[..n - first].copy_from_slice(&data[first..n]);
        n
    }

    /// Holds `n` more bytes (already written with `write_beyond`).
    pub(crate) fn commit(&mut self, n: usize) {
        self.len = (self.len + n).min(self.capacity());
    }

    /// Appends as much of `data` as fits; returns the bytes taken.
    pub(crate) fn push(&mut self, data: &[u8]) -> usize {
        let n = self.write_beyond(0, data);
        self.commit(n);
        n
    }

    /// Appends up to `max` bytes that `fill` writes straight into the free space (in at most
    /// two calls, where the space wraps), so a source such as a file is read into the ring
    /// without a copy in between; `fill` returns how many it wrote, and a short count ends it.
    /// Returns the bytes taken.
    pub(crate) fn push_with(&mut self, max: usize, fill: &mut dyn FnMut(&mut [u8]) -> usize) -> usize {
        let cap = self.capacity();
        let max = max.min(self.free());
        let mut taken = 0;
        while taken < max {
            let start = (self.head + self.len) % cap;
            let room = (max - taken).min(cap - start);
            let got = fill(&mut self.buf[start..start + room]).min(room);
            self.len += got;
            taken += got;
            if got < room {
                break;
            }
        }
        taken
    }

    /// Copies held bytes from `offset` into `out`; returns the bytes copied.
    pub(crate) fn read_at(&self, offset: usize, out: &mut [u8]) -> usize {
        let cap = self.capacity();
        if offset >= self.len {
            return 0;
        }
        let n = out.len().min(self.len - offset);
        let start = (self.head + offset) % cap;
        let first = n.min(cap - start);
        out[..first].copy_from_slice(&self.buf[start..start + first]);
        out[first..n].copy_from_slice(&self.buf[..n - first]);
        n
    }

    /// Drops `n` bytes from the front.
    pub(crate) fn consume(&mut self, n: usize) {
        let n = n.min(self.len);
        if self.capacity() > 0 {
            self.head = (self.head + n) % self.capacity();
        }
        // The head stays where it is even when empty: bytes written beyond (out of order)
        // are placed relative to it.
        self.len -= n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    proptest! {
        /// Against a VecDeque model: pushes, reads at offsets and consumes agree.
        #[test]
        fn matches_a_model(cap in 1usize..64, ops in proptest::collection::vec((0u8..4, 0usize..80), 1..200)) {
            let mut ring = Ring::new(cap);
            let mut cap = cap;
            let mut model: VecDeque<u8> = VecDeque::new();
            let mut next = 0u8;
            for (op, n) in ops {
                match op {
                    0 => {
                        let data: Vec<u8> = (0..n).map(|_| { next = next.wrapping_add(1); next }).collect();
                        let took = ring.push(&data);
                        prop_assert_eq!(took, n.min(cap - model.len()));
                        model.extend(&data[..took]);
                    }
                    1 => {
                        ring.consume(n);
                        for _ in 0..n.min(model.len()) { model.pop_front(); }
                    }
                    2 => {
                        // Growth keeps what is held (and where the head is).
                        let limit = cap + n;
                        let got = ring.reserve(model.len() + n, limit);
                        prop_assert!(got >= cap && got <= limit.max(cap));
                        cap = got;
                    }
                    _ => {
                        let off = n % (model.len() + 1);
                        let mut out = vec![0u8; 7];
                        let got = ring.read_at(off, &mut out);
                        let want: Vec<u8> = model.iter().skip(off).take(7).copied().collect();
                        prop_assert_eq!(&out[..got], &want[..]);
                    }
                }
                prop_assert_eq!(ring.len(), model.len());
            }
        }
    }

    /// Growth of a ring whose bytes wrap past the end, with bytes written beyond the held
    /// ones (out-of-order data): every byte keeps its offset from the head.
    #[test]
    fn push_with_fills_across_the_wrap_and_stops_at_a_short_fill() {
        let mut ring = Ring::new(8);
        ring.push(&[9; 6]);
        ring.consume(6);
        // The free space runs from offset 6 to the end, then wraps to the start.
        let mut next = 0u8;
        let mut calls = 0;
        let taken = ring.push_with(7, &mut |dst| {
            calls += 1;
            for b in dst.iter_mut() {
                *b = next;
                next += 1;
            }
            dst.len()
        });
        assert_eq!((taken, calls), (7, 2));
        let mut out = [0u8; 7];
        assert_eq!(ring.read_at(0, &mut out), 7);
        assert_eq!(out, [0, 1, 2, 3, 4, 5, 6]);
        // A fill that writes less than it was offered ends the push.
        ring.consume(7);
        assert_eq!(ring.push_with(8, &mut |dst| dst.len().min(2)), 2);
        assert_eq!(ring.len(), 2);
        // Never more than the free space.
        assert_eq!(ring.push_with(100, &mut |dst| dst.len()), 6);
    }

    #[test]
    fn growth_keeps_wrapped_and_beyond_bytes_in_place() {
        let mut ring = Ring::new(8);
        assert_eq!(ring.push(b"abcdef"), 6);
        ring.consume(5);
        assert_eq!(ring.push(b"ghi"), 3); // held "fghi", wrapping: head 5
        assert_eq!(ring.write_beyond(2, b"xy"), 2); // "fghi" then a hole of 2, then "xy"
        assert_eq!(ring.reserve(20, 64), MIN_ALLOC.min(64));
        assert_eq!(ring.capacity(), 64, "limits under the first allocation are taken whole");
        ring.write_beyond(0, b"jk");
        ring.commit(6);
        let mut out = [0u8; 8];
        assert_eq!(ring.read_at(0, &mut out), 8);
        assert_eq!(&out, b"fghijkxy");
    }

    #[test]
    fn growth_doubles_from_4_kib_and_stops_at_the_limit() {
        let limit = 256 * 1024 + 8;
        let mut caps = Vec::new();
        let mut cap = 0;
        for needed in (1..=limit).step_by(1000).chain([limit, limit + 1]) {
            let c = grown_capacity(cap, needed, limit);
            if needed > cap && cap < limit && c != cap {
                caps.push(c);
                cap = c;
            }
        }
        assert_eq!(caps, [4096, 8192, 16_384, 32_768, 65_536, 131_072, limit]);
        assert_eq!(grown_capacity(0, 100, 2048), 2048);
        assert_eq!(grown_capacity(0, 1, 0), 0);
        let mut ring = Ring::new(0);
        assert_eq!(ring.reserve(10, limit), 4096);
        assert_eq!(ring.reserve(10_000, limit), 16_384, "one allocation for several doublings");
        assert_eq!(ring.reserve(1 << 30, limit), limit);
        assert_eq!(ring.release(), limit);
        assert_eq!(ring.capacity(), 0);
    }
}
