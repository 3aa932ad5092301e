//! The acceleration policy: which sockets move onto the stack (bind, listen, connect, send
//! auto-bind, group joins), how, and the kernel-socket facts that decide it.

use super::*;

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
    // The stack checks address sharing as the kernel did: with the kernel socket's options;
    // and it sends and receives as they say.
    let (reuse_addr, reuse_port) = reuse_flags(fd);
    if let Ok(o) = stack.udp_options_mut(handle) {
        *o = udp_options_of(fd, *o);
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
    if ip.is_multicast() && rt.driver.datapath() == nic::steering::Datapath::AfPacket {
        // Bound to a group: it receives nothing but its groups, which every process that
        // receives them takes at its ring (the multicast map), so no flow is claimed for it.
        // Over AF_XDP the group's flow is claimed as any other: XDP redirects a frame to one
        // socket only, so one process receives it (several: the flow is shared, the kernel's).
        return finish_udp(rt, fd, handle, flow);
    }
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
    finish_udp(rt, fd, handle, flow)
}

/// The last steps of `accelerate_udp`, once the flow (if any) is claimed.
fn finish_udp(rt: &mut Runtime, fd: i32, handle: SocketHandle, flow: Flow) -> Result<(), NotAccelerated> {
    let inode = socket_inode(fd);
    let mut groups = [Ipv4Addr::UNSPECIFIED; FILTER_GROUPS + 1];
    let n = ring_groups(&rt.driver, flow.local_port, &mut groups);
    drop_kernel_multicast(fd, rt.driver.ifindex(), &groups[..n]);
    // The queue holds what the kernel socket would: its effective SO_RCVBUF.
    if let Some(bytes) = kernel_rcvbuf(fd) {
        let _ = rt.driver.stack().udp_set_rcvbuf(handle, bytes);
    }
    let Some(slot) = rt.insert(Slot {
        handle,
        proto: Proto::Udp,
        family: Family::V4,
        flow,
        shut_rd: false,
        shut_wr: false,
        ancillary: Ancillary::of(fd),
        refs: 1,
        id: 0,
        inode,
        connect_pending: false,
        send_blocks: 0,
        zerocopy: ZeroCopy::default(),
        async_io: None,
        peek_off: None,
        inheritable_set: false,
        accepted: false,
        parked: false,
        forked: false,
    }) else {
        let _ = rt.driver.release(flow);
        let _ = rt.driver.stack().udp_close(handle);
        return Err(NotAccelerated::Failed("too many accelerated sockets".into()));
    };
    fdtable::set(fd, fdtable::FdState::Accel(slot));
    publish::socket_opened(rt, slot, fd);
    // Memberships made before the socket was bound start now, as the original adds them at bind.
    for (group, listen) in take_pending(inode) {
        if rt.membership(slot, group, true).is_ok() && listen {
            listening(inode, group, true);
        }
    }
    if config::debug() {
        log::emit(format_args!("exasock: enabled bypass on fd {fd}\n"));
    }
    Ok(())
}

/// The most groups a kernel socket's filter names one by one (classic BPF jumps reach 255
/// instructions); past it, the socket drops every group arriving on the attached interface.
pub(super) const FILTER_GROUPS: usize = 200;

/// The groups this process takes at its ring on `port`, into `out` (one more than the filter
/// names when there are too many); how many. None over AF_XDP: a frame XDP redirects to the
/// XSK never reaches the kernel, and one it passes (a shared flow: several receivers) reaches
/// this process only through its kernel socket, which must keep it.
pub(super) fn ring_groups(driver: &Driver, port: u16, out: &mut [Ipv4Addr; FILTER_GROUPS + 1]) -> usize {
    if driver.datapath() == nic::steering::Datapath::AfXdp {
        return 0;
    }
    driver.groups_on(port).zip(out.iter_mut()).map(|(g, slot)| *slot = g).count()
}

/// The kernel socket behind an accelerated UDP socket drops the multicast datagrams that
/// arrive on the attached interface for a group this process takes at its ring on the
/// socket's port (`groups`): tc leaves the kernel its copy of every group (for the kernel's
/// own members), and the stack delivered this process's copy, so the kernel socket's would be
/// a duplicate. Other groups stay: those a socket receives by IP_MULTICAST_ALL (Linux's
/// default) because another process, or a socket of this one on another port, joined them on
/// the host reach it only through the kernel, which the receive path reads too. Looped-back
/// copies (PACKET_LOOPBACK), unicast, broadcast and other interfaces also stay. A classic BPF
/// filter (SO_ATTACH_FILTER): `pkttype == PACKET_MULTICAST && ifindex == attached && ip dst in
/// groups` -> drop. Made again whenever the groups of the port change.
pub(super) fn drop_kernel_multicast(fd: i32, ifindex: u32, groups: &[Ipv4Addr]) {
    const SKF_AD_OFF: u32 = (-0x1000i32) as u32;
    const SKF_NET_OFF: u32 = (-0x10_0000i32) as u32;
    const SKF_AD_PKTTYPE: u32 = 4;
    const SKF_AD_IFINDEX: u32 = 8;
    const PACKET_MULTICAST: u32 = 2;
    let ins = |code: u32, jt: u8, jf: u8, k: u32| libc::sock_filter { code: code as u16, jt, jf, k };
    let ld_abs_w = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    let jeq = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
    let ret = libc::BPF_RET | libc::BPF_K;
    let mut prog = [ins(0, 0, 0, 0); FILTER_GROUPS + 7];
    let every = groups.len() > FILTER_GROUPS;
    let n = if every { 0 } else { groups.len() };
    // 0-3: not a multicast frame of the attached interface -> accept (index 5 + n).
    prog[0] = ins(ld_abs_w, 0, 0, SKF_AD_OFF + SKF_AD_PKTTYPE);
    prog[1] = ins(jeq, 0, (3 + n) as u8, PACKET_MULTICAST);
    prog[2] = ins(ld_abs_w, 0, 0, SKF_AD_OFF + SKF_AD_IFINDEX);
    prog[3] = ins(jeq, 0, (1 + n) as u8, ifindex);
    // 4: the IP destination; 5..5+n: one of the groups -> drop (index 6 + n).
    prog[4] = ins(ld_abs_w, 0, 0, SKF_NET_OFF + 16);
    for (i, g) in groups.iter().take(n).enumerate() {
        prog[5 + i] = ins(jeq, (n - i) as u8, 0, u32::from(*g));
    }
    prog[5 + n] = ins(ret, 0, 0, if every { 0 } else { u32::MAX });
    prog[6 + n] = ins(ret, 0, 0, 0);
    let fprog = libc::sock_fprog { len: (7 + n) as u16, filter: prog.as_mut_ptr() };
    // SAFETY: the program outlives the call, which copies it.
    let r = unsafe {
        crate::real::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&fprog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if r != 0 && config::debug() {
        log::emit(format_args!("exasock: fd {fd}: cannot filter the kernel's multicast copies\n"));
    }
}

/// Opens the runtime if needed and checks that `local` is ours to serve.
pub(super) fn runtime_for(guard: &mut Option<Runtime>, local: SocketAddrV4) -> Result<&mut Runtime, NotAccelerated> {
    if guard.is_none() {
        *guard = Some(Runtime::open()?);
    }
    let rt = guard.as_mut().expect("just opened");
    if rt.detached {
        return Err(NotAccelerated::NoInterface);
    }
    release_queued(rt);
    let ip = *local.ip();
    if !ip.is_unspecified() && !rt.driver.stack().interface().has_addr(ip) {
        return Err(NotAccelerated::NotOurs);
    }
    Ok(rt)
}

/// Moves a bound TCP socket that the program made listen onto the stack (its kernel socket
/// listens too: it keeps the port, serves clients on this host and other interfaces, and tells
/// the steering program the owner lives).
pub fn accelerate_tcp_listener(fd: i32, local: SocketAddrV4, backlog: i32) -> Result<(), NotAccelerated> {
    let mut guard = lock();
    let rt = runtime_for(&mut guard, local)?;
    let stack = rt.driver.stack();
    let handle = stack.tcp_open();
    let defaults = stack.tcp_options(handle).map_err(|e| NotAccelerated::Failed(e.to_string()))?;
    let options = tcp_options_of(fd, defaults, stack.tcp_config());
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
    adopt(rt, fd, handle, Proto::Tcp, flow)?;
    super::watcher::ensure_started();
    Ok(())
}

/// Records an accelerated socket behind `fd`.
pub(super) fn adopt(
    rt: &mut Runtime,
    fd: i32,
    handle: SocketHandle,
    proto: Proto,
    flow: Flow,
) -> Result<(), NotAccelerated> {
    let slot = Slot {
        handle,
        proto,
        family: Family::of(fd).unwrap_or(Family::V4),
        flow,
        shut_rd: false,
        shut_wr: false,
        ancillary: Ancillary::default(),
        refs: 1,
        id: 0,
        inode: 0,
        connect_pending: false,
        send_blocks: 0,
        zerocopy: ZeroCopy::default(),
        async_io: None,
        peek_off: None,
        inheritable_set: fdtable::tcp_options_set(fd) & fdtable::INHERITABLE_SET != 0,
        accepted: false,
        parked: false,
        forked: false,
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
    publish::socket_opened(rt, slot, fd);
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
    if let Some(listener) = rt.slot_mut(slot) {
        listener.accepted = true;
    }
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
    kernel_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF).filter(|v| *v > 0).map(|v| v as usize)
}

/// The inode of the socket behind `fd` (0 if it cannot be read).
pub(crate) fn socket_inode(fd: i32) -> u64 {
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
pub(super) fn shared_with_others(rt: &Runtime, flow: Flow, inode: u64) -> bool {
    let Ok(sockets) = driver::netlink::udp_sockets_on_port(flow.local_port) else { return false };
    let ours = |i: u64| i == inode || rt.slots.iter().flatten().any(|s| s.inode == i);
    sockets.iter().any(|s| {
        let ip = *s.local.ip();
        let overlaps = ip == flow.local_ip || ip.is_unspecified() || flow.local_ip.is_unspecified();
        overlaps && !ours(s.inode)
    })
}

/// The kernel socket's SO_REUSEADDR and SO_REUSEPORT.
pub(super) fn reuse_flags(fd: i32) -> (bool, bool) {
    let flag = |name: i32| kernel_int(fd, libc::SOL_SOCKET, name).is_some_and(|v| v != 0);
    (flag(libc::SO_REUSEADDR), flag(libc::SO_REUSEPORT))
}

/// Whether the kernel socket holds its port alone (no SO_REUSEADDR, no SO_REUSEPORT): then no
/// other live socket can, and a flow entry of another pid belongs to a process that is exiting.
pub(super) fn exclusive_port(fd: i32) -> bool {
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
    if !bind_any_port(fd) {
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
pub(super) fn routed_via(ifaces: &[String], dst: SocketAddrV4) -> bool {
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
    let defaults = stack.tcp_options(handle).map_err(|e| NotAccelerated::Failed(e.to_string()))?;
    let options = tcp_options_of(fd, defaults, stack.tcp_config());
    // The kernel socket holds the port: the connection's claim checks it alone.
    rt.driver.vouch(fd);
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
    super::watcher::ensure_started();
    match fdtable::get(fd) {
        FdState::Accel(slot) => Ok(slot),
        _ => Err(NotAccelerated::Failed("lost the slot".into())),
    }
}

/// A membership made on a socket not yet bound (the original records it and adds it at bind):
/// an IP_ADD_MEMBERSHIP on the attached interface (the kernel socket joined) or an
/// SO_EXA_MCAST_LISTEN (nothing joined). Kept by socket inode (a duplicate descriptor may bind
/// it); the number only sweeps the entries of sockets closed unbound once there are many.
struct PendingMembership {
    fd: i32,
    inode: u64,
    group: Ipv4Addr,
    /// SO_EXA_MCAST_LISTEN's (the kernel socket joined nothing).
    listen: bool,
}

static PENDING: std::sync::Mutex<Vec<PendingMembership>> = std::sync::Mutex::new(Vec::new());

fn pending() -> std::sync::MutexGuard<'static, Vec<PendingMembership>> {
    PENDING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Records a membership of the unbound socket `fd`, to be made in the stack when it is
/// accelerated; false if the socket already has it (EADDRINUSE, as Linux for a duplicate).
pub fn pending_join(fd: i32, group: Ipv4Addr, listen: bool) -> bool {
    let inode = socket_inode(fd);
    let mut p = pending();
    if p.len() >= 256 {
        // Entries of sockets closed unbound: their numbers now name another socket, or none.
        p.retain(|m| socket_inode(m.fd) == m.inode);
    }
    if p.iter().any(|m| m.inode == inode && m.group == group) {
        return false;
    }
    p.push(PendingMembership { fd, inode, group, listen });
    true
}

/// Forgets a membership `pending_join` recorded (a listen-only one, or one the kernel socket
/// joined); whether there was one.
pub fn pending_leave(fd: i32, group: Ipv4Addr, listen: bool) -> bool {
    let inode = socket_inode(fd);
    let mut p = pending();
    let before = p.len();
    p.retain(|m| !(m.inode == inode && m.group == group && m.listen == listen));
    p.len() != before
}

/// Whether the unbound socket `fd` recorded a membership of `group`.
pub fn pending_member(fd: i32, group: Ipv4Addr) -> bool {
    let inode = socket_inode(fd);
    pending().iter().any(|m| m.inode == inode && m.group == group)
}

/// Takes the memberships recorded for `fd` (the socket is now accelerated), each with whether
/// it is listen-only.
fn take_pending(inode: u64) -> Vec<(Ipv4Addr, bool)> {
    let mut p = pending();
    if p.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    p.retain(|m| {
        let mine = m.inode == inode;
        if mine {
            out.push((m.group, m.listen));
        }
        !mine
    });
    out
}

/// The groups sockets receive with SO_EXA_MCAST_LISTEN, by socket inode (the kernel socket never
/// joined them: IP_DROP_MEMBERSHIP, which the kernel refuses for them, leaves them in the stack;
/// for any other group the kernel's answer stands).
static LISTENING: std::sync::Mutex<Vec<(u64, Ipv4Addr)>> = std::sync::Mutex::new(Vec::new());

/// Records (`on`) or forgets a listen-only membership of the socket `inode`; whether it was
/// recorded before.
pub fn listening(inode: u64, group: Ipv4Addr, on: bool) -> bool {
    let mut l = LISTENING.lock().unwrap_or_else(|e| e.into_inner());
    let was = l.iter().position(|m| *m == (inode, group));
    match (was, on) {
        (None, true) => l.push((inode, group)),
        (Some(i), false) => {
            l.swap_remove(i);
        }
        _ => {}
    }
    was.is_some()
}

/// Groups sockets joined on an interface that is not attached: (fd, socket inode, group).
static ELSEWHERE: std::sync::Mutex<Vec<(i32, u64, Ipv4Addr)>> = std::sync::Mutex::new(Vec::new());

/// Records (`on`) or forgets a membership of socket `fd` on an interface that is not attached.
pub fn joined_elsewhere_set(fd: i32, group: Ipv4Addr, on: bool) {
    let inode = socket_inode(fd);
    let mut l = ELSEWHERE.lock().unwrap_or_else(|e| e.into_inner());
    // Entries of sockets closed since: their numbers now name another socket, or none.
    l.retain(|m| (m.0, m.1) != (fd, inode) || m.2 != group);
    if on {
        l.retain(|m| socket_inode(m.0) == m.1);
        l.push((fd, inode, group));
    }
}

/// Whether socket `fd` has a membership on an interface that is not attached.
pub fn joined_elsewhere(fd: i32) -> bool {
    let l = ELSEWHERE.lock().unwrap_or_else(|e| e.into_inner());
    !l.is_empty() && {
        let inode = socket_inode(fd);
        l.iter().any(|m| (m.0, m.1) == (fd, inode))
    }
}
