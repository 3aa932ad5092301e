//! ICMPv4 (RFC 792): type, code, checksum, the four "rest of header" bytes and the
//! data. Echo messages and the two errors a socket layer reacts to (destination
//! unreachable, including fragmentation-needed with its next-hop MTU, and time
//! exceeded) have their own repr variants with the quoted IPv4 header parsed; every
//! other message is kept generic.

use crate::bytes::{clamped, clamped_mut, get_u16, set_u16};
use crate::checksum::{self, ChecksumMode};
use crate::ipv4::{self, Ipv4Packet, Ipv4Repr};
use crate::{Error, Result};
use core::fmt;
use core::net::Ipv4Addr;

/// The ICMP message type; any value is representable.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct IcmpType(pub u8);

impl IcmpType {
    /// Echo reply (ping answer).
    pub const ECHO_REPLY: IcmpType = IcmpType(0);
    /// Destination unreachable (codes in [`dst_unreachable`]).
    pub const DST_UNREACHABLE: IcmpType = IcmpType(3);
    /// Source quench (deprecated).
    pub const SOURCE_QUENCH: IcmpType = IcmpType(4);
    /// Redirect.
    pub const REDIRECT: IcmpType = IcmpType(5);
    /// Echo request (ping).
    pub const ECHO_REQUEST: IcmpType = IcmpType(8);
    /// Router advertisement.
    pub const ROUTER_ADVERT: IcmpType = IcmpType(9);
    /// Router solicitation.
    pub const ROUTER_SOLICIT: IcmpType = IcmpType(10);
    /// Time exceeded (codes in [`time_exceeded`]).
    pub const TIME_EXCEEDED: IcmpType = IcmpType(11);
    /// Parameter problem.
    pub const PARAM_PROBLEM: IcmpType = IcmpType(12);
    /// Timestamp request.
    pub const TIMESTAMP: IcmpType = IcmpType(13);
    /// Timestamp reply.
    pub const TIMESTAMP_REPLY: IcmpType = IcmpType(14);
}

impl fmt::Debug for IcmpType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match *self {
            IcmpType::ECHO_REPLY => "EchoReply",
            IcmpType::DST_UNREACHABLE => "DstUnreachable",
            IcmpType::SOURCE_QUENCH => "SourceQuench",
            IcmpType::REDIRECT => "Redirect",
            IcmpType::ECHO_REQUEST => "EchoRequest",
            IcmpType::ROUTER_ADVERT => "RouterAdvert",
            IcmpType::ROUTER_SOLICIT => "RouterSolicit",
            IcmpType::TIME_EXCEEDED => "TimeExceeded",
            IcmpType::PARAM_PROBLEM => "ParamProblem",
            IcmpType::TIMESTAMP => "Timestamp",
            IcmpType::TIMESTAMP_REPLY => "TimestampReply",
            IcmpType(other) => return write!(f, "Type({other})"),
        };
        f.write_str(name)
    }
}

/// Codes of destination-unreachable messages (RFC 792, RFC 1122, RFC 1812).
pub mod dst_unreachable {
    /// Network unreachable.
    pub const NET: u8 = 0;
    /// Host unreachable.
    pub const HOST: u8 = 1;
    /// Protocol unreachable.
    pub const PROTOCOL: u8 = 2;
    /// Port unreachable (no socket: the UDP analogue of a TCP reset).
    pub const PORT: u8 = 3;
    /// Fragmentation needed and DF set; the message carries the next-hop MTU.
    pub const FRAG_NEEDED: u8 = 4;
    /// Source route failed.
    pub const SOURCE_ROUTE_FAILED: u8 = 5;
    /// Communication administratively prohibited.
    pub const ADMIN_PROHIBITED: u8 = 13;
}

/// Codes of time-exceeded messages.
pub mod time_exceeded {
    /// TTL reached zero in transit.
    pub const TTL: u8 = 0;
    /// Fragment reassembly timed out.
    pub const REASSEMBLY: u8 = 1;
}

mod field {
    use crate::Field;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const REST: Field = 4..8;
    pub const ECHO_IDENT: Field = 4..6;
    pub const ECHO_SEQNO: Field = 6..8;
    pub const UNUSED: Field = 4..6;
    pub const MTU: Field = 6..8;
    pub const POINTER: usize = 4;
    pub const GATEWAY: Field = 4..8;
    pub const DATA: usize = 8;
}

/// Length of the ICMP header (type, code, checksum, rest of header).
pub const HEADER_LEN: usize = 8;

/// A read/write view of an ICMP message in a byte buffer. The message is the whole
/// buffer (the IPv4 payload): the checksum covers all of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcmpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    /// Wraps a buffer without checking it; accessors may panic if it is too short.
    pub const fn new_unchecked(buffer: T) -> IcmpPacket<T> {
        IcmpPacket { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len), so no accessor can panic.
    pub fn new_checked(buffer: T) -> Result<IcmpPacket<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Ensures the buffer holds the 8-byte header.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Gives back the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Message type.
    pub fn msg_type(&self) -> IcmpType {
        IcmpType(self.buffer.as_ref()[field::TYPE])
    }

    /// Message code.
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// The checksum field.
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The four bytes after the checksum, whose meaning depends on the type.
    pub fn rest_of_header(&self) -> [u8; 4] {
        let r = &self.buffer.as_ref()[field::REST];
        [r[0], r[1], r[2], r[3]]
    }

    /// Echo identifier (echo request/reply).
    pub fn echo_ident(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::ECHO_IDENT)
    }

    /// Echo sequence number (echo request/reply).
    pub fn echo_seq_no(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::ECHO_SEQNO)
    }

    /// Next-hop MTU (destination unreachable, fragmentation needed; RFC 1191).
    pub fn next_hop_mtu(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::MTU)
    }

    /// Pointer to the offending octet (parameter problem).
    pub fn pointer(&self) -> u8 {
        self.buffer.as_ref()[field::POINTER]
    }

    /// Gateway address (redirect).
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(crate::bytes::get_u32(self.buffer.as_ref(), field::GATEWAY))
    }

    /// Everything after the 8-byte header: echo data, or the quoted datagram.
    pub fn data(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        clamped(data, field::DATA, data.len())
    }

    /// Whether the checksum over the whole message verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::is_valid(checksum::data(self.buffer.as_ref()))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IcmpPacket<T> {
    /// Sets the message type.
    pub fn set_msg_type(&mut self, value: IcmpType) {
        self.buffer.as_mut()[field::TYPE] = value.0;
    }

    /// Sets the message code.
    pub fn set_msg_code(&mut self, value: u8) {
        self.buffer.as_mut()[field::CODE] = value;
    }

    /// Sets the checksum field as is (see [`fill_checksum`](Self::fill_checksum)).
    pub fn set_checksum(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Sets the four rest-of-header bytes.
    pub fn set_rest_of_header(&mut self, value: [u8; 4]) {
        self.buffer.as_mut()[field::REST].copy_from_slice(&value);
    }

    /// Sets the echo identifier.
    pub fn set_echo_ident(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::ECHO_IDENT, value);
    }

    /// Sets the echo sequence number.
    pub fn set_echo_seq_no(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::ECHO_SEQNO, value);
    }

    /// Sets the next-hop MTU and clears the unused bytes before it.
    pub fn set_next_hop_mtu(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::UNUSED, 0);
        set_u16(self.buffer.as_mut(), field::MTU, value);
    }

    /// Computes and stores the checksum over the whole buffer.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::data(self.buffer.as_ref());
        self.set_checksum(checksum::finish(sum));
    }

    /// The data after the header, writable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        let data = self.buffer.as_mut();
        let end = data.len();
        clamped_mut(data, field::DATA, end)
    }
}

/// An ICMP message without the buffer; data is borrowed from the parsed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IcmpRepr<'a> {
    /// Echo request (type 8, code 0).
    EchoRequest {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Echo data.
        data: &'a [u8],
    },
    /// Echo reply (type 0, code 0).
    EchoReply {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Echo data.
        data: &'a [u8],
    },
    /// Destination unreachable (type 3).
    DstUnreachable {
        /// The reason, see [`dst_unreachable`].
        code: u8,
        /// Next-hop MTU for [`dst_unreachable::FRAG_NEEDED`], zero otherwise.
        next_hop_mtu: u16,
        /// The quoted IPv4 header of the datagram that caused the error (options
        /// dropped; `payload_len` is the original datagram's, which may exceed `data`).
        header: Ipv4Repr,
        /// What follows the quoted header: at least the first 8 bytes of the original
        /// payload (ports) in a conforming message, often more.
        data: &'a [u8],
    },
    /// Time exceeded (type 11).
    TimeExceeded {
        /// The reason, see [`time_exceeded`].
        code: u8,
        /// The quoted IPv4 header, as for `DstUnreachable`.
        header: Ipv4Repr,
        /// What follows the quoted header.
        data: &'a [u8],
    },
    /// Any other message, kept as its raw fields. Emitting this with the type of one
    /// of the variants above produces a message that parses as that variant.
    Other {
        /// Message type.
        msg_type: IcmpType,
        /// Message code.
        code: u8,
        /// The four bytes after the checksum.
        rest_of_header: [u8; 4],
        /// Everything after the header.
        data: &'a [u8],
    },
}

impl<'a> IcmpRepr<'a> {
    /// Reads a message; the checksum over the whole buffer must verify unless
    /// `checksum` is `Ignore`. Errors whose quoted IPv4 header is truncated or not
    /// IPv4 fail (a receiver cannot match them to a socket anyway).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &IcmpPacket<&'a T>, checksum: ChecksumMode) -> Result<IcmpRepr<'a>> {
        packet.check_len()?;
        if checksum == ChecksumMode::Verify && !packet.verify_checksum() {
            return Err(Error::Checksum);
        }
        let buffer: &'a [u8] = packet.buffer.as_ref();
        let data = &buffer[field::DATA..];
        let quoted = || -> Result<(Ipv4Repr, &'a [u8])> {
            let ip = Ipv4Packet::new_unchecked(data);
            let header = Ipv4Repr::parse_quoted(&ip)?;
            Ok((header, &data[usize::from(ip.header_len())..]))
        };
        let code = packet.msg_code();
        Ok(match (packet.msg_type(), code) {
            (IcmpType::ECHO_REQUEST, 0) => {
                IcmpRepr::EchoRequest { ident: packet.echo_ident(), seq_no: packet.echo_seq_no(), data }
            }
            (IcmpType::ECHO_REPLY, 0) => {
                IcmpRepr::EchoReply { ident: packet.echo_ident(), seq_no: packet.echo_seq_no(), data }
            }
            (IcmpType::DST_UNREACHABLE, _) => {
                let (header, data) = quoted()?;
                IcmpRepr::DstUnreachable { code, next_hop_mtu: packet.next_hop_mtu(), header, data }
            }
            (IcmpType::TIME_EXCEEDED, _) => {
                let (header, data) = quoted()?;
                IcmpRepr::TimeExceeded { code, header, data }
            }
            (msg_type, code) => IcmpRepr::Other { msg_type, code, rest_of_header: packet.rest_of_header(), data },
        })
    }

    /// Length of the message this repr emits.
    pub fn buffer_len(&self) -> usize {
        match self {
            IcmpRepr::EchoRequest { data, .. } | IcmpRepr::EchoReply { data, .. } | IcmpRepr::Other { data, .. } => {
                HEADER_LEN + data.len()
            }
            IcmpRepr::DstUnreachable { data, .. } | IcmpRepr::TimeExceeded { data, .. } => {
                HEADER_LEN + ipv4::HEADER_LEN + data.len()
            }
        }
    }

    /// Writes the whole message (header, quoted header, data) and its checksum into
    /// the first [`buffer_len`](Self::buffer_len) bytes of the buffer.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut IcmpPacket<T>) -> Result<()> {
        let len = self.buffer_len();
        let buffer = packet.buffer.as_mut();
        if buffer.len() < len {
            return Err(Error::Truncated);
        }
        let mut out = IcmpPacket::new_unchecked(&mut buffer[..len]);
        match *self {
            IcmpRepr::EchoRequest { ident, seq_no, data } | IcmpRepr::EchoReply { ident, seq_no, data } => {
                let msg_type = if matches!(self, IcmpRepr::EchoRequest { .. }) {
                    IcmpType::ECHO_REQUEST
                } else {
                    IcmpType::ECHO_REPLY
                };
                out.set_msg_type(msg_type);
                out.set_msg_code(0);
                out.set_echo_ident(ident);
                out.set_echo_seq_no(seq_no);
                out.data_mut().copy_from_slice(data);
            }
            IcmpRepr::DstUnreachable { code, next_hop_mtu, ref header, data } => {
                out.set_msg_type(IcmpType::DST_UNREACHABLE);
                out.set_msg_code(code);
                out.set_next_hop_mtu(next_hop_mtu);
                emit_quote(&mut out, header, data)?;
            }
            IcmpRepr::TimeExceeded { code, ref header, data } => {
                out.set_msg_type(IcmpType::TIME_EXCEEDED);
                out.set_msg_code(code);
                out.set_rest_of_header([0; 4]);
                emit_quote(&mut out, header, data)?;
            }
            IcmpRepr::Other { msg_type, code, rest_of_header, data } => {
                out.set_msg_type(msg_type);
                out.set_msg_code(code);
                out.set_rest_of_header(rest_of_header);
                out.data_mut().copy_from_slice(data);
            }
        }
        out.fill_checksum();
        Ok(())
    }
}

fn emit_quote(out: &mut IcmpPacket<&mut [u8]>, header: &Ipv4Repr, data: &[u8]) -> Result<()> {
    let quote = out.data_mut();
    header.emit(&mut Ipv4Packet::new_unchecked(&mut quote[..]))?;
    quote[ipv4::HEADER_LEN..].copy_from_slice(data);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use crate::ipv4::IpProtocol;
    use proptest::prelude::*;
    use std::{format, vec};

    const HOST: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
    const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 2);

    /// The ICMP message inside an Ethernet/IPv4 fixture.
    fn icmp(frame: &[u8]) -> &[u8] {
        let ip = Ipv4Packet::new_checked(&frame[14..]).unwrap();
        let hl = usize::from(ip.header_len());
        &frame[14 + hl..14 + usize::from(ip.total_len())]
    }

    fn reemit(bytes: &[u8], repr: &IcmpRepr) {
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut IcmpPacket::new_unchecked(&mut buf[..])).unwrap();
        assert_eq!(&buf[..], bytes);
    }

    #[test]
    fn echo_request_and_reply() {
        let req = icmp(fixtures::ICMP_ECHO_REQUEST);
        let packet = IcmpPacket::new_checked(req).unwrap();
        let repr = IcmpRepr::parse(&packet, ChecksumMode::Verify).unwrap();
        assert_eq!(repr, IcmpRepr::EchoRequest { ident: 0x1c2d, seq_no: 1, data: &req[8..] });
        assert_eq!(req[8..].len(), 56);
        reemit(req, &repr);

        let rep = icmp(fixtures::ICMP_ECHO_REPLY);
        let packet = IcmpPacket::new_checked(rep).unwrap();
        let reply = IcmpRepr::parse(&packet, ChecksumMode::Verify).unwrap();
        assert_eq!(reply, IcmpRepr::EchoReply { ident: 0x1c2d, seq_no: 1, data: &req[8..] });
        reemit(rep, &reply);
    }

    #[test]
    fn port_unreachable() {
        let msg = icmp(fixtures::ICMP_PORT_UNREACH);
        let packet = IcmpPacket::new_checked(msg).unwrap();
        let repr = IcmpRepr::parse(&packet, ChecksumMode::Verify).unwrap();
        let IcmpRepr::DstUnreachable { code, next_hop_mtu, header, data } = repr else { panic!("{repr:?}") };
        assert_eq!((code, next_hop_mtu), (dst_unreachable::PORT, 0));
        assert_eq!(header.src_addr, HOST);
        assert_eq!(header.dst_addr, SERVER);
        assert_eq!(header.protocol, IpProtocol::UDP);
        assert_eq!(header.payload_len, 22);
        assert_eq!(data, &fixtures::UDP_CLOSED[34..]);
        assert_eq!(&data[8..], b"are you there?");
        // The quoted header was routed (TTL 63 at the server), so emit rebuilds it with
        // the same fields; the whole message re-emits byte for byte.
        reemit(msg, &repr);
    }

    #[test]
    fn time_exceeded_from_router() {
        let msg = icmp(fixtures::ICMP_TIME_EXCEEDED);
        let packet = IcmpPacket::new_checked(msg).unwrap();
        let repr = IcmpRepr::parse(&packet, ChecksumMode::Verify).unwrap();
        let IcmpRepr::TimeExceeded { code, header, data } = repr else { panic!("{repr:?}") };
        assert_eq!(code, time_exceeded::TTL);
        assert_eq!(header.ttl, 1);
        assert_eq!(header.protocol, IpProtocol::UDP);
        assert_eq!(&data[8..], b"traceroute probe");
        reemit(msg, &repr);
    }

    #[test]
    fn frag_needed_carries_mtu() {
        let msg = icmp(fixtures::ICMP_FRAG_NEEDED);
        let packet = IcmpPacket::new_checked(msg).unwrap();
        assert_eq!(packet.next_hop_mtu(), 1000);
        let repr = IcmpRepr::parse(&packet, ChecksumMode::Verify).unwrap();
        let IcmpRepr::DstUnreachable { code, next_hop_mtu, header, data } = repr else { panic!("{repr:?}") };
        assert_eq!((code, next_hop_mtu), (dst_unreachable::FRAG_NEEDED, 1000));
        assert!(header.dont_frag);
        // The router quoted 548 bytes of a 1428-byte datagram.
        assert_eq!(header.payload_len, 1408);
        assert_eq!(data.len(), 548 - 20);
        reemit(msg, &repr);
    }

    #[test]
    fn quote_longer_than_message() {
        let msg = icmp(fixtures::ICMP_PORT_UNREACH_REASSEMBLED);
        let packet = IcmpPacket::new_checked(msg).unwrap();
        let repr = IcmpRepr::parse(&packet, ChecksumMode::Verify).unwrap();
        let IcmpRepr::DstUnreachable { header, data, .. } = repr else { panic!("{repr:?}") };
        assert_eq!(header.payload_len, 3008);
        assert_eq!(u16::from_be_bytes([data[2], data[3]]), 5354);
        reemit(msg, &repr);
    }

    #[test]
    fn bad_checksum_and_bad_quote() {
        let mut msg = [0u8; 64];
        msg.copy_from_slice(icmp(fixtures::ICMP_ECHO_REQUEST));
        msg[10] ^= 1;
        let packet = IcmpPacket::new_checked(&msg[..]).unwrap();
        assert_eq!(IcmpRepr::parse(&packet, ChecksumMode::Verify), Err(Error::Checksum));
        assert!(IcmpRepr::parse(&packet, ChecksumMode::Ignore).is_ok());

        let mut err = [0u8; 20];
        err[0] = 3;
        err[8] = 0x45; // quoted header cut at 12 bytes
        let packet = IcmpPacket::new_checked(&err[..]).unwrap();
        assert_eq!(IcmpRepr::parse(&packet, ChecksumMode::Ignore), Err(Error::Truncated));
        err[0] = 11;
        let packet = IcmpPacket::new_checked(&err[..]).unwrap();
        assert_eq!(IcmpRepr::parse(&packet, ChecksumMode::Ignore), Err(Error::Truncated));
        assert_eq!(IcmpPacket::new_checked(&err[..7]).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn other_messages() {
        // A redirect: type 5, code 1, gateway 10.77.0.253, quoting nothing.
        let mut msg = [5u8, 1, 0, 0, 10, 77, 0, 253];
        IcmpPacket::new_unchecked(&mut msg[..]).fill_checksum();
        let packet = IcmpPacket::new_checked(&msg[..]).unwrap();
        assert_eq!(packet.gateway(), Ipv4Addr::new(10, 77, 0, 253));
        assert_eq!(packet.pointer(), 10);
        let repr = IcmpRepr::parse(&packet, ChecksumMode::Verify).unwrap();
        assert_eq!(
            repr,
            IcmpRepr::Other { msg_type: IcmpType::REDIRECT, code: 1, rest_of_header: [10, 77, 0, 253], data: &[] }
        );
        reemit(&msg, &repr);
        assert_eq!(format!("{:?}", IcmpType(200)), "Type(200)");
        assert_eq!(format!("{:?}", IcmpType::PARAM_PROBLEM), "ParamProblem");
    }

    #[test]
    fn emit_errors() {
        let repr = IcmpRepr::EchoRequest { ident: 1, seq_no: 2, data: b"abcd" };
        let mut buf = [0u8; 11];
        assert_eq!(repr.emit(&mut IcmpPacket::new_unchecked(&mut buf[..])), Err(Error::Truncated));
    }

    fn arb_ipv4() -> impl Strategy<Value = Ipv4Repr> {
        crate::ipv4::tests::arb_repr()
    }

    fn arb_repr(data: &[u8]) -> impl Strategy<Value = IcmpRepr<'_>> {
        let d = data;
        prop_oneof![
            (any::<u16>(), any::<u16>(), 0..=d.len())
                .prop_map(move |(ident, seq_no, n)| { IcmpRepr::EchoRequest { ident, seq_no, data: &d[..n] } }),
            (any::<u16>(), any::<u16>(), 0..=d.len())
                .prop_map(move |(ident, seq_no, n)| { IcmpRepr::EchoReply { ident, seq_no, data: &d[..n] } }),
            (any::<u8>(), any::<u16>(), arb_ipv4(), 0..=d.len()).prop_map(move |(code, next_hop_mtu, header, n)| {
                IcmpRepr::DstUnreachable { code, next_hop_mtu, header, data: &d[..n] }
            }),
            (any::<u8>(), arb_ipv4(), 0..=d.len())
                .prop_map(move |(code, header, n)| { IcmpRepr::TimeExceeded { code, header, data: &d[..n] } }),
            (any::<u8>(), any::<u8>(), any::<[u8; 4]>(), 0..=d.len()).prop_map(move |(t, code, rest, n)| {
                // Types with a variant of their own would parse as that variant.
                let t = if matches!(t, 0 | 3 | 8 | 11) { 13 } else { t };
                IcmpRepr::Other { msg_type: IcmpType(t), code, rest_of_header: rest, data: &d[..n] }
            }),
        ]
    }

    const DATA: [u8; 64] = {
        let mut d = [0u8; 64];
        let mut i = 0;
        while i < 64 {
            d[i] = (i as u8).wrapping_mul(37);
            i += 1;
        }
        d
    };

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn roundtrip(repr in arb_repr(&DATA)) {
            let mut buf = vec![0u8; repr.buffer_len()];
            repr.emit(&mut IcmpPacket::new_unchecked(&mut buf[..])).unwrap();
            let packet = IcmpPacket::new_checked(&buf[..]).unwrap();
            prop_assert!(packet.verify_checksum());
            prop_assert_eq!(IcmpRepr::parse(&packet, ChecksumMode::Verify).unwrap(), repr);
        }

        #[test]
        fn arbitrary_bytes(mut bytes in proptest::collection::vec(any::<u8>(), 0..80), kind in 0u8..4) {
            if bytes.len() >= 28 {
                match kind {
                    0 => { bytes[0] = 8; bytes[1] = 0; }
                    1 => { bytes[0] = 3; bytes[8] = 0x45; }
                    2 => { bytes[0] = 11; bytes[8] = 0x45; bytes[10] = 0; bytes[11] = 20; }
                    _ => {}
                }
            }
            if let Ok(packet) = IcmpPacket::new_checked(&bytes[..]) {
                let _ = (packet.gateway(), packet.pointer(), packet.rest_of_header(), packet.data());
                if let Ok(repr) = IcmpRepr::parse(&packet, ChecksumMode::Ignore) {
                    let mut out = vec![0u8; repr.buffer_len()];
                    repr.emit(&mut IcmpPacket::new_unchecked(&mut out[..])).unwrap();
                    let again = IcmpPacket::new_checked(&out[..]).unwrap();
                    prop_assert_eq!(IcmpRepr::parse(&again, ChecksumMode::Verify).unwrap(), repr);
                    if matches!(repr, IcmpRepr::EchoRequest { .. } | IcmpRepr::EchoReply { .. } | IcmpRepr::Other { .. }) {
                        // Canonical apart from the checksum.
                        prop_assert_eq!(&out[..2], &bytes[..2]);
                        prop_assert_eq!(&out[4..], &bytes[4..]);
                    }
                }
            }
        }
    }
}
