// Compiling a BPF program with clang, shared by the build scripts that embed one
// (crates/nic/build.rs: exasock.bpf.c; crates/testbed/build.rs: impair.bpf.c) through
// `include!`. Panics with what to do when clang is missing or the program does not compile.

/// Compiles `src` to the BPF object `out` (`-O2 -g -Wall -Werror -target bpf`).
fn compile_bpf(src: &std::path::Path, out: &std::path::Path) {
    // Debian keeps asm/types.h under the multiarch include directory.
    let multiarch = std::process::Command::new("gcc")
        .arg("-print-multiarch")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty());
    let mut clang = std::process::Command::new("clang");
    clang.args(["-O2", "-g", "-Wall", "-Werror", "-target", "bpf"]);
    if let Some(m) = multiarch {
        clang.arg(format!("-I/usr/include/{m}"));
    }
    clang.arg("-c").arg(src).arg("-o").arg(out);
    let status = clang.status().unwrap_or_else(|e| {
        panic!("cannot run clang to build {} ({e}): run scripts/setup.sh to install clang and libbpf-dev", src.display())
    });
    assert!(status.success(), "clang failed to compile {}", src.display());
}
