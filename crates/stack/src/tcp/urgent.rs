//! Urgent data as Linux does it (tcp_check_urg, tcp_urg, tcp_recv_urg, tcp_mark_urg).
//!
//! Receiving: a segment with URG and urgent pointer `p` marks the byte at `seq + p - 1` (Linux's
//! reading, tcp_stdurg off) as urgent. The mark is kept with the urgent byte once a segment
//! carrying it arrives; a newer mark replaces an older one. Without SO_OOBINLINE the byte stays
//! in the receive buffer but reads skip it and it is read alone with MSG_OOB; with it, it is
//! ordinary data. Either way a read stops at the mark when it has copied something, so that
//! SIOCATMARK can be seen true (`receive.rs`). Readiness reports it as `priority` (POLLPRI).
//!
//! Sending: MSG_OOB sets the urgent point past the last byte written (snd_up); every segment
//! starting before it carries URG and the pointer (0xFFFF when it lies further than that)
//! until it is acknowledged, and Nagle and cork do not hold data meanwhile.

use super::connection::Connection;
use super::seq::Seq;
use wire::{TcpFlags, TcpRepr};

/// What is known of the urgent byte (Linux's tp->urg_data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UrgentByte {
    /// The pointer arrived, the byte has not (TCP_URG_NOTYET).
    NotYet,
    /// The byte arrived and was not read with MSG_OOB (TCP_URG_VALID).
    Valid(u8),
    /// Read with MSG_OOB (TCP_URG_READ): reads of the stream still skip it.
    Read,
}

/// The receive side's urgent mark (Linux's urg_seq and urg_data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UrgentMark {
    /// Sequence number of the urgent byte.
    pub(crate) seq: Seq,
    pub(crate) byte: UrgentByte,
}

impl Connection {
    /// The sequence number of the next byte the application reads (Linux's copied_seq).
    pub(crate) fn copied_seq(&self) -> Seq {
        self.rcv.nxt - u32::from(self.rcv.fin_received) - self.rcv.buf.len() as u32
    }

    /// Step 6 of segment processing (Linux's tcp_urg): a new urgent pointer, and the urgent
    /// byte if this segment carries it. `payload` is the segment's whole payload.
    pub(crate) fn on_urgent(&mut self, repr: &TcpRepr, payload: &[u8]) {
        if repr.flags.contains(TcpFlags::URG) {
            self.check_urgent(repr);
        }
        let Some(mark) = self.rcv.urg.as_mut() else { return };
        let seq = Seq(repr.seq);
        if mark.byte == UrgentByte::NotYet && mark.seq >= seq {
            if let Some(&b) = payload.get(mark.seq.since(seq) as usize) {
                mark.byte = UrgentByte::Valid(b);
                self.arrived();
            }
        }
    }

    /// Linux's tcp_check_urg: take a newer urgent pointer.
    fn check_urgent(&mut self, repr: &TcpRepr) {
        let ptr = Seq(repr.seq) + u32::from(repr.urgent).saturating_sub(1);
        let copied = self.copied_seq();
        // Already read past, or before what we have (not replayed), or not newer.
        if copied > ptr || ptr < self.rcv.nxt || self.rcv.urg.is_some_and(|m| ptr <= m.seq) {
            return;
        }
        // The old urgent byte is next to read and more data follows it: it is skipped now, as
        // its mark goes (Linux does the same rather than read it again as data).
        if let Some(old) = self.rcv.urg {
            if old.seq == copied && !self.options.oob_inline && !self.rcv.buf.is_empty() {
                self.rcv.buf.consume(1);
            }
        }
        self.rcv.urg = Some(UrgentMark { seq: ptr, byte: UrgentByte::NotYet });
        self.arrived();
    }

    /// Whether the next byte to read is the urgent byte (SIOCATMARK).
    pub fn at_mark(&self) -> bool {
        self.rcv.urg.is_some_and(|m| m.seq == self.copied_seq())
    }

    /// Whether an urgent byte waits to be read with MSG_OOB (POLLPRI).
    pub(crate) fn urgent_pending(&self) -> bool {
        matches!(self.rcv.urg, Some(UrgentMark { byte: UrgentByte::Valid(_), .. }))
    }

    /// The urgent byte that reads of the stream skip right now, if it is the next one (it
    /// does not count toward SO_RCVLOWAT: Linux's tcp_poll adds one to the target).
    pub(crate) fn skipped_urgent_next(&self) -> bool {
        !self.options.oob_inline && self.at_mark()
    }

    /// MSG_OOB on send: the urgent point moves past everything written (tcp_mark_urg).
    pub(crate) fn mark_urgent_sent(&mut self) {
        self.snd.up = Some(self.snd.una + self.snd.buf.len() as u32);
    }

    /// Urgent mode ends once the urgent point is acknowledged.
    pub(crate) fn urgent_acked(&mut self) {
        if self.snd.up.is_some_and(|up| self.snd.una >= up) {
            self.snd.up = None;
        }
    }

    /// The URG flag and urgent pointer of a segment starting at `seq` (tcp_transmit_skb): the
    /// offset of the urgent point while it is ahead and within 16 bits, else 0xFFFF while the
    /// segment leaves room for it.
    pub(crate) fn urgent_field(&self, seq: Seq) -> Option<u16> {
        let up = self.snd.up?;
        if seq >= up {
            return None;
        }
        let off = up.since(seq);
        if off < 0x1_0000 {
            Some(off as u16)
        } else if seq + 0xFFFF > self.snd.nxt {
            Some(0xFFFF)
        } else {
            None
        }
    }
}
