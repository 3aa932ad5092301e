//! Gives libexasock_ext.so the soname programs record (libexasock_ext.so.1), as the original,
//! and compiles the C programs in examples/ against include/ (-Wall -Wextra -Werror, no link:
//! the library they link is this crate's output), so that a change to the headers that breaks
//! them fails the build. The namespace tests (crates/preload/tests/examples.rs) link and run
//! them. Without a C compiler the check is skipped with a warning.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libexasock_ext.so.1");
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("../..");
    let (examples, include) = (root.join("examples"), root.join("include"));
    println!("cargo:rerun-if-changed={}", examples.display());
    println!("cargo:rerun-if-changed={}", include.display());
    let Ok(entries) = std::fs::read_dir(&examples) else { return };
    let mut sources: Vec<PathBuf> =
        entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "c")).collect();
    sources.sort();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    for source in sources {
        println!("cargo:rerun-if-changed={}", source.display());
        let out = Command::new(&cc)
            .args(["-fsyntax-only", "-Wall", "-Wextra", "-Werror"])
            .arg(format!("-I{}", include.display()))
            .arg(&source)
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!("{} does not compile:\n{}", source.display(), String::from_utf8_lossy(&o.stderr)),
            Err(e) => {
                println!("cargo:warning=examples not compiled: cannot run {cc}: {e}");
                return;
            }
        }
    }
}
