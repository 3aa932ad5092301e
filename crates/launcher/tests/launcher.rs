//! The launcher as a user runs it: where it looks for the library, what it sets, what it says.

use std::process::Command;

const EXASOCK: &str = env!("CARGO_BIN_EXE_exasock");

fn run(env: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    let out = Command::new(EXASOCK)
        .env_remove("EXASOCK_PATH")
        .env_remove("LD_PRELOAD")
        .envs(env.iter().copied())
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// A directory holding a file named like the library (any ELF will do: we only read LD_PRELOAD
/// in `env`, and ld.so skips a file it cannot preload with a message).
fn lib_dir(name: &str) -> tempdir::Dir {
    let dir = tempdir::Dir::new();
    std::fs::copy("/bin/true", dir.path().join(name)).unwrap();
    dir
}

mod tempdir {
    /// A directory removed on drop.
    pub struct Dir(std::path::PathBuf);
    impl Dir {
        pub fn new() -> Dir {
            let p = std::env::temp_dir().join(format!(
                "exasock-launcher-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
        pub fn path(&self) -> &std::path::Path {
            &self.0
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[test]
fn prepends_the_library_from_exasock_path_and_sets_the_flags() {
    let dir = lib_dir("libexasock_preload.so");
    let path = dir.path().to_str().unwrap();
    let (code, out, _) = run(
        &[("EXASOCK_PATH", path), ("LD_PRELOAD", "/other.so")],
        &[
            "--no-warn",
            "--no-auto",
            "sh",
            "-c",
            "echo \"$LD_PRELOAD|$EXASOCK_NOWARN|$EXASOCK_DEFAULT_DISABLE|${EXASOCK_TRACE:-}\"",
        ],
    );
    assert_eq!(code, 0);
    assert_eq!(out.trim(), format!("{path}/libexasock_preload.so /other.so|1|1|"));
}

#[test]
fn trace_sets_exasock_trace_with_the_one_library() {
    let dir = lib_dir("libexasock_preload.so");
    let path = dir.path().to_str().unwrap();
    let (code, out, _) =
        run(&[("EXASOCK_PATH", path)], &["--trace", "sh", "-c", "echo \"$LD_PRELOAD|$EXASOCK_TRACE\""]);
    assert_eq!(code, 0);
    assert_eq!(out.trim(), format!("{path}/libexasock_preload.so|1"));
}

#[test]
fn a_missing_library_says_how_to_fix_it() {
    let dir = tempdir::Dir::new();
    let (code, _, err) = run(&[("EXASOCK_PATH", dir.path().to_str().unwrap())], &["true"]);
    assert_eq!(code, 1);
    assert!(err.contains("Error: could not find libexasock_preload.so"), "{err}");
    assert!(err.contains("Please set EXASOCK_PATH"), "{err}");
}

#[test]
fn bad_options_print_usage_and_a_missing_command_says_so() {
    for bad in ["-z", "--debug"] {
        let (code, _, err) = run(&[], &[bad, "true"]);
        assert_eq!(code, 1);
        assert!(err.starts_with("Usage: exasock"), "{err}");
    }
    let dir = lib_dir("libexasock_preload.so");
    let (code, _, err) = run(&[("EXASOCK_PATH", dir.path().to_str().unwrap())], &["no-such-program-xyz"]);
    assert_eq!(code, 127);
    assert!(err.contains("cannot run no-such-program-xyz"), "{err}");
}
