//! UDP (RFC 768). The datagram extends to its own length field, so trailing bytes in
//! the buffer are ignored. A checksum of zero means "not computed" on receive; a
//! computed zero is sent as 0xFFFF.

use crate::bytes::{clamped, clamped_mut, get_u16, set_u16};
use crate::checksum::{self, ChecksumMode};
use crate::ipv4::IpProtocol;
use crate::{Error, Result};
use core::net::Ipv4Addr;

mod field {
    use crate::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LENGTH: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
}

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;
/// Largest payload the 16-bit length field can announce.
pub const MAX_PAYLOAD_LEN: usize = 0xFFFF - HEADER_LEN;

/// A read/write view of a UDP datagram in a byte buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wraps a buffer without checking it; accessors may panic if it is too short.
    pub const fn new_unchecked(buffer: T) -> UdpPacket<T> {
        UdpPacket { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len), so no accessor can panic.
    pub fn new_checked(buffer: T) -> Result<UdpPacket<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Ensures the buffer holds the header and `8 <= length <= buffer length`.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let field_len = usize::from(self.len());
        if field_len < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if len < field_len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Gives back the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// The length field: header plus payload.
    pub fn len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Whether the length field announces no payload.
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    /// The checksum field (0 = none).
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The payload, up to the length field.
    pub fn payload(&self) -> &[u8] {
        clamped(self.buffer.as_ref(), HEADER_LEN, usize::from(self.len()))
    }

    fn compute(&self, src: Ipv4Addr, dst: Ipv4Addr) -> u16 {
        let datagram = clamped(self.buffer.as_ref(), 0, usize::from(self.len()));
        checksum::combine(&[checksum::pseudo_header(src, dst, IpProtocol::UDP, self.len()), checksum::data(datagram)])
    }

    /// Whether the checksum verifies against the IPv4 pseudo-header; a zero checksum
    /// means the sender did not compute one and always verifies.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        self.checksum() == 0 || checksum::is_valid(self.compute(src, dst))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    /// Sets the source port.
    pub fn set_src_port(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::SRC_PORT, value);
    }

    /// Sets the destination port.
    pub fn set_dst_port(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::DST_PORT, value);
    }

    /// Sets the length field.
    pub fn set_len(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::LENGTH, value);
    }

    /// Sets the checksum field as is (0 disables the checksum).
    pub fn set_checksum(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Computes and stores the checksum over pseudo-header, header and payload (up to
    /// the length field); a computed 0x0000 is stored as 0xFFFF.
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let value = match checksum::finish(self.compute(src, dst)) {
            0 => 0xFFFF,
            v => v,
        };
        self.set_checksum(value);
    }

    /// The payload, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        clamped_mut(self.buffer.as_mut(), HEADER_LEN, end)
    }
}

/// The fields of a UDP header, without the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UdpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Payload length (length field minus 8).
    pub payload_len: usize,
}

impl UdpRepr {
    /// Reads a datagram; the checksum must verify against the pseudo-header of
    /// `src`/`dst` unless it is zero or `checksum` is `Ignore`.
    pub fn parse<T: AsRef<[u8]>>(
        packet: &UdpPacket<T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        checksum: ChecksumMode,
    ) -> Result<UdpRepr> {
        packet.check_len()?;
        if checksum == ChecksumMode::Verify && !packet.verify_checksum(src, dst) {
            return Err(Error::Checksum);
        }
        Ok(UdpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            payload_len: usize::from(packet.len()) - HEADER_LEN,
        })
    }

    /// Always 8.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Header plus payload.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN.saturating_add(self.payload_len)
    }

    /// Writes the header and the checksum. The payload must already be in place at
    /// offset 8 (it is covered by the checksum); the buffer must hold
    /// [`buffer_len`](Self::buffer_len) bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut UdpPacket<T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
    ) -> Result<()> {
        if self.payload_len > MAX_PAYLOAD_LEN {
            return Err(Error::Malformed);
        }
        if packet.buffer.as_ref().len() < self.buffer_len() {
            return Err(Error::Truncated);
        }
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len(self.buffer_len() as u16);
        packet.fill_checksum(src, dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use proptest::prelude::*;
    use std::vec;

    const HOST: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
    const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 2);

    #[test]
    fn dns_query() {
        let bytes = &fixtures::UDP_DNS[34..];
        let packet = UdpPacket::new_checked(bytes).unwrap();
        assert!(packet.verify_checksum(HOST, SERVER));
        assert!(!packet.verify_checksum(SERVER, Ipv4Addr::new(10, 77, 1, 3)));
        let repr = UdpRepr::parse(&packet, HOST, SERVER, ChecksumMode::Verify).unwrap();
        assert_eq!(repr, UdpRepr { src_port: 46373, dst_port: 5353, payload_len: 29 });
        assert_eq!(&packet.payload()[12..], b"\x07example\x03com\x00\x00\x01\x00\x01");
        let mut buf = vec![0u8; repr.buffer_len()];
        buf[8..].copy_from_slice(packet.payload());
        repr.emit(&mut UdpPacket::new_unchecked(&mut buf[..]), HOST, SERVER).unwrap();
        assert_eq!(&buf[..], bytes);
        assert_eq!(
            UdpRepr::parse(&packet, SERVER, HOST, ChecksumMode::Verify),
            Ok(repr),
            "the pseudo-header sum is symmetric in src/dst"
        );
        assert_eq!(
            UdpRepr::parse(&packet, HOST, Ipv4Addr::new(1, 2, 3, 4), ChecksumMode::Verify),
            Err(Error::Checksum)
        );
    }

    #[test]
    fn zero_checksum_means_none() {
        let mut bytes = [0u8; 22];
        bytes.copy_from_slice(&fixtures::UDP_CLOSED[34..]);
        bytes[6] = 0;
        bytes[7] = 0;
        let packet = UdpPacket::new_checked(&bytes[..]).unwrap();
        assert!(packet.verify_checksum(HOST, SERVER));
        assert!(packet.verify_checksum(Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST));
        assert!(UdpRepr::parse(&packet, HOST, SERVER, ChecksumMode::Verify).is_ok());
    }

    #[test]
    fn computed_zero_is_sent_as_ffff() {
        // Choose a payload word so the checksum over everything else comes out 0.
        let repr = UdpRepr { src_port: 1000, dst_port: 2000, payload_len: 2 };
        let mut buf = [0u8; 10];
        repr.emit(&mut UdpPacket::new_unchecked(&mut buf[..]), HOST, SERVER).unwrap();
        let c = u16::from_be_bytes([buf[6], buf[7]]);
        // Adding `c` to the payload word makes the sum 0xFFFF, so the checksum is 0.
        buf[8..10].copy_from_slice(&c.to_be_bytes());
        let mut packet = UdpPacket::new_unchecked(&mut buf[..]);
        packet.fill_checksum(HOST, SERVER);
        assert_eq!(packet.checksum(), 0xFFFF);
        assert!(packet.verify_checksum(HOST, SERVER));
        let packet = UdpPacket::new_checked(&buf[..]).unwrap();
        assert!(UdpRepr::parse(&packet, HOST, SERVER, ChecksumMode::Verify).is_ok());
    }

    #[test]
    fn length_validation() {
        let bytes = &fixtures::UDP_DNS[34..];
        for cut in 0..bytes.len() {
            assert_eq!(UdpPacket::new_checked(&bytes[..cut]).unwrap_err(), Error::Truncated);
        }
        let mut b = [0u8; 8];
        b[5] = 7;
        assert_eq!(UdpPacket::new_checked(&b[..]).unwrap_err(), Error::Malformed);
        b[5] = 8;
        let p = UdpPacket::new_checked(&b[..]).unwrap();
        assert!(p.is_empty());
        // Trailing bytes beyond the length field are not payload.
        let mut padded = [0u8; 40];
        padded[..37].copy_from_slice(bytes);
        let p = UdpPacket::new_checked(&padded[..]).unwrap();
        assert_eq!(p.payload().len(), 29);
        assert!(p.verify_checksum(HOST, SERVER));
    }

    #[test]
    fn emit_errors() {
        let repr = UdpRepr { src_port: 1, dst_port: 2, payload_len: 4 };
        let mut buf = [0u8; 11];
        assert_eq!(repr.emit(&mut UdpPacket::new_unchecked(&mut buf[..]), HOST, SERVER), Err(Error::Truncated));
        let big = UdpRepr { payload_len: MAX_PAYLOAD_LEN + 1, ..repr };
        assert_eq!(big.emit(&mut UdpPacket::new_unchecked(&mut buf[..]), HOST, SERVER), Err(Error::Malformed));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn roundtrip(
            src_port in any::<u16>(), dst_port in any::<u16>(),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
            src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(),
        ) {
            let (src, dst) = (Ipv4Addr::from(src), Ipv4Addr::from(dst));
            let repr = UdpRepr { src_port, dst_port, payload_len: payload.len() };
            let mut buf = vec![0u8; repr.buffer_len()];
            buf[8..].copy_from_slice(&payload);
            repr.emit(&mut UdpPacket::new_unchecked(&mut buf[..]), src, dst).unwrap();
            let packet = UdpPacket::new_checked(&buf[..]).unwrap();
            prop_assert_ne!(packet.checksum(), 0);
            prop_assert!(packet.verify_checksum(src, dst));
            prop_assert_eq!(UdpRepr::parse(&packet, src, dst, ChecksumMode::Verify).unwrap(), repr);
            prop_assert_eq!(packet.payload(), &payload[..]);
        }

        #[test]
        fn arbitrary_bytes(mut bytes in proptest::collection::vec(any::<u8>(), 0..40), fix in any::<bool>()) {
            if fix && bytes.len() >= 8 {
                let len = bytes.len() as u16;
                bytes[4..6].copy_from_slice(&len.to_be_bytes());
            }
            if let Ok(packet) = UdpPacket::new_checked(&bytes[..]) {
                let _ = packet.payload();
                if let Ok(repr) = UdpRepr::parse(&packet, Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST, ChecksumMode::Ignore) {
                    let n = repr.buffer_len();
                    let mut out = vec![0u8; n];
                    out[8..].copy_from_slice(packet.payload());
                    repr.emit(&mut UdpPacket::new_unchecked(&mut out[..]), Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST).unwrap();
                    prop_assert_eq!(&out[..6], &bytes[..6]);
                    prop_assert_eq!(&out[8..], &bytes[8..n]);
                }
            }
        }
    }
}
