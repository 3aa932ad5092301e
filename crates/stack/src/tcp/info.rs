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
    /// Largest payload we send.
    pub snd_mss: u32,
    /// Largest payload we told the peer to send.
    pub rcv_mss: u32,
    /// Bytes sent and not yet acknowledged.
    pub unacked: u32,
    /// Segments dropped as out of window or beyond the out-of-order bound.
    pub rcv_dropped: u64,
    /// Challenge ACKs sent (RFC 5961).
    pub challenge_acks: u64,
    /// Zero-window probes sent.
    pub window_probes: u64,
    /// Keepalive probes sent.
    pub keepalive_probes: u64,
    /// Bytes allocated for the send buffer (all of SO_SNDBUF, from the start).
    pub send_buffer_bytes: usize,
    /// Bytes allocated for the receive buffer (SO_RCVBUF and one window-scale unit of slack).
    pub recv_buffer_bytes: usize,
}
