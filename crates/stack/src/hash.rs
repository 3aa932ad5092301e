//! A fast non-cryptographic hasher for the demultiplexing tables (FxHash). Keys are addresses
//! and ports, not attacker-chosen lengths, and SipHash's cost would be paid on every packet.

use std::hash::{BuildHasherDefault, Hasher};

/// The FxHash function (as in rustc): a rotate, an xor and a multiply per word.
#[derive(Debug, Default, Clone, Copy)]
pub struct FxHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// HashMap with FxHash.
pub type FxHashMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// SipHash-1-3 (Rust's own `HashMap` hash) under a key the caller chooses, for tables whose keys
/// a peer picks: the TCP demultiplexer's 4-tuples and listener addresses. FxHash there would let
/// a peer aim SYNs with crafted ports at one bucket; with a per-stack key it cannot know where
/// its tuples land. (std's `RandomState` reads the OS's randomness, which the sans-IO stack must
/// not do: the key comes from the configuration, as the ISN key does.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyedState {
    k0: u64,
    k1: u64,
}

impl KeyedState {
    /// A hasher family under `key`.
    pub fn new(key: [u64; 2]) -> KeyedState {
        KeyedState { k0: key[0], k1: key[1] }
    }

    /// A key for the demultiplexer derived from `secret` (the ISN key), so that one random
    /// secret serves both and neither reveals the other.
    pub fn derived(secret: [u64; 2], label: u64) -> KeyedState {
        use std::hash::BuildHasher;
        let s = KeyedState::new(secret);
        KeyedState { k0: s.hash_one((label, 0u8)), k1: s.hash_one((label, 1u8)) }
    }
}

impl std::hash::BuildHasher for KeyedState {
    type Hasher = SipHasher13;
    fn build_hasher(&self) -> SipHasher13 {
        SipHasher13::new(self.k0, self.k1)
    }
}

/// A streaming SipHash-1-3 (one compression round, three finalisation rounds).
#[derive(Debug, Clone)]
pub struct SipHasher13 {
    v: [u64; 4],
    tail: u64,
    ntail: usize,
    length: usize,
}

impl SipHasher13 {
    fn new(k0: u64, k1: u64) -> SipHasher13 {
        SipHasher13 {
            v: [
                k0 ^ 0x736f_6d65_7073_6575,
                k1 ^ 0x646f_7261_6e64_6f6d,
                k0 ^ 0x6c79_6765_6e65_7261,
                k1 ^ 0x7465_6462_7974_6573,
            ],
            tail: 0,
            ntail: 0,
            length: 0,
        }
    }

    #[inline]
    fn round(&mut self) {
        sip_round(&mut self.v);
    }

    #[inline]
    fn compress(&mut self, m: u64) {
        self.v[3] ^= m;
        self.round();
        self.v[0] ^= m;
    }
}

impl Hasher for SipHasher13 {
    fn write(&mut self, bytes: &[u8]) {
        self.length += bytes.len();
        let mut bytes = bytes;
        if self.ntail > 0 {
            while self.ntail < 8 && !bytes.is_empty() {
                self.tail |= u64::from(bytes[0]) << (8 * self.ntail);
                self.ntail += 1;
                bytes = &bytes[1..];
            }
            if self.ntail < 8 {
                return;
            }
            let m = self.tail;
            self.compress(m);
            self.tail = 0;
            self.ntail = 0;
        }
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let m = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            self.compress(m);
        }
        for (i, b) in chunks.remainder().iter().enumerate() {
            self.tail |= u64::from(*b) << (8 * i);
        }
        self.ntail = chunks.remainder().len();
    }

    fn finish(&self) -> u64 {
        let mut s = self.clone();
        let m = ((s.length as u64 & 0xff) << 56) | s.tail;
        s.compress(m);
        s.v[2] ^= 0xff;
        for _ in 0..3 {
            s.round();
        }
        s.v[0] ^ s.v[1] ^ s.v[2] ^ s.v[3]
    }
}

/// HashMap keyed per stack (SipHash-1-3).
pub type KeyedHashMap<K, V> = std::collections::HashMap<K, V, KeyedState>;

/// One SipRound over the state (shared by the demux hasher and the ISN function).
#[inline]
pub(crate) fn sip_round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13) ^ v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16) ^ v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21) ^ v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17) ^ v[2];
    v[2] = v[2].rotate_left(32);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn siphash13_matches_std_under_the_zero_key() {
        // std's DefaultHasher is SipHash-1-3 with a zero key.
        #[allow(deprecated)]
        let reference = |bytes: &[u8]| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            h.write(bytes);
            h.finish()
        };
        let s = KeyedState::new([0, 0]);
        for n in 0..40usize {
            let msg: Vec<u8> = (0..n as u8).collect();
            let mut h = s.build_hasher();
            // In pieces, across the 8-byte boundaries.
            let (a, b) = msg.split_at(n / 3);
            h.write(a);
            h.write(b);
            assert_eq!(h.finish(), reference(&msg), "{n} bytes");
        }
    }
}
