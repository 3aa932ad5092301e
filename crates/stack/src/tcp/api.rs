//! The stack's TCP calls: the POSIX-shaped socket API (open, bind, listen, connect, accept,
//! send, recv, shutdown, close, options, readiness), and the bookkeeping after every change
//! (timers on the wheel, readiness events, accept queues, freeing). Segment demultiplexing is
//! in `demux.rs`, the transmit path in `transmit.rs`.
//!
//! Call [`Stack::transmit`] after `receive`, `handle_timeout` and any `tcp_*` call: segments
//! are produced there, one connection at a time, never while a frame is being received.

use super::congestion::Algorithm;
use super::connection::{Connection, Readiness};
use super::error::TcpError;
use super::flags::{RecvFlags, RecvInto, SendFlags};
use super::info::{ListenerInfo, TcpInfo};
use super::listener::Listener;
use super::options::TcpSocketOptions;
use super::reuseport::ListenGroup;
use super::socket::{TcpKind, TcpSocket, MARK_READABLE, MARK_TIME_WAIT, MARK_TIME_WAIT_CUT, MARK_WRITABLE};
use super::state::State;
use crate::engine::{Event, Stack};
use crate::socket::SocketHandle;
use crate::time::Instant;
use std::net::{Ipv4Addr, SocketAddrV4};

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

    pub(super) fn mtu_to(&self, dst: Ipv4Addr) -> usize {
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
        if let Some(g) = self.tcp.listeners.get(&(*addr.ip(), addr.port())) {
            // Listeners that all set SO_REUSEPORT share the port; SO_REUSEADDR lets the bind
            // through (listen refuses later), as before.
            let shared = g.reuse_port && s.options.reuse_port;
            if !shared && !s.options.reuse_addr {
                return Err(TcpError::AddressInUse);
            }
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
        let reuse_port = s.options.reuse_port;
        match self.tcp.listeners.get_mut(&key) {
            Some(g) if g.reuse_port && reuse_port => g.members.push(h),
            Some(_) => return Err(TcpError::AddressInUse),
            None => {
                self.tcp.listeners.insert(key, ListenGroup::new(h, reuse_port));
            }
        }
        let s = self.tcp_socket_mut(h)?;
        s.kind = TcpKind::Listener(Listener::new(local, backlog, s.options));
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
        let mut conn = Connection::connect(now, local, remote, &self.config.tcp, &options, mtu);
        if let Some(pmtu) = self.tcp.path_mtu(*remote.ip(), now) {
            conn.clamp_path_mtu(pmtu);
        }
        let s = self.tcp_socket_mut(h)?;
        s.local = Some(local);
        s.kind = TcpKind::Connection(conn);
        s.in_demux = true;
        self.tcp.connections.insert((local, remote), h);
        self.event(Event::TcpOpened { local, remote });
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
        self.tcp_send_with(h, data, SendFlags::default())
    }

    /// send(2) with flags: MSG_MORE holds a partial segment of this call's data as TCP_CORK
    /// would; MSG_OOB makes its last byte urgent. Returns how many bytes were taken.
    pub fn tcp_send_with(&mut self, h: SocketHandle, data: &[u8], flags: SendFlags) -> Result<usize, TcpError> {
        let r = self.tcp_connection_mut(h)?.send_with(data, flags);
        self.tcp_touched(h);
        r
    }

    /// Queues up to `max` bytes that `fill` writes straight into the send buffer (sendfile
    /// reading a file into it): `Connection::send_fill`.
    pub fn tcp_send_fill(
        &mut self,
        h: SocketHandle,
        max: usize,
        fill: &mut dyn FnMut(&mut [u8]) -> usize,
    ) -> Result<usize, TcpError> {
        let r = self.tcp_connection_mut(h)?.send_fill(max, fill);
        self.tcp_touched(h);
        r
    }

    /// Reads received bytes (recv(2), MSG_PEEK with `peek`); `Ok(0)` at end of stream.
    pub fn tcp_recv(&mut self, h: SocketHandle, buf: &mut [u8], peek: bool) -> Result<usize, TcpError> {
        self.tcp_recv_with(h, RecvInto::Buf(buf), RecvFlags { peek, ..RecvFlags::default() })
    }

    /// recv(2) with flags, as Linux's tcp_recvmsg: MSG_PEEK from `peek_offset` (SO_PEEK_OFF,
    /// kept by the caller), MSG_TRUNC with [`RecvInto::Discard`] (bytes consumed, or counted
    /// with MSG_PEEK, not copied; the count is returned), MSG_OOB (the urgent byte: EINVAL
    /// if there is none, it was read, or SO_OOBINLINE; EAGAIN while it has not arrived). A
    /// read stops at the urgent mark once it delivered something (see `tcp_at_mark`).
    pub fn tcp_recv_with(&mut self, h: SocketHandle, into: RecvInto<'_>, flags: RecvFlags) -> Result<usize, TcpError> {
        let r = self.tcp_connection_mut(h)?.recv_with(into, flags);
        self.tcp_touched(h);
        r
    }

    /// Whether the next byte to read is the urgent byte (SIOCATMARK); false when not connected.
    pub fn tcp_at_mark(&self, h: SocketHandle) -> Result<bool, TcpError> {
        Ok(self.tcp_socket(h)?.connection().is_some_and(|c| c.at_mark()))
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
                if self.tcp.listeners.get_mut(&key).is_some_and(|g| g.remove(h)) {
                    self.tcp.listeners.remove(&key);
                }
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

    /// Replaces the socket's options (setsockopt). Buffer sizes (SO_SNDBUF/SO_RCVBUF, as
    /// getsockopt reports them: see `TcpSocketOptions::set_sndbuf`) apply to a connection at
    /// once, as the limits its buffers grow to, and to connections a listener makes later.
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

    /// TCP_CONGESTION: the Linux name of the socket's congestion control ("reno" for NewReno).
    pub fn tcp_congestion(&self, h: SocketHandle) -> Result<&'static str, TcpError> {
        Ok(self.tcp_socket(h)?.options.congestion.name())
    }

    /// setsockopt(TCP_CONGESTION, `name`): an algorithm the stack has, by its Linux name, else
    /// `NoSuchAlgorithm` (ENOENT, as Linux when no such module exists). A live connection keeps
    /// its window and ssthresh (tcp_reinit_congestion_control); a listener passes it on.
    pub fn tcp_set_congestion(&mut self, h: SocketHandle, name: &str, now: Instant) -> Result<(), TcpError> {
        let algorithm = Algorithm::from_name(name).ok_or(TcpError::NoSuchAlgorithm)?;
        let mut options = self.tcp_socket(h)?.options;
        options.congestion = algorithm;
        self.tcp_set_options(h, options, now)
    }

    /// The socket's options.
    pub fn tcp_options(&self, h: SocketHandle) -> Result<TcpSocketOptions, TcpError> {
        Ok(self.tcp_socket(h)?.options)
    }

    /// SO_RCVLOWAT alone: what a blocking receive waits for, read on every receive (a copy of
    /// all the options would cost more than the read itself of a small message).
    pub fn tcp_rcvlowat(&self, h: SocketHandle) -> Result<usize, TcpError> {
        Ok(self.tcp_socket(h)?.options.rcvlowat)
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

    /// The connection's SND.NXT and RCV.NXT: published for exasock-stat, so that the launcher's
    /// watcher can make the peer of a killed process answer with an ACK the kernel resets.
    pub fn tcp_sequence(&self, h: SocketHandle) -> Result<(u32, u32), TcpError> {
        self.tcp_socket(h)?.connection().map(|c| (c.snd.nxt.0, c.rcv.nxt.0)).ok_or(TcpError::NotConnected)
    }

    /// Bytes the connection's sender counts in flight now: with SACK, RFC 6675's pipe
    /// (outstanding, less SACKed and lost, plus retransmitted; Linux's tcp_packets_in_flight,
    /// in bytes). Not in `TcpInfo`, which every connection carries for its counters.
    pub fn tcp_in_flight(&self, h: SocketHandle) -> Result<u32, TcpError> {
        self.tcp_socket(h)?.connection().map(|c| c.in_flight()).ok_or(TcpError::NotConnected)
    }

    /// getsockopt(TCP_MAXSEG) as Linux answers it in any state: on a socket that is not
    /// connected (idle or listening) the TCP_MAXSEG set, else 536 (TCP_MSS_DEFAULT); on a
    /// connection the MSS it sends with (see `Connection::max_seg`).
    pub fn tcp_max_seg(&self, h: SocketHandle) -> Result<u32, TcpError> {
        let s = self.tcp_socket(h)?;
        Ok(match &s.kind {
            TcpKind::Connection(c) => c.max_seg(),
            _ => s.options.max_seg.map_or(super::connection::DEFAULT_MSS, u32::from),
        })
    }

    /// Readable bytes (FIONREAD).
    pub fn tcp_readable_len(&self, h: SocketHandle) -> Result<usize, TcpError> {
        Ok(self.tcp_socket(h)?.connection().map(|c| c.readable_len()).unwrap_or(0))
    }

    /// Bytes in the send buffer, sent or not (SIOCOUTQ).
    pub fn tcp_send_queued(&self, h: SocketHandle) -> Result<usize, TcpError> {
        Ok(self.tcp_socket(h)?.connection().map(|c| c.send_queued()).unwrap_or(0))
    }

    /// Bytes written but not yet transmitted (SIOCOUTQNSD); EINVAL on a listener, as Linux.
    pub fn tcp_unsent(&self, h: SocketHandle) -> Result<usize, TcpError> {
        let s = self.tcp_socket(h)?;
        match &s.kind {
            TcpKind::Listener(_) => Err(TcpError::InvalidArgument),
            TcpKind::Connection(c) => Ok(c.not_sent() as usize),
            TcpKind::Idle => Ok(0),
        }
    }

    /// Local and peer addresses (getsockname, getpeername): no peer while a connect's SYN
    /// waits for its answer, as Linux says ENOTCONN then.
    pub fn tcp_addresses(&self, h: SocketHandle) -> Result<(Option<SocketAddrV4>, Option<SocketAddrV4>), TcpError> {
        let s = self.tcp_socket(h)?;
        Ok((s.local, s.connection().filter(|c| c.state() != State::SynSent).map(|c| c.remote())))
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

    /// A listener's queues and counters, for monitoring (exasock-stat).
    pub fn tcp_listener_info(&self, h: SocketHandle) -> Result<ListenerInfo, TcpError> {
        match &self.tcp_socket(h)?.kind {
            TcpKind::Listener(l) => Ok(ListenerInfo {
                accept_queue: l.accept_queue.len(),
                syn_queue: l.syn_queue,
                backlog: l.backlog,
                requests: l.requests,
                established: l.arrivals,
                syn_drops: l.syn_drops,
                overflows: l.overflows,
            }),
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
        // TIME_WAIT is counted and bounded (tcp_max_tw_buckets): past the bound a connection
        // that reaches it closes at once.
        let time_wait = s.connection().is_some_and(|c| c.state() == State::TimeWait);
        if time_wait && !s.marked(MARK_TIME_WAIT | MARK_TIME_WAIT_CUT) {
            if self.tcp.time_wait >= self.config.tcp.max_time_wait as usize {
                // The last ACK still goes out; the connection ends at the next tick.
                if let Some(c) = s.connection_mut() {
                    c.cut_time_wait();
                }
                s.mark(MARK_TIME_WAIT_CUT, true);
                self.stats.tcp_time_wait_overflow += 1;
            } else {
                self.tcp.time_wait += 1;
                s.mark(MARK_TIME_WAIT, true);
            }
        } else if !time_wait && s.marked(MARK_TIME_WAIT) {
            self.tcp.time_wait -= 1;
            s.mark(MARK_TIME_WAIT, false);
        }
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
        // Readiness: each change queued while readable, and writability's edges.
        // The low bits are enough to tell a change since the last settle (one per change).
        let arrivals = match &s.kind {
            TcpKind::Connection(c) => c.arrivals,
            TcpKind::Listener(l) => l.arrivals,
            TcpKind::Idle => 0,
        } as u16;
        let mut events = [None, None];
        if readiness.readable && (!s.marked(MARK_READABLE) || arrivals != s.signalled_arrivals) {
            events[0] = Some(Event::Readable(h));
        }
        s.mark(MARK_READABLE, readiness.readable);
        s.signalled_arrivals = arrivals;
        if readiness.writable && !s.marked(MARK_WRITABLE) {
            events[1] = Some(Event::Writable(h));
        }
        s.mark(MARK_WRITABLE, readiness.writable);
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

    pub(super) fn tcp_unindex(&mut self, h: SocketHandle) {
        let Some(s) = self.sockets.get_tcp_mut(h) else { return };
        if !s.in_demux {
            return;
        }
        s.in_demux = false;
        if let Some(c) = s.connection() {
            let key = (c.local(), c.remote());
            if self.tcp.connections.get(&key) == Some(&h) {
                self.tcp.connections.remove(&key);
                self.event(Event::TcpClosed { local: key.0, remote: key.1 });
            }
        }
    }

    pub(super) fn tcp_free(&mut self, h: SocketHandle) {
        self.tcp_unindex(h);
        if let Some(s) = self.sockets.remove_tcp(h) {
            if s.marked(MARK_TIME_WAIT) {
                self.tcp.time_wait -= 1;
            }
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
}
