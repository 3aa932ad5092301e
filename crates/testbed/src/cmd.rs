//! Running the system tools the topology is made with (ip, ethtool, ss, sysctl).

use std::io;
use std::process::{Command, Stdio};

/// Runs `program args...` to completion; stdout on success, an error naming the command and
/// carrying its stderr otherwise.
pub fn command_output(program: &str, args: &[&str]) -> io::Result<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run {program}: {e}")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(io::Error::other(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Runs iproute2's `ip` with `args`.
pub fn ip(args: &[&str]) -> io::Result<String> {
    command_output("ip", args)
}
