//! Keepalive.

use crate::common::*;
use stack::tcp::{State, TcpError};
use std::time::Duration;

#[test]
fn keepalive_probes_then_reset_with_etimedout() {
    let mut p = Script::new();
    let h = p.established_with(|o| {
        o.keepalive = true;
        o.keep_idle = Duration::from_secs(10);
        o.keep_interval = Duration::from_secs(2);
        o.keep_count = 3;
    });
    let mut times = Vec::new();
    for _ in 0..3 {
        let probe = p.expect_by(100_000);
        assert_eq!((probe.seq, probe.payload.len(), probe.flags.as_str()), (0, 0, "."));
        times.push(probe.ms());
    }
    assert_eq!(times, vec![10_100, 12_100, 14_100]);
    let rst = p.expect_by(100_000);
    assert_eq!((rst.flags.as_str(), rst.ms()), ("R.", 16_100));
    assert_eq!(p.recv(h, 10), Err(TcpError::TimedOut));
    assert_eq!(p.stack.tcp_info(h).unwrap().keepalive_probes, 3);
}

#[test]
fn keepalive_answered_keeps_the_connection() {
    let mut p = Script::new();
    let h = p.established_with(|o| {
        o.keepalive = true;
        o.keep_idle = Duration::from_secs(10);
        o.keep_interval = Duration::from_secs(2);
        o.keep_count = 3;
    });
    let probe = p.expect_by(100_000);
    assert_eq!(probe.ms(), 10_100);
    p.inject(seg(".", 1001).ack(1));
    let next = p.expect_by(100_000);
    assert_eq!(next.ms(), 20_100, "idle again from the answer");
    assert_eq!(p.state(h), State::Established);
}

#[test]
fn unacceptable_segments_do_not_postpone_keepalive() {
    let mut p = Script::new();
    let h = p.established_with(|o| {
        o.keepalive = true;
        o.keep_idle = Duration::from_secs(10);
        o.keep_interval = Duration::from_secs(2);
        o.keep_count = 3;
    });
    // An old or forged segment far outside the window gets its ACK but proves nothing.
    p.inject_at(5_000, seg(".", 1001 + 10_000_000).ack(1));
    assert_eq!(p.expect().ack, Some(1001));
    let probe = p.expect_by(100_000);
    assert_eq!(probe.ms(), 10_100, "idle since the last acceptable segment");
    assert_eq!(p.state(h), State::Established);
}

/// TCP_KEEPIDLE changed on a connection with keepalive on: the next probe comes the new idle
/// time after the last segment received, not the old one (Linux re-arms the timer).
#[test]
fn a_shorter_keepalive_idle_set_later_takes_effect_at_once() {
    let mut p = Script::new();
    let h = p.established_with(|o| o.keepalive = true);
    p.run_until(1_000);
    let mut o = p.options(h);
    o.keep_idle = Duration::from_secs(3);
    o.keep_interval = Duration::from_secs(1);
    p.stack.tcp_set_options(h, o, p.now).unwrap();
    p.flush();
    let first = p.expect_by(10_000);
    assert_eq!((first.payload.len(), first.flags.as_str()), (0, "."));
    assert_eq!(first.ms(), 3_100, "3 s after the handshake's last segment");
    assert_eq!(p.expect_by(10_000).ms(), 4_100, "then every TCP_KEEPINTVL");
}
