//! The send buffer: bytes the application wrote and the peer has not acknowledged yet. Its
//! first byte is always `snd_una`, so a retransmission reads straight from it.

use super::ring::Ring;

/// Unacknowledged and unsent bytes, in sequence order from `snd_una`.
#[derive(Debug, Clone)]
pub struct SendBuffer {
    ring: Ring,
}

impl SendBuffer {
    /// A buffer of `capacity` bytes (SO_SNDBUF).
    pub fn new(capacity: usize) -> SendBuffer {
        SendBuffer { ring: Ring::new(capacity) }
    }

    /// Bytes held (sent or not).
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.ring.len() == 0
    }

    /// Room for the application.
    pub fn free(&self) -> usize {
        self.ring.free()
    }

    /// Capacity.
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// Appends what fits of `data`; returns the bytes taken.
    pub fn write(&mut self, data: &[u8]) -> usize {
        self.ring.push(data)
    }

    /// Copies bytes from `offset` (from `snd_una`) into `out`; returns the bytes copied.
    pub fn read_at(&self, offset: usize, out: &mut [u8]) -> usize {
        self.ring.read_at(offset, out)
    }

    /// Drops `n` acknowledged bytes.
    pub fn ack(&mut self, n: usize) {
        self.ring.consume(n)
    }
}
