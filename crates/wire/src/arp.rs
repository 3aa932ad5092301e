//! ARP (RFC 826). The view reads any hardware/protocol address lengths; the repr
//! handles the only combination the stack uses, Ethernet hardware with IPv4 protocol
//! addresses, and reports anything else as [`Error::Unsupported`].

use crate::bytes::{get_u16, set_u16};
use crate::ethernet::{EtherType, EthernetAddress};
use crate::{Error, Result};
use core::fmt;
use core::net::Ipv4Addr;

/// The ARP opcode; any value is representable.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ArpOperation(pub u16);

impl ArpOperation {
    /// "Who has ... tell ...".
    pub const REQUEST: ArpOperation = ArpOperation(1);
    /// "... is at ...".
    pub const REPLY: ArpOperation = ArpOperation(2);
}

impl fmt::Debug for ArpOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ArpOperation::REQUEST => f.write_str("Request"),
            ArpOperation::REPLY => f.write_str("Reply"),
            ArpOperation(other) => write!(f, "Op({other})"),
        }
    }
}

/// ARP hardware type for Ethernet.
pub const HARDWARE_ETHERNET: u16 = 1;

mod field {
    use crate::Field;
    pub const HTYPE: Field = 0..2;
    pub const PTYPE: Field = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Field = 6..8;
    /// Start of the variable-length addresses.
    pub const ADDRS: usize = 8;
}

/// Length of the fixed part (up to and including the opcode).
pub const FIXED_LEN: usize = 8;
/// Length of an Ethernet/IPv4 ARP packet.
pub const ETHERNET_IPV4_LEN: usize = 28;

/// A read/write view of an ARP packet in a byte buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wraps a buffer without checking it; accessors may panic if it is too short.
    pub const fn new_unchecked(buffer: T) -> ArpPacket<T> {
        ArpPacket { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len), so no accessor can panic.
    pub fn new_checked(buffer: T) -> Result<ArpPacket<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Ensures the buffer holds the fixed part and the four addresses whose lengths
    /// it announces.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < FIXED_LEN || len < self.packet_len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Gives back the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Length of the packet as announced by its address lengths (trailing Ethernet
    /// padding is not part of it).
    pub fn packet_len(&self) -> usize {
        FIXED_LEN + 2 * (usize::from(self.hardware_len()) + usize::from(self.protocol_len()))
    }

    /// Hardware type (1 for Ethernet).
    pub fn hardware_type(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::HTYPE)
    }

    /// Protocol type (an EtherType; 0x0800 for IPv4).
    pub fn protocol_type(&self) -> EtherType {
        EtherType(get_u16(self.buffer.as_ref(), field::PTYPE))
    }

    /// Hardware address length.
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// Protocol address length.
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// The opcode.
    pub fn operation(&self) -> ArpOperation {
        ArpOperation(get_u16(self.buffer.as_ref(), field::OPER))
    }

    fn addr(&self, index: usize) -> &[u8] {
        let h = usize::from(self.hardware_len());
        let p = usize::from(self.protocol_len());
        let (start, len) = match index {
            0 => (field::ADDRS, h),
            1 => (field::ADDRS + h, p),
            2 => (field::ADDRS + h + p, h),
            _ => (field::ADDRS + 2 * h + p, p),
        };
        crate::bytes::clamped(self.buffer.as_ref(), start, start + len)
    }

    /// Sender hardware address bytes.
    pub fn source_hardware_addr(&self) -> &[u8] {
        self.addr(0)
    }

    /// Sender protocol address bytes.
    pub fn source_protocol_addr(&self) -> &[u8] {
        self.addr(1)
    }

    /// Target hardware address bytes.
    pub fn target_hardware_addr(&self) -> &[u8] {
        self.addr(2)
    }

    /// Target protocol address bytes.
    pub fn target_protocol_addr(&self) -> &[u8] {
        self.addr(3)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Sets the hardware type.
    pub fn set_hardware_type(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::HTYPE, value);
    }

    /// Sets the protocol type.
    pub fn set_protocol_type(&mut self, value: EtherType) {
        set_u16(self.buffer.as_mut(), field::PTYPE, value.0);
    }

    /// Sets the hardware address length.
    pub fn set_hardware_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::HLEN] = value;
    }

    /// Sets the protocol address length.
    pub fn set_protocol_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::PLEN] = value;
    }

    /// Sets the opcode.
    pub fn set_operation(&mut self, value: ArpOperation) {
        set_u16(self.buffer.as_mut(), field::OPER, value.0);
    }

    fn set_addr(&mut self, index: usize, value: &[u8]) {
        let h = usize::from(self.hardware_len());
        let p = usize::from(self.protocol_len());
        let start = match index {
            0 => field::ADDRS,
            1 => field::ADDRS + h,
            2 => field::ADDRS + h + p,
            _ => field::ADDRS + 2 * h + p,
        };
        self.buffer.as_mut()[start..start + value.len()].copy_from_slice(value);
    }

    /// Writes the sender hardware address (after the lengths are set).
    pub fn set_source_hardware_addr(&mut self, value: &[u8]) {
        self.set_addr(0, value);
    }

    /// Writes the sender protocol address (after the lengths are set).
    pub fn set_source_protocol_addr(&mut self, value: &[u8]) {
        self.set_addr(1, value);
    }

    /// Writes the target hardware address (after the lengths are set).
    pub fn set_target_hardware_addr(&mut self, value: &[u8]) {
        self.set_addr(2, value);
    }

    /// Writes the target protocol address (after the lengths are set).
    pub fn set_target_protocol_addr(&mut self, value: &[u8]) {
        self.set_addr(3, value);
    }
}

/// An Ethernet/IPv4 ARP message, without the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArpRepr {
    /// Request, reply, or any other opcode.
    pub operation: ArpOperation,
    /// Sender MAC.
    pub source_hardware_addr: EthernetAddress,
    /// Sender IPv4 address.
    pub source_protocol_addr: Ipv4Addr,
    /// Target MAC (zero in requests).
    pub target_hardware_addr: EthernetAddress,
    /// Target IPv4 address.
    pub target_protocol_addr: Ipv4Addr,
}

fn ipv4(bytes: &[u8]) -> Ipv4Addr {
    let mut a = [0u8; 4];
    a.copy_from_slice(bytes);
    Ipv4Addr::from(a)
}

impl ArpRepr {
    /// Reads an Ethernet/IPv4 ARP packet; other hardware or protocol types are
    /// [`Error::Unsupported`].
    pub fn parse<T: AsRef<[u8]>>(packet: &ArpPacket<T>) -> Result<ArpRepr> {
        packet.check_len()?;
        if packet.hardware_type() != HARDWARE_ETHERNET
            || packet.protocol_type() != EtherType::IPV4
            || packet.hardware_len() != 6
            || packet.protocol_len() != 4
        {
            return Err(Error::Unsupported);
        }
        let mac = |b: &[u8]| EthernetAddress::from_bytes(b).unwrap_or_default();
        Ok(ArpRepr {
            operation: packet.operation(),
            source_hardware_addr: mac(packet.source_hardware_addr()),
            source_protocol_addr: ipv4(packet.source_protocol_addr()),
            target_hardware_addr: mac(packet.target_hardware_addr()),
            target_protocol_addr: ipv4(packet.target_protocol_addr()),
        })
    }

    /// Always 28: an Ethernet/IPv4 ARP packet has no payload.
    pub const fn buffer_len(&self) -> usize {
        ETHERNET_IPV4_LEN
    }

    /// Writes the whole 28-byte packet at the start of the buffer.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut ArpPacket<T>) -> Result<()> {
        if packet.buffer.as_ref().len() < ETHERNET_IPV4_LEN {
            return Err(Error::Truncated);
        }
        packet.set_hardware_type(HARDWARE_ETHERNET);
        packet.set_protocol_type(EtherType::IPV4);
        packet.set_hardware_len(6);
        packet.set_protocol_len(4);
        packet.set_operation(self.operation);
        packet.set_source_hardware_addr(&self.source_hardware_addr.0);
        packet.set_source_protocol_addr(&self.source_protocol_addr.octets());
        packet.set_target_hardware_addr(&self.target_hardware_addr.0);
        packet.set_target_protocol_addr(&self.target_protocol_addr.octets());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use proptest::prelude::*;
    use std::format;

    const HOST: EthernetAddress = EthernetAddress([0xf6, 0x09, 0x5e, 0x9e, 0xf6, 0x61]);
    const ROUTER: EthernetAddress = EthernetAddress([0xbe, 0xfc, 0x35, 0xd1, 0xf1, 0x67]);

    fn roundtrip_fixture(frame: &[u8], expected: ArpRepr) {
        let packet = ArpPacket::new_checked(&frame[14..]).unwrap();
        assert_eq!(ArpRepr::parse(&packet).unwrap(), expected);
        let mut buf = [0u8; 28];
        expected.emit(&mut ArpPacket::new_unchecked(&mut buf[..])).unwrap();
        assert_eq!(&buf[..], &frame[14..42]);
    }

    #[test]
    fn request() {
        roundtrip_fixture(
            fixtures::ARP_REQUEST,
            ArpRepr {
                operation: ArpOperation::REQUEST,
                source_hardware_addr: HOST,
                source_protocol_addr: Ipv4Addr::new(10, 77, 0, 1),
                target_hardware_addr: EthernetAddress([0; 6]),
                target_protocol_addr: Ipv4Addr::new(10, 77, 0, 254),
            },
        );
    }

    #[test]
    fn reply() {
        roundtrip_fixture(
            fixtures::ARP_REPLY,
            ArpRepr {
                operation: ArpOperation::REPLY,
                source_hardware_addr: ROUTER,
                source_protocol_addr: Ipv4Addr::new(10, 77, 0, 254),
                target_hardware_addr: HOST,
                target_protocol_addr: Ipv4Addr::new(10, 77, 0, 1),
            },
        );
    }

    #[test]
    fn padded_and_truncated() {
        let mut padded = [0u8; 46];
        padded[..28].copy_from_slice(&fixtures::ARP_REPLY[14..]);
        let packet = ArpPacket::new_checked(&padded[..]).unwrap();
        assert_eq!(packet.packet_len(), 28);
        assert!(ArpRepr::parse(&packet).is_ok());
        let body = &fixtures::ARP_REQUEST[14..];
        for cut in 0..body.len() {
            assert_eq!(ArpPacket::new_checked(&body[..cut]).unwrap_err(), Error::Truncated);
        }
    }

    #[test]
    fn unsupported_types() {
        let mut body = [0u8; 28];
        body.copy_from_slice(&fixtures::ARP_REQUEST[14..]);
        body[1] = 6; // IEEE 802 hardware
        let packet = ArpPacket::new_checked(&body[..]).unwrap();
        assert_eq!(ArpRepr::parse(&packet), Err(Error::Unsupported));
        // Odd lengths are fine for the view, unsupported for the repr.
        let weird = [0, 1, 0x08, 0x00, 1, 2, 0, 1, 0xaa, 1, 2, 0xbb, 3, 4];
        let packet = ArpPacket::new_checked(&weird[..]).unwrap();
        assert_eq!(packet.source_hardware_addr(), &[0xaa]);
        assert_eq!(packet.target_protocol_addr(), &[3, 4]);
        assert_eq!(ArpRepr::parse(&packet), Err(Error::Unsupported));
        assert_eq!(format!("{:?}", ArpOperation(9)), "Op(9)");
    }

    #[test]
    fn emit_short_buffer() {
        let mut buf = [0u8; 27];
        let repr = ArpRepr {
            operation: ArpOperation::REQUEST,
            source_hardware_addr: HOST,
            source_protocol_addr: Ipv4Addr::new(10, 0, 0, 1),
            target_hardware_addr: EthernetAddress::default(),
            target_protocol_addr: Ipv4Addr::new(10, 0, 0, 2),
        };
        assert_eq!(repr.emit(&mut ArpPacket::new_unchecked(&mut buf[..])), Err(Error::Truncated));
    }

    fn arb_repr() -> impl Strategy<Value = ArpRepr> {
        (any::<u16>(), any::<[u8; 6]>(), any::<[u8; 4]>(), any::<[u8; 6]>(), any::<[u8; 4]>()).prop_map(
            |(op, sha, spa, tha, tpa)| ArpRepr {
                operation: ArpOperation(op),
                source_hardware_addr: EthernetAddress(sha),
                source_protocol_addr: Ipv4Addr::from(spa),
                target_hardware_addr: EthernetAddress(tha),
                target_protocol_addr: Ipv4Addr::from(tpa),
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn roundtrip(repr in arb_repr()) {
            let mut buf = [0u8; 28];
            repr.emit(&mut ArpPacket::new_unchecked(&mut buf[..])).unwrap();
            let packet = ArpPacket::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(ArpRepr::parse(&packet).unwrap(), repr);
        }

        #[test]
        fn arbitrary_bytes(mut bytes in proptest::collection::vec(any::<u8>(), 0..40), fix in any::<bool>()) {
            if fix && bytes.len() >= 6 {
                bytes[..6].copy_from_slice(&[0, 1, 8, 0, 6, 4]);
            }
            if let Ok(packet) = ArpPacket::new_checked(&bytes[..]) {
                let _ = (packet.source_hardware_addr(), packet.target_protocol_addr());
                if let Ok(repr) = ArpRepr::parse(&packet) {
                    let mut out = [0u8; 28];
                    repr.emit(&mut ArpPacket::new_unchecked(&mut out[..])).unwrap();
                    prop_assert_eq!(&out[..], &bytes[..28]);
                }
            }
        }
    }
}
