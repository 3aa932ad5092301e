//! The accelerated side of the process: one driver (stack + port) for the attached interface,
//! the stack sockets behind accelerated fds, and the lock that guards them.
//!
//! Nothing here exists until the first socket is accelerated: a program that accelerates
//! nothing opens no ring and starts no thread.

use crate::fdtable::FdState;
use crate::lock::{Guard, Lock};
use crate::{config, errno, fdtable, log};
use driver::inet::Family;
use driver::Driver;
use nic::steering::{attached_interfaces, Flow, SteeringError};
use stack::udp::UdpError;
use stack::SocketHandle;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod accelerate;
mod async_io;
mod extensions;
mod lifetime;
mod publish;
mod sockaddr;
mod tcp_options;
mod udp_options;
mod wait;
mod watcher;

pub use accelerate::*;
pub use async_io::*;
pub use extensions::*;
pub use lifetime::*;
pub use sockaddr::*;
pub use tcp_options::*;
pub use udp_options::*;
pub use wait::*;

/// MSG_ZEROCOPY bookkeeping of a socket with SO_ZEROCOPY on. The stack copies what it is
/// given, so each zero-copy send is complete (its buffer free again) when it returns; its
/// notification, with SO_EE_CODE_ZEROCOPY_COPIED as Linux says when it had to copy, waits in
/// the socket's error queue (POLLERR) until recvmsg(MSG_ERRQUEUE) reads it. Consecutive ids
/// coalesce into one range, as Linux's do.
#[derive(Debug, Clone, Copy, Default)]
pub struct ZeroCopy {
    /// The id the next MSG_ZEROCOPY send gets.
    pub next: u32,
    /// Completed ids not yet read (first, last).
    pub done: Option<(u32, u32)>,
}

impl ZeroCopy {
    /// A MSG_ZEROCOPY send took bytes: its id is complete.
    pub fn completed(&mut self) {
        let id = self.next;
        self.next = self.next.wrapping_add(1);
        self.done = Some(match self.done {
            Some((lo, hi)) if hi.wrapping_add(1) == id => (lo, id),
            // A gap cannot happen (ids complete in order, at once); start afresh.
            _ => (id, id),
        });
    }
}

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
    /// Its descriptor's address family: an AF_INET6 (dual-stack) socket names its IPv4
    /// addresses IPv4-mapped.
    pub family: Family,
    /// The flow claimed for it.
    pub flow: Flow,
    /// shutdown(SHUT_RD): receives return 0 once the queue is empty.
    pub shut_rd: bool,
    /// shutdown(SHUT_WR): sends fail with EPIPE.
    pub shut_wr: bool,
    /// Which control messages recvmsg adds.
    pub ancillary: Ancillary,
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
    /// Sends that found the send buffer full (EAGAIN, or a short non-blocking send): an
    /// edge-triggered EPOLLOUT fires again when the socket is writable after one, as Linux
    /// wakes a writer once SOCK_NOSPACE was set and room came back.
    pub send_blocks: u32,
    /// SO_PEEK_OFF: where the next MSG_PEEK starts (None: off, every peek from the start).
    pub peek_off: Option<usize>,
    /// O_ASYNC: a signal to the descriptor's owner (F_SETOWN) when it turns readable or,
    /// after a send found it full, writable, as Linux's sk_wake_async.
    pub async_io: Option<AsyncIo>,
    /// MSG_ZEROCOPY completions (SO_ZEROCOPY on): the next send's notification id, and the
    /// range of ids done and not yet read from the error queue.
    pub zerocopy: ZeroCopy,
    /// A listener whose program set options that its accepted connections inherit: each
    /// accepted connection's kernel socket is given them too.
    pub inheritable_set: bool,
    /// A listener this process has accepted on (a fork then leaves it accelerated: a forking
    /// server's children close their copy).
    pub accepted: bool,
    /// A listener nobody had accepted on when this process forked (a pre-fork server's master
    /// and its workers): its SYNs go to its kernel socket since (its flow released), so that a
    /// child that takes it over at its first accept finds no connection completed in our stack,
    /// which it could not take (a kernel listener takes no connection from outside). An accept
    /// here claims the flow back.
    pub parked: bool,
    /// The socket existed when this process forked: a child may hold a descriptor of it, so
    /// closing the last of ours hands it to the kernel instead of ending the connection.
    pub forked: bool,
}

/// The index half of a slot id.
const INDEX_BITS: u32 = 16;

/// The receive options that make recvmsg add control messages (SO_TIMESTAMP, SO_TIMESTAMPNS,
/// SO_TIMESTAMPING's flags, SO_RXQ_OVFL, IP_PKTINFO, IP_RECVTTL, IP_RECVTOS,
/// IP_RECVORIGDSTADDR); the kernel socket holds them, this mirrors them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ancillary {
    /// SO_TIMESTAMP: an SCM_TIMESTAMP timeval.
    pub micro: bool,
    /// SO_TIMESTAMPNS: an SCM_TIMESTAMPNS timespec.
    pub nano: bool,
    /// SO_TIMESTAMPING flags: an SCM_TIMESTAMPING with the software stamp when they ask for it.
    pub timestamping: u32,
    /// SO_RXQ_OVFL: the socket's drop count, once it is not 0.
    pub rxq_ovfl: bool,
    /// IP_PKTINFO: the interface, the local address for a reply and the destination.
    pub pktinfo: bool,
    /// IP_RECVTTL: the TTL.
    pub ttl: bool,
    /// IP_RECVTOS: the TOS byte.
    pub tos: bool,
    /// IP_RECVORIGDSTADDR: the destination address and port.
    pub orig_dst: bool,
}

impl Ancillary {
    /// Reads the options from the kernel socket.
    pub fn of(fd: i32) -> Ancillary {
        let on = |level: i32, name: i32| kernel_int(fd, level, name).unwrap_or(0) != 0;
        Ancillary {
            micro: on(libc::SOL_SOCKET, libc::SO_TIMESTAMP),
            nano: on(libc::SOL_SOCKET, libc::SO_TIMESTAMPNS),
            timestamping: kernel_int(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPING).unwrap_or(0) as u32,
            rxq_ovfl: on(libc::SOL_SOCKET, libc::SO_RXQ_OVFL),
            pktinfo: on(libc::IPPROTO_IP, libc::IP_PKTINFO),
            ttl: on(libc::IPPROTO_IP, libc::IP_RECVTTL),
            tos: on(libc::IPPROTO_IP, libc::IP_RECVTOS),
            orig_dst: on(libc::IPPROTO_IP, libc::IP_RECVORIGDSTADDR),
        }
    }

    /// Whether a software timestamp is asked for.
    pub fn any_timestamp(&self) -> bool {
        self.micro
            || self.nano
            || self.timestamping & (libc::SOF_TIMESTAMPING_SOFTWARE | libc::SOF_TIMESTAMPING_RX_SOFTWARE) != 0
    }

    /// Whether any control message is asked for.
    pub fn any(&self) -> bool {
        self.any_timestamp() || self.rxq_ovfl || self.pktinfo || self.ttl || self.tos || self.orig_dst
    }

    /// Whether a setsockopt of (`level`, `name`) may change them.
    pub fn is_option(level: i32, name: i32) -> bool {
        match level {
            libc::SOL_SOCKET => {
                matches!(name, libc::SO_TIMESTAMP | libc::SO_TIMESTAMPNS | libc::SO_TIMESTAMPING | libc::SO_RXQ_OVFL)
            }
            libc::IPPROTO_IP => {
                matches!(name, libc::IP_PKTINFO | libc::IP_RECVTTL | libc::IP_RECVTOS | libc::IP_RECVORIGDSTADDR)
            }
            _ => false,
        }
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
    /// Free indexes of `slots` (a new socket takes one in O(1), not a scan of 10,000).
    free_slots: Vec<u32>,
    /// The slot of each stack socket, by the handle's index (stack events name handles).
    by_handle: Vec<Option<(SocketHandle, u32)>>,
    /// Slots whose readiness changed by a call rather than by the stack (a UDP SHUT_RD,
    /// zero-copy completions), for the ready lists; bounded.
    changed: Vec<u32>,
    /// `changed` overflowed.
    changed_overflow: bool,
    /// The interface was detached under the program: its sockets went to the kernel and no
    /// new one is accelerated (`lifetime::hand_over_after_detach`).
    detached: bool,
}

/// The pin whose presence says the interface is attached: the worker checks it without the
/// lock (`exasock-ctl detach --force` removes it; see `lifetime::hand_over_after_detach`).
static ATTACH_PIN: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// Whether the interface the runtime serves is still attached (true before a runtime opens).
fn still_attached() -> bool {
    ATTACH_PIN.get().is_none_or(|p| p.exists())
}

/// The most slots `Runtime::changed` keeps.
const CHANGED_CAP: usize = 1024;

/// The process whose runtime this is (0: none). Read without the lock, so that exit paths of
/// a process that accelerated nothing, or of a fork or vfork child (which shares the parent's
/// memory), never touch the runtime's lock.
static OWNER_PID: AtomicU32 = AtomicU32::new(0);

/// Whether this process opened the runtime (one load and a getpid).
pub fn owns_runtime() -> bool {
    let pid = OWNER_PID.load(Ordering::Acquire);
    pid != 0 && pid == std::process::id()
}

/// Whether this is a vfork child (or a clone sharing memory) of the process that owns the
/// runtime: posix_spawn, vfork, Python's subprocess. Its calls see the parent's fd table and
/// runtime in shared memory and must change neither (closing descriptors before exec would
/// close the parent's sockets); they pass through to the kernel.
pub fn in_vfork_child() -> bool {
    let pid = OWNER_PID.load(Ordering::Acquire);
    // SAFETY: getpid has no preconditions (a syscall: glibc keeps no pid cache).
    pid != 0 && pid != unsafe { libc::getpid() } as u32
}

/// The runtime of this process, once a socket was accelerated.
pub static RUNTIME: Lock<Option<Runtime>> = Lock::new(None);

static WARNED_NO_INTERFACE: AtomicBool = AtomicBool::new(false);
static WARNED_NO_PRIVILEGE: AtomicBool = AtomicBool::new(false);

/// Whether this process may open the datapath: root, or the capabilities it uses in its
/// effective set (CAP_NET_RAW for the ring, CAP_NET_ADMIN for steering and TCP_REPAIR, CAP_BPF
/// or CAP_SYS_ADMIN for the pinned maps). Asked once per runtime opening, with capget.
fn privileged() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    const VERSION_3: u32 = 0x2008_0522;
    let mut header = [VERSION_3, 0u32];
    let mut data = [0u32; 6];
    // SAFETY: capget with a version-3 header and room for its two data structs.
    if unsafe { libc::syscall(libc::SYS_capget, header.as_mut_ptr(), data.as_mut_ptr()) } != 0 {
        return false;
    }
    // Effective sets: data[0] holds capabilities 0-31, data[3] 32-63.
    let has = |cap: u32| if cap < 32 { data[0] >> cap & 1 == 1 } else { data[3] >> (cap - 32) & 1 == 1 };
    const NET_ADMIN: u32 = 12;
    const NET_RAW: u32 = 13;
    const SYS_ADMIN: u32 = 21;
    const BPF: u32 = 39;
    has(NET_RAW) && has(NET_ADMIN) && (has(BPF) || has(SYS_ADMIN))
}

/// The lock around the runtime.
pub fn lock() -> Guard<'static, Option<Runtime>> {
    RUNTIME.lock()
}

/// Why a socket stays on the kernel.
#[derive(Debug)]
pub enum NotAccelerated {
    /// No interface is attached in this namespace.
    NoInterface,
    /// The process lacks the privileges the datapath needs (said once per process).
    NoPrivilege,
    /// The address is not on the attached interface.
    NotOurs,
    /// Something failed; the message says what.
    Failed(String),
}

impl Runtime {
    fn open() -> Result<Runtime, NotAccelerated> {
        if WARNED_NO_PRIVILEGE.load(Ordering::Relaxed) {
            return Err(NotAccelerated::NoPrivilege);
        }
        let ifaces = attached_interfaces();
        let Some(iface) = ifaces.first() else {
            if !WARNED_NO_INTERFACE.swap(true, Ordering::Relaxed) {
                log::warning!("no interface is attached in this network namespace: sockets stay on the kernel (run `exasock-ctl attach IFACE`)");
            }
            return Err(NotAccelerated::NoInterface);
        };
        if !privileged() {
            if !WARNED_NO_PRIVILEGE.swap(true, Ordering::Relaxed) {
                // SAFETY: geteuid has no preconditions.
                let uid = unsafe { libc::geteuid() };
                log::warning!("acceleration needs root, or CAP_NET_RAW, CAP_NET_ADMIN and CAP_BPF, which this process (uid {uid}) lacks: its sockets stay on the kernel. Run it as root, or give it those capabilities (e.g. `setpriv --inh-caps +net_raw,+net_admin,+bpf --ambient-caps +net_raw,+net_admin,+bpf`)");
            }
            return Err(NotAccelerated::NoPrivilege);
        }
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
        // Forked children ask for their inherited TCP sockets on it (inherit.rs).
        crate::inherit::open_channel();
        std::thread::Builder::new()
            .name("exasock".into())
            .spawn(worker)
            .map_err(|e| NotAccelerated::Failed(format!("cannot start the worker thread: {e}")))?;
        crate::fork::install();
        OWNER_PID.store(std::process::id(), Ordering::Release);
        crate::fatal::install();
        publish::open(driver.netns_socket());
        let _ = ATTACH_PIN.set(driver.attach_pin().to_path_buf());
        Ok(Runtime {
            driver,
            slots: Vec::new(),
            scratch: vec![0u8; 65_536],
            pid: std::process::id(),
            generation: 0,
            free_slots: Vec::new(),
            by_handle: Vec::new(),
            changed: Vec::with_capacity(CHANGED_CAP),
            changed_overflow: false,
            detached: false,
        })
    }

    /// The socket behind a slot id (None once it was released, even if its index was reused).
    pub fn slot(&self, id: u32) -> Option<Slot> {
        self.slots.get((id & ((1 << INDEX_BITS) - 1)) as usize).copied().flatten().filter(|s| s.id == id)
    }

    pub(crate) fn slot_mut(&mut self, id: u32) -> Option<&mut Slot> {
        self.slots.get_mut((id & ((1 << INDEX_BITS) - 1)) as usize)?.as_mut().filter(|s| s.id == id)
    }

    fn take_slot(&mut self, id: u32) -> Option<Slot> {
        let s = self.slot(id)?;
        publish::socket_closed(id);
        if let Some(e) = self.by_handle.get_mut(s.handle.index() as usize) {
            if e.is_some_and(|(h, _)| h == s.handle) {
                *e = None;
            }
        }
        let index = id & ((1 << INDEX_BITS) - 1);
        self.free_slots.push(index);
        self.slots.get_mut(index as usize)?.take()
    }

    /// Stores `s` and returns its id; None when every index is taken (the fd table covers no
    /// more descriptors than there are indexes).
    fn insert(&mut self, mut s: Slot) -> Option<u32> {
        let index = match self.free_slots.pop() {
            Some(i) => i as usize,
            None if self.slots.len() < 1 << INDEX_BITS => {
                self.slots.push(None);
                self.slots.len() - 1
            }
            None => return None,
        };
        self.generation = self.generation.wrapping_add(1);
        s.id = (self.generation << INDEX_BITS) | index as u32;
        self.slots[index] = Some(s);
        let h = s.handle.index() as usize;
        if self.by_handle.len() <= h {
            self.by_handle.resize(h + 1, None);
        }
        self.by_handle[h] = Some((s.handle, s.id));
        Some(s.id)
    }

    /// Hands `f` the id of each slot whose readiness may have changed since the last call
    /// (the stack's readiness events, and calls that changed it: `changed`); a slot may come
    /// more than once. Returns true when some were lost: every slot may then have changed.
    /// The epoll sets' ready lists are fed from here, so a wait costs what is ready, not
    /// what is registered.
    pub fn take_ready(&mut self, mut f: impl FnMut(u32)) -> bool {
        let Runtime { driver, by_handle, changed, changed_overflow, .. } = self;
        let lost = driver.take_ready(|h| {
            if let Some(Some((handle, id))) = by_handle.get(h.index() as usize) {
                if *handle == h {
                    f(*id);
                }
            }
        });
        for id in changed.drain(..) {
            f(id);
        }
        lost | std::mem::take(changed_overflow)
    }

    /// A call changed what the slot's socket is ready for without the stack knowing.
    pub(crate) fn changed(&mut self, slot: u32) {
        if self.changed.len() < CHANGED_CAP {
            self.changed.push(slot);
        } else {
            self.changed_overflow = true;
        }
    }

    /// Re-reads the slot's receive options (after a setsockopt on its kernel socket).
    pub fn refresh_ancillary(&mut self, slot: u32, fd: i32) {
        if let Some(s) = self.slot_mut(slot) {
            s.ancillary = Ancillary::of(fd);
        }
    }

    /// Joins (or leaves) a multicast group on the slot's stack socket.
    pub fn membership(&mut self, slot: u32, group: Ipv4Addr, join: bool) -> Result<(), UdpError> {
        let s = self.slot(slot).ok_or(UdpError::BadHandle)?;
        let port = s.flow.local_port;
        let stack = self.driver.stack();
        if join {
            stack.udp_join(s.handle, group)?;
            if let Err(e) = self.driver.receive_group(group, port) {
                let _ = self.driver.stack().udp_leave(s.handle, group);
                log::warning!("cannot receive {group}:{port} accelerated: {e}");
                return Err(UdpError::Membership);
            }
        } else {
            stack.udp_leave(s.handle, group)?;
            self.driver.stop_group(group, port);
        }
        self.refilter_port(port);
        // The interface's memberships changed (the kernel socket joined or left): the loop of
        // this process's next send to the group follows them.
        self.driver.refresh_kernel_tables();
        Ok(())
    }

    /// The groups this process takes at its ring for `port` changed: every accelerated UDP
    /// socket on the port gets its kernel socket's filter again (`drop_kernel_multicast`). A
    /// scan of the descriptors, on a membership change only.
    fn refilter_port(&mut self, port: u16) {
        let mut groups = [Ipv4Addr::UNSPECIFIED; accelerate::FILTER_GROUPS + 1];
        let n = accelerate::ring_groups(&self.driver, port, &mut groups);
        let ifindex = self.driver.ifindex();
        for fd in 0..fdtable::accel_end() as i32 {
            let FdState::Accel(id) = fdtable::get(fd) else { continue };
            let Some(s) = self.slot(id).filter(|s| s.proto == Proto::Udp && s.flow.local_port == port) else {
                continue;
            };
            // A group the socket receives with a source filter is its kernel socket's to deliver.
            let handle = s.handle;
            let stack = self.driver.stack();
            match stack.udp_source_filtered(handle) {
                Ok(filtered) if !filtered.is_empty() => {
                    let mut own = groups;
                    let mut k = 0;
                    for g in groups[..n].iter().filter(|g| !filtered.contains(g)) {
                        own[k] = *g;
                        k += 1;
                    }
                    accelerate::drop_kernel_multicast(fd, ifindex, &own[..k]);
                }
                _ => accelerate::drop_kernel_multicast(fd, ifindex, &groups[..n]),
            }
        }
    }

    /// The slot's socket receives `group` with a source filter (`on`) or not: the stack stops
    /// (or starts again) giving it the group, its kernel socket keeps (or drops) the group.
    pub fn set_source_filtered(&mut self, slot: u32, group: Ipv4Addr, on: bool) {
        let Some(s) = self.slot(slot) else { return };
        let (handle, port) = (s.handle, s.flow.local_port);
        let stack = self.driver.stack();
        let was = stack.udp_source_filtered(handle).is_ok_and(|f| f.contains(&group));
        if was != on && stack.udp_set_source_filtered(handle, group, on).is_ok() {
            self.refilter_port(port);
        }
    }

    /// Whether the slot's socket joined `group` in the stack.
    pub fn is_member(&mut self, slot: u32, group: Ipv4Addr) -> bool {
        let Some(s) = self.slot(slot) else { return false };
        self.driver.stack().udp_memberships(s.handle).is_ok_and(|m| m.contains(&group))
    }

    /// Records a shutdown of the slot's socket.
    pub fn shutdown(&mut self, slot: u32, rd: bool, wr: bool) {
        // A receive sleeping on this socket returns now.
        notify();
        if let Some(s) = self.slot_mut(slot) {
            s.shut_rd |= rd;
            s.shut_wr |= wr;
        }
        self.changed(slot);
    }

    /// Drives the datapath once on behalf of an application thread, waking sleepers when
    /// datagrams arrived.
    pub fn poll(&mut self) -> usize {
        let n = self.driver.poll();
        LAST_APP_POLL.store(self.driver.polled_at().as_nanos(), Ordering::Relaxed);
        if n > 0 {
            self.frames_arrived();
        }
        n
    }

    /// After a poll that took frames: wake sleepers, and signal the owners of O_ASYNC sockets
    /// that turned readable or writable.
    pub(crate) fn frames_arrived(&mut self) {
        notify();
        if !async_used() {
            return;
        }
        for i in 0..self.slots.len() {
            let Some(s) = self.slots[i] else { continue };
            let Some(a) = s.async_io else { continue };
            let (arrivals, writable, urgent) = match s.proto {
                Proto::Tcp => match self.driver.stack().tcp_readiness(s.handle) {
                    Ok(r) => (self.driver.stack().tcp_arrivals(s.handle).unwrap_or(0), r.writable, r.priority),
                    Err(_) => continue,
                },
                Proto::Udp => (self.driver.stack().udp_arrivals(s.handle).unwrap_or(0), true, false),
            };
            if urgent && !a.seen_urgent {
                signal_urgent(a.fd);
            }
            let fired_in = a.o_async && arrivals != a.seen_arrivals;
            if fired_in {
                signal_owner(a.fd, POLL_IN, libc::POLLIN | libc::POLLRDNORM);
            }
            let fired_out = a.o_async && writable && s.send_blocks != a.seen_send_blocks;
            if fired_out {
                signal_owner(a.fd, POLL_OUT, libc::POLLOUT | libc::POLLWRNORM);
            }
            if let Some(slot) = self.slots[i].as_mut() {
                slot.async_io = Some(AsyncIo {
                    seen_arrivals: arrivals,
                    seen_send_blocks: if fired_out || !a.o_async { s.send_blocks } else { a.seen_send_blocks },
                    seen_urgent: urgent,
                    ..a
                });
            }
        }
    }

    /// What poll/epoll report for a slot's socket (POLLIN, POLLOUT, POLLRDHUP, POLLHUP,
    /// POLLERR, POLLPRI, which have the same values as their EPOLL* names). The caller polls
    /// the datapath once before asking about a whole set (`poll`): once per set, not per
    /// member, so a wait over many sockets costs one datapath poll.
    pub fn events(&mut self, slot: u32) -> u32 {
        let Some(s) = self.slot(slot) else { return 0 };
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
                // Zero-copy completions wait in the error queue.
                let mut ev = if s.zerocopy.done.is_some() { libc::POLLERR as u32 } else { 0 };
                let bit = |on: bool, b: libc::c_short| if on { b as u32 } else { 0 };
                ev |= bit(r.readable, libc::POLLIN);
                ev |= bit(r.priority, libc::POLLPRI);
                ev |= bit(r.writable, libc::POLLOUT);
                ev |= bit(r.read_hangup, libc::POLLRDHUP);
                ev |= bit(r.hangup, libc::POLLHUP);
                ev |= bit(r.error, libc::POLLERR);
                ev
            }
        }
    }

    /// Sends that found a slot's send buffer full (for edge-triggered EPOLLOUT).
    pub fn send_blocks(&self, slot: u32) -> u32 {
        self.slot(slot).map_or(0, |s| s.send_blocks)
    }

    /// Claims back the SYN flow of a listener parked by a fork (`Slot::parked`).
    fn unpark(&mut self, slot: u32) {
        let Some(s) = self.slot(slot).filter(|s| s.parked) else { return };
        if self.driver.claim(s.flow).is_ok() {
            if let Some(s) = self.slot_mut(slot) {
                s.parked = false;
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
        control: &stack::udp::SendControl,
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
        let r = self.udp_send(slot, &scratch[..total.min(at)], dst, control);
        self.scratch = scratch;
        r
    }

    /// Sends a datagram from a slot, with what a sendmsg's control messages ask for.
    pub fn udp_send(
        &mut self,
        slot: u32,
        data: &[u8],
        dst: Option<SocketAddrV4>,
        control: &stack::udp::SendControl,
    ) -> Result<usize, UdpError> {
        let s = self.slot(slot).ok_or(UdpError::BadHandle)?;
        if dst.is_some_and(|d| d.ip().is_multicast()) {
            // Members that joined on the host since the last poll are looped to.
            self.driver.refresh_kernel_tables_if_due();
        }
        self.driver.send(|stack, tx| stack.udp_send_with(s.handle, data, dst, control, tx))
    }
}

/// The lowest number for exasock's own descriptors: 64 below the smaller of the soft
/// RLIMIT_NOFILE and the fd table's size (and never below 64).
pub(super) fn internal_fd_base() -> i32 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into a struct we own.
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 { lim.rlim_cur } else { 1024 };
    (soft.min(fdtable::MAX_FDS as u64) as i32 - 64).max(64)
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

/// Reads from the slot's TCP stream after polling the datapath (`Ok(0)`: the stream ended, or
/// reading was shut down: the stack keeps that state). A peek with `peek_off` starts at the
/// socket's SO_PEEK_OFF and moves it on; reads move it back (Linux's sk_peek_off). Also returns
/// the socket's SO_RCVLOWAT, for a blocking receive's target.
pub fn tcp_read(
    slot: u32,
    into: stack::tcp::RecvInto<'_>,
    mut flags: stack::tcp::RecvFlags,
    peek_off: bool,
) -> Result<(usize, usize), stack::tcp::TcpError> {
    let mut guard = lock();
    let rt = guard.as_mut().ok_or(stack::tcp::TcpError::BadHandle)?;
    let s = rt.slot(slot).filter(|s| s.proto == Proto::Tcp).ok_or(stack::tcp::TcpError::BadHandle)?;
    rt.poll();
    if flags.peek && peek_off {
        flags.peek_offset = s.peek_off.unwrap_or(0);
    }
    let (n, lowat) = rt.driver.tcp(|stack, _| {
        let n = stack.tcp_recv_with(s.handle, into, flags)?;
        Ok((n, stack.tcp_rcvlowat(s.handle)?))
    })?;
    if let (Some(off), false) = (s.peek_off, flags.oob) {
        let moved = if flags.peek {
            if peek_off {
                off + n
            } else {
                off
            }
        } else {
            off.saturating_sub(n)
        };
        if let Some(slot) = rt.slot_mut(slot) {
            slot.peek_off = Some(moved);
        }
    }
    Ok((n, lowat))
}

/// SO_PEEK_OFF of an accelerated TCP socket: None when off (-1).
pub fn peek_off(slot: u32) -> Option<usize> {
    lock().as_ref().and_then(|rt| rt.slot(slot)).and_then(|s| s.peek_off)
}

/// Sets SO_PEEK_OFF of an accelerated TCP socket (negative turns it off).
pub fn set_peek_off(slot: u32, value: i32) {
    if let Some(s) = lock().as_mut().and_then(|rt| rt.slot_mut(slot)) {
        s.peek_off = usize::try_from(value).ok();
    }
}

/// A MSG_ZEROCOPY send on the slot took bytes (with SO_ZEROCOPY on): its completion is queued.
pub fn zerocopy_completed(slot: u32) {
    if let Some(rt) = lock().as_mut() {
        if let Some(s) = rt.slot_mut(slot) {
            s.zerocopy.completed();
            rt.changed(slot);
        }
    }
}

/// Takes the zero-copy completions waiting in the slot's error queue (first id, last id).
pub fn take_zerocopy_completions(slot: u32) -> Option<(u32, u32)> {
    lock().as_mut().and_then(|rt| rt.slot_mut(slot)).and_then(|s| s.zerocopy.done.take())
}

/// Before an accept in this process on a listener parked by a fork: its SYNs come to the stack
/// again (the connections that reached its kernel socket meanwhile are accepted from there).
pub fn unpark_listener(slot: u32) {
    if let Some(rt) = lock().as_mut() {
        rt.unpark(slot);
    }
}

/// A listener had an option set that its accepted connections inherit.
pub fn note_inheritable_options(slot: u32) {
    if let Some(s) = lock().as_mut().and_then(|rt| rt.slot_mut(slot)) {
        s.inheritable_set = true;
    }
}

/// Whether a listener's accepted connections inherit options the program set on it.
pub fn has_inheritable_options(slot: u32) -> bool {
    lock().as_ref().and_then(|rt| rt.slot(slot)).is_some_and(|s| s.inheritable_set)
}

/// A send on the slot found its buffer full: the next writable edge is reported.
pub fn note_send_blocked(slot: u32) {
    if let Some(s) = lock().as_mut().and_then(|rt| rt.slot_mut(slot)) {
        s.send_blocks = s.send_blocks.wrapping_add(1);
    }
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
