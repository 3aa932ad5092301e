//! IPv4 (RFC 791). Options are skipped using the IHL and never emitted; fragments are
//! recognised (identification, MF, offset) but reassembly belongs to the caller, which
//! must also bound `frag_offset + payload_len` itself.

use crate::bytes::{clamped, clamped_mut, get_u16, set_u16};
use crate::checksum::{self, ChecksumMode};
use crate::{Error, Result};
use core::fmt;
use core::net::Ipv4Addr;

/// The IPv4 protocol number saying what the payload is; any value is representable.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct IpProtocol(pub u8);

impl IpProtocol {
    /// ICMPv4.
    pub const ICMP: IpProtocol = IpProtocol(1);
    /// TCP.
    pub const TCP: IpProtocol = IpProtocol(6);
    /// UDP.
    pub const UDP: IpProtocol = IpProtocol(17);
}

impl fmt::Debug for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            IpProtocol::ICMP => f.write_str("ICMP"),
            IpProtocol::TCP => f.write_str("TCP"),
            IpProtocol::UDP => f.write_str("UDP"),
            IpProtocol(other) => write!(f, "Proto({other})"),
        }
    }
}

impl fmt::Display for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

mod field {
    use crate::Field;
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLG_OFF: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;
/// Largest payload a header without options can announce.
pub const MAX_PAYLOAD_LEN: usize = 0xFFFF - HEADER_LEN;

const FLAG_RESERVED: u16 = 0x8000;
const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1FFF;

/// A read/write view of an IPv4 packet in a byte buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps a buffer without checking it; accessors may panic if it is too short.
    pub const fn new_unchecked(buffer: T) -> Ipv4Packet<T> {
        Ipv4Packet { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len), so no accessor can panic.
    pub fn new_checked(buffer: T) -> Result<Ipv4Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Ensures the buffer holds the fixed header, IHL >= 5, the whole header as
    /// announced by IHL, and `header_len <= total_len <= buffer length`. Bytes past
    /// the total length (Ethernet padding, FCS) are allowed and ignored.
    pub fn check_len(&self) -> Result<()> {
        self.check_header_len()?;
        let total = usize::from(self.total_len());
        if total < usize::from(self.header_len()) {
            return Err(Error::Malformed);
        }
        if self.buffer.as_ref().len() < total {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The part of [`check_len`](Self::check_len) that does not involve the total
    /// length: used for the header quoted in ICMP errors, whose datagram was cut.
    pub fn check_header_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let hl = usize::from(self.header_len());
        if hl < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if len < hl {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Gives back the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The version nibble (4 for a valid packet).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL * 4).
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::VER_IHL] & 0x0F) * 4
    }

    /// The whole type-of-service byte (DSCP and ECN).
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[field::TOS]
    }

    /// Differentiated services code point (upper six bits of the TOS byte).
    pub fn dscp(&self) -> u8 {
        self.tos() >> 2
    }

    /// Explicit congestion notification (lower two bits of the TOS byte).
    pub fn ecn(&self) -> u8 {
        self.tos() & 0x03
    }

    /// Total length of header plus payload.
    pub fn total_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Identification, shared by all fragments of one datagram.
    pub fn ident(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::IDENT)
    }

    fn flags_offset(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::FLG_OFF)
    }

    /// The reserved ("evil") flag bit, which must be zero.
    pub fn reserved_flag(&self) -> bool {
        self.flags_offset() & FLAG_RESERVED != 0
    }

    /// Don't-fragment flag.
    pub fn dont_frag(&self) -> bool {
        self.flags_offset() & FLAG_DF != 0
    }

    /// More-fragments flag.
    pub fn more_frags(&self) -> bool {
        self.flags_offset() & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the wire field times 8).
    pub fn frag_offset(&self) -> u16 {
        (self.flags_offset() & OFFSET_MASK) * 8
    }

    /// Whether this packet is a fragment (MF set or non-zero offset).
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// What the payload is.
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[field::PROTOCOL])
    }

    /// The header checksum field.
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(crate::bytes::get_u32(self.buffer.as_ref(), field::SRC_ADDR))
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(crate::bytes::get_u32(self.buffer.as_ref(), field::DST_ADDR))
    }

    /// The option bytes between the fixed header and the payload (not interpreted).
    pub fn options(&self) -> &[u8] {
        clamped(self.buffer.as_ref(), HEADER_LEN, usize::from(self.header_len()))
    }

    /// Whether the header checksum verifies.
    pub fn verify_checksum(&self) -> bool {
        let header = clamped(self.buffer.as_ref(), 0, usize::from(self.header_len()));
        checksum::is_valid(checksum::data(header))
    }

    /// The payload: from the end of the header to the total length.
    pub fn payload(&self) -> &[u8] {
        clamped(self.buffer.as_ref(), usize::from(self.header_len()), usize::from(self.total_len()))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets version and header length (bytes, rounded down to a multiple of 4).
    pub fn set_version_and_header_len(&mut self, version: u8, header_len: u8) {
        self.buffer.as_mut()[field::VER_IHL] = (version << 4) | ((header_len / 4) & 0x0F);
    }

    /// Sets the type-of-service byte.
    pub fn set_tos(&mut self, value: u8) {
        self.buffer.as_mut()[field::TOS] = value;
    }

    /// Sets the total length.
    pub fn set_total_len(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::LENGTH, value);
    }

    /// Sets the identification.
    pub fn set_ident(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::IDENT, value);
    }

    /// Sets the flags and fragment offset (in bytes; the low three bits are dropped);
    /// the reserved flag is cleared.
    pub fn set_flags_and_frag_offset(&mut self, dont_frag: bool, more_frags: bool, offset: u16) {
        let mut raw = (offset / 8) & OFFSET_MASK;
        if dont_frag {
            raw |= FLAG_DF;
        }
        if more_frags {
            raw |= FLAG_MF;
        }
        set_u16(self.buffer.as_mut(), field::FLG_OFF, raw);
    }

    /// Sets the time to live.
    pub fn set_ttl(&mut self, value: u8) {
        self.buffer.as_mut()[field::TTL] = value;
    }

    /// Sets the protocol.
    pub fn set_protocol(&mut self, value: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = value.0;
    }

    /// Sets the checksum field as is (see [`fill_checksum`](Self::fill_checksum)).
    pub fn set_checksum(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&value.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&value.octets());
    }

    /// Computes and stores the header checksum.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = {
            let header = clamped(self.buffer.as_ref(), 0, usize::from(self.header_len()));
            checksum::data(header)
        };
        self.set_checksum(checksum::finish(sum));
    }

    /// The payload, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = usize::from(self.header_len());
        let end = usize::from(self.total_len());
        clamped_mut(self.buffer.as_mut(), start, end)
    }
}

/// The fields of an IPv4 header the stack uses, without the buffer. Options are not
/// represented: parse skips them, emit writes a 20-byte header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// What the payload is.
    pub protocol: IpProtocol,
    /// Payload length (total length minus header length).
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
    /// The type-of-service byte (DSCP << 2 | ECN).
    pub tos: u8,
    /// Identification.
    pub ident: u16,
    /// Don't-fragment flag.
    pub dont_frag: bool,
    /// More-fragments flag.
    pub more_frags: bool,
    /// Fragment offset in bytes; a multiple of 8 (emit drops the low three bits).
    pub frag_offset: u16,
}

impl Ipv4Repr {
    /// Reads a packet built with `new_checked` (checked again here): version must be 4,
    /// and the header checksum must verify unless `checksum` is `Ignore`.
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv4Packet<T>, checksum: ChecksumMode) -> Result<Ipv4Repr> {
        packet.check_len()?;
        Self::parse_header(packet, checksum)
    }

    /// Reads the header quoted in an ICMP error: only the header must be whole (the
    /// total length may exceed the buffer) and the checksum is not verified.
    pub fn parse_quoted<T: AsRef<[u8]>>(packet: &Ipv4Packet<T>) -> Result<Ipv4Repr> {
        packet.check_header_len()?;
        if packet.total_len() < u16::from(packet.header_len()) {
            return Err(Error::Malformed);
        }
        Self::parse_header(packet, ChecksumMode::Ignore)
    }

    fn parse_header<T: AsRef<[u8]>>(packet: &Ipv4Packet<T>, checksum: ChecksumMode) -> Result<Ipv4Repr> {
        if packet.version() != 4 {
            return Err(Error::Malformed);
        }
        if checksum == ChecksumMode::Verify && !packet.verify_checksum() {
            return Err(Error::Checksum);
        }
        Ok(Ipv4Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: usize::from(packet.total_len()) - usize::from(packet.header_len()),
            ttl: packet.ttl(),
            tos: packet.tos(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
            more_frags: packet.more_frags(),
            frag_offset: packet.frag_offset(),
        })
    }

    /// Always 20: emit writes no options.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Header plus payload.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN.saturating_add(self.payload_len)
    }

    /// Writes the 20-byte header with its checksum at the start of the buffer. The
    /// payload is not touched. Fails if the buffer is shorter than the header or the
    /// payload length cannot be expressed in the total-length field.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv4Packet<T>) -> Result<()> {
        if self.payload_len > MAX_PAYLOAD_LEN {
            return Err(Error::Malformed);
        }
        if packet.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        packet.set_version_and_header_len(4, HEADER_LEN as u8);
        packet.set_tos(self.tos);
        packet.set_total_len((HEADER_LEN + self.payload_len) as u16);
        packet.set_ident(self.ident);
        packet.set_flags_and_frag_offset(self.dont_frag, self.more_frags, self.frag_offset);
        packet.set_ttl(self.ttl);
        packet.set_protocol(self.protocol);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        packet.fill_checksum();
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::fixtures;
    use proptest::prelude::*;
    use std::{format, vec};

    const HOST: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
    const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 2);

    fn ip(frame: &[u8]) -> &[u8] {
        &frame[14..]
    }

    fn check_fixture(frame: &[u8], expected: Ipv4Repr) {
        let packet = Ipv4Packet::new_checked(ip(frame)).unwrap();
        assert!(packet.verify_checksum());
        let repr = Ipv4Repr::parse(&packet, ChecksumMode::Verify).unwrap();
        assert_eq!(repr, expected);
        let mut buf = [0u8; 20];
        repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..])).unwrap();
        assert_eq!(&buf[..], &ip(frame)[..20]);
    }

    #[test]
    fn tcp_syn_header() {
        check_fixture(
            fixtures::TCP_SYN,
            Ipv4Repr {
                src_addr: HOST,
                dst_addr: SERVER,
                protocol: IpProtocol::TCP,
                payload_len: 40,
                ttl: 64,
                tos: 0,
                ident: 29350,
                dont_frag: true,
                more_frags: false,
                frag_offset: 0,
            },
        );
    }

    #[test]
    fn icmp_error_header() {
        let packet = Ipv4Packet::new_checked(ip(fixtures::ICMP_PORT_UNREACH)).unwrap();
        assert_eq!(packet.tos(), 0xc0);
        assert_eq!(packet.dscp(), 48);
        assert_eq!(packet.ecn(), 0);
        assert!(!packet.dont_frag());
        assert_eq!(packet.protocol(), IpProtocol::ICMP);
        assert_eq!(packet.ttl(), 63);
        assert_eq!(packet.src_addr(), SERVER);
        assert_eq!(packet.payload().len(), 50);
    }

    #[test]
    fn fragments() {
        let first = Ipv4Packet::new_checked(ip(fixtures::IPV4_FRAG_FIRST)).unwrap();
        let repr = Ipv4Repr::parse(&first, ChecksumMode::Verify).unwrap();
        assert!(repr.more_frags && !repr.dont_frag);
        assert_eq!((repr.frag_offset, repr.payload_len), (0, 1480));
        assert!(first.is_fragment());
        let last = Ipv4Packet::new_checked(ip(fixtures::IPV4_FRAG_LAST)).unwrap();
        let last_repr = Ipv4Repr::parse(&last, ChecksumMode::Verify).unwrap();
        assert!(!last_repr.more_frags);
        assert_eq!((last_repr.frag_offset, last_repr.payload_len), (2960, 48));
        assert_eq!(last_repr.ident, repr.ident);
        assert!(last.is_fragment());
        let mut buf = [0u8; 20];
        last_repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..])).unwrap();
        assert_eq!(&buf[..], &ip(fixtures::IPV4_FRAG_LAST)[..20]);
    }

    #[test]
    fn every_fixture_verifies() {
        for (name, frame) in fixtures::ALL {
            let payload = crate::EthernetFrame::new_checked(*frame).unwrap();
            if payload.payload_ethertype() != crate::EtherType::IPV4 {
                continue;
            }
            let packet = Ipv4Packet::new_checked(payload.payload()).unwrap();
            let repr = Ipv4Repr::parse(&packet, ChecksumMode::Verify).unwrap();
            assert_eq!(repr.buffer_len(), packet.payload().len() + 20, "{name}");
        }
    }

    #[test]
    fn bad_checksum_and_version() {
        let mut bytes = [0u8; 60];
        bytes.copy_from_slice(ip(fixtures::TCP_SYN));
        bytes[8] = 1; // TTL changed without fixing the checksum
        let packet = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(Ipv4Repr::parse(&packet, ChecksumMode::Verify), Err(Error::Checksum));
        assert!(Ipv4Repr::parse(&packet, ChecksumMode::Ignore).is_ok());
        bytes[0] = 0x65;
        let packet = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(Ipv4Repr::parse(&packet, ChecksumMode::Ignore), Err(Error::Malformed));
    }

    #[test]
    fn length_validation() {
        let mut bytes = [0u8; 60];
        bytes.copy_from_slice(ip(fixtures::TCP_SYN));
        bytes[0] = 0x44; // IHL 4
        assert_eq!(Ipv4Packet::new_checked(&bytes[..]).unwrap_err(), Error::Malformed);
        bytes[0] = 0x4f; // IHL 15 = 60 bytes, total length 60: fine
        assert!(Ipv4Packet::new_checked(&bytes[..]).is_ok());
        assert_eq!(Ipv4Packet::new_checked(&bytes[..59]).unwrap_err(), Error::Truncated);
        bytes[0] = 0x46;
        bytes[2..4].copy_from_slice(&20u16.to_be_bytes()); // total < header
        assert_eq!(Ipv4Packet::new_checked(&bytes[..]).unwrap_err(), Error::Malformed);
        bytes[2..4].copy_from_slice(&61u16.to_be_bytes()); // total > buffer
        assert_eq!(Ipv4Packet::new_checked(&bytes[..]).unwrap_err(), Error::Truncated);
        // Options are skipped.
        bytes[2..4].copy_from_slice(&60u16.to_be_bytes());
        let packet = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.options().len(), 4);
        assert_eq!(packet.payload().len(), 36);
    }

    #[test]
    fn padding_is_excluded() {
        // A 42-byte UDP frame padded to 60 bytes by the sender's NIC.
        let mut frame = [0u8; 60];
        frame[..56].copy_from_slice(fixtures::UDP_CLOSED);
        let packet = Ipv4Packet::new_checked(&frame[14..]).unwrap();
        assert_eq!(packet.payload().len(), 22);
    }

    #[test]
    fn setters_cannot_make_payload_panic() {
        let mut bytes = [0u8; 60];
        bytes.copy_from_slice(ip(fixtures::TCP_SYN));
        let mut packet = Ipv4Packet::new_checked(&mut bytes[..]).unwrap();
        packet.set_total_len(9000);
        assert_eq!(packet.payload().len(), 40);
        packet.set_version_and_header_len(4, 60);
        packet.set_total_len(30);
        assert!(packet.payload().is_empty());
        assert!(packet.payload_mut().is_empty());
    }

    #[test]
    fn emit_errors() {
        let repr = Ipv4Repr {
            src_addr: HOST,
            dst_addr: SERVER,
            protocol: IpProtocol::UDP,
            payload_len: MAX_PAYLOAD_LEN + 1,
            ttl: 64,
            tos: 0,
            ident: 0,
            dont_frag: false,
            more_frags: false,
            frag_offset: 0,
        };
        let mut buf = [0u8; 20];
        assert_eq!(repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..])), Err(Error::Malformed));
        let repr = Ipv4Repr { payload_len: 0, ..repr };
        assert_eq!(repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..19])), Err(Error::Truncated));
        assert_eq!(format!("{}", IpProtocol(99)), "Proto(99)");
    }

    pub(crate) fn arb_repr() -> impl Strategy<Value = Ipv4Repr> {
        (
            any::<[u8; 4]>(),
            any::<[u8; 4]>(),
            any::<u8>(),
            0usize..=MAX_PAYLOAD_LEN,
            (any::<u8>(), any::<u8>(), any::<u16>()),
            (any::<bool>(), any::<bool>(), 0u16..=OFFSET_MASK),
        )
            .prop_map(|(s, d, p, payload_len, (ttl, tos, ident), (dont_frag, more_frags, off))| Ipv4Repr {
                src_addr: Ipv4Addr::from(s),
                dst_addr: Ipv4Addr::from(d),
                protocol: IpProtocol(p),
                payload_len,
                ttl,
                tos,
                ident,
                dont_frag,
                more_frags,
                frag_offset: off * 8,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn roundtrip(repr in arb_repr()) {
            let mut buf = vec![0u8; repr.buffer_len()];
            repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..])).unwrap();
            let packet = Ipv4Packet::new_checked(&buf[..]).unwrap();
            prop_assert!(packet.verify_checksum());
            prop_assert_eq!(Ipv4Repr::parse(&packet, ChecksumMode::Verify).unwrap(), repr);
            prop_assert_eq!(packet.payload().len(), repr.payload_len);
        }

        #[test]
        fn arbitrary_bytes(mut bytes in proptest::collection::vec(any::<u8>(), 0..80), fix in any::<bool>()) {
            if fix && bytes.len() >= 20 {
                // Make the header plausible so the interesting paths are reached.
                let len = bytes.len() as u16;
                bytes[0] = 0x45;
                bytes[2..4].copy_from_slice(&len.to_be_bytes());
                bytes[6] &= 0x7f;
                let mut p = Ipv4Packet::new_unchecked(&mut bytes[..]);
                p.fill_checksum();
            }
            if let Ok(packet) = Ipv4Packet::new_checked(&bytes[..]) {
                let _ = (packet.options(), packet.payload(), packet.is_fragment(), packet.dscp());
                if let Ok(repr) = Ipv4Repr::parse(&packet, ChecksumMode::Ignore) {
                    let mut out = [0u8; 20];
                    repr.emit(&mut Ipv4Packet::new_unchecked(&mut out[..])).unwrap();
                    let emitted = Ipv4Packet::new_unchecked(&out[..]);
                    prop_assert!(emitted.verify_checksum());
                    let canonical = packet.header_len() == 20 && !packet.reserved_flag();
                    if canonical {
                        prop_assert_eq!(&out[..10], &bytes[..10]);
                        prop_assert_eq!(&out[12..20], &bytes[12..20]);
                        if packet.verify_checksum() && packet.checksum() != 0xFFFF {
                            prop_assert_eq!(&out[10..12], &bytes[10..12]);
                        }
                    }
                }
            }
        }
    }
}
