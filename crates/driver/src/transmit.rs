//! The stack's `Transmit` over a `Port` and a raw IPv4 socket.

use nic::{Port, TxError};
use stack::{Transmit, TxBusy};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

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
        let sin = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr { s_addr: u32::from(dst).to_be() },
            sin_zero: [0; 8],
        };
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
}

/// How many times a full ring is kicked and retried before a frame is given up: the device
/// frees slots within microseconds, and a datagram's fragments must not be split by a transient
/// full ring.
const RING_FULL_RETRIES: usize = 10_000;

impl Transmit for PortTx<'_> {
    fn frame(&mut self, build: &mut dyn FnMut(&mut [u8]) -> usize) -> Result<(), TxBusy> {
        for _ in 0..RING_FULL_RETRIES {
            match self.port.transmit(build) {
                Ok(_) => return Ok(()),
                Err(TxError::RingFull) => {
                    let _ = self.port.flush();
                    std::hint::spin_loop();
                }
                Err(TxError::FrameTooLong { .. }) => return Err(TxBusy),
            }
        }
        Err(TxBusy)
    }

    fn to_kernel(&mut self, ip_packet: &[u8]) {
        if self.kernel.send(ip_packet).is_err() {
            *self.kernel_errors += 1;
        }
    }
}
