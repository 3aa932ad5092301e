//! RFC 7323 timestamps: negotiated in the handshake (or not), carried by every segment after
//! it with the room they take out of the MSS, TS.Recent as RFC 7323 4.3 keeps it, PAWS, and
//! RTT samples from echoed timestamps where Karn's rule forbids timing a segment.

use crate::common::*;
use stack::tcp::{State, TcpConfig, TcpError};
use stack::SocketHandle;

/// Our TSval at `t` ms, learnt from a segment we sent at a known time.
struct OurClock(u32);

impl OurClock {
    fn from(out: &Out) -> OurClock {
        let (tsval, _) = out.options.timestamp.expect("our segment carries a timestamp");
        OurClock(tsval.wrapping_sub(out.ms() as u32))
    }
    fn at(&self, t: u64) -> u32 {
        self.0.wrapping_add(t as u32)
    }
}

/// An active open whose peer (ISN 1000, MSS 1460, TSval 5000 at 100 ms) answers with
/// timestamps; returns the connection and our clock.
fn established_with_timestamps(p: &mut Script) -> (SocketHandle, OurClock) {
    let h = p.connect();
    let syn = p.expect();
    let clock = OurClock::from(&syn);
    p.inject_at(100, seg("S.", 1000).ack(1).mss(1460).ts(5000, clock.at(0)));
    let ack = p.expect();
    assert_eq!((ack.flags.as_str(), ack.ack), (".", Some(1001)));
    (h, clock)
}

#[test]
fn an_active_open_offers_timestamps_and_every_later_segment_carries_them() {
    let mut p = Script::new();
    let h = p.connect();
    let syn = p.expect();
    let (tsval, tsecr) = syn.options.timestamp.expect("the SYN offers timestamps");
    assert_eq!(tsecr, 0, "nothing to echo yet");
    let clock = OurClock::from(&syn);
    p.inject_at(100, seg("S.", 1000).ack(1).mss(1460).ts(5000, tsval));
    let ack = p.expect();
    assert_eq!(ack.options.timestamp, Some((clock.at(100), 5000)), "our clock ticks in ms; theirs is echoed");
    let info = p.stack.tcp_info(h).unwrap();
    assert!(info.timestamps);
    assert_eq!(info.snd_mss, 1448, "the MSS leaves room for the 12-byte option, as Linux's mss_cache");
    assert_eq!(info.srtt, dms(100));

    // Data: full segments of 1448 bytes, each with the option.
    p.run_until(150);
    p.send(h, &[7u8; 3000]).unwrap();
    let lens: Vec<usize> = std::iter::from_fn(|| p.sent.pop_front())
        .map(|o| {
            assert_eq!(o.options.timestamp, Some((clock.at(150), 5000)));
            o.payload.len()
        })
        .collect();
    assert_eq!(lens, vec![1448, 1448, 104]);
    // The peer's data with a newer TSval is acknowledged, echoing it.
    p.inject_at(160, seg("P.", 1001).ack(3001).data(b"hi").ts(5060, clock.at(150)));
    let mut last = None;
    p.run_until(300);
    while let Some(o) = p.sent.pop_front() {
        last = Some(o);
    }
    let last = last.expect("the data is acknowledged");
    assert_eq!(last.ack, Some(1003));
    assert_eq!(last.options.timestamp.map(|t| t.1), Some(5060), "TS.Recent follows in-order data");
    assert_eq!(p.stack.tcp_info(h).unwrap().srtt, (dms(100) * 7 + dms(10)) / 8, "the timed segment's 10 ms");
}

#[test]
fn a_syn_ack_without_timestamps_turns_them_off() {
    let mut p = Script::new();
    let h = p.established();
    let info = p.stack.tcp_info(h).unwrap();
    assert!(!info.timestamps);
    assert_eq!(info.snd_mss, 1460, "no option, no room taken");
    p.send(h, &[1u8; 2000]).unwrap();
    let first = p.expect();
    assert_eq!((first.payload.len(), first.options.timestamp), (1460, None));
}

#[test]
fn a_listener_answers_timestamps_only_when_the_syn_offers_them() {
    let mut p = Script::new();
    let l = p.listen(8);
    p.inject(seg("S", 5000).mss(1460).ts(777, 0));
    let synack = p.expect();
    let (tsval, tsecr) = synack.options.timestamp.expect("the SYN-ACK answers with timestamps");
    assert_eq!(tsecr, 777, "echoing the SYN's TSval");
    p.inject_at(10, seg(".", 5001).ack(1).ts(790, tsval));
    let (c, _) = p.stack.tcp_accept(l).unwrap();
    assert!(p.stack.tcp_info(c).unwrap().timestamps);
    assert_eq!(p.stack.tcp_info(c).unwrap().srtt, dms(10));

    let mut p = Script::new();
    let l = p.listen(8);
    p.inject(seg("S", 5000).mss(1460));
    assert_eq!(p.expect().options.timestamp, None, "never offered by the side that answers");
    p.inject(seg(".", 5001).ack(1));
    let (c, _) = p.stack.tcp_accept(l).unwrap();
    assert!(!p.stack.tcp_info(c).unwrap().timestamps);

    let mut p = Script::with(TcpConfig { timestamps: false, ..TcpConfig::default() });
    let l = p.listen(8);
    p.inject(seg("S", 5000).mss(1460).ts(777, 0));
    assert_eq!(p.expect().options.timestamp, None, "turned off by configuration (tcp_timestamps=0)");
    let _ = l;
}

#[test]
fn paws_drops_an_old_duplicate_and_answers_it_but_a_reset_still_counts() {
    let mut p = Script::new();
    let (h, clock) = established_with_timestamps(&mut p);
    p.inject_at(200, seg("P.", 1001).ack(1).data(b"new").ts(6000, clock.at(100)));
    p.run_until(300);
    assert_eq!(p.recv(h, 10).unwrap(), b"new");
    p.sent.clear();
    // A segment in the window but with a TSval from before: an old duplicate from a previous
    // wrap of the sequence space. Dropped, and answered with an ACK at once.
    p.inject_at(310, seg("P.", 1004).ack(1).data(b"old").ts(5500, clock.at(100)));
    let answer = p.expect();
    assert_eq!((answer.flags.as_str(), answer.ack), (".", Some(1004)), "nothing was taken");
    assert_eq!(answer.options.timestamp.map(|t| t.1), Some(6000), "TS.Recent unchanged");
    assert_eq!(p.recv(h, 10), Err(TcpError::WouldBlock));
    assert_eq!(p.stack.tcp_info(h).unwrap().paws_rejected, 1);
    // The same bytes with a current TSval are taken.
    p.inject_at(320, seg("P.", 1004).ack(1).data(b"now").ts(6010, clock.at(100)));
    assert_eq!(p.recv(h, 10).unwrap(), b"now");
    // A RST is not subject to PAWS (RFC 7323 5.3).
    p.inject_at(330, seg("R.", 1007).ack(1).ts(1, 0));
    assert_eq!(p.recv(h, 10), Err(TcpError::ConnectionReset));
}

#[test]
fn a_reordered_duplicate_ack_with_a_slightly_older_tsval_still_counts_toward_fast_retransmit() {
    let mut p = Script::new();
    let (h, clock) = established_with_timestamps(&mut p);
    p.run_until(200);
    p.send(h, &vec![3u8; 5 * 1448]).unwrap();
    p.sent.clear();
    // The peer lost the first segment: three duplicate ACKs, the last one overtaken on the way
    // by a segment with a newer TSval (so its TSval is a few ms older than TS.Recent).
    let echo = clock.at(200);
    p.inject_at(210, seg(".", 1001).ack(1).ts(6010, echo));
    p.inject(seg(".", 1001).ack(1).ts(6012, echo));
    p.inject(seg(".", 1001).ack(1).ts(6008, echo));
    let rtx = p.expect();
    assert_eq!((rtx.seq, rtx.payload.len()), (1, 1448), "three duplicate ACKs: the head is resent");
    assert_eq!(p.stack.tcp_info(h).unwrap().paws_rejected, 0);
}

#[test]
fn segments_past_the_ack_point_do_not_move_ts_recent() {
    let mut p = Script::new();
    let (h, clock) = established_with_timestamps(&mut p);
    // Out of order: stored, but its TSval is not the one to echo (RFC 7323 4.3).
    p.inject_at(200, seg("P.", 1004).ack(1).data(b"def").ts(6100, clock.at(100)));
    let dup = p.expect();
    assert_eq!((dup.ack, dup.options.timestamp.map(|t| t.1)), (Some(1001), Some(5000)));
    // The hole filled: that segment starts at the ACK point; its TSval is echoed.
    p.inject_at(210, seg("P.", 1001).ack(1).data(b"abc").ts(6050, clock.at(100)));
    let ack = p.expect();
    assert_eq!((ack.ack, ack.options.timestamp.map(|t| t.1)), (Some(1007), Some(6050)));
    assert_eq!(p.recv(h, 10).unwrap(), b"abcdef");
}

#[test]
fn after_a_timeout_the_echoed_timestamp_gives_the_rtt_sample_karn_forbids() {
    let mut p = Script::new();
    let (h, clock) = established_with_timestamps(&mut p);
    let before = p.stack.tcp_info(h).unwrap();
    assert_eq!(before.srtt, dms(100), "the handshake's sample");
    p.run_until(1000);
    p.send(h, b"lost").unwrap();
    assert_eq!(p.expect().ms(), 1000);
    // The segment is lost; the RTO (300 ms after one sample of 100 ms) resends it.
    let rtx = p.expect_by(2000);
    assert_eq!((rtx.seq, rtx.ms()), (1, 1300));
    assert_eq!(rtx.options.timestamp.map(|t| t.0), Some(clock.at(1300)));
    // The ACK echoes the retransmission's TSval, 20 ms later: a sample of 20 ms, which a
    // timed segment could not give (it could answer either copy).
    p.inject_at(1320, seg(".", 1001).ack(5).ts(7000, clock.at(1300)));
    let info = p.stack.tcp_info(h).unwrap();
    assert_eq!(info.srtt, (dms(100) * 7 + dms(20)) / 8);
    assert_eq!(p.state(h), State::Established);
}
