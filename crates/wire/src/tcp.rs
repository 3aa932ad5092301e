//! TCP segments (RFC 9293). The segment is the whole buffer (the IPv4 payload): TCP has
//! no length field, so the checksum and the payload run to the end of the buffer.
//! Options are handled in [`crate::tcp_options`].

use crate::bytes::{clamped, clamped_mut, get_u16, get_u32, set_u16, set_u32};
use crate::checksum::{self, ChecksumMode};
use crate::ipv4::IpProtocol;
use crate::tcp_options::{self, TcpOptions};
use crate::{Error, Result};
use core::fmt;
use core::net::Ipv4Addr;
use core::ops::{BitAnd, BitOr, BitOrAssign, Not};

/// The nine TCP control bits, as a small set.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(u16);

impl TcpFlags {
    /// No more data from sender.
    pub const FIN: TcpFlags = TcpFlags(0x001);
    /// Synchronise sequence numbers.
    pub const SYN: TcpFlags = TcpFlags(0x002);
    /// Reset the connection.
    pub const RST: TcpFlags = TcpFlags(0x004);
    /// Push.
    pub const PSH: TcpFlags = TcpFlags(0x008);
    /// Acknowledgment field is significant.
    pub const ACK: TcpFlags = TcpFlags(0x010);
    /// Urgent pointer field is significant.
    pub const URG: TcpFlags = TcpFlags(0x020);
    /// ECN echo.
    pub const ECE: TcpFlags = TcpFlags(0x040);
    /// Congestion window reduced.
    pub const CWR: TcpFlags = TcpFlags(0x080);
    /// ECN nonce (historic, RFC 3540).
    pub const NS: TcpFlags = TcpFlags(0x100);
    const ALL: u16 = 0x1FF;

    /// The empty set.
    pub const fn empty() -> TcpFlags {
        TcpFlags(0)
    }

    /// The raw bits (bit 0 = FIN ... bit 8 = NS).
    pub const fn bits(self) -> u16 {
        self.0
    }

    /// Builds a set from raw bits, dropping any beyond the nine defined ones.
    pub const fn from_bits_truncate(bits: u16) -> TcpFlags {
        TcpFlags(bits & Self::ALL)
    }

    /// Whether every flag in `other` is set.
    pub const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any flag in `other` is set.
    pub const fn intersects(self, other: TcpFlags) -> bool {
        self.0 & other.0 != 0
    }

    /// Whether no flag is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Sets the flags in `other`.
    pub fn insert(&mut self, other: TcpFlags) {
        self.0 |= other.0;
    }

    /// Clears the flags in `other`.
    pub fn remove(&mut self, other: TcpFlags) {
        self.0 &= !other.0;
    }

    /// This set without the flags in `other`.
    pub const fn without(self, other: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 & !other.0)
    }
}

impl BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

impl BitOrAssign for TcpFlags {
    fn bitor_assign(&mut self, rhs: TcpFlags) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for TcpFlags {
    type Output = TcpFlags;
    fn bitand(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 & rhs.0)
    }
}

impl Not for TcpFlags {
    type Output = TcpFlags;
    fn not(self) -> TcpFlags {
        TcpFlags(!self.0 & Self::ALL)
    }
}

impl fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 9] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR", "NS"];
        if self.is_empty() {
            return f.write_str("(none)");
        }
        let mut first = true;
        for (bit, name) in NAMES.iter().enumerate() {
            if self.0 & (1 << bit) != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

impl fmt::Display for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

mod field {
    use crate::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const SEQ_NUM: Field = 4..8;
    pub const ACK_NUM: Field = 8..12;
    /// Data offset (4 bits), reserved (3 bits), NS, then CWR..FIN.
    pub const FLAGS: Field = 12..14;
    pub const WIN_SIZE: Field = 14..16;
    pub const CHECKSUM: Field = 16..18;
    pub const URGENT: Field = 18..20;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;
/// Length of the longest header (data offset 15).
pub const MAX_HEADER_LEN: usize = 60;

/// A read/write view of a TCP segment in a byte buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpSegment<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpSegment<T> {
    /// Wraps a buffer without checking it; accessors may panic if it is too short.
    pub const fn new_unchecked(buffer: T) -> TcpSegment<T> {
        TcpSegment { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len), so no accessor can panic.
    pub fn new_checked(buffer: T) -> Result<TcpSegment<T>> {
        let segment = Self::new_unchecked(buffer);
        segment.check_len()?;
        Ok(segment)
    }

    /// Ensures the buffer holds the fixed header, data offset >= 5, and the whole
    /// header with its options.
    pub fn check_len(&self) -> Result<()> {
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

    /// Source port.
    pub fn src_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// Sequence number.
    pub fn seq_number(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::SEQ_NUM)
    }

    /// Acknowledgment number (meaningful only with ACK set).
    pub fn ack_number(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::ACK_NUM)
    }

    fn raw_flags(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::FLAGS)
    }

    /// Header length in bytes (data offset * 4).
    pub fn header_len(&self) -> u8 {
        ((self.raw_flags() >> 12) as u8) * 4
    }

    /// The three reserved bits between data offset and NS (should be zero).
    pub fn reserved_bits(&self) -> u8 {
        ((self.raw_flags() >> 9) & 0x7) as u8
    }

    /// The control bits.
    pub fn flags(&self) -> TcpFlags {
        TcpFlags::from_bits_truncate(self.raw_flags())
    }

    /// Window field (unscaled).
    pub fn window_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::WIN_SIZE)
    }

    /// The checksum field.
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Urgent pointer (meaningful only with URG set).
    pub fn urgent_at(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::URGENT)
    }

    /// The option bytes (between byte 20 and the header length).
    pub fn options(&self) -> &[u8] {
        clamped(self.buffer.as_ref(), HEADER_LEN, usize::from(self.header_len()))
    }

    /// The payload: everything after the header.
    pub fn payload(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        clamped(data, usize::from(self.header_len()), data.len())
    }

    /// Sequence space the segment occupies: payload length plus one each for SYN and FIN.
    pub fn segment_len(&self) -> usize {
        let flags = self.flags();
        self.payload().len() + usize::from(flags.contains(TcpFlags::SYN)) + usize::from(flags.contains(TcpFlags::FIN))
    }

    fn compute(&self, src: Ipv4Addr, dst: Ipv4Addr) -> u16 {
        let data = self.buffer.as_ref();
        // A segment longer than 65535 bytes cannot be carried by IPv4; its pseudo-header
        // length is truncated like the wire field would be and it will not verify.
        checksum::combine(&[
            checksum::pseudo_header(src, dst, IpProtocol::TCP, data.len() as u16),
            checksum::data(data),
        ])
    }

    /// Whether the checksum over pseudo-header, header and payload verifies.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        self.buffer.as_ref().len() <= 0xFFFF && checksum::is_valid(self.compute(src, dst))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpSegment<T> {
    /// Sets the source port.
    pub fn set_src_port(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::SRC_PORT, value);
    }

    /// Sets the destination port.
    pub fn set_dst_port(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::DST_PORT, value);
    }

    /// Sets the sequence number.
    pub fn set_seq_number(&mut self, value: u32) {
        set_u32(self.buffer.as_mut(), field::SEQ_NUM, value);
    }

    /// Sets the acknowledgment number.
    pub fn set_ack_number(&mut self, value: u32) {
        set_u32(self.buffer.as_mut(), field::ACK_NUM, value);
    }

    /// Sets the header length in bytes (rounded down to a multiple of 4), keeping the
    /// flags.
    pub fn set_header_len(&mut self, value: u8) {
        let raw = (self.raw_flags() & 0x0FFF) | (u16::from((value / 4) & 0x0F) << 12);
        set_u16(self.buffer.as_mut(), field::FLAGS, raw);
    }

    /// Sets the control bits, keeping the header length and clearing the reserved bits.
    pub fn set_flags(&mut self, flags: TcpFlags) {
        let raw = (self.raw_flags() & 0xF000) | flags.bits();
        set_u16(self.buffer.as_mut(), field::FLAGS, raw);
    }

    /// Sets the window field.
    pub fn set_window_len(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::WIN_SIZE, value);
    }

    /// Sets the checksum field as is (see [`fill_checksum`](Self::fill_checksum)).
    pub fn set_checksum(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Sets the urgent pointer.
    pub fn set_urgent_at(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::URGENT, value);
    }

    /// Computes and stores the checksum over pseudo-header and the whole buffer.
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let sum = self.compute(src, dst);
        self.set_checksum(checksum::finish(sum));
    }

    /// The option bytes, writable.
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.header_len());
        clamped_mut(self.buffer.as_mut(), HEADER_LEN, end)
    }

    /// The payload, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = usize::from(self.header_len());
        let data = self.buffer.as_mut();
        let end = data.len();
        clamped_mut(data, start, end)
    }
}

/// The fields of a TCP header, without the buffer.
///
/// The ACK flag is carried by `ack` alone: parse strips it from `flags` and sets `ack`,
/// emit sets it exactly when `ack` is `Some` (an ACK bit in `flags` is ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TcpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number, present iff the ACK flag is set.
    pub ack: Option<u32>,
    /// Every control bit except ACK.
    pub flags: TcpFlags,
    /// Window field (unscaled).
    pub window: u16,
    /// Urgent pointer (sent as is; meaningful only with URG).
    pub urgent: u16,
    /// Options.
    pub options: TcpOptions,
    /// Payload length.
    pub payload_len: usize,
}

impl TcpRepr {
    /// Reads a segment; the checksum must verify against the pseudo-header of
    /// `src`/`dst` unless `checksum` is `Ignore`. Options are parsed leniently (see
    /// [`crate::tcp_options`]); reserved bits are ignored.
    pub fn parse<T: AsRef<[u8]>>(
        segment: &TcpSegment<T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        checksum: ChecksumMode,
    ) -> Result<TcpRepr> {
        segment.check_len()?;
        if checksum == ChecksumMode::Verify && !segment.verify_checksum(src, dst) {
            return Err(Error::Checksum);
        }
        let flags = segment.flags();
        Ok(TcpRepr {
            src_port: segment.src_port(),
            dst_port: segment.dst_port(),
            seq: segment.seq_number(),
            ack: flags.contains(TcpFlags::ACK).then(|| segment.ack_number()),
            flags: flags.without(TcpFlags::ACK),
            window: segment.window_len(),
            urgent: segment.urgent_at(),
            options: TcpOptions::parse(segment.options()),
            payload_len: segment.payload().len(),
        })
    }

    /// Header length including the encoded options.
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options.encoded_len()
    }

    /// Header plus payload: the length of the segment emit produces.
    pub fn buffer_len(&self) -> usize {
        self.header_len().saturating_add(self.payload_len)
    }

    /// Sequence space used: payload plus one each for SYN and FIN.
    pub fn segment_len(&self) -> usize {
        self.payload_len
            .saturating_add(usize::from(self.flags.contains(TcpFlags::SYN)))
            .saturating_add(usize::from(self.flags.contains(TcpFlags::FIN)))
    }

    /// Writes header and options and the checksum over the first
    /// [`buffer_len`](Self::buffer_len) bytes; the payload must already be in place at
    /// [`header_len`](Self::header_len). Fails with [`Error::Malformed`] if the options
    /// need more than 40 bytes or the segment exceeds 65535 bytes, and with
    /// [`Error::Truncated`] if the buffer is shorter than the segment.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        segment: &mut TcpSegment<T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
    ) -> Result<()> {
        self.emit_header(segment)?.fill_checksum(src, dst);
        Ok(())
    }

    /// Writes the header into the segment's first `buffer_len()` bytes (checked), returning a
    /// view of them for the checksum.
    fn emit_header<'a, T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        segment: &'a mut TcpSegment<T>,
    ) -> Result<TcpSegment<&'a mut [u8]>> {
        if self.header_len() > MAX_HEADER_LEN || self.buffer_len() > 0xFFFF {
            return Err(Error::Malformed);
        }
        let total = self.buffer_len();
        let buffer = segment.buffer.as_mut();
        if buffer.len() < total {
            return Err(Error::Truncated);
        }
        let mut out = TcpSegment::new_unchecked(&mut buffer[..total]);
        self.write_header(&mut out)?;
        Ok(out)
    }

    /// As [`emit`](Self::emit), but the checksum field gets only the folded pseudo-header sum
    /// over the segment's length, uncomplemented: what a device that finishes the checksum
    /// (Linux's CHECKSUM_PARTIAL, `__tcp_v4_send_check`) or a GSO engine that cuts the segment
    /// expects. Saves summing a payload the device sums anyway.
    pub fn emit_partial<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        segment: &mut TcpSegment<T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
    ) -> Result<()> {
        let sum = checksum::pseudo_header(src, dst, IpProtocol::TCP, self.buffer_len() as u16);
        self.emit_header(segment)?.set_checksum(sum);
        Ok(())
    }

    fn write_header(&self, out: &mut TcpSegment<&mut [u8]>) -> Result<()> {
        out.set_src_port(self.src_port);
        out.set_dst_port(self.dst_port);
        out.set_seq_number(self.seq);
        out.set_ack_number(self.ack.unwrap_or(0));
        out.set_header_len(self.header_len() as u8);
        let mut flags = self.flags.without(TcpFlags::ACK);
        if self.ack.is_some() {
            flags |= TcpFlags::ACK;
        }
        out.set_flags(flags);
        out.set_window_len(self.window);
        out.set_urgent_at(self.urgent);
        self.options.emit(out.options_mut())?;
        Ok(())
    }
}

/// Re-export so callers of this module find the option limits next to the segment.
pub use tcp_options::{MAX_LEN as MAX_OPTIONS_LEN, MAX_SACK_BLOCKS};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use crate::ipv4::Ipv4Packet;
    use proptest::prelude::*;
    use std::{format, vec};

    const HOST: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
    const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 2);

    /// The TCP segment and IPv4 addresses inside an Ethernet/IPv4 fixture.
    fn tcp(frame: &[u8]) -> (&[u8], Ipv4Addr, Ipv4Addr) {
        let ip = Ipv4Packet::new_checked(&frame[14..]).unwrap();
        let hl = usize::from(ip.header_len());
        (&frame[14 + hl..14 + usize::from(ip.total_len())], ip.src_addr(), ip.dst_addr())
    }

    fn check(frame: &[u8], expected: TcpRepr) {
        let (bytes, src, dst) = tcp(frame);
        let segment = TcpSegment::new_checked(bytes).unwrap();
        assert!(segment.verify_checksum(src, dst));
        let repr = TcpRepr::parse(&segment, src, dst, ChecksumMode::Verify).unwrap();
        assert_eq!(repr, expected);
        let mut buf = vec![0u8; repr.buffer_len()];
        buf[repr.header_len()..].copy_from_slice(segment.payload());
        repr.emit(&mut TcpSegment::new_unchecked(&mut buf[..]), src, dst).unwrap();
        assert_eq!(&buf[..], bytes, "re-emitted bytes differ");
    }

    fn ts(tsval: u32, tsecr: u32) -> TcpOptions {
        TcpOptions { timestamp: Some((tsval, tsecr)), ..TcpOptions::NONE }
    }

    #[test]
    fn syn() {
        check(
            fixtures::TCP_SYN,
            TcpRepr {
                src_port: 52952,
                dst_port: 8080,
                seq: 3220839571,
                ack: None,
                flags: TcpFlags::SYN,
                window: 65280,
                urgent: 0,
                options: TcpOptions {
                    mss: Some(960),
                    window_scale: Some(10),
                    sack_permitted: true,
                    sack_blocks: [None; 4],
                    timestamp: Some((1378800055, 0)),
                },
                payload_len: 0,
            },
        );
    }

    #[test]
    fn syn_ack() {
        check(
            fixtures::TCP_SYN_ACK,
            TcpRepr {
                src_port: 8080,
                dst_port: 52952,
                seq: 3831013004,
                ack: Some(3220839572),
                flags: TcpFlags::SYN,
                window: 65412,
                urgent: 0,
                options: TcpOptions {
                    mss: Some(960),
                    window_scale: Some(10),
                    sack_permitted: true,
                    sack_blocks: [None; 4],
                    timestamp: Some((4207467579, 1378800055)),
                },
                payload_len: 0,
            },
        );
    }

    #[test]
    fn ack_and_data() {
        check(
            fixtures::TCP_ACK,
            TcpRepr {
                src_port: 52952,
                dst_port: 8080,
                seq: 3220839572,
                ack: Some(3831013005),
                flags: TcpFlags::empty(),
                window: 64,
                urgent: 0,
                options: ts(1378800055, 4207467579),
                payload_len: 0,
            },
        );
        check(
            fixtures::TCP_PSH,
            TcpRepr {
                src_port: 52952,
                dst_port: 8080,
                seq: 3220839572,
                ack: Some(3831013005),
                flags: TcpFlags::PSH,
                window: 64,
                urgent: 0,
                options: ts(1378800056, 4207467579),
                payload_len: 18,
            },
        );
        let (bytes, _, _) = tcp(fixtures::TCP_PSH);
        let segment = TcpSegment::new_checked(bytes).unwrap();
        assert_eq!(segment.payload(), b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!(segment.segment_len(), 18);
    }

    #[test]
    fn fin_and_rst() {
        check(
            fixtures::TCP_FIN,
            TcpRepr {
                src_port: 8080,
                dst_port: 52952,
                seq: 3831013042,
                ack: Some(3220839590),
                flags: TcpFlags::FIN,
                window: 64,
                urgent: 0,
                options: ts(4207467780, 1378800056),
                payload_len: 0,
            },
        );
        check(
            fixtures::TCP_RST,
            TcpRepr {
                src_port: 8099,
                dst_port: 56008,
                seq: 0,
                ack: Some(3421687123),
                flags: TcpFlags::RST,
                window: 0,
                urgent: 0,
                options: TcpOptions::NONE,
                payload_len: 0,
            },
        );
    }

    #[test]
    fn sack_blocks() {
        let base = TcpRepr {
            src_port: 8081,
            dst_port: 49190,
            seq: 2320445016,
            ack: Some(1922867007),
            flags: TcpFlags::empty(),
            window: 64,
            urgent: 0,
            options: TcpOptions {
                timestamp: Some((1680718169, 2196922949)),
                sack_blocks: [Some((1922867107, 1922867157)), None, None, None],
                ..TcpOptions::NONE
            },
            payload_len: 0,
        };
        check(fixtures::TCP_SACK_1, base);
        check(
            fixtures::TCP_SACK_2,
            TcpRepr {
                options: TcpOptions {
                    timestamp: Some((1680718269, 2196922949)),
                    sack_blocks: [Some((1922867307, 1922867347)), Some((1922867107, 1922867157)), None, None],
                    ..TcpOptions::NONE
                },
                ..base
            },
        );
    }

    #[test]
    fn checksum_failures() {
        let (bytes, src, dst) = tcp(fixtures::TCP_PSH);
        let mut copy = vec![0u8; bytes.len()];
        copy.copy_from_slice(bytes);
        copy[40] ^= 0x20; // flip a payload bit
        let segment = TcpSegment::new_checked(&copy[..]).unwrap();
        assert_eq!(TcpRepr::parse(&segment, src, dst, ChecksumMode::Verify), Err(Error::Checksum));
        assert!(TcpRepr::parse(&segment, src, dst, ChecksumMode::Ignore).is_ok());
        let segment = TcpSegment::new_checked(bytes).unwrap();
        assert!(!segment.verify_checksum(src, Ipv4Addr::new(10, 77, 1, 3)));
    }

    #[test]
    fn length_validation() {
        let (bytes, _, _) = tcp(fixtures::TCP_SYN);
        for cut in 0..bytes.len() {
            assert_eq!(TcpSegment::new_checked(&bytes[..cut]).unwrap_err(), Error::Truncated, "{cut}");
        }
        let mut copy = [0u8; 40];
        copy.copy_from_slice(bytes);
        copy[12] = 0x40; // data offset 4
        assert_eq!(TcpSegment::new_checked(&copy[..]).unwrap_err(), Error::Malformed);
        copy[12] = 0xf0; // data offset 15 = 60 bytes > 40
        assert_eq!(TcpSegment::new_checked(&copy[..]).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn emit_errors() {
        let repr = TcpRepr {
            src_port: 1,
            dst_port: 2,
            seq: 3,
            ack: None,
            flags: TcpFlags::SYN,
            window: 4,
            urgent: 0,
            options: TcpOptions { timestamp: Some((1, 1)), sack_blocks: [Some((1, 2)); 4], ..TcpOptions::NONE },
            payload_len: 0,
        };
        let mut buf = [0u8; 80];
        assert_eq!(repr.emit(&mut TcpSegment::new_unchecked(&mut buf[..]), HOST, SERVER), Err(Error::Malformed));
        let repr = TcpRepr { options: TcpOptions::NONE, payload_len: 61, ..repr };
        assert_eq!(repr.emit(&mut TcpSegment::new_unchecked(&mut buf[..]), HOST, SERVER), Err(Error::Truncated));
        let repr = TcpRepr { payload_len: 0xFFFF, ..repr };
        assert_eq!(repr.emit(&mut TcpSegment::new_unchecked(&mut buf[..]), HOST, SERVER), Err(Error::Malformed));
        let repr = TcpRepr { payload_len: usize::MAX, ..repr };
        assert_eq!(repr.segment_len(), usize::MAX);
        assert_eq!(repr.emit(&mut TcpSegment::new_unchecked(&mut buf[..]), HOST, SERVER), Err(Error::Malformed));
    }

    #[test]
    fn ack_flag_follows_ack_field() {
        let repr = TcpRepr {
            src_port: 1,
            dst_port: 2,
            seq: 3,
            ack: None,
            flags: TcpFlags::ACK | TcpFlags::FIN,
            window: 4,
            urgent: 0,
            options: TcpOptions::NONE,
            payload_len: 0,
        };
        let mut buf = [0u8; 20];
        repr.emit(&mut TcpSegment::new_unchecked(&mut buf[..]), HOST, SERVER).unwrap();
        let segment = TcpSegment::new_checked(&buf[..]).unwrap();
        assert_eq!(segment.flags(), TcpFlags::FIN);
        assert_eq!(segment.segment_len(), 1);
    }

    #[test]
    fn flags_set() {
        let mut f = TcpFlags::SYN | TcpFlags::ACK;
        assert!(f.contains(TcpFlags::SYN) && f.intersects(TcpFlags::ACK | TcpFlags::RST));
        f.remove(TcpFlags::SYN);
        f.insert(TcpFlags::NS);
        assert_eq!(f.bits(), 0x110);
        assert_eq!(format!("{f:?}"), "ACK|NS");
        assert_eq!(format!("{}", TcpFlags::empty()), "(none)");
        assert_eq!((!TcpFlags::empty()).bits(), 0x1FF);
        assert_eq!(TcpFlags::from_bits_truncate(0xFFFF).bits(), 0x1FF);
        assert_eq!((f & TcpFlags::ACK), TcpFlags::ACK);
    }

    #[test]
    fn setters_cannot_make_payload_panic() {
        let mut buf = [0u8; 24];
        let mut segment = TcpSegment::new_unchecked(&mut buf[..]);
        segment.set_header_len(60);
        assert!(segment.payload().is_empty());
        assert_eq!(segment.options().len(), 4);
        assert_eq!(segment.options_mut().len(), 4);
        assert!(segment.payload_mut().is_empty());
    }

    fn arb_options() -> impl Strategy<Value = TcpOptions> {
        (
            proptest::option::of(any::<u16>()),
            proptest::option::of(any::<u8>()),
            any::<bool>(),
            0usize..=4,
            any::<[(u32, u32); 4]>(),
            proptest::option::of(any::<(u32, u32)>()),
        )
            .prop_map(|(mss, window_scale, sack_permitted, n, blocks, timestamp)| {
                let mut sack_blocks = [None; 4];
                for (slot, b) in sack_blocks.iter_mut().zip(blocks).take(n) {
                    *slot = Some(b);
                }
                TcpOptions { mss, window_scale, sack_permitted, sack_blocks, timestamp }
            })
            .prop_filter("options must fit in 40 bytes", |o| o.encoded_len() <= tcp_options::MAX_LEN)
    }

    fn arb_repr() -> impl Strategy<Value = TcpRepr> {
        (
            (any::<u16>(), any::<u16>(), any::<u32>(), proptest::option::of(any::<u32>())),
            (any::<u16>(), any::<u16>(), any::<u16>()),
            arb_options(),
            0usize..100,
        )
            .prop_map(|((src_port, dst_port, seq, ack), (flags, window, urgent), options, payload_len)| {
                TcpRepr {
                    src_port,
                    dst_port,
                    seq,
                    ack,
                    flags: TcpFlags::from_bits_truncate(flags).without(TcpFlags::ACK),
                    window,
                    urgent,
                    options,
                    payload_len,
                }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn roundtrip(repr in arb_repr(), src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(), fill in any::<u8>()) {
            let (src, dst) = (Ipv4Addr::from(src), Ipv4Addr::from(dst));
            let mut buf = vec![fill; repr.buffer_len()];
            repr.emit(&mut TcpSegment::new_unchecked(&mut buf[..]), src, dst).unwrap();
            let segment = TcpSegment::new_checked(&buf[..]).unwrap();
            prop_assert!(segment.verify_checksum(src, dst));
            prop_assert_eq!(usize::from(segment.header_len()), repr.header_len());
            prop_assert_eq!(TcpRepr::parse(&segment, src, dst, ChecksumMode::Verify).unwrap(), repr);
            prop_assert_eq!(segment.segment_len(), repr.segment_len());
        }

        #[test]
        fn arbitrary_bytes(mut bytes in proptest::collection::vec(any::<u8>(), 0..90), doff in 5u8..=15) {
            if bytes.len() >= 20 && usize::from(doff) * 4 <= bytes.len() {
                bytes[12] = (doff << 4) | (bytes[12] & 0x01);
            }
            if let Ok(segment) = TcpSegment::new_checked(&bytes[..]) {
                let _ = (segment.options(), segment.payload(), segment.segment_len(), segment.reserved_bits());
                let repr = TcpRepr::parse(&segment, HOST, SERVER, ChecksumMode::Ignore).unwrap();
                let mut out = vec![0u8; repr.buffer_len()];
                out[repr.header_len()..].copy_from_slice(segment.payload());
                match repr.emit(&mut TcpSegment::new_unchecked(&mut out[..]), HOST, SERVER) {
                    Ok(()) => {
                        let again = TcpSegment::new_checked(&out[..]).unwrap();
                        prop_assert_eq!(TcpRepr::parse(&again, HOST, SERVER, ChecksumMode::Verify).unwrap(), repr);
                        // Ports, sequence number, flags, window and urgent pointer are canonical.
                        prop_assert_eq!(&out[..8], &bytes[..8]);
                        prop_assert_eq!(out[13], bytes[13]);
                        prop_assert_eq!(&out[14..16], &bytes[14..16]);
                        prop_assert_eq!(&out[18..20], &bytes[18..20]);
                        if repr.ack.is_some() {
                            prop_assert_eq!(&out[8..12], &bytes[8..12]);
                        }
                    }
                    // Leniently parsed options can re-encode longer than the original.
                    Err(e) => prop_assert_eq!(e, Error::Malformed),
                }
            }
        }
    }
}
