//! The receive buffer: in-order bytes the application has not read, and out-of-order bytes
//! stored at their place past them, in one ring whose free space is the receive window.

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
}

impl RecvBuffer {
    /// A buffer of `capacity` bytes (SO_RCVBUF) keeping at most `max_ranges` out-of-order ranges.
    pub fn new(capacity: usize, max_ranges: usize) -> RecvBuffer {
        RecvBuffer { ring: Ring::new(capacity), ooo: Assembler::new(max_ranges) }
    }

    /// Readable bytes.
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// Whether nothing is readable.
    pub fn is_empty(&self) -> bool {
        self.ring.len() == 0
    }

    /// Capacity.
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// Room past the readable bytes: the most the receive window may offer.
    pub fn free(&self) -> usize {
        self.ring.free()
    }

    /// Whether out-of-order data is waiting for a hole to fill.
    pub fn has_holes(&self) -> bool {
        !self.ooo.is_empty()
    }

    /// Stores `data` that starts `offset` bytes past the in-order point.
    pub fn insert(&mut self, offset: usize, data: &[u8]) -> Arrival {
        if data.is_empty() || offset >= self.free() {
            return Arrival::Dropped;
        }
        let n = data.len().min(self.free() - offset);
        if offset > 0 {
            if !self.ooo.add(offset as u32, (offset + n) as u32) {
                return Arrival::Dropped;
            }
            self.ring.write_beyond(offset, &data[..n]);
            return Arrival::OutOfOrder;
        }
        self.ring.write_beyond(0, &data[..n]);
        let extra = self.ooo.advance(n as u32) as usize;
        self.ring.commit(n + extra);
        Arrival::InOrder(n + extra)
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
