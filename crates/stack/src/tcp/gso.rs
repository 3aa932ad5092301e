//! How much new data one super-segment carries: a datapath that segments (GSO) takes a segment
//! of many MSS and cuts it as the kernel's TSO/GSO does, copying the header (timestamps
//! included) onto every piece and keeping FIN and PSH for the last. The sequence space then
//! moves as if the pieces had been sent one by one, so retransmission, RTT sampling and
//! recovery (all kept in sequence numbers) see no difference.

use super::connection::Connection;
use super::seq::Seq;

impl Connection {
    /// Whether the next segment may be a super-segment: established, nothing to retransmit or
    /// reset first, no urgent data, and more than one MSS of new data waiting. A cheap guess
    /// that lets the transmit path pick the datapath's large buffer only when it can be used;
    /// `send_data` decides exactly.
    pub fn gso_candidate(&self) -> bool {
        let waiting = (self.snd.una + self.snd.buf.len() as u32).since(self.snd.nxt);
        self.state.is_synchronized()
            && self.rst_pending.is_none()
            && !self.loss.rto_head
            && !self.loss.retransmit_now
            && self.snd.up.is_none()
            && self.snd.nxt == self.snd.max
            && waiting > self.snd.mss
    }

    /// The payload of a segment of new data starting at `seq` (= snd.nxt = snd.max) whose first
    /// full MSS the per-segment rules already let out: further full segments as far as the
    /// peer's window, the congestion window and `room` allow, and the short tail of the data
    /// when everything fits and the per-segment rules would send that tail at once (not corked
    /// by TCP_CORK or MSG_MORE, not held by Nagle). At least one MSS; exactly one when `room`
    /// holds no second, or urgent data is pending (the urgent pointer is not cut along).
    pub(crate) fn super_segment_len(&self, seq: Seq, room: u32) -> u32 {
        let mss = self.snd.mss;
        if mss == 0 || room < 2 * mss || self.snd.up.is_some() {
            return mss;
        }
        let data_end = self.snd.una + self.snd.buf.len() as u32;
        let available = data_end.since(seq);
        let wnd_avail = (self.snd.una + self.snd.wnd).since(seq);
        let cwnd_avail = self.send_window().saturating_sub(self.in_flight());
        let allowed = available.min(wnd_avail).min(cwnd_avail).min(room);
        let full = (allowed / mss).max(1) * mss;
        let tail = available - full.min(available);
        if allowed == available && tail > 0 && tail < mss && self.tail_goes_at_once(seq + full) {
            return available;
        }
        full
    }

    /// Whether a short segment of the last bytes, starting at `at` right after full segments
    /// just sent, would leave at once under the rules of `send_data` (TCP_CORK and MSG_MORE
    /// hold it unless the FIN goes with it; Nagle holds it while an earlier short segment is
    /// unacknowledged, unless TCP_NODELAY or the FIN).
    fn tail_goes_at_once(&self, at: Seq) -> bool {
        let fin_wanted = self.fin_wanted_at(at);
        if (self.options.cork || self.snd.more) && !fin_wanted {
            return false;
        }
        let small_in_flight = self.snd.sml > self.snd.una && self.snd.sml <= at;
        self.options.nodelay || !small_in_flight || fin_wanted
    }
}
