//! Ethernet II frames, optionally carrying one 802.1Q VLAN tag.
//!
//! The view covers the 14-byte header (18 with a tag) and the payload up to the end of
//! the buffer; the frame check sequence is not part of it (a caller that receives the
//! FCS strips it, or lets the IPv4 total length ignore it).

use crate::bytes::{clamped, clamped_mut, get_u16, set_u16};
use crate::{Error, Result};
use core::fmt;

/// A 48-bit MAC address, kept as its six wire bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EthernetAddress(pub [u8; 6]);

impl EthernetAddress {
    /// ff:ff:ff:ff:ff:ff, the destination of ARP requests.
    pub const BROADCAST: EthernetAddress = EthernetAddress([0xff; 6]);

    /// Builds an address from a slice of exactly six bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<EthernetAddress> {
        let b: [u8; 6] = bytes.try_into().ok()?;
        Some(EthernetAddress(b))
    }

    /// The six wire bytes.
    pub const fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }

    /// Whether this is the all-ones broadcast address.
    pub fn is_broadcast(&self) -> bool {
        self.0 == [0xff; 6]
    }

    /// Whether the group bit (least significant bit of the first octet) is set; the
    /// broadcast address is multicast too.
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// Whether this names a single station (group bit clear).
    pub const fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }

    /// Whether the locally administered bit is set.
    pub const fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }
}

impl fmt::Display for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
    }
}

/// The 16-bit EtherType saying what an Ethernet frame carries; any value is
/// representable, the constants name the ones the stack handles.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EtherType(pub u16);

impl EtherType {
    /// IPv4.
    pub const IPV4: EtherType = EtherType(0x0800);
    /// ARP.
    pub const ARP: EtherType = EtherType(0x0806);
    /// An 802.1Q VLAN tag follows (the tag protocol identifier, TPID).
    pub const VLAN: EtherType = EtherType(0x8100);
    /// IPv6 (recognised only so it can be counted and dropped).
    pub const IPV6: EtherType = EtherType(0x86DD);
}

impl fmt::Debug for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            EtherType::IPV4 => f.write_str("IPv4"),
            EtherType::ARP => f.write_str("ARP"),
            EtherType::VLAN => f.write_str("VLAN"),
            EtherType::IPV6 => f.write_str("IPv6"),
            EtherType(other) => write!(f, "0x{other:04x}"),
        }
    }
}

impl fmt::Display for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The tag control information of an 802.1Q tag: priority, drop-eligible bit, VLAN id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct VlanTag {
    /// Priority code point, 0..=7.
    pub pcp: u8,
    /// Drop eligible indicator.
    pub dei: bool,
    /// VLAN identifier, 0..=4095.
    pub vid: u16,
}

impl VlanTag {
    /// Splits a 16-bit TCI into its fields.
    pub const fn from_tci(tci: u16) -> VlanTag {
        VlanTag { pcp: (tci >> 13) as u8, dei: tci & 0x1000 != 0, vid: tci & 0x0fff }
    }

    /// Packs the fields into a TCI; out-of-range pcp/vid bits are masked off.
    pub const fn to_tci(&self) -> u16 {
        ((self.pcp as u16 & 0x7) << 13) | ((self.dei as u16) << 12) | (self.vid & 0x0fff)
    }
}

mod field {
    use crate::Field;
    pub const DESTINATION: Field = 0..6;
    pub const SOURCE: Field = 6..12;
    pub const ETHERTYPE: Field = 12..14;
    /// Present only when ETHERTYPE is 0x8100.
    pub const VLAN_TCI: Field = 14..16;
    pub const INNER_ETHERTYPE: Field = 16..18;
}

/// Length of an untagged header.
pub const HEADER_LEN: usize = 14;
/// Length of a header with one 802.1Q tag.
pub const VLAN_HEADER_LEN: usize = 18;

/// A read/write view of an Ethernet frame in a byte buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps a buffer without checking it; accessors may panic if it is too short.
    pub const fn new_unchecked(buffer: T) -> EthernetFrame<T> {
        EthernetFrame { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len), so no accessor can panic.
    pub fn new_checked(buffer: T) -> Result<EthernetFrame<T>> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// Ensures the buffer holds the whole header, including the VLAN tag if the
    /// EtherType announces one.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if len < self.header_len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Gives back the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// 18 when the frame carries a VLAN tag, 14 otherwise.
    pub fn header_len(&self) -> usize {
        if self.ethertype() == EtherType::VLAN {
            VLAN_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }

    /// The destination address.
    pub fn dst_addr(&self) -> EthernetAddress {
        let mut a = [0; 6];
        a.copy_from_slice(&self.buffer.as_ref()[field::DESTINATION]);
        EthernetAddress(a)
    }

    /// The source address.
    pub fn src_addr(&self) -> EthernetAddress {
        let mut a = [0; 6];
        a.copy_from_slice(&self.buffer.as_ref()[field::SOURCE]);
        EthernetAddress(a)
    }

    /// The EtherType at offset 12 (0x8100 when a VLAN tag follows).
    pub fn ethertype(&self) -> EtherType {
        EtherType(get_u16(self.buffer.as_ref(), field::ETHERTYPE))
    }

    /// The VLAN tag, if the frame carries one.
    pub fn vlan_tag(&self) -> Option<VlanTag> {
        if self.ethertype() == EtherType::VLAN {
            Some(VlanTag::from_tci(get_u16(self.buffer.as_ref(), field::VLAN_TCI)))
        } else {
            None
        }
    }

    /// The EtherType of the payload: the one after the VLAN tag if there is a tag.
    pub fn payload_ethertype(&self) -> EtherType {
        if self.ethertype() == EtherType::VLAN {
            EtherType(get_u16(self.buffer.as_ref(), field::INNER_ETHERTYPE))
        } else {
            self.ethertype()
        }
    }

    /// Everything after the header (including any padding and FCS the buffer holds).
    pub fn payload(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        clamped(data, self.header_len(), data.len())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&addr.0);
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&addr.0);
    }

    /// Sets the EtherType at offset 12 (use [`EtherType::VLAN`] before a tag).
    pub fn set_ethertype(&mut self, value: EtherType) {
        set_u16(self.buffer.as_mut(), field::ETHERTYPE, value.0);
    }

    /// Writes the tag control information at offset 14 (the buffer must hold 18 bytes).
    pub fn set_vlan_tag(&mut self, tag: VlanTag) {
        set_u16(self.buffer.as_mut(), field::VLAN_TCI, tag.to_tci());
    }

    /// Writes the EtherType after the tag at offset 16 (the buffer must hold 18 bytes).
    pub fn set_inner_ethertype(&mut self, value: EtherType) {
        set_u16(self.buffer.as_mut(), field::INNER_ETHERTYPE, value.0);
    }

    /// Everything after the header, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        let data = self.buffer.as_mut();
        let end = data.len();
        clamped_mut(data, start, end)
    }
}

/// The fields of an Ethernet header, without the buffer.
///
/// `ethertype` is the payload's type; when `vlan` is `Some` the frame is emitted with
/// TPID 0x8100, the tag, then `ethertype`. An untagged repr must not use
/// [`EtherType::VLAN`] as its `ethertype` (emit rejects it as malformed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EthernetRepr {
    /// Source address.
    pub src_addr: EthernetAddress,
    /// Destination address.
    pub dst_addr: EthernetAddress,
    /// The 802.1Q tag, if any.
    pub vlan: Option<VlanTag>,
    /// What the payload is.
    pub ethertype: EtherType,
}

impl EthernetRepr {
    /// Reads the header of a frame built with `new_checked`.
    pub fn parse<T: AsRef<[u8]>>(frame: &EthernetFrame<T>) -> Result<EthernetRepr> {
        frame.check_len()?;
        Ok(EthernetRepr {
            src_addr: frame.src_addr(),
            dst_addr: frame.dst_addr(),
            vlan: frame.vlan_tag(),
            ethertype: frame.payload_ethertype(),
        })
    }

    /// Length of the header this repr emits (14 or 18).
    pub const fn header_len(&self) -> usize {
        if self.vlan.is_some() {
            VLAN_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }

    /// Length of a frame carrying `payload_len` bytes (no FCS, no minimum padding).
    pub const fn buffer_len(&self, payload_len: usize) -> usize {
        self.header_len().saturating_add(payload_len)
    }

    /// Writes the header at the start of the frame's buffer.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut EthernetFrame<T>) -> Result<()> {
        if self.vlan.is_none() && self.ethertype == EtherType::VLAN {
            return Err(Error::Malformed);
        }
        if frame.buffer.as_ref().len() < self.header_len() {
            return Err(Error::Truncated);
        }
        frame.set_dst_addr(self.dst_addr);
        frame.set_src_addr(self.src_addr);
        match self.vlan {
            Some(tag) => {
                frame.set_ethertype(EtherType::VLAN);
                frame.set_vlan_tag(tag);
                frame.set_inner_ethertype(self.ethertype);
            }
            None => frame.set_ethertype(self.ethertype),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use proptest::prelude::*;
    use std::string::ToString;
    use std::vec;

    const HOST: EthernetAddress = EthernetAddress([0xf6, 0x09, 0x5e, 0x9e, 0xf6, 0x61]);
    const ROUTER: EthernetAddress = EthernetAddress([0xbe, 0xfc, 0x35, 0xd1, 0xf1, 0x67]);

    #[test]
    fn parse_arp_broadcast() {
        let frame = EthernetFrame::new_checked(fixtures::ARP_REQUEST).unwrap();
        let repr = EthernetRepr::parse(&frame).unwrap();
        assert_eq!(
            repr,
            EthernetRepr {
                src_addr: HOST,
                dst_addr: EthernetAddress::BROADCAST,
                vlan: None,
                ethertype: EtherType::ARP
            }
        );
        assert_eq!(frame.header_len(), 14);
        assert_eq!(frame.payload().len(), 28);
        assert!(frame.dst_addr().is_broadcast() && frame.dst_addr().is_multicast());
        assert!(frame.src_addr().is_unicast() && frame.src_addr().is_local());
    }

    #[test]
    fn parse_ipv4_unicast() {
        let frame = EthernetFrame::new_checked(fixtures::TCP_SYN).unwrap();
        let repr = EthernetRepr::parse(&frame).unwrap();
        assert_eq!(repr, EthernetRepr { src_addr: HOST, dst_addr: ROUTER, vlan: None, ethertype: EtherType::IPV4 });
        assert_eq!(frame.payload().len(), 60);
    }

    #[test]
    fn parse_vlan() {
        let frame = EthernetFrame::new_checked(fixtures::VLAN_UDP_DNS).unwrap();
        let repr = EthernetRepr::parse(&frame).unwrap();
        assert_eq!(repr.vlan, Some(VlanTag { pcp: 3, dei: false, vid: 100 }));
        assert_eq!(repr.ethertype, EtherType::IPV4);
        assert_eq!(frame.ethertype(), EtherType::VLAN);
        assert_eq!(frame.header_len(), 18);
        assert_eq!(frame.payload(), &fixtures::UDP_DNS[14..]);
        let mut buf = vec![0u8; fixtures::VLAN_UDP_DNS.len()];
        buf[18..].copy_from_slice(frame.payload());
        let mut out = EthernetFrame::new_unchecked(&mut buf[..]);
        repr.emit(&mut out).unwrap();
        assert_eq!(&buf[..], fixtures::VLAN_UDP_DNS);
    }

    #[test]
    fn emit_matches_fixture() {
        for (name, bytes) in fixtures::ALL {
            let frame = EthernetFrame::new_checked(*bytes).unwrap();
            let repr = EthernetRepr::parse(&frame).unwrap();
            let mut buf = vec![0u8; bytes.len()];
            buf[repr.header_len()..].copy_from_slice(frame.payload());
            repr.emit(&mut EthernetFrame::new_unchecked(&mut buf[..])).unwrap();
            assert_eq!(&buf[..], *bytes, "{name}");
        }
    }

    #[test]
    fn truncated_headers() {
        assert_eq!(EthernetFrame::new_checked(&[0u8; 13][..]).unwrap_err(), Error::Truncated);
        let mut tagged = [0u8; 17];
        tagged[12] = 0x81;
        assert_eq!(EthernetFrame::new_checked(&tagged[..]).unwrap_err(), Error::Truncated);
        assert!(EthernetFrame::new_checked(&[0u8; 14][..]).is_ok());
        for (_, bytes) in fixtures::ALL {
            for cut in 0..bytes.len() {
                if let Ok(f) = EthernetFrame::new_checked(&bytes[..cut]) {
                    let _ = EthernetRepr::parse(&f).unwrap();
                    let _ = f.payload();
                }
            }
        }
    }

    #[test]
    fn emit_errors() {
        let repr = EthernetRepr {
            src_addr: HOST,
            dst_addr: ROUTER,
            vlan: Some(VlanTag::default()),
            ethertype: EtherType::IPV4,
        };
        let mut short = [0u8; 17];
        assert_eq!(repr.emit(&mut EthernetFrame::new_unchecked(&mut short[..])), Err(Error::Truncated));
        let bad = EthernetRepr { vlan: None, ethertype: EtherType::VLAN, ..repr };
        assert_eq!(bad.emit(&mut EthernetFrame::new_unchecked(&mut short[..])), Err(Error::Malformed));
    }

    #[test]
    fn display() {
        assert_eq!(HOST.to_string(), "f6:09:5e:9e:f6:61");
        assert_eq!(EtherType::IPV4.to_string(), "IPv4");
        assert_eq!(EtherType(0x88cc).to_string(), "0x88cc");
        assert_eq!(EthernetAddress::from_bytes(&[1, 2, 3]), None);
        assert_eq!(EthernetAddress::from_bytes(HOST.as_bytes()), Some(HOST));
    }

    fn arb_addr() -> impl Strategy<Value = EthernetAddress> {
        any::<[u8; 6]>().prop_map(EthernetAddress)
    }

    fn arb_tag() -> impl Strategy<Value = VlanTag> {
        (0u8..8, any::<bool>(), 0u16..4096).prop_map(|(pcp, dei, vid)| VlanTag { pcp, dei, vid })
    }

    fn arb_repr() -> impl Strategy<Value = EthernetRepr> {
        (arb_addr(), arb_addr(), proptest::option::of(arb_tag()), any::<u16>()).prop_map(
            |(src_addr, dst_addr, vlan, et)| {
                let ethertype = if vlan.is_none() && et == 0x8100 { EtherType::IPV4 } else { EtherType(et) };
                EthernetRepr { src_addr, dst_addr, vlan, ethertype }
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn roundtrip(repr in arb_repr(), payload in proptest::collection::vec(any::<u8>(), 0..32)) {
            let mut buf = vec![0u8; repr.buffer_len(payload.len())];
            let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
            repr.emit(&mut frame).unwrap();
            frame.payload_mut().copy_from_slice(&payload);
            let frame = EthernetFrame::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(EthernetRepr::parse(&frame).unwrap(), repr);
            prop_assert_eq!(frame.payload(), &payload[..]);
        }

        #[test]
        fn tag_roundtrip(tci in any::<u16>()) {
            prop_assert_eq!(VlanTag::from_tci(tci).to_tci(), tci);
        }

        #[test]
        fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(frame) = EthernetFrame::new_checked(&bytes[..]) {
                let repr = EthernetRepr::parse(&frame).unwrap();
                let mut out = vec![0u8; repr.header_len()];
                repr.emit(&mut EthernetFrame::new_unchecked(&mut out[..])).unwrap();
                // Every header bit is carried by the repr: re-emission is exact.
                prop_assert_eq!(&out[..], &bytes[..repr.header_len()]);
            }
        }
    }
}
