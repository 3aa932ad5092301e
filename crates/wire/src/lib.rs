//! Packet views and builders for the wire formats the stack speaks: Ethernet with an
//! optional 802.1Q tag, ARP for IPv4 over Ethernet, IPv4 (options skipped, fragments
//! recognised), ICMPv4, UDP and TCP with its options, plus the internet checksum.
//!
//! This crate owns the byte layout of every header and nothing else: no sockets, no
//! timers, no connection state. Each header has a view (`XxxPacket<T: AsRef<[u8]>>`)
//! that reads and writes fields in place, validated once by `new_checked` so that no
//! accessor can panic afterwards, and a plain-fields `XxxRepr` with `parse` and `emit`.
//!
//! It must never allocate, never do I/O and never panic on any input: every byte that
//! comes off the wire goes through a length-checked path, and builders report a buffer
//! that is too short as an [`Error`] instead of panicking. It is `no_std`, has no
//! dependencies and contains no `unsafe` code.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(test)]
extern crate std;

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod fuzzing;
pub mod icmp;
pub mod ipv4;
pub mod prebuilt;
pub mod tcp;
pub mod tcp_options;
pub mod udp;

#[cfg(test)]
mod fixtures;

pub use arp::{ArpOperation, ArpPacket, ArpRepr};
pub use checksum::ChecksumMode;
pub use ethernet::{EtherType, EthernetAddress, EthernetFrame, EthernetRepr, VlanTag};
pub use icmp::{IcmpPacket, IcmpRepr, IcmpType};
pub use ipv4::{IpProtocol, Ipv4Packet, Ipv4Repr};
pub use tcp::{TcpFlags, TcpRepr, TcpSegment};
pub use tcp_options::TcpOptions;
pub use udp::{UdpPacket, UdpRepr};

pub use core::net::Ipv4Addr;

use core::fmt;

/// Why a packet could not be parsed or built; one type for every layer so callers can
/// count drops by cause without caring which header failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer is shorter than a header or a length field says it must be (on
    /// parse), or shorter than the packet being built (on emit).
    Truncated,
    /// A field holds a value the format forbids (IHL below 5, a UDP length below 8, a
    /// wrong IP version, TCP options that do not fit the header, ...).
    Malformed,
    /// The checksum does not verify.
    Checksum,
    /// Well-formed, but of a kind this crate does not handle (e.g. ARP for a hardware
    /// or protocol type other than Ethernet/IPv4).
    Unsupported,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "truncated packet or buffer too short",
            Error::Malformed => "malformed packet",
            Error::Checksum => "checksum mismatch",
            Error::Unsupported => "unsupported packet type",
        })
    }
}

/// Result alias used by every parser and builder in this crate.
pub type Result<T> = core::result::Result<T, Error>;

/// A fixed byte range of a header, as used by each module's `field` table.
type Field = core::ops::Range<usize>;

/// Big-endian helpers shared by the header modules. Callers index only ranges that
/// `new_checked` has validated (or that `new_unchecked` users promised).
mod bytes {
    use super::Field;

    pub(crate) fn get_u16(data: &[u8], f: Field) -> u16 {
        u16::from_be_bytes([data[f.start], data[f.start + 1]])
    }

    pub(crate) fn get_u32(data: &[u8], f: Field) -> u32 {
        let d = &data[f.start..f.start + 4];
        u32::from_be_bytes([d[0], d[1], d[2], d[3]])
    }

    pub(crate) fn set_u16(data: &mut [u8], f: Field, value: u16) {
        data[f.start..f.start + 2].copy_from_slice(&value.to_be_bytes());
    }

    pub(crate) fn set_u32(data: &mut [u8], f: Field, value: u32) {
        data[f.start..f.start + 4].copy_from_slice(&value.to_be_bytes());
    }

    /// `data[start..end]` with both ends clamped to the buffer, so a length field
    /// changed by a setter after validation can shorten a payload but never panic.
    pub(crate) fn clamped(data: &[u8], start: usize, end: usize) -> &[u8] {
        let end = end.min(data.len());
        &data[start.min(end)..end]
    }

    /// Mutable counterpart of [`clamped`].
    pub(crate) fn clamped_mut(data: &mut [u8], start: usize, end: usize) -> &mut [u8] {
        let end = end.min(data.len());
        &mut data[start.min(end)..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn error_display() {
        assert_eq!(Error::Truncated.to_string(), "truncated packet or buffer too short");
        assert_eq!(Error::Malformed.to_string(), "malformed packet");
        assert_eq!(Error::Checksum.to_string(), "checksum mismatch");
        assert_eq!(Error::Unsupported.to_string(), "unsupported packet type");
    }

    #[test]
    fn clamped_never_panics() {
        let d = [1u8, 2, 3];
        assert_eq!(bytes::clamped(&d, 1, 2), &[2]);
        assert_eq!(bytes::clamped(&d, 2, 10), &[3]);
        assert_eq!(bytes::clamped(&d, 5, 10), &[] as &[u8]);
        assert_eq!(bytes::clamped(&d, 3, 1), &[] as &[u8]);
    }
}
