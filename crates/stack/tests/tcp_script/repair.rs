//! The state a hand-over gives the kernel's TCP_REPAIR (`Stack::tcp_repair_state`), and
//! forgetting a connection without a segment (`Stack::tcp_detach`).

use crate::common::*;
use stack::tcp::{State, TcpError};

#[test]
fn the_repair_state_splits_the_queues_and_counts_no_fin_as_data() {
    let mut p = Script::new();
    let h = p.connect();
    let syn = p.expect();
    let (ours, _) = syn.options.timestamp.unwrap();
    let iss = p.iss[&PEER_PORT];
    p.inject_at(100, seg("S.", 1000).ack(1).mss(1460).ws(7).ts(5000, ours));
    p.expect();
    p.inject_at(110, seg("P.", 1001).ack(1).len(100).ts(5010, ours));
    assert_eq!(p.recv(h, 30).unwrap().len(), 30);
    p.run_until(120);
    p.send(h, &[9u8; 20_000]).unwrap();
    p.sent.clear();

    let r = p.stack.tcp_repair_state(h, p.now).unwrap();
    assert_eq!((r.state, r.snd_una, r.send_queue.len()), (State::Established, iss.wrapping_add(1), 20_000));
    assert_eq!(r.sent, 10 * 1448, "an initial window of ten 1448-byte segments went out; the rest did not");
    assert_eq!((r.rcv_queue_seq, r.recv_queue.len(), r.rcv_nxt()), (1031, 70, 1101), "unread bytes from 1031");
    assert_eq!(r.recv_queue, (30..100).map(|i| (i % 251) as u8).collect::<Vec<_>>());
    assert_eq!((r.mss_clamp, r.wscale.map(|w| w.0)), (1460, Some(7)), "the peer's MSS and scale");
    assert_eq!(r.timestamp, Some(ours.wrapping_add(120)), "our clock now");
    assert!(!r.fin_received && !r.fin_sent && !r.fin_queued);
    assert!(r.window.rcv_wup == 1101 && r.window.rcv_wnd > 0 && r.window.max_window >= r.window.snd_wnd);

    // The peer's FIN and our shutdown: the FINs are flags, not bytes of either queue.
    p.inject_at(130, seg("F.", 1101).ack(1).ts(5030, ours));
    let r = p.stack.tcp_repair_state(h, p.now).unwrap();
    assert_eq!((r.state, r.fin_received, r.rcv_nxt(), r.window.rcv_wup), (State::CloseWait, true, 1101, 1101));

    while p.stack.poll_event().is_some() {}
    p.sent.clear();
    p.stack.tcp_detach(h).unwrap();
    p.flush();
    p.expect_none();
    assert!(p.stack.tcp_connections().is_empty());
    assert!(matches!(p.stack.poll_event(), Some(stack::Event::TcpClosed { .. })), "the driver releases the flow");
    assert_eq!(p.stack.tcp_repair_state(h, p.now).err(), Some(TcpError::BadHandle));
    // Its segments meet nothing now: no reset from a stack configured to answer the kernel's.
    p.inject(seg(".", 1102).ack(1).ts(5040, ours));
    assert_eq!(p.expect().flags, "R", "this stack answers unknown segments (rst_unknown)");
}

#[test]
fn a_handshake_or_time_wait_has_nothing_to_hand_over() {
    let mut p = Script::new();
    let h = p.connect();
    assert_eq!(p.stack.tcp_repair_state(h, p.now).err(), Some(TcpError::NotConnected));
    let mut p = Script::new();
    let h = p.established();
    p.close(h);
    p.inject(seg("F.", 1001).ack(2));
    assert_eq!(p.stack.tcp_connections()[0].2, State::TimeWait);
    assert_eq!(p.stack.tcp_repair_state(h, p.now).err(), Some(TcpError::NotConnected), "closed, in TIME_WAIT");
}
