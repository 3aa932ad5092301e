//! The accelerated side of the process: one driver (stack + port) for the attached interface,
//! the stack sockets behind accelerated fds, and the lock that guards them.
//!
//! Nothing here exists until the first socket is accelerated: a program that accelerates
//! nothing opens no ring and starts no thread.

use crate::fdtable::FdState;
use crate::lock::{Guard, Lock};
use crate::{config, errno, fdtable, log};
use driver::Driver;
use nic::steering::{attached_interfaces, Flow, SteeringError};
use stack::udp::UdpError;
use stack::SocketHandle;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Which protocol a slot's socket speaks: the operations the intercepted calls dispatch to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// A datagram socket (the stack's UDP).
    Udp,
    /// A stream socket: a listener or a connection (the stack's TCP).
    Tcp,
}

/// One accelerated socket.
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    /// The stack's socket.
    pub handle: SocketHandle,
    /// Its protocol.
    pub proto: Proto,
    /// The flow claimed for it.
    pub flow: Flow,
    /// shutdown(SHUT_RD): receives return 0 once the queue is empty.
    pub shut_rd: bool,
    /// shutdown(SHUT_WR): sends fail with EPIPE.
    pub shut_wr: bool,
    /// Which receive timestamps recvmsg reports.
    pub timestamps: Timestamps,
    /// Descriptors naming this socket (dup, dup2, dup3, F_DUPFD) and calls waiting on it; the
    /// socket is released when the last goes.
    pub refs: u32,
    /// Its id: the index in the slot table, and in the high half a generation, so that an id
    /// read before a close never names the socket that reuses the index afterwards.
    pub id: u32,
    /// The kernel socket's inode: tells our sockets from others on the same port.
    pub inode: u64,
    /// A non-blocking connect said EINPROGRESS: the next connect reports how it ended (0 once
    /// connected, as Linux, then EISCONN).
    pub connect_pending: bool,
}

/// The index half of a slot id.
const INDEX_BITS: u32 = 16;

/// The receive timestamp options set on a socket (SO_TIMESTAMP, SO_TIMESTAMPNS,
/// SO_TIMESTAMPING's flags); the kernel socket holds them, this mirrors them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timestamps {
    /// SO_TIMESTAMP: an SCM_TIMESTAMP timeval.
    pub micro: bool,
    /// SO_TIMESTAMPNS: an SCM_TIMESTAMPNS timespec.
    pub nano: bool,
    /// SO_TIMESTAMPING flags: an SCM_TIMESTAMPING with the software stamp when they ask for it.
    pub timestamping: u32,
}

impl Timestamps {
    /// Reads the options from the kernel socket.
    pub fn of(fd: i32) -> Timestamps {
        let int = |name: i32| {
            let mut v: libc::c_int = 0;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: getsockopt into an int we own.
            let r = unsafe {
                crate::real::getsockopt(fd, libc::SOL_SOCKET, name, (&mut v as *mut libc::c_int).cast(), &mut len)
            };
            if r == 0 {
                v
            } else {
                0
            }
        };
        Timestamps {
            micro: int(libc::SO_TIMESTAMP) != 0,
            nano: int(libc::SO_TIMESTAMPNS) != 0,
            timestamping: int(libc::SO_TIMESTAMPING) as u32,
        }
    }

    /// Whether any stamp is asked for.
    pub fn any(&self) -> bool {
        self.micro
            || self.nano
            || self.timestamping & (libc::SOF_TIMESTAMPING_SOFTWARE | libc::SOF_TIMESTAMPING_RX_SOFTWARE) != 0
    }
}

/// The driver and the sockets it serves.
pub struct Runtime {
    /// The stack and its datapath.
    pub driver: Driver,
    slots: Vec<Option<Slot>>,
    /// Gathers a datagram for recvmsg with several iovecs.
    pub scratch: Vec<u8>,
    /// The process that opened the driver: a copy of it in a child made without the fork
    /// handlers (raw clone) must not release the parent's flows.
    pid: u32,
    /// The generation of the next slot id.
    generation: u32,
}

/// The runtime of this process, once a socket was accelerated.
pub static RUNTIME: Lock<Option<Runtime>> = Lock::new(None);

/// Bumped whenever datagrams reach sockets; sleeping callers wait on it (futex).
static GENERATION: AtomicU32 = AtomicU32::new(0);
/// Callers sleeping on GENERATION: wakes are only sent when someone sleeps.
static SLEEPERS: AtomicU32 = AtomicU32::new(0);
/// When an application thread last drove the datapath (CLOCK_MONOTONIC ns): the worker only
/// sleeps on the ring while none does.
static LAST_APP_POLL: AtomicU64 = AtomicU64::new(0);
/// The worker stays out of the way of application threads driving the ring by waiting on this
/// word; work queued for it bumps it.
static WORKER_WAKE: AtomicU32 = AtomicU32::new(0);
/// The worker is waiting on WORKER_WAKE (wakes are only sent then).
static WORKER_PARKED: AtomicBool = AtomicBool::new(false);

fn futex(word: &AtomicU32, op: i32, val: u32, timeout: Option<&libc::timespec>) {
    // SAFETY: a futex call on a word we own; the timeout, if any, outlives the call.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            op | libc::FUTEX_PRIVATE_FLAG,
            val,
            timeout.map_or(std::ptr::null(), |t| t as *const libc::timespec),
        );
    }
}

/// The ring's pollable fd, which sleeping callers wait on (-1: none, e.g. in a fork child).
static RING_FD: AtomicI32 = AtomicI32::new(-1);
/// An eventfd that wakes sleeping callers when another thread queued data for them (-1: none).
static NOTIFY_FD: AtomicI32 = AtomicI32::new(-1);

/// Wakes every sleeping caller: datagrams arrived for somebody.
fn notify() {
    // SeqCst with the sleepers' side (Waiter::wait): a Dekker pattern, each stores then loads.
    GENERATION.fetch_add(1, Ordering::SeqCst);
    if SLEEPERS.load(Ordering::SeqCst) > 0 {
        let fd = NOTIFY_FD.load(Ordering::Relaxed);
        if fd >= 0 {
            let one = 1u64;
            // SAFETY: an 8-byte write to our eventfd; a raw syscall, not our export.
            unsafe { libc::syscall(libc::SYS_write, fd, &one as *const u64, 8) };
        }
    }
}

/// Makes the eventfd sleepers wait on beside the ring; returns it (an Internal fd).
fn open_notify_fd() -> Option<i32> {
    // SAFETY: eventfd2 with flags only.
    let fd = unsafe { libc::syscall(libc::SYS_eventfd2, 0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) } as i32;
    if fd < 0 {
        return None;
    }
    // SAFETY: the fd was just created and is ours alone.
    let owned = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let placed = nic::fdplace::place(owned).ok()?;
    Some(std::os::fd::IntoRawFd::into_raw_fd(placed))
}
static WARNED_NO_INTERFACE: AtomicBool = AtomicBool::new(false);

/// The lock around the runtime.
pub fn lock() -> Guard<'static, Option<Runtime>> {
    RUNTIME.lock()
}

/// Why a socket stays on the kernel.
#[derive(Debug)]
pub enum NotAccelerated {
    /// No interface is attached in this namespace.
    NoInterface,
    /// The address is not on the attached interface.
    NotOurs,
    /// Something failed; the message says what.
    Failed(String),
}

impl Runtime {
    fn open() -> Result<Runtime, NotAccelerated> {
        let ifaces = attached_interfaces();
        let Some(iface) = ifaces.first() else {
            if !WARNED_NO_INTERFACE.swap(true, Ordering::Relaxed) {
                log::warning!("no interface is attached in this network namespace: sockets stay on the kernel (run `exasock-ctl attach IFACE`)");
            }
            return Err(NotAccelerated::NoInterface);
        };
        // exasock's descriptors go to the top of the range (below the soft RLIMIT_NOFILE and the
        // fd table's end), out of the numbers the program expects socket() and open() to give.
        nic::fdplace::set_base(Some(internal_fd_base()));
        let driver = Driver::open(iface).map_err(|e| NotAccelerated::Failed(format!("{iface}: {e}")))?;
        // ...and the program may not close them or dup2 over them.
        for fd in driver.internal_fds() {
            fdtable::set(fd, fdtable::FdState::Internal);
        }
        RING_FD.store(driver.wait_fds()[0], Ordering::Relaxed);
        if let Some(fd) = open_notify_fd() {
            fdtable::set(fd, fdtable::FdState::Internal);
            NOTIFY_FD.store(fd, Ordering::Relaxed);
        }
        std::thread::Builder::new()
            .name("exasock".into())
            .spawn(worker)
            .map_err(|e| NotAccelerated::Failed(format!("cannot start the worker thread: {e}")))?;
        crate::fork::install();
        Ok(Runtime { driver, slots: Vec::new(), scratch: vec![0u8; 65_536], pid: std::process::id(), generation: 0 })
    }

    /// The socket behind a slot id (None once it was released, even if its index was reused).
    pub fn slot(&self, id: u32) -> Option<Slot> {
        self.slots.get((id & ((1 << INDEX_BITS) - 1)) as usize).copied().flatten().filter(|s| s.id == id)
    }

    fn slot_mut(&mut self, id: u32) -> Option<&mut Slot> {
        self.slots.get_mut((id & ((1 << INDEX_BITS) - 1)) as usize)?.as_mut().filter(|s| s.id == id)
    }

    fn take_slot(&mut self, id: u32) -> Option<Slot> {
        self.slot(id)?;
        self.slots.get_mut((id & ((1 << INDEX_BITS) - 1)) as usize)?.take()
    }

    /// Stores `s` and returns its id; None when every index is taken (the fd table covers no
    /// more descriptors than there are indexes).
    fn insert(&mut self, mut s: Slot) -> Option<u32> {
        let index = match self.slots.iter().position(Option::is_none) {
            Some(i) => i,
            None if self.slots.len() < 1 << INDEX_BITS => {
                self.slots.push(None);
                self.slots.len() - 1
            }
            None => return None,
        };
        self.generation = self.generation.wrapping_add(1);
        s.id = (self.generation << INDEX_BITS) | index as u32;
        self.slots[index] = Some(s);
        Some(s.id)
    }

    /// Re-reads the slot's timestamp options (after a setsockopt on its kernel socket).
    pub fn refresh_timestamps(&mut self, slot: u32, fd: i32) {
        if let Some(s) = self.slot_mut(slot) {
            s.timestamps = Timestamps::of(fd);
        }
    }

    /// Joins (or leaves) a multicast group on the slot's stack socket.
    pub fn membership(&mut self, slot: u32, group: Ipv4Addr, join: bool) -> Result<(), UdpError> {
        let s = self.slot(slot).ok_or(UdpError::BadHandle)?;
        let stack = self.driver.stack();
        if join {
            stack.udp_join(s.handle, group)
        } else {
            stack.udp_leave(s.handle, group)
        }
    }

    /// Records a shutdown of the slot's socket.
    pub fn shutdown(&mut self, slot: u32, rd: bool, wr: bool) {
        if let Some(s) = self.slot_mut(slot) {
            s.shut_rd |= rd;
            s.shut_wr |= wr;
        }
    }

    /// Drives the datapath once on behalf of an application thread, waking sleepers when
    /// datagrams arrived.
    pub fn poll(&mut self) -> usize {
        LAST_APP_POLL.store(driver::clock::now().as_nanos(), Ordering::Relaxed);
        let n = self.driver.poll();
        if n > 0 {
            notify();
        }
        n
    }

    /// What poll/epoll report for a slot's socket (POLLIN, POLLOUT, POLLRDHUP, POLLHUP,
    /// POLLERR, which have the same values as their EPOLL* names), after polling the datapath.
    pub fn events(&mut self, slot: u32) -> u32 {
        let Some(s) = self.slot(slot) else { return 0 };
        self.poll();
        let stack = self.driver.stack();
        match s.proto {
            Proto::Udp => {
                // After SHUT_RD a receive returns at once (0 when empty): readable, as on Linux.
                let readable = s.shut_rd || stack.udp_readable(s.handle).unwrap_or(false);
                // A UDP socket can always be written.
                libc::POLLOUT as u32 | if readable { libc::POLLIN as u32 } else { 0 }
            }
            Proto::Tcp => {
                let Ok(r) = stack.tcp_readiness(s.handle) else { return libc::POLLNVAL as u32 };
                let mut ev = 0;
                let bit = |on: bool, b: libc::c_short| if on { b as u32 } else { 0 };
                ev |= bit(r.readable || s.shut_rd, libc::POLLIN);
                ev |= bit(r.writable, libc::POLLOUT);
                ev |= bit(r.read_hangup, libc::POLLRDHUP);
                ev |= bit(r.hangup, libc::POLLHUP);
                ev |= bit(r.error, libc::POLLERR);
                ev
            }
        }
    }

    /// Changes ever queued to a slot's socket (for edge-triggered epoll).
    pub fn arrivals(&mut self, slot: u32) -> u64 {
        let Some(s) = self.slot(slot) else { return 0 };
        match s.proto {
            Proto::Udp => self.driver.stack().udp_arrivals(s.handle).unwrap_or(0),
            Proto::Tcp => self.driver.stack().tcp_arrivals(s.handle).unwrap_or(0),
        }
    }

    /// Sends the datagram that `iovs` (`total` bytes, checked by the caller) hold from a slot,
    /// gathered into the scratch buffer first.
    ///
    /// # Safety
    /// Each iovec must name `iov_len` readable bytes.
    pub unsafe fn udp_send_gathered(
        &mut self,
        slot: u32,
        iovs: &[libc::iovec],
        total: usize,
        dst: Option<SocketAddrV4>,
    ) -> Result<usize, UdpError> {
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut at = 0;
        for v in iovs {
            let n = v.iov_len.min(scratch.len() - at);
            if n > 0 {
                std::ptr::copy_nonoverlapping(v.iov_base.cast::<u8>(), scratch[at..].as_mut_ptr(), n);
            }
            at += n;
        }
        let r = self.udp_send(slot, &scratch[..total.min(at)], dst);
        self.scratch = scratch;
        r
    }

    /// Sends a datagram from a slot.
    pub fn udp_send(&mut self, slot: u32, data: &[u8], dst: Option<SocketAddrV4>) -> Result<usize, UdpError> {
        let s = self.slot(slot).ok_or(UdpError::BadHandle)?;
        self.driver.send(|stack, tx| stack.udp_send(s.handle, data, dst, tx))
    }
}

/// The lowest number for exasock's own descriptors: 64 below the smaller of the soft
/// RLIMIT_NOFILE and the fd table's size (and never below 64).
fn internal_fd_base() -> i32 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into a struct we own.
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 { lim.rlim_cur } else { 1024 };
    (soft.min(fdtable::MAX_FDS as u64) as i32 - 64).max(64)
}

/// Moves a bound UDP socket onto the stack: `local` is what the kernel socket is bound to.
pub fn accelerate_udp(fd: i32, local: SocketAddrV4, remote: Option<SocketAddrV4>) -> Result<(), NotAccelerated> {
    let mut guard = lock();
    if guard.is_none() {
        *guard = Some(Runtime::open()?);
    }
    let rt = guard.as_mut().expect("just opened");
    // A socket closed in a signal handler may still hold this port's flow.
    release_queued(rt);
    let ip = *local.ip();
    // A socket bound to a group is here because it joined it on the attached interface.
    if !ip.is_unspecified() && !ip.is_multicast() && !rt.driver.stack().interface().has_addr(ip) {
        return Err(NotAccelerated::NotOurs);
    }
    let stack = rt.driver.stack();
    let handle = stack.udp_open();
    let undo = |rt: &mut Runtime, e: String| {
        let _ = rt.driver.stack().udp_close(handle);
        NotAccelerated::Failed(e)
    };
    // The stack checks address sharing as the kernel did: with the kernel socket's options.
    let (reuse_addr, reuse_port) = reuse_flags(fd);
    if let Ok(o) = stack.udp_options_mut(handle) {
        o.reuse_addr = reuse_addr;
        o.reuse_port = reuse_port;
    }
    if let Err(e) = stack.udp_bind(handle, local) {
        return Err(undo(rt, e.to_string()));
    }
    if let Some(r) = remote {
        if let Err(e) = rt.driver.stack().udp_connect(handle, r) {
            return Err(undo(rt, e.to_string()));
        }
    }
    let flow = Flow::udp(ip, local.port());
    let exclusive = exclusive_port(fd);
    let claim = |rt: &mut Runtime| if exclusive { rt.driver.claim_exclusive(flow) } else { rt.driver.claim(flow) };
    let mut claimed = claim(rt);
    if let Err(SteeringError::Claimed { .. }) = claimed {
        // Another process serves the port and this socket shares it (SO_REUSEADDR or
        // SO_REUSEPORT): the flow goes to the kernel, which delivers among all the sockets as
        // Linux does; this one stays a kernel socket. If the owner just left, claim it.
        match rt.driver.share(flow) {
            Ok(false) => claimed = claim(rt),
            Ok(true) => {
                return Err(undo(rt, format!("{flow} is shared with another process: the kernel serves it")));
            }
            Err(e) => claimed = Err(e),
        }
    }
    if let Err(e) = claimed {
        return Err(undo(rt, e.to_string()));
    }
    let inode = socket_inode(fd);
    // The first of our sockets on a port that sockets of others already hold (a process outside
    // exasock bound with SO_REUSEADDR/SO_REUSEPORT before us): the kernel delivers among them.
    if !exclusive && rt.driver.claim_count(flow) == 1 && shared_with_others(rt, flow, inode) {
        let _ = rt.driver.share(flow);
    }
    // The queue holds what the kernel socket would: its effective SO_RCVBUF.
    if let Some(bytes) = kernel_rcvbuf(fd) {
        let _ = rt.driver.stack().udp_set_rcvbuf(handle, bytes);
    }
    let Some(slot) = rt.insert(Slot {
        handle,
        proto: Proto::Udp,
        flow,
        shut_rd: false,
        shut_wr: false,
        timestamps: Timestamps::of(fd),
        refs: 1,
        id: 0,
        inode,
        connect_pending: false,
    }) else {
        let _ = rt.driver.release(flow);
        return Err(undo(rt, "too many accelerated sockets".into()));
    };
    fdtable::set(fd, fdtable::FdState::Accel(slot));
    if config::debug() {
        log::emit(format_args!("exasock: enabled bypass on fd {fd}\n"));
    }
    Ok(())
}

/// Opens the runtime if needed and checks that `local` is ours to serve.
fn runtime_for(guard: &mut Option<Runtime>, local: SocketAddrV4) -> Result<&mut Runtime, NotAccelerated> {
    if guard.is_none() {
        *guard = Some(Runtime::open()?);
    }
    let rt = guard.as_mut().expect("just opened");
    release_queued(rt);
    let ip = *local.ip();
    if !ip.is_unspecified() && !rt.driver.stack().interface().has_addr(ip) {
        return Err(NotAccelerated::NotOurs);
    }
    Ok(rt)
}

/// The TCP options the kernel socket was given that the stack must follow.
fn tcp_options_of(fd: i32, mut o: stack::tcp::TcpSocketOptions) -> stack::tcp::TcpSocketOptions {
    let int = |level: i32, name: i32| {
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt into an int we own.
        let r = unsafe { crate::real::getsockopt(fd, level, name, (&mut v as *mut libc::c_int).cast(), &mut len) };
        (r == 0).then_some(v)
    };
    if let Some(v) = int(libc::IPPROTO_TCP, libc::TCP_NODELAY) {
        o.nodelay = v != 0;
    }
    if let Some(v) = int(libc::SOL_SOCKET, libc::SO_REUSEADDR) {
        o.reuse_addr = v != 0;
    }
    o
}

/// Moves a bound TCP socket that the program made listen onto the stack (its kernel socket
/// listens too: it keeps the port, serves clients on this host and other interfaces, and tells
/// the steering program the owner lives).
pub fn accelerate_tcp_listener(fd: i32, local: SocketAddrV4, backlog: i32) -> Result<(), NotAccelerated> {
    let mut guard = lock();
    let rt = runtime_for(&mut guard, local)?;
    let stack = rt.driver.stack();
    let handle = stack.tcp_open();
    let options = tcp_options_of(fd, stack.tcp_options(handle).map_err(|e| NotAccelerated::Failed(e.to_string()))?);
    let setup = |stack: &mut stack::Stack| -> Result<(), stack::tcp::TcpError> {
        stack.tcp_set_options(handle, options, driver::clock::now())?;
        stack.tcp_bind(handle, local)?;
        stack.tcp_listen(handle, backlog.max(0) as usize)
    };
    if let Err(e) = setup(rt.driver.stack()) {
        let _ = rt.driver.stack().tcp_close(handle, driver::clock::now());
        return Err(NotAccelerated::Failed(e.to_string()));
    }
    let flow = Flow::tcp_listener(*local.ip(), local.port());
    if let Err(e) = rt.driver.claim(flow) {
        let _ = rt.driver.stack().tcp_close(handle, driver::clock::now());
        return Err(NotAccelerated::Failed(e.to_string()));
    }
    adopt(rt, fd, handle, Proto::Tcp, flow)
}

/// Records an accelerated socket behind `fd`.
fn adopt(rt: &mut Runtime, fd: i32, handle: SocketHandle, proto: Proto, flow: Flow) -> Result<(), NotAccelerated> {
    let slot = Slot {
        handle,
        proto,
        flow,
        shut_rd: false,
        shut_wr: false,
        timestamps: Timestamps::default(),
        refs: 1,
        id: 0,
        inode: 0,
        connect_pending: false,
    };
    let Some(slot) = rt.insert(slot) else {
        let _ = rt.driver.release(flow);
        let _ = rt.driver.stack().tcp_abort(handle);
        return Err(NotAccelerated::Failed("too many accelerated sockets".into()));
    };
    match proto {
        Proto::Tcp => fdtable::set_tcp(fd, slot, flow.remote.is_some()),
        Proto::Udp => fdtable::set(fd, fdtable::FdState::Accel(slot)),
    }
    if config::debug() {
        log::emit(format_args!("exasock: enabled bypass on fd {fd}\n"));
    }
    Ok(())
}

/// A connection taken off an accelerated listener's accept queue, not yet given an fd.
#[derive(Debug, Clone, Copy)]
pub struct Accepted {
    handle: SocketHandle,
    flow: Flow,
    /// The peer.
    pub remote: SocketAddrV4,
}

/// Takes a connection off the listener's accept queue (polling the datapath first).
pub fn tcp_accept(slot: u32) -> Result<Accepted, stack::tcp::TcpError> {
    use stack::tcp::TcpError;
    let mut guard = lock();
    let rt = guard.as_mut().ok_or(TcpError::BadHandle)?;
    let s = rt.slot(slot).ok_or(TcpError::BadHandle)?;
    rt.poll();
    let (handle, remote) = rt.driver.tcp(|stack, _| stack.tcp_accept(s.handle))?;
    // The connection's own steering entry was claimed by the driver when its SYN arrived.
    let local = rt
        .driver
        .stack()
        .tcp_addresses(handle)
        .ok()
        .and_then(|(l, _)| l)
        .unwrap_or(SocketAddrV4::new(s.flow.local_ip, s.flow.local_port));
    Ok(Accepted { handle, flow: Flow::tcp_connection(local, remote), remote })
}

/// Gives an accepted connection its descriptor (a kernel socket made for it).
pub fn adopt_accepted(fd: i32, a: Accepted) -> Result<(), NotAccelerated> {
    let mut guard = lock();
    let rt = guard.as_mut().ok_or(NotAccelerated::NoInterface)?;
    adopt(rt, fd, a.handle, Proto::Tcp, a.flow)
}

/// An accepted connection that could not get a descriptor: reset it.
pub fn abort_accepted(a: Accepted) {
    let mut guard = lock();
    let Some(rt) = guard.as_mut() else { return };
    let _ = rt.driver.tcp(|stack, now| {
        let _ = stack.tcp_abort(a.handle);
        stack.tcp_close(a.handle, now)
    });
}

/// The kernel socket's effective SO_RCVBUF (doubled and capped by the kernel as it does).
pub fn kernel_rcvbuf(fd: i32) -> Option<usize> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt into an int we own.
    let r = unsafe {
        crate::real::getsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, (&mut v as *mut libc::c_int).cast(), &mut len)
    };
    (r == 0 && v > 0).then_some(v as usize)
}

/// The inode of the socket behind `fd` (0 if it cannot be read).
fn socket_inode(fd: i32) -> u64 {
    // SAFETY: fstat into a zeroed struct we own.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(fd, &mut st) == 0 {
            st.st_ino
        } else {
            0
        }
    }
}

/// Whether a UDP socket that is not one of ours (`inode`, or another accelerated socket of this
/// process) is bound to an address of `flow`'s port that overlaps it.
fn shared_with_others(rt: &Runtime, flow: Flow, inode: u64) -> bool {
    let Ok(sockets) = driver::netlink::udp_sockets_on_port(flow.local_port) else { return false };
    let ours = |i: u64| i == inode || rt.slots.iter().flatten().any(|s| s.inode == i);
    sockets.iter().any(|s| {
        let ip = *s.local.ip();
        let overlaps = ip == flow.local_ip || ip.is_unspecified() || flow.local_ip.is_unspecified();
        overlaps && !ours(s.inode)
    })
}

/// The kernel socket's SO_REUSEADDR and SO_REUSEPORT.
fn reuse_flags(fd: i32) -> (bool, bool) {
    let flag = |name: i32| {
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt into an int we own.
        let r = unsafe {
            crate::real::getsockopt(fd, libc::SOL_SOCKET, name, (&mut v as *mut libc::c_int).cast(), &mut len)
        };
        r == 0 && v != 0
    };
    (flag(libc::SO_REUSEADDR), flag(libc::SO_REUSEPORT))
}

/// Whether the kernel socket holds its port alone (no SO_REUSEADDR, no SO_REUSEPORT): then no
/// other live socket can, and a flow entry of another pid belongs to a process that is exiting.
fn exclusive_port(fd: i32) -> bool {
    reuse_flags(fd) == (false, false)
}

/// UDP send auto-bind, as the original: an unbound candidate that sends to a destination routed
/// via an attached interface is bound by the kernel to INADDR_ANY:0 and accelerated. Returns
/// whether it now is. Costs a getsockname and a route lookup, only for unbound candidates.
pub fn auto_bind(fd: i32, dst: SocketAddrV4) -> bool {
    if fdtable::hinted_bound(fd) {
        return false;
    }
    match kernel_local(fd) {
        None => return false,
        Some(l) if l.port() != 0 => {
            // Bound and still on the kernel: its next sends pass through with one load.
            fdtable::hint_bound(fd);
            return false;
        }
        Some(_) => {}
    }
    let ifaces = attached_interfaces();
    if ifaces.is_empty() || !routed_via(&ifaces, dst) {
        return false;
    }
    let any = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr { s_addr: 0 },
        sin_zero: [0; 8],
    };
    // SAFETY: binding our own sockaddr_in.
    let r = unsafe {
        crate::real::bind(
            fd,
            (&any as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        )
    };
    if r != 0 {
        return false;
    }
    let Some(local) = kernel_local(fd) else { return false };
    match accelerate_udp(fd, local, None) {
        Ok(()) => {
            crate::epoll::promote(fd);
            true
        }
        Err(NotAccelerated::Failed(why)) => {
            log::warning!("socket fd={fd} stays on the kernel: {why}");
            fdtable::set(fd, fdtable::FdState::Disabled);
            false
        }
        Err(_) => false,
    }
}

/// Whether the kernel routes `dst` out of one of `ifaces`.
fn routed_via(ifaces: &[String], dst: SocketAddrV4) -> bool {
    let Ok(mut nl) = driver::netlink::Netlink::open() else { return false };
    let Ok(route) = nl.route_to(*dst.ip()) else { return false };
    ifaces.iter().any(|name| nic::if_index(name) == Some(route.oif))
}

/// The interface an IP_ADD_MEMBERSHIP names, when it is the attached one: by index (ip_mreqn)
/// or by address. INADDR_ANY with no index names none (the kernel picks one by route).
pub fn membership_on_attached(interface: Ipv4Addr, ifindex: i32) -> bool {
    let ifaces = attached_interfaces();
    if ifindex > 0 {
        return ifaces.iter().any(|name| nic::if_index(name).is_some_and(|i| i as i32 == ifindex));
    }
    if interface.is_unspecified() || ifaces.is_empty() {
        return false;
    }
    let Ok(mut nl) = driver::netlink::Netlink::open() else { return false };
    let Ok(addrs) = nl.addresses(None) else { return false };
    addrs.iter().any(|a| a.addr == interface && ifaces.iter().any(|name| nic::if_index(name) == Some(a.ifindex)))
}

/// Connects an accelerated socket's stack side (the kernel socket is connected already).
pub fn connect_udp(slot: u32, remote: Option<SocketAddrV4>) -> Result<(), UdpError> {
    let mut guard = lock();
    let rt = guard.as_mut().ok_or(UdpError::BadHandle)?;
    let s = rt.slot(slot).ok_or(UdpError::BadHandle)?;
    match remote {
        Some(r) => rt.driver.stack().udp_connect(s.handle, r),
        None => rt.driver.stack().udp_disconnect(s.handle),
    }
}

/// Sockets closed from a signal handler, for the worker to release (0: empty; else the slot id
/// with bit 32 set).
static RELEASE_LATER: [AtomicU64; 64] = [const { AtomicU64::new(0) }; 64];

/// Releases `slot` from the worker, not here: for close() in a signal handler, where freeing
/// memory is not safe. Done at once when the queue is full.
pub fn release_later(slot: u32) {
    let entry = 1 << 32 | u64::from(slot);
    if RELEASE_LATER.iter().any(|e| e.compare_exchange(0, entry, Ordering::AcqRel, Ordering::Relaxed).is_ok()) {
        wake_worker();
    } else {
        release(slot);
    }
}

/// Releases what `release_later` queued (the worker, holding the lock).
fn release_queued(rt: &mut Runtime) {
    for e in &RELEASE_LATER {
        if e.load(Ordering::Relaxed) != 0 {
            let entry = e.swap(0, Ordering::AcqRel);
            if entry != 0 {
                release_locked(rt, entry as u32);
            }
        }
    }
}

/// Releases an accelerated socket (close, or dup2 over its number).
pub fn release(slot: u32) {
    let mut guard = lock();
    let Some(rt) = guard.as_mut() else { return };
    release_locked(rt, slot);
}

fn release_locked(rt: &mut Runtime, slot: u32) {
    let Some(s) = rt.slot_mut(slot) else { return };
    s.refs = s.refs.saturating_sub(1);
    if s.refs > 0 {
        // Another descriptor still names the socket.
        return;
    }
    let Some(s) = rt.take_slot(slot) else { return };
    match s.proto {
        Proto::Udp => {
            let _ = rt.driver.release(s.flow);
            let _ = rt.driver.stack().udp_close(s.handle);
        }
        Proto::Tcp => {
            // As the kernel's close: the connection goes on in the stack (the rest of its
            // data, then FIN; or RST with unread data or SO_LINGER 0); the driver gives its
            // steering entry back when the stack is done with it. A listener's entry goes now.
            let h = s.handle;
            let _ = rt.driver.tcp(|stack, now| stack.tcp_close(h, now));
            if s.flow.remote.is_none() {
                let _ = rt.driver.release(s.flow);
            }
        }
    }
}

/// A call waiting on a socket keeps it alive, as the kernel's file reference does: released
/// (and the socket with it, if its descriptors are all closed) when the call returns.
pub struct Hold(u32);

impl Hold {
    /// Holds the slot's socket; None if it is gone.
    pub fn new(slot: u32) -> Option<Hold> {
        let mut guard = lock();
        let s = guard.as_mut()?.slot_mut(slot)?;
        s.refs += 1;
        Some(Hold(slot))
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        release(self.0);
    }
}

/// One more descriptor names the slot's socket (a dup of it was made).
pub fn share(slot: u32) {
    if let Some(s) = lock().as_mut().and_then(|rt| rt.slot_mut(slot)) {
        s.refs += 1;
    }
}

/// How long exit waits for TCP connections to deliver what the program wrote (and their FIN):
/// the kernel would go on sending after the process ended; we must before it ends. Past it,
/// connections still sending are reset, so their peers know.
pub const EXIT_LINGER: Duration = Duration::from_secs(10);

/// At exit (return from main, exit, _exit): TCP connections deliver what the program wrote and
/// their FIN, for at most EXIT_LINGER; then every flow goes back to the kernel at once, so peers
/// get answers instead of a black hole.
pub fn release_all() {
    // The worker may hold the lock for a moment; this thread must not wait on itself.
    let deadline = Instant::now() + Duration::from_millis(100);
    let mut guard = loop {
        if let Some(g) = RUNTIME.try_lock() {
            break g;
        }
        if crate::lock::holding() || Instant::now() >= deadline {
            return;
        }
        std::thread::yield_now();
    };
    if let Some(rt) = guard.as_mut().filter(|rt| rt.pid == std::process::id()) {
        linger_tcp(rt);
        rt.driver.release_all();
        rt.slots.iter_mut().for_each(|s| *s = None);
    }
}

/// Closes every TCP socket still open as close(2) would, then drives the stack until no
/// connection has data or a FIN waiting for its ACK, or EXIT_LINGER passes (then resets them).
fn linger_tcp(rt: &mut Runtime) {
    use stack::tcp::State;
    let open: Vec<SocketHandle> =
        rt.slots.iter().flatten().filter(|s| s.proto == Proto::Tcp).map(|s| s.handle).collect();
    for h in open {
        let _ = rt.driver.tcp(|stack, now| stack.tcp_close(h, now));
    }
    let sending = |rt: &mut Runtime| {
        rt.driver.stack().tcp_connections().iter().any(|(_, _, st)| {
            matches!(
                st,
                State::SynSent
                    | State::SynReceived
                    | State::Established
                    | State::CloseWait
                    | State::FinWait1
                    | State::Closing
                    | State::LastAck
            )
        })
    };
    let deadline = Instant::now() + EXIT_LINGER;
    while sending(rt) {
        if Instant::now() >= deadline {
            log::warning!("exit: TCP connections still sending after {EXIT_LINGER:?} are reset");
            let conns = rt.driver.stack().tcp_connections();
            for (local, remote, _) in conns {
                let _ = rt.driver.tcp(|stack, _| stack.tcp_abort_connection(local, remote));
            }
            rt.driver.poll();
            break;
        }
        rt.driver.poll();
        std::hint::spin_loop();
    }
}

/// Before exec: every flow goes back to the kernel, whose sockets the new program inherits (or
/// loses with CLOEXEC). Datagrams still queued on inherited sockets cannot follow; they are
/// counted in a warning. Returns whether anything was released.
pub fn release_for_exec() -> bool {
    let mut guard = lock();
    let Some(rt) = guard.as_mut().filter(|rt| rt.pid == std::process::id()) else { return false };
    for fd in 0..fdtable::MAX_FDS as i32 {
        let FdState::Accel(slot) = fdtable::get(fd) else { continue };
        let Some(s) = rt.slot(slot) else { continue };
        // SAFETY: F_GETFD takes no argument.
        let cloexec = unsafe { crate::real::fcntl(fd, libc::F_GETFD, 0) } & libc::FD_CLOEXEC != 0;
        if !cloexec && rt.driver.stack().udp_readable(s.handle).unwrap_or(false) {
            log::warning!("exec: datagrams queued on fd {fd} are lost (they were received before exec)");
        }
    }
    rt.driver.release_all();
    true
}

/// After an exec that failed: the flows are claimed back.
pub fn reclaim_after_exec() {
    let mut guard = lock();
    let Some(rt) = guard.as_mut() else { return };
    for (flow, e) in rt.driver.reclaim_all() {
        log::warning!("after a failed exec, {flow} stays with the kernel: {e}");
    }
}

/// In a forked child (fork.rs), with the runtime lock held by the fork handlers and no other
/// thread alive: the accelerated descriptors become the kernel sockets behind them, exasock's
/// own descriptors are closed, and the parent's runtime is forgotten without touching its rings
/// or flows (no destructor runs: they would act on state the parent still uses).
pub fn hand_over_in_child(runtime: &mut Option<Runtime>) {
    SLEEPERS.store(0, Ordering::Relaxed);
    RING_FD.store(-1, Ordering::Relaxed);
    NOTIFY_FD.store(-1, Ordering::Relaxed);
    let Some(rt) = runtime.take() else { return };
    for fd in 0..fdtable::MAX_FDS as i32 {
        match fdtable::get(fd) {
            FdState::Accel(_) => fdtable::set(fd, FdState::Kernel),
            FdState::Internal => {
                fdtable::set(fd, FdState::Kernel);
                // SAFETY: the child's copy of one of our descriptors; the parent's stays open.
                unsafe { crate::real::close(fd) };
            }
            _ => {}
        }
    }
    std::mem::forget(rt);
}

/// The worker: keeps the stack going while no application thread is in a call (drains the
/// ring into socket queues, runs timers, follows kernel table changes), and takes no signals.
/// While application threads drive the datapath (spinning, or sleeping on the ring themselves)
/// it stays out of their way, waiting for the rest of the millisecond since the last of their
/// polls; otherwise it sleeps on the ring and the rtnetlink monitor until a frame or the next
/// timer.
fn worker() {
    // SAFETY: blocking every signal on this thread only.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
    }
    loop {
        if let Some(rest) = app_spinning() {
            // Parked, then checked again: a caller that went to sleep in between bumped the
            // word, and the futex returns at once.
            let seen = WORKER_WAKE.load(Ordering::SeqCst);
            WORKER_PARKED.store(true, Ordering::SeqCst);
            if app_spinning().is_some() {
                let ts = libc::timespec { tv_sec: 0, tv_nsec: rest as _ };
                futex(&WORKER_WAKE, libc::FUTEX_WAIT, seen, Some(&ts));
            }
            WORKER_PARKED.store(false, Ordering::SeqCst);
            continue;
        }
        let wait = match RUNTIME.try_lock() {
            Some(mut guard) => guard.as_mut().map(|rt| {
                release_queued(rt);
                if rt.driver.poll() > 0 {
                    notify();
                }
                let deadline = rt.driver.next_deadline().map(|d| d.saturating_since(driver::clock::now()));
                (rt.driver.wait_fds(), deadline)
            }),
            None => None,
        };
        match wait {
            Some((fds, deadline)) => {
                let mut pfds = fds.map(|fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 });
                // Timers are kept in milliseconds: a deadline due now is run by the next poll,
                // not by spinning here.
                let timeout = deadline
                    .unwrap_or(Duration::from_millis(100))
                    .clamp(Duration::from_millis(1), Duration::from_millis(100));
                let ts = libc::timespec { tv_sec: 0, tv_nsec: timeout.as_nanos() as _ };
                // SAFETY: two valid pollfds; the real ppoll, not our export.
                unsafe { crate::real::ppoll(pfds.as_mut_ptr(), 2, &ts, std::ptr::null()) };
            }
            // An application thread holds the lock and drives the datapath: look again soon.
            None => std::thread::sleep(Duration::from_micros(50)),
        }
    }
}

/// While application threads drive the datapath (one polled within the last millisecond:
/// spinning, or sleeping on the ring and polling it at each wake-up, at least every
/// millisecond): the nanoseconds left of that millisecond.
fn app_spinning() -> Option<u64> {
    const IDLE: u64 = 1_000_000; // 1 ms
    let since = driver::clock::now().as_nanos().saturating_sub(LAST_APP_POLL.load(Ordering::Relaxed));
    (since < IDLE).then(|| IDLE - since)
}

/// Work queued for the worker (sockets closed in a signal handler): it must not wait.
fn wake_worker() {
    WORKER_WAKE.fetch_add(1, Ordering::SeqCst);
    if WORKER_PARKED.load(Ordering::SeqCst) {
        futex(&WORKER_WAKE, libc::FUTEX_WAKE, 1, None);
    }
}

/// How a blocked call waits: spins, then (with EXASOCK_SPIN_USEC) sleeps until datagrams
/// arrive for anybody (a futex the pollers bump), rechecking at least every millisecond; a
/// signal handled on this thread ends the wait as the kernel would (signals.rs).
pub struct Waiter {
    start: Instant,
    deadline: Option<Instant>,
    always_eintr: bool,
}

/// Why a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitEnd {
    /// The deadline passed.
    TimedOut,
    /// A signal handler ran and the call must return EINTR.
    Interrupted,
}

impl Waiter {
    /// A wait that ends after `timeout` (None: never). `always_eintr`: any handled signal ends
    /// it (calls with a timeout and the multiplexers), else only handlers without SA_RESTART.
    pub fn new(timeout: Option<Duration>, always_eintr: bool) -> Waiter {
        crate::signals::begin_call();
        let start = Instant::now();
        Waiter { start, deadline: timeout.map(|t| start + t), always_eintr }
    }

    /// Whether the spin budget is spent: each `wait` now sleeps (up to a millisecond), so a
    /// syscall per round costs nothing that matters.
    pub fn sleeping(&self) -> bool {
        self.start.elapsed().as_micros() as u64 >= config::spin_usec()
    }

    /// Spins or sleeps once; says why the wait is over when it is.
    pub fn wait(&self) -> Result<(), WaitEnd> {
        if crate::signals::interrupted(self.always_eintr) {
            return Err(WaitEnd::Interrupted);
        }
        let now = Instant::now();
        if self.deadline.is_some_and(|d| now >= d) {
            return Err(WaitEnd::TimedOut);
        }
        if now.duration_since(self.start).as_micros() as u64 >= config::spin_usec() {
            let seen = GENERATION.load(Ordering::SeqCst);
            SLEEPERS.fetch_add(1, Ordering::SeqCst);
            // Rechecked at least every millisecond: data on the kernel socket (loopback, other
            // interfaces) wakes nothing here.
            let nap = self
                .deadline
                .map_or(Duration::from_millis(1), |d| d.saturating_duration_since(now))
                .min(Duration::from_millis(1));
            let ts = libc::timespec { tv_sec: 0, tv_nsec: nap.as_nanos() as _ };
            let (ring, note) = (RING_FD.load(Ordering::Relaxed), NOTIFY_FD.load(Ordering::Relaxed));
            if GENERATION.load(Ordering::SeqCst) == seen {
                if ring >= 0 && note >= 0 {
                    // A frame on the ring (for anybody: the caller then polls it itself, one
                    // wake-up from wire to caller) or a notification from a thread that queued
                    // data for us.
                    let mut fds = [
                        libc::pollfd { fd: ring, events: libc::POLLIN, revents: 0 },
                        libc::pollfd { fd: note, events: libc::POLLIN, revents: 0 },
                    ];
                    // SAFETY: two valid pollfds; the real ppoll, not our export.
                    unsafe { crate::real::ppoll(fds.as_mut_ptr(), 2, &ts, std::ptr::null()) };
                } else {
                    futex(&GENERATION, libc::FUTEX_WAIT, seen, Some(&ts));
                }
            }
            if SLEEPERS.fetch_sub(1, Ordering::SeqCst) == 1 && note >= 0 {
                // The last sleeper out resets the notification.
                let mut count = 0u64;
                // SAFETY: an 8-byte read from our non-blocking eventfd.
                unsafe { libc::syscall(libc::SYS_read, note, &mut count as *mut u64, 8) };
            }
        } else {
            std::hint::spin_loop();
        }
        Ok(())
    }
}

/// Reads the kernel socket's SO_RCVTIMEO (or SO_SNDTIMEO), which the program set on it.
pub fn socket_timeout(fd: i32, name: i32) -> Option<Duration> {
    let mut tv = libc::timeval { tv_sec: 0, tv_usec: 0 };
    let mut len = std::mem::size_of::<libc::timeval>() as libc::socklen_t;
    // SAFETY: getsockopt into a timeval we own.
    let r = unsafe {
        crate::real::getsockopt(fd, libc::SOL_SOCKET, name, (&mut tv as *mut libc::timeval).cast(), &mut len)
    };
    (r == 0 && (tv.tv_sec > 0 || tv.tv_usec > 0))
        .then(|| Duration::from_secs(tv.tv_sec as u64) + Duration::from_micros(tv.tv_usec as u64))
}

/// Whether the kernel socket is non-blocking (O_NONBLOCK, set by fcntl or SOCK_NONBLOCK).
pub fn nonblocking(fd: i32) -> bool {
    // SAFETY: F_GETFL takes no argument.
    let flags = unsafe { crate::real::fcntl(fd, libc::F_GETFL, 0) };
    flags >= 0 && flags & libc::O_NONBLOCK != 0
}

/// Reads a sockaddr_in the program passed, if it is one.
///
/// # Safety
/// `addr` must be null or point to `len` readable bytes.
pub unsafe fn read_sockaddr(addr: *const libc::sockaddr, len: libc::socklen_t) -> Option<SocketAddrV4> {
    if addr.is_null() || (len as usize) < std::mem::size_of::<libc::sockaddr_in>() {
        return None;
    }
    let sin = &*(addr as *const libc::sockaddr_in);
    (sin.sin_family as i32 == libc::AF_INET)
        .then(|| SocketAddrV4::new(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)), u16::from_be(sin.sin_port)))
}

/// Writes `a` into the program's sockaddr buffer, truncating as the kernel does, and sets the
/// length to the full size.
///
/// # Safety
/// `addr`/`len` must be null or valid for writes as the socket API specifies.
pub unsafe fn write_sockaddr(a: SocketAddrV4, addr: *mut libc::sockaddr, len: *mut libc::socklen_t) {
    if addr.is_null() || len.is_null() {
        return;
    }
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(*a.ip()).to_be() },
        sin_zero: [0; 8],
    };
    let full = std::mem::size_of::<libc::sockaddr_in>();
    let n = (*len as usize).min(full);
    std::ptr::copy_nonoverlapping((&sin as *const libc::sockaddr_in).cast::<u8>(), addr.cast::<u8>(), n);
    *len = full as libc::socklen_t;
}

/// The address the kernel socket is bound to.
pub fn kernel_local(fd: i32) -> Option<SocketAddrV4> {
    // SAFETY: a zeroed sockaddr_in buffer we own.
    unsafe {
        let mut sin: libc::sockaddr_in = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        if crate::real::getsockname(fd, (&mut sin as *mut libc::sockaddr_in).cast(), &mut len) != 0 {
            return None;
        }
        read_sockaddr((&sin as *const libc::sockaddr_in).cast(), len)
    }
}

/// Sets errno from a UDP error and returns -1.
pub fn fail_udp<T: From<i8>>(e: UdpError) -> T {
    errno::fail(errno::udp(e))
}

/// Runs a TCP call on the slot's stack socket (then sends what it made due).
pub fn with_tcp<R>(
    slot: u32,
    f: impl FnOnce(&mut stack::Stack, SocketHandle, stack::Instant) -> Result<R, stack::tcp::TcpError>,
) -> Result<R, stack::tcp::TcpError> {
    let mut guard = lock();
    let rt = guard.as_mut().ok_or(stack::tcp::TcpError::BadHandle)?;
    let s = rt.slot(slot).filter(|s| s.proto == Proto::Tcp).ok_or(stack::tcp::TcpError::BadHandle)?;
    rt.driver.tcp(|stack, now| f(stack, s.handle, now))
}

/// Reads from the slot's TCP stream after polling the datapath (`Ok(0)`: the stream ended).
pub fn tcp_recv(slot: u32, buf: &mut [u8], peek: bool) -> Result<usize, stack::tcp::TcpError> {
    let mut guard = lock();
    let rt = guard.as_mut().ok_or(stack::tcp::TcpError::BadHandle)?;
    let s = rt.slot(slot).filter(|s| s.proto == Proto::Tcp).ok_or(stack::tcp::TcpError::BadHandle)?;
    rt.poll();
    if s.shut_rd && rt.driver.stack().tcp_readable_len(s.handle).unwrap_or(0) == 0 {
        return Ok(0);
    }
    rt.driver.tcp(|stack, _| stack.tcp_recv(s.handle, buf, peek))
}

/// Drives the datapath once from an application thread (a waiting send takes its ACKs).
pub fn poll_once() {
    if let Some(rt) = lock().as_mut() {
        rt.poll();
    }
}

/// Resets the slot's TCP connection if this is its last descriptor (close with SO_LINGER 0).
pub fn abort_if_last(slot: u32) {
    let mut guard = lock();
    let Some(rt) = guard.as_mut() else { return };
    let Some(s) = rt.slot(slot).filter(|s| s.proto == Proto::Tcp && s.refs == 1) else { return };
    let _ = rt.driver.tcp(|stack, _| stack.tcp_abort(s.handle));
}

/// Whether the kernel routes `dst` out of an attached interface (a TCP connect there is
/// accelerated). A route lookup: connect pays it, never a data call.
pub fn routed_via_attached(dst: SocketAddrV4) -> bool {
    let ifaces = attached_interfaces();
    !ifaces.is_empty() && routed_via(&ifaces, dst)
}

/// Starts an accelerated active open from `fd`, whose kernel socket holds `local`'s port: the
/// stack sends the SYN (the driver steers the connection to us first).
pub fn accelerate_tcp_connect(fd: i32, local: SocketAddrV4, remote: SocketAddrV4) -> Result<u32, NotAccelerated> {
    let mut guard = lock();
    let rt = runtime_for(&mut guard, local)?;
    let stack = rt.driver.stack();
    let handle = stack.tcp_open();
    let options = tcp_options_of(fd, stack.tcp_options(handle).map_err(|e| NotAccelerated::Failed(e.to_string()))?);
    let started = rt.driver.tcp(|stack, now| {
        stack.tcp_set_options(handle, options, now)?;
        stack.tcp_bind(handle, local)?;
        stack.tcp_connect(handle, remote, now)?;
        stack.tcp_addresses(handle)
    });
    let local = match started {
        Ok((Some(l), _)) => l,
        Ok((None, _)) => local,
        Err(e) => {
            let _ = rt.driver.stack().tcp_close(handle, driver::clock::now());
            return Err(NotAccelerated::Failed(e.to_string()));
        }
    };
    adopt(rt, fd, handle, Proto::Tcp, Flow::tcp_connection(local, remote))?;
    match fdtable::get(fd) {
        FdState::Accel(slot) => Ok(slot),
        _ => Err(NotAccelerated::Failed("lost the slot".into())),
    }
}

/// Notes (or takes) that a non-blocking connect is waiting to report its outcome.
pub fn connect_pending(slot: u32, set: Option<bool>) -> bool {
    let mut guard = lock();
    let Some(s) = guard.as_mut().and_then(|rt| rt.slot_mut(slot)) else { return false };
    let was = s.connect_pending;
    if let Some(v) = set {
        s.connect_pending = v;
    }
    was
}
