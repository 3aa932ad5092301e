//! The transmission control block: one connection's state, and the calls the application makes
//! on it. What arrives is in `input.rs`, what leaves in `output.rs`, what time does in
//! `timers.rs`.
//!
//! The contract is quinn-proto's: `handle_segment(now, repr, payload)`, `handle_timeout(now)`,
//! `poll_transmit(now, buf)` (one segment at a time), `poll_timeout()`. Nothing here reads a
//! clock, allocates once the buffers exist, or panics on any input.

use super::config::TcpConfig;
use super::congestion::CongestionControl;
use super::error::TcpError;
use super::info::TcpInfo;
use super::isn::initial_sequence;
use super::options::TcpSocketOptions;
use super::recv_buffer::RecvBuffer;
use super::rtt::RttEstimator;
use super::send_buffer::SendBuffer;
use super::seq::Seq;
use super::state::State;
use crate::time::Instant;
use std::net::SocketAddrV4;
use std::time::Duration;
use wire::TcpRepr;

/// The MSS assumed when the peer sends none (RFC 9293 3.7.1).
pub const DEFAULT_MSS: u32 = 536;
/// Smallest MSS we accept from a peer (Linux's tcp_min_snd_mss).
const MIN_MSS: u32 = 48;

/// What a readiness waiter (poll, epoll) sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Readiness {
    /// recv would not block (data, end of stream, or an error).
    pub readable: bool,
    /// send would not block.
    pub writable: bool,
    /// The peer sent FIN (EPOLLRDHUP).
    pub read_hangup: bool,
    /// Both directions are shut or the connection died (EPOLLHUP).
    pub hangup: bool,
    /// An error is pending (EPOLLERR).
    pub error: bool,
}

/// One TCP connection.
#[derive(Debug)]
pub struct Connection {
    pub(crate) state: State,
    pub(crate) local: SocketAddrV4,
    pub(crate) remote: SocketAddrV4,
    pub(crate) config: TcpConfig,
    pub(crate) options: TcpSocketOptions,
    /// Opened by a listener (a failed handshake just disappears).
    pub(crate) passive: bool,

    // ---- send sequence space ----
    pub(crate) iss: Seq,
    pub(crate) snd_una: Seq,
    pub(crate) snd_nxt: Seq,
    /// Highest sequence number ever sent (snd_nxt goes back to snd_una after a timeout).
    pub(crate) snd_max: Seq,
    pub(crate) snd_wnd: u32,
    pub(crate) snd_wl1: Seq,
    pub(crate) snd_wl2: Seq,
    pub(crate) max_snd_wnd: u32,
    pub(crate) snd_wscale: u8,
    pub(crate) rcv_wscale: u8,
    /// Bytes of the receive buffer never offered: one window-scale unit, so that rounding the
    /// window up to the scale (never shrinking what was advertised) stays backed by storage.
    pub(crate) rcv_slack: u32,
    pub(crate) send_buf: SendBuffer,
    /// The application shut the sending side: a FIN follows the last byte.
    pub(crate) fin_queued: bool,
    /// Sequence number our FIN went out with.
    pub(crate) fin_sent: Option<Seq>,
    /// End of the last segment of new data sent shorter than the MSS (Linux's snd_sml): Nagle
    /// holds a small segment only while that one is unacknowledged (Minshall's variant).
    pub(crate) snd_sml: Seq,
    /// The MSS we send with.
    pub(crate) mss: u32,
    /// The MSS we advertised.
    pub(crate) our_mss: u32,

    // ---- receive sequence space ----
    pub(crate) irs: Seq,
    pub(crate) rcv_nxt: Seq,
    /// Right edge of the window last advertised (never moves left).
    pub(crate) rcv_adv: Seq,
    /// rcv_nxt when the window was last advertised (left edge for the acceptability test).
    pub(crate) rcv_wup: Seq,
    pub(crate) recv: RecvBuffer,
    /// A FIN that arrived past a hole.
    pub(crate) fin_pending: Option<Seq>,
    pub(crate) fin_received: bool,
    pub(crate) read_shutdown: bool,
    /// Largest segment seen from the peer (for the "every second full segment" ACK rule).
    pub(crate) rcv_mss: u32,

    // ---- timing ----
    pub(crate) rtt: RttEstimator,
    /// The segment being timed (Karn: never a retransmitted one).
    pub(crate) timing: Option<(Seq, Instant)>,
    pub(crate) backoff: u32,
    pub(crate) retries: u32,
    /// When the current retransmission episode began (for the tcp_retries2 time bound).
    pub(crate) retrans_stamp: Instant,
    pub(crate) rto_at: Option<Instant>,
    pub(crate) persist_at: Option<Instant>,
    pub(crate) persist_backoff: u32,
    pub(crate) probes: u32,
    pub(crate) delack_at: Option<Instant>,
    pub(crate) keepalive_at: Option<Instant>,
    pub(crate) keep_probes: u32,
    /// TIME_WAIT end, or the FIN_WAIT_2 timeout of an orphan.
    pub(crate) close_at: Option<Instant>,
    pub(crate) last_recv: Instant,
    pub(crate) last_send: Instant,
    /// When new data last went out (Linux's lsndtime): slow start after idle counts from it.
    pub(crate) last_data_sent: Instant,
    /// When an out-of-window segment without data was last answered.
    pub(crate) oow_ack_at: Option<Instant>,

    // ---- congestion and recovery ----
    pub(crate) cc: Box<dyn CongestionControl>,
    pub(crate) dupacks: u32,
    /// Fast recovery in progress until this is acknowledged (RFC 6582's "recover").
    pub(crate) recovery: Option<Seq>,
    /// snd_max at the last loss event: duplicate ACKs below it start no new recovery.
    pub(crate) recover_mark: Seq,
    pub(crate) retransmit_now: bool,
    /// A retransmission timeout fired: the head goes out next, whatever the windows.
    pub(crate) rto_head: bool,
    /// The persist timer fired with a non-zero window: send what fits even if small.
    pub(crate) force_send: bool,

    // ---- acknowledgments ----
    pub(crate) ack_now: bool,
    /// Out-of-order segments not yet answered by an ACK of their own: each gets one (RFC
    /// 5681 4.2), even when a batch of them is processed before the next transmit, so a peer
    /// without SACK sees the three duplicate ACKs fast retransmit waits for.
    pub(crate) dupacks_owed: u32,
    pub(crate) unacked_bytes: u32,
    pub(crate) quickacks: u32,
    pub(crate) challenge_start: Instant,
    pub(crate) challenge_count: u32,
    pub(crate) send_probe: bool,
    /// A RST to send with this sequence number (then the connection is closed).
    pub(crate) rst_pending: Option<Seq>,

    // ---- the application's view ----
    pub(crate) error: Option<TcpError>,
    /// Died by reset or timeout: sends fail with EPIPE once the error is reported.
    pub(crate) dead: bool,
    /// The application closed the socket; the stack frees it when it reaches CLOSED.
    pub(crate) orphan: bool,
    /// Events a readiness waiter must see again (data, FIN, connection, errors).
    pub(crate) arrivals: u64,
    pub(crate) info: TcpInfo,
}

/// The receive buffer's slack for a buffer of `capacity`: one unit of its window scale (none
/// without scaling, where windows are exact).
fn scale_unit_slack(capacity: usize) -> u32 {
    match window_scale_for(capacity) {
        0 => 0,
        shift => 1 << shift,
    }
}

fn window_scale_for(capacity: usize) -> u8 {
    let mut shift = 0u8;
    while (capacity >> shift) > 65_535 && shift < 14 {
        shift += 1;
    }
    shift
}

impl Connection {
    fn new(
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        config: &TcpConfig,
        options: &TcpSocketOptions,
        mtu: usize,
    ) -> Connection {
        let iss = Seq(initial_sequence(config.isn_key, local, remote, now));
        let our_mss = (mtu.saturating_sub(40) as u32).clamp(MIN_MSS, 65_495);
        let rcvbuf = options.rcvbuf.clamp(1024, 1 << 30);
        let mss = DEFAULT_MSS.min(our_mss);
        Connection {
            state: State::Closed,
            local,
            remote,
            config: *config,
            options: *options,
            passive: false,
            iss,
            snd_una: iss,
            snd_nxt: iss,
            snd_max: iss,
            snd_wnd: 0,
            snd_wl1: Seq(0),
            snd_wl2: iss,
            max_snd_wnd: 0,
            snd_wscale: 0,
            rcv_wscale: window_scale_for(rcvbuf),
            rcv_slack: scale_unit_slack(rcvbuf),
            send_buf: SendBuffer::new(options.sndbuf.clamp(1024, 1 << 30)),
            fin_queued: false,
            fin_sent: None,
            snd_sml: iss,
            mss,
            our_mss,
            irs: Seq(0),
            rcv_nxt: Seq(0),
            rcv_adv: Seq(0),
            rcv_wup: Seq(0),
            recv: RecvBuffer::new(rcvbuf + scale_unit_slack(rcvbuf) as usize, config.max_ooo_ranges),
            fin_pending: None,
            fin_received: false,
            read_shutdown: false,
            rcv_mss: mss,
            rtt: RttEstimator::new(config.rto_initial, config.rto_min, config.rto_max),
            timing: None,
            backoff: 0,
            retries: 0,
            retrans_stamp: now,
            rto_at: None,
            persist_at: None,
            persist_backoff: 0,
            probes: 0,
            delack_at: None,
            keepalive_at: None,
            keep_probes: 0,
            close_at: None,
            last_recv: now,
            last_send: now,
            last_data_sent: now,
            oow_ack_at: None,
            cc: config.congestion.build(config.initial_window, mss),
            dupacks: 0,
            recovery: None,
            recover_mark: iss,
            retransmit_now: false,
            rto_head: false,
            force_send: false,
            ack_now: false,
            dupacks_owed: 0,
            unacked_bytes: 0,
            quickacks: config.quickacks,
            challenge_start: now,
            challenge_count: 0,
            send_probe: false,
            rst_pending: None,
            error: None,
            dead: false,
            orphan: false,
            arrivals: 0,
            info: TcpInfo::default(),
        }
    }

    /// An active open: the SYN goes out at the next `poll_transmit`.
    pub fn connect(
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        config: &TcpConfig,
        options: &TcpSocketOptions,
        mtu: usize,
    ) -> Connection {
        let mut c = Connection::new(now, local, remote, config, options, mtu);
        c.state = State::SynSent;
        c
    }

    /// A passive open from a listener's SYN: the SYN-ACK goes out at the next `poll_transmit`.
    #[allow(clippy::too_many_arguments)]
    pub fn accept_syn(
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        syn: &TcpRepr,
        config: &TcpConfig,
        options: &TcpSocketOptions,
        mtu: usize,
    ) -> Connection {
        let mut c = Connection::new(now, local, remote, config, options, mtu);
        c.state = State::SynReceived;
        c.passive = true;
        c.take_syn_options(syn);
        c.irs = Seq(syn.seq);
        c.rcv_nxt = c.irs + 1;
        c.rcv_adv = c.rcv_nxt;
        c.rcv_wup = c.rcv_nxt;
        c.snd_wnd = u32::from(syn.window);
        c.max_snd_wnd = c.snd_wnd;
        c.snd_wl1 = c.irs;
        c.last_recv = now;
        c
    }

    /// Applies the MSS and window-scale options of the peer's SYN or SYN-ACK.
    pub(crate) fn take_syn_options(&mut self, syn: &TcpRepr) {
        let peer_mss = syn.options.mss.map(u32::from).unwrap_or(DEFAULT_MSS);
        self.mss = peer_mss.min(self.our_mss).max(MIN_MSS);
        self.rcv_mss = self.mss.min(self.our_mss);
        match syn.options.window_scale {
            Some(shift) => self.snd_wscale = shift.min(14),
            None => {
                self.snd_wscale = 0;
                self.rcv_wscale = 0;
                // Unscaled windows are exact: the slack may be offered.
                self.rcv_slack = 0;
            }
        }
        self.cc = self.config.congestion.build(self.config.initial_window, self.mss);
    }

    /// The state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Local address.
    pub fn local(&self) -> SocketAddrV4 {
        self.local
    }

    /// Peer address.
    pub fn remote(&self) -> SocketAddrV4 {
        self.remote
    }

    /// Bytes of data the send buffer holds past what has been sent.
    pub(crate) fn unsent(&self) -> u32 {
        let end = self.snd_una + self.send_buf.len() as u32;
        end.since(self.snd_nxt)
    }

    /// Bytes in flight.
    pub(crate) fn in_flight(&self) -> u32 {
        self.snd_nxt.since(self.snd_una)
    }

    /// Whether our FIN has been sent and acknowledged.
    pub(crate) fn fin_acked(&self) -> bool {
        self.fin_sent.is_some_and(|f| self.snd_una > f)
    }

    /// Whether a FIN is still to be sent from `seq` (first time, or again after a timeout).
    pub(crate) fn fin_wanted_at(&self, seq: Seq) -> bool {
        self.fin_queued
            && match self.fin_sent {
                None => true,
                Some(f) => seq <= f && self.snd_una <= f,
            }
    }

    /// Marks a change a readiness waiter must notice.
    pub(crate) fn arrived(&mut self) {
        self.arrivals = self.arrivals.wrapping_add(1);
    }

    /// Ends the connection with `err` (reported once to the application).
    pub(crate) fn fail(&mut self, err: Option<TcpError>) {
        if let Some(err) = err {
            self.error = Some(err);
        }
        self.dead = true;
        self.enter_closed();
        self.arrived();
    }

    /// CLOSED: every timer stops, nothing more is sent (except a pending RST).
    pub(crate) fn enter_closed(&mut self) {
        self.state = State::Closed;
        self.rto_at = None;
        self.persist_at = None;
        self.delack_at = None;
        self.keepalive_at = None;
        self.close_at = None;
        self.ack_now = false;
        self.dupacks_owed = 0;
        self.send_probe = false;
        self.retransmit_now = false;
        self.rto_head = false;
    }

    /// Queues a RST for the peer (with snd_nxt) and closes.
    pub(crate) fn reset(&mut self, err: Option<TcpError>) {
        if matches!(self.state, State::SynSent) {
            self.fail(err);
            return;
        }
        if self.state != State::Closed {
            self.rst_pending = Some(self.snd_max);
        }
        self.fail(err);
    }

    // ---- the application's calls ----------------------------------------------------------

    /// Queues `data` for sending; returns the bytes taken (send(2)).
    pub fn send(&mut self, data: &[u8]) -> Result<usize, TcpError> {
        if let Some(err) = self.error.take() {
            return Err(err);
        }
        if self.dead || self.fin_queued {
            return Err(TcpError::BrokenPipe);
        }
        match self.state {
            State::SynSent | State::SynReceived => return Err(TcpError::WouldBlock),
            State::Established | State::CloseWait => {}
            _ => return Err(TcpError::BrokenPipe),
        }
        if data.is_empty() {
            return Ok(0);
        }
        let n = self.send_buf.write(data);
        if n == 0 {
            return Err(TcpError::WouldBlock);
        }
        Ok(n)
    }

    /// Reads received data into `out` (recv(2)); `Ok(0)` is the end of the stream.
    pub fn recv(&mut self, out: &mut [u8], peek: bool) -> Result<usize, TcpError> {
        if !self.recv.is_empty() && !out.is_empty() {
            let before = self.advertisable_window();
            let n = self.recv.read(out, peek);
            if !peek {
                self.info.bytes_delivered += n as u64;
                self.maybe_window_update(before);
            }
            return Ok(n);
        }
        if let Some(err) = self.error.take() {
            return Err(err);
        }
        if self.fin_received || self.read_shutdown || self.dead {
            return Ok(0);
        }
        match self.state {
            State::SynSent | State::SynReceived => Err(TcpError::WouldBlock),
            State::Closed => Err(TcpError::NotConnected),
            _ if out.is_empty() => Ok(0),
            _ => Err(TcpError::WouldBlock),
        }
    }

    /// After the application read: announce a window that opened enough (Linux's
    /// tcp_cleanup_rbuf rule: the new window is at least twice the one the peer knows).
    fn maybe_window_update(&mut self, _before: u32) {
        if !self.state.can_receive() {
            return;
        }
        let now_offered = self.rcv_adv.since(self.rcv_nxt);
        if 2 * now_offered as usize <= self.recv.capacity() {
            let new = self.advertisable_window();
            if new > now_offered && new >= 2 * now_offered {
                self.ack_now = true;
            }
        }
    }

    /// shutdown(SHUT_WR): a FIN follows the data already queued.
    pub fn shutdown_write(&mut self) -> Result<(), TcpError> {
        match self.state {
            State::SynSent => {
                self.enter_closed();
                Ok(())
            }
            State::SynReceived => {
                // The FIN follows once the handshake completes.
                self.fin_queued = true;
                Ok(())
            }
            State::Established => {
                self.fin_queued = true;
                self.state = State::FinWait1;
                Ok(())
            }
            State::CloseWait => {
                self.fin_queued = true;
                self.state = State::LastAck;
                Ok(())
            }
            State::Closed | State::Listen => Err(TcpError::NotConnected),
            _ => Ok(()),
        }
    }

    /// shutdown(SHUT_RD): reads return end of stream from now on.
    pub fn shutdown_read(&mut self) {
        self.read_shutdown = true;
        self.arrived();
    }

    /// close(2): a RST when unread data is left or SO_LINGER is zero (as Linux does), a FIN
    /// exchange otherwise. The connection then lives on without the application.
    pub fn close(&mut self, now: Instant) {
        self.orphan = true;
        let unread = !self.recv.is_empty();
        let linger0 = self.options.linger == Some(Duration::ZERO);
        if self.state == State::Closed || self.state == State::TimeWait {
            return;
        }
        if unread || linger0 {
            self.reset(None);
            return;
        }
        match self.state {
            State::SynSent => self.enter_closed(),
            State::FinWait2 => self.close_at = Some(now + self.config.fin_timeout),
            _ => {
                let _ = self.shutdown_write();
            }
        }
    }

    /// Resets the connection at once (SO_LINGER 0 semantics without closing the handle).
    pub fn abort(&mut self) {
        if self.state != State::Closed {
            self.reset(None);
            self.error = None;
        }
    }

    /// Takes the pending error (SO_ERROR).
    pub fn take_error(&mut self) -> Option<TcpError> {
        self.error.take()
    }

    /// Enters quick-ACK mode (TCP_QUICKACK): the next segments are acknowledged at once.
    pub fn quickack(&mut self) {
        self.quickacks = self.config.quickacks.max(1);
        if self.delack_at.is_some() {
            self.ack_now = true;
        }
    }

    /// Replaces the options (setsockopt); buffer sizes only apply before the connection has
    /// its buffers.
    pub fn set_options(&mut self, now: Instant, options: TcpSocketOptions) {
        let keepalive_on = options.keepalive && !self.options.keepalive;
        self.options = options;
        if keepalive_on && self.state.is_synchronized() {
            self.keepalive_at = Some(now + options.keep_idle);
        }
        if !options.keepalive {
            self.keepalive_at = None;
        }
    }

    /// What poll/epoll would report.
    pub fn readiness(&self) -> Readiness {
        let error = self.error.is_some();
        let connected = self.state.is_synchronized() || self.dead;
        let readable = !self.recv.is_empty() || self.fin_received || self.read_shutdown || error || self.dead;
        let writable = error
            || self.dead
            || (self.state.can_send() && !self.fin_queued && self.send_buf.free() * 3 >= self.send_buf.capacity());
        let hangup = self.dead || (self.fin_received && self.fin_queued) || (connected && self.state == State::Closed);
        Readiness { readable, writable, read_hangup: self.fin_received, hangup, error }
    }

    /// Readable bytes (FIONREAD).
    pub fn readable_len(&self) -> usize {
        self.recv.len()
    }

    /// Bytes in the send buffer (SIOCOUTQ).
    pub fn send_queued(&self) -> usize {
        self.send_buf.len()
    }

    /// Counters and state, like tcp_info.
    pub fn info(&self) -> TcpInfo {
        let mut i = self.info;
        i.state = Some(self.state);
        i.cwnd = self.cc.window();
        i.ssthresh = self.cc.ssthresh();
        i.srtt = self.rtt.srtt();
        i.rttvar = self.rtt.rttvar();
        i.rto = self.rtt.backed_off(self.backoff);
        i.snd_wnd = self.snd_wnd;
        i.rcv_wnd = self.rcv_adv.since(self.rcv_nxt);
        i.snd_wscale = self.snd_wscale;
        i.rcv_wscale = self.rcv_wscale;
        i.snd_mss = self.mss;
        i.rcv_mss = self.our_mss;
        i.unacked = self.snd_max.since(self.snd_una);
        i.send_buffer_bytes = self.send_buf.capacity();
        i.recv_buffer_bytes = self.recv.capacity();
        i
    }

    /// The earliest instant `handle_timeout` has work to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.rto_at, self.persist_at, self.delack_at, self.keepalive_at, self.close_at].into_iter().flatten().min()
    }

    /// Whether a SYN with sequence number `seq` lies beyond everything this connection received.
    pub(crate) fn syn_starts_new_incarnation(&self, seq: u32) -> bool {
        Seq(seq) > self.rcv_nxt
    }

    /// Whether the connection is finished and nothing is left to send: the stack may free it
    /// once the application has closed it too.
    pub fn is_finished(&self) -> bool {
        self.state == State::Closed && self.rst_pending.is_none()
    }

    /// The window we can offer now, in bytes, with receiver-side silly-window avoidance
    /// (RFC 9293 3.8.6.2.2): the right edge moves only by at least min(buffer/2, MSS).
    pub(crate) fn advertisable_window(&self) -> u32 {
        let free = (self.recv.free() as u32).saturating_sub(self.rcv_slack);
        let current = self.rcv_adv.since(self.rcv_nxt);
        if free <= current {
            return current;
        }
        let step = (self.recv.capacity() as u32 / 2).min(self.our_mss);
        if free - current >= step {
            free
        } else {
            current
        }
    }
}
