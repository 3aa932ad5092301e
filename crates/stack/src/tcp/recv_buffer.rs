//! The receive buffer: in-order bytes the application has not read, and out-of-order bytes
//! stored at their place past them, in one ring whose room under the limit is the receive
//! window. The ring starts without storage and grows (doubling from 4 KiB, at most once per
//! doubling) when a segment lands past its end, never past the limit: the window is computed
//! from the limit, so whatever was offered can always be stored.

use super::assembler::Assembler;
use super::ring::Ring;

/// What happened to an arriving segment's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Bytes that became readable (possibly more than the segment, when it filled a hole).
    InOrder(usize),
    /// Stored past a hole.
    OutOfOrder,
    /// Not stored: out of window, or too many holes.
    Dropped,
}

/// Received data, readable and out of order.
#[derive(Debug, Clone)]
pub struct RecvBuffer {
    ring: Ring,
    ooo: Assembler,
    /// The most bytes the ring may hold (readable and out of order): SO_RCVBUF and its slack.
    limit: usize,
}

impl RecvBuffer {
    /// An empty buffer that may grow to `limit` bytes (SO_RCVBUF) keeping at most `max_ranges`
    /// out-of-order ranges. Nothing is allocated until data arrives.
    pub fn new(limit: usize, max_ranges: usize) -> RecvBuffer {
        RecvBuffer { ring: Ring::new(0), ooo: Assembler::new(max_ranges), limit }
    }

    /// Readable bytes.
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// Whether nothing is readable.
    pub fn is_empty(&self) -> bool {
        self.ring.len() == 0
    }

    /// Bytes of storage allocated now.
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// The most bytes the buffer may hold.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Changes the limit. The caller keeps it at or above what it promised the peer (the
    /// readable bytes, the window advertised, any out-of-order bytes); storage already
    /// allocated past a lower limit stays until the buffer is given back.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// Bytes from the in-order point to the end of the last out-of-order range (0 without any).
    pub fn out_of_order_end(&self) -> usize {
        self.ooo.ranges().last().map_or(0, |r| r.1 as usize)
    }

    /// Room past the readable bytes under the limit: the most the receive window may offer.
    pub fn free(&self) -> usize {
        self.limit.saturating_sub(self.ring.len())
    }

    /// Whether out-of-order data is waiting for a hole to fill.
    pub fn has_holes(&self) -> bool {
        !self.ooo.is_empty()
    }

    /// The out-of-order ranges held, as byte offsets `[start, end)` past the in-order point,
    /// in order (what SACK blocks report).
    pub fn out_of_order(&self) -> &[(u32, u32)] {
        self.ooo.ranges()
    }

    /// Whether nothing is held at all (readable or out of order): the storage may be given back.
    pub fn is_idle(&self) -> bool {
        self.ring.len() == 0 && self.ooo.is_empty()
    }

    /// Gives the storage back if nothing is held; returns the bytes freed.
    pub fn release(&mut self) -> usize {
        if self.is_idle() {
            self.ring.release()
        } else {
            0
        }
    }

    /// Stores `data` that starts `offset` bytes past the in-order point, growing the storage
    /// first if it ends past it.
    pub fn insert(&mut self, offset: usize, data: &[u8]) -> Arrival {
        let free = self.free();
        if data.is_empty() || offset >= free {
            return Arrival::Dropped;
        }
        let n = data.len().min(free - offset);
        // A segment refused for want of a range grows nothing.
        if offset > 0 && !self.ooo.add(offset as u32, (offset + n) as u32) {
            return Arrival::Dropped;
        }
        let end = self.ring.len() + offset + n;
        if end > self.ring.capacity() {
            self.ring.reserve(end, self.limit);
        }
        if offset > 0 {
            self.ring.write_beyond(offset, &data[..n]);
            return Arrival::OutOfOrder;
        }
        self.ring.write_beyond(0, &data[..n]);
        let extra = self.ooo.advance(n as u32) as usize;
        self.ring.commit(n + extra);
        Arrival::InOrder(n + extra)
    }

    /// Copies readable bytes into `out` without consuming them (a hand-over copies the
    /// unread bytes to the kernel's receive queue).
    pub fn peek(&self, out: &mut [u8]) -> usize {
        self.ring.read_at(0, out)
    }

    /// Copies readable bytes from `offset` past the first into `out` without consuming them.
    pub fn peek_at(&self, offset: usize, out: &mut [u8]) -> usize {
        self.ring.read_at(offset, out)
    }

    /// Drops `n` readable bytes (at most what is readable).
    pub fn consume(&mut self, n: usize) {
        self.ring.consume(n.min(self.ring.len()))
    }

    /// Copies readable bytes into `out`, consuming them unless `peek`.
    pub fn read(&mut self, out: &mut [u8], peek: bool) -> usize {
        let n = self.ring.read_at(0, out);
        if !peek {
            self.ring.consume(n);
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Pieces of a byte stream arriving in any order, duplicated or overlapping, with reads
        /// in between: what is read is always a prefix of the stream, and everything offered
        /// within the window and the range bound is eventually read.
        #[test]
        fn reads_are_always_a_prefix_of_the_stream(
            cap in 16usize..256,
            pieces in proptest::collection::vec((0usize..600, 1usize..80, any::<bool>()), 1..120),
        ) {
            let stream: Vec<u8> = (0..1000u32).map(|i| (i * 7 + i / 251) as u8).collect();
            let mut r = RecvBuffer::new(cap, 4);
            let mut read = Vec::new();
            let mut next = 0usize; // stream offset of the in-order point
            let mut out = vec![0u8; 64];
            for (start, len, do_read) in pieces {
                let end = (start + len).min(stream.len());
                if start < end && end > next {
                    let from = start.max(next);
                    if let Arrival::InOrder(n) = r.insert(from - next, &stream[from..end]) {
                        next += n;
                    }
                }
                if do_read {
                    let n = r.read(&mut out, false);
                    read.extend_from_slice(&out[..n]);
                }
                prop_assert_eq!(read.len() + r.len(), next);
                prop_assert_eq!(&read[..], &stream[..read.len()]);
            }
            loop {
                let n = r.read(&mut out, false);
                if n == 0 { break; }
                read.extend_from_slice(&out[..n]);
            }
            prop_assert_eq!(&read[..], &stream[..next]);
        }
    }

    proptest! {
        /// The same with a limit past the first allocation: the ring grows (4 KiB, 8 KiB, ...)
        /// while bytes are held wrapped around its end and out-of-order bytes wait past holes,
        /// and is given back whenever it runs empty; reads stay a prefix of the stream, and the
        /// storage never exceeds the limit.
        #[test]
        fn growth_and_give_back_keep_the_stream(
            limit in 4097usize..40_000,
            pieces in proptest::collection::vec((0usize..60_000, 1usize..3_000, 0u8..4), 1..200),
        ) {
            let stream: Vec<u8> = (0..60_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
            let mut r = RecvBuffer::new(limit, 8);
            let mut read = Vec::new();
            let mut next = 0usize;
            let mut out = vec![0u8; 1_500];
            for (start, len, action) in pieces {
                // Mostly near the in-order point, so that holes fill.
                let start = next + start % (limit + 2_000);
                let end = (start + len).min(stream.len());
                if start < end {
                    if let Arrival::InOrder(n) = r.insert(start - next, &stream[start..end]) {
                        next += n;
                    }
                }
                prop_assert!(r.capacity() <= limit);
                match action {
                    0 => {}
                    1 => {
                        let n = r.read(&mut out, false);
                        read.extend_from_slice(&out[..n]);
                    }
                    _ => loop {
                        let n = r.read(&mut out, false);
                        if n == 0 { break; }
                        read.extend_from_slice(&out[..n]);
                    },
                }
                if action == 3 {
                    let idle = r.is_idle();
                    let cap = r.capacity();
                    prop_assert_eq!(r.release(), if idle { cap } else { 0 });
                }
                prop_assert_eq!(read.len() + r.len(), next);
                prop_assert_eq!(&read[..], &stream[..read.len()]);
            }
        }
    }

    #[test]
    fn storage_grows_from_nothing_and_is_given_back_when_idle() {
        let mut r = RecvBuffer::new(64 * 1024, 4);
        assert_eq!((r.capacity(), r.free()), (0, 64 * 1024), "the window comes from the limit");
        assert_eq!(r.insert(1000, &[1u8; 100]), Arrival::OutOfOrder);
        assert_eq!(r.capacity(), 4096);
        assert_eq!(r.release(), 0, "out-of-order bytes are held");
        // A whole window at once into a buffer that has 4 KiB: it grows first.
        let data: Vec<u8> = (0..64 * 1024).map(|i| i as u8).collect();
        assert_eq!(r.insert(0, &data), Arrival::InOrder(64 * 1024));
        assert_eq!(r.capacity(), 64 * 1024);
        let mut out = vec![0u8; 64 * 1024];
        assert_eq!(r.read(&mut out, false), 64 * 1024);
        assert_eq!(out, data);
        assert_eq!(r.release(), 64 * 1024);
        assert_eq!(r.capacity(), 0);
    }

    #[test]
    fn out_of_order_bytes_become_readable_when_the_hole_fills() {
        let mut r = RecvBuffer::new(16, 4);
        assert_eq!(r.insert(4, b"efgh"), Arrival::OutOfOrder);
        assert_eq!(r.len(), 0);
        assert_eq!(r.insert(0, b"abcd"), Arrival::InOrder(8));
        let mut out = [0u8; 16];
        assert_eq!(r.read(&mut out, true), 8);
        assert_eq!(r.read(&mut out, false), 8);
        assert_eq!(&out[..8], b"abcdefgh");
        assert_eq!(r.insert(16, b"x"), Arrival::Dropped, "beyond the window");
        assert_eq!(r.insert(14, b"xyz"), Arrival::OutOfOrder, "cut to the window");
        assert_eq!(r.insert(0, &[0u8; 14]), Arrival::InOrder(16));
    }
}
