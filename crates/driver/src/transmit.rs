//! The stack's `Transmit` over a `Port` and a raw IPv4 socket.

use nic::{Port, TcpGso, TxError};
use stack::{Transmit, TxBusy};
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// `addr` as the kernel's sockaddr_in.
pub(crate) fn sockaddr(addr: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(*addr.ip()).to_be() },
        sin_zero: [0; 8],
    }
}

/// An IPPROTO_RAW socket: whole IPv4 packets to the kernel, which resolves the neighbour and
/// sends them (with IP_HDRINCL implied by IPPROTO_RAW).
#[derive(Debug)]
pub struct KernelPath {
    fd: OwnedFd,
}

impl KernelPath {
    /// Opens the raw socket (needs CAP_NET_RAW).
    pub fn open() -> io::Result<KernelPath> {
        // SAFETY: plain socket creation.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::IPPROTO_RAW) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh fd we own.
        Ok(KernelPath { fd: nic::fdplace::place(unsafe { OwnedFd::from_raw_fd(fd) })? })
    }

    /// Multicast packets leave by interface `ifindex` (IP_MULTICAST_IF): a group's looped copy
    /// (TTL 0, which the kernel delivers to the host's members and never sends) needs no
    /// route to the group.
    pub fn multicast_via(&self, ifindex: u32) -> io::Result<()> {
        let mreqn = libc::ip_mreqn {
            imr_multiaddr: libc::in_addr { s_addr: 0 },
            imr_address: libc::in_addr { s_addr: 0 },
            imr_ifindex: ifindex as i32,
        };
        // SAFETY: an ip_mreqn option on a socket we own, with its size.
        let r = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_MULTICAST_IF,
                (&mreqn as *const libc::ip_mreqn).cast(),
                std::mem::size_of::<libc::ip_mreqn>() as libc::socklen_t,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// The raw socket's descriptor.
    pub fn fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }

    /// Sends one IPv4 packet; errors are counted by the caller, not retried.
    pub fn send(&self, ip_packet: &[u8]) -> io::Result<()> {
        if ip_packet.len() < 20 {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        let dst = Ipv4Addr::new(ip_packet[16], ip_packet[17], ip_packet[18], ip_packet[19]);
        let sin = sockaddr(SocketAddrV4::new(dst, 0));
        // SAFETY: sendto with a valid buffer and a correctly sized sockaddr_in.
        let r = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                ip_packet.as_ptr().cast(),
                ip_packet.len(),
                libc::MSG_DONTWAIT,
                (&sin as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}

/// What one burst of sends needs: the port's transmit slots and the kernel path.
pub(crate) struct PortTx<'a> {
    pub port: &'a mut dyn Port,
    pub kernel: &'a KernelPath,
    pub kernel_errors: &'a mut u64,
    /// Datagrams refused because the ring stayed full for RING_FULL_WAIT.
    pub ring_full: &'a mut u64,
}

/// How long a full transmit ring is waited on, under the runtime lock, before the send gives up
/// (the caller then gets EAGAIN, or waits outside the lock and tries again): a device frees
/// slots within microseconds, and one kick is enough to hand it what is queued.
const RING_FULL_WAIT: Duration = Duration::from_micros(200);

impl PortTx<'_> {
    /// Waits until `frames` slots are free: one kick for what is queued, then the slots'
    /// status words are watched (no syscall) for at most RING_FULL_WAIT.
    fn wait_for_room(&mut self, frames: usize) -> Result<(), TxBusy> {
        if self.port.tx_available(frames) {
            return Ok(());
        }
        let _ = self.port.flush();
        let start = crate::clock::now();
        loop {
            for _ in 0..64 {
                std::hint::spin_loop();
            }
            if self.port.tx_available(frames) {
                return Ok(());
            }
            if crate::clock::now().saturating_since(start) >= RING_FULL_WAIT {
                *self.ring_full += 1;
                return Err(TxBusy);
            }
        }
    }
}

impl Transmit for PortTx<'_> {
    fn reserve(&mut self, frames: usize) -> Result<(), TxBusy> {
        self.wait_for_room(frames)
    }

    fn frame(&mut self, build: &mut dyn FnMut(&mut [u8]) -> usize) -> Result<(), TxBusy> {
        for _ in 0..2 {
            match self.port.transmit(build) {
                Ok(_) => return Ok(()),
                // (Only for a sender that reserved nothing: the reservation left room.)
                Err(TxError::RingFull) => self.wait_for_room(1)?,
                Err(TxError::FrameTooLong { .. }) => return Err(TxBusy),
            }
        }
        *self.ring_full += 1;
        Err(TxBusy)
    }

    fn to_kernel(&mut self, ip_packet: &[u8]) {
        if self.kernel.send(ip_packet).is_err() {
            *self.kernel_errors += 1;
        }
    }

    fn gso_max(&self) -> usize {
        self.port.gso_max()
    }

    fn frame_gso(&mut self, build: &mut stack::BuildGso<'_>) -> Result<(), TxBusy> {
        let mut build = |buf: &mut [u8]| {
            let (len, cut) = build(buf);
            let cut = cut.map(|c| TcpGso {
                segment_size: c.segment_size,
                header_len: c.header_len,
                csum_start: c.csum_start,
                csum_offset: c.csum_offset,
            });
            (len, cut)
        };
        for _ in 0..2 {
            match self.port.transmit_gso(&mut build) {
                Ok(_) => return Ok(()),
                Err(TxError::RingFull) => self.wait_for_room(1)?,
                Err(TxError::FrameTooLong { .. }) => return Err(TxBusy),
            }
        }
        *self.ring_full += 1;
        Err(TxBusy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nic::{PortStats, RxFrame};
    use stack::udp::UdpError;
    use stack::StackConfig;
    use std::net::SocketAddrV4;
    use wire::EthernetAddress;

    /// A transmit ring of `free` slots whose device never sends: kicks free nothing.
    struct StuckRing {
        free: usize,
        sent: usize,
        kicks: usize,
    }

    impl Port for StuckRing {
        fn receive(&mut self, _budget: usize, _deliver: &mut dyn FnMut(RxFrame<'_>)) -> usize {
            0
        }
        fn transmit(&mut self, build: &mut dyn FnMut(&mut [u8]) -> usize) -> Result<usize, TxError> {
            if self.free == 0 {
                return Err(TxError::RingFull);
            }
            let mut buf = [0u8; 2048];
            let n = build(&mut buf);
            self.free -= 1;
            self.sent += 1;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            self.kicks += 1;
            Ok(())
        }
        fn tx_available(&self, frames: usize) -> bool {
            self.free >= frames
        }
        fn wait_fd(&self) -> Option<std::os::fd::RawFd> {
            None
        }
        fn mtu(&self) -> usize {
            1500
        }
        fn mac(&self) -> [u8; 6] {
            [2, 0, 0, 0, 0, 1]
        }
        fn stats(&self) -> PortStats {
            PortStats::default()
        }
    }

    /// A datagram of three fragments with two free slots: nothing goes (no partial fragment
    /// train), the wait is bounded in time with at most one kick, the caller gets WouldBlock
    /// (EAGAIN, or a blocking wait outside the lock), and the full ring is counted.
    #[test]
    fn a_full_ring_sends_no_partial_datagram_and_waits_boundedly() {
        let (ours, peer) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        let mac = EthernetAddress([2, 0, 0, 0, 0, 1]);
        let peer_mac = EthernetAddress([2, 0, 0, 0, 0, 2]);
        let mut stack = stack::testing::lan_stack(ours, mac, 1500, peer, peer_mac, StackConfig::default());
        let h = stack.udp_open();
        stack.udp_bind(h, SocketAddrV4::new(ours, 5000)).unwrap();
        let Ok(kernel) = KernelPath::open() else {
            eprintln!("skipped: no CAP_NET_RAW for the kernel path");
            return;
        };
        let mut port = StuckRing { free: 2, sent: 0, kicks: 0 };
        let mut kernel_errors = 0;
        let mut ring_full = 0;
        let start = std::time::Instant::now();
        let r = {
            let mut tx = PortTx {
                port: &mut port,
                kernel: &kernel,
                kernel_errors: &mut kernel_errors,
                ring_full: &mut ring_full,
            };
            stack.udp_send(h, &[7u8; 3000], Some(SocketAddrV4::new(peer, 9)), &mut tx)
        };
        let took = start.elapsed();
        assert_eq!(r, Err(UdpError::WouldBlock));
        assert_eq!(port.sent, 0, "part of the datagram went out");
        assert!(port.kicks <= 1, "{} kicks for one full ring", port.kicks);
        assert!(took < std::time::Duration::from_millis(20), "waited {took:?} under the lock");
        assert_eq!(ring_full, 1, "the full ring was not counted");
        // A datagram that fits goes.
        let mut tx =
            PortTx { port: &mut port, kernel: &kernel, kernel_errors: &mut kernel_errors, ring_full: &mut ring_full };
        assert_eq!(stack.udp_send(h, &[7u8; 100], Some(SocketAddrV4::new(peer, 9)), &mut tx), Ok(100));
        assert_eq!(port.sent, 1);
    }
}
