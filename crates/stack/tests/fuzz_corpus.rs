//! Replays the TCP fuzz corpus (fuzz/corpus/<target>/) through `stack::fuzzing`, so every input
//! the fuzzer ever kept stays a regression test where cargo-fuzz is not installed.

use std::fs;
use std::path::Path;

#[test]
fn replay_corpus() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    for (target, entry) in stack::fuzzing::TARGETS {
        let dir = corpus.join(target);
        let mut files: Vec<_> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("corpus directory {} is missing: {e}", dir.display()))
            .map(|e| e.expect("readable directory entry").path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "corpus directory for `{target}` is empty: nothing would be tested");
        for path in &files {
            entry(&fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())));
        }
        println!("{target}: {} inputs", files.len());
    }
}

/// Inputs no fuzzer chose: pseudo-random bytes, so the entry point is exercised even before
/// a corpus exists.
#[test]
fn pseudo_random_inputs_do_not_break_the_engine() {
    let mut x = stack::testing::Xorshift::new(0x9e37_79b9_7f4a_7c15);
    for _ in 0..300 {
        let len = (x.0 % 400) as usize;
        let data: Vec<u8> = (0..len).map(|_| x.next_u64() as u8).collect();
        stack::fuzzing::tcp_engine(&data);
    }
}

#[test]
fn every_entry_point_has_a_fuzz_target_and_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let manifest = fs::read_to_string(dir.join("Cargo.toml")).expect("fuzz/Cargo.toml");
    for (name, _) in stack::fuzzing::TARGETS {
        let target = fs::read_to_string(dir.join("fuzz_targets").join(format!("{name}.rs")))
            .unwrap_or_else(|e| panic!("fuzz/fuzz_targets/{name}.rs: {e}"));
        assert!(
            target.contains(&format!("stack::fuzzing::{name}(data)")),
            "{name}.rs must call stack::fuzzing::{name}"
        );
        assert!(manifest.contains(&format!("name = \"{name}\"")), "fuzz/Cargo.toml lacks a [[bin]] for {name}");
    }
}
