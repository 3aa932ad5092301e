//! `--json`: one JSON object per line for each socket the options select (JSON Lines), every
//! field published, under names that stay stable (documented in the crate README). Written by
//! hand: the values are numbers and short strings, and no dependency is needed for that.

use crate::text::{address, user};
use stat_format::reader::Entry;
use std::fmt::Write;

/// A JSON string literal.
fn string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The object for one socket, on one line.
pub fn object(e: &Entry) -> String {
    let r = &e.socket;
    let p = &e.process;
    let kind = match r.kind {
        stat_format::Kind::TcpListen => "tcp_listen",
        stat_format::Kind::TcpConn => "tcp_conn",
        stat_format::Kind::Udp => "udp",
        stat_format::Kind::UdpConn => "udp_conn",
    };
    let fds: Vec<String> = r.fds().iter().map(|f| f.to_string()).collect();
    let mut s = String::from("{");
    let mut field = |name: &str, value: String| {
        if s.len() > 1 {
            s.push(',');
        }
        let _ = write!(s, "{}:{}", string(name), value);
    };
    field("pid", p.pid.to_string());
    field("fd", e.fd().to_string());
    field("fds", format!("[{}]", fds.join(",")));
    field("program", string(&p.program()));
    field("uid", p.uid.to_string());
    field("user", string(&user(p.uid)));
    field("proto", string(if r.kind.is_tcp() { "TCP" } else { "UDP" }));
    field("kind", string(kind));
    field("state", r.state.map_or("null".to_string(), |st| string(st.name())));
    field("local", string(&address(r.local)));
    field("local_ip", string(&r.local.0.to_string()));
    field("local_port", r.local.1.to_string());
    field("foreign", string(&address(r.remote)));
    field("foreign_ip", string(&r.remote.0.to_string()));
    field("foreign_port", r.remote.1.to_string());
    field("recv_q", r.recv_q.to_string());
    field("send_q", r.send_q.to_string());
    field("rx_bytes", r.rx_bytes.to_string());
    field("rx_delivered_bytes", r.rx_delivered.to_string());
    field("tx_bytes", r.tx_bytes.to_string());
    field("tx_acked_bytes", r.tx_acked.to_string());
    field("retrans_fast", r.retrans_fast.to_string());
    field("retrans_timeout", r.retrans_timeout.to_string());
    field("retrans_bytes", r.retrans_bytes.to_string());
    field("window_peer", r.window_peer.to_string());
    field("window_local", r.window_local.to_string());
    field("wscale_peer", r.wscale_peer.to_string());
    field("wscale_local", r.wscale_local.to_string());
    field("cwnd", r.cwnd.to_string());
    field("ssthresh", r.ssthresh.to_string());
    field("mss_tx", r.mss_tx.to_string());
    field("mss_rx", r.mss_rx.to_string());
    field("srtt_us", r.srtt_us.to_string());
    field("rto_us", r.rto_us.to_string());
    field("conn_requests", r.conn_requests.to_string());
    field("conn_established", r.conn_established.to_string());
    field("syn_queue", r.syn_queue.to_string());
    field("backlog", r.backlog.to_string());
    field("rx_datagrams", r.rx_datagrams.to_string());
    field("drops_queue_full", r.drops_queue_full.to_string());
    field("challenge_acks", r.challenge_acks.to_string());
    field("paws_rejected", r.paws_rejected.to_string());
    field("process_drops_checksum", p.drops_checksum.to_string());
    field("process_drops_no_buffer", p.drops_no_buffer.to_string());
    field("process_drops_malformed", p.drops_malformed.to_string());
    field("process_drops_fragments", p.drops_fragments.to_string());
    field("netns_cookie", p.netns_cookie.to_string());
    s.push('}');
    s
}
