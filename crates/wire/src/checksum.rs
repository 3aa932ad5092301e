//! The internet checksum (RFC 1071): the one's complement of the one's complement sum of
//! 16-bit big-endian words. Every header that carries a checksum computes it here, so
//! the arithmetic (carry folding, odd lengths, the IPv4 pseudo-header and the RFC 1624
//! incremental update) lives in one place.
//!
//! Sums are kept "folded but not inverted" (`u16`): [`data`] of a block that includes a
//! correct checksum field is `0xFFFF`; the value to store in a checksum field is
//! [`finish`] of the sum taken with that field zeroed.

use crate::ipv4::IpProtocol;
use core::net::Ipv4Addr;

/// Whether a `Repr::parse` verifies the checksum in software or trusts the packet
/// (because a NIC already checked it, or a test feeds deliberately altered packets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ChecksumMode {
    /// Verify, and fail with [`Error::Checksum`](crate::Error::Checksum) on mismatch.
    #[default]
    Verify,
    /// Do not look at the checksum field.
    Ignore,
}

/// Folds the carries of a 32-bit accumulator into 16 bits (end-around carry).
pub const fn fold(mut sum: u32) -> u16 {
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    sum as u16
}

/// Turns a folded sum into the value stored in a checksum field (its complement).
pub const fn finish(sum: u16) -> u16 {
    !sum
}

/// One's complement sum of `data` as big-endian 16-bit words, folded; an odd final
/// byte is padded with a zero byte on the right, as RFC 1071 specifies.
pub fn data(data: &[u8]) -> u16 {
    // Summing 32-bit big-endian words and folding is the same one's complement sum as summing
    // 16-bit words (RFC 1071, section 2(B)), at half the additions. A u64 accumulator cannot
    // overflow below 2^32 words (16 GiB), far beyond any packet.
    let mut acc: u64 = 0;
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    let mut rest = words.remainder();
    if rest.len() >= 2 {
        acc += u64::from(u16::from_be_bytes([rest[0], rest[1]]));
        rest = &rest[2..];
    }
    if let [last] = rest {
        acc += u64::from(u16::from_be_bytes([*last, 0]));
    }
    // Fold 64 -> 32 -> 16 bits with end-around carries.
    acc = (acc & 0xFFFF_FFFF) + (acc >> 32);
    acc = (acc & 0xFFFF_FFFF) + (acc >> 32);
    fold(acc as u32)
}

/// One's complement sum of several folded sums (e.g. pseudo-header + segment).
pub fn combine(sums: &[u16]) -> u16 {
    let mut acc: u32 = 0;
    for &s in sums {
        acc = u32::from(fold(acc + u32::from(s)));
    }
    acc as u16
}

/// Folded sum of the IPv4 pseudo-header that UDP and TCP checksums cover: source,
/// destination, zero, protocol and the upper-layer length.
pub fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: IpProtocol, length: u16) -> u16 {
    let s = src.octets();
    let d = dst.octets();
    let acc = u32::from(u16::from_be_bytes([s[0], s[1]]))
        + u32::from(u16::from_be_bytes([s[2], s[3]]))
        + u32::from(u16::from_be_bytes([d[0], d[1]]))
        + u32::from(u16::from_be_bytes([d[2], d[3]]))
        + u32::from(protocol.0)
        + u32::from(length);
    fold(acc)
}

/// Whether `sum` (the folded sum over a block including its checksum field) verifies.
pub const fn is_valid(sum: u16) -> bool {
    sum == 0xFFFF
}

/// RFC 1624 eqn. 3 incremental update: the new checksum field value after a 16-bit
/// word of the covered data changes from `old` to `new`, HC' = ~(~HC + ~m + m').
///
/// Unlike eqn. 2 this never produces 0xFFFF where a full recomputation gives 0x0000;
/// it equals a full recomputation whenever the covered data is not all zeros.
pub fn update(checksum: u16, old: u16, new: u16) -> u16 {
    !fold(u32::from(!checksum) + u32::from(!old) + u32::from(new))
}

/// [`update`] for a 32-bit field (an address or a sequence number) that occupies two
/// word-aligned 16-bit words of the covered data.
pub fn update_u32(checksum: u16, old: u32, new: u32) -> u16 {
    let acc =
        u32::from(!checksum) + u32::from(!(old >> 16) as u16) + u32::from(!(old as u16)) + (new >> 16) + (new & 0xFFFF);
    !fold(acc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to 0xddf2.
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(data(&bytes), 0xddf2);
        assert_eq!(finish(data(&bytes)), 0x220d);
    }

    #[test]
    fn odd_length_pads_right() {
        assert_eq!(data(&[0xab]), 0xab00);
        assert_eq!(data(&[0x00, 0x01, 0xf2]), 0xf201);
        assert_eq!(data(&[]), 0);
        // 0xffff + 0xff00 = 0x1feff -> 0xff00
        assert_eq!(data(&[0xff, 0xff, 0xff]), 0xff00);
    }

    #[test]
    fn known_ipv4_header() {
        let hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
            0x00, 0xc7,
        ];
        assert!(is_valid(data(&hdr)));
        let mut zeroed = hdr;
        zeroed[10] = 0;
        zeroed[11] = 0;
        assert_eq!(finish(data(&zeroed)), 0xb861);
    }

    #[test]
    fn combine_and_pseudo_header() {
        assert_eq!(combine(&[0xffff, 0x0001]), 0x0001);
        assert_eq!(combine(&[0x8000, 0x8000]), 0x0001);
        assert_eq!(combine(&[]), 0);
        let ph = pseudo_header(Ipv4Addr::new(192, 168, 0, 1), Ipv4Addr::new(192, 168, 0, 199), IpProtocol::UDP, 0x5f);
        // c0a8 + 0001 + c0a8 + 00c7 + 0011 + 005f = 0x18288 -> 0x8289
        assert_eq!(ph, 0x8289);
    }

    #[test]
    fn large_buffer_does_not_overflow() {
        let big = std::vec![0xffu8; 300_000];
        assert_eq!(data(&big), 0xffff);
    }

    #[test]
    fn rfc1624_example() {
        // RFC 1624 section 4: sum of other octets 0xCD7A, m = 0x5555 -> m' = 0x3285.
        let hc = finish(fold(0xCD7A + 0x5555));
        assert_eq!(hc, 0xDD2F);
        assert_eq!(update(hc, 0x5555, 0x3285), 0x0000);
        // Eqn. 2 (HC - ~m - m') would give 0xFFFF here; a recompute gives 0x0000.
        assert_eq!(finish(fold(0xCD7A + 0x3285)), 0x0000);
    }

    #[test]
    fn update_u32_matches_two_updates() {
        let hc = 0x1234;
        let a = update_u32(hc, 0xdead_beef, 0x0102_0304);
        let b = update(update(hc, 0xdead, 0x0102), 0xbeef, 0x0304);
        assert_eq!(a, b);
    }

    fn header_checksum(words: &[u16]) -> u16 {
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
        finish(data(&bytes))
    }

    fn edge_word() -> impl Strategy<Value = u16> {
        prop_oneof![Just(0x0000u16), Just(0xFFFFu16), Just(0x0001), Just(0xFFFE), any::<u16>()]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        // Random IPv4 headers (version nibble 4, so never all-zero data): changing any
        // non-checksum word and applying RFC 1624 gives the full recomputation.
        #[test]
        fn incremental_update_equals_recompute(
            mut words in proptest::collection::vec(edge_word(), 10),
            index in (0usize..9).prop_map(|i| if i >= 5 { i + 1 } else { i }),
            new in edge_word(),
        ) {
            words[0] = 0x4500 | (words[0] & 0x00ff);
            words[5] = 0;
            let hc = header_checksum(&words);
            words[5] = hc;
            let old = words[index];
            words[index] = new;
            let updated = update(hc, old, new);
            words[5] = 0;
            prop_assert_eq!(updated, header_checksum(&words));
            words[5] = updated;
            let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
            prop_assert!(is_valid(data(&bytes)));
        }

        // The same with sums chosen so the new sum is exactly 0xFFFF (the checksum field
        // becomes 0x0000), the case RFC 1624 section 3 discusses.
        #[test]
        fn incremental_update_negative_zero(rest in 1u16..0xFFFF, old in any::<u16>()) {
            let hc = finish(fold(u32::from(rest) + u32::from(old)));
            let new = !rest; // rest + new == 0xFFFF
            prop_assert_eq!(update(hc, old, new), 0x0000);
            prop_assert_eq!(update(hc, old, new), finish(fold(u32::from(rest) + u32::from(new))));
        }

        #[test]
        fn incremental_update_u32(
            mut words in proptest::collection::vec(edge_word(), 10),
            index in prop_oneof![Just(2usize), Just(6), Just(8)],
            new in any::<u32>(),
        ) {
            words[0] = 0x4500 | (words[0] & 0x00ff);
            words[5] = 0;
            let hc = header_checksum(&words);
            let old = (u32::from(words[index]) << 16) | u32::from(words[index + 1]);
            words[index] = (new >> 16) as u16;
            words[index + 1] = new as u16;
            prop_assert_eq!(update_u32(hc, old, new), header_checksum(&words));
        }

        #[test]
        fn sum_is_order_independent_per_word(words in proptest::collection::vec(any::<u16>(), 0..64)) {
            let fwd: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
            let rev: Vec<u8> = words.iter().rev().flat_map(|w| w.to_be_bytes()).collect();
            prop_assert_eq!(data(&fwd), data(&rev));
            let folded: Vec<u16> = words.clone();
            prop_assert_eq!(combine(&folded), data(&fwd));
        }
    }
}
