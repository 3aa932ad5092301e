//! A fixed-capacity byte ring: the storage under both the send and the receive buffer. It is
//! allocated once when a connection gets its buffers and never grows.

/// Bytes `[head, head + len)` (modulo capacity) are held.
#[derive(Debug, Clone)]
pub(crate) struct Ring {
    buf: Box<[u8]>,
    head: usize,
    len: usize,
}

impl Ring {
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
        fn matches_a_model(cap in 1usize..64, ops in proptest::collection::vec((0u8..3, 0usize..80), 1..200)) {
            let mut ring = Ring::new(cap);
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
}
