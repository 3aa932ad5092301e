//! Per-connection counters and state, like Linux's tcp_info.

use super::state::State;
use std::time::Duration;

/// A snapshot of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpInfo {
    /// State.
    pub state: Option<State>,
    /// Payload bytes sent for the first time (tcpi_bytes_sent minus retransmissions).
    pub bytes_sent: u64,
    /// Payload bytes acknowledged by the peer (tcpi_bytes_acked).
    pub bytes_acked: u64,
    /// Payload bytes received in order (tcpi_bytes_received).
    pub bytes_received: u64,
    /// Payload bytes the application has read.
    pub bytes_delivered: u64,
    /// Segments sent.
    pub segs_out: u64,
    /// Segments received.
    pub segs_in: u64,
    /// Segments retransmitted by fast retransmit.
    pub fast_retransmits: u64,
    /// Segments retransmitted after a timeout (including SYNs).
    pub timeout_retransmits: u64,
    /// Payload bytes retransmitted (tcpi_bytes_retrans).
    pub bytes_retransmitted: u64,
    /// Retransmission timeouts that fired.
    pub timeouts: u64,
    /// Congestion window in bytes.
    pub cwnd: u32,
    /// Slow-start threshold in bytes (u32::MAX while unbounded).
    pub ssthresh: u32,
    /// Smoothed RTT.
    pub srtt: Duration,
    /// RTT variation.
    pub rttvar: Duration,
    /// Current retransmission timeout (with backoff).
    pub rto: Duration,
    /// Peer's window in bytes.
    pub snd_wnd: u32,
    /// Window we advertise, in bytes.
    pub rcv_wnd: u32,
    /// Shift applied to the peer's window field.
    pub snd_wscale: u8,
    /// Shift applied to our window field.
    pub rcv_wscale: u8,
    /// Largest payload we send (the peer's MSS less the options every segment carries).
    pub snd_mss: u32,
    /// The send buffer in effect (SO_SNDBUF): the application's, or grown with the congestion
    /// window.
    pub sndbuf: usize,
    /// The receive buffer in effect (SO_RCVBUF): the application's, or autotuned.
    pub rcvbuf: usize,
    /// Bytes the application read in the last measured RTT (tcpi_rcv_space).
    pub rcv_space: u32,
    /// The receiver's RTT estimate (tcpi_rcv_rtt).
    pub rcv_rtt: Duration,
    /// Times receive autotuning grew the receive buffer.
    pub rcvbuf_grows: u32,
    /// Times the send buffer grew with the congestion window.
    pub sndbuf_grows: u32,
    /// The path MTU (tcpi_pmtu): the link's, lowered by ICMP fragmentation needed.
    pub pmtu: u32,
    /// Times an ICMP fragmentation needed lowered the MSS.
    pub pmtu_reductions: u32,
    /// ICMP errors whose quoted sequence number was outside what is unacknowledged, ignored
    /// (RFC 5927; Linux's OutOfWindowIcmps).
    pub icmp_out_of_window: u64,
    /// Retransmission backoffs undone by an ICMP unreachable (RFC 6069).
    pub rto_reverts: u32,
    /// Both ends use RFC 7323 timestamps (tcpi_options' TCPI_OPT_TIMESTAMPS).
    pub timestamps: bool,
    /// Both ends permitted SACK (tcpi_options' TCPI_OPT_SACK).
    pub sack: bool,
    /// Largest payload we told the peer to send.
    pub rcv_mss: u32,
    /// Bytes sent and not yet acknowledged.
    pub unacked: u32,
    /// Segments dropped as out of window or beyond the out-of-order bound.
    pub rcv_dropped: u64,
    /// Of those, segments PAWS dropped as old duplicates (Linux's PAWSEstabRejected).
    pub paws_rejected: u64,
    /// Challenge ACKs sent (RFC 5961).
    pub challenge_acks: u64,
    /// Zero-window probes sent.
    pub window_probes: u64,
    /// Keepalive probes sent.
    pub keepalive_probes: u64,
    /// Loss recoveries entered on SACK information (RACK's verdict; Linux's TCPSackRecovery).
    pub sack_recoveries: u32,
    /// Tail loss probes sent (RFC 8985 7; Linux's TCPLossProbes).
    pub loss_probes: u32,
    /// Losses a tail loss probe repaired (Linux's TCPLossProbeRecovery).
    pub loss_probe_recoveries: u32,
    /// D-SACK blocks received (RFC 2883; Linux's TCPDSACKRecv).
    pub dsacks_received: u32,
    /// D-SACK blocks sent for duplicate data (Linux's TCPDSACKOldSent and TCPDSACKOfoSent).
    pub dsacks_sent: u32,
    /// Congestion window reductions undone because D-SACKs showed every retransmission of
    /// the episode spurious (Linux's TCPDSACKUndo).
    pub dsack_undos: u32,
    /// The network was seen to reorder (Linux's tcpi_reord_seen).
    pub reord_seen: u32,
    /// Bytes SACKed above snd.una now (tcpi_sacked, in bytes).
    pub sacked: u32,
    /// Bytes deemed lost and not yet retransmitted now (tcpi_lost, in bytes).
    pub lost: u32,
    /// Bytes allocated for the send buffer now: none until the first write, then grown by
    /// doubling from 4 KiB up to `send_buffer_limit`, and none again once it has been empty
    /// and the connection quiet for `TcpConfig::buffer_release`.
    pub send_buffer_bytes: usize,
    /// Bytes allocated for the receive buffer now, as for the send buffer.
    pub recv_buffer_bytes: usize,
    /// The most the send buffer may grow to (SO_SNDBUF).
    pub send_buffer_limit: usize,
    /// The most the receive buffer may grow to: SO_RCVBUF and one window-scale unit of slack
    /// (more while a window advertised under a larger SO_RCVBUF is still owed).
    pub recv_buffer_limit: usize,
}

/// What a connection counts as it runs (the counters of [`TcpInfo`], which also reports the
/// state computed when asked): kept apart so an idle connection does not store the snapshot's
/// other fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct TcpCounters {
    pub(crate) bytes_sent: u64,
    pub(crate) bytes_acked: u64,
    pub(crate) bytes_received: u64,
    pub(crate) bytes_delivered: u64,
    pub(crate) segs_out: u64,
    pub(crate) segs_in: u64,
    pub(crate) fast_retransmits: u64,
    pub(crate) timeout_retransmits: u64,
    pub(crate) bytes_retransmitted: u64,
    pub(crate) timeouts: u64,
    pub(crate) rcv_dropped: u64,
    pub(crate) paws_rejected: u64,
    pub(crate) challenge_acks: u64,
    pub(crate) window_probes: u64,
    pub(crate) keepalive_probes: u64,
    pub(crate) sack_recoveries: u32,
    pub(crate) loss_probes: u32,
    pub(crate) loss_probe_recoveries: u32,
    pub(crate) dsacks_received: u32,
    pub(crate) dsacks_sent: u32,
    pub(crate) dsack_undos: u32,
    pub(crate) reord_seen: u32,
    pub(crate) rcvbuf_grows: u32,
    pub(crate) sndbuf_grows: u32,
    pub(crate) pmtu_reductions: u32,
    pub(crate) icmp_out_of_window: u64,
    pub(crate) rto_reverts: u32,
}

impl TcpCounters {
    /// A snapshot with these counters and every other field zero (the caller fills them).
    pub(crate) fn snapshot(&self) -> TcpInfo {
        TcpInfo {
            bytes_sent: self.bytes_sent,
            bytes_acked: self.bytes_acked,
            bytes_received: self.bytes_received,
            bytes_delivered: self.bytes_delivered,
            segs_out: self.segs_out,
            segs_in: self.segs_in,
            fast_retransmits: self.fast_retransmits,
            timeout_retransmits: self.timeout_retransmits,
            bytes_retransmitted: self.bytes_retransmitted,
            timeouts: self.timeouts,
            rcv_dropped: self.rcv_dropped,
            paws_rejected: self.paws_rejected,
            challenge_acks: self.challenge_acks,
            window_probes: self.window_probes,
            keepalive_probes: self.keepalive_probes,
            sack_recoveries: self.sack_recoveries,
            loss_probes: self.loss_probes,
            loss_probe_recoveries: self.loss_probe_recoveries,
            dsacks_received: self.dsacks_received,
            dsacks_sent: self.dsacks_sent,
            dsack_undos: self.dsack_undos,
            reord_seen: self.reord_seen,
            rcvbuf_grows: self.rcvbuf_grows,
            sndbuf_grows: self.sndbuf_grows,
            pmtu_reductions: self.pmtu_reductions,
            icmp_out_of_window: self.icmp_out_of_window,
            rto_reverts: self.rto_reverts,
            ..TcpInfo::default()
        }
    }
}

/// A listener's queues and counters (exasock-stat's Recv-Q and connection requests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ListenerInfo {
    /// Connections established and waiting for accept.
    pub accept_queue: usize,
    /// Handshakes under way (SYN-ACK sent).
    pub syn_queue: usize,
    /// The backlog after the somaxconn cap.
    pub backlog: usize,
    /// SYNs that asked for a connection, taken or dropped.
    pub requests: u64,
    /// Connections ever established and queued for accept.
    pub established: u64,
    /// SYNs dropped because a queue was full (ListenDrops).
    pub syn_drops: u64,
    /// Final ACKs dropped because the accept queue was full (ListenOverflows).
    pub overflows: u64,
}
