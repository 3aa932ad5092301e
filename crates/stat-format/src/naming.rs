//! Where publications live and how they are named: `<DIR>/<pid>-<start time>`, so that a file
//! whose pid is gone, or now names another process (a different start time), is recognised as
//! a dead process's and swept.

use std::io::Write;

/// The run directory (tmpfs, shared by every network namespace; each file names its own).
/// Mode 1777 as /tmp: any user's program may publish, none may remove another's file.
pub const DIR: &str = "/dev/shm/exasock-stat";

/// The file name of a process's publication, NUL-terminated in `buf` (for the raw syscalls of
/// the writer); returns the path's length without the NUL.
pub fn path_into(buf: &mut [u8; 96], pid: u32, start_time: u64) -> usize {
    let mut cursor = std::io::Cursor::new(&mut buf[..95]);
    let _ = write!(cursor, "{DIR}/{pid}-{start_time}");
    let n = cursor.position() as usize;
    buf[n] = 0;
    n
}

/// The (pid, start time) a publication's file name gives.
pub fn parse_name(name: &str) -> Option<(u32, u64)> {
    let (pid, start) = name.split_once('-')?;
    Some((pid.parse().ok()?, start.parse().ok()?))
}

/// The start time (clock ticks since boot) in the text of /proc/PID/stat: field 22, counted
/// after the command name's closing parenthesis (the name may hold spaces and parentheses).
pub fn start_time_of_stat(stat: &[u8]) -> Option<u64> {
    let after = stat.iter().rposition(|b| *b == b')')? + 1;
    let rest = std::str::from_utf8(&stat[after..]).ok()?;
    // Fields after the name start at 3 (state): 22 is the 20th of them.
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_start_times_parse_past_odd_program_names() {
        let mut buf = [0u8; 96];
        let n = path_into(&mut buf, 1234, 5678);
        let path = std::str::from_utf8(&buf[..n]).unwrap();
        assert_eq!(path, "/dev/shm/exasock-stat/1234-5678");
        assert_eq!(buf[n], 0);
        assert_eq!(parse_name("1234-5678"), Some((1234, 5678)));
        assert_eq!(parse_name("junk"), None);
        let stat = b"77 (a b) c) S 1 77 77 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 123456 1000 10";
        assert_eq!(start_time_of_stat(stat), Some(123456));
        let own = std::fs::read(format!("/proc/{}/stat", std::process::id())).unwrap();
        assert!(start_time_of_stat(&own).is_some());
    }
}
