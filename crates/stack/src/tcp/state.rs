//! The eleven states of RFC 9293 3.3.2.

use std::fmt;

/// A connection's (or listener's) state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// No connection (never opened, or finished).
    Closed,
    /// Waiting for SYNs (listeners only).
    Listen,
    /// SYN sent, waiting for the SYN-ACK.
    SynSent,
    /// SYN received and SYN-ACK sent, waiting for its ACK.
    SynReceived,
    /// Open both ways.
    Established,
    /// Our FIN queued or sent, not yet acknowledged.
    FinWait1,
    /// Our FIN acknowledged, waiting for the peer's.
    FinWait2,
    /// The peer's FIN received; we may still send.
    CloseWait,
    /// Both FINs sent, ours not yet acknowledged (simultaneous close).
    Closing,
    /// The peer closed first; our FIN is waiting for its ACK.
    LastAck,
    /// Both sides closed; waiting 2 MSL for stray segments.
    TimeWait,
}

impl State {
    /// Whether the handshake has completed (sequence numbers of both sides are known and acked).
    pub fn is_synchronized(self) -> bool {
        !matches!(self, State::Closed | State::Listen | State::SynSent | State::SynReceived)
    }

    /// Whether we may still send data in this state.
    pub fn can_send(self) -> bool {
        matches!(self, State::Established | State::CloseWait)
    }

    /// The state's number in Linux's tcp_states.h (TCP_ESTABLISHED = 1 ... TCP_CLOSING = 11),
    /// which TCP_INFO's tcpi_state and ss report.
    pub fn linux_number(self) -> u8 {
        match self {
            State::Established => 1,
            State::SynSent => 2,
            State::SynReceived => 3,
            State::FinWait1 => 4,
            State::FinWait2 => 5,
            State::TimeWait => 6,
            State::Closed => 7,
            State::CloseWait => 8,
            State::LastAck => 9,
            State::Listen => 10,
            State::Closing => 11,
        }
    }

    /// Whether data from the peer is still accepted.
    pub fn can_receive(self) -> bool {
        matches!(self, State::Established | State::FinWait1 | State::FinWait2)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
