//! Compiles bpf/impair.bpf.c (the link impairment) with clang, for testbed::impair to embed.

use std::path::PathBuf;

include!("../../bpf/build_bpf.rs");

fn main() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bpf/impair.bpf.c");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("impair.bpf.o");
    println!("cargo:rerun-if-changed={}", src.display());
    println!(
        "cargo:rerun-if-changed={}",
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bpf/build_bpf.rs").display()
    );
    compile_bpf(&src, &out);
}
