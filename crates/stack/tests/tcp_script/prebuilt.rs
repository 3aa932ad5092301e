//! Prebuilt segments (the extension API): headers of the next segment built ahead of time, the
//! frame the application completes checked and sent as it is, its bytes recorded as sent
//! (and retransmitted from the send buffer if lost), and MSG_EXA_WARM sends that build a frame
//! in a transmit slot and give it back, changing nothing.

use crate::common::*;
use stack::tcp::{PrebuiltError, TcpError};
use stack::{SocketHandle, Transmit, TxBusy};
use wire::prebuilt::{fill_tcp_checksum, set_tcp_length};

/// The frame an application makes: `build_header`, the payload after it, length, checksum.
fn complete(p: &mut Script, h: SocketHandle, payload: &[u8]) -> Vec<u8> {
    let mut buf = [0u8; 128];
    let hlen = p.stack.tcp_build_header(h, &mut buf, p.now).unwrap();
    let mut frame = buf[..hlen].to_vec();
    set_tcp_length(&mut frame, payload.len()).unwrap();
    fill_tcp_checksum(&mut frame, payload).unwrap();
    frame.extend_from_slice(payload);
    frame
}

/// Sends a prebuilt frame as the preload library does; what left is parsed (checksums
/// verified) into `p.sent`.
fn send_frame(p: &mut Script, h: SocketHandle, frame: &[u8]) -> Result<usize, PrebuiltError> {
    let mut cap = Capture { max_frame: p.mtu + 14, ..Capture::default() };
    let r = p.stack.tcp_send_prebuilt(h, frame, &mut cap);
    for f in cap.frames {
        assert_eq!(f, frame, "the frame leaves exactly as the application made it");
        let out = p.parse_frame(&f);
        p.sent.push_back(out);
    }
    r
}

#[test]
fn a_header_is_the_next_segment_s_and_a_completed_frame_goes_out_as_it_is() {
    let mut p = Script::new();
    let h = p.established();
    let mut buf = [0u8; 128];
    let hlen = p.stack.tcp_build_header(h, &mut buf, p.now).unwrap();
    assert_eq!(hlen, 14 + 20 + 20, "no options without timestamps");
    let header = p.parse_frame(&buf[..hlen]);
    assert_eq!((header.flags.as_str(), header.seq, header.ack), ("P.", 1, Some(1001)));
    assert!(header.payload.is_empty() && header.df);
    p.expect_none();

    let frame = complete(&mut p, h, b"prebuilt!");
    assert_eq!(send_frame(&mut p, h, &frame), Ok(frame.len()));
    let out = p.expect();
    assert_eq!((out.seq, out.payload.as_slice()), (1, &b"prebuilt!"[..]));
    assert_eq!(p.stack.tcp_info(h).unwrap().bytes_sent, 0, "sending a frame records nothing");
    p.stack.tcp_send_advance(h, b"prebuilt!", p.now).unwrap();
    assert_eq!(p.stack.tcp_info(h).unwrap().bytes_sent, 9);
    p.flush();
    p.expect_none();
    // A send continues after the advanced bytes (Nagle holds it until they are acknowledged:
    // a small segment in flight, as for the stack's own).
    p.send(h, b"then a send").unwrap();
    p.expect_none();
    p.inject(seg(".", 1001).ack(10));
    let next = p.expect();
    assert_eq!((next.seq, next.payload.as_slice()), (10, &b"then a send"[..]));
    p.inject(seg(".", 1001).ack(21));
    assert_eq!(p.stack.tcp_send_queued(h), Ok(0), "the peer acknowledged both");
}

#[test]
fn a_lost_prebuilt_segment_is_retransmitted_from_the_send_buffer() {
    let mut p = Script::new();
    let h = p.established();
    let frame = complete(&mut p, h, b"lost once");
    send_frame(&mut p, h, &frame).unwrap();
    p.stack.tcp_send_advance(h, b"lost once", p.now).unwrap();
    p.sent.clear(); // the peer never saw it
    let again = p.expect_by(p.now.as_nanos() / 1_000_000 + 3_000);
    assert_eq!((again.flags.as_str(), again.seq, again.payload.as_slice()), ("P.", 1, &b"lost once"[..]));
    p.inject(seg(".", 1001).ack(10));
    assert_eq!(p.stack.tcp_send_queued(h), Ok(0));
}

#[test]
fn a_stale_or_foreign_frame_is_refused_and_nothing_leaves() {
    let mut p = Script::new();
    let h = p.established();
    let frame = complete(&mut p, h, b"stale");
    // A send since the header was built took its sequence numbers.
    p.send(h, b"x").unwrap();
    p.expect();
    assert_eq!(send_frame(&mut p, h, &frame), Err(PrebuiltError::OutOfSequence));
    assert_eq!(PrebuiltError::OutOfSequence.errno(), 71, "EPROTO");
    let frame = complete(&mut p, h, b"fresh");
    let mut other_port = frame.clone();
    other_port[34..36].copy_from_slice(&1234u16.to_be_bytes());
    assert_eq!(send_frame(&mut p, h, &other_port), Err(PrebuiltError::Malformed));
    let mut fin = frame.clone();
    fin[34 + 13] |= 0x01;
    assert_eq!(send_frame(&mut p, h, &fin), Err(PrebuiltError::Malformed));
    let mut no_ack = frame.clone();
    no_ack[34 + 13] &= !0x10;
    assert_eq!(send_frame(&mut p, h, &no_ack), Err(PrebuiltError::Malformed));
    assert_eq!(send_frame(&mut p, h, &frame[..frame.len() - 1]), Err(PrebuiltError::Malformed), "IPv4 length");
    for len in 0..54 {
        assert!(send_frame(&mut p, h, &frame[..len]).is_err(), "a {len}-byte prefix");
    }
    p.expect_none();
    assert_eq!(send_frame(&mut p, h, &frame), Ok(frame.len()));
}

#[test]
fn headers_wait_for_the_handshake_and_unsent_bytes_and_end_with_the_sending_side() {
    let mut p = Script::new();
    let mut buf = [0u8; 128];
    let listener = p.listen(8);
    assert_eq!(p.stack.tcp_build_header(listener, &mut buf, p.now), Err(PrebuiltError::Tcp(TcpError::NotConnected)));
    let idle = p.stack.tcp_open();
    assert_eq!(p.stack.tcp_send_advance(idle, b"x", p.now), Err(PrebuiltError::Tcp(TcpError::NotConnected)));

    let mut p = Script::new();
    let h = p.connect();
    assert_eq!(p.stack.tcp_build_header(h, &mut buf, p.now), Err(PrebuiltError::Tcp(TcpError::WouldBlock)));
    p.expect();
    p.inject_at(100, seg("S.", 1000).ack(1).mss(1460).win(4));
    p.expect();
    // The peer's window (4 bytes) holds back part of a send: a header would take its numbers.
    p.send(h, b"12345678").unwrap();
    p.expect();
    assert_eq!(p.stack.tcp_build_header(h, &mut buf, p.now), Err(PrebuiltError::Tcp(TcpError::WouldBlock)));
    assert_eq!(p.stack.tcp_send_advance(h, b"x", p.now), Err(PrebuiltError::OutOfSequence));
    p.inject(seg(".", 1001).ack(5).win(1000));
    p.expect();
    assert_eq!(p.stack.tcp_build_header(h, &mut buf[..40], p.now), Err(PrebuiltError::BufferTooSmall));
    assert_eq!(p.stack.tcp_build_header(h, &mut buf, p.now), Ok(54));
    p.shutdown_write(h);
    assert_eq!(p.stack.tcp_build_header(h, &mut buf, p.now), Err(PrebuiltError::Tcp(TcpError::BrokenPipe)));
    assert_eq!(p.stack.tcp_send_advance(h, b"x", p.now), Err(PrebuiltError::Tcp(TcpError::BrokenPipe)));
}

#[test]
fn with_timestamps_the_header_carries_the_option_and_the_helpers_find_the_headers() {
    let mut p = Script::new();
    let h = p.connect();
    let syn = p.expect();
    let (tsval, _) = syn.options.timestamp.unwrap();
    p.inject_at(100, seg("S.", 1000).ack(1).mss(1460).ts(5000, tsval));
    p.expect();
    p.run_until(130);
    let frame = complete(&mut p, h, b"stamped");
    assert_eq!(frame.len(), 14 + 20 + 32 + 7);
    send_frame(&mut p, h, &frame).unwrap();
    let out = p.expect();
    assert_eq!(out.options.timestamp, Some((tsval.wrapping_add(130), 5000)));
    assert_eq!(out.payload, b"stamped");
}

/// A datapath whose slots keep what was built in them, also when the slot is given back.
#[derive(Default)]
struct Slots {
    built: Vec<Vec<u8>>,
    sent: usize,
}

impl Transmit for Slots {
    fn frame(&mut self, build: &mut dyn FnMut(&mut [u8]) -> usize) -> Result<(), TxBusy> {
        let mut buf = vec![0u8; 1514];
        let n = build(&mut buf);
        self.sent += usize::from(n > 0);
        self.built.push(buf);
        Ok(())
    }
    fn to_kernel(&mut self, _ip_packet: &[u8]) {
        panic!("nothing goes to the kernel");
    }
}

#[test]
fn a_warm_send_builds_its_frame_and_changes_nothing() {
    let mut p = Script::new();
    let h = p.established();
    p.send(h, b"before").unwrap();
    p.expect();
    let info = p.stack.tcp_info(h).unwrap();
    let mut slots = Slots::default();
    let data = vec![0x5au8; 3000];
    assert_eq!(p.stack.tcp_warm(h, &data, p.now, &mut slots), Ok(3000));
    assert_eq!((slots.built.len(), slots.sent), (1, 0), "one slot built in and given back");
    // What was built is the segment a send would start with: the next sequence, an MSS.
    let built = &slots.built[0];
    let ip_len = usize::from(u16::from_be_bytes([built[16], built[17]]));
    let seg_out = p.parse_frame(&built[..14 + ip_len]);
    assert_eq!((seg_out.seq, seg_out.payload.len(), seg_out.ack), (7, 1460, Some(1001)));
    assert_eq!(p.stack.tcp_info(h).unwrap(), info, "no counter moved");
    assert!(!p.stack.tcp_transmit_pending());
    p.flush();
    p.expect_none();
    p.inject(seg(".", 1001).ack(7));
    p.send(h, b"after").unwrap();
    let next = p.expect();
    assert_eq!((next.seq, next.payload.as_slice()), (7, &b"after"[..]), "the sequence did not move");
    p.shutdown_write(h);
    assert_eq!(p.stack.tcp_warm(h, b"x", p.now, &mut slots), Err(TcpError::BrokenPipe));
}
