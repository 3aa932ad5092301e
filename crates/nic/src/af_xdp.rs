//! The AF_XDP datapath: one XSK per RX queue of the interface, each with its own UMEM.
//!
//! An XSK receives only from the device queue it is bound to, and the XDP program
//! (`exasock_xdp` in bpf/exasock.bpf.c) redirects a frame to the XSK of the queue it arrived
//! on (the `xsks` XSKMAP, indexed by rx_queue_index), so a process serving an interface over
//! AF_XDP binds every RX queue. The kernel lets one XSK bind a queue at a time: a second process
//! finds the queues taken (EBUSY) and gets [`io::ErrorKind::ResourceBusy`], which the driver
//! turns into AF_PACKET (or a clear error when AF_XDP was asked for explicitly).
//!
//! Per queue: a UMEM of `rx_frames` chunks (plus `tx_frames` on queue 0, which carries every
//! transmission), a fill ring primed with every RX chunk, an RX ring, and on queue 0 a TX ring
//! and a completion ring. A received chunk is lent to the callback and goes straight back to
//! the fill ring; a TX chunk comes from a free list refilled from the completion ring. Nothing
//! is allocated per frame. Bound with XDP_USE_NEED_WAKEUP: the TX ring is kicked (a zero-length
//! sendto) only when the kernel set its need-wakeup flag, the fill ring (zero-copy drivers) only
//! when it asks too.
//!
//! Zero-copy is tried first and copy mode taken, with one log line, when the device or the XDP
//! attach mode (SKB) cannot do it. The owner's anchor token goes into the pinned `xsk_owner`
//! map: the XDP program redirects only flows whose entry carries that token, so entries of a
//! dead owner never reach the next process's rings, and when the owner dies its XSKs leave
//! the XSKMAP (the kernel removes them at release) and every frame is XDP_PASS again.

use crate::port::{Port, PortStats, RxChecksum, RxFrame, TxError, MAX_L2_HEADER};
use crate::steering::state_dir;
use crate::sys::{bpf_map_elem, setsockopt, BPF_MAP_LOOKUP_ELEM, BPF_MAP_UPDATE_ELEM};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};

/// Name of the XSKMAP (pinned): queue index → XSK.
pub(crate) const XSKS_MAP: &str = "xsks";
/// Name of the map holding the token of the process whose XSKs are in `xsks` (pinned).
pub(crate) const XSK_OWNER_MAP: &str = "xsk_owner";
/// Bytes the kernel reserves in front of each received frame in a UMEM chunk.
const XDP_PACKET_HEADROOM: usize = 256;

/// SO_BUSY_POLL, SO_PREFER_BUSY_POLL, SO_BUSY_POLL_BUDGET (asm-generic/socket.h).
const SO_BUSY_POLL: libc::c_int = 46;
const SO_PREFER_BUSY_POLL: libc::c_int = 69;
const SO_BUSY_POLL_BUDGET: libc::c_int = 70;

/// Sizes and options of the XSKs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AfXdpConfig {
    /// UMEM chunks (and fill/RX ring entries) per RX queue: a power of two.
    pub rx_frames: u32,
    /// UMEM chunks (and TX/completion ring entries) for transmission: a power of two.
    pub tx_frames: u32,
    /// Try zero-copy first (falls back to copy mode with a log line).
    pub zero_copy: bool,
    /// Set SO_PREFER_BUSY_POLL, SO_BUSY_POLL and SO_BUSY_POLL_BUDGET on the sockets: with a
    /// driver-mode program and a spinning caller the device's NAPI runs in our syscalls instead
    /// of an interrupt. Useless in SKB mode (no NAPI of ours to poll), where it stays off.
    pub busy_poll: bool,
    /// The anchor token of the owning process (see [`crate::steering::Anchor`]): the XDP program
    /// redirects only the flows whose entries carry it.
    pub owner_token: u64,
}

impl Default for AfXdpConfig {
    fn default() -> Self {
        AfXdpConfig { rx_frames: 2048, tx_frames: 1024, zero_copy: true, busy_poll: false, owner_token: 0 }
    }
}

/// One mapped ring: producer and consumer words shared with the kernel, then descriptors.
struct Ring {
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    flags: *const AtomicU32,
    desc: *mut u8,
    mask: u32,
    /// Our copy of the index we own (producer of a fill/TX ring, consumer of an RX/completion one).
    local: u32,
    map: *mut libc::c_void,
    map_len: usize,
}

impl Ring {
    /// Maps ring `off` of `fd` (at page offset `pgoff`) with `size` descriptors of `desc_len` bytes.
    fn map(fd: RawFd, off: &libc::xdp_ring_offset, pgoff: u64, size: u32, desc_len: usize) -> io::Result<Ring> {
        let map_len = off.desc as usize + size as usize * desc_len;
        // SAFETY: mapping a ring the kernel made on our socket; checked below.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                pgoff as libc::off_t,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(ctx("mmap of an XSK ring")(io::Error::last_os_error()));
        }
        crate::sys::dont_fork(map, map_len);
        let base = map.cast::<u8>();
        // SAFETY: the offsets the kernel gave lie inside the mapping.
        let ring = unsafe {
            Ring {
                producer: base.add(off.producer as usize).cast(),
                consumer: base.add(off.consumer as usize).cast(),
                flags: base.add(off.flags as usize).cast(),
                desc: base.add(off.desc as usize),
                mask: size - 1,
                local: 0,
                map,
                map_len,
            }
        };
        Ok(ring)
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: points into our live mapping, 4-byte aligned, shared with the kernel.
        unsafe { &*self.producer }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as above.
        unsafe { &*self.consumer }
    }

    fn needs_wakeup(&self) -> bool {
        // SAFETY: as above.
        unsafe { &*self.flags }.load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }

    /// Entries of a consumer ring (RX, completion) waiting for us.
    fn available(&self) -> u32 {
        self.producer().load(Ordering::Acquire).wrapping_sub(self.local)
    }

    /// The u64 address slot `index` of a fill or completion ring.
    fn addr(&self, index: u32) -> *mut u64 {
        // SAFETY: index is masked into the ring's descriptors.
        unsafe { self.desc.cast::<u64>().add((index & self.mask) as usize) }
    }

    /// The descriptor slot `index` of an RX or TX ring.
    fn xdp_desc(&self, index: u32) -> *mut libc::xdp_desc {
        // SAFETY: as above.
        unsafe { self.desc.cast::<libc::xdp_desc>().add((index & self.mask) as usize) }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: our own mapping, unmapped once.
        unsafe { libc::munmap(self.map, self.map_len) };
    }
}

/// One XSK bound to one RX queue, with its own UMEM.
struct Queue {
    rx: Ring,
    fill: Ring,
    /// TX and completion rings: queue 0 only.
    tx: Option<(Ring, Ring)>,
    umem: *mut u8,
    umem_len: usize,
    fd: OwnedFd,
}

impl Drop for Queue {
    fn drop(&mut self) {
        // SAFETY: our own anonymous mapping; the socket (closing after) stops using it.
        unsafe { libc::munmap(self.umem.cast(), self.umem_len) };
    }
}

/// The AF_XDP port: every RX queue of one interface.
pub struct AfXdpPort {
    queues: Vec<Queue>,
    /// An epoll descriptor over every XSK, for a thread that sleeps.
    epoll: OwnedFd,
    chunk: usize,
    /// Free TX chunks (addresses in queue 0's UMEM), refilled from the completion ring.
    free_tx: Vec<u64>,
    tx_queued: u32,
    next_queue: usize,
    zero_copy: bool,
    mtu: usize,
    mac: [u8; 6],
    stats: PortStats,
    ifindex: i32,
    /// Holds the MACs of groups received without an IGMP join in the device's filter
    /// (`Port::multicast_filter`): XSKs have no such option.
    mcast_filter: Option<OwnedFd>,
}

// SAFETY: the mappings are owned by this value alone and only touched through &mut self.
unsafe impl Send for AfXdpPort {}

impl std::fmt::Debug for AfXdpPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfXdpPort")
            .field("queues", &self.queues.len())
            .field("zero_copy", &self.zero_copy)
            .field("mtu", &self.mtu)
            .finish()
    }
}

fn ctx(what: &str) -> impl FnOnce(io::Error) -> io::Error + '_ {
    move |e| io::Error::new(e.kind(), format!("{what}: {e}"))
}

fn getsockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, value: &mut T) -> io::Result<()> {
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: value points to a live T of the given size.
    let r = unsafe { libc::getsockopt(fd, level, name, (value as *mut T).cast(), &mut len) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// How many RX queues `iface` has (ETHTOOL_GCHANNELS: RX-only plus combined channels; 1 when
/// the driver does not say).
pub fn rx_queues(iface: &str) -> u32 {
    crate::ethtool::channels(iface).map(|(rx, combined)| (rx + combined).max(1)).unwrap_or(1)
}

/// Whether `iface` was attached with the XDP program (`exasock-ctl attach --datapath xdp`), and
/// in which mode: `Some(true)` native (driver) mode, `Some(false)` SKB mode.
pub fn xdp_attached(iface: &str) -> Option<bool> {
    let dir = state_dir(iface).ok()?;
    if !dir.join(XSKS_MAP).exists() {
        return None;
    }
    if dir.join(crate::control::XDP_LINK_NATIVE).exists() {
        Some(true)
    } else if dir.join(crate::control::XDP_LINK).exists() {
        Some(false)
    } else {
        None
    }
}

/// What binding one queue needs beyond the socket.
struct QueueSpec {
    ifindex: u32,
    queue_id: u32,
    rx_frames: u32,
    tx_frames: u32,
    chunk: usize,
    zero_copy: bool,
}

fn open_queue(spec: &QueueSpec) -> io::Result<Queue> {
    // SAFETY: plain socket creation.
    let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(ctx("cannot open an AF_XDP socket")(io::Error::last_os_error()));
    }
    // SAFETY: a fresh fd we own.
    let fd = crate::fdplace::place(unsafe { OwnedFd::from_raw_fd(raw) })?;
    let raw = fd.as_raw_fd();
    let chunks = spec.rx_frames + spec.tx_frames;
    let umem_len = chunks as usize * spec.chunk;
    // SAFETY: an anonymous private mapping we own.
    let umem = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            umem_len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
            -1,
            0,
        )
    };
    if umem == libc::MAP_FAILED {
        return Err(ctx("cannot map the UMEM")(io::Error::last_os_error()));
    }
    crate::sys::dont_fork(umem, umem_len);
    // The queue owns the UMEM from here on (and unmaps it on any failure below).
    let mut rings = (None, None, None, None);
    let result = (|| -> io::Result<()> {
        let reg = libc::xdp_umem_reg {
            addr: umem as u64,
            len: umem_len as u64,
            chunk_size: spec.chunk as u32,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        setsockopt(raw, libc::SOL_XDP, libc::XDP_UMEM_REG, &reg).map_err(ctx("XDP_UMEM_REG"))?;
        // The fill ring holds every RX chunk, so a returned chunk always has a place.
        setsockopt(raw, libc::SOL_XDP, libc::XDP_UMEM_FILL_RING, &spec.rx_frames).map_err(ctx("fill ring"))?;
        setsockopt(raw, libc::SOL_XDP, libc::XDP_RX_RING, &spec.rx_frames).map_err(ctx("RX ring"))?;
        // A completion ring is mandatory on the socket that registers a UMEM.
        let cr_size = spec.tx_frames.max(1).next_power_of_two();
        setsockopt(raw, libc::SOL_XDP, libc::XDP_UMEM_COMPLETION_RING, &cr_size).map_err(ctx("completion ring"))?;
        if spec.tx_frames > 0 {
            setsockopt(raw, libc::SOL_XDP, libc::XDP_TX_RING, &spec.tx_frames).map_err(ctx("TX ring"))?;
        }
        // SAFETY: a plain C struct the kernel fills in.
        let mut off: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
        getsockopt(raw, libc::SOL_XDP, libc::XDP_MMAP_OFFSETS, &mut off).map_err(ctx("XDP_MMAP_OFFSETS"))?;
        let desc = std::mem::size_of::<libc::xdp_desc>();
        let mut fill = Ring::map(raw, &off.fr, libc::XDP_UMEM_PGOFF_FILL_RING, spec.rx_frames, 8)?;
        let rx = Ring::map(raw, &off.rx, libc::XDP_PGOFF_RX_RING as u64, spec.rx_frames, desc)?;
        let comp = Ring::map(raw, &off.cr, libc::XDP_UMEM_PGOFF_COMPLETION_RING, cr_size, 8)?;
        let tx = if spec.tx_frames > 0 {
            Some(Ring::map(raw, &off.tx, libc::XDP_PGOFF_TX_RING as u64, spec.tx_frames, desc)?)
        } else {
            None
        };
        // Every RX chunk (the first rx_frames of the UMEM) goes to the fill ring.
        for i in 0..spec.rx_frames {
            // SAFETY: a slot of the fill ring, which has rx_frames entries.
            unsafe { *fill.addr(i) = u64::from(i) * spec.chunk as u64 };
        }
        fill.local = spec.rx_frames;
        fill.producer().store(spec.rx_frames, Ordering::Release);
        rings = (Some(rx), Some(fill), Some(comp), tx);
        let mode = if spec.zero_copy { libc::XDP_ZEROCOPY } else { libc::XDP_COPY };
        let sxdp = libc::sockaddr_xdp {
            sxdp_family: libc::AF_XDP as u16,
            sxdp_flags: mode | libc::XDP_USE_NEED_WAKEUP,
            sxdp_ifindex: spec.ifindex,
            sxdp_queue_id: spec.queue_id,
            sxdp_shared_umem_fd: 0,
        };
        // SAFETY: bind with a correctly sized sockaddr_xdp.
        let r = unsafe {
            libc::bind(
                raw,
                (&sxdp as *const libc::sockaddr_xdp).cast(),
                std::mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    })();
    match (result, rings) {
        (Ok(()), (Some(rx), Some(fill), Some(comp), tx)) => {
            Ok(Queue { rx, fill, tx: tx.map(|tx| (tx, comp)), umem: umem.cast(), umem_len, fd })
        }
        (Err(e), _) => {
            // SAFETY: our mapping; the socket closes when `fd` drops.
            unsafe { libc::munmap(umem, umem_len) };
            Err(e)
        }
        (Ok(()), _) => unreachable!("rings are set before a successful bind"),
    }
}

/// How long a queue whose previous owner died may stay bound: the kernel frees a released
/// XSK's queue in deferred work, a moment after the process is gone.
const DEAD_OWNER_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// `open_queue`, retried while the queue is busy but the process named in `xsk_owner` is dead
/// (its sockets are being released).
fn open_queue_waiting(spec: &QueueSpec, dir: &std::path::Path) -> io::Result<Queue> {
    let start = std::time::Instant::now();
    loop {
        match open_queue(spec) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && start.elapsed() < DEAD_OWNER_GRACE => {
                let owner = map_lookup_u64(dir, XSK_OWNER_MAP, 0).unwrap_or(0);
                if owner != 0 && crate::steering::anchor_alive(dir, owner) != Some(false) {
                    return Err(e);
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            r => return r,
        }
    }
}

/// bpf(2) BPF_MAP_LOOKUP_ELEM of a u64 value under a u32 key in a pinned map.
fn map_lookup_u64(dir: &std::path::Path, map: &str, key: u32) -> Option<u64> {
    use std::os::fd::AsFd;
    let data = aya::maps::MapData::from_pin(dir.join(map)).ok()?;
    let mut value = 0u64;
    let fd = data.fd().as_fd().as_raw_fd();
    // SAFETY: our key and value, of the map's sizes, outlive the call.
    unsafe { bpf_map_elem(BPF_MAP_LOOKUP_ELEM, fd, (&key as *const u32).cast(), (&mut value as *mut u64).cast(), 0) }
        .ok()
        .map(|()| value)
}

/// bpf(2) BPF_MAP_UPDATE_ELEM on a pinned map with a u32 key.
fn map_update<V>(dir: &std::path::Path, map: &str, key: u32, value: &V) -> io::Result<()> {
    use std::os::fd::AsFd;
    let data = aya::maps::MapData::from_pin(dir.join(map))
        .map_err(|e| io::Error::other(format!("cannot open the pinned {map} map: {e}")))?;
    let fd = data.fd().as_fd().as_raw_fd();
    // SAFETY: our key and value, of the map's sizes, outlive the call.
    unsafe { bpf_map_elem(BPF_MAP_UPDATE_ELEM, fd, (&key as *const u32).cast(), (value as *const V).cast(), 0) }
        .map_err(ctx(map))
}

impl AfXdpPort {
    /// Binds an XSK to every RX queue of `iface` (attached with `--datapath xdp`), puts them into
    /// the XSKMAP and names this process their owner. `ResourceBusy`: another process serves the
    /// interface over AF_XDP.
    pub fn open(iface: &str, config: AfXdpConfig) -> io::Result<AfXdpPort> {
        if !config.rx_frames.is_power_of_two() || !config.tx_frames.is_power_of_two() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "AF_XDP ring sizes must be powers of two"));
        }
        if xdp_attached(iface).is_none() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{iface} has no XDP program: run `exasock-ctl attach {iface} --datapath xdp`"),
            ));
        }
        let dir = state_dir(iface)?;
        let (ifindex, mtu, mac) = crate::af_packet::interface_info(iface)?;
        let chunk = if mtu + MAX_L2_HEADER + XDP_PACKET_HEADROOM <= 2048 { 2048 } else { 4096 };
        if mtu + MAX_L2_HEADER + XDP_PACKET_HEADROOM > chunk {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{iface}'s MTU {mtu} does not fit a 4 KiB AF_XDP frame"),
            ));
        }
        let n = rx_queues(iface);
        let mut zero_copy = config.zero_copy;
        let mut queues = Vec::with_capacity(n as usize);
        for queue_id in 0..n {
            let mut spec = QueueSpec {
                ifindex: ifindex as u32,
                queue_id,
                rx_frames: config.rx_frames,
                tx_frames: if queue_id == 0 { config.tx_frames } else { 0 },
                chunk,
                zero_copy,
            };
            let q = match open_queue_waiting(&spec, &dir) {
                Err(e) if zero_copy && e.raw_os_error() != Some(libc::EBUSY) => {
                    eprintln!("exasock: AF_XDP zero-copy is not available on {iface} ({e}): using copy mode");
                    zero_copy = false;
                    spec.zero_copy = false;
                    open_queue_waiting(&spec, &dir)
                }
                r => r,
            };
            let q = q.map_err(|e| {
                if e.raw_os_error() == Some(libc::EBUSY) {
                    io::Error::new(
                        io::ErrorKind::ResourceBusy,
                        format!("{iface} queue {queue_id} is already bound by another AF_XDP socket (another process serves {iface} over AF_XDP)"),
                    )
                } else {
                    ctx(&format!("cannot bind an AF_XDP socket to {iface} queue {queue_id}"))(e)
                }
            })?;
            if config.busy_poll {
                // Best effort: a kernel or device without them just does not busy-poll.
                let _ = setsockopt(q.fd.as_raw_fd(), libc::SOL_SOCKET, SO_PREFER_BUSY_POLL, &1i32);
                let _ = setsockopt(q.fd.as_raw_fd(), libc::SOL_SOCKET, SO_BUSY_POLL, &20i32);
                let _ = setsockopt(q.fd.as_raw_fd(), libc::SOL_SOCKET, SO_BUSY_POLL_BUDGET, &64i32);
            }
            queues.push(q);
        }
        // SAFETY: plain epoll_create1.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if ep < 0 {
            return Err(ctx("epoll_create1")(io::Error::last_os_error()));
        }
        // SAFETY: a fresh fd we own.
        let epoll = crate::fdplace::place(unsafe { OwnedFd::from_raw_fd(ep) })?;
        for q in &queues {
            let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: 0 };
            // SAFETY: adding our socket to our epoll set.
            if unsafe { libc::epoll_ctl(epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, q.fd.as_raw_fd(), &mut ev) } < 0 {
                return Err(ctx("epoll_ctl")(io::Error::last_os_error()));
            }
        }
        // The owner token first: a frame redirected to our XSKs then belongs to our flows.
        map_update(&dir, XSK_OWNER_MAP, 0, &config.owner_token)?;
        for (i, q) in queues.iter().enumerate() {
            map_update(&dir, XSKS_MAP, i as u32, &(q.fd.as_raw_fd() as u32))?;
        }
        let free_tx = (0..config.tx_frames).map(|i| u64::from(config.rx_frames + i) * chunk as u64).collect();
        Ok(AfXdpPort {
            queues,
            epoll,
            chunk,
            free_tx,
            tx_queued: 0,
            next_queue: 0,
            zero_copy,
            mtu,
            mac,
            stats: PortStats::default(),
            ifindex,
            // Best effort: without it a group received with no join may be filtered out by a
            // device that filters multicast MACs (the kernel's joins still add theirs).
            mcast_filter: crate::af_packet::filter_socket().ok(),
        })
    }

    /// Whether the sockets run in zero-copy mode (else copy mode).
    pub fn zero_copy(&self) -> bool {
        self.zero_copy
    }

    /// How many RX queues are bound.
    pub fn queues(&self) -> usize {
        self.queues.len()
    }

    /// Takes completed TX chunks back into the free list.
    fn reclaim(&mut self) {
        let Some((_, comp)) = self.queues[0].tx.as_mut() else { return };
        let n = comp.available();
        for i in 0..n {
            // SAFETY: a completion entry the kernel produced (acquired by `available`).
            self.free_tx.push(unsafe { *comp.addr(comp.local.wrapping_add(i)) });
        }
        if n > 0 {
            comp.local = comp.local.wrapping_add(n);
            comp.consumer().store(comp.local, Ordering::Release);
        }
    }

    fn receive_queue(&mut self, q: usize, budget: usize, deliver: &mut dyn FnMut(RxFrame<'_>)) -> usize {
        let chunk = self.chunk as u64;
        let zero_copy = self.zero_copy;
        let queue = &mut self.queues[q];
        let n = queue.rx.available().min(budget as u32);
        if n == 0 {
            // A zero-copy driver with need_wakeup waits for a syscall to refill from us. Copy
            // mode takes fill entries in the kernel's receive path and never asks.
            if zero_copy && queue.fill.needs_wakeup() {
                // SAFETY: a non-blocking zero-length recvfrom on our socket.
                unsafe {
                    libc::recvfrom(
                        queue.fd.as_raw_fd(),
                        std::ptr::null_mut(),
                        0,
                        libc::MSG_DONTWAIT,
                        std::ptr::null_mut(),
                        std::ptr::null_mut(),
                    )
                };
            }
            return 0;
        }
        let mut bytes = 0u64;
        for i in 0..n {
            // SAFETY: an RX descriptor the kernel produced (acquired by `available`).
            let desc = unsafe { *queue.rx.xdp_desc(queue.rx.local.wrapping_add(i)) };
            let (addr, len) = (desc.addr as usize, desc.len as usize);
            if addr + len <= queue.umem_len {
                // SAFETY: the frame lies inside our UMEM (checked) and is ours until we give its
                // chunk back to the fill ring, after the callback.
                let data = unsafe { std::slice::from_raw_parts(queue.umem.add(addr), len) };
                deliver(RxFrame { data, checksum: RxChecksum::Unverified });
                bytes += len as u64;
            }
            // The fill ring has room for every RX chunk, so this never overwrites one in use.
            // SAFETY: a fill ring slot we produce.
            unsafe { *queue.fill.addr(queue.fill.local) = desc.addr & !(chunk - 1) };
            queue.fill.local = queue.fill.local.wrapping_add(1);
        }
        queue.rx.local = queue.rx.local.wrapping_add(n);
        queue.rx.consumer().store(queue.rx.local, Ordering::Release);
        queue.fill.producer().store(queue.fill.local, Ordering::Release);
        self.stats.rx_frames += u64::from(n);
        self.stats.rx_bytes += bytes;
        n as usize
    }

    /// Kicks the TX ring while the kernel asks for it and has not taken every descriptor: in
    /// copy mode one sendto sends at most 32 (the kernel's TX_BATCH_SIZE), and a 64 KB datagram
    /// is 45 frames, whose last 13 would otherwise wait for the next send (seconds later).
    /// Frames left by a busy device are kicked again by the next `receive`.
    fn kick_tx(&mut self) -> io::Result<()> {
        const MAX_KICKS: u32 = 64;
        let queue = &mut self.queues[0];
        let Some((tx, _)) = queue.tx.as_mut() else { return Ok(()) };
        for _ in 0..MAX_KICKS {
            if !tx.needs_wakeup() || tx.consumer().load(Ordering::Acquire) == tx.local {
                break;
            }
            self.stats.tx_kicks += 1;
            // SAFETY: a zero-length sendto kicks the TX ring.
            let r = unsafe {
                libc::sendto(queue.fd.as_raw_fd(), std::ptr::null(), 0, libc::MSG_DONTWAIT, std::ptr::null(), 0)
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                // EAGAIN/EBUSY: the kernel is still sending an earlier batch; ENOBUFS: the
                // device queue is full. The frames stay queued and go with a later kick.
                if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS)) {
                    break;
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// Whether descriptors we produced wait in the TX ring for the kernel.
    fn tx_pending(&self) -> bool {
        self.queues[0].tx.as_ref().is_some_and(|(tx, _)| tx.consumer().load(Ordering::Acquire) != tx.local)
    }

    fn kernel_stats(&self) -> (u64, u64) {
        let (mut rx, mut tx) = (0, 0);
        for q in &self.queues {
            // SAFETY: a plain C struct the kernel fills in.
            let mut st: libc::xdp_statistics = unsafe { std::mem::zeroed() };
            if getsockopt(q.fd.as_raw_fd(), libc::SOL_XDP, libc::XDP_STATISTICS, &mut st).is_ok() {
                rx += st.rx_dropped + st.rx_invalid_descs + st.rx_ring_full;
                tx += st.tx_invalid_descs;
            }
        }
        (rx, tx)
    }
}

impl Port for AfXdpPort {
    fn receive(&mut self, budget: usize, deliver: &mut dyn FnMut(RxFrame<'_>)) -> usize {
        if self.tx_queued == 0 && self.tx_pending() {
            // A kick that found the device busy left frames behind.
            let _ = self.kick_tx();
        }
        let n = self.queues.len();
        let mut got = 0;
        // Round-robin start, so a busy queue cannot starve the others.
        for k in 0..n {
            if got >= budget {
                break;
            }
            let q = (self.next_queue + k) % n;
            got += self.receive_queue(q, budget - got, deliver);
        }
        self.next_queue = (self.next_queue + 1) % n;
        got
    }

    fn transmit(&mut self, build: &mut dyn FnMut(&mut [u8]) -> usize) -> Result<usize, TxError> {
        if self.free_tx.is_empty() {
            self.reclaim();
        }
        let max = self.max_frame_len().min(self.chunk);
        let Some(addr) = self.free_tx.pop() else {
            return Err(TxError::RingFull);
        };
        let queue = &mut self.queues[0];
        let Some((tx, _)) = queue.tx.as_mut() else {
            return Err(TxError::RingFull);
        };
        // SAFETY: a free TX chunk of our UMEM, `chunk` bytes long, owned by us until completed.
        let buf = unsafe { std::slice::from_raw_parts_mut(queue.umem.add(addr as usize), max) };
        let len = build(buf);
        if len == 0 || len > max {
            self.free_tx.push(addr);
            return if len == 0 { Ok(0) } else { Err(TxError::FrameTooLong { len, max }) };
        }
        // The TX ring has as many entries as there are TX chunks: a free chunk means a free slot.
        // SAFETY: a TX ring slot we produce.
        unsafe { *tx.xdp_desc(tx.local) = libc::xdp_desc { addr, len: len as u32, options: 0 } };
        tx.local = tx.local.wrapping_add(1);
        self.tx_queued += 1;
        self.stats.tx_frames += 1;
        self.stats.tx_bytes += len as u64;
        Ok(len)
    }

    fn tx_available(&self, frames: usize) -> bool {
        let Some((_, comp)) = self.queues[0].tx.as_ref() else { return false };
        self.free_tx.len() + comp.available() as usize >= frames
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.tx_queued == 0 {
            return Ok(());
        }
        self.tx_queued = 0;
        if let Some((tx, _)) = self.queues[0].tx.as_mut() {
            tx.producer().store(tx.local, Ordering::Release);
        }
        self.kick_tx()?;
        self.reclaim();
        Ok(())
    }

    fn wait_fd(&self) -> Option<RawFd> {
        Some(self.epoll.as_raw_fd())
    }

    fn internal_fds(&self) -> Vec<RawFd> {
        let mut fds: Vec<RawFd> = self.queues.iter().map(|q| q.fd.as_raw_fd()).collect();
        fds.push(self.epoll.as_raw_fd());
        fds.extend(self.mcast_filter.as_ref().map(|f| f.as_raw_fd()));
        fds
    }

    fn multicast_filter(&mut self, mac: [u8; 6], add: bool) -> io::Result<()> {
        let Some(fd) = &self.mcast_filter else {
            return Err(io::Error::new(io::ErrorKind::Unsupported, "no packet socket for the device's filter"));
        };
        crate::af_packet::packet_multicast(fd.as_raw_fd(), self.ifindex, mac, add)
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn stats(&self) -> PortStats {
        let (rx, tx) = self.kernel_stats();
        let mut s = self.stats;
        s.rx_dropped += rx;
        s.tx_dropped += tx;
        s
    }

    fn kind(&self) -> &'static str {
        "af_xdp"
    }
}
