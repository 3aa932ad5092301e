//! An impaired link: loss, duplication and reordering on one veth, per direction.
//!
//! bpf/impair.bpf.c runs on tc ingress and egress of the interface (here: the peer's veth, so the
//! accelerated side is untouched and the same link serves kernel baselines and exasock runs).
//! Its decisions are drawn from a seed kept in a map, so the same seed and the same traffic give
//! the same drops, duplicates and reorderings; its counters say what it did. The file comment of
//! the BPF program describes the reordering (a frame is held and sent right after the next
//! compatible frame of its direction).

use aya::maps::{Array, MapData};
use aya::programs::{SchedClassifier, TcAttachType};
use aya::{Ebpf, EbpfLoader, Pod};
use std::fmt;
use std::io;

/// Which way across the topology's link a setting applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Frames from the accelerated side to the peer (the peer veth's ingress).
    ToPeer,
    /// Frames from the peer to the accelerated side (the peer veth's egress).
    FromPeer,
}

impl Direction {
    fn index(self) -> u32 {
        match self {
            Direction::ToPeer => 0,
            Direction::FromPeer => 1,
        }
    }

    /// Both directions.
    pub const BOTH: [Direction; 2] = [Direction::ToPeer, Direction::FromPeer];
}

/// Which frames may be impaired; the others pass untouched and draw nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only frames of this ethertype (e.g. 0x0800 leaves ARP alone).
    pub ethertype: Option<u16>,
    /// Only IPv4 frames of this protocol (6 TCP, 17 UDP, 1 ICMP).
    pub ip_proto: Option<u8>,
    /// Only frames of at least this many bytes (Ethernet header included).
    pub min_len: u32,
    /// Only frames of at most this many bytes.
    pub max_len: Option<u32>,
    /// Leave pure TCP ACKs (no payload, no SYN, FIN or RST) alone.
    pub spare_pure_acks: bool,
}

/// What to do to one direction's frames; rates are fractions in [0, 1].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Impairment {
    /// Share of frames dropped.
    pub loss: f64,
    /// Share of frames sent twice.
    pub duplicate: f64,
    /// Share of frames held back and delivered after the next compatible frame.
    pub reorder: f64,
    /// Seed of the decisions; each direction mixes in its own index.
    pub seed: u64,
    /// Which frames are eligible.
    pub filter: Filter,
}

impl Impairment {
    /// No impairment: every frame passes.
    pub fn none() -> Impairment {
        Impairment::default()
    }
}

/// What the program did in one direction, since its impairment was last set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImpairStats {
    /// Frames examined (the program's own duplicates excluded).
    pub seen: u64,
    /// Frames that passed the filter and drew a decision.
    pub selected: u64,
    /// Frames dropped.
    pub dropped: u64,
    /// Frames sent twice.
    pub duplicated: u64,
    /// Frames delivered after a frame that followed them.
    pub reordered: u64,
    /// Frames chosen for reordering that stayed in order (slot busy, GSO, not IPv4, too long).
    pub held_over: u64,
}

impl fmt::Display for ImpairStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seen {} selected {} dropped {} duplicated {} reordered {} held-over {}",
            self.seen, self.selected, self.dropped, self.duplicated, self.reordered, self.held_over
        )
    }
}

/// `struct impair_config` of bpf/impair.bpf.c.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct RawConfig {
    seed: u64,
    loss_ppm: u32,
    dup_ppm: u32,
    reorder_ppm: u32,
    min_len: u32,
    max_len: u32,
    ethertype: u16,
    ip_proto: u8,
    spare_pure_acks: u8,
}

/// `struct impair_stats` of bpf/impair.bpf.c.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct RawStats {
    draws: u64,
    seen: u64,
    dropped: u64,
    duplicated: u64,
    reordered: u64,
    held_over: u64,
}

// SAFETY: C layouts of plain integers with no padding (the sizes add up to the alignment).
unsafe impl Pod for RawConfig {}
// SAFETY: as above.
unsafe impl Pod for RawStats {}

const _: () = assert!(std::mem::size_of::<RawConfig>() == 32);

fn ppm(rate: f64, what: &str) -> io::Result<u32> {
    if !(0.0..=1.0).contains(&rate) || rate.is_nan() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{what} rate {rate} is not within 0..=1")));
    }
    Ok((rate * 1e6).round() as u32)
}

impl RawConfig {
    fn from(imp: &Impairment, dir: Direction) -> io::Result<RawConfig> {
        Ok(RawConfig {
            // Each direction gets its own stream of decisions from the one seed.
            seed: imp.seed ^ (u64::from(dir.index()) << 63 | u64::from(dir.index())),
            loss_ppm: ppm(imp.loss, "loss")?,
            dup_ppm: ppm(imp.duplicate, "duplication")?,
            reorder_ppm: ppm(imp.reorder, "reordering")?,
            min_len: imp.filter.min_len,
            max_len: imp.filter.max_len.unwrap_or(0),
            ethertype: imp.filter.ethertype.unwrap_or(0),
            ip_proto: imp.filter.ip_proto.unwrap_or(0),
            spare_pure_acks: imp.filter.spare_pure_acks.into(),
        })
    }
}

/// The impairment program attached to one interface, ingress and egress. Dropping it detaches
/// the programs (their TCX links belong to it).
pub struct Impairer {
    ebpf: Ebpf,
}

impl fmt::Debug for Impairer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Impairer")
    }
}

fn object() -> &'static [u8] {
    #[repr(C, align(8))]
    struct Aligned<B: ?Sized>(B);
    static OBJECT: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/impair.bpf.o")));
    &OBJECT.0
}

fn bpf_err(what: &str, e: impl fmt::Display) -> io::Error {
    io::Error::other(format!("impairment: {what}: {e}"))
}

impl Impairer {
    /// Loads the program and attaches it to `iface` of the calling thread's network namespace,
    /// both directions, impairing nothing until [`Impairer::set`].
    pub fn attach(iface: &str) -> io::Result<Impairer> {
        let mut ebpf = EbpfLoader::new().load(object()).map_err(|e| bpf_err("cannot load", format!("{e:#}")))?;
        for (name, kind) in [("impair_ingress", TcAttachType::Ingress), ("impair_egress", TcAttachType::Egress)] {
            let prog: &mut SchedClassifier = ebpf
                .program_mut(name)
                .ok_or_else(|| bpf_err(name, "not in the object"))?
                .try_into()
                .map_err(|e| bpf_err(name, e))?;
            prog.load().map_err(|e| bpf_err(&format!("{name} rejected"), e))?;
            prog.attach(iface, kind).map_err(|e| bpf_err(&format!("cannot attach {name} to {iface}"), e))?;
        }
        Ok(Impairer { ebpf })
    }

    /// Applies `imp` to the frames going `dir` from now on. The direction's counters and its
    /// stream of decisions start again from zero, so the same seed replays the same decisions.
    pub fn set(&mut self, dir: Direction, imp: &Impairment) -> io::Result<()> {
        let raw = RawConfig::from(imp, dir)?;
        let map = self.ebpf.map_mut("impair_stats").ok_or_else(|| bpf_err("impair_stats", "no such map"))?;
        let mut stats: Array<&mut MapData, RawStats> = Array::try_from(map).map_err(|e| bpf_err("impair_stats", e))?;
        stats.set(dir.index(), RawStats::default(), 0).map_err(|e| bpf_err("impair_stats", e))?;
        let map = self.ebpf.map_mut("impair_config").ok_or_else(|| bpf_err("impair_config", "no such map"))?;
        let mut config: Array<&mut MapData, RawConfig> =
            Array::try_from(map).map_err(|e| bpf_err("impair_config", e))?;
        config.set(dir.index(), raw, 0).map_err(|e| bpf_err("impair_config", e))
    }

    /// What the program has done to the frames going `dir`.
    pub fn stats(&self, dir: Direction) -> io::Result<ImpairStats> {
        let map = self.ebpf.map("impair_stats").ok_or_else(|| bpf_err("impair_stats", "no such map"))?;
        let stats: Array<&MapData, RawStats> = Array::try_from(map).map_err(|e| bpf_err("impair_stats", e))?;
        let raw = stats.get(&dir.index(), 0).map_err(|e| bpf_err("impair_stats", e))?;
        Ok(ImpairStats {
            seen: raw.seen,
            selected: raw.draws,
            dropped: raw.dropped,
            duplicated: raw.duplicated,
            reordered: raw.reordered,
            held_over: raw.held_over,
        })
    }
}

/// Parses a rate as the shell flags give it: "5%", "0.5%" or a bare number of percent.
pub fn parse_percent(text: &str) -> Result<f64, String> {
    let number = text.strip_suffix('%').unwrap_or(text);
    let pct: f64 = number.parse().map_err(|_| format!("not a percentage: {text}"))?;
    if !(0.0..=100.0).contains(&pct) {
        return Err(format!("percentage out of range 0-100: {text}"));
    }
    Ok(pct / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_parse_as_fractions() {
        assert_eq!(parse_percent("5%"), Ok(0.05));
        assert_eq!(parse_percent("0.5%"), Ok(0.005));
        assert_eq!(parse_percent("2"), Ok(0.02));
        assert!(parse_percent("101%").is_err());
        assert!(parse_percent("-1%").is_err());
        assert!(parse_percent("five").is_err());
    }

    #[test]
    fn rates_outside_zero_to_one_are_refused() {
        let bad = Impairment { loss: 1.5, ..Impairment::none() };
        assert!(RawConfig::from(&bad, Direction::ToPeer).is_err());
        let good = Impairment { loss: 0.05, duplicate: 0.01, reorder: 1.0, ..Impairment::none() };
        let raw = RawConfig::from(&good, Direction::FromPeer).unwrap();
        assert_eq!((raw.loss_ppm, raw.dup_ppm, raw.reorder_ppm), (50_000, 10_000, 1_000_000));
    }

    #[test]
    fn directions_draw_from_different_seeds() {
        let imp = Impairment { seed: 42, ..Impairment::none() };
        let a = RawConfig::from(&imp, Direction::ToPeer).unwrap().seed;
        let b = RawConfig::from(&imp, Direction::FromPeer).unwrap().seed;
        assert_ne!(a, b);
    }
}
