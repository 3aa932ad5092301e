//! The socket calls' errors, readiness and handles.

use crate::common::*;
use stack::tcp::{State, TcpError};

#[test]
fn send_and_recv_errors_follow_linux() {
    let mut p = Script::new();
    let h = p.stack.tcp_open();
    assert_eq!(p.stack.tcp_recv(h, &mut [0u8; 4], false), Err(TcpError::NotConnected));
    assert_eq!(p.stack.tcp_send(h, b"x"), Err(TcpError::NotConnected));
    let h = p.connect();
    assert_eq!(p.stack.tcp_connect(h, std::net::SocketAddrV4::new(PEER, 1), p.now), Err(TcpError::Already));
    assert_eq!(p.stack.tcp_recv(h, &mut [0u8; 4], false), Err(TcpError::WouldBlock));
    p.inject(seg("S.", 1000).ack(1));
    assert_eq!(p.stack.tcp_connect(h, std::net::SocketAddrV4::new(PEER, 1), p.now), Err(TcpError::IsConnected));
    assert_eq!(p.stack.tcp_recv(h, &mut [0u8; 4], false), Err(TcpError::WouldBlock));
    assert_eq!(TcpError::WouldBlock.errno(), 11);
    assert_eq!(TcpError::BrokenPipe.errno(), 32);
}

#[test]
fn readiness_events_and_arrivals_surface_changes() {
    let mut p = Script::new();
    let h = p.connect();
    while p.stack.poll_event().is_some() {}
    let a0 = p.stack.tcp_arrivals(h).unwrap();
    p.inject(seg("S.", 1000).ack(1));
    assert_eq!(p.stack.poll_event(), Some(stack::Event::Writable(h)));
    p.inject(seg("P.", 1001).ack(1).len(10));
    assert_eq!(p.stack.poll_event(), Some(stack::Event::Readable(h)));
    p.inject(seg("P.", 1011).ack(1).len(10));
    assert_eq!(p.stack.poll_event(), None, "still readable: no new edge event");
    assert!(p.stack.tcp_arrivals(h).unwrap() >= a0 + 3, "but the arrivals counter grows");
    let mut peek = [0u8; 20];
    assert_eq!(p.stack.tcp_recv(h, &mut peek, true), Ok(20));
    assert_eq!(p.stack.tcp_readable_len(h).unwrap(), 20, "MSG_PEEK leaves the data");
}

#[test]
fn udp_and_tcp_handles_do_not_mix() {
    let mut p = Script::new();
    let t = p.stack.tcp_open();
    let u = p.stack.udp_open();
    assert_eq!(p.stack.udp_close(t), Err(stack::udp::UdpError::BadHandle));
    assert_eq!(p.stack.tcp_state(u), Err(TcpError::BadHandle));
    assert_eq!(p.stack.tcp_state(t), Ok(State::Closed));
    p.stack.tcp_close(t, p.now).unwrap();
    assert_eq!(p.stack.tcp_state(t), Err(TcpError::BadHandle));
    assert!(p.stack.udp_close(u).is_ok());
}
