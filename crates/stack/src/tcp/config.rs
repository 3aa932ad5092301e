//! TCP tunables, with Linux's defaults (the sysctl each mirrors is named in its comment).

use super::congestion::Algorithm;
use std::time::Duration;

/// Stack-wide TCP settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpConfig {
    /// Key of the ISN hash (RFC 6528); the driver passes random bytes.
    pub isn_key: [u64; 2],
    /// Lower bound of the retransmission timeout (TCP_RTO_MIN, 200 ms).
    pub rto_min: Duration,
    /// Upper bound of the retransmission timeout (TCP_RTO_MAX, 120 s).
    pub rto_max: Duration,
    /// Retransmission timeout before any RTT sample (RFC 6298: 1 s).
    pub rto_initial: Duration,
    /// Retransmission timeout of the data phase when the handshake gave no RTT sample (RFC 6298
    /// 5.7; Linux's TCP_TIMEOUT_FALLBACK, 3 s).
    pub rto_fallback: Duration,
    /// Retransmissions of data before giving up with ETIMEDOUT (tcp_retries2, 15).
    pub retries2: u32,
    /// SYN retransmissions of connect before ETIMEDOUT (tcp_syn_retries, 6).
    pub syn_retries: u32,
    /// SYN-ACK retransmissions of a passive open before it is dropped (tcp_synack_retries, 5).
    pub synack_retries: u32,
    /// Delayed-ACK timeout (TCP_DELACK_MIN, 40 ms).
    pub delayed_ack: Duration,
    /// Segments acknowledged at once at the start of a connection and after idle
    /// (TCP_MAX_QUICKACKS, 16).
    pub quickacks: u32,
    /// TIME_WAIT duration, 2 MSL (TCP_TIMEWAIT_LEN, 60 s).
    pub time_wait: Duration,
    /// The most connections held in TIME_WAIT (Linux's tcp_max_tw_buckets): more skip it and
    /// close at once (TCPTimeWaitOverflow), as Linux does. Each holds a steering entry, and
    /// the namespace's flows map, shared by every process, has 65,536: a server closing 2,000
    /// connections a second would otherwise fill it within a minute and refuse new ones.
    pub max_time_wait: u32,
    /// How long an orphaned connection waits in FIN_WAIT_2 (tcp_fin_timeout, 60 s).
    pub fin_timeout: Duration,
    /// Default keepalive idle time (tcp_keepalive_time, 7200 s).
    pub keepalive_idle: Duration,
    /// Default keepalive probe interval (tcp_keepalive_intvl, 75 s).
    pub keepalive_interval: Duration,
    /// Default keepalive probes before ETIMEDOUT (tcp_keepalive_probes, 9).
    pub keepalive_probes: u32,
    /// Initial congestion window in segments (TCP_INIT_CWND, 10).
    pub initial_window: u32,
    /// Congestion control of new connections (tcp_congestion_control): CUBIC, as on Linux.
    /// The driver follows the namespace's sysctl when it names an algorithm the stack has.
    pub congestion: Algorithm,
    /// Collapse the congestion window after an idle RTO (tcp_slow_start_after_idle, 1).
    pub slow_start_after_idle: bool,
    /// Default send buffer (SO_SNDBUF) of a new socket.
    pub sndbuf: usize,
    /// Default receive buffer (SO_RCVBUF) of a new socket.
    pub rcvbuf: usize,
    /// How far the send buffer grows with the congestion window while the application has not
    /// set SO_SNDBUF (tcp_wmem[2], 4 MiB).
    pub sndbuf_max: usize,
    /// How far receive autotuning grows the receive buffer while the application has not set
    /// SO_RCVBUF (tcp_rmem[2], 6 MiB); the window scale is chosen for it.
    pub rcvbuf_max: usize,
    /// Largest SO_SNDBUF an application may ask for, before doubling (net.core.wmem_max).
    pub wmem_max: usize,
    /// Largest SO_RCVBUF an application may ask for, before doubling (net.core.rmem_max).
    pub rmem_max: usize,
    /// How long a connection must have sent and received nothing before a buffer that holds
    /// nothing gives its storage back (buffers start empty and grow on demand).
    pub buffer_release: Duration,
    /// Out-of-order ranges kept per connection; a segment needing more is dropped.
    pub max_ooo_ranges: usize,
    /// Challenge ACKs sent per second by each connection (tcp_challenge_ack_limit), counted per
    /// connection: a host-wide count is CVE-2016-5696's side channel, which Linux 6.0 removed.
    pub challenge_ack_limit: u32,
    /// Answer segments for no socket with RST, as Linux does for a closed port. Off when the
    /// kernel, which owns the port too, must be the one to answer.
    pub rst_unknown: bool,
    /// Largest accept queue a listen backlog may ask for (net.core.somaxconn, 4096).
    pub somaxconn: usize,
    /// SYN cookies (tcp_syncookies): 0 never (a full SYN queue drops SYNs), 1 when a
    /// listener's SYN queue is full (Linux's default), 2 for every SYN (`syncookie.rs`).
    pub syncookies: u8,
    /// Offer and accept RFC 7323 timestamps (tcp_timestamps, 1).
    pub timestamps: bool,
    /// Offer and accept SACK (tcp_sack, 1). On, the engine reports out-of-order data in SACK
    /// blocks and duplicates in D-SACK blocks (RFC 2018, RFC 2883), and as a sender recovers
    /// from loss with its scoreboard, RACK-TLP and proportional rate reduction (RFC 6675,
    /// RFC 8985, RFC 6937: sack.rs, rack.rs, recovery.rs).
    pub sack: bool,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            isn_key: [0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210],
            rto_min: Duration::from_millis(200),
            rto_max: Duration::from_secs(120),
            rto_initial: Duration::from_secs(1),
            rto_fallback: Duration::from_secs(3),
            retries2: 15,
            syn_retries: 6,
            synack_retries: 5,
            delayed_ack: Duration::from_millis(40),
            quickacks: 16,
            time_wait: Duration::from_secs(60),
            max_time_wait: 8192,
            fin_timeout: Duration::from_secs(60),
            keepalive_idle: Duration::from_secs(7200),
            keepalive_interval: Duration::from_secs(75),
            keepalive_probes: 9,
            initial_window: 10,
            congestion: Algorithm::Cubic,
            slow_start_after_idle: true,
            sndbuf: 256 * 1024,
            rcvbuf: 256 * 1024,
            sndbuf_max: 4 << 20,
            rcvbuf_max: 6 << 20,
            wmem_max: 212_992,
            rmem_max: 212_992,
            buffer_release: Duration::from_secs(1),
            max_ooo_ranges: 16,
            challenge_ack_limit: 1000,
            rst_unknown: true,
            somaxconn: 4096,
            syncookies: 1,
            timestamps: true,
            sack: true,
        }
    }
}
