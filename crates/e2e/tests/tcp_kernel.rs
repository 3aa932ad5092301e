//! The TCP engine against the Linux kernel's own TCP, through a TAP device in a namespace
//! (testbed::tap): the engine as client and as server, a clean link and links the harness
//! impairs, and each way a connection can end, checked from both sides.
//!
//! EXASOCK_TCP_MATRIX=1 runs a larger matrix (more seeds, sizes and sysctl settings).

use e2e::tap_engine::{pattern_byte, Impairment, TapEngine};
use stack::tcp::{State, TcpError};
use stack::{SocketHandle, StackConfig};
use std::net::SocketAddrV4;
use std::time::Duration;
use testbed::tap::TapHost;

const T: Duration = Duration::from_secs(60);
const MIB: u64 = 1 << 20;

fn peer_script() -> String {
    format!("{}/tests/tcp_peer.py", env!("CARGO_MANIFEST_DIR"))
}

/// Connections of the engine in `state`.
fn in_state(stack: &stack::Stack, state: State) -> usize {
    stack.tcp_connections().iter().filter(|c| c.2 == state).count()
}

fn matrix() -> bool {
    std::env::var_os("EXASOCK_TCP_MATRIX").is_some()
}

fn host(sysctls: &[(&str, &str)]) -> TapHost {
    TapHost::create(sysctls, 1500).unwrap()
}

fn engine(host: &TapHost, inbound: Impairment, outbound: Impairment, seed: u64) -> TapEngine {
    let mut config = StackConfig::default();
    config.tcp.isn_key = [seed ^ 0x9e37_79b9_7f4a_7c15, seed.rotate_left(17) ^ 0xdead_beef];
    TapEngine::new(
        host.open().unwrap(),
        host.engine_ip,
        host.engine_mac,
        host.kernel_ip,
        host.kernel_mac,
        config,
        inbound,
        outbound,
        seed,
    )
}

/// The pattern from stream offset `at`, as one slice (the source of every send).
struct Pattern(Vec<u8>);

impl Pattern {
    fn new() -> Pattern {
        Pattern((0..3 * 65_521u64).map(pattern_byte).collect())
    }

    fn at(&self, offset: u64, len: usize) -> &[u8] {
        let start = (offset % 65_521) as usize;
        &self.0[start..start + len.min(2 * 65_521)]
    }
}

/// Sends `total` bytes of the pattern on `h` and reads back as much, checking every byte, then
/// closes. Returns the bytes received.
fn send_and_check_echo(eng: &mut TapEngine, h: SocketHandle, total: u64, timeout: Duration) -> u64 {
    let pattern = Pattern::new();
    let (mut sent, mut received, mut shut) = (0u64, 0u64, false);
    let mut buf = vec![0u8; 1 << 16];
    let mut eof = false;
    let finished = eng.run_until(timeout, |eng| {
        while sent < total {
            let chunk = pattern.at(sent, (total - sent).min(1 << 16) as usize);
            match eng.stack.tcp_send(h, chunk) {
                Ok(0) | Err(TcpError::WouldBlock) => break,
                Ok(n) => sent += n as u64,
                Err(e) => panic!("send failed after {sent} bytes: {e:?}\n{}", eng.trace()),
            }
        }
        if sent == total && !shut {
            eng.stack.tcp_shutdown(h, false, true).unwrap();
            shut = true;
        }
        loop {
            match eng.stack.tcp_recv(h, &mut buf, false) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    if buf[..n] != *pattern.at(received, n) {
                        let want = pattern.at(received, n);
                        let first = (0..n).find(|&i| buf[i] != want[i]).unwrap_or(0);
                        let shift = (-40_000i64..40_000).find(|&d| {
                            let o = received as i64 + first as i64 + d;
                            o >= 0 && buf[first..(first + 64).min(n)] == *pattern.at(o as u64, (64).min(n - first))
                        });
                        panic!(
                            "byte mismatch at {} (read of {n} at {received}): the bytes there belong {shift:?} away; {:?}\n{}",
                            received + first as u64,
                            eng.stack.tcp_info(h),
                            eng.trace()
                        );
                    }
                    received += n as u64;
                }
                Err(TcpError::WouldBlock) => break,
                Err(e) => panic!("recv failed after {received} bytes: {e:?}\n{}", eng.trace()),
            }
        }
        eng.transmit();
        eof
    });
    assert!(
        finished,
        "timed out: sent {sent}, received {received} of {total}; {:?}\n{}",
        eng.stack.tcp_info(h),
        eng.trace()
    );
    received
}

/// The engine as client of the kernel's echo server: `total` bytes each way.
fn engine_client(host: &TapHost, eng: &mut TapEngine, port: u16, total: u64) {
    let script = peer_script();
    let mut peer = host.spawn(&["python3", &script, "echo-server", &port.to_string()], T).unwrap();
    peer.wait_for_line("listening", T).unwrap();
    let h = eng.stack.tcp_open();
    eng.stack.tcp_bind(h, SocketAddrV4::new(host.engine_ip, 40_000 + port)).unwrap();
    let now = eng.now();
    eng.stack.tcp_connect(h, SocketAddrV4::new(host.kernel_ip, port), now).unwrap();
    let received = send_and_check_echo(eng, h, total, T);
    assert_eq!(received, total);
    let out = peer.finish(T).unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("echoed {total}")), "{out:?}");
    // We sent FIN first and got the peer's: our side ends in TIME_WAIT.
    let now = eng.now();
    eng.stack.tcp_close(h, now).unwrap();
    assert!(eng.run_until(Duration::from_secs(5), |e| in_state(&e.stack, State::TimeWait) == 1));
}

/// The engine as an echo server for the kernel's client: `total` bytes each way.
fn engine_server(host: &TapHost, eng: &mut TapEngine, port: u16, total: u64) {
    let listener = eng.stack.tcp_open();
    eng.stack.tcp_bind(listener, SocketAddrV4::new(host.engine_ip, port)).unwrap();
    eng.stack.tcp_listen(listener, 8).unwrap();
    let script = peer_script();
    let engine_ip = host.engine_ip.to_string();
    let peer =
        host.spawn(&["python3", &script, "client", &engine_ip, &port.to_string(), &total.to_string()], T).unwrap();
    let mut conn = None;
    assert!(eng.run_until(T, |e| {
        conn = e.stack.tcp_accept(listener).ok().map(|(c, _)| c);
        conn.is_some()
    }));
    let c = conn.unwrap();
    let (mut pending, mut at, mut echoed, mut eof) = (vec![0u8; 1 << 16], 0usize, 0usize, false);
    let mut filled = 0usize;
    let done = eng.run_until(T, |e| {
        loop {
            if at == filled && !eof {
                match e.stack.tcp_recv(c, &mut pending, false) {
                    Ok(0) => eof = true,
                    Ok(n) => (at, filled) = (0, n),
                    Err(TcpError::WouldBlock) => {}
                    Err(err) => panic!("recv failed: {err:?}"),
                }
            }
            if at < filled {
                match e.stack.tcp_send(c, &pending[at..filled]) {
                    Ok(n) if n > 0 => {
                        at += n;
                        echoed += n;
                        continue;
                    }
                    Ok(_) | Err(TcpError::WouldBlock) => {}
                    Err(err) => panic!("send failed: {err:?}"),
                }
            }
            break;
        }
        e.transmit();
        eof && at == filled
    });
    assert!(done, "timed out echoing: {echoed} of {total}");
    // The peer closed first: close now sends our FIN from CLOSE_WAIT (passive close).
    assert_eq!(eng.stack.tcp_state(c).unwrap(), State::CloseWait);
    let now = eng.now();
    eng.stack.tcp_close(c, now).unwrap();
    let mut peer = peer;
    assert!(eng.run_until(T, |_| peer.try_wait().unwrap().is_some()), "the kernel's client did not finish");
    let out = peer.finish(T).unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("ok {total}")), "{out:?}");
    assert!(eng.run_until(Duration::from_secs(5), |e| in_state(&e.stack, State::LastAck) == 0));
    let now = eng.now();
    eng.stack.tcp_close(listener, now).unwrap();
}

#[test]
fn the_engine_moves_100_mib_each_way_with_the_kernel_as_client_and_as_server() {
    let Some(_serial) = testbed::require() else { return };
    let host = host(&[]);
    let mut eng = engine(&host, Impairment::default(), Impairment::default(), 1);
    let size = if matrix() { 400 * MIB } else { 100 * MIB };
    let t0 = std::time::Instant::now();
    engine_client(&host, &mut eng, 5001, size);
    eprintln!("engine as client: {size} bytes each way in {:?}", t0.elapsed());
    let t0 = std::time::Instant::now();
    engine_server(&host, &mut eng, 5002, size);
    eprintln!("engine as server: {size} bytes each way in {:?}", t0.elapsed());
    let info = eng.stack.stats();
    eprintln!("{info:?}");
}

/// Impairments the tests use: 1% loss, 5% loss with reordering and duplication, and bursts.
fn impairments() -> Vec<(&'static str, Impairment)> {
    vec![
        ("1% loss", Impairment { drop: 0.01, ..Impairment::default() }),
        ("5% loss, reordering, duplication", Impairment { drop: 0.05, duplicate: 0.02, reorder: 0.05 }),
    ]
}

#[test]
fn the_engine_moves_8_mib_each_way_over_links_that_drop_reorder_and_duplicate() {
    let Some(_serial) = testbed::require() else { return };
    let seeds: Vec<u64> = if matrix() { (1..=8).collect() } else { vec![7] };
    for (name, imp) in impairments() {
        for &seed in &seeds {
            let host = host(&[]);
            let mut eng = engine(&host, imp, imp, seed);
            engine_client(&host, &mut eng, 5011, 8 * MIB);
            engine_server(&host, &mut eng, 5012, 8 * MIB);
            let (inbound, outbound) = eng.impair_stats();
            eprintln!("{name}, seed {seed}: in {inbound:?}, out {outbound:?}");
            assert!(inbound.dropped > 0 && outbound.dropped > 0, "{name}: nothing was dropped");
        }
    }
}

#[test]
fn debug_echo_client() {
    let Some(_serial) = testbed::require() else { return };
    let host = host(&[]);
    let imp = Impairment { drop: 0.01, ..Default::default() };
    let mut eng = engine(&host, imp, imp, 7);
    engine_client(&host, &mut eng, 5012, 8 * MIB);
}
