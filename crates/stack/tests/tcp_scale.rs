//! Many connections on one stack, and what each one costs, stated and checked:
//! - memory: buffers start empty and grow on demand (doubling from 4 KiB up to SO_SNDBUF /
//!   SO_RCVBUF, on the write path and when a segment lands past the receive ring's end), and
//!   a buffer that holds nothing is given back once the connection has been quiet for
//!   `TcpConfig::buffer_release` (1 s). An idle connection holds no buffer bytes: 10,000 of
//!   them cost what this binary's counting allocator measures (2,041 bytes each: the boxed
//!   socket with its `Connection`, its share of the socket table and of the demultiplexer's
//!   map; before buffers grew on demand it was 524,296 bytes more each, 5 GiB for 10,000).
//!   A busy connection is bounded by its limits, and gives its buffers back when it goes idle;
//! - per-segment work: what the stack's tables do for one segment (demultiplexer lookups,
//!   sockets transmit looks at, timer-wheel slots and entries looked at, `Stack::work`), counted
//!   rather than timed, must be the same with 10 and with 10,000 other connections, each with
//!   a timer pending (measured before the timer wheel kept a minimum per slot: the same, and
//!   2,181 against 42,141 wheel visits for the delayed ACK, as the deadline search looked at
//!   every timer once none was due within a revolution). Not covered: expiry looks at each
//!   timer of a slot as its tick passes, so timers sharing slots cost O(timers / 1024) per
//!   tick of time (here the idle timers all share one slot, away from the ticks measured);
//! - timers: each of 10,000 connections gets its delayed ACK on time.

mod common;

use common::*;
use stack::stats::Work;
use stack::tcp::{TcpConfig, TcpInfo};
use stack::SocketHandle;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Counts the bytes this thread holds on the heap (tests run on threads of their own, and a
/// stack is used by one thread), so a test can measure what the stack allocates.
struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = LIVE.try_with(|l| l.set(l.get() + layout.size() as isize));
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let _ = LIVE.try_with(|l| l.set(l.get() + layout.size() as isize));
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = LIVE.try_with(|l| l.set(l.get() - layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = LIVE.try_with(|l| l.set(l.get() + new_size as isize - layout.size() as isize));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live_bytes() -> isize {
    LIVE.with(|l| l.get())
}

/// Opens `n` connections from peer ports 20,000 up and accepts them.
fn accept_many(p: &mut Script, l: SocketHandle, n: u16) -> Vec<SocketHandle> {
    let mut conns = Vec::with_capacity(usize::from(n));
    for i in 0..n {
        let port = 20_000 + i;
        p.inject(seg("S", 100).src_port(port).mss(1460));
        p.inject(seg(".", 101).src_port(port).ack(1));
        conns.push(p.stack.tcp_accept(l).unwrap().0);
        p.sent.clear();
    }
    conns
}

fn buffer_bytes(i: &TcpInfo) -> (usize, usize) {
    (i.send_buffer_bytes, i.recv_buffer_bytes)
}

/// 10,000 idle connections with the default 256 KiB limits each way hold no buffer bytes, and
/// the heap grows by under 2.25 KiB per connection for all of them (2,193 bytes measured: 2,041
/// before CUBIC became the default (its state is ~150 bytes more than NewReno's) and before
/// autotuning's measures and the path MTU, which storing only TcpInfo's counters more than paid
/// for; SACK and RACK state is boxed and made only when data is sent) (measured by the counting
/// allocator: the figure README and ARCHITECTURE quote).
#[test]
fn ten_thousand_idle_connections_hold_no_buffer_bytes() {
    const N: u16 = 10_000;
    let mut p = Script::with(fixed_buffers());
    // The script's own bookkeeping (our ISS per peer port) must not count.
    p.iss.reserve(2 * usize::from(N));
    let l = p.listen(4096);
    let before = live_bytes();
    let conns = accept_many(&mut p, l, N);
    let per_connection = (live_bytes() - before) as f64 / f64::from(N);
    eprintln!(
        "{N} idle connections: {per_connection:.0} heap bytes each (Connection alone: {} bytes)",
        std::mem::size_of::<stack::tcp::Connection>()
    );
    for c in &conns {
        let info = p.stack.tcp_info(*c).unwrap();
        assert_eq!(info.bytes_received + info.bytes_sent, 0, "idle");
        assert_eq!(buffer_bytes(&info), (0, 0), "no buffer bytes");
        assert_eq!((info.send_buffer_limit, info.recv_buffer_limit), (256 * 1024, 256 * 1024 + 8), "the limits");
    }
    assert!(per_connection < 2304.0, "an idle connection costs {per_connection} bytes");
    // A minute of stack time later (the handshakes sent and received only), still nothing.
    p.run_until(60_000);
    p.expect_none();
    assert!(conns.iter().all(|c| buffer_bytes(&p.stack.tcp_info(*c).unwrap()) == (0, 0)));
}

/// The peer's stream into a connection (ISN 1000) that reads nothing: every segment is
/// 1,460 bytes; returns the receive buffer's size after each, and the last ACK's window.
fn fill_receive_buffer(p: &mut Script, h: SocketHandle, bytes: u32) -> (Vec<usize>, u16) {
    let mut sizes = Vec::new();
    let mut seq = 1001u32;
    let mut win = 0;
    while seq - 1001 < bytes {
        let n = (bytes - (seq - 1001)).min(1460) as usize;
        p.inject(seg(".", seq).ack(1).len(n));
        seq += n as u32;
        sizes.push(p.stack.tcp_info(h).unwrap().recv_buffer_bytes);
        while let Some(a) = p.sent.pop_front() {
            win = a.win;
        }
    }
    (sizes, win)
}

/// Acknowledges everything the connection sent until its send buffer is empty (the peer, at
/// sequence number `peer_seq`, keeps a large window open).
fn ack_everything(p: &mut Script, h: SocketHandle, peer_seq: u32) {
    while p.stack.tcp_info(h).unwrap().unacked > 0 || p.stack.tcp_send_queued(h).unwrap() > 0 {
        let mut end = 0;
        while let Some(o) = p.sent.pop_front() {
            end = end.max(o.seq + o.payload.len() as u32);
        }
        assert!(end > 0, "data in flight");
        p.inject(seg(".", peer_seq).ack(end).win(65_535));
    }
}

/// A transfer grows the buffers by doubling from 4 KiB to their limits and no further: the
/// receive buffer to SO_RCVBUF and its slack (256 KiB and 8 bytes, window scale 3), the send
/// buffer to SO_SNDBUF.
#[test]
fn a_transfer_grows_the_buffers_to_their_limits_and_no_further() {
    let mut p = Script::with(TcpConfig { quickacks: 1_000, ..fixed_buffers() });
    let h = p.established_scaled(1460, 7, 65_535, |_| {});
    assert_eq!(buffer_bytes(&p.stack.tcp_info(h).unwrap()), (0, 0), "nothing allocated by the handshake");
    let limit = 256 * 1024 + 8;
    let (sizes, win) = fill_receive_buffer(&mut p, h, 256 * 1024 + 3 * 1460);
    let mut steps = sizes.clone();
    steps.dedup();
    assert_eq!(steps, [4096, 8192, 16_384, 32_768, 65_536, 131_072, limit], "one allocation per doubling");
    assert_eq!(win, 0, "the window is full");
    let info = p.stack.tcp_info(h).unwrap();
    assert_eq!((info.recv_buffer_bytes, info.recv_buffer_limit), (limit, limit));
    // The window offered 256 KiB; the segment that crossed its edge was stored up to the end
    // of the buffer (its slack), as Linux queues a segment that straddles the edge.
    assert_eq!(info.bytes_received, limit as u64, "a whole window, and nothing past the buffer");

    // The send side: small writes grow it step by step, to the limit and not past it.
    let mut sizes = Vec::new();
    let mut taken = 0;
    while let Ok(n) = p.stack.tcp_send(h, &[7u8; 1000]) {
        taken += n;
        sizes.push(p.stack.tcp_info(h).unwrap().send_buffer_bytes);
    }
    sizes.dedup();
    assert_eq!(sizes, [4096, 8192, 16_384, 32_768, 65_536, 131_072, 262_144]);
    assert_eq!(taken, 256 * 1024, "SO_SNDBUF's worth");
}

/// A connection that moved data both ways and went idle gives both buffers back once it has
/// sent and received nothing for a second (`buffer_release`), not before; the next data grows
/// them again.
#[test]
fn a_connection_that_moved_data_and_went_idle_gives_its_buffers_back() {
    let mut p = Script::with(TcpConfig { quickacks: 1_000, ..fixed_buffers() });
    let h = p.established_scaled(1460, 7, 65_535, |_| {});
    fill_receive_buffer(&mut p, h, 100_000);
    assert_eq!(p.recv(h, 200_000).unwrap().len(), 100_000);
    assert_eq!(p.send(h, &[1u8; 50_000]), Ok(50_000));
    ack_everything(&mut p, h, 101_001);
    let busy = buffer_bytes(&p.stack.tcp_info(h).unwrap());
    assert_eq!(busy, (65_536, 131_072), "grown by the traffic");
    let quiet_from = p.now.as_nanos() / 1_000_000;
    p.run_until(quiet_from + 999);
    assert_eq!(buffer_bytes(&p.stack.tcp_info(h).unwrap()), busy, "kept while the connection is not quiet for 1 s");
    p.run_until(quiet_from + 1_000);
    p.expect_none();
    assert_eq!(buffer_bytes(&p.stack.tcp_info(h).unwrap()), (0, 0), "given back");
    assert_eq!(p.stack.poll_timeout(), None, "and no timer left behind");
    // Data again: the buffers grow again, and the stream goes on.
    p.inject(seg("P.", 101_001).ack(50_001).data(b"again"));
    assert_eq!(p.recv(h, 100).unwrap(), b"again");
    assert_eq!(p.send(h, b"back"), Ok(4));
    assert_eq!(buffer_bytes(&p.stack.tcp_info(h).unwrap()), (4096, 4096));
    let d = std::iter::from_fn(|| p.sent.pop_front()).find(|o| !o.payload.is_empty()).unwrap();
    assert_eq!((d.seq, &d.payload[..]), (50_001, &b"back"[..]));
}

/// A buffer that is given back only once the connection is quiet: one that keeps receiving
/// keeps its storage even while the application reads everything at once.
#[test]
fn a_busy_connection_keeps_its_buffers() {
    let mut p = Script::with(TcpConfig { quickacks: 1_000, ..fixed_buffers() });
    let h = p.established();
    let mut seq = 1001u32;
    for t in (200..5_000).step_by(100) {
        p.inject_at(t, seg("P.", seq).ack(1).len(1000));
        seq += 1000;
        assert_eq!(p.recv(h, 2000).unwrap().len(), 1000);
        assert_eq!(p.stack.tcp_info(h).unwrap().recv_buffer_bytes, 4096, "at {t} ms");
    }
    p.run_until(6_000);
    assert_eq!(p.stack.tcp_info(h).unwrap().recv_buffer_bytes, 0);
}

fn diff(a: Work, b: Work) -> Work {
    Work {
        demux_lookups: b.demux_lookups - a.demux_lookups,
        timer_visits: b.timer_visits - a.timer_visits,
        transmit_visits: b.transmit_visits - a.transmit_visits,
    }
}

/// The work of one data segment to a connection while `idle` others wait with a keepalive
/// timer each: its receipt, the transmit after it and the driver's next `poll_timeout`; then
/// that of the delayed ACK it leads to, 40 ms later.
fn work_of_one_segment(idle: u16) -> (Work, Work) {
    // Small buffers: this measures work, not memory (the tests above state that).
    let config = TcpConfig { quickacks: 0, sndbuf: 4096, rcvbuf: 4096, ..TcpConfig::default() };
    let mut p = Script::with(config);
    let l = p.listen(4096);
    let mut o = p.options(l);
    o.keepalive = true;
    p.stack.tcp_set_options(l, o, p.now).unwrap();
    let conns = accept_many(&mut p, l, idle + 1);
    p.run_until(1_000);
    assert!(p.stack.poll_timeout().is_some_and(|t| t > ms(3_600_000)), "only keepalive timers are pending");
    let before = p.stack.work();
    p.inject(seg("P.", 101).src_port(20_000).ack(1).len(10));
    let _ = p.stack.poll_timeout();
    let segment = p.stack.work();
    p.expect_none();
    p.run_until(1_040);
    let ack = p.expect();
    assert_eq!((ack.ms(), ack.ack), (1_040, Some(111)), "the delayed ACK");
    p.expect_none();
    let _ = p.stack.poll_timeout();
    assert_eq!(p.recv(conns[0], 100).unwrap().len(), 10);
    (diff(before, segment), diff(segment, p.stack.work()))
}

#[test]
fn per_segment_work_does_not_grow_with_the_number_of_connections() {
    let (few, few_ack) = work_of_one_segment(10);
    let (many, many_ack) = work_of_one_segment(10_000);
    eprintln!("one segment: {few:?} with 10 others, {many:?} with 10,000");
    eprintln!("its delayed ACK: {few_ack:?} with 10 others, {many_ack:?} with 10,000");
    assert_eq!(few.demux_lookups, 1, "one lookup: the 4-tuple");
    assert_eq!(few.transmit_visits, 1, "transmit looks at the one socket that changed");
    assert_eq!(many, few, "the segment");
    assert_eq!(many_ack, few_ack, "its delayed ACK");
}

#[test]
fn ten_thousand_connections_each_get_their_delayed_ack_on_time() {
    const N: u16 = 10_000;
    // Limits of 4 KiB each way (no slack: 4 KiB needs no window scale); nothing allocated
    // until data arrives.
    let config = TcpConfig { quickacks: 0, sndbuf: 4096, rcvbuf: 4096, ..TcpConfig::default() };
    let mut p = Script::with(config);
    let l = p.listen(4096);
    let conns = accept_many(&mut p, l, N);
    let info = p.stack.tcp_info(conns[0]).unwrap();
    assert_eq!(buffer_bytes(&info), (0, 0));
    p.run_until(1_000);
    for i in 0..N {
        p.inject(seg("P.", 101).src_port(20_000 + i).ack(1).len(10));
    }
    p.expect_none();
    assert_eq!(p.stack.poll_timeout(), Some(ms(1_040)));
    p.run_until(1_040);
    assert_eq!(p.sent.len(), usize::from(N), "every connection's delayed ACK");
    assert!(p.sent.iter().all(|o| o.ms() == 1_040 && o.ack == Some(111)));
    for (i, h) in conns.iter().enumerate() {
        assert_eq!(p.recv(*h, 100).unwrap().len(), 10, "connection {i}");
    }
}
