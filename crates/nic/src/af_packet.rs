//! The AF_PACKET datapath: a TPACKET_V2 RX ring and TX ring on one packet socket.
//!
//! Set-up order matters: the socket is created with protocol 0 (it receives nothing), the
//! per-process eBPF filter is attached (`bpf::load_socket_filter`), the rings are mapped, and only then is it bound to
//! ETH_P_ALL on the interface, so no foreign frame slips in. ETH_P_ALL taps see frames before tc
//! ingress (where the steering program drops the kernel's copy); TPACKET_V2 hands over frame by
//! frame (V3 would hold a block up to its timeout). PACKET_IGNORE_OUTGOING keeps our own
//! transmissions off the ring. Any number of processes can share an interface this way.
//! Super-frames (GSO) leave through a second, send-only socket (`gso_tx.rs`), after the frames
//! queued on the ring before them.

use crate::bpf::load_socket_filter;
use crate::gso_tx::{GsoTx, GSO_MAX_IP, VNET_HDR_LEN};
use crate::port::{BuildGso, Port, PortStats, RxChecksum, RxFrame, TxError, MAX_L2_HEADER};
use crate::sys::setsockopt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

const PACKET_RX_RING: libc::c_int = 5;
const PACKET_VERSION: libc::c_int = 10;
const PACKET_TX_RING: libc::c_int = 13;
const TPACKET_V2: libc::c_int = 1;
/// Offset of frame data in a TX slot: TPACKET2_HDRLEN - sizeof(struct sockaddr_ll).
const TX_DATA_OFFSET: usize = 32;

/// Sizes of the rings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AfPacketConfig {
    /// Frames in the receive ring.
    pub rx_frames: u32,
    /// Frames in the transmit ring.
    pub tx_frames: u32,
    /// PACKET_QDISC_BYPASS: frames go straight to the device queue, skipping the qdisc. Faster,
    /// but a stopped device queue (a busy NIC) then drops frames silently where the kernel's own
    /// sockets would be queued by the qdisc: off by default.
    pub qdisc_bypass: bool,
    /// Offer GSO: TCP may hand over super-frames of up to 64 KiB, cut by the kernel.
    pub gso: bool,
}

impl Default for AfPacketConfig {
    fn default() -> Self {
        AfPacketConfig { rx_frames: 4096, tx_frames: 1024, qdisc_bypass: false, gso: true }
    }
}

/// A packet socket with mapped rings, bound to one interface, receiving only the flows this
/// process claimed (see [`crate::steering`]).
pub struct AfPacketPort {
    fd: OwnedFd,
    map: NonNull<u8>,
    map_len: usize,
    frame_size: usize,
    rx_frames: usize,
    tx_frames: usize,
    rx_next: usize,
    tx_next: usize,
    tx_queued: usize,
    mtu: usize,
    mac: [u8; 6],
    stats: PortStats,
    oversize_warned: bool,
    /// The GSO path, when the kernel offers it and the configuration wants it.
    gso: Option<GsoTx>,
    ifindex: i32,
}

// SAFETY: the mapping is owned by this value alone and only touched through &mut self.
unsafe impl Send for AfPacketPort {}

impl std::fmt::Debug for AfPacketPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfPacketPort").field("fd", &self.fd).field("mtu", &self.mtu).finish()
    }
}

fn ctx(what: &str) -> impl FnOnce(io::Error) -> io::Error + '_ {
    move |e| io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// The interface's index, MTU and MAC address.
pub(crate) fn interface_info(iface: &str) -> io::Result<(i32, usize, [u8; 6])> {
    let index = crate::if_index(iface)
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no interface named {iface}")))?;
    // SAFETY: ioctls on a socket we own with a zeroed ifreq carrying the name.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = OwnedFd::from_raw_fd(fd);
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (dst, src) in ifr.ifr_name.iter_mut().zip(iface.bytes()) {
            *dst = src as libc::c_char;
        }
        if libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFMTU, &mut ifr) < 0 {
            return Err(io::Error::last_os_error());
        }
        let mtu = ifr.ifr_ifru.ifru_mtu as usize;
        if libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFHWADDR, &mut ifr) < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut mac = [0u8; 6];
        for (m, b) in mac.iter_mut().zip(ifr.ifr_ifru.ifru_hwaddr.sa_data.iter()) {
            *m = *b as u8;
        }
        Ok((index as i32, mtu, mac))
    }
}

impl AfPacketPort {
    /// Opens the datapath on an attached interface; frames of flows this process claims (now or
    /// later) arrive on it.
    pub fn open(iface: &str, config: AfPacketConfig) -> io::Result<AfPacketPort> {
        let (ifindex, mtu, mac) = interface_info(iface)?;
        // Room for the TPACKET header, alignment and the largest frame.
        let frame_size = (mtu + MAX_L2_HEADER + 128).next_power_of_two().max(2048);
        let block_size = frame_size.max(1 << 16);
        let per_block = block_size / frame_size;
        let rx_blocks = (config.rx_frames as usize).div_ceil(per_block).max(1);
        let tx_blocks = (config.tx_frames as usize).div_ceil(per_block).max(1);

        // SAFETY: plain socket creation.
        let raw =
            unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, 0) };
        if raw < 0 {
            return Err(ctx("cannot open an AF_PACKET socket (needs CAP_NET_RAW)")(io::Error::last_os_error()));
        }
        // SAFETY: a fresh fd we own.
        let fd = crate::fdplace::place(unsafe { OwnedFd::from_raw_fd(raw) })?;
        let raw = fd.as_raw_fd();

        load_socket_filter(iface, fd.as_fd())?;

        setsockopt(raw, libc::SOL_PACKET, PACKET_VERSION, &TPACKET_V2).map_err(ctx("PACKET_VERSION"))?;
        let req = |blocks: usize| libc::tpacket_req {
            tp_block_size: block_size as u32,
            tp_block_nr: blocks as u32,
            tp_frame_size: frame_size as u32,
            tp_frame_nr: (blocks * per_block) as u32,
        };
        setsockopt(raw, libc::SOL_PACKET, PACKET_RX_RING, &req(rx_blocks)).map_err(ctx("PACKET_RX_RING"))?;
        setsockopt(raw, libc::SOL_PACKET, PACKET_TX_RING, &req(tx_blocks)).map_err(ctx("PACKET_TX_RING"))?;
        setsockopt(raw, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &1i32)
            .map_err(ctx("PACKET_IGNORE_OUTGOING"))?;
        if config.qdisc_bypass {
            setsockopt(raw, libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, &1i32).map_err(ctx("PACKET_QDISC_BYPASS"))?;
        }

        let map_len = (rx_blocks + tx_blocks) * block_size;
        // SAFETY: mapping the rings just configured on our socket.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                raw,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(ctx("mmap of the packet rings")(io::Error::last_os_error()));
        }
        crate::sys::dont_fork(ptr, map_len);
        let map = NonNull::new(ptr.cast::<u8>()).expect("mmap returned null");

        let port = AfPacketPort {
            fd,
            map,
            map_len,
            frame_size,
            rx_frames: rx_blocks * per_block,
            tx_frames: tx_blocks * per_block,
            rx_next: 0,
            tx_next: 0,
            tx_queued: 0,
            mtu,
            mac,
            stats: PortStats::default(),
            oversize_warned: false,
            gso: if config.gso { GsoTx::open(ifindex, config.qdisc_bypass).ok() } else { None },
            ifindex,
        };

        // SAFETY: a zeroed sockaddr_ll filled in for bind.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex;
        // SAFETY: bind with a correctly sized sockaddr_ll.
        let r = unsafe {
            libc::bind(
                raw,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(ctx("bind of the packet socket")(io::Error::last_os_error()));
        }
        Ok(port)
    }

    /// The status word of frame `index` in the ring starting at `base` (in frames).
    fn status(&self, frame: usize) -> &AtomicU32 {
        // SAFETY: frame < rx_frames + tx_frames, inside the mapping; tp_status is the first,
        // 4-byte aligned field of struct tpacket2_hdr, shared with the kernel.
        unsafe { &*(self.map.as_ptr().add(frame * self.frame_size) as *const AtomicU32) }
    }

    fn header(&self, frame: usize) -> *mut libc::tpacket2_hdr {
        // SAFETY: as in `status`.
        unsafe { self.map.as_ptr().add(frame * self.frame_size).cast() }
    }

    fn read_kernel_stats(&mut self) {
        let mut st = libc::tpacket_stats { tp_packets: 0, tp_drops: 0 };
        let mut len = std::mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
        // SAFETY: getsockopt into a struct of the advertised size; it resets the kernel counters,
        // so they are accumulated here.
        let r = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut st as *mut libc::tpacket_stats).cast(),
                &mut len,
            )
        };
        if r == 0 {
            self.stats.rx_dropped += u64::from(st.tp_drops);
        }
    }
}

impl AfPacketPort {
    /// A frame built in the GSO buffer: an ordinary one is copied into a ring slot (and leaves
    /// with the next kick); a super-frame goes at once through the GSO socket, after a kick for
    /// what the ring holds, so frames leave in the order built.
    fn transmit_via(&mut self, gso: &mut GsoTx, build: &mut BuildGso<'_>) -> Result<usize, TxError> {
        // Whatever the builder makes, nothing is lost after it ran: an ordinary frame needs a
        // free ring slot, so one must be there first.
        if !self.tx_available(1) {
            return Err(TxError::RingFull);
        }
        let max = gso.buf.len() - VNET_HDR_LEN;
        let (len, cut) = build(&mut gso.buf[VNET_HDR_LEN..]);
        if len == 0 {
            return Ok(0);
        }
        if len > max {
            return Err(TxError::FrameTooLong { len, max });
        }
        let Some(cut) = cut else {
            let frame = &gso.buf[VNET_HDR_LEN..VNET_HDR_LEN + len];
            return self.transmit(&mut |slot| {
                if slot.len() < len {
                    return 0;
                }
                slot[..len].copy_from_slice(frame);
                len
            });
        };
        if self.flush().is_err() {
            self.stats.tx_dropped += 1;
        }
        self.stats.tx_kicks += 1;
        match gso.send(len, cut) {
            Ok(()) => {
                self.stats.tx_frames += 1;
                self.stats.tx_bytes += len as u64;
            }
            // Built and gone from the sender's view: TCP repairs it as a loss.
            Err(_) => self.stats.tx_dropped += 1,
        }
        Ok(len)
    }
}

impl Drop for AfPacketPort {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping once; the fd closes after.
        unsafe { libc::munmap(self.map.as_ptr().cast(), self.map_len) };
    }
}

impl Port for AfPacketPort {
    fn receive(&mut self, budget: usize, deliver: &mut dyn FnMut(RxFrame<'_>)) -> usize {
        let mut delivered = 0;
        let max_len = self.mtu + MAX_L2_HEADER;
        while delivered < budget {
            let frame = self.rx_next;
            let status = self.status(frame).load(Ordering::Acquire);
            if status & libc::TP_STATUS_USER == 0 {
                break;
            }
            // SAFETY: the kernel handed this frame to us (TP_STATUS_USER, acquired above).
            let hdr = unsafe { &*self.header(frame) };
            let (len, snap, mac_off) = (hdr.tp_len as usize, hdr.tp_snaplen as usize, hdr.tp_mac as usize);
            if snap < len || len > max_len || mac_off + snap > self.frame_size {
                // Larger than the MTU allows (GRO, or a peer sending TSO frames): never handed on.
                self.stats.rx_dropped += 1;
                if !self.oversize_warned {
                    self.oversize_warned = true;
                    eprintln!(
                        "exasock warning: dropped a {len}-byte frame above the MTU ({}): turn off GRO/LRO here and TSO/GSO on the sender (ethtool -K IFACE tx off on a veth peer)",
                        self.mtu
                    );
                }
            } else {
                let checksum = if status & libc::TP_STATUS_CSUMNOTREADY != 0 {
                    RxChecksum::Partial
                } else if status & libc::TP_STATUS_CSUM_VALID != 0 {
                    RxChecksum::Verified
                } else {
                    RxChecksum::Unverified
                };
                // SAFETY: tp_mac..tp_mac+snaplen lies within this frame (checked above).
                let data = unsafe {
                    std::slice::from_raw_parts(self.map.as_ptr().add(frame * self.frame_size + mac_off), snap)
                };
                self.stats.rx_frames += 1;
                self.stats.rx_bytes += snap as u64;
                deliver(RxFrame { data, checksum });
                delivered += 1;
            }
            self.status(frame).store(libc::TP_STATUS_KERNEL, Ordering::Release);
            self.rx_next = (frame + 1) % self.rx_frames;
        }
        delivered
    }

    fn transmit(&mut self, build: &mut dyn FnMut(&mut [u8]) -> usize) -> Result<usize, TxError> {
        let slot = self.rx_frames + self.tx_next;
        let status = self.status(slot).load(Ordering::Acquire);
        if status == libc::TP_STATUS_WRONG_FORMAT {
            // The kernel refused what was there before; count it and reuse the slot.
            self.stats.tx_dropped += 1;
        } else if status != libc::TP_STATUS_AVAILABLE {
            return Err(TxError::RingFull);
        }
        let max = self.max_frame_len().min(self.frame_size - TX_DATA_OFFSET);
        // SAFETY: the slot is ours (AVAILABLE); its data area is frame_size - 32 bytes.
        let buf = unsafe {
            std::slice::from_raw_parts_mut(self.map.as_ptr().add(slot * self.frame_size + TX_DATA_OFFSET), max)
        };
        let len = build(buf);
        if len == 0 {
            return Ok(0);
        }
        if len > max {
            return Err(TxError::FrameTooLong { len, max });
        }
        // SAFETY: our slot's header.
        unsafe {
            let hdr = &mut *self.header(slot);
            hdr.tp_len = len as u32;
            hdr.tp_snaplen = len as u32;
        }
        self.status(slot).store(libc::TP_STATUS_SEND_REQUEST, Ordering::Release);
        self.tx_next = (self.tx_next + 1) % self.tx_frames;
        self.tx_queued += 1;
        self.stats.tx_frames += 1;
        self.stats.tx_bytes += len as u64;
        Ok(len)
    }

    fn tx_available(&self, frames: usize) -> bool {
        if frames > self.tx_frames {
            return false;
        }
        (0..frames).all(|i| {
            let slot = self.rx_frames + (self.tx_next + i) % self.tx_frames;
            matches!(
                self.status(slot).load(Ordering::Acquire),
                libc::TP_STATUS_AVAILABLE | libc::TP_STATUS_WRONG_FORMAT
            )
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.tx_queued == 0 {
            return Ok(());
        }
        self.tx_queued = 0;
        self.stats.tx_kicks += 1;
        // SAFETY: a zero-length send kicks the TX ring.
        let r = unsafe { libc::send(self.fd.as_raw_fd(), std::ptr::null(), 0, libc::MSG_DONTWAIT) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::WouldBlock {
                return Err(e);
            }
        }
        Ok(())
    }

    fn wait_fd(&self) -> Option<RawFd> {
        Some(self.fd.as_raw_fd())
    }

    fn multicast_filter(&mut self, mac: [u8; 6], add: bool) -> io::Result<()> {
        // The kernel counts each (interface, address) per packet socket and keeps the device's
        // filter entry while any socket holds it; closing the ring drops ours.
        packet_multicast(self.fd.as_raw_fd(), self.ifindex, mac, add)
    }

    fn kind(&self) -> &'static str {
        "af_packet"
    }

    fn internal_fds(&self) -> Vec<RawFd> {
        // The ring's socket and the send-only GSO socket: the program may close neither.
        let mut fds = vec![self.fd.as_raw_fd()];
        fds.extend(self.gso.as_ref().map(GsoTx::raw_fd));
        fds
    }

    fn refresh_stats(&mut self) {
        self.read_kernel_stats();
    }

    fn gso_max(&self) -> usize {
        if self.gso.is_some() {
            GSO_MAX_IP
        } else {
            0
        }
    }

    fn transmit_gso(&mut self, build: &mut BuildGso<'_>) -> Result<usize, TxError> {
        let Some(mut gso) = self.gso.take() else {
            return self.transmit(&mut |buf| build(buf).0);
        };
        let r = self.transmit_via(&mut gso, build);
        self.gso = Some(gso);
        r
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn stats(&self) -> PortStats {
        self.stats
    }
}

/// Adds (or drops) `mac` in the device filter of interface `ifindex` for the packet socket `fd`
/// (PACKET_ADD_MEMBERSHIP with PACKET_MR_MULTICAST): the kernel keeps the device's entry while
/// any packet socket holds it and drops the socket's own when it closes.
pub(crate) fn packet_multicast(fd: RawFd, ifindex: i32, mac: [u8; 6], add: bool) -> io::Result<()> {
    // SAFETY: a zeroed packet_mreq filled in and passed by pointer for the call.
    unsafe {
        let mut mr: libc::packet_mreq = std::mem::zeroed();
        mr.mr_ifindex = ifindex;
        mr.mr_type = libc::PACKET_MR_MULTICAST as u16;
        mr.mr_alen = 6;
        mr.mr_address[..6].copy_from_slice(&mac);
        let name = if add { libc::PACKET_ADD_MEMBERSHIP } else { libc::PACKET_DROP_MEMBERSHIP };
        let r = libc::syscall(
            libc::SYS_setsockopt,
            fd,
            libc::SOL_PACKET,
            name,
            &mr as *const libc::packet_mreq,
            std::mem::size_of::<libc::packet_mreq>() as libc::socklen_t,
        );
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A packet socket that receives nothing (protocol 0, never bound) and only holds multicast
/// MACs in a device's filter for a datapath without a packet ring (AF_XDP).
pub(crate) fn filter_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket creation.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd we own.
    crate::fdplace::place(unsafe { OwnedFd::from_raw_fd(raw) })
}
