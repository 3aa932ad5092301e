//! The few ethtool ioctls the control plane needs: offload flags, driver name, driver stats.

use std::ffi::CStr;
use std::io;

const ETHTOOL_GDRVINFO: u32 = 0x03;
const ETHTOOL_GSTRINGS: u32 = 0x1b;
const ETHTOOL_GSTATS: u32 = 0x1d;
const ETH_SS_STATS: u32 = 1;
const ETH_GSTRING_LEN: usize = 32;

/// Runs SIOCETHTOOL on `iface` with `data` as the ethtool command buffer.
///
/// # Safety
/// `data` must point to a buffer laid out as the command in its first u32 expects.
unsafe fn ioctl(iface: &str, data: *mut libc::c_void) -> io::Result<()> {
    let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut ifr: libc::ifreq = std::mem::zeroed();
    for (dst, src) in ifr.ifr_name.iter_mut().take(libc::IFNAMSIZ - 1).zip(iface.bytes()) {
        *dst = src as libc::c_char;
    }
    ifr.ifr_ifru.ifru_data = data.cast();
    let r = libc::ioctl(fd, libc::SIOCETHTOOL, &mut ifr);
    let err = io::Error::last_os_error();
    libc::close(fd);
    if r < 0 {
        Err(err)
    } else {
        Ok(())
    }
}

/// A get/set of one `struct ethtool_value` (GGRO/SGRO, GTSO, GFLAGS/SFLAGS...): returns `data`.
pub(crate) fn value(iface: &str, cmd: u32, data: u32) -> io::Result<u32> {
    let mut v = [cmd, data];
    // SAFETY: struct ethtool_value is { u32 cmd; u32 data; }.
    unsafe { ioctl(iface, v.as_mut_ptr().cast())? };
    Ok(v[1])
}

/// The driver's name and how many statistics it reports.
pub(crate) fn driver(iface: &str) -> io::Result<(String, u32)> {
    // struct ethtool_drvinfo: cmd, driver[32], version[32], fw_version[32], bus_info[32],
    // erom_version[32], reserved2[12], n_priv_flags, n_stats, testinfo_len, eedump_len, regdump_len.
    let mut buf = [0u32; 49];
    buf[0] = ETHTOOL_GDRVINFO;
    // SAFETY: buf is large enough for struct ethtool_drvinfo (196 bytes).
    unsafe { ioctl(iface, buf.as_mut_ptr().cast())? };
    let bytes: Vec<u8> = buf.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let name = CStr::from_bytes_until_nul(&bytes[4..36]).map(|c| c.to_string_lossy().into_owned()).unwrap_or_default();
    let n_stats = u32::from_ne_bytes(bytes[4 + 160 + 12 + 4..4 + 160 + 12 + 8].try_into().unwrap());
    Ok((name, n_stats))
}

/// The driver's statistic named `name`, if it has one.
pub(crate) fn stat(iface: &str, name: &str) -> io::Result<Option<u64>> {
    let (_, n) = driver(iface)?;
    let n = n as usize;
    // struct ethtool_gstrings: cmd, string_set, len, then len * 32 bytes.
    let mut strings = vec![0u8; 12 + n * ETH_GSTRING_LEN];
    strings[0..4].copy_from_slice(&ETHTOOL_GSTRINGS.to_ne_bytes());
    strings[4..8].copy_from_slice(&ETH_SS_STATS.to_ne_bytes());
    strings[8..12].copy_from_slice(&(n as u32).to_ne_bytes());
    // SAFETY: the buffer holds the header and n strings.
    unsafe { ioctl(iface, strings.as_mut_ptr().cast())? };
    let Some(index) = (0..n).find(|i| {
        let s = &strings[12 + i * ETH_GSTRING_LEN..12 + (i + 1) * ETH_GSTRING_LEN];
        CStr::from_bytes_until_nul(s).is_ok_and(|c| c.to_bytes() == name.as_bytes())
    }) else {
        return Ok(None);
    };
    // struct ethtool_stats: cmd, n_stats, then n u64s (8-byte aligned at offset 8).
    let mut stats = vec![0u64; 1 + n];
    let mut header = [0u8; 8];
    header[..4].copy_from_slice(&ETHTOOL_GSTATS.to_ne_bytes());
    header[4..].copy_from_slice(&(n as u32).to_ne_bytes());
    stats[0] = u64::from_ne_bytes(header);
    // SAFETY: the buffer holds the header and n u64 values.
    unsafe { ioctl(iface, stats.as_mut_ptr().cast())? };
    Ok(Some(stats[1 + index]))
}

/// The interface's RX-only and combined channel counts (ETHTOOL_GCHANNELS), whose sum is its
/// number of RX queues.
pub(crate) fn channels(iface: &str) -> io::Result<(u32, u32)> {
    const ETHTOOL_GCHANNELS: u32 = 0x3c;
    // struct ethtool_channels: cmd, max_rx, max_tx, max_other, max_combined, rx_count,
    // tx_count, other_count, combined_count.
    let mut buf = [0u32; 9];
    buf[0] = ETHTOOL_GCHANNELS;
    // SAFETY: buf is laid out as struct ethtool_channels.
    unsafe { ioctl(iface, buf.as_mut_ptr().cast())? };
    Ok((buf[5], buf[8]))
}
