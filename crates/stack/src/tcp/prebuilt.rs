//! Segments the application sends itself (the extension API of `<exasock/extensions.h>`): the
//! headers of a connection's next segment built ahead of time (`tcp_build_header`), a complete
//! frame checked to be that segment before it goes out (`tcp_send_prebuilt`), the bytes such a
//! frame carried joining the send buffer as if the stack had sent them (`tcp_send_advance`),
//! and a send that builds its frame in a transmit slot and gives the slot back
//! (`tcp_warm`, MSG_EXA_WARM).
//!
//! A prebuilt segment starts at the connection's next new sequence number, so these calls
//! work only while everything written is sent (`snd_max` is the end of the send buffer): bytes
//! still waiting for the window or Nagle would otherwise take the same sequence numbers.

use super::connection::{Connection, Timer};
use super::error::TcpError;
use super::seq::Seq;
use super::state::State;
use crate::engine::{Stack, Transmit};
use crate::ipv4::output::{write_ip_header, Link, PacketHeader, ETH_HEADER, IP_HEADER};
use crate::socket::SocketHandle;
use crate::time::Instant;
use std::fmt;
use wire::prebuilt::TcpFrameLayout;
use wire::{EtherType, EthernetAddress, EthernetFrame, TcpFlags, TcpOptions, TcpRepr, TcpSegment};

/// Why a prebuilt-segment call failed, with the errno the extension API gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrebuiltError {
    /// The socket's own error: no such socket (EBADF), not connected (ENOTCONN), not ready
    /// yet (EAGAIN), sending side closed (EPIPE).
    Tcp(TcpError),
    /// The caller's buffer cannot hold the headers (ENOBUFS).
    BufferTooSmall,
    /// Not an IPv4 TCP frame of this connection, or lengths that disagree (EINVAL).
    Malformed,
    /// Not the connection's next segment: another sequence number, or bytes written earlier
    /// are still unsent (EPROTO).
    OutOfSequence,
    /// Larger than the interface's MTU (EMSGSIZE).
    TooLong,
}

impl PrebuiltError {
    /// The Linux errno number with this meaning.
    pub fn errno(self) -> i32 {
        match self {
            PrebuiltError::Tcp(e) => e.errno(),
            PrebuiltError::BufferTooSmall => 105,
            PrebuiltError::Malformed => 22,
            PrebuiltError::OutOfSequence => 71,
            PrebuiltError::TooLong => 90,
        }
    }
}

impl From<TcpError> for PrebuiltError {
    fn from(e: TcpError) -> PrebuiltError {
        PrebuiltError::Tcp(e)
    }
}

impl fmt::Display for PrebuiltError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrebuiltError::Tcp(e) => e.fmt(f),
            PrebuiltError::BufferTooSmall => f.write_str("buffer too small for the headers"),
            PrebuiltError::Malformed => f.write_str("not a TCP frame of this connection"),
            PrebuiltError::OutOfSequence => f.write_str("not the connection's next segment"),
            PrebuiltError::TooLong => f.write_str("frame larger than the MTU"),
        }
    }
}

impl std::error::Error for PrebuiltError {}

/// The headers of one segment, ready to be written in front of its payload.
struct Headers {
    src_mac: EthernetAddress,
    dst_mac: EthernetAddress,
    ip: PacketHeader,
    tcp: TcpRepr,
}

impl Headers {
    /// Length of the Ethernet, IPv4 and TCP headers.
    fn len(&self) -> usize {
        ETH_HEADER + IP_HEADER + self.tcp.header_len()
    }

    /// Writes the headers at the start of `buf`, whose payload (`tcp.payload_len` bytes) is
    /// already at [`len`](Self::len); both checksums are complete. None if `buf` is short.
    fn write(&self, buf: &mut [u8]) -> Option<usize> {
        let at = ETH_HEADER + IP_HEADER;
        let end = self.len() + self.tcp.payload_len;
        if buf.len() < end {
            return None;
        }
        let mut segment = TcpSegment::new_unchecked(&mut buf[at..end]);
        self.tcp.emit(&mut segment, self.ip.src, self.ip.dst).ok()?;
        write_ip_header(&mut buf[ETH_HEADER..], &self.ip, end - at, false, 0, true);
        let mut eth = EthernetFrame::new_unchecked(&mut buf[..ETH_HEADER]);
        eth.set_dst_addr(self.dst_mac);
        eth.set_src_addr(self.src_mac);
        eth.set_ethertype(EtherType::IPV4);
        Some(end)
    }
}

impl Connection {
    /// The sequence number of the next prebuilt segment: the connection must be synchronized
    /// and open for sending, with every written byte sent.
    fn prebuilt_seq(&self) -> Result<Seq, PrebuiltError> {
        if self.dead || self.snd.fin_queued {
            return Err(TcpError::BrokenPipe.into());
        }
        match self.state {
            State::Established | State::CloseWait => {}
            State::SynSent | State::SynReceived => return Err(TcpError::WouldBlock.into()),
            _ => return Err(TcpError::BrokenPipe.into()),
        }
        if self.not_sent() > 0 {
            return Err(PrebuiltError::OutOfSequence);
        }
        Ok(self.snd.max)
    }

    /// The window field a segment sent now carries, and the right edge it advertises: the
    /// rule of `emit` in output.rs (rounded to the scale, never moving an edge already
    /// advertised to the left), without changing anything.
    fn prebuilt_window(&self) -> (u16, Seq) {
        let ws = self.rcv.wscale;
        let promised = self.rcv.adv.since(self.rcv.nxt);
        let keep_edge = promised.div_ceil(1 << ws);
        let backed = self.rcv.buf.free() as u32 >> ws;
        let scaled = (self.advertisable_window() >> ws).max(keep_edge.min(backed)).min(65_535);
        (scaled as u16, self.rcv.adv.max(self.rcv.nxt + (scaled << ws)))
    }
}

impl Stack {
    fn prebuilt_connection(&self, h: SocketHandle) -> Result<&Connection, TcpError> {
        let s = self.sockets.get_tcp(h).filter(|s| !s.orphan).ok_or(TcpError::BadHandle)?;
        s.connection().ok_or(TcpError::NotConnected)
    }

    /// The headers of the connection's next segment at `seq` with `payload_len` bytes, at
    /// `now`; None when the neighbour's MAC is unknown (a `NeighbourMissing` event asks the
    /// driver to resolve it).
    fn prebuilt_headers(&mut self, h: SocketHandle, seq: Seq, payload_len: usize, now: Instant) -> Option<Headers> {
        let s = self.sockets.get_tcp(h)?;
        let (ttl, tos) = (s.options.ttl, s.options.tos);
        let c = s.connection()?;
        let (local, remote) = (c.local(), c.remote());
        let (window, _) = c.prebuilt_window();
        let options = TcpOptions { timestamp: c.ts.as_ref().map(|ts| ts.option(now)), ..TcpOptions::NONE };
        let tcp = TcpRepr {
            src_port: local.port(),
            dst_port: remote.port(),
            seq: seq.0,
            ack: Some(c.rcv.nxt.0),
            flags: TcpFlags::PSH,
            window,
            urgent: 0,
            options,
            payload_len,
        };
        let Link::Ethernet { src: src_mac, dst: dst_mac } = self.link_to(*remote.ip()) else { return None };
        let ip = super::transmit::tcp_ip_header(*local.ip(), *remote.ip(), ttl, tos, self.next_ident.wrapping_add(1));
        Some(Headers { src_mac, dst_mac, ip, tcp })
    }

    /// `exasock_tcp_build_header`: writes the Ethernet, IPv4 and TCP headers of the
    /// connection's next segment (its sequence number, our ACK and window, its TCP options;
    /// zero length, checksums complete) at the start of `buf` and returns their length.
    /// `WouldBlock` before the handshake completes, while written bytes wait to be sent, or
    /// while the neighbour is unresolved (a resolution is asked for); `BrokenPipe` once the
    /// sending side is closed. The window it announces counts as advertised.
    pub fn tcp_build_header(&mut self, h: SocketHandle, buf: &mut [u8], now: Instant) -> Result<usize, PrebuiltError> {
        let seq = match self.prebuilt_connection(h)?.prebuilt_seq() {
            Err(PrebuiltError::OutOfSequence) => return Err(TcpError::WouldBlock.into()),
            r => r?,
        };
        let headers = self.prebuilt_headers(h, seq, 0, now).ok_or(TcpError::WouldBlock)?;
        if buf.len() < headers.len() {
            return Err(PrebuiltError::BufferTooSmall);
        }
        let len = headers.write(buf).ok_or(PrebuiltError::BufferTooSmall)?;
        self.next_ident = headers.ip.ident;
        if let Some(c) = self.sockets.get_tcp_mut(h).and_then(|s| s.connection_mut()) {
            // The segment will announce this window: the edge never moves back from it.
            c.rcv.adv = c.prebuilt_window().1;
        }
        Ok(len)
    }

    /// Checks that `frame` is the connection's next segment, as [`Stack::tcp_build_header`]
    /// made it and the application completed: an IPv4 TCP frame of this connection's
    /// addresses and ports at its next sequence number, ACK set and no SYN, FIN or RST, whose
    /// IPv4 length agrees with the frame's (short frames may carry Ethernet padding), within
    /// the MTU. Returns the payload's length. Checksums are the application's.
    pub fn tcp_check_prebuilt(&self, h: SocketHandle, frame: &[u8]) -> Result<usize, PrebuiltError> {
        let c = self.prebuilt_connection(h)?;
        let seq = c.prebuilt_seq()?;
        let layout = TcpFrameLayout::parse(frame).map_err(|_| PrebuiltError::Malformed)?;
        let ip_len = usize::from(u16::from_be_bytes([frame[layout.ip_at + 2], frame[layout.ip_at + 3]]));
        let on_wire = frame.len() - layout.ip_at;
        // Ethernet pads frames to 60 bytes: only a frame that short may carry more than IPv4 says.
        if ip_len < layout.payload_at - layout.ip_at || ip_len > on_wire || (ip_len < on_wire && frame.len() > 60) {
            return Err(PrebuiltError::Malformed);
        }
        let fragment = u16::from_be_bytes([frame[layout.ip_at + 6], frame[layout.ip_at + 7]]) & 0x3fff;
        let (src, dst) = layout.addresses(frame);
        let t = layout.tcp_at;
        let ports = (u16::from_be_bytes([frame[t], frame[t + 1]]), u16::from_be_bytes([frame[t + 2], frame[t + 3]]));
        let (local, remote) = (c.local(), c.remote());
        if fragment != 0 || src != *local.ip() || dst != *remote.ip() || ports != (local.port(), remote.port()) {
            return Err(PrebuiltError::Malformed);
        }
        let flags = frame[t + 13];
        let (ack, forbidden) = (0x10, 0x07); // ACK; FIN, SYN, RST
        if flags & ack == 0 || flags & forbidden != 0 {
            return Err(PrebuiltError::Malformed);
        }
        if u32::from_be_bytes([frame[t + 4], frame[t + 5], frame[t + 6], frame[t + 7]]) != seq.0 {
            return Err(PrebuiltError::OutOfSequence);
        }
        if ip_len > self.mtu_to(*remote.ip()) {
            return Err(PrebuiltError::TooLong);
        }
        Ok(ip_len - (layout.payload_at - layout.ip_at))
    }

    /// Sends `frame` (see [`Stack::tcp_check_prebuilt`]) as it is through `tx`. The connection
    /// does not change: [`Stack::tcp_send_advance`] records the bytes. `WouldBlock` when the
    /// datapath has no free slot.
    pub fn tcp_send_prebuilt(
        &mut self,
        h: SocketHandle,
        frame: &[u8],
        tx: &mut dyn Transmit,
    ) -> Result<usize, PrebuiltError> {
        self.tcp_check_prebuilt(h, frame)?;
        let mut sent = 0;
        let r = tx.frame(&mut |buf: &mut [u8]| {
            if buf.len() < frame.len() {
                return 0;
            }
            buf[..frame.len()].copy_from_slice(frame);
            sent = frame.len();
            sent
        });
        if r.is_err() {
            self.stats.tcp_tx_busy += 1;
            return Err(TcpError::WouldBlock.into());
        }
        if sent == 0 {
            return Err(PrebuiltError::TooLong);
        }
        self.stats.tx_frames += 1;
        self.stats.tcp_out_segs += 1;
        Ok(sent)
    }

    /// `exasock_tcp_send_advance`: `data` went out at the connection's next sequence number
    /// outside the stack's send path. The bytes join the send buffer (past SO_SNDBUF if need
    /// be: they are on the wire already) as sent, `snd_max` moves past them, and the
    /// retransmission timer runs, so they are sent again if lost; the peer's window is not
    /// checked (as in the original). `OutOfSequence` while bytes written earlier are unsent.
    pub fn tcp_send_advance(&mut self, h: SocketHandle, data: &[u8], now: Instant) -> Result<(), PrebuiltError> {
        let seq = self.prebuilt_connection(h)?.prebuilt_seq()?;
        if data.is_empty() {
            return Ok(());
        }
        let Some(c) = self.sockets.get_tcp_mut(h).and_then(|s| s.connection_mut()) else {
            return Err(TcpError::NotConnected.into());
        };
        let n = u32::try_from(data.len()).map_err(|_| PrebuiltError::TooLong)?;
        c.snd.buf.write_forced(data);
        let end = seq + n;
        if c.snd.nxt == seq {
            c.snd.nxt = end;
        }
        c.snd.max = end;
        if n < c.snd.mss {
            c.snd.sml = end;
        }
        c.snd.last_data_sent = now;
        if c.loss.timing.is_none() && c.loss.recover.is_none() {
            c.loss.timing = Some((seq, now));
        }
        if c.timers[Timer::Retransmit].is_none() {
            c.timers[Timer::Retransmit] = Some(c.retransmit_deadline(now));
        }
        c.info.bytes_sent += u64::from(n);
        c.info.segs_out += 1;
        self.tcp_touched(h);
        Ok(())
    }

    /// MSG_EXA_WARM: builds the segment a send of `data` would start with (headers, up to an
    /// MSS of payload, checksums) in a transmit slot of `tx`, then gives the slot back unsent.
    /// Nothing changes: sequence numbers, ACK and window state, timers, counters. Returns
    /// `data.len()`, as the original does; errors are a send's (`BrokenPipe` once the sending
    /// side is closed, `WouldBlock` before the handshake completes). An unresolved neighbour
    /// only starts its resolution.
    pub fn tcp_warm(
        &mut self,
        h: SocketHandle,
        data: &[u8],
        now: Instant,
        tx: &mut dyn Transmit,
    ) -> Result<usize, TcpError> {
        let c = self.prebuilt_connection(h)?;
        if c.dead || c.snd.fin_queued {
            return Err(TcpError::BrokenPipe);
        }
        match c.state {
            State::Established | State::CloseWait => {}
            State::SynSent | State::SynReceived => return Err(TcpError::WouldBlock),
            _ => return Err(TcpError::BrokenPipe),
        }
        let seq = c.snd.una + c.snd.buf.len() as u32;
        let payload = data.len().min(c.snd.mss as usize);
        let Some(headers) = self.prebuilt_headers(h, seq, payload, now) else { return Ok(data.len()) };
        let _ = tx.frame(&mut |buf: &mut [u8]| {
            let at = headers.len();
            if buf.len() >= at + payload {
                buf[at..at + payload].copy_from_slice(&data[..payload]);
                let _ = headers.write(buf);
            }
            // The slot goes back unsent.
            0
        });
        Ok(data.len())
    }
}
