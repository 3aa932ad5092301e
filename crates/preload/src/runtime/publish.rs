//! The process's accelerated sockets, published for exasock-stat (crates/stat-format): a
//! shared-memory file made with the runtime, a record per slot written under a seqlock.
//!
//! Never on the per-packet path: a record is written when its socket turns accelerated and
//! freed when it is released (both under the runtime lock, already taken by those calls), and
//! the worker refreshes every record's counters at most every `REFRESH` (it holds the lock for
//! that). The file is made with raw syscalls (our own `open`/`close` exports must not see it),
//! its descriptor closed once mapped, and removed at exit and before exec; a process killed
//! outright leaves it, and exasock-stat recognises it as a dead process's and sweeps it.

use super::*;
use stat_format::layout::{Kind, FILE_BYTES};
use stat_format::{naming, ProcessInfo, Region, SocketRecord, State};
use std::sync::atomic::AtomicPtr;

/// How often the worker rewrites every record's counters.
pub const REFRESH: Duration = Duration::from_millis(100);

/// The mapped file (null: none, e.g. it could not be made, or in a fork child).
static REGION: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
/// The process header as last published (pid and start time also name the file).
static PID: AtomicU32 = AtomicU32::new(0);
static START_TIME: AtomicU64 = AtomicU64::new(0);
/// When the worker last refreshed (driver clock, ns).
static LAST_REFRESH: AtomicU64 = AtomicU64::new(0);
/// Between release_for_exec and a failed exec's reclaim: nothing is published.
static SUSPENDED: AtomicBool = AtomicBool::new(false);

fn region() -> Option<Region<'static>> {
    let p = REGION.load(Ordering::Acquire);
    if p.is_null() || SUSPENDED.load(Ordering::Relaxed) {
        return None;
    }
    // SAFETY: REGION is only ever a live MAP_SHARED mapping of FILE_BYTES, never unmapped.
    unsafe { Region::from_raw(p, FILE_BYTES) }
}

/// The publication's mapping, as the watcher inherits it: the watcher reads the records there
/// after the program died (the mapping outlives the file's removal).
#[derive(Debug, Clone, Copy)]
pub(super) struct Mapping(*mut u8);

impl Mapping {
    /// The records.
    pub(super) fn region(&self) -> Option<Region<'static>> {
        // SAFETY: as in `region`: a live MAP_SHARED mapping of FILE_BYTES, never unmapped.
        unsafe { Region::from_raw(self.0, FILE_BYTES) }
    }
}

/// This process's publication mapping, if it has one.
pub(super) fn mapping() -> Option<Mapping> {
    let p = REGION.load(Ordering::Acquire);
    (!p.is_null()).then_some(Mapping(p))
}

/// Makes and maps the file (Runtime::open, under the lock). A failure costs only the listing.
pub(super) fn open(netns_fd: i32) {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() } as u32;
    let Some(start_time) = own_start_time() else { return };
    let mut path = [0u8; 96];
    naming::path_into(&mut path, pid, start_time);
    let dir = std::ffi::CString::new(naming::DIR).expect("no NUL");
    // SAFETY: raw syscalls on NUL-terminated paths we own; the fd is closed once mapped.
    let ptr = unsafe {
        if libc::syscall(libc::SYS_mkdirat, libc::AT_FDCWD, dir.as_ptr(), 0o1777) == 0 {
            // The umask took bits off: any user's program publishes here, as in /tmp.
            libc::syscall(libc::SYS_fchmodat, libc::AT_FDCWD, dir.as_ptr(), 0o1777);
        }
        let flags = libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC | libc::O_NOFOLLOW;
        let fd = libc::syscall(libc::SYS_openat, libc::AT_FDCWD, path.as_ptr(), flags, 0o644) as i32;
        if fd < 0 {
            log::warning!(
                "exasock-stat will not list this process: cannot create {}: {}",
                naming::DIR,
                std::io::Error::last_os_error()
            );
            return;
        }
        let ok = libc::syscall(libc::SYS_ftruncate, fd, FILE_BYTES as libc::off_t) == 0;
        let p = if ok {
            libc::mmap(std::ptr::null_mut(), FILE_BYTES, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd, 0)
        } else {
            libc::MAP_FAILED
        };
        libc::syscall(libc::SYS_close, fd);
        if p == libc::MAP_FAILED {
            libc::syscall(libc::SYS_unlinkat, libc::AT_FDCWD, path.as_ptr(), 0);
            return;
        }
        p.cast::<u8>()
    };
    PID.store(pid, Ordering::Relaxed);
    START_TIME.store(start_time, Ordering::Relaxed);
    open_comm();
    // SAFETY: as in `region`: a fresh mapping of FILE_BYTES.
    let Some(r) = (unsafe { Region::from_raw(ptr, FILE_BYTES) }) else { return };
    r.set_process(&ProcessInfo { netns_cookie: netns_cookie(netns_fd), ..process_info(0, Drops::default()) });
    r.init();
    REGION.store(ptr, Ordering::Release);
}

/// The counters of the whole process that its header publishes.
#[derive(Default)]
struct Drops {
    checksum: u64,
    no_buffer: u64,
    to_kernel: u64,
    malformed: u64,
    fragments: u64,
}

/// The process header with the given counters.
fn process_info(high_water: u32, d: Drops) -> ProcessInfo {
    // The process's name, not this thread's (the worker calls this too, and is "exasock").
    let mut comm = [0u8; 16];
    let fd = COMM_FD.load(Ordering::Relaxed);
    // SAFETY: a read at offset 0 (procfs makes the text anew) into our own buffer.
    let n = (fd >= 0).then(|| unsafe { libc::syscall(libc::SYS_pread64, fd, comm.as_mut_ptr(), comm.len(), 0) });
    if let Some(n) = n.and_then(|n| usize::try_from(n).ok()) {
        comm[n..].fill(0);
        if n > 0 && comm[n - 1] == b'\n' {
            comm[n - 1] = 0;
        }
    }
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    ProcessInfo {
        pid: PID.load(Ordering::Relaxed),
        start_time: START_TIME.load(Ordering::Relaxed),
        netns_cookie: NETNS_COOKIE.load(Ordering::Relaxed),
        uid,
        comm,
        high_water,
        drops_checksum: d.checksum,
        drops_no_buffer: d.no_buffer,
        to_kernel: d.to_kernel,
        drops_malformed: d.malformed,
        drops_fragments: d.fragments,
    }
}

static NETNS_COOKIE: AtomicU64 = AtomicU64::new(0);

/// /proc/self/comm, kept open (an Internal fd at the top of the range) and read again at each
/// refresh: opening it there would take the lowest free descriptor for a moment, from the
/// worker thread, and a program's own socket() or open() at that moment would get another
/// number than POSIX's lowest free one (the C suite saw it).
static COMM_FD: AtomicI32 = AtomicI32::new(-1);

/// Opens (or, in a process that opens its own runtime after a fork, opens again) COMM_FD.
fn open_comm() {
    // SAFETY: raw syscalls on a NUL-terminated path and on descriptors we own.
    unsafe {
        let old = COMM_FD.swap(-1, Ordering::Relaxed);
        if old >= 0 {
            fdtable::set(old, FdState::Kernel);
            libc::syscall(libc::SYS_close, old);
        }
        let fd = libc::syscall(
            libc::SYS_openat,
            libc::AT_FDCWD,
            c"/proc/self/comm".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        ) as i32;
        if fd < 0 {
            return;
        }
        let owned = <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd);
        if let Ok(placed) = nic::fdplace::place(owned) {
            let fd = std::os::fd::IntoRawFd::into_raw_fd(placed);
            fdtable::set(fd, FdState::Internal);
            COMM_FD.store(fd, Ordering::Relaxed);
        }
    }
}

/// SO_NETNS_COOKIE of a socket of ours (the ring): the namespace the process serves.
fn netns_cookie(fd: i32) -> u64 {
    const SO_NETNS_COOKIE: i32 = 71;
    let mut cookie = 0u64;
    let mut len = 8 as libc::socklen_t;
    // SAFETY: an 8-byte option into our own u64; the real getsockopt, not our export.
    let r = unsafe {
        crate::real::getsockopt(fd, libc::SOL_SOCKET, SO_NETNS_COOKIE, (&mut cookie as *mut u64).cast(), &mut len)
    };
    let cookie = if r == 0 { cookie } else { 0 };
    NETNS_COOKIE.store(cookie, Ordering::Relaxed);
    cookie
}

/// Reads a small /proc file with raw syscalls into `buf`; the bytes read.
fn read_proc(path: &std::ffi::CStr, buf: &mut [u8]) -> Option<usize> {
    // SAFETY: raw open/read/close of a NUL-terminated path into our own buffer.
    let n = unsafe {
        let fd =
            libc::syscall(libc::SYS_openat, libc::AT_FDCWD, path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) as i32;
        if fd < 0 {
            return None;
        }
        let n = libc::syscall(libc::SYS_read, fd, buf.as_mut_ptr(), buf.len());
        libc::syscall(libc::SYS_close, fd);
        n
    };
    usize::try_from(n).ok()
}

/// Field 22 of /proc/self/stat.
fn own_start_time() -> Option<u64> {
    let mut buf = [0u8; 1024];
    let n = read_proc(c"/proc/self/stat", &mut buf)?;
    naming::start_time_of_stat(&buf[..n])
}

/// The record of slot `s`, named by `fds`.
fn record_of(rt: &mut Runtime, s: &Slot, fds: &[i32]) -> Option<SocketRecord> {
    let stack = rt.driver.stack();
    let h = s.handle;
    let mut r = SocketRecord::default();
    for (i, fd) in fds.iter().take(r.fds.len()).enumerate() {
        r.fds[i] = *fd;
        r.fd_count = i as u8 + 1;
    }
    let addr = |a: Option<SocketAddrV4>| a.map_or((Ipv4Addr::UNSPECIFIED, 0), |a| (*a.ip(), a.port()));
    match s.proto {
        Proto::Udp => {
            let (local, remote) = stack.udp_addresses(h).ok()?;
            r.kind = if remote.is_some() { Kind::UdpConn } else { Kind::Udp };
            r.state = remote.map(|_| State::Established);
            r.local = addr(local);
            r.remote = addr(remote);
            r.recv_q = stack.udp_queued_bytes(h).unwrap_or(0) as u32;
            r.drops_queue_full = stack.udp_drops(h).unwrap_or(0);
            r.rx_datagrams = stack.udp_arrivals(h).unwrap_or(0);
        }
        Proto::Tcp => {
            let state = stack.tcp_state(h).ok()?;
            let (local, remote) = stack.tcp_addresses(h).ok()?;
            r.local = addr(local.or(Some(SocketAddrV4::new(s.flow.local_ip, s.flow.local_port))));
            r.state = Some(state_of(state));
            if let Ok(l) = stack.tcp_listener_info(h) {
                r.kind = Kind::TcpListen;
                r.recv_q = l.accept_queue as u32;
                r.conn_requests = l.requests;
                r.conn_established = l.established;
                r.syn_queue = l.syn_queue as u32;
                r.backlog = l.backlog as u32;
                r.drops_queue_full = l.syn_drops + l.overflows;
                return Some(r);
            }
            r.kind = Kind::TcpConn;
            r.remote = addr(remote.or(s.flow.remote));
            r.recv_q = stack.tcp_readable_len(h).unwrap_or(0) as u32;
            let Ok(i) = stack.tcp_info(h) else { return Some(r) };
            r.send_q = i.unacked;
            r.drops_queue_full = i.rcv_dropped;
            r.challenge_acks = i.challenge_acks.min(u64::from(u32::MAX)) as u32;
            r.paws_rejected = i.paws_rejected.min(u64::from(u32::MAX)) as u32;
            if let Ok((snd_nxt, rcv_nxt)) = stack.tcp_sequence(h) {
                (r.snd_nxt, r.rcv_nxt) = (snd_nxt, rcv_nxt);
            }
            // As the original: every diagnostic is 0 before the handshake completes.
            if state.is_synchronized() {
                r.rx_bytes = i.bytes_received;
                r.rx_delivered = i.bytes_delivered;
                r.tx_bytes = i.bytes_sent;
                r.tx_acked = i.bytes_acked;
                r.retrans_fast = i.fast_retransmits as u32;
                r.retrans_timeout = i.timeout_retransmits as u32;
                r.retrans_bytes = i.bytes_retransmitted;
                r.window_peer = i.snd_wnd;
                r.window_local = i.rcv_wnd;
                r.wscale_peer = i.snd_wscale;
                r.wscale_local = i.rcv_wscale;
                r.cwnd = i.cwnd;
                r.ssthresh = i.ssthresh;
                r.mss_tx = i.snd_mss;
                r.mss_rx = i.rcv_mss;
                r.srtt_us = i.srtt.as_micros() as u32;
                r.rto_us = i.rto.as_micros() as u32;
            }
        }
    }
    Some(r)
}

fn state_of(s: stack::tcp::State) -> State {
    use stack::tcp::State as T;
    match s {
        T::Closed => State::Closed,
        T::Listen => State::Listen,
        T::SynSent => State::SynSent,
        T::SynReceived => State::SynReceived,
        T::Established => State::Established,
        T::FinWait1 => State::FinWait1,
        T::FinWait2 => State::FinWait2,
        T::CloseWait => State::CloseWait,
        T::Closing => State::Closing,
        T::LastAck => State::LastAck,
        T::TimeWait => State::TimeWait,
    }
}

fn index_of(id: u32) -> usize {
    (id & ((1 << INDEX_BITS) - 1)) as usize
}

/// Publishes the header: how far records go, and the counters of the whole process.
fn publish_header(rt: &mut Runtime, r: &Region<'_>) {
    let st = *rt.driver.stack().stats();
    rt.driver.refresh_port_stats();
    let drops = Drops {
        checksum: st.ip_bad_checksum + st.udp_bad_checksum + st.tcp_bad_checksum,
        no_buffer: rt.driver.port_stats().rx_dropped,
        to_kernel: st.tx_to_kernel,
        malformed: st.ip_malformed + st.udp_malformed + st.tcp_malformed + st.icmp_malformed,
        fragments: st.frag_dropped,
    };
    r.set_process(&process_info(rt.slots.len() as u32, drops));
}

/// Slot `id` turned accelerated behind `fd` (under the lock): listed at once.
pub(super) fn socket_opened(rt: &mut Runtime, id: u32, fd: i32) {
    let Some(r) = region() else { return };
    let Some(s) = rt.slot(id) else { return };
    let rec = record_of(rt, &s, &[fd]);
    r.set_record(index_of(id), rec.as_ref());
    if r.process().is_none_or(|p| p.high_water as usize <= index_of(id)) {
        publish_header(rt, &r);
    }
}

/// Slot `id` was released (under the lock): no longer listed.
pub(super) fn socket_closed(id: u32) {
    if let Some(r) = region() {
        r.set_record(index_of(id), None);
    }
}

/// Rewrites every record and the header if `REFRESH` has passed (the worker, under the lock).
pub(super) fn refresh_if_due(rt: &mut Runtime) {
    let now = driver::clock::now().as_nanos();
    if now.saturating_sub(LAST_REFRESH.load(Ordering::Relaxed)) < REFRESH.as_nanos() as u64 {
        return;
    }
    LAST_REFRESH.store(now, Ordering::Relaxed);
    refresh(rt);
}

/// Whether a refresh is due (read without the lock, so the worker takes it only then).
pub(super) fn due() -> bool {
    !REGION.load(Ordering::Relaxed).is_null()
        && driver::clock::now().as_nanos().saturating_sub(LAST_REFRESH.load(Ordering::Relaxed))
            >= REFRESH.as_nanos() as u64
}

/// Rewrites every record and the header now.
fn refresh(rt: &mut Runtime) {
    let Some(r) = region() else { return };
    // At most BATCH records a round, where the last round stopped: the lock is held for a
    // bounded time however many sockets there are. Measured (release build, 1,000 UDP
    // sockets, all in one round before the batch): 89-101 us, about 95 ns a socket; so a
    // round holds the lock about 25 us, and 10,000 sockets are all rewritten within 4 s.
    let n = rt.slots.len();
    let start = CURSOR.load(Ordering::Relaxed).min(n);
    let end = (start + BATCH).min(n);
    CURSOR.store(if end >= n { 0 } else { end }, Ordering::Relaxed);
    // The descriptors of each slot in range, lowest first, in one scan of the table (read as
    // recorded: no inherited socket is claimed from a parent).
    let mut named = vec![([0i32; stat_format::layout::MAX_FDS], 0usize); end - start];
    for fd in 0..fdtable::accel_end() as i32 {
        if let FdState::Accel(id) = fdtable::get_raw(fd) {
            let index = index_of(id);
            let live = rt.slots.get(index).copied().flatten().is_some_and(|s| s.id == id);
            if let Some((fds, count)) = index.checked_sub(start).and_then(|i| named.get_mut(i)).filter(|_| live) {
                if *count < fds.len() {
                    fds[*count] = fd;
                    *count += 1;
                }
            }
        }
    }
    for (i, (fds, count)) in named.iter().enumerate() {
        let rec = rt.slots[start + i].and_then(|s| record_of(rt, &s, &fds[..*count]));
        r.set_record(start + i, rec.as_ref());
    }
    publish_header(rt, &r);
}

/// Records a refresh rewrites at most.
const BATCH: usize = 256;
/// Where the next refresh starts.
static CURSOR: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Before exec: nothing is listed (the sockets go to the kernel) until a failed exec's
/// reclaim, or for good if the exec succeeds (then the new image, if it accelerates
/// anything, makes the file anew; the process's exit or death lets exasock-stat sweep it).
pub(super) fn suspend(rt: &mut Runtime) {
    if let Some(r) = region() {
        for index in 0..rt.slots.len() {
            r.set_record(index, None);
        }
    }
    SUSPENDED.store(true, Ordering::Relaxed);
}

/// After a failed exec: listed again from the next refresh.
pub(super) fn resume() {
    SUSPENDED.store(false, Ordering::Relaxed);
    LAST_REFRESH.store(0, Ordering::Relaxed);
}

/// At exit (and after a forced detach): the file goes (raw unlink; the mapping stays until the
/// process ends), and the header lists no record: every socket went to the kernel, so the
/// watcher, which reads the mapping once the process is gone, has no peer to reset.
pub(super) fn remove() {
    if let Some(r) = region() {
        if let Some(p) = r.process() {
            r.set_process(&ProcessInfo { high_water: 0, ..p });
        }
    }
    if REGION.swap(std::ptr::null_mut(), Ordering::AcqRel).is_null() {
        return;
    }
    let mut path = [0u8; 96];
    naming::path_into(&mut path, PID.load(Ordering::Relaxed), START_TIME.load(Ordering::Relaxed));
    // SAFETY: a raw unlink of a NUL-terminated path we own.
    unsafe { libc::syscall(libc::SYS_unlinkat, libc::AT_FDCWD, path.as_ptr(), 0) };
}

/// In a fork child: the parent's file is not ours to write or remove.
pub(super) fn forget_in_child() {
    REGION.store(std::ptr::null_mut(), Ordering::Release);
    // The child closes its copy with exasock's other descriptors: the number is not ours any
    // more, and a runtime the child opens must not close it again (it may be reused by then:
    // the child's own channel's end, whose loss made the worker spin on its EOF).
    COMM_FD.store(-1, Ordering::Relaxed);
    SUSPENDED.store(false, Ordering::Relaxed);
    LAST_REFRESH.store(0, Ordering::Relaxed);
}
