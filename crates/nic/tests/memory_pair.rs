//! The in-memory pair moves frames with the configured impairments, reproducibly from a seed.

use nic::memory::{pair, BurstLoss, Impairments, LinkConfig, LinkControl, MemoryPort};
use nic::{Port, TxError};
use std::time::Duration;

/// A frame carrying a sequence number and `len - 4` bytes derived from it.
fn numbered_frame(n: u32, len: usize, buf: &mut [u8]) -> usize {
    buf[..4].copy_from_slice(&n.to_be_bytes());
    for (i, b) in buf[4..len].iter_mut().enumerate() {
        *b = (n as usize).wrapping_mul(31).wrapping_add(i) as u8;
    }
    len
}

fn check_frame(frame: &[u8]) -> u32 {
    let n = u32::from_be_bytes(frame[..4].try_into().unwrap());
    for (i, b) in frame[4..].iter().enumerate() {
        assert_eq!(*b, (n as usize).wrapping_mul(31).wrapping_add(i) as u8, "frame {n} corrupted at byte {i}");
    }
    n
}

/// Sends `count` frames from A, one every microsecond (flushing each), then runs the clock
/// until the link is empty. Returns the sequence numbers B received, in order.
fn run(config: LinkConfig, count: u32) -> (Vec<u32>, LinkControl) {
    let (mut a, mut b, ctl) = pair(config);
    let mut got = Vec::new();
    let receive = |b: &mut MemoryPort, got: &mut Vec<u32>| {
        b.receive(usize::MAX, &mut |f| got.push(check_frame(f.data)));
    };
    for n in 0..count {
        ctl.set_now(Duration::from_micros(n as u64));
        a.transmit(&mut |buf| numbered_frame(n, 64 + (n as usize % 200), buf)).unwrap();
        a.flush().unwrap();
        receive(&mut b, &mut got);
    }
    while let Some(t) = ctl.next_arrival() {
        ctl.set_now(t);
        receive(&mut b, &mut got);
    }
    (got, ctl)
}

#[test]
fn clean_link_delivers_everything_in_order_byte_exact() {
    let (got, ctl) = run(LinkConfig::default(), 1000);
    assert_eq!(got, (0..1000).collect::<Vec<_>>());
    let s = ctl.a_to_b();
    assert_eq!((s.sent, s.delivered, s.lost, s.duplicated, s.overflowed), (1000, 1000, 0, 0, 0));
}

#[test]
fn frames_leave_only_on_flush_with_one_kick_per_batch() {
    let (mut a, mut b, _ctl) = pair(LinkConfig::default());
    for n in 0..5 {
        a.transmit(&mut |buf| numbered_frame(n, 60, buf)).unwrap();
    }
    assert_eq!(a.pending_frames(), 5);
    assert_eq!(b.receive(64, &mut |_| panic!("frame before flush")), 0);
    a.flush().unwrap();
    a.flush().unwrap(); // nothing pending: no kick
    assert_eq!(a.stats().tx_kicks, 1);
    assert_eq!(a.stats().tx_frames, 5);
    let mut got = Vec::new();
    assert_eq!(b.receive(3, &mut |f| got.push(check_frame(f.data))), 3, "budget respected");
    assert_eq!(b.receive(64, &mut |f| got.push(check_frame(f.data))), 2);
    assert_eq!(got, vec![0, 1, 2, 3, 4]);
    assert_eq!(b.stats().rx_frames, 5);
}

#[test]
fn abandoned_and_oversized_frames_are_not_sent() {
    let (mut a, mut b, _ctl) = pair(LinkConfig::default());
    assert_eq!(a.max_frame_len(), 1518);
    assert_eq!(a.transmit(&mut |_| 0), Ok(0));
    assert_eq!(a.transmit(&mut |buf| buf.len() + 1), Err(TxError::FrameTooLong { len: 1519, max: 1518 }));
    a.transmit(&mut |buf| numbered_frame(9, buf.len(), buf)).unwrap();
    a.flush().unwrap();
    let mut got = Vec::new();
    b.receive(64, &mut |f| got.push((check_frame(f.data), f.data.len())));
    assert_eq!(got, vec![(9, 1518)]);
}

#[test]
fn delay_holds_frames_until_their_time() {
    let config = LinkConfig::symmetric(Impairments { delay: Duration::from_micros(50), ..Default::default() }, 1);
    let (mut a, mut b, ctl) = pair(config);
    a.transmit(&mut |buf| numbered_frame(1, 60, buf)).unwrap();
    a.flush().unwrap();
    ctl.set_now(Duration::from_micros(49));
    assert_eq!(b.receive(8, &mut |_| {}), 0);
    assert_eq!(ctl.next_arrival(), Some(Duration::from_micros(50)));
    ctl.set_now(Duration::from_micros(50));
    assert_eq!(b.receive(8, &mut |_| {}), 1);
    // Time does not run backwards.
    ctl.set_now(Duration::from_micros(10));
    assert_eq!(ctl.now(), Duration::from_micros(50));
}

#[test]
fn both_directions_work_and_a_callback_may_transmit() {
    let (mut a, mut b, _ctl) = pair(LinkConfig::default());
    a.transmit(&mut |buf| numbered_frame(1, 60, buf)).unwrap();
    a.flush().unwrap();
    // B echoes from inside its receive callback: the port must not hold the link locked.
    let mut echo = Vec::new();
    b.receive(8, &mut |f| echo.extend_from_slice(f.data));
    b.transmit(&mut |buf| {
        buf[..echo.len()].copy_from_slice(&echo);
        echo.len()
    })
    .unwrap();
    b.flush().unwrap();
    let mut got = Vec::new();
    a.receive(8, &mut |f| got.push(check_frame(f.data)));
    assert_eq!(got, vec![1]);
}

fn lossy(seed: u64) -> LinkConfig {
    LinkConfig::symmetric(
        Impairments {
            delay: Duration::from_micros(10),
            jitter: Duration::from_micros(3),
            loss: 0.05,
            duplicate: 0.02,
            reorder: 0.03,
            reorder_delay: Duration::from_micros(40),
            ..Default::default()
        },
        seed,
    )
}

#[test]
fn impairments_replay_exactly_from_a_seed() {
    let (first, _) = run(lossy(42), 5000);
    let (again, _) = run(lossy(42), 5000);
    let (other, _) = run(lossy(43), 5000);
    assert_eq!(first, again, "same seed, same frames in the same order");
    assert_ne!(first, other, "another seed, another run");
}

#[test]
fn loss_duplication_and_reordering_happen_at_their_rates() {
    let (got, ctl) = run(lossy(7), 20_000);
    let s = ctl.a_to_b();
    let rate = |n: u64| n as f64 / 20_000.0;
    assert!((0.04..0.06).contains(&rate(s.lost)), "loss {}", rate(s.lost));
    assert!((0.013..0.027).contains(&rate(s.duplicated)), "dup {}", rate(s.duplicated));
    assert!((0.02..0.04).contains(&rate(s.reordered)), "reorder {}", rate(s.reordered));
    assert_eq!(got.len() as u64, s.sent - s.lost + s.duplicated);
    assert_eq!(s.delivered, got.len() as u64);
    // What was received: each lost frame missing, each duplicate twice, some out of order.
    let mut seen = vec![0u32; 20_000];
    for n in &got {
        seen[*n as usize] += 1;
    }
    assert_eq!(seen.iter().filter(|c| **c == 0).count() as u64, s.lost);
    assert_eq!(seen.iter().filter(|c| **c == 2).count() as u64, s.duplicated);
    let inversions = got.windows(2).filter(|w| w[1] < w[0]).count();
    assert!(inversions > 100, "only {inversions} frames arrived out of order");
}

#[test]
fn burst_loss_clusters() {
    let burst = BurstLoss { enter: 0.01, exit: 0.2, loss_in_burst: 1.0 };
    let config = LinkConfig::symmetric(Impairments { burst: Some(burst), ..Default::default() }, 3);
    let (got, ctl) = run(config, 20_000);
    let lost = ctl.a_to_b().lost;
    // Stationary loss is enter / (enter + exit) ≈ 4.8%, in runs of mean length 1 / exit = 5.
    assert!((600..1400).contains(&lost), "{lost} lost");
    let mut runs = 0;
    let mut expected = 0;
    for n in got {
        if n != expected {
            runs += 1;
        }
        expected = n + 1;
    }
    let mean_run = lost as f64 / runs as f64;
    assert!(mean_run > 3.0, "losses not bursty: mean run {mean_run}");
}

#[test]
fn rate_limit_spaces_frames_and_capacity_drops_overflow() {
    // 1250-byte frames at 10 Mbit/s: one per millisecond on the wire.
    let config = LinkConfig {
        capacity: 10,
        a_to_b: Impairments { rate_bps: Some(10_000_000), ..Default::default() },
        ..LinkConfig::default()
    };
    let (mut a, mut b, ctl) = pair(config);
    for n in 0..15 {
        a.transmit(&mut |buf| numbered_frame(n, 1250, buf)).unwrap();
    }
    a.flush().unwrap();
    assert_eq!(ctl.a_to_b().overflowed, 5, "a burst above capacity is tail-dropped");
    assert_eq!(b.stats().rx_dropped, 5);
    let mut arrivals = Vec::new();
    while let Some(t) = ctl.next_arrival() {
        ctl.set_now(t);
        b.receive(usize::MAX, &mut |f| arrivals.push((check_frame(f.data), t)));
    }
    let expect: Vec<_> = (0..10).map(|n| (n, Duration::from_millis(n as u64 + 1))).collect();
    assert_eq!(arrivals, expect);
}
