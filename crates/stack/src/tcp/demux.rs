//! Segment demultiplexing: a received TCP segment goes to its connection (4-tuple), else to a
//! listener (address, then wildcard), else is answered with RST; TIME_WAIT reuse and the
//! accept-queue overflow rule live here. O(1): two keyed hash lookups at most.

use super::connection::Connection;
use super::socket::{TcpKind, TcpSocket};
use super::state::State;
use super::tables::PendingReset;
use crate::engine::{RxChecksum, Stack};
use crate::socket::SocketHandle;
use crate::time::Instant;
use std::net::{Ipv4Addr, SocketAddrV4};
use wire::{ChecksumMode, TcpFlags, TcpRepr, TcpSegment};

impl Stack {
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
        if let Some(l) = self.tcp.listener(local, remote) {
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
        if c.passive && c.options.defer_accept > 0 && c.defer_bare_ack(repr) {
            // TCP_DEFER_ACCEPT: a bare final ACK does not complete the handshake (defer.rs).
            self.stats.tcp_defer_accept_drops += 1;
            return;
        }
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
        l.requests += 1;
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
        self.event(crate::engine::Event::TcpOpened { local, remote });
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
}
