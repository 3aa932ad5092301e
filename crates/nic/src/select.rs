//! Which datapath a process opens on an attached interface.
//!
//! An interface attached with `--datapath xdp` offers both: the first process binds AF_XDP
//! sockets to every RX queue, and any later one (the kernel lets one socket bind a queue) uses
//! AF_PACKET beside it, saying so in one line. `EXASOCK_DATAPATH` chooses per process:
//! `af_packet` always takes AF_PACKET; `xdp` (or `af_xdp`) takes AF_XDP or fails with the
//! reason, never falling back silently; unset or `auto` is the rule above.

use crate::af_packet::{AfPacketConfig, AfPacketPort};
use crate::af_xdp::{AfXdpConfig, AfXdpPort};
use crate::steering::Datapath;
use crate::Port;
use std::io;

/// The environment variable that chooses a process's datapath.
pub const ENV: &str = "EXASOCK_DATAPATH";

/// What a process asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// AF_XDP when the interface has the XDP program and its queues are free, else AF_PACKET.
    Auto,
    /// AF_PACKET only.
    AfPacket,
    /// AF_XDP or an error.
    AfXdp,
}

impl Request {
    /// Parses a value of `EXASOCK_DATAPATH`.
    pub fn parse(value: &str) -> Result<Request, String> {
        match value.trim() {
            "" | "auto" => Ok(Request::Auto),
            "af_packet" | "af-packet" | "packet" => Ok(Request::AfPacket),
            "xdp" | "af_xdp" | "af-xdp" => Ok(Request::AfXdp),
            other => Err(format!("{ENV}={other} is not a datapath: use af_packet, xdp or auto")),
        }
    }

    /// The request `EXASOCK_DATAPATH` makes (unset: `Auto`).
    pub fn from_env() -> Result<Request, String> {
        match std::env::var(ENV) {
            Ok(v) => Request::parse(&v),
            Err(std::env::VarError::NotPresent) => Ok(Request::Auto),
            Err(_) => Err(format!("{ENV} is not valid UTF-8")),
        }
    }
}

/// Opens the datapath `request` names on `iface` for the process whose anchor token is
/// `token`; returns the port and which datapath its flows must be claimed with.
pub fn open_port(iface: &str, request: Request, token: u64) -> io::Result<(Box<dyn Port>, Datapath)> {
    let xdp = crate::af_xdp::xdp_attached(iface);
    match (request, xdp) {
        (Request::AfPacket, _) | (Request::Auto, None) => {
            Ok((Box::new(AfPacketPort::open(iface, AfPacketConfig::default())?), Datapath::AfPacket))
        }
        (Request::AfXdp, None) => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "{ENV} asks for AF_XDP but {iface} has no XDP program: run `exasock-ctl attach {iface} --datapath xdp`"
            ),
        )),
        (_, Some(native)) => {
            // Zero-copy needs the program in driver mode: in SKB mode the kernel copies every
            // frame anyway, and asking would only print the copy-mode line in every process.
            let config =
                AfXdpConfig { busy_poll: native, zero_copy: native, owner_token: token, ..AfXdpConfig::default() };
            match AfXdpPort::open(iface, config) {
                Ok(port) => Ok((Box::new(port), Datapath::AfXdp)),
                Err(e) if request == Request::Auto && e.kind() == io::ErrorKind::ResourceBusy => {
                    eprintln!("exasock: {e}: this process uses AF_PACKET on {iface}");
                    Ok((Box::new(AfPacketPort::open(iface, AfPacketConfig::default())?), Datapath::AfPacket))
                }
                Err(e) => Err(e),
            }
        }
    }
}
