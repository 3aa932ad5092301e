//! Congestion control behind one trait, so that an algorithm is one file (NewReno, CUBIC). The connection does loss detection and recovery bookkeeping (duplicate ACKs, the
//! recovery point); the algorithm only decides the window.

mod cubic;
pub mod hystart;
mod newreno;

pub use cubic::Cubic;
pub use newreno::NewReno;

use crate::time::Instant;
use std::fmt::Debug;
use std::time::Duration;

/// How a congestion controller reacts to what the connection sees. Sizes are in bytes.
pub trait CongestionControl: Debug + Send {
    /// The congestion window.
    fn window(&self) -> u32;
    /// The slow-start threshold.
    fn ssthresh(&self) -> u32;
    /// The connection's smoothed RTT before an ACK outside recovery (CUBIC keeps the
    /// smallest, as Linux's delay_min; the others ignore it).
    fn on_rtt(&mut self, _rtt: Duration) {}
    /// An ACK outside recovery acknowledged up to `ack` (a sequence number), with `snd_nxt`
    /// the next one to send and `rtt` the RTT sample it gave, if any: every such ACK, before
    /// `on_ack` (HyStart++ counts rounds and their RTTs; the others ignore it).
    fn on_ack_sample(&mut self, _ack: u32, _snd_nxt: u32, _rtt: Option<Duration>) {}
    /// New data was acknowledged outside recovery.
    fn on_ack(&mut self, now: Instant, acked: u32, mss: u32);
    /// Three duplicate ACKs: fast retransmit begins with `in_flight` bytes outstanding.
    fn on_fast_retransmit(&mut self, in_flight: u32, mss: u32);
    /// A further duplicate ACK during fast recovery (one more segment left the network).
    fn on_recovery_dup_ack(&mut self, mss: u32);
    /// A partial ACK during recovery (RFC 6582): `acked` bytes newly acknowledged.
    fn on_partial_ack(&mut self, acked: u32, mss: u32);
    /// Recovery ended: everything outstanding at its start is acknowledged.
    fn on_recovery_exit(&mut self, in_flight: u32, mss: u32);
    /// The retransmission timer expired with `in_flight` bytes outstanding.
    fn on_timeout(&mut self, in_flight: u32, mss: u32);
    /// Sending resumes after an idle period longer than the RTO (RFC 5681 4.1).
    fn on_idle_restart(&mut self, mss: u32);
    /// Takes over a connection's window from another algorithm (TCP_CONGESTION changed on a
    /// live connection: Linux keeps cwnd and ssthresh and starts the new algorithm's own
    /// state afresh, tcp_reinit_congestion_control).
    fn resume(&mut self, cwnd: u32, ssthresh: u32);
}

/// Which algorithm new connections use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Algorithm {
    /// RFC 5681 with RFC 6582's recovery.
    NewReno,
    /// RFC 9438 with HyStart++ (RFC 9406) in the initial slow start: Linux's default.
    #[default]
    Cubic,
}

impl Algorithm {
    /// Every algorithm there is, in the order tcp_available_congestion_control lists them.
    pub const ALL: [Algorithm; 2] = [Algorithm::NewReno, Algorithm::Cubic];

    /// The name Linux gives it (TCP_CONGESTION, tcp_congestion_control): NewReno is "reno".
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::NewReno => "reno",
            Algorithm::Cubic => "cubic",
        }
    }

    /// The algorithm with Linux's name `name` (ENOENT in Linux when there is none).
    pub fn from_name(name: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.name() == name)
    }

    /// A controller of this kind with an initial window of `initial_segments` segments.
    pub fn build(self, initial_segments: u32, mss: u32) -> Box<dyn CongestionControl> {
        match self {
            Algorithm::NewReno => Box::new(NewReno::new(initial_segments, mss)),
            Algorithm::Cubic => Box::new(Cubic::new(initial_segments, mss)),
        }
    }
}
