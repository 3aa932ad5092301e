//! Per-socket options the application sets (setsockopt) that change what the engine does.

use super::config::TcpConfig;
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
    /// SO_SNDBUF (used when the connection's buffers are created).
    pub sndbuf: usize,
    /// SO_RCVBUF (used when the connection's buffers are created).
    pub rcvbuf: usize,
    /// SO_REUSEADDR.
    pub reuse_addr: bool,
    /// IP_TTL.
    pub ttl: u8,
    /// IP_TOS.
    pub tos: u8,
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
            reuse_addr: false,
            ttl: 64,
            tos: 0,
        }
    }
}
