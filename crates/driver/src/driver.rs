//! The driver of one accelerated interface: the stack, its port, the kernel's tables.

use crate::clock;
use crate::netlink::{Change, Monitor, Netlink, Route as KernelRoute, RTN_UNICAST, RT_TABLE_MAIN};
use crate::transmit::{KernelPath, PortTx};
use nic::steering::{Datapath, Flow, Steering, SteeringError};
use nic::{Port, RxChecksum as PortChecksum};
use stack::route::Route;
use stack::{Event, IfAddr, Instant, Interface, RxChecksum, SocketHandle, Stack, StackConfig, Transmit};
use std::collections::HashMap;
use std::io;
use std::time::Duration;
use wire::EthernetAddress;

/// Frames taken from the ring per poll.
const RX_BURST: usize = 64;
/// How long a neighbour the kernel was asked about is not asked about again: meanwhile the
/// rtnetlink monitor reports its resolution, and every datagram to it goes to the kernel anyway.
const NEIGHBOUR_ASK_INTERVAL: Duration = Duration::from_secs(1);
/// Neighbours remembered as recently asked about (a fixed table: no allocation per packet).
const NEIGHBOURS_ASKED: usize = 16;
/// How often `poll` reads the kernel's table changes.
const TABLES_CHECK_INTERVAL: Duration = Duration::from_millis(1);
/// The most readiness changes kept between two `take_ready` calls; more and the taker is told
/// to look at every socket.
const READY_CAP: usize = 4096;

/// The driver: everything that touches the world on the stack's behalf.
pub struct Driver {
    stack: Stack,
    port: Box<dyn Port>,
    kernel: KernelPath,
    netlink: Netlink,
    monitor: Monitor,
    steering: Steering,
    /// How this process's flows reach it (AF_PACKET, or AF_XDP: see `nic::select`); every
    /// claim carries it.
    datapath: Datapath,
    /// How many of this process's sockets use each claimed flow (several sockets of one
    /// process may share a port with SO_REUSEADDR/SO_REUSEPORT): the entry goes with the last.
    claims: HashMap<Flow, u32>,
    /// How many of this process's memberships receive each group:port (issue 17): the
    /// process's entry in the multicast map goes with the last.
    groups: HashMap<(std::net::Ipv4Addr, u16), u32>,
    /// How many of those name each group: its MAC stays in the device's filter until the last.
    group_macs: HashMap<std::net::Ipv4Addr, u32>,
    /// The interface's name (`exasock_tcp_get_device`).
    iface: String,
    ifindex: u32,
    changes: Vec<Change>,
    kernel_errors: u64,
    ring_full: u64,
    neighbour_queries: u64,
    /// Unresolved neighbours recently asked about, and when; replaced round-robin.
    neighbours_asked: [Option<(std::net::Ipv4Addr, Instant)>; NEIGHBOURS_ASKED],
    neighbours_asked_next: usize,
    tables_checked: Instant,
    /// Sockets the stack said turned readable or writable (Readable and Writable events) since
    /// the last `take_ready`, for the socket layer's ready lists (epoll).
    ready: Vec<SocketHandle>,
    /// Some were not kept: the list overflowed, or the stack dropped events.
    ready_overflow: bool,
    /// The stack's dropped-event count when last looked at.
    events_dropped_seen: u64,
    /// When `poll` last ran (its clock reading, for callers that track activity).
    polled_at: Instant,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver").field("ifindex", &self.ifindex).finish()
    }
}

fn to_stack_route(r: &KernelRoute) -> Route {
    Route {
        prefix: r.prefix,
        prefix_len: r.prefix_len,
        gateway: r.gateway,
        src: r.prefsrc,
        mtu: r.mtu.map(|m| m as usize),
    }
}

fn ifindex(iface: &str) -> io::Result<u32> {
    nic::if_index(iface).ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no interface named {iface}")))
}

impl Driver {
    /// Opens the datapath on an attached interface and loads the kernel's view of it. The
    /// datapath is the one `EXASOCK_DATAPATH` asks for (`nic::select`): by default AF_XDP on an
    /// interface attached with `--datapath xdp` whose queues no other process has bound, else
    /// AF_PACKET.
    pub fn open(iface: &str) -> io::Result<Driver> {
        let request = nic::select::Request::from_env().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Driver::open_with(iface, request)
    }

    /// As [`Driver::open`], with the datapath request given.
    pub fn open_with(iface: &str, request: nic::select::Request) -> io::Result<Driver> {
        let ifindex = ifindex(iface)?;
        let mut steering = Steering::open(iface).map_err(|e| io::Error::other(e.to_string()))?;
        // The liveness anchor exists from the start, so that `internal_fds` names it before
        // the first claim (the preload library protects those, and closes them in a fork child).
        steering.anchor_fd().map_err(|e| io::Error::other(e.to_string()))?;
        let token = steering.owner_token().map_err(|e| io::Error::other(e.to_string()))?;
        let (port, datapath) = nic::select::open_port(iface, request, token)?;
        let mut netlink = Netlink::open()?;
        let monitor = Monitor::open()?;
        let addrs = netlink
            .addresses(Some(ifindex))?
            .into_iter()
            .map(|a| IfAddr { addr: a.addr, prefix_len: a.prefix_len, broadcast: a.broadcast })
            .collect();
        let iface_cfg = Interface { mac: EthernetAddress(port.mac()), addrs, mtu: port.mtu(), ifindex };
        let mut config = StackConfig {
            ident_seed: (clock::now().as_nanos() as u16) ^ (std::process::id() as u16),
            ..StackConfig::default()
        };
        // The secret behind ISNs (RFC 6528) and the TCP demultiplexer's hash: with the
        // default key both would be public.
        config.tcp.isn_key = random_key()?;
        // Only steered segments reach the stack. One for a connection it no longer has (handed
        // over to the kernel, or just freed, with frames still in the ring) must not be reset:
        // the peer sends it again and the kernel, which owns the port, answers.
        config.tcp.rst_unknown = false;
        namespace_tcp_sysctls(&mut config.tcp);
        let stack = Stack::new(iface_cfg, config);
        let kernel = KernelPath::open()?;
        kernel.multicast_via(ifindex)?;
        Driver {
            stack,
            port,
            kernel,
            netlink,
            monitor,
            steering,
            datapath,
            claims: HashMap::new(),
            groups: HashMap::new(),
            group_macs: HashMap::new(),
            iface: iface.to_string(),
            ifindex,
            changes: Vec::new(),
            kernel_errors: 0,
            ring_full: 0,
            neighbour_queries: 0,
            neighbours_asked: [None; NEIGHBOURS_ASKED],
            neighbours_asked_next: 0,
            tables_checked: Instant::ZERO,
            ready: Vec::with_capacity(READY_CAP),
            ready_overflow: false,
            events_dropped_seen: 0,
            polled_at: Instant::ZERO,
        }
        .loaded()
    }

    fn loaded(mut self) -> io::Result<Driver> {
        self.reload_tables()?;
        self.publish_addresses();
        Ok(self)
    }

    /// Tells the steering programs which addresses wildcard flows answer for: the interface's
    /// as the stack knows them (attach wrote them once; they may have changed since).
    fn publish_addresses(&mut self) {
        let addrs: Vec<(std::net::Ipv4Addr, u8, Option<std::net::Ipv4Addr>)> =
            self.stack.interface().addrs.iter().map(|a| (a.addr, a.prefix_len, a.broadcast)).collect();
        let _ = self.steering.set_local_addrs(&nic::steering::wildcard_addrs(&addrs));
    }

    /// The name of the interface it serves.
    pub fn interface_name(&self) -> &str {
        &self.iface
    }

    /// The stack.
    pub fn stack(&mut self) -> &mut Stack {
        &mut self.stack
    }

    /// Claims a flow (a UDP socket's, a TCP listener's or one TCP connection's, see
    /// [`Flow`]) for one more socket of this process; for UDP the caller holds the kernel socket
    /// for its port. Claims are counted per `Flow`: the first writes the steering entry (with
    /// this process's anchor token), later ones only count.
    pub fn claim(&mut self, flow: Flow) -> Result<(), SteeringError> {
        self.claim_with(flow, false)
    }

    /// Names the kernel socket `fd` that holds the port of the next claim (an active open's:
    /// its `TcpOpened` claims the connection), so that claim checks it alone instead of every
    /// descriptor of the process (see `Steering::vouch`).
    pub fn vouch(&mut self, fd: std::os::fd::RawFd) -> bool {
        self.steering.vouch(fd)
    }

    /// Claims a flow whose port this process's kernel socket holds exclusively, replacing an
    /// owner that is still exiting (see `Steering::take_over`).
    pub fn claim_exclusive(&mut self, flow: Flow) -> Result<(), SteeringError> {
        self.claim_with(flow, true)
    }

    fn claim_with(&mut self, flow: Flow, exclusive: bool) -> Result<(), SteeringError> {
        if let Some(n) = self.claims.get_mut(&flow) {
            *n += 1;
            return Ok(());
        }
        if exclusive {
            self.steering.take_over(flow, self.datapath)?;
        } else {
            self.steering.claim(flow, self.datapath)?;
        }
        self.claims.insert(flow, 1);
        Ok(())
    }

    /// One socket stops using a flow (any kind); the steering entry goes when the last one does.
    /// A TCP connection's entry goes when the connection reaches CLOSED or is handed to the
    /// kernel; its listener's entry is independent of it.
    pub fn release(&mut self, flow: Flow) -> Result<(), SteeringError> {
        match self.claims.get_mut(&flow) {
            Some(n) if *n > 1 => {
                *n -= 1;
                Ok(())
            }
            Some(_) => {
                self.claims.remove(&flow);
                self.steering.release(flow)
            }
            None => Ok(()),
        }
    }

    /// Another process owns `flow` and one of our kernel sockets holds its port too: the kernel
    /// serves the flow from now on (see `Steering::mark_shared`). False if the entry is gone.
    pub fn share(&mut self, flow: Flow) -> Result<bool, SteeringError> {
        self.steering.mark_shared(flow)
    }

    /// The interface's index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// How many sockets use a claimed flow (0: not claimed).
    pub fn claim_count(&self, flow: Flow) -> u32 {
        self.claims.get(&flow).copied().unwrap_or(0)
    }

    /// One more membership of this process receives `group` on `port`: the first makes the
    /// process's socket filter take the group's datagrams to that port and puts the group's MAC
    /// in the device's filter (there may be no IGMP join to do it: SO_EXA_MCAST_LISTEN).
    pub fn receive_group(&mut self, group: std::net::Ipv4Addr, port: u16) -> Result<(), SteeringError> {
        if let Some(n) = self.groups.get_mut(&(group, port)) {
            *n += 1;
            return Ok(());
        }
        self.steering.receive_group(group, port)?;
        // A process served over AF_XDP that takes the group at its XSK would keep it from us.
        self.steering.share_group_with_xdp_owners(group, port);
        self.groups.insert((group, port), 1);
        let macs = self.group_macs.entry(group).or_insert(0);
        *macs += 1;
        if *macs == 1 {
            let _ = self.port.multicast_filter(stack::neighbour::multicast_mac(group).0, true);
        }
        Ok(())
    }

    /// The groups this process takes at its ring for `port` (`receive_group`).
    pub fn groups_on(&self, port: u16) -> impl Iterator<Item = std::net::Ipv4Addr> + '_ {
        self.groups.keys().filter(move |(_, p)| *p == port).map(|(g, _)| *g)
    }

    /// One membership of this process stops receiving `group` on `port` (see `receive_group`).
    pub fn stop_group(&mut self, group: std::net::Ipv4Addr, port: u16) {
        match self.groups.get_mut(&(group, port)) {
            Some(n) if *n > 1 => {
                *n -= 1;
                return;
            }
            Some(_) => {}
            None => return,
        }
        self.groups.remove(&(group, port));
        let _ = self.steering.stop_group(group, port);
        if let Some(m) = self.group_macs.get_mut(&group) {
            *m -= 1;
            if *m == 0 {
                self.group_macs.remove(&group);
                let _ = self.port.multicast_filter(stack::neighbour::multicast_mac(group).0, false);
            }
        }
    }

    /// Whether the interface is still attached: `exasock-ctl detach --force` may remove it
    /// under a running program, whose sockets must then go on through the kernel.
    pub fn interface_attached(&self) -> bool {
        self.steering.attached()
    }

    /// The file whose presence says the interface is attached (see `interface_attached`).
    pub fn attach_pin(&self) -> &std::path::Path {
        self.steering.pin_path()
    }

    /// Gives every claimed flow back to the kernel (exit, exec) without forgetting who uses
    /// them, so that `reclaim_all` can take them again.
    pub fn release_all(&mut self) {
        for flow in self.claims.keys() {
            let _ = self.steering.release(*flow);
        }
        for (group, port) in self.groups.keys() {
            let _ = self.steering.stop_group(*group, *port);
        }
    }

    /// Claims again every flow `release_all` gave back (after a failed exec); returns those
    /// another process took meanwhile, which are no longer counted.
    pub fn reclaim_all(&mut self) -> Vec<(Flow, SteeringError)> {
        let mut lost = Vec::new();
        for flow in self.claims.keys() {
            if let Err(e) = self.steering.claim(*flow, self.datapath) {
                lost.push((*flow, e));
            }
        }
        for (flow, _) in &lost {
            self.claims.remove(flow);
        }
        for (group, port) in self.groups.keys() {
            let _ = self.steering.receive_group(*group, *port);
        }
        lost
    }

    /// The sockets the driver opened (ring, rtnetlink request and monitor, raw IPv4, the
    /// steering liveness anchor), so that an interposition layer can keep the program from
    /// closing them, and close them in a fork child (a child holding the anchor would hide its
    /// parent's death).
    pub fn internal_fds(&self) -> Vec<std::os::fd::RawFd> {
        use std::os::fd::{AsFd, AsRawFd};
        let mut fds = vec![self.netlink.as_fd().as_raw_fd(), self.monitor.fd(), self.kernel.fd()];
        fds.extend(self.port.internal_fds());
        fds.extend(self.steering.anchor().map(|a| a.fd()));
        fds.extend(self.steering.flows_fd());
        fds
    }

    /// A socket of the driver's in the interface's network namespace (for SO_NETNS_COOKIE; the
    /// wait fd may be an epoll set, which has no namespace).
    pub fn netns_socket(&self) -> std::os::fd::RawFd {
        self.kernel.fd()
    }

    /// The datapath this process's frames travel (AF_PACKET or AF_XDP).
    pub fn datapath(&self) -> Datapath {
        self.datapath
    }

    /// Packets the kernel path failed to send.
    pub fn kernel_errors(&self) -> u64 {
        self.kernel_errors
    }

    /// The port's counters (frames, bytes, the kernel's drops before the ring: exasock-stat).
    pub fn port_stats(&self) -> nic::PortStats {
        self.port.stats()
    }

    /// Reads the datapath's kernel counters (ring drops) into `port_stats` (a syscall: for a
    /// periodic caller, not the packet path).
    pub fn refresh_port_stats(&mut self) {
        self.port.refresh_stats();
    }

    /// Sends refused because the transmit ring stayed full (the caller got EAGAIN or waited).
    pub fn ring_full(&self) -> u64 {
        self.ring_full
    }

    /// How many times the kernel's neighbour table was asked about an unresolved neighbour.
    pub fn neighbour_queries(&self) -> u64 {
        self.neighbour_queries
    }

    /// Receives one burst into the stack, runs due timers, applies kernel table changes and
    /// acts on the stack's events. Returns the frames received, plus one when timers ran.
    pub fn poll(&mut self) -> usize {
        let now = clock::now();
        self.polled_at = now;
        let Driver { stack, port, .. } = self;
        let got = port.receive(RX_BURST, &mut |frame| {
            let csum = match frame.checksum {
                PortChecksum::Unverified => RxChecksum::Unverified,
                PortChecksum::Verified => RxChecksum::Verified,
                PortChecksum::Partial => RxChecksum::Partial,
            };
            stack.receive(now, frame.data, csum);
        });
        let timers_due = self.stack.poll_timeout().is_some_and(|t| t <= now);
        if timers_due {
            self.stack.handle_timeout(now);
        }
        // New connections are steered to us before their first segment (a SYN-ACK) leaves.
        self.handle_events(now);
        // What receiving and the timers made TCP owe (ACKs, data the window let out,
        // retransmissions, RSTs) goes out now, with one kick.
        self.transmit_tcp(now);
        // Kernel table changes are rare: look for them at most once per millisecond, so a
        // spinning caller makes no syscall per poll.
        if now.saturating_since(self.tables_checked) >= TABLES_CHECK_INTERVAL {
            self.tables_checked = now;
            self.apply_kernel_changes();
        }
        // Timers change sockets too (an error after the last retry, keepalive's reset): a
        // caller sleeping on one learns of it as of a frame.
        got + usize::from(timers_due)
    }

    /// Acts on the stack's events: a connection that opened gets its own steering entry (the
    /// listener's takes only opening SYNs), one that left gives it back; a missing neighbour is
    /// asked of the kernel.
    fn handle_events(&mut self, now: Instant) {
        while let Some(event) = self.stack.poll_event() {
            match event {
                Event::TcpOpened { local, remote } => {
                    // A failure leaves the connection's segments to the kernel, which resets
                    // it: the peer learns at once, as from a refused connection.
                    let _ = self.claim(Flow::tcp_connection(local, remote));
                }
                Event::TcpClosed { local, remote } => {
                    let _ = self.release(Flow::tcp_connection(local, remote));
                }
                Event::TcpSynCookies { local } => {
                    // A failure leaves cookie ACKs to the kernel, which resets them: the
                    // client retries its SYN.
                    let _ = self.steering.mark_cookies(Flow::tcp_listener(*local.ip(), local.port()));
                }
                Event::NeighbourMissing(ip) => {
                    // Each datagram to it says so: ask once in a while, not per datagram.
                    if self.asked_recently(ip, now) {
                        continue;
                    }
                    // The kernel may know it already (it resolved it for someone else).
                    self.neighbour_queries += 1;
                    if let Ok(Some(n)) = self.netlink.neighbour(ip, self.ifindex) {
                        if let (true, Some(mac)) = (n.is_usable(), n.mac) {
                            self.stack.neighbours_mut().insert(ip, EthernetAddress(mac));
                        }
                    }
                }
                Event::Readable(h) | Event::Writable(h) => {
                    if self.ready.len() < READY_CAP {
                        self.ready.push(h);
                    } else {
                        self.ready_overflow = true;
                    }
                }
            }
        }
    }

    /// When `poll` last ran: a caller that records its activity needs no clock reading of its own.
    pub fn polled_at(&self) -> Instant {
        self.polled_at
    }

    /// Hands each socket whose readiness changed since the last call to `f` (a socket may come
    /// more than once) and forgets them. Returns true when some were lost (too many between two
    /// calls, or the stack's event queue overflowed): every socket may then have changed.
    pub fn take_ready(&mut self, mut f: impl FnMut(SocketHandle)) -> bool {
        let dropped = self.stack.events_dropped();
        let lost = std::mem::take(&mut self.ready_overflow) || dropped != self.events_dropped_seen;
        self.events_dropped_seen = dropped;
        for h in self.ready.drain(..) {
            f(h);
        }
        lost
    }

    /// Whether the kernel was asked about `ip` within NEIGHBOUR_ASK_INTERVAL; if not, records
    /// that it is being asked now.
    fn asked_recently(&mut self, ip: std::net::Ipv4Addr, now: Instant) -> bool {
        let fresh = |at: Instant| now.saturating_since(at) < NEIGHBOUR_ASK_INTERVAL;
        if let Some(entry) = self.neighbours_asked.iter_mut().find(|e| e.is_some_and(|(a, _)| a == ip)) {
            if entry.is_some_and(|(_, at)| fresh(at)) {
                return true;
            }
            *entry = Some((ip, now));
            return false;
        }
        self.neighbours_asked[self.neighbours_asked_next] = Some((ip, now));
        self.neighbours_asked_next = (self.neighbours_asked_next + 1) % NEIGHBOURS_ASKED;
        false
    }

    /// Applies the kernel's table changes now: after this process joined or left a group, the
    /// interface's memberships decide whether its next send to the group is looped.
    pub fn refresh_kernel_tables(&mut self) {
        self.tables_checked = clock::now();
        self.apply_kernel_changes();
    }

    /// Applies the kernel's table changes if `poll` has not for TABLES_CHECK_INTERVAL: a send
    /// to a group, which no poll may have preceded, learns of members that joined since.
    pub fn refresh_kernel_tables_if_due(&mut self) {
        let now = clock::now();
        if now.saturating_since(self.tables_checked) >= TABLES_CHECK_INTERVAL {
            self.tables_checked = now;
            self.apply_kernel_changes();
        }
    }

    fn apply_kernel_changes(&mut self) {
        self.changes.clear();
        let drained = self.monitor.drain(&mut self.changes);
        if drained.is_err() || self.changes.iter().any(|c| matches!(c, Change::Overrun)) {
            // Notifications were lost: read the tables whole again.
            self.changes.clear();
            let _ = self.reload_tables();
            self.publish_addresses();
            return;
        }
        let mut addresses_changed = false;
        for change in &self.changes {
            match change {
                Change::Neighbour(n) if n.ifindex == self.ifindex => match (n.is_usable(), n.mac) {
                    (true, Some(mac)) => self.stack.neighbours_mut().insert(n.ip, EthernetAddress(mac)),
                    _ => self.stack.neighbours_mut().remove(n.ip),
                },
                Change::NeighbourGone(n) if n.ifindex == self.ifindex => self.stack.neighbours_mut().remove(n.ip),
                Change::Route(r) if r.oif == self.ifindex && r.table == RT_TABLE_MAIN && r.kind == RTN_UNICAST => {
                    self.stack.routes_mut().insert(to_stack_route(r))
                }
                Change::RouteGone(r) if r.oif == self.ifindex && r.table == RT_TABLE_MAIN => {
                    self.stack.routes_mut().remove(r.prefix, r.prefix_len)
                }
                Change::Address(a) if a.ifindex == self.ifindex => {
                    addresses_changed = true;
                    let addr = IfAddr { addr: a.addr, prefix_len: a.prefix_len, broadcast: a.broadcast };
                    let iface = self.stack.interface_mut();
                    if !iface.addrs.contains(&addr) {
                        iface.addrs.push(addr);
                    }
                }
                Change::Group(g) if g.ifindex == self.ifindex => self.stack.set_host_group(g.group, true),
                Change::GroupGone(g) if g.ifindex == self.ifindex => self.stack.set_host_group(g.group, false),
                Change::AddressGone(a) if a.ifindex == self.ifindex => {
                    addresses_changed = true;
                    self.stack.interface_mut().addrs.retain(|x| x.addr != a.addr);
                }
                _ => {}
            }
        }
        if addresses_changed {
            self.publish_addresses();
        }
    }

    /// Reads routes and neighbours of our interface from the kernel into the stack.
    fn reload_tables(&mut self) -> io::Result<()> {
        let routes: Vec<Route> = self
            .netlink
            .routes()?
            .iter()
            .filter(|r| r.oif == self.ifindex && r.table == RT_TABLE_MAIN && r.kind == RTN_UNICAST)
            .map(to_stack_route)
            .collect();
        self.stack.routes_mut().replace(routes);
        let addrs: Vec<IfAddr> = self
            .netlink
            .addresses(Some(self.ifindex))?
            .into_iter()
            .map(|a| IfAddr { addr: a.addr, prefix_len: a.prefix_len, broadcast: a.broadcast })
            .collect();
        self.stack.interface_mut().addrs = addrs;
        // Kernels before 6.13 cannot say: then no group is looped.
        let groups = self.netlink.groups(self.ifindex).unwrap_or_default();
        self.stack.replace_host_groups(groups);
        for n in self.netlink.neighbours(Some(self.ifindex))? {
            if let (true, Some(mac)) = (n.is_usable(), n.mac) {
                self.stack.neighbours_mut().insert(n.ip, EthernetAddress(mac));
            }
        }
        Ok(())
    }

    /// Runs `f` (a datagram send) with the stack and a transmit sink, then kicks the device
    /// once. Its events (a missing neighbour) wait for the next poll; TCP calls go through
    /// [`Driver::tcp`].
    pub fn send<R>(&mut self, f: impl FnOnce(&mut Stack, &mut dyn Transmit) -> R) -> R {
        let Driver { stack, port, kernel, kernel_errors, ring_full, .. } = self;
        let mut tx = PortTx { port: port.as_mut(), kernel, kernel_errors, ring_full };
        let r = f(stack, &mut tx);
        let _ = port.flush();
        r
    }

    /// Runs a TCP call on the stack (`tcp_send`, `tcp_recv`, `tcp_close`...), then sends the
    /// segments it made due (a read can open the window, a close sends FIN) with one kick.
    pub fn tcp<R>(&mut self, f: impl FnOnce(&mut Stack, Instant) -> R) -> R {
        let now = clock::now();
        let r = f(&mut self.stack, now);
        self.handle_events(now);
        self.transmit_tcp(now);
        r
    }

    /// Gives connection `h` to the kernel socket `fd` (TCP_REPAIR, `handover::restore`), then
    /// forgets it and releases its flow, so the peer's next segments reach the kernel. On
    /// failure the connection stays with the stack. `NotConnected` from the stack: nothing
    /// to hand over (a handshake under way, TIME_WAIT).
    pub fn hand_over_tcp(&mut self, h: SocketHandle, fd: std::os::fd::RawFd) -> io::Result<()> {
        let now = clock::now();
        // What is due goes first: the snapshot then matches what the peer was told.
        self.transmit_tcp(now);
        let state = self.stack.tcp_repair_state(h, now).map_err(|e| io::Error::other(e.to_string()))?;
        crate::handover::restore(fd, &state, &self.kernel)?;
        self.stack.tcp_detach(h).map_err(|e| io::Error::other(e.to_string()))?;
        self.handle_events(now);
        Ok(())
    }

    /// Sends whatever TCP has due, with one kick; nothing when nothing is due.
    fn transmit_tcp(&mut self, now: Instant) {
        if !self.stack.tcp_transmit_pending() {
            return;
        }
        let Driver { stack, port, kernel, kernel_errors, ring_full, .. } = self;
        let mut tx = PortTx { port: port.as_mut(), kernel, kernel_errors, ring_full };
        if stack.transmit(now, &mut tx) > 0 {
            let _ = port.flush();
        }
    }

    /// Sleeps until a frame or a kernel table change may be waiting, or `timeout` passes.
    pub fn wait(&self, timeout: Duration) {
        let mut fds = [
            libc::pollfd { fd: self.port.wait_fd().unwrap_or(-1), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: self.monitor.fd(), events: libc::POLLIN, revents: 0 },
        ];
        let deadline = self.stack_timeout().map(|t| t.saturating_since(clock::now())).unwrap_or(timeout).min(timeout);
        // SAFETY: two valid pollfds.
        unsafe { libc::poll(fds.as_mut_ptr(), 2, deadline.as_millis().min(i32::MAX as u128) as i32) };
    }

    fn stack_timeout(&self) -> Option<Instant> {
        self.stack.poll_timeout()
    }

    /// What `wait` sleeps on (the ring and the rtnetlink monitor), for a caller that must sleep
    /// without holding the driver.
    pub fn wait_fds(&self) -> [std::os::fd::RawFd; 2] {
        [self.port.wait_fd().unwrap_or(-1), self.monitor.fd()]
    }

    /// When the stack next needs `poll` for its timers.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.stack_timeout()
    }
}

/// 128 random bits from the kernel (getrandom(2)).
fn random_key() -> io::Result<[u64; 2]> {
    let mut bytes = [0u8; 16];
    nic::steering::getrandom(&mut bytes)?;
    let (a, b) = bytes.split_at(8);
    Ok([u64::from_le_bytes(a.try_into().unwrap()), u64::from_le_bytes(b.try_into().unwrap())])
}

/// The network namespace's TCP sysctls the stack follows, read once at start (/proc/sys/net is
/// the reading process's namespace): the default congestion control (tcp_congestion_control,
/// when it names one the stack has; otherwise the stack's default, CUBIC), SYN cookies
/// (tcp_syncookies) and how far buffers autotune (tcp_rmem[2], tcp_wmem[2]).
fn namespace_tcp_sysctls(tcp: &mut stack::tcp::TcpConfig) {
    let read = |name: &str| std::fs::read_to_string(format!("/proc/sys/net/ipv4/{name}")).ok();
    if let Some(a) = read("tcp_congestion_control").and_then(|v| stack::tcp::congestion::Algorithm::from_name(v.trim()))
    {
        tcp.congestion = a;
    }
    if let Some(v) = read("tcp_syncookies").and_then(|v| v.trim().parse::<u8>().ok()) {
        tcp.syncookies = v.min(2);
    }
    // The bounds of autotuning: the third value of tcp_rmem and tcp_wmem.
    let third = |v: String| v.split_whitespace().nth(2).and_then(|m| m.parse::<usize>().ok());
    if let Some(max) = read("tcp_rmem").and_then(third) {
        tcp.rcvbuf_max = max;
    }
    if let Some(max) = read("tcp_wmem").and_then(third) {
        tcp.sndbuf_max = max;
    }
}
