//! Ten thousand connections on one stack: demultiplexing and timers stay per-connection O(1),
//! and every connection's timer fires on time.

mod common;

use common::*;
use stack::tcp::TcpConfig;

#[test]
fn ten_thousand_connections_each_get_their_delayed_ack_on_time() {
    const N: u16 = 10_000;
    let config = TcpConfig { quickacks: 0, sndbuf: 4096, rcvbuf: 4096, ..TcpConfig::default() };
    let mut p = Script::with(config);
    let l = p.listen(4096);
    let mut conns = Vec::new();
    for i in 0..N {
        let port = 20_000 + i;
        p.inject(seg("S", 100).src_port(port).mss(1460));
        p.inject(seg(".", 101).src_port(port).ack(1));
        conns.push(p.stack.tcp_accept(l).unwrap().0);
    }
    assert_eq!(p.sent.len(), usize::from(N), "one SYN-ACK each");
    p.sent.clear();
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
