//! IPv4 fragment reassembly (RFC 791, RFC 815), bounded so that no stream of fragments can
//! make the stack allocate, or hold, more than it did at start-up.
//!
//! A [`Reassembler`] owns a fixed number of slots, each big enough for the largest IPv4 payload
//! ([`MAX_PAYLOAD`] bytes) plus a bitmap of the 8-byte blocks received so far (RFC 815's hole
//! list, kept as bits so that it too has a fixed size). Everything is allocated by
//! [`Reassembler::new`]; inserting, completing, dropping and expiring only write into that
//! memory. Fragments are copied into their slot at their offset, so a completed datagram is
//! already contiguous and is handed back as a slice of the slot, with no further copy.
//!
//! Hostile input is handled as Linux does since the FragmentSmack fixes: a fragment that
//! overlaps data already received (other than an exact resend of it) discards the whole
//! datagram; a datagram that is not complete `timeout` after its *first* fragment arrived is
//! discarded; and when the table is full a new datagram is refused rather than evicting an old
//! one, with a per-source cap so that one sender cannot hold every slot.
//!
//! The module is sans-IO like the rest of the crate: time comes in as an argument, expiry runs
//! lazily on every call that is given the time, and [`Reassembler::next_expiry`] tells the
//! caller when to arm its timer.

use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

use crate::time::Instant;

/// The largest IPv4 payload: a 65535-byte total length minus the 20-byte minimum header. A
/// fragment reaching past it can never be part of a valid datagram ([`DropReason::TooLong`]).
pub const MAX_PAYLOAD: usize = 65_535 - 20;

/// Upper bound on [`ReassemblyConfig::max_datagrams`] (larger values are clamped): 4096 slots
/// is already 256 MiB of buffers, far beyond any sensible configuration.
pub const MAX_DATAGRAMS: usize = 4096;

/// Fragment offsets count 8-byte blocks (RFC 791).
const BLOCK: usize = 8;
/// One bit per 8-byte block of a maximum-size payload, rounded up to whole words.
const BITMAP_WORDS: usize = MAX_PAYLOAD.div_ceil(BLOCK).div_ceil(64);
const _: () = assert!(BITMAP_WORDS * 64 * BLOCK >= MAX_PAYLOAD);
/// "No slot" in the expiry list and the index.
const NIL: u32 = u32::MAX;

/// Limits of a [`Reassembler`]: what bounds its memory and how long it waits for stragglers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReassemblyConfig {
    /// How long a datagram may stay incomplete, counted from its first fragment's arrival
    /// (default 30 s, Linux's `ipfrag_time`).
    pub timeout: Duration,
    /// Datagrams that can be in progress at once; each costs about 65.5 KiB, allocated up front
    /// (default 64, at most [`MAX_DATAGRAMS`]).
    pub max_datagrams: usize,
    /// Datagrams one source address may have in progress at once, so that a single sender
    /// cannot occupy the whole table (default 8).
    pub max_per_source: usize,
}

impl Default for ReassemblyConfig {
    fn default() -> Self {
        ReassemblyConfig { timeout: Duration::from_secs(30), max_datagrams: 64, max_per_source: 8 }
    }
}

/// Identifies the datagram a fragment belongs to: RFC 791's (source, destination, protocol,
/// identification).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragKey {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// IP protocol number.
    pub protocol: u8,
    /// The header's identification field.
    pub ident: u16,
}

impl FragKey {
    fn hash(&self) -> u64 {
        let addrs = (u64::from(u32::from(self.src)) << 32) | u64::from(u32::from(self.dst));
        mix(mix(addrs) ^ ((u64::from(self.protocol) << 16) | u64::from(self.ident)))
    }
}

/// What became of a fragment given to [`Reassembler::insert`].
#[derive(Debug, PartialEq, Eq)]
pub enum FragOutcome<'a> {
    /// Kept (or, for an exact duplicate, ignored); the datagram still has holes.
    Incomplete,
    /// The fragment completed its datagram: here is the whole IP payload. The slice borrows the
    /// reassembler, whose slot is already free for reuse by the next call.
    Complete(&'a [u8]),
    /// The fragment was refused, and with [`DropReason::Overlap`] or
    /// [`DropReason::Inconsistent`] so was everything received for its datagram.
    Dropped(DropReason),
}

/// Why a fragment was refused; each has a counter in [`ReassemblyStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// It overlaps data already received with anything but an identical copy of that data; the
    /// whole datagram is discarded (RFC 5722's rule, which Linux applies to IPv4 as well).
    Overlap,
    /// `offset + payload.len()` exceeds [`MAX_PAYLOAD`]; only this fragment is dropped.
    TooLong,
    /// Empty, an offset that is not a multiple of 8, or a non-last fragment whose length is not
    /// a multiple of 8; only this fragment is dropped.
    BadLength,
    /// The table is full, or the source already has `max_per_source` datagrams in progress;
    /// nothing is evicted to make room.
    NoSlot,
    /// It contradicts the datagram's length: a second last fragment with a different end, data
    /// past the known end, or a last fragment ending before data already received. The whole
    /// datagram is discarded, as Linux does.
    Inconsistent,
}

/// Counters for monitoring, in the spirit of the kernel's `/proc/net/snmp` Ip: `ReasmReqds`
/// ([`fragments`](Self::fragments)), `ReasmOKs` ([`reassembled`](Self::reassembled)),
/// `ReasmFails` ([`failed`](Self::failed)) and `ReasmTimeout` ([`timeouts`](Self::timeouts)),
/// plus one counter per [`DropReason`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReassemblyStats {
    /// Fragments offered to [`Reassembler::insert`] (ReasmReqds); unfragmented packets passed
    /// through are not counted.
    pub fragments: u64,
    /// Datagrams completed (ReasmOKs).
    pub reassembled: u64,
    /// Failures of any kind: every dropped fragment plus every timeout (ReasmFails).
    pub failed: u64,
    /// Datagrams discarded because they were still incomplete after the timeout (ReasmTimeout).
    pub timeouts: u64,
    /// Exact duplicates ignored.
    pub duplicates: u64,
    /// [`DropReason::Overlap`] drops (each discarded a datagram; ReasmOverlaps).
    pub overlaps: u64,
    /// [`DropReason::NoSlot`] drops.
    pub no_slot: u64,
    /// [`DropReason::TooLong`] drops.
    pub too_long: u64,
    /// [`DropReason::BadLength`] drops.
    pub bad_length: u64,
    /// [`DropReason::Inconsistent`] drops (each discarded a datagram).
    pub inconsistent: u64,
}

/// Bookkeeping of one slot; its bytes and bitmap live in the reassembler's flat arrays.
#[derive(Debug, Clone, Copy)]
struct Slot {
    key: FragKey,
    /// Arrival of the first fragment (never earlier than any time seen before it).
    created: Instant,
    /// Neighbours in the expiry list, which is in order of `created`.
    prev: u32,
    next: u32,
    /// The datagram's length, once its last fragment (MF=0) has arrived.
    total: Option<u32>,
    /// The highest end of any fragment received.
    high: u32,
    /// Bytes received; since overlaps are refused, completion is `received == total`.
    received: u32,
}

const IDLE_SLOT: Slot = Slot {
    key: FragKey { src: Ipv4Addr::UNSPECIFIED, dst: Ipv4Addr::UNSPECIFIED, protocol: 0, ident: 0 },
    created: Instant::ZERO,
    prev: NIL,
    next: NIL,
    total: None,
    high: 0,
    received: 0,
};

/// A per-source counter in the open-addressed source table; `count == 0` means empty.
#[derive(Debug, Clone, Copy, Default)]
struct SourceCount {
    addr: u32,
    count: u32,
}

/// Reassembles fragmented IPv4 datagrams in a fixed amount of memory.
///
/// All memory is allocated by [`new`](Self::new); afterwards no call allocates, and no input
/// makes any call panic.
pub struct Reassembler {
    config: ReassemblyConfig,
    /// `max_datagrams` buffers of `MAX_PAYLOAD` bytes, slot `i` at `i * MAX_PAYLOAD`.
    data: Vec<u8>,
    /// `max_datagrams` bitmaps of `BITMAP_WORDS` words: bit set = 8-byte block received.
    blocks: Vec<u64>,
    slots: Vec<Slot>,
    /// Free slot numbers (a stack, never longer than its initial capacity).
    free: Vec<u32>,
    /// Open-addressed (linear probing, at most half full) map from key to slot number.
    index: Vec<u32>,
    /// Open-addressed map from source address to datagrams in progress, same size as `index`.
    sources: Vec<SourceCount>,
    /// Expiry list, oldest first.
    oldest: u32,
    newest: u32,
    in_progress: usize,
    /// The latest time seen, so that a clock stepping back cannot disorder the expiry list.
    clock: Instant,
    stats: ReassemblyStats,
}

impl fmt::Debug for Reassembler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reassembler")
            .field("config", &self.config)
            .field("in_progress", &self.in_progress)
            .field("next_expiry", &self.next_expiry())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Reassembler {
    /// Allocates everything the reassembler will ever use: `max_datagrams` slots of
    /// [`MAX_PAYLOAD`] bytes, their block bitmaps, and the lookup tables.
    pub fn new(config: ReassemblyConfig) -> Self {
        let n = config.max_datagrams.min(MAX_DATAGRAMS);
        let config = ReassemblyConfig { max_datagrams: n, ..config };
        let table = (2 * n).next_power_of_two().max(2);
        let mut free = Vec::with_capacity(n);
        free.extend((0..n as u32).rev());
        Reassembler {
            config,
            data: vec![0; n * MAX_PAYLOAD],
            blocks: vec![0; n * BITMAP_WORDS],
            slots: vec![IDLE_SLOT; n],
            free,
            index: vec![NIL; table],
            sources: vec![SourceCount::default(); table],
            oldest: NIL,
            newest: NIL,
            in_progress: 0,
            clock: Instant::ZERO,
            stats: ReassemblyStats::default(),
        }
    }

    /// The configuration in force (`max_datagrams` as clamped by [`new`](Self::new)).
    pub fn config(&self) -> &ReassemblyConfig {
        &self.config
    }

    /// Adds one fragment: `offset` is in bytes (the header's fragment offset times 8),
    /// `more_fragments` is the MF flag and `payload` the data after the IP header.
    ///
    /// Expired datagrams are freed first, so a table full of stale entries recovers without an
    /// explicit [`expire`](Self::expire). A packet that is not a fragment (offset 0, MF clear)
    /// is returned as `Complete` of itself without touching any state or counter.
    pub fn insert<'a>(
        &'a mut self,
        now: Instant,
        key: FragKey,
        offset: usize,
        more_fragments: bool,
        payload: &'a [u8],
    ) -> FragOutcome<'a> {
        let len = payload.len();
        if offset == 0 && !more_fragments {
            return if len <= MAX_PAYLOAD {
                FragOutcome::Complete(payload)
            } else {
                FragOutcome::Dropped(DropReason::TooLong)
            };
        }
        self.stats.fragments += 1;
        self.advance(now);

        let end = match offset.checked_add(len) {
            Some(end) if end <= MAX_PAYLOAD => end,
            _ => return self.refuse(DropReason::TooLong),
        };
        if len == 0 || !offset.is_multiple_of(BLOCK) || (more_fragments && !len.is_multiple_of(BLOCK)) {
            return self.refuse(DropReason::BadLength);
        }

        let slot = match self.find(&key) {
            Some(slot) => slot,
            None => match self.allocate(key) {
                Some(slot) => slot,
                None => return self.refuse(DropReason::NoSlot),
            },
        };
        let s = slot as usize;
        let end32 = end as u32;

        // The fragment must agree with what is known of the datagram's length.
        let meta = &self.slots[s];
        let consistent = match (more_fragments, meta.total) {
            (false, Some(total)) => end32 == total,
            (false, None) => end32 >= meta.high,
            (true, Some(total)) => end32 <= total,
            (true, None) => true,
        };
        if !consistent {
            return self.discard(slot, DropReason::Inconsistent);
        }

        // Every fragment starts on a block boundary, and only the last may end inside a block
        // (with nothing allowed after it), so block bits describe the received bytes exactly.
        let bitmap = &mut self.blocks[s * BITMAP_WORDS..(s + 1) * BITMAP_WORDS];
        let (first_block, end_block) = (offset / BLOCK, end.div_ceil(BLOCK));
        let (any, all) = range_state(bitmap, first_block, end_block);
        let base = s * MAX_PAYLOAD;
        if any {
            return if all && self.data[base + offset..base + end] == *payload {
                self.stats.duplicates += 1;
                FragOutcome::Incomplete
            } else {
                self.discard(slot, DropReason::Overlap)
            };
        }
        range_set(bitmap, first_block, end_block);
        self.data[base + offset..base + end].copy_from_slice(payload);

        let meta = &mut self.slots[s];
        meta.received += len as u32;
        meta.high = meta.high.max(end32);
        if !more_fragments {
            meta.total = Some(end32);
        }
        match meta.total {
            Some(total) if meta.received == total => {
                self.release(slot);
                self.stats.reassembled += 1;
                FragOutcome::Complete(&self.data[base..base + total as usize])
            }
            _ => FragOutcome::Incomplete,
        }
    }

    /// Frees every datagram whose first fragment arrived `timeout` or more before `now`, and
    /// returns how many it freed (each counted in [`ReassemblyStats::timeouts`]).
    pub fn expire(&mut self, now: Instant) -> usize {
        self.advance(now)
    }

    /// When the oldest datagram in progress will expire, for the caller's timer; `None` when
    /// nothing is in progress.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.slots.get(self.oldest as usize).map(|slot| slot.created + self.config.timeout)
    }

    /// Datagrams currently in progress (holding a slot).
    pub fn in_progress(&self) -> usize {
        self.in_progress
    }

    /// Bytes allocated by [`new`](Self::new); constant for the reassembler's life.
    pub fn memory_bytes(&self) -> usize {
        self.data.capacity()
            + self.blocks.capacity() * size_of::<u64>()
            + self.slots.capacity() * size_of::<Slot>()
            + self.free.capacity() * size_of::<u32>()
            + self.index.capacity() * size_of::<u32>()
            + self.sources.capacity() * size_of::<SourceCount>()
    }

    /// The counters so far.
    pub fn stats(&self) -> ReassemblyStats {
        self.stats
    }

    /// Moves the clock forward to `now` (never back) and frees what has expired by then.
    fn advance(&mut self, now: Instant) -> usize {
        self.clock = self.clock.max(now);
        let mut freed = 0;
        while let Some(slot) = self.slots.get(self.oldest as usize) {
            if self.clock.saturating_since(slot.created) < self.config.timeout {
                break;
            }
            self.release(self.oldest);
            freed += 1;
        }
        self.stats.timeouts += freed as u64;
        self.stats.failed += freed as u64;
        freed
    }

    /// Counts a refused fragment.
    fn refuse<'a>(&mut self, reason: DropReason) -> FragOutcome<'a> {
        self.stats.failed += 1;
        let counter = match reason {
            DropReason::Overlap => &mut self.stats.overlaps,
            DropReason::TooLong => &mut self.stats.too_long,
            DropReason::BadLength => &mut self.stats.bad_length,
            DropReason::NoSlot => &mut self.stats.no_slot,
            DropReason::Inconsistent => &mut self.stats.inconsistent,
        };
        *counter += 1;
        FragOutcome::Dropped(reason)
    }

    /// Refuses a fragment and discards its whole datagram.
    fn discard<'a>(&mut self, slot: u32, reason: DropReason) -> FragOutcome<'a> {
        self.release(slot);
        self.refuse(reason)
    }

    /// Takes a free slot for `key`, or `None` if the table or the source's quota is full.
    fn allocate(&mut self, key: FragKey) -> Option<u32> {
        let src = u32::from(key.src);
        if self.source_count(src) as usize >= self.config.max_per_source {
            return None;
        }
        let slot = self.free.pop()?;
        let s = slot as usize;
        self.blocks[s * BITMAP_WORDS..(s + 1) * BITMAP_WORDS].fill(0);
        self.slots[s] = Slot { key, created: self.clock, prev: self.newest, ..IDLE_SLOT };
        match self.slots.get_mut(self.newest as usize) {
            Some(newest) => newest.next = slot,
            None => self.oldest = slot,
        }
        self.newest = slot;
        self.index_insert(key.hash(), slot);
        self.source_add(src);
        self.in_progress += 1;
        Some(slot)
    }

    /// Frees a slot in use: out of the index, the expiry list and its source's count. Its bytes
    /// stay as they are until the slot is reused.
    fn release(&mut self, slot: u32) {
        let Slot { key, prev, next, .. } = self.slots[slot as usize];
        match self.slots.get_mut(prev as usize) {
            Some(p) => p.next = next,
            None => self.oldest = next,
        }
        match self.slots.get_mut(next as usize) {
            Some(n) => n.prev = prev,
            None => self.newest = prev,
        }
        self.index_remove(key.hash(), slot);
        self.source_remove(u32::from(key.src));
        self.free.push(slot);
        self.in_progress -= 1;
    }

    fn find(&self, key: &FragKey) -> Option<u32> {
        let mask = self.index.len() - 1;
        let mut i = key.hash() as usize & mask;
        loop {
            let slot = self.index[i];
            if slot == NIL {
                return None;
            }
            if self.slots[slot as usize].key == *key {
                return Some(slot);
            }
            i = (i + 1) & mask;
        }
    }

    fn index_insert(&mut self, hash: u64, slot: u32) {
        let mask = self.index.len() - 1;
        let mut i = hash as usize & mask;
        while self.index[i] != NIL {
            i = (i + 1) & mask;
        }
        self.index[i] = slot;
    }

    /// Removes `slot` from the index by backward-shift deletion (no tombstones, so probe
    /// lengths never degrade however many datagrams come and go).
    fn index_remove(&mut self, hash: u64, slot: u32) {
        let mask = self.index.len() - 1;
        let mut hole = hash as usize & mask;
        while self.index[hole] != slot {
            if self.index[hole] == NIL {
                debug_assert!(false, "slot {slot} missing from the index");
                return;
            }
            hole = (hole + 1) & mask;
        }
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let moving = self.index[j];
            if moving == NIL {
                break;
            }
            let home = self.slots[moving as usize].key.hash() as usize & mask;
            if !cyclically_within(home, hole, j) {
                self.index[hole] = moving;
                hole = j;
            }
        }
        self.index[hole] = NIL;
    }

    /// Bucket of `addr` in the source table: where it is, or the empty bucket where it would go.
    fn source_bucket(&self, addr: u32) -> usize {
        let mask = self.sources.len() - 1;
        let mut i = mix(u64::from(addr)) as usize & mask;
        while self.sources[i].count != 0 && self.sources[i].addr != addr {
            i = (i + 1) & mask;
        }
        i
    }

    fn source_count(&self, addr: u32) -> u32 {
        self.sources[self.source_bucket(addr)].count
    }

    fn source_add(&mut self, addr: u32) {
        let i = self.source_bucket(addr);
        self.sources[i] = SourceCount { addr, count: self.sources[i].count + 1 };
    }

    fn source_remove(&mut self, addr: u32) {
        let mask = self.sources.len() - 1;
        let mut hole = self.source_bucket(addr);
        if self.sources[hole].count > 1 {
            self.sources[hole].count -= 1;
            return;
        }
        debug_assert_eq!(self.sources[hole].count, 1, "source count underflow");
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let moving = self.sources[j];
            if moving.count == 0 {
                break;
            }
            let home = mix(u64::from(moving.addr)) as usize & mask;
            if !cyclically_within(home, hole, j) {
                self.sources[hole] = moving;
                hole = j;
            }
        }
        self.sources[hole] = SourceCount::default();
    }
}

/// Whether `home` lies in the cyclic interval `(hole, j]`, i.e. an entry found at `j` whose
/// probe started at `home` would not pass through `hole` and so must not move there.
fn cyclically_within(home: usize, hole: usize, j: usize) -> bool {
    if hole <= j {
        hole < home && home <= j
    } else {
        hole < home || home <= j
    }
}

/// SplitMix64's finaliser: a cheap, well-spread hash of a small key.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Calls `f(word, mask)` for each word covering bits `[first, end)`.
fn for_each_word(first: usize, end: usize, mut f: impl FnMut(usize, u64)) {
    let mut bit = first;
    while bit < end {
        let (word, lo) = (bit / 64, bit % 64);
        let width = (64 - lo).min(end - bit);
        let mask = if width == 64 { u64::MAX } else { ((1u64 << width) - 1) << lo };
        f(word, mask);
        bit += width;
    }
}

/// Whether any, and whether all, of bits `[first, end)` are set.
fn range_state(bitmap: &[u64], first: usize, end: usize) -> (bool, bool) {
    let (mut any, mut all) = (false, true);
    for_each_word(first, end, |word, mask| {
        let bits = bitmap.get(word).copied().unwrap_or(0) & mask;
        any |= bits != 0;
        all &= bits == mask;
    });
    (any, all)
}

fn range_set(bitmap: &mut [u64], first: usize, end: usize) {
    for_each_word(first, end, |word, mask| {
        if let Some(bits) = bitmap.get_mut(word) {
            *bits |= mask;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Instant = Instant::ZERO;

    fn key(src: u32, ident: u16) -> FragKey {
        FragKey { src: Ipv4Addr::from(src), dst: Ipv4Addr::new(10, 0, 0, 1), protocol: 17, ident }
    }

    /// Cross-checks every redundant structure against the slots in use.
    fn check_invariants(r: &Reassembler) {
        let n = r.config.max_datagrams;
        let mut in_use = vec![false; n];
        let (mut count, mut prev, mut cur) = (0, NIL, r.oldest);
        while cur != NIL {
            let slot = &r.slots[cur as usize];
            assert_eq!(slot.prev, prev);
            if let Some(p) = r.slots.get(prev as usize) {
                assert!(p.created <= slot.created, "expiry list out of order");
            }
            assert!(!in_use[cur as usize], "cycle in expiry list");
            in_use[cur as usize] = true;
            assert_eq!(r.find(&slot.key), Some(cur));
            count += 1;
            prev = cur;
            cur = slot.next;
        }
        assert_eq!(r.newest, prev);
        assert_eq!(count, r.in_progress);
        assert_eq!(count + r.free.len(), n);
        assert!(r.free.iter().all(|&f| !in_use[f as usize]));
        assert_eq!(r.index.iter().filter(|&&s| s != NIL).count(), count);
        let mut per_source = std::collections::HashMap::new();
        for (i, _) in in_use.iter().enumerate().filter(|(_, &u)| u) {
            *per_source.entry(u32::from(r.slots[i].key.src)).or_insert(0u32) += 1;
        }
        assert_eq!(r.sources.iter().filter(|s| s.count != 0).count(), per_source.len());
        for (addr, c) in per_source {
            assert_eq!(r.source_count(addr), c);
            assert!(c as usize <= r.config.max_per_source);
        }
    }

    #[test]
    fn bitmap_ranges_cross_word_boundaries() {
        let mut bm = [0u64; 4];
        range_set(&mut bm, 60, 130);
        assert_eq!(range_state(&bm, 60, 130), (true, true));
        assert_eq!(range_state(&bm, 59, 61), (true, false));
        assert_eq!(range_state(&bm, 130, 256), (false, false));
        assert_eq!(range_state(&bm, 0, 60), (false, false));
        assert_eq!(bm[1], u64::MAX);
        assert_eq!(bm[2], 0b11);
        // Out-of-range words are ignored rather than panicking.
        range_set(&mut bm, 250, 300);
        assert_eq!(range_state(&bm, 250, 256), (true, true));
    }

    /// Many keys coming and going (completion, overlap drops, timeouts) in a full table keep the
    /// index, the expiry list and the per-source counts consistent.
    #[test]
    fn churn_keeps_tables_consistent() {
        let config = ReassemblyConfig { timeout: Duration::from_millis(50), max_datagrams: 128, max_per_source: 5 };
        let mut r = Reassembler::new(config);
        let mut state = 0x1234_5678_9abc_def0u64;
        let mut rand = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut now = T0;
        for step in 0..60_000u32 {
            now = now + Duration::from_micros(rand() % 20);
            let x = rand();
            let k = key(0x0a00_0000 + (x % 40) as u32, ((x >> 8) % 16) as u16);
            let offset = ((x >> 16) % 4) as usize * 8;
            let mf = (x >> 24) % 3 != 0;
            let len = if mf { 8 } else { 1 + ((x >> 28) % 8) as usize };
            let payload = [(x >> 32) as u8 & 1; 8];
            let _ = r.insert(now, k, offset, mf, &payload[..len]);
            if step % 97 == 0 {
                check_invariants(&r);
            }
        }
        check_invariants(&r);
        let stats = r.stats();
        assert!(stats.reassembled > 0 && stats.overlaps > 0 && stats.timeouts > 0 && stats.no_slot > 0);
        assert!(stats.duplicates > 0 && stats.inconsistent > 0);
        r.expire(now + config.timeout);
        check_invariants(&r);
        assert_eq!(r.in_progress(), 0);
        assert!(r.sources.iter().all(|s| s.count == 0));
        assert!(r.index.iter().all(|&s| s == NIL));
    }

    #[test]
    fn clock_stepping_back_keeps_expiry_list_ordered() {
        let mut r = Reassembler::new(ReassemblyConfig::default());
        let t = Instant::from_nanos(1_000_000);
        assert_eq!(r.insert(t, key(1, 1), 0, true, &[0; 8]), FragOutcome::Incomplete);
        assert_eq!(r.insert(T0, key(2, 2), 0, true, &[0; 8]), FragOutcome::Incomplete);
        check_invariants(&r);
        assert_eq!(r.next_expiry(), Some(t + Duration::from_secs(30)));
        assert_eq!(r.expire(t + Duration::from_secs(30)), 2);
    }
}
