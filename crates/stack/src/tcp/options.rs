//! Per-socket options the application sets (setsockopt) that change what the engine does.

use super::config::TcpConfig;
use super::congestion::Algorithm;
use super::error::TcpError;
use std::time::Duration;

/// A TCP socket's options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSocketOptions {
    /// TCP_NODELAY: no Nagle.
    pub nodelay: bool,
    /// SO_KEEPALIVE.
    pub keepalive: bool,
    /// TCP_KEEPIDLE.
    pub keep_idle: Duration,
    /// TCP_KEEPINTVL.
    pub keep_interval: Duration,
    /// TCP_KEEPCNT.
    pub keep_count: u32,
    /// SO_LINGER: `Some(0)` resets the connection on close instead of a FIN exchange.
    pub linger: Option<Duration>,
    /// SO_SNDBUF as getsockopt reports it: the most bytes the send buffer may hold. The
    /// buffer starts empty and grows to it on demand; a change applies to a connection at once.
    /// [`set_sndbuf`](Self::set_sndbuf) turns a setsockopt value into it as Linux does.
    pub sndbuf: usize,
    /// SO_RCVBUF as getsockopt reports it: the most bytes the receive buffer may hold (plus one
    /// window-scale unit of slack), and what the window is computed from. Starts empty, grows
    /// on demand; a change applies to a connection at once. See [`set_rcvbuf`](Self::set_rcvbuf).
    pub rcvbuf: usize,
    /// The application set SO_SNDBUF (Linux's SOCK_SNDBUF_LOCK): the send buffer no longer
    /// grows with the congestion window.
    pub sndbuf_locked: bool,
    /// The application set SO_RCVBUF (Linux's SOCK_RCVBUF_LOCK): no receive autotuning, and
    /// the window scale is chosen for SO_RCVBUF rather than for the autotuning bound.
    pub rcvbuf_locked: bool,
    /// SO_REUSEADDR.
    pub reuse_addr: bool,
    /// SO_REUSEPORT: listeners that all set it may bind and listen on the same address and
    /// port; each SYN goes to one of them by a hash of its 4-tuple (`tcp/reuseport.rs`).
    pub reuse_port: bool,
    /// IP_TTL.
    pub ttl: u8,
    /// IP_TOS.
    pub tos: u8,
    /// TCP_USER_TIMEOUT: how long transmitted data (or a SYN) may stay unacknowledged, and
    /// zero-window probes or keepalive probes unanswered, before the connection is aborted with
    /// ETIMEDOUT (Linux's icsk_user_timeout; `None` is 0, the default: tcp_retries2,
    /// tcp_syn_retries and TCP_KEEPCNT decide). The retransmission and probe timers are clamped
    /// so that the abort happens on time (tcp_clamp_rto_to_user_timeout).
    pub user_timeout: Option<Duration>,
    /// TCP_CORK: no segment shorter than the MSS leaves while set (full ones do, and so does a
    /// partial one carrying the FIN or in urgent mode). Clearing it sends what was held at
    /// the next transmit, under Nagle unless TCP_NODELAY. As in current Linux there is no cork
    /// timer: held data goes when the probe (persist) timer fires with nothing in flight, one
    /// RTO (at least 200 ms) later, which is where the 200 ms ceiling of tcp(7) comes from
    /// (tcp_write_xmit arms ICSK_TIME_PROBE0, tcp_write_wakeup sends).
    pub cork: bool,
    /// TCP_MAXSEG (Linux's user_mss): caps the MSS announced in our SYN or SYN-ACK and the
    /// MSS we send with (the smaller of it and the peer's). Set before connect or listen; set
    /// on a connection it is stored but changes nothing, as in Linux. See
    /// [`set_max_seg`](Self::set_max_seg).
    pub max_seg: Option<u16>,
    /// TCP_NOTSENT_LOWAT: a connection is writable only while fewer bytes than this wait
    /// unsent (written but never transmitted: Linux's write_seq - snd_nxt), besides having
    /// room in the send buffer (tcp_stream_memory_free). `None`: no limit (the sysctl's
    /// default, UINT_MAX).
    pub notsent_lowat: Option<u32>,
    /// SO_RCVLOWAT: a connection is readable only when at least this many bytes are (or the
    /// peer closed, an error is pending, or the receive window left is at most one MSS so the
    /// mark cannot be reached: tcp_epollin_ready). At least 1; see
    /// [`set_rcvlowat`](Self::set_rcvlowat). A blocking recv waits for as many; the waiting
    /// is the caller's.
    pub rcvlowat: usize,
    /// TCP_DEFER_ACCEPT of a listener, as Linux keeps it: a number of SYN-ACK retransmissions
    /// (rskq_defer_accept; 0 is off). See [`set_defer_accept`](Self::set_defer_accept) and
    /// `tcp/defer.rs` for the behaviour.
    pub defer_accept: u8,
    /// SO_OOBINLINE: the urgent byte stays in the stream as ordinary data instead of being
    /// read alone with MSG_OOB (`tcp/urgent.rs`).
    pub oob_inline: bool,
    /// TCP_CONGESTION: the congestion control algorithm (the stack's default from
    /// `TcpConfig::congestion`); see `Stack::tcp_set_congestion`.
    pub congestion: Algorithm,
}

impl TcpSocketOptions {
    /// The options of a new socket under `config`.
    pub fn new(config: &TcpConfig) -> TcpSocketOptions {
        TcpSocketOptions {
            nodelay: false,
            keepalive: false,
            keep_idle: config.keepalive_idle,
            keep_interval: config.keepalive_interval,
            keep_count: config.keepalive_probes,
            linger: None,
            sndbuf: config.sndbuf,
            rcvbuf: config.rcvbuf,
            sndbuf_locked: false,
            rcvbuf_locked: false,
            reuse_addr: false,
            reuse_port: false,
            ttl: 64,
            tos: 0,
            user_timeout: None,
            cork: false,
            max_seg: None,
            notsent_lowat: None,
            rcvlowat: 1,
            defer_accept: 0,
            oob_inline: false,
            congestion: config.congestion,
        }
    }

    /// setsockopt(SO_SNDBUF, `requested`) as Linux's sock_setsockopt: capped at wmem_max,
    /// doubled, at least SOCK_MIN_SNDBUF (4,608 bytes on x86-64). Linux doubles to pay for its
    /// per-packet bookkeeping; the engine has none, so all of the doubled value holds data.
    pub fn set_sndbuf(&mut self, requested: usize, config: &TcpConfig) {
        self.sndbuf = (requested.min(config.wmem_max).min(i32::MAX as usize / 2) * 2).max(SOCK_MIN_SNDBUF);
        self.sndbuf_locked = true;
    }

    /// setsockopt(TCP_MAXSEG, `value`) as Linux's tcp_setsockopt: 0 clears it, 88 (TCP_MIN_MSS)
    /// to 32,767 (MAX_TCP_WINDOW) sets it, anything else is EINVAL.
    pub fn set_max_seg(&mut self, value: i32) -> Result<(), TcpError> {
        match value {
            0 => self.max_seg = None,
            88..=32_767 => self.max_seg = Some(value as u16),
            _ => return Err(TcpError::InvalidArgument),
        }
        Ok(())
    }

    /// setsockopt(SO_RCVLOWAT, `value`) as Linux's sock_setsockopt and tcp_set_rcvlowat: a
    /// negative value is INT_MAX, the value is capped at half the receive buffer, 0 is 1.
    /// (Linux caps at half of tcp_rmem[2] and grows SO_RCVBUF to fit when the application has
    /// not set SO_RCVBUF; the engine's buffers do not autotune, so it caps at half of SO_RCVBUF
    /// always, as Linux does once SO_RCVBUF was set.)
    pub fn set_rcvlowat(&mut self, value: i32) {
        let value = if value < 0 { i32::MAX as usize } else { value as usize };
        self.rcvlowat = value.min(self.rcvbuf / 2).max(1);
    }

    /// setsockopt(TCP_DEFER_ACCEPT, `seconds`): converted to SYN-ACK retransmissions as Linux
    /// does (secs_to_retrans: the fewest whose backed-off timeouts from the initial RTO cover
    /// the seconds; 0 or less is off).
    pub fn set_defer_accept(&mut self, seconds: i32, config: &TcpConfig) {
        self.defer_accept = super::defer::secs_to_retrans(seconds, config);
    }

    /// getsockopt(TCP_DEFER_ACCEPT): the seconds the retransmissions stand for (Linux's
    /// retrans_to_secs, so 5 reads back as 7).
    pub fn defer_accept_secs(&self, config: &TcpConfig) -> i32 {
        super::defer::retrans_to_secs(self.defer_accept, config)
    }

    /// setsockopt(SO_RCVBUF, `requested`) as Linux: capped at rmem_max, doubled, at least
    /// SOCK_MIN_RCVBUF (2,304 bytes on x86-64).
    pub fn set_rcvbuf(&mut self, requested: usize, config: &TcpConfig) {
        self.rcvbuf = (requested.min(config.rmem_max).min(i32::MAX as usize / 2) * 2).max(SOCK_MIN_RCVBUF);
        self.rcvbuf_locked = true;
    }
}

/// Linux's TCP_SKB_MIN_TRUESIZE on x86-64: 2,048 bytes and an aligned struct sk_buff.
const SKB_MIN_TRUESIZE: usize = 2048 + 256;
/// Linux's SOCK_MIN_RCVBUF.
pub const SOCK_MIN_RCVBUF: usize = SKB_MIN_TRUESIZE;
/// Linux's SOCK_MIN_SNDBUF.
pub const SOCK_MIN_SNDBUF: usize = 2 * SKB_MIN_TRUESIZE;
