//! Initial sequence numbers as RFC 6528 asks: a clock ticking every 4 µs plus a keyed hash of
//! the connection's 4-tuple, so that a new incarnation of a connection starts above the old
//! one's numbers and an off-path attacker cannot guess them. The engine has no randomness: the
//! key comes from the caller through the configuration.

use crate::time::Instant;
use std::net::SocketAddrV4;

/// SipHash-2-4 of a 12-byte 4-tuple under a 128-bit key (the pseudo-random function F of
/// RFC 6528).
fn siphash(key: [u64; 2], msg: &[u8; 12]) -> u64 {
    let mut v = [
        key[0] ^ 0x736f_6d65_7073_6575,
        key[1] ^ 0x646f_7261_6e64_6f6d,
        key[0] ^ 0x6c79_6765_6e65_7261,
        key[1] ^ 0x7465_6462_7974_6573,
    ];
    use crate::hash::sip_round as round;
    let m0 = u64::from_le_bytes([msg[0], msg[1], msg[2], msg[3], msg[4], msg[5], msg[6], msg[7]]);
    let m1 = u64::from_le_bytes([msg[8], msg[9], msg[10], msg[11], 0, 0, 0, 12]);
    for m in [m0, m1] {
        v[3] ^= m;
        round(&mut v);
        round(&mut v);
        v[0] ^= m;
    }
    v[2] ^= 0xff;
    for _ in 0..4 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

/// The 4-tuple as the hash's message.
fn tuple(local: SocketAddrV4, remote: SocketAddrV4) -> [u8; 12] {
    let mut msg = [0u8; 12];
    msg[0..4].copy_from_slice(&local.ip().octets());
    msg[4..8].copy_from_slice(&remote.ip().octets());
    msg[8..10].copy_from_slice(&local.port().to_be_bytes());
    msg[10..12].copy_from_slice(&remote.port().to_be_bytes());
    msg
}

/// The ISN for a connection from `local` to `remote` at `now`.
pub fn initial_sequence(key: [u64; 2], local: SocketAddrV4, remote: SocketAddrV4, now: Instant) -> u32 {
    let clock = (now.as_nanos() / 4_000) as u32;
    clock.wrapping_add(siphash(key, &tuple(local, remote)) as u32)
}

/// The offset of a connection's timestamp clock (Linux's secure_tcp_ts_off): the other half
/// of the same keyed hash, so TSval reveals neither uptime nor the ISN.
pub fn timestamp_offset(key: [u64; 2], local: SocketAddrV4, remote: SocketAddrV4) -> u32 {
    (siphash(key, &tuple(local, remote)) >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn addr(last: u8, port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, last), port)
    }

    #[test]
    fn grows_with_the_clock_and_depends_on_tuple_and_key() {
        let key = [1, 2];
        let (l, r) = (addr(1, 1000), addr(2, 80));
        let t0 = initial_sequence(key, l, r, Instant::ZERO);
        let t1 = initial_sequence(key, l, r, Instant::from_nanos(4_000_000));
        assert_eq!(t1.wrapping_sub(t0), 1000, "one tick per 4 µs");
        assert_ne!(initial_sequence(key, l, addr(2, 81), Instant::ZERO), t0);
        assert_ne!(initial_sequence([1, 3], l, r, Instant::ZERO), t0);
    }

    #[test]
    fn siphash_matches_the_reference_implementation() {
        // SipHash-2-4 of the 12 bytes 00..0b under key 00..0f, as the reference implementation
        // computes it (vectors_sip64[12]).
        let key = [u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]), u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15])];
        let msg = [0u8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
        assert_eq!(siphash(key, &msg).to_le_bytes(), [251, 229, 14, 134, 188, 143, 30, 117]);
    }
}
