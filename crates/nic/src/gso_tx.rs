//! The GSO transmit path of the AF_PACKET datapath: a second, send-only packet socket with
//! PACKET_VNET_HDR. A TPACKET_V2 TX slot holds one MTU-sized frame; a super-frame of up to 64
//! KiB goes here instead, with one `sendto` each, behind a `struct virtio_net_hdr` that tells
//! the kernel how to cut it (VIRTIO_NET_HDR_GSO_TCPV4, checksum left partial). The kernel
//! (`virtio_net_hdr_to_skb`) makes a GSO skb of it and segments it in software or lets the
//! device take it whole, as for its own TCP. The socket binds to no protocol, so it receives
//! nothing, and the ring socket keeps receiving exactly as before (a virtio header on every
//! received frame would come with PACKET_VNET_HDR there).

use crate::port::TcpGso;
use crate::sys;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

const PACKET_VNET_HDR: libc::c_int = 15;
/// sizeof(struct virtio_net_hdr).
pub(crate) const VNET_HDR_LEN: usize = 10;
const VIRTIO_NET_HDR_F_NEEDS_CSUM: u8 = 1;
const VIRTIO_NET_HDR_GSO_TCPV4: u8 = 1;
/// The largest IP packet (its 16-bit total length).
pub(crate) const GSO_MAX_IP: usize = 65_535;
/// How long a send waits for socket buffer space before the super-frame counts as dropped
/// (TCP then retransmits it, as after a loss on the wire).
const SEND_TIMEOUT: Duration = Duration::from_millis(2);

/// The send-only socket and the buffer super-frames are built in (allocated once).
pub(crate) struct GsoTx {
    fd: OwnedFd,
    ifindex: i32,
    /// The virtio header, then the frame.
    pub(crate) buf: Vec<u8>,
}

impl GsoTx {
    /// The socket's descriptor (one of exasock's own: the program may not close it).
    pub(crate) fn raw_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.fd)
    }
}

impl GsoTx {
    /// Opens the socket for interface `ifindex`; fails where the kernel has no PACKET_VNET_HDR
    /// (the port then sends single segments only).
    pub(crate) fn open(ifindex: i32, qdisc_bypass: bool) -> io::Result<GsoTx> {
        // SAFETY: plain socket creation; protocol 0: nothing is ever received on it.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh fd we own.
        let fd = crate::fdplace::place(unsafe { OwnedFd::from_raw_fd(raw) })?;
        sys::setsockopt(fd.as_raw_fd(), libc::SOL_PACKET, PACKET_VNET_HDR, &1i32)?;
        if qdisc_bypass {
            sys::setsockopt(fd.as_raw_fd(), libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, &1i32)?;
        }
        // Room for a few super-frames in flight (beyond wmem_max where we may), and a bounded
        // wait when they are not yet freed.
        let sndbuf = 4i32 << 20;
        if sys::setsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, &sndbuf).is_err() {
            sys::setsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_SNDBUF, &sndbuf)?;
        }
        let tv = libc::timeval { tv_sec: 0, tv_usec: SEND_TIMEOUT.as_micros() as libc::suseconds_t };
        sys::setsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_SNDTIMEO, &tv)?;
        Ok(GsoTx { fd, ifindex, buf: vec![0u8; VNET_HDR_LEN + crate::port::MAX_L2_HEADER + GSO_MAX_IP] })
    }

    /// Sends the `len`-byte frame at `buf[VNET_HDR_LEN..]`, to be cut per `cut`.
    pub(crate) fn send(&mut self, len: usize, cut: TcpGso) -> io::Result<()> {
        let hdr = &mut self.buf[..VNET_HDR_LEN];
        hdr[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
        hdr[1] = VIRTIO_NET_HDR_GSO_TCPV4;
        // Native byte order: vio_le() for a packet socket is the host's (legacy virtio).
        hdr[2..4].copy_from_slice(&cut.header_len.to_ne_bytes());
        hdr[4..6].copy_from_slice(&cut.segment_size.to_ne_bytes());
        hdr[6..8].copy_from_slice(&cut.csum_start.to_ne_bytes());
        hdr[8..10].copy_from_slice(&cut.csum_offset.to_ne_bytes());
        // SAFETY: a zeroed sockaddr_ll filled in for sendto.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_IP as u16).to_be();
        sll.sll_ifindex = self.ifindex;
        // SAFETY: sendto from our buffer with a correctly sized sockaddr_ll.
        let r = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                self.buf.as_ptr().cast(),
                VNET_HDR_LEN + len,
                0,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}
