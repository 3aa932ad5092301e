//! A connection's state as the kernel's TCP_REPAIR takes it (the fields CRIU's libsoccr saves):
//! what hand-over to a kernel socket needs at fork, exec and exit. The engine only describes
//! the connection; the driver makes the syscalls, and the stack then forgets the connection
//! without a segment (`Stack::tcp_detach`).

use super::connection::Connection;
use super::error::TcpError;
use super::options::TcpSocketOptions;
use super::state::State;
use super::timestamps;
use crate::engine::Stack;
use crate::socket::SocketHandle;
use crate::time::Instant;
use std::net::SocketAddrV4;

/// The window fields of TCP_REPAIR_WINDOW (struct tcp_repair_window), in bytes and sequence
/// numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepairWindow {
    /// The peer's sequence number of the segment that last updated our send window.
    pub snd_wl1: u32,
    /// The peer's window, scaled.
    pub snd_wnd: u32,
    /// The largest window the peer offered.
    pub max_window: u32,
    /// The window we advertised, counted from `rcv_wup`.
    pub rcv_wnd: u32,
    /// Where our last ACK put the left edge of that window.
    pub rcv_wup: u32,
}

/// Everything a kernel socket needs to carry on with a synchronized connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpRepair {
    /// Our address.
    pub local: SocketAddrV4,
    /// The peer's address.
    pub remote: SocketAddrV4,
    /// The state (ESTABLISHED to LAST_ACK).
    pub state: State,
    /// The first unacknowledged byte's sequence number, where the send queue starts (before
    /// our FIN when that was acknowledged: the kernel's FIN takes the number again).
    pub snd_una: u32,
    /// Every byte not yet acknowledged, from `snd_una`.
    pub send_queue: Vec<u8>,
    /// How many bytes of `send_queue` were sent at least once (the rest never left).
    pub sent: usize,
    /// The application shut the sending side: a FIN follows `send_queue`.
    pub fin_queued: bool,
    /// Our FIN was sent.
    pub fin_sent: bool,
    /// Our FIN was acknowledged.
    pub fin_acked: bool,
    /// Where the receive queue starts: the first byte the application has not read.
    pub rcv_queue_seq: u32,
    /// Bytes received in order and not yet read.
    pub recv_queue: Vec<u8>,
    /// The peer's FIN arrived (after `recv_queue`); the new owner must read end of stream.
    pub fin_received: bool,
    /// The peer's MSS (TCP_REPAIR_OPTIONS' TCPOPT_MAXSEG: the kernel takes the timestamp
    /// option's room off it as we do).
    pub mss_clamp: u16,
    /// Window scales (ours to the peer's window, the peer's to ours) when scaling is on.
    pub wscale: Option<(u8, u8)>,
    /// Our TSval now, when timestamps are on: the kernel's clock continues from it
    /// (TCP_TIMESTAMP), so the peer's PAWS accepts what it sends next.
    pub timestamp: Option<u32>,
    /// Both ends permitted SACK.
    pub sack: bool,
    /// The windows (TCP_REPAIR_WINDOW).
    pub window: RepairWindow,
    /// The socket options the connection runs with (IP_TOS, IP_TTL, TCP_NODELAY, keepalive):
    /// the kernel socket that carries it on takes them too.
    pub options: TcpSocketOptions,
}

impl TcpRepair {
    /// The sequence number after the received bytes, not counting the peer's FIN (the
    /// kernel's rcv_nxt once `recv_queue` is restored; replaying the FIN adds one).
    pub fn rcv_nxt(&self) -> u32 {
        self.rcv_queue_seq.wrapping_add(self.recv_queue.len() as u32)
    }
}

impl Connection {
    /// The connection's state for TCP_REPAIR. Only synchronized states short of TIME_WAIT
    /// have one (a handshake in progress or a connection in TIME_WAIT has nothing to carry
    /// over): `NotConnected` otherwise.
    pub fn repair_state(&self, now: Instant) -> Result<TcpRepair, TcpError> {
        match self.state {
            State::Established
            | State::FinWait1
            | State::FinWait2
            | State::CloseWait
            | State::Closing
            | State::LastAck => {}
            _ => return Err(TcpError::NotConnected),
        }
        let mut send_queue = vec![0u8; self.snd.buf.len()];
        let copied = self.snd.buf.read_at(0, &mut send_queue);
        send_queue.truncate(copied);
        let fin_sent = self.snd.fin_sent.is_some();
        let sent_end = match self.snd.fin_sent {
            Some(fin) => fin,
            None => self.snd.max,
        };
        let sent = (sent_end.since(self.snd.una) as usize).min(send_queue.len());
        let mut recv_queue = vec![0u8; self.rcv.buf.len()];
        let n = self.rcv.buf.peek(&mut recv_queue);
        recv_queue.truncate(n);
        let fin = u32::from(self.rcv.fin_received);
        let rcv_nxt = self.rcv.nxt - fin;
        let rcv_wup = if self.rcv.wup > rcv_nxt { rcv_nxt } else { self.rcv.wup };
        let option_room = if self.ts.is_some() { timestamps::OPTION_LEN } else { 0 };
        Ok(TcpRepair {
            local: self.local,
            remote: self.remote,
            state: self.state,
            // The FIN's sequence number is not the queue's: an acknowledged FIN is replayed.
            snd_una: (self.snd.una - u32::from(self.fin_acked())).0,
            sent,
            send_queue,
            fin_queued: self.snd.fin_queued,
            fin_sent,
            fin_acked: self.fin_acked(),
            rcv_queue_seq: (rcv_nxt - recv_queue.len() as u32).0,
            recv_queue,
            fin_received: self.rcv.fin_received,
            mss_clamp: (self.snd.mss + option_room).min(65_535) as u16,
            wscale: (self.snd.wscale > 0 || self.rcv.wscale > 0).then_some((self.snd.wscale, self.rcv.wscale)),
            timestamp: self.ts.map(|ts| ts.value(now)),
            sack: self.sack_ok,
            window: RepairWindow {
                snd_wl1: self.snd.wl1.0,
                snd_wnd: self.snd.wnd,
                max_window: self.snd.max_wnd.max(self.snd.wnd),
                rcv_wnd: self.rcv.adv.since(rcv_wup),
                rcv_wup: rcv_wup.0,
            },
            options: self.options,
        })
    }
}

impl Stack {
    /// The state of connection `h` for TCP_REPAIR, closed (orphaned) connections included.
    pub fn tcp_repair_state(&self, h: SocketHandle, now: Instant) -> Result<TcpRepair, TcpError> {
        let s = self.sockets.get_tcp(h).ok_or(TcpError::BadHandle)?;
        s.connection().ok_or(TcpError::NotConnected)?.repair_state(now)
    }

    /// Connections the application closed that are still finishing (sending what it wrote,
    /// their FIN exchange, TIME_WAIT): at exit or exec they have no descriptor to go to.
    pub fn tcp_orphans(&self) -> Vec<SocketHandle> {
        self.tcp.connections.values().copied().filter(|&h| self.sockets.get_tcp(h).is_some_and(|s| s.orphan)).collect()
    }

    /// Forgets connection `h` without sending anything: after a hand-over the kernel socket
    /// carries it on. The `TcpClosed` event tells the driver to release its flow. A connection
    /// still waiting in a listener's accept queue cannot be detached (`InvalidArgument`).
    pub fn tcp_detach(&mut self, h: SocketHandle) -> Result<(), TcpError> {
        let s = self.sockets.get_tcp(h).ok_or(TcpError::BadHandle)?;
        if s.connection().is_none() {
            return Err(TcpError::NotConnected);
        }
        if s.queued {
            return Err(TcpError::InvalidArgument);
        }
        self.tcp.dirty.retain(|&d| d != h);
        self.tcp_free(h);
        Ok(())
    }
}
