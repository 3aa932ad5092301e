//! Segment demultiplexing: a received TCP segment goes to its connection (4-tuple), else to a
//! listener (address, then wildcard), else is answered with RST; TIME_WAIT reuse and the
//! accept-queue overflow rule live here. O(1): two keyed hash lookups at most.

use super::connection::{advertised_mss, syn_window_and_scale, Connection, DEFAULT_MSS};
use super::isn::timestamp_offset;
use super::socket::{TcpKind, TcpSocket};
use super::state::State;
use super::syncookie;
use super::tables::{PendingReset, PendingSynAck};
use super::timestamps::Timestamps;
use crate::engine::{RxChecksum, Stack};
use crate::socket::SocketHandle;
use crate::time::Instant;
use std::net::{Ipv4Addr, SocketAddrV4};
use wire::{ChecksumMode, TcpFlags, TcpOptions, TcpRepr, TcpSegment};

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
            self.tcp_to_listener(now, l, local, remote, &repr, payload);
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
        payload: &[u8],
    ) {
        let flags = repr.flags;
        if flags.contains(TcpFlags::RST) {
            return;
        }
        if repr.ack.is_some() {
            if !flags.contains(TcpFlags::SYN) && self.tcp_cookie_ack(now, lh, local, remote, repr, payload) {
                return;
            }
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
        // Linux's tcp_conn_request: a full SYN queue takes a cookie instead (tcp_syncookies),
        // a full accept queue drops the SYN either way.
        let cookie = config.syncookies >= 2 || (config.syncookies == 1 && l.syn_queue_full());
        if l.accept_queue_full() || (l.syn_queue_full() && !cookie) {
            l.syn_drops += 1;
            self.stats.tcp_listen_drops += 1;
            return;
        }
        let options = l.options;
        if cookie {
            if !l.cookies_recent(now) {
                let bound = l.local;
                self.event(crate::engine::Event::TcpSynCookies { local: bound });
            }
            let Some(l) = self.sockets.get_tcp_mut(lh).and_then(|s| s.listener_mut()) else { return };
            l.cookie_sent_at = Some(now);
            self.tcp_queue_cookie_synack(now, local, remote, repr, &options, mtu);
            return;
        }
        l.syn_queue += 1;
        let mut conn = Connection::accept_syn(now, local, remote, repr, &config, &options, mtu);
        if let Some(pmtu) = self.tcp.path_mtu(*remote.ip(), now) {
            conn.clamp_path_mtu(pmtu);
        }
        let h = self.tcp_add_child(lh, local, remote, conn, options);
        self.tcp_touched(h);
    }

    /// A child of listener `lh` in SYN_RECEIVED, indexed by its 4-tuple.
    fn tcp_add_child(
        &mut self,
        lh: SocketHandle,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        conn: Connection,
        options: super::options::TcpSocketOptions,
    ) -> SocketHandle {
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
        h
    }

    /// Answers a SYN with a cookie SYN-ACK (syncookie.rs): nothing is kept. Options as Linux's
    /// tcp_conn_request with want_cookie: without timestamps only the MSS, which the cookie
    /// carries; with them window scaling and SACK too, carried in our TSval.
    fn tcp_queue_cookie_synack(
        &mut self,
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        syn: &TcpRepr,
        options: &super::options::TcpSocketOptions,
        mtu: usize,
    ) {
        let config = &self.config.tcp;
        let our_mss = advertised_mss(mtu, options);
        let peer_mss = syn.options.mss.unwrap_or(DEFAULT_MSS as u16);
        let cookie = syncookie::make(config.isn_key, local, remote, syn.seq, peer_mss.min(our_mss as u16), now);
        let (window, our_scale) = syn_window_and_scale(options, config);
        let mut out = TcpOptions { mss: Some(our_mss.min(65_535) as u16), ..TcpOptions::NONE };
        if let (true, Some((tsval, _))) = (config.timestamps, syn.options.timestamp) {
            let sack = config.sack && syn.options.sack_permitted;
            let clock = Timestamps::new(0).value(now);
            let encoded = syncookie::encode_timestamp(clock, syn.options.window_scale, sack);
            let offset = timestamp_offset(config.isn_key, local, remote);
            out.timestamp = Some((encoded.wrapping_add(offset), tsval));
            out.window_scale = syn.options.window_scale.map(|_| our_scale);
            out.sack_permitted = sack;
        }
        let synack = PendingSynAck {
            local,
            remote,
            seq: cookie,
            ack: syn.seq.wrapping_add(1),
            window,
            options: out,
            ttl: options.ttl,
            tos: options.tos,
        };
        self.tcp.queue_synack(synack);
    }

    /// An ACK for listener `lh` that matches no handshake: if it echoes a valid SYN cookie
    /// (and cookies were sent lately), the connection it stands for is made and the ACK
    /// completes it. False when it carries none (the caller resets it, as Linux does).
    fn tcp_cookie_ack(
        &mut self,
        now: Instant,
        lh: SocketHandle,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        repr: &TcpRepr,
        payload: &[u8],
    ) -> bool {
        let config = self.config.tcp;
        let Some(ack) = repr.ack else { return false };
        if config.syncookies == 0 {
            return false;
        }
        let mtu = self.mtu_to(*remote.ip());
        let Some(l) = self.sockets.get_tcp_mut(lh).and_then(|s| s.listener_mut()) else { return false };
        if !l.cookies_recent(now) {
            return false;
        }
        let (peer_isn, cookie) = (repr.seq.wrapping_sub(1), ack.wrapping_sub(1));
        let Some(mss) = syncookie::check(config.isn_key, local, remote, peer_isn, cookie, now) else {
            self.stats.tcp_syncookies_failed += 1;
            return false;
        };
        // Linux's cookie_timestamp_decode.
        let (window_scale, sack, timestamp) = match repr.options.timestamp {
            None => (None, false, None),
            Some((tsval, tsecr)) => {
                let (ws, sack) =
                    syncookie::decode_timestamp(tsecr.wrapping_sub(timestamp_offset(config.isn_key, local, remote)));
                if !config.timestamps || (sack && !config.sack) {
                    self.stats.tcp_syncookies_failed += 1;
                    return false;
                }
                (ws, sack, Some((tsval, 0)))
            }
        };
        self.stats.tcp_syncookies_recv += 1;
        if l.accept_queue_full() {
            // As a queued handshake's final ACK would be: dropped, the peer tries again.
            l.overflows += 1;
            self.stats.tcp_listen_overflows += 1;
            return true;
        }
        let options = l.options;
        l.syn_queue += 1;
        let syn = TcpRepr {
            src_port: repr.src_port,
            dst_port: repr.dst_port,
            seq: peer_isn,
            ack: None,
            flags: TcpFlags::SYN,
            window: repr.window,
            urgent: 0,
            options: TcpOptions { mss: Some(mss), window_scale, sack_permitted: sack, timestamp, ..TcpOptions::NONE },
            payload_len: 0,
        };
        let mut conn = Connection::from_cookie(now, local, remote, &syn, cookie, &config, &options, mtu);
        if let Some(pmtu) = self.tcp.path_mtu(*remote.ip(), now) {
            conn.clamp_path_mtu(pmtu);
        }
        let h = self.tcp_add_child(lh, local, remote, conn, options);
        if let Some(c) = self.sockets.get_tcp_mut(h).and_then(|s| s.connection_mut()) {
            c.handle_segment(now, repr, payload);
        }
        self.tcp_touched(h);
        true
    }
}
