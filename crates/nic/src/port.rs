//! The `Port` trait: the one interface between the stack's driver and any datapath.

use std::fmt;
use std::io;
use std::os::fd::RawFd;

/// Bytes an Ethernet header with one 802.1Q tag adds to an IP packet of MTU size.
pub const MAX_L2_HEADER: usize = 18;

/// What the datapath knows about a received frame's layer-4 checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxChecksum {
    /// Nothing is known: the receiver verifies every checksum (frames from a wire).
    Unverified,
    /// The device or the kernel already verified it (TP_STATUS_CSUM_VALID).
    Verified,
    /// The sender left it to offload and it was never filled in (TP_STATUS_CSUMNOTREADY, a frame
    /// from this host): the field holds only the pseudo-header sum and must not be checked.
    Partial,
}

/// A received frame, lent to the stack for the duration of one callback.
#[derive(Debug, Clone, Copy)]
pub struct RxFrame<'a> {
    /// The whole Ethernet frame, from the destination MAC to the end of the payload (no FCS).
    pub data: &'a [u8],
    /// Checksum state as reported by the datapath.
    pub checksum: RxChecksum,
}

/// Why a frame could not be queued for transmission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxError {
    /// Every transmit slot is in use; flush and try again once the device has sent some.
    RingFull,
    /// The builder returned a length larger than the slot it was given.
    FrameTooLong {
        /// Length the builder claimed.
        len: usize,
        /// Size of the slot.
        max: usize,
    },
}

impl fmt::Display for TxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TxError::RingFull => write!(f, "transmit ring full"),
            TxError::FrameTooLong { len, max } => {
                write!(f, "frame of {len} bytes does not fit a {max}-byte transmit slot")
            }
        }
    }
}

impl std::error::Error for TxError {}

/// Counters every datapath keeps, so each drop is visible (exasock-stat -i reads them later).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Frames handed to the receive callback.
    pub rx_frames: u64,
    /// Bytes in those frames.
    pub rx_bytes: u64,
    /// Frames the device or kernel dropped before we saw them (ring full: tp_drops, XDP rx_dropped).
    pub rx_dropped: u64,
    /// Frames queued by `transmit` and handed to the device by `flush`.
    pub tx_frames: u64,
    /// Bytes in those frames.
    pub tx_bytes: u64,
    /// Frames the device refused or lost on transmit.
    pub tx_dropped: u64,
    /// Kicks (syscalls or their in-memory equivalent) made by `flush`.
    pub tx_kicks: u64,
}

/// How the device (or the kernel below it) must cut a TCP/IPv4 super-frame into segments: the
/// fields of a virtio-net header with VIRTIO_NET_HDR_GSO_TCPV4 and VIRTIO_NET_HDR_F_NEEDS_CSUM.
/// The sender knows the protocol; the port only passes these numbers on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpGso {
    /// Payload bytes of each segment but the last (gso_size).
    pub segment_size: u16,
    /// Bytes of headers before the payload, from the start of the frame (hdr_len).
    pub header_len: u16,
    /// Where the TCP checksum starts: the TCP header's offset in the frame (csum_start).
    pub csum_start: u16,
    /// Offset of the checksum field from `csum_start` (csum_offset).
    pub csum_offset: u16,
}

/// What builds a frame that may be a super-frame: writes it into the buffer and returns its
/// length and how to cut it (see [`Port::transmit_gso`]).
pub type BuildGso<'a> = dyn FnMut(&mut [u8]) -> (usize, Option<TcpGso>) + 'a;

/// A network device as the stack's driver sees it: bursts of whole Ethernet frames in and out.
///
/// Object safe, so a process can pick its datapath at run time. Implementations are
/// single-threaded (rings are single-producer, single-consumer): the driver serialises calls.
pub trait Port: Send {
    /// Lends up to `budget` received frames to `deliver`, one at a time; each frame's buffer goes
    /// back to the device when the callback returns. Returns how many frames were delivered.
    fn receive(&mut self, budget: usize, deliver: &mut dyn FnMut(RxFrame<'_>)) -> usize;

    /// Builds one frame in place: `build` gets a slot of [`Port::max_frame_len`] bytes, writes the
    /// frame at its start and returns its length, or 0 to give the slot back unsent. The frame
    /// leaves on the next [`Port::flush`]. Returns the length queued.
    fn transmit(&mut self, build: &mut dyn FnMut(&mut [u8]) -> usize) -> Result<usize, TxError>;

    /// Hands every queued frame to the device with at most one kick.
    fn flush(&mut self) -> io::Result<()>;

    /// A file descriptor that polls readable when frames may be waiting, for a thread that wants
    /// to sleep instead of spinning; `None` when the datapath can only be polled.
    fn wait_fd(&self) -> Option<RawFd>;

    /// Adds (or drops) a multicast MAC to the device's receive filter while this port wants it
    /// (a group received without an IGMP join, which would otherwise have the kernel add it).
    /// By default nothing: ports with no device filter.
    fn multicast_filter(&mut self, mac: [u8; 6], add: bool) -> io::Result<()> {
        let _ = (mac, add);
        Ok(())
    }

    /// Every descriptor the port holds (sockets, epoll sets), so that an interposition layer can
    /// keep the program from closing them and close them in a fork child. By default the wait fd.
    fn internal_fds(&self) -> Vec<RawFd> {
        self.wait_fd().into_iter().collect()
    }

    /// The datapath's name as `exasock-ctl status` and logs show it ("af_packet", "af_xdp").
    fn kind(&self) -> &'static str {
        "memory"
    }

    /// The IP MTU of the device: the largest IP packet one frame may carry.
    fn mtu(&self) -> usize;

    /// The device's MAC address, the source of every frame we send.
    fn mac(&self) -> [u8; 6];

    /// A snapshot of the port's counters.
    fn stats(&self) -> PortStats;

    /// Reads counters the kernel keeps and resets on reading (AF_PACKET's tp_drops) into the
    /// port's; call now and then. Ports whose counters are always current do nothing.
    fn refresh_stats(&mut self) {}

    /// Whether the next `frames` calls to [`Port::transmit`] will find a free slot, so that a
    /// datagram's fragments are all queued or none is. No syscall: a full ring is waited on by
    /// the caller, boundedly. Ports without a fixed ring always have room.
    fn tx_available(&self, frames: usize) -> bool {
        let _ = frames;
        true
    }

    /// The largest frame a transmit slot holds: MTU plus an Ethernet header with a VLAN tag.
    fn max_frame_len(&self) -> usize {
        self.mtu() + MAX_L2_HEADER
    }

    /// The largest IP packet [`Port::transmit_gso`] takes as one super-frame that the device
    /// cuts into segments; 0 (the default) when the datapath cannot.
    fn gso_max(&self) -> usize {
        0
    }

    /// Builds one frame that may be a super-frame: `build` gets a buffer of at least
    /// [`Port::gso_max`] bytes past an Ethernet header, and returns the length and how to cut
    /// it (`None`: an ordinary frame, queued like one from [`Port::transmit`]). Frames leave in
    /// the order built. By default an ordinary transmit slot, so a port without GSO never
    /// sees a frame larger than its slots.
    fn transmit_gso(&mut self, build: &mut BuildGso<'_>) -> Result<usize, TxError> {
        self.transmit(&mut |buf| build(buf).0)
    }
}
