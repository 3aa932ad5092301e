//! TCP options (RFC 9293, RFC 7323, RFC 2018): reading the option bytes of a segment
//! into [`TcpOptions`] and writing them back, padded with NOPs to a 4-byte boundary.
//!
//! Parsing follows Linux (`tcp_parse_options`): unknown options are skipped by their
//! length, a known option with the wrong length is ignored, a later option of the same
//! kind replaces an earlier one, and a length byte that is missing, below 2 or running
//! past the end stops parsing, keeping what was read before it. It therefore never
//! fails; validating values (e.g. window scale <= 14) is the TCP layer's job.

use crate::bytes::{get_u16, get_u32, set_u16, set_u32};
use crate::{Error, Result};

/// Option kinds.
pub mod kind {
    /// End of option list.
    pub const EOL: u8 = 0;
    /// No-operation (padding).
    pub const NOP: u8 = 1;
    /// Maximum segment size (SYN only).
    pub const MSS: u8 = 2;
    /// Window scale (SYN only).
    pub const WINDOW_SCALE: u8 = 3;
    /// SACK permitted (SYN only).
    pub const SACK_PERMITTED: u8 = 4;
    /// SACK blocks.
    pub const SACK: u8 = 5;
    /// Timestamps.
    pub const TIMESTAMP: u8 = 8;
}

/// Most option bytes a header can carry (data offset 15 => 60 - 20).
pub const MAX_LEN: usize = 40;
/// Most SACK blocks an option can carry (2 + 4 * 8 = 34 bytes).
pub const MAX_SACK_BLOCKS: usize = 4;

const MSS_LEN: usize = 4;
const WINDOW_SCALE_LEN: usize = 3;
const SACK_PERMITTED_LEN: usize = 2;
const TIMESTAMP_LEN: usize = 10;
const SACK_BASE_LEN: usize = 2;
const SACK_BLOCK_LEN: usize = 8;

/// One option as found in the option bytes: its kind and the bytes after the length
/// byte (empty for EOL and NOP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawOption<'a> {
    /// The option kind.
    pub kind: u8,
    /// The option's data, without kind and length bytes.
    pub data: &'a [u8],
}

/// Iterates over the options in a header's option bytes, stopping after EOL or at the
/// first option whose length byte is missing, below 2 or past the end
/// ([`is_malformed`](Self::is_malformed) then says so).
#[derive(Debug, Clone)]
pub struct RawOptionIter<'a> {
    rest: &'a [u8],
    malformed: bool,
}

impl<'a> RawOptionIter<'a> {
    /// Starts at the first option byte.
    pub fn new(options: &'a [u8]) -> RawOptionIter<'a> {
        RawOptionIter { rest: options, malformed: false }
    }

    /// Whether iteration stopped at a malformed length.
    pub fn is_malformed(&self) -> bool {
        self.malformed
    }
}

impl<'a> Iterator for RawOptionIter<'a> {
    type Item = RawOption<'a>;

    fn next(&mut self) -> Option<RawOption<'a>> {
        let (&kind, after_kind) = self.rest.split_first()?;
        match kind {
            kind::EOL => {
                self.rest = &[];
                Some(RawOption { kind, data: &[] })
            }
            kind::NOP => {
                self.rest = after_kind;
                Some(RawOption { kind, data: &[] })
            }
            _ => {
                let len = match after_kind.first() {
                    Some(&len) => usize::from(len),
                    None => 0,
                };
                if len < 2 || len > self.rest.len() {
                    self.malformed = true;
                    self.rest = &[];
                    return None;
                }
                let data = &self.rest[2..len];
                self.rest = &self.rest[len..];
                Some(RawOption { kind, data })
            }
        }
    }
}

/// The options a TCP implementation acts on, as plain fields.
///
/// SACK blocks fill the array from the front; `emit` skips `None` slots, so a repr
/// with holes re-parses with its blocks moved to the front.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpOptions {
    /// Maximum segment size.
    pub mss: Option<u16>,
    /// Window scale shift count (raw; RFC 7323 caps its use at 14).
    pub window_scale: Option<u8>,
    /// SACK permitted.
    pub sack_permitted: bool,
    /// SACK blocks as (left edge, right edge) sequence numbers.
    pub sack_blocks: [Option<(u32, u32)>; MAX_SACK_BLOCKS],
    /// Timestamps as (TSval, TSecr).
    pub timestamp: Option<(u32, u32)>,
}

impl TcpOptions {
    /// No options.
    pub const NONE: TcpOptions = TcpOptions {
        mss: None,
        window_scale: None,
        sack_permitted: false,
        sack_blocks: [None; MAX_SACK_BLOCKS],
        timestamp: None,
    };

    /// Reads the option bytes of a header (see the module doc for the rules).
    pub fn parse(options: &[u8]) -> TcpOptions {
        let mut out = TcpOptions::NONE;
        for opt in RawOptionIter::new(options) {
            let d = opt.data;
            match (opt.kind, d.len() + 2) {
                (kind::MSS, MSS_LEN) => out.mss = Some(get_u16(d, 0..2)),
                (kind::WINDOW_SCALE, WINDOW_SCALE_LEN) => out.window_scale = Some(d[0]),
                (kind::SACK_PERMITTED, SACK_PERMITTED_LEN) => out.sack_permitted = true,
                (kind::TIMESTAMP, TIMESTAMP_LEN) => {
                    out.timestamp = Some((get_u32(d, 0..4), get_u32(d, 4..8)));
                }
                (kind::SACK, len)
                    if len >= SACK_BASE_LEN + SACK_BLOCK_LEN
                        && (len - SACK_BASE_LEN).is_multiple_of(SACK_BLOCK_LEN) =>
                {
                    out.sack_blocks = [None; MAX_SACK_BLOCKS];
                    for (slot, block) in out.sack_blocks.iter_mut().zip(d.chunks_exact(SACK_BLOCK_LEN)) {
                        *slot = Some((get_u32(block, 0..4), get_u32(block, 4..8)));
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// Number of SACK blocks present.
    pub fn sack_block_count(&self) -> usize {
        self.sack_blocks.iter().flatten().count()
    }

    /// Whether no option is set.
    pub fn is_empty(&self) -> bool {
        self.encoded_len() == 0
    }

    /// Bytes [`emit`](Self::emit) writes, a multiple of 4 (may exceed [`MAX_LEN`], in
    /// which case emit fails).
    pub fn encoded_len(&self) -> usize {
        let mut len = 0;
        if self.mss.is_some() {
            len += 4;
        }
        if self.sack_permitted || self.timestamp.is_some() {
            len += if self.timestamp.is_some() { 12 } else { 4 };
        }
        if self.window_scale.is_some() {
            len += 4;
        }
        let blocks = self.sack_block_count();
        if blocks > 0 {
            len += 4 + SACK_BLOCK_LEN * blocks;
        }
        len
    }

    /// Writes the options in Linux's order (MSS; SACK-permitted and timestamps;
    /// window scale; SACK blocks), each group NOP-padded to 4 bytes, and returns the
    /// length written. Fails with [`Error::Malformed`] if they need more than 40 bytes
    /// and [`Error::Truncated`] if `buf` is shorter than [`encoded_len`](Self::encoded_len).
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.encoded_len();
        if len > MAX_LEN {
            return Err(Error::Malformed);
        }
        if buf.len() < len {
            return Err(Error::Truncated);
        }
        let mut at = 0;
        if let Some(mss) = self.mss {
            buf[at] = kind::MSS;
            buf[at + 1] = MSS_LEN as u8;
            set_u16(buf, at + 2..at + 4, mss);
            at += 4;
        }
        match (self.sack_permitted, self.timestamp) {
            (sack_permitted, Some((tsval, tsecr))) => {
                if sack_permitted {
                    buf[at] = kind::SACK_PERMITTED;
                    buf[at + 1] = SACK_PERMITTED_LEN as u8;
                } else {
                    buf[at] = kind::NOP;
                    buf[at + 1] = kind::NOP;
                }
                buf[at + 2] = kind::TIMESTAMP;
                buf[at + 3] = TIMESTAMP_LEN as u8;
                set_u32(buf, at + 4..at + 8, tsval);
                set_u32(buf, at + 8..at + 12, tsecr);
                at += 12;
            }
            (true, None) => {
                buf[at..at + 4].copy_from_slice(&[kind::NOP, kind::NOP, kind::SACK_PERMITTED, 2]);
                at += 4;
            }
            (false, None) => {}
        }
        if let Some(shift) = self.window_scale {
            buf[at..at + 4].copy_from_slice(&[kind::NOP, kind::WINDOW_SCALE, 3, shift]);
            at += 4;
        }
        let blocks = self.sack_block_count();
        if blocks > 0 {
            buf[at] = kind::NOP;
            buf[at + 1] = kind::NOP;
            buf[at + 2] = kind::SACK;
            buf[at + 3] = (SACK_BASE_LEN + SACK_BLOCK_LEN * blocks) as u8;
            at += 4;
            for &(left, right) in self.sack_blocks.iter().flatten() {
                set_u32(buf, at..at + 4, left);
                set_u32(buf, at + 4..at + 8, right);
                at += 8;
            }
        }
        debug_assert_eq!(at, len);
        Ok(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    #[test]
    fn linux_syn_options() {
        // MSS 1460, SACK permitted, TS 0x11223344/0, NOP, WS 7: Linux's SYN layout.
        let bytes = [
            0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x11, 0x22, 0x33, 0x44, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03,
            0x03, 0x07,
        ];
        let opts = TcpOptions::parse(&bytes);
        assert_eq!(
            opts,
            TcpOptions {
                mss: Some(1460),
                window_scale: Some(7),
                sack_permitted: true,
                sack_blocks: [None; 4],
                timestamp: Some((0x11223344, 0)),
            }
        );
        let mut out = [0u8; 40];
        assert_eq!(opts.emit(&mut out), Ok(20));
        assert_eq!(&out[..20], &bytes[..]);
    }

    #[test]
    fn each_option_alone() {
        let cases: [(TcpOptions, &[u8]); 5] = [
            (TcpOptions { mss: Some(536), ..TcpOptions::NONE }, &[2, 4, 2, 24]),
            (TcpOptions { window_scale: Some(14), ..TcpOptions::NONE }, &[1, 3, 3, 14]),
            (TcpOptions { sack_permitted: true, ..TcpOptions::NONE }, &[1, 1, 4, 2]),
            (TcpOptions { timestamp: Some((1, 2)), ..TcpOptions::NONE }, &[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]),
            (
                TcpOptions { sack_blocks: [Some((5, 9)), None, None, None], ..TcpOptions::NONE },
                &[1, 1, 5, 10, 0, 0, 0, 5, 0, 0, 0, 9],
            ),
        ];
        for (opts, bytes) in cases {
            let mut out = [0u8; 40];
            let n = opts.emit(&mut out).unwrap();
            assert_eq!(&out[..n], bytes);
            assert_eq!(TcpOptions::parse(bytes), opts);
        }
        assert_eq!(TcpOptions::NONE.encoded_len(), 0);
        assert!(TcpOptions::NONE.is_empty());
    }

    #[test]
    fn four_sack_blocks_fill_the_header() {
        let opts =
            TcpOptions { sack_blocks: [Some((1, 2)), Some((3, 4)), Some((5, 6)), Some((7, 8))], ..TcpOptions::NONE };
        assert_eq!(opts.encoded_len(), 36);
        let mut out = [0u8; 40];
        assert_eq!(opts.emit(&mut out), Ok(36));
        assert_eq!(TcpOptions::parse(&out[..36]), opts);
        // With timestamps too they no longer fit.
        let too_big = TcpOptions { timestamp: Some((1, 1)), ..opts };
        assert_eq!(too_big.emit(&mut out), Err(Error::Malformed));
        let three = TcpOptions { sack_blocks: [Some((1, 2)), Some((3, 4)), Some((5, 6)), None], ..too_big };
        assert_eq!(three.emit(&mut out), Ok(40));
        assert_eq!(TcpOptions::parse(&out), three);
        assert_eq!(three.emit(&mut out[..39]), Err(Error::Truncated));
    }

    #[test]
    fn lenient_like_linux() {
        // Unknown kind 30 (MPTCP) skipped by its length, EOL ends the list.
        let bytes = [30, 4, 0xaa, 0xbb, 2, 4, 0x05, 0xb4, 0, 3, 3, 9];
        assert_eq!(TcpOptions::parse(&bytes), TcpOptions { mss: Some(1460), ..TcpOptions::NONE });
        // MSS with the wrong length is ignored, the next option still read.
        let bytes = [2, 3, 5, 4, 2];
        assert_eq!(TcpOptions::parse(&bytes), TcpOptions { sack_permitted: true, ..TcpOptions::NONE });
        // A length below 2 or past the end stops parsing but keeps what came before.
        let bytes = [4, 2, 3, 1, 2, 4, 1, 1];
        assert_eq!(TcpOptions::parse(&bytes), TcpOptions { sack_permitted: true, ..TcpOptions::NONE });
        let bytes = [1, 3, 3, 7, 8, 10, 0, 0];
        assert_eq!(TcpOptions::parse(&bytes), TcpOptions { window_scale: Some(7), ..TcpOptions::NONE });
        let mut it = RawOptionIter::new(&[1, 2]);
        assert_eq!(it.next(), Some(RawOption { kind: 1, data: &[] }));
        assert_eq!(it.next(), None);
        assert!(it.is_malformed());
        // SACK with no blocks or a partial block is ignored.
        assert_eq!(TcpOptions::parse(&[5, 2]), TcpOptions::NONE);
        assert_eq!(TcpOptions::parse(&[5, 6, 0, 0, 0, 0]), TcpOptions::NONE);
        // A later option replaces an earlier one.
        assert_eq!(TcpOptions::parse(&[3, 3, 1, 3, 3, 2]).window_scale, Some(2));
        assert_eq!(TcpOptions::parse(&[]), TcpOptions::NONE);
    }

    fn arb_options() -> impl Strategy<Value = TcpOptions> {
        (
            proptest::option::of(any::<u16>()),
            proptest::option::of(any::<u8>()),
            any::<bool>(),
            proptest::collection::vec(any::<(u32, u32)>(), 0..=4),
            proptest::option::of(any::<(u32, u32)>()),
        )
            .prop_map(|(mss, window_scale, sack_permitted, blocks, timestamp)| {
                let mut sack_blocks = [None; 4];
                for (slot, b) in sack_blocks.iter_mut().zip(blocks) {
                    *slot = Some(b);
                }
                TcpOptions { mss, window_scale, sack_permitted, sack_blocks, timestamp }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn roundtrip(opts in arb_options()) {
            let mut out = [0u8; 64];
            match opts.emit(&mut out) {
                Ok(n) => {
                    prop_assert_eq!(n, opts.encoded_len());
                    prop_assert_eq!(n % 4, 0);
                    prop_assert_eq!(TcpOptions::parse(&out[..n]), opts);
                }
                Err(e) => {
                    prop_assert_eq!(e, Error::Malformed);
                    prop_assert!(opts.encoded_len() > MAX_LEN);
                }
            }
        }

        #[test]
        fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..=40)) {
            let opts = TcpOptions::parse(&bytes);
            let raw: Vec<RawOption> = RawOptionIter::new(&bytes).collect();
            prop_assert!(raw.len() <= bytes.len());
            let mut out = [0u8; 64];
            if let Ok(n) = opts.emit(&mut out) {
                prop_assert_eq!(TcpOptions::parse(&out[..n]), opts);
            }
        }
    }
}
