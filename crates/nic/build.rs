//! Compiles the BPF programs in bpf/ with clang, for nic::bpf to embed.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let bpf_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bpf");
    let src = bpf_dir.join("exasock.bpf.c");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("exasock.bpf.o");
    println!("cargo:rerun-if-changed={}", src.display());
    println!("cargo:rerun-if-changed={}", bpf_dir.join("flows.h").display());

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
    let status = clang.status().unwrap_or_else(|e| {
        panic!("cannot run clang to build the BPF programs ({e}): run scripts/setup.sh to install clang and libbpf-dev")
    });
    assert!(status.success(), "clang failed to compile {}", src.display());
}
