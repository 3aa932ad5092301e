//! IPv4 reassembly through the public API, in simulated time: ordering, duplicates, overlaps,
//! timeouts, limits, malformed fragments and a flood of garbage.

use std::net::Ipv4Addr;
use std::time::Duration;

use proptest::prelude::*;
use stack::ipv4::reassembly::{
    DropReason, FragKey, FragOutcome, Reassembler, ReassemblyConfig, ReassemblyStats, MAX_PAYLOAD,
};
use stack::testing::Xorshift;
use stack::Instant;

const T0: Instant = Instant::ZERO;

fn key(src: [u8; 4], ident: u16) -> FragKey {
    FragKey { src: Ipv4Addr::from(src), dst: Ipv4Addr::new(192, 168, 1, 2), protocol: 17, ident }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A recognisable payload: byte `i` is a function of `i` and `seed`.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add((i >> 8) as u8) ^ seed).collect()
}

/// `data` cut into fragments of `size` bytes (a multiple of 8): (offset, more_fragments, bytes).
fn split(data: &[u8], size: usize) -> Vec<(usize, bool, &[u8])> {
    let chunks: Vec<&[u8]> = data.chunks(size).collect();
    let n = chunks.len();
    chunks.into_iter().enumerate().map(|(i, c)| (i * size, i + 1 < n, c)).collect()
}

/// Feeds `frags` in order; all but the last must be Incomplete and the last must complete
/// the datagram as `data`.
fn feed_expect(r: &mut Reassembler, now: Instant, k: FragKey, frags: &[(usize, bool, &[u8])], data: &[u8]) {
    let (last, rest) = frags.split_last().unwrap();
    for &(off, mf, bytes) in rest {
        assert_eq!(r.insert(now, k, off, mf, bytes), FragOutcome::Incomplete, "fragment at {off}");
    }
    match r.insert(now, k, last.0, last.1, last.2) {
        FragOutcome::Complete(got) => assert!(got == data, "reassembled bytes differ"),
        other => panic!("expected Complete, got {other:?}"),
    }
}

#[test]
fn default_config_matches_linux() {
    let c = ReassemblyConfig::default();
    assert_eq!(c.timeout, Duration::from_secs(30));
    assert_eq!(c.max_datagrams, 64);
    assert_eq!(c.max_per_source, 8);
    let r = Reassembler::new(c);
    assert!(r.memory_bytes() >= 64 * MAX_PAYLOAD);
    assert_eq!(r.in_progress(), 0);
    assert_eq!(r.next_expiry(), None);
    assert_eq!(r.stats(), ReassemblyStats::default());
}

#[test]
fn in_order_reassembles() {
    let mut r = Reassembler::new(ReassemblyConfig::default());
    let data = pattern(4000, 1);
    let frags = split(&data, 1480);
    feed_expect(&mut r, T0, key([10, 0, 0, 1], 7), &frags, &data);
    assert_eq!(r.in_progress(), 0);
    let s = r.stats();
    assert_eq!((s.fragments, s.reassembled, s.failed), (3, 1, 0));
}

#[test]
fn reverse_order_reassembles() {
    let mut r = Reassembler::new(ReassemblyConfig::default());
    let data = pattern(1001, 2);
    let mut frags = split(&data, 64);
    frags.reverse();
    feed_expect(&mut r, T0, key([10, 0, 0, 1], 8), &frags, &data);
    assert_eq!(r.in_progress(), 0);
}

#[test]
fn maximum_size_datagram_reassembles() {
    let mut r = Reassembler::new(ReassemblyConfig::default());
    let data = pattern(MAX_PAYLOAD, 3);
    let frags = split(&data, 1480);
    feed_expect(&mut r, T0, key([10, 0, 0, 1], 9), &frags, &data);
}

#[test]
fn interleaved_datagrams_with_different_keys() {
    let mut r = Reassembler::new(ReassemblyConfig::default());
    let base = key([10, 0, 0, 1], 100);
    // Keys differing in each field of the tuple are distinct datagrams.
    let keys = [
        base,
        FragKey { ident: 101, ..base },
        FragKey { protocol: 6, ..base },
        FragKey { dst: Ipv4Addr::new(192, 168, 1, 3), ..base },
        FragKey { src: Ipv4Addr::new(10, 0, 0, 2), ..base },
    ];
    let datas: Vec<Vec<u8>> = (0..keys.len()).map(|i| pattern(300 + 8 * i, i as u8 + 10)).collect();
    let frags: Vec<_> = datas.iter().map(|d| split(d, 64)).collect();
    let rounds = frags.iter().map(Vec::len).max().unwrap();
    let mut done = 0;
    for round in 0..rounds {
        for (i, k) in keys.iter().enumerate() {
            let Some(&(off, mf, bytes)) = frags[i].get(round) else { continue };
            match r.insert(T0, *k, off, mf, bytes) {
                FragOutcome::Incomplete => assert!(round + 1 < frags[i].len()),
                FragOutcome::Complete(got) => {
                    assert_eq!(round + 1, frags[i].len());
                    assert!(got == datas[i].as_slice());
                    done += 1;
                }
                other => panic!("{other:?}"),
            }
        }
        if round == 0 {
            assert_eq!(r.in_progress(), keys.len());
        }
    }
    assert_eq!(done, keys.len());
    assert_eq!(r.in_progress(), 0);
}

#[test]
fn unfragmented_packet_passes_through_without_state() {
    let mut r = Reassembler::new(ReassemblyConfig::default());
    let data = pattern(100, 4);
    assert_eq!(r.insert(T0, key([10, 0, 0, 1], 1), 0, false, &data), FragOutcome::Complete(&data[..]));
    assert_eq!(r.insert(T0, key([10, 0, 0, 1], 1), 0, false, &[]), FragOutcome::Complete(&[][..]));
    let huge = vec![0; MAX_PAYLOAD + 1];
    assert_eq!(r.insert(T0, key([10, 0, 0, 1], 1), 0, false, &huge), FragOutcome::Dropped(DropReason::TooLong));
    assert_eq!(r.in_progress(), 0);
    assert_eq!(r.stats(), ReassemblyStats::default());
}

#[test]
fn exact_duplicates_are_ignored() {
    let mut r = Reassembler::new(ReassemblyConfig::default());
    let k = key([10, 0, 0, 1], 5);
    let data = pattern(40, 5);
    assert_eq!(r.insert(T0, k, 0, true, &data[..16]), FragOutcome::Incomplete);
    assert_eq!(r.insert(T0, k, 0, true, &data[..16]), FragOutcome::Incomplete);
    assert_eq!(r.insert(T0, k, 32, false, &data[32..]), FragOutcome::Incomplete);
    assert_eq!(r.insert(T0, k, 32, false, &data[32..]), FragOutcome::Incomplete);
    // Identical bytes wholly inside data already received bring nothing new: also a duplicate.
    assert_eq!(r.insert(T0, k, 8, true, &data[8..16]), FragOutcome::Incomplete);
    assert_eq!(r.stats().duplicates, 3);
    assert_eq!(r.insert(T0, k, 16, true, &data[16..32]), FragOutcome::Complete(&data[..]));
    // After completion a late duplicate starts a new datagram (which will time out), as in Linux.
    assert_eq!(r.insert(T0, k, 0, true, &data[..16]), FragOutcome::Incomplete);
    assert_eq!(r.in_progress(), 1);
    let s = r.stats();
    assert_eq!((s.fragments, s.reassembled, s.overlaps, s.failed), (7, 1, 0, 0));
}

#[test]
fn partial_overlap_drops_datagram_and_fresh_ident_succeeds() {
    let mut r = Reassembler::new(ReassemblyConfig::default());
    let src = [10, 0, 0, 1];
    let data = pattern(64, 6);
    let k = key(src, 1);
    assert_eq!(r.insert(T0, k, 0, true, &data[..24]), FragOutcome::Incomplete);
    assert_eq!(r.insert(T0, k, 56, false, &data[56..]), FragOutcome::Incomplete);
    // [16, 32) overlaps [0, 24) in part.
    assert_eq!(r.insert(T0, k, 16, true, &data[16..32]), FragOutcome::Dropped(DropReason::Overlap));
    assert_eq!(r.in_progress(), 0, "the whole datagram is discarded");
    assert_eq!(r.stats().overlaps, 1);
    // Fragments of the discarded datagram arriving later start a new one, which cannot complete.
    assert_eq!(r.insert(T0, k, 24, true, &data[24..56]), FragOutcome::Incomplete);
    assert_eq!(r.in_progress(), 1);
    // The sender retransmits the datagram under a new identification: it reassembles.
    feed_expect(&mut r, T0, key(src, 2), &split(&data, 16), &data);
    assert_eq!(r.stats().reassembled, 1);
}

#[test]
fn same_range_with_different_bytes_is_an_overlap() {
    let mut r = Reassembler::new(ReassemblyConfig::default());
    let k = key([10, 0, 0, 1], 3);
    let data = pattern(32, 7);
    let mut forged = data.clone();
    forged[3] ^= 0xff;
    assert_eq!(r.insert(T0, k, 0, true, &data[..16]), FragOutcome::Incomplete);
    assert_eq!(r.insert(T0, k, 0, true, &forged[..16]), FragOutcome::Dropped(DropReason::Overlap));
    assert_eq!(r.in_progress(), 0);
    // A fragment covering received data and a hole is an overlap too.
    assert_eq!(r.insert(T0, k, 0, true, &data[..8]), FragOutcome::Incomplete);
    assert_eq!(r.insert(T0, k, 0, true, &data[..16]), FragOutcome::Dropped(DropReason::Overlap));
    assert_eq!(r.stats().overlaps, 2);
    assert_eq!(r.stats().failed, 2);
}

#[test]
fn missing_fragment_times_out_exactly_at_timeout() {
    let timeout = Duration::from_secs(30);
    let mut r = Reassembler::new(ReassemblyConfig { timeout, ..ReassemblyConfig::default() });
    let k = key([10, 0, 0, 1], 11);
    let data = pattern(48, 8);
    let t1 = Instant::from_nanos(5_000_000_000);
    assert_eq!(r.insert(t1, k, 0, true, &data[..16]), FragOutcome::Incomplete);
    assert_eq!(r.next_expiry(), Some(t1 + timeout));
    // Later fragments do not extend the deadline: it counts from the first.
    assert_eq!(r.insert(t1 + ms(10_000), k, 32, false, &data[32..]), FragOutcome::Incomplete);
    assert_eq!(r.next_expiry(), Some(t1 + timeout));
    assert_eq!(r.expire(t1 + timeout - Duration::from_nanos(1)), 0);
    assert_eq!(r.in_progress(), 1);
    assert_eq!(r.expire(t1 + timeout), 1);
    assert_eq!(r.in_progress(), 0);
    assert_eq!(r.next_expiry(), None);
    let s = r.stats();
    assert_eq!((s.timeouts, s.failed, s.reassembled), (1, 1, 0));
    // The missing piece arriving after the timeout starts a new datagram rather than completing.
    assert_eq!(r.insert(t1 + timeout, k, 16, true, &data[16..32]), FragOutcome::Incomplete);
    assert_eq!(r.next_expiry(), Some(t1 + timeout + timeout));
}

#[test]
fn fragment_just_before_deadline_completes() {
    let timeout = ms(500);
    let mut r = Reassembler::new(ReassemblyConfig { timeout, ..ReassemblyConfig::default() });
    let k = key([10, 0, 0, 1], 12);
    let data = pattern(24, 9);
    assert_eq!(r.insert(T0, k, 0, true, &data[..16]), FragOutcome::Incomplete);
    let almost = T0 + timeout - Duration::from_nanos(1);
    assert_eq!(r.insert(almost, k, 16, false, &data[16..]), FragOutcome::Complete(&data[..]));
    assert_eq!(r.stats().timeouts, 0);
}

#[test]
fn next_expiry_follows_the_oldest_datagram() {
    let timeout = ms(1000);
    let mut r = Reassembler::new(ReassemblyConfig { timeout, ..ReassemblyConfig::default() });
    let payload = [0u8; 8];
    for i in 0..5u16 {
        let t = T0 + ms(100 * u64::from(i));
        assert_eq!(r.insert(t, key([10, 0, 0, i as u8], i), 0, true, &payload), FragOutcome::Incomplete);
    }
    assert_eq!(r.next_expiry(), Some(T0 + timeout));
    assert_eq!(r.expire(T0 + ms(1250)), 3);
    assert_eq!(r.next_expiry(), Some(T0 + ms(1300)));
    // Completing the oldest moves the expiry on to the next one.
    assert_eq!(r.insert(T0 + ms(1250), key([10, 0, 0, 3], 3), 8, false, &payload), FragOutcome::Complete(&[0; 16]));
    assert_eq!(r.next_expiry(), Some(T0 + ms(1400)));
    assert_eq!(r.stats().timeouts, 3);
}

#[test]
fn stale_full_table_is_freed_lazily_on_insert() {
    let timeout = ms(100);
    let config = ReassemblyConfig { timeout, max_datagrams: 4, max_per_source: 4 };
    let mut r = Reassembler::new(config);
    for i in 0..4 {
        assert_eq!(r.insert(T0, key([10, 0, 0, 1], i), 0, true, &[0; 8]), FragOutcome::Incomplete);
    }
    let other = key([10, 0, 0, 2], 0);
    assert_eq!(r.insert(T0 + ms(99), other, 0, true, &[0; 8]), FragOutcome::Dropped(DropReason::NoSlot));
    // No expire() call: the insert itself frees the stale datagrams.
    assert_eq!(r.insert(T0 + timeout, other, 0, true, &[0; 8]), FragOutcome::Incomplete);
    assert_eq!(r.in_progress(), 1);
    assert_eq!(r.stats().timeouts, 4);
}

#[test]
fn table_limit_refuses_new_datagrams_without_evicting() {
    let config = ReassemblyConfig { max_datagrams: 4, max_per_source: 8, ..ReassemblyConfig::default() };
    let mut r = Reassembler::new(config);
    let datas: Vec<Vec<u8>> = (0..4).map(|i| pattern(16, i)).collect();
    for (i, d) in datas.iter().enumerate() {
        let k = key([10, 0, 0, i as u8], 1);
        assert_eq!(r.insert(T0, k, 0, true, &d[..8]), FragOutcome::Incomplete);
    }
    assert_eq!(r.insert(T0, key([10, 0, 0, 9], 1), 0, true, &[0; 8]), FragOutcome::Dropped(DropReason::NoSlot));
    assert_eq!(r.insert(T0, key([10, 0, 0, 9], 1), 8, false, &[0; 8]), FragOutcome::Dropped(DropReason::NoSlot));
    assert_eq!(r.stats().no_slot, 2);
    // Fragments of datagrams already in progress are still accepted, and all complete.
    for (i, d) in datas.iter().enumerate() {
        let k = key([10, 0, 0, i as u8], 1);
        assert_eq!(r.insert(T0, k, 8, false, &d[8..]), FragOutcome::Complete(&d[..]));
    }
    // Their slots are free again.
    assert_eq!(r.insert(T0, key([10, 0, 0, 9], 1), 0, true, &[0; 8]), FragOutcome::Incomplete);
}

#[test]
fn per_source_cap_leaves_room_for_other_sources() {
    let config = ReassemblyConfig { max_datagrams: 16, max_per_source: 3, ..ReassemblyConfig::default() };
    let mut r = Reassembler::new(config);
    let flooder = [203, 0, 113, 66];
    for ident in 0..3 {
        assert_eq!(r.insert(T0, key(flooder, ident), 0, true, &[1; 8]), FragOutcome::Incomplete);
    }
    for ident in 3..1000 {
        assert_eq!(r.insert(T0, key(flooder, ident), 0, true, &[1; 8]), FragOutcome::Dropped(DropReason::NoSlot));
    }
    assert_eq!(r.in_progress(), 3);
    // Another source still reassembles, up to its own cap.
    let data = pattern(24, 42);
    feed_expect(&mut r, T0, key([10, 0, 0, 1], 1), &split(&data, 8), &data);
    for ident in 0..3 {
        assert_eq!(r.insert(T0, key([10, 0, 0, 1], ident), 0, true, &[1; 8]), FragOutcome::Incomplete);
    }
    assert_eq!(r.insert(T0, key([10, 0, 0, 1], 3), 0, true, &[1; 8]), FragOutcome::Dropped(DropReason::NoSlot));
    // Once one of the flooder's datagrams completes, it may start another.
    assert_eq!(r.insert(T0, key(flooder, 0), 8, false, &[1; 8]), FragOutcome::Complete(&[1; 16]));
    assert_eq!(r.insert(T0, key(flooder, 500), 0, true, &[1; 8]), FragOutcome::Incomplete);
    assert_eq!(r.in_progress(), 6);
}

#[test]
fn zero_limits_refuse_everything_without_panicking() {
    for (max_datagrams, max_per_source) in [(0, 8), (8, 0)] {
        let config = ReassemblyConfig { max_datagrams, max_per_source, ..ReassemblyConfig::default() };
        let mut r = Reassembler::new(config);
        assert_eq!(r.insert(T0, key([10, 0, 0, 1], 1), 0, true, &[0; 8]), FragOutcome::Dropped(DropReason::NoSlot));
        assert_eq!(r.expire(T0 + Duration::from_secs(100)), 0);
        assert_eq!(r.next_expiry(), None);
    }
}

#[test]
fn too_long_fragments_are_dropped() {
    let mut r = Reassembler::new(ReassemblyConfig::default());
    let k = key([10, 0, 0, 1], 1);
    let last_offset = MAX_PAYLOAD / 8 * 8; // 65512
    assert_eq!(r.insert(T0, k, last_offset, false, &[0; 3]), FragOutcome::Incomplete);
    assert_eq!(r.insert(T0, k, last_offset, false, &[0; 4]), FragOutcome::Dropped(DropReason::TooLong));
    assert_eq!(r.insert(T0, k, 65528, false, &[0; 8]), FragOutcome::Dropped(DropReason::TooLong));
    assert_eq!(r.insert(T0, k, usize::MAX - 7, true, &[0; 8]), FragOutcome::Dropped(DropReason::TooLong));
    assert_eq!(r.insert(T0, k, usize::MAX, false, &[]), FragOutcome::Dropped(DropReason::TooLong));
    let huge = vec![0; 70_000];
    assert_eq!(r.insert(T0, k, 8, true, &huge), FragOutcome::Dropped(DropReason::TooLong));
    assert_eq!(r.insert(T0, k, 8, true, &huge[..MAX_PAYLOAD - 7]), FragOutcome::Dropped(DropReason::TooLong));
    assert_eq!(r.stats().too_long, 6);
    // A too-long fragment drops only itself, not the datagram.
    assert_eq!(r.in_progress(), 1);
}

#[test]
fn bad_length_fragments_are_dropped() {
    let mut r = Reassembler::new(ReassemblyConfig::default());
    let k = key([10, 0, 0, 1], 1);
    assert_eq!(r.insert(T0, k, 0, true, &[0; 12]), FragOutcome::Dropped(DropReason::BadLength));
    assert_eq!(r.insert(T0, k, 8, true, &[]), FragOutcome::Dropped(DropReason::BadLength));
    assert_eq!(r.insert(T0, k, 0, true, &[]), FragOutcome::Dropped(DropReason::BadLength));
    assert_eq!(r.insert(T0, k, 8, false, &[]), FragOutcome::Dropped(DropReason::BadLength));
    assert_eq!(r.insert(T0, k, 4, true, &[0; 8]), FragOutcome::Dropped(DropReason::BadLength));
    assert_eq!(r.insert(T0, k, 13, false, &[0; 3]), FragOutcome::Dropped(DropReason::BadLength));
    assert_eq!(r.stats().bad_length, 6);
    assert_eq!(r.in_progress(), 0, "a malformed fragment takes no slot");
    // A last fragment may have any length.
    assert_eq!(r.insert(T0, k, 8, false, &[2; 5]), FragOutcome::Incomplete);
    assert_eq!(r.insert(T0, k, 0, true, &[1; 8]), FragOutcome::Complete(&[1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2][..]));
}

#[test]
fn second_last_fragment_with_a_different_end_is_inconsistent() {
    let mut r = Reassembler::new(ReassemblyConfig::default());
    let k = key([10, 0, 0, 1], 1);
    assert_eq!(r.insert(T0, k, 16, false, &[0; 5]), FragOutcome::Incomplete);
    assert_eq!(r.insert(T0, k, 16, false, &[0; 6]), FragOutcome::Dropped(DropReason::Inconsistent));
    assert_eq!(r.in_progress(), 0, "the whole datagram is discarded");
    assert_eq!(r.insert(T0, k, 16, false, &[0; 5]), FragOutcome::Incomplete);
    assert_eq!(r.insert(T0, k, 32, false, &[0; 8]), FragOutcome::Dropped(DropReason::Inconsistent));
    assert_eq!(r.stats().inconsistent, 2);
}

#[test]
fn data_past_the_known_end_is_inconsistent() {
    let mut r = Reassembler::new(ReassemblyConfig::default());
    let k = key([10, 0, 0, 1], 1);
    assert_eq!(r.insert(T0, k, 8, false, &[0; 8]), FragOutcome::Incomplete);
    assert_eq!(r.insert(T0, k, 16, true, &[0; 8]), FragOutcome::Dropped(DropReason::Inconsistent));
    assert_eq!(r.in_progress(), 0);
    // A non-last fragment covering the known end's partial block reaches past it too.
    assert_eq!(r.insert(T0, k, 8, false, &[0; 3]), FragOutcome::Incomplete);
    assert_eq!(r.insert(T0, k, 8, true, &[0; 8]), FragOutcome::Dropped(DropReason::Inconsistent));
    // A non-last fragment ending exactly at the known end is fine.
    assert_eq!(r.insert(T0, k, 16, false, &[0; 8]), FragOutcome::Incomplete);
    assert_eq!(r.insert(T0, k, 8, true, &[0; 16]), FragOutcome::Dropped(DropReason::Overlap));
    assert_eq!(r.insert(T0, k, 16, false, &[0; 8]), FragOutcome::Incomplete);
    assert_eq!(r.insert(T0, k, 8, true, &[0; 8]), FragOutcome::Incomplete);
    assert_eq!(r.insert(T0, k, 0, true, &[0; 8]), FragOutcome::Complete(&[0; 24]));
    assert_eq!(r.stats().inconsistent, 2);
}

#[test]
fn last_fragment_ending_before_received_data_is_inconsistent() {
    let mut r = Reassembler::new(ReassemblyConfig::default());
    let k = key([10, 0, 0, 1], 1);
    assert_eq!(r.insert(T0, k, 32, true, &[0; 8]), FragOutcome::Incomplete);
    assert_eq!(r.insert(T0, k, 8, false, &[0; 8]), FragOutcome::Dropped(DropReason::Inconsistent));
    assert_eq!(r.in_progress(), 0);
    // A last fragment that shortens a partial final block of earlier data is caught the same way.
    assert_eq!(r.insert(T0, k, 0, true, &[0; 16]), FragOutcome::Incomplete);
    assert_eq!(r.insert(T0, k, 8, false, &[0; 4]), FragOutcome::Dropped(DropReason::Inconsistent));
}

#[test]
fn slots_are_reused_after_completion() {
    let config = ReassemblyConfig { max_datagrams: 1, max_per_source: 1, ..ReassemblyConfig::default() };
    let mut r = Reassembler::new(config);
    let memory = r.memory_bytes();
    for ident in 0..200u16 {
        let data = pattern(100 + usize::from(ident), ident as u8);
        feed_expect(&mut r, T0 + ms(u64::from(ident)), key([10, 0, 0, 1], ident), &split(&data, 24), &data);
        assert_eq!(r.in_progress(), 0);
    }
    assert_eq!(r.memory_bytes(), memory);
    assert_eq!(r.stats().reassembled, 200);
}

#[test]
fn flood_of_bogus_fragments_is_bounded() {
    let config = ReassemblyConfig { timeout: ms(200), max_datagrams: 32, max_per_source: 4 };
    let mut r = Reassembler::new(config);
    let memory = r.memory_bytes();
    let mut rng = Xorshift::new(0xdead_beef_cafe_f00d);
    let buf = pattern(70_000, 0x5a);
    let mut now = T0;
    let mut fragments = 0;
    for i in 0..100_000u32 {
        now = now + Duration::from_micros(rng.next_u64() % 10);
        let x = rng.next_u64();
        // A small key space for half the fragments so that they collide with datagrams in
        // progress; the rest are all over the place.
        let k = if x & 1 == 0 {
            key([10, 0, 0, (x >> 1) as u8 % 8], (x >> 9) as u16 % 4)
        } else {
            let y = rng.next_u64();
            FragKey {
                src: Ipv4Addr::from(y as u32),
                dst: Ipv4Addr::from((y >> 32) as u32),
                protocol: (x >> 8) as u8,
                ident: (x >> 16) as u16,
            }
        };
        let offset = match (x >> 32) % 4 {
            0 => 0,
            1 => ((x >> 34) % 64) as usize * 8,
            2 => ((x >> 34) % 8192) as usize * 8,
            _ => (x >> 34) as usize % 70_000,
        };
        let len = match (x >> 40) % 4 {
            0 => ((x >> 44) % 8) as usize * 8,
            1 => ((x >> 44) % 70) as usize,
            2 => ((x >> 44) % 1500) as usize,
            _ => ((x >> 44) % 70_000) as usize,
        };
        let mf = (x >> 60) & 1 == 1;
        let start = ((x >> 20) % 16) as usize;
        let payload = &buf[start..(start + len).min(buf.len())];
        fragments += u64::from(offset != 0 || mf);
        let _ = r.insert(now, k, offset, mf, payload);
        assert!(r.in_progress() <= config.max_datagrams);
        if i % 1000 == 0 {
            assert_eq!(r.memory_bytes(), memory);
        }
    }
    assert_eq!(r.memory_bytes(), memory);
    let s = r.stats();
    assert_eq!(s.fragments, fragments);
    assert!(s.no_slot > 0 && s.overlaps > 0 && s.too_long > 0 && s.bad_length > 0 && s.inconsistent > 0);
    // A genuine datagram from a fresh source still gets through, even with the table full.
    let data = pattern(3000, 77);
    feed_expect(&mut r, now + config.timeout, key([172, 16, 0, 1], 4242), &split(&data, 1480), &data);
    assert_eq!(r.memory_bytes(), memory);
}

/// Any datagram cut into 8-byte-aligned fragments, fed in any order, comes back byte-exact,
/// completing exactly on the fragment that fills the last hole.
fn check_any_split_any_order(data: &[u8], cuts: &[u16], order: &[u32], dups: &[u32]) {
    let mut points: Vec<usize> =
        cuts.iter().map(|&c| usize::from(c) * 8).filter(|&p| p > 0 && p < data.len()).collect();
    points.push(0);
    points.push(data.len());
    points.sort_unstable();
    points.dedup();
    let frags: Vec<(usize, bool, &[u8])> =
        points.windows(2).map(|w| (w[0], w[1] < data.len(), &data[w[0]..w[1]])).collect();
    // Permute by sorting on random keys; then echo some fragments again as exact duplicates.
    let mut keyed: Vec<(u32, usize)> = (0..frags.len()).map(|i| (order[i % order.len()] ^ i as u32, i)).collect();
    keyed.sort_unstable();
    let mut sequence: Vec<usize> = keyed.into_iter().map(|(_, i)| i).collect();
    for (j, &d) in dups.iter().enumerate() {
        let at = (d as usize) % sequence.len();
        if at + 1 < sequence.len() {
            let again = sequence[(j * 7919) % (at + 1)];
            sequence.insert(at + 1, again);
        }
    }
    let mut r = Reassembler::new(ReassemblyConfig { max_datagrams: 2, ..ReassemblyConfig::default() });
    let k = key([10, 1, 2, 3], 0x4242);
    let mut seen = vec![false; frags.len()];
    let mut remaining = frags.len();
    let mut completed = false;
    for &i in &sequence {
        let (off, mf, bytes) = frags[i];
        let outcome = r.insert(T0, k, off, mf, bytes);
        if seen[i] {
            assert_eq!(outcome, FragOutcome::Incomplete, "duplicate of fragment at {off}");
            continue;
        }
        seen[i] = true;
        remaining -= 1;
        if remaining == 0 {
            match outcome {
                FragOutcome::Complete(got) => assert!(got == data),
                other => panic!("expected Complete, got {other:?}"),
            }
            completed = true;
            break;
        }
        assert_eq!(outcome, FragOutcome::Incomplete, "fragment at {off}");
    }
    assert!(completed);
    assert_eq!(r.in_progress(), 0);
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(256) })]

    #[test]
    fn any_split_in_any_order_reassembles(
        data in prop::collection::vec(any::<u8>(), 1..6000),
        cuts in prop::collection::vec(0u16..750, 0..40),
        order in prop::collection::vec(any::<u32>(), 1..64),
    ) {
        check_any_split_any_order(&data, &cuts, &order, &[]);
    }

    #[test]
    fn any_split_in_any_order_with_duplicates_reassembles(
        data in prop::collection::vec(any::<u8>(), 9..3000),
        cuts in prop::collection::vec(0u16..375, 1..30),
        order in prop::collection::vec(any::<u32>(), 1..64),
        dups in prop::collection::vec(any::<u32>(), 1..20),
    ) {
        check_any_split_any_order(&data, &cuts, &order, &dups);
    }

    /// Arbitrary input never panics and never holds more than the table allows.
    #[test]
    fn arbitrary_fragments_never_panic(
        frags in prop::collection::vec(
            (0u8..4, 0u16..4, any::<usize>(), 0usize..9000, any::<bool>(), 0u64..50_000_000),
            1..200,
        ),
    ) {
        let config = ReassemblyConfig { timeout: ms(100), max_datagrams: 4, max_per_source: 2 };
        let mut r = Reassembler::new(config);
        let memory = r.memory_bytes();
        let buf = vec![0xabu8; 9000];
        let mut now = T0;
        for (src, ident, offset, len, mf, dt) in frags {
            now = now + Duration::from_nanos(dt);
            // Offsets: mostly small and aligned, sometimes anything at all.
            let offset = if offset % 4 == 0 { offset } else { (offset % 1200) / 8 * 8 };
            let _ = r.insert(now, key([10, 0, 0, src], ident), offset, mf, &buf[..len]);
            prop_assert!(r.in_progress() <= 4);
            // Unfragmented packets pass through without running expiry; fragments do.
            let fragment = offset != 0 || mf;
            if let Some(t) = r.next_expiry().filter(|_| fragment) {
                prop_assert!(t > now);
            }
        }
        prop_assert_eq!(r.memory_bytes(), memory);
    }
}
