//! `exasock-stat`: lists the accelerated sockets of every exasock process in this network
//! namespace, in the original's formats (../shared/exasock-behaviour.md §7), from what each
//! process publishes (crates/stat-format) instead of the original's kernel module.
//!
//! `args` parses the command line, `stat_format::reader` reads the publications (and sweeps
//! dead processes'), `text` prints the original's formats, `json` prints `--json`.

mod args;
mod json;
mod text;

use stat_format::reader as source;

use args::{ArgsError, Options};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// The whole output for one look at the publications.
fn render(o: &Options, dir: &Path) -> String {
    let entries = source::read_all(dir, source::own_netns());
    if o.json {
        let chosen: Vec<&source::Entry> = match o.socket {
            Some(id) => text::find(&entries, id).into_iter().collect(),
            None => text::select(o, &entries),
        };
        return chosen.iter().map(|e| json::object(e) + "\n").collect();
    }
    match o.socket {
        Some(id) => text::single(o, id, &entries),
        None => text::list(o, &entries),
    }
}

fn main() -> ExitCode {
    let mut argv = std::env::args();
    let name = argv.next().unwrap_or_else(|| "exasock-stat".into());
    let rest: Vec<String> = argv.collect();
    let o = match args::parse(&rest) {
        Ok(o) => o,
        Err(ArgsError::Help) => {
            eprint!("{}", text::help(&name));
            return ExitCode::SUCCESS;
        }
        Err(ArgsError::Usage(message)) => {
            if let Some(m) = message {
                eprintln!("{m}");
            }
            eprint!("{}", text::usage(&name));
            return ExitCode::FAILURE;
        }
    };
    // EXASOCK_STAT_DIR: another run directory (tests); the default is the library's.
    let dir = std::env::var_os("EXASOCK_STAT_DIR").unwrap_or_else(|| stat_format::naming::DIR.into());
    let dir = Path::new(&dir);
    let Some(every) = o.watch else {
        print!("{}", render(&o, dir));
        return ExitCode::SUCCESS;
    };
    loop {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let mut out = std::io::stdout().lock();
        // As watch(1): clear, a title line with the interval, then the listing.
        let _ = write!(
            out,
            "\x1b[H\x1b[2JEvery {:.1}s: {} {}    ({} s since the epoch)\n{}",
            every.as_secs_f64(),
            name,
            rest.join(" "),
            now.as_secs(),
            render(&o, dir)
        );
        if out.flush().is_err() {
            return ExitCode::SUCCESS;
        }
        drop(out);
        std::thread::sleep(every);
    }
}
