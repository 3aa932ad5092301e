//! ICMP errors about our TCP connections (RFC 1122 4.2.3.9, RFC 1191, RFC 5927), as Linux's
//! tcp_v4_err takes them. The steering programs hand the stack an ICMP error whose quoted IPv4
//! header and first 8 bytes name a connection of ours; the quoted sequence number must lie in
//! what is unacknowledged (RFC 5927 4.1: an off-path attacker cannot guess it), then:
//! - fragmentation needed (RFC 1191) lowers the connection's path MTU (never below Linux's
//!   min_pmtu, 552, never up) and the MSS, and what was in flight goes again in the smaller
//!   size (Linux's tcp_simple_retransmit: no congestion response);
//! - any other unreachable, time exceeded or parameter problem ends a connection still in
//!   SYN_SENT with that error, drops a passive handshake for net/host unreachable, and is a
//!   soft error otherwise: kept, and reported instead of ETIMEDOUT if the connection times out
//!   (Linux's sk_err_soft); a network or host unreachable about the head being retransmitted
//!   also undoes one backoff (RFC 6069).
//! - a path MTU learnt is kept per destination for 10 minutes for new connections (tables.rs).

use super::connection::{Connection, Timer, MIN_MSS};
use super::error::TcpError;
use super::seq::Seq;
use super::state::State;
use super::timestamps;
use crate::engine::Stack;
use crate::time::Instant;
use std::net::{Ipv4Addr, SocketAddrV4};
use wire::{IcmpPacket, IcmpType};

/// The smallest path MTU an ICMP message may set (Linux's ip_rt_min_pmtu: 512 + 20 + 20).
pub const MIN_PMTU: u32 = 552;

/// What an ICMP error says about a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpError {
    /// Fragmentation needed and DF set, with the next hop's MTU (0 when the router gave none).
    FragmentationNeeded(u16),
    /// Another error, as the errno Linux's icmp_err_convert gives it; `abort_request` when a
    /// passive handshake is dropped for it (Linux's tcp_req_err); `rto_revert` for network and
    /// host unreachable, which undo one backoff of a retransmitting connection (RFC 6069).
    Unreachable { error: TcpError, abort_request: bool, rto_revert: bool },
}

impl IcmpError {
    /// The meaning of ICMP `kind`/`code` for TCP, or `None` for messages TCP ignores (source
    /// quench, redirects, unknown codes).
    pub fn from_icmp(kind: IcmpType, code: u8) -> Option<IcmpError> {
        let unreachable =
            |error, abort_request| Some(IcmpError::Unreachable { error, abort_request, rto_revert: false });
        match kind {
            IcmpType::DST_UNREACHABLE => match code {
                4 => Some(IcmpError::FragmentationNeeded(0)),
                0 => Some(IcmpError::Unreachable {
                    error: TcpError::NetworkUnreachable,
                    abort_request: true,
                    rto_revert: true,
                }),
                1 => Some(IcmpError::Unreachable {
                    error: TcpError::HostUnreachable,
                    abort_request: true,
                    rto_revert: true,
                }),
                6 | 9 | 11 => unreachable(TcpError::NetworkUnreachable, false),
                10 | 12..=15 => unreachable(TcpError::HostUnreachable, false),
                2 => unreachable(TcpError::ProtocolUnavailable, false),
                3 => unreachable(TcpError::ConnectionRefused, false),
                5 => unreachable(TcpError::NotSupported, false),
                7 => unreachable(TcpError::HostDown, false),
                8 => unreachable(TcpError::NotOnNetwork, false),
                _ => None,
            },
            IcmpType::TIME_EXCEEDED => unreachable(TcpError::HostUnreachable, true),
            IcmpType::PARAM_PROBLEM => unreachable(TcpError::ProtocolError, true),
            _ => None,
        }
    }
}

impl Connection {
    /// An ICMP error about a segment of this connection that started at `seq`. Returns false
    /// when it was ignored (RFC 5927's check failed, or it does not apply).
    pub fn handle_icmp(&mut self, now: Instant, error: IcmpError, seq: u32) -> bool {
        if matches!(self.state, State::Closed | State::Listen | State::TimeWait) {
            return false;
        }
        let seq = Seq(seq);
        if seq < self.snd.una || seq > self.snd.max {
            self.info.icmp_out_of_window += 1;
            return false;
        }
        match error {
            IcmpError::FragmentationNeeded(mtu) => self.lower_path_mtu(u32::from(mtu)),
            IcmpError::Unreachable { error, abort_request, rto_revert } => {
                match self.state {
                    State::SynSent => self.fail(Some(error)),
                    State::SynReceived if self.passive => {
                        // A request socket in Linux: dropped (quietly) only for errors that
                        // say the peer cannot be reached, and only about our SYN-ACK.
                        if abort_request && seq == self.snd.iss {
                            self.fail(None);
                        } else {
                            return false;
                        }
                    }
                    State::SynReceived => self.fail(Some(error)),
                    _ => {
                        self.soft_error = Some(error);
                        if rto_revert && seq == self.snd.una {
                            self.revert_backoff(now);
                        }
                    }
                }
                true
            }
        }
    }

    /// Starts the connection with the path MTU the stack learnt for its peer (from ICMP on an
    /// earlier connection), as Linux's route exception gives a new socket's MSS.
    pub(crate) fn clamp_path_mtu(&mut self, mtu: u32) {
        if mtu >= self.snd.pmtu {
            return;
        }
        self.snd.pmtu = mtu;
        let option_room = if self.ts.is_some() { timestamps::OPTION_LEN } else { 0 };
        let mss = mtu.saturating_sub(40).saturating_sub(option_room).max(MIN_MSS);
        self.snd.mss = self.snd.mss.min(mss);
    }

    /// RFC 1191: the path MTU is lower than the segments we send. Ignored when it is not lower
    /// than what the connection uses.
    fn lower_path_mtu(&mut self, mtu: u32) -> bool {
        let mtu = if mtu < MIN_PMTU { MIN_PMTU.min(self.snd.pmtu) } else { mtu };
        if mtu >= self.snd.pmtu {
            return false;
        }
        self.snd.pmtu = mtu;
        let option_room = if self.ts.is_some() { timestamps::OPTION_LEN } else { 0 };
        let mss = mtu.saturating_sub(40).saturating_sub(option_room).max(MIN_MSS);
        if mss >= self.snd.mss {
            return true;
        }
        self.snd.mss = mss;
        self.rcv.mss = self.rcv.mss.min(mss);
        self.info.pmtu_reductions += 1;
        if self.state.is_synchronized() && self.snd.max > self.snd.una {
            // Everything in flight was cut to the old MSS and is lost at the smaller hop: send
            // it again now in the new size, with no congestion response.
            self.loss.timing = None;
            if self.sack_ok {
                let max = self.snd.max;
                self.sk_mut().sb.on_timeout(max);
            } else {
                self.loss.recover_mark = self.snd.max;
                self.snd.nxt = self.snd.una;
            }
            self.loss.rto_head = true;
        }
        true
    }

    /// RFC 6069 (Linux's tcp_ld_RTO_revert): an unreachable about the head while it is being
    /// retransmitted says the path, not congestion, lost it: one backoff is undone, and the
    /// retransmission timer runs from the head's last transmission with the shorter RTO (at
    /// once if that has passed), so the connection resumes soon after the path returns.
    fn revert_backoff(&mut self, now: Instant) {
        let Some(deadline) = self.timers[Timer::Retransmit] else { return };
        if self.loss.retries == 0 || self.loss.backoff == 0 {
            return;
        }
        let sent = deadline - self.rtt.backed_off(self.loss.backoff);
        self.loss.backoff -= 1;
        self.info.rto_reverts += 1;
        self.timers[Timer::Retransmit] = Some((sent + self.rtt.backed_off(self.loss.backoff)).max(now));
    }

    /// The error a connection that timed out reports: the last ICMP error it got, else
    /// ETIMEDOUT (Linux's tcp_write_err).
    pub(crate) fn timeout_error(&self) -> TcpError {
        self.soft_error.unwrap_or(TcpError::TimedOut)
    }
}

impl Stack {
    /// An ICMP message addressed to us (not a fragment): an error quoting a TCP segment of one
    /// of our connections goes to it; anything else is counted and dropped.
    pub(crate) fn receive_icmp(&mut self, now: Instant, bytes: &[u8]) {
        self.stats.icmp_in += 1;
        let Ok(icmp) = IcmpPacket::new_checked(bytes) else {
            self.stats.icmp_malformed += 1;
            return;
        };
        if !icmp.verify_checksum() {
            self.stats.icmp_malformed += 1;
            return;
        }
        let Some(mut error) = IcmpError::from_icmp(icmp.msg_type(), icmp.msg_code()) else {
            self.stats.icmp_ignored += 1;
            return;
        };
        if let IcmpError::FragmentationNeeded(_) = error {
            error = IcmpError::FragmentationNeeded(icmp.next_hop_mtu());
        }
        // The quoted IPv4 header and at least the first 8 bytes of our segment.
        let quoted = icmp.data();
        let Some(&first) = quoted.first() else {
            self.stats.icmp_malformed += 1;
            return;
        };
        let ihl = usize::from(first & 0x0f) * 4;
        if first >> 4 != 4 || ihl < 20 || quoted.len() < ihl + 8 {
            self.stats.icmp_malformed += 1;
            return;
        }
        if quoted[9] != 6 {
            self.stats.icmp_ignored += 1;
            return;
        }
        let ip = |at: usize| Ipv4Addr::new(quoted[at], quoted[at + 1], quoted[at + 2], quoted[at + 3]);
        let tcp = &quoted[ihl..ihl + 8];
        let local = SocketAddrV4::new(ip(12), u16::from_be_bytes([tcp[0], tcp[1]]));
        let remote = SocketAddrV4::new(ip(16), u16::from_be_bytes([tcp[2], tcp[3]]));
        let seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
        self.tcp.demux_lookups += 1;
        let Some(&h) = self.tcp.connections.get(&(local, remote)) else {
            self.stats.icmp_no_socket += 1;
            return;
        };
        let Some(c) = self.sockets.get_tcp_mut(h).and_then(|s| s.connection_mut()) else { return };
        let pmtu_before = c.snd.pmtu;
        if c.handle_icmp(now, error, seq) {
            self.stats.tcp_icmp_taken += 1;
            let pmtu = c.snd.pmtu;
            if pmtu < pmtu_before {
                self.tcp.learn_path_mtu(*remote.ip(), pmtu, now);
            }
        } else {
            self.stats.tcp_icmp_ignored += 1;
        }
        self.tcp_touched(h);
    }
}
