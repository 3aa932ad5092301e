//! The command line, parsed as the original's getopt_long(":cltueis:h") did (short options
//! bundle, `-s` takes the next word or the rest of its own, words that are not options are
//! ignored), with `--socket` taking its argument (the original declared it without one) and
//! two options of ours: `--json` and `--watch [SECONDS]`.

use std::time::Duration;

/// A socket named on the command line: `-s PID:FD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketId {
    /// Its process.
    pub pid: u32,
    /// Its descriptor in that process.
    pub fd: u32,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Options {
    /// -c: connected sockets.
    pub connected: bool,
    /// -l: listening sockets (unconnected UDP counts as listening, as in the original).
    pub listening: bool,
    /// -t: TCP.
    pub tcp: bool,
    /// -u: UDP.
    pub udp: bool,
    /// -e: User, PID:FD, Program.
    pub extend: bool,
    /// -i: internal diagnostics.
    pub internal: bool,
    /// -s PID:FD: one socket.
    pub socket: Option<SocketId>,
    /// --json: one JSON object per socket instead of the table.
    pub json: bool,
    /// --watch [SECONDS]: redraw every so often until interrupted.
    pub watch: Option<Duration>,
}

/// Why the command line is refused, or that help was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgsError {
    /// -h: the help text, exit 0.
    Help,
    /// Usage, exit 1, after `message` (if any) on stderr.
    Usage(Option<&'static str>),
}

/// The default refresh of `--watch` with no seconds given, as watch(1)'s.
pub const WATCH_DEFAULT: Duration = Duration::from_secs(2);

/// Parses the arguments after the program name, then applies the original's defaults (no
/// -c/-l: both; no -t/-u: both) and its rule that -s goes with none of -c, -l, -t, -u.
pub fn parse(args: &[String]) -> Result<Options, ArgsError> {
    let mut o = Options::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            break;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let (name, value) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            match name {
                "connected" => o.connected = true,
                "listening" => o.listening = true,
                "tcp" => o.tcp = true,
                "udp" => o.udp = true,
                "extend" => o.extend = true,
                "internal" => o.internal = true,
                "help" => return Err(ArgsError::Help),
                "json" => o.json = true,
                "socket" => {
                    let v = match value {
                        Some(v) => v,
                        None if i < args.len() => {
                            i += 1;
                            args[i - 1].clone()
                        }
                        None => return Err(ArgsError::Usage(None)),
                    };
                    o.socket = Some(parse_socket(&v)?);
                }
                "watch" => {
                    // The seconds are optional: `--watch=N`, or a number as the next word.
                    let v = match value {
                        Some(v) => Some(v),
                        None if args.get(i).is_some_and(|a| a.parse::<f64>().is_ok()) => {
                            i += 1;
                            Some(args[i - 1].clone())
                        }
                        None => None,
                    };
                    let every = match v {
                        None => WATCH_DEFAULT,
                        Some(v) => match v.parse::<f64>() {
                            Ok(s) if s > 0.0 && s.is_finite() => Duration::from_secs_f64(s),
                            _ => return Err(ArgsError::Usage(Some("invalid --watch interval"))),
                        },
                    };
                    o.watch = Some(every);
                }
                _ => return Err(ArgsError::Usage(None)),
            }
            continue;
        }
        let Some(shorts) = arg.strip_prefix('-').filter(|s| !s.is_empty()) else {
            // Not an option: getopt moves it aside and the original never looks at it.
            continue;
        };
        for (at, c) in shorts.char_indices() {
            match c {
                'c' => o.connected = true,
                'l' => o.listening = true,
                't' => o.tcp = true,
                'u' => o.udp = true,
                'e' => o.extend = true,
                'i' => o.internal = true,
                'h' => return Err(ArgsError::Help),
                's' => {
                    let rest = &shorts[at + 1..];
                    let v = if !rest.is_empty() {
                        rest.to_string()
                    } else if i < args.len() {
                        i += 1;
                        args[i - 1].clone()
                    } else {
                        return Err(ArgsError::Usage(None));
                    };
                    o.socket = Some(parse_socket(&v)?);
                    break;
                }
                _ => return Err(ArgsError::Usage(None)),
            }
        }
    }
    if o.socket.is_some() {
        if o.connected || o.listening || o.tcp || o.udp {
            return Err(ArgsError::Usage(None));
        }
    } else {
        if !o.connected && !o.listening {
            o.connected = true;
            o.listening = true;
        }
        if !o.tcp && !o.udp {
            o.tcp = true;
            o.udp = true;
        }
    }
    Ok(o)
}

/// `PID:FD` as the original's parse_arg_socket (strtok on ':', each part strtoul base 0),
/// with its messages.
fn parse_socket(arg: &str) -> Result<SocketId, ArgsError> {
    let arg = arg.trim_start_matches(':');
    let invalid = ArgsError::Usage(Some("invalid socket identifier"));
    if arg.is_empty() {
        return Err(invalid);
    }
    let (pid, fd) = match arg.split_once(':') {
        Some((p, f)) if !f.is_empty() => (p, f),
        _ => return Err(invalid),
    };
    let pid = strtoul_u32(pid).ok_or(ArgsError::Usage(Some("invalid PID value in socket identifier")))?;
    let fd = strtoul_u32(fd).ok_or(ArgsError::Usage(Some("invalid FD value in socket identifier")))?;
    Ok(SocketId { pid, fd })
}

/// strtoul(s, &end, 0) that must consume all of `s` and fit 32 bits: leading blanks, an
/// optional `+`, then hex (`0x`), octal (leading `0`) or decimal digits.
fn strtoul_u32(s: &str) -> Option<u32> {
    let s = s.trim_start().strip_prefix('+').unwrap_or(s.trim_start());
    let (digits, radix) = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (h, 16)
    } else if s.len() > 1 && s.starts_with('0') {
        (&s[1..], 8)
    } else {
        (s, 10)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok().and_then(|v| u32::try_from(v).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(a: &[&str]) -> Result<Options, ArgsError> {
        parse(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn defaults_and_bundles() {
        let o = p(&[]).unwrap();
        assert!(o.connected && o.listening && o.tcp && o.udp && !o.extend && !o.internal);
        let o = p(&["-lte", "stray"]).unwrap();
        assert!(!o.connected && o.listening && o.tcp && !o.udp && o.extend);
        assert_eq!(p(&["-x"]), Err(ArgsError::Usage(None)));
        assert_eq!(p(&["-eh"]), Err(ArgsError::Help));
    }

    #[test]
    fn the_socket_option_takes_its_argument_in_every_spelling() {
        let want = Some(SocketId { pid: 12, fd: 3 });
        for a in [&["-s", "12:3"][..], &["-s12:3"], &["--socket", "12:3"], &["--socket=12:3"], &["-eis", "0xc:03"]] {
            assert_eq!(p(a).unwrap().socket, want, "{a:?}");
        }
        assert_eq!(p(&["-s"]), Err(ArgsError::Usage(None)));
        assert_eq!(p(&["-s", "12:3", "-t"]), Err(ArgsError::Usage(None)), "-s goes alone");
        assert_eq!(p(&["-s", "12"]), Err(ArgsError::Usage(Some("invalid socket identifier"))));
        assert_eq!(p(&["-s", "x:1"]), Err(ArgsError::Usage(Some("invalid PID value in socket identifier"))));
        assert_eq!(p(&["-s", "1:99999999999"]), Err(ArgsError::Usage(Some("invalid FD value in socket identifier"))));
    }

    #[test]
    fn json_and_watch() {
        let o = p(&["--json", "--watch"]).unwrap();
        assert!(o.json);
        assert_eq!(o.watch, Some(WATCH_DEFAULT));
        assert_eq!(p(&["--watch", "0.5", "-u"]).unwrap().watch, Some(Duration::from_millis(500)));
        assert_eq!(p(&["--watch=3"]).unwrap().watch, Some(Duration::from_secs(3)));
        assert!(p(&["--watch=0"]).is_err());
    }
}
