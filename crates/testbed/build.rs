//! Compiles bpf/impair.bpf.c (the link impairment) with clang, for testbed::impair to embed.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bpf/impair.bpf.c");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("impair.bpf.o");
    println!("cargo:rerun-if-changed={}", src.display());
    // Debian keeps asm/types.h under the multiarch include directory.
    let multiarch = Command::new("gcc")
        .arg("-print-multiarch")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty());
    let mut clang = Command::new("clang");
    clang.args(["-O2", "-g", "-Wall", "-Werror", "-target", "bpf"]);
    if let Some(m) = multiarch {
        clang.arg(format!("-I/usr/include/{m}"));
    }
    clang.arg("-c").arg(&src).arg("-o").arg(&out);
    let status =
        clang.status().unwrap_or_else(|e| panic!("cannot run clang for {} ({e}): run scripts/setup.sh", src.display()));
    assert!(status.success(), "clang failed to compile {}", src.display());
}
