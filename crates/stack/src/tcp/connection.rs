//! The transmission control block: one connection's state, and the calls the application makes
//! on it. What arrives is in `input.rs`, what leaves in `output.rs`, what time does in
//! `timers.rs`.
//!
//! The contract is quinn-proto's: `handle_segment(now, repr, payload)`, `handle_timeout(now)`,
//! `poll_transmit(now, buf)` (one segment at a time), `poll_timeout()`. Nothing here reads a
//! clock or panics on any input; it allocates only when a buffer grows (once per doubling, on
//! the write path or when a segment lands past the receive ring's end) and frees a buffer
//! that has been empty for `TcpConfig::buffer_release` (the `Release` timer).

use super::config::TcpConfig;
use super::congestion::CongestionControl;
use super::error::TcpError;
use super::flags::{RecvFlags, RecvInto, SendFlags};
use super::info::TcpInfo;
use super::isn::{initial_sequence, timestamp_offset};
use super::options::TcpSocketOptions;
use super::recv_buffer::RecvBuffer;
use super::rtt::RttEstimator;
use super::send_buffer::SendBuffer;
use super::seq::Seq;
use super::state::State;
use super::timestamps::{self, Timestamps};
use crate::time::Instant;
use std::net::SocketAddrV4;
use std::time::Duration;
use wire::TcpRepr;

/// The MSS assumed when the peer sends none (RFC 9293 3.7.1).
pub const DEFAULT_MSS: u32 = 536;
/// Smallest MSS we accept from a peer (Linux's tcp_min_snd_mss).
pub(crate) const MIN_MSS: u32 = 48;

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
    /// An urgent byte waits to be read with MSG_OOB (EPOLLPRI).
    pub priority: bool,
}

/// One TCP connection, in parts as quinn-proto's `Connection` keeps its packet spaces and
/// paths: the send sequence space (`snd`), the receive sequence space (`rcv`), what is owed to
/// the peer in acknowledgments (`ack`), loss recovery and retransmission (`loss`), and one
/// deadline per timer kind (`timers`).
#[derive(Debug)]
pub struct Connection {
    pub(crate) state: State,
    pub(crate) local: SocketAddrV4,
    pub(crate) remote: SocketAddrV4,
    pub(crate) config: TcpConfig,
    pub(crate) options: TcpSocketOptions,
    /// Opened by a listener (a failed handshake just disappears).
    pub(crate) passive: bool,
    /// TCP_DEFER_ACCEPT dropped a bare final ACK of this handshake (Linux's
    /// inet_rsk(req)->acked): the peer thinks it is connected.
    pub(crate) deferred_ack: bool,
    pub(crate) snd: SendSpace,
    pub(crate) rcv: RecvSpace,
    pub(crate) ack: AckState,
    pub(crate) loss: LossRecovery,
    pub(crate) timers: TimerTable,
    pub(crate) rtt: RttEstimator,
    pub(crate) cc: Box<dyn CongestionControl>,
    /// RFC 7323 timestamps: offered in our SYN (or answered in our SYN-ACK), gone once the
    /// handshake shows the peer does not use them.
    pub(crate) ts: Option<Timestamps>,
    /// Both ends sent SACK-permitted: our ACKs report out-of-order data in SACK blocks.
    pub(crate) sack_ok: bool,

    // ---- probes ----
    /// The persist timer fired with a non-zero window: send what fits even if small.
    pub(crate) force_send: bool,
    pub(crate) persist_backoff: u32,
    /// Zero-window probes sent and not answered.
    pub(crate) probes: u32,
    /// When the persist timer first fired in the current zero-window episode (Linux's
    /// icsk_probes_tstamp): TCP_USER_TIMEOUT counts from it, answered probes or not.
    pub(crate) probes_since: Option<Instant>,
    pub(crate) keep_probes: u32,
    pub(crate) last_recv: Instant,
    pub(crate) last_send: Instant,
    /// A RST to send with this sequence number (then the connection is closed).
    pub(crate) rst_pending: Option<Seq>,

    // ---- the application's view ----
    pub(crate) error: Option<TcpError>,
    /// The last ICMP error about an established connection (Linux's sk_err_soft): reported
    /// instead of ETIMEDOUT if the connection times out.
    pub(crate) soft_error: Option<TcpError>,
    /// Died by reset or timeout: sends fail with EPIPE once the error is reported.
    pub(crate) dead: bool,
    /// The application closed the socket; the stack frees it when it reaches CLOSED.
    pub(crate) orphan: bool,
    /// Events a readiness waiter must see again (data, FIN, connection, errors).
    pub(crate) arrivals: u64,
    pub(crate) info: super::info::TcpCounters,
}

/// The send sequence space (RFC 9293 3.3.1) and what goes with it.
#[derive(Debug)]
pub(crate) struct SendSpace {
    pub(crate) iss: Seq,
    pub(crate) una: Seq,
    pub(crate) nxt: Seq,
    /// Highest sequence number ever sent (nxt goes back to una after a timeout).
    pub(crate) max: Seq,
    pub(crate) wnd: u32,
    pub(crate) wl1: Seq,
    pub(crate) wl2: Seq,
    pub(crate) max_wnd: u32,
    pub(crate) wscale: u8,
    pub(crate) buf: SendBuffer,
    /// The application shut the sending side: a FIN follows the last byte.
    pub(crate) fin_queued: bool,
    /// Sequence number our FIN went out with.
    pub(crate) fin_sent: Option<Seq>,
    /// End of the last segment of new data sent shorter than the MSS (Linux's snd_sml): Nagle
    /// holds a small segment only while that one is unacknowledged (Minshall's variant).
    pub(crate) sml: Seq,
    /// The MSS we send with.
    pub(crate) mss: u32,
    /// The path MTU toward the peer: the link's or route's, lowered by ICMP fragmentation
    /// needed (icmp.rs).
    pub(crate) pmtu: u32,
    /// When new data last went out (Linux's lsndtime): slow start after idle counts from it.
    pub(crate) last_data_sent: Instant,
    /// The last send had MSG_MORE: a partial segment is held as under TCP_CORK until a send
    /// without it or an arriving ACK.
    pub(crate) more: bool,
    /// One push past Nagle and TCP_CORK: TCP_NODELAY was just set (tcp(7): "setting this
    /// option forces an explicit flush of pending output, even if TCP_CORK is currently set";
    /// Linux's TCP_NAGLE_PUSH).
    pub(crate) push: bool,
    /// MSG_OOB: the urgent point (Linux's snd_up), until acknowledged (`urgent.rs`).
    pub(crate) up: Option<Seq>,
}

/// The receive sequence space (RFC 9293 3.3.1) and what goes with it.
#[derive(Debug)]
pub(crate) struct RecvSpace {
    pub(crate) irs: Seq,
    pub(crate) nxt: Seq,
    /// Right edge of the window last advertised (never moves left).
    pub(crate) adv: Seq,
    /// nxt when the window was last advertised (left edge for the acceptability test).
    pub(crate) wup: Seq,
    pub(crate) wscale: u8,
    /// Bytes of the receive buffer never offered: one window-scale unit, so that rounding the
    /// window up to the scale (never shrinking what was advertised) stays backed by storage.
    pub(crate) slack: u32,
    pub(crate) buf: RecvBuffer,
    /// The limit the receive buffer returns to (SO_RCVBUF and the slack) once what was
    /// promised under an older, larger one no longer needs it.
    pub(crate) limit: usize,
    /// The receive buffer in effect (SO_RCVBUF as getsockopt reports it): the application's,
    /// or what autotuning grew it to (autotune.rs).
    pub(crate) rcvbuf: usize,
    /// Autotuning's measure (Linux's rcvq_space): bytes the application read in the last
    /// measured RTT, from `space_seq` at `space_at`.
    pub(crate) space: u32,
    pub(crate) space_seq: Seq,
    pub(crate) space_at: Instant,
    /// The receiver's RTT estimate (Linux's rcv_rtt_est), and the window measurement under
    /// way: the sequence number that ends it and when it began.
    pub(crate) rtt: Option<std::time::Duration>,
    pub(crate) rtt_seq: Seq,
    pub(crate) rtt_at: Option<Instant>,
    /// The TSecr last sampled (each is sampled once).
    pub(crate) rtt_tsecr: u32,
    /// A FIN that arrived past a hole.
    pub(crate) fin_pending: Option<Seq>,
    /// Where the latest out-of-order segment started: its SACK block is reported first.
    pub(crate) last_ooo: Seq,
    pub(crate) fin_received: bool,
    pub(crate) read_shutdown: bool,
    /// Largest segment seen from the peer (for the "every second full segment" ACK rule).
    pub(crate) mss: u32,
    /// The MSS we advertised.
    pub(crate) our_mss: u32,
    /// The urgent mark and byte (`urgent.rs`).
    pub(crate) urg: Option<super::urgent::UrgentMark>,
}

/// What is owed to the peer: the ACK policy's state (ack.rs).
#[derive(Debug)]
pub(crate) struct AckState {
    /// An ACK goes out at the next transmit.
    pub(crate) now: bool,
    /// Out-of-order segments not yet answered by an ACK of their own: each gets one (RFC
    /// 5681 4.2), even when a batch of them is processed before the next transmit, so a peer
    /// without SACK sees the three duplicate ACKs fast retransmit waits for.
    pub(crate) dupacks_owed: u32,
    pub(crate) unacked_bytes: u32,
    pub(crate) quickacks: u32,
    pub(crate) challenge_start: Instant,
    pub(crate) challenge_count: u32,
    /// When an out-of-window segment without data was last answered.
    pub(crate) oow_at: Option<Instant>,
    /// A probe (an ACK with an old sequence number: keepalive, zero-window probe) is due.
    pub(crate) send_probe: bool,
}

/// Loss detection and recovery, retransmission bookkeeping (recovery.rs).
#[derive(Debug)]
pub(crate) struct LossRecovery {
    pub(crate) dupacks: u32,
    /// Fast recovery in progress until this is acknowledged (RFC 6582's "recover").
    pub(crate) recover: Option<Seq>,
    /// snd.max at the last loss event: duplicate ACKs below it start no new recovery.
    pub(crate) recover_mark: Seq,
    pub(crate) retransmit_now: bool,
    /// A retransmission timeout fired: the head goes out next, whatever the windows.
    pub(crate) rto_head: bool,
    /// The segment being timed (Karn: never a retransmitted one).
    pub(crate) timing: Option<(Seq, Instant)>,
    pub(crate) backoff: u32,
    pub(crate) retries: u32,
    /// When the current retransmission episode began (for the tcp_retries2 time bound).
    pub(crate) retrans_stamp: Instant,
    /// With SACK: the scoreboard, RACK-TLP's and PRR's state, made when the connection first
    /// sends data (an idle connection holds none).
    pub(crate) sack: Option<Box<super::sack::SackState>>,
}

/// Proportional rate reduction's counters (RFC 6937).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Prr {
    pub(crate) recover_fs: u32,
    pub(crate) delivered: u32,
    pub(crate) out: u32,
    /// The window in recovery: the pipe plus what PRR lets out on this ACK.
    pub(crate) cwnd: u32,
}

/// A connection's timers, one deadline per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    Retransmit,
    Persist,
    DelayedAck,
    Keepalive,
    /// TIME_WAIT's end, or the FIN_WAIT_2 timeout of an orphan.
    Close,
    /// Give back a buffer that is empty once the connection has been quiet long enough.
    Release,
    /// RACK-TLP: the reordering window's end (RFC 8985 6.3) or the tail loss probe (7.2),
    /// one slot as in Linux (`Rack::probe` says which).
    Rack,
}

/// One deadline per timer kind.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct TimerTable([Option<Instant>; 7]);

impl TimerTable {
    /// The earliest deadline.
    pub(crate) fn earliest(&self) -> Option<Instant> {
        self.0.iter().flatten().min().copied()
    }

    /// Stops every timer.
    pub(crate) fn clear(&mut self) {
        self.0 = [None; 7];
    }
}

impl std::ops::Index<Timer> for TimerTable {
    type Output = Option<Instant>;
    fn index(&self, t: Timer) -> &Option<Instant> {
        &self.0[t as usize]
    }
}

impl std::ops::IndexMut<Timer> for TimerTable {
    fn index_mut(&mut self, t: Timer) -> &mut Option<Instant> {
        &mut self.0[t as usize]
    }
}

/// The receive buffer's slack under window scale `shift`: one unit of it (none without
/// scaling, where windows are exact).
fn scale_unit_slack(shift: u8) -> u32 {
    match shift {
        0 => 0,
        shift => 1 << shift,
    }
}

/// The receive buffer the window scale is chosen for: SO_RCVBUF once the application set it,
/// else the autotuning bound (Linux's tcp_select_initial_window with tcp_rmem[2]).
fn scaled_receive_space(options: &TcpSocketOptions, config: &TcpConfig) -> usize {
    let rcvbuf = clamp_buffer(options.rcvbuf);
    if options.rcvbuf_locked {
        rcvbuf
    } else {
        rcvbuf.max(clamp_buffer(config.rcvbuf_max))
    }
}

/// The bounds a buffer size is kept within.
fn clamp_buffer(bytes: usize) -> usize {
    bytes.clamp(1024, 1 << 30)
}

/// The MSS we announce on a link of `mtu` (TCP_MAXSEG caps it: Linux's tcp_advertise_mss and
/// tcp_mss_clamp).
pub(crate) fn advertised_mss(mtu: usize, options: &TcpSocketOptions) -> u32 {
    let our_mss = (mtu.saturating_sub(40) as u32).clamp(MIN_MSS, 65_495);
    options.max_seg.map_or(our_mss, |m| our_mss.min(u32::from(m)))
}

/// The window a SYN or SYN-ACK offers and the scale we announce, for a socket's options (what
/// a connection made now would send).
pub(crate) fn syn_window_and_scale(options: &TcpSocketOptions, config: &TcpConfig) -> (u16, u8) {
    let rcvbuf = clamp_buffer(options.rcvbuf);
    (rcvbuf.min(65_535) as u16, window_scale_for(scaled_receive_space(options, config)))
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
        let our_mss = advertised_mss(mtu, options);
        let rcvbuf = clamp_buffer(options.rcvbuf);
        let rcv_wscale = window_scale_for(scaled_receive_space(options, config));
        let rcv_limit = rcvbuf + scale_unit_slack(rcv_wscale) as usize;
        let mss = DEFAULT_MSS.min(our_mss);
        Connection {
            state: State::Closed,
            local,
            remote,
            config: *config,
            options: *options,
            passive: false,
            deferred_ack: false,
            snd: SendSpace {
                iss,
                una: iss,
                nxt: iss,
                max: iss,
                wnd: 0,
                wl1: Seq(0),
                wl2: iss,
                max_wnd: 0,
                wscale: 0,
                buf: SendBuffer::new(clamp_buffer(options.sndbuf)),
                fin_queued: false,
                fin_sent: None,
                sml: iss,
                mss,
                pmtu: mtu as u32,
                last_data_sent: now,
                more: false,
                push: false,
                up: None,
            },
            rcv: RecvSpace {
                irs: Seq(0),
                nxt: Seq(0),
                adv: Seq(0),
                wup: Seq(0),
                wscale: rcv_wscale,
                slack: scale_unit_slack(rcv_wscale),
                buf: RecvBuffer::new(rcv_limit, config.max_ooo_ranges),
                limit: rcv_limit,
                rcvbuf,
                space: 0,
                space_seq: Seq(0),
                space_at: now,
                rtt: None,
                rtt_seq: Seq(0),
                rtt_at: None,
                rtt_tsecr: 0,
                fin_pending: None,
                last_ooo: Seq(0),
                fin_received: false,
                read_shutdown: false,
                mss,
                our_mss,
                urg: None,
            },
            ack: AckState {
                now: false,
                dupacks_owed: 0,
                unacked_bytes: 0,
                quickacks: config.quickacks,
                challenge_start: now,
                challenge_count: 0,
                oow_at: None,
                send_probe: false,
            },
            loss: LossRecovery {
                dupacks: 0,
                recover: None,
                recover_mark: iss,
                retransmit_now: false,
                rto_head: false,
                timing: None,
                backoff: 0,
                retries: 0,
                retrans_stamp: now,
                sack: None,
            },
            timers: TimerTable::default(),
            rtt: RttEstimator::new(config.rto_initial, config.rto_min, config.rto_max),
            cc: options.congestion.build(config.initial_window, mss),
            ts: config.timestamps.then(|| Timestamps::new(timestamp_offset(config.isn_key, local, remote))),
            sack_ok: false,
            force_send: false,
            persist_backoff: 0,
            probes: 0,
            probes_since: None,
            keep_probes: 0,
            last_recv: now,
            last_send: now,
            rst_pending: None,
            error: None,
            soft_error: None,
            dead: false,
            orphan: false,
            arrivals: 0,
            info: super::info::TcpCounters::default(),
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
        c.take_syn_options(now, syn);
        c.rcv.irs = Seq(syn.seq);
        c.rcv.nxt = c.rcv.irs + 1;
        c.rcv.adv = c.rcv.nxt;
        c.rcv.wup = c.rcv.nxt;
        c.snd.wnd = u32::from(syn.window);
        c.snd.max_wnd = c.snd.wnd;
        c.snd.wl1 = c.rcv.irs;
        c.last_recv = now;
        c
    }

    /// A passive open rebuilt from a valid SYN cookie: `syn` is the SYN the cookie stands for
    /// (the peer's ISN and the options the cookie carried), `iss` the cookie. The SYN-ACK is
    /// taken as sent; the final ACK is processed next, as for a queued handshake.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn from_cookie(
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        syn: &TcpRepr,
        iss: u32,
        config: &TcpConfig,
        options: &TcpSocketOptions,
        mtu: usize,
    ) -> Connection {
        let mut c = Connection::accept_syn(now, local, remote, syn, config, options, mtu);
        let iss = Seq(iss);
        c.snd.iss = iss;
        c.snd.una = iss;
        c.snd.nxt = iss + 1;
        c.snd.max = iss + 1;
        c.snd.wl2 = iss;
        c.snd.sml = iss;
        c.loss.recover_mark = iss;
        // The window the cookie SYN-ACK offered.
        c.rcv.adv = c.rcv.nxt + u32::from(syn_window_and_scale(options, config).0);
        c
    }

    /// Applies the MSS, window-scale and timestamp options of the peer's SYN or SYN-ACK.
    /// Timestamps stay on only if both ends use them; then every segment carries the option,
    /// and the MSS we send with leaves room for it (Linux's mss_cache: 1448 behind 1460).
    pub(crate) fn take_syn_options(&mut self, now: Instant, syn: &TcpRepr) {
        match (self.ts.as_mut(), syn.options.timestamp) {
            (Some(ts), Some((tsval, _))) => ts.update_recent(tsval, now),
            _ => self.ts = None,
        }
        self.sack_ok = self.config.sack && syn.options.sack_permitted;
        let option_room = if self.ts.is_some() { timestamps::OPTION_LEN } else { 0 };
        let peer_mss = syn.options.mss.map(u32::from).unwrap_or(DEFAULT_MSS);
        // The path MTU may be lower than ours (learnt from ICMP: icmp.rs).
        let path = self.snd.pmtu.saturating_sub(40);
        self.snd.mss = peer_mss.min(self.rcv.our_mss).min(path).saturating_sub(option_room).max(MIN_MSS);
        self.rcv.mss = self.snd.mss.min(self.rcv.our_mss);
        match syn.options.window_scale {
            Some(shift) => self.snd.wscale = shift.min(14),
            None => {
                self.snd.wscale = 0;
                self.rcv.wscale = 0;
                // Unscaled windows are exact: the slack may be offered.
                self.rcv.slack = 0;
            }
        }
        self.cc = self.options.congestion.build(self.config.initial_window, self.snd.mss);
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
        let end = self.snd.una + self.snd.buf.len() as u32;
        end.since(self.snd.nxt)
    }

    /// Bytes in flight.
    pub(crate) fn in_flight(&self) -> u32 {
        if self.sack_ok {
            return self.sack_pipe();
        }
        self.snd.nxt.since(self.snd.una)
    }

    /// The SACK state, if made yet.
    pub(crate) fn sk(&self) -> Option<&super::sack::SackState> {
        self.loss.sack.as_deref()
    }

    /// The SACK state, made now if not yet (one allocation in the connection's life).
    pub(crate) fn sk_mut(&mut self) -> &mut super::sack::SackState {
        let una = self.snd.una;
        self.loss.sack.get_or_insert_with(|| Box::new(super::sack::SackState::new(una)))
    }

    /// Whether our FIN has been sent and acknowledged.
    pub(crate) fn fin_acked(&self) -> bool {
        self.snd.fin_sent.is_some_and(|f| self.snd.una > f)
    }

    /// Whether a FIN is still to be sent from `seq` (first time, or again after a timeout).
    pub(crate) fn fin_wanted_at(&self, seq: Seq) -> bool {
        self.snd.fin_queued
            && match self.snd.fin_sent {
                None => true,
                Some(f) => seq <= f && self.snd.una <= f,
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

    /// CLOSED: every timer stops, nothing more is sent (except a pending RST), and buffers
    /// that hold nothing are given back at once (no timer runs any more to do it later).
    pub(crate) fn enter_closed(&mut self) {
        self.state = State::Closed;
        self.timers.clear();
        self.release_idle_buffers();
        self.ack.now = false;
        self.ack.dupacks_owed = 0;
        self.ack.send_probe = false;
        self.loss.retransmit_now = false;
        self.loss.rto_head = false;
    }

    /// Ends TIME_WAIT at the next timer run instead of after 2 MSL (the TIME_WAIT bound is
    /// reached): what is owed (the last ACK) still goes out first.
    pub(crate) fn cut_time_wait(&mut self) {
        if self.state == State::TimeWait {
            self.timers[Timer::Close] = Some(Instant::ZERO);
        }
    }

    /// Queues a RST for the peer (with snd_nxt) and closes.
    pub(crate) fn reset(&mut self, err: Option<TcpError>) {
        if matches!(self.state, State::SynSent) {
            self.fail(err);
            return;
        }
        if self.state != State::Closed {
            self.rst_pending = Some(self.snd.max);
        }
        self.fail(err);
    }

    // ---- the application's calls ----------------------------------------------------------

    /// Queues `data` for sending; returns the bytes taken (send(2)).
    pub fn send(&mut self, data: &[u8]) -> Result<usize, TcpError> {
        self.send_with(data, SendFlags::default())
    }

    /// Queues `data` for sending with send(2)'s flags (MSG_MORE, MSG_OOB); returns the bytes
    /// taken.
    pub fn send_with(&mut self, data: &[u8], flags: SendFlags) -> Result<usize, TcpError> {
        self.may_send()?;
        if data.is_empty() {
            return Ok(0);
        }
        let n = self.snd.buf.write(data);
        if n == 0 {
            return Err(TcpError::WouldBlock);
        }
        self.snd.more = flags.more;
        if flags.oob {
            self.mark_urgent_sent();
        }
        Ok(n)
    }

    /// Whether a send may queue bytes now (the errors send(2) reports first).
    fn may_send(&mut self) -> Result<(), TcpError> {
        if let Some(err) = self.error.take() {
            return Err(err);
        }
        if self.dead || self.snd.fin_queued {
            return Err(TcpError::BrokenPipe);
        }
        match self.state {
            State::SynSent | State::SynReceived => Err(TcpError::WouldBlock),
            State::Established | State::CloseWait => Ok(()),
            _ => Err(TcpError::BrokenPipe),
        }
    }

    /// As `send_with`, for up to `max` bytes that `fill` writes straight into the send buffer
    /// (sendfile: a file read into it, with no copy in between). `fill` returns how many it
    /// wrote; 0 taken with room left is `Ok(0)` (the source had nothing), no room `WouldBlock`.
    pub fn send_fill(&mut self, max: usize, fill: &mut dyn FnMut(&mut [u8]) -> usize) -> Result<usize, TcpError> {
        self.may_send()?;
        if max == 0 {
            return Ok(0);
        }
        if self.snd.buf.free() == 0 {
            return Err(TcpError::WouldBlock);
        }
        self.snd.more = false;
        Ok(self.snd.buf.write_with(max, fill))
    }

    /// Reads received data into `out` (recv(2)); `Ok(0)` is the end of the stream.
    pub fn recv(&mut self, out: &mut [u8], peek: bool) -> Result<usize, TcpError> {
        self.recv_with(RecvInto::Buf(out), RecvFlags { peek, ..RecvFlags::default() })
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
                self.snd.fin_queued = true;
                Ok(())
            }
            State::Established => {
                self.snd.fin_queued = true;
                self.state = State::FinWait1;
                Ok(())
            }
            State::CloseWait => {
                self.snd.fin_queued = true;
                self.state = State::LastAck;
                Ok(())
            }
            State::Closed | State::Listen => Err(TcpError::NotConnected),
            _ => Ok(()),
        }
    }

    /// shutdown(SHUT_RD): reads return end of stream from now on.
    pub fn shutdown_read(&mut self) {
        self.rcv.read_shutdown = true;
        self.arrived();
    }

    /// close(2): a RST when unread data is left or SO_LINGER is zero (as Linux does), a FIN
    /// exchange otherwise. The connection then lives on without the application.
    pub fn close(&mut self, now: Instant) {
        self.orphan = true;
        let unread = !self.rcv.buf.is_empty();
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
            State::FinWait2 => self.timers[Timer::Close] = Some(now + self.config.fin_timeout),
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
        self.ack.quickacks = self.config.quickacks.max(1);
        if self.timers[Timer::DelayedAck].is_some() {
            self.ack.now = true;
        }
    }

    /// Replaces the options (setsockopt). New buffer sizes are the buffers' new limits at
    /// once: a larger receive buffer opens the window (announced if it at least doubles), a
    /// smaller one never takes back what was advertised (the limit stays above the right edge
    /// promised until reads let it come down); a smaller send buffer takes no more writes until
    /// acknowledgments bring what it holds under the new limit.
    pub fn set_options(&mut self, now: Instant, options: TcpSocketOptions) {
        if options.congestion != self.options.congestion {
            let (cwnd, ssthresh) = (self.cc.window(), self.cc.ssthresh());
            self.cc = options.congestion.build(self.config.initial_window, self.snd.mss);
            if self.state != State::SynSent && self.state != State::SynReceived {
                self.cc.resume(cwnd, ssthresh);
            }
        }
        let keepalive_on = options.keepalive && !self.options.keepalive;
        // TCP_KEEPIDLE changed with keepalive on: the timer counts from the last segment
        // received again, as Linux's tcp_sock_set_keepidle re-arms it.
        let idle_changed = options.keepalive && self.options.keepalive && options.keep_idle != self.options.keep_idle;
        if options.nodelay && !self.options.nodelay {
            self.snd.push = true;
        }
        let buffers_changed = (options.sndbuf, options.rcvbuf) != (self.options.sndbuf, self.options.rcvbuf);
        let before_options = self.options;
        self.options = options;
        if buffers_changed {
            // A value the application sets locks the buffer (no growth past it), as Linux's
            // SOCK_SNDBUF_LOCK and SOCK_RCVBUF_LOCK.
            self.options.sndbuf_locked |= options.sndbuf != before_options.sndbuf;
            self.options.rcvbuf_locked |= options.rcvbuf != before_options.rcvbuf;
            if self.options.sndbuf_locked {
                self.snd.buf.set_limit(clamp_buffer(options.sndbuf));
            }
            if self.options.rcvbuf_locked {
                self.rcv.rcvbuf = clamp_buffer(options.rcvbuf);
                self.rcv.limit = self.rcv.rcvbuf + self.rcv.slack as usize;
            }
            let before = self.advertisable_window();
            self.settle_recv_limit();
            self.maybe_window_update(before);
            self.arrived();
        }
        if keepalive_on && self.state.is_synchronized() {
            self.timers[Timer::Keepalive] = Some(now + options.keep_idle);
        }
        if idle_changed && self.state.is_synchronized() && self.keep_probes == 0 {
            self.timers[Timer::Keepalive] = Some((self.last_recv + options.keep_idle).max(now));
        }
        if !options.keepalive {
            self.timers[Timer::Keepalive] = None;
        }
    }

    /// Moves the receive buffer's limit to the one SO_RCVBUF asks for, but never below what
    /// the peer was promised: the readable bytes, the window advertised past them and the
    /// slack that backs its rounding, and any out-of-order bytes stored.
    pub(crate) fn settle_recv_limit(&mut self) {
        let held = self.rcv.buf.len();
        let promised = held + self.rcv.adv.since(self.rcv.nxt) as usize + self.rcv.slack as usize;
        let stored = held + self.rcv.buf.out_of_order_end();
        self.rcv.buf.set_limit(self.rcv.limit.max(promised).max(stored));
    }

    /// Whether a buffer has storage and holds nothing: the `Release` timer's business.
    fn has_idle_buffer(&self) -> bool {
        (self.snd.buf.capacity() > 0 && self.snd.buf.is_empty())
            || (self.rcv.buf.capacity() > 0 && self.rcv.buf.is_idle())
    }

    /// When a segment last went either way.
    fn last_activity(&self) -> Instant {
        self.last_recv.max(self.last_send)
    }

    /// Arms the `Release` timer when a buffer holds storage and nothing else: it fires once
    /// the connection has sent and received nothing for `buffer_release`. Called when
    /// `poll_transmit` has nothing more to send (after every change the stack sees).
    pub(crate) fn arm_buffer_release(&mut self) {
        if self.timers[Timer::Release].is_none() && self.state != State::Closed && self.has_idle_buffer() {
            self.timers[Timer::Release] = Some(self.last_activity() + self.config.buffer_release);
        }
    }

    /// The `Release` timer: empty buffers are given back if the connection has been quiet for
    /// `buffer_release`; otherwise it waits until it has.
    pub(crate) fn on_release_timeout(&mut self, now: Instant) {
        let quiet_until = self.last_activity() + self.config.buffer_release;
        if now < quiet_until {
            if self.has_idle_buffer() {
                self.timers[Timer::Release] = Some(quiet_until);
            }
            return;
        }
        self.release_idle_buffers();
        // What counts as idle is exactly what release frees: no re-arming in the past forever.
        debug_assert!(!self.has_idle_buffer());
    }

    /// Gives back the storage of both buffers where they hold nothing.
    pub(crate) fn release_idle_buffers(&mut self) {
        self.snd.buf.release();
        self.rcv.buf.release();
    }

    /// What poll/epoll would report.
    pub fn readiness(&self) -> Readiness {
        let error = self.error.is_some();
        let connected = self.state.is_synchronized() || self.dead;
        let readable = self.data_readable() || self.rcv.fin_received || self.rcv.read_shutdown || error || self.dead;
        let below_lowat = self.options.notsent_lowat.is_none_or(|l| u64::from(self.not_sent()) < u64::from(l));
        let writable = error
            || self.dead
            || (self.state.can_send()
                && !self.snd.fin_queued
                && self.snd.buf.free() * 3 >= self.snd.buf.limit()
                && below_lowat);
        let hangup =
            self.dead || (self.rcv.fin_received && self.snd.fin_queued) || (connected && self.state == State::Closed);
        let priority = self.urgent_pending();
        Readiness { readable, writable, read_hangup: self.rcv.fin_received, hangup, error, priority }
    }

    /// getsockopt(TCP_MAXSEG) as Linux answers it: the user's value on a closed socket that
    /// has one, else the MSS in use (Linux's mss_cache). Before the handshake completes that is
    /// what our SYN announced less the timestamp option we offered (tcp_connect_init).
    pub fn max_seg(&self) -> u32 {
        match (self.state, self.options.max_seg) {
            (State::Closed, Some(m)) => u32::from(m),
            (State::SynSent, _) => {
                let ts = if self.ts.is_some() { timestamps::OPTION_LEN } else { 0 };
                self.rcv.our_mss.saturating_sub(ts)
            }
            _ => self.snd.mss,
        }
    }

    /// Whether enough bytes are readable for SO_RCVLOWAT (Linux's tcp_epollin_ready): at
    /// least the mark, or some when the window left is at most one MSS (the mark may never
    /// be reached otherwise).
    fn data_readable(&self) -> bool {
        let avail = self.rcv.buf.len();
        let target = self.options.rcvlowat + usize::from(self.skipped_urgent_next());
        avail > 0 && (avail >= target || self.rcv.adv.since(self.rcv.nxt) <= self.rcv.mss)
    }

    /// Bytes written but never transmitted (SIOCOUTQNSD, TCP_NOTSENT_LOWAT: Linux's
    /// write_seq - snd_nxt, where snd_nxt does not go back after a timeout as ours does, hence
    /// snd_max here).
    pub fn not_sent(&self) -> u32 {
        let end = self.snd.una + self.snd.buf.len() as u32;
        if end > self.snd.max {
            end.since(self.snd.max)
        } else {
            0
        }
    }

    /// Readable bytes (FIONREAD).
    pub fn readable_len(&self) -> usize {
        self.rcv.buf.len()
    }

    /// Bytes in the send buffer (SIOCOUTQ).
    pub fn send_queued(&self) -> usize {
        self.snd.buf.len()
    }

    /// Counters and state, like tcp_info.
    pub fn info(&self) -> TcpInfo {
        let mut i = self.info.snapshot();
        i.state = Some(self.state);
        i.cwnd = self.cc.window();
        i.ssthresh = self.cc.ssthresh();
        i.srtt = self.rtt.srtt();
        i.rttvar = self.rtt.rttvar();
        i.rto = self.rtt.backed_off(self.loss.backoff);
        i.snd_wnd = self.snd.wnd;
        i.rcv_wnd = self.rcv.adv.since(self.rcv.nxt);
        i.snd_wscale = self.snd.wscale;
        i.rcv_wscale = self.rcv.wscale;
        i.snd_mss = self.snd.mss;
        i.pmtu = self.snd.pmtu;
        i.timestamps = self.ts.is_some();
        i.sack = self.sack_ok;
        i.rcv_mss = self.rcv.our_mss;
        if let Some(sk) = self.sk() {
            i.sacked = sk.sb.sacked_bytes();
            i.lost = sk.sb.lost_unrepaired(self.snd.una);
        }
        i.unacked = self.snd.max.since(self.snd.una);
        i.send_buffer_bytes = self.snd.buf.capacity();
        i.recv_buffer_bytes = self.rcv.buf.capacity();
        i.send_buffer_limit = self.snd.buf.limit();
        i.recv_buffer_limit = self.rcv.buf.limit();
        i.sndbuf = self.snd.buf.limit();
        i.rcvbuf = self.rcv.rcvbuf;
        i.rcv_space = self.rcv.space;
        i.rcv_rtt = self.rcv.rtt.unwrap_or_default();
        i
    }

    /// The earliest instant `handle_timeout` has work to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.earliest()
    }

    /// Whether a SYN with sequence number `seq` lies beyond everything this connection received.
    pub(crate) fn syn_starts_new_incarnation(&self, seq: u32) -> bool {
        Seq(seq) > self.rcv.nxt
    }

    /// Whether the connection is finished and nothing is left to send: the stack may free it
    /// once the application has closed it too.
    pub fn is_finished(&self) -> bool {
        self.state == State::Closed && self.rst_pending.is_none()
    }

    /// The window we can offer now, in bytes, with receiver-side silly-window avoidance
    /// (RFC 9293 3.8.6.2.2): the right edge moves only by at least min(buffer/2, MSS).
    pub(crate) fn advertisable_window(&self) -> u32 {
        let free = (self.rcv.buf.free() as u32).saturating_sub(self.rcv.slack);
        let current = self.rcv.adv.since(self.rcv.nxt);
        if free <= current {
            return current;
        }
        let step = (self.rcv.buf.limit() as u32 / 2).min(self.rcv.our_mss);
        if free - current >= step {
            free
        } else {
            current
        }
    }
}
