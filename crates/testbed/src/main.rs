//! `exasock-testbed`: the namespace topology from the shell.
//!
//! ```text
//! exasock-testbed run [--mtu N] [IMPAIRMENT...] -- CMD ARGS...
//!                                  create, run CMD with the topology in its environment, tear
//!                                  down, exit with CMD's status
//! exasock-testbed up [--owner PID] [--mtu N]       create and leave it up; prints shell variables
//! exasock-testbed down NAME                        remove topology NAME (as printed by `up`)
//! exasock-testbed sweep [--all]                    remove leftovers of dead owners (--all: every one)
//! ```
//! The variables are EXA_NS_ACCEL, EXA_NS_PEER, EXA_IF_ACCEL, EXA_IF_PEER, EXA_IP_ACCEL,
//! EXA_IP_PEER and EXA_TOPOLOGY (the name to give `down`). The impairment flags (see USAGE) load
//! bpf/impair.bpf.c on the peer's veth for the life of `run`, in both directions.

use std::process::{Command, ExitCode};
use testbed::impair::parse_percent;
use testbed::{Direction, Impairment, Options, Topology};

const USAGE: &str = "usage: exasock-testbed run [--mtu N] [IMPAIRMENT...] -- CMD ARGS...
       exasock-testbed up [--owner PID] [--mtu N]
       exasock-testbed down NAME
       exasock-testbed sweep [--all]

run creates two namespaces joined by a veth pair, runs CMD with EXA_NS_ACCEL, EXA_NS_PEER,
EXA_IF_ACCEL, EXA_IF_PEER, EXA_IP_ACCEL, EXA_IP_PEER and EXA_TOPOLOGY set, then removes them.

IMPAIRMENT (on the peer's veth, both directions, for as long as CMD runs; the accelerated side
is untouched, so kernel baselines and exasock runs cross the same link):
  --loss P        drop P percent of frames (\"5%\", \"0.5%\" or \"5\")
  --dup P         send P percent of frames twice
  --reorder P     hold P percent of frames back until the next frame of their direction passes
  --seed N        seed of the decisions (default 1): the same seed and traffic, the same frames
  --proto NAME    impair only IPv4 frames of this protocol: tcp, udp, icmp or a number
  --spare-acks    leave pure TCP ACKs (no payload, no SYN/FIN/RST) alone
  --min-len N     impair only frames of at least N bytes (Ethernet header included)
  --max-len N     impair only frames of at most N bytes
  Frames that are not IPv4 (ARP) are impaired only when no --proto is given.
  Counters are printed to stderr when CMD ends.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().take_while(|a| *a != "--").any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    match run(&args) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("exasock-testbed: {msg}");
            ExitCode::from(2)
        }
    }
}

fn vars(t: &Topology) -> Vec<(&'static str, String)> {
    let base = t.accel.netns.trim_end_matches('a').to_string();
    vec![
        ("EXA_TOPOLOGY", base),
        ("EXA_NS_ACCEL", t.accel.netns.clone()),
        ("EXA_NS_PEER", t.peer.netns.clone()),
        ("EXA_IF_ACCEL", t.accel.iface.clone()),
        ("EXA_IF_PEER", t.peer.iface.clone()),
        ("EXA_IP_ACCEL", t.accel.ip.to_string()),
        ("EXA_IP_PEER", t.peer.ip.to_string()),
    ]
}

/// What the flags before the command asked for.
struct Flags {
    options: Options,
    owner: u32,
    impairment: Option<Impairment>,
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value.parse().map_err(|_| format!("{flag}: not a number: {value}"))
}

fn protocol(value: &str) -> Result<u8, String> {
    match value {
        "tcp" => Ok(6),
        "udp" => Ok(17),
        "icmp" => Ok(1),
        n => number("--proto", n),
    }
}

/// Parses the flags at the front of `args`; returns them and the rest.
fn flags(mut args: &[String], owner: u32) -> Result<(Flags, &[String]), String> {
    let mut f = Flags { options: Options::default(), owner, impairment: None };
    let mut imp = Impairment { seed: 1, ..Impairment::none() };
    let mut impaired = false;
    while let Some(flag) = args.first().filter(|a| a.starts_with("--") && *a != "--") {
        if flag == "--spare-acks" {
            imp.filter.spare_pure_acks = true;
            impaired = true;
            args = &args[1..];
            continue;
        }
        let value = args.get(1).ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--owner" => f.owner = number(flag, value)?,
            "--mtu" => f.options.mtu = number(flag, value)?,
            "--loss" => imp.loss = parse_percent(value).map_err(|e| format!("--loss: {e}"))?,
            "--dup" => imp.duplicate = parse_percent(value).map_err(|e| format!("--dup: {e}"))?,
            "--reorder" => imp.reorder = parse_percent(value).map_err(|e| format!("--reorder: {e}"))?,
            "--seed" => imp.seed = number(flag, value)?,
            "--proto" => {
                imp.filter.ip_proto = Some(protocol(value)?);
                imp.filter.ethertype = Some(0x0800);
            }
            "--min-len" => imp.filter.min_len = number(flag, value)?,
            "--max-len" => imp.filter.max_len = Some(number(flag, value)?),
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
        impaired |= !matches!(flag.as_str(), "--owner" | "--mtu");
        args = &args[2..];
    }
    if impaired {
        f.impairment = Some(imp);
    }
    Ok((f, args))
}

fn run(args: &[String]) -> Result<ExitCode, String> {
    let Some((cmd, rest)) = args.split_first() else {
        return Err(USAGE.into());
    };
    testbed::available()?;
    match cmd.as_str() {
        "run" => {
            let (f, rest) = flags(rest, std::process::id())?;
            let argv = rest.strip_prefix(&["--".to_string()][..]).unwrap_or(rest);
            let (program, program_args) = argv.split_first().ok_or(USAGE)?;
            let topo = Topology::with_options(&f.options, f.owner).map_err(|e| e.to_string())?;
            if let Some(imp) = &f.impairment {
                for dir in Direction::BOTH {
                    topo.impair(dir, imp).map_err(|e| e.to_string())?;
                }
            }
            let status = Command::new(program)
                .args(program_args)
                .envs(vars(&topo))
                .status()
                .map_err(|e| format!("cannot run {program}: {e}"))?;
            if f.impairment.is_some() {
                for dir in Direction::BOTH {
                    let stats = topo.impair_stats(dir).map_err(|e| e.to_string())?;
                    eprintln!("exasock-testbed: impairment {dir:?}: {stats}");
                }
            }
            drop(topo);
            Ok(ExitCode::from(status.code().map_or(1, |c| c as u8)))
        }
        "up" => {
            // SAFETY: getppid has no preconditions.
            let (f, _) = flags(rest, unsafe { libc::getppid() } as u32)?;
            if f.impairment.is_some() {
                return Err("impairment lasts as long as its command: use `exasock-testbed run`".into());
            }
            let topo = Topology::with_options(&f.options, f.owner).map_err(|e| e.to_string())?;
            for (k, v) in vars(&topo) {
                println!("{k}={v}");
            }
            std::mem::forget(topo);
            Ok(ExitCode::SUCCESS)
        }
        "down" => {
            let name = rest.first().ok_or(USAGE)?;
            testbed::remove_topology(name);
            Ok(ExitCode::SUCCESS)
        }
        "sweep" => {
            let report =
                if rest.first().is_some_and(|a| a == "--all") { testbed::sweep_all() } else { testbed::sweep() };
            for ns in report.namespaces {
                println!("removed {ns}");
            }
            Ok(ExitCode::SUCCESS)
        }
        other => Err(format!("unknown command {other}\n{USAGE}")),
    }
}
