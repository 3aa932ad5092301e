//! `exasock-testbed`: the namespace topology from the shell.
//!
//! ```text
//! exasock-testbed run [--mtu N] -- CMD ARGS...   create, run CMD with the topology in its
//!                                                  environment, tear down, exit with CMD's status
//! exasock-testbed up [--owner PID] [--mtu N]       create and leave it up; prints shell variables
//! exasock-testbed down NAME                        remove topology NAME (as printed by `up`)
//! exasock-testbed sweep [--all]                    remove leftovers of dead owners (--all: every one)
//! ```
//! The variables are EXA_NS_ACCEL, EXA_NS_PEER, EXA_IF_ACCEL, EXA_IF_PEER, EXA_IP_ACCEL,
//! EXA_IP_PEER and EXA_TOPOLOGY (the name to give `down`).

use std::process::{Command, ExitCode};
use testbed::{Options, Topology};

const USAGE: &str = "usage: exasock-testbed run [--mtu N] -- CMD ARGS...
       exasock-testbed up [--owner PID] [--mtu N]
       exasock-testbed down NAME
       exasock-testbed sweep [--all]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
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

/// Parses `--owner PID` and `--mtu N` from the front of `args`; returns the rest.
fn options<'a>(mut args: &'a [String], owner: &mut u32) -> Result<(Options, &'a [String]), String> {
    let mut opts = Options::default();
    while let Some(flag) = args.first().filter(|a| a.starts_with("--") && *a != "--") {
        let value = args.get(1).ok_or(format!("{flag} needs a value"))?;
        let number: u32 = value.parse().map_err(|_| format!("{flag}: not a number: {value}"))?;
        match flag.as_str() {
            "--owner" => *owner = number,
            "--mtu" => opts.mtu = number,
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
        args = &args[2..];
    }
    Ok((opts, args))
}

fn run(args: &[String]) -> Result<ExitCode, String> {
    let Some((cmd, rest)) = args.split_first() else {
        return Err(USAGE.into());
    };
    testbed::available()?;
    match cmd.as_str() {
        "run" => {
            let mut owner = std::process::id();
            let (opts, rest) = options(rest, &mut owner)?;
            let argv = rest.strip_prefix(&["--".to_string()][..]).unwrap_or(rest);
            let (program, program_args) = argv.split_first().ok_or(USAGE)?;
            let topo = Topology::with_options(&opts, owner).map_err(|e| e.to_string())?;
            let status = Command::new(program)
                .args(program_args)
                .envs(vars(&topo))
                .status()
                .map_err(|e| format!("cannot run {program}: {e}"))?;
            drop(topo);
            Ok(ExitCode::from(status.code().map_or(1, |c| c as u8)))
        }
        "up" => {
            // SAFETY: getppid has no preconditions.
            let mut owner = unsafe { libc::getppid() } as u32;
            let (opts, _) = options(rest, &mut owner)?;
            let topo = Topology::with_options(&opts, owner).map_err(|e| e.to_string())?;
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
