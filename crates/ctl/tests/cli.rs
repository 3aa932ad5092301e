//! `exasock-ctl` as a user runs it, inside the accelerated namespace of the topology.

use nic::steering::{Datapath, Flow, Steering};
use std::net::{Ipv4Addr, UdpSocket};
use std::process::Output;
use std::time::Duration;
use testbed::{Side, Topology};

const T: Duration = Duration::from_secs(20);
const CTL: &str = env!("CARGO_BIN_EXE_exasock-ctl");

fn ctl(topo: &Topology, args: &[&str]) -> Output {
    let mut argv = vec![CTL];
    argv.extend_from_slice(args);
    topo.spawn(Side::Accel, &argv, T).unwrap().finish(T).unwrap()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn attach_is_idempotent_status_shows_owners_and_detach_gives_flows_back_to_the_kernel() {
    let Some(_serial) = testbed::require() else { return };
    let topo = Topology::create().unwrap();
    let iface = topo.accel.iface.clone();

    let out = ctl(&topo, &["status"]);
    assert!(text(&out).contains("no interface attached"), "{}", text(&out));
    let out = ctl(&topo, &["attach", &iface]);
    assert!(out.status.success() && text(&out).contains("attached (af_packet)"), "{}", text(&out));
    let out = ctl(&topo, &["attach", &iface]);
    assert!(out.status.success() && text(&out).contains("already attached"), "{}", text(&out));
    let gro = testbed::ns_exec(&topo.accel.netns, &["ethtool", "-k", &iface]).unwrap();
    assert!(gro.contains("generic-receive-offload: off"), "GRO left on: {gro}");

    // This process claims UDP 7400 and holds the kernel socket for it, as an owner must.
    let accel_ip = topo.accel.ip;
    let (sock, it) = (topo.in_ns(Side::Accel, move || UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 7400))), iface.clone());
    let kernel_sock = sock.unwrap().unwrap();
    kernel_sock.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let flow = Flow::udp(Ipv4Addr::UNSPECIFIED, 7400);
    let mut steering = topo.in_ns(Side::Accel, move || Steering::open(&it)).unwrap().unwrap();
    steering.claim(flow, Datapath::AfPacket).unwrap();

    let out = ctl(&topo, &["status"]);
    let me = std::process::id().to_string();
    let line = text(&out).lines().find(|l| l.contains("udp *:7400")).map(str::to_owned);
    let line = line.unwrap_or_else(|| panic!("flow not listed: {}", text(&out)));
    assert!(line.contains(&me) && line.contains("af_packet") && line.ends_with("alive"), "{line}");
    assert!(
        text(&out).contains(&format!("{iface}: program attached, datapath af_packet, 1 flow(s)")),
        "{}",
        text(&out)
    );
    // XDP joins and leaves an attached interface on request; status says which runs.
    let out = ctl(&topo, &["attach", &iface, "--datapath", "xdp"]);
    assert!(out.status.success() && text(&out).contains("already attached (xdp (skb mode))"), "{}", text(&out));
    assert!(text(&ctl(&topo, &["status"])).contains("datapath xdp (skb mode)"));
    let xdp = testbed::ip(&["-n", &topo.accel.netns, "link", "show", &iface]).unwrap();
    assert!(xdp.contains("xdpgeneric"), "no generic XDP program on {iface}: {xdp}");
    let out = ctl(&topo, &["attach", &iface, "--datapath", "af_packet"]);
    assert!(out.status.success() && text(&out).contains("(af_packet)"), "{}", text(&out));
    let xdp = testbed::ip(&["-n", &topo.accel.netns, "link", "show", &iface]).unwrap();
    assert!(!xdp.contains("xdp"), "the XDP program stayed: {xdp}");

    // While attached, the kernel socket never sees the claimed flow's datagrams...
    let peer = topo.in_ns(Side::Peer, || UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))).unwrap().unwrap();
    peer.send_to(b"steered", (accel_ip, 7400)).unwrap();
    assert!(kernel_sock.recv(&mut [0u8; 16]).is_err(), "the kernel got a steered datagram");

    // Detach refuses while a running process serves a flow, and says whose...
    let out = ctl(&topo, &["detach", &iface]);
    assert!(!out.status.success(), "detached under a live owner: {}", text(&out));
    let said = text(&out);
    assert!(said.contains(&format!("(pid {me})")) && said.contains("1 flow(s)") && said.contains("--force"), "{said}");
    assert!(text(&ctl(&topo, &["status"])).contains("udp *:7400"), "a refused detach changed something");
    // ...and with --force it goes: after that the kernel gets the flow again.
    let out = ctl(&topo, &["detach", &iface, "--force"]);
    assert!(out.status.success() && text(&out).contains("detached"), "{}", text(&out));
    peer.send_to(b"kernel", (accel_ip, 7400)).unwrap();
    let mut buf = [0u8; 16];
    let n = kernel_sock.recv(&mut buf).expect("after detach the kernel must receive the flow");
    assert_eq!(&buf[..n], b"kernel");
    assert!(text(&ctl(&topo, &["status"])).contains("no interface attached"));
    let out = ctl(&topo, &["detach", &iface]);
    assert!(out.status.success() && text(&out).contains("was not attached"), "{}", text(&out));
}

#[test]
fn errors_say_what_to_do() {
    let Some(_serial) = testbed::require() else { return };
    let topo = Topology::create().unwrap();

    let out = ctl(&topo, &["attach", "nosuchif0"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("no interface named nosuchif0 in this network namespace"), "{}", text(&out));

    let out = ctl(&topo, &["attach", &topo.accel.iface, "--datapath", "ebpf"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("possible values: af_packet, xdp"), "{}", text(&out));

    // A veth peer that still sends TSO super-frames is refused, with the command that fixes it.
    let (peer_ns, peer_if) = (topo.peer.netns.clone(), topo.peer.iface.clone());
    testbed::ns_exec(&peer_ns, &["ethtool", "-K", &peer_if, "tx", "on", "tso", "on"]).unwrap();
    let out = ctl(&topo, &["attach", &topo.accel.iface]);
    assert!(!out.status.success());
    let fix = format!("run `ip netns exec {peer_ns} ethtool -K {peer_if} tx off`");
    assert!(text(&out).contains(&fix), "{}", text(&out));
    testbed::ns_exec(&peer_ns, &["ethtool", "-K", &peer_if, "tx", "off"]).unwrap();
    let out = ctl(&topo, &["attach", &topo.accel.iface]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(ctl(&topo, &["detach", &topo.accel.iface]).status.success());

    let out = ctl(&topo, &["frobnicate"]);
    assert!(!out.status.success() && text(&out).contains("Usage"), "{}", text(&out));

    // A process that wants a flow on an interface nobody attached is told how to fix it.
    let iface = topo.accel.iface.clone();
    let err = topo.in_ns(Side::Accel, move || Steering::open(&iface).unwrap_err().to_string()).unwrap();
    assert!(err.contains("exasock-ctl attach"), "{err}");

    // Not root: a clear refusal before anything is touched.
    let out = topo
        .spawn(Side::Accel, &["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", CTL, "attach", "lo"], T)
        .unwrap()
        .finish(T)
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("must be run as root"), "{}", text(&out));
}
