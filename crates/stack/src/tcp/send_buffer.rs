//! The send buffer: bytes the application wrote and the peer has not acknowledged yet. Its
//! first byte is always `snd_una`, so a retransmission reads straight from it. The ring starts
//! without storage and grows on the write path (doubling from 4 KiB, up to SO_SNDBUF) when a
//! write does not fit; an empty buffer can give its storage back.

use super::ring::Ring;

/// Unacknowledged and unsent bytes, in sequence order from `snd_una`.
#[derive(Debug, Clone)]
pub struct SendBuffer {
    ring: Ring,
    /// The most bytes it may hold (SO_SNDBUF).
    limit: usize,
}

impl SendBuffer {
    /// An empty buffer that may grow to `limit` bytes (SO_SNDBUF); nothing is allocated yet.
    pub fn new(limit: usize) -> SendBuffer {
        SendBuffer { ring: Ring::new(0), limit }
    }

    /// Bytes held (sent or not).
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.ring.len() == 0
    }

    /// Room for the application, under the limit.
    pub fn free(&self) -> usize {
        self.limit.saturating_sub(self.ring.len())
    }

    /// Bytes of storage allocated now.
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// The most bytes it may hold.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Changes the limit; bytes already held past a lower one stay (writes wait until they
    /// are acknowledged), and so does storage until the buffer is given back.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// Appends what fits under the limit of `data`, growing the storage first if needed;
    /// returns the bytes taken.
    pub fn write(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.free());
        let end = self.ring.len() + n;
        if end > self.ring.capacity() {
            self.ring.reserve(end, self.limit);
        }
        self.ring.push(&data[..n])
    }

    /// Appends up to `max` bytes (what fits under the limit) that `fill` writes in place (see
    /// `Ring::push_with`); returns the bytes taken.
    pub fn write_with(&mut self, max: usize, fill: &mut dyn FnMut(&mut [u8]) -> usize) -> usize {
        let n = max.min(self.free());
        let end = self.ring.len() + n;
        if end > self.ring.capacity() {
            self.ring.reserve(end, self.limit);
        }
        self.ring.push_with(n, fill)
    }

    /// Appends all of `data`, past the limit if need be (bytes that already went out on the
    /// wire outside the stack, `exasock_tcp_send_advance`: they must be kept for
    /// retransmission); later writes wait until the buffer drains under the limit again.
    pub fn write_forced(&mut self, data: &[u8]) {
        let end = self.ring.len() + data.len();
        if end > self.ring.capacity() {
            self.ring.reserve(end, self.limit.max(end));
        }
        self.ring.push(data);
    }

    /// Copies bytes from `offset` (from `snd_una`) into `out`; returns the bytes copied.
    pub fn read_at(&self, offset: usize, out: &mut [u8]) -> usize {
        self.ring.read_at(offset, out)
    }

    /// Drops `n` acknowledged bytes.
    pub fn ack(&mut self, n: usize) {
        self.ring.consume(n)
    }

    /// Gives the storage back if nothing is held; returns the bytes freed.
    pub fn release(&mut self) -> usize {
        if self.is_empty() {
            self.ring.release()
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_on_writes_up_to_the_limit_and_keeps_the_bytes_in_order() {
        let mut b = SendBuffer::new(20_000);
        assert_eq!((b.capacity(), b.free()), (0, 20_000));
        let data: Vec<u8> = (0..30_000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(b.write(&data[..3000]), 3000);
        assert_eq!(b.capacity(), 4096);
        b.ack(2000);
        // Wraps around the 4 KiB ring, then grows while wrapped.
        assert_eq!(b.write(&data[3000..5000]), 2000);
        assert_eq!(b.capacity(), 4096);
        assert_eq!(b.write(&data[5000..]), 17_000, "up to the limit");
        assert_eq!(b.capacity(), 20_000);
        let mut out = vec![0u8; 20_000];
        assert_eq!(b.read_at(0, &mut out), 20_000);
        assert_eq!(out, data[2000..22_000]);
        assert_eq!(b.release(), 0, "held bytes keep their storage");
        b.ack(20_000);
        assert_eq!(b.release(), 20_000);
        assert_eq!(b.capacity(), 0);
        b.set_limit(100);
        assert_eq!(b.write(&data), 100);
        assert_eq!(b.capacity(), 100);
    }
}
