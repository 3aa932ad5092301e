//! Compiles the BPF programs in bpf/ with clang, for nic::bpf to embed.

use std::path::PathBuf;

include!("../../bpf/build_bpf.rs");

fn main() {
    let bpf_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bpf");
    let src = bpf_dir.join("exasock.bpf.c");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("exasock.bpf.o");
    for file in ["exasock.bpf.c", "flows.h", "build_bpf.rs"] {
        println!("cargo:rerun-if-changed={}", bpf_dir.join(file).display());
    }
    compile_bpf(&src, &out);
}
