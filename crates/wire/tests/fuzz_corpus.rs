//! Replays the fuzz corpus (fuzz/corpus/<target>/) through the matching
//! `wire::fuzzing` entry point as an ordinary test, whole and truncated at every
//! offset, so every input ever committed to the corpus stays a regression test even
//! where cargo-fuzz is not installed.

use std::fs;
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("corpus directory {} is missing: {e}", dir.display()));
    let mut files: Vec<PathBuf> =
        entries.map(|e| e.expect("readable directory entry").path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

#[test]
fn replay_corpus() {
    let corpus = fuzz_dir().join("corpus");
    let mut total_files = 0usize;
    let mut total_inputs = 0usize;
    for (target, entry) in wire::fuzzing::TARGETS {
        let files = files_in(&corpus.join(target));
        assert!(!files.is_empty(), "corpus directory for `{target}` is empty: nothing would be tested");
        let mut inputs = 0usize;
        for path in &files {
            let data = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            for cut in 0..=data.len() {
                entry(&data[..cut]);
            }
            inputs += data.len() + 1;
        }
        println!("{target}: {} files, {inputs} inputs (every prefix)", files.len());
        total_files += files.len();
        total_inputs += inputs;
    }
    println!("replayed {total_files} corpus files as {total_inputs} inputs");
}

#[test]
fn every_entry_point_has_a_fuzz_target_and_corpus() {
    let dir = fuzz_dir();
    let mut targets: Vec<String> = files_in(&dir.join("fuzz_targets"))
        .iter()
        // Targets of other crates' entry points (stack::fuzzing) are checked by their tests.
        .filter(|p| fs::read_to_string(p).is_ok_and(|src| src.contains("wire::fuzzing::")))
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    targets.sort();
    let mut entries: Vec<String> = wire::fuzzing::TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    entries.sort();
    assert_eq!(targets, entries, "fuzz/fuzz_targets/*.rs and wire::fuzzing::TARGETS disagree");
    let manifest = fs::read_to_string(dir.join("Cargo.toml")).expect("fuzz/Cargo.toml");
    for name in &entries {
        let target = fs::read_to_string(dir.join("fuzz_targets").join(format!("{name}.rs"))).expect("target source");
        assert!(target.contains(&format!("wire::fuzzing::{name}(data)")), "{name}.rs must call wire::fuzzing::{name}");
        assert!(manifest.contains(&format!("name = \"{name}\"")), "fuzz/Cargo.toml lacks a [[bin]] for {name}");
        assert!(dir.join("corpus").join(name).is_dir(), "fuzz/corpus/{name} is missing");
    }
}
