//! `exasock-ctl`: makes an interface accelerated (attach), plain again (detach), and shows what
//! is attached and which process serves which flow (status).

use clap::{Parser, Subcommand, ValueEnum};
use nic::control;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "exasock-ctl", version, about = "Attach, detach and inspect exasock on network interfaces")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load the steering programs on IFACE (idempotent; they stay after this command exits).
    Attach {
        /// Interface to accelerate.
        iface: String,
        /// Datapath processes use on this interface (attaching again with another switches).
        #[arg(long, value_enum, default_value_t = DatapathArg::AfPacket)]
        datapath: DatapathArg,
        /// How the XDP program is attached (with --datapath xdp): auto is SKB mode on veth
        /// (measured faster there) and driver mode elsewhere.
        #[arg(long, value_enum, default_value_t = XdpModeArg::Auto)]
        xdp_mode: XdpModeArg,
    },
    /// Remove the steering programs and every flow from IFACE (refused while running processes
    /// serve flows on it, unless --force).
    Detach {
        /// Interface to return to the kernel.
        iface: String,
        /// Detach even though running processes serve flows on IFACE: their UDP sockets then
        /// receive through the kernel, their TCP connections are reset.
        #[arg(long)]
        force: bool,
    },
    /// List attached interfaces and their flows, with owner pid and liveness.
    Status,
}

#[derive(Clone, Copy, ValueEnum)]
enum DatapathArg {
    /// AF_PACKET rings: any number of processes share the interface.
    #[value(name = "af_packet", alias = "af-packet")]
    AfPacket,
    /// AF_XDP sockets for the first process on the interface (every RX queue), AF_PACKET for
    /// the others; EXASOCK_DATAPATH=af_packet|xdp chooses per process.
    #[value(alias = "af_xdp")]
    Xdp,
}

#[derive(Clone, Copy, ValueEnum)]
enum XdpModeArg {
    /// SKB mode on veth, driver mode elsewhere.
    Auto,
    /// SKB (generic) mode.
    Skb,
    /// Driver (native) mode.
    Native,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("exasock-ctl: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Attach { iface, datapath, xdp_mode } => {
            let options = control::AttachOptions {
                datapath: match datapath {
                    DatapathArg::AfPacket => control::AttachDatapath::AfPacket,
                    DatapathArg::Xdp => control::AttachDatapath::Xdp,
                },
                xdp_mode: match xdp_mode {
                    XdpModeArg::Auto => control::XdpMode::Auto,
                    XdpModeArg::Skb => control::XdpMode::Skb,
                    XdpModeArg::Native => control::XdpMode::Native,
                },
            };
            let report = control::attach_with(&iface, &options).map_err(|e| e.to_string())?;
            let verb = if report.newly_attached { "attached" } else { "already attached" };
            println!("{iface}: {verb} ({}); GRO/LRO off; {} stale flow(s) swept", report.datapath, report.swept);
        }
        Command::Detach { iface, force } => {
            if control::detach(&iface, force).map_err(|e| e.to_string())? {
                println!("{iface}: detached");
            } else {
                println!("{iface}: was not attached");
            }
        }
        Command::Status => {
            let list = control::status().map_err(|e| e.to_string())?;
            // What each live process publishes for exasock-stat: its ring's drops and its
            // kernel hand-offs (a process serves one interface: the first attached).
            let dir = std::path::Path::new(stat_format::naming::DIR);
            let published = stat_format::reader::processes(dir, stat_format::reader::own_netns());
            if list.is_empty() {
                println!("no interface attached in this network namespace");
            }
            for s in list {
                let program = if s.program_attached { "attached" } else { "MISSING (run exasock-ctl attach again)" };
                println!(
                    "{}: program {program}, datapath {}, {} flow(s), {} stale swept",
                    s.iface,
                    s.datapath,
                    s.flows.len(),
                    s.swept
                );
                if s.xdp_missed > 0 {
                    println!("  {} TCP frame(s) XDP let through dropped at tc (retransmitted)", s.xdp_missed);
                }
                let mut owners: Vec<u32> = s.flows.iter().filter(|f| f.owner_alive()).map(|f| f.owner_pid).collect();
                owners.sort_unstable();
                owners.dedup();
                for f in s.flows {
                    let alive = if f.owner_alive() { "alive" } else { "dead" };
                    let shared = if f.shared { " shared (the kernel serves it)" } else { "" };
                    println!(
                        "  {:<24} pid {:<8} {:<10} {alive}{shared}",
                        f.flow.to_string(),
                        f.owner_pid,
                        f.datapath.name()
                    );
                }
                for pid in owners {
                    if let Some((p, _)) = published.iter().find(|(p, _)| p.pid == pid) {
                        println!(
                            "  pid {pid:<8} {:<16} ring drops {}, checksum drops {}, to the kernel (IPPROTO_RAW) {}",
                            p.program(),
                            p.drops_no_buffer,
                            p.drops_checksum,
                            p.to_kernel
                        );
                    }
                }
            }
        }
    }
    Ok(())
}
