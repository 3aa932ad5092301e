//! The stack's TCP calls: the POSIX-shaped socket API (open, bind, listen, connect, accept,
//! send, recv, shutdown, close, options, readiness), segment demultiplexing, timers, and the
//! transmit path that turns connections' segments into frames.
//!
//! Call [`Stack::transmit`] after `receive`, `handle_timeout` and any `tcp_*` call: segments
//! are produced there, one connection at a time, never while a frame is being received.

use super::connection::{Connection, Readiness};
use super::error::TcpError;
use super::info::TcpInfo;
use super::listener::Listener;
use super::options::TcpSocketOptions;
use super::socket::{TcpKind, TcpSocket};
use super::state::State;
use super::tables::PendingReset;
use crate::engine::{Event, RxChecksum, Stack, Transmit};
use crate::ipv4::output::{send_datagram, write_ip_header, Datagram, Link, PacketHeader, ETH_HEADER, IP_HEADER};
use crate::socket::SocketHandle;
use crate::time::Instant;
use std::net::{Ipv4Addr, SocketAddrV4};
use wire::{ChecksumMode, EtherType, EthernetFrame, IpProtocol, TcpFlags, TcpOptions, TcpRepr, TcpSegment};

impl Stack {
    fn tcp_socket(&self, h: SocketHandle) -> Result<&TcpSocket, TcpError> {
        self.sockets.get_tcp(h).filter(|s| !s.orphan).ok_or(TcpError::BadHandle)
    }

    fn tcp_socket_mut(&mut self, h: SocketHandle) -> Result<&mut TcpSocket, TcpError> {
        self.sockets.get_tcp_mut(h).filter(|s| !s.orphan).ok_or(TcpError::BadHandle)
    }

    fn tcp_connection_mut(&mut self, h: SocketHandle) -> Result<&mut Connection, TcpError> {
        self.tcp_socket_mut(h)?.connection_mut().ok_or(TcpError::NotConnected)
    }

    fn mtu_to(&self, dst: Ipv4Addr) -> usize {
        let route_mtu = self.routes.lookup(dst).and_then(|hop| hop.mtu).unwrap_or(self.iface.mtu);
        route_mtu.min(self.iface.mtu)
    }

    // ---- the socket API --------------------------------------------------------------------

    /// A new TCP socket, neither bound nor connected.
    pub fn tcp_open(&mut self) -> SocketHandle {
        self.sockets.insert_tcp(TcpSocket::new(TcpSocketOptions::new(&self.config.tcp)))
    }

    /// Binds to `addr` (the caller bound the kernel socket, which reserved the port).
    pub fn tcp_bind(&mut self, h: SocketHandle, addr: SocketAddrV4) -> Result<(), TcpError> {
        let s = self.tcp_socket(h)?;
        if addr.port() == 0 || s.local.is_some() {
            return Err(TcpError::InvalidArgument);
        }
        if self.tcp.listeners.contains_key(&(*addr.ip(), addr.port())) && !s.options.reuse_addr {
            return Err(TcpError::AddressInUse);
        }
        self.tcp_socket_mut(h)?.local = Some(addr);
        Ok(())
    }

    /// Starts listening with room for `backlog` connections waiting for accept (capped by
    /// somaxconn, as Linux does).
    pub fn tcp_listen(&mut self, h: SocketHandle, backlog: usize) -> Result<(), TcpError> {
        let somaxconn = self.config.tcp.somaxconn;
        let s = self.tcp_socket_mut(h)?;
        let local = s.local.ok_or(TcpError::InvalidArgument)?;
        let backlog = backlog.min(somaxconn);
        match &mut s.kind {
            TcpKind::Listener(l) => {
                l.backlog = backlog;
                return Ok(());
            }
            TcpKind::Connection(_) => return Err(TcpError::InvalidArgument),
            TcpKind::Idle => {}
        }
        let key = (*local.ip(), local.port());
        if self.tcp.listeners.contains_key(&key) {
            return Err(TcpError::AddressInUse);
        }
        let s = self.tcp_socket_mut(h)?;
        s.kind = TcpKind::Listener(Listener::new(local, backlog, s.options));
        self.tcp.listeners.insert(key, h);
        Ok(())
    }

    /// Starts connecting to `remote`; the SYN goes out at the next transmit. Completion shows
    /// as writability (EINPROGRESS semantics are the caller's).
    pub fn tcp_connect(&mut self, h: SocketHandle, remote: SocketAddrV4, now: Instant) -> Result<(), TcpError> {
        let s = self.tcp_socket(h)?;
        match &s.kind {
            TcpKind::Listener(_) => return Err(TcpError::InvalidArgument),
            TcpKind::Connection(c) => {
                return Err(match c.state() {
                    State::SynSent | State::SynReceived => TcpError::Already,
                    _ => TcpError::IsConnected,
                })
            }
            TcpKind::Idle => {}
        }
        let bound = s.local.ok_or(TcpError::InvalidArgument)?;
        let options = s.options;
        let hop = self.routes.lookup(*remote.ip()).ok_or(TcpError::NetworkUnreachable)?;
        let src = if bound.ip().is_unspecified() {
            hop.src.or_else(|| self.iface.source_for(*remote.ip())).ok_or(TcpError::NetworkUnreachable)?
        } else {
            *bound.ip()
        };
        let local = SocketAddrV4::new(src, bound.port());
        if self.tcp.connections.contains_key(&(local, remote)) {
            return Err(TcpError::AddressInUse);
        }
        let mtu = self.mtu_to(*remote.ip());
        let conn = Connection::connect(now, local, remote, &self.config.tcp, &options, mtu);
        let s = self.tcp_socket_mut(h)?;
        s.local = Some(local);
        s.kind = TcpKind::Connection(conn);
        s.in_demux = true;
        self.tcp.connections.insert((local, remote), h);
        self.stats.tcp_active_opens += 1;
        self.tcp_touched(h);
        Ok(())
    }

    /// Takes the oldest established connection off a listener's accept queue.
    pub fn tcp_accept(&mut self, h: SocketHandle) -> Result<(SocketHandle, SocketAddrV4), TcpError> {
        let s = self.tcp_socket_mut(h)?;
        let l = s.listener_mut().ok_or(TcpError::InvalidArgument)?;
        let child = l.accept_queue.pop_front().ok_or(TcpError::WouldBlock)?;
        self.tcp_settle(h);
        let c = self.sockets.get_tcp_mut(child).ok_or(TcpError::WouldBlock)?;
        c.parent = None;
        c.queued = false;
        let remote = c.connection().map(|c| c.remote()).ok_or(TcpError::WouldBlock)?;
        self.tcp_settle(child);
        Ok((child, remote))
    }

    /// Queues bytes to send; returns how many were taken (send(2)).
    pub fn tcp_send(&mut self, h: SocketHandle, data: &[u8]) -> Result<usize, TcpError> {
        let r = self.tcp_connection_mut(h)?.send(data);
        self.tcp_touched(h);
        r
    }

    /// Reads received bytes (recv(2), MSG_PEEK with `peek`); `Ok(0)` at end of stream.
    pub fn tcp_recv(&mut self, h: SocketHandle, buf: &mut [u8], peek: bool) -> Result<usize, TcpError> {
        let r = self.tcp_connection_mut(h)?.recv(buf, peek);
        self.tcp_touched(h);
        r
    }

    /// shutdown(2): `read` for SHUT_RD, `write` for SHUT_WR (both for SHUT_RDWR).
    pub fn tcp_shutdown(&mut self, h: SocketHandle, read: bool, write: bool) -> Result<(), TcpError> {
        let c = self.tcp_connection_mut(h)?;
        if read {
            c.shutdown_read();
        }
        let r = if write { c.shutdown_write() } else { Ok(()) };
        self.tcp_touched(h);
        r
    }

    /// close(2): the handle is gone at once; a connection finishes its FIN exchange (or is
    /// reset, as Linux does with unread data or SO_LINGER 0) without it. A listener resets the
    /// connections nobody accepted.
    pub fn tcp_close(&mut self, h: SocketHandle, now: Instant) -> Result<(), TcpError> {
        let s = self.tcp_socket_mut(h)?;
        s.orphan = true;
        match &mut s.kind {
            TcpKind::Idle => {
                self.tcp_free(h);
            }
            TcpKind::Listener(l) => {
                let key = (*l.local.ip(), l.local.port());
                let children = std::mem::take(&mut l.children);
                self.tcp.listeners.remove(&key);
                let children: Vec<SocketHandle> = children
                    .into_iter()
                    .filter(|c| self.sockets.get_tcp(*c).is_some_and(|t| t.parent == Some(h)))
                    .collect();
                for child in children {
                    if let Some(t) = self.sockets.get_tcp_mut(child) {
                        t.parent = None;
                        t.queued = false;
                        t.orphan = true;
                        if let Some(c) = t.connection_mut() {
                            c.abort();
                        }
                    }
                    self.tcp_touched(child);
                }
                self.tcp_free(h);
            }
            TcpKind::Connection(c) => {
                c.close(now);
                self.tcp_touched(h);
            }
        }
        Ok(())
    }

    /// Resets a connection at once (the RST goes out at the next transmit).
    pub fn tcp_abort(&mut self, h: SocketHandle) -> Result<(), TcpError> {
        self.tcp_connection_mut(h)?.abort();
        self.tcp_touched(h);
        Ok(())
    }

    /// Replaces the socket's options (setsockopt). Buffer sizes apply to connections created
    /// afterwards (as SO_SNDBUF/SO_RCVBUF before connect or listen).
    pub fn tcp_set_options(
        &mut self,
        h: SocketHandle,
        options: TcpSocketOptions,
        now: Instant,
    ) -> Result<(), TcpError> {
        let s = self.tcp_socket_mut(h)?;
        s.options = options;
        match &mut s.kind {
            TcpKind::Connection(c) => c.set_options(now, options),
            TcpKind::Listener(l) => l.options = options,
            TcpKind::Idle => {}
        }
        self.tcp_touched(h);
        Ok(())
    }

    /// The socket's options.
    pub fn tcp_options(&self, h: SocketHandle) -> Result<TcpSocketOptions, TcpError> {
        Ok(self.tcp_socket(h)?.options)
    }

    /// TCP_QUICKACK: acknowledge the next segments at once (and anything delayed now).
    pub fn tcp_quickack(&mut self, h: SocketHandle) -> Result<(), TcpError> {
        self.tcp_connection_mut(h)?.quickack();
        self.tcp_touched(h);
        Ok(())
    }

    /// What poll/epoll would report (a listener is readable when a connection waits).
    pub fn tcp_readiness(&self, h: SocketHandle) -> Result<Readiness, TcpError> {
        let s = self.tcp_socket(h)?;
        Ok(match &s.kind {
            TcpKind::Connection(c) => c.readiness(),
            TcpKind::Listener(l) => Readiness { readable: !l.accept_queue.is_empty(), ..Readiness::default() },
            TcpKind::Idle => Readiness { writable: false, hangup: true, ..Readiness::default() },
        })
    }

    /// Changes ever seen on this socket (data, FIN, connection, errors, accept queue): an
    /// edge-triggered waiter reports readiness again when it grows, as with `udp_arrivals`.
    pub fn tcp_arrivals(&self, h: SocketHandle) -> Result<u64, TcpError> {
        let s = self.tcp_socket(h)?;
        Ok(match &s.kind {
            TcpKind::Connection(c) => c.arrivals,
            TcpKind::Listener(l) => l.arrivals,
            TcpKind::Idle => 0,
        })
    }

    /// State (TCP_INFO's tcpi_state).
    pub fn tcp_state(&self, h: SocketHandle) -> Result<State, TcpError> {
        let s = self.tcp_socket(h)?;
        Ok(match &s.kind {
            TcpKind::Connection(c) => c.state(),
            TcpKind::Listener(_) => State::Listen,
            TcpKind::Idle => State::Closed,
        })
    }

    /// Counters and state of a connection (TCP_INFO).
    pub fn tcp_info(&self, h: SocketHandle) -> Result<TcpInfo, TcpError> {
        self.tcp_socket(h)?.connection().map(|c| c.info()).ok_or(TcpError::NotConnected)
    }

    /// Readable bytes (FIONREAD).
    pub fn tcp_readable_len(&self, h: SocketHandle) -> Result<usize, TcpError> {
        Ok(self.tcp_socket(h)?.connection().map(|c| c.readable_len()).unwrap_or(0))
    }

    /// Local and peer addresses (getsockname, getpeername).
    pub fn tcp_addresses(&self, h: SocketHandle) -> Result<(Option<SocketAddrV4>, Option<SocketAddrV4>), TcpError> {
        let s = self.tcp_socket(h)?;
        Ok((s.local, s.connection().map(|c| c.remote())))
    }

    /// Takes the pending error (SO_ERROR).
    pub fn tcp_take_error(&mut self, h: SocketHandle) -> Result<Option<TcpError>, TcpError> {
        let e = self.tcp_socket_mut(h)?.connection_mut().and_then(|c| c.take_error());
        self.tcp_settle(h);
        Ok(e)
    }

    /// Connections waiting in a listener's accept queue, and SYN-ACKed handshakes.
    pub fn tcp_listen_queues(&self, h: SocketHandle) -> Result<(usize, usize), TcpError> {
        match &self.tcp_socket(h)?.kind {
            TcpKind::Listener(l) => Ok((l.accept_queue.len(), l.syn_queue)),
            _ => Err(TcpError::InvalidArgument),
        }
    }

    // ---- bookkeeping after every change ----------------------------------------------------

    /// A socket changed: list it for transmit, then settle timers and readiness.
    pub(crate) fn tcp_touched(&mut self, h: SocketHandle) {
        if let Some(s) = self.sockets.get_tcp_mut(h) {
            if !s.dirty && s.connection().is_some() {
                s.dirty = true;
                self.tcp.dirty.push(h);
            }
        }
        self.tcp_settle(h);
    }

    /// Reschedules the socket's timer, emits readiness events, moves handshakes into the
    /// accept queue, and frees what is finished.
    pub(crate) fn tcp_settle(&mut self, h: SocketHandle) {
        let Some(s) = self.sockets.get_tcp_mut(h) else { return };
        let (deadline, finished, readiness, established, passive_failed) = match &s.kind {
            TcpKind::Connection(c) => (
                c.poll_timeout(),
                c.is_finished(),
                c.readiness(),
                c.state().is_synchronized() || c.dead,
                c.state() == State::Closed && c.passive && s.parent.is_some() && !s.queued,
            ),
            TcpKind::Listener(l) => {
                (None, false, Readiness { readable: !l.accept_queue.is_empty(), ..Readiness::default() }, false, false)
            }
            TcpKind::Idle => return,
        };
        // Timer: keep an earlier one (it fires early and is rescheduled), replace a later one.
        match (s.timer, deadline) {
            (Some((_, at)), Some(d)) if at <= d => {}
            (old, new) => {
                if let Some((id, _)) = old {
                    self.tcp.timers.cancel(id);
                }
                s.timer = new.map(|d| (self.tcp.timers.schedule(d, h), d));
            }
        }
        // Readiness edges.
        let mut events = [None, None];
        if readiness.readable && !s.readable_signalled {
            events[0] = Some(Event::Readable(h));
        }
        s.readable_signalled = readiness.readable;
        if readiness.writable && !s.writable_signalled {
            events[1] = Some(Event::Writable(h));
        }
        s.writable_signalled = readiness.writable;
        let parent = s.parent;
        let orphan = s.orphan;
        let queued = s.queued;
        let dirty = s.dirty;
        for e in events.into_iter().flatten() {
            if !orphan && parent.is_none() {
                self.event(e);
            }
        }
        // A handshake that completed joins its listener's accept queue.
        if let Some(p) = parent {
            if established && !queued && !passive_failed {
                if let Some(l) = self.sockets.get_tcp_mut(p).and_then(|ls| ls.listener_mut()) {
                    l.syn_queue = l.syn_queue.saturating_sub(1);
                    l.accept_queue.push_back(h);
                    l.arrivals = l.arrivals.wrapping_add(1);
                    if let Some(c) = self.sockets.get_tcp_mut(h) {
                        c.queued = true;
                    }
                    self.tcp_settle(p);
                }
            }
        }
        if finished {
            self.tcp_unindex(h);
            if (orphan || passive_failed) && !dirty {
                if passive_failed {
                    if let Some(l) = parent.and_then(|p| self.sockets.get_tcp_mut(p)).and_then(|ls| ls.listener_mut()) {
                        l.syn_queue = l.syn_queue.saturating_sub(1);
                    }
                }
                self.tcp_free(h);
            }
        }
    }

    fn tcp_unindex(&mut self, h: SocketHandle) {
        let Some(s) = self.sockets.get_tcp_mut(h) else { return };
        if !s.in_demux {
            return;
        }
        s.in_demux = false;
        if let Some(c) = s.connection() {
            let key = (c.local(), c.remote());
            if self.tcp.connections.get(&key) == Some(&h) {
                self.tcp.connections.remove(&key);
            }
        }
    }

    fn tcp_free(&mut self, h: SocketHandle) {
        self.tcp_unindex(h);
        if let Some(s) = self.sockets.remove_tcp(h) {
            if let Some((id, _)) = s.timer {
                self.tcp.timers.cancel(id);
            }
        }
    }

    // ---- timers ----------------------------------------------------------------------------

    pub(crate) fn tcp_timeouts(&mut self, now: Instant) {
        let mut expired = std::mem::take(&mut self.tcp.expired);
        expired.clear();
        self.tcp.timers.expire(now, &mut expired);
        for h in expired.iter().copied() {
            let Some(s) = self.sockets.get_tcp_mut(h) else { continue };
            s.timer = None;
            if let Some(c) = s.connection_mut() {
                c.handle_timeout(now);
            }
            self.tcp_touched(h);
        }
        self.tcp.expired = expired;
    }

    // ---- receive ---------------------------------------------------------------------------

    pub(crate) fn receive_tcp(&mut self, now: Instant, src: Ipv4Addr, dst: Ipv4Addr, bytes: &[u8], csum: RxChecksum) {
        let Ok(segment) = TcpSegment::new_checked(bytes) else {
            self.stats.tcp_malformed += 1;
            return;
        };
        let mode = if csum == RxChecksum::Unverified { ChecksumMode::Verify } else { ChecksumMode::Ignore };
        let repr = match TcpRepr::parse(&segment, src, dst, mode) {
            Ok(r) => r,
            Err(wire::Error::Checksum) => {
                self.stats.tcp_bad_checksum += 1;
                return;
            }
            Err(_) => {
                self.stats.tcp_malformed += 1;
                return;
            }
        };
        self.stats.tcp_in_segs += 1;
        let payload = segment.payload();
        let local = SocketAddrV4::new(dst, repr.dst_port);
        let remote = SocketAddrV4::new(src, repr.src_port);
        self.tcp.demux_lookups += 1;
        if let Some(&h) = self.tcp.connections.get(&(local, remote)) {
            if !self.tcp_time_wait_reuse(h, &repr) {
                self.tcp_to_connection(now, h, &repr, payload);
                return;
            }
        }
        if let Some(l) = self.tcp.listener(local) {
            self.tcp_to_listener(now, l, local, remote, &repr);
            return;
        }
        self.stats.tcp_no_socket += 1;
        self.tcp_reset_for(local, remote, &repr);
    }

    /// A SYN beyond a TIME_WAIT connection's sequence space starts a new incarnation, as Linux
    /// allows (tcp_timewait_state_process): the old one ends and the SYN goes to the listener.
    fn tcp_time_wait_reuse(&mut self, h: SocketHandle, repr: &TcpRepr) -> bool {
        let new_syn = repr.flags.contains(TcpFlags::SYN) && repr.ack.is_none() && !repr.flags.contains(TcpFlags::RST);
        let Some(c) = self.sockets.get_tcp_mut(h).and_then(|s| s.connection_mut()) else { return false };
        if !new_syn || c.state() != State::TimeWait || !c.syn_starts_new_incarnation(repr.seq) {
            return false;
        }
        c.enter_closed();
        self.tcp_touched(h);
        self.tcp_unindex(h);
        true
    }

    /// Owes a RST to a segment nobody wants (RFC 9293 3.10.7.1), unless configured not to.
    fn tcp_reset_for(&mut self, local: SocketAddrV4, remote: SocketAddrV4, repr: &TcpRepr) {
        if !self.config.tcp.rst_unknown || repr.flags.contains(TcpFlags::RST) {
            return;
        }
        let rst = match repr.ack {
            Some(ack) => PendingReset { local, remote, seq: ack, ack: None },
            None => {
                let len = repr.segment_len() as u32;
                PendingReset { local, remote, seq: 0, ack: Some(repr.seq.wrapping_add(len)) }
            }
        };
        self.tcp.queue_reset(rst);
    }

    fn tcp_to_connection(&mut self, now: Instant, h: SocketHandle, repr: &TcpRepr, payload: &[u8]) {
        let Some(s) = self.sockets.get_tcp(h) else { return };
        // The final ACK of a handshake whose listener's accept queue is full is dropped, as
        // Linux does with tcp_abort_on_overflow=0: the SYN-ACK is retried and the peer's next
        // segment tries again.
        if let (Some(p), Some(c)) = (s.parent, s.connection()) {
            let completes = c.state() == State::SynReceived
                && repr.ack.is_some()
                && !repr.flags.intersects(TcpFlags::RST | TcpFlags::SYN);
            let full = self.sockets.get_tcp(p).is_some_and(|l| match &l.kind {
                TcpKind::Listener(l) => l.accept_queue_full(),
                _ => false,
            });
            if completes && full {
                self.stats.tcp_listen_overflows += 1;
                if let Some(l) = self.sockets.get_tcp_mut(p).and_then(|l| l.listener_mut()) {
                    l.overflows += 1;
                }
                return;
            }
        }
        let Some(c) = self.sockets.get_tcp_mut(h).and_then(|s| s.connection_mut()) else { return };
        c.handle_segment(now, repr, payload);
        self.tcp_touched(h);
    }

    fn tcp_to_listener(
        &mut self,
        now: Instant,
        lh: SocketHandle,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        repr: &TcpRepr,
    ) {
        let flags = repr.flags;
        if flags.contains(TcpFlags::RST) {
            return;
        }
        if repr.ack.is_some() {
            // No handshake for this ACK (or a SYN-ACK to a listener).
            self.tcp_reset_for(local, remote, repr);
            return;
        }
        if !flags.contains(TcpFlags::SYN) {
            return;
        }
        let mtu = self.mtu_to(*remote.ip());
        let config = self.config.tcp;
        let Some(l) = self.sockets.get_tcp_mut(lh).and_then(|s| s.listener_mut()) else { return };
        if l.accept_queue_full() || l.syn_queue_full() {
            l.syn_drops += 1;
            self.stats.tcp_listen_drops += 1;
            return;
        }
        l.syn_queue += 1;
        let options = l.options;
        let conn = Connection::accept_syn(now, local, remote, repr, &config, &options, mtu);
        let mut child = TcpSocket::new(options);
        child.local = Some(local);
        child.kind = TcpKind::Connection(conn);
        child.parent = Some(lh);
        child.in_demux = true;
        let h = self.sockets.insert_tcp(child);
        self.tcp.connections.insert((local, remote), h);
        let mut children = match self.sockets.get_tcp_mut(lh).and_then(|s| s.listener_mut()) {
            Some(l) if l.children.len() >= 2 * (l.syn_queue + l.accept_queue.len()) + 16 => {
                std::mem::take(&mut l.children)
            }
            Some(l) => {
                l.children.push(h);
                Vec::new()
            }
            None => Vec::new(),
        };
        if !children.is_empty() {
            // Drop the handles of children accepted or freed since (amortised O(1) per SYN).
            children.retain(|c| self.sockets.get_tcp(*c).is_some_and(|t| t.parent == Some(lh)));
            children.push(h);
            if let Some(l) = self.sockets.get_tcp_mut(lh).and_then(|s| s.listener_mut()) {
                l.children = children;
            }
        }
        self.stats.tcp_passive_opens += 1;
        self.tcp_touched(h);
    }

    // ---- transmit --------------------------------------------------------------------------

    /// What the stack's tables did so far, counted (see [`Work`](crate::stats::Work)).
    pub fn work(&self) -> crate::stats::Work {
        crate::stats::Work {
            demux_lookups: self.tcp.demux_lookups,
            timer_visits: self.tcp.timers.visits(),
            transmit_visits: self.tcp.transmit_visits,
        }
    }

    /// Whether some TCP socket has something to send: a driver that did not call
    /// [`Stack::transmit`] after its last call into the stack must do so.
    pub fn tcp_transmit_pending(&self) -> bool {
        !self.tcp.dirty.is_empty() || !self.tcp.resets.is_empty()
    }

    /// Sends every segment TCP has due (handshakes, data, ACKs, retransmissions, RSTs) as
    /// frames. Returns the number of segments sent.
    pub fn transmit(&mut self, now: Instant, tx: &mut dyn Transmit) -> usize {
        let mut sent = 0;
        while let Some(rst) = self.tcp.resets.front().copied() {
            if !self.tcp_send_reset(&rst, tx) {
                // Kept for the next call.
                break;
            }
            self.tcp.resets.pop_front();
            sent += 1;
        }
        let mut i = 0;
        while i < self.tcp.dirty.len() {
            let h = self.tcp.dirty[i];
            i += 1;
            self.tcp.transmit_visits += 1;
            let (n, busy) = self.tcp_transmit_one(now, h, tx);
            sent += n;
            if let Some(s) = self.sockets.get_tcp_mut(h) {
                s.dirty = busy;
            }
            if busy {
                // Keep it listed; the rest waits for the next call.
                self.tcp.dirty.drain(..i - 1);
                return sent;
            }
            self.tcp_settle(h);
        }
        self.tcp.dirty.clear();
        sent
    }

    fn link_to(&mut self, dst: Ipv4Addr) -> Link {
        let via = self.routes.lookup(dst).map(|hop| hop.via).unwrap_or(dst);
        match self.neighbours.lookup(via) {
            Some(mac) => Link::Ethernet { src: self.iface.mac, dst: mac },
            None => {
                self.event(Event::NeighbourMissing(via));
                Link::Kernel
            }
        }
    }

    /// Sends one connection's due segments; returns how many, and whether the port was full.
    ///
    /// On Ethernet the segment is built inside the transmit slot, so the connection only
    /// changes (snd_nxt advanced, an ACK or RST no longer owed) once the datapath has taken the
    /// frame: a full ring costs nothing, the same segment goes out at the next call.
    fn tcp_transmit_one(&mut self, now: Instant, h: SocketHandle, tx: &mut dyn Transmit) -> (usize, bool) {
        let Some((remote, ttl, tos)) =
            self.sockets.get_tcp(h).and_then(|s| s.connection().map(|c| (c.remote(), s.options.ttl, s.options.tos)))
        else {
            return (0, false);
        };
        let link = self.link_to(*remote.ip());
        let mtu = self.iface.mtu;
        let mut sent = 0;
        while let Some(c) = self.sockets.get_tcp_mut(h).and_then(|s| s.connection_mut()) {
            let header = PacketHeader {
                src: *c.local().ip(),
                dst: *remote.ip(),
                protocol: IpProtocol::TCP,
                ttl,
                tos,
                ident: self.next_ident.wrapping_add(1),
                dont_frag: true,
            };
            if let Link::Ethernet { src: src_mac, dst: dst_mac } = link {
                let mut built = false;
                let r = tx.frame(&mut |buf: &mut [u8]| {
                    const AT: usize = ETH_HEADER + IP_HEADER;
                    if buf.len() <= AT || mtu <= IP_HEADER {
                        return 0;
                    }
                    let room = (buf.len() - AT).min(mtu - IP_HEADER);
                    let Some(out) = c.poll_transmit(now, &mut buf[AT..AT + room]) else { return 0 };
                    built = true;
                    let mut eth = EthernetFrame::new_unchecked(&mut buf[..ETH_HEADER]);
                    eth.set_dst_addr(dst_mac);
                    eth.set_src_addr(src_mac);
                    eth.set_ethertype(EtherType::IPV4);
                    write_ip_header(&mut buf[ETH_HEADER..], &header, out.len, false, 0, true);
                    AT + out.len
                });
                if r.is_err() {
                    // Nothing was taken from the connection: it stays listed for the next call.
                    self.stats.tcp_tx_busy += 1;
                    return (sent, true);
                }
                if !built {
                    break;
                }
                self.stats.tx_frames += 1;
            } else {
                let Some(out) = c.poll_transmit(now, &mut self.tcp.segment) else { break };
                let datagram = Datagram { header, l4_header: &self.tcp.segment[..out.len], payload: &[] };
                send_datagram(tx, &link, &datagram, mtu, &mut self.scratch, &mut self.stats);
            }
            self.next_ident = header.ident;
            self.stats.tcp_out_segs += 1;
            sent += 1;
        }
        (sent, false)
    }

    fn tcp_send_reset(&mut self, rst: &PendingReset, tx: &mut dyn Transmit) -> bool {
        let repr = TcpRepr {
            src_port: rst.local.port(),
            dst_port: rst.remote.port(),
            seq: rst.seq,
            ack: rst.ack,
            flags: TcpFlags::RST,
            window: 0,
            urgent: 0,
            options: TcpOptions::NONE,
            payload_len: 0,
        };
        let mut segment = TcpSegment::new_unchecked(&mut self.tcp.segment[..]);
        if repr.emit(&mut segment, *rst.local.ip(), *rst.remote.ip()).is_err() {
            return true;
        }
        let link = self.link_to(*rst.remote.ip());
        self.next_ident = self.next_ident.wrapping_add(1);
        let header = PacketHeader {
            src: *rst.local.ip(),
            dst: *rst.remote.ip(),
            protocol: IpProtocol::TCP,
            ttl: 64,
            tos: 0,
            ident: self.next_ident,
            dont_frag: true,
        };
        let len = repr.buffer_len();
        let datagram = Datagram { header, l4_header: &self.tcp.segment[..len], payload: &[] };
        let mtu = self.iface.mtu;
        if send_datagram(tx, &link, &datagram, mtu, &mut self.scratch, &mut self.stats) == 0 {
            self.stats.tcp_tx_busy += 1;
            return false;
        }
        self.stats.tcp_resets_sent += 1;
        self.stats.tcp_out_segs += 1;
        true
    }
}
