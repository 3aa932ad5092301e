//! `exasock [--trace] [--no-warn] [--no-auto] CMD ARGS...`: runs CMD with the acceleration
//! library preloaded, as the original launcher script does: options first, the library found
//! in $EXASOCK_PATH (else beside this binary, else <prefix>/lib/exasock, then
//! <prefix>/lib64/exasock), prepended to LD_PRELOAD, then CMD replaces this process.
//!
//! Unlike the original there is no `--debug`: the original chose a debug build of the library
//! for its tracing, while here the one library traces (EXASOCK_TRACE) at the cost of one load
//! per call when off, and no build makes a second library; a flag that found nothing to
//! select would do nothing, so it is refused with the usage like any unknown option.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const LIBRARY: &str = "libexasock_preload.so";

const USAGE: &str = "Usage: exasock [--trace] [--no-warn] [--no-auto] <command> [args...]
  --trace     print each call on an accelerated socket to stderr, as strace (EXASOCK_TRACE=1)
  --no-warn   do not print exasock warnings (EXASOCK_NOWARN=1)
  --no-auto   do not accelerate sockets unless asked to (EXASOCK_DEFAULT_DISABLE=1)";

/// What the command line asks for.
#[derive(Debug, Default, PartialEq, Eq)]
struct Options {
    trace: bool,
    no_warn: bool,
    no_auto: bool,
    command: Vec<OsString>,
}

/// Parses options up to the first non-option word; `Err` carries the usage text.
fn parse(args: Vec<OsString>) -> Result<Options, String> {
    let mut o = Options::default();
    let mut args = args.into_iter();
    for arg in args.by_ref() {
        match arg.to_str() {
            Some("--trace") => o.trace = true,
            Some("--no-warn") => o.no_warn = true,
            Some("--no-auto") => o.no_auto = true,
            Some("--") => break,
            Some(s) if s.starts_with('-') => return Err(USAGE.to_string()),
            _ => {
                o.command.push(arg);
                break;
            }
        }
    }
    o.command.extend(args);
    if o.command.is_empty() {
        return Err(USAGE.to_string());
    }
    Ok(o)
}

/// Where the library may be, in the order searched.
fn search_dirs() -> Vec<PathBuf> {
    if let Some(p) = std::env::var_os("EXASOCK_PATH") {
        return vec![PathBuf::from(p)];
    }
    let mut dirs = Vec::new();
    if let Some(bin_dir) = std::env::current_exe().ok().and_then(|p| p.parent().map(Path::to_path_buf)) {
        dirs.push(bin_dir.clone());
        if let Some(prefix) = bin_dir.parent() {
            dirs.push(prefix.join("lib/exasock"));
            dirs.push(prefix.join("lib64/exasock"));
        }
    }
    dirs
}

fn find(name: &str) -> Option<PathBuf> {
    search_dirs().into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

fn main() -> ExitCode {
    let o = match parse(std::env::args_os().skip(1).collect()) {
        Ok(o) => o,
        Err(usage) => {
            eprintln!("{usage}");
            return ExitCode::from(1);
        }
    };
    let Some(library) = find(LIBRARY) else {
        eprintln!("Error: could not find {LIBRARY}");
        eprintln!("Please set EXASOCK_PATH to the directory containing {LIBRARY}");
        return ExitCode::from(1);
    };
    let mut preload = OsString::from(library);
    if let Some(existing) = std::env::var_os("LD_PRELOAD").filter(|v| !v.is_empty()) {
        preload.push(" ");
        preload.push(existing);
    }
    let mut cmd = Command::new(&o.command[0]);
    cmd.args(&o.command[1..]).env("LD_PRELOAD", preload);
    if o.trace {
        cmd.env("EXASOCK_TRACE", "1");
    }
    if o.no_warn {
        cmd.env("EXASOCK_NOWARN", "1");
    }
    if o.no_auto {
        cmd.env("EXASOCK_DEFAULT_DISABLE", "1");
    }
    let err = cmd.exec();
    eprintln!("exasock: cannot run {}: {err}", o.command[0].to_string_lossy());
    ExitCode::from(if err.kind() == std::io::ErrorKind::NotFound { 127 } else { 126 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<OsString> {
        s.iter().map(OsString::from).collect()
    }

    #[test]
    fn options_come_first_and_the_rest_is_the_command() {
        let o = parse(args(&["--no-warn", "--trace", "nc", "-u", "-l", "1234"])).unwrap();
        assert!(o.no_warn && o.trace && !o.no_auto);
        assert_eq!(o.command, args(&["nc", "-u", "-l", "1234"]));
        let o = parse(args(&["--", "--weird-program"])).unwrap();
        assert_eq!(o.command, args(&["--weird-program"]));
    }

    #[test]
    fn an_unknown_option_or_no_command_gives_usage() {
        assert!(parse(args(&["-x", "nc"])).unwrap_err().starts_with("Usage: exasock"));
        assert!(parse(args(&["--no-auto"])).is_err());
        assert!(parse(args(&["--debug", "nc"])).is_err(), "no debug library is built: no --debug");
        assert!(parse(args(&[])).is_err());
    }
}
