//! The file's layout: a header, then `capacity` socket records, every one `WORDS` 64-bit words
//! whose first word is its seqlock counter. Plain structs (`ProcessInfo`, `SocketRecord`) are
//! what both sides handle; `encode`/`decode` are the only code that knows word positions.

use crate::seqlock;
use std::sync::atomic::{AtomicU64, Ordering};

/// "EXASTAT" and a format byte: a file that does not start with it is not ours.
pub const MAGIC: u64 = u64::from_le_bytes(*b"EXASTAT\x01");
/// Bumped whenever a word changes meaning; readers skip files of another version.
pub const VERSION: u64 = 1;
/// Words in the header and in each record (256 bytes).
pub const WORDS: usize = 32;
/// Bytes in the header and in each record.
pub const RECORD_BYTES: usize = WORDS * 8;
/// Records in a file: one per slot index of the preload library (its slot ids keep the index
/// in 16 bits). The file is sparse: only pages written take memory.
pub const CAPACITY: usize = 1 << 16;
/// Bytes in a file.
pub const FILE_BYTES: usize = RECORD_BYTES * (CAPACITY + 1);

// Header words outside the seqlock (written once, before anything else).
const H_MAGIC: usize = 0;
const H_VERSION: usize = 1;
// Header words under the header's seqlock, which starts at word 2.
const H_SEQ: usize = 2;

/// What a socket is, as the original's socket types: the listing's sections, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A TCP listener.
    TcpListen = 1,
    /// A TCP connection (any state but LISTEN).
    TcpConn = 2,
    /// A UDP socket with no peer.
    Udp = 3,
    /// A connected UDP socket.
    UdpConn = 4,
}

impl Kind {
    fn from_u8(v: u8) -> Option<Kind> {
        Some(match v {
            1 => Kind::TcpListen,
            2 => Kind::TcpConn,
            3 => Kind::Udp,
            4 => Kind::UdpConn,
            _ => return None,
        })
    }

    /// Whether the socket is TCP.
    pub fn is_tcp(self) -> bool {
        matches!(self, Kind::TcpListen | Kind::TcpConn)
    }
}

/// A socket's state as exasock-stat spells it (`None` prints `-`: an unconnected UDP socket).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// CLOSED.
    Closed = 1,
    /// LISTEN.
    Listen,
    /// SYN-SENT.
    SynSent,
    /// SYN-RECEIVED.
    SynReceived,
    /// ESTABLISHED.
    Established,
    /// CLOSE-WAIT.
    CloseWait,
    /// FIN-WAIT-1.
    FinWait1,
    /// FIN-WAIT-2.
    FinWait2,
    /// CLOSING.
    Closing,
    /// LAST-ACK.
    LastAck,
    /// TIME-WAIT.
    TimeWait,
}

impl State {
    const ALL: [State; 11] = [
        State::Closed,
        State::Listen,
        State::SynSent,
        State::SynReceived,
        State::Established,
        State::CloseWait,
        State::FinWait1,
        State::FinWait2,
        State::Closing,
        State::LastAck,
        State::TimeWait,
    ];

    fn from_u8(v: u8) -> Option<State> {
        State::ALL.get((v as usize).checked_sub(1)?).copied()
    }

    /// The original's spelling.
    pub fn name(self) -> &'static str {
        match self {
            State::Closed => "CLOSED",
            State::Listen => "LISTEN",
            State::SynSent => "SYN-SENT",
            State::SynReceived => "SYN-RECEIVED",
            State::Established => "ESTABLISHED",
            State::CloseWait => "CLOSE-WAIT",
            State::FinWait1 => "FIN-WAIT-1",
            State::FinWait2 => "FIN-WAIT-2",
            State::Closing => "CLOSING",
            State::LastAck => "LAST-ACK",
            State::TimeWait => "TIME-WAIT",
        }
    }
}

/// How many descriptors a record names (dups beyond them are not listed).
pub const MAX_FDS: usize = 4;

/// One published socket: everything exasock-stat shows of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketRecord {
    /// Its section.
    pub kind: Kind,
    /// Its state (None: `-`).
    pub state: Option<State>,
    /// Local address and port (0 for none: printed `*`).
    pub local: (std::net::Ipv4Addr, u16),
    /// Peer address and port (0 for none).
    pub remote: (std::net::Ipv4Addr, u16),
    /// Recv-Q: unread bytes (TCP), connections waiting to be accepted (listener), bytes charged
    /// to the receive queue with each datagram's overhead (UDP, as the original's ring bytes
    /// including headers).
    pub recv_q: u32,
    /// Send-Q: bytes sent and not acknowledged (TCP); 0 otherwise.
    pub send_q: u32,
    /// The descriptors naming it, lowest first (`fd_count` of them).
    pub fds: [i32; MAX_FDS],
    /// How many of `fds` are set.
    pub fd_count: u8,
    /// Payload bytes received in order (TCP).
    pub rx_bytes: u64,
    /// Of those, read by the program.
    pub rx_delivered: u64,
    /// Payload bytes sent for the first time (TCP).
    pub tx_bytes: u64,
    /// Of those, acknowledged.
    pub tx_acked: u64,
    /// Segments retransmitted by fast retransmit.
    pub retrans_fast: u32,
    /// Segments retransmitted after a timeout.
    pub retrans_timeout: u32,
    /// Payload bytes retransmitted.
    pub retrans_bytes: u64,
    /// The peer's window (bytes).
    pub window_peer: u32,
    /// The window we offer (bytes).
    pub window_local: u32,
    /// The peer's window scale.
    pub wscale_peer: u8,
    /// Our window scale.
    pub wscale_local: u8,
    /// Congestion window (bytes).
    pub cwnd: u32,
    /// Slow-start threshold (bytes; u32::MAX while unbounded).
    pub ssthresh: u32,
    /// Largest payload we send.
    pub mss_tx: u32,
    /// Largest payload we told the peer to send.
    pub mss_rx: u32,
    /// Smoothed round-trip time (µs).
    pub srtt_us: u32,
    /// Retransmission timeout (µs).
    pub rto_us: u32,
    /// A listener's connection requests (SYNs received).
    pub conn_requests: u64,
    /// A listener's connections established (queued for accept).
    pub conn_established: u64,
    /// A listener's handshakes under way.
    pub syn_queue: u32,
    /// A listener's backlog.
    pub backlog: u32,
    /// Receive queue full: datagrams (UDP), SYNs refused (listener), segments out of window or
    /// beyond the out-of-order bound (TCP connection).
    pub drops_queue_full: u64,
    /// Datagrams ever queued (UDP).
    pub rx_datagrams: u64,
    /// Challenge ACKs sent (RFC 5961: a RST or SYN in the window but not where expected, data
    /// acknowledging what was never sent) (TCP connection).
    pub challenge_acks: u32,
    /// Of `drops_queue_full`, segments PAWS rejected as old duplicates (TCP connection).
    pub paws_rejected: u32,
    /// SND.NXT and RCV.NXT at the last refresh (TCP connection): enough for the launcher's
    /// watcher to send the peer of a killed process a segment surely outside its window.
    pub snd_nxt: u32,
    /// See `snd_nxt`.
    pub rcv_nxt: u32,
}

impl Default for SocketRecord {
    fn default() -> Self {
        SocketRecord {
            kind: Kind::Udp,
            state: None,
            local: (std::net::Ipv4Addr::UNSPECIFIED, 0),
            remote: (std::net::Ipv4Addr::UNSPECIFIED, 0),
            recv_q: 0,
            send_q: 0,
            fds: [-1; MAX_FDS],
            fd_count: 0,
            rx_bytes: 0,
            rx_delivered: 0,
            tx_bytes: 0,
            tx_acked: 0,
            retrans_fast: 0,
            retrans_timeout: 0,
            retrans_bytes: 0,
            window_peer: 0,
            window_local: 0,
            wscale_peer: 0,
            wscale_local: 0,
            cwnd: 0,
            ssthresh: 0,
            mss_tx: 0,
            mss_rx: 0,
            srtt_us: 0,
            rto_us: 0,
            conn_requests: 0,
            conn_established: 0,
            syn_queue: 0,
            backlog: 0,
            drops_queue_full: 0,
            rx_datagrams: 0,
            challenge_acks: 0,
            paws_rejected: 0,
            snd_nxt: 0,
            rcv_nxt: 0,
        }
    }
}

fn pair(lo: u32, hi: u32) -> u64 {
    u64::from(lo) | u64::from(hi) << 32
}

fn split(w: u64) -> (u32, u32) {
    (w as u32, (w >> 32) as u32)
}

fn addr((ip, port): (std::net::Ipv4Addr, u16)) -> u64 {
    u64::from(ip.to_bits()) << 16 | u64::from(port)
}

fn unaddr(w: u64) -> (std::net::Ipv4Addr, u16) {
    (std::net::Ipv4Addr::from_bits((w >> 16) as u32), w as u16)
}

impl SocketRecord {
    /// The record's value words (word 0 of the record is its counter; these are 1..WORDS).
    /// Word 1 is never 0 for a socket: 0 there means a free record.
    pub fn encode(&self) -> [u64; WORDS - 1] {
        let mut v = [0u64; WORDS - 1];
        v[0] = self.kind as u64
            | u64::from(self.state.map_or(0, |s| s as u8)) << 8
            | u64::from(self.fd_count) << 16
            | u64::from(self.wscale_peer) << 24
            | u64::from(self.wscale_local) << 32;
        v[1] = addr(self.local);
        v[2] = addr(self.remote);
        v[3] = pair(self.recv_q, self.send_q);
        v[4] = pair(self.fds[0] as u32, self.fds[1] as u32);
        v[5] = pair(self.fds[2] as u32, self.fds[3] as u32);
        v[6] = self.rx_bytes;
        v[7] = self.rx_delivered;
        v[8] = self.tx_bytes;
        v[9] = self.tx_acked;
        v[10] = pair(self.retrans_fast, self.retrans_timeout);
        v[11] = self.retrans_bytes;
        v[12] = pair(self.window_peer, self.window_local);
        v[13] = pair(self.cwnd, self.ssthresh);
        v[14] = pair(self.mss_tx, self.mss_rx);
        v[15] = pair(self.srtt_us, self.rto_us);
        v[16] = self.conn_requests;
        v[17] = self.conn_established;
        v[18] = pair(self.syn_queue, self.backlog);
        v[19] = self.drops_queue_full;
        v[20] = self.rx_datagrams;
        v[21] = pair(self.challenge_acks, self.paws_rejected);
        v[22] = pair(self.snd_nxt, self.rcv_nxt);
        v
    }

    /// The socket in a record's value words; None for a free (or unknown) record.
    pub fn decode(v: &[u64; WORDS - 1]) -> Option<SocketRecord> {
        let kind = Kind::from_u8(v[0] as u8)?;
        let (fd0, fd1) = split(v[4]);
        let (fd2, fd3) = split(v[5]);
        let (recv_q, send_q) = split(v[3]);
        let (retrans_fast, retrans_timeout) = split(v[10]);
        let (window_peer, window_local) = split(v[12]);
        let (cwnd, ssthresh) = split(v[13]);
        let (mss_tx, mss_rx) = split(v[14]);
        let (srtt_us, rto_us) = split(v[15]);
        let (syn_queue, backlog) = split(v[18]);
        let (challenge_acks, paws_rejected) = split(v[21]);
        let (snd_nxt, rcv_nxt) = split(v[22]);
        Some(SocketRecord {
            kind,
            state: State::from_u8((v[0] >> 8) as u8),
            fd_count: ((v[0] >> 16) as u8).min(MAX_FDS as u8),
            wscale_peer: (v[0] >> 24) as u8,
            wscale_local: (v[0] >> 32) as u8,
            local: unaddr(v[1]),
            remote: unaddr(v[2]),
            recv_q,
            send_q,
            fds: [fd0 as i32, fd1 as i32, fd2 as i32, fd3 as i32],
            rx_bytes: v[6],
            rx_delivered: v[7],
            tx_bytes: v[8],
            tx_acked: v[9],
            retrans_fast,
            retrans_timeout,
            retrans_bytes: v[11],
            window_peer,
            window_local,
            cwnd,
            ssthresh,
            mss_tx,
            mss_rx,
            srtt_us,
            rto_us,
            conn_requests: v[16],
            conn_established: v[17],
            syn_queue,
            backlog,
            drops_queue_full: v[19],
            rx_datagrams: v[20],
            challenge_acks,
            paws_rejected,
            snd_nxt,
            rcv_nxt,
        })
    }

    /// The descriptors naming the socket.
    pub fn fds(&self) -> &[i32] {
        &self.fds[..usize::from(self.fd_count).min(MAX_FDS)]
    }
}

/// The publishing process, and counters no single socket owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProcessInfo {
    /// Its pid.
    pub pid: u32,
    /// Its start time (field 22 of /proc/PID/stat, clock ticks since boot): with the pid, names
    /// the process uniquely.
    pub start_time: u64,
    /// Its network namespace (SO_NETNS_COOKIE).
    pub netns_cookie: u64,
    /// Its real uid.
    pub uid: u32,
    /// Its name (comm, NUL-padded).
    pub comm: [u8; 16],
    /// Records in use are below this index.
    pub high_water: u32,
    /// Frames dropped for a bad IPv4, UDP or TCP checksum (cannot be told to a socket).
    pub drops_checksum: u64,
    /// Frames the kernel dropped before the ring had room for them (tp_drops: no buffer).
    pub drops_no_buffer: u64,
    /// IP packets handed to the kernel (IPPROTO_RAW) because the neighbour was unknown.
    pub to_kernel: u64,
    /// Frames dropped as malformed: an IPv4, UDP, TCP or ICMP header too short, or lengths
    /// that the frame contradicts (truncated, oversized claims); cannot be told to a socket.
    pub drops_malformed: u64,
    /// IPv4 fragments dropped: overlapping, reaching past 64 KiB, over the reassembly limits,
    /// or left incomplete until they expired.
    pub drops_fragments: u64,
}

impl ProcessInfo {
    fn encode(&self) -> [u64; WORDS - H_SEQ - 1] {
        let mut v = [0u64; WORDS - H_SEQ - 1];
        v[0] = u64::from(self.pid);
        v[1] = self.start_time;
        v[2] = self.netns_cookie;
        v[3] = u64::from(self.uid);
        v[4] = u64::from_le_bytes(self.comm[..8].try_into().expect("8 bytes"));
        v[5] = u64::from_le_bytes(self.comm[8..].try_into().expect("8 bytes"));
        v[6] = u64::from(self.high_water);
        v[7] = self.drops_checksum;
        v[8] = self.drops_no_buffer;
        v[9] = self.to_kernel;
        v[10] = self.drops_malformed;
        v[11] = self.drops_fragments;
        v
    }

    fn decode(v: &[u64; WORDS - H_SEQ - 1]) -> ProcessInfo {
        let mut comm = [0u8; 16];
        comm[..8].copy_from_slice(&v[4].to_le_bytes());
        comm[8..].copy_from_slice(&v[5].to_le_bytes());
        ProcessInfo {
            pid: v[0] as u32,
            start_time: v[1],
            netns_cookie: v[2],
            uid: v[3] as u32,
            comm,
            high_water: (v[6] as u32).min(CAPACITY as u32),
            drops_checksum: v[7],
            drops_no_buffer: v[8],
            to_kernel: v[9],
            drops_malformed: v[10],
            drops_fragments: v[11],
        }
    }

    /// The program name as text.
    pub fn program(&self) -> String {
        let end = self.comm.iter().position(|b| *b == 0).unwrap_or(self.comm.len());
        String::from_utf8_lossy(&self.comm[..end]).into_owned()
    }
}

/// A mapped publication file, seen as words.
pub struct Region<'a> {
    words: &'a [AtomicU64],
}

impl<'a> Region<'a> {
    /// The region over `words` (a whole file: `FILE_BYTES / 8` words, or a prefix of one).
    pub fn new(words: &'a [AtomicU64]) -> Option<Region<'a>> {
        (words.len() >= WORDS).then_some(Region { words })
    }

    /// The region over mapped memory.
    ///
    /// # Safety
    /// `ptr` must be 8-byte aligned and point to `bytes` bytes that stay mapped for `'a`, that
    /// this process and others only access atomically.
    pub unsafe fn from_raw(ptr: *mut u8, bytes: usize) -> Option<Region<'a>> {
        Region::new(std::slice::from_raw_parts(ptr.cast::<AtomicU64>(), bytes / 8))
    }

    /// Writes the magic and version: the file is ours (the writer, once, after `set_process`).
    pub fn init(&self) {
        self.words[H_VERSION].store(VERSION, Ordering::Relaxed);
        self.words[H_MAGIC].store(MAGIC, Ordering::Release);
    }

    /// Whether the file is a publication of this version.
    pub fn valid(&self) -> bool {
        self.words[H_MAGIC].load(Ordering::Acquire) == MAGIC && self.words[H_VERSION].load(Ordering::Relaxed) == VERSION
    }

    /// Records this region holds (the file may be shorter than `FILE_BYTES`).
    pub fn capacity(&self) -> usize {
        (self.words.len() / WORDS - 1).min(CAPACITY)
    }

    /// Publishes the process header.
    pub fn set_process(&self, p: &ProcessInfo) {
        seqlock::write(&self.words[H_SEQ..WORDS], &p.encode());
    }

    /// Reads the process header.
    pub fn process(&self) -> Option<ProcessInfo> {
        let mut v = [0u64; WORDS - H_SEQ - 1];
        seqlock::read(&self.words[H_SEQ..WORDS], &mut v)?;
        Some(ProcessInfo::decode(&v))
    }

    fn record_words(&self, index: usize) -> Option<&[AtomicU64]> {
        let start = (index + 1) * WORDS;
        self.words.get(start..start + WORDS)
    }

    /// Publishes record `index` (None: frees it).
    pub fn set_record(&self, index: usize, r: Option<&SocketRecord>) {
        let Some(words) = self.record_words(index) else { return };
        match r {
            Some(r) => seqlock::write(words, &r.encode()),
            None => seqlock::write(words, &[0u64; WORDS - 1]),
        }
    }

    /// Reads record `index`: None if free, out of range, or never still long enough to read.
    pub fn record(&self, index: usize) -> Option<SocketRecord> {
        let words = self.record_words(index)?;
        // A record never written is all zeros: free, without a seqlock round.
        if words[0].load(Ordering::Relaxed) == 0 {
            return None;
        }
        let mut v = [0u64; WORDS - 1];
        seqlock::read(words, &mut v)?;
        SocketRecord::decode(&v)
    }

    /// Every socket published, with its record index.
    pub fn records(&self) -> impl Iterator<Item = (usize, SocketRecord)> + '_ {
        let n = self.process().map_or(0, |p| p.high_water as usize).min(self.capacity());
        (0..n).filter_map(|i| self.record(i).map(|r| (i, r)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn sample() -> SocketRecord {
        SocketRecord {
            kind: Kind::TcpConn,
            state: Some(State::FinWait2),
            local: (Ipv4Addr::new(10, 0, 0, 1), 5000),
            remote: (Ipv4Addr::new(10, 0, 0, 2), 65535),
            recv_q: 7,
            send_q: u32::MAX,
            fds: [3, 9, -1, -1],
            fd_count: 2,
            rx_bytes: u64::MAX,
            ssthresh: u32::MAX,
            wscale_peer: 14,
            wscale_local: 7,
            drops_queue_full: 3,
            challenge_acks: 5,
            paws_rejected: u32::MAX,
            snd_nxt: 0x8000_0001,
            rcv_nxt: 17,
            ..SocketRecord::default()
        }
    }

    #[test]
    fn records_and_headers_round_trip_through_a_region() {
        let words: Vec<AtomicU64> = (0..WORDS * 4).map(|_| AtomicU64::new(0)).collect();
        let region = Region::new(&words).unwrap();
        assert!(!region.valid());
        let p = ProcessInfo {
            pid: 42,
            start_time: 99,
            netns_cookie: 7,
            uid: 1000,
            comm: *b"python3\0\0\0\0\0\0\0\0\0",
            high_water: 2,
            drops_checksum: 1,
            drops_no_buffer: 2,
            to_kernel: 3,
            drops_malformed: 4,
            drops_fragments: 5,
        };
        region.set_process(&p);
        region.init();
        assert!(region.valid());
        assert_eq!(region.capacity(), 3);
        assert_eq!(region.process(), Some(p));
        assert_eq!(p.program(), "python3");
        region.set_record(1, Some(&sample()));
        assert_eq!(region.record(0), None);
        assert_eq!(region.record(1), Some(sample()));
        assert_eq!(region.records().collect::<Vec<_>>(), vec![(1, sample())]);
        assert_eq!(sample().fds(), &[3, 9]);
        region.set_record(1, None);
        assert_eq!(region.record(1), None);
        assert_eq!(region.record(5), None, "out of range");
    }

    #[test]
    fn every_state_and_kind_decodes_to_itself() {
        for s in State::ALL {
            for k in [Kind::TcpListen, Kind::TcpConn, Kind::Udp, Kind::UdpConn] {
                let r = SocketRecord { kind: k, state: Some(s), ..sample() };
                assert_eq!(SocketRecord::decode(&r.encode()), Some(r));
            }
        }
        assert_eq!(SocketRecord::decode(&[0; WORDS - 1]), None, "free");
    }
}
